"""The CUDA side of measuring a GPU: which device torch computes on (and its UUID, which names the
board to NVML), its start-up kept out of every window, queued work finished at window edges, and
work that keeps the GPU busy while its counter is timed.

torch is looked up in ``sys.modules``, never imported: if it is not loaded, nothing in this process
has queued CUDA work, and importing it would cost seconds.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from typing import Any

from rightsize.errors import RightsizeError

BUSY_SIZE = 2048  # a 2048 x 2048 float32 matmul: ~17 GFLOP, about a millisecond on a data-centre GPU
BUSY_QUEUE = 16  # matmuls queued per refill: the GPU stays busy between two polls of the counter


def loaded_torch() -> Any | None:
    """torch, if this process has imported it and it sees a CUDA device; else None."""
    torch = sys.modules.get("torch")
    if torch is None:
        return None
    try:
        return torch if torch.cuda.is_available() else None
    except Exception:  # noqa: BLE001 — a broken CUDA install is "no CUDA" here; the run reports it
        return None


def device_index(device: str, torch: Any | None) -> int:
    """N for "cuda:N"; for "cuda", the device torch computes on (its current device; 0 without torch)."""
    if device.startswith("cuda:"):
        try:
            return int(device[5:])
        except ValueError:
            raise RightsizeError(f"device {device!r}: expected cuda or cuda:N") from None
    return int(torch.cuda.current_device()) if torch is not None else 0


def device_uuid(torch: Any, index: int) -> str:
    """The UUID CUDA reports for device ``index`` (bare, without NVML's "GPU-" prefix)."""
    return str(torch.cuda.get_device_properties(index).uuid)


def warm_up(torch: Any, index: int) -> None:
    """Create device ``index``'s CUDA context and cuBLAS handle and run one matmul, so that the first
    window (the first GPU config of a ladder) is not charged a start-up every later one skips."""
    try:
        a = torch.ones((256, 256), device=f"cuda:{index}")
        (a @ a).sum().item()  # the matmul creates the cuBLAS handle; item() waits for it
        torch.cuda.synchronize(index)
    except Exception as e:  # noqa: BLE001 — CUDA errors come as RuntimeError, torch.OutOfMemoryError...
        raise RightsizeError(f"cuda:{index}: CUDA start-up failed ({str(e).strip().splitlines()[0]})") from None


def busy(torch: Any, index: int) -> Callable[[], None]:
    """A callable that keeps device ``index`` working: each call queues BUSY_QUEUE matmuls when the
    last ones are done (the caller polls it every millisecond)."""
    device = f"cuda:{index}"
    a = torch.randn((BUSY_SIZE, BUSY_SIZE), device=device)
    state: dict[str, Any] = {"done": None}

    def keep_busy() -> None:
        done = state["done"]
        if done is not None and not done.query():
            return
        with torch.cuda.device(index):
            for _ in range(BUSY_QUEUE):
                torch.mm(a, a)
            event = torch.cuda.Event()
            event.record()
        state["done"] = event

    return keep_busy


def synchronizer(gpu_indices: list[int] | None) -> Callable[[], None]:
    """A synchronize for window edges that costs nothing unless torch has started CUDA.

    Raises what CUDA raises (a kernel's error surfaces at the next synchronize): the evaluator fails
    that config's record, not the run.
    """
    targets: list[int | None] = list(gpu_indices) if gpu_indices else [None]

    def sync() -> None:
        torch = sys.modules.get("torch")
        if torch is None:
            return
        cuda = torch.cuda
        # is_initialized: synchronizing before any CUDA use would create a context (~1 s, memory).
        if not (cuda.is_available() and cuda.is_initialized()):
            return
        for t in targets:
            if t is None:
                cuda.synchronize()
            else:
                cuda.synchronize(t)

    return sync
