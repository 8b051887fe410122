"""What every encoder-based rung shares: the encoder's run knobs, loading and embedding."""

from __future__ import annotations

from typing import Any, Sequence

import numpy as np

from rightsize.encoder import PRECISIONS, RUNTIMES, Encoder
from rightsize.onnx_runtime import ONNX_PRECISIONS
from rightsize.rungs.base import Knob, Rung
from rightsize.threads import set_threads

ENCODER_KNOBS = {
    "batch_size": Knob(int, 64, min=1, max=8192, help="texts per forward pass"),
    "max_length": Knob(int, None, min=8, max=8192, nullable=True, help="tokens kept per text (default: the model's)"),
    "precision": Knob(str, "fp32", choices=PRECISIONS, help="fp32 | bf16 | fp16 (GPU) | int8 (dynamic, CPU)"),
    "layers": Knob(int, None, min=1, max=128, nullable=True, help="keep only the first N transformer layers"),
    # None = the model's own default (sdpa where the architecture supports it, e.g. BERT; eager
    # for MPNet, which has no sdpa kernel in transformers 5) — so the default ladder always loads.
    "attn_implementation": Knob(str, None, choices=("sdpa", "eager", "flash_attention_2"), nullable=True,
                                help="attention kernel (default: the model's own)"),
    "threads": Knob(int, None, min=1, max=1024, nullable=True,
                    help="CPU threads for torch (or onnxruntime), FAISS and BLAS"),
    "runtime": Knob(str, "torch", choices=RUNTIMES,
                    help="torch | onnx (the encoder exported to ONNX, run by onnxruntime on the CPU)"),
}


class EncoderRung(Rung):
    """A rung built on a sentence encoder; subclasses add the head (probe, kNN, ...)."""

    needs_model = True
    knobs = dict(ENCODER_KNOBS)

    @classmethod
    def conflict(cls, knobs: dict[str, Any]) -> str | None:
        if knobs["runtime"] == "onnx" and knobs["precision"] not in ONNX_PRECISIONS:
            return (f"runtime onnx runs precision {' or '.join(ONNX_PRECISIONS)}, not {knobs['precision']} "
                    f"(use runtime torch for it)")
        return None

    def load(self) -> None:
        set_threads(self.k["threads"])
        self.encoder = make_encoder(self, self.spec.model, self.k)
        self.encoder.load()

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        return self.encoder.encode(texts)

    def n_params(self) -> int:
        return self.encoder.params

    def facts(self) -> dict:
        return {"embedding_dim": self.encoder.dimension, "max_length": self.encoder.max_length,
                "attn_implementation": self.encoder.attn_used, "embedding_cache": self.encoder.namespace,
                **self.encoder.runtime_facts()}

    def close(self) -> None:
        if getattr(self, "encoder", None) is not None:
            self.encoder.close()


def make_encoder(rung: Rung, model: str, knobs: dict) -> Encoder:
    """An encoder with ``knobs`` (the ENCODER_KNOBS), sharing the rung's run cache, meter and ledger."""
    return Encoder(
        model,
        device=rung.context.device,
        precision=knobs["precision"],
        batch_size=knobs["batch_size"],
        max_length=knobs["max_length"],
        layers=knobs["layers"],
        attn_implementation=knobs["attn_implementation"],
        progress=rung.context.progress,
        trust_remote_code=rung.context.trust_remote_code,
        allow_pickle=rung.context.allow_pickle,
        threads=knobs["threads"],
        runtime=knobs["runtime"],
        cache=rung.context.cache,
        meter=rung.meter,
        ledger=rung.ledger,
    )
