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
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any, Callable, Iterator, Sequence

import numpy as np

from rightsize import metrics as M
from rightsize.artifacts import Artifact, ArtifactStore, CorruptArtifact
from rightsize.energy import Meter
from rightsize.energy.estimate import is_estimate
from rightsize.records import Record
from rightsize.rungs import RunContext, RungSpec, build_rung
from rightsize.tasks import Split, TaskData
from rightsize.threads import restore_threads

log = logging.getLogger(__name__)

PHASES = ("load", "fit", "infer")
MAX_INFER_PASSES = 1000  # a pass that takes no measurable time would otherwise repeat forever
ENERGY_REPEATS = 5  # inference windows measured with the CPU-time estimate (J/query gets an interval)
ENERGY_CV_TARGET = 0.05  # the J/query coefficient of variation across repeats a record aims for
T_975 = {1: 12.71, 2: 4.303, 3: 3.182, 4: 2.776, 5: 2.571, 6: 2.447, 7: 2.365, 8: 2.306, 9: 2.262}


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
    fit instead of fitting, or fits and saves it (:class:`_FitPhase`).
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
        with _charged(rung, record, "load"):
            _measured(meter, record, "load", rung.load)
        phase = "fit"
        watch = None
        if on_epoch is not None and hasattr(rung, "on_epoch"):
            watch = _EpochWatch(on_epoch, texts, labels, data.labels, steps, context.seed)
            rung.on_epoch = watch
        _FitPhase(rung, record, meter, artifacts, data, watch).run(train_texts, train_labels)
        phase = "infer"
        stop, repeats, scored = None, [], texts
        with _charged(rung, record, "infer"):
            if watch is not None and watch.stop is not None:
                record.joules["infer"] = record.seconds["infer"] = 0.0  # pruned in fit: none run
                record.joules_gross["infer"] = 0.0
                stop, labels, predicted, scored = watch.stop, watch.labels, watch.predicted, watch.texts
            elif on_step is None:
                predicted = _measured(meter, record, "infer", lambda: rung.predict(texts), rung, repeats)
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
            record.joules_per_query_repeats = energy_interval(repeats, len(labels))
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


class _FitPhase:
    """The fit phase with the run folder's artifacts.

    * A verified artifact of the same fit: ``restore`` instead of ``fit``; the phase is charged the
      recorded fit cost (``joules``/``seconds``) and what the restore took is ``*_spent`` — as with
      the embedding cache, a saved fit makes the tool cheaper, never a config look cheaper.
    * No artifact: ``fit``, then ``save`` (outside the measured phases; a kind that cannot save has none).
    * An artifact that a record names but that is gone (a run folder from another machine), or a
      corrupt one (deleted, logged): fit again with the same seed, save, and predict the recorded
      validation examples again: the record says whether the new fit reproduced them.
    """

    def __init__(self, rung, record: Record, meter: Meter, store: ArtifactStore | None, data: TaskData,
                 watch: _EpochWatch | None = None):
        self.rung, self.record, self.meter, self.store, self.data = rung, record, meter, store, data
        self.key = record.fit_key
        self.watch = watch

    def run(self, train_texts: Sequence[str], train_labels: Sequence[str]) -> None:
        problem = None
        if self.store is not None:
            artifact, problem = self._find()
            if artifact is not None:
                problem = self._restore(artifact)
                if problem is None:
                    return
        with _charged(self.rung, self.record, "fit"):
            _measured(self.meter, self.record, "fit", lambda: self.rung.fit(train_texts, train_labels))
        training = self.rung.training()
        if training:
            self.record.training = training
        if self.store is not None and (self.watch is None or self.watch.stop is None):
            self._save(training)
            if problem is not None and isinstance(self.record.artifact, dict):
                self.record.artifact["refit"] = problem
                self.record.artifact["check"] = self._check()

    def _find(self):
        """``(verified artifact or None, why an artifact the run expected cannot be used)``."""
        recorded = self.store.recorded(self.key)
        try:
            artifact = self.store.find(self.key, recorded.artifact["sha256"] if recorded else None)
        except CorruptArtifact as exc:
            return None, self._discard(str(exc))
        if artifact is None and recorded is not None:
            log.warning("the artifact of %s (%s) that %s recorded is missing: fitting it again with seed %s",
                        self.record.rung, recorded.artifact.get("path"), recorded.run_id or "a run",
                        self.record.seed)
            return None, "missing"
        return artifact, None

    def _discard(self, why: str) -> str:
        self.store.delete(self.key)
        log.warning("the artifact of %s in %s is corrupt (%s): deleted; fitting it again", self.record.rung,
                    self.store.folder(self.key), why)
        return f"corrupt: {why}"

    def _restore(self, artifact: Artifact) -> str | None:
        """Restore ``artifact``; on failure, the reason (the artifact is deleted and the phase left unmeasured)."""
        try:
            with _charged(self.rung, self.record, "fit"):
                _measured(self.meter, self.record, "fit", lambda: self.rung.restore(artifact.state))
        except Exception as exc:  # noqa: BLE001 — an artifact that passed its checksums yet cannot be read
            try:
                self.meter.end("fit")
            except ValueError:
                pass
            self.record.forget_phase("fit")
            return self._discard(f"restore failed: {exc.__class__.__name__}: {str(exc).strip()[:200]}")
        fit = artifact.manifest.get("fit") or {}
        for per_phase, value in ((self.record.joules, fit.get("joules")), (self.record.seconds, fit.get("seconds"))):
            if isinstance(value, (int, float)):
                per_phase["fit"] = float(value)
        self.record.artifact = {**artifact.reference(self.store.run_dir), "restored": True, "fit": fit}
        if artifact.manifest.get("training"):
            self.record.training = artifact.manifest["training"]
        return None

    def _save(self, training: dict[str, Any]) -> None:
        r = self.record
        about = {"fit_key": self.key, "task": r.task, "rung": r.rung, "config": r.config,
                 "train_limit": r.train_limit, "n_train": r.n_train, "seed": r.seed, "device": r.device,
                 "label_names": list(self.data.labels), "run_id": r.run_id,
                 "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
                 "fit": {"joules": r.joules["fit"], "seconds": r.seconds["fit"],
                         "joules_spent": r.joules_spent["fit"], "seconds_spent": r.seconds_spent["fit"],
                         "energy_source": self.meter.source},
                 "training": training}
        try:
            artifact = self.store.save(self.key, self.rung.save, about)
        except NotImplementedError:
            return  # this kind keeps nothing worth saving
        except Exception as exc:  # noqa: BLE001 — an unwritable artifact costs a refit later, not the record
            log.warning("could not save the artifact of %s: %s", r.rung, exc)
            r.artifact = {"path": None, "sha256": None, "error": f"{exc.__class__.__name__}: {exc}"[:300]}
            return
        r.artifact = artifact.reference(self.store.run_dir)

    def _check(self) -> dict[str, Any]:
        """Predict the recorded validation examples again and count the predictions that differ."""
        prior = self.store.recorded_validation(self.key)
        if prior is None or not prior.predictions:
            return {"note": "no recorded validation predictions of this fit to check against"}
        texts, _ = subsample(self.data.validation, prior.limit, self.record.seed)
        names = list(prior.label_names or [])
        recorded = [names[i] if 0 <= i < len(names) else None for i in prior.predictions]
        if len(recorded) != len(texts):
            return {"against": prior.key, "note": f"the validation split has changed ({len(texts)} examples, "
                                                     f"{len(recorded)} recorded): not checked"}
        self.meter.begin("check")
        try:
            predicted = self.rung.predict(texts)
        finally:
            m = self.meter.end("check")
        differing = sum(a != b for a, b in zip(predicted, recorded))
        check = {"against": prior.key, "examples": len(texts), "differing": differing, "joules": m.joules,
                 "seconds": m.seconds}
        if differing:
            check["note"] = (f"{differing} of {len(texts)} validation predictions differ from the recorded ones: "
                             "the new fit did not reproduce the recorded one")
            log.warning("%s fitted again: %s", self.record.rung, check["note"])
        return check


@contextmanager
def _charged(rung, record: Record, phase: str) -> Iterator[None]:
    """Energy accounting rule: a phase's ``joules``/``seconds`` are what the configuration costs,
    the measured spend plus the stored cost of work a cache served; ``*_spent`` is the spend alone.
    Comparisons and the search read ``joules``, so a cache never makes a configuration look cheaper.
    """
    before = rung.ledger.snapshot()
    try:
        yield
    finally:
        if phase in record.joules:  # a phase that failed inside its window recorded nothing
            served = rung.ledger.since(before)
            record.joules_spent[phase] = record.joules[phase]
            record.seconds_spent[phase] = record.seconds[phase]
            record.joules[phase] += served.charged_joules
            record.seconds[phase] += served.charged_seconds
            # Stored costs are net of idle: gross adds the idle draw over their stored time.
            idle = record.idle_watts or 0.0
            record.joules_gross[phase] += served.charged_joules + idle * served.charged_seconds


def _measured(meter: Meter, record: Record, phase: str, work, rung=None, repeats: list[float] | None = None):
    """Measure ``work`` in window ``phase`` and add it to the record.

    Given the ``rung`` (inference), a first pass shorter than the meter can resolve is repeated
    inside the window until it is long enough, and the measurement divided by the passes: only when
    the rung's predict does the same work every time and the first pass stored nothing in the
    embedding cache (else the next passes would be cache hits, cheaper than the first). Measured
    with the CPU-time estimate, such an inference is measured ENERGY_REPEATS times in all, and
    ``repeats`` becomes the joules per pass of each window.
    """
    before = rung.ledger.snapshot() if rung is not None else None
    meter.begin(phase)
    result = work()
    passes = 1
    if rung is not None and type(rung).repeatable_predict and rung.ledger.stored == before.stored:
        passes = _until_resolved(meter, phase, work, rung, before)
    m = meter.end(phase).per_pass(passes)
    if rung is not None and type(rung).repeatable_predict and rung.ledger.stored == before.stored:
        extra = 0
        if is_estimate(meter.source) and repeats is not None:
            # The CPU-time estimate varies run to run (scheduling, caches, other load): the inference
            # is measured ENERGY_REPEATS times in all, so J/query has an interval (docs/energy.md).
            repeats[:] = [m.net_joules]
            for _ in range(ENERGY_REPEATS - 1):
                joules, more = _one_window(meter, work, rung, before)
                repeats.append(joules)
                extra += more
        rung.ledger.keep_one_pass(before, passes + extra)
    # A staged inference measures its phase in several windows: they add up.
    for per_phase, value in ((record.seconds, m.seconds), (record.joules, m.net_joules),
                             (record.joules_gross, m.joules), (record.energy_uncertainty, m.uncertainty)):
        per_phase[phase] = per_phase.get(phase, 0.0) + value
    for flagged, on in ((record.below_resolution, m.below_resolution), (record.energy_read_errors, m.read_errors)):
        if on and phase not in flagged:
            flagged.append(phase)
    if rung is not None:
        record.infer_repeats.append(passes)
    parts = record.energy_parts.setdefault(phase, {})
    for part, joules in m.net_parts.items():
        parts[part] = parts.get(part, 0.0) + joules
    return result


def _until_resolved(meter: Meter, window: str, work, rung, before) -> int:
    """Repeat ``work`` (run once already) in the open ``window`` until the meter can resolve it; the passes."""
    passes = 1
    while (meter.elapsed(window) < meter.min_window_s and passes < MAX_INFER_PASSES
           and rung.ledger.stored == before.stored):
        work()
        passes += 1
    return passes


def _one_window(meter: Meter, work, rung, before) -> tuple[float, int]:
    """One more measurement of a repeatable inference: (net joules per pass, passes run)."""
    meter.begin("infer-repeat")
    try:
        work()
        passes = _until_resolved(meter, "infer-repeat", work, rung, before)
    except BaseException:
        meter.discard("infer-repeat")
        raise
    return meter.end("infer-repeat").per_pass(passes).net_joules, passes


def energy_interval(joules_per_pass: Sequence[float], n_queries: int) -> dict[str, Any]:
    """J/query's mean, 95% interval (t over the repeats) and coefficient of variation across repeats,
    and whether the CV meets ENERGY_CV_TARGET."""
    per_query = np.asarray(joules_per_pass, dtype=float) / max(n_queries, 1)
    mean = float(per_query.mean())
    sd = float(per_query.std(ddof=1)) if len(per_query) > 1 else 0.0
    half = T_975.get(len(per_query) - 1, 1.96) * sd / math.sqrt(len(per_query))
    cv = sd / mean if mean > 0 else None
    return {"repeats": len(per_query), "mean": mean, "interval": [max(mean - half, 0.0), mean + half], "cv": cv,
            "cv_target": ENERGY_CV_TARGET, "cv_met": cv is not None and cv <= ENERGY_CV_TARGET}


def _staged_infer(meter: Meter, record: Record, rung, texts: Sequence[str], labels: Sequence[str],
                  names: Sequence[str], steps: Sequence[float], on_step: Callable[[Step], None],
                  seed: int, repeats: list[float]) -> tuple[list[int], list[str], StopEvaluation | None]:
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
        out = _measured(meter, record, "infer", lambda: rung.predict([texts[j] for j in chunk]), rung, repeats)
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
