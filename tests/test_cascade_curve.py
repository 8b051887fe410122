"""The cascade's accuracy–energy curve over thresholds: derived by hand on a made-up cascade, recorded by a
real evaluation (stage outputs consistent with what the cascade measured), and shown by the report, which
still reports cascade records from before the stage outputs were kept.

The stub stages (tests/test_cascade.py) read their answer and confidence from the text ("a 0.95 b 0.60":
stage 1 says a at 0.95, stage 2 says b at 0.60) and charge the scripted counter joules per text.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from conftest import write_jsonl
from rightsize.cascade_curve import GRID, cascade_curves
from rightsize.energy.meter import Meter
from rightsize.evaluate import evaluate_rung
from rightsize.ladder import load_ladder
from rightsize.records import Record
from rightsize.report import build_report
from rightsize.results import RunLog
from rightsize.rungs import RunContext
from rightsize.tasks import load_data, load_task
from test_cascade import stubs, write_ladder  # noqa: F401 — stubs is a fixture

NAMES = ["a", "b"]
REFERENCES = [0, 1, 1, 0]  # a b b a


def made_up(kind: str, rung: str, jpq: float, **config) -> Record:
    return Record(key=rung, task="t", split="validation", metric="accuracy", rung=rung, status="ok",
                  config={"kind": kind, **config}, label_names=NAMES, references=REFERENCES,
                  predictions=[0, 0, 0, 0], metrics={"accuracy": 0.5}, joules_per_query=jpq)


def made_up_cascade(outputs: bool = True) -> list[Record]:
    cheap, dear = {"kind": "stub", "read": 0}, {"kind": "stub", "read": 1}
    facts = {"thresholds": [0.8], "answered_share": [0.5, 0.5]}
    if outputs:
        facts["stage_outputs"] = [
            {"classes": ["a", "b"], "predicted": [0, 1, 0, 1], "confidence": [0.95, 0.80, 0.60, 0.70]},
            # The second stage lists its classes the other way round: its 1 is "a".
            {"classes": ["b", "a"], "predicted": [1, 0, 0, 1], "confidence": [0.99, 0.99, 0.51, 0.90]},
        ]
    cascade = made_up("cascade", "both", 7.0, stages=[cheap, dear], threshold=0.8)
    cascade.facts = facts
    return [made_up("stub", "cheap", 1.0, read=0), made_up("stub", "dear", 10.0, read=1), cascade]


def test_the_curve_routes_by_the_recorded_confidences_and_prices_each_stage_by_its_own_record():
    (curve,) = cascade_curves(made_up_cascade())
    assert curve.missing is None and curve.stages == ("cheap", "dear")
    assert [p.threshold for p in curve.points] == list(GRID)
    by_threshold = {p.threshold: p for p in curve.points}
    # (accuracy, J/query = J1 + deferred share x J2, answered share per stage), worked out by hand:
    expected = {
        0.0: (2 / 4, 1.0, (1.0, 0.0)),  # stage 1 answers all: a b a b against a b b a
        0.6: (2 / 4, 1.0, (1.0, 0.0)),  # every confidence of stage 1 is at least 0.6
        0.75: (4 / 4, 1.0 + 0.5 * 10.0, (0.5, 0.5)),  # the last two go up: stage 2 says b, a
        0.9: (4 / 4, 1.0 + 0.75 * 10.0, (0.25, 0.75)),  # only the first stays
        1.0: (4 / 4, 1.0 + 1.0 * 10.0, (0.0, 1.0)),
    }
    for t, (accuracy, jpq, shares) in expected.items():
        p = by_threshold[t]
        assert (p.metric, p.joules_per_query, *p.answered_share) == pytest.approx((accuracy, jpq, *shares)), t
    (row,) = curve.at([0.75])
    assert row.ci is not None and row.ci[0] <= row.metric <= row.ci[1]
    assert curve.measured[0].rung == "both"


def test_no_curve_without_a_stage_record_or_the_stage_outputs_and_the_reason_says_which():
    cheap, _, cascade = made_up_cascade()
    (curve,) = cascade_curves([cheap, cascade])
    assert not curve.points and "stage 2 has no evaluation of its own" in curve.missing
    (curve,) = cascade_curves(made_up_cascade(outputs=False))
    assert not curve.points and "recorded before rightsize kept them" in curve.missing
    _, _, cascade = made_up_cascade()
    cascade.facts["stage_outputs"][1]["predicted"] = [0, 1]  # not one per example: not used
    (curve,) = cascade_curves([*made_up_cascade()[:2], cascade])
    assert not curve.points


@pytest.fixture
def stub_task(tmp_path) -> Path:
    """Texts the stubs read: stage 1 right when sure (confidence >= 0.8), stage 2 always right."""
    rows = []
    for i in range(52):
        label = "ab"[i % 2]
        other = "ba"[i % 2]
        first = (label, 0.9) if i % 4 < 2 else (other, 0.55 + 0.01 * (i % 7))
        rows.append({"text": f"{first[0]} {first[1]:.2f} {label} 0.95 q{i}", "label": label})  # q{i}: unread
    write_jsonl(tmp_path / "data" / "train.jsonl", rows[:28])
    write_jsonl(tmp_path / "data" / "validation.jsonl", rows[28:40])
    write_jsonl(tmp_path / "data" / "test.jsonl", rows[40:])
    task = tmp_path / "stubs.yaml"
    task.write_text("name: stubs\ndata: {train: data/train.jsonl, validation: data/validation.jsonl, "
                    "test: data/test.jsonl}\nmetric: accuracy\ntarget: {within: 0.05}\n")
    return task


def evaluate_ladder(task: Path, ladder: Path, out: Path, counter, **options) -> list[Record]:
    data = load_data(load_task(task))
    run = RunLog(out)
    records = []
    for spec in load_ladder(ladder).rungs:
        record = evaluate_rung(data, spec, Meter([counter]), RunContext(cache=None), **options)
        assert record.status == "ok", record.error
        run.append(record)
        records.append(record)
    return records


def test_recorded_stage_outputs_give_back_what_the_cascade_measured_even_in_a_staged_inference(
        tmp_path, stub_task, stubs):  # noqa: F811
    ladder = write_ladder(tmp_path, "{name: both, kind: cascade, stages: [cheap, dear], threshold: 0.8, "
                                    "calibration_fraction: 0.05}")
    # The search's staged inference predicts the split in parts: the shares count every part.
    records = evaluate_ladder(stub_task, ladder, tmp_path / "run", stubs, steps=(0.25, 0.5, 1.0),
                              on_step=lambda step: None)
    cascade = records[-1]
    (curve,) = cascade_curves(records)
    derived = curve.at([0.8], interval=False)[0]
    assert derived.metric == pytest.approx(cascade.metrics["accuracy"])
    assert derived.answered_share == pytest.approx(tuple(cascade.facts["answered_share"]))
    shares = cascade.facts["answered_share"]
    assert 0 < shares[0] < 1 and sum(shares) == pytest.approx(1.0)
    # Priced by the stubs' own records (1 J and 10 J per text): what the cascade's routing measured.
    assert derived.joules_per_query == pytest.approx(cascade.joules_per_query)


def test_the_report_shows_each_cascades_curve_beside_the_single_rungs_and_old_records_still_report(
        tmp_path, stub_task, stubs):  # noqa: F811
    ladder = write_ladder(tmp_path, "{name: both, kind: cascade, stages: [cheap, dear], threshold: 0.8, "
                                    "calibration_fraction: 0.05}")
    run = tmp_path / "run"
    evaluate_ladder(stub_task, ladder, run, stubs)
    files = build_report(run, tmp_path / "report", formats=["png"])
    md = files.markdown.read_text()
    assert "## Cascades over thresholds" in md and "![" in md and "(cascades.png)" in md
    assert "derived from measured per-stage figures, not measured" in md
    assert "| config (measured) |" in md and "`both`" in md
    assert (tmp_path / "report" / "cascades.png").stat().st_size > 0
    html = files.html.read_text()
    assert "Cascades over thresholds" in html and html.count("data:image/png;base64") == 2
    data = json.loads(files.cascades.read_text())
    (cascade,) = data["cascades"]
    assert cascade["curve"]["derived"] is True and len(cascade["curve"]["points"]) == len(GRID)
    assert [s["rung"] for s in cascade["stages"]] == ["cheap", "dear"]
    assert cascade["measured"][0]["thresholds"] == [0.8]
    point = {p["threshold"]: p for p in cascade["curve"]["points"]}[1.0]
    assert point["joules_per_query"] == pytest.approx(1.0 + 10.0)  # every query pays both stages

    # A record written before the cascade kept its stage outputs: the report says so and draws no curve.
    lines = [json.loads(line) for line in (run / "runs.jsonl").read_text().splitlines()]
    for line in lines:
        (line.get("facts") or {}).pop("stage_outputs", None)
    (run / "runs.jsonl").write_text("".join(json.dumps(line) + "\n" for line in lines))
    old = build_report(run, tmp_path / "old", formats=["png"])
    md = old.markdown.read_text()
    assert "No curve: its records keep no per-stage answers" in md and "| config (measured) |" in md
    assert not (tmp_path / "old" / "cascades.png").exists()
    assert "## Configs" in md
