"""Grid intensity over time: a time series or hour-of-day values, read from CSV or the carbon-aware-sdk's
emissions JSON, with the time zone its hours are in."""

from __future__ import annotations

import csv
import io
import json
import math
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone, tzinfo
from pathlib import Path
from typing import Any, Mapping, Sequence
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from rightsize.errors import RightsizeError

_TIME_COLUMNS = ("timestamp", "time", "datetime", "start", "period_start")
_VALUE_COLUMNS = ("g_per_kwh", "intensity", "carbon_intensity", "gco2_per_kwh", "gco2eq_per_kwh", "value", "rating")


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
        points.append((parse_timestamp(row[time_col], f"{where} line {number}"),
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


def parse_timestamp(text: str, where: str) -> datetime:
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
    points = sorted(((parse_timestamp(str(d["time"]), where), _intensity(d["rating"], where)) for d in data),
                    key=lambda p: p[0])
    return _series(points, where)
