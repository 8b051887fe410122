"""Sentence encoder + logistic-regression probe on its (normalized) embeddings.

The head (:class:`LinearProbe`) is shared by every kind that puts a probe on vectors of its own
(``probe`` on a transformer's, ``static`` on static token embeddings'); it is saved as its plain
arrays, so a restored head predicts exactly what the fitted one did.
"""

from __future__ import annotations

from pathlib import Path
from typing import Sequence

from rightsize.rungs import register
from rightsize.rungs.base import Knob
from rightsize.rungs.encoder_rung import EncoderRung
from rightsize.rungs.state import load_linear_head, save_linear_head

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

    def predict_proba(self, texts: Sequence[str]):
        return [str(c) for c in self.classifier.classes_], self.classifier.predict_proba(self.embed(texts))

    def save(self, folder: Path) -> None:
        save_linear_head(folder, self.classifier)

    def restore(self, folder: Path) -> None:
        self.classifier = load_linear_head(folder)

    def n_params(self) -> int:
        return super().n_params() + int(self.classifier.coef_.size + self.classifier.intercept_.size)


@register
class ProbeRung(LinearProbe, EncoderRung):
    kind = "probe"
    knobs = {**EncoderRung.knobs, "C": C_KNOB}
