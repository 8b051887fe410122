"""scripts/gpu_check.sh, the check a lent GPU machine runs in one device command: its limits fit that
command, its summary survives a failed step, and its dry run passes on a CPU within those limits."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
SCRIPT = ROOT / "scripts" / "gpu_check.sh"
DEVICE_COMMAND_S = 540  # what one device command leaves the script, after the machine's start


def limits() -> tuple[int, dict[str, int]]:
    text = SCRIPT.read_text()
    total = int(re.search(r"^TOTAL_LIMIT_S=(\d+)$", text, re.M).group(1))
    steps = dict(re.findall(r"\[(\w+)\]=(\d+)", re.search(r"^declare -A LIMIT=\((.*)\)$", text, re.M).group(1)))
    return total, {k: int(v) for k, v in steps.items()}


def run(tmp_path: Path, *args: str, python: str = sys.executable,
        timeout: int = 600) -> tuple[subprocess.CompletedProcess, dict]:
    out = tmp_path / "out"
    env = {**os.environ, "OUT": str(out), "PYTHON": python}
    proc = subprocess.run(["bash", str(SCRIPT), *args], cwd=ROOT, env=env, capture_output=True, text=True,
                          timeout=timeout)
    summary = json.loads((out / "gpu_check.json").read_text())
    return proc, summary


def test_the_limits_add_up_to_less_than_one_device_command():
    total, steps = limits()
    assert set(steps) == {"setup", "model", "characterise", "pytest", "encode", "overhead"}
    assert sum(steps.values()) <= total <= DEVICE_COMMAND_S


def test_a_failed_step_still_leaves_the_summary(tmp_path):
    proc, summary = run(tmp_path, "--dry-run", python=str(tmp_path / "no-python"))
    assert proc.returncode == 1
    assert summary["stages"]["setup"]["status"] == "failed"
    assert summary["stages"]["encode"] == {"status": "not run"}
    assert summary["limits_s"] == limits()[1] and summary["total_limit_s"] == limits()[0]


def sst2_reachable() -> bool:
    """What the script looks for (scripts/gpu_check.sh): $RIGHTSIZE_SHARED_DATA, ../shared/data, a stage."""
    roots = [Path(os.environ["RIGHTSIZE_SHARED_DATA"])] if os.environ.get("RIGHTSIZE_SHARED_DATA") else [
        ROOT.parent / "shared" / "data", ROOT / ".cache" / "gpu-stage" / "data"]
    return any((root / "sst2" / "train.jsonl").is_file() for root in roots)


@pytest.mark.slow  # MiniLM's real weights, about a minute on two cores
@pytest.mark.skipif(not sst2_reachable(), reason="no SST-2 data where gpu_check.sh looks (../shared/data or a stage)")
def test_the_dry_run_passes_on_a_cpu_within_the_limits(tmp_path):
    proc, summary = run(tmp_path, "--dry-run")
    assert proc.returncode == 0, proc.stderr[-3000:]
    total, steps = limits()
    assert summary["mode"] == "dry" and summary["seconds"] <= total
    for name, stage in summary["stages"].items():
        assert stage["status"] == "ok" and stage["seconds"] <= steps[name], (name, stage)
    assert summary["meter"]["energy_source"] and "resolved_window" in summary["meter"]  # the meter, first
    # Every encode configuration, from the one encode step (one process).
    assert [(e["precision"], e["attn"]) for e in summary["encode"]] == [("fp32", "sdpa"), ("fp32", "eager")]
    for e in summary["encode"]:
        assert e["rightsize_j_per_text"] > 0 and e["rightsize_j_per_text_uncertainty"] is not None
    assert summary["meter_overhead"]["per_window_us"]
