"""The test split's verdict on a choice made on validation: does held-out data contradict it?

The rule (docs/adequacy.md) asks the test split the validation rule's question at the same level,
turned around: the choice is *confirmed* unless the test split shows, at the rule's level, that it
misses the target. ``min x``: the upper end of the test score's interval is at least ``x``.
``within d``: the upper end of the paired interval of (chosen − largest), both on test, is above
``−d``. Pure functions over records.
"""

from __future__ import annotations

from typing import Any, Mapping, Sequence

import numpy as np

from rightsize import metrics as M
from rightsize.adequacy import Target
from rightsize.records import Record


def held_out_record(record: Record, records: Sequence[Record]) -> Record | None:
    """The latest ok test-split record of the same config, fit and sample as ``record``, if there is one."""
    matches = [t for t in records if t.ok and t.split == "test" and t.metrics is not None
               and _fit_and_sample(t) == _fit_and_sample(record)]
    return matches[-1] if matches else None


def _fit_and_sample(r: Record) -> tuple:
    return r.task, r.config, r.limit, r.train_limit, r.seed, r.device


def held_out_verdict(chosen: Record | None, largest: Record | None, target: Target, metric: str,
                 *, resamples: int = 1000, seed: int = 0, level: float = 0.95) -> dict[str, Any]:
    """``{confirmed, rule, score, bound, threshold, n_examples, detail}`` from the test records of the
    chosen and the largest config; ``confirmed`` is None when the test records needed are missing."""
    missing = {"confirmed": None, "rule": target.rule, "score": None, "bound": None, "threshold": None,
               "n_examples": None}
    if chosen is None or (target.rule == "within" and largest is None):
        what = "the choice" if chosen is None else "the largest config"
        return {**missing, "detail": f"{what} has no test record"}
    references = chosen.references
    if target.rule == "within" and largest.references != references:
        return {**missing, "detail": "the choice and the largest config were tested on other examples"}
    n_classes = len(chosen.label_names)
    idx = M.bootstrap_indices(len(references), resamples, seed)
    scores = M.bootstrap_scores(metric, references, chosen.predictions, n_classes, idx)
    upper_q = 1 - (1 - level) / 2
    pct = f"{level:.0%}"
    score = float(chosen.score(metric))
    if target.rule == "min":
        bound, threshold = _upper(scores, upper_q), target.value
        confirmed = bound >= threshold
        detail = (f"test {metric} {score:.4f}, {pct} CI upper bound {bound:.4f} "
                  f"{'>=' if confirmed else '<'} target min {threshold:g} on {len(references)} examples")
    else:
        big = M.bootstrap_scores(metric, references, largest.predictions, n_classes, idx)
        score = score - float(largest.score(metric))
        bound, threshold = _upper(scores - big, upper_q), -target.value
        confirmed = bound > threshold
        detail = (f"test {metric} minus the largest config's: {score:+.4f}, {pct} CI upper bound {bound:+.4f} "
                  f"{'>' if confirmed else '<='} -{target.value:g} on {len(references)} examples")
    return {"confirmed": bool(confirmed), "rule": target.rule, "score": score, "bound": bound, "threshold": threshold,
            "n_examples": len(references), "detail": detail}


def _upper(values: np.ndarray, q: float) -> float:
    return round(float(np.quantile(values, q)), 12)


def verdict_sentence(verdict: Mapping[str, Any]) -> str:
    """``test verdict: CONFIRMED: <the numbers>`` (or NOT CONFIRMED, or not judged)."""
    word = {True: "CONFIRMED", False: "NOT CONFIRMED", None: "not judged"}[verdict["confirmed"]]
    return f"test verdict: {word}: {verdict['detail']}"
