"""Sentence encoders: a sentence-transformers model run with rightsize's own batching.

Why not ``SentenceTransformer.encode`` directly: rightsize tokenizes every text once, sorts by
length so each batch pads to a similar length, runs under ``torch.inference_mode`` with the
requested precision, depth and attention kernel, and returns L2-normalized float32 vectors in the
original order. The module graph (pooling, normalization) is still the model's own.
"""

from __future__ import annotations

import logging
from typing import Sequence

import numpy as np

from rightsize.errors import RightsizeError
from rightsize.models import check_weights_format, count_parameters, resolve_model

log = logging.getLogger(__name__)

DTYPES = {"fp32": "float32", "fp16": "float16", "bf16": "bfloat16"}
PRECISIONS = ("fp32", "fp16", "bf16", "int8")


class Encoder:
    """Loads an encoder once and embeds texts with the configured run knobs."""

    def __init__(
        self,
        model: str,
        *,
        device: str = "cpu",
        precision: str = "fp32",
        batch_size: int = 64,
        max_length: int | None = None,
        layers: int | None = None,
        attn_implementation: str = "sdpa",
        progress: bool = False,
        trust_remote_code: bool = False,
        allow_pickle: bool = False,
    ):
        self.model_id = model
        self.device = device
        self.precision = precision
        self.batch_size = batch_size
        self.max_length = max_length
        self.layers = layers
        self.attn_implementation = attn_implementation
        self.progress = progress
        self.trust_remote_code = trust_remote_code
        self.allow_pickle = allow_pickle
        self.st = None
        self.folder = None
        self.params = 0

    def load(self) -> None:
        import torch
        from sentence_transformers import SentenceTransformer

        if self.precision == "int8" and self.device != "cpu":
            raise RightsizeError("precision int8 (dynamic quantization) runs on the CPU only")
        if self.precision in ("fp16",) and self.device == "cpu":
            log.warning("fp16 on CPU is emulated and slow; bf16 or int8 are the CPU options")
        self.folder = resolve_model(self.model_id)
        check_weights_format(self.folder, self.model_id, self.allow_pickle)
        st = SentenceTransformer(
            str(self.folder),
            device=self.device,
            trust_remote_code=self.trust_remote_code,
            local_files_only=True,
            model_kwargs={"attn_implementation": self.attn_implementation},
        )
        hf_model = st[0].model
        if self.layers is not None:
            _keep_first_layers(hf_model, self.layers, self.model_id)
        if self.precision in DTYPES and self.precision != "fp32":
            st.to(getattr(torch, DTYPES[self.precision]))
        self.params = count_parameters(st)  # counted before int8 packing hides the weights
        if self.precision == "int8":
            st = torch.ao.quantization.quantize_dynamic(st, {torch.nn.Linear}, dtype=torch.qint8)
        st.eval()
        if self.max_length is None:
            self.max_length = int(st.max_seq_length or 512)
        self.st = st

    @property
    def dimension(self) -> int:
        get_dim = getattr(self.st, "get_embedding_dimension", None) or self.st.get_sentence_embedding_dimension
        return int(get_dim())

    def encode(self, texts: Sequence[str]) -> np.ndarray:
        """Embed ``texts`` (L2-normalized float32, one row per text, input order kept)."""
        import torch

        if self.st is None:
            raise RuntimeError("Encoder.encode called before load()")
        n = len(texts)
        out = np.empty((n, self.dimension), dtype=np.float32)
        if n == 0:
            return out
        tokenizer = self.st.tokenizer
        encoded = tokenizer(list(texts), truncation=True, max_length=self.max_length, padding=False)
        lengths = np.fromiter((len(ids) for ids in encoded["input_ids"]), dtype=np.int64, count=n)
        order = np.argsort(-lengths, kind="stable")  # longest first: a too-large batch fails early
        keys = list(encoded.keys())
        bar = _progress(n, f"encode {self.model_id.split('/')[-1]}", self.progress)
        with torch.inference_mode():
            for start in range(0, n, self.batch_size):
                idx = order[start : start + self.batch_size]
                batch = tokenizer.pad({k: [encoded[k][i] for i in idx] for k in keys}, return_tensors="pt")
                features = {k: v.to(self.device) for k, v in batch.items()}
                emb = self.st.forward(features)["sentence_embedding"].float()
                emb = torch.nn.functional.normalize(emb, p=2, dim=1)
                out[idx] = emb.cpu().numpy()
                bar.update(len(idx))
        bar.close()
        return out

    def close(self) -> None:
        self.st = None
        if self.device == "cuda":
            import torch

            torch.cuda.empty_cache()


def _keep_first_layers(hf_model, layers: int, model_id: str) -> None:
    """Keep the first ``layers`` transformer blocks, found generically: the ModuleList whose
    length equals ``config.num_hidden_layers`` (no branching on the model family)."""
    import torch

    total = getattr(hf_model.config, "num_hidden_layers", None)
    blocks = [
        m for m in hf_model.modules() if isinstance(m, torch.nn.ModuleList) and total is not None and len(m) == total
    ]
    if not blocks:
        raise RightsizeError(f"model {model_id!r}: cannot find its transformer layers to keep {layers}")
    if layers > total:
        raise RightsizeError(f"model {model_id!r} has {total} layers; cannot keep {layers}")
    del blocks[0][layers:]
    hf_model.config.num_hidden_layers = layers


class _NoBar:
    def update(self, n: int) -> None:
        pass

    def close(self) -> None:
        pass


def _progress(total: int, desc: str, enabled: bool):
    if not enabled:
        return _NoBar()
    from tqdm.auto import tqdm

    return tqdm(total=total, desc=desc, unit="text", leave=False, dynamic_ncols=True)
