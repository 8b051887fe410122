"""The retrieval baseline: FAISS nearest neighbours over train embeddings, weighted vote."""

from __future__ import annotations

from pathlib import Path
from typing import Sequence

import numpy as np

from rightsize.retrieval import INDEX_KINDS, build_index, index_bytes, neighbour_distribution, search
from rightsize.rungs import register
from rightsize.rungs.base import Knob
from rightsize.rungs.encoder_rung import EncoderRung
from rightsize.rungs.state import load_neighbours, save_neighbours


@register
class KnnRung(EncoderRung):
    kind = "knn"
    knobs = {
        **EncoderRung.knobs,
        "k": Knob(int, 10, min=1, max=1000, help="neighbours that vote"),
        "temperature": Knob(float, 0.05, min=1e-3, max=100.0, help="vote weight exp(sim/T)"),
        "index": Knob(str, "flat", choices=INDEX_KINDS, help="flat (exact) | hnsw | ivf (approximate)"),
    }

    def fit(self, texts: Sequence[str], labels: Sequence[str]) -> None:
        self.classes = np.array(sorted(set(labels)))
        self.train_label_ids = np.searchsorted(self.classes, np.asarray(labels))
        self.index = build_index(self.embed(texts), self.k["index"], seed=self.context.seed)

    def save(self, folder: Path) -> None:
        save_neighbours(folder, self.index, self.classes, self.train_label_ids)

    def restore(self, folder: Path) -> None:
        self.index, self.classes, self.train_label_ids = load_neighbours(folder)

    def neighbour_scores(self, vectors: np.ndarray) -> np.ndarray:
        sims, ids = search(self.index, vectors, self.k["k"])
        return neighbour_distribution(sims, ids, self.train_label_ids, len(self.classes), self.k["temperature"])

    def predict(self, texts: Sequence[str]) -> list[str]:
        scores = self.neighbour_scores(self.embed(texts))
        return [str(c) for c in self.classes[scores.argmax(axis=1)]]

    def predict_proba(self, texts: Sequence[str]):
        """The neighbours' weighted vote shares."""
        return [str(c) for c in self.classes], self.neighbour_scores(self.embed(texts))

    def facts(self) -> dict:
        return {**super().facts(), "index": self.k["index"], "index_vectors": int(self.index.ntotal),
                "index_bytes": index_bytes(self.index)}
