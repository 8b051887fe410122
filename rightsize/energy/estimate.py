"""CPU energy *estimate* from process CPU time, for machines without a readable energy counter.

joules = CPU seconds (user + system) of this process and its waited-for children x watts per core.
This is an attribution model, not a measurement: it ignores idle/static power, memory, frequency
and how busy the rest of the machine is. Its use is comparing rungs on the same machine, where the
watts-per-core constant cancels out of every ratio.
"""

from __future__ import annotations

import os
import time
from typing import Any, Iterable

from rightsize.energy.counter import StepFree

# Where 12 W comes from: Green Algorithms (Lannelongue, Grealey & Inouye, "Green Algorithms:
# Quantifying the Carbon Footprint of Computation", Adv. Sci. 2021) models a CPU as TDP / cores
# and uses 12 W per core for an unknown CPU ("Any" in data/TDP_cpu.csv of green-algorithms-tool).
# Recent server parts sit lower (Xeon Gold 6248: 150 W / 20 cores = 7.5 W; EPYC 7763: 280 W / 64
# = 4.4 W), desktop parts higher, and CPU time counts SMT siblings as separate CPUs. So this is an
# upper-end default, not a property of this machine: pass cpu_watts when absolute joules matter.
DEFAULT_CPU_WATTS_PER_CORE: float = 12.0


def is_estimate(source: str, parts: Iterable[str] = ()) -> bool:
    """Whether energy from ``source`` ("rapl", "nvml+estimate", ...) with meter ``parts`` ("gpu:0",
    "cpu-estimate", ...) includes this estimate: the one rule every figure and record is labelled by."""
    return "estimate" in source.split("+") or any(part.endswith("estimate") for part in parts)


class EstimateCounter(StepFree):
    """CPU-time x watts-per-core; the single part is "cpu-estimate".

    Step-free: process_time() has nanosecond resolution (children's time lands in one lump when
    waited for). The estimate's own error is its model's, which no figure here bounds.
    """

    name = "estimate"
    source = "estimate"

    def __init__(self, watts_per_core: float = DEFAULT_CPU_WATTS_PER_CORE) -> None:
        if not watts_per_core > 0:
            raise ValueError(f"watts per core must be positive, got {watts_per_core!r}")
        self.watts_per_core = float(watts_per_core)

    def read(self) -> dict[str, float]:
        # Own user+system time from process_time (ns resolution) rather than os.times()[0:2],
        # which moves in 10 ms clock ticks: a 50 ms phase would be off by up to 20%. Children
        # count once waited for, in one lump, so their tick resolution does not matter.
        t = os.times()
        return {"cpu-estimate": (time.process_time() + t[2] + t[3]) * self.watts_per_core}

    def describe(self) -> dict[str, Any]:
        return {
            "cpu_watts_per_core": self.watts_per_core,
            "cpu_time": "process_time() + os.times() children_user + children_system",
        }

    def close(self) -> None:
        pass
