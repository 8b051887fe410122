"""The data centre around the IT load (PUE, heat reuse) and a deployment's lifetime energy.

Carbon is counted on the facility's energy (IT x PUE) drawn from the grid; heat reused elsewhere is
reported (The Green Grid's energy reuse factor and ERE) but not credited against the grid's carbon,
since that saving happens in whatever the heat displaces, which rightsize cannot see.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from rightsize.errors import RightsizeError

JOULES_PER_KWH = 3.6e6
DEFAULT_PUE = 1.2


@dataclass(frozen=True)
class Facility:
    """The data centre around the IT load: PUE (facility / IT energy) and the fraction of the
    facility's energy reused as heat (energy reuse factor, ERF)."""

    pue: float = DEFAULT_PUE
    heat_reuse: float = 0.0

    def __post_init__(self) -> None:
        if not (isinstance(self.pue, (int, float)) and self.pue >= 1.0 and math.isfinite(self.pue)):
            raise RightsizeError(f"--pue {self.pue!r}: a data centre's PUE is at least 1.0")
        if not (isinstance(self.heat_reuse, (int, float)) and 0.0 <= self.heat_reuse < 1.0):
            raise RightsizeError(f"--heat-reuse {self.heat_reuse!r}: the fraction of facility energy reused as "
                                 "heat must be in [0, 1)")

    def energy(self, it_joules: float) -> dict[str, float]:
        """IT, facility and reused-heat energy in kWh, and ERE = (facility - reused) / IT."""
        it = it_joules / JOULES_PER_KWH
        facility = it * self.pue
        reused = facility * self.heat_reuse
        return {"it_kwh": it, "facility_kwh": facility, "reused_heat_kwh": reused,
                "ere": (facility - reused) / it if it > 0 else self.pue * (1 - self.heat_reuse),
                "pue": self.pue, "heat_reuse": self.heat_reuse}

    def grams(self, it_joules: float, g_per_kwh: float) -> float:
        """gCO2e of ``it_joules`` of IT energy at a grid intensity: facility kWh x intensity."""
        return it_joules / JOULES_PER_KWH * self.pue * g_per_kwh

    def assumptions(self) -> dict[str, Any]:
        return {"pue": self.pue, "heat_reuse": self.heat_reuse,
                "carbon_basis": "facility energy (IT x PUE) x grid intensity; reused heat not credited"}


def lifetime_joules(fit_joules: float, joules_per_query: float, queries_per_day: float, days: float) -> float:
    """Energy over a deployment: fit once, then ``queries_per_day x days`` queries (load not counted:
    how often a service restarts is not something the records know)."""
    if queries_per_day < 0 or days < 0:
        raise RightsizeError("--queries-per-day and --days must not be negative")
    return float(fit_joules) + queries_per_day * days * float(joules_per_query)
