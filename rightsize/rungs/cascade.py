"""A cascade: each query goes up the stages only as far as it needs to.

```yaml
rungs:
  - {name: tfidf, kind: tfidf}
  - {name: minilm-probe, kind: probe, model: sentence-transformers/all-MiniLM-L6-v2}
  - name: tfidf-then-minilm
    kind: cascade
    stages: [tfidf, minilm-probe]   # rungs of this ladder, by name, cheapest first
    threshold: 0.9                  # searched; or thresholds: [0.9] (one per stage but the last)
```

Each stage answers the queries it is confident about (its calibrated largest class probability at
or above the stage's threshold) and passes the rest on; the last stage answers everything left. The
ladder links the stages (:meth:`CascadeRung.link`): the config holds each stage's full config, so
changing a stage changes the cascade's evaluation key.

Fit: a seeded slice of the train split (``calibration_fraction``) is held out; every stage fits on
the rest and its temperature (:mod:`rightsize.calibration`) is fit on its probabilities for the
slice. All of it is the fit phase. Inference is measured as it happens: stage 1 runs on every query,
each later stage only on the queries deferred to it, so the infer phase's joules are what the
routing cost. The record's facts carry the share of queries each stage answered.

The search tunes ``threshold`` (one value for every stage); a ``thresholds`` list sets each stage's
own and is then kept as written. A stage must give class probabilities (not ``lm``) and cannot be a
cascade itself.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np

from rightsize.calibration import calibration_slice, fit_temperature, scale
from rightsize.errors import RightsizeError
from rightsize.rungs import build_rung, register, rung_class
from rightsize.rungs.base import Knob, Rung, RungSpec
from rightsize.rungs.state import read_json, write_json


def _spec(config: Mapping[str, Any], index: int) -> RungSpec:
    """A linked stage config back into a spec."""
    knobs = {k: v for k, v in config.items() if k not in ("kind", "model")}
    return RungSpec(f"stage-{index + 1}", config["kind"], config.get("model"), knobs)


def _threshold(value: Any, where: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0.0 <= value <= 1.0:
        raise RightsizeError(f"{where}: threshold {value!r} is not a number in [0, 1]")
    return float(value)


@register
class CascadeRung(Rung):
    kind = "cascade"
    knobs = {
        "stages": Knob(list, None, nullable=True, help="rungs of this ladder by name, cheapest first (2 or more)"),
        "threshold": Knob(float, 0.9, min=0.0, max=1.0, only_if=("thresholds", None),
                          help="a query is passed on while its stage's calibrated confidence is below this"),
        "thresholds": Knob(list, None, nullable=True, help="one threshold per stage but the last (instead of threshold)"),
        "calibration_fraction": Knob(float, 0.2, min=0.05, max=0.5,
                                     help="share of each train class held out to calibrate the stages"),
    }

    @classmethod
    def link(cls, spec: RungSpec, rungs: Mapping[str, RungSpec], folder: Path, where: str) -> RungSpec:
        """Each stage's name becomes its config; the stages and thresholds are checked."""
        knobs = dict(spec.knobs)
        stages = knobs.get("stages")
        if not isinstance(stages, list) or len(stages) < 2:
            raise RightsizeError(f"{where}: kind 'cascade' needs 'stages': a list of 2 or more rungs of this ladder")
        configs = []
        for stage in stages:
            if isinstance(stage, Mapping):  # already linked (a config from a record or a search)
                configs.append(dict(stage))
                continue
            if not isinstance(stage, str):
                raise RightsizeError(f"{where}: stage {stage!r} is not a rung's name")
            if stage == spec.name:
                raise RightsizeError(f"{where}: stage {stage!r} is this cascade itself")
            if stage not in rungs:
                raise RightsizeError(f"{where}: stage {stage!r} is not a rung of this ladder "
                                     f"(rungs: {', '.join(rungs)})")
            kind = rungs[stage].kind
            if issubclass(rung_class(kind), CascadeRung):
                raise RightsizeError(f"{where}: stage {stage!r} is a cascade itself: name its stages instead")
            if not rung_class(kind).gives_probabilities():
                raise RightsizeError(f"{where}: stage {stage!r} (kind {kind!r}) gives no class probabilities "
                                     f"to read a confidence from")
            configs.append(rungs[stage].config())
        knobs["stages"] = configs
        thresholds = knobs.get("thresholds")
        if thresholds is not None:
            if not isinstance(thresholds, list) or len(thresholds) != len(configs) - 1:
                raise RightsizeError(f"{where}: 'thresholds' must list {len(configs) - 1} number(s), one per "
                                     f"stage but the last, got {thresholds!r}")
            knobs["thresholds"] = [_threshold(t, where) for t in thresholds]
        return RungSpec(spec.name, spec.kind, spec.model, knobs, spec.optional)

    @classmethod
    def _stage_specs(cls, spec: RungSpec) -> list[RungSpec]:
        stages = spec.knobs.get("stages") or []
        return [_spec(c, i) for i, c in enumerate(stages) if isinstance(c, Mapping)]

    @classmethod
    def models(cls, spec: RungSpec) -> list[str]:
        return list(dict.fromkeys(m for s in cls._stage_specs(spec) for m in rung_class(s.kind).models(s)))

    @classmethod
    def preflight(cls, spec: RungSpec) -> None:
        for stage in cls._stage_specs(spec):
            rung_class(stage.kind).preflight(stage)

    @classmethod
    def inference_spec(cls, spec: RungSpec) -> RungSpec | None:
        """The first stage's: every query pays it, so it bounds the cascade's cost from below."""
        stages = cls._stage_specs(spec)
        return rung_class(stages[0].kind).inference_spec(stages[0]) if stages else None

    def thresholds(self) -> list[float]:
        n = len(self.stages) - 1
        return list(self.k["thresholds"]) if self.k["thresholds"] is not None else [self.k["threshold"]] * n

    def load(self) -> None:
        specs = self._stage_specs(self.spec)
        if len(specs) < 2:
            raise RightsizeError(f"rung {self.spec.name!r}: its stages were not linked to a ladder")
        self.stages = [build_rung(s, self.context, self.meter) for s in specs]
        for stage in self.stages:
            stage.ledger = self.ledger  # cache hits of any stage are charged to this config's phases
            stage.load()
        self.temperatures = [1.0] * len(self.stages)
        self.answered = [0] * len(self.stages)

    def fit(self, texts: Sequence[str], labels: Sequence[str]) -> None:
        held = calibration_slice(labels, self.k["calibration_fraction"], self.context.seed)
        fit_texts = [t for t, h in zip(texts, held) if not h]
        fit_labels = [y for y, h in zip(labels, held) if not h]
        slice_texts = [t for t, h in zip(texts, held) if h]
        slice_labels = [y for y, h in zip(labels, held) if h]
        for i, stage in enumerate(self.stages):
            stage.fit(fit_texts, fit_labels)
            if i < len(self.stages) - 1 and slice_texts:  # the last stage's confidence is never read
                classes, probs = stage.predict_proba(slice_texts)
                self.temperatures[i] = fit_temperature(probs, classes, slice_labels)
        self.calibration_examples = len(slice_texts)
        self.answered = [0] * len(self.stages)

    def _calibrated(self, i: int, texts: Sequence[str]) -> tuple[list[str], np.ndarray]:
        """Stage ``i``'s classes and its temperature-scaled probabilities for ``texts``."""
        classes, probs = self.stages[i].predict_proba(texts)
        return list(classes), scale(np.asarray(probs, dtype=np.float64), self.temperatures[i])

    def predict(self, texts: Sequence[str]) -> list[str]:
        labels: list[str | None] = [None] * len(texts)
        waiting = np.arange(len(texts))
        thresholds = self.thresholds() + [0.0]  # the last stage answers all that reach it
        for i in range(len(self.stages)):
            if len(waiting) == 0:
                break
            classes, calibrated = self._calibrated(i, [texts[j] for j in waiting])
            sure = calibrated.max(axis=1) >= thresholds[i]
            for j, column in zip(waiting[sure], calibrated[sure].argmax(axis=1)):
                labels[j] = classes[column]
            # Counted over every call since the fit: a staged inference predicts its split in parts.
            self.answered[i] += int(sure.sum())
            waiting = waiting[~sure]
        return [str(label) for label in labels]

    def example_facts(self, texts: Sequence[str]) -> dict[str, Any]:
        """Every stage's answer and calibrated confidence on every scored example, so the report can
        derive the accuracy at any other threshold (rightsize.cascade_curve). Stages run here on the
        queries they did not get in the measured inference; that work is not the config's cost, so
        the cache ledger is rewound to leave the record's cache figures those of its phases."""
        before = self.ledger.snapshot()
        try:
            outputs = []
            for i in range(len(self.stages)):
                classes, calibrated = self._calibrated(i, texts)
                outputs.append({"classes": classes, "predicted": calibrated.argmax(axis=1).tolist(),
                                "confidence": [round(float(c), 6) for c in calibrated.max(axis=1)]})
        finally:
            self.ledger.rewind(before)
        return {"stage_outputs": outputs}

    def n_params(self) -> int:
        return sum(stage.n_params() for stage in self.stages)

    def facts(self) -> dict[str, Any]:
        total = sum(self.answered)
        return {"stages": [s.kind for s in self.stages], "thresholds": self.thresholds(),
                "temperatures": list(self.temperatures),
                "answered_share": [n / total if total else 0.0 for n in self.answered]}

    def save(self, folder: Path) -> None:
        for i, stage in enumerate(self.stages):
            (folder / f"stage-{i + 1}").mkdir()
            stage.save(folder / f"stage-{i + 1}")
        write_json(folder, "cascade", {"temperatures": self.temperatures})

    def restore(self, folder: Path) -> None:
        temperatures = read_json(folder, "cascade")["temperatures"]
        if len(temperatures) != len(self.stages) or not all(isinstance(t, float) and t > 0 for t in temperatures):
            raise ValueError("cascade.json: one positive temperature per stage expected")
        for i, stage in enumerate(self.stages):
            stage.restore(folder / f"stage-{i + 1}")
        self.temperatures = temperatures

    def training(self) -> dict[str, Any]:
        return {"calibration_examples": getattr(self, "calibration_examples", 0),
                **{f"stage_{i + 1}": s.training() for i, s in enumerate(self.stages) if s.training()}}

    def close(self) -> None:
        for stage in getattr(self, "stages", []):
            stage.close()
