"""The search on trained rungs: a fine-tune pruned between epochs, the training-cost bound, and a
config ruled out under the lifetime objective without training."""

from __future__ import annotations

from pathlib import Path

import optuna
import pytest

from conftest import make_examples, write_jsonl
from rightsize.results import RunLog
from rightsize.search import SearchRequest, run_search
from rightsize.search.trial import epoch_step

optuna.logging.set_verbosity(optuna.logging.ERROR)
FAST = "epochs: 3, batch_size: 16, learning_rate: 0.003, threads: 1"


@pytest.fixture
def task(tmp_path) -> Path:
    """3 classes, 240 train / 120 validation (carved): TF-IDF separates them perfectly."""
    write_jsonl(tmp_path / "data" / "train.jsonl", make_examples(120, seed=1))
    write_jsonl(tmp_path / "data" / "test.jsonl", make_examples(10, seed=2))
    path = tmp_path / "task.yaml"
    path.write_text("name: words\ndata: {train: data/train.jsonl, test: data/test.jsonl}\n"
                    "metric: accuracy\ntarget: {within: 0.05}\nvalidation_fraction: 0.334\n")
    return path


def request(task, ladder, out, **kw) -> SearchRequest:
    return SearchRequest(task=task, ladder=ladder, out_dir=out, meter="estimate", no_cache=True, **kw)


def study_of(out: Path) -> optuna.Study:
    return optuna.load_study(study_name=None, storage=f"sqlite:///{out / 'study.db'}")


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
    assert tfidf["metrics"]["accuracy"] == 1.0
    # An encoder that reads no word is at chance after an epoch: far below the bar (1.0 - 0.05).
    assert ft["status"] == "pruned" and ft["pruned"]["epoch"] == 1
    assert "after epoch 1 of 3" in ft["pruned"]["reason"] and ft["n_examples"] == 60
    # The epochs after the first were never run: one pass over the train split, and no inference.
    assert ft["training"]["epochs"] == 1 and ft["training"]["examples_seen"] == ft["n_train"]
    assert ft["training"]["stopped"].startswith("pruned after epoch 1")
    assert ft["joules"]["fit"] > 0 and ft["joules"]["infer"] == 0 and ft["joules_per_query"] is None
    trial = study_of(out).trials[1]
    assert trial.state.name == "PRUNED" and list(trial.intermediate_values) == [epoch_step(60, 1, 3)]
    assert trial.constraints["adequacy"] > 0
    assert not (out / "artifacts").exists() or not any((out / "artifacts").rglob("finetune.json"))
