"""The ``runtime: onnx`` knob of encoder rungs (rightsize.onnx_runtime): the tiny encoder exported to
ONNX and run by onnxruntime must give torch's vectors at fp32, quantize its MatMuls at int8, keep its
export on disk keyed by what the graph depends on, honour ``threads``, and never pair with bf16."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from rightsize import onnx_runtime
from rightsize.cache import EmbeddingCache
from rightsize.encoder import Encoder
from rightsize.energy import make_meter
from rightsize.errors import RightsizeError
from rightsize.ladder import parse_ladder
from rightsize.space import build_space

TEXTS = ["the match and the goal", "rain", "a bank card fee and a loan rate at the bank with cash",
         "cold wind", "the team is to win the league", "sun", "snow storm and cold rain in the wind"]


@pytest.fixture(scope="module")
def exports(tmp_path_factory) -> Path:
    """One cache root for the module: each export is made once and reused by later tests."""
    return tmp_path_factory.mktemp("exports")


def encoder(model, root: Path | None = None, **kw) -> Encoder:
    cache = EmbeddingCache(root) if root is not None else None
    enc = Encoder(str(model), cache=cache, meter=make_meter("estimate") if cache else None, **{"batch_size": 3, **kw})
    enc.load()
    return enc


def cosines(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return (a * b).sum(1) / (np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1))


def test_fp32_export_gives_the_torch_vectors(tiny_encoder, exports):
    torch_vectors = encoder(tiny_encoder).encode(TEXTS)
    enc = encoder(tiny_encoder, exports, runtime="onnx")
    assert cosines(enc.encode(TEXTS), torch_vectors).min() >= 0.999
    facts = enc.runtime_facts()
    assert facts["runtime"] == "onnx" and facts["onnx_cosine_to_torch"] >= onnx_runtime.CHECK_COSINE
    assert facts["onnx_exporter"] == "torchscript"  # the first exporter: onnxruntime runs its graph faster
    assert enc.params == encoder(tiny_encoder).params  # counted on the torch module, before export


def test_int8_quantizes_the_matmuls_that_do_not_narrow(tiny_encoder, exports):
    import onnx

    enc = encoder(tiny_encoder, exports, runtime="onnx", precision="int8")
    graph = onnx.load(str(enc.onnx.path)).graph
    ops = [n.op_type for n in graph.node]
    # 2 layers x 6 Linear: q, k, v, attention out (32x32), up (32x64) quantized; down (64x32) kept fp32
    assert ops.count("MatMulInteger") == 10
    shapes = {t.name: tuple(t.dims) for t in graph.initializer}
    float_weights = [shapes[n.input[1]] for n in graph.node if n.op_type == "MatMul" and n.input[1] in shapes]
    assert float_weights == [(64, 32), (64, 32)]
    assert cosines(enc.encode(TEXTS), encoder(tiny_encoder).encode(TEXTS)).min() >= 0.99


def test_an_encoder_torchscript_cannot_export_goes_through_dynamo(tiny_encoder, tmp_path, monkeypatch):
    def fails(*args):
        raise RuntimeError("TorchScript cannot trace this\nsecond line")

    monkeypatch.setitem(onnx_runtime._EXPORTERS, "torchscript", fails)
    enc = encoder(tiny_encoder, tmp_path, runtime="onnx")
    assert enc.runtime_facts()["onnx_exporter"] == "dynamo"
    assert cosines(enc.encode(TEXTS), encoder(tiny_encoder).encode(TEXTS)).min() >= 0.999


def test_an_export_no_exporter_reproduces_is_one_line_naming_each(tiny_encoder, tmp_path, monkeypatch):
    import onnx
    from onnx import TensorProto, helper

    def fails(*args):
        raise RuntimeError("cannot capture this\nsecond line")

    def off(st, path, opset):  # a graph that runs but computes other vectors (its check says so)
        io = [helper.make_tensor_value_info(n, TensorProto.INT64, None) for n in ("input_ids", "out")]
        graph = helper.make_graph([helper.make_node("Identity", ["input_ids"], ["out"])], "off", io[:1], io[1:])
        onnx.save(helper.make_model(graph), str(path))

    monkeypatch.setitem(onnx_runtime._EXPORTERS, "torchscript", fails)
    monkeypatch.setitem(onnx_runtime._EXPORTERS, "dynamo", off)
    monkeypatch.setattr(onnx_runtime, "_check", lambda st, enc: 0.5)
    with pytest.raises(RightsizeError) as info:
        encoder(tiny_encoder, tmp_path, runtime="onnx")
    message = str(info.value)
    assert "\n" not in message and "torchscript: RuntimeError: cannot capture this" in message
    assert "dynamo: cosine 0.5000 < 0.999" in message and message.endswith("use runtime torch")
    assert not any((tmp_path / "onnx").rglob("model.onnx"))  # nothing half-made is kept


def test_a_new_export_recipe_makes_new_exports(monkeypatch):
    facts = {"model": "m", "weights_sha256": "abc", "layers": None, "attn_implementation": "sdpa", "precision": "int8"}
    before = onnx_runtime.export_key(facts)
    monkeypatch.setitem(onnx_runtime.RECIPE, "exporters", (("dynamo", 18),))
    assert onnx_runtime.export_key(facts) != before
    monkeypatch.undo()
    monkeypatch.setitem(onnx_runtime.RECIPE, "int8", {**onnx_runtime.RECIPE["int8"], "per_channel": False})
    assert onnx_runtime.export_key(facts) != before


def test_exports_are_reused_and_keyed_by_what_the_graph_depends_on(tiny_encoder, exports, monkeypatch):
    encoder(tiny_encoder, exports, runtime="onnx")  # made here or by an earlier test
    before = set((exports / "onnx").iterdir())
    monkeypatch.setattr(onnx_runtime, "_export", lambda *a: pytest.fail("a cached export was exported again"))
    encoder(tiny_encoder, exports, runtime="onnx", threads=1, batch_size=7)  # run settings: same graph
    assert set((exports / "onnx").iterdir()) == before
    monkeypatch.undo()
    encoder(tiny_encoder, exports, runtime="onnx", layers=1)  # another graph: another export
    assert len(set((exports / "onnx").iterdir()) - before) == 1


def test_a_corrupt_export_is_named(tiny_encoder, tmp_path):
    enc = encoder(tiny_encoder, tmp_path, runtime="onnx")
    enc.onnx.path.write_bytes(b"not onnx")
    with pytest.raises(RightsizeError, match="onnxruntime cannot load .*model.onnx"):
        encoder(tiny_encoder, tmp_path, runtime="onnx")


def test_clearing_the_cache_removes_the_exports(tiny_encoder, tmp_path):
    encoder(tiny_encoder, tmp_path, runtime="onnx")
    cache = EmbeddingCache(tmp_path)
    assert any((tmp_path / "onnx").rglob("model.onnx"))
    assert cache.clear() > 0 and not (tmp_path / "onnx").exists()


def test_threads_reach_the_session(tiny_encoder, exports):
    enc = encoder(tiny_encoder, exports, runtime="onnx", threads=1)
    options = enc.onnx.session.get_session_options()
    assert options.intra_op_num_threads == 1 and options.inter_op_num_threads == 1
    assert options.get_session_config_entry("session.intra_op.allow_spinning") == "0"


def test_without_a_cache_the_export_is_temporary(tiny_encoder):
    enc = encoder(tiny_encoder, runtime="onnx")
    folder = enc.onnx.path.parent.parent
    assert folder.name.startswith("rightsize-onnx-") and folder.is_dir()
    enc.close()
    assert not folder.exists()


def test_the_embedding_cache_tells_the_runtimes_apart(tiny_encoder, exports):
    torch_enc, onnx_enc = encoder(tiny_encoder, exports), encoder(tiny_encoder, exports, runtime="onnx")
    assert torch_enc.namespace != onnx_enc.namespace
    # torch's namespace is as before the knob existed: its cached vectors stay valid
    described = (exports / "v1" / torch_enc.namespace / "namespace.json").read_text()
    assert '"runtime"' not in described and '"runtime": "onnx"' in \
        (exports / "v1" / onnx_enc.namespace / "namespace.json").read_text()


def test_onnx_runs_on_the_cpu_only(tiny_encoder):
    with pytest.raises(RightsizeError, match="runtime onnx runs on the CPU only"):
        Encoder(str(tiny_encoder), runtime="onnx", device="cuda").load()


def test_onnx_with_bf16_is_bad_input_in_a_ladder_and_in_search_fix(tiny_encoder):
    rung = {"name": "p", "kind": "probe", "model": str(tiny_encoder), "runtime": "onnx"}
    with pytest.raises(RightsizeError, match=r"\(p\): runtime onnx runs precision fp32 or int8, not bf16"):
        parse_ladder({"rungs": [{**rung, "precision": "bf16"}]}, "l.yaml")
    ladder = parse_ladder({"rungs": [rung], "search": {"fix": {"precision": "bf16"}}}, "l.yaml")
    with pytest.raises(RightsizeError, match="search.fix makes rung 'p' impossible"):
        build_space(ladder, "cpu")


def test_the_space_offers_the_runtime_on_cpu_and_leaves_out_conflicts(tiny_encoder):
    ladder = parse_ladder({"rungs": [{"name": "p", "kind": "probe", "model": str(tiny_encoder)}],
                           "search": {"knobs": ["runtime", "precision"]}}, "l.yaml")
    probe = build_space(ladder, "cpu")["p"]
    assert {d.knob: d.values for d in probe.dims} == {"precision": ("fp32", "bf16", "int8"),
                                                       "runtime": ("torch", "onnx")}
    combos = sorted((v["runtime"], v["precision"]) for v, _ in probe.configs())
    assert combos == [("onnx", "fp32"), ("onnx", "int8"), ("torch", "bf16"), ("torch", "fp32"), ("torch", "int8")]
    assert probe.size == 5
    assert {"runtime": "onnx", "precision": "bf16"} not in probe.neighbours({"runtime": "onnx", "precision": "fp32"})
    assert {"runtime": "onnx", "precision": "bf16"} not in probe.neighbours({"runtime": "torch", "precision": "bf16"})
    assert "runtime" not in {d.knob for d in build_space(ladder, "cuda")["p"].dims}


def test_a_sampled_conflict_is_skipped_without_an_evaluation(tiny_encoder, monkeypatch):
    """A sampler picks knobs one by one: onnx with bf16 can come up. The trial steps back (skipped,
    infeasible for the sampler) and nothing is evaluated."""
    import json
    from types import SimpleNamespace

    import optuna

    from rightsize.search import trial as trial_module

    ladder = parse_ladder({"rungs": [{"name": "p", "kind": "probe", "model": str(tiny_encoder)}],
                           "search": {"knobs": ["runtime", "precision"]}}, "l.yaml")
    ctx = SimpleNamespace(worker=0, space=build_space(ladder, "cpu"), metric="accuracy",
                          key_of=lambda spec: json.dumps(spec.config(), sort_keys=True))
    ledger = SimpleNamespace(proposed=lambda evaluated: None, segment=lambda: 0.0)
    monkeypatch.setattr(trial_module, "evaluate_rung", lambda *a, **k: pytest.fail("a conflict was evaluated"))
    outcomes = []
    runner = trial_module.TrialRunner(ctx, scheduler=None, ledger=ledger, on_trial=outcomes.append)
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = optuna.create_study()
    study.enqueue_trial({"rung": "p", "p.runtime": "onnx", "p.precision": "bf16"})
    trial = study.ask()
    with pytest.raises(optuna.TrialPruned, match="runtime onnx runs precision fp32 or int8, not bf16"):
        runner(trial)
    (outcome,) = outcomes
    assert outcome.outcome == "skipped" and outcome.searched == {"runtime": "onnx", "precision": "bf16"}
    assert study.trials[0].user_attrs["outcome"] == "skipped"


def test_an_onnx_probe_records_its_runtime_and_measured_energy(tiny_task, tiny_encoder):
    from rightsize.evaluate import evaluate_rung
    from rightsize.rungs import RunContext, RungSpec
    from rightsize.tasks import load_data, load_task

    spec = RungSpec("p", "probe", str(tiny_encoder), {"runtime": "onnx", "precision": "int8", "threads": 1})
    record = evaluate_rung(load_data(load_task(tiny_task)), spec, make_meter("estimate"), RunContext())
    assert record.status == "ok", record.error
    assert record.facts["runtime"] == "onnx" and record.config["runtime"] == "onnx"
    assert record.joules_per_query > 0 and record.energy_source == "estimate"
