"""A cascade's accuracy–energy curve over thresholds, derived from measured per-stage figures.

A cascade record (kind ``cascade``) keeps every stage's answer and calibrated confidence on every
scored example (``facts.stage_outputs``, :meth:`rightsize.rungs.cascade.CascadeRung.example_facts`).
At a common threshold ``t`` each example is answered by the first stage whose confidence is at least
``t`` (the last stage answers the rest), which gives the metric at ``t`` exactly as the cascade
would score it. Its J/query is each stage's measured J/query alone on the same examples (the single
rung's record of the stage's config) weighted by the share of queries that reach the stage:
``J1 + deferred share x J2 (+ ...)``. That figure is **derived**, never measured: the measured
cascade configs stay their own points, and a stage without a record of its own leaves no curve.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, replace
from typing import Any, Mapping, Sequence

import numpy as np

from rightsize.metrics import confidence_interval, score
from rightsize.records import Record

GRID = tuple(round(i / 100, 2) for i in range(101))  # thresholds the curve is derived at


@dataclass(frozen=True)
class CurvePoint:
    """The cascade at one common threshold, derived: its metric (and interval, where asked for), its
    J/query and the share of queries each stage answered."""

    threshold: float
    metric: float
    joules_per_query: float
    answered_share: tuple[float, ...]
    ci: tuple[float, float] | None = None


@dataclass(frozen=True)
class StageOutputs:
    """Every stage's answer (label index into the record's ``label_names``, -1 for a class it does
    not know) and calibrated confidence on every scored example: arrays of shape (stages, examples)."""

    predicted: np.ndarray
    confidence: np.ndarray

    @classmethod
    def from_record(cls, record: Record) -> StageOutputs | None:
        """The record's stage outputs, or None where it has none or they do not fit its examples."""
        stages = (record.facts or {}).get("stage_outputs")
        names = list(record.label_names or ())
        n = len(record.references or ())
        if not isinstance(stages, list) or len(stages) < 2 or not n:
            return None
        predicted, confidence = [], []
        for stage in stages:
            if not isinstance(stage, Mapping):
                return None
            classes, answers, sure = stage.get("classes"), stage.get("predicted"), stage.get("confidence")
            if not (isinstance(classes, list) and isinstance(answers, list) and isinstance(sure, list)
                    and len(answers) == len(sure) == n):
                return None
            index = [names.index(c) if c in names else -1 for c in classes]
            if any(not isinstance(a, int) or not 0 <= a < len(index) for a in answers):
                return None
            predicted.append([index[a] for a in answers])
            confidence.append(sure)
        return cls(np.asarray(predicted, dtype=np.int64), np.asarray(confidence, dtype=np.float64))

    def route(self, threshold: float) -> np.ndarray:
        """Per example, the stage that answers it at ``threshold``: the first sure one, else the last."""
        last = len(self.predicted) - 1
        answering = np.full(self.predicted.shape[1], last)
        for i in reversed(range(last)):
            answering[self.confidence[i] >= threshold] = i
        return answering


def derive_point(outputs: StageOutputs, references: Sequence[int], n_classes: int, metric: str,
                 stage_joules_per_query: Sequence[float], threshold: float, *, interval: bool = False,
                 seed: int = 0) -> CurvePoint:
    """The cascade at ``threshold``: routed by the recorded confidences, priced by the stages' J/query."""
    answering = outputs.route(threshold)
    predictions = outputs.predicted[answering, np.arange(len(answering))]
    stages = len(outputs.predicted)
    reach = [float(np.mean(answering >= i)) for i in range(stages)]  # stage 1: every query
    answered = tuple(float(np.mean(answering == i)) for i in range(stages))
    ci = confidence_interval(metric, references, predictions, n_classes, seed=seed) if interval else None
    return CurvePoint(threshold, score(metric, np.asarray(references), predictions, n_classes),
                      float(np.dot(reach, stage_joules_per_query)), answered, ci)


@dataclass(frozen=True)
class CascadeCurve:
    """One cascade (its stages and settings but thresholds) on one set of examples: the curve derived
    over :data:`GRID`, the stages' measured J/query it is priced with, and the cascade's own
    evaluations at the thresholds measured. ``missing`` says why there is no curve, when there is none."""

    name: str
    stages: tuple[str, ...]  # the rung name of each stage's own record ("?" where it has none)
    stage_joules_per_query: tuple[float | None, ...]
    measured: tuple[Record, ...]
    source: Record | None = None  # the evaluation whose stage outputs the curve is derived from
    points: tuple[CurvePoint, ...] = ()
    missing: str | None = None

    def at(self, thresholds: Sequence[float], *, interval: bool = True) -> list[CurvePoint]:
        """Derived points at ``thresholds``, with their 95% bootstrap interval unless ``interval`` is False."""
        outputs = StageOutputs.from_record(self.source) if self.source is not None and not self.missing else None
        if outputs is None:
            return []
        s = self.source
        return [derive_point(outputs, s.references, len(s.label_names), s.metric, self.stage_joules_per_query, t,
                             interval=interval, seed=s.seed or 0) for t in thresholds]


def _family(config: Mapping[str, Any]) -> str:
    """A cascade's config without its thresholds: the evaluations that lie on one curve."""
    return json.dumps({k: v for k, v in config.items() if k not in ("threshold", "thresholds")}, sort_keys=True)


def _config_id(config: Mapping[str, Any] | None) -> str:
    return json.dumps(dict(config or {}), sort_keys=True)


def cascade_curves(records: Sequence[Record]) -> list[CascadeCurve]:
    """A curve per cascade among ``records`` (comparable ones: the same examples), in first-seen order."""
    singles = {_config_id(r.config): r for r in records
               if r.ok and (r.config or {}).get("kind") != "cascade" and r.joules_per_query is not None}
    families: dict[str, list[Record]] = {}
    for r in records:
        if r.ok and (r.config or {}).get("kind") == "cascade":
            families.setdefault(_family(r.config), []).append(r)
    curves = []
    for members in families.values():
        stage_records = [singles.get(_config_id(c)) for c in members[-1].config.get("stages") or ()]
        names = tuple(s.rung if s else "?" for s in stage_records)
        prices = tuple(s.joules_per_query if s else None for s in stage_records)
        with_outputs = [m for m in members if StageOutputs.from_record(m) is not None]
        absent = [i + 1 for i, s in enumerate(stage_records) if s is None]
        missing = None
        if absent:
            missing = (f"stage {', '.join(map(str, absent))} has no evaluation of its own on these examples "
                       "to price it: evaluate the stage's rung with the same options")
        elif not with_outputs:
            missing = ("its records keep no per-stage answers (recorded before rightsize kept them): "
                       "evaluate it again to derive its curve")
        # Every evaluation of one family holds the same stage outputs (one fit): the latest's are used.
        curve = CascadeCurve(str(members[-1].rung), names, prices, tuple(members),
                             with_outputs[-1] if with_outputs else None, missing=missing)
        curves.append(replace(curve, points=tuple(curve.at(GRID, interval=False))))
    return curves
