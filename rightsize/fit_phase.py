"""The fit phase of an evaluation with the run folder's artifacts: restore a saved fit of the same
configuration, or fit and save it, or fit again where a recorded artifact is gone or corrupt."""

from __future__ import annotations

import logging
from datetime import datetime, timezone
from typing import Any, Sequence

from rightsize.artifacts import Artifact, ArtifactStore, CorruptArtifact
from rightsize.energy import Meter
from rightsize.phase_energy import charged, measured
from rightsize.records import Record
from rightsize.tasks import TaskData

log = logging.getLogger(__name__)


class FitPhase:
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
                 watch=None):  # evaluate._EpochWatch: its stop means the fit is not the config's
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
        with charged(self.rung, self.record, "fit"):
            measured(self.meter, self.record, "fit", lambda: self.rung.fit(train_texts, train_labels))
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
            with charged(self.rung, self.record, "fit"):
                measured(self.meter, self.record, "fit", lambda: self.rung.restore(artifact.state))
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
        from rightsize.evaluate import subsample  # evaluate imports this module

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
