"""Faults: Ctrl-C and kill -9 in the middle of `rightsize evaluate` and `rightsize search`, a kill in
the middle of writing records, and a configuration that runs out of memory.

The interrupted commands are real processes of the real CLI. To interrupt them *in the middle*,
deterministically, the ladder holds one extra rung kind, ``sleepy``, registered by a small launcher
before the CLI starts: its fit writes a marker file and sleeps, so the test signals the process
exactly while an evaluation is running and after earlier ones were recorded.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
from click.testing import CliRunner

import rightsize
from rightsize.cli import cli
from rightsize.results import RunLog
from rightsize.rungs import RUNG_KINDS, register
from rightsize.rungs.base import Rung

LAUNCHER = textwrap.dedent('''
    """The rightsize CLI with two extra rung kinds: ``sleepy``, whose fit sleeps, and ``slow-save``, whose
    save sleeps (only while SLEEPY_MARKER is set)."""
    import os, signal, sys, time
    from pathlib import Path

    # Ctrl-C as in a terminal, even when the test run itself was started in the background, where
    # the shell ignores SIGINT and a child would inherit that and never see KeyboardInterrupt.
    signal.signal(signal.SIGINT, signal.default_int_handler)

    from rightsize.rungs import register
    from rightsize.rungs.base import Rung


    @register
    class Sleepy(Rung):
        kind = "sleepy"

        def load(self):
            pass

        def fit(self, texts, labels):
            marker = os.environ.get("SLEEPY_MARKER")
            if marker:
                Path(marker).write_text(str(os.getpid()))
                time.sleep(float(os.environ.get("SLEEPY_SECONDS", "120")))
            self.label = sorted(set(labels))[0]

        def predict(self, texts):
            return [self.label] * len(texts)

        def n_params(self):
            return 1


    @register
    class SlowSave(Sleepy):
        kind = "slow-save"

        def fit(self, texts, labels):
            self.label = sorted(set(labels))[0]

        def save(self, folder):
            (folder / "label.json").write_text('"' + self.label + '"')
            marker = os.environ.get("SLEEPY_MARKER")
            if marker:
                Path(marker).write_text(str(os.getpid()))
                time.sleep(120)

        def restore(self, folder):
            self.label = (folder / "label.json").read_text().strip('"')


    from rightsize.cli import main

    sys.argv[0] = "rightsize"
    main()
''')


@pytest.fixture
def launcher(tmp_path) -> Path:
    path = tmp_path / "launch_rightsize.py"
    path.write_text(LAUNCHER)
    return path


def start(launcher: Path, args: list, marker: Path | None, tmp_path: Path, **extra_env: str) -> subprocess.Popen:
    env = {**os.environ, **extra_env, "HF_HUB_OFFLINE": "1", "RIGHTSIZE_CACHE_DIR": str(tmp_path / "cache"),
           "PYTHONUNBUFFERED": "1"}
    # The checkout under test, not whichever copy of rightsize the environment has installed.
    checkout = str(Path(rightsize.__file__).resolve().parents[1])
    env["PYTHONPATH"] = os.pathsep.join(p for p in (checkout, env.get("PYTHONPATH")) if p)
    env.pop("SLEEPY_MARKER", None)
    if marker is not None:
        env["SLEEPY_MARKER"] = str(marker)
    return subprocess.Popen([sys.executable, str(launcher), *map(str, args)], env=env, cwd=tmp_path,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def interrupt_when_sleeping(proc: subprocess.Popen, marker: Path, sig: int) -> tuple[int, str]:
    """Wait until the sleepy rung is running, send ``sig``, return (exit code, stderr)."""
    deadline = time.monotonic() + 180
    while not marker.exists():
        if proc.poll() is not None:
            out, err = proc.communicate()
            pytest.fail(f"the command ended (exit {proc.returncode}) before the sleepy rung ran:\n{out}\n{err}")
        if time.monotonic() > deadline:
            proc.kill()
            pytest.fail("the sleepy rung never started")
        time.sleep(0.05)
    marker.unlink()
    proc.send_signal(sig)
    out, err = proc.communicate(timeout=120)
    return proc.returncode, err


def complete_lines(path: Path) -> list[dict]:
    """Every line of runs.jsonl, each of which must be a whole JSON record."""
    raw = path.read_bytes()
    assert raw.endswith(b"\n"), "runs.jsonl ends in a torn line"
    return [json.loads(line) for line in raw.splitlines()]


# ------------------------------------------------------------------ evaluate


@pytest.mark.subprocess
def test_evaluate_survives_ctrl_c_and_kill_9_and_resumes_without_redoing(tmp_path, tiny_task, tiny_encoder, launcher):
    ladder = tmp_path / "faults.yaml"
    ladder.write_text(
        "rungs:\n"
        "  - {name: tfidf, kind: tfidf}\n"
        f"  - {{name: tiny-knn, kind: knn, model: '{tiny_encoder}', k: 5}}\n"
        "  - {name: sleepy, kind: sleepy}\n"
        "  - {name: tfidf-c1, kind: tfidf, C: 1.0}\n")
    out, marker = tmp_path / "run", tmp_path / "sleeping"
    args = ["evaluate", tiny_task, "--ladder", ladder, "--out", out, "--meter", "estimate"]

    code, err = interrupt_when_sleeping(start(launcher, args, marker, tmp_path), marker, signal.SIGINT)
    assert code == 130, err
    assert "interrupted" in err and "Traceback" not in err
    first = complete_lines(out / "runs.jsonl")
    assert [(r["rung"], r["status"]) for r in first] == [("tfidf", "ok"), ("tiny-knn", "ok")]
    after_ctrl_c = (out / "runs.jsonl").read_bytes()

    code, err = interrupt_when_sleeping(start(launcher, args, marker, tmp_path), marker, signal.SIGKILL)
    assert code == -signal.SIGKILL
    assert "tfidf (already recorded; skipped)" in err and "tiny-knn (already recorded; skipped)" in err
    assert (out / "runs.jsonl").read_bytes() == after_ctrl_c  # nothing redone, nothing lost

    done = start(launcher, args, None, tmp_path)
    stdout, err = done.communicate(timeout=300)
    assert done.returncode == 0, err
    records = complete_lines(out / "runs.jsonl")
    assert (out / "runs.jsonl").read_bytes().startswith(after_ctrl_c)
    assert [(r["rung"], r["status"]) for r in records] == [
        ("tfidf", "ok"), ("tiny-knn", "ok"), ("sleepy", "ok"), ("tfidf-c1", "ok")]
    assert len({r["key"] for r in records}) == 4
    assert [r.to_dict() for r in RunLog(out, create=False).records()] == records


@pytest.mark.subprocess
def test_two_evaluates_on_one_run_folder_lose_and_duplicate_nothing(tmp_path, tiny_task, launcher):
    ladder = tmp_path / "two.yaml"
    ladder.write_text("rungs:\n  - {name: sleepy, kind: sleepy}\n  - {name: tfidf, kind: tfidf}\n")
    out, marker = tmp_path / "run", tmp_path / "sleeping"
    args = ["evaluate", tiny_task, "--ladder", ladder, "--out", out, "--meter", "estimate"]
    first = start(launcher, args, marker, tmp_path, SLEEPY_SECONDS="25")
    deadline = time.monotonic() + 120
    while not marker.exists() and time.monotonic() < deadline and first.poll() is None:
        time.sleep(0.05)
    assert marker.exists(), first.communicate()
    second = start(launcher, args, None, tmp_path)  # would evaluate sleepy at once, were it not waiting
    for proc in (first, second):
        _, err = proc.communicate(timeout=300)
        assert proc.returncode == 0, err
    records = complete_lines(out / "runs.jsonl")
    assert sorted(r["rung"] for r in records) == ["sleepy", "tfidf"]  # each evaluated once, none lost


# ------------------------------------------------------------------ search


@pytest.mark.subprocess
def test_search_survives_ctrl_c_and_kill_9_and_resumes_without_redoing(tmp_path, tiny_task, launcher):
    ladder = tmp_path / "faults.yaml"
    # The ladder's rungs are tried first, in order: tfidf is recorded, then sleepy is running.
    ladder.write_text("rungs:\n  - {name: tfidf, kind: tfidf}\n  - {name: sleepy, kind: sleepy}\n")
    out, marker = tmp_path / "run", tmp_path / "sleeping"
    args = ["search", tiny_task, "--ladder", ladder, "--out", out, "--trials", "3", "--meter", "estimate",
            "--no-cache", "--quiet"]

    code, err = interrupt_when_sleeping(start(launcher, args, marker, tmp_path), marker, signal.SIGINT)
    assert code == 130, err
    assert "Traceback" not in err
    first = complete_lines(out / "runs.jsonl")
    assert [(r["rung"], r["status"]) for r in first] == [("tfidf", "ok")]
    after_ctrl_c = (out / "runs.jsonl").read_bytes()

    code, err = interrupt_when_sleeping(start(launcher, args, marker, tmp_path), marker, signal.SIGKILL)
    assert code == -signal.SIGKILL
    assert (out / "runs.jsonl").read_bytes() == after_ctrl_c  # tfidf was not evaluated again

    done = start(launcher, args, None, tmp_path)
    stdout, err = done.communicate(timeout=300)
    assert done.returncode in (0, 1), err  # 1: no adequate config, still a finished search
    records = complete_lines(out / "runs.jsonl")
    assert (out / "runs.jsonl").read_bytes().startswith(after_ctrl_c)
    keys = [r["key"] for r in records]
    assert len(keys) == len(set(keys)), "a finished configuration was evaluated twice"
    assert "sleepy" in [r["rung"] for r in records]


# ------------------------------------------------------------------ a kill while writing


WRITER = textwrap.dedent('''
    import hashlib, sys
    from rightsize.records import Record
    from rightsize.results import RunLog

    log = RunLog(sys.argv[1])
    i = 0
    while True:  # large records: a kill lands inside a write as often as between two
        payload = hashlib.sha256(str(i).encode()).hexdigest() * 20000
        log.append(Record(key=f"k{i}", status="ok", extra={"payload": payload}))
        i += 1
''')


@pytest.mark.subprocess
def test_kill_9_while_appending_never_loses_a_finished_record(tmp_path):
    import hashlib

    out = tmp_path / "run"
    script = tmp_path / "writer.py"
    script.write_text(WRITER)
    def size() -> int:
        return (out / "runs.jsonl").stat().st_size if (out / "runs.jsonl").exists() else 0

    for attempt in range(3):  # each writer is killed after it has appended a few records
        proc = subprocess.Popen([sys.executable, str(script), str(out)])
        start_size, deadline = size(), time.monotonic() + 60
        while size() < start_size + 3_000_000 and time.monotonic() < deadline:
            time.sleep(0.005)
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    log = RunLog(out)  # opening repairs a torn tail, if the kill left one
    records = complete_lines(out / "runs.jsonl")
    assert len(records) >= 3 and records == [r.to_dict() for r in log.records()]
    for r in records:  # every record is whole, not a mix of two writes
        i = int(r["key"][1:])
        assert r["payload"] == hashlib.sha256(str(i).encode()).hexdigest() * 20000


# ------------------------------------------------------------------ a config that fails


if "fault-oom" not in RUNG_KINDS:
    @register
    class OutOfMemoryRung(Rung):
        """Runs out of memory in fit, as a too-large batch or model would (host or GPU)."""

        kind = "fault-oom"

        def load(self) -> None:
            pass

        def fit(self, texts, labels) -> None:
            import torch

            raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 80.00 GiB")

        def predict(self, texts):
            raise AssertionError("never reached")

        def n_params(self) -> int:
            return 0


def test_a_config_that_runs_out_of_memory_is_recorded_and_the_rest_go_on(tmp_path, tiny_task):
    ladder = tmp_path / "oom.yaml"
    ladder.write_text("rungs:\n  - {name: tfidf, kind: tfidf}\n  - {name: huge, kind: fault-oom}\n"
                      "  - {name: tfidf-c1, kind: tfidf, C: 1.0}\n")
    out = tmp_path / "run"
    args = ["evaluate", tiny_task, "--ladder", ladder, "--out", out, "--meter", "estimate", "--quiet"]
    result = CliRunner().invoke(cli, [str(a) for a in args])
    assert result.exit_code == 0, result.output
    records = RunLog(out, create=False).records()
    assert [(r.rung, r.status) for r in records] == [("tfidf", "ok"), ("huge", "failed"), ("tfidf-c1", "ok")]
    failed = records[1]
    assert failed.failed_phase == "fit" and "OutOfMemoryError" in failed.error
    assert set(failed.joules) == {"load"}  # the phases that ran are still measured
    # A rerun retries only the failed config.
    again = CliRunner().invoke(cli, [str(a) for a in args[:-1]])
    assert again.exit_code == 0
    assert [r.rung for r in RunLog(out, create=False).records()] == ["tfidf", "huge", "tfidf-c1", "huge"]


# ------------------------------------------------------------------ a full disk


def _full_disk_on(monkeypatch, name: str) -> None:
    """os.write to the file ``name`` writes half of what it is given, then fails with ENOSPC."""
    import errno

    real_write = os.write

    def write(fd, data):
        if os.readlink(f"/proc/self/fd/{fd}").endswith(name):
            real_write(fd, bytes(data[: len(data) // 2]))
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        return real_write(fd, data)

    monkeypatch.setattr(os, "write", write)


def test_a_full_disk_while_appending_leaves_runs_jsonl_whole_and_says_so(tmp_path, tiny_task, monkeypatch):
    out = tmp_path / "run"
    ladder = tmp_path / "two.yaml"
    ladder.write_text("rungs:\n  - {name: tfidf, kind: tfidf}\n  - {name: tfidf-c1, kind: tfidf, C: 1.0}\n")
    args = ["evaluate", tiny_task, "--ladder", ladder, "--out", out, "--meter", "estimate", "--quiet"]
    assert CliRunner().invoke(cli, [str(a) for a in [*args, "--rungs", "tfidf"]]).exit_code == 0
    before = (out / "runs.jsonl").read_bytes()
    _full_disk_on(monkeypatch, "runs.jsonl")
    result = CliRunner().invoke(cli, [str(a) for a in args])
    assert result.exit_code == 2, result.output
    lines = [line for line in result.output.strip().splitlines() if line.strip()]
    assert len(lines) == 1 and "could not record 'tfidf-c1'" in lines[0] and "No space left" in lines[0], lines
    assert "Traceback" not in result.output
    assert (out / "runs.jsonl").read_bytes() == before


def test_a_full_disk_while_writing_an_artifact_keeps_the_record_and_says_so(tmp_path, tiny_task, monkeypatch):
    import errno

    import rightsize.artifacts as artifacts

    def full(folder, manifest):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(artifacts, "write_manifest", full)
    out = tmp_path / "run"
    args = ["evaluate", tiny_task, "--rungs", "tfidf", "--out", out, "--meter", "estimate", "--quiet"]
    result = CliRunner().invoke(cli, [str(a) for a in args])
    assert result.exit_code == 0, result.output
    assert "could not save the artifact of tfidf" in result.output and "No space left" in result.output
    (record,) = RunLog(out, create=False).records()
    assert record.status == "ok" and record.artifact["path"] is None
    leftovers = list((out / "artifacts").glob("*")) if (out / "artifacts").exists() else []
    assert leftovers == []  # the partial folder was removed
