"""A linear probe interpolated with a FAISS neighbour vote: the kNN-LM idea for classification.

p(y | x) = (1 - weight) * probe(y | x) + weight * knn(y | x), both over the same sorted classes.
The probe generalizes from the whole train split, the neighbour vote memorizes rare or odd
examples the linear head underfits; the train embeddings are computed once and serve both.
"""

from __future__ import annotations

from pathlib import Path
from typing import Sequence

import numpy as np

from rightsize.retrieval import INDEX_KINDS, build_index, index_bytes, neighbour_distribution, search
from rightsize.rungs import register
from rightsize.rungs.base import Knob
from rightsize.rungs.encoder_rung import EncoderRung
from rightsize.rungs.state import load_linear_head, load_neighbours, save_linear_head, save_neighbours


def interpolate(probe: np.ndarray, knn: np.ndarray, weight: float) -> np.ndarray:
    """(1 - weight) * probe + weight * knn, row-wise class distributions of the same shape."""
    if probe.shape != knn.shape:
        raise ValueError(f"probe {probe.shape} and kNN {knn.shape} distributions differ in shape")
    return (1.0 - weight) * probe + weight * knn


@register
class KnnProbeRung(EncoderRung):
    kind = "knn-probe"
    knobs = {
        **EncoderRung.knobs,
        "C": Knob(float, 10.0, min=1e-4, max=1e4, help="probe's inverse regularization strength"),
        "k": Knob(int, 10, min=1, max=1000, help="neighbours that vote"),
        "weight": Knob(float, 0.3, min=0.0, max=1.0, help="share of the kNN distribution (0 = probe, 1 = kNN)"),
        "temperature": Knob(float, 0.05, min=1e-3, max=100.0, help="vote weight exp(sim/T)"),
        "index": Knob(str, "flat", choices=INDEX_KINDS, help="flat (exact) | hnsw | ivf (approximate)"),
    }

    def fit(self, texts: Sequence[str], labels: Sequence[str]) -> None:
        from sklearn.linear_model import LogisticRegression

        vectors = self.embed(texts)
        self.classes = np.array(sorted(set(labels)))
        self.train_label_ids = np.searchsorted(self.classes, np.asarray(labels))
        self.classifier = LogisticRegression(C=self.k["C"], max_iter=2000)
        self.classifier.fit(vectors, labels)
        # predict_proba's columns follow classes_; the vote follows self.classes: they must agree.
        assert list(self.classifier.classes_) == list(self.classes)
        self.index = build_index(vectors, self.k["index"], seed=self.context.seed)

    def save(self, folder: Path) -> None:
        save_linear_head(folder, self.classifier)
        save_neighbours(folder, self.index, self.classes, self.train_label_ids)

    def restore(self, folder: Path) -> None:
        self.classifier = load_linear_head(folder)
        self.index, self.classes, self.train_label_ids = load_neighbours(folder)
        if list(self.classifier.classes_) != list(self.classes):
            raise ValueError("the probe's classes and the neighbour vote's differ")

    def distribution(self, vectors: np.ndarray) -> np.ndarray:
        probe = self.classifier.predict_proba(vectors)
        sims, ids = search(self.index, vectors, self.k["k"])
        knn = neighbour_distribution(sims, ids, self.train_label_ids, len(self.classes), self.k["temperature"])
        return interpolate(probe, knn, self.k["weight"])

    def predict(self, texts: Sequence[str]) -> list[str]:
        scores = self.distribution(self.embed(texts))
        return [str(c) for c in self.classes[scores.argmax(axis=1)]]

    def predict_proba(self, texts: Sequence[str]):
        return [str(c) for c in self.classes], self.distribution(self.embed(texts))

    def n_params(self) -> int:
        return super().n_params() + int(self.classifier.coef_.size + self.classifier.intercept_.size)

    def facts(self) -> dict:
        return {**super().facts(), "index": self.k["index"], "index_vectors": int(self.index.ntotal),
                "index_bytes": index_bytes(self.index)}
