"""Sentence encoders: a sentence-transformers model run with rightsize's own batching.

Why not ``SentenceTransformer.encode`` directly: rightsize tokenizes every text once, sorts by
length so each batch pads to a similar length, runs under ``torch.inference_mode`` with the
requested precision, depth and attention kernel, and returns L2-normalized float32 vectors in the
original order. The module graph (pooling, normalization) is still the model's own.

With ``runtime="onnx"`` the same module (depth and attention knobs applied) is exported to ONNX and
run by onnxruntime (:mod:`rightsize.onnx_runtime`); tokenizing and batching stay the same.

With an :class:`~rightsize.cache.EmbeddingCache` and a meter, each text is encoded once per encoder
configuration (:mod:`rightsize.cached_encoding`). Tokenizing and batching: :mod:`rightsize.token_batches`.
"""

from __future__ import annotations

import logging
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Sequence

import numpy as np

from rightsize.cache import CacheLedger, EmbeddingCache, text_keys
from rightsize.cached_encoding import CachedEncoding
from rightsize.errors import RightsizeError
from rightsize.models import checked_folder, count_parameters
from rightsize.token_batches import CPU_PAD_SLACK, PackedTokens, length_batches

if TYPE_CHECKING:
    from rightsize.energy import Meter

log = logging.getLogger(__name__)

DTYPES = {"fp32": "float32", "fp16": "float16", "bf16": "bfloat16"}
PRECISIONS = ("fp32", "fp16", "bf16", "int8")
RUNTIMES = ("torch", "onnx")


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
        attn_implementation: str | None = None,
        progress: bool = False,
        trust_remote_code: bool = False,
        allow_pickle: bool = False,
        threads: int | None = None,
        runtime: str = "torch",
        cache: EmbeddingCache | None = None,
        meter: "Meter | None" = None,
        ledger: CacheLedger | None = None,
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
        self.threads = threads
        self.runtime = runtime
        self.onnx = None  # the onnxruntime session of runtime "onnx"
        self._export_dir: tempfile.TemporaryDirectory | None = None  # exports when there is no cache
        # The cache needs a meter: a hit must be charged a measured cost, never a guess.
        self.cache = cache if meter is not None else None
        self.meter = meter
        self.ledger = ledger if ledger is not None else CacheLedger()
        self.namespace: str | None = None
        self.cached: CachedEncoding | None = None  # with a cache: every encode goes through it
        self.st = None
        self.attn_used = None
        self.folder = None
        self.params = 0

    def load(self) -> None:
        import torch
        from sentence_transformers import SentenceTransformer

        if self.precision == "int8" and self.device != "cpu":
            raise RightsizeError("precision int8 (dynamic quantization) runs on the CPU only")
        if self.runtime not in RUNTIMES:
            raise RightsizeError(f"runtime {self.runtime!r} is not one of: {', '.join(RUNTIMES)}")
        if self.runtime == "onnx" and self.device != "cpu":
            raise RightsizeError("runtime onnx runs on the CPU only (onnxruntime's CPU provider)")
        if self.precision in ("fp16",) and self.device == "cpu":
            log.warning("fp16 on CPU is emulated and slow; bf16 or int8 are the CPU options")
        self.folder = checked_folder(self.model_id, self.allow_pickle)
        st = SentenceTransformer(
            str(self.folder),
            device=self.device,
            trust_remote_code=self.trust_remote_code,
            local_files_only=True,
            model_kwargs={} if self.attn_implementation is None else {"attn_implementation": self.attn_implementation},
        )
        hf_model = st[0].model
        self.attn_used = getattr(hf_model.config, "_attn_implementation", None)
        if self.layers is not None:
            _keep_first_layers(hf_model, self.layers, self.model_id)
        if self.precision in DTYPES and self.precision != "fp32":
            st.to(getattr(torch, DTYPES[self.precision]))
        self.params = count_parameters(st)  # counted before int8 packing hides the weights
        if self.precision == "int8" and self.runtime == "torch":
            st = torch.ao.quantization.quantize_dynamic(st, {torch.nn.Linear}, dtype=torch.qint8)
        st.eval()
        if self.max_length is None:
            self.max_length = int(st.max_seq_length or 512)
        self.st = st
        if self.runtime == "onnx":
            self.onnx = self._onnx_encoder()
        if self.cache is not None:
            self.namespace = self._namespace()
            self.cached = CachedEncoding(self.cache, self.namespace, self.meter, self.ledger)

    def _onnx_encoder(self):
        """The export of the loaded module, from the cache's ``onnx`` folder (or a temporary one)."""
        from rightsize import onnx_runtime

        if self.cache is not None:
            root = self.cache.root / "onnx"
            weights = self.cache.weights_hash(self.folder)
        else:
            self._export_dir = tempfile.TemporaryDirectory(prefix="rightsize-onnx-")
            root, weights = Path(self._export_dir.name), None
        facts = {"model": self.model_id, "weights_sha256": weights, "layers": self.layers,
                 "attn_implementation": self.attn_used}
        return onnx_runtime.prepare(self.st, facts, self.precision, self.threads, root)

    def runtime_facts(self) -> dict:
        """What the record says about the runtime: onnx's export file and its check against torch."""
        if self.onnx is None:
            return {"runtime": self.runtime}
        return {"runtime": self.runtime, "onnx_file": self.onnx.path.name,
                "onnx_cosine_to_torch": self.onnx.check_cosine, "onnx_exporter": self.onnx.exporter}

    def _namespace(self, **recipe: Any) -> str:
        """The cache namespace: what the vectors depend on, and what their encoding costs depend on;
        ``recipe`` names vectors other than the sentence embeddings made from the same configuration."""
        assert self.cache is not None and self.meter is not None and self.folder is not None
        facts = {
            "model": self.model_id, "weights_sha256": self.cache.weights_hash(self.folder),
            "layers": self.layers, "max_length": self.max_length, "precision": self.precision,
            # the kernel actually loaded: "sdpa" asked for and the default resolving to sdpa share entries
            "device": self.device, "batch_size": self.batch_size, "attn_implementation": self.attn_used,
            "threads": self.threads, "energy_source": self.meter.source,
            # stored costs net of a GPU's idle draw are not comparable with gross ones
            **({"energy_basis": self.meter.basis} if self.meter.basis != "gross" else {}),
            # how texts are cut into batches changes what an encode costs (see length_batches)
            "batching": f"cpu-pad-{CPU_PAD_SLACK:g}" if self.device == "cpu" else "fixed",
        }
        if self.runtime != "torch":  # only then: torch namespaces written before the knob keep their entries
            facts["runtime"] = self.runtime
        facts.update(recipe)
        namespace = self.cache.namespace(**facts)
        self.cache.describe_namespace(namespace, facts)
        return namespace

    @property
    def dimension(self) -> int:
        get_dim = getattr(self.st, "get_embedding_dimension", None) or self.st.get_sentence_embedding_dimension
        return int(get_dim())

    def encode(self, texts: Sequence[str]) -> np.ndarray:
        """Embed ``texts`` (L2-normalized float32, one row per text, input order kept)."""
        if self.st is None:
            raise RuntimeError("Encoder.encode called before load()")
        if self.cached is None:
            vectors, _ = self._compute(texts)
            self.ledger.misses += len(texts)
            return vectors
        return self.cached.encode(texts, self._compute, self.dimension)

    def derived_vectors(self, recipe: dict[str, Any], names: Sequence[str], dim: int,
                        compute: Callable[[np.ndarray, np.ndarray], np.ndarray]) -> np.ndarray:
        """Vectors made from this encoder's model other than its sentence embeddings (a static model's
        token vectors), one per name (float32, ``dim`` wide). ``compute(todo, out)`` fills the rows
        ``todo`` of ``out`` and returns the tokens each took. With a cache they are served, stored and
        charged as encodes are, in the namespace of this configuration plus ``recipe``."""
        if self.st is None:
            raise RuntimeError("Encoder.derived_vectors called before load()")
        if self.cached is None:
            out = np.empty((len(names), dim), dtype=np.float32)
            compute(np.arange(len(names)), out)
            self.ledger.misses += len(names)
            return out
        return self.cached.serve(self._namespace(**recipe), text_keys(names), dim, compute)

    def _compute(self, texts: Sequence[str], out: np.ndarray | None = None,
                 rows: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
        """Encode ``texts`` for real; also returns each text's token count (after truncation).

        Text ``j``'s vector goes to row ``rows[j]`` of ``out`` (default: a new matrix, row ``j``).
        Batches run in length order and each is written straight to its texts' rows, so nothing
        else of size n x dim exists: no list of batch outputs to concatenate, no reordering copy.
        """
        import torch

        n = len(texts)
        if out is None:
            out = np.empty((n, self.dimension), dtype=np.float32)
        if n == 0:
            return out, np.zeros(0, dtype=np.int32)
        tokens = PackedTokens.of(self.st.tokenizer, texts, self.max_length)
        lengths = tokens.lengths
        order = np.argsort(-lengths, kind="stable")  # longest first: a too-large batch fails early
        bar = progress_bar(n, f"encode {self.model_id.split('/')[-1]}", self.progress)
        with torch.inference_mode():
            for idx in length_batches(order, lengths, self.batch_size, self.device):
                batch = tokens.pad(idx)
                vectors = self._forward({k: v.to(self.device) for k, v in batch.items()})
                out[idx if rows is None else rows[idx]] = vectors
                bar.update(len(idx))
        bar.close()
        return out, lengths

    def _forward(self, features: dict) -> np.ndarray:
        """One padded batch (CPU tensors) through the model: normalized float32 vectors."""
        import torch

        if self.onnx is not None:
            emb = self.onnx({k: v.numpy() for k, v in features.items()})
            return emb / np.maximum(np.linalg.norm(emb, axis=1, keepdims=True), 1e-12)
        emb = self.st.forward({k: v.to(self.device) for k, v in features.items()})["sentence_embedding"].float()
        return torch.nn.functional.normalize(emb, p=2, dim=1).cpu().numpy()

    def close(self) -> None:
        self.st = None
        self.onnx = None
        if self._export_dir is not None:
            self._export_dir.cleanup()
            self._export_dir = None
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

    def set_postfix(self, **values) -> None:
        pass

    def close(self) -> None:
        pass


def progress_bar(total: int, desc: str, enabled: bool):
    """A tqdm bar over ``total`` texts (rate and ETA), or one that shows nothing when not ``enabled``."""
    if not enabled:
        return _NoBar()
    from tqdm.auto import tqdm

    return tqdm(total=total, desc=desc, unit="text", leave=False, dynamic_ncols=True)
