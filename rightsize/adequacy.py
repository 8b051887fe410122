"""Adequacy: the target, and the one judgement of which evaluated configs meet it.

Every command that decides or shows adequacy (recommend, check, report, the benchmarks) asks
:func:`judge`, and every sentence that names the target comes from :class:`Target`. Pure functions
over records (:class:`rightsize.records.Record`); selection uses the validation split only.

The rules, with evidence:

* ``min``: the lower bound of the metric's two-sided ``level`` bootstrap interval is >= ``min``.
* ``within``: the config is non-inferior to the best config by margin ``d``: with the *same* resampled
  example indices for both, the lower bound of the interval of (candidate - best) is > ``-d``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, Iterable, Mapping, Sequence

import numpy as np

from rightsize import metrics as M
from rightsize.errors import RightsizeError
from rightsize.naming import variant_labels
from rightsize.records import Record

DEFAULT_WITHIN = 0.02  # a target that names neither rule: within 0.02 of the best


# ------------------------------------------------------------------------------------ the target


@dataclass(frozen=True, init=False)
class Target:
    """What counts as adequate: an absolute floor (``Target(min=x)``) or a margin below the best
    config (``Target(within=d)``); written as in task files. Neither given: within DEFAULT_WITHIN."""

    rule: str  # "min" or "within"
    value: float

    def __init__(self, *, min: float | None = None, within: float | None = None) -> None:
        if min is not None and within is not None:
            raise ValueError("a target is either min or within, not both")
        rule, value = ("min", min) if min is not None else ("within", DEFAULT_WITHIN if within is None else within)
        object.__setattr__(self, "rule", rule)
        object.__setattr__(self, "value", float(value))

    @classmethod
    def from_any(cls, target: Any) -> "Target":
        """A Target from a Target, a record's target dict (``{"min": x, "within": None}``),
        ``{"min": x}`` / ``{"within": d}``, or None (the default)."""
        if isinstance(target, Target):
            return target
        if target is None:
            return cls()
        if not isinstance(target, Mapping):
            raise TypeError(f"not a target: {target!r}")
        if target.get("min") is not None:
            return cls(min=target["min"])
        return cls(within=target.get("within"))

    @property
    def min(self) -> float | None:
        return self.value if self.rule == "min" else None

    @property
    def within(self) -> float | None:
        return self.value if self.rule == "within" else None

    def to_dict(self) -> dict[str, float]:
        return {self.rule: self.value}

    def record_form(self) -> dict[str, float | None]:
        """Both keys, the rule not used None: the form records and the search's study store."""
        return {"min": self.min, "within": self.within}

    def threshold(self, best: float) -> float:
        """The bar: the score a config must reach, given the best score any config reached."""
        return self.value if self.rule == "min" else best - self.value

    def __str__(self) -> str:
        return f"{self.rule} {self.value:g}"

    def short(self, metric: str) -> str:
        """One clause: ``accuracy CI lower bound ≥ 0.9`` / ``accuracy within 0.02 of the best``."""
        if self.rule == "min":
            return f"{metric} CI lower bound ≥ {self.value:g}"
        return f"{metric} within {self.value:g} of the best"

    def description(self, metric: str, level: float = 0.95) -> str:
        """The target with the evidence that decides it, for headers and captions."""
        if self.rule == "min":
            return f"{metric} ≥ {self.value:g} ({level:.0%} CI lower bound)"
        return f"{metric} within {self.value:g} of the best config (paired bootstrap)"


# ------------------------------------------------------------------------------------ records


def ok_records(records: Iterable[Record]) -> list[Record]:
    """The ok records."""
    return [r for r in records if r.ok]


def _scored(r: Record) -> bool:
    """An ok record with what a comparison reads: its per-example scores and its energy per query."""
    needed = (r.key, r.task, r.config, r.metrics, r.label_names, r.joules, r.joules_per_query, r.predictions)
    if not r.ok or any(v is None for v in needed):
        return False
    return bool(r.references) and len(r.references) == len(r.predictions)


def comparable(records: Iterable[Record], split: str = "validation") -> list[Record]:
    """The ok records of ``split`` that were scored on the same examples, the latest per key.

    When the records cover several tasks or samples (a run with ``--limit 100``, then ``--limit 1000``),
    the group with the most configs is taken (ties: the one evaluated last). Order: first appearance.
    """
    groups: dict[tuple, dict[str, Record]] = {}
    last_seen: dict[tuple, int] = {}
    for i, r in enumerate(records):
        if r.split != split or not _scored(r):
            continue
        gid = r.examples_id
        group = groups.setdefault(gid, {})
        group.pop(r.key, None)  # a rerun (--force) replaces the earlier record of that key
        group[r.key] = r
        last_seen[gid] = i
    if not groups:
        return []
    chosen = max(groups, key=lambda g: (len(groups[g]), last_seen[g]))
    return list(groups[chosen].values())


# ------------------------------------------------------------------------------------ the judgement


@dataclass(frozen=True)
class Adequacy:
    adequate: bool
    rule: str  # "min" or "within"
    detail: str  # one human sentence saying why, with the numbers
    bound: float  # the bound compared: CI lower bound, or lower bound of the paired difference
    threshold: float  # target.min, or -d


def constraint(verdict: Adequacy) -> float:
    """The search's adequacy constraint of a verdict: <= 0 when adequate, > 0 (by how much) when not."""
    gap = verdict.threshold - verdict.bound
    return min(gap, 0.0) if verdict.adequate else max(gap, 1e-9)


ADJUSTMENTS = ("holm", "none")


@dataclass(frozen=True)
class Judgement:
    """Every answer about adequacy for one set of comparable records, from one bootstrap."""

    target: Target
    metric: str
    verdicts: dict[str, Adequacy]  # by record key
    best: Record | None  # the highest metric (ties: lower J/query)
    cheapest_adequate: Record | None  # the adequate config that costs least (see cheapest_adequate())
    energy_ties: tuple[Record, ...] = ()  # adequate configs tied with it on energy within measurement error
    adjust: str = "none"  # the family-wise correction the verdicts use ("holm" or "none")
    compared: int = 0  # adequacy tests in the family (the best itself is not tested under `within`)
    unadjusted: dict[str, Adequacy] | None = None  # with a correction: the verdicts without it
    cheapest_unadjusted: Record | None = None  # ... and the answer they would give

    @property
    def correction_changed_answer(self) -> bool:
        if self.unadjusted is None:
            return False
        return getattr(self.cheapest_adequate, "key", None) != getattr(self.cheapest_unadjusted, "key", None)

    @property
    def bar(self) -> float | None:
        """The score a config must reach: ``min``, or the best's score minus ``within`` (None: no records)."""
        if self.best is None:
            return self.target.min
        return self.target.threshold(self.best.score(self.metric))

    @property
    def constraints(self) -> dict[str, float]:
        """The search's constraint per config key (:func:`constraint`)."""
        return {key: constraint(v) for key, v in self.verdicts.items()}


def judge(records: Sequence[Record], target: Any, metric: str, *, resamples: int = 1000,
          seed: int = 0, level: float = 0.95, adjust: str = "none",
          cost: Callable[[Record], float] | None = None,
          cost_range: Callable[[Record], tuple[float, float]] | None = None) -> Judgement:
    """Judge the ok records (which must share their examples: see :func:`comparable`) against
    ``target`` (anything :meth:`Target.from_any` takes), with one set of bootstrap resamples.
    ``adjust="holm"`` holds the chance that any inadequate config is called adequate to the
    one-sided ``(1 - level) / 2`` over all the configs compared (Holm-Bonferroni; docs/adequacy.md).
    ``cost``: what the cheapest adequate config minimizes (default J/query), ``cost_range`` its
    interval across repeated measurements (default :attr:`Record.jpq_interval`): :func:`cheapest_adequate`."""
    if adjust not in ADJUSTMENTS:
        raise RightsizeError(f"--adjust {adjust!r}: choose one of {', '.join(ADJUSTMENTS)}")
    target = Target.from_any(target)
    ok = ok_records(records)
    if not ok:
        return Judgement(target, metric, {}, None, None)
    if metric not in M.METRICS:
        raise RightsizeError(f"metric {metric!r} is not one of {', '.join(M.METRICS)}")
    references = ok[0].references
    if any(r.references != references for r in ok):
        raise ValueError("judge() needs records scored on the same examples; filter them with comparable()")
    n_classes = len(ok[0].label_names)
    # One set of resampled example indices for every config: intervals and paired differences agree.
    idx = M.bootstrap_indices(len(references), resamples, seed)
    scores = {r.key: M.bootstrap_scores(metric, references, r.predictions, n_classes, idx) for r in ok}
    # Both rules use the lower end of the two-sided `level` interval (the 2.5% quantile at 95%), so
    # "min" and "within" ask for the same strength of evidence. For "within" this is the usual
    # non-inferiority convention (lower limit of the two-sided 95% CI, i.e. a one-sided test at 2.5%);
    # a one-sided 95% bound (the 5% quantile) would call more configs adequate on the same evidence.
    alpha = (1 - level) / 2
    pct = f"{level:.0%}"
    value = target.value
    top = max(ok, key=lambda r: (r.score(metric), -r.joules_per_query))
    verdicts: dict[str, Adequacy] = {}
    if target.rule == "min":
        for r in ok:
            lo = _quantile(scores[r.key], alpha)
            verb = ">=" if lo >= value else "<"
            verdicts[r.key] = Adequacy(
                adequate=lo >= value, rule="min", bound=lo, threshold=value,
                detail=f"{pct} CI lower bound of {metric} {lo:.4f} {verb} target min {value:g} "
                       f"({metric} {r.score(metric):.4f} on {len(references)} examples)")
    else:
        top_value = top.score(metric)
        top_name = variant_labels(ok)[top.key]
        for r in ok:
            if r.key == top.key:
                verdicts[r.key] = Adequacy(True, "within", f"the best config found ({metric} {top_value:.4f})",
                                           0.0, -value)
                continue
            lo = _quantile(scores[r.key] - scores[top.key], alpha)
            adequate = lo > -value
            verdicts[r.key] = Adequacy(
                adequate=adequate, rule="within", bound=lo, threshold=-value,
                detail=f"paired difference to the best ({top_name}, {metric} {top_value:.4f}) is "
                       f"{r.score(metric) - top_value:+.4f}; its {pct} CI lower bound {lo:+.4f} "
                       f"{'>' if adequate else '<='} -{value:g} over {len(references)} examples")
    if cost_range is None:  # a cost given without its interval has none
        cost_range = (lambda r: r.jpq_interval) if cost is None else (lambda r: (cost(r), cost(r)))
    cost = cost or (lambda r: r.joules_per_query)

    def cheapest_of(verdicts: dict[str, Adequacy]) -> tuple[Record | None, tuple[Record, ...]]:
        return cheapest_adequate([r for r in ok if verdicts[r.key].adequate], cost, cost_range)

    tested = {r.key: scores[r.key] - (value if target.rule == "min" else scores[top.key] - value)
              for r in ok if target.rule == "min" or r.key != top.key}
    if adjust == "none":
        return Judgement(target, metric, verdicts, top, *cheapest_of(verdicts), "none", len(tested))
    adjusted = _holm(verdicts, tested, alpha)
    return Judgement(target, metric, adjusted, top, *cheapest_of(adjusted), adjust, len(tested), verdicts,
                     cheapest_of(verdicts)[0])


def cheapest_adequate(adequate: Sequence[Record], cost: Callable[[Record], float],
                      cost_range: Callable[[Record], tuple[float, float]]) -> tuple[Record | None, tuple[Record, ...]]:
    """The choice among adequate configs, and the configs tied with it on energy.

    The leader costs least by point value (ties: J/query, then parameters). Configs whose cost
    interval (J/query's across repeated measurements, :attr:`Record.jpq_interval`) reaches down to
    the leader's upper end are tied with it within measurement error; of those, the one with the
    fewest parameters is chosen, then the one cheapest to make (fit joules: configs serving the same
    model, e.g. fine-tunes of one depth, differ there and not in J/query), then the lowest upper end,
    then the point value: a choice that does not flip with the noise of one run. Records without
    intervals tie only on equal values."""
    if not adequate:
        return None, ()
    leader = min(adequate, key=lambda r: (cost(r), r.joules_per_query, r.n_params or 0))
    ceiling = cost_range(leader)[1]
    tied = [r for r in adequate if cost_range(r)[0] <= ceiling]
    pick = min(tied, key=lambda r: (r.n_params is None, r.n_params or 0, r.fit_joules,
                                    cost_range(r)[1], cost(r), r.joules_per_query))
    return pick, tuple(r for r in tied if r.key != pick.key)


def _holm(verdicts: dict[str, Adequacy], margins: dict[str, np.ndarray], alpha: float) -> dict[str, Adequacy]:
    """Holm's step-down correction of the adequacy tests. Each test's p-value is the normal
    approximation of its bootstrap margin (score minus the bar: adequate when > 0), since 1,000
    resamples cannot resolve the small levels a large family needs; the k-th smallest p-value is
    compared with alpha / (m - k + 1), and the first that fails stops every later one."""
    from statistics import NormalDist

    normal = NormalDist()
    stats = {}
    for key, margin in margins.items():
        mean, sd = float(np.mean(margin)), float(np.std(margin, ddof=1)) if len(margin) > 1 else 0.0
        p = normal.cdf(-mean / sd) if sd > 0 else (0.0 if mean > 0 else 1.0)
        stats[key] = (p, mean, sd)
    m = len(stats)
    out = dict(verdicts)
    still = True
    for k, key in enumerate(sorted(stats, key=lambda key: stats[key][0]), 1):
        p, mean, sd = stats[key]
        level = alpha / (m - k + 1)
        still = still and p <= level
        v = verdicts[key]
        bound = round(mean - normal.inv_cdf(1 - level) * sd + v.threshold, 12)
        out[key] = Adequacy(
            adequate=still, rule=v.rule, bound=bound, threshold=v.threshold,
            detail=f"{v.detail}; Holm-adjusted over {m} configs: p = {p:.2g} "
                   f"{'<=' if p <= level else '>'} {level:.2g} (rank {k})"
                   + ("" if still or p > level else ", but a config with a smaller p failed first"))
    return out


def _quantile(values: np.ndarray, q: float) -> float:
    # Rounded so that a bound that is 0.9 by hand (90 of 100) is not 0.8999999999999999 by float.
    return round(float(np.quantile(values, q)), 12)
