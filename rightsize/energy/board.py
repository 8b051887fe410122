"""Knowing a GPU board's energy counter before trusting it: how often it moves, what the board draws
idle, and the board's facts (name, driver, power limit, MIG mode).

NVML's energy counter is the whole board's and moves in steps (about 100 ms on recent boards; on
A100/H100 the power behind it is sampled only part of the time, arXiv 2312.02741), so a window's
reading is off by up to one step x power. Each board is characterised once per process, when a
meter first opens it, in about a second:

- idle watts: the counter read at two of its own updates ``IDLE_STEPS`` steps apart with nothing
  queued; both edges sit on updates, so the step does not blur it;
- the update step: the counter polled every ``POLL_S`` while ``load`` keeps work queued on the GPU,
  until it has moved ``LOAD_MOVES`` times; the median gap between moves.

A board without an energy counter (pre-Volta) is read through ``nvmlDeviceGetPowerUsage``, a 1 s
average on recent drivers: its resolution is taken as that second, and its idle watts as one reading.
"""

from __future__ import annotations

import logging
import statistics
from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import Any

from rightsize.energy.clock import Clock

log = logging.getLogger(__name__)

POLL_S = 0.001
SETTLE_S = 0.2  # after the warm-up's matmul, before the idle window
IDLE_STEPS = 5
LOAD_MOVES = 6  # five gaps between moves
BUDGET_S = 2.0  # the most one of the two measurements polls; a counter slower than that is "not observed"
POWER_AVERAGE_S = 1.0  # nvmlDeviceGetPowerUsage averages over about a second on recent drivers


@dataclass(frozen=True)
class BoardProfile:
    """What one board's counter is like, as measured (None: NVML would not say, or not observed)."""

    uuid: str
    name: str | None
    driver: str | None
    power_limit_w: float | None
    mig_mode: str | None  # "enabled", "disabled"; None on boards without MIG
    method: str  # "energy-counter" or "power-sampling"
    update_interval_s: float | None  # median gap between counter moves
    polled_under_load: bool  # whether work was queued while the gaps were timed
    idle_watts: float | None
    idle_window_s: float | None  # the idle reading's window (between two counter updates)

    @property
    def resolution_s(self) -> float:
        """The step a reading moves in: the update interval; BUDGET_S when none was seen in that
        long; the power average for a board read through its power."""
        if self.method == "power-sampling":
            return POWER_AVERAGE_S
        return self.update_interval_s or BUDGET_S

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "resolution_s": self.resolution_s}


# (NVML module, board UUID) -> profile: once per board per process (tests bring their own module).
_profiles: dict[tuple[Any, str], BoardProfile] = {}


def profile(
    nvml: Any,
    handle: Any,
    uuid: str,
    read_mj: Callable[[], int] | None,
    *,
    clock: Clock,
    load: Callable[[], Callable[[], None] | None] | None = None,
    characterise: bool = True,
) -> BoardProfile:
    """The board's profile, measured on first use in this process (``characterise=False``: facts
    only, nothing measured). ``read_mj`` reads the energy counter (None: the board has none);
    ``load`` makes the callable that keeps the GPU busy, called only when the board is measured."""
    key = (nvml, uuid)
    if key in _profiles:
        return _profiles[key]
    facts = board_facts(nvml, handle)
    method = "energy-counter" if read_mj is not None else "power-sampling"
    interval = idle = idle_window = None
    under_load = False
    if characterise:
        clock.sleep(SETTLE_S)
        if read_mj is None:
            idle = _power_w(nvml, handle)
        else:
            reader = _tolerant(nvml, read_mj)
            idle, idle_window = idle_watts(reader, clock)
            keep_busy = load() if load is not None else None
            interval = update_interval(reader, clock, keep_busy)
            under_load = keep_busy is not None
    found = BoardProfile(uuid=uuid, method=method, update_interval_s=interval, polled_under_load=under_load,
                         idle_watts=idle, idle_window_s=idle_window, **facts)
    if characterise:
        _profiles[key] = found
        log.info("GPU %s (%s): counter step %s, idle %s", uuid, facts["name"],
                 f"{interval * 1000:.0f} ms" if interval else "not observed", f"{idle:.1f} W" if idle else "unknown")
    return found


def _moves(read: Callable[[], int | None], clock: Clock, count: int,
           keep_busy: Callable[[], None] | None = None) -> list[tuple[float, int]]:
    """(time, value) of the counter's first ``count`` moves, polled every POLL_S for at most BUDGET_S."""
    start = clock.now()
    last = read()
    moves: list[tuple[float, int]] = []
    while len(moves) < count and clock.now() - start < BUDGET_S:
        if keep_busy is not None:
            keep_busy()
        clock.sleep(POLL_S)
        value = read()
        if value is None:  # a failed read: poll again
            continue
        if last is not None and value != last:
            moves.append((clock.now(), value))
        last = value
    return moves


def idle_watts(read: Callable[[], int | None], clock: Clock) -> tuple[float | None, float | None]:
    """Watts between the counter's first and last of IDLE_STEPS + 1 moves with nothing queued, and
    that window's length."""
    moves = _moves(read, clock, IDLE_STEPS + 1)
    if len(moves) < 2:
        return None, None
    (t0, e0), (t1, e1) = moves[0], moves[-1]
    return (e1 - e0) / 1000.0 / (t1 - t0), t1 - t0


def update_interval(read: Callable[[], int | None], clock: Clock,
                    keep_busy: Callable[[], None] | None) -> float | None:
    """The median gap between the counter's moves while ``keep_busy`` keeps the GPU working."""
    moves = _moves(read, clock, LOAD_MOVES, keep_busy)
    gaps = [b[0] - a[0] for a, b in zip(moves, moves[1:])]
    return statistics.median(gaps) if gaps else None


def board_facts(nvml: Any, handle: Any) -> dict[str, Any]:
    """Name, driver, enforced power limit (W) and MIG mode; None where NVML does not say."""
    limit_mw = ask(nvml, "nvmlDeviceGetEnforcedPowerLimit", handle)
    if limit_mw is None:
        limit_mw = ask(nvml, "nvmlDeviceGetPowerManagementLimit", handle)
    mig = ask(nvml, "nvmlDeviceGetMigMode", handle)
    return {
        "name": _text(ask(nvml, "nvmlDeviceGetName", handle)),
        "driver": _text(ask(nvml, "nvmlSystemGetDriverVersion")),
        "power_limit_w": limit_mw / 1000.0 if limit_mw else None,
        "mig_mode": None if mig is None else ("enabled" if mig[0] else "disabled"),
    }


def ask(nvml: Any, function: str, *args: Any) -> Any:
    """``nvml.<function>(*args)``, or None when this NVML lacks it or it fails (NotSupported...)."""
    fn = getattr(nvml, function, None)
    if fn is None:
        return None
    try:
        return fn(*args)
    except nvml.NVMLError:
        return None


def _text(value: Any) -> str | None:
    if value is None:
        return None
    return value.decode() if isinstance(value, bytes) else str(value)


def _power_w(nvml: Any, handle: Any) -> float | None:
    mw = ask(nvml, "nvmlDeviceGetPowerUsage", handle)
    return mw / 1000.0 if mw is not None else None


def _tolerant(nvml: Any, read_mj: Callable[[], int]) -> Callable[[], int | None]:
    def read() -> int | None:
        try:
            return read_mj()
        except nvml.NVMLError:
            return None

    return read
