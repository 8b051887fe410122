"""What a model's own files say about it, read without loading a weight, once per model folder.

Its depth and longest input (config files), whether transformers has a FlashAttention path for
its architecture, its compute weights (safetensors or GGUF headers) and a sha256 of its files.
The cost model, the search space and the embedding cache all read them here.
"""

from __future__ import annotations

import functools
import hashlib
import json
import re
import struct
from pathlib import Path
from typing import Any

from rightsize.models import read_json, resolve_model, transformer_folder

# Embedding tables are looked up, not multiplied: they do not count as compute.
_EMBEDDING = re.compile(r"(embeddings?\.|embed_tokens|token_embd|\bwte\b|\bwpe\b|position_embd|shared\.weight)")
_LAYER = re.compile(r"(?:^|\.)(?:layer|layers|h|blk|block|blocks)\.(\d+)\.")


@functools.lru_cache(maxsize=64)
def facts_of(model: str) -> "ModelFacts":
    """The facts of ``model`` (an id or a path); RightsizeError when it cannot be had."""
    return facts_at(resolve_model(model))


def facts_at(folder: str | Path) -> "ModelFacts":
    """The facts of the model in ``folder`` (one object per folder, however its path is spelled)."""
    return _facts(Path(folder).resolve())


@functools.lru_cache(maxsize=64)
def _facts(root: Path) -> "ModelFacts":
    return ModelFacts(root)


class ModelFacts:
    """One model folder's facts, each read when first asked (the files' hash and signature: at
    every ask, since files can change under a long-lived process)."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self._compute: dict[int | None, int | None] = {}

    @functools.cached_property
    def transformer_folder(self) -> Path:
        """The transformer module's folder: the root, or the sub-folder named in modules.json."""
        return transformer_folder(self.root)

    @functools.cached_property
    def config(self) -> dict[str, Any]:
        """The transformer's config.json ({} when missing or unreadable)."""
        config = read_json(self.transformer_folder / "config.json")
        return config if isinstance(config, dict) else {}

    @functools.cached_property
    def layers(self) -> int | None:
        """Number of transformer layers (None: the config does not say)."""
        config = self.config
        layers = config.get("num_hidden_layers") or config.get("n_layer") or config.get("num_layers")
        return layers if isinstance(layers, int) else None

    @functools.cached_property
    def max_length(self) -> int | None:
        """The longest input in tokens: what sentence-transformers truncates at (sentence_bert_config.json
        up to v5, the tokenizer's model_max_length in v6), else the position embeddings."""
        folder = self.transformer_folder
        candidates = [(read_json(folder / "sentence_bert_config.json") or {}).get("max_seq_length"),
                      (read_json(folder / "tokenizer_config.json") or {}).get("model_max_length"),
                      self.config.get("max_position_embeddings")]
        return next((int(c) for c in candidates if isinstance(c, (int, float)) and 0 < c < 1_000_000), None)

    @functools.cached_property
    def supports_flash_attention(self) -> bool:
        """Whether transformers has a FlashAttention path for this architecture (the model class's
        own flag; MPNet, for one, has none, and asking for it fails the load). False when unknown."""
        try:
            from transformers import AutoConfig
            from transformers.models.auto.modeling_auto import MODEL_MAPPING

            config = AutoConfig.from_pretrained(str(self.transformer_folder), local_files_only=True)
            cls = MODEL_MAPPING[type(config)]
        except Exception:  # noqa: BLE001 — an architecture transformers cannot name: do not offer it
            return False
        return bool(getattr(cls, "_supports_flash_attn", False) or getattr(cls, "_supports_flash_attn_2", False))

    @functools.cached_property
    def tensor_sizes(self) -> dict[str, int]:
        """Element count per tensor name, from the safetensors (else the first GGUF) file headers."""
        files = sorted(self.root.glob("*.safetensors")) or sorted(self.root.glob("*/*.safetensors"))
        if files:
            out: dict[str, int] = {}
            for f in files:
                out.update(_safetensors_sizes(f))
            return out
        ggufs = sorted(self.root.glob("*.gguf"))
        return _gguf_sizes(ggufs[0]) if ggufs else {}

    def compute_weights(self, layers: int | None = None) -> int | None:
        """Parameters that take part in matrix products (embedding tables are looked up, not
        multiplied), of the first ``layers`` layers (all when None); None when no header says."""
        if layers not in self._compute:
            total = 0
            for name, n in self.tensor_sizes.items():
                if _EMBEDDING.search(name):
                    continue
                m = _LAYER.search(name)
                if m is not None and layers is not None and int(m.group(1)) >= layers:
                    continue
                total += n
            self._compute[layers] = total or None
        return self._compute[layers]

    def files(self) -> list[Path]:
        """Every file of the folder (hidden ones aside), sorted: what the weight hash covers."""
        return sorted(p for p in self.root.rglob("*") if p.is_file() and not p.name.startswith("."))

    def files_signature(self) -> str:
        """A cheap stand-in for :meth:`files_sha256`: sha256 of each file's path, size and mtime."""
        return hashlib.sha256(json.dumps(
            [(p.relative_to(self.root).as_posix(), p.stat().st_size, p.stat().st_mtime_ns) for p in self.files()]
        ).encode()).hexdigest()

    def files_sha256(self) -> str:
        """sha256 over every file's path and bytes (reads them all: memoize by :meth:`files_signature`)."""
        digest = hashlib.sha256()
        for p in self.files():
            digest.update(p.relative_to(self.root).as_posix().encode() + b"\0")
            with open(p, "rb") as f:
                while chunk := f.read(1 << 20):
                    digest.update(chunk)
        return digest.hexdigest()


def _safetensors_sizes(path: Path) -> dict[str, int]:
    """Element counts from a safetensors header: 8 bytes of length, then JSON (format spec)."""
    with open(path, "rb") as f:
        (length,) = struct.unpack("<Q", f.read(8))
        header = json.loads(f.read(length))
    out = {}
    for name, info in header.items():
        if name == "__metadata__" or not isinstance(info, dict):
            continue
        n = 1
        for d in info.get("shape", []):
            n *= int(d)
        out[name] = n
    return out


def _gguf_sizes(path: Path) -> dict[str, int]:
    from gguf import GGUFReader

    return {t.name: int(t.n_elements) for t in GGUFReader(str(path)).tensors}
