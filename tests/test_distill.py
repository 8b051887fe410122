"""The ``distill`` kind: a student taught by a teacher rung's predicted labels.

Energy is pinned with the scripted counter (1 J per text an encoder runs), so every figure is an
exact count of texts encoded: the teacher encodes the train texts to fit and again to label them,
plus the transfer texts; a TF-IDF student adds nothing.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from conftest import make_examples, write_jsonl
from rightsize.cache import EmbeddingCache
from rightsize.cost_model import compute_weights_of
from rightsize.model_facts import facts_of
from rightsize.energy import make_meter
from rightsize.energy.meter import Meter
from rightsize.evaluate import EvalPlan, evaluate_rung, evaluation_key, task_identity
from rightsize.ladder import load_ladder
from rightsize.rungs import RUNG_KINDS, RunContext, build_rung
from rightsize.rungs.tfidf import TfidfRung
from rightsize.tasks import load_data, load_task
from test_reliability import assert_one_line_error, invoke


@pytest.fixture
def data(tiny_task):
    return load_data(load_task(tiny_task))


@pytest.fixture
def transfer(tmp_path, data) -> Path:
    """Unlabelled texts, none of them a train text (a repeat would be a cache hit)."""
    train = set(data.train.texts)
    rows = [{"text": r["text"]} for r in make_examples(6, seed=3) if r["text"] not in train]
    write_jsonl(tmp_path / "unlabelled.jsonl", rows)
    return tmp_path / "unlabelled.jsonl"


def ladder(tmp_path: Path, tiny_encoder: Path, student: str = "tfidf", extra: str = "",
           teacher_knobs: str = "") -> Path:
    path = tmp_path / "ladder.yaml"
    path.write_text(
        "rungs:\n"
        f"  - {{name: tiny-probe, kind: probe, model: '{tiny_encoder}', batch_size: 4{teacher_knobs}}}\n"
        f"  - {{name: student, kind: distill, teacher: tiny-probe, student: {student}{extra}}}\n")
    return path


def n_texts(path: Path) -> int:
    return len(path.read_text().splitlines())


@pytest.mark.parametrize("with_transfer", [False, True])
def test_the_students_fit_holds_the_teachers_fit_and_labelling(data, tiny_encoder, tmp_path, counter, transfer,
                                                                 with_transfer):
    extra = ", transfer: unlabelled.jsonl" if with_transfer else ""
    spec = load_ladder(ladder(tmp_path, tiny_encoder, extra=extra))["student"]
    n_train, n_transfer = len(data.train.texts), n_texts(transfer) if with_transfer else 0

    record = evaluate_rung(data, spec, Meter([counter]), RunContext(cache=None), EvalPlan())
    assert record.status == "ok", record.error
    # The teacher encodes the train texts to fit, then the train and transfer texts to label them.
    assert record.joules["fit"] == pytest.approx(2 * n_train + n_transfer)
    assert record.joules["load"] == 0.0 and record.joules["infer"] == 0.0  # the TF-IDF student's
    assert record.metrics["accuracy"] >= 0.8  # the tiny probe teaches its keywords well


def test_a_warm_cache_serves_the_teacher_and_its_cost_is_still_charged_to_the_fit(data, tiny_encoder, tmp_path,
                                                                                    counter, transfer):
    rungs = load_ladder(ladder(tmp_path, tiny_encoder, extra=", transfer: unlabelled.jsonl"))
    context, meter = RunContext(cache=EmbeddingCache(tmp_path / "cache")), Meter([counter])
    n_train, n_transfer = len(data.train.texts), n_texts(transfer)

    teacher = evaluate_rung(data, rungs["tiny-probe"], meter, context)  # warms the cache: train and validation
    assert teacher.joules_spent["fit"] == pytest.approx(n_train)
    student = evaluate_rung(data, rungs["student"], meter, context)
    assert student.status == "ok", student.error
    assert student.joules_spent["fit"] == pytest.approx(n_transfer)  # only the transfer texts were new
    assert student.joules["fit"] == pytest.approx(2 * n_train + n_transfer)  # charged as if encoded
    assert student.cache["hits"] == 2 * n_train
    assert student.cache["charged_joules"] == pytest.approx(2 * n_train)


def test_training_reports_the_teachers_share_and_the_examples_taught(data, tiny_encoder, tmp_path, counter, transfer):
    spec = load_ladder(ladder(tmp_path, tiny_encoder, extra=", transfer: unlabelled.jsonl"))["student"]
    n_train, n_transfer = len(data.train.texts), n_texts(transfer)
    rung = build_rung(spec, RunContext(), Meter([counter]))
    rung.load()
    rung.fit(data.train.texts, data.train.labels)
    facts = rung.training()
    assert facts["train_examples"] == n_train + n_transfer and facts["transfer_examples"] == n_transfer
    assert facts["teacher"]["texts_labelled"] == n_train + n_transfer
    assert facts["teacher"]["joules"] == pytest.approx(2 * n_train + n_transfer)
    assert 0.8 <= facts["teacher"]["train_agreement"] <= 1.0
    assert rung.n_params() == rung.student.n_params()  # the deployed model is the student alone
    assert rung.facts()["student"] == "tfidf" and rung.facts()["teacher"] == "probe"
    rung.close()


def test_a_probe_student_saves_and_restores_to_the_same_predictions(data, tiny_encoder, tmp_path):
    student = f"{{kind: probe, model: '{tiny_encoder}', C: 1.0, batch_size: 4}}"
    spec = load_ladder(ladder(tmp_path, tiny_encoder, student=student))["student"]
    fitted = build_rung(spec, RunContext())
    fitted.load()
    fitted.fit(data.train.texts, data.train.labels)
    expected = fitted.predict(data.validation.texts)
    (tmp_path / "state").mkdir()
    fitted.save(tmp_path / "state")
    fitted.close()

    restored = build_rung(spec, RunContext())
    restored.load()
    restored.restore(tmp_path / "state")
    assert restored.predict(data.validation.texts) == expected
    assert restored.n_params() == fitted.n_params()


def test_the_students_evaluation_key_follows_the_teachers_config(data, tiny_encoder, tmp_path, transfer):
    def key(teacher_knobs: str = "", extra: str = "") -> str:
        spec = load_ladder(ladder(tmp_path, tiny_encoder, teacher_knobs=teacher_knobs, extra=extra))["student"]
        return evaluation_key(task_identity(data), spec, EvalPlan(), RunContext())

    plain = key()
    assert key() == plain
    assert key(teacher_knobs=", C: 1.0") != plain  # the teacher's config is part of the student's
    assert key(extra=", transfer: unlabelled.jsonl") != plain
    spec = load_ladder(ladder(tmp_path, tiny_encoder, extra=", transfer: unlabelled.jsonl"))["student"]
    assert spec.config()["teacher"] == load_ladder(tmp_path / "ladder.yaml")["tiny-probe"].config()
    assert spec.config()["transfer"] == str(transfer)  # found relative to the ladder, kept absolute
    with_transfer = key(extra=", transfer: unlabelled.jsonl")
    transfer.write_text(transfer.read_text().replace('"}', ' again"}', 1))  # other texts, same path
    assert key(extra=", transfer: unlabelled.jsonl") != with_transfer


def test_the_cost_model_bounds_the_students_inference_not_the_teachers(tiny_encoder, tmp_path):
    tfidf_student = load_ladder(ladder(tmp_path, tiny_encoder))["student"]
    assert compute_weights_of(tfidf_student) is None  # TF-IDF runs no model per query
    probe_student = load_ladder(ladder(tmp_path, tiny_encoder, student=f"{{kind: probe, model: '{tiny_encoder}'}}"))
    assert compute_weights_of(probe_student["student"]) == facts_of(str(tiny_encoder)).compute_weights()


def test_the_student_may_be_any_registered_kind(tiny_encoder, tmp_path, monkeypatch):
    class ToyStudent(TfidfRung):  # what a kind merged later (finetune) looks like to the ladder
        kind = "toy-student"

    monkeypatch.setitem(RUNG_KINDS, "toy-student", ToyStudent)
    spec = load_ladder(ladder(tmp_path, tiny_encoder, student="{kind: toy-student, C: 2.0}"))["student"]
    assert spec.config()["student"] == {"kind": "toy-student", "model": None, "C": 2.0}


def test_evaluate_runs_teacher_and_student_from_the_cli(tiny_task, tiny_encoder, tmp_path, transfer):
    out = tmp_path / "run"
    result = invoke("evaluate", tiny_task, "--ladder", ladder(tmp_path, tiny_encoder, extra=", transfer: unlabelled.jsonl"),
                    "--out", out, "--meter", "estimate", "--quiet")
    assert result.exit_code == 0, result.output
    records = {r["rung"]: r for r in map(json.loads, (out / "runs.jsonl").read_text().splitlines())}
    assert records["student"]["status"] == "ok" and records["student"]["config"]["student"]["kind"] == "tfidf"
    assert records["student"]["joules"]["fit"] > 0


# ------------------------------------------------------------------------------------ bad input: one line, exit 2

PROBE = "{name: probe, kind: probe, model: MODEL}"
BAD_LADDERS = {
    "unknown teacher": ("{name: a, kind: distill, teacher: nobody, student: tfidf}",
                        "teacher 'nobody' is not a rung of this ladder"),
    "no teacher": ("{name: a, kind: distill, student: tfidf}", "kind 'distill' needs a 'teacher'"),
    "teaches itself": ("{name: a, kind: distill, teacher: a, student: tfidf}", "teacher 'a' is this rung itself"),
    "cycle": ("{name: a, kind: distill, teacher: b, student: tfidf}\n"
              "  - {name: b, kind: distill, teacher: a, student: tfidf}", "teacher 'b' is itself a student of 'a'"),
    "student teaches": ("{name: a, kind: distill, teacher: probe, student: tfidf}\n"
                        "  - {name: b, kind: distill, teacher: a, student: tfidf}",
                        "teacher 'a' is a student itself (kind 'distill'), and a student cannot teach"),
    "unknown student kind": ("{name: a, kind: distill, teacher: probe, student: nonsense}",
                             "unknown rung kind 'nonsense'"),
    "student's unknown knob": ("{name: a, kind: distill, teacher: probe, student: {kind: tfidf, k: 3}}",
                               "unknown key 'k' for kind 'tfidf'"),
    "student without its model": ("{name: a, kind: distill, teacher: probe, student: {kind: probe}}",
                                  "kind 'probe' needs a 'model'"),
    "student's bad value": ("{name: a, kind: distill, teacher: probe, student: {kind: tfidf, C: -1}}",
                            "knob 'C' = -1.0 is below its minimum"),
    "a student student": ("{name: a, kind: distill, teacher: probe, student: {kind: distill}}",
                          "kind 'distill' cannot be a student"),
}
BAD_TRANSFER = {
    "missing": (None, "missing.jsonl: cannot read"),
    "not JSON": ('{"text": "fine"}\nnot json\n', "unlabelled.jsonl:2: not valid JSON"),
    "no text field": ('{"sentence": "a text"}\n', "unlabelled.jsonl:1: missing field 'text'"),
    "empty": ("\n", "unlabelled.jsonl: no texts"),
    "a folder": (None, "unlabelled: is a folder"),
    "a CSV without the column": ("sentence\nhello\n", "CSV header has no column 'text'"),
}


@pytest.mark.parametrize("case", BAD_LADDERS)
def test_a_bad_teacher_or_student_is_one_line_and_exit_2(tiny_task, tiny_encoder, tmp_path, case):
    rungs, message = BAD_LADDERS[case]
    path = tmp_path / "bad.yaml"
    path.write_text(f"rungs:\n  - {PROBE.replace('MODEL', repr(str(tiny_encoder)))}\n  - {rungs}\n")
    out = tmp_path / "run"
    result = invoke("evaluate", tiny_task, "--ladder", path, "--out", out, "--meter", "estimate", "--quiet")
    assert_one_line_error(result, str(path), message)
    assert not out.exists()  # rejected before the run folder is touched


@pytest.mark.parametrize("case", BAD_TRANSFER)
def test_an_unreadable_transfer_file_is_one_line_and_exit_2(tiny_task, tiny_encoder, tmp_path, case):
    content, message = BAD_TRANSFER[case]
    name = {"a folder": "unlabelled", "missing": "missing.jsonl",
            "a CSV without the column": "unlabelled.csv"}.get(case, "unlabelled.jsonl")
    if content is not None:
        (tmp_path / name).write_text(content)
    if case == "a folder":
        (tmp_path / name).mkdir()
    out = tmp_path / "run"
    path = ladder(tmp_path, tiny_encoder, extra=f", transfer: {name}")
    result = invoke("evaluate", tiny_task, "--ladder", path, "--out", out, "--meter", "estimate", "--quiet")
    assert_one_line_error(result, str(path), "transfer", message)
    assert not out.exists()


def test_without_a_cache_the_students_fit_is_all_spent(data, tiny_encoder, tmp_path):
    spec = load_ladder(ladder(tmp_path, tiny_encoder))["student"]
    record = evaluate_rung(data, spec, make_meter("estimate"), RunContext(cache=None))
    assert record.status == "ok" and record.cache["charged_joules"] == 0.0
    assert record.joules["fit"] == record.joules_spent["fit"] > 0


# ------------------------------------------------------------------- transfer texts that are held-out texts

@pytest.mark.parametrize("held_out", ["validation", "test"])
def test_a_transfer_file_holding_a_held_out_split_is_one_line_and_exit_2(tiny_task, tiny_encoder, tmp_path, data,
                                                                         held_out):
    # the classic slip: the task's whole train file (validation was carved from it) or its test texts
    source = {"validation": tmp_path / "data" / "train.jsonl", "test": tmp_path / "data" / "test.jsonl"}[held_out]
    write_jsonl(tmp_path / "unlabelled.jsonl", [{"text": json.loads(line)["text"]}
                                                for line in source.read_text().splitlines()])
    path = ladder(tmp_path, tiny_encoder, extra=", transfer: unlabelled.jsonl")
    out = tmp_path / "run"
    result = invoke("evaluate", tiny_task, "--ladder", path, "--out", out, "--meter", "estimate", "--quiet")
    shared = len({t.casefold() for t in getattr(data, held_out).texts})
    assert_one_line_error(result, "rung 'student': transfer", f"shares {shared} text(s) with {held_out}",
                          "--allow-overlap")
    assert not out.exists()  # rejected before the run folder is touched


def test_allow_overlap_runs_a_transfer_file_holding_validation_and_says_so(tiny_task, tiny_encoder, tmp_path, data):
    write_jsonl(tmp_path / "unlabelled.jsonl", [{"text": t} for t in data.validation.texts])
    path = ladder(tmp_path, tiny_encoder, extra=", transfer: unlabelled.jsonl")
    result = invoke("evaluate", tiny_task, "--ladder", path, "--out", tmp_path / "run", "--meter", "estimate",
                    "--quiet", "--allow-overlap")
    assert result.exit_code == 0, result.output
    assert f"shares {len(set(data.validation.texts))} text(s) with validation" in result.output


def test_a_transfer_file_sharing_a_few_held_out_texts_is_warned_not_refused(tiny_task, tiny_encoder, tmp_path, data,
                                                                             transfer):
    texts = [json.loads(line)["text"] for line in transfer.read_text().splitlines()]
    write_jsonl(transfer, [{"text": t} for t in texts + [data.validation.texts[0].upper()]])  # equal once case-folded
    result = invoke("evaluate", tiny_task, "--ladder", ladder(tmp_path, tiny_encoder, extra=", transfer: unlabelled.jsonl"),
                    "--out", tmp_path / "run", "--meter", "estimate", "--quiet")
    assert result.exit_code == 0, result.output
    warned = [line for line in result.output.splitlines() if "shares 1 text(s) with validation" in line]
    assert len(warned) == 1 and data.validation.texts[0].upper() in warned[0]
