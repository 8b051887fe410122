"""Units and plain-text tables, for the terminal and the report."""

from __future__ import annotations

import math
from typing import Any, Sequence

from rightsize import energy_quality
from rightsize.records import Record

# What the status column shows for a record that was not evaluated now: an ``extra`` key of the records
# ``rightsize evaluate`` yields (and prints with --json), never written to runs.jsonl.
SHOWN_STATUS = "_shown_status"


def human_count(n: int | None) -> str:
    if n is None:
        return "-"
    for unit, size in (("B", 1e9), ("M", 1e6), ("k", 1e3)):
        if n >= size:
            return f"{n / size:.1f}{unit}"
    return str(n)


def _scaled(value: float | None, units: Sequence[tuple[str, float]], base: str) -> str:
    """The value in the largest unit it reaches, to 3 significant figures; below all of them, in ``base``."""
    if value is None:
        return "-"
    for unit, size in units:
        if abs(value) >= size:
            return f"{value / size:.3g} {unit}"
    return f"{value:.3g} {base}"


def human_joules(j: float | None) -> str:
    return _scaled(j, (("MJ", 1e6), ("kJ", 1e3), ("J", 1.0), ("mJ", 1e-3), ("µJ", 1e-6)), "J")


def human_grams(g: float | None) -> str:
    """Grams of CO2e as t, kg, g or mg, like human_joules: the terminal and the report print the same."""
    return _scaled(g, (("t", 1e6), ("kg", 1e3), ("g", 1.0), ("mg", 1e-3)), "g")


# The one line that says energy was estimated, not measured (evaluate, recommend, search, check, report).
ESTIMATE_NOTE = "energy source 'estimate': process CPU time x watts per core, not a measurement"


def relative_energy(percent_saved: float) -> str:
    """A saving in words: ``99.7% less``, ``35% more``, ``about the same``. Never negative, and a saving
    is rounded down, so 99.7% does not read as "100% less"."""
    if abs(percent_saved) < 0.5:
        return "about the same"
    if percent_saved < 0:
        return f"{-percent_saved:.0f}% more"
    digits = 0 if percent_saved < 99 else 1
    scale = 10 ** digits
    return f"{math.floor(percent_saved * scale) / scale:.{digits}f}% less"


def render(headers: Sequence[str], rows: Sequence[Sequence[Any]], align: str | None = None) -> str:
    """A fixed-width table; ``align`` gives one 'l' or 'r' per column."""
    cells = [[str(c) for c in headers]] + [[str(c) for c in row] for row in rows]
    widths = [max(len(r[i]) for r in cells) for i in range(len(headers))]
    align = align or "l" * len(headers)
    lines = []
    for n, row in enumerate(cells):
        lines.append("  ".join(c.ljust(w) if a == "l" else c.rjust(w) for c, w, a in zip(row, widths, align)).rstrip())
        if n == 0:
            lines.append("  ".join("-" * w for w in widths))
    return "\n".join(lines)


def records_table(records: Sequence[Record], metric: str) -> str:
    rows = []
    for r in records:
        seconds, source = f"{r.seconds_total or 0:.1f}", r.energy_source or "-"
        if r.ok:
            lo, hi = r.interval(metric) or (None, None)
            shown = f"{r.score(metric):.4f}" + (f" [{lo:.3f}, {hi:.3f}]" if lo is not None else "")
            jpq = energy_quality.with_uncertainty(r.joules_per_query, energy_quality.jpq_uncertainty(r), human_joules)
            status = "; ".join([r.extra.get(SHOWN_STATUS, "ok"), *energy_quality.notes(r)])
            rows.append([r.rung, human_count(r.n_params), shown, jpq, human_joules(r.joules_total), seconds, source,
                         status])
        else:
            rows.append([r.rung, "-", "-", "-", "-", seconds, source, f"FAILED ({(r.error or '')[:60]})"])
    headers = ["rung", "params", f"{metric} [95% CI]", "J/query", "energy", "seconds", "source", "status"]
    return render(headers, rows, "lrrrrrll")
