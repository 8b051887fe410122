"""The record type: what runs.jsonl holds, read and written again without a byte changing."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from click.testing import CliRunner

from rightsize.artifacts import ArtifactStore
from rightsize.cli import cli
from rightsize.energy import make_meter
from rightsize.errors import RightsizeError
from rightsize.evaluate import EvalPlan, StopEvaluation, evaluate_rung
from rightsize.ladder import load_ladder
from rightsize.records import SCHEMA, Record
from rightsize.results import RunLog
from rightsize.rungs import RUNG_KINDS, RunContext, RungSpec, register
from rightsize.tasks import load_data, load_task
from test_artifacts import Trained
from test_evaluate import _Exploding

FIXTURE = Path(__file__).parent / "fixtures" / "runs"

# The layout of runs.jsonl as evaluate_rung has always written it (a contract with every file written so far);
# the GPU-energy fields came in where they stand, idle_watts written as null when there is no idle baseline.
BEFORE_SCORES = ["schema", "key", "fit_key", "run_id", "time", "task", "task_file", "metric", "target", "rung", "config",
                 "split", "limit", "train_limit", "n_train", "n_examples", "device", "seed", "energy_source",
                 "cpu_watts_per_core", "energy_basis", "idle_watts", "energy_resolution_s", "seconds", "joules", "joules_gross",
                 "energy_parts", "energy_uncertainty", "below_resolution", "energy_read_errors", "infer_repeats",
                 "seconds_spent", "joules_spent"]
SCORES = ["metrics", "ci", "label_names", "references", "predictions", "n_params", "facts", "joules_per_query",
          "joules_per_query_spent", "joules_per_query_gross", "joules_per_query_repeats"]
TOTALS = ["joules_total", "seconds_total", "joules_total_spent", "seconds_total_spent", "cache"]


def test_the_fixture_round_trips_byte_for_byte(tmp_path):
    lines = (FIXTURE / "runs.jsonl").read_text(encoding="utf-8").splitlines()
    assert [json.dumps(Record.from_dict(json.loads(line)).to_dict()) for line in lines] == lines
    copy = RunLog(tmp_path / "copy")
    for record in RunLog(FIXTURE, create=False).records():
        copy.append(record)
    assert copy.path.read_bytes() == (FIXTURE / "runs.jsonl").read_bytes()


@pytest.fixture
def data(tiny_task):
    return load_data(load_task(tiny_task))


def _round_trip(record: Record) -> dict:
    text = json.dumps(record.to_dict())
    again = Record.from_dict(json.loads(text))
    assert again == record and json.dumps(again.to_dict()) == text
    return json.loads(text)


def test_ok_failed_and_pruned_records_keep_their_layout(data, tiny_ladder):
    tfidf = load_ladder(tiny_ladder)["tfidf"]
    ok = evaluate_rung(data, tfidf, make_meter("estimate"), RunContext())
    ok.search = {"study": "s", "trial": 0, "searched": {}}  # what a search adds
    assert list(_round_trip(ok)) == BEFORE_SCORES + SCORES + ["status"] + TOTALS + ["search"]
    assert ok.to_dict()["idle_watts"] is None and ok.basis == "gross"

    def stop(step):
        raise StopEvaluation("enough")

    pruned = evaluate_rung(data, tfidf, make_meter("estimate"), RunContext(), steps=(0.5, 1.0), on_step=stop)
    assert list(_round_trip(pruned)) == BEFORE_SCORES + SCORES + ["status", "pruned"] + TOTALS

    if "test-exploding" not in RUNG_KINDS:
        register(_Exploding)
    failed = evaluate_rung(data, RungSpec("boom", "test-exploding"), make_meter("estimate"), RunContext())
    assert list(_round_trip(failed)) == BEFORE_SCORES + ["status", "error", "failed_phase"] + TOTALS
    assert (ok.ok, pruned.ok, failed.ok) == (True, False, False)


def test_a_fit_that_trained_names_what_it_did_and_its_artifact_after_the_energy(data, tmp_path):
    store, spec = ArtifactStore(tmp_path / "run"), RungSpec("trained", Trained.kind)
    for split in ("validation", "test"):  # fitted and saved, then restored
        record = evaluate_rung(data, spec, make_meter("estimate"), RunContext(), EvalPlan(split=split),
                               artifacts=store)
        assert list(_round_trip(record)) == BEFORE_SCORES + ["training", "artifact"] + SCORES + ["status"] + TOTALS
    assert record.artifact["restored"] is True and record.training == {"epochs": 2, "examples": 90}


def test_an_early_record_loads_without_the_keys_added_later():
    # As the first version wrote it: no task_file, target, *_spent, cache, facts, pruned, failed_phase or search.
    early = {"schema": SCHEMA, "key": "k", "run_id": "r", "time": "t", "task": "t", "metric": "accuracy",
             "rung": "tfidf", "config": {"kind": "tfidf", "model": None}, "split": "validation", "limit": None,
             "train_limit": None, "n_train": 8, "n_examples": 4, "device": "cpu", "seed": 0, "energy_source": "rapl",
             "seconds": {"load": 0.5, "fit": 1.0, "infer": 0.5}, "joules": {"load": 1.0, "fit": 2.0, "infer": 4.0},
             "energy_parts": {"infer": {"package-0": 4.0}}, "metrics": {"accuracy": 0.75},
             "ci": {"accuracy": [0.5, 1.0]}, "label_names": ["a", "b"], "references": [0, 1, 0, 1],
             "predictions": [0, 1, 1, 1], "n_params": 10, "joules_per_query": 1.0, "status": "ok",
             "joules_total": 7.0, "seconds_total": 2.0}
    record = Record.from_dict(early)
    assert record.to_dict() == early and list(record.to_dict()) == list(early)
    assert record.task_file is None and record.cache is None and record.extra == {}
    assert record.spent_joules == 7.0  # nothing says what was spent: the cost
    assert record.score("accuracy") == 0.75 and record.interval("accuracy") == [0.5, 1.0]
    assert record.score("macro_f1") is None and record.pruned_reason is None and not record.estimated
    no_schema = {k: v for k, v in early.items() if k != "schema"}  # a hand-written line: read as the current one
    assert Record.from_dict(no_schema).to_dict() == no_schema


def test_a_record_scored_without_inference_writes_its_per_query_figures_as_null():
    # A fine-tune the search pruned between epochs: scores from the epoch's check, no inference run.
    pruned = Record(joules={"infer": 0.0}, joules_gross={"infer": 0.0}, joules_spent={"infer": 0.0},
                    metrics={"accuracy": 0.3}, status="pruned")
    written = _round_trip(pruned)
    assert [written[k] for k in ("joules_per_query", "joules_per_query_spent", "joules_per_query_gross")] == [None] * 3
    # Without the per-phase energy a figure is made from (an early record), it is not written at all.
    early = Record(joules={"infer": 1.0}, metrics={"accuracy": 0.3}, joules_per_query=0.5, status="ok")
    assert "joules_per_query_spent" not in early.to_dict() and "joules_per_query_gross" not in early.to_dict()


def test_a_record_read_writes_null_exactly_where_it_had_one():
    with_null = {"schema": SCHEMA, "key": "k", "energy_source": "rapl", "cpu_watts_per_core": None, "status": "ok"}
    without = {k: v for k, v in with_null.items() if k != "cpu_watts_per_core"}
    for line in (with_null, without):
        assert json.dumps(Record.from_dict(line).to_dict()) == json.dumps(line)


def test_keys_this_version_does_not_know_are_kept():
    line = {"schema": SCHEMA, "key": "k", "limit": None, "train_limit": None, "status": "ok",
            "lineage": {"parent": "k0"}, "_shown_status": "recorded earlier"}
    record = Record.from_dict(line)
    assert record.extra == {"lineage": {"parent": "k0"}, "_shown_status": "recorded earlier"}
    assert json.dumps(record.to_dict()) == json.dumps(line)


def test_what_several_readers_ask_is_answered_once():
    assert not Record(energy_source="nvml+rapl", energy_parts={"infer": {"gpu:0": 1.0, "package-0": 1.0}}).estimated
    assert Record(energy_source="nvml+estimate").estimated
    assert Record(energy_source="rapl", energy_parts={"fit": {"cpu-estimate": 1.0}}).estimated  # any part counts
    # What was spent: the total spent, else the phases spent, else the cost.
    assert Record(joules_total_spent=0.0, joules_spent={"fit": 5.0}, joules_total=9.0).spent_joules == 0.0
    assert Record(joules_spent={"fit": 2.0, "infer": 3.0}, joules_total=9.0).spent_joules == 5.0
    assert Record(joules={"fit": 2.0, "infer": 4.0}).spent_joules == 6.0
    # The same examples: the seed picks the sample only when a limit is set.
    base = dict(task="t", split="validation", label_names=["a"], references=[0, 0])
    assert Record(**base, seed=1).examples_id == Record(**base, seed=2).examples_id
    assert Record(**base, limit=2, seed=1).examples_id != Record(**base, limit=2, seed=2).examples_id
    assert Record(status="pruned", pruned={"reason": "r"}).pruned_reason == "r"


def test_an_unknown_schema_or_a_mistyped_field_is_one_line(tmp_path):
    shutil.copytree(FIXTURE, tmp_path / "run")
    runs = tmp_path / "run" / "runs.jsonl"
    good = runs.read_text(encoding="utf-8")
    runs.write_text(good + json.dumps({"schema": "rightsize.record/9", "key": "k"}) + "\n", encoding="utf-8")
    with pytest.raises(RightsizeError, match=r"runs\.jsonl:9: record schema 'rightsize.record/9' is not one"):
        RunLog(tmp_path / "run", create=False).records()
    result = CliRunner().invoke(cli, ["recommend", str(tmp_path / "run"), "--no-confirm"])
    assert result.exit_code == 2 and "Traceback" not in result.output
    assert len(result.output.strip().splitlines()) == 1 and "rightsize.record/9" in result.output
    runs.write_text(good + json.dumps({"schema": SCHEMA, "key": "k", "metrics": [0.9]}) + "\n", encoding="utf-8")
    with pytest.raises(RightsizeError, match=r"runs\.jsonl:9: field 'metrics' is not a JSON object"):
        RunLog(tmp_path / "run", create=False).records()
    with pytest.raises(RightsizeError, match="field 'n_params' is not a JSON integer"):
        Record.from_dict({"n_params": True})
