"""Measuring one phase of an evaluation into its record: the window, the passes an inference needs
to be resolvable, the repeats of the CPU-time estimate, and what the embedding cache charges."""

from __future__ import annotations

from contextlib import contextmanager
from dataclasses import replace
from typing import Iterator

from rightsize.energy import Meter
from rightsize.energy.estimate import is_estimate
from rightsize import energy_repeats
from rightsize.energy_repeats import Windows, repeat_windows, run_until, unrepeated
from rightsize.records import Record


@contextmanager
def charged(rung, record: Record, phase: str) -> Iterator[None]:
    """Energy accounting rule: a phase's ``joules``/``seconds`` are what the configuration costs,
    the measured spend plus the stored cost of work a cache served; ``*_spent`` is the spend alone.
    Comparisons and the search read ``joules``, so a cache never makes a configuration look cheaper.
    """
    before = rung.ledger.snapshot()
    try:
        yield
    finally:
        if phase in record.joules:  # a phase that failed inside its window recorded nothing
            served = rung.ledger.since(before)
            record.joules_spent[phase] = record.joules[phase]
            record.seconds_spent[phase] = record.seconds[phase]
            record.joules[phase] += served.charged_joules
            record.seconds[phase] += served.charged_seconds
            # Stored costs are net of idle: gross adds the idle draw over their stored time.
            idle = record.idle_watts or 0.0
            record.joules_gross[phase] += served.charged_joules + idle * served.charged_seconds


def measured(meter: Meter, record: Record, phase: str, work, rung=None, repeats: list[Windows] | None = None):
    """Measure ``work`` in window ``phase`` and add it to the record.

    Given the ``rung`` (inference), a first pass shorter than the meter can resolve is repeated
    inside the window until it is long enough, and the measurement divided by the passes: only when
    the rung's predict does the same work every time and the first pass stored nothing in the
    embedding cache (else the next passes would be cache hits, cheaper than the first). Measured
    with the CPU-time estimate and given ``repeats``, the window is at least ``POLICY.window_s``
    long and is measured again in windows of equal work (rightsize.energy_repeats); ``repeats``
    gets those windows, and the phase the mean of the last round's windows per pass.
    """
    before = rung.ledger.snapshot() if rung is not None else None

    def still() -> bool:  # nothing stored in the cache since the first pass began
        return rung.ledger.stored == before.stored

    repeat = rung is not None and is_estimate(meter.source) and repeats is not None
    meter.begin(phase)
    result = work()
    passes = 1
    if rung is not None and type(rung).repeatable_predict and still():
        min_s = max(meter.min_window_s, energy_repeats.POLICY.window_s) if repeat else meter.min_window_s
        passes = run_until(meter, phase, work, min_s, still)
    whole = meter.end(phase)
    m = whole.per_pass(passes)
    if rung is not None and type(rung).repeatable_predict and still():
        extra = 0
        if repeat:
            windows = repeat_windows(meter, work, m.net_joules, whole.seconds, passes, still)
            repeats.append(windows)
            extra = windows.passes_run
            mean = sum(windows.joules_per_pass) / max(len(windows.joules_per_pass), 1)
            if m.net_joules > 0 and mean > 0:  # the phase's figures follow the mean the interval is around
                m = replace(m.per_pass(m.net_joules / mean), seconds=m.seconds)
        rung.ledger.keep_one_pass(before, passes + extra)
    elif repeat:
        repeats.append(unrepeated(passes, "the pass stored embeddings in the cache: a repeat would be cheaper"
                                  if type(rung).repeatable_predict else
                                  f"a {type(rung).kind} predict does not repeat the same work"))
    # A staged inference measures its phase in several windows: they add up.
    for per_phase, value in ((record.seconds, m.seconds), (record.joules, m.net_joules),
                             (record.joules_gross, m.joules), (record.energy_uncertainty, m.uncertainty)):
        per_phase[phase] = per_phase.get(phase, 0.0) + value
    for flagged, on in ((record.below_resolution, m.below_resolution), (record.energy_read_errors, m.read_errors)):
        if on and phase not in flagged:
            flagged.append(phase)
    if rung is not None:
        record.infer_repeats.append(passes)
    parts = record.energy_parts.setdefault(phase, {})
    for part, joules in m.net_parts.items():
        parts[part] = parts.get(part, 0.0) + joules
    return result
