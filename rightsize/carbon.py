"""Grid carbon intensity by country (gCO2e per kWh), from the table shipped in ``rightsize/data``.

The figures are annual averages: Ember (2026), with major processing by Our World in Data, CC BY 4.0
(see ``data/CARBON_SOURCE.md``; :func:`attribution` gives the line to show next to any figure).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from functools import lru_cache
from importlib import resources
from typing import Any

from rightsize.errors import RightsizeError

TABLE_FILE = "grid-intensity-by-country.json"
# Common names that are not the ISO 3166 alpha-2 code the table uses.
ALIASES = {"uk": "gb", "el": "gr"}


@dataclass(frozen=True)
class GridIntensity:
    region: str  # ISO 3166 alpha-2, lower case
    g_per_kwh: float
    year: int


@lru_cache(maxsize=1)
def _table() -> dict[str, Any]:
    text = (resources.files("rightsize") / "data" / TABLE_FILE).read_text(encoding="utf-8")
    return json.loads(text)


@lru_cache(maxsize=1)
def _by_region() -> dict[str, GridIntensity]:
    return {row["name"].lower(): GridIntensity(row["name"].lower(), float(row["co2g_kwh"]), int(row["year"]))
            for row in _table()["countries"]}


def regions() -> list[str]:
    """Every ISO country code the table covers, sorted."""
    return sorted(_by_region())


def intensity(region: str) -> GridIntensity:
    """The grid intensity of ``region`` (ISO 3166 alpha-2, any case); RightsizeError when unknown."""
    code = str(region).strip().lower()
    code = ALIASES.get(code, code)
    try:
        return _by_region()[code]
    except KeyError:
        raise RightsizeError(
            f"--region {region!r}: not an ISO 3166 country code in the grid-intensity table "
            f"(e.g. de, us, fr, gb; {len(_by_region())} countries known)"
        ) from None


def attribution() -> str:
    """One line to print or store next to any carbon figure (CC BY 4.0 requires it)."""
    t = _table()
    return f"grid intensity: {t['source']}, {t['license']} ({t['url']})"
