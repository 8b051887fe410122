"""Evaluating one configuration on one split, phase by phase, into one record.

Data flows one way: task data → rung → meter-wrapped phases (load, fit, infer) → a record. A rung
that fails (out of memory, a runtime error) becomes a ``failed`` record; the caller goes on.
"""

from __future__ import annotations

import gc
import hashlib
import json
import logging
import math
import time
import traceback
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any, Callable, Sequence

import numpy as np

from rightsize import metrics as M
from rightsize.artifacts import ArtifactStore
from rightsize.energy import Meter
from rightsize.energy_repeats import Windows, energy_interval
from rightsize.fit_phase import FitPhase
from rightsize.phase_energy import charged, measured
from rightsize.records import Record
from rightsize.rungs import RunContext, RungSpec, build_rung
from rightsize.tasks import Split, TaskData
from rightsize.threads import restore_threads

log = logging.getLogger(__name__)

PHASES = ("load", "fit", "infer")


@dataclass(frozen=True)
class EvalPlan:
    """What one evaluation covers: the split, how many of its examples, and the train cap."""

    split: str = "validation"
    limit: int | None = None
    train_limit: int | None = None


@dataclass(frozen=True)
class Step:
    """A staged inference so far: the first ``n`` of a seeded order of the ``total`` examples.

    ``references`` / ``predictions`` are label indices (``TaskData.labels``) of those ``n`` examples.
    """

    index: int
    n: int
    total: int
    references: np.ndarray
    predictions: np.ndarray
    n_classes: int

    @property
    def final(self) -> bool:
        return self.n >= self.total


class StopEvaluation(Exception):
    """Raised by an ``on_step`` callback to end an evaluation after part of the split (a pruned trial)."""


def subsample(split: Split, limit: int | None, seed: int) -> tuple[list[str], list[str]]:
    """A seeded random subset (files are often sorted by label, so the first N would be biased)."""
    if limit is None or limit >= len(split.texts):
        return list(split.texts), list(split.labels)
    keep = np.sort(np.random.default_rng(seed).permutation(len(split.texts))[:limit])
    return [split.texts[i] for i in keep], [split.labels[i] for i in keep]


def evaluation_key(task_id: dict[str, Any], spec: RungSpec, plan: EvalPlan, context: RunContext) -> str:
    """Identity of an evaluation: same key, same work; a rerun skips what is recorded."""
    return _digest({"task": task_id, "config": spec.config(), "split": plan.split, "limit": plan.limit,
                    "train_limit": plan.train_limit, "seed": context.seed, "device": context.device})


def fit_key(task_id: dict[str, Any], spec: RungSpec, plan: EvalPlan, context: RunContext) -> str:
    """Identity of a fit: what the fitted state depends on, not the split it is scored on, so that a
    confirmation on test restores what the validation evaluation fitted (the artifact's key)."""
    return _digest({"task": task_id, "config": spec.config(), "train_limit": plan.train_limit, "seed": context.seed,
                    "device": context.device})


def _digest(ident: dict[str, Any]) -> str:
    return hashlib.sha256(json.dumps(ident, sort_keys=True).encode()).hexdigest()[:20]


def task_identity(data: TaskData) -> dict[str, Any]:
    """The task file and the examples of each split as loaded (carving, deduplication and data files
    that changed under an unchanged task file all move it)."""
    task = data.task
    digest = hashlib.sha256(task.path.read_bytes()).hexdigest()[:16] if task.path.exists() else None
    splits = {name: [split.texts, split.labels] for name in ("train", "validation", "test")
              if (split := getattr(data, name)) is not None}
    return {"name": task.name, "file_sha256": digest, "data_sha256": _digest(splits)}


def measurement_settings(meter: Meter) -> dict[str, Any]:
    """What a record's joules depend on besides the work: the meter's counters and the estimate's
    watts per core. A recorded evaluation is reused only under the same settings (rightsize.runner)."""
    return {"energy_source": meter.source, "cpu_watts_per_core": meter.describe().get("cpu_watts_per_core")}


def measured_alike(record: Record, meter: Meter) -> bool:
    """True when ``record`` was measured under the settings ``meter`` would measure with."""
    return all(getattr(record, k) == v for k, v in measurement_settings(meter).items())


def evaluate_rung(
    data: TaskData,
    spec: RungSpec,
    meter: Meter,
    context: RunContext,
    plan: EvalPlan = EvalPlan(),
    run_id: str = "",
    *,
    steps: Sequence[float] = (1.0,),
    on_step: Callable[[Step], None] | None = None,
    artifacts: ArtifactStore | None = None,
    on_epoch: Callable[[int, Step], None] | None = None,
) -> Record:
    """Run ``spec`` through load → fit(train) → infer(split) and return its record.

    With ``on_step``, inference runs on nested, growing seeded fractions of the split (``steps``,
    e.g. 0.25, 0.5, 1.0) after a single fit, and ``on_step`` sees the scores after each; raising
    :class:`StopEvaluation` ends it there with status ``pruned`` (metrics over the examples seen).
    With ``artifacts`` (the run folder's store), the fit phase restores the saved state of the same
    fit instead of fitting, or fits and saves it (:class:`FitPhase`).
    With ``on_epoch`` (used with ``on_step``), a rung that trains in epochs predicts the first part
    of the staged inference after each epoch, inside its fit phase, and ``on_epoch(epoch, step)``
    sees the scores; raising :class:`StopEvaluation` ends training there with status ``pruned``
    (:class:`_EpochWatch`; the fit is not saved as an artifact, it is not the config's fit).
    """
    split = getattr(data, plan.split)
    if split is None:
        raise ValueError(f"task {data.task.name} has no {plan.split} split")
    train_texts, train_labels = subsample(data.train, plan.train_limit, context.seed)
    texts, labels = subsample(split, plan.limit, context.seed)
    ident = task_identity(data)
    record = Record(
        key=evaluation_key(ident, spec, plan, context),
        fit_key=fit_key(ident, spec, plan, context),
        run_id=run_id,
        time=datetime.now(timezone.utc).isoformat(timespec="seconds"),
        task=data.task.name,
        task_file=str(data.task.path.resolve()),
        metric=data.task.metric,
        target={"min": data.task.target.min, "within": data.task.target.within},
        rung=spec.name,
        config=spec.config(),
        split=plan.split,
        limit=plan.limit,
        train_limit=plan.train_limit,
        n_train=len(train_texts),
        n_examples=len(texts),
        device=context.device,
        seed=context.seed,
        **measurement_settings(meter),
        energy_basis=meter.basis,
        idle_watts=sum(meter.idle_watts.values()) if meter.idle_watts else None,
        energy_resolution_s=meter.resolution_s,
        seconds={},
        joules={},
        joules_gross={},
        energy_parts={},
        energy_uncertainty={},
        below_resolution=[],
        energy_read_errors=[],
        infer_repeats=[],
        seconds_spent={},
        joules_spent={},
    )
    rung = build_rung(spec, context, meter)
    phase = "load"
    try:
        with charged(rung, record, "load"):
            measured(meter, record, "load", rung.load)
        phase = "fit"
        watch = None
        if on_epoch is not None and hasattr(rung, "on_epoch"):
            watch = _EpochWatch(on_epoch, texts, labels, data.labels, steps, context.seed)
            rung.on_epoch = watch
        FitPhase(rung, record, meter, artifacts, data, watch).run(train_texts, train_labels)
        phase = "infer"
        stop, repeats, scored = None, [], texts
        with charged(rung, record, "infer"):
            if watch is not None and watch.stop is not None:
                record.joules["infer"] = record.seconds["infer"] = 0.0  # pruned in fit: none run
                record.joules_gross["infer"] = 0.0
                stop, labels, predicted, scored = watch.stop, watch.labels, watch.predicted, watch.texts
            elif on_step is None:
                predicted = measured(meter, record, "infer", lambda: rung.predict(texts), rung, repeats)
            else:
                kept, predicted, stop = _staged_infer(meter, record, rung, texts, labels, data.labels, steps,
                                                      on_step, context.seed, repeats)
                labels, scored = [labels[i] for i in kept], [texts[i] for i in kept]
        _score(record, data, labels, predicted, context.seed)
        record.n_params = int(rung.n_params())
        record.facts = {**rung.facts(), **rung.example_facts(scored)}
        record.joules_per_query = record.joules["infer"] / max(len(labels), 1)
        record.joules_per_query_spent = record.joules_spent["infer"] / max(len(labels), 1)
        record.joules_per_query_gross = record.joules_gross["infer"] / max(len(labels), 1)
        if repeats:
            served = record.joules["infer"] - record.joules_spent.get("infer", record.joules["infer"])
            record.joules_per_query_repeats = energy_interval(repeats, len(labels), served)
        record.status = "ok"
        if stop is not None:
            record.status, record.n_examples = "pruned", len(labels)
            record.pruned = {"after": len(labels), "of": len(texts), "reason": str(stop)}
            if watch is not None and watch.stop is not None:
                record.pruned["epoch"] = watch.epoch
                record.joules_per_query = record.joules_per_query_spent = None  # no inference ran
                record.joules_per_query_gross = None
    except Exception as exc:  # noqa: BLE001 — any failure of a rung is recorded, the run goes on
        meter.discard(phase)  # not end(): a CUDA error would surface again at its synchronize
        message = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
        record.status, record.failed_phase = "failed", phase
        record.error = f"{exc.__class__.__name__}: {message}"[:500]
        log.debug("rung %s failed in %s:\n%s", spec.name, phase, traceback.format_exc())
    finally:
        ledger = rung.ledger
        held_a_model = bool(type(rung).models(spec))
        rung.close()
        del rung
        if held_a_model:
            # A loaded model's tensors can sit in reference cycles: free them before the next config
            # loads its own. Then freeze what survives (the libraries the model imported, ~460k
            # objects with torch and transformers): later collections skip it, 30 ms instead of 0.5 s
            # of CPU per model config, measured here. Frozen objects are still freed by reference
            # counting; only a cycle among them would outlive the process's need for it.
            gc.collect()
            gc.freeze()
        restore_threads()
    record.joules_total = sum(record.joules.values())
    record.seconds_total = sum(record.seconds.values())
    record.joules_total_spent = sum(record.joules_spent.values())
    record.seconds_total_spent = sum(record.seconds_spent.values())
    record.cache = {"hits": ledger.hits, "misses": ledger.misses, "charged_joules": ledger.charged_joules,
                    "encode_joules_spent": ledger.encode_joules}
    return record


def _staged_infer(meter: Meter, record: Record, rung, texts: Sequence[str], labels: Sequence[str],
                  names: Sequence[str], steps: Sequence[float], on_step: Callable[[Step], None],
                  seed: int, repeats: list[Windows]) -> tuple[list[int], list[str], StopEvaluation | None]:
    """Predict nested seeded subsets of growing size (each text once); ``on_step`` may stop early.

    Returns the indices evaluated (in split order), their predictions, and the stop, if any.
    """
    n = len(texts)
    order, sizes = _stages(n, steps, seed)
    index = {name: i for i, name in enumerate(names)}
    y_true = np.array([index[label] for label in labels], dtype=np.int64)
    y_pred = np.full(n, -1, dtype=np.int64)
    predicted: list[str] = [""] * n
    done = 0
    for i, size in enumerate(sizes):
        chunk = order[done:size]
        out = measured(meter, record, "infer", lambda: rung.predict([texts[j] for j in chunk]), rung, repeats)
        for j, p in zip(chunk, out):
            predicted[j] = p
            y_pred[j] = index.get(p, -1)
        if (y_pred[chunk] < 0).any():
            raise ValueError("rung predicted a label that is not in the train split")
        done = size
        seen = np.sort(order[:size])
        try:
            on_step(Step(i, size, n, y_true[seen], y_pred[seen], len(names)))
        except StopEvaluation as stop:
            return seen.tolist(), [predicted[j] for j in seen], stop
    return list(range(n)), predicted, None


def _stages(n: int, steps: Sequence[float], seed: int) -> tuple[np.ndarray, list[int]]:
    """The seeded order of a split's ``n`` examples and the growing sizes a staged inference scores."""
    order = np.random.default_rng(seed).permutation(n)
    return order, sorted({min(n, max(1, math.ceil(f * n))) for f in steps if f > 0} | {n})


class _EpochWatch:
    """The ``on_epoch`` hook a trained rung calls after each epoch: predict the first part of the
    staged inference (the same seeded examples, so the check and the first stage agree), pass the
    scores on, and, when the callback raises :class:`StopEvaluation`, end training
    (:class:`~rightsize.training.StopTraining`) and keep what the record of a pruned fit needs."""

    def __init__(self, on_epoch: Callable[[int, Step], None], texts: Sequence[str], labels: Sequence[str],
                 names: Sequence[str], steps: Sequence[float], seed: int):
        order, sizes = _stages(len(texts), steps, seed)
        self.part = np.sort(order[:sizes[0]])
        self.texts = [texts[j] for j in self.part]
        self.labels = [labels[j] for j in self.part]
        self.index = {name: i for i, name in enumerate(names)}
        self.on_epoch, self.total, self.n_classes = on_epoch, len(texts), len(names)
        self.stop: StopEvaluation | None = None
        self.epoch: int | None = None
        self.predicted: list[str] = []

    def __call__(self, epoch: int, predict: Callable[[Sequence[str]], list[str]]) -> None:
        from rightsize.training import StopTraining

        predicted = predict(self.texts)
        y_true = np.array([self.index[label] for label in self.labels], dtype=np.int64)
        y_pred = np.array([self.index.get(p, -1) for p in predicted], dtype=np.int64)
        try:
            self.on_epoch(epoch, Step(0, len(self.part), self.total, y_true, y_pred, self.n_classes))
        except StopEvaluation as stop:
            self.stop, self.epoch, self.predicted = stop, epoch, predicted
            raise StopTraining(f"pruned after epoch {epoch}: {stop}") from stop


def _score(record: Record, data: TaskData, labels: Sequence[str], predicted: Sequence[str], seed: int) -> None:
    names = list(data.labels)
    index = {name: i for i, name in enumerate(names)}
    y_true = np.array([index[label] for label in labels], dtype=np.int64)
    y_pred = np.array([index.get(p, -1) for p in predicted], dtype=np.int64)
    if (y_pred < 0).any():
        raise ValueError("rung predicted a label that is not in the train split")
    n_classes = len(names)
    out_metrics, ci = {}, {}
    for metric in M.METRICS:
        out_metrics[metric] = M.score(metric, y_true, y_pred, n_classes)
        ci[metric] = list(M.confidence_interval(metric, y_true, y_pred, n_classes, seed=seed))
    record.metrics, record.ci, record.label_names = out_metrics, ci, names
    # Per-example labels make paired comparisons and intervals possible from runs.jsonl alone.
    record.references, record.predictions = y_true.tolist(), y_pred.tolist()


def new_run_id() -> str:
    return datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%SZ") + f"-{int(time.time_ns() % 1_000_000):06d}"
