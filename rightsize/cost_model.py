"""A lower bound on a config's joules per query before it runs, from what the search has measured.

Why: the search looks for the *cheapest* adequate config. Once an adequate config costs X J/query,
a config that certainly costs more can never be the answer, and evaluating it would spend one more
encode of the train and validation texts for nothing. The search asks this model for a lower bound
and skips configs whose bound is above X (see ``rightsize.search``).

The model: a transformer's forward pass costs about its *compute* weights (parameters that take
part in matrix products: every layer kept, not the embedding tables, which are looked up) times the
tokens it reads. So each measured config gives a rate, J/query per compute weight, for its run
settings (precision, batch size, max length, threads, attention kernel, device), and a config not
yet run is predicted at that rate times its own compute weights. Measured here: MiniLM-L6 has 10.8M
compute weights and mpnet-base 85.6M (7.9x); their measured CPU time per text at fp32 differs 7.9x.

Lower bound, not estimate: the smallest rate measured for the same settings is used, times
:data:`SAFETY` (measurement noise between runs, tokenizers that split text differently). Settings
never measured may be cheaper in ways no one can predict (int8 kernels, another thread count), so
they get the smallest rate of any setting times :data:`UNSEEN_SETTINGS`. With nothing measured, or
a model whose weights cannot be read, there is no bound, and the config is evaluated.

Making a config costs too (:meth:`CostModel.fit_lower_bound`, for the lifetime objective): a
config that trains in epochs passes ``epochs x train examples`` through its model, each costing
about :data:`TRAIN_FORWARDS` forward passes (forward, the backward's two products per weight; a
LoRA backward skips the weights' gradients). The rate per example and compute weight is the least
fit rate measured for the same run settings and method (a trained config already run), else the
inference rate times :data:`TRAIN_FORWARDS`; the same SAFETY and UNSEEN_SETTINGS apply.
"""

from __future__ import annotations

import math
from typing import Iterable

from rightsize.model_facts import facts_of
from rightsize.records import Record
from rightsize.rungs import RungSpec, rung_class

SAFETY = 0.8
# Run settings never measured might cost a quarter: torch int8 measured 0.59x torch fp32 here, and
# onnxruntime int8 0.25x at 2 threads on a busy 2-core machine (benchmarks/onnx_vs_torch.py).
UNSEEN_SETTINGS = 0.25
TRAIN_FORWARDS = {"full": 3.0, "lora": 2.0}  # a train step per example, in forward passes
RUN_SETTINGS = ("precision", "batch_size", "max_length", "threads", "attn_implementation", "runtime")


class CostModel:
    """Rates measured so far, and lower bounds from them."""

    def __init__(self) -> None:
        self._rates: dict[tuple, float] = {}  # run settings -> least J/query per compute weight
        self._fit_rates: dict[tuple, float] = {}  # (run settings, method) -> least fit J per example and weight

    def observe(self, spec: RungSpec, record: Record) -> None:
        """Learn from a finished evaluation (ok or pruned: both measured their inference cost, or,
        pruned between epochs, their training cost)."""
        weights = compute_weights_of(spec)
        if not weights:
            return
        jpq = record.joules_per_query
        if isinstance(jpq, (int, float)) and jpq > 0:
            _keep_least(self._rates, settings_of(spec), jpq / weights)
        seen = (record.training or {}).get("examples_seen")
        fit = (record.joules or {}).get("fit")
        if _trains(spec) and isinstance(seen, int) and seen > 0 and isinstance(fit, (int, float)) and fit > 0:
            _keep_least(self._fit_rates, _fit_setting(spec), fit / (seen * weights))

    def fit_lower_bound(self, spec: RungSpec, n_train: int) -> float | None:
        """Joules the config's training costs at least on ``n_train`` examples: 0 for a config that
        does not train in epochs (its fit is left out of this bound), None when nothing allows one."""
        if not _trains(spec):
            return 0.0
        weights = compute_weights_of(spec)
        if not weights:
            return None
        rate = self._fit_rates.get(_fit_setting(spec))
        if rate is not None:
            scale = 1.0
        else:
            least = self._least_rate(spec)
            if least is None:
                return None
            rate, same_settings = least[0] * TRAIN_FORWARDS.get(spec.knobs.get("method", "full"), 2.0), least[1]
            scale = 1.0 if same_settings else UNSEEN_SETTINGS
        epochs = spec.knobs.get("epochs", rung_class(spec.kind).knobs["epochs"].default)
        return SAFETY * scale * rate * weights * epochs * n_train

    @classmethod
    def from_records(cls, records: Iterable[Record]) -> "CostModel":
        """The rates of a run folder's records (ok or pruned); records of kinds or knobs this
        version does not know give none."""
        from rightsize.errors import RightsizeError
        from rightsize.recommend import spec_from_config  # recommend imports the rung kinds: import on use

        cost = cls()
        for r in records:
            if r.status in ("ok", "pruned") and r.config is not None:
                try:
                    cost.observe(spec_from_config(str(r.rung), r.config), r)
                except RightsizeError:
                    pass
        return cost

    def lower_bound(self, spec: RungSpec) -> float | None:
        """J/query this config costs at least, or None when nothing allows a bound."""
        weights = compute_weights_of(spec)
        least = self._least_rate(spec)
        if not weights or least is None:
            return None
        rate, same_settings = least
        return SAFETY * rate * (1.0 if same_settings else UNSEEN_SETTINGS) * weights

    def estimate(self, spec: RungSpec) -> float:
        """What the search orders configs by, cheapest first: compute weights times the least rate
        measured for the config's settings, else for any settings, else 1 (weights alone, the same
        implicit rate for every model). A config whose inference runs no model (TF-IDF, static
        embeddings) is 0; a model whose weights cannot be read is infinite (last: nothing says it
        is cheap)."""
        if inference_spec(spec) is None:
            return 0.0
        weights = compute_weights_of(spec)
        if not weights:
            return math.inf
        return self.expected(spec) or float(weights)

    def expected(self, spec: RungSpec) -> float | None:
        """J/query predicted for the config at the least rate measured (for its settings, else any):
        an estimate, never a measurement. None before anything was measured or without a readable model."""
        weights = compute_weights_of(spec)
        least = self._least_rate(spec)
        return least[0] * weights if weights and least is not None else None

    def _least_rate(self, spec: RungSpec) -> tuple[float, bool] | None:
        """The least rate measured for the config's run settings (and True), else the least for any
        settings (and False); None before anything was measured."""
        rate = self._rates.get(settings_of(spec))
        if rate is not None:
            return rate, True
        return (min(self._rates.values()), False) if self._rates else None


def _keep_least(rates: dict[tuple, float], key: tuple, rate: float) -> None:
    rates[key] = min(rate, rates.get(key, rate))


def _trains(spec: RungSpec) -> bool:
    """A config that trains its model in epochs (a fine-tune)."""
    return "epochs" in rung_class(spec.kind).knobs and inference_spec(spec) is not None


def _fit_setting(spec: RungSpec) -> tuple:
    """What a fit rate is kept per: the run settings and the training method."""
    method = rung_class(spec.kind).knobs.get("method")
    return settings_of(spec), spec.knobs.get("method", method.default if method is not None else None)


def settings_of(spec: RungSpec) -> tuple:
    """The run settings a config's cost rate depends on (the rung's own defaults filled in)."""
    spec = inference_spec(spec) or spec
    knobs = rung_class(spec.kind).knobs
    return tuple((k, spec.knobs.get(k, knobs[k].default)) for k in RUN_SETTINGS if k in knobs)


def compute_weights_of(spec: RungSpec) -> int | None:
    """Compute weights of the config's model with its ``layers`` knob applied (None: no model, or
    weights this module cannot read)."""
    spec = inference_spec(spec)
    if spec is None:
        return None
    layers = spec.knobs.get("layers")
    try:
        return facts_of(spec.model).compute_weights(layers if isinstance(layers, int) else None)
    except Exception:  # noqa: BLE001 — an unreadable model gives no bound; the config is evaluated
        return None


def inference_spec(spec: RungSpec) -> RungSpec | None:
    """The config whose model runs per query (a distilled student's; none for TF-IDF or static
    embeddings, whose inference looks vectors up): what the rates and bounds are about."""
    return rung_class(spec.kind).inference_spec(spec)
