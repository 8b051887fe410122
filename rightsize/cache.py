"""The on-disk embedding cache, and the ledger that keeps energy honest when it serves a hit.

Layout: ``<root>/v1/<namespace>/<shard>.npz``. A *namespace* is one encoder configuration: the
sha256 of the model's files, the depth (``layers``), max length and precision, plus the settings
that change what encoding *costs* (device, batch size, attention kernel, threads, energy source),
because a hit is charged the cost measured when the text was encoded and that cost must be the
one this configuration would have paid. Inside a namespace, a *shard* holds the texts one encode
call had to compute: their text hashes, vectors, and the measured joules and seconds of each
(the call's measured energy split by token share). Shards, not one file per text: 67k texts would
be 67k files.

A shard stores a text's cost only as measured when its encode's window was long enough for the
meter to resolve; a shorter window's reading is mostly the counter's step (a GPU's moves every
~100 ms), and every hit would replay that noise. Such texts are stored at the namespace's encode
rate instead (joules per token over its windows that were resolved: ``encode_rate``), and not at all
while there is none, so they are measured again next time.

Each shard carries a sha256 over its arrays; a shard that cannot be read, has the wrong shapes or
a bad checksum is logged, deleted and its texts recomputed, never trusted. Writes go to a temporary
file and are renamed into place, so several processes can share a cache. The total size is bounded:
past ``max_bytes`` the least recently used shards (by mtime, touched on every read) are deleted.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import shutil
import tempfile
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from rightsize.model_facts import facts_at

log = logging.getLogger(__name__)

LAYOUT = "v1"
DEFAULT_MAX_BYTES = 2 * 1024**3
KEY_BYTES = 16  # a truncated sha256 per text: collisions are out of reach at any realistic size
_WEIGHTS_MEMO = "weights-sha256.json"
_RATE = "encode-rate.json"


def default_root() -> Path:
    env = os.environ.get("RIGHTSIZE_CACHE_DIR")
    return Path(env).expanduser() if env else Path.home() / ".cache" / "rightsize" / "embeddings"


def default_max_bytes() -> int:
    """``RIGHTSIZE_CACHE_MAX_MB`` when set, else 2 GiB."""
    env = os.environ.get("RIGHTSIZE_CACHE_MAX_MB")
    if env:
        try:
            value = float(env)
        except ValueError:
            from rightsize.errors import RightsizeError

            raise RightsizeError(f"RIGHTSIZE_CACHE_MAX_MB={env!r} is not a number of megabytes") from None
        return int(value * 1024**2)
    return DEFAULT_MAX_BYTES


def text_keys(texts: Sequence[str]) -> np.ndarray:
    """One fixed-size key per text (``S16``), the text's identity inside a namespace."""
    keys = np.empty(len(texts), dtype=f"S{KEY_BYTES}")
    for i, text in enumerate(texts):
        keys[i] = hashlib.sha256(text.encode("utf-8")).digest()[:KEY_BYTES]
    return keys


@dataclass
class CacheLedger:
    """What a rung's encoders took from the cache and what they really spent.

    ``charged_*`` is the stored cost of every text served without encoding it (a hit); the
    evaluator adds it to the phase's measured energy to get the configuration's cost.
    ``encode_*`` is what this run spent inside encode calls (lookups and real encoding).
    ``stored`` counts texts whose vectors were written to the cache: work that a repeat would not redo.
    """

    hits: int = 0
    misses: int = 0
    charged_joules: float = 0.0
    charged_seconds: float = 0.0
    encode_joules: float = 0.0
    encode_seconds: float = 0.0
    stored: int = 0

    def snapshot(self) -> "CacheLedger":
        return CacheLedger(**self.__dict__)

    def since(self, before: "CacheLedger") -> "CacheLedger":
        return CacheLedger(**{k: v - getattr(before, k) for k, v in self.__dict__.items()})

    def rewind(self, before: "CacheLedger") -> None:
        """Back to ``before``: forget work done since that is no phase's (texts stored stay stored)."""
        for k, v in before.__dict__.items():
            if k != "stored":
                setattr(self, k, v)

    def keep_one_pass(self, before: "CacheLedger", passes: int) -> None:
        """Count what happened since ``before`` once, when the same work ran ``passes`` times."""
        for k, v in self.since(before).__dict__.items():
            setattr(self, k, getattr(before, k) + (v // passes if isinstance(v, int) else v / passes))


@dataclass
class Served:
    """The result of a lookup: which texts were found, their vectors and their stored cost."""

    found: np.ndarray  # bool per requested key
    vectors: np.ndarray  # (n, dim) float32; rows of missing keys are undefined
    joules: np.ndarray  # per text, float64
    seconds: np.ndarray
    shards: list[Path] = field(default_factory=list)


class EmbeddingCache:
    """Vectors and their measured encode cost, per (encoder configuration, text)."""

    def __init__(self, root: str | os.PathLike | None = None, max_bytes: int | None = None):
        self.root = Path(root).expanduser() if root is not None else default_root()
        self.max_bytes = default_max_bytes() if max_bytes is None else int(max_bytes)
        self.base = self.root / LAYOUT

    def check_writable(self) -> None:
        """Raise RightsizeError (one line) when the cache folder cannot be created or written."""
        from rightsize.errors import RightsizeError

        try:
            self.base.mkdir(parents=True, exist_ok=True)
            fd, probe = tempfile.mkstemp(dir=self.base, prefix=".tmp-")
            os.close(fd)
            os.unlink(probe)
        except OSError as exc:
            raise RightsizeError(f"embedding cache {self.root} is not writable ({exc.strerror or exc}); "
                                 f"pass --cache-dir or --no-cache") from None

    # ------------------------------------------------------------------ namespaces

    @staticmethod
    def namespace(**fields: Any) -> str:
        """A stable name for an encoder configuration (any JSON-able fields)."""
        blob = json.dumps(fields, sort_keys=True, default=str).encode()
        return hashlib.sha256(blob).hexdigest()[:24]

    def describe_namespace(self, namespace: str, facts: dict[str, Any]) -> None:
        """Write what a namespace is (for ``rightsize cache info``) once."""
        folder = self.base / namespace
        folder.mkdir(parents=True, exist_ok=True)
        meta = folder / "namespace.json"
        if not meta.exists():
            _atomic_write_bytes(meta, json.dumps(facts, sort_keys=True, default=str).encode())

    # ------------------------------------------------------------------ lookup / store

    def lookup(self, namespace: str, keys: np.ndarray, dim: int) -> Served:
        n = len(keys)
        served = Served(np.zeros(n, dtype=bool), np.zeros((n, dim), dtype=np.float32),
                        np.zeros(n, dtype=np.float64), np.zeros(n, dtype=np.float64))
        folder = self.base / namespace
        if n == 0 or not folder.is_dir():
            return served
        position = {k: i for i, k in enumerate(keys.tolist())}  # duplicates: the last wins, filled below
        for shard in sorted(folder.glob("*.npz")):
            content = _read_shard(shard, dim)
            if content is None:
                continue
            rows = [(position[k], j) for j, k in enumerate(content["keys"].tolist()) if k in position]
            if not rows:
                continue
            dst, src = map(np.asarray, zip(*rows))
            served.found[dst] = True
            _copy_rows(served.vectors, dst, content["vectors"], src)
            served.joules[dst] = content["joules"][src]
            served.seconds[dst] = content["seconds"][src]
            served.shards.append(shard)
            _touch(shard)
        # Duplicate keys in the request: copy from the position that was filled, in place (only
        # the repeated rows move; re-indexing whole arrays would hold a second n x dim matrix).
        if len(position) < n:
            filled = np.fromiter((position[k] for k in keys.tolist()), dtype=np.intp, count=n)
            repeats = np.flatnonzero(filled != np.arange(n))
            src = filled[repeats]  # never itself a repeat: each key's filled position maps to itself
            served.found[repeats] = served.found[src]
            served.vectors[repeats] = served.vectors[src]
            served.joules[repeats], served.seconds[repeats] = served.joules[src], served.seconds[src]
        return served

    def store(self, namespace: str, keys: np.ndarray, vectors: np.ndarray, joules: np.ndarray,
              seconds: np.ndarray) -> Path | None:
        """Write one shard (atomically) and evict old shards past the size bound."""
        if len(keys) == 0:
            return None
        arrays = {
            "keys": np.ascontiguousarray(keys, dtype=f"S{KEY_BYTES}"),
            "vectors": np.ascontiguousarray(vectors, dtype=np.float32),
            "joules": np.ascontiguousarray(joules, dtype=np.float64),
            "seconds": np.ascontiguousarray(seconds, dtype=np.float64),
        }
        checksum = _checksum(arrays)
        arrays["checksum"] = np.frombuffer(checksum.encode(), dtype=np.uint8)
        folder = self.base / namespace
        folder.mkdir(parents=True, exist_ok=True)
        shard = folder / f"{checksum[:20]}.npz"
        fd, tmp = tempfile.mkstemp(dir=folder, prefix=".tmp-", suffix=".npz")
        try:
            with os.fdopen(fd, "wb") as f:
                np.savez(f, **arrays)
            if os.path.getsize(tmp) > self.max_bytes:
                log.warning("embedding cache: a shard of %d texts exceeds the cache bound (%d bytes); not kept",
                            len(keys), self.max_bytes)
                os.unlink(tmp)
                return None
            os.replace(tmp, shard)
        except BaseException:
            if os.path.exists(tmp):
                os.unlink(tmp)
            raise
        self.evict(keep=shard)
        return shard

    # ------------------------------------------------------------------ the encode rate

    def encode_rate(self, namespace: str) -> float | None:
        """Joules per token of this namespace's encodes whose windows the meter resolved; None before one."""
        try:
            rate = json.loads((self.base / namespace / _RATE).read_text())
            joules, tokens = float(rate["joules"]), float(rate["tokens"])
        except (OSError, ValueError, KeyError, TypeError):
            return None
        return joules / tokens if tokens > 0 and joules >= 0 else None

    def add_to_encode_rate(self, namespace: str, joules: float, tokens: int) -> None:
        """Add a resolved encode (its joules and tokens) to the namespace's rate."""
        path = self.base / namespace / _RATE
        try:
            rate = json.loads(path.read_text())
            total = {"joules": float(rate["joules"]) + joules, "tokens": int(rate["tokens"]) + int(tokens)}
        except (OSError, ValueError, KeyError, TypeError):
            total = {"joules": joules, "tokens": int(tokens)}
        path.parent.mkdir(parents=True, exist_ok=True)
        _atomic_write_bytes(path, json.dumps(total).encode())

    # ------------------------------------------------------------------ size, info, clear

    def shards(self) -> list[Path]:
        return list(self.base.glob("*/*.npz")) if self.base.is_dir() else []

    def size_bytes(self) -> int:
        return sum(_size(p) for p in self.shards())

    def evict(self, keep: Path | None = None) -> int:
        """Delete least recently used shards until the cache fits its bound; returns how many."""
        entries = []
        for p in self.shards():
            try:
                st = p.stat()
            except FileNotFoundError:  # another process evicted it
                continue
            entries.append((st.st_mtime_ns, st.st_size, p))
        total = sum(size for _, size, _ in entries)
        removed = 0
        for _, size, path in sorted(entries, key=lambda e: (e[2] == keep, e[0])):
            if total <= self.max_bytes:
                break
            _unlink(path)
            total -= size
            removed += 1
        if removed:
            log.info("embedding cache: evicted %d least recently used shard(s) to stay under %d bytes",
                     removed, self.max_bytes)
        return removed

    def info(self) -> dict[str, Any]:
        namespaces = []
        if self.base.is_dir():
            for folder in sorted(p for p in self.base.iterdir() if p.is_dir()):
                shards = list(folder.glob("*.npz"))
                facts: dict[str, Any] = {}
                try:
                    facts = json.loads((folder / "namespace.json").read_text())
                except (OSError, ValueError):
                    pass
                namespaces.append({"namespace": folder.name, "shards": len(shards),
                                   "bytes": sum(_size(p) for p in shards), **facts})
        return {"root": str(self.root), "max_bytes": self.max_bytes,
                "bytes": sum(ns["bytes"] for ns in namespaces), "namespaces": namespaces}

    def clear(self) -> int:
        """Delete every cached embedding, the ONNX exports of ``runtime: onnx`` (``<root>/onnx``,
        see rightsize.onnx_runtime) and the weight-hash memo; returns bytes freed."""
        exports = self.root / "onnx"
        freed = self.size_bytes() + sum(_size(p) for p in exports.rglob("*") if p.is_file())
        for folder in (self.base, exports):
            if folder.is_dir():
                shutil.rmtree(folder, ignore_errors=True)
        _unlink(self.root / _WEIGHTS_MEMO)
        return freed

    # ------------------------------------------------------------------ model identity

    def weights_hash(self, folder: str | os.PathLike) -> str:
        """sha256 over a model folder's files (:mod:`rightsize.model_facts`), memoized here by the
        path, size and mtime of each file."""
        facts = facts_at(Path(folder))
        signature = facts.files_signature()
        memo_path = self.root / _WEIGHTS_MEMO
        try:
            memo = json.loads(memo_path.read_text())
        except (OSError, ValueError):
            memo = {}
        entry = memo.get(str(facts.root))
        if isinstance(entry, dict) and entry.get("signature") == signature:
            return str(entry["sha256"])
        value = facts.files_sha256()
        memo[str(facts.root)] = {"signature": signature, "sha256": value}
        try:
            self.root.mkdir(parents=True, exist_ok=True)
            _atomic_write_bytes(memo_path, json.dumps(memo, indent=1, sort_keys=True).encode())
        except OSError as exc:  # a read-only cache still works, it just hashes again next time
            log.debug("cannot write %s: %s", memo_path, exc)
        return value


def split_cost(total: float, tokens: np.ndarray) -> np.ndarray:
    """Share ``total`` over texts in proportion to their token counts (what their encoding took)."""
    tokens = np.asarray(tokens, dtype=np.float64)
    if tokens.sum() <= 0:
        return np.full(len(tokens), total / max(len(tokens), 1))
    return total * tokens / tokens.sum()


def _copy_rows(target: np.ndarray, dst: np.ndarray, source: np.ndarray, src: np.ndarray, block: int = 4096) -> None:
    """``target[dst] = source[src]``, ``block`` rows at a time: the gathered temporary stays a few
    MB instead of a second copy of every row served from a shard."""
    for lo in range(0, len(dst), block):
        target[dst[lo : lo + block]] = source[src[lo : lo + block]]


def _checksum(arrays: dict[str, np.ndarray]) -> str:
    h = hashlib.sha256()
    for name in ("keys", "vectors", "joules", "seconds"):
        a = arrays[name]
        h.update(f"{name}:{a.dtype.str}:{a.shape}".encode())
        h.update(np.ascontiguousarray(a))  # the array's buffer: the same bytes as tobytes(), not a copy
    return h.hexdigest()


def _read_shard(path: Path, dim: int) -> dict[str, np.ndarray] | None:
    """A shard's verified arrays; None when it vanished (evicted) or was corrupt (then deleted)."""
    try:
        with np.load(path, allow_pickle=False) as z:
            arrays = {name: z[name] for name in ("keys", "vectors", "joules", "seconds", "checksum")}
    except FileNotFoundError:
        return None
    except (OSError, ValueError, KeyError, EOFError, zipfile.BadZipFile) as exc:
        return _corrupt(path, f"unreadable ({exc.__class__.__name__})")
    n = len(arrays["keys"])
    if arrays["vectors"].shape != (n, dim):
        return _corrupt(path, f"vectors of shape {arrays['vectors'].shape}, expected ({n}, {dim})")
    if arrays["joules"].shape != (n,) or arrays["seconds"].shape != (n,):
        return _corrupt(path, "cost arrays do not match the keys")
    if arrays["checksum"].tobytes().decode("ascii", "replace") != _checksum(arrays):
        return _corrupt(path, "checksum mismatch")
    return arrays


def _corrupt(path: Path, why: str) -> None:
    log.warning("embedding cache: %s is corrupt (%s); deleted, its texts will be encoded again", path, why)
    _unlink(path)
    return None


def _atomic_write_bytes(path: Path, data: bytes) -> None:
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".tmp-")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        os.replace(tmp, path)
    except BaseException:
        _unlink(Path(tmp))
        raise


def _touch(path: Path) -> None:
    try:
        os.utime(path)  # mtime marks recent use: access times are often not kept (noatime)
    except OSError:
        pass


def _size(path: Path) -> int:
    try:
        return path.stat().st_size
    except FileNotFoundError:
        return 0


def _unlink(path: Path) -> None:
    try:
        path.unlink()
    except FileNotFoundError:
        pass
