"""GPU energy from NVML: the driver's cumulative energy counter (Volta and later), or, on GPUs
without one, power sampled in a background thread and integrated (trapezoid rule).
"""

from __future__ import annotations

import logging
import os
import threading
import time
import weakref
from typing import Any

from rightsize.energy.counter import Poller, Unavailable
from rightsize.errors import RightsizeError

log = logging.getLogger(__name__)

SAMPLE_PERIOD_S = 0.02

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


def visible_gpus(nvml: Any) -> list[tuple[str, Any]]:
    """(CUDA_VISIBLE_DEVICES entry or NVML index, handle) in CUDA index order.

    Follows CUDA's rules: an unset variable shows every device, and the list stops at the first
    entry that names no device. Integer entries are taken as NVML indices, which match CUDA's
    only when CUDA_DEVICE_ORDER=PCI_BUS_ID or the GPUs are identical (CUDA puts the fastest first).
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
                "CUDA_VISIBLE_DEVICES names MIG instances; NVML energy is per whole GPU"
            )
        else:
            break
    return out


def probe() -> str:
    """'ok', or why NVML cannot measure a GPU here."""
    try:
        NvmlCounter().close()
    except Unavailable as e:
        return str(e)
    return "ok"


def _none_visible() -> Unavailable:
    env = os.environ.get("CUDA_VISIBLE_DEVICES")
    return Unavailable(f"no GPU visible to NVML (CUDA_VISIBLE_DEVICES={env!r})")


class NvmlCounter:
    """Cumulative joules per GPU in use; parts are "gpu:<CUDA index>"."""

    name = "nvml"
    source = "nvml"

    def __init__(
        self, gpu_indices: list[int] | None = None, sample_period_s: float = SAMPLE_PERIOD_S
    ) -> None:
        nvml = self._nvml = _nvml()
        try:
            visible = visible_gpus(nvml)
        except nvml.NVMLError as e:
            raise Unavailable(f"NVML device query failed: {e}") from None
        if not visible:
            raise _none_visible()
        indices = (
            list(range(len(visible))) if gpu_indices is None else [int(i) for i in gpu_indices]
        )
        bad = [i for i in indices if not 0 <= i < len(visible)]
        if bad or not indices:
            raise RightsizeError(
                f"GPU indices {indices} are not among the {len(visible)} visible GPUs"
            )
        self.gpu_indices = indices
        self._visible = {i: visible[i][0] for i in indices}

        # Per GPU: the energy counter where the driver has one; power sampling only where it raises
        # NotSupported (pre-Volta). Any other error means NVML is not usable for this GPU.
        self._energy: list[tuple[str, Any]] = []
        self._power: list[tuple[str, Any]] = []
        self._last_mj: dict[str, int] = {}
        self._last_w: dict[str, float] = {}
        not_supported = getattr(nvml, "NVMLError_NotSupported", ())
        for i in indices:
            part, handle = f"gpu:{i}", visible[i][1]
            try:
                self._last_mj[part] = nvml.nvmlDeviceGetTotalEnergyConsumption(handle)
                self._energy.append((part, handle))
            except not_supported:
                try:
                    self._last_w[part] = nvml.nvmlDeviceGetPowerUsage(handle) / 1000.0
                except nvml.NVMLError as e:
                    raise Unavailable(
                        f"{part}: no energy counter and no power reading ({e})"
                    ) from None
                self._power.append((part, handle))
            except nvml.NVMLError as e:
                raise Unavailable(
                    f"{part}: nvmlDeviceGetTotalEnergyConsumption failed ({e})"
                ) from None
        self._totals = {f"gpu:{i}": 0.0 for i in indices}
        self._lock = threading.Lock()
        self._last_t = time.perf_counter()
        self.sample_period_s = sample_period_s
        self._poller = Poller(self._sample_power, sample_period_s, "rightsize-nvml-power")
        self._finalizer = weakref.finalize(self, self._poller.stop)
        if self._power:
            log.info(
                "NVML: %s report no energy counter; integrating power sampled every %.0f ms",
                ", ".join(p for p, _ in self._power),
                sample_period_s * 1000,
            )

    def _sample_power(self) -> None:
        """Add the power integral since the last sample (trapezoid)."""
        with self._lock:
            now = time.perf_counter()
            dt = now - self._last_t
            for part, handle in self._power:
                try:
                    watts = self._nvml.nvmlDeviceGetPowerUsage(handle) / 1000.0
                except self._nvml.NVMLError:  # transient: hold the last value
                    log.debug(
                        "%s: nvmlDeviceGetPowerUsage failed; holding last value",
                        part,
                        exc_info=True,
                    )
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
                mj = self._nvml.nvmlDeviceGetTotalEnergyConsumption(handle)
                delta = mj - self._last_mj[part]
                if delta < 0:  # counter restarted (driver reload): count from zero
                    delta = mj
                self._last_mj[part] = mj
                self._totals[part] += delta / 1000.0
            return dict(self._totals)

    def describe(self) -> dict[str, Any]:
        methods = {p: "energy-counter" for p, _ in self._energy}
        methods.update(
            {p: f"power-sampling@{self.sample_period_s * 1000:.0f}ms" for p, _ in self._power}
        )
        return {
            "gpu_indices": list(self.gpu_indices),
            "gpu_visible_as": {f"gpu:{i}": v for i, v in self._visible.items()},
            "gpu_methods": methods,
        }

    def close(self) -> None:
        self._finalizer()
