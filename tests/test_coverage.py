"""Certainty is part of the answer: a run that did not evaluate the rungs setting a `within` bar,
or every config that could be cheaper, says so (CLI, JSON, report, check) and exits non-zero;
configs are named by the knobs that set them apart; a run where nothing finished says what was tried."""

from __future__ import annotations

import json

import pytest
from click.testing import CliRunner

from rightsize.cli import cli
from rightsize.coverage import assess_coverage, plan_entry, search_end_entry
from rightsize.naming import variant_labels
from rightsize.records import Record
from rightsize.search import run_search
from test_search import _small_and_big, _task_with, request, task, wide_encoder  # noqa: F401 (fixtures)


def invoke(*args):
    return CliRunner().invoke(cli, [str(a) for a in args])


def _k_ladder(tmp_path, tiny_encoder, wide_encoder):
    # small-knn (k=5) has a neighbour (k=3) that shares its encoder: bounded cheaper than big-knn.
    return _small_and_big(tmp_path, tiny_encoder, wide_encoder, "{knobs: [], space: {small-knn: {k: [3, 5]}}}",
                          k=", k: 5")


# ------------------------------------------------------------------------------------ the search


@pytest.mark.parametrize("trials, order", [
    (2, [("small-knn", {"k": 5}), ("big-knn", {})]),
    (3, [("small-knn", {"k": 5}), ("small-knn", {"k": 3}), ("big-knn", {})]),
])
def test_with_a_within_target_the_budget_keeps_room_for_the_ladders_rungs(task, tmp_path, tiny_encoder,
                                                                          wide_encoder, trials, order):
    # The reported case in miniature: the budget used to go to the cheap rung's neighbours, and the
    # top rung, which sets the bar, was never run. Now a neighbour goes ahead of a rung only with a
    # trial to spare beyond the rungs left, and the answer is certain.
    outcomes = []
    result = run_search(request(task, _k_ladder(tmp_path, tiny_encoder, wide_encoder), tmp_path / "run",
                                trials=trials), on_trial=outcomes.append)
    assert [(o.rung, o.searched) for o in outcomes] == order
    assert result.recommendation.certain and result.exit_code == 0


def test_under_an_energy_budget_the_ladders_rungs_come_first(task, tmp_path, tiny_encoder, wide_encoder):
    outcomes = []
    run_search(request(task, _k_ladder(tmp_path, tiny_encoder, wide_encoder), tmp_path / "run", trials=3,
                       budget_joules=1e6), on_trial=outcomes.append)
    assert [(o.rung, o.searched) for o in outcomes][:2] == [("small-knn", {"k": 5}), ("big-knn", {})]


def test_a_budget_that_ends_before_the_top_rung_gives_an_uncertain_answer_everywhere(task, tmp_path, tiny_encoder,
                                                                                    wide_encoder):
    ladder, out = _k_ladder(tmp_path, tiny_encoder, wide_encoder), tmp_path / "run"
    searched = invoke("search", task, "--ladder", ladder, "--trials", 1, "--out", out, "--meter", "estimate",
                      "--no-cache")
    assert searched.exit_code == 3, searched.output
    # Said at the start, and in the answer, naming the rung that was not run.
    assert "--trials 1 leaves 1 evaluations for the 2 ladder rungs" in searched.output
    assert "UNCERTAIN: big-knn was not evaluated: the best may be higher" in searched.output
    as_json = json.loads(invoke("recommend", out, "--json", "--no-confirm").output)
    assert as_json["certain"] is False and [m["name"] for m in as_json["coverage"]["missing"]] == ["big-knn"]
    recommended = invoke("recommend", out, "--no-confirm")
    assert recommended.exit_code == 3 and "UNCERTAIN: big-knn" in recommended.output
    checked = invoke("check", out, "--current", "small-knn", "--json")
    doc = json.loads(checked.output)
    assert checked.exit_code == 1 and doc["certain"] is False
    assert {c["name"]: c["status"] for c in doc["criteria"]}["complete-evidence"] == "fail"
    assert "FAIL uncertain" in doc["summary"]
    reported = invoke("report", out, "--format", "png")
    assert reported.exit_code == 0 and "UNCERTAIN: big-knn" in reported.output
    assert "**Not certain:** big-knn was not evaluated" in (out / "report.md").read_text()


def test_a_search_where_every_trial_was_pruned_says_what_was_tried_and_exits_1(task, tmp_path, blind_encoder):
    ladder = tmp_path / "l.yaml"
    ladder.write_text(f"rungs:\n  - {{name: knn, kind: knn, model: '{blind_encoder}'}}\nsearch: {{knobs: []}}\n")
    out = tmp_path / "run"
    # An encoder that reads no word is at chance: its CI upper bound cannot reach 0.99 after 30 examples.
    searched = invoke("search", _task_with(task, "{min: 0.99}"), "--ladder", ladder, "--trials", 3, "--out", out,
                      "--meter", "estimate", "--no-cache")
    assert searched.exit_code == 1, searched.output
    assert "no config finished a complete evaluation; tried 1:" in searched.output
    assert "knn: pruned (accuracy" in searched.output
    recommended = invoke("recommend", out)
    assert recommended.exit_code == 1 and "knn: pruned (accuracy" in recommended.output
    reported = invoke("report", out)
    assert reported.exit_code == 1 and "1 tried" in reported.output
    text = (out / "report.md").read_text()
    assert "No recommendation" in text and "| `knn` | pruned |" in text


def test_search_names_each_variant_by_the_knobs_that_set_it_apart(task, tmp_path):
    from test_search import tfidf_ladder as _  # noqa: F401 (keeps the fixture's module loaded)

    ladder = tmp_path / "tfidf.yaml"
    ladder.write_text("rungs:\n  - {name: tfidf, kind: tfidf, max_features: 5000}\n"
                      "search:\n  knobs: []\n  space: {tfidf: {C: [1.0, 10.0], ngram_max: [1, 2]}}\n")
    out = tmp_path / "run"
    searched = invoke("search", task, "--ladder", ladder, "--trials", 4, "--out", out, "--meter", "estimate",
                      "--no-cache", "--json")
    doc = json.loads(searched.output)
    labels = [c["label"] for c in doc["recommendation"]["configs"]]
    assert len(set(labels)) == 4 and all(label.startswith("tfidf (C=") for label in labels)
    assert doc["recommendation"]["chosen"]["label"] in labels


# ------------------------------------------------------------------------------------ pure parts


def _record(key, rung, config, jpq, status="ok"):
    return Record(key=key, rung=rung, config=config, joules_per_query=jpq, status=status,
                  task="t", split="validation", limit=None, seed=0)


def test_labels_name_only_the_knobs_that_differ_between_siblings():
    records = [Record(key="a", rung="tfidf", config={"kind": "tfidf", "C": 1.0, "threads": 1}),
               Record(key="b", rung="tfidf", config={"kind": "tfidf", "C": 1.0, "threads": None}),
               Record(key="c", rung="probe", config={"kind": "probe", "model": "org/m", "layers": 3})]
    assert variant_labels(records) == {"a": "tfidf (threads=1)", "b": "tfidf (threads=-)", "c": "probe"}


def test_a_min_answer_is_certain_but_not_minimal_while_a_search_leaves_cheaper_configs():
    anchor = _record("a", "small", {"kind": "tfidf"}, 1e-3)
    start = plan_entry("search", task="t", split="validation", limit=None, seed=0, run_id="r",
                       rungs=[("small", "a", {"kind": "tfidf"})])
    end = search_end_entry(start, stopped="2 configs evaluated (--trials)",
                           remaining=[("small (C=1.0)", "x"), ("small (C=100.0)", "y")], space_size=4)
    covered = assess_coverage([anchor], anchor, [start, end], "min", anchor)
    assert covered.certain and covered.minimal is False and covered.remaining == 2
    assert covered.note.startswith("the answer is the cheapest adequate config found, not certainly the cheapest: "
                                   "2 other configs")
    assert "small (C=1.0)" in covered.note and "(--trials)" in covered.note
    # Evaluated later (say by `rightsize evaluate`), a remaining config no longer counts.
    later = _record("x", "small", {"kind": "tfidf", "C": 1.0}, 2e-3)
    assert assess_coverage([anchor, later], anchor, [start, end], "min", anchor).remaining == 1
    # A killed search recorded no end: how much is left is unknown.
    killed = assess_coverage([anchor], anchor, [start], "min", anchor)
    assert killed.minimal is False and killed.remaining is None and "recorded no end" in killed.note


def test_a_missing_rung_is_uncertain_for_within_and_only_not_minimal_for_min():
    anchor = _record("a", "small", {"kind": "tfidf"}, 1e-3)
    plan = plan_entry("evaluate", task="t", split="validation", limit=None, seed=0, run_id="r",
                      rungs=[("small", "a", {"kind": "tfidf"}), ("big", "b", {"kind": "tfidf", "C": 5.0})])
    within = assess_coverage([anchor], anchor, [plan], "within", anchor)
    assert within.certain is False and [m["name"] for m in within.missing] == ["big"]
    minimum = assess_coverage([anchor], anchor, [plan], "min", anchor)
    assert minimum.certain and minimum.minimal is False
    failed = _record("b", "big", {"kind": "tfidf", "C": 5.0}, None, status="failed")
    assert assess_coverage([anchor, failed], anchor, [plan], "min", anchor).minimal  # a failed config is no answer
    assert assess_coverage([anchor, failed], anchor, [plan], "within", anchor).missing[0]["why"] == "failed"
    other_sample = {**plan, "limit": 50}
    unknown = assess_coverage([anchor], anchor, [other_sample], "within", anchor)
    assert unknown.certain is None and "completeness unknown" in unknown.note
