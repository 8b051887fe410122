"""`rightsize export` and `rightsize predict`: a self-contained folder per config that labels texts
with no run folder, exactly as the record's validation predictions; bad input is one line, exit 2."""

from __future__ import annotations

import json

import pytest
from click.testing import CliRunner

from conftest import make_examples, write_jsonl
from rightsize.cli import cli
from rightsize.evaluate import subsample
from rightsize.results import RunLog
from rightsize.tasks import load_data, load_task
from test_lm import build_tiny_lm

KINDS = ["tfidf", "probe", "knn", "knn-probe", "lm-zero-shot", "lm-few-shot", "finetune", "finetune-lora", "static",
         "distill", "cascade"]


@pytest.fixture(scope="module")
def evaluated(tmp_path_factory, tiny_encoder):
    """A run folder with one config of every kind that fits something, evaluated by the CLI."""
    root = tmp_path_factory.mktemp("export")
    write_jsonl(root / "data" / "train.jsonl", make_examples(20, seed=1))
    write_jsonl(root / "data" / "test.jsonl", make_examples(10, seed=2))
    task = root / "tiny.yaml"
    task.write_text("name: tiny\ndata: {train: data/train.jsonl, test: data/test.jsonl}\nmetric: accuracy\n"
                    "target: {within: 0.05}\nvalidation_fraction: 0.25\n")
    lm = build_tiny_lm(root / "tiny-lm")
    ladder = root / "ladder.yaml"
    ladder.write_text(
        "rungs:\n"
        "  - {name: tfidf, kind: tfidf}\n"
        f"  - {{name: probe, kind: probe, model: '{tiny_encoder}', batch_size: 8}}\n"
        f"  - {{name: knn, kind: knn, model: '{tiny_encoder}', k: 5, index: hnsw}}\n"
        f"  - {{name: knn-probe, kind: knn-probe, model: '{tiny_encoder}', k: 5}}\n"
        f"  - {{name: lm-zero-shot, kind: lm, model: '{lm}', max_length: 16}}\n"
        f"  - {{name: lm-few-shot, kind: lm, model: '{lm}', shots: 2, retriever: '{tiny_encoder}', max_length: 16}}\n"
        f"  - {{name: finetune, kind: finetune, model: '{tiny_encoder}', epochs: 1, batch_size: 8, threads: 1}}\n"
        f"  - {{name: finetune-lora, kind: finetune, model: '{tiny_encoder}', method: lora, epochs: 1, batch_size: 8,"
        " threads: 1}\n"
        f"  - {{name: static, kind: static, model: '{tiny_encoder}', pca_dims: 8}}\n"
        "  - {name: distill, kind: distill, teacher: probe, student: tfidf}\n"
        "  - {name: cascade, kind: cascade, stages: [tfidf, knn-probe], threshold: 0.999}\n")
    out = root / "run"
    result = CliRunner().invoke(cli, ["evaluate", str(task), "--ladder", str(ladder), "--out", str(out), "--meter",
                                      "estimate", "--quiet"])
    assert result.exit_code == 0, result.output
    records = {r.rung: r for r in RunLog(out, create=False).records()}
    assert set(records) == set(KINDS) and all(r.status == "ok" for r in records.values())
    texts, _ = subsample(load_data(load_task(task)).validation, None, 0)
    inputs = root / "validation.txt"
    inputs.write_text("".join(t + "\n" for t in texts), encoding="utf-8")
    return {"root": root, "run": out, "records": records, "texts": texts, "inputs": inputs}


def run_cli(*args):
    return CliRunner().invoke(cli, [str(a) for a in args])


def labels_of(output: str) -> list[str]:
    rows = [json.loads(line) for line in output.splitlines()]
    assert [r["index"] for r in rows] == list(range(len(rows)))
    return [r["label"] for r in rows]


def recorded_labels(record) -> list[str]:
    return [record.label_names[i] for i in record.predictions]


@pytest.mark.parametrize("rung", KINDS)
def test_an_exported_config_predicts_what_its_record_predicted(evaluated, rung, tmp_path):
    folder = tmp_path / "exported"
    result = run_cli("export", evaluated["run"], rung, "--out", folder)
    assert result.exit_code == 0, result.output
    assert f"exported {rung} to {folder}" in result.output
    info = json.loads((folder / "export.json").read_text())
    assert info["config"] == evaluated["records"][rung].config and info["label_names"] == ["money", "sports",
                                                                                                 "weather"]
    assert (folder / "README.txt").read_text().startswith(f'rightsize export of config "{rung}"')
    models = info["models"]
    assert all("path" in entry and (folder / entry["path"]).is_dir() for entry in models.values())
    assert len(models) == {"tfidf": 0, "lm-few-shot": 2}.get(rung, 1)

    predicted = run_cli("predict", folder, evaluated["inputs"])
    assert predicted.exit_code == 0, predicted.output
    assert labels_of(predicted.stdout) == recorded_labels(evaluated["records"][rung])


def test_the_default_config_is_the_recommendation_and_jsonl_csv_and_out_work(evaluated, tmp_path):
    from rightsize.recommend import recommend

    chosen = recommend(RunLog(evaluated["run"], create=False).records()).chosen
    folder = tmp_path / "default"
    assert run_cli("export", evaluated["run"], "--out", folder).exit_code == 0
    assert json.loads((folder / "export.json").read_text())["source"]["key"] == chosen["key"]
    expected = recorded_labels(evaluated["records"][chosen["rung"]])
    texts = evaluated["texts"]
    jsonl = tmp_path / "in.jsonl"
    jsonl.write_text("".join(json.dumps({"id": i, "text": t}) + "\n" for i, t in enumerate(texts)))
    csv = tmp_path / "in.csv"
    csv.write_text("id,body\n" + "".join(f'{i},"{t}"\n' for i, t in enumerate(texts)))
    out = tmp_path / "predictions.jsonl"
    assert run_cli("predict", folder, jsonl, "--out", out).exit_code == 0
    assert labels_of(out.read_text()) == expected
    result = run_cli("predict", folder, csv, "--text-field", "body")
    assert result.exit_code == 0, result.output
    assert labels_of(result.stdout) == expected


def test_models_referenced_by_id_are_not_copied_and_still_serve(evaluated, tmp_path):
    folder = tmp_path / "by-reference"
    assert run_cli("export", evaluated["run"], "probe", "--out", folder, "--models", "reference").exit_code == 0
    assert not (folder / "models").exists()
    assert "referenced by id, not copied" in (folder / "README.txt").read_text()
    result = run_cli("predict", folder, evaluated["inputs"])
    assert result.exit_code == 0, result.output
    assert labels_of(result.stdout) == recorded_labels(evaluated["records"]["probe"])


def one_line_error(result, fragment: str) -> None:
    assert result.exit_code == 2, result.output
    assert "Traceback" not in result.output and len(result.output.strip().splitlines()) == 1, result.output
    assert fragment in result.output, result.output


@pytest.fixture
def exported(evaluated, tmp_path):
    folder = tmp_path / "tfidf-export"
    assert run_cli("export", evaluated["run"], "tfidf", "--out", folder).exit_code == 0
    return folder


def test_bad_export_requests_are_one_line_exit_2(evaluated, exported, tmp_path):
    one_line_error(run_cli("export", evaluated["run"], "no-such-config", "--out", tmp_path / "x"),
                   "config 'no-such-config': no such config")
    one_line_error(run_cli("export", evaluated["run"], "tfidf", "--out", exported), "exists and is not an empty folder")
    one_line_error(run_cli("export", tmp_path / "nowhere", "--out", tmp_path / "y"), "not a rightsize run folder")


@pytest.mark.parametrize("damage, fragment", [
    (lambda f: (f / "artifact" / "state" / "idf.safetensors").write_bytes(b"tampered"),
     "idf.safetensors does not match its sha256"),
    (lambda f: (f / "artifact" / "state" / "head.json").unlink(), "head.json is missing"),
    (lambda f: (f / "README.txt").write_text("edited"), "README.txt does not match its sha256"),
    (lambda f: (f / "export.json").unlink(), "not a rightsize export folder"),
    (lambda f: (f / "export.json").write_text("{"), "export.json: cannot be read"),
])
def test_an_incomplete_or_tampered_export_is_refused(exported, evaluated, damage, fragment):
    damage(exported)
    one_line_error(run_cli("predict", exported, evaluated["inputs"]), fragment)


@pytest.mark.parametrize("content, name, fragment", [
    (None, "missing.txt", "cannot read"),
    (b'{"text": "a"}\n[1, 2]\n', "in.jsonl", "in.jsonl:2: expected a JSON object"),
    (b'{"body": "a"}\n', "in.jsonl", "missing field 'text'"),
    (b"ok line\n\xff\xfe bad\n", "in.txt", "in.txt:2: not valid UTF-8"),
    (b"id,body\n1,a\n", "in.csv", "CSV header has no column 'text'"),
    (b"\n\n", "in.txt", "no texts to label"),
])
def test_an_unreadable_input_is_one_line_exit_2(exported, tmp_path, content, name, fragment):
    path = tmp_path / name
    if content is not None:
        path.write_bytes(content)
    one_line_error(run_cli("predict", exported, path), fragment)


def test_a_config_whose_artifact_is_gone_cannot_be_exported(evaluated, tmp_path):
    import shutil

    run = tmp_path / "run-copy"
    shutil.copytree(evaluated["run"], run)
    record = evaluated["records"]["knn"]
    shutil.rmtree(run / record.artifact["path"])
    one_line_error(run_cli("export", run, "knn", "--out", tmp_path / "z"), "knn: its fitted state was not saved")
