"""Where and when energy is drawn: the facility (PUE, heat reuse), grid intensity by region, an
intensity profile over time, the cleanest start for a one-time job, and serving carbon weighted by
traffic. Pure arithmetic over plain values; recommend, report and check format what it returns.

Carbon is counted on the facility's energy (IT x PUE) drawn from the grid; heat reused elsewhere is
reported (The Green Grid's energy reuse factor and ERE) but not credited against the grid's carbon,
since that saving happens in whatever the heat displaces, which rightsize cannot see.
"""

from __future__ import annotations

import csv
import io
import json
import math
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone, tzinfo
from pathlib import Path
from typing import Any, Iterable, Mapping, Sequence
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from rightsize import carbon
from rightsize.errors import RightsizeError
from rightsize.records import Record
from rightsize.tables import human_grams

JOULES_PER_KWH = 3.6e6
DEFAULT_PUE = 1.2
SHIFT_STEP = timedelta(minutes=15)  # candidate start times of a shifted job
_TIME_COLUMNS = ("timestamp", "time", "datetime", "start", "period_start")
_VALUE_COLUMNS = ("g_per_kwh", "intensity", "carbon_intensity", "gco2_per_kwh", "gco2eq_per_kwh", "value", "rating")


# ------------------------------------------------------------------------------------ the facility


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


# ------------------------------------------------------------------------------------ regions


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


# ------------------------------------------------------------------------------------ profiles


@dataclass(frozen=True)
class IntensityProfile:
    """Grid intensity over time: a time series (each value holds from its timestamp to the next;
    the last for the series' median step) or 24 hour-of-day values in a time zone (periodic)."""

    kind: str  # "series" or "hour-of-day"
    source: str
    starts: tuple[datetime, ...] = ()  # series: UTC, strictly increasing
    values: tuple[float, ...] = ()  # series values, or the 24 hourly values
    tz: tzinfo = timezone.utc  # hour-of-day: the clock the hours are read on

    @property
    def end(self) -> datetime | None:
        if self.kind != "series":
            return None
        steps = sorted(b - a for a, b in zip(self.starts, self.starts[1:]))
        step = steps[len(steps) // 2] if steps else timedelta(hours=1)
        return self.starts[-1] + step

    def covers(self, start: datetime, end: datetime) -> bool:
        return self.kind != "series" or (self.starts[0] <= start and end <= self.end)

    def mean(self, start: datetime, end: datetime) -> float:
        """Time-weighted mean intensity over [start, end)."""
        if end <= start:
            return self.at(start)
        if not self.covers(start, end):
            raise RightsizeError(f"{self.source}: the profile covers {self.starts[0].isoformat()} to "
                                 f"{self.end.isoformat()}, not {start.isoformat()} to {end.isoformat()}")
        total, t = 0.0, start
        while t < end:
            nxt = min(self._next_change(t), end)
            total += self.at(t) * (nxt - t).total_seconds()
            t = nxt
        return total / (end - start).total_seconds()

    def at(self, t: datetime) -> float:
        if self.kind == "series":
            i = _bisect_right(self.starts, t) - 1
            if i < 0 or t >= self.end:
                raise RightsizeError(f"{self.source}: no intensity at {t.isoformat()} (the profile covers "
                                     f"{self.starts[0].isoformat()} to {self.end.isoformat()})")
            return self.values[i]
        return self.values[t.astimezone(self.tz).hour]

    def _next_change(self, t: datetime) -> datetime:
        if self.kind == "series":
            i = _bisect_right(self.starts, t)
            return self.starts[i] if i < len(self.starts) else self.end
        # Every zone's UTC offset is a multiple of 15 minutes, so a local hour (DST days included:
        # 23 or 25 of them) always begins on a UTC quarter hour.
        base = t.replace(minute=(t.minute // 15) * 15, second=0, microsecond=0)
        return base + timedelta(minutes=15)

    def hourly_means(self, tz: tzinfo) -> list[float]:
        """The mean intensity of each hour of the day on the clock of ``tz``."""
        if self.kind == "hour-of-day":
            day = datetime(2001, 1, 1, tzinfo=tz)  # a day without DST changes in common zones
            return [self.mean(day + timedelta(hours=h), day + timedelta(hours=h + 1)) for h in range(24)]
        sums, counts = [0.0] * 24, [0] * 24
        t = self.starts[0]
        while t < self.end:
            quarter = t.replace(minute=(t.minute // 15) * 15, second=0, microsecond=0) + timedelta(minutes=15)
            nxt = min(self._next_change(t), quarter)
            hour = t.astimezone(tz).hour
            seconds = (nxt - t).total_seconds()
            sums[hour] += self.at(t) * seconds
            counts[hour] += seconds
            t = nxt
        overall = sum(sums) / sum(counts)
        return [s / c if c else overall for s, c in zip(sums, counts)]


def _bisect_right(items: Sequence[datetime], t: datetime) -> int:
    lo, hi = 0, len(items)
    while lo < hi:
        mid = (lo + hi) // 2
        if t < items[mid]:
            hi = mid
        else:
            lo = mid + 1
    return lo


def zone(name: str | None) -> tzinfo:
    """A time zone by IANA name (``Europe/Berlin``); UTC when None."""
    if not name:
        return timezone.utc
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise RightsizeError(f"--tz {name!r}: not an IANA time zone name (e.g. Europe/Berlin, UTC)") from None


def load_profile(path: str | Path, tz: tzinfo = timezone.utc) -> IntensityProfile:
    """An intensity profile from a file, its format detected: a CSV ``timestamp,g_per_kwh`` series,
    an hour-of-day CSV (``hour,g_per_kwh``, hours 0-23 on the clock of ``tz``), or the JSON of the
    Green Software Foundation carbon-aware-sdk's emissions data (``location, time, rating, duration``)."""
    path, where, text = _read(path, "--intensity-profile")
    if path.suffix.lower() == ".json" or text.lstrip()[:1] in ("[", "{"):
        return _from_gsf(text, where)
    rows, columns = _csv(text, where)
    if "hour" in columns:
        value = _column(columns, _VALUE_COLUMNS, where, "an intensity column (g_per_kwh)")
        return _hour_of_day(rows, "hour", value, where, tz)
    time_col = _column(columns, _TIME_COLUMNS, where, "a 'timestamp' or 'hour' column")
    value = _column(columns, _VALUE_COLUMNS, where, "an intensity column (g_per_kwh)")
    points = []
    for number, row in enumerate(rows, 2):
        points.append((_timestamp(row[time_col], f"{where} line {number}"),
                       _intensity(row[value], f"{where} line {number}")))
    return _series(points, where)


def load_traffic(path: str | Path, tz: tzinfo = timezone.utc) -> list[float]:
    """A traffic profile: an hour-of-day CSV ``hour,weight`` (relative queries per hour, 0-23)."""
    path, where, text = _read(path, "--traffic-profile")
    rows, columns = _csv(text, where)
    if "hour" not in columns:
        raise RightsizeError(f"{where}: expected an hour-of-day CSV with columns hour,weight")
    value = _column(columns, ("weight", "queries", "share", "traffic", "value"), where, "a 'weight' column")
    weights = list(_hour_of_day(rows, "hour", value, where, tz, what="weight").values)
    if not sum(weights) > 0:
        raise RightsizeError(f"{where}: the weights add up to 0")
    return weights


def _read(path: str | Path, option: str) -> tuple[Path, str, str]:
    """The file an option names, where to say it is, and its text; one line when unreadable."""
    path = Path(path)
    where = f"{option} {path}"
    try:
        return path, where, path.read_text(encoding="utf-8-sig")
    except (OSError, UnicodeDecodeError) as exc:
        raise RightsizeError(f"{where}: cannot read the file ({exc.__class__.__name__})") from None


def _csv(text: str, where: str) -> tuple[list[dict[str, str]], list[str]]:
    reader = csv.DictReader(io.StringIO(text))
    columns = [c.strip().lower() for c in reader.fieldnames or []]
    if not columns:
        raise RightsizeError(f"{where}: empty file")
    rows = [{k.strip().lower(): (v or "").strip() for k, v in row.items() if k} for row in reader]
    if not rows:
        raise RightsizeError(f"{where}: no rows after the header")
    return rows, columns


def _column(columns: Sequence[str], names: Sequence[str], where: str, what: str) -> str:
    for name in names:
        if name in columns:
            return name
    raise RightsizeError(f"{where}: not a known profile format: no {what} among the columns "
                         f"{', '.join(columns)}")


def _timestamp(text: str, where: str) -> datetime:
    try:
        t = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise RightsizeError(f"{where}: {text!r} is not an ISO 8601 timestamp") from None
    if t.tzinfo is None:
        raise RightsizeError(f"{where}: timestamp {text!r} has no UTC offset (write e.g. 2026-01-01T00:00:00+01:00)")
    return t.astimezone(timezone.utc)


def _intensity(value: Any, where: str, what: str = "intensity") -> float:
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise RightsizeError(f"{where}: {what} {value!r} is not a number") from None
    if not math.isfinite(number) or number < 0:
        raise RightsizeError(f"{where}: {what} {value!r} is negative or not finite")
    return number


def _series(points: list[tuple[datetime, float]], where: str) -> IntensityProfile:
    if not points:
        raise RightsizeError(f"{where}: the series is empty")
    for (a, _), (b, _) in zip(points, points[1:]):
        if b <= a:
            raise RightsizeError(f"{where}: timestamps must increase; {b.isoformat()} follows {a.isoformat()}")
    return IntensityProfile("series", where, tuple(t for t, _ in points), tuple(v for _, v in points))


def _hour_of_day(rows: list[dict[str, str]], hour_col: str, value_col: str, where: str, tz: tzinfo,
                 what: str = "intensity") -> IntensityProfile:
    values: dict[int, float] = {}
    for number, row in enumerate(rows, 2):
        try:
            hour = int(row[hour_col])
        except ValueError:
            raise RightsizeError(f"{where} line {number}: hour {row[hour_col]!r} is not an integer 0-23") from None
        if not 0 <= hour <= 23 or hour in values:
            raise RightsizeError(f"{where} line {number}: hour {hour} is out of 0-23 or repeated")
        values[hour] = _intensity(row[value_col], f"{where} line {number}", what)
    missing = [h for h in range(24) if h not in values]
    if missing:
        raise RightsizeError(f"{where}: an hour-of-day profile needs all 24 hours; missing {missing[0]}")
    return IntensityProfile("hour-of-day", where, values=tuple(values[h] for h in range(24)), tz=tz)


def _from_gsf(text: str, where: str) -> IntensityProfile:
    try:
        doc = json.loads(text)
    except json.JSONDecodeError as exc:
        raise RightsizeError(f"{where}: not valid JSON (line {exc.lineno})") from None
    # Emissions data is a list of {location, time, rating, duration}; a forecast wraps such lists
    # in {"forecastData": [...]}.
    items = doc if isinstance(doc, list) else [doc]
    data: list[Any] = []
    for item in items:
        if isinstance(item, Mapping) and isinstance(item.get("forecastData"), list):
            data.extend(item["forecastData"])
        else:
            data.append(item)
    if not data or not all(isinstance(d, Mapping) and "time" in d and "rating" in d for d in data):
        raise RightsizeError(f"{where}: not a known profile format: expected the carbon-aware-sdk's "
                             "emissions JSON (a list of {location, time, rating, duration}), a CSV "
                             "timestamp,g_per_kwh, or an hour-of-day CSV hour,g_per_kwh")
    locations = {str(d.get("location")) for d in data}
    if len(locations) > 1:
        raise RightsizeError(f"{where}: holds {len(locations)} locations ({', '.join(sorted(locations)[:3])}...); "
                             "export one location")
    points = sorted(((_timestamp(str(d["time"]), where), _intensity(d["rating"], where)) for d in data),
                    key=lambda p: p[0])
    return _series(points, where)


# ------------------------------------------------------------------------------------ when


def parse_window(text: str) -> tuple[datetime, datetime]:
    """``--window START/END`` (ISO 8601 with UTC offsets) as UTC datetimes."""
    start_text, sep, end_text = text.partition("/")
    if not sep:
        raise RightsizeError(f"--window {text!r}: write START/END, e.g. 2026-12-03T18:00+01:00/2026-12-04T08:00+01:00")
    start, end = _timestamp(start_text.strip(), "--window start"), _timestamp(end_text.strip(), "--window end")
    if end < start:
        raise RightsizeError(f"--window {text!r}: the end comes before the start")
    return start, end


@dataclass(frozen=True)
class Shift:
    """The cleanest start of a one-time job within a window, against starting at ``now``."""

    job: str
    joules: float
    seconds: float
    now: datetime
    now_grams: float
    best_start: datetime
    best_grams: float

    @property
    def saved_grams(self) -> float:
        return self.now_grams - self.best_grams

    def to_dict(self) -> dict[str, Any]:
        return {"job": self.job, "it_joules": self.joules, "seconds": self.seconds, "now": self.now.isoformat(),
                "now_grams": self.now_grams, "best_start": self.best_start.isoformat(),
                "best_grams": self.best_grams, "saved_grams": self.saved_grams,
                "saved_percent": 100 * self.saved_grams / self.now_grams if self.now_grams > 0 else None}


def best_start(profile: IntensityProfile, job: str, joules: float, seconds: float, window: tuple[datetime, datetime],
               facility: Facility, now: datetime | None = None, step: timedelta = SHIFT_STEP) -> Shift:
    """The start within ``window`` (every ``step``, plus the window's end) that minimises the job's
    emissions at constant power, against starting at ``now`` (default: the window's start). A job
    may run past the window's end; it must fit in a time-series profile."""
    start, end = window
    now = now or start
    duration = timedelta(seconds=max(float(seconds), 0.0))

    def grams(t: datetime) -> float:
        return facility.grams(joules, profile.mean(t, t + duration) if duration else profile.at(t))

    candidates = []
    t = start
    while t <= end:
        candidates.append(t)
        t += step
    if candidates[-1] != end:
        candidates.append(end)
    fitting = [c for c in candidates if profile.covers(c, c + duration)]
    if not fitting:
        raise RightsizeError(f"{profile.source}: the job {job!r} ({duration.total_seconds() / 3600:.3g} h) does not "
                             f"fit in the profile ({profile.starts[0].isoformat()} to {profile.end.isoformat()}) from "
                             "any start in --window; give a longer profile or another window")
    if not profile.covers(now, now + duration):
        raise RightsizeError(f"{profile.source}: the profile does not cover the job {job!r} started now "
                             f"({now.isoformat()}); give a profile that starts by then")
    best = min(fitting, key=lambda c: (grams(c), c))
    return Shift(job, joules, duration.total_seconds(), now, grams(now), best, grams(best))


def serving_intensity(profile: IntensityProfile, traffic: Sequence[float] | None, tz: tzinfo) -> float:
    """The intensity a service draws at on average: the hour-of-day means of the profile weighted by
    the traffic's share of each hour (flat traffic: the plain daily mean)."""
    hourly = profile.hourly_means(tz)
    weights = list(traffic) if traffic is not None else [1.0] * 24
    return sum(w * g for w, g in zip(weights, hourly)) / sum(weights)


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
        fit = ((r.joules if r else None) or {}).get("fit", 0.0)
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
