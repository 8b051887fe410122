"""Host CPU and DRAM energy from Linux powercap (RAPL): ``<root>/intel-rapl:N/energy_uj``.

Counted: each package zone (name "package-N") and its "dram" subzone. Not counted: "core" and
"uncore" subzones (already inside the package) and "psys" (the platform, which also contains the
package). The same driver serves AMD Zen packages, which simply have no dram subzone.
"""

from __future__ import annotations

import errno
import logging
import os
import re
import threading
import weakref
from dataclasses import dataclass
from typing import Any

from rightsize.energy.counter import Poller, Unavailable, step_uncertainty

log = logging.getLogger(__name__)

DEFAULT_POWERCAP_ROOT = "/sys/class/powercap"
_ZONE = re.compile(r"intel-rapl:(\d+)")
_SUBZONE = re.compile(r"intel-rapl:(\d+):(\d+)")
# Wrap guard: assume no zone draws over 1 kW and read at least twice per wrap period.
_ASSUMED_MAX_WATTS = 1000.0
# RAPL's energy status registers update about every millisecond (Intel SDM, "RAPL interfaces").
UPDATE_S = 0.001


@dataclass
class _Zone:
    part: str  # "cpu-package:0", "dram:0"
    path: str  # .../energy_uj
    max_uj: int | None  # max_energy_range_uj; None if the kernel does not say
    fd: int = -1


def _read_text(path: str) -> str:
    with open(path, encoding="ascii") as f:
        return f.read().strip()


def _unreadable(path: str, exc: OSError) -> Unavailable:
    if isinstance(exc, PermissionError) or exc.errno in (errno.EACCES, errno.EPERM):
        why = "permission denied"  # energy_uj is root-only since Linux 5.10 (CVE-2020-8694)
    else:
        why = exc.strerror or type(exc).__name__
    return Unavailable(f"{path} is not readable ({why})")


def _open_zone(part: str, zone_dir: str) -> _Zone:
    path = os.path.join(zone_dir, "energy_uj")
    try:
        max_uj: int | None = int(_read_text(os.path.join(zone_dir, "max_energy_range_uj")))
    except (OSError, ValueError):
        max_uj = None
        log.warning("%s: no max_energy_range_uj; a wrap-around would be under-counted", zone_dir)
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError as e:
        raise _unreadable(path, e) from None
    try:
        int(os.pread(fd, 32, 0))
    except OSError as e:
        os.close(fd)
        raise _unreadable(path, e) from None
    except ValueError:
        os.close(fd)
        raise Unavailable(f"{path} does not hold an integer") from None
    return _Zone(part, path, max_uj, fd)


def _zone_dirs(pattern: re.Pattern[str], where: str) -> list[tuple[tuple[int, ...], str]]:
    """(numeric key, dir) for entries of ``where`` matching ``pattern``, in numeric order."""
    out = []
    for entry in os.listdir(where):
        m = pattern.fullmatch(entry)
        if m:
            out.append((tuple(int(g) for g in m.groups()), os.path.join(where, entry)))
    return sorted(out)


def find_zones(root: str = DEFAULT_POWERCAP_ROOT) -> list[_Zone]:
    """Open the package and dram zones under ``root``; raise Unavailable with the reason."""
    if not os.path.isdir(root):
        raise Unavailable(f"{root} does not exist (no Linux powercap/RAPL here)")
    zones: list[_Zone] = []
    try:
        for (n,), zone_dir in _zone_dirs(_ZONE, root):
            try:
                name = _read_text(os.path.join(zone_dir, "name"))
            except OSError as e:
                raise _unreadable(os.path.join(zone_dir, "name"), e) from None
            if not name.startswith("package"):
                log.debug("%s (%s) skipped: not a package zone", zone_dir, name)
                continue
            pkg = name.partition("-")[2] or str(n)
            zones.append(_open_zone(f"cpu-package:{pkg}", zone_dir))
            # Subzones live inside the package directory; /sys/class/powercap also lists them flat.
            subs: dict[str, str] = {}
            for key, d in _zone_dirs(_SUBZONE, zone_dir) + _zone_dirs(_SUBZONE, root):
                if key[0] == n:
                    subs.setdefault(os.path.realpath(d), d)
            for d in sorted(subs.values()):
                try:
                    sub_name = _read_text(os.path.join(d, "name"))
                except OSError:
                    continue
                if sub_name == "dram":
                    zones.append(_open_zone(f"dram:{pkg}", d))
    except Unavailable:
        _close(zones)
        raise
    if not zones:
        raise Unavailable(f"no RAPL package zones (intel-rapl:N) under {root}")
    return zones


def _close(zones: list[_Zone]) -> None:
    for z in zones:
        if z.fd >= 0:
            os.close(z.fd)
            z.fd = -1


def probe(root: str = DEFAULT_POWERCAP_ROOT) -> str:
    """'ok', or why RAPL cannot be read here."""
    try:
        _close(find_zones(root))
    except Unavailable as e:
        return str(e)
    return "ok"


class RaplCounter:
    """Cumulative joules per package and dram zone, with wrap-around absorbed."""

    name = "rapl"
    source = "rapl"
    resolution_s = UPDATE_S
    idle_watts: dict[str, float] = {}  # the package's idle draw is not subtracted: see docs/energy.md
    read_errors = 0

    def __init__(self, root: str = DEFAULT_POWERCAP_ROOT) -> None:
        self.root = root
        self._zones = find_zones(root)
        self._lock = threading.Lock()
        self._last = [self._raw(z) for z in self._zones]
        self._totals = {z.part: 0.0 for z in self._zones}
        ranges_j = [z.max_uj / 1e6 for z in self._zones if z.max_uj]
        period = min(ranges_j) / _ASSUMED_MAX_WATTS / 2 if ranges_j else 60.0
        # A window longer than one wrap period would lose a whole range; a slow background read
        # keeps every gap between two reads shorter than that.
        self._poller = Poller(self._tick, max(1.0, min(60.0, period)), "rightsize-rapl-wrap")
        self._finalizer = weakref.finalize(self, _shutdown, self._poller, self._lock, self._zones)

    @staticmethod
    def _raw(z: _Zone) -> int:
        # pread on a kept fd re-reads the sysfs attribute: ~1 µs, against ~20 µs for open+read.
        return int(os.pread(z.fd, 32, 0))

    def _tick(self) -> None:
        self.read()

    def read(self) -> dict[str, float]:
        self._poller.start()
        with self._lock:
            for i, z in enumerate(self._zones):
                raw = self._raw(z)
                delta = raw - self._last[i]
                if delta < 0:  # wrapped: (max - old) + new; range unknown: what is visible
                    delta = z.max_uj - self._last[i] + raw if z.max_uj else raw
                self._last[i] = raw
                self._totals[z.part] += delta * 1e-6
            return dict(self._totals)

    def uncertainty(self, joules: dict[str, float], seconds: float) -> float:
        return sum(step_uncertainty(j, seconds, UPDATE_S) for j in joules.values())

    def describe(self) -> dict[str, Any]:
        return {"rapl_zones": {z.part: z.path for z in self._zones}}

    def close(self) -> None:
        self._finalizer()


def _shutdown(poller: Poller, lock: threading.Lock, zones: list[_Zone]) -> None:
    poller.stop()
    with lock:  # not under a read in flight
        _close(zones)
