"""When energy is drawn: the cleanest start of a one-time job within a window, and the intensity a
service draws at on average, weighted by its traffic."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta, tzinfo
from typing import Any, Sequence

from rightsize.errors import RightsizeError
from rightsize.footprint.facility import Facility
from rightsize.footprint.profiles import IntensityProfile, parse_timestamp

SHIFT_STEP = timedelta(minutes=15)  # candidate start times of a shifted job


def parse_window(text: str) -> tuple[datetime, datetime]:
    """``--window START/END`` (ISO 8601 with UTC offsets) as UTC datetimes."""
    start_text, sep, end_text = text.partition("/")
    if not sep:
        raise RightsizeError(f"--window {text!r}: write START/END, e.g. 2026-12-03T18:00+01:00/2026-12-04T08:00+01:00")
    start, end = parse_timestamp(start_text.strip(), "--window start"), parse_timestamp(end_text.strip(), "--window end")
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
