"""Decisions on J/query intervals: the recommendation's ties and the search's cost skips use the
interval across repeated measurements, and the point value where a record has none."""

from __future__ import annotations

from dataclasses import replace
from types import SimpleNamespace

from test_recommend import record, refs

from rightsize import recommend as R
from rightsize.adequacy import Target, judge
from rightsize.search.scheduler import Scheduler
from rightsize.terminal import energy_tie_lines


def with_interval(r, low, high):
    return replace(r, joules_per_query_repeats={"repeats": 5, "interval": [low, high]})


def pair():
    """Two adequate configs: ``wide`` cheaper by point value, ``lean`` with far fewer parameters."""
    y = refs(100)
    return (record("wide", y, y, jpq=1.0e-3, n_params=1_000_000),
            record("lean", y, y, jpq=1.1e-3, n_params=1_000))


def test_overlapping_intervals_are_a_tie_won_by_fewer_parameters():
    wide, lean = pair()
    judged = judge([with_interval(wide, 0.8e-3, 1.2e-3), with_interval(lean, 0.9e-3, 1.3e-3)], {"min": 0.9},
                   "accuracy")
    assert judged.cheapest_adequate.rung == "lean" and [r.rung for r in judged.energy_ties] == ["wide"]


def test_without_intervals_or_with_disjoint_ones_the_point_value_decides():
    wide, lean = pair()
    assert judge([wide, lean], {"min": 0.9}, "accuracy").cheapest_adequate.rung == "wide"  # old records
    judged = judge([with_interval(wide, 0.95e-3, 1.05e-3), with_interval(lean, 1.06e-3, 1.14e-3)], {"min": 0.9},
                   "accuracy")
    assert judged.cheapest_adequate.rung == "wide" and judged.energy_ties == ()


def test_the_recommendation_says_it_chose_among_configs_tied_on_energy():
    wide, lean = pair()
    rec = R.recommend([with_interval(wide, 0.8e-3, 1.2e-3), with_interval(lean, 0.9e-3, 1.3e-3)],
                      target={"min": 0.9})
    assert rec.chosen["label"] == "lean" and [t["label"] for t in rec.energy_tie["tied_with"]] == ["wide"]
    assert rec.to_dict()["energy_tie"]["chosen"]["high"] == 1.3e-3
    (line,) = energy_tie_lines(rec)
    assert "tied on energy within measurement error: lean (" in line and "with wide (" in line
    assert "chose the one with the fewest parameters" in line
    assert R.recommend([wide, lean], target={"min": 0.9}).energy_tie == {}


def scheduler(objective):
    ctx = SimpleNamespace(target=Target(min=0.9), ladder_keys=set(), objective=objective, n_train=10)
    return Scheduler(ctx)


def standing(incumbent, per_query_bound, fit_bound=None):
    cost = SimpleNamespace(lower_bound=lambda spec: per_query_bound, fit_lower_bound=lambda spec, n: fit_bound)
    return SimpleNamespace(incumbent=incumbent, cost=cost, encoder_done=lambda spec: False)


def test_a_config_is_skipped_only_when_its_bound_is_above_the_incumbents_interval():
    incumbent = record("inc", refs(10), refs(10), jpq=1.0e-3)
    per_query = scheduler(R.Objective())
    # Old records (no interval): the point value is the bar, as before.
    assert "costs at least" in per_query.ruled_out(standing(incumbent, 1.2e-3), None, "k")
    measured = with_interval(incumbent, 0.8e-3, 1.3e-3)
    assert per_query.ruled_out(standing(measured, 1.2e-3), None, "k") == ""  # within the interval: may win
    why = per_query.ruled_out(standing(measured, 1.4e-3), None, "k")
    assert "costs at least" in why and "at most 1.3 mJ/query across repeated measurements" in why


def test_over_a_lifetime_the_skip_uses_the_upper_end_of_the_incumbents_lifetime_interval():
    incumbent = record("inc", refs(10), refs(10), jpq=1.0, fit=1.0)  # lifetime: 1 J + 10 queries x 1 J = 11 J
    lifetime = scheduler(R.Objective("lifetime", queries_per_day=10, days=1))
    assert lifetime.ruled_out(standing(incumbent, 1.2), None, "k")  # 12 J > 11 J
    # With J/query in [0.8, 1.3], the incumbent may cost up to 14 J: a bound of 12 J may still win.
    assert lifetime.ruled_out(standing(with_interval(incumbent, 0.8, 1.3), 1.2), None, "k") == ""


def test_configs_serving_the_same_model_tie_on_energy_and_the_one_cheapest_to_make_wins():
    # Two fine-tunes of one depth (same parameters, same inference): J/query differs by noise only,
    # what differs is the training energy.
    y = refs(100)
    long_run = replace(record("ft-2-epochs", y, y, jpq=1.00e-3, n_params=17_000_000),
                       joules={"fit": 900.0, "infer": 0.1})
    short_run = replace(record("ft-1-epoch", y, y, jpq=1.05e-3, n_params=17_000_000),
                        joules={"fit": 450.0, "infer": 0.1})
    judged = judge([with_interval(long_run, 0.9e-3, 1.1e-3), with_interval(short_run, 0.95e-3, 1.15e-3)],
                   {"min": 0.9}, "accuracy")
    assert judged.cheapest_adequate.rung == "ft-1-epoch" and [r.rung for r in judged.energy_ties] == ["ft-2-epochs"]


def test_the_report_says_it_chose_among_configs_tied_on_energy():
    from rightsize.report_document import document
    from rightsize.report_render import to_markdown

    wide, lean = (with_interval(r, *span) for r, span in zip(pair(), ((0.8e-3, 1.2e-3), (0.9e-3, 1.3e-3))))
    rec = R.recommend([wide, lean], target={"min": 0.9})
    text = to_markdown(document(rec, {r.key: r for r in (wide, lean)}, [], [], None, "pareto.png"))
    assert "Tied on energy within measurement error: lean (" in text and "fewest parameters" in text
