"""Sentence encoder + logistic-regression probe on its (normalized) embeddings.

The head (:class:`LinearProbe`) is shared by every kind that puts a probe on vectors of its own
(``probe`` on a transformer's, ``static`` on static token embeddings'): it is saved as plain arrays
(safetensors) and its classes as JSON, so a restored head predicts exactly what the fitted one did.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Sequence

import numpy as np

from rightsize.rungs import register
from rightsize.rungs.base import Knob
from rightsize.rungs.encoder_rung import EncoderRung

HEAD_WEIGHTS = "head.safetensors"
HEAD_CLASSES = "head.json"
C_KNOB = Knob(float, 10.0, min=1e-4, max=1e4, help="inverse regularization strength")


class LinearProbe:
    """Logistic regression over ``self.embed(texts)``; a mixin placed before the rung class that
    provides ``embed`` (its ``n_params`` adds the head to the vectors' own)."""

    def fit(self, texts: Sequence[str], labels: Sequence[str]) -> None:
        from sklearn.linear_model import LogisticRegression

        self.classifier = LogisticRegression(C=self.k["C"], max_iter=2000)
        self.classifier.fit(self.embed(texts), labels)

    def predict(self, texts: Sequence[str]) -> list[str]:
        return [str(p) for p in self.classifier.predict(self.embed(texts))]

    def n_params(self) -> int:
        return super().n_params() + int(self.classifier.coef_.size + self.classifier.intercept_.size)

    def save(self, folder: Path) -> None:
        from safetensors.numpy import save_file

        save_file({"coef": np.ascontiguousarray(self.classifier.coef_),
                   "intercept": np.ascontiguousarray(self.classifier.intercept_)}, str(folder / HEAD_WEIGHTS))
        (folder / HEAD_CLASSES).write_text(json.dumps({"classes": [str(c) for c in self.classifier.classes_]}))

    def restore(self, folder: Path) -> None:
        from safetensors.numpy import load_file
        from sklearn.linear_model import LogisticRegression

        arrays = load_file(str(folder / HEAD_WEIGHTS))
        classifier = LogisticRegression(C=self.k["C"], max_iter=2000)
        classifier.coef_, classifier.intercept_ = arrays["coef"], arrays["intercept"]
        classifier.classes_ = np.array(json.loads((folder / HEAD_CLASSES).read_text())["classes"])
        classifier.n_features_in_ = int(classifier.coef_.shape[1])
        self.classifier = classifier


@register
class ProbeRung(LinearProbe, EncoderRung):
    kind = "probe"
    knobs = {**EncoderRung.knobs, "C": C_KNOB}
