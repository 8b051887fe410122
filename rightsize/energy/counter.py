"""The counter contract shared by the energy back-ends, and the background poller some of them need.

A counter reports cumulative joules per part since it was created. Readings must never go
backwards: wrap-around and counter resets are absorbed inside the counter, so the meter only
subtracts two readings. A counter also says how coarse it is (``resolution_s``, the step in which
its reading moves), hence how far a window's reading can be off (``uncertainty``), what its parts
draw idle where it measured that, and how many of its reads failed and held the last value.
"""

from __future__ import annotations

import logging
import threading
import weakref
from collections.abc import Callable
from typing import Any, Protocol

log = logging.getLogger(__name__)


# A window shorter than this many update steps of a counter is below its resolution: each edge is
# read at the counter's last update, so the reading can be off by one step x power, more than
# 1/MIN_STEPS of itself. Inference shorter than this is repeated inside its window (evaluate.py).
MIN_STEPS = 10


class Unavailable(Exception):
    """A back-end cannot be used here; the message is the one-line reason."""


class Counter(Protocol):
    name: str  # "nvml", "rapl", "estimate"
    source: str  # label that ends up in Measurement.source
    resolution_s: float  # the step in which readings move; 0: finer than any window
    idle_watts: dict[str, float]  # per part, its draw with nothing running, where measured
    read_errors: int  # reads so far that failed and kept the last value

    def read(self) -> dict[str, float]:
        """Cumulative joules per part; monotonic."""
        ...

    def uncertainty(self, joules: dict[str, float], seconds: float) -> float:
        """How far a window's readings (``joules`` per part over ``seconds``) can be off, in joules."""
        ...

    def describe(self) -> dict[str, Any]:
        """JSON-able facts about what is counted and how."""
        ...

    def close(self) -> None:
        """Release threads and file descriptors; reads after close are undefined."""
        ...


class StepFree:
    """What a counter without an update step says: nothing to be off by, no idle baseline, no failed
    reads. A base for such counters (the estimate, and scripted counters in tests)."""

    resolution_s = 0.0
    idle_watts: dict[str, float] = {}
    read_errors = 0

    def uncertainty(self, joules: dict[str, float], seconds: float) -> float:
        return 0.0


def step_uncertainty(
    joules: float,
    seconds: float,
    step_s: float,
    floor_watts: float = 0.0,
    ceiling_watts: float | None = None,
) -> float:
    """How far one part's reading of a window can be off when its counter moves every ``step_s``.

    Each edge is read at the counter's last update, up to one step before the edge; the two errors
    have the same sign, so their difference is under one step x the power at the edges. That power
    is taken as the window's mean, at least ``floor_watts`` (the idle draw). In a window shorter
    than MIN_STEPS steps the mean itself is unreliable (it can read 0 J), so ``ceiling_watts`` (the
    board's power limit), when known, bounds it instead.
    """
    if step_s <= 0:
        return 0.0
    watts = max(joules / seconds if seconds > 0 else 0.0, floor_watts)
    if ceiling_watts and seconds < MIN_STEPS * step_s:
        watts = max(watts, ceiling_watts)
    return step_s * watts


class Poller:
    """Calls ``method`` every ``period_s`` seconds in a daemon thread until stopped.

    Holds only a weak reference to the method's object, so a forgotten counter can still be
    garbage collected (its finalizer stops the thread).
    """

    def __init__(self, method: Callable[[], Any], period_s: float, name: str) -> None:
        self._method = weakref.WeakMethod(method)  # type: ignore[arg-type]
        self._period_s = period_s
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)
        self._started = False

    def start(self) -> None:
        """Start once; later calls (and calls after stop) do nothing."""
        if not self._started and not self._stop.is_set():
            self._started = True
            self._thread.start()

    def stop(self) -> None:
        self._stop.set()

    def _run(self) -> None:
        failed = False
        while not self._stop.wait(self._period_s):
            method = self._method()
            if method is None:
                return
            try:
                method()
            except Exception:  # a background sample must never kill the process
                if not failed:
                    log.warning(
                        "%s: background read failed; will keep trying",
                        self._thread.name,
                        exc_info=True,
                    )
                failed = True
            del method
