"""Sentence encoders: a sentence-transformers model run with rightsize's own batching.

Why not ``SentenceTransformer.encode`` directly: rightsize tokenizes every text once, sorts by
length so each batch pads to a similar length, runs under ``torch.inference_mode`` with the
requested precision, depth and attention kernel, and returns L2-normalized float32 vectors in the
original order. The module graph (pooling, normalization) is still the model's own.

With ``runtime="onnx"`` the same module (depth and attention knobs applied) is exported to ONNX and
run by onnxruntime (:mod:`rightsize.onnx_runtime`); tokenizing and batching stay the same.

With an :class:`~rightsize.cache.EmbeddingCache` and a meter, each text is encoded once per encoder
configuration: misses are encoded inside their own meter window and stored with that measured cost
net of idle (split by token share; at the namespace's encode rate when the window was too short for
the meter to resolve); hits are served from disk and their stored cost is charged to the ledger,
so a configuration's energy is the same whether or not the cache served it.
"""

from __future__ import annotations

import itertools
import logging
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING, Iterator, Sequence

import numpy as np

from rightsize.cache import CacheLedger, EmbeddingCache, split_cost, text_keys
from rightsize.errors import RightsizeError
from rightsize.models import checked_folder, count_parameters

if TYPE_CHECKING:
    from rightsize.energy import Meter

log = logging.getLogger(__name__)
_windows = itertools.count()

DTYPES = {"fp32": "float32", "fp16": "float16", "bf16": "bfloat16"}
PRECISIONS = ("fp32", "fp16", "bf16", "int8")
RUNTIMES = ("torch", "onnx")
TOKENIZE_CHUNK = 2048  # texts tokenized per call before packing (bounds the tokenizer's objects)
CPU_PAD_SLACK = 1.5  # on the CPU a batch's padded tokens stay within 1.5x its real tokens (_batches)


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

    def _namespace(self) -> str:
        """The cache namespace: what the vectors depend on, and what their encoding costs depend on."""
        assert self.cache is not None and self.meter is not None and self.folder is not None
        facts = {
            "model": self.model_id, "weights_sha256": self.cache.weights_hash(self.folder),
            "layers": self.layers, "max_length": self.max_length, "precision": self.precision,
            # the kernel actually loaded: "sdpa" asked for and the default resolving to sdpa share entries
            "device": self.device, "batch_size": self.batch_size, "attn_implementation": self.attn_used,
            "threads": self.threads, "energy_source": self.meter.source,
            # stored costs net of a GPU's idle draw are not comparable with gross ones
            **({"energy_basis": self.meter.basis} if self.meter.basis != "gross" else {}),
            # how texts are cut into batches changes what an encode costs (see _batches)
            "batching": f"cpu-pad-{CPU_PAD_SLACK:g}" if self.device == "cpu" else "fixed",
        }
        if self.runtime != "torch":  # only then: torch namespaces written before the knob keep their entries
            facts["runtime"] = self.runtime
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
        if self.cache is None or self.namespace is None or self.meter is None:
            vectors, _ = self._compute(texts)
            self.ledger.misses += len(texts)
            return vectors
        window = f"encode-{next(_windows)}"
        self.meter.begin(window)
        try:
            return self._encode_cached(texts)
        finally:
            m = self.meter.end(window)
            self.ledger.encode_joules += m.net_joules
            self.ledger.encode_seconds += m.seconds

    def _encode_cached(self, texts: Sequence[str]) -> np.ndarray:
        assert self.cache is not None and self.namespace is not None and self.meter is not None
        keys = text_keys(texts)
        served = self.cache.lookup(self.namespace, keys, self.dimension)
        out = served.vectors
        joules, seconds = served.joules, served.seconds
        # Encode each missing text once, even if it occurs several times in ``texts``.
        _, first, inverse = np.unique(keys, return_index=True, return_inverse=True)
        todo = np.sort(first[~served.found[first]])
        if len(todo):
            window = f"encode-miss-{next(_windows)}"
            self.meter.begin(window)
            try:
                # Straight into the output's rows: no second (misses x dim) matrix to copy from.
                _, tokens = self._compute([texts[i] for i in todo], out=out, rows=todo)
            finally:
                m = self.meter.end(window)
            cost_j, cost_s = split_cost(m.net_joules, tokens), split_cost(m.seconds, tokens)
            joules[todo], seconds[todo] = cost_j, cost_s
            stored_j = self._stored_cost(m, tokens, cost_j)
            if stored_j is not None:
                # The shard needs the new rows contiguous: the output itself when every text was a new,
                # distinct one (a cold cache), else a copy of just those rows.
                self.cache.store(self.namespace, keys[todo], out if len(todo) == len(out) else out[todo],
                                 stored_j, cost_s)
                self.ledger.stored += len(todo)
            # Repeats of a text encoded just now take its row and its cost.
            source = first[np.ravel(inverse)]  # each text's first occurrence
            repeats = np.flatnonzero(~served.found & (source != np.arange(len(texts))))
            out[repeats] = out[source[repeats]]
            joules[repeats], seconds[repeats] = joules[source[repeats]], seconds[source[repeats]]
        # Everything not encoded just now (hits and repeats) is charged its measured cost.
        charged = np.ones(len(texts), dtype=bool)
        charged[todo] = False
        self.ledger.hits += int(charged.sum())
        self.ledger.misses += len(todo)
        self.ledger.charged_joules += float(joules[charged].sum())
        self.ledger.charged_seconds += float(seconds[charged].sum())
        return out

    def _stored_cost(self, m, tokens: np.ndarray, measured: np.ndarray) -> np.ndarray | None:
        """What the cache keeps as these texts' cost: as measured when the window was resolved (which
        also adds to the encode rate), else the encode rate's share; None (store nothing) before a rate."""
        assert self.cache is not None and self.namespace is not None
        if not m.below_resolution:
            self.cache.add_to_encode_rate(self.namespace, m.net_joules, int(tokens.sum()))
            return measured
        rate = self.cache.encode_rate(self.namespace)
        if rate is None:
            log.debug("encode of %d texts below the meter's resolution and no encode rate yet: not cached",
                      len(tokens))
            return None
        return rate * np.asarray(tokens, dtype=np.float64)

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
            for idx in self._batches(order, lengths):
                batch = tokens.pad(idx)
                vectors = self._forward({k: v.to(self.device) for k, v in batch.items()})
                out[idx if rows is None else rows[idx]] = vectors
                bar.update(len(idx))
        bar.close()
        return out, lengths

    def _batches(self, order: np.ndarray, lengths: np.ndarray) -> Iterator[np.ndarray]:
        """Runs of ``order`` (longest first) of at most ``batch_size`` texts each. On the CPU a run
        also ends before the padding would exceed :data:`CPU_PAD_SLACK` times its real tokens.

        Why: a batch is padded to its longest text, and on the CPU a forward pass costs about its
        padded tokens. A 50-text slice of Banking77 (median 14 tokens, longest 93) in one batch of
        64 took 1.45x the CPU time of the same texts cut by length (measured here with MiniLM-L6);
        growing-subset scoring in `rightsize search` encodes exactly such slices. On a GPU a batch
        costs about the same until the device is full, so there only ``batch_size`` cuts."""
        if self.device != "cpu":
            for start in range(0, len(order), self.batch_size):
                yield order[start : start + self.batch_size]
            return
        start = 0
        while start < len(order):
            longest = int(lengths[order[start]])
            real = longest
            end = start + 1
            while end < len(order) and end - start < self.batch_size:
                with_next = real + int(lengths[order[end]])
                if (end - start + 1) * longest > CPU_PAD_SLACK * with_next:
                    break
                real, end = with_next, end + 1
            yield order[start:end]
            start = end

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


class PackedTokens:
    """Texts tokenized once (truncated to ``max_length``, not padded), packed, and padded batch by batch.

    Why packed: the tokenizer's own per-text objects take ~4 KB a text (200 MB for 50k short
    texts, more than an encoder's output matrix); packed, a token costs 1 to 4 bytes, so memory
    stays flat in n. Texts are tokenized ``TOKENIZE_CHUNK`` at a time; each output is kept in the
    smallest integer type that holds it (see :func:`_compact`), and one with a single value across
    a chunk (the attention mask before padding, single sentences' token type ids) as that value
    alone. ``chunks`` holds one dict per chunk (text i is in chunk i // TOKENIZE_CHUNK), ``starts``
    each text's start within its chunk and ``lengths`` each text's token count. The encoder's
    inference and the training loop (rightsize.training) both cut their length-sorted batches here.
    """

    def __init__(self, tokenizer, chunks: list[dict[str, np.ndarray]], starts: np.ndarray, lengths: np.ndarray):
        self.tokenizer = tokenizer
        self.chunks = chunks
        self.starts = starts
        self.lengths = lengths

    @classmethod
    def of(cls, tokenizer, texts: Sequence[str], max_length: int) -> "PackedTokens":
        n = len(texts)
        chunks: list[dict[str, np.ndarray]] = []
        lengths = np.empty(n, dtype=np.int32)
        starts = np.zeros(n, dtype=np.int32)  # within a chunk: < TOKENIZE_CHUNK x max_length
        for lo in range(0, n, TOKENIZE_CHUNK):
            hi = min(n, lo + TOKENIZE_CHUNK)
            encoded = tokenizer([texts[i] for i in range(lo, hi)], truncation=True, max_length=max_length,
                                padding=False)
            lengths[lo:hi] = [len(ids) for ids in encoded["input_ids"]]
            np.cumsum(lengths[lo : hi - 1], out=starts[lo + 1 : hi])
            chunks.append({key: _compact(np.fromiter(itertools.chain.from_iterable(rows), dtype=np.int64))
                           for key, rows in encoded.items()})
            del encoded
        return cls(tokenizer, chunks, starts, lengths)

    def row(self, key: str, i: int) -> list[int]:
        """Text ``i``'s values of the tokenizer output ``key``."""
        return _row(self.chunks[i // TOKENIZE_CHUNK][key], self.starts[i], self.lengths[i])

    def pad(self, idx: Sequence[int]) -> dict:
        """The texts ``idx`` as one batch of torch tensors, padded to the longest of them."""
        features = {key: [self.row(key, i) for i in idx] for key in self.chunks[0]}
        return self.tokenizer.pad(features, return_tensors="pt")


def _compact(ids: np.ndarray) -> np.ndarray:
    """``ids`` in the smallest signed integer type that holds them (masks and type ids fit in int8),
    or a 0-d array of the one value when all are equal (read back by :func:`_row`)."""
    if ids.size and (ids == ids[0]).all():
        return np.array(ids[0])
    for dtype in (np.int8, np.int16, np.int32):
        info = np.iinfo(dtype)
        if ids.size == 0 or (info.min <= ids.min() and ids.max() <= info.max):
            return ids.astype(dtype)
    return ids


def _row(packed: np.ndarray, start: int, length: int) -> list[int]:
    """One text's values of one tokenizer output, from its chunk's array packed by :func:`_compact`."""
    if packed.ndim == 0:
        return [int(packed)] * int(length)
    return packed[start : start + length].tolist()


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
