"""One run set-up for evaluate, search and confirm: each records its environment and closes its meters."""

from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner

from rightsize import session as session_module
from rightsize.cli import cli
from rightsize.confirm import confirm_on_test
from rightsize.energy import make_meter
from rightsize.results import RunLog
from rightsize.runner import EvaluationRequest, run_evaluation
from rightsize.search import SearchRequest, run_search


def run(*args):
    return CliRunner().invoke(cli, [str(a) for a in args])


@pytest.fixture
def tfidf_ladder(tmp_path) -> Path:
    """Two TF-IDF configs: no model to load."""
    path = tmp_path / "tfidf.yaml"
    path.write_text("rungs:\n  - {name: tfidf, kind: tfidf}\nsearch:\n  knobs: []\n  space: {tfidf: {C: [1.0, 10.0]}}\n")
    return path


@pytest.fixture
def meters(monkeypatch) -> list:
    """Every meter the run set-up makes, each with ``closed`` set once its close() ran."""
    made = []

    def recording(*args, **kwargs):
        meter = make_meter(*args, **kwargs)
        close, meter.closed = meter.close, False

        def closing() -> None:
            meter.closed = True
            close()

        meter.close = closing
        made.append(meter)
        return meter

    monkeypatch.setattr(session_module, "make_meter", recording)
    return made


def test_a_search_only_run_folder_has_its_environment_in_the_report(tiny_task, tfidf_ladder, tmp_path):
    out = tmp_path / "run"
    search = ["search", tiny_task, "--out", out, "--study", "s1", "--meter", "estimate", "--no-cache", "--quiet"]
    searched = run(*search, "--ladder", tfidf_ladder, "--trials", 2)
    assert searched.exit_code == 0, searched.output
    env = RunLog(out, create=False).environments()
    records = RunLog(out, create=False).records()
    assert len(env) == 1 and {r.run_id for r in records} == {env[0]["run_id"]}
    reported = run("report", out, "--format", "png")
    assert reported.exit_code == 0, reported.output
    md = (out / "report.md").read_text(encoding="utf-8")
    assert f"run `{env[0]['run_id']}`" in md and "no environment.jsonl" not in md
    # A search the study rejects (another space under the same name) records no environment.
    other = tmp_path / "other.yaml"
    other.write_text("rungs:\n  - {name: tfidf, kind: tfidf}\nsearch: {knobs: [C]}\n")
    rejected = run(*search, "--ladder", other)
    assert rejected.exit_code == 2 and "was created with another space" in rejected.output
    assert RunLog(out, create=False).environments() == env


@pytest.mark.parametrize("command", ["evaluate", "search", "confirm"])
def test_every_meter_a_run_makes_is_closed(tiny_task, tfidf_ladder, tmp_path, meters, command):
    options = dict(task=tiny_task, ladder=tfidf_ladder, out_dir=tmp_path / "run", meter="estimate", no_cache=True)
    if command == "search":
        run_search(SearchRequest(**options, trials=1))
    else:
        (record,) = run_evaluation(EvaluationRequest(**options))
        if command == "confirm":
            meters.clear()
            (confirmed,) = confirm_on_test(tmp_path / "run", [record.key])
            assert confirmed.status == "evaluated"
    assert meters and all(m.closed for m in meters)
