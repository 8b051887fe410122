"""How far a record's energy figures can be trusted, in numbers (for JSON) and words (for the
terminal and the report): the uncertainty of J/query, the phases too short for the energy counter
to resolve or with reads that failed, how many times inference was repeated to be resolvable, and
which energy J/query is (gross, or net of the GPU's idle draw).

Records written before these fields existed have none of them: they read as gross
(:attr:`Record.basis`), with no uncertainty known and no flag.
"""

from __future__ import annotations

from typing import Sequence

from rightsize.energy.meter import NET_OF_IDLE
from rightsize.records import Record


def jpq_uncertainty(record: Record) -> float | None:
    """How far the record's J/query can be off from the counters' update steps (None: not recorded).
    Of the energy measured in this run; a cost charged from the embedding cache was measured above
    the counter's resolution when it was stored, or is the encode rate's share."""
    u = (record.energy_uncertainty or {}).get("infer")
    n = record.n_examples
    return u / max(int(n), 1) if u is not None and n else None


def notes(record: Record) -> list[str]:
    """Short notes on a record's energy: phases below resolution, failed reads, inference repeats."""
    out = []
    if record.below_resolution:
        out.append(f"below resolution: {', '.join(record.below_resolution)}")
    if record.energy_read_errors:
        out.append(f"energy reads failed (last value kept): {', '.join(record.energy_read_errors)}")
    repeats = [r for r in record.infer_repeats or [] if r > 1]
    if repeats:
        out.append(f"inference repeated x{'/'.join(map(str, repeats))} to be resolvable")
    return out


def with_uncertainty(value: float | None, uncertainty: float | None, human) -> str:
    """``value`` in ``human``'s units with its uncertainty, relative (``1.23 mJ ±4%``) or, for a zero
    value, absolute; as is where none is known (or none from counter steps, as for the estimate)."""
    text = human(value)
    if value is None or not uncertainty:
        return text
    if value > 0:
        return f"{text} ±{100.0 * uncertainty / value:.0f}%"
    return f"{text} ± {human(uncertainty)}"


def reading_notes(records: Sequence[Record]) -> list[str]:
    """How to read a table of these records' energy: which energy J/query is, what ± and
    'below resolution' mean; only what applies to them."""
    out = []
    net = [r for r in records if r.basis == NET_OF_IDLE]
    if net:
        watts = sorted({round(r.idle_watts, 1) for r in net if r.idle_watts})
        idle = " / ".join(f"{w:g} W" for w in watts) or "its idle draw"
        out.append(f"J/query is net of the GPU's idle draw ({idle}, measured when the meter opened): what the "
                   "work added; records also carry the gross (joules_gross, joules_per_query_gross).")
    if any(jpq_uncertainty(r) or r.below_resolution for r in records):
        out.append("± is how far the energy counter's update step can put the measured energy off; 'below "
                   "resolution' marks a phase shorter than a few of those steps, whose energy is mostly that step.")
    return out
