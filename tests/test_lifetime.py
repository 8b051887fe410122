"""A recommendation that weighs training: the lifetime objective, break-even volumes by hand, and where
they show (terminal, JSON, report, check, the plot's trained marker and lifetime axis)."""

from __future__ import annotations

import json

import pytest
from click.testing import CliRunner

from rightsize import recommend as R
from rightsize.check import Current, check
from rightsize.cli import cli
from rightsize.errors import RightsizeError
from rightsize.plots import draw_pareto
from rightsize.report import pareto_view
from rightsize.results import RunLog
from test_recommend import flipped, record, refs

# ------------------------------------------------------------------------------------ break-even by hand


def test_break_even_is_the_fit_difference_over_the_per_query_difference():
    # 41 kJ to train and 0.09 J/query against 6.5 kJ and 1.59 J/query: 34,500 J / 1.5 J per query.
    assert R.break_even_queries(41_000, 0.09, 6_500, 1.59) == pytest.approx(23_000)
    assert R.break_even_queries(6_500, 1.59, 41_000, 0.09) == pytest.approx(23_000)  # either order
    # the totals agree there: 41,000 + 23,000 x 0.09 = 6,500 + 23,000 x 1.59 = 43,070 J
    assert 41_000 + 23_000 * 0.09 == pytest.approx(6_500 + 23_000 * 1.59)


@pytest.mark.parametrize("a, b", [
    ((1_000, 0.1), (2_000, 0.2)),   # A costs less to make and per query: A at every volume
    ((2_000, 0.2), (1_000, 0.1)),   # B dominates
    ((1_000, 0.1), (1_000, 0.2)),   # same fit: the cheaper per query wins from the first query
    ((1_000, 0.1), (2_000, 0.1)),   # same J/query
    ((1_000, 0.1), (1_000, 0.1)),   # the same costs
])
def test_no_break_even_when_one_config_dominates(a, b):
    assert R.break_even_queries(*a, *b) is None


def entry(label, fit, jpq, adequate=True):
    return {"label": label, "key": label, "joules_fit": fit, "joules_per_query": jpq, "adequate": adequate}


def test_break_even_against_each_adequate_config_that_costs_less_to_make():
    chosen = entry("finetuned", 41_000, 0.09)
    others = [chosen, entry("mpnet-probe", 6_500, 1.59), entry("tfidf", 100, 0.001), entry("probe", 2_000, 0.6),
              entry("bad", 10, 0.5, adequate=False), entry("costlier", 90_000, 0.01)]
    found = R.break_even_against(chosen, others, queries_per_day=10_000)
    assert [b["label"] for b in found] == ["mpnet-probe", "probe", "tfidf"]  # fewest queries first; none: last
    mpnet, probe, tfidf = found
    assert mpnet["break_even_queries"] == pytest.approx(23_000) and mpnet["break_even_days"] == pytest.approx(2.3)
    assert probe["break_even_queries"] == pytest.approx(39_000 / 0.51)
    assert tfidf["break_even_queries"] is None and tfidf["alternative_always_less"] is True
    assert R.describe_break_even(chosen, mpnet, 10_000) == (
        "finetuned costs 41 kJ to fit and 90 mJ/query; it beats mpnet-probe (6.5 kJ to fit, 1.59 J/query) "
        "after 23,000 queries (2.3 days at 10,000 queries/day)")
    assert R.describe_break_even(chosen, tfidf, 10_000).startswith(
        "tfidf (100 J to fit, 1 mJ/query) uses less energy than finetuned")


# ------------------------------------------------------------------------------------ the objective


def trained_pair():
    """Both adequate: `trained` costs 40 kJ to fit and 0.1 J/query, `frozen` 1 kJ and 0.5 J/query."""
    y = refs(300)
    trained = record("trained", y, y, jpq=0.1, fit=40_000.0)
    trained.training = {"epochs": 3, "examples": 900, "loss": 0.1}
    frozen = record("frozen", flipped(y, 1), y, jpq=0.5, fit=1_000.0)
    return [trained, frozen]


def test_the_lifetime_objective_weighs_the_fit_against_the_queries():
    records = trained_pair()  # break-even: 39,000 J / 0.4 J per query = 97,500 queries
    assert R.recommend(records).chosen["rung"] == "trained"  # least J/query
    few = R.recommend(records, objective="lifetime", queries_per_day=100, days=365)  # 36,500 queries
    assert few.chosen["rung"] == "frozen" and few.objective == {"name": "lifetime", "queries_per_day": 100,
                                                                "days": 365}
    many = R.recommend(records, objective="lifetime", queries_per_day=1_000, days=365)  # 365,000 queries
    assert many.chosen["rung"] == "trained"
    assert many.break_even[0]["label"] == "frozen"
    assert many.break_even[0]["break_even_queries"] == pytest.approx(97_500)
    assert few.break_even == []  # nothing adequate costs less to make than the frozen config
    with pytest.raises(RightsizeError, match="--objective 'cheapest'"):
        R.recommend(records, objective="cheapest")


def test_cli_recommend_says_the_break_even_in_text_and_json(tmp_path):
    RunLog(tmp_path).append(trained_pair()[0])
    RunLog(tmp_path).append(trained_pair()[1])
    text = CliRunner().invoke(cli, ["recommend", str(tmp_path), "--no-confirm"])
    assert text.exit_code == 0, text.output
    assert "chosen for the least energy per query" in text.output
    assert ("trained costs 40 kJ to fit and 100 mJ/query; it beats frozen (1 kJ to fit, 500 mJ/query) after "
            "97,500 queries (9.8 days at 10,000 queries/day)") in text.output
    doc = json.loads(CliRunner().invoke(cli, ["recommend", str(tmp_path), "--no-confirm", "--json", "--objective",
                                              "lifetime", "--queries-per-day", "100"]).stdout)
    assert doc["objective"]["name"] == "lifetime" and doc["chosen"]["rung"] == "frozen"
    assert doc["chosen"]["lifetime_joules"] == pytest.approx(1_000 + 100 * 365 * 0.5)


def test_check_not_oversized_by_lifetime_energy():
    records = trained_pair()
    per_query = check(records, Current("trained"))
    assert per_query.passed
    lifetime = check(records, Current("trained"), objective="lifetime", queries_per_day=10, days=365)
    oversized = {c.name: c for c in lifetime.criteria}["not-oversized"]
    assert oversized.status == "fail" and "over the lifetime" in oversized.message
    assert lifetime.to_dict()["objective"]["name"] == "lifetime"
    assert lifetime.cheapest_adequate["rung"] == "frozen"


# ------------------------------------------------------------------------------------ report and plot


def test_the_plot_marks_trained_configs_and_can_plot_lifetime_energy():
    rec = R.recommend(trained_pair(), queries_per_day=1_000, days=365)
    view = pareto_view(rec)
    assert {p.name: p.trained for p in view.points} == {"trained": True, "frozen": False}
    fig = draw_pareto(view)
    legend = [t.get_text() for t in fig.axes[0].get_legend().get_texts()]
    assert "adequate, trained" in legend and "adequate" in legend
    markers = {c.get_label(): c.get_paths()[0].vertices.shape for c in fig.axes[0].collections if c.get_label()
               in ("adequate", "adequate, trained")}
    assert markers["adequate"] != markers["adequate, trained"]  # circle vs square
    life = pareto_view(rec, x_axis="lifetime")
    by_name = {p.name: p.x for p in life.points}
    assert by_name["trained"] == pytest.approx(40_000 + 365_000 * 0.1)
    assert by_name["frozen"] == pytest.approx(1_000 + 365_000 * 0.5)
    assert life.x_label.startswith("lifetime energy") and "365,000 queries" in life.x_label


def test_report_x_lifetime_and_its_break_even_section(tmp_path):
    for r in trained_pair():
        RunLog(tmp_path).append(r)
    result = CliRunner().invoke(cli, ["report", str(tmp_path), "--x", "lifetime", "--format", "svg"])
    assert result.exit_code == 0, result.output
    svg = (tmp_path / "pareto.svg").read_text()
    assert "lifetime energy" in svg
    md = (tmp_path / "report.md").read_text()
    assert "it beats frozen" in md and "after 97,500 queries" in md
    assert "the least energy per query" in md
