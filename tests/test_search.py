"""`rightsize search`: the space from a ladder, small-first order, pruning, the budget stop, workers
sharing a study (SQLite, PostgreSQL) without evaluating a config twice, and kill-and-resume."""

from __future__ import annotations

import collections
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import uuid
from pathlib import Path

import optuna
import pytest
from click.testing import CliRunner

from conftest import make_examples, write_jsonl
from rightsize import energy_repeats
from rightsize.cli import cli
from rightsize.energy import make_meter
from rightsize.errors import RightsizeError
from rightsize.evaluate import StopEvaluation, evaluate_rung
from rightsize.ladder import load_ladder, parse_ladder
from rightsize.records import Record
from rightsize.results import RunLog
from rightsize.rungs import RunContext
from rightsize import search as search_module
from rightsize.search import AdequacyPruner, SearchRequest, recover_dead_trials, run_search
from rightsize.search import _optuna_compat as compat
from rightsize.space import build_space
from rightsize.tasks import load_data, load_task

optuna.logging.set_verbosity(optuna.logging.ERROR)
RIGHTSIZE = [sys.executable, "-m", "rightsize.cli"]


@pytest.fixture
def task(tmp_path) -> Path:
    """3 classes, 240 train / 120 validation (carved) / 30 test: TF-IDF separates them perfectly."""
    write_jsonl(tmp_path / "data" / "train.jsonl", make_examples(120, seed=1))
    write_jsonl(tmp_path / "data" / "test.jsonl", make_examples(10, seed=2))
    path = tmp_path / "task.yaml"
    path.write_text("name: words\ndata: {train: data/train.jsonl, test: data/test.jsonl}\n"
                    "metric: accuracy\ntarget: {within: 0.05}\nvalidation_fraction: 0.334\n")
    return path


@pytest.fixture
def tfidf_ladder(tmp_path) -> Path:
    """6 TF-IDF configs (C x n-grams): no torch, so worker processes start fast."""
    path = tmp_path / "tfidf.yaml"
    path.write_text("rungs:\n  - {name: tfidf, kind: tfidf, max_features: 5000}\n"
                    "search:\n  knobs: []\n  space: {tfidf: {C: [1.0, 10.0, 100.0], ngram_max: [1, 2]}}\n")
    return path


def request(task, ladder, out, **kw) -> SearchRequest:
    return SearchRequest(task=task, ladder=ladder, out_dir=out, meter="estimate", no_cache=True, **kw)


def study_of(out: Path) -> optuna.Study:
    return optuna.load_study(study_name=None, storage=f"sqlite:///{out / 'study.db'}")


# ------------------------------------------------------------------------------------ the space


def test_space_follows_the_ladder_search_block(tmp_path, tiny_encoder):
    ladder = parse_ladder({
        "rungs": [{"name": "tfidf", "kind": "tfidf"},
                  {"name": "knn", "kind": "knn", "model": str(tiny_encoder), "k": 5},
                  {"name": "probe", "kind": "probe", "model": str(tiny_encoder)}],
        "search": {"knobs": ["k", "layers", "precision"], "fix": {"precision": "bf16"},
                   "space": {"knn": {"k": [3, 7]}}, "exclude": ["tfidf"]},
    }, "l.yaml")
    space = build_space(ladder, "cpu")
    assert [r.name for r in space.rungs] == ["knn", "probe"]  # tfidf excluded
    knn, probe = space["knn"], space["probe"]
    # k: the ladder's list plus the rung's own value (5); layers: 1 or all 2 (None); precision fixed.
    assert dict((d.knob, d.values) for d in knn.dims) == {"layers": (1, None), "k": (5, 3, 7)}
    assert dict((d.knob, d.values) for d in probe.dims) == {"layers": (1, None)}
    assert knn.base.knobs["precision"] == "bf16"
    assert space.size == 6 + 2
    specs = [spec for _, _, spec in space.configs()]
    assert len({json.dumps(s.config(), sort_keys=True) for s in specs}) == space.size
    # The rung's own values keep the config as the ladder wrote it (same key as `rightsize evaluate`).
    own = knn.spec_for({"layers": None, "k": 5})
    assert own.config() == knn.base.config()
    assert space.small_first() == [{"rung": "knn", "knn.layers": None, "knn.k": 5},
                                   {"rung": "probe", "probe.layers": None}]


def test_default_grids_respect_the_device_and_the_knob_schema(tiny_encoder):
    ladder = parse_ladder({"rungs": [{"name": "knn", "kind": "knn", "model": str(tiny_encoder)}]}, "l.yaml")
    cpu = {d.knob: d.values for d in build_space(ladder, "cpu", cores=4)["knn"].dims}
    gpu = {d.knob: d.values for d in build_space(ladder, "cuda")["knn"].dims}
    assert cpu["precision"] == ("fp32", "bf16", "int8") and gpu["precision"] == ("fp32", "bf16", "fp16")
    assert cpu["k"] == (1, 3, 5, 10, 20, 50)
    assert cpu["threads"] == (1, 2, None) and "threads" not in gpu  # None: every core
    assert cpu["batch_size"] == (16, 32, 64, 128)
    assert "max_length" not in cpu  # the tiny model's maximum (32) is the smallest grid value
    assert cpu["index"] == ("flat", "hnsw", "ivf") and cpu["attn_implementation"] == (None, "eager")


def test_flash_attention_is_offered_on_gpu_only_where_flash_attn_and_the_architecture_support_it(
        tiny_encoder, tmp_path, monkeypatch):
    from rightsize import space as space_module

    def attn(model: str, device: str) -> tuple:
        ladder = parse_ladder({"rungs": [{"name": "knn", "kind": "knn", "model": model}]}, "l.yaml")
        return {d.knob: d.values for d in build_space(ladder, device)["knn"].dims}["attn_implementation"]

    monkeypatch.setattr(space_module, "_flash_attn_installed", lambda: True)
    assert attn(str(tiny_encoder), "cuda") == (None, "eager", "flash_attention_2")  # BERT has the path
    assert attn(str(tiny_encoder), "cpu") == (None, "eager")
    unknown = tmp_path / "unknown"  # an architecture transformers cannot name: not offered
    shutil.copytree(tiny_encoder, unknown)
    for path in unknown.rglob("config.json"):  # the transformer module's config
        path.write_text(json.dumps({**json.loads(path.read_text()), "model_type": "no-such-architecture"}))
    assert attn(str(unknown), "cuda") == (None, "eager")
    monkeypatch.setattr(space_module, "_flash_attn_installed", lambda: False)
    assert attn(str(tiny_encoder), "cuda") == (None, "eager")


def test_neighbours_are_one_knob_away_in_value_order(tiny_encoder):
    ladder = parse_ladder({"rungs": [{"name": "knn", "kind": "knn", "model": str(tiny_encoder), "k": 5}],
                           "search": {"knobs": [], "space": {"knn": {"k": [20, 1, 10], "precision": ["fp32", "int8", "bf16"],
                                                                     "layers": [1, 2]}}}}, "l.yaml")
    knn = build_space(ladder, "cpu")["knn"]
    own = {"k": 5, "precision": "fp32", "layers": None}
    assert sorted(map(str, knn.neighbours(own))) == sorted(map(str, [
        {"k": 1, "precision": "fp32", "layers": None}, {"k": 10, "precision": "fp32", "layers": None},  # 5's neighbours in 1 5 10 20
        {"k": 5, "precision": "int8", "layers": None}, {"k": 5, "precision": "bf16", "layers": None},  # categorical: all others
        {"k": 5, "precision": "fp32", "layers": 1},  # None (all 2 layers) sorts last
    ]))
    assert knn.params({"k": 1}) == {"rung": "knn", "knn.k": 1}


@pytest.mark.parametrize("search, message", [
    ({"colour": 1}, "unknown key 'colour'"),
    ({"exclude": ["nope"]}, "search.exclude: no rung named 'nope'"),
    ({"exclude": ["t", "p"]}, "excludes every rung"),
    ({"knobs": ["depth"]}, "search.knobs: no knob named 'depth'"),
    ({"fix": {"precision": "fp8"}}, "'fp8' is not one of"),
    ({"fix": {"warp": 9}}, "no rung of this ladder has a knob 'warp'"),
    ({"space": {"nope": {"C": [1.0]}}}, "search.space: no rung named 'nope'"),
    ({"space": {"t": {"k": [1]}}}, "kind 'tfidf' has no knob 'k'"),
    ({"space": {"p": {"C": []}}}, "non-empty list"),
    ({"space": {"p": {"C": [1.0, 1]}}}, "lists a value twice"),
    ({"space": {"p": {"C": [-1.0]}}}, "below its minimum"),
    ({"space": {"p": {"precision": ["fp32"]}}, "fix": {"precision": "fp32"}}, "also fixed in search.fix"),
    ({"space": {"p": {"C": [1.0]}}, "exclude": ["p"]}, "also in search.exclude"),
])
def test_bad_search_blocks_name_the_problem(search, message):
    doc = {"rungs": [{"name": "t", "kind": "tfidf"}, {"name": "p", "kind": "probe", "model": "x/y"}], "search": search}
    with pytest.raises(RightsizeError, match=message):
        parse_ladder(doc, "ladder.yaml")


# ------------------------------------------------------------------------------------ staged evaluation


def test_staged_inference_fits_once_and_matches_a_plain_evaluation(task):
    data = load_data(load_task(task))
    spec = load_ladder(None).rungs[0]  # tfidf, deterministic
    plain = evaluate_rung(data, spec, make_meter("estimate"), RunContext())
    seen = []
    staged = evaluate_rung(data, spec, make_meter("estimate"), RunContext(), steps=(0.25, 0.5, 1.0),
                           on_step=lambda s: seen.append((s.n, s.final, len(s.references))))
    assert staged.status == "ok" and staged.key == plain.key
    assert staged.references == plain.references and staged.predictions == plain.predictions
    n = plain.n_examples
    assert seen == [(30, False, 30), (60, False, 60), (n, True, n)]

    def stop(step):
        if step.n >= 60:
            raise StopEvaluation("enough")

    pruned = evaluate_rung(data, spec, make_meter("estimate"), RunContext(), steps=(0.25, 0.5, 1.0), on_step=stop)
    assert pruned.status == "pruned" and pruned.n_examples == 60
    assert pruned.pruned == {"after": 60, "of": n, "reason": "enough"}
    assert len(pruned.predictions) == 60 and "infer" in pruned.joules


# ------------------------------------------------------------------------------------ pruner, claims, recovery


def test_pruner_compares_the_ci_upper_bound_with_the_bar_after_enough_examples():
    study = optuna.create_study()
    done = study.ask()
    done.set_user_attr("score", 0.9)
    study.tell(done, 1.0)
    trial = study.ask()
    within = AdequacyPruner("within", 0.05, min_examples=30)
    assert within.threshold(study) == pytest.approx(0.85)
    trial.report(0.6, 20)
    assert not within.prune(study, study.trials[-1])  # too few examples to act on
    trial.report(0.6, 40)
    assert within.prune(study, study.trials[-1])
    trial.report(0.86, 80)
    assert not within.prune(study, study.trials[-1])
    assert AdequacyPruner("min", 0.95).prune(study, study.trials[-1])
    assert AdequacyPruner("within", 0.05).threshold(optuna.create_study()) is None  # no best yet


def _record(key: str, predictions: list[int], references: list[int]) -> Record:
    accuracy = sum(p == r for p, r in zip(predictions, references)) / len(references)
    return Record(key=key, rung=key, task="t", split="validation", limit=None, seed=0, status="ok",
                  label_names=["a", "b"], references=references, predictions=predictions,
                  metrics={"accuracy": accuracy}, config={"kind": "tfidf"}, joules={"infer": 1.0},
                  joules_per_query=0.01)


def test_the_sampler_sees_adequacy_as_it_stands_now_not_when_the_trial_ended():
    from rightsize.search import RECORD_ATTR, FreshAdequacyTPESampler

    references = [i % 2 for i in range(200)]
    sampler = FreshAdequacyTPESampler({"within": 0.02}, "accuracy", seed=0)
    study = optuna.create_study(sampler=sampler)
    # The first config was the best when it ended (feasible); a much better one comes later.
    for key, right in (("weak", 140), ("strong", 200)):
        trial = study.ask()
        trial.set_user_attr("config_key", key)
        predictions = [r if i < right else 1 - r for i, r in enumerate(references)]
        compat.set_system_attr(trial, RECORD_ATTR, _record(key, predictions, references).to_dict())
        trial.set_constraint("adequacy", -0.02)
        study.tell(trial, 0.01)
    stored = {t.user_attrs["config_key"]: t.constraints["adequacy"] for t in study.trials}
    seen = {t.user_attrs["config_key"]: t.constraints["adequacy"]
            for t in compat.sampler_trials(sampler.study_view(study))}
    assert stored == {"weak": -0.02, "strong": -0.02}
    assert seen["weak"] > 0 and seen["strong"] <= 0  # 0.70 is not within 0.02 of 1.0
    assert study.trials[0].constraints["adequacy"] == -0.02  # the stored trial is untouched
    study.optimize(lambda t: t.suggest_float("x", 0, 1), n_trials=1)  # TPE runs through the wrapper


def test_a_trial_steps_back_for_any_other_trial_of_the_same_config():
    from rightsize.search.trial import claimed

    study = optuna.create_study()
    running = study.ask()
    running.set_user_attr("config_key", "K")
    later = study.ask()
    later.set_user_attr("config_key", "K")
    # Both wrote their key: each sees the other, so neither can evaluate alone unnoticed.
    assert claimed(study, later.number, "K").number == running.number
    assert claimed(study, running.number, "K").number == later.number
    assert claimed(study, later.number, "other") is None
    study.tell(later, 2.0)
    assert claimed(study, running.number, "K").state.name == "COMPLETE"  # complete is preferred


def test_a_running_trial_of_a_dead_local_worker_is_failed_and_queued_again(tmp_path):
    storage = f"sqlite:///{tmp_path / 's.db'}"
    study = optuna.create_study(storage=storage)
    gone = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    dead_pid = int(gone.stdout)
    trial = study.ask({"x": optuna.distributions.CategoricalDistribution([1, 2])})
    trial.set_user_attr("worker", f"{socket.gethostname()}:{dead_pid}:1")
    trial.set_user_attr("config_key", "K")
    alive = study.ask({"x": optuna.distributions.CategoricalDistribution([1, 2])})
    from rightsize.search.workers import worker_id

    alive.set_user_attr("worker", worker_id())
    assert recover_dead_trials(study) == [trial.number]
    states = {t.number: t.state.name for t in study.trials}
    assert states[trial.number] == "FAIL" and states[alive.number] == "RUNNING"
    retry = study.trials[-1]
    assert retry.state.name == "WAITING" and retry.params == trial.params
    assert retry.user_attrs.get("config_key") == "K" and "worker" not in retry.user_attrs


# ------------------------------------------------------------------------------------ the search, in process


def test_small_rungs_are_tried_first_in_ladder_order(task, tmp_path):
    ladder = tmp_path / "three.yaml"
    ladder.write_text("rungs:\n  - {name: uni, kind: tfidf, ngram_max: 1, max_features: 2000}\n"
                      "  - {name: bi, kind: tfidf, ngram_max: 2, max_features: 2000}\n"
                      "  - {name: tri, kind: tfidf, ngram_max: 3, max_features: 2000}\n"
                      "search: {knobs: [C]}\n")
    out = tmp_path / "run"
    result = run_search(request(task, ladder, out, trials=4))
    study = study_of(out)
    space = build_space(load_ladder(ladder))
    assert [t.params for t in study.trials[:3]] == space.small_first()
    assert [r.rung for r in RunLog(out, create=False).records()][:3] == ["uni", "bi", "tri"]
    assert result.stopped.startswith("4 configs evaluated")


def test_a_hopeless_config_is_pruned_on_part_of_the_validation_split(task, tmp_path, blind_encoder):
    ladder = tmp_path / "l.yaml"
    ladder.write_text(f"rungs:\n  - {{name: tfidf, kind: tfidf, max_features: 5000}}\n"
                      f"  - {{name: random-knn, kind: knn, model: '{blind_encoder}', k: 1}}\n"
                      "search: {knobs: []}\n")  # two configs: the rungs as written
    out = tmp_path / "run"
    outcomes = []
    result = run_search(request(task, ladder, out, trials=2), on_trial=outcomes.append)
    assert [o.outcome for o in outcomes] == ["complete", "pruned"]
    tfidf, knn = RunLog(out, create=False).records()
    assert tfidf.status == "ok" and tfidf.metrics["accuracy"] == 1.0
    # An encoder that reads no word, with one neighbour, is at chance: its CI upper bound on the first
    # 25% (30 examples) is far below the best (1.0) minus 0.05, so it never sees the rest.
    assert knn.status == "pruned" and knn.n_examples == 30 < tfidf.n_examples
    assert "95% CI upper bound" in knn.pruned["reason"]
    trial = study_of(out).trials[1]
    assert trial.state.name == "PRUNED" and list(trial.intermediate_values) == [30]
    assert trial.constraints["adequacy"] > 0  # the sampler sees it as infeasible
    assert result.study_counts == {"complete": 1, "pruned": 1}
    assert result.energy["pruned_joules"] == pytest.approx(outcomes[1].joules) and outcomes[1].joules > 0
    assert result.recommendation.chosen["rung"] == "tfidf"


@pytest.fixture(scope="module")
def wide_encoder(tmp_path_factory) -> Path:
    """The tiny encoder's twin with 4 layers: about twice the compute weights."""
    from conftest import build_tiny_encoder

    return build_tiny_encoder(tmp_path_factory.mktemp("wide-encoder"), layers=4)


def _small_and_big(tmp_path: Path, small: Path, big: Path, search: str = "{knobs: []}", k: str = "") -> Path:
    """A kNN rung on the tiny encoder, then one on its twice-as-large twin."""
    ladder = tmp_path / "l.yaml"
    ladder.write_text(f"rungs:\n  - {{name: small-knn, kind: knn, model: '{small}'{k}}}\n"
                      f"  - {{name: big-knn, kind: knn, model: '{big}'}}\n"
                      f"search: {search}\n")
    return ladder


def _task_with(task: Path, target: str) -> Path:
    path = task.parent / "task-target.yaml"
    path.write_text(task.read_text().replace("target: {within: 0.05}", f"target: {target}"))
    return path


def point_values(monkeypatch) -> None:
    """One inference window per record: no J/query interval, so point values decide the cost skips
    (an interval from one-pass windows on a loaded machine can be wide enough to keep a config in play)."""
    monkeypatch.setattr(energy_repeats, "POLICY", energy_repeats.RepeatPolicy(window_s=0.0, repeats=1, growth=1))


def test_a_config_that_cannot_undercut_an_adequate_one_is_skipped_without_an_evaluation(
        task, tmp_path, tiny_encoder, wide_encoder, monkeypatch):
    point_values(monkeypatch)
    monkeypatch.setattr(search_module, "ENUMERATE_MAX", 0)  # a space too large to enumerate: ladder, then TPE
    ladder = _small_and_big(tmp_path, tiny_encoder, wide_encoder)
    out = tmp_path / "run"
    outcomes = []
    # A random encoder is near chance (1/3) on 3 classes; its CI lower bound clears 0.2.
    result = run_search(request(_task_with(task, "{min: 0.2}"), ladder, out, trials=2), on_trial=outcomes.append)
    assert [(o.rung, o.outcome) for o in outcomes][:2] == [("small-knn", "complete"), ("big-knn", "skipped")]
    assert outcomes[0].adequate and "costs at least" in outcomes[1].detail and outcomes[1].joules == 0.0
    assert [r.rung for r in RunLog(out, create=False).records()] == ["small-knn"]  # never encoded
    # TPE knows nothing of the bound: it proposes big-knn again, and the search stops when the
    # proposals evaluate nothing 20 times in a row
    assert {o.outcome for o in outcomes[2:]} <= {"skipped", "duplicate"}
    assert result.stopped.startswith("the sampler proposed only evaluated or ruled-out configs 20 times")
    assert result.recommendation.chosen["rung"] == "small-knn"
    trial = study_of(out).trials[1]
    assert trial.state.name == "PRUNED" and trial.user_attrs["outcome"] == "skipped"


def test_cheaper_neighbours_of_the_answer_run_before_a_larger_rung(task, tmp_path, tiny_encoder, wide_encoder,
                                                                   monkeypatch):
    point_values(monkeypatch)
    monkeypatch.setattr(search_module, "ENUMERATE_MAX", 0)  # the ladder's order, as in a large space
    ladder = _small_and_big(tmp_path, tiny_encoder, wide_encoder, "{knobs: [], space: {small-knn: {k: [3, 5]}}}",
                            k=", k: 5")
    outcomes = []
    run_search(request(_task_with(task, "{min: 0.2}"), ladder, tmp_path / "run", trials=5), on_trial=outcomes.append)
    # small-knn is adequate; its neighbour k=3 shares its encoder (bounded cheaper than big-knn), so
    # it runs before big-knn, which cannot undercut either and is skipped.
    assert [(o.rung, o.searched, o.outcome) for o in outcomes][:3] == [
        ("small-knn", {"k": 5}, "complete"), ("small-knn", {"k": 3}, "complete"), ("big-knn", {}, "skipped")]


def test_with_a_min_target_configs_run_cheapest_first_whatever_the_ladder_order_then_it_stops(
        task, tmp_path, tiny_encoder, wide_encoder, monkeypatch):
    ladder = tmp_path / "l.yaml"  # the large rung first: a min target does not follow the ladder's order
    ladder.write_text(f"rungs:\n  - {{name: big-knn, kind: knn, model: '{wide_encoder}'}}\n"
                      f"  - {{name: small-knn, kind: knn, model: '{tiny_encoder}', k: 5}}\n"
                      "search: {knobs: [], space: {small-knn: {k: [1, 3, 5]}, big-knn: {k: [3, 5]}}}\n")
    out = tmp_path / "run"
    outcomes = []
    point_values(monkeypatch)
    result = run_search(request(_task_with(task, "{min: 0.2}"), ladder, out, trials=10), on_trial=outcomes.append)
    # Every small-knn config runs (each could undercut the answer); big-knn, bounded above the
    # answer once small-knn has a measured rate, is never proposed, and the search knows to stop.
    assert [o.rung for o in outcomes] == ["small-knn"] * 3
    assert sorted(o.searched["k"] for o in outcomes) == [1, 3, 5] and all(o.outcome == "complete" for o in outcomes)
    assert len(study_of(out).trials) == 3
    assert result.stopped == "every config of the space evaluated or ruled out by cost (6)"


def test_with_a_within_target_the_ladders_rungs_are_evaluated_they_set_the_bar(
        task, tmp_path, tiny_encoder, wide_encoder):
    ladder = _small_and_big(tmp_path, tiny_encoder, wide_encoder)
    outcomes = []
    run_search(request(task, ladder, tmp_path / "run", trials=2), on_trial=outcomes.append)
    assert [o.rung for o in outcomes] == ["small-knn", "big-knn"]
    assert all(o.outcome in ("complete", "pruned") for o in outcomes)


def test_the_answers_neighbours_are_tried_right_after_the_ladder(task, tfidf_ladder, tmp_path):
    out = tmp_path / "run"
    run_search(request(task, tfidf_ladder, out, trials=4))
    study = study_of(out)
    tfidf = build_space(load_ladder(tfidf_ladder))["tfidf"]
    own = {"C": 10.0, "ngram_max": 2}  # the rung's defaults; TF-IDF is perfect here, so it is the answer
    assert study.trials[0].params == tfidf.params(own)
    # C's neighbours in 1 10 100, and n-grams 1: queued ahead of anything TPE would propose.
    neighbours = [{"C": 10.0, "ngram_max": 1}, {"C": 1.0, "ngram_max": 2}, {"C": 100.0, "ngram_max": 2}]
    assert sorted(map(str, tfidf.neighbours(own))) == sorted(map(str, neighbours))
    as_set = lambda params: {tuple(sorted(p.items())) for p in params}  # noqa: E731
    assert as_set(t.params for t in study.trials[1:4]) == as_set(tfidf.params(v) for v in neighbours)


def test_the_budget_stops_the_search_after_the_first_trial(task, tfidf_ladder, tmp_path):
    out = tmp_path / "run"
    result = run_search(request(task, tfidf_ladder, out, trials=6, budget_joules=1e-6))
    assert len(result.trials) == 1 and result.trials[0].outcome == "complete"
    assert result.stopped.startswith("energy budget")
    assert len(RunLog(out, create=False).records()) == 1
    assert result.energy["study_joules"] > 1e-6
    again = run_search(request(task, tfidf_ladder, out, trials=6, budget_joules=1e-6))
    assert again.trials == [] and again.stopped.startswith("energy budget")  # spent is spent, across runs


def test_pareto_objective_runs_nsga2_without_pruning(task, tfidf_ladder, tmp_path):
    out = tmp_path / "run"
    result = run_search(request(task, tfidf_ladder, out, trials=4, objective="pareto"))
    study = study_of(out)
    assert [d.name for d in study.directions] == ["MAXIMIZE", "MINIMIZE"]
    assert all(t.state.name == "COMPLETE" for t in study.trials)
    assert result.pareto and all(p["metric"] == 1.0 for p in result.pareto)


def test_a_config_recorded_in_runs_jsonl_is_reused_not_evaluated(task, tfidf_ladder, tmp_path):
    out = tmp_path / "run"
    data = load_data(load_task(task))
    spec = load_ladder(tfidf_ladder).rungs[0]
    record = evaluate_rung(data, spec, make_meter("estimate"), RunContext())
    RunLog(out).append(record)
    result = run_search(request(task, tfidf_ladder, out, trials=1))
    assert result.trials[0].outcome == "reused" and result.trials[0].joules == 0.0
    assert len(RunLog(out, create=False).records()) == 1


# ------------------------------------------------------------------------------------ the CLI


def test_cli_prints_each_trial_the_recommendation_and_the_search_energy(task, tfidf_ladder, tmp_path):
    out = tmp_path / "run"
    result = CliRunner().invoke(cli, ["search", str(task), "--ladder", str(tfidf_ladder), "--trials", "3",
                                      "--out", str(out), "--meter", "estimate", "--no-cache"])
    assert result.exit_code == 0, result.output
    assert result.output.count("trial ") >= 3 and "recommendation: tfidf" in result.output
    assert "search energy (this process, estimate)" in result.output and "3 configs evaluated" in result.output
    as_json = CliRunner().invoke(cli, ["search", str(task), "--ladder", str(tfidf_ladder), "--trials", "4",
                                       "--out", str(out), "--meter", "estimate", "--no-cache", "--json"])
    assert as_json.exit_code == 0, as_json.output
    doc = json.loads(as_json.output)
    evaluated = [t for t in doc["trials"] if t["outcome"] != "duplicate"]
    assert doc["recommendation"]["chosen"]["rung"] == "tfidf" and len(evaluated) == 1  # resumed at 3 of 4
    assert doc["energy"]["source"] == "estimate" and doc["study_counts"]["complete"] == 4


@pytest.mark.parametrize("args, fragment", [
    (["--storage", "nosuchdb://x/y"], "cannot open the study storage"),
    (["--storage", "sqlite:////nonexistent-dir/x/study.db"], "cannot open the study storage"),
])
def test_cli_bad_storage_is_one_line(task, tfidf_ladder, tmp_path, args, fragment):
    result = CliRunner().invoke(cli, ["search", str(task), "--ladder", str(tfidf_ladder), "--out",
                                      str(tmp_path / "run"), "--meter", "estimate", *args])
    assert result.exit_code == 2, result.output
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert len(lines) == 1 and fragment in lines[0] and "Traceback" not in result.output


def test_cli_refuses_to_mix_another_space_into_a_named_study(task, tfidf_ladder, tmp_path):
    out = tmp_path / "run"
    base = ["search", str(task), "--out", str(out), "--meter", "estimate", "--study", "s1", "--trials", "1"]
    assert CliRunner().invoke(cli, base + ["--ladder", str(tfidf_ladder)]).exit_code == 0
    other = tmp_path / "other.yaml"
    other.write_text("rungs:\n  - {name: tfidf, kind: tfidf}\nsearch: {knobs: [C]}\n")
    result = CliRunner().invoke(cli, base + ["--ladder", str(other)])
    assert result.exit_code == 2 and "was created with another space" in result.output


# ------------------------------------------------------------------------------------ workers, kill, resume


def _search_cmd(task, ladder, out, *extra) -> list[str]:
    return RIGHTSIZE + ["search", str(task), "--ladder", str(ladder), "--out", str(out), "--meter", "estimate",
                        "--no-cache", "--quiet", *map(str, extra)]


def _env() -> dict:
    return {**os.environ, "HF_HUB_OFFLINE": "1"}


def _two_workers(task, ladder, out, *extra) -> None:
    procs = [subprocess.Popen(_search_cmd(task, ladder, out, "--seed", seed, *extra), env=_env(),
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for seed in (1, 2)]
    for p in procs:
        stdout, stderr = p.communicate(timeout=120)
        assert p.returncode == 0, stderr[-2000:]


def _assert_each_config_once(out: Path, expected: int) -> None:
    keys = collections.Counter(r.key for r in RunLog(out, create=False).records())
    assert keys and max(keys.values()) == 1, [k for k, n in keys.items() if n > 1]
    assert len(keys) >= expected


def test_a_sqlite_study_transaction_takes_the_write_lock_when_it_begins(tmp_path):
    """Optuna pops a queued trial by reading its state, then setting it RUNNING: one transaction only
    if it holds the lock from its first read, else two workers can both pop the same trial."""
    import sqlite3

    from rightsize.search import open_storage

    storage = open_storage(f"sqlite:///{tmp_path / 'study.db'}")
    with storage.engine.connect() as conn:
        conn.exec_driver_sql("SELECT count(*) FROM trials").fetchall()  # a read opens the transaction
        other = sqlite3.connect(tmp_path / "study.db", timeout=0, isolation_level=None)
        with pytest.raises(sqlite3.OperationalError, match="locked"):
            other.execute("BEGIN IMMEDIATE")  # another worker cannot start writing meanwhile
        other.close()
        conn.rollback()
    other = sqlite3.connect(tmp_path / "study.db", timeout=0, isolation_level=None)
    other.execute("BEGIN IMMEDIATE")  # and can once the transaction is over
    other.execute("ROLLBACK")
    other.close()


@pytest.mark.subprocess
def test_two_workers_share_a_sqlite_study_and_never_evaluate_a_config_twice(task, tfidf_ladder, tmp_path):
    out = tmp_path / "run"
    _two_workers(task, tfidf_ladder, out, "--trials", 6, "--study", "shared")
    _assert_each_config_once(out, 6)


@pytest.mark.postgres
@pytest.mark.subprocess
@pytest.mark.skipif(not os.environ.get("RIGHTSIZE_TEST_POSTGRES_URL"),
                    reason="RIGHTSIZE_TEST_POSTGRES_URL is not set: .ci/run starts a PostgreSQL server and sets it")
def test_two_workers_share_a_postgresql_study_and_never_evaluate_a_config_twice(task, tfidf_ladder, tmp_path):
    url = os.environ["RIGHTSIZE_TEST_POSTGRES_URL"]
    out, name = tmp_path / "run", f"test-{uuid.uuid4().hex[:12]}"
    _two_workers(task, tfidf_ladder, out, "--trials", 6, "--study", name, "--storage", url)
    _assert_each_config_once(out, 6)
    from rightsize.search.storage import with_driver

    study = optuna.load_study(study_name=name, storage=with_driver(url))
    assert len({t.user_attrs["config_key"] for t in study.trials if t.user_attrs.get("outcome") == "complete"}) >= 6


@pytest.mark.subprocess
def test_a_killed_search_resumes_without_redoing_finished_trials(task, tfidf_ladder, tmp_path):
    out = tmp_path / "run"
    proc = subprocess.Popen(_search_cmd(task, tfidf_ladder, out, "--trials", 6), env=_env(),
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    runs = out / "runs.jsonl"
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and proc.poll() is None:
        if runs.exists() and runs.read_bytes().count(b"\n") >= 1:
            break
        time.sleep(0.02)
    assert proc.poll() is None, "the search finished before it could be killed"
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    before = {r.key for r in RunLog(out, create=False).records()}
    assert before
    again = subprocess.run(_search_cmd(task, tfidf_ladder, out, "--trials", 6), env=_env(),
                           capture_output=True, text=True, timeout=120)
    assert again.returncode == 0, again.stderr[-2000:]
    records = RunLog(out, create=False).records()  # every line parses (a torn one would be moved aside)
    assert all(json.loads(line) for line in runs.read_text().splitlines())
    _assert_each_config_once(out, 6)
    assert before <= {r.key for r in records}
    study = study_of(out)
    assert not [t for t in study.trials if t.state.name in ("RUNNING", "WAITING")]
    assert "every config of the space evaluated (6)" in again.stdout


def test_search_help_has_an_example():
    result = CliRunner().invoke(cli, ["search", "--help"])
    assert result.exit_code == 0 and "Example:" in result.output and "rightsize search tasks/" in result.output


def test_the_searchs_incumbent_uses_the_same_multiplicity_correction_as_its_answer():
    from rightsize.adequacy import Target
    from rightsize.search.standing import Standing

    # One config at 0.775 on 200 examples (95% lower bound ~0.72 >= 0.7) among eight at chance:
    # adequate alone, not once Holm corrects over the nine compared. Stopping on it while the
    # answer (Holm by default) rejects it left a search with no answer and costlier configs unrun.
    references = [i % 2 for i in range(200)]
    records = []
    for i, right in enumerate([155] + [100] * 8):
        predictions = [r if j < right else 1 - r for j, r in enumerate(references)]
        record = _record(f"c{i}", predictions, references)
        record.joules_per_query = 0.01 * (i + 1)
        records.append(record)
    assert Standing(records, Target(min=0.7), "accuracy", adjust="none").incumbent.key == "c0"
    assert Standing(records, Target(min=0.7), "accuracy", adjust="holm").incumbent is None


def test_search_refuses_an_unknown_adjustment(task, tfidf_ladder, tmp_path):
    with pytest.raises(RightsizeError, match="--adjust 'bonferroni'"):
        run_search(request(task, tfidf_ladder, tmp_path / "run", trials=1, adjust="bonferroni"))
    result = CliRunner().invoke(cli, ["search", str(task), "--ladder", str(tfidf_ladder), "--trials", "1",
                                      "--out", str(tmp_path / "run2"), "--meter", "estimate", "--no-cache",
                                      "--adjust", "none", "--json"])
    assert result.exit_code in (0, 3), result.output
    assert json.loads(result.stdout)["recommendation"]["multiplicity"]["adjust"] == "none"
