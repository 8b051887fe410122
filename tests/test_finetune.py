"""The ``finetune`` kind and its training loop, on a 2-layer BERT built from a config (seconds a run):
it learns an easy task (full and LoRA), the same seed gives the same predictions, layers are cut
before training, save/restore predicts the same, a diverging loss fails the record naming the
epoch, LoRA on an architecture without known target modules is one line, and bf16 on a GPU
(CUDA patched) runs under autocast.
"""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest
import torch
from click.testing import CliRunner

from rightsize import training as T
from rightsize.cli import cli
from rightsize.energy import make_meter
from rightsize.errors import RightsizeError
from rightsize.evaluate import EvalPlan, evaluate_rung
from rightsize.ladder import parse_ladder
from rightsize.rungs import RunContext, RungSpec, build_rung
from rightsize.rungs.finetune import lora_targets
from rightsize.space import build_space
from rightsize.tasks import load_data, load_task

# The tiny model starts from random weights: it needs a larger step than a pretrained encoder.
FAST = {"epochs": 6, "batch_size": 8, "learning_rate": 3e-3, "threads": 1}  # one thread: no oversubscription
FAST_LORA = {**FAST, "method": "lora", "learning_rate": 2e-2}
EPOCHS = FAST["epochs"]


@pytest.fixture
def data(tiny_task):
    return load_data(load_task(tiny_task))


def fitted(data, model, knobs, seed: int = 0):
    rung = build_rung(RungSpec("ft", "finetune", str(model), knobs), RunContext(seed=seed))
    rung.load()
    rung.fit(data.train.texts, data.train.labels)
    return rung


def accuracy(rung, split) -> float:
    return float(np.mean([p == y for p, y in zip(rung.predict(split.texts), split.labels)]))


def logits(rung, texts) -> np.ndarray:
    from rightsize.token_batches import PackedTokens

    tokens = PackedTokens.of(rung.encoder.st.tokenizer, texts, rung.encoder.max_length)
    return T.predict_logits(rung.model, tokens, 4, rung.k["precision"], "cpu")


@pytest.mark.parametrize("knobs", [FAST, FAST_LORA], ids=["full", "lora"])
def test_a_finetune_learns_an_easy_task(data, tiny_encoder, knobs):
    rung = fitted(data, tiny_encoder, knobs)
    report = rung.training()
    assert report["epochs"] == EPOCHS and report["examples_seen"] == EPOCHS * len(data.train.texts)
    assert report["steps"] == EPOCHS * -(-len(data.train.texts) // 8)
    assert report["losses"][-1] < 0.5 * report["losses"][0] and report["final_loss"] == report["losses"][-1]
    assert len(report["seconds_per_epoch"]) == EPOCHS
    assert accuracy(rung, data.test) >= 0.8  # chance is 1/3
    facts = rung.facts()
    assert facts["method"] == knobs.get("method", "full") and facts["total_params"] == rung.n_params()
    if facts["method"] == "lora":
        # adapters (2 x r x 32 for query and value of 2 layers) + head; merged away after training
        assert facts["trainable_params"] == 2 * 2 * (2 * 8 * 32) + 3 * 32 + 3
        assert not any("lora_" in name for name, _ in rung.model.named_parameters())
    else:
        assert facts["trainable_params"] == facts["total_params"]


@pytest.mark.parametrize("method", ["full", "lora"])
def test_the_head_starts_as_a_probe_on_the_frozen_encoder(data, tiny_encoder, method):
    """At a learning rate that moves nothing, the fine-tune predicts as a linear probe would: the
    head starts fitted (a random head would be at chance, 1/3)."""
    rung = fitted(data, tiny_encoder, {**FAST, "method": method, "epochs": 1, "learning_rate": 1e-7})
    assert accuracy(rung, data.test) >= 0.8


def test_lora_merged_predicts_as_the_adapters_did(data, tiny_encoder):
    seen = {}

    def hook(epoch, predict):
        seen[epoch] = predict(data.test.texts)  # the model as it is: adapters not yet merged

    rung = build_rung(RungSpec("ft", "finetune", str(tiny_encoder), FAST_LORA), RunContext())
    rung.load()
    rung.on_epoch = hook
    rung.fit(data.train.texts, data.train.labels)
    assert sorted(seen) == list(range(1, EPOCHS + 1))
    assert rung.predict(data.test.texts) == seen[EPOCHS]


def test_same_seed_same_predictions_other_seed_other_weights(data, tiny_encoder):
    a, b = fitted(data, tiny_encoder, FAST), fitted(data, tiny_encoder, FAST)
    assert a.predict(data.test.texts) == b.predict(data.test.texts)
    np.testing.assert_array_equal(logits(a, data.test.texts), logits(b, data.test.texts))
    assert a.training()["losses"] == b.training()["losses"]
    other = fitted(data, tiny_encoder, FAST, seed=1)
    assert not np.array_equal(logits(a, data.test.texts), logits(other, data.test.texts))
    assert not torch.are_deterministic_algorithms_enabled()  # restored after the fit


def test_an_epoch_hook_sees_predictions_and_changes_nothing(data, tiny_encoder):
    plain = fitted(data, tiny_encoder, FAST)
    watched = build_rung(RungSpec("ft", "finetune", str(tiny_encoder), FAST), RunContext())
    watched.load()
    watched.on_epoch = lambda epoch, predict: predict(data.validation.texts)
    watched.fit(data.train.texts, data.train.labels)
    np.testing.assert_array_equal(logits(plain, data.test.texts), logits(watched, data.test.texts))


def test_stop_training_from_the_hook_keeps_the_model(data, tiny_encoder):
    def hook(epoch, predict):
        raise T.StopTraining("hopeless")

    rung = build_rung(RungSpec("ft", "finetune", str(tiny_encoder), FAST), RunContext())
    rung.load()
    rung.on_epoch = hook
    rung.fit(data.train.texts, data.train.labels)
    report = rung.training()
    assert report["epochs"] == 1 and report["stopped"] == "hopeless"
    assert report["examples_seen"] == len(data.train.texts)
    assert len(rung.predict(data.test.texts)) == len(data.test.texts)


def test_layers_are_cut_before_training(data, tiny_encoder):
    two = fitted(data, tiny_encoder, {**FAST, "epochs": 1})
    one = fitted(data, tiny_encoder, {**FAST, "epochs": 1, "layers": 1})
    assert one.facts()["layers"] == 1 and two.facts()["layers"] == 2
    one_layer = 4 * (32 * 32 + 32) + 2 * 32 + (32 * 64 + 64) + (64 * 32 + 32) + 2 * 32
    assert two.n_params() - one.n_params() == one_layer
    # every weight that is left was trained: the trainable count is the cut model's
    assert one.facts()["trainable_params"] == one.n_params()


@pytest.mark.parametrize("knobs", [FAST, FAST_LORA], ids=["full", "lora"])
def test_save_and_restore_predict_identically(data, tiny_encoder, tmp_path, knobs):
    rung = fitted(data, tiny_encoder, knobs)
    tmp_path = tmp_path / "artifact"
    tmp_path.mkdir()
    rung.save(tmp_path)
    files = sorted(p.name for p in tmp_path.iterdir())
    lora = knobs.get("method") == "lora"
    assert files == (["adapter.safetensors", "finetune.json", "head.safetensors"] if lora
                     else ["finetune.json", "model.safetensors"])
    state = json.loads((tmp_path / "finetune.json").read_text())
    assert state["labels"] == ["money", "sports", "weather"] and state["training"] == rung.training()

    again = build_rung(RungSpec("ft", "finetune", str(tiny_encoder), knobs), RunContext(seed=7))
    again.load()
    again.restore(tmp_path)
    assert again.predict(data.test.texts) == rung.predict(data.test.texts)
    np.testing.assert_array_equal(logits(again, data.test.texts), logits(rung, data.test.texts))
    assert again.n_params() == rung.n_params() and again.facts() == rung.facts()
    assert again.training() == {**rung.training(), "restored": True}
    if lora:  # the adapters, not merged weights, are what is saved: small
        assert (tmp_path / "adapter.safetensors").stat().st_size < 20_000


def test_restore_refuses_an_artifact_of_another_method_or_model(data, tiny_encoder, tmp_path):
    tmp_path = tmp_path / "artifact"
    tmp_path.mkdir()
    fitted(data, tiny_encoder, FAST).save(tmp_path)
    lora = build_rung(RungSpec("ft", "finetune", str(tiny_encoder), FAST_LORA), RunContext())
    lora.load()
    with pytest.raises(RightsizeError, match="method 'full'"):
        lora.restore(tmp_path)
    cut = build_rung(RungSpec("ft", "finetune", str(tiny_encoder), {**FAST, "layers": 1}), RunContext())
    cut.load()
    with pytest.raises(RightsizeError, match="do not fit this rung's model"):
        cut.restore(tmp_path)


def test_a_diverging_loss_fails_the_record_naming_the_epoch(data, tiny_encoder, monkeypatch):
    real = torch.nn.functional.cross_entropy
    calls = []
    steps_per_epoch = -(-len(data.train.texts) // 8)

    def diverging(logits, target, **kw):
        calls.append(1)
        loss = real(logits, target, **kw)
        return loss * float("nan") if len(calls) > steps_per_epoch + 1 else loss  # the 2nd step of epoch 2

    monkeypatch.setattr(torch.nn.functional, "cross_entropy", diverging)
    spec = RungSpec("ft", "finetune", str(tiny_encoder), FAST)
    record = evaluate_rung(data, spec, make_meter("estimate"), RunContext(), EvalPlan())
    assert record.status == "failed" and record.failed_phase == "fit"
    assert record.error.startswith(f"TrainingDiverged: the train loss became nan in epoch 2 of {EPOCHS} (step 2 of")
    assert "load" in record.joules and "infer" not in record.joules


def test_a_finetune_record_through_the_evaluator(data, tiny_encoder):
    spec = RungSpec("ft", "finetune", str(tiny_encoder), FAST)
    record = evaluate_rung(data, spec, make_meter("estimate"), RunContext(), EvalPlan())
    assert record.status == "ok", record.error
    assert record.metrics["accuracy"] >= 0.7 and record.joules["fit"] > 0
    assert record.facts["trainable_params"] == record.n_params
    assert record.cache["hits"] == 0  # a fine-tune never reads the embedding cache


def test_soft_targets_train_too(data, tiny_encoder):
    """Class probabilities (a teacher's) are targets as well as class indices."""
    rung = build_rung(RungSpec("ft", "finetune", str(tiny_encoder), FAST), RunContext())
    rung.load()
    classes = sorted(set(data.train.labels))
    probs = np.full((len(data.train.labels), 3), 0.05, dtype=np.float32)
    probs[np.arange(len(probs)), [classes.index(y) for y in data.train.labels]] = 0.9
    T.seed_everything(0)
    rung.classes = classes
    rung.model = rung._build(3)
    from rightsize.token_batches import PackedTokens

    tokens = PackedTokens.of(rung.encoder.st.tokenizer, data.train.texts, 32)
    report = T.train(rung.model, tokens, probs, rung._settings())
    assert report.losses[-1] < 0.5 * report.losses[0]
    assert accuracy(rung, data.test) >= 0.8


def test_epoch_batches_sort_by_length_and_shuffle_the_batches():
    lengths = np.array([5, 1, 9, 3, 3, 7, 2, 8, 3, 6])
    batches = T.epoch_batches(lengths, 3, np.random.default_rng(0))
    assert sorted(np.concatenate(batches).tolist()) == list(range(10))
    spans = sorted((lengths[b].min(), lengths[b].max()) for b in batches)
    assert all(hi <= next_lo for (_, hi), (next_lo, _) in zip(spans, spans[1:]))  # batches do not overlap in length
    orders = {tuple(map(tuple, T.epoch_batches(lengths, 3, np.random.default_rng(s)))) for s in range(8)}
    assert len(orders) > 1  # the seed moves the batch order and the ties


# ------------------------------------------------------------------ LoRA target modules


def test_lora_targets_per_architecture():
    assert lora_targets("bert") == ["query", "value"]
    assert lora_targets("mpnet") == ["q", "v"]
    assert lora_targets("made-up") is None


def unknown_architecture(tiny_encoder, tmp_path):
    folder = tmp_path / "odd"
    shutil.copytree(tiny_encoder, folder)
    config = json.loads((folder / "config.json").read_text())
    (folder / "config.json").write_text(json.dumps({**config, "model_type": "made-up"}))
    return folder


def test_lora_on_an_unknown_architecture_is_one_line_before_the_run(tiny_task, tiny_encoder, tmp_path):
    odd = unknown_architecture(tiny_encoder, tmp_path)
    ladder = tmp_path / "ladder.yaml"
    ladder.write_text(f"rungs:\n  - {{name: odd-lora, kind: finetune, model: '{odd}', method: lora}}\n")
    out = tmp_path / "run"
    result = CliRunner().invoke(cli, ["evaluate", str(tiny_task), "--ladder", str(ladder), "--out", str(out), "--quiet"])
    assert result.exit_code == 2
    assert result.output.strip().count("\n") == 0
    assert "LoRA has no known target modules for architecture 'made-up'" in result.output
    assert not (out / "runs.jsonl").exists()
    with pytest.raises(RightsizeError, match="use method: full"):
        build_rung(RungSpec("odd", "finetune", str(odd), {"method": "lora"}), RunContext()).load()


# ------------------------------------------------------------------ ladder and search space


def test_lora_knobs_apply_only_with_lora():
    with pytest.raises(RightsizeError, match="knob 'lora_r' applies only with method: lora"):
        parse_ladder({"rungs": [{"name": "ft", "kind": "finetune", "model": "m", "lora_r": 4}]}, "ladder")
    ladder = parse_ladder({"defaults": {"lora_r": 4}, "rungs": [
        {"name": "ft", "kind": "finetune", "model": "m"},
        {"name": "lora", "kind": "finetune", "model": "m", "method": "lora"}]}, "ladder")
    assert "lora_r" not in ladder["ft"].knobs and ladder["lora"].knobs["lora_r"] == 4


def test_the_space_varies_lora_knobs_only_with_lora(tiny_encoder):
    ladder = parse_ladder({"rungs": [{"name": "ft", "kind": "finetune", "model": str(tiny_encoder)}],
                           "search": {"knobs": ["method", "lora_r", "epochs"]}}, "ladder")
    space = build_space(ladder)
    rung = space["ft"]
    assert [d.knob for d in rung.dims] == ["method", "epochs", "lora_r"]  # lora_r after what it depends on
    configs = list(rung.configs())
    keys = {json.dumps(spec.config(), sort_keys=True) for _, spec in configs}
    assert len(configs) == len(keys) == rung.size == 5 + 5 * 3  # full x epochs + lora x epochs x ranks
    assert all("lora_r" not in spec.knobs for values, spec in configs if values["method"] == "full")
    full = {"method": "full", "epochs": 3, "lora_r": 8}
    assert all(v["lora_r"] == 8 for v in rung.neighbours(full))  # no step in a knob that does nothing
    assert {"method": "lora", "epochs": 3, "lora_r": 8} in rung.neighbours(full)
    assert rung.params(full) == {"rung": "ft", "ft.method": "full", "ft.epochs": 3}

    class Trial:
        def __init__(self, answers):
            self.answers, self.asked = answers, []

        def suggest_categorical(self, name, choices):
            self.asked.append(name)
            return self.answers.get(name, choices[0])

    trial = Trial({"rung": "ft", "ft.method": "full"})
    spec, values = space.suggest(trial)
    assert "ft.lora_r" not in trial.asked and values["lora_r"] == 8
    trial = Trial({"rung": "ft", "ft.method": "lora", "ft.lora_r": 16})
    spec, values = space.suggest(trial)
    assert spec.knobs["lora_r"] == 16 and spec.knobs["method"] == "lora"


def test_a_lora_rung_held_at_full_by_the_ladder_searches_no_lora_knob(tiny_encoder):
    ladder = parse_ladder({"rungs": [{"name": "ft", "kind": "finetune", "model": str(tiny_encoder)}],
                           "search": {"knobs": ["lora_r", "epochs"]}}, "ladder")
    rung = build_space(ladder)["ft"]
    assert [d.knob for d in rung.dims] == ["epochs"] and rung.size == 5


def test_the_trained_ladder_parses():
    from importlib import resources

    from rightsize.ladder import load_ladder

    ladder = load_ladder(resources.files("rightsize") / "ladders" / "trained.yaml")
    kinds = {spec.name: (spec.kind, spec.knobs.get("method", "full"), spec.knobs.get("layers")) for spec in ladder.rungs}
    assert ("finetune", "lora", 3) in kinds.values() and ("finetune", "full", None) in kinds.values()


# ------------------------------------------------------------------ the GPU path (CUDA patched)


def test_bf16_on_a_gpu_trains_and_predicts_under_autocast(data, tiny_encoder, monkeypatch):
    import sentence_transformers

    from fake_nvml import FakeNvml, FakeTorchCuda

    FakeTorchCuda(FakeNvml.of(1).install(monkeypatch)).install(monkeypatch)
    real_st, real_autocast = sentence_transformers.SentenceTransformer, torch.autocast
    asked, kernels = [], []
    monkeypatch.setattr(sentence_transformers, "SentenceTransformer",
                        lambda path, **kw: real_st(path, **{**kw, "device": "cpu"}))  # no GPU here

    def recording(device_type, dtype=None, **kw):
        asked.append((device_type, dtype))
        kernels.append(torch.are_deterministic_algorithms_enabled())
        return real_autocast("cpu", dtype=dtype, **kw)  # bf16 math on the CPU tensors

    monkeypatch.setattr(torch, "autocast", recording)
    spec = RungSpec("ft", "finetune", str(tiny_encoder), {**FAST, "epochs": 1, "precision": "bf16"})
    rung = build_rung(spec, RunContext(device="cuda"))
    rung.load()
    assert rung.encoder.device == "cuda"
    texts, labels = data.train.texts[:16], data.train.labels[:16]  # bf16 is emulated on most CPUs: slow
    rung.fit(texts, labels)
    steps = rung.training()["steps"]
    assert steps == 2 and asked == [("cuda", torch.bfloat16)] * (2 + steps)  # the starting probe's 2 batches, 2 steps
    assert not any(kernels)  # deterministic kernels are a CPU promise only
    assert {p.dtype for p in rung.model.parameters()} == {torch.float32}  # weights stay fp32
    asked.clear()
    assert len(rung.predict(texts)) == len(texts)
    assert asked == [("cuda", torch.bfloat16)] * 2
    monkeypatch.setattr(torch, "autocast", lambda *a, **k: pytest.fail("fp32 needs no autocast"))
    fp32 = build_rung(RungSpec("ft", "finetune", str(tiny_encoder), {**FAST, "epochs": 1}), RunContext(device="cuda"))
    fp32.load()
    fp32.fit(texts, labels)
    fp32.predict(texts)


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
@pytest.mark.parametrize("method", ["full", "lora"])
def test_a_real_gpu_finetune_learns_in_bf16(data, tiny_encoder, method):
    knobs = {**(FAST_LORA if method == "lora" else FAST), "precision": "bf16"}
    rung = build_rung(RungSpec("ft", "finetune", str(tiny_encoder), knobs), RunContext(device="cuda"))
    rung.load()
    rung.fit(data.train.texts, data.train.labels)
    assert next(rung.model.parameters()).device.type == "cuda"
    assert accuracy(rung, data.test) >= 0.8
