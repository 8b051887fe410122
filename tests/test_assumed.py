"""The zero-config first run: a task assumed for a bare JSONL/CSV file or folder per class."""

from __future__ import annotations

import csv
import json
import os
from pathlib import Path

import pytest
from click.testing import CliRunner

from conftest import make_examples, write_jsonl
from rightsize.assumed import TASK_FILE, assume_task, is_class_folder
from rightsize.cli import cli
from rightsize.errors import RightsizeError
from rightsize.naming import safe_name
from rightsize.tasks import load_data, load_task

TFIDF_LADDER = "rungs:\n  - {name: tfidf, kind: tfidf}\n"
SHARED = Path(os.environ.get("RIGHTSIZE_SHARED_DATA", Path(__file__).resolve().parents[2] / "shared" / "data"))


def invoke(*args):
    return CliRunner().invoke(cli, [str(a) for a in args])


def write_csv(path: Path, header: list[str], rows: list[list]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", newline="", encoding="utf-8") as f:
        writer = csv.writer(f)
        writer.writerow(header)
        writer.writerows(rows)
    return path


def error_of(fn, *args, **kwargs) -> str:
    with pytest.raises(RightsizeError) as info:
        fn(*args, **kwargs)
    assert "\n" not in str(info.value)
    return str(info.value)


# ------------------------------------------------------------------------------------------ detection


def test_fields_are_detected_by_their_values(tmp_path):
    rows = [{"id": i, "utterance": r["text"], "intent": r["label"], "lang": "en"} for i, r in
            enumerate(make_examples(10, seed=1))]
    p = tmp_path / "support.jsonl"
    write_jsonl(p, rows)
    assumed = assume_task(p)
    assert (assumed.text_field, assumed.label_field, assumed.name) == ("utterance", "intent", "support")
    assert assumed.metric == "accuracy" and "balanced" in assumed.notes["metric"]
    assert "only column that looks like free text" in assumed.notes["text_field"]


def test_a_column_named_label_wins_among_label_like_ones(tmp_path):
    rows = [[r["text"], r["label"], "web" if i % 2 else "mail"] for i, r in enumerate(make_examples(10, seed=1))]
    assumed = assume_task(write_csv(tmp_path / "d.csv", ["text", "label", "channel"], rows))
    assert (assumed.text_field, assumed.label_field) == ("text", "label")
    assert "named 'label' among 'label', 'channel'" in assumed.notes["label_field"]


def test_imbalanced_labels_choose_macro_f1(tmp_path):
    rows = [[f"a common text number {i}", "common"] for i in range(31)] + \
        [[f"a rare text number {i}", "rare"] for i in range(10)]
    assumed = assume_task(write_csv(tmp_path / "d.csv", ["text", "label"], rows))
    assert assumed.metric == "macro_f1" and "'common' has 3.1x the examples of 'rare'" in assumed.notes["metric"]
    rows = rows[:30] + rows[31:]  # exactly 3x: still accuracy
    assert assume_task(write_csv(tmp_path / "e.csv", ["text", "label"], rows)).metric == "accuracy"


def test_two_text_columns_and_no_label_is_refused_with_the_flags_to_pass(tmp_path):
    rows = [[f"title number {i} here", f"a longer body of text {i}"] for i in range(20)]
    msg = error_of(assume_task, write_csv(tmp_path / "d.csv", ["title", "body"], rows))
    assert str(tmp_path / "d.csv") in msg
    assert "several columns look like free text ('title', 'body') and none is named 'text'" in msg
    assert "no column looks like a label" in msg and "pass --text-field NAME and --label-field NAME" in msg
    # the flags settle it (the label column has to exist, so give a file with one)
    rows = [r + ["x" if i % 2 else "y"] for i, r in enumerate(rows)]
    p = write_csv(tmp_path / "e.csv", ["title", "body", "topic"], rows)
    assert error_of(assume_task, p).endswith("and none is named 'text'; pass --text-field NAME")  # label found
    assumed = assume_task(p, text_field="body")
    assert (assumed.text_field, assumed.label_field) == ("body", "topic")


def test_two_label_like_columns_need_the_label_flag(tmp_path):
    rows = [[r["text"], r["label"], "web" if i % 2 else "mail"] for i, r in enumerate(make_examples(10, seed=1))]
    msg = error_of(assume_task, write_csv(tmp_path / "d.csv", ["text", "topic", "channel"], rows))
    assert "several columns look like a label" in msg and msg.endswith("pass --label-field NAME")


@pytest.mark.parametrize("kwargs, fragment", [
    ({"text_field": "body"}, "--text-field 'body': no such column (columns: 'text', 'label')"),
    ({"label_field": "intent"}, "--label-field 'intent': no such column"),
    ({"text_field": "label", "label_field": "label"}, "are both 'label'"),
])
def test_bad_field_flags(tmp_path, kwargs, fragment):
    p = write_csv(tmp_path / "d.csv", ["text", "label"], [[r["text"], r["label"]] for r in make_examples(5, seed=1)])
    assert fragment in error_of(assume_task, p, **kwargs)


def test_a_file_without_examples_or_a_folder_without_classes(tmp_path):
    (tmp_path / "empty.jsonl").write_text("\n")
    assert "has no examples" in error_of(assume_task, tmp_path / "empty.jsonl")
    (tmp_path / "nothing").mkdir()
    assert "label sub-folders" in error_of(assume_task, tmp_path / "nothing")
    assert "no such data file" in error_of(assume_task, tmp_path / "absent.csv")


@pytest.mark.parametrize("text, name", [
    ("trec6", "trec6"), ("my data (v2)", "my-data-v2"), ("..", "data"), ("../../elsewhere", "elsewhere"),
    ("<script>", "script"), ("ok.v1_x", "ok.v1_x"),
])
def test_names_from_file_names_are_safe(text, name):
    assert safe_name(text) == name


# ------------------------------------------------------------------------------------------ the task file


def test_the_kept_task_file_reads_back_as_the_assumed_task(tmp_path):
    p = tmp_path / "data" / "tickets.jsonl"
    write_jsonl(p, make_examples(10, seed=1))
    assumed = assume_task(p)
    kept = tmp_path / "run" / TASK_FILE
    spec = assumed.spec_at(kept)
    assumed.keep(kept)
    assert load_task(kept) == spec
    assert "all: " + str(p.resolve()) in kept.read_text()  # outside the file's folder: absolute
    beside = tmp_path / "data" / "tickets.yaml"
    assumed.keep(beside)
    assert "all: tickets.jsonl" in beside.read_text() and load_task(beside).data == spec.data  # beside it: relative
    data = load_data(spec)
    splits = (data.train, data.validation, data.test)
    assert [s.source for s in splits] == ["carved from all"] * 3 and sum(map(len, splits)) == 30
    assert len(data.train) == 21  # 70% of 30


def test_a_task_file_holding_another_task_is_never_overwritten(tmp_path):
    p = tmp_path / "d.jsonl"
    write_jsonl(p, make_examples(10, seed=1))
    kept = tmp_path / "run" / TASK_FILE
    kept.parent.mkdir()
    kept.write_text("name: other\ndata: {all: x.jsonl}\n")
    msg = error_of(assume_task(p).spec_at, kept)
    assert str(kept) in msg and "holds another task" in msg and "pass that file as TASK" in msg
    assert kept.read_text() == "name: other\ndata: {all: x.jsonl}\n"


def test_class_folders_are_told_from_run_folders(tmp_path):
    for label in ("a", "b"):
        (tmp_path / "classes" / label).mkdir(parents=True)
        (tmp_path / "classes" / label / "1.txt").write_text("some text")
    (tmp_path / "run").mkdir()
    (tmp_path / "run" / "runs.jsonl").write_text("")
    (tmp_path / "results" / "x").mkdir(parents=True)
    (tmp_path / "results" / "x" / "runs.jsonl").write_text("")
    assert is_class_folder(tmp_path / "classes")
    assert not is_class_folder(tmp_path / "run") and not is_class_folder(tmp_path / "results")
    assert not is_class_folder(tmp_path / "run" / "runs.jsonl")


# ------------------------------------------------------------------------------------------ the commands


@pytest.fixture
def ladder(tmp_path) -> Path:
    p = tmp_path / "ladder.yaml"
    p.write_text(TFIDF_LADDER)
    return p


def records_of(run: Path) -> list[dict]:
    return [json.loads(line) for line in (run / "runs.jsonl").read_text().splitlines()]


@pytest.mark.skipif(not (SHARED / "trec6" / "train.jsonl").exists(), reason="the shared trec6 data is not here")
def test_search_runs_on_a_shared_dataset_exported_to_csv(tmp_path, ladder):
    rows = [json.loads(line) for line in (SHARED / "trec6" / "train.jsonl").read_text().splitlines()[:300]]
    data = write_csv(tmp_path / "trec6.csv", ["text", "label"], [[r["text"], r["label"]] for r in rows])
    out = tmp_path / "run"
    result = invoke("search", data, "--ladder", ladder, "--out", out, "--trials", "2", "--meter", "estimate")
    assert result.exit_code == 0, result.output
    assert f"no task file: assumed this task for {data}, kept as {out / TASK_FILE}" in result.output
    assert "  text_field: text\n  label_field: label\n" in result.output and "  target: {within: 0.02}" in result.output
    assert "recommendation: tfidf" in result.output
    task = load_task(out / TASK_FILE)
    assert task.name == "trec6" and task.data == {"all": data.resolve()} and task.metric == "macro_f1"
    assert {r["task_file"] for r in records_of(out)} == {str((out / TASK_FILE).resolve())}
    # the kept task file is what a later command reads: recommend confirms on the carved test split
    confirmed = invoke("recommend", out)
    assert confirmed.exit_code == 0 and "test split: tfidf evaluated" in confirmed.output, confirmed.output
    again = invoke("evaluate", data, "--ladder", ladder, "--out", out, "--meter", "estimate")
    assert again.exit_code == 0 and "already recorded" in again.output, again.output


def test_evaluate_a_folder_per_class_and_save_its_task(tmp_path, ladder):
    for i, row in enumerate(make_examples(10, seed=1)):
        folder = tmp_path / "mail" / row["label"]
        folder.mkdir(parents=True, exist_ok=True)
        (folder / f"{i}.txt").write_text(row["text"])
    saved, out = tmp_path / "tasks" / "mail.yaml", tmp_path / "run"
    result = invoke("evaluate", tmp_path / "mail", "--ladder", ladder, "--out", out, "--meter", "estimate", "--quiet",
                    "--save-task", saved)
    assert result.exit_code == 0, result.output
    assert "a folder per class" in result.output and f"kept as {saved}" in result.output
    task = load_task(saved)
    assert task.name == "mail" and "text_field" not in saved.read_text() and not (out / TASK_FILE).exists()
    assert records_of(out)[0]["task_file"] == str(saved.resolve())
    again = invoke("evaluate", saved, "--ladder", ladder, "--out", out, "--meter", "estimate")  # the same task
    assert again.exit_code == 0 and "already recorded" in again.output, again.output


def test_check_takes_a_data_file(tmp_path, ladder):
    data = tmp_path / "intents.jsonl"
    write_jsonl(data, make_examples(10, seed=1))
    result = invoke("check", data, "--current", "tfidf", "--ladder", ladder, "--out", tmp_path / "run",
                    "--meter", "estimate")
    assert result.exit_code == 0, result.output
    assert "assumed this task for" in result.output and "rightsize check: PASS" in result.output
    folder_run = invoke("check", tmp_path / "run", "--current", "tfidf", "--text-field", "text")
    assert folder_run.exit_code == 2 and "--text-field only applies when SOURCE is a task file" in folder_run.output
