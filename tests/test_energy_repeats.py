"""Repeated inference windows (rightsize.energy_repeats through rightsize.phase_energy.measured):
equal work per window, longer windows while the J/query CV misses the target, what the record says."""

from __future__ import annotations

import itertools

import pytest
from conftest import ScriptedCounter

from rightsize import energy_repeats
from rightsize.cache import CacheLedger
from rightsize.energy.clock import Clock
from rightsize.energy.meter import Meter
from rightsize.energy_repeats import RepeatPolicy, energy_interval
from rightsize.phase_energy import measured
from rightsize.records import Record


class EstimateLike(ScriptedCounter):
    source = "estimate"  # measured as the CPU-time estimate is: the inference is repeated


class Rung:
    """A rung whose predict takes 10 ms and costs 1.0 J and 1.5 J on alternate passes (jitter that
    averages out over windows of an even number of passes)."""

    kind = "fake"
    repeatable_predict = True

    def __init__(self, counter, clock, stores=False):
        self.counter, self.clock, self.stores = counter, clock, stores
        self.ledger = CacheLedger()
        self.costs = itertools.cycle([1.0, 1.5])

    def predict(self):
        self.clock["now"] += 0.01
        self.counter.joules += next(self.costs)
        if self.stores:
            self.ledger.stored += 1
        return ["a"]


def measure(monkeypatch, budget_s, stores=False):
    monkeypatch.setattr(energy_repeats, "POLICY", RepeatPolicy(window_s=0.0, repeats=5, growth=4, budget_s=budget_s))
    counter, clock = EstimateLike(), {"now": 0.0}
    meter = Meter([counter], clock=Clock(now=lambda: clock["now"]))
    rung = Rung(counter, clock, stores)
    record = Record(seconds={}, joules={}, joules_gross={}, energy_parts={}, energy_uncertainty={},
                    below_resolution=[], energy_read_errors=[], infer_repeats=[])
    repeats = []
    measured(meter, record, "infer", rung.predict, rung, repeats)
    return record, repeats


def test_windows_grow_until_the_cv_meets_the_target(monkeypatch):
    record, repeats = measure(monkeypatch, budget_s=1.0)
    (windows,) = repeats
    # One pass per window: 1.0, 1.5, 1.0, 1.5, 1.0 J, a CV of 23%; windows of 4 passes: 1.25 J each.
    assert windows.rounds == 2 and windows.passes == 4 and windows.joules_per_pass == [1.25] * 5
    assert record.joules["infer"] == pytest.approx(1.25)  # the phase follows the windows' mean
    summary = energy_interval(repeats, 10, served_joules=2.0)
    assert summary["cv"] == 0.0 and summary["cv_met"] and summary["repeats"] == 5
    assert summary["passes_per_window"] == [4] and summary["rounds"] == 2 and not summary["note"]
    # The cache-served cost (0.2 J/query) shifts the interval of what was measured here (0.125 J/query).
    assert summary["measured_mean"] == pytest.approx(0.125) and summary["mean"] == pytest.approx(0.325)
    assert summary["interval"] == pytest.approx([0.325, 0.325])


def test_a_budget_too_small_for_longer_windows_says_the_target_is_not_met(monkeypatch):
    record, repeats = measure(monkeypatch, budget_s=0.1)
    summary = energy_interval(repeats, 1)
    assert summary["repeats"] == 5 and summary["passes_per_window"] == [1] and summary["rounds"] == 1
    assert summary["cv"] == pytest.approx(0.2282, abs=1e-3) and not summary["cv_met"]
    assert summary["note"] == "CV 22.8% over 5 windows of 1 pass; the 0.1 s repeat budget allows no longer windows"
    low, high = summary["interval"]
    assert summary["mean"] == pytest.approx(1.2) and low < 1.2 < high
    assert Record(joules_per_query=1.2, joules_per_query_repeats=summary).jpq_interval == (low, high)


def test_an_inference_that_fills_the_cache_is_not_repeated_and_the_record_says_so(monkeypatch):
    record, repeats = measure(monkeypatch, budget_s=1.0, stores=True)
    summary = energy_interval(repeats, 1)
    assert record.joules["infer"] == 1.0 and summary["interval"] is None and summary["cv"] is None
    assert not summary["cv_met"] and summary["note"].startswith("not repeated: the pass stored embeddings")
    # Deciding comparisons fall back to the point value.
    assert Record(joules_per_query=1.0, joules_per_query_repeats=summary).jpq_interval == (1.0, 1.0)


def test_a_further_round_takes_as_many_passes_as_the_budget_left_fits(monkeypatch):
    record, repeats = measure(monkeypatch, budget_s=0.22)
    (windows,) = repeats
    # 0.05 s spent on round 1 leaves room for 5 windows of 3 passes (not 4); at 3 passes the windows
    # still alternate (1.33 J, 1.17 J per pass), and no longer windows fit.
    assert windows.rounds == 2 and windows.passes == 3 and len(windows.joules_per_pass) == 5
    assert windows.cv == pytest.approx(0.0722, abs=1e-3)
    assert windows.note == "CV 7.2% over 5 windows of 3 passes; the 0.22 s repeat budget allows no longer windows"
