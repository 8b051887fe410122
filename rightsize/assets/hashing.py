"""What an asset's sha256 pin is checked against: the key file of a model, or for a dataset a
digest over every file's relative path and contents (not mtimes, not the folder's location).
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

from rightsize.assets.catalog import Asset
from rightsize.errors import RightsizeError

CHUNK = 1 << 20  # bytes per read when streaming copies and hashes


def sha256_file(path: str | os.PathLike) -> str:
    """sha256 of a file, read in 1 MiB chunks."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(CHUNK):
            h.update(chunk)
    return h.hexdigest()


def list_files(root: Path) -> list[tuple[str, Path]]:
    """All files under ``root`` as (posix relative path, path), sorted by relative path."""
    out = [(p.relative_to(root).as_posix(), p) for p in root.rglob("*") if p.is_file()]
    return sorted(out)


def dataset_digest(root: str | os.PathLike) -> tuple[str, int]:
    """(digest, file count) of a folder: sha256 over ``relpath NUL sha256(file) LF`` per file,
    files sorted by their posix relative path. Independent of mtimes and of the folder's location.
    """
    h = hashlib.sha256()
    files = list_files(Path(root))
    for rel, path in files:
        h.update(rel.encode("utf-8") + b"\0" + sha256_file(path).encode("ascii") + b"\n")
    return h.hexdigest(), len(files)


def asset_digest(asset: Asset, folder: Path) -> str:
    """Hash what the asset pins inside ``folder``; raises RightsizeError if it is missing or the
    dataset's file count is off (the caller compares the hash)."""
    if asset.kind == "dataset":
        digest, count = dataset_digest(folder)
        if asset.file_count is not None and count != asset.file_count:
            raise RightsizeError(
                f"{asset.name}: expected {asset.file_count} files in {folder}, found {count}")
        return digest
    key = folder / asset.key
    if not key.is_file():
        raise RightsizeError(f"{asset.name}: {key} is missing")
    return sha256_file(key)


def check_hash(asset: Asset, what: str, actual: str) -> None:
    """RightsizeError naming ``what`` unless ``actual`` is the asset's pinned sha256."""
    if actual != asset.sha256:
        raise RightsizeError(f"sha256 mismatch for {what}: expected {asset.sha256}, got {actual}")
