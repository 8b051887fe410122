"""Facts about the machine and software a run was measured on, written once per run."""

from __future__ import annotations

import os
import platform
import socket
import subprocess
import sys
from datetime import datetime, timezone
from importlib import metadata
from pathlib import Path
from typing import Any

from rightsize.energy import cuda

PACKAGES = ("rightsize", "torch", "transformers", "sentence-transformers", "faiss-cpu", "scikit-learn",
            "optuna", "numpy", "nvidia-ml-py")


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def git_hash() -> str | None:
    here = Path(__file__).resolve().parent
    try:
        out = subprocess.run(["git", "rev-parse", "HEAD"], cwd=here, capture_output=True, text=True, timeout=5)
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=here,
                               capture_output=True, text=True, timeout=5)
    except (OSError, subprocess.SubprocessError):
        return None
    if out.returncode != 0:
        return None
    return out.stdout.strip() + ("-dirty" if dirty.stdout.strip() else "")


def collect(run_id: str, device: str, meter: dict[str, Any], argv: list[str] | None = None) -> dict[str, Any]:
    import torch

    versions = {}
    for name in PACKAGES:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = None
    gpus, in_use = [], None
    if torch.cuda.is_available():
        gpus = [torch.cuda.get_device_name(i) for i in range(torch.cuda.device_count())]
        if device.startswith("cuda"):
            index = cuda.device_index(device, torch)
            props = torch.cuda.get_device_properties(index)
            in_use = {"index": index, "name": props.name, "uuid": str(props.uuid)}
    return {
        "schema": "rightsize.environment/1",
        "run_id": run_id,
        "time": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "argv": argv if argv is not None else sys.argv,
        "host": socket.gethostname(),
        "python": platform.python_version(),
        "platform": platform.platform(),
        "cpu": cpu_model(),
        "cpu_count": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "device": device,
        "gpus": gpus,
        "gpu_in_use": in_use,  # the device measured (the meter's characterisation of it: meter.gpu_boards)
        "meter": meter,
        "versions": versions,
        "git": git_hash(),
    }
