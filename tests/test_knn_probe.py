"""The `knn-probe` rung: probe probabilities interpolated with the FAISS neighbour vote."""

from __future__ import annotations

import numpy as np
import pytest

from rightsize.energy import make_meter
from rightsize.errors import RightsizeError
from rightsize.evaluate import evaluate_rung
from rightsize.ladder import parse_ladder
from rightsize.rungs import RunContext, RungSpec
from rightsize.rungs.knn_probe import KnnProbeRung, interpolate
from rightsize.tasks import load_data, load_task


@pytest.fixture
def data(tiny_task):
    return load_data(load_task(tiny_task))


def test_interpolate_mixes_two_distributions():
    probe = np.array([[0.8, 0.2], [0.5, 0.5]])
    knn = np.array([[0.0, 1.0], [1.0, 0.0]])
    np.testing.assert_allclose(interpolate(probe, knn, 0.0), probe)
    np.testing.assert_allclose(interpolate(probe, knn, 1.0), knn)
    mixed = interpolate(probe, knn, 0.25)
    np.testing.assert_allclose(mixed, [[0.6, 0.4], [0.625, 0.375]])
    np.testing.assert_allclose(mixed.sum(axis=1), 1.0)
    with pytest.raises(ValueError):
        interpolate(probe, knn[:, :1], 0.5)


def fitted(data, tiny_encoder, **knobs) -> KnnProbeRung:
    rung = KnnProbeRung(RungSpec("kp", "knn-probe", str(tiny_encoder), {"batch_size": 16, **knobs}), RunContext())
    rung.load()
    rung.fit(data.train.texts, data.train.labels)
    return rung


def test_weight_zero_is_the_probe_and_weight_one_the_neighbour_vote(data, tiny_encoder):
    from sklearn.linear_model import LogisticRegression

    from rightsize.retrieval import neighbour_distribution, search

    rung = fitted(data, tiny_encoder, weight=0.0, k=5)
    vectors = rung.embed(data.validation.texts)
    probe = LogisticRegression(C=10.0, max_iter=2000).fit(rung.embed(data.train.texts), data.train.labels)
    np.testing.assert_allclose(rung.distribution(vectors), probe.predict_proba(vectors), atol=1e-6)

    rung.k["weight"] = 1.0
    sims, ids = search(rung.index, vectors, 5)
    vote = neighbour_distribution(sims, ids, rung.train_label_ids, 3, rung.k["temperature"])
    np.testing.assert_allclose(rung.distribution(vectors), vote)
    # the vote's class order is the probe's: a neighbour's own label wins at weight 1 with k=1
    rung.k["k"] = 1
    train_vectors = rung.embed(data.train.texts[:10])
    _, nearest = search(rung.index, train_vectors, 1)
    expected = [data.train.labels[i] for i in nearest[:, 0]]
    assert [str(c) for c in rung.classes[rung.distribution(train_vectors).argmax(axis=1)]] == expected
    rung.close()


def test_train_embeddings_are_computed_once(data, tiny_encoder, monkeypatch):
    rung = KnnProbeRung(RungSpec("kp", "knn-probe", str(tiny_encoder), {}), RunContext())
    rung.load()
    calls = []
    real = rung.encoder.encode
    monkeypatch.setattr(rung.encoder, "encode", lambda texts: calls.append(len(texts)) or real(texts))
    rung.fit(data.train.texts, data.train.labels)
    assert calls == [len(data.train.texts)]
    rung.close()


@pytest.mark.parametrize("index", ["flat", "hnsw", "ivf"])
def test_record_with_each_index(data, tiny_encoder, index):
    spec = RungSpec("kp", "knn-probe", str(tiny_encoder), {"index": index, "k": 5, "weight": 0.5})
    record = evaluate_rung(data, spec, make_meter("estimate"), RunContext())
    assert record.status == "ok", record.error
    assert record.facts["index"] == index and record.facts["index_vectors"] == record.n_train
    # the index holds train vectors, not parameters: the rung has exactly the probe's parameters
    probe = evaluate_rung(data, RungSpec("p", "probe", str(tiny_encoder), {}), make_meter("estimate"), RunContext())
    assert record.n_params == probe.n_params


def test_weight_outside_zero_one_is_rejected():
    doc = {"rungs": [{"name": "kp", "kind": "knn-probe", "model": "x/y", "weight": 1.5}]}
    with pytest.raises(RightsizeError, match="weight.*above its maximum"):
        parse_ladder(doc, "ladder.yaml")


@pytest.mark.slow
def test_minilm_depth_2_4_6_on_real_weights(data):
    """layers keeps the first N of MiniLM-L6's blocks: params fall by one block each step."""
    params = []
    for layers in (2, 4, 6):
        spec = RungSpec(f"l{layers}", "knn-probe", "sentence-transformers/all-MiniLM-L6-v2", {"layers": layers})
        record = evaluate_rung(data, spec, make_meter("estimate"), RunContext())
        assert record.status == "ok", record.error
        params.append(record.n_params)
    block = 4 * (384 * 384 + 384) + 2 * 384 + (384 * 1536 + 1536) + (1536 * 384 + 384) + 2 * 384
    assert params[1] - params[0] == params[2] - params[1] == 2 * block


def test_the_shipped_retrieval_ladder_parses():
    from importlib import resources

    from rightsize.ladder import load_ladder

    ladder = load_ladder(resources.files("rightsize") / "ladders" / "retrieval.yaml")
    kinds = {r.name: r.kind for r in ladder.rungs}
    assert kinds["minilm-knn-probe"] == "knn-probe" and kinds["smollm2-fewshot"] == "lm"
    assert [ladder[f"minilm-l{n}-probe"].knobs["layers"] for n in (2, 4)] == [2, 4]
    assert ladder["smollm2-fewshot"].knobs["shots"] == 4 and ladder["qwen2.5-0.5b-zeroshot"].optional
