"""Markers that spare re-hashing a verified asset: next to it, the sha256 it was verified against
and each file's size and mtime. A rerun whose files all match trusts the marker; any change to a
file means hashing it again.
"""

from __future__ import annotations

import json
from pathlib import Path

from rightsize.assets.catalog import Asset
from rightsize.assets.hashing import list_files
from rightsize.assets.layout import atomic_write, repo_dir

_MARKER_VERSION = 1


def _fingerprint(folder: Path) -> dict[str, list[int]]:
    fp = {}
    for rel, path in list_files(folder):
        st = path.stat()
        fp[rel] = [st.st_size, st.st_mtime_ns]
    return fp


def marker_path(asset: Asset, hub: Path, data: Path) -> Path:
    """The marker file of ``asset``: in its hub repo folder, or beside a dataset's folder."""
    if asset.kind == "dataset":
        return data / f".{asset.name}.rightsize.json"
    return repo_dir(hub, asset.name) / ".rightsize.json"


def _read_marker(path: Path) -> dict:
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) and data.get("version") == _MARKER_VERSION else {}


def write_marker(path: Path, key: str, asset: Asset, folder: Path) -> None:
    """Record that ``folder`` (entry ``key``: its name) holds ``asset`` as verified just now."""
    data = _read_marker(path) or {"version": _MARKER_VERSION}
    data.setdefault("entries", {})[key] = {
        "asset": asset.name, "sha256": asset.sha256, "files": _fingerprint(folder)}
    atomic_write(path, json.dumps(data, indent=1, sort_keys=True))


def marker_ok(path: Path, key: str, asset: Asset, folder: Path) -> bool:
    """True if the marker vouches for ``folder``: same sha256 pin, no file changed since."""
    entry = _read_marker(path).get("entries", {}).get(key)
    return bool(entry) and entry.get("sha256") == asset.sha256 and \
        entry.get("files") == _fingerprint(folder)
