"""The search on trained rungs: a fine-tune pruned between epochs, the training-cost bound, and a
config ruled out under the lifetime objective without training."""

from __future__ import annotations

import optuna
import pytest

from conftest import make_examples, write_jsonl
from rightsize.adequacy import Target
from rightsize.recommend import Objective
from rightsize.records import Record
from rightsize.results import RunLog
from rightsize.rungs import RungSpec
from rightsize.search import run_search
from rightsize.search.standing import Standing
from rightsize.search.trial import epoch_step
from test_search import request, study_of, task  # noqa: F401 (task: the fixture, 240 train / 120 validation)

optuna.logging.set_verbosity(optuna.logging.ERROR)
FAST = "epochs: 3, batch_size: 16, learning_rate: 0.003, threads: 1"


def test_epoch_steps_come_just_before_the_first_inference_stage():
    assert [epoch_step(60, e, 3) for e in (1, 2, 3)] == [57, 58, 59]


def test_a_hopeless_finetune_is_pruned_after_its_first_epoch(task, tmp_path, blind_encoder):
    ladder = tmp_path / "l.yaml"
    ladder.write_text("rungs:\n  - {name: tfidf, kind: tfidf, max_features: 5000}\n"
                      f"  - {{name: blind-ft, kind: finetune, model: '{blind_encoder}', {FAST}}}\n"
                      "search: {knobs: []}\n")
    out = tmp_path / "run"
    outcomes = []
    # Steps 0.5, 1.0: the epoch checks score the first half of the validation split (60 examples).
    run_search(request(task, ladder, out, trials=2, steps=(0.5, 1.0)), on_trial=outcomes.append)
    assert [o.outcome for o in outcomes] == ["complete", "pruned"]
    tfidf, ft = RunLog(out, create=False).records()
    assert tfidf.metrics["accuracy"] == 1.0
    # An encoder that reads no word is at chance after an epoch: far below the bar (1.0 - 0.05).
    assert ft.status == "pruned" and ft.pruned["epoch"] == 1
    assert "after epoch 1 of 3" in ft.pruned["reason"] and ft.n_examples == 60
    # The epochs after the first were never run: one pass over the train split, and no inference.
    assert ft.training["epochs"] == 1 and ft.training["examples_seen"] == ft.n_train
    assert ft.training["stopped"].startswith("pruned after epoch 1")
    assert ft.joules["fit"] > 0 and ft.joules["infer"] == 0 and ft.joules_per_query is None
    trial = study_of(out).trials[1]
    assert trial.state.name == "PRUNED" and list(trial.intermediate_values) == [epoch_step(60, 1, 3)]
    assert trial.constraints["adequacy"] > 0
    assert not (out / "artifacts").exists() or not any((out / "artifacts").rglob("finetune.json"))


def test_the_training_cost_bound_by_hand(tiny_encoder):
    from rightsize.cost_model import SAFETY, UNSEEN_SETTINGS, CostModel, compute_weights_of

    run = {"batch_size": 16, "threads": 1}
    probe = RungSpec("probe", "probe", str(tiny_encoder), dict(run))
    full = RungSpec("ft", "finetune", str(tiny_encoder), {**run, "epochs": 2})
    weights = compute_weights_of(full)
    assert weights == compute_weights_of(probe) > 0
    cost = CostModel()
    assert cost.fit_lower_bound(full, 100) is None  # nothing measured
    assert cost.fit_lower_bound(probe, 100) == 0.0  # a probe does not train in epochs
    cost.observe(probe, Record(joules_per_query=0.01))
    # No fit measured yet: 3 forward passes per train example at the inference rate (2 for LoRA).
    assert cost.fit_lower_bound(full, 100) == pytest.approx(SAFETY * (0.01 / weights) * 3 * weights * 2 * 100)
    lora = RungSpec("ft", "finetune", str(tiny_encoder), {**run, "epochs": 2, "method": "lora"})
    assert cost.fit_lower_bound(lora, 100) == pytest.approx(SAFETY * 0.01 * 2 * 2 * 100)
    # A full fine-tune measured (fit 12 J over 300 examples): its rate is used for full fine-tunes.
    cost.observe(RungSpec("ft", "finetune", str(tiny_encoder), {**run, "epochs": 3}),
                 Record(joules_per_query=0.01, joules={"fit": 12.0}, training={"examples_seen": 300}))
    assert cost.fit_lower_bound(full, 100) == pytest.approx(SAFETY * (12.0 / (300 * weights)) * weights * 2 * 100)
    assert cost.fit_lower_bound(lora, 100) == pytest.approx(SAFETY * 0.01 * 2 * 2 * 100)  # other method
    # Settings never measured: UNSEEN_SETTINGS times the least rate of any, as the J/query bound.
    other = RungSpec("ft", "finetune", str(tiny_encoder), {"batch_size": 8, "threads": 1, "epochs": 1})
    assert cost.fit_lower_bound(other, 100) == pytest.approx(SAFETY * UNSEEN_SETTINGS * 0.01 * 3 * 100)


def test_under_lifetime_a_finetune_that_cannot_win_is_skipped_without_training(tmp_path, tiny_encoder):
    write_jsonl(tmp_path / "data" / "train.jsonl", make_examples(120, seed=1))
    write_jsonl(tmp_path / "data" / "test.jsonl", make_examples(10, seed=2))
    task = tmp_path / "task.yaml"
    task.write_text("name: words\ndata: {train: data/train.jsonl, test: data/test.jsonl}\n"
                    "metric: accuracy\ntarget: {min: 0.8}\nvalidation_fraction: 0.334\n")
    ladder = tmp_path / "l.yaml"
    ladder.write_text("rungs:\n  - {name: tfidf, kind: tfidf, max_features: 5000}\n"
                      f"  - {{name: knn, kind: knn, model: '{tiny_encoder}', k: 5, batch_size: 16, threads: 1}}\n"
                      f"  - {{name: ft, kind: finetune, model: '{tiny_encoder}', {FAST}}}\n"
                      "search: {knobs: []}\n")
    out = tmp_path / "run"
    outcomes = []
    # No queries: the lifetime is the fit alone, so only the training bound can rule a config out.
    # The fine-tune's (3 epochs x 240 examples x 3 forward passes at the kNN's measured rate) is far
    # above what the kNN cost to fit (one forward pass of the 240 texts), let alone TF-IDF.
    result = run_search(request(task, ladder, out, trials=3, objective="lifetime", queries_per_day=0),
                        on_trial=outcomes.append)
    assert [(o.rung, o.outcome) for o in outcomes] == [("tfidf", "complete"), ("knn", "complete")]
    assert result.stopped.startswith("every config of the space evaluated or ruled out by cost")
    records = RunLog(out, create=False).records()
    assert {r.rung for r in records} == {"tfidf", "knn"}  # the fine-tune never trained
    standing = Standing(records, Target(min=0.8), "accuracy", Objective("lifetime", 0, 365).joules)
    ft = RungSpec("ft", "finetune", str(tiny_encoder), {"epochs": 3, "batch_size": 16, "threads": 1})
    assert standing.cost.fit_lower_bound(ft, 240) > standing.incumbent.joules["fit"]
    assert result.recommendation.objective["name"] == "lifetime"
    fits = {r.rung: r.joules["fit"] for r in RunLog(out, create=False).records()}
    values = {t.user_attrs["rung"]: t.value for t in study_of(out).trials if t.user_attrs.get("outcome") == "complete"}
    assert values == pytest.approx(fits)  # the study's objective value: lifetime joules (here the fit alone)
