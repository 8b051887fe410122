"""Grid intensity by region: ``--regions`` parsed, and the carbon of named energies across grids."""

from __future__ import annotations

from typing import Any, Mapping, Sequence

from rightsize import carbon
from rightsize.errors import RightsizeError
from rightsize.footprint.facility import Facility


def parse_regions(text: str) -> list[carbon.GridIntensity]:
    """``--regions de,fr,pl`` or ``all``: the grid intensities, each region once, in the order given."""
    names = carbon.regions() if text.strip().lower() == "all" else [t for t in text.split(",") if t.strip()]
    if not names:
        raise RightsizeError(f"--regions {text!r}: give ISO country codes separated by commas, or 'all'")
    out, seen = [], set()
    for name in names:
        try:
            grid = carbon.intensity(name)
        except RightsizeError:
            raise RightsizeError(f"--regions: {name.strip()!r} is not an ISO 3166 country code in the "
                                 f"grid-intensity table (e.g. de, us, fr, gb)") from None
        if grid.region not in seen:
            seen.add(grid.region)
            out.append(grid)
    return out


def region_comparison(it_joules: Mapping[str, float], regions: Sequence[carbon.GridIntensity],
                      facility: Facility) -> list[dict[str, Any]]:
    """Each region's carbon for each named energy (e.g. recommended and largest config's lifetime),
    cleanest grid first: ``{region, g_per_kwh, year, grams: {name: g}}``."""
    rows = [{"region": g.region, "g_per_kwh": g.g_per_kwh, "year": g.year,
             "grams": {name: facility.grams(joules, g.g_per_kwh) for name, joules in it_joules.items()}}
            for g in regions]
    return sorted(rows, key=lambda r: (r["g_per_kwh"], r["region"]))
