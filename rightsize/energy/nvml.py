"""GPU energy from NVML: the energy counter (Volta and later) of each board being measured, or, on a
board without one, power sampled in a background thread and integrated (trapezoid rule).

Which boards: those of the CUDA devices torch computes on, matched by UUID; without torch, the CUDA
indices mapped through CUDA_VISIBLE_DEVICES. A MIG instance is refused: NVML gives it no energy of
its own, and its board's counter also counts the other instances' work. Each board is characterised
once per process (``rightsize.energy.board``): its counter's step sets the resolution and the
uncertainty of every window, its idle draw the baseline that net energy leaves out. A read that fails
keeps the last value and is counted, so the meter can mark the window; only a board that cannot be
read at the start makes NVML unusable.
"""

from __future__ import annotations

import logging
import os
import threading
import weakref
from collections.abc import Callable
from typing import Any

from rightsize.energy import board
from rightsize.energy.clock import SYSTEM_CLOCK, Clock
from rightsize.energy.counter import Poller, Unavailable, step_uncertainty
from rightsize.errors import RightsizeError

log = logging.getLogger(__name__)

SAMPLE_PERIOD_S = 0.02
FIRST_READ_TRIES = 3  # a board whose counter fails this many times in a row at the start is unusable

_init_lock = threading.Lock()
# (pynvml module, error or None) for the module last initialised: nvmlInit runs once per process,
# and again only if a different module object shows up (tests swap in a fake).
_init_state: tuple[Any, str | None] | None = None


def _nvml() -> Any:
    """pynvml, initialised once; raises Unavailable with the reason."""
    global _init_state
    try:
        import pynvml
    except ImportError as e:
        raise Unavailable(f"pynvml is not importable ({e})") from None
    with _init_lock:
        if _init_state is None or _init_state[0] is not pynvml:
            error = None
            try:
                pynvml.nvmlInit()
            except Exception as e:  # NVMLError_LibraryNotFound, DriverNotLoaded, ...
                error = f"nvmlInit failed: {e}"
            _init_state = (pynvml, error)
        error = _init_state[1]
    if error:
        raise Unavailable(error)
    return pynvml


def _uuid(nvml: Any, handle: Any) -> str:
    u = nvml.nvmlDeviceGetUUID(handle)
    return u.decode() if isinstance(u, bytes) else str(u)


def bare_uuid(uuid: str) -> str:
    """A UUID without NVML's "GPU-"/"MIG-" prefix, lower case: torch reports it bare."""
    u = uuid.strip().lower()
    return u[4:] if u.startswith(("gpu-", "mig-")) else u


def visible_gpus(nvml: Any) -> list[tuple[str, Any]]:
    """(CUDA_VISIBLE_DEVICES entry or NVML index, handle) in CUDA index order.

    Follows CUDA's rules: an unset variable shows every device, and the list stops at the first
    entry that names no device. Integer entries are taken as NVML indices, which match CUDA's
    only when CUDA_DEVICE_ORDER=PCI_BUS_ID or the GPUs are identical (CUDA puts the fastest first):
    hence the UUID match (``gpus_by_uuid``) wherever torch can say which device it uses.
    """
    count = nvml.nvmlDeviceGetCount()
    env = os.environ.get("CUDA_VISIBLE_DEVICES")
    if env is None:
        return [(str(i), nvml.nvmlDeviceGetHandleByIndex(i)) for i in range(count)]
    uuids: dict[str, Any] | None = None
    out: list[tuple[str, Any]] = []
    for token in (t.strip() for t in env.split(",")):
        if token.isdigit() and int(token) < count:
            out.append((token, nvml.nvmlDeviceGetHandleByIndex(int(token))))
        elif token.startswith("GPU-"):
            if uuids is None:
                handles = [nvml.nvmlDeviceGetHandleByIndex(i) for i in range(count)]
                uuids = {_uuid(nvml, h): h for h in handles}
            match = [h for u, h in uuids.items() if u.startswith(token)]  # CUDA accepts prefixes
            if len(match) != 1:
                break
            out.append((token, match[0]))
        elif token.startswith("MIG-"):
            raise Unavailable(
                "CUDA_VISIBLE_DEVICES names MIG instances; NVML gives no energy for a MIG instance"
            )
        else:
            break
    return out


def gpus_by_uuid(nvml: Any, uuids: dict[int, str]) -> dict[int, tuple[str, Any]]:
    """CUDA index -> (NVML UUID, handle) of the whole board with the UUID torch reports for it.

    Unavailable when a UUID is a MIG instance's, or no board's.
    """
    boards = [nvml.nvmlDeviceGetHandleByIndex(i) for i in range(nvml.nvmlDeviceGetCount())]
    by_uuid = {bare_uuid(_uuid(nvml, h)): (_uuid(nvml, h), h) for h in boards}
    out: dict[int, tuple[str, Any]] = {}
    for index, uuid in uuids.items():
        found = by_uuid.get(bare_uuid(uuid))
        if found is None:
            parent = _mig_parent(nvml, boards, bare_uuid(uuid))
            if parent is not None:
                raise Unavailable(
                    f"cuda:{index} is a MIG instance of {parent}: NVML gives no energy for a MIG "
                    "instance, and the board's counter would add the other instances' work"
                )
            raise Unavailable(f"no GPU that NVML sees has the UUID of cuda:{index} ({uuid})")
        out[index] = found
    return out


def _mig_parent(nvml: Any, boards: list[Any], uuid: str) -> str | None:
    """The UUID of the board (in MIG mode) with a MIG instance ``uuid``; None if there is none."""
    for handle in boards:
        mode = board.ask(nvml, "nvmlDeviceGetMigMode", handle)
        if not mode or not mode[0]:
            continue
        for j in range(board.ask(nvml, "nvmlDeviceGetMaxMigDeviceCount", handle) or 0):
            instance = board.ask(nvml, "nvmlDeviceGetMigDeviceHandleByIndex", handle, j)
            if instance is not None and bare_uuid(_uuid(nvml, instance)) == uuid:
                return _uuid(nvml, handle)
    return None


def probe() -> str:
    """'ok', or why NVML cannot measure a GPU here."""
    try:
        NvmlCounter(characterise=False).close()
    except Unavailable as e:
        return str(e)
    return "ok"


def _none_visible() -> Unavailable:
    env = os.environ.get("CUDA_VISIBLE_DEVICES")
    return Unavailable(f"no GPU visible to NVML (CUDA_VISIBLE_DEVICES={env!r})")


class NvmlCounter:
    """Cumulative joules per board measured; parts are "gpu:<CUDA index>".

    ``uuids`` (CUDA index -> the UUID torch reports) picks the boards by UUID; else ``gpu_indices``
    are CUDA indices mapped through CUDA_VISIBLE_DEVICES (default: every visible board). ``load``
    makes a callable that keeps the GPU busy while its counter's step is timed.
    """

    name = "nvml"
    source = "nvml"

    def __init__(
        self,
        gpu_indices: list[int] | None = None,
        *,
        uuids: dict[int, str] | None = None,
        clock: Clock = SYSTEM_CLOCK,
        load: Callable[[], Callable[[], None] | None] | None = None,
        characterise: bool = True,
        sample_period_s: float = SAMPLE_PERIOD_S,
    ) -> None:
        nvml = self._nvml = _nvml()
        self._clock = clock
        try:
            boards = self._boards(nvml, gpu_indices, uuids)
        except nvml.NVMLError as e:
            raise Unavailable(f"NVML device query failed: {e}") from None
        self.gpu_indices = list(boards)
        self._visible = {i: visible_as for i, (visible_as, _) in boards.items()}
        self.identified_by = "uuid" if uuids is not None else "CUDA_VISIBLE_DEVICES"

        # Per board: the energy counter where the driver has one; power sampling only where it raises
        # NotSupported (pre-Volta). Any other error on every try means NVML cannot read this board.
        self._energy: list[tuple[str, Any]] = []
        self._power: list[tuple[str, Any]] = []
        self._last_mj: dict[str, int] = {}
        self._last_w: dict[str, float] = {}
        self.profiles: dict[str, board.BoardProfile] = {}
        self.read_errors = 0
        for i, (_, handle) in boards.items():
            part = f"gpu:{i}"
            mj = self._first_energy(nvml, part, handle)
            if mj is not None:
                self._last_mj[part] = mj
                self._energy.append((part, handle))
                reader: Callable[[], int] | None = lambda h=handle: nvml.nvmlDeviceGetTotalEnergyConsumption(h)
            else:
                try:
                    self._last_w[part] = nvml.nvmlDeviceGetPowerUsage(handle) / 1000.0
                except nvml.NVMLError as e:
                    raise Unavailable(f"{part}: no energy counter and no power reading ({e})") from None
                self._power.append((part, handle))
                reader = None
            self.profiles[part] = board.profile(nvml, handle, _uuid(nvml, handle), reader, clock=clock,
                                                load=load, characterise=characterise)
        self._totals = {f"gpu:{i}": 0.0 for i in boards}
        self._lock = threading.Lock()
        self._last_t = clock.now()
        self.sample_period_s = sample_period_s
        self._poller = Poller(self._sample_power, sample_period_s, "rightsize-nvml-power")
        self._finalizer = weakref.finalize(self, self._poller.stop)
        self.resolution_s = max(p.resolution_s for p in self.profiles.values())
        self.idle_watts = {p: f.idle_watts for p, f in self.profiles.items() if f.idle_watts is not None}
        if self._power:
            log.info(
                "NVML: %s report no energy counter; integrating power sampled every %.0f ms",
                ", ".join(p for p, _ in self._power),
                sample_period_s * 1000,
            )

    @staticmethod
    def _boards(
        nvml: Any, gpu_indices: list[int] | None, uuids: dict[int, str] | None
    ) -> dict[int, tuple[str, Any]]:
        """CUDA index -> (how the board was found: its UUID or CUDA_VISIBLE_DEVICES entry, handle)."""
        if uuids is not None:
            return gpus_by_uuid(nvml, uuids)
        visible = visible_gpus(nvml)
        if not visible:
            raise _none_visible()
        indices = list(range(len(visible))) if gpu_indices is None else [int(i) for i in gpu_indices]
        bad = [i for i in indices if not 0 <= i < len(visible)]
        if bad or not indices:
            raise RightsizeError(
                f"GPU indices {indices} are not among the {len(visible)} visible GPUs"
            )
        return {i: visible[i] for i in indices}

    def _first_energy(self, nvml: Any, part: str, handle: Any) -> int | None:
        """The counter's first value; None when the board has no counter (NotSupported)."""
        not_supported = getattr(nvml, "NVMLError_NotSupported", ())
        error = None
        for _ in range(FIRST_READ_TRIES):
            try:
                return int(nvml.nvmlDeviceGetTotalEnergyConsumption(handle))
            except not_supported:
                return None
            except nvml.NVMLError as e:
                error = e
                self._clock.sleep(board.POLL_S)
        raise Unavailable(f"{part}: nvmlDeviceGetTotalEnergyConsumption failed ({error})")

    def _failed(self, part: str, what: str) -> None:
        """A read failed: the last value holds; counted so the window can be marked."""
        if not self.read_errors:
            log.warning("%s: %s failed; keeping the last value (the window is marked)", part, what,
                        exc_info=True)
        self.read_errors += 1

    def _sample_power(self) -> None:
        """Add the power integral since the last sample (trapezoid)."""
        with self._lock:
            now = self._clock.now()
            dt = now - self._last_t
            for part, handle in self._power:
                try:
                    watts = self._nvml.nvmlDeviceGetPowerUsage(handle) / 1000.0
                except self._nvml.NVMLError:
                    self._failed(part, "nvmlDeviceGetPowerUsage")
                    watts = self._last_w[part]
                self._totals[part] += (self._last_w[part] + watts) / 2.0 * dt
                self._last_w[part] = watts
            self._last_t = now

    def read(self) -> dict[str, float]:
        if self._power:
            self._poller.start()  # only from the first window on
            self._sample_power()  # sample at the window edge itself, not up to 20 ms before it
        with self._lock:
            for part, handle in self._energy:
                try:
                    mj = self._nvml.nvmlDeviceGetTotalEnergyConsumption(handle)
                except self._nvml.NVMLError:
                    self._failed(part, "nvmlDeviceGetTotalEnergyConsumption")
                    continue
                delta = mj - self._last_mj[part]
                if delta < 0:  # counter restarted (driver reload): count from zero
                    delta = mj
                self._last_mj[part] = mj
                self._totals[part] += delta / 1000.0
            return dict(self._totals)

    def uncertainty(self, joules: dict[str, float], seconds: float) -> float:
        total = 0.0
        for part, j in joules.items():
            p = self.profiles[part]
            total += step_uncertainty(j, seconds, p.resolution_s, p.idle_watts or 0.0, p.power_limit_w)
        return total

    def describe(self) -> dict[str, Any]:
        methods = {p: "energy-counter" for p, _ in self._energy}
        methods.update(
            {p: f"power-sampling@{self.sample_period_s * 1000:.0f}ms" for p, _ in self._power}
        )
        return {
            "gpu_indices": list(self.gpu_indices),
            "gpu_identified_by": self.identified_by,
            "gpu_visible_as": {f"gpu:{i}": v for i, v in self._visible.items()},
            "gpu_methods": methods,
            "gpu_boards": {p: f.to_dict() for p, f in self.profiles.items()},
        }

    def close(self) -> None:
        self._finalizer()
