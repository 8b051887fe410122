"""The energy meter: named measurement windows over a clock and a set of energy counters.

Windows may nest or overlap; each one only remembers the readings at its start. A measurement
carries how far its reading can be off (the counters' update steps), whether the window was too
short for its counters to resolve, the idle draw over it (where a counter measured one) and the
reads that failed inside it. ``make_meter`` picks the counters (one back-end module each) and is the
only place that knows about all of them.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

from rightsize.energy import cuda, nvml, rapl
from rightsize.energy.clock import SYSTEM_CLOCK, Clock
from rightsize.energy.counter import MIN_STEPS, Counter, Unavailable
from rightsize.energy.estimate import DEFAULT_CPU_WATTS_PER_CORE, EstimateCounter, is_estimate
from rightsize.energy.nvml import NvmlCounter
from rightsize.energy.rapl import DEFAULT_POWERCAP_ROOT, RaplCounter
from rightsize.errors import RightsizeError

log = logging.getLogger(__name__)

KINDS = ("auto", "nvml", "rapl", "estimate")
NET_OF_IDLE = "net-of-idle"
GROSS = "gross"


@dataclass(frozen=True)
class Measurement:
    """Wall time and energy of one window. ``joules`` and ``parts`` are gross: what the counters read."""

    seconds: float
    joules: float
    source: str  # "nvml", "rapl", "estimate", or composite such as "nvml+rapl"
    parts: dict[str, float] = field(default_factory=dict)  # joules per part
    uncertainty: float = 0.0  # joules the counters' update steps can put ``joules`` off by
    below_resolution: bool = False  # shorter than MIN_STEPS update steps of a counter
    idle: dict[str, float] = field(default_factory=dict)  # per part with an idle baseline: its joules
    read_errors: int = 0  # reads in the window that failed and kept the last value

    @property
    def estimated(self) -> bool:
        """True when any part comes from the CPU-time model rather than a hardware counter."""
        return is_estimate(self.source, self.parts)

    @property
    def net_parts(self) -> dict[str, float]:
        """Joules per part above its idle draw; never below 0 (a reading under the idle draw is
        within the uncertainty)."""
        return {p: max(0.0, j - self.idle.get(p, 0.0)) for p, j in self.parts.items()}

    @property
    def net_joules(self) -> float:
        return sum(self.net_parts.values())

    def per_pass(self, passes: int) -> "Measurement":
        """One pass's share of a window that ran the same work ``passes`` times."""
        return replace(
            self,
            seconds=self.seconds / passes,
            joules=self.joules / passes,
            parts={p: j / passes for p, j in self.parts.items()},
            uncertainty=self.uncertainty / passes,
            idle={p: j / passes for p, j in self.idle.items()},
        )


class Meter:
    """Measures named windows: ``begin(name)`` ... ``end(name) -> Measurement``."""

    def __init__(
        self,
        counters: Sequence[Counter],
        sync: Callable[[], None] | None = None,
        clock: Clock = SYSTEM_CLOCK,
        notes: dict[str, str] | None = None,
    ) -> None:
        if not counters:
            raise ValueError("a meter needs at least one counter")
        self._counters = list(counters)
        self._sync = sync
        self._clock = clock
        self._open: dict[str, tuple[float, list[dict[str, float]], int]] = {}
        self.source = "+".join(c.source for c in self._counters)
        self.notes = dict(notes or {})
        # The coarsest counter decides: a window must be long for every counter in it.
        self.resolution_s = max(c.resolution_s for c in self._counters)
        self.min_window_s = MIN_STEPS * self.resolution_s
        self.idle_watts = {p: w for c in self._counters for p, w in c.idle_watts.items()}
        self.basis = NET_OF_IDLE if self.idle_watts else GROSS

    def _read_errors(self) -> int:
        return sum(c.read_errors for c in self._counters)

    def begin(self, name: str) -> None:
        """Start window ``name``; ValueError if it is already open."""
        if name in self._open:
            raise ValueError(f"measurement window {name!r} is already open")
        if self._sync is not None:
            self._sync()  # queued GPU work belongs to whatever ran before the window
        readings = [c.read() for c in self._counters]
        self._open[name] = (self._clock.now(), readings, self._read_errors())

    def elapsed(self, name: str) -> float:
        """Seconds since window ``name`` began (GPU work still queued not waited for)."""
        try:
            return self._clock.now() - self._open[name][0]
        except KeyError:
            raise ValueError(f"measurement window {name!r} is not open") from None

    def end(self, name: str) -> Measurement:
        """Close window ``name`` and return its measurement; ValueError if it is not open.

        The window is closed even when waiting for the GPU raises (a CUDA error): the error is the
        caller's, the meter stays usable.
        """
        try:
            start, before, errors = self._open.pop(name)
        except KeyError:
            raise ValueError(f"measurement window {name!r} is not open") from None
        if self._sync is not None:
            self._sync()  # the window's GPU work must be finished to be counted
        seconds = self._clock.now() - start
        parts: dict[str, float] = {}
        uncertainty = 0.0
        for counter, first in zip(self._counters, before, strict=True):
            own = {part: joules - first.get(part, 0.0) for part, joules in counter.read().items()}
            uncertainty += counter.uncertainty(own, seconds)
            parts.update(own)
        return Measurement(
            seconds=seconds,
            joules=sum(parts.values()),
            source=self.source,
            parts=parts,
            uncertainty=uncertainty,
            below_resolution=seconds < self.min_window_s,
            idle={p: w * seconds for p, w in self.idle_watts.items() if p in parts},
            read_errors=self._read_errors() - errors,
        )

    def discard(self, name: str) -> None:
        """Close window ``name`` without measuring it (its work failed); no-op if it is not open."""
        self._open.pop(name, None)

    @property
    def open_windows(self) -> list[str]:
        return list(self._open)

    def describe(self) -> dict[str, Any]:
        """JSON-able facts: source, counters, resolution, idle baseline, each counter's own details."""
        facts: dict[str, Any] = {
            "source": self.source,
            "counters": [c.name for c in self._counters],
            "resolution_s": self.resolution_s,
            "min_window_s": self.min_window_s,
            "energy_basis": self.basis,
            "idle_watts": sum(self.idle_watts.values()) if self.idle_watts else None,
        }
        for c in self._counters:
            facts.update(c.describe())
        facts["cuda_sync"] = self._sync is not None
        facts.update(self.notes)
        return facts

    def close(self) -> None:
        """Stop background threads and release files held by the counters."""
        for c in self._counters:
            c.close()


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
    clock: Clock = SYSTEM_CLOCK,
) -> Meter:
    """Build a meter. kind: "auto", "nvml", "rapl" or "estimate".

    auto: on a CUDA device with NVML usable, the GPU in use (NVML) + host CPU (RAPL, else estimate);
    otherwise RAPL if readable, else the estimate. An explicit kind measures only that source and
    raises RightsizeError with the reason when it is unavailable. On a CUDA device the GPU is the
    one torch computes on ("cuda:N", or torch's current device for "cuda"), found by its UUID, and
    CUDA is warmed up (context, cuBLAS, one matmul) before any window; ``gpu_indices`` names other
    CUDA indices to measure. ``cpu_watts`` is watts per core for the estimate.
    """
    if kind not in KINDS:
        raise RightsizeError(f"--meter {kind}: unknown meter; choose one of {', '.join(KINDS)}")
    if cpu_watts is not None and not cpu_watts > 0:
        raise RightsizeError(f"cpu watts per core must be positive, got {cpu_watts!r}")
    watts = DEFAULT_CPU_WATTS_PER_CORE if cpu_watts is None else float(cpu_watts)
    on_cuda = device == "cuda" or device.startswith("cuda:")
    torch = cuda.loaded_torch() if on_cuda else None
    if on_cuda and gpu_indices is None:
        gpu_indices = [cuda.device_index(device, torch)]
    if torch is not None:
        for i in gpu_indices or []:
            cuda.warm_up(torch, i)

    def gpu() -> NvmlCounter:
        if torch is None:  # no torch: CUDA indices through CUDA_VISIBLE_DEVICES
            return NvmlCounter(gpu_indices, clock=clock)
        uuids = {i: cuda.device_uuid(torch, i) for i in gpu_indices or []}
        first = next(iter(uuids))
        return NvmlCounter(uuids=uuids, clock=clock, load=lambda: cuda.busy(torch, first))

    counters: list[Counter] = []
    notes: dict[str, str] = {}
    if kind == "estimate":
        counters.append(EstimateCounter(watts))
    elif kind == "rapl":
        counters.append(_required(kind, lambda: RaplCounter(powercap_root)))
    elif kind == "nvml":
        counters.append(_required(kind, gpu))
    else:
        if on_cuda:
            try:
                counters.append(gpu())
            except Unavailable as e:
                notes["gpu_energy"] = f"not measured: {e}"
                log.warning(
                    "device %s but NVML is not usable (%s): GPU energy is NOT measured", device, e
                )
        counters.append(_host_cpu(powercap_root, watts))

    gpu_counter = next((c for c in counters if isinstance(c, NvmlCounter)), None)
    sync = None
    if on_cuda or gpu_counter is not None:
        sync = cuda.synchronizer(gpu_counter.gpu_indices if gpu_counter else gpu_indices)
    meter = Meter(counters, sync=sync, clock=clock, notes=notes)
    log.debug("energy meter: %s", meter.describe())
    return meter


def available_sources(powercap_root: str = DEFAULT_POWERCAP_ROOT) -> dict[str, str]:
    """{"nvml": "ok" or why not, "rapl": "ok" or why not, "estimate": "ok"}."""
    return {"nvml": nvml.probe(), "rapl": rapl.probe(powercap_root), "estimate": "ok"}
