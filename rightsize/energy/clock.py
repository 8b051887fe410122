"""The clock a meter and its counters read: wall time and waiting, in one object.

One object, so that a test can drive both with a clock it advances by hand (and a fake GPU counter
that follows it), instead of sleeping or patching ``time``.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass


@dataclass(frozen=True)
class Clock:
    now: Callable[[], float] = time.perf_counter  # seconds, monotonic
    sleep: Callable[[float], None] = time.sleep


SYSTEM_CLOCK = Clock()
