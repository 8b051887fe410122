"""Savings against the ladder's largest rung, when a `min` target's search skipped it: the cost
model's estimate, labelled as one in its own field and line; measured on test with --measure-largest."""

from __future__ import annotations

import json

import pytest
from click.testing import CliRunner

import rightsize.search as search_module
from rightsize.cli import cli
from rightsize.cost_model import compute_weights_of
from rightsize.ladder import load_ladder
from rightsize.search import run_search
from test_search import _small_and_big, _task_with, point_values, request, task, wide_encoder  # noqa: F401 (fixtures)


def invoke(*args):
    return CliRunner().invoke(cli, [str(a) for a in args])


@pytest.fixture
def skipped_top(task, tmp_path, tiny_encoder, wide_encoder, monkeypatch):
    """A run whose search chose small-knn and skipped big-knn, the ladder's largest rung, unevaluated."""
    point_values(monkeypatch)
    monkeypatch.setattr(search_module, "ENUMERATE_MAX", 0)
    ladder = _small_and_big(tmp_path, tiny_encoder, wide_encoder)
    out = tmp_path / "run"
    outcomes = []
    run_search(request(_task_with(task, "{min: 0.2}"), ladder, out, trials=2), on_trial=outcomes.append)
    assert [(o.rung, o.outcome) for o in outcomes][:2] == [("small-knn", "complete"), ("big-knn", "skipped")]
    return out, load_ladder(ladder)


def test_an_unevaluated_top_rung_is_compared_by_an_estimate_labelled_as_such(skipped_top):
    out, ladder = skipped_top
    doc = json.loads(invoke("recommend", out, "--json", "--no-confirm").output)
    chosen, top = doc["chosen"], doc["top"]
    assert chosen["rung"] == "small-knn" and doc["largest"]["rung"] == "small-knn"  # the largest *evaluated*
    assert top["rung"] == "big-knn" and top["measured"] is None
    # The rate measured on small-knn (J/query per compute weight) times big-knn's compute weights.
    ratio = compute_weights_of(ladder["big-knn"]) / compute_weights_of(ladder["small-knn"])
    assert ratio > 1
    assert top["estimate"]["joules_per_query"] == pytest.approx(chosen["joules_per_query"] * ratio)
    assert top["estimate"]["percent_saved"] == pytest.approx(100 * (1 - 1 / ratio))

    text = invoke("recommend", out, "--no-confirm").output
    line = next(li for li in text.splitlines() if "J/query" in li and "ESTIMATE" in li)
    assert "ESTIMATE (not measured)" in line and "measured on" not in line
    assert "against the ladder's largest rung, big-knn" in text
    assert invoke("report", out, "--format", "png").exit_code == 0
    report = (out / "report.md").read_text()
    assert "Against the ladder's largest rung, `big-knn`" in report and "an **estimate**, not a measurement" in report


def test_measure_largest_evaluates_the_top_rung_on_test_and_drops_the_estimate(skipped_top):
    out, _ = skipped_top
    result = invoke("recommend", out, "--json", "--no-confirm", "--measure-largest")
    doc = json.loads(result.output)
    top = doc["top"]
    assert top["estimate"] is None and top["measured"]["split"] == "test"
    assert top["measured"]["joules_per_query"] > 0
    assert [c["rung"] for c in doc["confirmation"]] == ["big-knn"]
    text = invoke("recommend", out, "--no-confirm").output  # recorded now: no second evaluation
    assert "measured on test" in text and "ESTIMATE" not in text.split("against the ladder's largest rung")[1]


def test_a_top_rung_cheaper_than_the_choice_is_worded_without_a_negative_saving():
    from types import SimpleNamespace

    from rightsize.terminal import top_lines

    top = {"rung": "mpnet-knn", "compute_weights": 85_600_000, "estimate": None,
           "measured": {"joules_per_query": 2.04, "percent_saved": -1.6, "split": "validation"}}
    lines = top_lines(SimpleNamespace(top=top, chosen={"joules_per_query": 2.0719}))
    assert lines[1].endswith("2% more energy per query (uses 31.9 mJ more per query)"), lines
    assert "-" not in lines[1].split(":", 1)[1]
    top["measured"]["percent_saved"] = 0.2
    assert top_lines(SimpleNamespace(top=top, chosen={"joules_per_query": 2.036}))[1].endswith(
        "about the same per query")
