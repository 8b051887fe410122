"""Static token embeddings distilled from a sentence encoder, with the probe's head on them.

The fit phase makes the static model (the encoder loaded, its vocabulary run through it once, PCA
and SIF weighting: :mod:`rightsize.static_embeddings`) and trains the head; inference is a table
look-up and a mean per text, no transformer. The static model depends only on the encoder and the
knobs, not on the task. Its costly step, the vocabulary through the encoder, goes through the run's
embedding cache: configs that differ only in ``pca_dims``, ``sif_coefficient`` or the head run it
once, and each is charged that pass's measured cost in its fit (``joules``), as an encode served
from the cache is; ``joules_spent`` is what its fit really spent.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Sequence

import numpy as np

from rightsize.models import checked_folder
from rightsize.rungs import register
from rightsize.rungs.base import Knob, Rung, RungSpec
from rightsize.rungs.encoder_rung import ENCODER_KNOBS, make_encoder
from rightsize.rungs.probe import C_KNOB, LinearProbe
from rightsize.threads import set_threads

STATIC_FOLDER = "static"  # inside a saved state: model2vec's own layout (safetensors, tokenizer, JSON)


class StaticVectors(Rung):
    """Text vectors from a static model distilled from ``spec.model``; a head goes on top."""

    needs_model = True
    trained = True
    knobs = {
        "pca_dims": Knob(int, 256, min=2, max=8192, nullable=True,
                         help="dimensions the PCA keeps (null: no PCA, the encoder's width)"),
        "sif_coefficient": Knob(float, 1e-4, min=1e-8, max=0.5, nullable=True,
                                help="SIF weighting of frequent tokens, a / (a + p(token)) (null: none)"),
        "max_length": Knob(int, 512, min=1, max=1_000_000, nullable=True, help="tokens kept per text (null: all)"),
        "threads": Knob(int, None, min=1, max=1024, nullable=True,
                        help="CPU threads for the distillation's forward passes and the head's BLAS"),
    }

    @classmethod
    def inference_spec(cls, spec: RungSpec) -> RungSpec | None:
        return None  # inference looks vectors up; the encoder only runs in the fit

    def load(self) -> None:
        set_threads(self.k["threads"], pools=("blas",))  # inference needs no torch: a restore never imports it
        self.folder = checked_folder(self.spec.model, self.context.allow_pickle)
        self.static = None
        self.train_examples = 0

    def distill(self) -> None:
        """Load the encoder, distill the static model from it, and let the encoder go."""
        from rightsize.static_embeddings import distill_static

        set_threads(self.k["threads"], pools=("torch",))
        knobs = {name: knob.default for name, knob in ENCODER_KNOBS.items()}
        encoder = make_encoder(self, self.spec.model, {**knobs, "threads": self.k["threads"]})
        encoder.load()
        try:
            self.static = distill_static(encoder, pca_dims=self.k["pca_dims"], max_length=self.k["max_length"],
                                         sif_coefficient=self.k["sif_coefficient"], progress=self.context.progress)
        finally:
            encoder.close()

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        # One thread: model2vec's threaded batches would ignore the ``threads`` knob.
        return self.static.encode(list(texts), use_multiprocessing=False).astype(np.float32, copy=False)

    def n_params(self) -> int:
        return int(self.static.embedding.size)

    def facts(self) -> dict:
        made = {k: self.static.config.get(k) for k in ("tokens_distilled", "encoder_params")}
        return {"embedding_dim": int(self.static.dim), "vocabulary": len(self.static.tokens),
                "max_length": self.static.max_length, **made}

    def close(self) -> None:
        self.static = None


@register
class StaticRung(LinearProbe, StaticVectors):
    kind = "static"
    knobs = {**StaticVectors.knobs, "C": C_KNOB}

    def fit(self, texts: Sequence[str], labels: Sequence[str]) -> None:
        self.distill()
        super().fit(texts, labels)
        self.train_examples = len(texts)

    def save(self, folder: Path) -> None:
        self.static.save_pretrained(folder / STATIC_FOLDER)
        super().save(folder)

    def restore(self, folder: Path) -> None:
        from model2vec import StaticModel

        self.static = StaticModel.from_pretrained(folder / STATIC_FOLDER)
        super().restore(folder)

    def training(self) -> dict[str, Any]:
        return {"train_examples": self.train_examples, "tokens_distilled": self.static.config.get("tokens_distilled")}
