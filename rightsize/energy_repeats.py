"""Repeated inference windows: J/query with an interval and a coefficient of variation (CV).

The CPU-time estimate varies run to run (scheduling, caches, other load on the machine). An
inference served from the embedding cache (a probe's head, a kNN lookup) lasts a few milliseconds,
where that jitter is tens of percent of one pass. So such an inference is measured in windows of
equal work, each at least ``window_s`` long, ``repeats`` of them; while the CV across windows is
above ``cv_target`` and the time budget allows a round of windows at least twice as long, the
windows are made up to ``growth`` times longer (as long as the budget left allows) and measured
again. The record says how many windows of how many passes, and whether the target was met
(docs/energy.md).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Callable, Sequence

import numpy as np

from rightsize.energy import Meter

MAX_INFER_PASSES = 1000  # a pass that takes no measurable time would otherwise repeat forever
T_975 = {1: 12.71, 2: 4.303, 3: 3.182, 4: 2.776, 5: 2.571, 6: 2.447, 7: 2.365, 8: 2.306, 9: 2.262}


@dataclass(frozen=True)
class RepeatPolicy:
    """How an inference measured with the CPU-time estimate is repeated."""

    window_s: float = 0.1  # each window runs passes until it is at least this long
    repeats: int = 5  # windows of equal work per round
    growth: int = 4  # a further round's windows run at most this many times the passes
    budget_s: float = 3.0  # seconds all windows of one inference may take (the first included)
    cv_target: float = 0.05  # the J/query CV across windows a record aims for


POLICY = RepeatPolicy()  # tests set a cheaper one


@dataclass
class Windows:
    """The repeated windows of one inference: net joules per pass of each window of the last round."""

    joules_per_pass: list[float]
    passes: int  # passes per window of the last round
    rounds: int = 1
    passes_run: int = 0  # passes run after the first window (for the embedding cache's ledger)
    note: str = ""  # why the CV target is not met or could not be judged
    policy: RepeatPolicy = field(default_factory=lambda: POLICY)

    @property
    def cv(self) -> float | None:
        values = np.asarray(self.joules_per_pass, dtype=float)
        if len(values) < 2 or values.mean() <= 0:
            return None
        return float(values.std(ddof=1) / values.mean())


def run_until(meter: Meter, window: str, work: Callable[[], Any], min_s: float, still: Callable[[], bool]) -> int:
    """Repeat ``work`` (run once already) in the open ``window`` until it lasts ``min_s``; the passes.
    ``still()`` turning false (the work stored something a repeat would reuse) stops it."""
    passes = 1
    while meter.elapsed(window) < min_s and passes < MAX_INFER_PASSES and still():
        work()
        passes += 1
    return passes


def repeat_windows(meter: Meter, work: Callable[[], Any], first_joules: float, first_seconds: float, passes: int,
                   still: Callable[[], bool], policy: RepeatPolicy | None = None) -> Windows:
    """Measure ``work`` in more windows of ``passes`` passes after a first one (``first_joules`` net
    per pass over ``first_seconds``), growing the windows while the CV misses the target (module doc)."""
    policy = policy or POLICY
    out = Windows([first_joules], passes, policy=policy)
    spent, window_s = first_seconds, first_seconds
    while True:
        while len(out.joules_per_pass) < policy.repeats and spent + window_s <= policy.budget_s and still():
            joules, window_s = _one_window(meter, work, out.passes)
            out.joules_per_pass.append(joules)
            out.passes_run += out.passes
            spent += window_s
        cv = out.cv
        if cv is not None and cv <= policy.cv_target:
            return out
        # The next round's windows: `growth` times the passes, or as many as the budget left fits
        # for a whole round; worth it only at twice the passes or more.
        pass_s = window_s / out.passes
        fits = int((policy.budget_s - spent) / (policy.repeats * pass_s)) if pass_s > 0 else MAX_INFER_PASSES
        grown = min(out.passes * policy.growth, fits, MAX_INFER_PASSES)
        if len(out.joules_per_pass) < policy.repeats or grown < 2 * out.passes or not still():
            out.note = _shortfall(out, cv, spent)
            return out
        out.joules_per_pass, out.passes, out.rounds = [], grown, out.rounds + 1
        window_s = grown * pass_s


def _one_window(meter: Meter, work: Callable[[], Any], passes: int) -> tuple[float, float]:
    """(net joules per pass, seconds) of one window running ``work`` ``passes`` times."""
    meter.begin("infer-repeat")
    try:
        for _ in range(passes):
            work()
    except BaseException:
        meter.discard("infer-repeat")
        raise
    m = meter.end("infer-repeat")
    return m.per_pass(passes).net_joules, m.seconds


def _shortfall(windows: Windows, cv: float | None, spent: float) -> str:
    """Why the windows end without meeting the CV target, in one clause."""
    n, policy = len(windows.joules_per_pass), windows.policy
    if n < 2:
        return (f"not repeated: one window of {windows.passes} passes took {spent:.2g} s of the "
                f"{policy.budget_s:g} s repeat budget")
    passes = f"{windows.passes} pass" + ("es" if windows.passes != 1 else "")
    return (f"CV {cv:.1%} over {n} windows of {passes}; the {policy.budget_s:g} s repeat budget "
            "allows no longer windows" if cv is not None else f"no energy measured over {n} windows")


def unrepeated(passes: int, why: str) -> Windows:
    """The windows of an inference that is not repeated, and why."""
    return Windows([], passes, note=f"not repeated: {why}")


def energy_interval(stages: Sequence[Windows], n_queries: int, served_joules: float = 0.0) -> dict[str, Any]:
    """J/query's mean, 95% interval and CV from the repeated windows of each inference window of a
    record (a staged inference has several; their means add up, their half-widths add in quadrature,
    the worst CV counts). ``served_joules``: what the embedding cache's stored costs charge the
    phase; it was measured when stored, not here, so it shifts the interval and is left out of the
    CV (docs/energy.md)."""
    n = max(n_queries, 1)
    served = served_joules / n
    notes = [w.note for w in stages if w.note]
    policy = stages[0].policy if stages else POLICY
    out: dict[str, Any] = {"repeats": min((len(w.joules_per_pass) for w in stages), default=0),
                           "passes_per_window": [w.passes for w in stages], "rounds": max((w.rounds for w in stages),
                                                                                            default=0),
                           "served_per_query": served, "cv_target": policy.cv_target}
    if not stages or any(len(w.joules_per_pass) < 2 for w in stages):
        return {**out, "mean": None, "interval": None, "cv": None, "cv_met": False, "note": "; ".join(notes)}
    mean = half_sq = 0.0
    for w in stages:
        per_query = np.asarray(w.joules_per_pass, dtype=float) / n
        sd = float(per_query.std(ddof=1))
        mean += float(per_query.mean())
        half_sq += (T_975.get(len(per_query) - 1, 1.96) * sd / math.sqrt(len(per_query))) ** 2
    half = math.sqrt(half_sq)
    cvs = [w.cv for w in stages]
    cv = None if any(c is None for c in cvs) else max(cvs)
    return {**out, "mean": mean + served, "measured_mean": mean,
            "interval": [max(mean - half, 0.0) + served, mean + half + served],
            "cv": cv, "cv_met": cv is not None and cv <= policy.cv_target, "note": "; ".join(notes)}
