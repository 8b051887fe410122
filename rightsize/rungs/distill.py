"""A student trained on a teacher rung's predicted labels (distillation by pseudo-labels).

```yaml
rungs:
  - {name: mpnet-probe, kind: probe, model: sentence-transformers/all-mpnet-base-v2}
  - name: tfidf-from-mpnet
    kind: distill
    teacher: mpnet-probe           # a rung of this ladder, by name
    student: tfidf                 # a kind, or a mapping: {kind: probe, model: ..., C: 1.0}
    transfer: unlabelled.jsonl     # optional: unlabelled texts (JSONL, CSV or lines), relative to the ladder
```

The ladder links the teacher (:meth:`DistillRung.link`): the student's config holds the teacher's
full config, the transfer file's absolute path and the sha256 of its texts, so changing any of them
changes the student's evaluation key (and its artifact's). Transfer texts that are validation or
test texts are checked as overlapping splits are (:meth:`DistillRung.check_task`). The fit phase
holds all it takes to make the student: the teacher loaded and fit on the gold train labels, its
predictions on the train and transfer texts (where the embedding cache serves the teacher, the
stored cost is charged to this fit: a cache makes the tool cheaper, never a config look cheaper),
and the student fit on the predicted labels. Load, inference, the saved state
and the parameter count are the student's alone: the teacher is not deployed.

The student's mapping is its whole config: the ladder's ``defaults`` apply to the distill rung's own
knobs, not inside it. Predicted labels, not probabilities: a student learns through the one ``fit(texts, labels)`` every
kind has; soft targets would need a second fit in every student kind. A student cannot teach: one
teacher level keeps each student's config and cost self-contained (name the student's own teacher).
"""

from __future__ import annotations

import gc
import hashlib
import itertools
import json
import logging
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any, Mapping, Sequence

from rightsize.errors import RightsizeError
from rightsize.rungs import build_rung, register, rung_class
from rightsize.rungs.base import Knob, Rung, RungSpec
from rightsize.threads import restore_threads, set_threads

if TYPE_CHECKING:
    from rightsize.tasks import TaskData

log = logging.getLogger(__name__)
_windows = itertools.count()
_NOT_CONFIG = ("name", "optional")  # rung-file keys that say nothing about the work


@dataclass(frozen=True)
class RungConfigKnob(Knob):
    """A knob whose value is another rung's config: a kind's name, or a mapping of ``kind``,
    ``model`` and that kind's knobs, checked as a ladder rung is and kept as its full config.
    A teacher may also be a rung's name, which the ladder replaces with that rung's config."""

    role: str = ""

    def validate(self, name: str, value: Any, where: str) -> Any:
        if value is None:
            return None
        if isinstance(value, str) and self.role == "teacher":
            return value  # a rung's name: linked to the rung's config by DistillRung.link
        return config_spec(value, f"{where}: {self.role}", self.role).config()


def config_spec(value: Any, where: str, role: str) -> RungSpec:
    """The RungSpec of a student or teacher config (a kind's name, or a mapping); one-line errors."""
    from rightsize.ladder import NAME_RE, parse_rung  # the ladder imports the rung kinds: import on use

    if isinstance(value, str):
        value = {"kind": value}
    if not isinstance(value, Mapping):
        raise RightsizeError(f"{where}: must be a kind or a mapping of kind, model and knobs, got {value!r}")
    refused = [key for key in _NOT_CONFIG if key in value]
    if refused:
        raise RightsizeError(f"{where}: {refused[0]!r} has no place in a {role}'s config")
    kind = value.get("kind")
    named = kind if isinstance(kind, str) and NAME_RE.match(kind) else role  # errors read "student (tfidf): ..."
    spec = parse_rung({"name": named, **value}, {}, where)
    if issubclass(rung_class(spec.kind), DistillRung):
        raise RightsizeError(f"{where}: kind 'distill' cannot be a {role}: one teacher level, no students of students")
    return spec


def _spec(config: Mapping[str, Any], role: str) -> RungSpec:
    """A linked config (already checked) back into a spec."""
    knobs = {k: v for k, v in config.items() if k not in ("kind", "model")}
    return RungSpec(role, config["kind"], config.get("model"), knobs)


@register
class DistillRung(Rung):
    kind = "distill"
    trained = True
    knobs = {
        "teacher": RungConfigKnob(dict, None, nullable=True, role="teacher",
                                  help="the rung whose predictions the student learns (a rung of this ladder)"),
        "student": RungConfigKnob(dict, None, nullable=True, role="student",
                                  help="the student: a kind (tfidf) or {kind, model, knobs...}"),
        "transfer": Knob(str, None, nullable=True,
                         help="unlabelled texts the teacher labels too (JSONL, CSV or one per line), "
                              "relative to the ladder"),
        "transfer_field": Knob(str, "text", help="the transfer file's text field (JSONL) or column (CSV)"),
        "transfer_sha256": Knob(str, None, nullable=True,
                                help="set when the ladder is read: the sha256 of the transfer texts, so that "
                                     "other texts under the same path are another config"),
    }

    @classmethod
    def link(cls, spec: RungSpec, rungs: Mapping[str, RungSpec], folder: Path, where: str) -> RungSpec:
        """The teacher's name becomes its config; the transfer file is found and read (checked)."""
        from rightsize.tasks import expand_path, read_texts

        knobs = dict(spec.knobs)
        for role in ("teacher", "student"):
            if knobs.get(role) is None:
                raise RightsizeError(f"{where}: kind 'distill' needs a '{role}'")
        teacher = knobs["teacher"]
        if isinstance(teacher, str):
            if teacher == spec.name:
                raise RightsizeError(f"{where}: teacher {teacher!r} is this rung itself")
            if teacher not in rungs:
                raise RightsizeError(f"{where}: teacher {teacher!r} is not a rung of this ladder "
                                     f"(rungs: {', '.join(rungs)})")
            if rungs[teacher].kind == cls.kind:
                if rungs[teacher].knobs.get("teacher") == spec.name:
                    raise RightsizeError(f"{where}: teacher {teacher!r} is itself a student of {spec.name!r}")
                raise RightsizeError(f"{where}: teacher {teacher!r} is a student itself (kind 'distill'), and a "
                                     f"student cannot teach: name its own teacher")
            knobs["teacher"] = cls.knobs["teacher"].validate("teacher", rungs[teacher].config(), where)
        if knobs.get("transfer") is not None:
            path = expand_path(knobs["transfer"], folder, f"{where}: transfer")
            try:
                texts = read_texts(path, knobs.get("transfer_field", cls.knobs["transfer_field"].default))
            except RightsizeError as exc:
                raise RightsizeError(f"{where}: transfer: {exc}") from None
            knobs["transfer"] = str(path)
            knobs["transfer_sha256"] = hashlib.sha256(json.dumps(texts, ensure_ascii=False).encode()).hexdigest()
        return RungSpec(spec.name, spec.kind, spec.model, knobs, spec.optional)

    @classmethod
    def check_task(cls, spec: RungSpec, data: TaskData, allow_overlap: bool) -> None:
        """The transfer texts against validation and test, as the task's own splits are checked
        (:func:`rightsize.tasks.overlaps`): a student taught the teacher's labels of the texts it is
        scored on would look better than it is. A RightsizeError when the transfer file holds a
        held-out split or most of it (unless ``allow_overlap``), a logged warning for any shared text."""
        from rightsize.tasks import Split, overlaps, read_texts

        if spec.knobs.get("transfer") is None:
            return
        texts = read_texts(Path(spec.knobs["transfer"]), spec.knobs.get("transfer_field", "text"))
        transfer = Split("transfer", texts, [""] * len(texts), "file")
        found = [p for p in overlaps(replace(data, train=transfer)).pairs if "transfer" in p.splits]
        for pair in found:
            small = pair.smaller
            shared = (f"rung {spec.name!r}: transfer {spec.knobs['transfer']} shares {pair.texts} text(s) with "
                      f"{pair.splits[1]} ({pair.examples[small]} of {pair.splits[small]}'s {pair.sizes[small]} "
                      f"examples, {pair.fraction:.0%}), e.g. {pair.samples[0]!r}")
            if pair.blocking and not allow_overlap:
                raise RightsizeError(f"{shared}; the student would learn its teacher's labels of the texts it is "
                                     f"scored on: leave them out of the transfer file, or pass --allow-overlap "
                                     f"to run anyway")
            log.warning("%s (the student learns its teacher's labels of these)", shared)

    @classmethod
    def models(cls, spec: RungSpec) -> list[str]:
        models = []
        for role in ("teacher", "student"):
            config = spec.knobs.get(role)
            if isinstance(config, Mapping):
                part = _spec(config, role)
                models += rung_class(part.kind).models(part)
        return list(dict.fromkeys(models))

    @classmethod
    def inference_spec(cls, spec: RungSpec) -> RungSpec | None:
        student = spec.knobs.get("student")
        if not isinstance(student, Mapping):
            return None
        part = _spec(student, "student")
        return rung_class(part.kind).inference_spec(part)

    def _part(self, role: str) -> Rung:
        """The teacher or student rung, sharing this rung's run, meter and cache ledger."""
        config = self.k[role]
        if not isinstance(config, Mapping):
            raise RightsizeError(f"rung {self.spec.name!r}: its {role} {config!r} was not linked to a ladder")
        rung = build_rung(_spec(config, role), self.context, self.meter)
        rung.ledger = self.ledger  # cache hits of either are charged to this config's phases
        return rung

    def load(self) -> None:
        self.student = self._part("student")
        self.student.load()
        self.taught: dict[str, Any] = {}

    def fit(self, texts: Sequence[str], labels: Sequence[str]) -> None:
        from rightsize.tasks import read_texts

        transfer = read_texts(Path(self.k["transfer"]), self.k["transfer_field"]) if self.k["transfer"] else []
        taught = list(texts) + transfer
        predicted, teacher_share = self._teach(texts, labels, taught)
        set_threads(self.student.k.get("threads"))  # the teacher's were undone: the student's again
        self.student.fit(taught, predicted)
        agree = sum(p == gold for p, gold in zip(predicted, labels)) / max(len(labels), 1)
        self.taught = {"train_examples": len(taught), "transfer_examples": len(transfer),
                       "teacher": {**teacher_share, "train_agreement": agree}, **self.student.training()}

    def _teach(self, texts: Sequence[str], labels: Sequence[str],
               taught: list[str]) -> tuple[list[str], dict[str, Any]]:
        """The teacher fit on the gold labels and its labels for ``taught``, with what that cost."""
        teacher = self._part("teacher")
        window = f"distill-teacher-{next(_windows)}"
        before = self.ledger.snapshot()
        if self.meter is not None:
            self.meter.begin(window)
        restore_threads()  # the teacher runs with its own threads, not the student's
        try:
            teacher.load()
            teacher.fit(texts, labels)
            predicted = teacher.predict(taught)
            trained = teacher.training()
        finally:
            teacher.close()
            del teacher
            gc.collect()  # a model's tensors can sit in reference cycles: free them before the student fits
            restore_threads()
            measured = self.meter.end(window) if self.meter is not None else None
        served = self.ledger.since(before)
        share: dict[str, Any] = {"texts_labelled": len(taught), "cache_hits": served.hits,
                                 "charged_joules": served.charged_joules}
        if measured is not None:
            share.update(joules=measured.joules + served.charged_joules, joules_spent=measured.joules,
                         seconds=measured.seconds + served.charged_seconds, seconds_spent=measured.seconds)
        if trained:
            share["training"] = trained
        log.info("teacher labelled %d texts for the student", len(taught))
        return predicted, share

    def predict(self, texts: Sequence[str]) -> list[str]:
        return self.student.predict(texts)

    def predict_proba(self, texts: Sequence[str]):
        return self.student.predict_proba(texts)

    def n_params(self) -> int:
        return self.student.n_params()

    def facts(self) -> dict:
        return {**self.student.facts(), "student": self.k["student"]["kind"], "teacher": self.k["teacher"]["kind"]}

    def save(self, folder: Path) -> None:
        self.student.save(folder)

    def restore(self, folder: Path) -> None:
        self.student.restore(folder)

    def training(self) -> dict[str, Any]:
        return self.taught

    def close(self) -> None:
        if getattr(self, "student", None) is not None:
            self.student.close()
