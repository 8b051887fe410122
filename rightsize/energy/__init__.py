"""Energy measurement: named windows over GPU (NVML), CPU/DRAM (RAPL) or estimated CPU energy.

Usage: ``meter = make_meter("auto", device="cuda")``, then ``meter.begin("rung-3")`` ...
``meter.end("rung-3")`` returns a Measurement(seconds, joules, source, parts).
"""

from rightsize.energy.estimate import DEFAULT_CPU_WATTS_PER_CORE
from rightsize.energy.meter import Measurement, Meter, available_sources, make_meter

__all__ = ["DEFAULT_CPU_WATTS_PER_CORE", "Measurement", "Meter", "available_sources", "make_meter"]
