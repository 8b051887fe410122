"""A deployment's footprint: the options about where and when energy is drawn (WhereAndWhen), every
figure with its assumptions (assess), and those figures in words. Pure arithmetic over plain values;
recommend, report and check format what it returns."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timezone, tzinfo
from pathlib import Path
from typing import Any, Iterable, Mapping, Sequence

from rightsize import carbon
from rightsize.errors import RightsizeError
from rightsize.footprint.facility import DEFAULT_PUE, JOULES_PER_KWH, Facility
from rightsize.footprint.profiles import IntensityProfile, load_profile, load_traffic, zone
from rightsize.footprint.regions import parse_regions, region_comparison
from rightsize.footprint.shifting import best_start, parse_window, serving_intensity
from rightsize.records import Record
from rightsize.tables import human_grams


def attribution_lines(regions: Iterable[carbon.GridIntensity] | None, profile: IntensityProfile | None) -> list[str]:
    out = []
    if regions:
        out.append(carbon.attribution())
    if profile is not None:
        out.append(f"intensity profile: {profile.source.split(' ', 1)[-1]} ({profile.kind})")
    return out


# ------------------------------------------------------------------------------------ a deployment's footprint


@dataclass(frozen=True)
class WhereAndWhen:
    """The options of recommend, report and check about where and when energy is drawn."""

    facility: Facility = Facility()
    regions: tuple[carbon.GridIntensity, ...] = ()
    profile: IntensityProfile | None = None
    window: tuple[datetime, datetime] | None = None
    traffic: tuple[float, ...] | None = None
    tz: tzinfo = timezone.utc

    @classmethod
    def from_options(cls, pue: float = DEFAULT_PUE, heat_reuse: float = 0.0, regions: str | None = None,
                     intensity_profile: str | Path | None = None, tz: str | None = None, window: str | None = None,
                     traffic_profile: str | Path | None = None) -> "WhereAndWhen":
        """Parsed and checked command-line values; each bad one is a RightsizeError naming it."""
        clock = zone(tz)
        profile = load_profile(intensity_profile, clock) if intensity_profile else None
        if window and profile is None:
            raise RightsizeError(f"--window {window!r}: needs --intensity-profile (the intensities to shift by)")
        return cls(facility=Facility(pue, heat_reuse), regions=tuple(parse_regions(regions)) if regions else (),
                   profile=profile, window=parse_window(window) if window else None,
                   traffic=tuple(load_traffic(traffic_profile, clock)) if traffic_profile else None, tz=clock)


def figure(value: float | None, unit: str, **assumptions: Any) -> dict[str, Any]:
    """A figure as ``--json`` carries it: its value, unit and the assumptions it rests on."""
    return {"value": value, "unit": unit, "assumptions": assumptions}


def one_time_jobs(records: Sequence[Record], labels: Mapping[str, str]) -> list[tuple[str, float, float]]:
    """The one-time jobs a run measured, as (name, IT joules, seconds): each config's fit (``labels``:
    record key -> name) and, for a search folder, the search's evaluations (what each spent)."""
    jobs, search_joules, search_seconds = [], 0.0, 0.0
    for r in records:
        if r.search and r.status in ("ok", "pruned"):
            search_joules += sum((r.joules_spent or r.joules or {}).values())
            search_seconds += sum((r.seconds_spent or r.seconds or {}).values())
    for key, name in labels.items():
        r = next((r for r in records if r.key == key), None)
        fit = r.fit_joules if r else 0.0
        if fit > 0:
            jobs.append((f"fit of {name}", float(fit), float((r.seconds or {}).get("fit", 0.0))))
    if search_joules > 0:
        jobs.append(("search", search_joules, search_seconds))
    return jobs


def assess(where: WhereAndWhen, configs: Mapping[str, Mapping[str, float]],
           jobs: Sequence[tuple[str, float, float]]) -> dict[str, Any]:
    """Every figure of a deployment's footprint: ``configs`` maps a role (recommended, largest) to
    ``{lifetime_joules, serving_joules}``; ``jobs`` are the one-time jobs to shift."""
    f = where.facility
    facility = {}
    for role, c in configs.items():
        e = f.energy(c["lifetime_joules"])
        facility[role] = {"it": figure(e["it_kwh"], "kWh", basis="lifetime IT energy as recorded"),
                          "facility": figure(e["facility_kwh"], "kWh", pue=f.pue),
                          "reused_heat": figure(e["reused_heat_kwh"], "kWh", heat_reuse=f.heat_reuse),
                          "ere": figure(e["ere"], "ratio", formula="(facility - reused heat) / IT")}
    out: dict[str, Any] = {"facility": facility, "assumptions": f.assumptions(), "regions": [], "shifts": [],
                           "serving": {}, "attribution": attribution_lines(where.regions, where.profile)}
    lifetimes = {role: c["lifetime_joules"] for role, c in configs.items()}
    for row in region_comparison(lifetimes, where.regions, f):
        out["regions"].append({"region": row["region"], "grid": figure(row["g_per_kwh"], "gCO2e/kWh", year=row["year"]),
                               "lifetime_carbon": {role: figure(g, "gCO2e", pue=f.pue, region=row["region"])
                                                   for role, g in row["grams"].items()}})
    p = where.profile
    if p is None:
        return out
    out["hourly"] = figure(p.hourly_means(where.tz), "gCO2e/kWh", hours_on=str(where.tz), source=p.source)
    if where.window:
        for name, joules, seconds in jobs:
            s = best_start(p, name, joules, seconds, where.window, f).to_dict()
            basis = {"pue": f.pue, "window": [t.isoformat() for t in where.window], "power": "constant over the job"}
            out["shifts"].append({"job": name, "it_energy": figure(joules / JOULES_PER_KWH, "kWh"),
                                  "duration": figure(seconds, "s"), "now": s["now"], "best_start": s["best_start"],
                                  "now_carbon": figure(s["now_grams"], "gCO2e", **basis),
                                  "best_carbon": figure(s["best_grams"], "gCO2e", **basis),
                                  "saved": figure(s["saved_grams"], "gCO2e", saved_percent=s["saved_percent"])})
    g = serving_intensity(p, where.traffic, where.tz)
    traffic = "traffic profile" if where.traffic else "flat traffic"
    out["serving"] = {"intensity": figure(g, "gCO2e/kWh", weighting=traffic),
                      **{role: figure(f.grams(c["serving_joules"], g), "gCO2e", pue=f.pue, weighting=traffic,
                                      basis="queries x J/query over the lifetime")
                         for role, c in configs.items()}}
    return out


def footprint_lines(fp: Mapping[str, Any]) -> list[str]:
    """The footprint in words, each figure with its assumptions (recommend, check and the report);
    the sources to credit are ``fp["attribution"]``."""
    a = fp["assumptions"]
    lines = []
    for role, e in fp["facility"].items():
        lines.append(f"{role}: IT {e['it']['value']:.4g} kWh; facility {e['facility']['value']:.4g} kWh (PUE "
                     f"{a['pue']:g}); reusable heat {e['reused_heat']['value']:.4g} kWh (heat reuse "
                     f"{a['heat_reuse']:g}); ERE {e['ere']['value']:.3g}")
    for row in fp["regions"]:
        grams = ", ".join(f"{role} {human_grams(c['value'])}" for role, c in row["lifetime_carbon"].items())
        lines.append(f"region {row['region']} ({row['grid']['value']:g} gCO2e/kWh, {row['grid']['assumptions']['year']}):"
                     f" lifetime {grams} CO2e (PUE {a['pue']:g})")
    for s in fp["shifts"]:
        pct = s["saved"]["assumptions"]["saved_percent"]
        lines.append(f"{s['job']} ({s['it_energy']['value']:.4g} kWh, {s['duration']['value'] / 3600:.3g} h): "
                     f"start {s['best_start']} emits {human_grams(s['best_carbon']['value'])} vs "
                     f"{human_grams(s['now_carbon']['value'])} starting {s['now']}: saves {human_grams(s['saved']['value'])}"
                     + (f" ({pct:.1f}%)" if pct is not None else "") + f" (PUE {a['pue']:g})")
    if fp["serving"]:
        sv = fp["serving"]
        grams = ", ".join(f"{role} {human_grams(c['value'])}" for role, c in sv.items() if role != "intensity")
        lines.append(f"serving at {sv['intensity']['value']:.4g} gCO2e/kWh ({sv['intensity']['assumptions']['weighting']}"
                     f" over the profile): {grams} CO2e (PUE {a['pue']:g})")
    return lines
