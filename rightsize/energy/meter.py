"""The energy meter: named measurement windows over a wall clock and a set of energy counters.

Windows may nest or overlap; each one only remembers the readings at its start. ``make_meter``
picks the counters (one back-end module each) and is the only place that knows about all of them.
"""

from __future__ import annotations

import logging
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from rightsize.energy import nvml, rapl
from rightsize.energy.counter import Counter, Unavailable
from rightsize.energy.estimate import DEFAULT_CPU_WATTS_PER_CORE, EstimateCounter, is_estimate
from rightsize.energy.nvml import NvmlCounter
from rightsize.energy.rapl import DEFAULT_POWERCAP_ROOT, RaplCounter
from rightsize.errors import RightsizeError

log = logging.getLogger(__name__)

KINDS = ("auto", "nvml", "rapl", "estimate")


@dataclass(frozen=True)
class Measurement:
    """Wall time and energy of one window."""

    seconds: float
    joules: float
    source: str  # "nvml", "rapl", "estimate", or composite such as "nvml+rapl"
    parts: dict[str, float] = field(default_factory=dict)  # joules per part

    @property
    def estimated(self) -> bool:
        """True when any part comes from the CPU-time model rather than a hardware counter."""
        return is_estimate(self.source, self.parts)


class Meter:
    """Measures named windows: ``begin(name)`` ... ``end(name) -> Measurement``."""

    def __init__(self, counters: Sequence[Counter], sync: Callable[[], None] | None = None) -> None:
        if not counters:
            raise ValueError("a meter needs at least one counter")
        self._counters = list(counters)
        self._sync = sync
        self._open: dict[str, tuple[float, list[dict[str, float]]]] = {}
        self.source = "+".join(c.source for c in self._counters)

    def begin(self, name: str) -> None:
        """Start window ``name``; ValueError if it is already open."""
        if name in self._open:
            raise ValueError(f"measurement window {name!r} is already open")
        if self._sync is not None:
            self._sync()  # queued GPU work belongs to whatever ran before the window
        readings = [c.read() for c in self._counters]
        self._open[name] = (time.perf_counter(), readings)

    def end(self, name: str) -> Measurement:
        """Close window ``name`` and return its measurement; ValueError if it is not open."""
        try:
            start, before = self._open.pop(name)
        except KeyError:
            raise ValueError(f"measurement window {name!r} is not open") from None
        if self._sync is not None:
            self._sync()  # the window's GPU work must be finished to be counted
        seconds = time.perf_counter() - start
        parts: dict[str, float] = {}
        for counter, first in zip(self._counters, before, strict=True):
            for part, joules in counter.read().items():
                parts[part] = joules - first.get(part, 0.0)
        return Measurement(
            seconds=seconds, joules=sum(parts.values()), source=self.source, parts=parts
        )

    @property
    def open_windows(self) -> list[str]:
        return list(self._open)

    def describe(self) -> dict[str, Any]:
        """JSON-able facts: source, counters, and each counter's own details."""
        facts: dict[str, Any] = {
            "source": self.source,
            "counters": [c.name for c in self._counters],
        }
        for c in self._counters:
            facts.update(c.describe())
        facts["cuda_sync"] = self._sync is not None
        return facts

    def close(self) -> None:
        """Stop background threads and release files held by the counters."""
        for c in self._counters:
            c.close()


def _cuda_sync(gpu_indices: list[int] | None) -> Callable[[], None]:
    """A synchronize for window edges that costs nothing unless torch has started CUDA.

    torch is looked up at call time and never imported here: if it is not loaded, no CUDA work
    can be queued by it, and importing it would cost seconds.
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


def _cuda_index(device: str) -> int | None:
    """N for "cuda:N", None for "cuda" and anything else."""
    if not device.startswith("cuda:"):
        return None
    try:
        return int(device[5:])
    except ValueError:
        raise RightsizeError(f"device {device!r}: expected cuda or cuda:N") from None


def _host_cpu(powercap_root: str, watts_per_core: float) -> Counter:
    """RAPL when readable, else the CPU-time estimate."""
    try:
        return RaplCounter(powercap_root)
    except Unavailable as e:
        log.info(
            "RAPL not usable (%s); estimating CPU energy at %.1f W per core", e, watts_per_core
        )
        return EstimateCounter(watts_per_core)


def _required(kind: str, build: Callable[[], Counter]) -> Counter:
    try:
        return build()
    except Unavailable as e:
        raise RightsizeError(f"--meter {kind}: {e}") from None


def make_meter(
    kind: str = "auto",
    device: str = "cpu",
    gpu_indices: list[int] | None = None,
    cpu_watts: float | None = None,
    powercap_root: str = DEFAULT_POWERCAP_ROOT,
) -> Meter:
    """Build a meter. kind: "auto", "nvml", "rapl" or "estimate".

    auto: on a CUDA device with NVML usable, GPUs (NVML) + host CPU (RAPL, else estimate);
    otherwise RAPL if readable, else the estimate. An explicit kind measures only that source and
    raises RightsizeError with the reason when it is unavailable. ``gpu_indices`` are CUDA indices
    (as the process sees them); by default "cuda:N" means [N] and "cuda" means all visible GPUs.
    ``cpu_watts`` is watts per core for the estimate.
    """
    if kind not in KINDS:
        raise RightsizeError(f"--meter {kind}: unknown meter; choose one of {', '.join(KINDS)}")
    if cpu_watts is not None and not cpu_watts > 0:
        raise RightsizeError(f"cpu watts per core must be positive, got {cpu_watts!r}")
    watts = DEFAULT_CPU_WATTS_PER_CORE if cpu_watts is None else float(cpu_watts)
    on_cuda = device == "cuda" or device.startswith("cuda:")
    index = _cuda_index(device)
    if gpu_indices is None and index is not None:
        gpu_indices = [index]

    counters: list[Counter] = []
    if kind == "estimate":
        counters.append(EstimateCounter(watts))
    elif kind == "rapl":
        counters.append(_required(kind, lambda: RaplCounter(powercap_root)))
    elif kind == "nvml":
        counters.append(_required(kind, lambda: NvmlCounter(gpu_indices)))
    else:
        if on_cuda:
            try:
                counters.append(NvmlCounter(gpu_indices))
            except Unavailable as e:
                log.warning(
                    "device %s but NVML is not usable (%s): GPU energy is NOT measured", device, e
                )
        counters.append(_host_cpu(powercap_root, watts))

    gpu_counter = next((c for c in counters if isinstance(c, NvmlCounter)), None)
    sync = None
    if on_cuda or gpu_counter is not None:
        sync = _cuda_sync(gpu_counter.gpu_indices if gpu_counter else gpu_indices)
    meter = Meter(counters, sync=sync)
    log.debug("energy meter: %s", meter.describe())
    return meter


def available_sources(powercap_root: str = DEFAULT_POWERCAP_ROOT) -> dict[str, str]:
    """{"nvml": "ok" or why not, "rapl": "ok" or why not, "estimate": "ok"}."""
    return {"nvml": nvml.probe(), "rapl": rapl.probe(powercap_root), "estimate": "ok"}
