"""The search space of `rightsize search`: which configurations may be tried, built from a ladder.

Each rung of the ladder is one value of the categorical parameter ``rung``; its searched knobs are
conditional parameters named ``<rung>.<knob>``. Every dimension is a finite list of values, so a
trial's configuration is exact, two trials of the same configuration are recognisable (same
evaluation key) and the whole space can be enumerated for an exhaustive baseline.

Which values a knob takes, first match wins:

1. the ladder's ``search.space.<rung>.<knob>`` list, or ``search.fix`` (one value);
2. knobs not in ``search.knobs`` (when the ladder gives that list) stay at the rung's value;
3. a built-in grid: :data:`GRIDS`, or one that depends on the model and the device
   (``layers`` 1..N of the model, ``max_length`` below the model's maximum, ``precision``
   fp32/bf16/int8 on CPU and fp32/bf16/fp16 on GPU, ``threads`` 1, 2, 4.. up to the cores,
   ``attn_implementation`` sdpa/eager, plus flash_attention_2 on GPU when ``flash_attn`` is
   installed and the architecture has a FlashAttention path), kept within the knob's min/max;
4. the knob's own ``choices`` (e.g. the kNN ``index``);
5. otherwise the knob stays at the rung's value.

The rung's own value (from the ladder, else the knob's default) is always one of the values, and
choosing it leaves the knob out of the config, so the ladder's defaults have the same evaluation
key as in `rightsize evaluate`. ``None`` means "the model's own" (all layers, its max length, every
core), so "all N layers" and "keep N layers" are one config, not two.
"""

from __future__ import annotations

import itertools
import os
from dataclasses import dataclass, field
from typing import Any, Iterator

from rightsize.ladder import Ladder
from rightsize.model_facts import ModelFacts, facts_of
from rightsize.rungs import Knob, RungSpec, rung_class

GRIDS: dict[str, tuple] = {
    "k": (1, 3, 5, 10, 20, 50),
    "batch_size": (16, 32, 64, 128),
    "max_length": (32, 64, 128, 256),
    "C": (0.1, 1.0, 10.0, 100.0),
    "pca_dims": (64, 128, 256),  # static embeddings: the PCA's width
    "ngram_max": (1, 2, 3),
    "weight": (0.1, 0.3, 0.5, 0.7),
    "shots": (0, 1, 2, 4, 8),
    # training (finetune): a log grid whose low end suits full fine-tunes and high end LoRA
    "epochs": (1, 2, 3, 4, 5),
    "learning_rate": (1e-5, 3e-5, 1e-4, 3e-4),
    "lora_r": (4, 8, 16),
    "threshold": (0.5, 0.7, 0.8, 0.9, 0.95),  # a cascade's confidence to answer at (every stage but the last)
}
CPU_PRECISIONS = ("fp32", "bf16", "int8")
GPU_PRECISIONS = ("fp32", "bf16", "fp16")
# Knobs whose grid is worked out from the model or the device (see _dynamic_grid).
DYNAMIC = ("layers", "max_length", "precision", "threads", "attn_implementation")
PARAM_RUNG = "rung"


@dataclass(frozen=True)
class Dimension:
    """One searched knob of one rung: the values it may take (the rung's own value included)."""

    knob: str
    values: tuple


@dataclass(frozen=True)
class RungSpace:
    """One rung and its searched knobs; ``base`` is the rung with its fixed knobs applied."""

    base: RungSpec
    dims: tuple[Dimension, ...]
    own: dict[str, Any] = field(default_factory=dict)  # the value each searched knob has in ``base``
    # searched knob -> (searched knob, value) it needs to matter (Knob.only_if); such knobs come
    # after the knobs they depend on in ``dims``, and hold their own value where they do not matter
    conditions: dict[str, tuple[str, Any]] = field(default_factory=dict)

    @property
    def name(self) -> str:
        return self.base.name

    def param(self, knob: str) -> str:
        return f"{self.name}.{knob}"

    @property
    def size(self) -> int:
        """The number of distinct configs (a knob that does not matter adds none)."""
        plain = [d for d in self.dims if d.knob not in self.conditions]
        deciding = [d for d in plain if any(c[0] == d.knob for c in self.conditions.values())]
        n = 1
        for d in plain:
            if d not in deciding:
                n *= len(d.values)
        if not deciding:
            return n
        total = 0
        for combo in itertools.product(*(d.values for d in deciding)):
            values = {d.knob: v for d, v in zip(deciding, combo)}
            m = 1
            for d in self.dims:
                if d.knob in self.conditions and self.applies(d.knob, values):
                    m *= len(d.values)
            total += m
        return n * total

    def applies(self, knob: str, values: dict[str, Any]) -> bool:
        """Whether the searched ``knob`` matters given the searched ``values``."""
        if knob not in self.conditions:
            return True
        other, wanted = self.conditions[knob]
        return _same(values[other], wanted)

    def normal(self, values: dict[str, Any]) -> dict[str, Any]:
        """``values`` with each knob that does not matter at the rung's own value (one config, one form)."""
        return {k: v if self.applies(k, values) else self.own[k] for k, v in values.items()}

    def spec_for(self, values: dict[str, Any]) -> RungSpec:
        """The RungSpec of this rung with ``values`` for its searched knobs (canonical knobs)."""
        knobs = dict(self.base.knobs)
        for knob, value in self.normal(values).items():
            if _same(value, self.own[knob]):
                continue  # the rung's own value: leave the config as the ladder wrote it
            knobs[knob] = value
        declared = rung_class(self.base.kind).knobs
        knobs = {k: v for k, v in knobs.items() if declared[k].applies(knobs, declared)}
        return RungSpec(self.base.name, self.base.kind, self.base.model, knobs)

    def default_params(self) -> dict[str, Any]:
        """Trial parameters of the rung as the ladder gives it (what "small first" enqueues)."""
        return self.params({d.knob: self.own[d.knob] for d in self.dims})

    def params(self, values: dict[str, Any]) -> dict[str, Any]:
        """Trial parameters (what ``enqueue_trial`` takes) of this rung with ``values``."""
        return {PARAM_RUNG: self.name, **{self.param(k): v for k, v in values.items() if self.applies(k, values)}}

    def neighbours(self, values: dict[str, Any]) -> list[dict[str, Any]]:
        """The configs one knob away from ``values``: the next value up and down of an ordered
        (numeric) knob, every other value of a categorical one. Where a cheaper config that is still
        adequate lives, if anywhere: fewer layers, shorter inputs, int8, another head setting."""
        out = []
        for d in self.dims:
            if not self.applies(d.knob, values):
                continue
            ordered = _ordered(d.values)
            current = values[d.knob]
            if ordered is None:
                steps = [v for v in d.values if not _same(v, current)]
            else:
                i = next(i for i, v in enumerate(ordered) if _same(v, current))
                steps = [ordered[j] for j in (i - 1, i + 1) if 0 <= j < len(ordered)]
            out += [self.normal({**values, d.knob: v}) for v in steps]
        return out

    def configs(self) -> Iterator[tuple[dict[str, Any], RungSpec]]:
        """Every (searched values, spec) of this rung, each config once."""
        for combo in itertools.product(*(d.values for d in self.dims)):
            values = {d.knob: v for d, v in zip(self.dims, combo)}
            if values != self.normal(values):
                continue  # a knob that does not matter away from its own value: listed once, at it
            yield values, self.spec_for(values)


@dataclass(frozen=True)
class SearchSpace:
    rungs: tuple[RungSpace, ...]
    device: str

    def __getitem__(self, name: str) -> RungSpace:
        for r in self.rungs:
            if r.name == name:
                return r
        raise KeyError(name)

    @property
    def size(self) -> int:
        return sum(r.size for r in self.rungs)

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(r.name for r in self.rungs)

    def suggest(self, trial) -> tuple[RungSpec, dict[str, Any]]:
        """Ask an Optuna trial for a config; returns the spec and the searched knob values."""
        name = trial.suggest_categorical(PARAM_RUNG, [r.name for r in self.rungs])
        rung = self[name]
        values: dict[str, Any] = {}
        for d in rung.dims:  # a knob that depends on another comes after it
            matters = rung.applies(d.knob, values)
            values[d.knob] = trial.suggest_categorical(rung.param(d.knob), list(d.values)) if matters else rung.own[d.knob]
        return rung.spec_for(values), values

    def small_first(self) -> list[dict[str, Any]]:
        """Trial parameters of each rung at its ladder values, in ladder order (small to large)."""
        return [r.default_params() for r in self.rungs]

    def configs(self) -> Iterator[tuple[str, dict[str, Any], RungSpec]]:
        for r in self.rungs:
            for values, spec in r.configs():
                yield r.name, values, spec

    def describe(self) -> dict[str, Any]:
        """JSON-able description (what the study name digests and the study records)."""
        return {
            "device": self.device,
            "size": self.size,
            "rungs": [{"name": r.name, "config": r.base.config(), "searched": {d.knob: list(d.values) for d in r.dims},
                       **({"only_if": {k: list(c) for k, c in r.conditions.items()}} if r.conditions else {})}
                      for r in self.rungs],
        }


def build_space(ladder: Ladder, device: str = "cpu", cores: int | None = None) -> SearchSpace:
    """The search space of ``ladder`` (with its ``search`` block) on ``device``."""
    block = ladder.search or {}
    searched_names = block.get("knobs")
    fix = block.get("fix") or {}
    spaces = block.get("space") or {}
    exclude = set(block.get("exclude") or ())
    cores = cores or os.cpu_count() or 1
    out = []
    for spec in ladder.rungs:
        if spec.name in exclude:
            continue
        cls = rung_class(spec.kind)
        knobs = dict(spec.knobs)
        knobs.update({k: v for k, v in fix.items() if k in cls.knobs})
        knobs = {k: v for k, v in knobs.items() if cls.knobs[k].applies(knobs, cls.knobs)}
        base = RungSpec(spec.name, spec.kind, spec.model, knobs)
        own = {k: knobs.get(k, knob.default) for k, knob in cls.knobs.items()}
        given = spaces.get(spec.name, {})
        facts = facts_of(spec.model) if cls.needs_model and spec.model else None
        dims = []
        for k, knob in cls.knobs.items():
            if k in fix:
                continue
            if k in given:
                values = list(given[k])
            elif searched_names is not None and k not in searched_names:
                continue
            else:
                values = _default_values(k, knob, facts, device, cores)
                if values is None:
                    continue
            values = _canonical(k, knob, values, facts)
            own[k] = _canonical(k, knob, [own[k]], facts)[0]
            if own[k] not in values:
                values = [own[k]] + values  # the ladder's own value is always in the space
            if len(values) > 1:
                dims.append(Dimension(k, tuple(values)))
        out.append(_conditional(base, cls.knobs, dims, own))
    return SearchSpace(tuple(out), device)


def _conditional(base: RungSpec, knobs: dict[str, Knob], dims: list[Dimension], own: dict[str, Any]) -> RungSpace:
    """The rung's space where a knob that matters only at another knob's value (``Knob.only_if``) is
    searched only then: dropped when that knob is held at another value, after it when it is searched."""
    searched = {d.knob for d in dims}
    kept, conditions = [], {}
    for d in dims:
        condition = knobs[d.knob].only_if
        if condition is not None and condition[0] in searched:
            conditions[d.knob] = condition
        elif not knobs[d.knob].applies(base.knobs, knobs):
            continue
        kept.append(d)
    kept.sort(key=lambda d: d.knob in conditions)  # stable: the ladder's order otherwise
    return RungSpace(base, tuple(kept), {d.knob: own[d.knob] for d in kept}, conditions)


def _default_values(name: str, knob: Knob, facts: ModelFacts | None, device: str, cores: int) -> list | None:
    if name in DYNAMIC:
        values = _dynamic_grid(name, knob, facts, device, cores)
    elif name in GRIDS:
        values = list(GRIDS[name])
    elif knob.choices is not None:
        values = list(knob.choices)
    else:
        return None
    if values is None:
        return None
    kept = []
    for v in values:
        if v is None and not (knob.nullable or knob.default is None):
            continue
        if v is not None and not isinstance(v, str):
            if knob.type is float:
                v = float(v)
            if (knob.min is not None and v < knob.min) or (knob.max is not None and v > knob.max):
                continue
        if knob.choices is not None and v is not None and v not in knob.choices:
            continue
        kept.append(v)
    return kept or None


def _dynamic_grid(name: str, knob: Knob, facts: ModelFacts | None, device: str, cores: int) -> list | None:
    gpu = device.startswith("cuda")
    if name == "precision":
        return list(GPU_PRECISIONS if gpu else CPU_PRECISIONS)
    if name == "attn_implementation":
        values = [None, "eager"]  # None: the model's own kernel (sdpa where supported)
        if gpu and _flash_attn_installed() and facts is not None and facts.supports_flash_attention:
            values.append("flash_attention_2")
        return values
    if name == "threads":
        if gpu:
            return None  # the GPU does the work; threads only move energy around the host
        values = [t for t in (1, 2, 4, 8, 16, 32, 64) if t < cores]
        return values + [None]
    if facts is None:
        return None
    if name == "layers":
        return None if facts.layers is None else list(range(1, facts.layers)) + [None]
    if name == "max_length":
        if facts.max_length is None:
            return None
        return [m for m in GRIDS["max_length"] if m < facts.max_length] + [None if knob.nullable else facts.max_length]
    return None


def _canonical(name: str, knob: Knob, values: list, facts: ModelFacts | None) -> list:
    """``None`` for "the model's own" (all layers, its max length) where the knob allows it; no repeats."""
    out = []
    nullable = knob.nullable or knob.default is None
    for v in values:
        if nullable and facts is not None and v is not None:
            if (name == "layers" and v == facts.layers) or (name == "max_length" and v == facts.max_length):
                v = None
        if not any(_same(v, o) for o in out):
            out.append(v)
    return out


def _same(a: Any, b: Any) -> bool:
    return a == b and type(a) is type(b)


def _ordered(values: tuple) -> list | None:
    """``values`` in increasing order, ``None`` ("the model's own": all layers, its maximum length,
    every core) last; None when the values are not all numbers."""
    numbers = [v for v in values if v is not None]
    if not all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in numbers):
        return None
    return sorted(numbers) + ([None] if len(numbers) < len(values) else [])


def _flash_attn_installed() -> bool:
    from importlib.util import find_spec

    return find_spec("flash_attn") is not None
