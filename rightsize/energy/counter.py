"""The counter contract shared by the energy back-ends, and the background poller some of them need.

A counter reports cumulative joules per part since it was created. Readings must never go
backwards: wrap-around and counter resets are absorbed inside the counter, so the meter only
subtracts two readings.
"""

from __future__ import annotations

import logging
import threading
import weakref
from collections.abc import Callable
from typing import Any, Protocol

log = logging.getLogger(__name__)


class Unavailable(Exception):
    """A back-end cannot be used here; the message is the one-line reason."""


class Counter(Protocol):
    name: str  # "nvml", "rapl", "estimate"
    source: str  # label that ends up in Measurement.source

    def read(self) -> dict[str, float]:
        """Cumulative joules per part; monotonic."""
        ...

    def describe(self) -> dict[str, Any]:
        """JSON-able facts about what is counted and how."""
        ...

    def close(self) -> None:
        """Release threads and file descriptors; reads after close are undefined."""
        ...


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
