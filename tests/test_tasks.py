"""Tests for rightsize.tasks: task-file parsing, data formats, carving and every user-facing error."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import pytest

from rightsize.errors import RightsizeError
from rightsize.tasks import (
    ALLOWED_KEYS,
    METRICS,
    Split,
    Target,
    TaskData,
    TaskSpec,
    load_data,
    load_task,
    summarize,
)

REPO = Path(__file__).resolve().parents[1]


# ------------------------------------------------------------------------------------------ helpers


def write_jsonl(path: Path, records, *, text="text", label="label") -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", encoding="utf-8") as f:
        for r in records:
            if isinstance(r, tuple):
                r = {text: r[0], label: r[1]}
            f.write(json.dumps(r) + "\n")
    return path


def examples(counts: dict[str, int], prefix: str = "") -> list[tuple[str, str]]:
    """Distinct texts: counts {label: n} -> [(text, label), ...], labels interleaved."""
    out = []
    for label, n in counts.items():
        out += [(f"{prefix}{label} example {i}", label) for i in range(n)]
    return out


def write_task(tmp_path: Path, body: str, name: str = "task.yaml") -> Path:
    p = tmp_path / name
    p.write_text(body, encoding="utf-8")
    return p


BASIC = "name: t\ndata: {train: train.jsonl, test: test.jsonl}\nmetric: accuracy\ntarget: {within: 0.02}\n"


@pytest.fixture
def basic(tmp_path):
    """A valid train+test jsonl task; returns the task path."""
    write_jsonl(tmp_path / "train.jsonl", examples({"a": 20, "b": 20, "c": 20}))
    write_jsonl(tmp_path / "test.jsonl", examples({"a": 3, "b": 3, "c": 3}, prefix="t "))
    return write_task(tmp_path, BASIC)


def error_of(fn, *args) -> str:
    with pytest.raises(RightsizeError) as info:
        fn(*args)
    msg = str(info.value)
    assert "\n" not in msg, "messages are one line"
    return msg


# ------------------------------------------------------------------------------- load_task: valid


def test_load_task_defaults(tmp_path):
    p = write_task(tmp_path, "data: {train: train.jsonl}\n")
    t = load_task(p)
    assert isinstance(t, TaskSpec)
    assert t.name == "task"  # file stem
    assert t.text_field == "text" and t.label_field == "label"
    assert t.metric == "accuracy"
    assert t.target == Target(within=0.02)
    assert (t.seed, t.validation_fraction, t.test_fraction) == (0, 0.15, 0.15)
    assert t.description == "" and t.format is None
    assert t.data == {"train": tmp_path / "train.jsonl"}
    assert t.path == p


def test_load_task_all_fields(tmp_path):
    p = write_task(
        tmp_path,
        "name: snips\ndescription: intents\ndata: {all: d/all.csv}\ntext_field: sentence\nlabel_field: intent\n"
        "metric: macro_f1\ntarget: {min: 0.9}\nseed: 7\nvalidation_fraction: 0.1\ntest_fraction: 0.2\nformat: csv\n",
    )
    t = load_task(p)
    assert (t.name, t.description, t.text_field, t.label_field, t.metric) == (
        "snips", "intents", "sentence", "intent", "macro_f1",
    )
    assert t.target == Target(min=0.9) and t.target.threshold(0.99) == 0.9
    assert (t.seed, t.validation_fraction, t.test_fraction, t.format) == (7, 0.1, 0.2, "csv")
    assert t.data == {"all": tmp_path / "d" / "all.csv"}


def test_target_threshold_within():
    assert Target(within=0.02).threshold(0.95) == pytest.approx(0.93)


def test_load_task_accepts_bom_and_crlf(tmp_path):
    p = tmp_path / "task.yaml"
    p.write_bytes(b"\xef\xbb\xbf" + BASIC.replace("\n", "\r\n").encode())
    assert load_task(p).name == "t"


def test_env_var_expansion(tmp_path, monkeypatch):
    monkeypatch.setenv("RS_TEST_DATA", str(tmp_path / "elsewhere"))
    monkeypatch.delenv("RS_TEST_UNSET", raising=False)
    monkeypatch.setenv("RS_TEST_EMPTY", "")
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    (tmp_path / "sub").mkdir()
    p = write_task(
        tmp_path,
        "data:\n"
        "  train: ${RS_TEST_DATA}/train.jsonl\n"
        "  validation: ${RS_TEST_UNSET:-../shared}/val.jsonl\n"
        "  test: ${RS_TEST_EMPTY:-~/cache}/test.jsonl\n",
        name="sub/task.yaml",
    )
    t = load_task(p)
    assert t.data["train"] == tmp_path / "elsewhere" / "train.jsonl"
    assert t.data["validation"] == tmp_path / "shared" / "val.jsonl"  # relative to the task file's folder
    assert t.data["test"] == tmp_path / "home" / "cache" / "test.jsonl"  # empty counts as unset, then ~


def test_env_var_override_of_relative_default(tmp_path, monkeypatch):
    p = write_task(tmp_path, "data: {train: '${RS_TEST_DATA:-nowhere}/train.jsonl'}\n")
    monkeypatch.setenv("RS_TEST_DATA", str(tmp_path / "here"))
    assert load_task(p).data["train"] == tmp_path / "here" / "train.jsonl"
    monkeypatch.delenv("RS_TEST_DATA")
    assert load_task(p).data["train"] == tmp_path / "nowhere" / "train.jsonl"


def test_unset_env_var_without_default_is_an_error(tmp_path, monkeypatch):
    monkeypatch.delenv("RS_TEST_UNSET", raising=False)
    p = write_task(tmp_path, "data: {train: '${RS_TEST_UNSET}/train.jsonl'}\n")
    msg = error_of(load_task, p)
    assert str(p) in msg and "data.train" in msg and "RS_TEST_UNSET" in msg


def test_unclosed_env_var_reference(tmp_path):
    p = write_task(tmp_path, "data: {train: '${RS_TEST_DATA:-x/train.jsonl'}\n")
    msg = error_of(load_task, p)
    assert str(p) in msg and "data.train" in msg and "'${RS_TEST_DATA:-x/train.jsonl'" in msg


# ------------------------------------------------------------------------------- load_task: errors


def test_missing_task_file(tmp_path):
    msg = error_of(load_task, tmp_path / "nope.yaml")
    assert "nope.yaml" in msg and "not found" in msg


def test_task_file_is_directory(tmp_path):
    assert "directory" in error_of(load_task, tmp_path)


def test_malformed_yaml_names_line(tmp_path):
    p = write_task(tmp_path, "name: t\ndata: {train: a.jsonl\nmetric: accuracy\n")
    msg = error_of(load_task, p)
    assert msg.startswith(f"{p}:") and "malformed YAML" in msg
    line = int(msg[len(str(p)) + 1 :].split(":")[0])
    assert line in (2, 3, 4)


def test_malformed_yaml_bad_indent_line(tmp_path):
    p = write_task(tmp_path, "name: t\ndata:\n  train: a.jsonl\n test: b.jsonl\n")
    assert error_of(load_task, p).startswith(f"{p}:4:")


def test_duplicate_key(tmp_path):
    p = write_task(tmp_path, "name: t\ndata: {train: a.jsonl}\nname: u\n")
    msg = error_of(load_task, p)
    assert f"{p}:3:" in msg and "duplicate key 'name'" in msg


def test_non_utf8_task_file(tmp_path):
    p = tmp_path / "task.yaml"
    p.write_bytes(b"name: t\ndescription: caf\xe9\ndata: {train: a.jsonl}\n")
    msg = error_of(load_task, p)
    assert f"{p}:2:" in msg and "UTF-8" in msg


@pytest.mark.parametrize("body", ["", "\n# only a comment\n"])
def test_empty_task_file(tmp_path, body):
    p = write_task(tmp_path, body)
    msg = error_of(load_task, p)
    assert str(p) in msg and "empty" in msg


@pytest.mark.parametrize("body,kind", [("- a\n- b\n", "list"), ("just a string\n", "str")])
def test_task_file_not_a_mapping(tmp_path, body, kind):
    p = write_task(tmp_path, body)
    msg = error_of(load_task, p)
    assert str(p) in msg and "mapping" in msg and kind in msg


def test_unknown_key_named_and_allowed_listed(tmp_path):
    p = write_task(tmp_path, BASIC + "metrics: accuracy\n")
    msg = error_of(load_task, p)
    assert str(p) in msg and "'metrics'" in msg
    assert all(k in msg for k in ALLOWED_KEYS)


@pytest.mark.parametrize(
    "extra,field,value",
    [
        ("metric: f1\n", "metric", "'f1'"),
        ("target: {min: 1.5}\n", "target.min", "1.5"),
        ("target: {min: -0.1}\n", "target.min", "-0.1"),
        ("target: {within: -0.01}\n", "target.within", "-0.01"),
        ("target: {within: 2}\n", "target.within", "2"),
        ("target: {min: high}\n", "target.min", "'high'"),
        ("target: {}\n", "target", "neither"),
        ("target: {min: 0.9, within: 0.02}\n", "target", "both"),
        ("target: {max: 0.9}\n", "target", "'max'"),
        ("target: 0.9\n", "target", "0.9"),
        ("validation_fraction: 0\n", "validation_fraction", "0"),
        ("validation_fraction: 0.6\n", "validation_fraction", "0.6"),
        ("test_fraction: -0.1\n", "test_fraction", "-0.1"),
        ("test_fraction: half\n", "test_fraction", "'half'"),
        ("seed: 1.5\n", "seed", "1.5"),
        ("seed: -1\n", "seed", "-1"),
        ("seed: true\n", "seed", "True"),
        ("format: parquet\n", "format", "'parquet'"),
        ("text_field: 3\n", "text_field", "3"),
        ("label_field: ''\n", "label_field", "empty"),
        ("name: [a]\n", "name", "['a']"),
        ("name:\n", "name", "null"),
        ("description: 5\n", "description", "5"),
    ],
)
def test_bad_field_value(tmp_path, extra, field, value):
    body = "\n".join(
        line for line in BASIC.splitlines() if not line.startswith(extra.split(":")[0] + ":")
    ) + "\n" + extra
    p = write_task(tmp_path, body)
    msg = error_of(load_task, p)
    assert str(p) in msg and f"'{field}'" in msg and value in msg


def test_fractions_leaving_no_train(tmp_path):
    p = write_task(tmp_path, "data: {all: a.jsonl}\nvalidation_fraction: 0.5\ntest_fraction: 0.5\n")
    msg = error_of(load_task, p)
    assert str(p) in msg and "'validation_fraction'" in msg and "no train" in msg


@pytest.mark.parametrize(
    "data,expect",
    [
        (None, "'data': is required"),
        ("train.jsonl", "'data': must be a mapping"),
        ("{test: test.jsonl}", "needs 'train'"),
        ("{validation: v.jsonl}", "needs 'train'"),
        ("{all: a.jsonl, train: t.jsonl}", "'all' cannot be combined with train"),
        ("{all: a.jsonl, test: t.jsonl}", "'all' cannot be combined with test"),
        ("{train: t.jsonl, dev: d.jsonl}", "unknown split 'dev'"),
        ("{train: 5}", "'data.train': must be a non-empty path string"),
        ("{train: ''}", "'data.train': must be a non-empty path string"),
    ],
)
def test_bad_data_field(tmp_path, data, expect):
    p = write_task(tmp_path, "name: t\n" + (f"data: {data}\n" if data is not None else ""))
    msg = error_of(load_task, p)
    assert str(p) in msg and expect in msg


# ---------------------------------------------------------------------------------- shipped tasks


SHIPPED = sorted((REPO / "tasks").glob("*.yaml"))


def test_shipped_tasks_exist():
    names = {p.stem for p in SHIPPED}
    assert {"trec6", "banking77", "sst2", "rotten-tomatoes", "emotion", "sms-spam", "subj", "bbc-news"} <= names


@pytest.mark.parametrize("path", SHIPPED, ids=[p.stem for p in SHIPPED])
def test_shipped_task_parses_without_data(path, monkeypatch, tmp_path):
    monkeypatch.delenv("RIGHTSIZE_SHARED_DATA", raising=False)
    monkeypatch.delenv("RIGHTSIZE_DATA_CACHE", raising=False)
    monkeypatch.setenv("HOME", str(tmp_path))
    t = load_task(path)
    assert t.name == path.stem
    assert t.description.strip() and "licen" in t.description.lower()
    assert t.metric in METRICS
    assert (t.target.min is None) != (t.target.within is None)
    assert "train" in t.data or "all" in t.data
    for p in t.data.values():
        assert p.is_absolute() and "$" not in str(p) and "~" not in str(p)
        if path.stem == "bbc-news":
            assert p == tmp_path / ".cache" / "rightsize" / "datasets" / "bbc-news"
        else:  # ../../shared/data from tasks/
            assert p.parent.parent == REPO.parent / "shared" / "data"


def test_shipped_task_honours_shared_data_override(monkeypatch, tmp_path):
    monkeypatch.setenv("RIGHTSIZE_SHARED_DATA", str(tmp_path))
    t = load_task(REPO / "tasks" / "trec6.yaml")
    assert t.data["train"] == tmp_path / "trec6" / "train.jsonl"


# ------------------------------------------------------------------------------------ load_data: formats


def test_jsonl_train_test_with_carved_validation(basic):
    data = load_data(load_task(basic))
    assert isinstance(data, TaskData)
    assert data.labels == ["a", "b", "c"]
    assert data.train.source == "carved from train" and data.validation.source == "carved from train"
    assert data.test is not None and data.test.source == "file" and len(data.test) == 9
    assert len(data.train) + len(data.validation) == 60
    assert len(data.validation) == 9  # round(0.15 * 60)
    assert set(data.train.texts).isdisjoint(data.validation.texts)
    assert all(isinstance(x, str) for x in data.train.labels)


def test_jsonl_train_validation_test_files(tmp_path):
    write_jsonl(tmp_path / "d" / "train.jsonl", examples({"x": 4, "y": 4}))
    write_jsonl(tmp_path / "d" / "val.jsonl", examples({"x": 2, "y": 1}, prefix="v "))
    write_jsonl(tmp_path / "d" / "test.json", examples({"x": 1, "y": 2}, prefix="t "))
    p = write_task(tmp_path, "data: {train: d/train.jsonl, validation: d/val.jsonl, test: d/test.json}\n")
    data = load_data(load_task(p))
    assert [s.source for s in (data.train, data.validation, data.test)] == ["file"] * 3
    assert (len(data.train), len(data.validation), len(data.test)) == (8, 3, 3)
    assert Counter(data.validation.labels) == {"x": 2, "y": 1}


def test_train_only_has_no_test(tmp_path):
    write_jsonl(tmp_path / "train.jsonl", examples({"x": 10, "y": 10}))
    data = load_data(load_task(write_task(tmp_path, "data: {train: train.jsonl}\n")))
    assert data.test is None and len(data.validation) == 3


def test_int_labels_become_strings_and_custom_fields(tmp_path):
    records = [{"sentence": f"s{i}", "y": i % 2, "extra": None} for i in range(10)]
    write_jsonl(tmp_path / "train.jsonl", records)
    write_jsonl(tmp_path / "val.jsonl", [{"sentence": "v", "y": 1}])
    p = write_task(
        tmp_path, "data: {train: train.jsonl, validation: val.jsonl}\ntext_field: sentence\nlabel_field: y\n"
    )
    data = load_data(load_task(p))
    assert data.labels == ["0", "1"] and data.validation.labels == ["1"]


def test_blank_lines_skipped_bom_and_crlf_accepted(tmp_path):
    lines = [json.dumps({"text": t, "label": y}) for t, y in examples({"a": 5, "b": 5})]
    raw = "\ufeff" + "\r\n".join(lines[:5]) + "\r\n\r\n   \r\n" + "\r\n".join(lines[5:]) + "\r\n"
    (tmp_path / "train.jsonl").write_bytes(raw.encode("utf-8"))
    (tmp_path / "val.jsonl").write_bytes(b"\xef\xbb\xbf" + lines[0].encode() + b"\r\n")
    p = write_task(tmp_path, "data: {train: train.jsonl, validation: val.jsonl}\n")
    data = load_data(load_task(p))
    assert len(data.train) == 10 and len(data.validation) == 1
    assert not any("\r" in t or "\ufeff" in t for t in data.train.texts + data.train.labels)
    assert data.validation.texts == ["a example 0"]


def test_csv_format(tmp_path):
    rows = "\r\n".join(f'"{t}, with comma",{y},x' for t, y in examples({"p": 4, "n": 4}))
    (tmp_path / "train.csv").write_bytes(("\ufefftext,label,other\r\n" + rows + "\r\n").encode())
    (tmp_path / "test.csv").write_text('label,text\nn,"multi\nline text"\n\np,plain\n', encoding="utf-8")
    p = write_task(tmp_path, "data: {train: train.csv, validation: test.csv}\n")
    data = load_data(load_task(p))
    assert len(data.train) == 8 and set(data.train.labels) == {"p", "n"}
    assert "p example 0, with comma" in data.train.texts
    assert sorted(data.validation.texts) == ["multi\nline text", "plain"]


def test_csv_missing_column(tmp_path):
    (tmp_path / "train.csv").write_text("sentence,label\nhello,a\n", encoding="utf-8")
    p = write_task(tmp_path, "data: {train: train.csv}\n")
    msg = error_of(load_data, load_task(p))
    assert f"{tmp_path / 'train.csv'}:1" in msg and "'text'" in msg and "sentence, label" in msg


def test_csv_short_row(tmp_path):
    (tmp_path / "train.csv").write_text("label,text\na,one\nb\n", encoding="utf-8")
    msg = error_of(load_data, load_task(write_task(tmp_path, "data: {train: train.csv}\n")))
    assert f"{tmp_path / 'train.csv'}:3" in msg and "'text'" in msg


def test_csv_empty_label(tmp_path):
    (tmp_path / "train.csv").write_text("label,text\na,one\n,two\n", encoding="utf-8")
    msg = error_of(load_data, load_task(write_task(tmp_path, "data: {train: train.csv}\n")))
    assert f"{tmp_path / 'train.csv'}:3" in msg and "'label'" in msg and "empty" in msg


def make_folder(root: Path, counts: dict[str, int]) -> Path:
    for label, n in counts.items():
        (root / label).mkdir(parents=True, exist_ok=True)
        for i in range(n):
            (root / label / f"{i:03d}.txt").write_text(f"{label} article {i}\nbody\n", encoding="utf-8")
    return root


def test_folder_format_with_all(tmp_path):
    root = make_folder(tmp_path / "news", {"business": 20, "sport": 20, "tech": 20})
    (root / "README.txt").write_text("ignored", encoding="utf-8")
    (root / ".hidden").mkdir()
    (root / "sport" / ".DS_Store").write_bytes(b"\x00\xff")
    (root / "tech" / "crlf.txt").write_bytes(b"\xef\xbb\xbftech crlf\r\nline two\r\n")
    p = write_task(tmp_path, "data: {all: news}\nformat: folder\n")
    data = load_data(load_task(p))
    assert data.labels == ["business", "sport", "tech"]
    assert len(data.train) + len(data.validation) + len(data.test) == 61
    everything = data.train.texts + data.validation.texts + data.test.texts
    assert "tech crlf\nline two\n" in everything
    # format inferred from a directory too
    p2 = write_task(tmp_path, "data: {all: news}\n", name="inferred.yaml")
    assert load_data(load_task(p2)).labels == data.labels


def test_folder_empty_file_is_an_error(tmp_path):
    root = make_folder(tmp_path / "news", {"a": 3, "b": 3})
    (root / "b" / "blank.txt").write_text("  \n\t\n", encoding="utf-8")
    msg = error_of(load_data, load_task(write_task(tmp_path, "data: {all: news}\n")))
    assert str(root / "b" / "blank.txt") in msg and "empty" in msg


def test_folder_non_utf8_names_file_and_line(tmp_path):
    root = make_folder(tmp_path / "news", {"a": 3, "b": 3})
    (root / "a" / "latin1.txt").write_bytes(b"Title\n\ncosts \xa315m\n")
    msg = error_of(load_data, load_task(write_task(tmp_path, "data: {all: news}\n")))
    assert f"{root / 'a' / 'latin1.txt'}:3" in msg and "UTF-8" in msg and "0xa3" in msg


def test_format_folder_but_path_is_a_file(tmp_path):
    write_jsonl(tmp_path / "train.jsonl", examples({"a": 2, "b": 2}))
    p = write_task(tmp_path, "data: {train: train.jsonl}\nformat: folder\n")
    msg = error_of(load_data, load_task(p))
    assert str(p) in msg and "data.train" in msg and "not a directory" in msg


def test_format_jsonl_but_path_is_a_directory(tmp_path):
    make_folder(tmp_path / "train", {"a": 2, "b": 2})
    p = write_task(tmp_path, "data: {train: train}\nformat: jsonl\n")
    msg = error_of(load_data, load_task(p))
    assert str(p) in msg and "data.train" in msg and "is a directory" in msg


def test_format_not_inferable(tmp_path):
    (tmp_path / "train.txt").write_text("a\tb\n", encoding="utf-8")
    p = write_task(tmp_path, "data: {train: train.txt}\n")
    msg = error_of(load_data, load_task(p))
    assert str(p) in msg and "data.train" in msg and "'.txt'" in msg and "format:" in msg


def test_format_override_reads_other_extension(tmp_path):
    write_jsonl(tmp_path / "train.txt", examples({"a": 5, "b": 5}))
    p = write_task(tmp_path, "data: {train: train.txt}\nformat: jsonl\n")
    assert len(load_data(load_task(p)).train) == 8


# ------------------------------------------------------------------------------------ load_data: errors


def test_missing_data_file(tmp_path):
    p = write_task(tmp_path, "data: {train: nope/train.jsonl}\n")
    msg = error_of(load_data, load_task(p))
    assert str(p) in msg and "data.train" in msg and str(tmp_path / "nope" / "train.jsonl") in msg


def test_missing_test_file(basic):
    (basic.parent / "test.jsonl").unlink()
    msg = error_of(load_data, load_task(basic))
    assert "data.test" in msg and "test.jsonl" in msg and "not found" in msg


def bad_jsonl(tmp_path: Path, third_line: bytes) -> tuple[Path, Path]:
    """train.jsonl with 2 good lines then ``third_line``; returns (task, data file)."""
    good = b"".join(json.dumps({"text": f"t{i}", "label": "ab"[i % 2]}).encode() + b"\n" for i in range(2))
    f = tmp_path / "train.jsonl"
    f.write_bytes(good + third_line + b"\n")
    return write_task(tmp_path, "data: {train: train.jsonl}\n"), f


@pytest.mark.parametrize(
    "line,expect",
    [
        (b'{"text": "x", "label": "a"', "not valid JSON"),
        (b"[1, 2]", "expected a JSON object, got list"),
        (b"[", "not a JSON array"),
        (b'"just a string"', "expected a JSON object, got str"),
        (b'{"label": "a"}', "missing field 'text'"),
        (b'{"text": "x"}', "missing field 'label'"),
        (b'{"text": "x", "label": null}', "label field 'label' is null"),
        (b'{"text": "x", "label": ""}', "label field 'label' is empty"),
        (b'{"text": "x", "label": 1.5}', "1.5"),
        (b'{"text": "x", "label": true}', "True"),
        (b'{"text": "", "label": "a"}', "text field 'text' is empty"),
        (b'{"text": "  \\t\\n ", "label": "a"}', "text field 'text' is empty"),
        (b'{"text": 42, "label": "a"}', "must be a string, got int 42"),
        (b'{"text": "caf\xe9", "label": "a"}', "not valid UTF-8 (byte 0xe9"),
    ],
)
def test_bad_jsonl_record_names_file_line_and_field(tmp_path, line, expect):
    task, f = bad_jsonl(tmp_path, line)
    msg = error_of(load_data, load_task(task))
    assert msg.startswith(f"{f}:3:"), msg
    assert expect in msg


def test_empty_split(tmp_path):
    write_jsonl(tmp_path / "train.jsonl", examples({"a": 5, "b": 5}))
    (tmp_path / "test.jsonl").write_text("\n\n", encoding="utf-8")
    msg = error_of(load_data, load_task(write_task(tmp_path, BASIC)))
    assert str(tmp_path / "test.jsonl") in msg and "data.test" in msg and "no examples" in msg


def test_empty_folder(tmp_path):
    (tmp_path / "news").mkdir()
    msg = error_of(load_data, load_task(write_task(tmp_path, "data: {all: news}\n")))
    assert str(tmp_path / "news") in msg and "data.all" in msg


def test_single_class_train(tmp_path):
    write_jsonl(tmp_path / "train.jsonl", examples({"only": 10}))
    write_jsonl(tmp_path / "test.jsonl", examples({"only": 2}, prefix="t"))
    msg = error_of(load_data, load_task(write_task(tmp_path, BASIC)))
    assert str(tmp_path / "train.jsonl") in msg and "single label 'only'" in msg


def test_unseen_test_labels_named_up_to_five(tmp_path):
    write_jsonl(tmp_path / "train.jsonl", examples({"a": 5, "b": 5}))
    write_jsonl(tmp_path / "test.jsonl", examples({"a": 1, **{f"new{i}": 1 for i in range(7)}}))
    msg = error_of(load_data, load_task(write_task(tmp_path, BASIC)))
    assert str(tmp_path / "test.jsonl") in msg and "7 label(s) never seen in train" in msg
    assert all(f"'new{i}'" in msg for i in range(5)) and "'new5'" not in msg and "and 2 more" in msg


def test_unseen_validation_labels(tmp_path):
    write_jsonl(tmp_path / "train.jsonl", examples({"a": 5, "b": 5}))
    write_jsonl(tmp_path / "val.jsonl", examples({"a": 1, "zebra": 1}))
    p = write_task(tmp_path, "data: {train: train.jsonl, validation: val.jsonl}\n")
    msg = error_of(load_data, load_task(p))
    assert str(tmp_path / "val.jsonl") in msg and "data.validation" in msg and "'zebra'" in msg


# -------------------------------------------------------------------------------------------- carving


def test_carving_is_stratified_deterministic_and_disjoint(tmp_path):
    write_jsonl(tmp_path / "train.jsonl", examples({"a": 600, "b": 300, "c": 100}))
    p = write_task(tmp_path, "data: {train: train.jsonl}\nvalidation_fraction: 0.2\n")
    first, second = load_data(load_task(p)), load_data(load_task(p))
    assert first.train == second.train and first.validation == second.validation
    assert Counter(first.validation.labels) == {"a": 120, "b": 60, "c": 20}
    assert Counter(first.train.labels) == {"a": 480, "b": 240, "c": 80}
    assert set(first.train.texts).isdisjoint(first.validation.texts)
    assert len(set(first.train.texts) | set(first.validation.texts)) == 1000

    other = load_data(load_task(write_task(tmp_path, p.read_text() + "seed: 1\n", name="seed1.yaml")))
    assert set(other.validation.texts) != set(first.validation.texts)
    assert Counter(other.validation.labels) == Counter(first.validation.labels)


def test_all_carving_gives_three_disjoint_stratified_splits(tmp_path):
    write_jsonl(tmp_path / "all.jsonl", examples({"ham": 800, "spam": 200}))
    p = write_task(tmp_path, "data: {all: all.jsonl}\nmetric: macro_f1\n")
    data = load_data(load_task(p))
    assert [s.source for s in (data.train, data.validation, data.test)] == ["carved from all"] * 3
    assert (len(data.train), len(data.validation), len(data.test)) == (700, 150, 150)
    assert Counter(data.test.labels) == {"ham": 120, "spam": 30}
    assert Counter(data.validation.labels) == {"ham": 120, "spam": 30}
    tr, va, te = set(data.train.texts), set(data.validation.texts), set(data.test.texts)
    assert not (tr & va) and not (tr & te) and not (va & te) and len(tr | va | te) == 1000
    again = load_data(load_task(p))
    assert again.test == data.test and again.validation == data.validation and again.train == data.train


def test_splits_are_shuffled_so_a_prefix_is_a_sample(tmp_path):
    # on disk sorted by label (like rotten_tomatoes); a --limit prefix must still see both labels
    write_jsonl(tmp_path / "train.jsonl", examples({"neg": 200, "pos": 200}))
    write_jsonl(tmp_path / "val.jsonl", examples({"neg": 50, "pos": 50}, prefix="v"))
    data = load_data(load_task(write_task(tmp_path, "data: {train: train.jsonl, validation: val.jsonl}\n")))
    assert set(data.train.labels[:20]) == {"neg", "pos"} and set(data.validation.labels[:20]) == {"neg", "pos"}
    assert sorted(data.train.texts) == sorted(t for t, _ in examples({"neg": 200, "pos": 200}))
    assert all(t.startswith(y) for t, y in zip(data.train.texts, data.train.labels))


def test_carving_falls_back_for_tiny_classes(tmp_path, caplog):
    # 'rare' has one example: it cannot be stratified, so it stays in train (never only in validation)
    write_jsonl(tmp_path / "train.jsonl", examples({"a": 30, "b": 30, "rare": 1}))
    p = write_task(tmp_path, "data: {train: train.jsonl}\n")
    with caplog.at_level("WARNING", logger="rightsize.tasks"):
        data = load_data(load_task(p))
    assert "rare" in data.train.labels and "rare" not in data.validation.labels
    assert "single example" in caplog.text and "rare" in caplog.text


def test_carving_unstratified_when_too_few_for_stratify(tmp_path, caplog):
    # 10 labels x 3 examples, 15% -> 4 validation examples < 10 labels: stratification impossible;
    # train still keeps at least one example of every label
    write_jsonl(tmp_path / "train.jsonl", examples({f"l{i}": 3 for i in range(10)}))
    p = write_task(tmp_path, "data: {train: train.jsonl}\n")
    for seed in range(5):
        task = load_task(write_task(tmp_path, p.read_text() + f"seed: {seed}\n", name=f"s{seed}.yaml"))
        with caplog.at_level("WARNING", logger="rightsize.tasks"):
            data = load_data(task)
        assert (len(data.train), len(data.validation)) == (26, 4)
        assert set(data.train.labels) == {f"l{i}" for i in range(10)}
        assert set(data.train.texts).isdisjoint(data.validation.texts)
    assert "unstratified" in caplog.text


def test_too_few_examples_to_carve(tmp_path):
    write_jsonl(tmp_path / "train.jsonl", examples({"a": 1, "b": 1}))
    p = write_task(tmp_path, "data: {train: train.jsonl}\n")
    msg = error_of(load_data, load_task(p))
    assert str(tmp_path / "train.jsonl") in msg and "too few examples (2" in msg


# ------------------------------------------------------------------------------------------ summarize


def test_summarize(tmp_path):
    write_jsonl(tmp_path / "train.jsonl", examples({"a": 60, "b": 30, "c": 10}))
    write_jsonl(tmp_path / "test.jsonl", examples({"a": 4, "b": 1}, prefix="t "))
    p = write_task(tmp_path, BASIC.replace("name: t", "name: demo\ndescription: tiny"))
    s = summarize(load_data(load_task(p)))
    assert s["name"] == "demo" and s["description"] == "tiny" and s["path"] == str(p)
    assert s["metric"] == "accuracy" and s["target"] == {"within": 0.02} and s["seed"] == 0
    assert s["labels"] == ["a", "b", "c"] and s["num_labels"] == 3
    assert list(s["splits"]) == ["train", "validation", "test"]
    train, val, test = s["splits"]["train"], s["splits"]["validation"], s["splits"]["test"]
    assert train["count"] == 85 and val["count"] == 15 and test["count"] == 5
    assert train["source"] == val["source"] == "carved from train" and test["source"] == "file"
    assert train["path"] == val["path"] == str(tmp_path / "train.jsonl")
    assert test["path"] == str(tmp_path / "test.jsonl")
    assert test["majority_fraction"] == 0.8
    balance = s["label_balance"]
    assert list(balance) == ["a", "b", "c"]
    assert {label: row["train"] + row["validation"] for label, row in balance.items()} == {"a": 60, "b": 30, "c": 10}
    assert balance["a"]["validation"] == 9 and sum(row["validation"] for row in balance.values()) == 15
    assert {label: row["test"] for label, row in balance.items()} == {"a": 4, "b": 1, "c": 0}  # 0 where absent
    json.dumps(s)  # serialisable for `rightsize tasks validate --json`


def test_summarize_without_test(tmp_path):
    write_jsonl(tmp_path / "train.jsonl", examples({"a": 10, "b": 10}))
    s = summarize(load_data(load_task(write_task(tmp_path, "data: {train: train.jsonl}\ntarget: {min: 0.8}\n"))))
    assert list(s["splits"]) == ["train", "validation"] and s["target"] == {"min": 0.8}
    assert s["label_balance"]["a"] == {"train": 8, "validation": 2}


def test_split_can_be_sliced(basic):
    data = load_data(load_task(basic))
    limited = Split(data.train.name, data.train.texts[:5], data.train.labels[:5], data.train.source)
    assert len(limited) == 5


# ------------------------------------------------------------------------------------------ safe names


@pytest.mark.parametrize("name", ["../../elsewhere", "a/b", "..", ".hidden", "x\n", "<script>", "two words"])
def test_task_name_must_be_one_safe_word(tmp_path, name):
    p = write_task(tmp_path, f"name: {json.dumps(name)}\ndata: {{train: train.jsonl}}\n")
    msg = error_of(load_task, p)
    assert str(p) in msg and "field 'name'" in msg and "letters, digits" in msg and repr(name) in msg


def test_task_name_from_the_file_name_must_be_safe_too(tmp_path):
    p = write_task(tmp_path, "data: {train: train.jsonl}\n", name="my task.yaml")
    msg = error_of(load_task, p)
    assert "from the file name; add a 'name' field" in msg and "'my task'" in msg
    assert load_task(write_task(tmp_path, "data: {train: train.jsonl}\n", name="v1.2_ok-name.yaml")).name == \
        "v1.2_ok-name"


# ------------------------------------------------------------------------------------- leakage: carving


def _normalized_sets(*splits):
    from rightsize.tasks import normalized

    return [{normalized(t) for t in s.texts} for s in splits]


@pytest.mark.parametrize("data", ["{train: train.jsonl}", "{all: train.jsonl}"])
def test_carving_puts_duplicate_texts_on_one_side_only(tmp_path, data):
    # every text twice or three times, differing in case and whitespace: a carve by example would
    # split most of them across train and validation (or test)
    rows = []
    for i in range(60):
        label = "abc"[i % 3]
        rows += [(f"Example number {i} of {label}", label), (f"example  number {i} of {label.upper()}  ", label)]
        if i % 4 == 0:
            rows.append((f"EXAMPLE number {i}\tof {label}", label))
    write_jsonl(tmp_path / "train.jsonl", rows)
    for seed in range(4):
        p = write_task(tmp_path, f"data: {data}\nseed: {seed}\n", name=f"s{seed}.yaml")
        loaded = load_data(load_task(p))
        splits = [s for s in (loaded.train, loaded.validation, loaded.test) if s is not None]
        sets = _normalized_sets(*splits)
        for i in range(len(sets)):
            for j in range(i + 1, len(sets)):
                assert not sets[i] & sets[j], (seed, splits[i].name, splits[j].name)
        assert sum(len(s) for s in splits) == len(rows)  # nothing dropped
        assert sum(len(s) for s in sets) == 60  # each distinct text in exactly one split
        again = load_data(load_task(p))
        assert again.validation == loaded.validation and again.train == loaded.train  # seeded


def test_a_label_whose_texts_are_all_one_duplicate_stays_in_train(tmp_path, caplog):
    rows = examples({"a": 20, "b": 20}) + [("the same words", "rare")] * 3
    write_jsonl(tmp_path / "train.jsonl", rows)
    with caplog.at_level("WARNING", logger="rightsize.tasks"):
        data = load_data(load_task(write_task(tmp_path, "data: {train: train.jsonl}\n")))
    assert data.train.labels.count("rare") == 3 and "rare" not in data.validation.labels
    assert "rare" in caplog.text


def test_too_few_distinct_texts_to_carve_says_so(tmp_path):
    write_jsonl(tmp_path / "train.jsonl", [("hello there", "a"), ("bye now", "b")] * 6)
    msg = error_of(load_data, load_task(write_task(tmp_path, "data: {train: train.jsonl}\n")))
    assert "too few examples (12, 2 distinct texts)" in msg


# ------------------------------------------------------------------------------------- leakage: overlaps


def _task_with(tmp_path, train, validation, test) -> TaskData:
    write_jsonl(tmp_path / "train.jsonl", train)
    write_jsonl(tmp_path / "val.jsonl", validation)
    write_jsonl(tmp_path / "test.jsonl", test)
    p = write_task(tmp_path, "data: {train: train.jsonl, validation: val.jsonl, test: test.jsonl}\n")
    return load_data(load_task(p))


def test_overlaps_count_texts_shared_after_case_and_whitespace(tmp_path):
    from rightsize.tasks import overlaps

    train = examples({"a": 10, "b": 10})
    validation = [("A EXAMPLE 1", "a"), ("a  example\t2 ", "a"), ("a example 2", "a"), ("fresh b text", "b")] + \
        examples({"a": 4, "b": 4}, prefix="v ")
    test = examples({"a": 3, "b": 3}, prefix="t ")
    found = overlaps(_task_with(tmp_path, train, validation, test))
    assert [p.splits for p in found.pairs] == [("train", "validation")]  # test shares nothing
    pair = found.pairs[0]
    assert pair.texts == 2 and pair.examples == (2, 3) and pair.sizes == (20, 12)
    assert pair.fraction == 3 / 12 and not pair.identical and not pair.blocking and not found.blocking
    assert set(pair.samples) == {"a example 1", "a example 2"}  # as train has them
    json.dumps(found.to_dict())


@pytest.mark.parametrize("shared, blocking", [(3, False), (4, False), (5, True), (8, True)])
def test_more_than_half_of_the_smaller_split_shared_is_mostly(tmp_path, shared, blocking):
    from rightsize.tasks import overlaps, refuse_overlap

    train = examples({"a": 10, "b": 10})
    test = train[:shared] + examples({"a": 4, "b": 4}, prefix="t ")[: 8 - shared]
    data = _task_with(tmp_path, train, examples({"a": 2, "b": 2}, prefix="v "), test)
    found = overlaps(data)
    assert found.pairs[0].splits == ("train", "test") and found.pairs[0].fraction == shared / 8
    assert bool(found.blocking) is blocking
    if blocking:
        msg = error_of(refuse_overlap, data, found)
        assert "train and test mostly overlap" in msg and f"{shared} of test's 8 examples" in msg
        assert "--allow-overlap" in msg and str(tmp_path / "test.jsonl") in msg
    else:
        refuse_overlap(data, found)


def test_a_split_given_twice_is_identical(tmp_path):
    from rightsize.tasks import overlaps, refuse_overlap

    write_jsonl(tmp_path / "train.jsonl", examples({"a": 10, "b": 10}))
    p = write_task(tmp_path, "data: {train: train.jsonl, validation: train.jsonl}\n")
    data = load_data(load_task(p))
    found = overlaps(data)
    assert found.pairs[0].identical and found.pairs[0].fraction == 1.0
    msg = error_of(refuse_overlap, data, found)
    assert "train and validation are identical" in msg and "20 of train's 20 examples (100%)" in msg
    assert f"data.train is {tmp_path / 'train.jsonl'}" in msg


def test_summarize_reports_the_overlap(tmp_path):
    data = _task_with(tmp_path, examples({"a": 5, "b": 5}), examples({"a": 1, "b": 1}),
                      examples({"a": 1, "b": 1}, prefix="t "))
    s = summarize(data)
    assert [p["splits"] for p in s["overlap"]["pairs"]] == [["train", "validation"]]
    assert s["overlap"]["pairs"][0]["examples"] == [2, 2]
