"""The ``cascade`` kind: routing by calibrated confidence, energy measured as the routing happens,
temperature scaling, and bad stages or thresholds as one line with exit 2.

The stub stages read their answer and confidence from the text itself ("a 0.95 b 0.60": stage 1
says a at 0.95, stage 2 says b at 0.60) and charge the scripted counter a set number of joules per
text they see, so every routing decision and every joule below is worked out by hand.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from conftest import make_examples, write_jsonl
from rightsize.calibration import calibration_slice, fit_temperature, scale
from rightsize.energy.meter import Meter
from rightsize.evaluate import evaluate_rung
from rightsize.ladder import load_ladder
from rightsize.rungs import RUNG_KINDS, RunContext, build_rung
from rightsize.rungs.base import Knob, Rung
from rightsize.tasks import load_data, load_task
from test_reliability import assert_one_line_error, invoke


class StubStage(Rung):
    """Answers with the label and confidence written at position ``read`` of each text."""

    kind = "stub"
    knobs = {"read": Knob(int, 0), "joules": Knob(float, 1.0)}
    counter = None  # the test's ScriptedCounter

    def load(self) -> None:
        pass

    def fit(self, texts, labels) -> None:
        pass

    def predict(self, texts):
        classes, probs = self.predict_proba(texts)
        return [classes[i] for i in probs.argmax(axis=1)]

    def predict_proba(self, texts):
        StubStage.counter.joules += self.k["joules"] * len(texts)
        probs = []
        for text in texts:
            words = text.split()
            label, confidence = words[2 * self.k["read"]], float(words[2 * self.k["read"] + 1])
            probs.append([confidence, 1 - confidence] if label == "a" else [1 - confidence, confidence])
        return ["a", "b"], np.array(probs).reshape(len(texts), 2)

    def n_params(self) -> int:
        return 0


@pytest.fixture
def stubs(monkeypatch, counter):
    monkeypatch.setitem(RUNG_KINDS, "stub", StubStage)
    monkeypatch.setattr(StubStage, "counter", counter)
    return counter


def write_ladder(tmp_path: Path, cascade: str, stages: str = "") -> Path:
    path = tmp_path / "ladder.yaml"
    path.write_text("rungs:\n"
                    "  - {name: cheap, kind: stub, read: 0, joules: 1.0}\n"
                    "  - {name: dear, kind: stub, read: 1, joules: 10.0}\n"
                    f"{stages}"
                    f"  - {cascade}\n")
    return path


def test_a_query_goes_up_only_while_the_stage_is_unsure_and_pays_only_the_stages_it_reached(tmp_path, stubs):
    spec = load_ladder(write_ladder(tmp_path, "{name: both, kind: cascade, stages: [cheap, dear], threshold: 0.8}"))[
        "both"]
    rung = build_rung(spec, RunContext(cache=None))
    rung.load()  # unfitted: temperatures 1.0, the confidences are the stubs' own
    texts = ["a 0.95 b 0.99",  # stage 1 is sure (0.95 >= 0.8): a
             "b 0.80 a 0.99",  # exactly at the threshold counts as sure: b
             "a 0.60 b 0.51",  # deferred: stage 2 answers b, however unsure (it is the last)
             "b 0.79 a 0.90"]  # deferred: a
    meter = Meter([stubs])
    meter.begin("infer")
    labels = rung.predict(texts)
    measured = meter.end("infer")
    assert labels == ["a", "b", "b", "a"]
    assert measured.joules == pytest.approx(4 * 1.0 + 2 * 10.0)  # every query pays stage 1, two pay stage 2
    assert rung.facts()["answered_share"] == [0.5, 0.5]
    assert rung.facts()["stages"] == ["stub", "stub"]


def test_thresholds_per_stage_route_a_three_stage_cascade(tmp_path, stubs):
    spec = load_ladder(write_ladder(
        tmp_path, "{name: three, kind: cascade, stages: [cheap, mid, dear], thresholds: [0.9, 0.7]}",
        "  - {name: mid, kind: stub, read: 1, joules: 3.0}\n"))["three"]
    rung = build_rung(spec, RunContext(cache=None))
    rung.load()
    texts = ["a 0.95 b 0.99", "a 0.85 b 0.75", "a 0.85 b 0.65"]
    meter = Meter([stubs])
    meter.begin("infer")
    labels = rung.predict(texts)
    assert meter.end("infer").joules == pytest.approx(3 * 1.0 + 2 * 3.0 + 1 * 10.0)
    # The third text reaches "dear", which reads the same position as "mid": b.
    assert labels == ["a", "b", "b"] and rung.facts()["answered_share"] == pytest.approx([1 / 3, 1 / 3, 1 / 3])


def test_a_cascade_keyed_by_its_stages_configs(tmp_path, stubs):
    cascade = "{name: both, kind: cascade, stages: [cheap, dear]}"
    first = load_ladder(write_ladder(tmp_path, cascade))["both"].config()
    path = write_ladder(tmp_path, cascade)
    path.write_text(path.read_text().replace("joules: 10.0", "joules: 20.0"))
    second = load_ladder(path)["both"].config()
    assert first["stages"][1]["joules"] == 10.0 and second["stages"][1]["joules"] == 20.0
    assert first != second


def test_temperature_scaling_softens_an_overconfident_classifier_and_keeps_its_answers():
    # Always 0.99 sure, right 3 times in 4: the NLL is lowest at a temperature above 1.
    probs = np.array([[0.99, 0.01]] * 4)
    labels = ["a", "a", "a", "b"]
    t = fit_temperature(probs, ["a", "b"], labels)
    calibrated = scale(probs, t)
    assert t > 1.0
    assert calibrated[0, 0] == pytest.approx(0.75, abs=0.02)  # the accuracy it actually has
    assert (calibrated.argmax(axis=1) == probs.argmax(axis=1)).all()
    # Right every time at 0.6: sharpened (T < 1); nothing to score leaves T at 1.
    assert fit_temperature(np.array([[0.6, 0.4]] * 4), ["a", "b"], ["a"] * 4) < 1.0
    assert fit_temperature(probs, ["a", "b"], ["c"] * 4) == 1.0


def test_the_calibration_slice_is_seeded_per_class_and_leaves_every_class_in_the_fit():
    labels = ["x"] * 10 + ["y"] * 5 + ["z"]
    mask = calibration_slice(labels, 0.2, seed=0)
    assert mask[:10].sum() == 2 and mask[10:15].sum() == 1 and not mask[15]
    assert (mask == calibration_slice(labels, 0.2, seed=0)).all()
    assert not (mask == calibration_slice(labels, 0.2, seed=1)).all()


@pytest.fixture
def noisy_task(tmp_path) -> Path:
    """The tiny task with every fifth train label moved to the next class: TF-IDF is then unsure of
    some queries (on the clean task it is sure of all, and calibration makes it surer)."""
    rows = make_examples(20, seed=1)
    names = sorted({r["label"] for r in rows})
    for r in rows[::5]:
        r["label"] = names[(names.index(r["label"]) + 1) % len(names)]
    write_jsonl(tmp_path / "data" / "train.jsonl", rows)
    write_jsonl(tmp_path / "data" / "test.jsonl", make_examples(10, seed=2))
    task = tmp_path / "noisy.yaml"
    task.write_text("name: noisy\ndata: {train: data/train.jsonl, test: data/test.jsonl}\nmetric: accuracy\n"
                    "target: {within: 0.05}\nvalidation_fraction: 0.25\n")
    return task


def test_a_real_cascade_fits_on_train_and_pays_the_probe_only_for_deferred_queries(noisy_task, tiny_encoder,
                                                                                    tmp_path, counter):
    """tfidf -> tiny probe with the counter charging 1 J per text the encoder runs: the probe (the
    last stage, whose confidence is never read) encodes just its fit texts, train minus the
    calibration slice; the inference encodes exactly the deferred queries."""
    data = load_data(load_task(noisy_task))
    path = tmp_path / "ladder.yaml"
    path.write_text("rungs:\n  - {name: tfidf, kind: tfidf}\n"
                    f"  - {{name: probe, kind: probe, model: '{tiny_encoder}', batch_size: 4}}\n"
                    "  - {name: up, kind: cascade, stages: [tfidf, probe], threshold: 0.7}\n")
    spec = load_ladder(path)["up"]
    record = evaluate_rung(data, spec, Meter([counter]), RunContext(cache=None))
    assert record.status == "ok", record.error
    held = calibration_slice(data.train.labels, 0.2, 0)
    assert record.joules["fit"] == pytest.approx(len(held) - held.sum())
    shares = record.facts["answered_share"]
    n = len(data.validation.texts)
    assert sum(shares) == pytest.approx(1.0) and 0 < shares[1] < 1  # both stages answered some
    assert record.joules["infer"] == pytest.approx(round(shares[1] * n))


BAD = {
    "not in the ladder": ("{name: c, kind: cascade, stages: [cheap, nowhere]}", "stage 'nowhere' is not a rung"),
    "itself": ("{name: c, kind: cascade, stages: [cheap, c]}", "stage 'c' is this cascade itself"),
    "another cascade": ("{name: c, kind: cascade, stages: [cheap, other]}", "stage 'other' is a cascade itself"),
    "one stage": ("{name: c, kind: cascade, stages: [cheap]}", "needs 'stages': a list of 2 or more"),
    "threshold above 1": ("{name: c, kind: cascade, stages: [cheap, dear], threshold: 1.5}",
                          "knob 'threshold' = 1.5 is above its maximum"),
    "a listed threshold below 0": ("{name: c, kind: cascade, stages: [cheap, dear], thresholds: [-0.1]}",
                                   "threshold -0.1 is not a number in [0, 1]"),
    "thresholds of the wrong length": ("{name: c, kind: cascade, stages: [cheap, dear], thresholds: [0.5, 0.5]}",
                                       "'thresholds' must list 1 number(s)"),
    "a stage without probabilities": ("{name: c, kind: cascade, stages: [cheap, lm]}",
                                      "stage 'lm' (kind 'lm') gives no class probabilities"),
}


@pytest.mark.parametrize("case", BAD)
def test_a_bad_cascade_is_one_line_and_exit_2(tiny_task, tmp_path, stubs, case):
    cascade, message = BAD[case]
    path = write_ladder(tmp_path, cascade, "  - {name: other, kind: cascade, stages: [cheap, dear]}\n"
                                           "  - {name: lm, kind: lm, model: some/model}\n")
    out = tmp_path / "run"
    result = invoke("evaluate", tiny_task, "--ladder", path, "--out", out, "--meter", "estimate", "--quiet")
    assert_one_line_error(result, str(path), message)
    assert not out.exists()


def test_the_search_tunes_one_threshold_unless_the_ladder_lists_them(tmp_path):
    from rightsize.space import GRIDS, build_space

    path = tmp_path / "ladder.yaml"
    path.write_text("rungs:\n  - {name: a, kind: tfidf}\n  - {name: b, kind: tfidf, C: 1.0}\n"
                    "  - {name: one, kind: cascade, stages: [a, b]}\n"
                    "  - {name: listed, kind: cascade, stages: [a, b], thresholds: [0.6]}\n"
                    "search: {knobs: [threshold]}\n")
    space = build_space(load_ladder(path))
    searched = {r["name"]: r["searched"] for r in space.describe()["rungs"]}
    assert searched["one"] == {"threshold": list(GRIDS["threshold"])}
    assert searched["listed"] == {}  # thresholds given: the single threshold does nothing there
