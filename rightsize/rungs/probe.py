"""Sentence encoder + logistic-regression probe on its (normalized) embeddings."""

from __future__ import annotations

from pathlib import Path
from typing import Sequence

from rightsize.rungs import register
from rightsize.rungs.base import Knob
from rightsize.rungs.encoder_rung import EncoderRung
from rightsize.rungs.state import load_linear_head, save_linear_head


@register
class ProbeRung(EncoderRung):
    kind = "probe"
    knobs = {**EncoderRung.knobs, "C": Knob(float, 10.0, min=1e-4, max=1e4, help="inverse regularization strength")}

    def fit(self, texts: Sequence[str], labels: Sequence[str]) -> None:
        from sklearn.linear_model import LogisticRegression

        self.classifier = LogisticRegression(C=self.k["C"], max_iter=2000)
        self.classifier.fit(self.embed(texts), labels)

    def predict(self, texts: Sequence[str]) -> list[str]:
        return [str(p) for p in self.classifier.predict(self.embed(texts))]

    def save(self, folder: Path) -> None:
        save_linear_head(folder, self.classifier)

    def restore(self, folder: Path) -> None:
        self.classifier = load_linear_head(folder)

    def n_params(self) -> int:
        return super().n_params() + int(self.classifier.coef_.size + self.classifier.intercept_.size)
