"""Plain-text tables of records, for the terminal (the CLI prints them)."""

from __future__ import annotations

from typing import Any, Sequence


def human_count(n: int | None) -> str:
    if n is None:
        return "-"
    for unit, size in (("B", 1e9), ("M", 1e6), ("k", 1e3)):
        if n >= size:
            return f"{n / size:.1f}{unit}"
    return str(n)


def human_joules(j: float | None) -> str:
    if j is None:
        return "-"
    for unit, size in (("MJ", 1e6), ("kJ", 1e3), ("J", 1.0), ("mJ", 1e-3), ("µJ", 1e-6)):
        if abs(j) >= size:
            return f"{j / size:.3g} {unit}"
    return f"{j:.3g} J"


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


def records_table(records: Sequence[dict[str, Any]], metric: str) -> str:
    rows = []
    for r in records:
        if r.get("status") == "ok":
            value = r["metrics"][metric]
            lo, hi = r.get("ci", {}).get(metric, (None, None))
            shown = f"{value:.4f}" + (f" [{lo:.3f}, {hi:.3f}]" if lo is not None else "")
            rows.append([r["rung"], human_count(r.get("n_params")), shown, human_joules(r.get("joules_per_query")),
                         human_joules(r.get("joules_total")), f"{r.get('seconds_total', 0):.1f}",
                         r.get("energy_source", "-"), r.get("_shown_status", "ok")])
        else:
            rows.append([r["rung"], "-", "-", "-", "-", f"{r.get('seconds_total', 0):.1f}", r.get("energy_source", "-"),
                         f"FAILED ({r.get('error', '')[:60]})"])
    headers = ["rung", "params", f"{metric} [95% CI]", "J/query", "energy", "seconds", "source", "status"]
    return render(headers, rows, "lrrrrrll")
