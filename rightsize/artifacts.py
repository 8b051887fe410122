"""The run folder's artifact store: each fitted config's state, saved once and restored instead of
fitted again (confirmation on the test split, reruns, export).

``RUN_DIR/artifacts/<fit key>/`` holds ``state/`` (what ``Rung.save`` wrote) and ``manifest.json``:
every file of ``state/`` with its size and sha256, the fit's identity and its recorded cost. The key
is a hex digest (:func:`rightsize.evaluate.fit_key`), never text from data. An artifact is written in
a temporary folder beside it and renamed into place, so a kill leaves the whole artifact or a stray
temporary folder (``.partial-*``, removed by a later save of the same key), never half of one. Every
sha256 is checked before a restore, and the manifest's own sha256 against the one the record keeps;
a corrupt artifact is deleted.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import re
import secrets
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

from rightsize.assets.hashing import sha256_file
from rightsize.records import Record
from rightsize.results import RUNS_FILE, read_records

log = logging.getLogger(__name__)

SCHEMA = "rightsize.artifact/1"
ARTIFACTS_DIR = "artifacts"
MANIFEST = "manifest.json"
STATE = "state"
_KEY = re.compile(r"[0-9a-f]{8,64}")
_PARTIAL = ".partial-"


class CorruptArtifact(Exception):
    """An artifact whose files do not match its manifest (or its manifest the record), or that cannot be read."""


@dataclass(frozen=True)
class Artifact:
    """A verified artifact: its folder, its manifest and the manifest's sha256."""

    folder: Path
    manifest: dict[str, Any]
    sha256: str

    @property
    def state(self) -> Path:
        """The folder ``Rung.restore`` reads."""
        return self.folder / STATE

    def reference(self, base: Path) -> dict[str, str]:
        """What a record keeps: the folder relative to ``base`` (the run folder) and the manifest's sha256."""
        return {"path": self.folder.relative_to(base).as_posix(), "sha256": self.sha256}


def file_listing(folder: Path, ignore: tuple[str, ...] = (), links: bool = False) -> dict[str, dict[str, Any]]:
    """Every regular file under ``folder`` but the top-level names in ``ignore``: relative POSIX path
    -> {bytes, sha256}. A link (unless ``links``: a model folder in the Hugging Face cache is links to
    its blobs) or any other kind of entry is refused (an artifact is plain files)."""
    files = {}
    for path in sorted(folder.rglob("*")):
        if path.relative_to(folder).parts[0] in ignore:
            continue
        if (path.is_symlink() and not links) or not (path.is_file() or path.is_dir()):
            raise CorruptArtifact(f"{path.relative_to(folder)} is not a plain file")
        if path.is_file():
            files[path.relative_to(folder).as_posix()] = {"bytes": path.stat().st_size, "sha256": sha256_file(path)}
    return files


def check_listing(folder: Path, expected: Any, ignore: tuple[str, ...] = (), links: bool = False) -> None:
    """``folder`` holds exactly the files of ``expected`` (a :func:`file_listing`), byte for byte."""
    if not isinstance(expected, dict) or not expected:
        raise CorruptArtifact("its manifest lists no files")
    found = file_listing(folder, ignore, links)
    extra, missing = sorted(set(found) - set(expected)), sorted(set(expected) - set(found))
    if missing or extra:
        raise CorruptArtifact(f"{(missing or extra)[0]} is {'missing' if missing else 'not in its manifest'}")
    for name, entry in expected.items():
        if not isinstance(entry, dict) or found[name] != {"bytes": entry.get("bytes"), "sha256": entry.get("sha256")}:
            raise CorruptArtifact(f"{name} does not match its sha256")


def write_manifest(folder: Path, manifest: dict[str, Any]) -> str:
    """Write ``manifest.json`` (flushed to disk) and return its sha256."""
    data = (json.dumps(manifest, sort_keys=True, ensure_ascii=False, allow_nan=False, indent=1) + "\n").encode()
    with open(folder / MANIFEST, "wb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())
    return hashlib.sha256(data).hexdigest()


def read_manifest(folder: Path, expected_sha256: str | None = None) -> tuple[dict[str, Any], str]:
    """``(manifest, its sha256)``; CorruptArtifact when unreadable or not the one expected."""
    try:
        data = (folder / MANIFEST).read_bytes()
    except OSError as exc:
        raise CorruptArtifact(f"{MANIFEST} cannot be read ({exc.strerror or exc})") from None
    digest = hashlib.sha256(data).hexdigest()
    if expected_sha256 is not None and digest != expected_sha256:
        raise CorruptArtifact(f"{MANIFEST} is not the one recorded (sha256 {digest[:12]}…, recorded "
                              f"{expected_sha256[:12]}…)")
    try:
        manifest = json.loads(data)
    except (json.JSONDecodeError, UnicodeDecodeError):
        raise CorruptArtifact(f"{MANIFEST} is not valid JSON") from None
    if not isinstance(manifest, dict) or manifest.get("schema") != SCHEMA:
        raise CorruptArtifact(f"{MANIFEST} is not a {SCHEMA} manifest")
    return manifest, digest


def _fsync_dir(folder: Path) -> None:
    fd = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


class ArtifactStore:
    """``RUN_DIR/artifacts``: save, find (verified), delete; and what the run's records say of a fit."""

    def __init__(self, run_dir: str | Path):
        self.run_dir = Path(run_dir)
        self.root = self.run_dir / ARTIFACTS_DIR

    def folder(self, key: str) -> Path:
        if not isinstance(key, str) or not _KEY.fullmatch(key):
            raise ValueError(f"not an artifact key: {key!r}")
        return self.root / key

    def save(self, key: str, write: Callable[[Path], None], about: dict[str, Any]) -> Artifact:
        """Call ``write(state folder)``, list its files in the manifest with ``about``, rename into place.

        When another process saved the same key meanwhile, its (verified) artifact is kept.
        """
        final = self.folder(key)
        self.root.mkdir(parents=True, exist_ok=True)
        self._remove_stale_partials(key)
        temp = self.root / f"{_PARTIAL}{key}-{os.getpid()}-{secrets.token_hex(4)}"
        try:
            (temp / STATE).mkdir(parents=True)
            write(temp / STATE)
            manifest = {"schema": SCHEMA, "key": key, **about, "files": file_listing(temp / STATE)}
            digest = write_manifest(temp, manifest)
            for path in (temp / STATE).rglob("*"):
                if path.is_file():
                    with open(path, "rb") as f:
                        os.fsync(f.fileno())
            if final.exists():
                try:
                    return self.find(key)  # another process's, complete and verified
                except CorruptArtifact:
                    self.delete(key)
            os.rename(temp, final)
            _fsync_dir(self.root)
        finally:
            if temp.exists():
                shutil.rmtree(temp, ignore_errors=True)
        return Artifact(final, manifest, digest)

    def find(self, key: str, expected_sha256: str | None = None) -> Artifact | None:
        """The artifact of ``key``, every file verified; None when there is none; CorruptArtifact when it
        does not match its manifest (or the manifest the sha256 a record expects)."""
        folder = self.folder(key)
        if folder.is_symlink():
            raise CorruptArtifact("its folder is a link")
        if not folder.exists():
            return None
        manifest, digest = read_manifest(folder, expected_sha256)
        if manifest.get("key") != key:
            raise CorruptArtifact(f"{MANIFEST} names key {manifest.get('key')!r}")
        entries = sorted(p.name for p in folder.iterdir())
        if entries != sorted([MANIFEST, STATE]):
            raise CorruptArtifact(f"unexpected entries beside {MANIFEST}: {', '.join(entries)}")
        check_listing(folder / STATE, manifest.get("files"))
        return Artifact(folder, manifest, digest)

    def delete(self, key: str) -> None:
        folder = self.folder(key)
        if folder.is_symlink() or folder.is_file():
            folder.unlink()
        else:
            shutil.rmtree(folder, ignore_errors=True)

    def recorded(self, key: str) -> Record | None:
        """The latest record of the run folder that saved or restored the artifact of fit ``key``."""
        found = None
        for r in read_records(self.run_dir / RUNS_FILE):
            if r.fit_key == key and isinstance(r.artifact, dict) and r.artifact.get("sha256"):
                found = r
        return found

    def recorded_validation(self, key: str) -> Record | None:
        """The latest complete validation record of fit ``key``: the predictions a new fit should reproduce."""
        found = None
        for r in read_records(self.run_dir / RUNS_FILE):
            if r.fit_key == key and r.split == "validation" and r.ok:
                found = r
        return found

    def _remove_stale_partials(self, key: str) -> None:
        """Temporary folders of ``key`` left by a process that was killed while saving."""
        for path in self.root.glob(f"{_PARTIAL}{key}-*"):
            try:
                pid = int(path.name[len(_PARTIAL) + len(key) + 1:].split("-")[0])
            except ValueError:
                continue
            if not _pid_alive(pid):
                shutil.rmtree(path, ignore_errors=True)
