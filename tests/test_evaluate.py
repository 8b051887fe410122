"""Each rung kind end to end on a tiny task, the record it yields, and failures recorded."""

import json
import subprocess
import sys

import numpy as np
import pytest

from rightsize.energy import make_meter
from rightsize.evaluate import EvalPlan, evaluate_rung
from rightsize.ladder import load_ladder
from rightsize.rungs import RUNG_KINDS, Rung, RunContext, RungSpec, register
from rightsize.tasks import load_data, load_task

REQUIRED = {"schema", "task", "rung", "config", "split", "n_examples", "metrics", "seconds", "joules",
            "joules_per_query", "energy_source", "device", "n_params", "status"}


@pytest.fixture
def data(tiny_task):
    return load_data(load_task(tiny_task))


@pytest.mark.parametrize("rung", ["tfidf", "tiny-knn", "tiny-probe"])
def test_each_kind_yields_a_complete_ok_record(data, tiny_ladder, rung):
    spec = load_ladder(tiny_ladder)[rung]
    record = evaluate_rung(data, spec, make_meter("estimate"), RunContext(), EvalPlan())
    assert record.status == "ok", record.error
    assert REQUIRED <= set(record.to_dict())
    assert set(record.seconds) == set(record.joules) == {"load", "fit", "infer"}
    assert record.n_examples == len(data.validation.texts)
    assert record.joules_per_query == pytest.approx(record.joules["infer"] / record.n_examples)
    assert 0.0 <= record.metrics["accuracy"] <= 1.0
    lo, hi = record.ci["accuracy"]
    assert lo <= record.metrics["accuracy"] <= hi
    assert record.energy_source == "estimate"
    assert len(record.predictions) == len(record.references) == record.n_examples
    json.dumps(record.to_dict(), allow_nan=False)  # the record must be valid JSON


def test_params_are_measured_from_the_loaded_model(data, tiny_ladder, tiny_encoder):
    from sentence_transformers import SentenceTransformer

    expected = sum(p.numel() for p in SentenceTransformer(str(tiny_encoder)).parameters())
    knn = evaluate_rung(data, load_ladder(tiny_ladder)["tiny-knn"], make_meter("estimate"), RunContext())
    probe = evaluate_rung(data, load_ladder(tiny_ladder)["tiny-probe"], make_meter("estimate"), RunContext())
    assert knn.n_params == expected
    n_classes, dim = 3, 32
    assert probe.n_params == expected + n_classes * dim + n_classes


def test_layers_knob_keeps_the_first_layers(data, tiny_encoder):
    full = RungSpec("full", "knn", str(tiny_encoder), {})
    one = RungSpec("one", "knn", str(tiny_encoder), {"layers": 1})
    r_full = evaluate_rung(data, full, make_meter("estimate"), RunContext())
    r_one = evaluate_rung(data, one, make_meter("estimate"), RunContext())
    # one BERT layer of hidden 32 / intermediate 64: 4*(32*32+32) + 2*32 + 32*64+64 + 64*32+32 + 2*32
    assert r_full.n_params - r_one.n_params == 4 * (32 * 32 + 32) + 2 * 32 + (32 * 64 + 64) + (64 * 32 + 32) + 2 * 32


def test_limit_takes_a_seeded_sample(data, tiny_ladder):
    spec = load_ladder(tiny_ladder)["tfidf"]
    a = evaluate_rung(data, spec, make_meter("estimate"), RunContext(seed=3), EvalPlan(limit=5))
    b = evaluate_rung(data, spec, make_meter("estimate"), RunContext(seed=3), EvalPlan(limit=5))
    assert a.n_examples == 5 and a.references == b.references and a.key == b.key


class _Exploding(Rung):
    kind = "test-exploding"

    def load(self):
        pass

    def fit(self, texts, labels):
        raise MemoryError("simulated out of memory")

    def predict(self, texts):
        return []

    def n_params(self):
        return 0


def test_a_failing_rung_is_recorded_as_failed(data):
    if "test-exploding" not in RUNG_KINDS:
        register(_Exploding)
    record = evaluate_rung(data, RungSpec("boom", "test-exploding"), make_meter("estimate"), RunContext())
    assert record.status == "failed"
    assert record.error.startswith("MemoryError: simulated out of memory")
    assert record.failed_phase == "fit"
    assert "load" in record.joules and "infer" not in record.joules


def test_knn_vote_weights_close_neighbours_more():
    from rightsize.retrieval import neighbour_distribution

    sims = np.array([[0.9, 0.5, 0.5]])
    ids = np.array([[0, 1, 2]])
    labels = np.array([0, 1, 1])
    sharp = neighbour_distribution(sims, ids, labels, 2, temperature=0.05)
    flat = neighbour_distribution(sims, ids, labels, 2, temperature=100.0)
    assert sharp[0].argmax() == 0  # one close neighbour beats two far ones
    assert flat[0].argmax() == 1  # a near-uniform weighting is a majority vote
    assert sharp.sum() == pytest.approx(1.0)


@pytest.mark.parametrize("kind", ["flat", "hnsw", "ivf"])
def test_index_kinds_find_the_exact_neighbour(kind):
    from rightsize.retrieval import build_index, search

    rng = np.random.default_rng(0)
    x = rng.normal(size=(500, 16)).astype(np.float32)
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    index = build_index(x, kind)
    _, ids = search(index, x[:20], 1)
    assert (ids[:, 0] == np.arange(20)).mean() >= 0.9


def test_a_configs_thread_count_does_not_leak_into_the_next_config(data, tiny_encoder):
    import faiss
    import torch
    from threadpoolctl import threadpool_info

    from rightsize import threads

    blas = lambda: [p["num_threads"] for p in threadpool_info() if p["user_api"] == "blas"]  # noqa: E731
    saved = (torch.get_num_threads(), faiss.omp_get_max_threads(), dict(threads._BEFORE))
    threads._BEFORE.clear()
    torch.set_num_threads(2)
    faiss.omp_set_num_threads(2)
    before = blas()
    try:
        threads.set_threads(1)  # torch, FAISS and the BLAS of the heads' fits
        assert (torch.get_num_threads(), faiss.omp_get_max_threads()) == (1, 1) and set(blas()) == {1}
        threads.restore_threads()
        assert blas() == before
        one = RungSpec("knn-1", "knn", str(tiny_encoder), {"threads": 1})
        assert evaluate_rung(data, one, make_meter("estimate"), RunContext(), EvalPlan(limit=10)).status == "ok"
        # threads unset means "as the process had it", not the previous config's single thread
        assert (torch.get_num_threads(), faiss.omp_get_max_threads()) == (2, 2) and blas() == before
    finally:
        torch.set_num_threads(saved[0])
        faiss.omp_set_num_threads(saved[1])
        threads._BEFORE.clear()
        threads._BEFORE.update(saved[2])


def test_a_tfidf_config_with_threads_caps_blas_without_importing_torch():
    code = """
import sys
from threadpoolctl import threadpool_info
from rightsize.rungs import RunContext, RungSpec, build_rung
from rightsize.threads import restore_threads
rung = build_rung(RungSpec("tfidf", "tfidf", None, {"threads": 1}), RunContext())
rung.load()
assert {p["num_threads"] for p in threadpool_info() if p["user_api"] == "blas"} == {1}
restore_threads()
print("torch" in sys.modules, "faiss" in sys.modules)
"""
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.split() == ["False", "False"]
