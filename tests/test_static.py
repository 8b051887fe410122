"""The ``static`` kind: static token embeddings distilled from the tiny encoder, with a probe head."""

from __future__ import annotations

import numpy as np
import pytest

from conftest import ScriptedCounter
from rightsize.cache import EmbeddingCache
from rightsize.cost_model import CostModel, compute_weights_of
from rightsize.encoder import Encoder
from rightsize.energy import make_meter
from rightsize.energy.meter import Meter
from rightsize.evaluate import EvalPlan, evaluate_rung
from rightsize.rungs import RunContext, RungSpec, build_rung
from rightsize.static_embeddings import _special_tokens, distill_static, pca, sif_weights, token_vectors
from rightsize.tasks import load_data, load_task
from test_reliability import assert_one_line_error, invoke

VOCABULARY = 37  # the tiny encoder's: 5 special tokens, 8 filler words, 24 class words
WIDTH = 32  # its hidden size


@pytest.fixture
def data(tiny_task):
    return load_data(load_task(tiny_task))


def static(tiny_encoder, **knobs) -> RungSpec:
    return RungSpec("static", "static", str(tiny_encoder), {"pca_dims": 16, **knobs})


def fitted(spec: RungSpec, data):
    rung = build_rung(spec, RunContext())
    rung.load()
    rung.fit(data.train.texts, data.train.labels)
    return rung


def test_a_static_model_distilled_from_the_tiny_encoder_classifies_the_task(data, tiny_encoder):
    record = evaluate_rung(data, static(tiny_encoder), make_meter("estimate"), RunContext(), EvalPlan())
    assert record.status == "ok", record.error
    assert record.metrics["accuracy"] >= 0.9  # the class words survive as static vectors
    n_classes = 3
    assert record.n_params == VOCABULARY * 16 + n_classes * 16 + n_classes  # the table and the head
    assert record.facts["tokens_distilled"] == VOCABULARY and record.facts["embedding_dim"] == 16
    assert record.facts["encoder_params"] > record.n_params
    assert record.joules["fit"] > 0  # the distillation is the fit's, measured


def test_each_tokens_vector_is_the_encoders_mean_over_special_token_text_special_token(tiny_encoder):
    from sentence_transformers import SentenceTransformer

    encoder = Encoder(str(tiny_encoder))
    encoder.load()
    words = ["bank", "storm", "the"]
    ids = np.array(encoder.st.tokenizer.convert_tokens_to_ids(words))
    assert _special_tokens(encoder.st.tokenizer) == ([2], [3])  # [CLS] and [SEP]
    # The tiny encoder mean-pools [CLS] word [SEP] without normalizing: exactly one token's vector.
    expected = SentenceTransformer(str(tiny_encoder)).encode(words, normalize_embeddings=False)
    np.testing.assert_allclose(token_vectors(encoder, ids, [2], [3]), expected, atol=1e-5)


def test_saved_and_restored_it_predicts_the_same_without_loading_the_encoder(data, tiny_encoder, tmp_path,
                                                                               monkeypatch):
    spec = static(tiny_encoder)
    rung = fitted(spec, data)
    expected = rung.predict(data.validation.texts)
    rung.save(tmp_path)
    assert (tmp_path / "static" / "model.safetensors").exists() and (tmp_path / "head.safetensors").exists()
    assert not list(tmp_path.rglob("*.pkl")) and not list(tmp_path.rglob("*.bin"))

    monkeypatch.setattr(Encoder, "load", lambda self: pytest.fail("a restore must not load the encoder"))
    restored = build_rung(spec, RunContext())
    restored.load()
    restored.restore(tmp_path)
    assert restored.predict(data.validation.texts) == expected
    assert restored.n_params() == rung.n_params()
    np.testing.assert_array_equal(restored.static.embedding, rung.static.embedding)


def test_the_distillation_is_deterministic(data, tiny_encoder):
    first, second = fitted(static(tiny_encoder), data), fitted(static(tiny_encoder), data)
    np.testing.assert_array_equal(first.static.embedding, second.static.embedding)
    assert first.predict(data.validation.texts) == second.predict(data.validation.texts)


def test_the_knobs_shape_the_static_model(tiny_encoder):
    encoder = Encoder(str(tiny_encoder))
    encoder.load()
    wide = distill_static(encoder, pca_dims=None, sif_coefficient=None, max_length=None)
    assert wide.embedding.shape == (VOCABULARY, WIDTH)  # no PCA: the encoder's width
    clamped = distill_static(encoder, pca_dims=256, sif_coefficient=1e-4, max_length=8)
    assert clamped.embedding.shape == (VOCABULARY, WIDTH)  # more dimensions asked than there are
    assert clamped.max_length == 8
    narrow = distill_static(encoder, pca_dims=4, sif_coefficient=1e-4, max_length=None)
    assert narrow.embedding.shape == (VOCABULARY, 4)


def test_pca_keeps_the_largest_variance_first_with_a_fixed_sign():
    rng = np.random.default_rng(0)
    vectors = rng.normal(size=(200, 6)) * np.array([5.0, 3.0, 1.0, 0.5, 0.2, 0.1])
    reduced = pca(vectors, 3)
    variances = reduced.var(axis=0)
    assert reduced.shape == (200, 3) and variances[0] > variances[1] > variances[2]
    np.testing.assert_allclose(variances.sum(), vectors.var(axis=0)[:3].sum(), rtol=0.05)
    np.testing.assert_array_equal(pca(-vectors, 3), reduced)  # the sign is the data's, not the solver's
    assert (pca(vectors, None) == vectors.astype(np.float32)).all()


def test_sif_weights_shrink_frequent_tokens():
    weights = sif_weights(1000, 1e-3)
    assert (np.diff(weights) > 0).all() and weights[-1] < 1.0  # rank 1 (most frequent) weighs least
    assert (sif_weights(5, None) == 1.0).all()


def test_the_cost_model_does_not_bound_static_inference_by_the_encoder(tiny_encoder):
    spec = static(tiny_encoder)
    assert compute_weights_of(spec) is None  # a table look-up, whatever the encoder it came from
    model = CostModel()
    assert model.estimate(spec) == 0.0 and model.lower_bound(spec) is None


@pytest.mark.parametrize("knob, value, message", [("pca_dims", 1, "knob 'pca_dims' = 1 is below its minimum"),
                                                  ("sif_coefficient", 2.0, "knob 'sif_coefficient' = 2.0 is above")])
def test_a_bad_knob_is_one_line_and_exit_2(tiny_task, tiny_encoder, tmp_path, knob, value, message):
    ladder = tmp_path / "static.yaml"
    ladder.write_text(f"rungs:\n  - {{name: s, kind: static, model: '{tiny_encoder}', {knob}: {value}}}\n")
    result = invoke("evaluate", tiny_task, "--ladder", ladder, "--out", tmp_path / "run", "--meter", "estimate")
    assert_one_line_error(result, str(ladder), message)


@pytest.fixture
def token_counter(monkeypatch) -> ScriptedCounter:
    """A counter charged 1 J for each vocabulary token the distillation runs through the encoder."""
    from rightsize import static_embeddings

    counter = ScriptedCounter()
    real = static_embeddings.token_vectors

    def counted(encoder, ids, *args, **kwargs):
        counter.joules += float(len(ids))
        return real(encoder, ids, *args, **kwargs)

    monkeypatch.setattr(static_embeddings, "token_vectors", counted)
    return counter


def test_static_configs_that_differ_after_the_token_pass_share_it_and_each_is_charged_its_cost(
        data, tiny_encoder, tmp_path, token_counter):
    context, meter = RunContext(cache=EmbeddingCache(tmp_path / "c")), Meter([token_counter])
    first = evaluate_rung(data, static(tiny_encoder, pca_dims=8), meter, context, EvalPlan())
    assert first.status == "ok", first.error
    assert first.joules["fit"] == pytest.approx(VOCABULARY) and first.joules_spent == first.joules
    assert (first.cache["hits"], first.cache["misses"]) == (0, VOCABULARY)

    for knobs in ({"pca_dims": 16}, {"pca_dims": 16, "sif_coefficient": None}):
        before = token_counter.joules
        second = evaluate_rung(data, static(tiny_encoder, **knobs), meter, context, EvalPlan())
        assert token_counter.joules == before  # no token went through the encoder again
        assert (second.cache["hits"], second.cache["misses"]) == (VOCABULARY, 0)
        assert second.joules_spent["fit"] == 0.0
        assert second.joules["fit"] == pytest.approx(first.joules["fit"])  # charged the pass it reused
        cold = evaluate_rung(data, static(tiny_encoder, **knobs), meter, RunContext(), EvalPlan())
        assert cold.joules_spent["fit"] == pytest.approx(VOCABULARY)  # without the cache: the whole pass
        assert second.predictions == cold.predictions
        assert second.metrics == cold.metrics and second.n_params == cold.n_params


def test_the_token_pass_is_shared_only_within_one_encoder_configuration(data, tiny_encoder, tmp_path, token_counter):
    context, meter = RunContext(cache=EmbeddingCache(tmp_path / "c")), Meter([token_counter])
    evaluate_rung(data, RungSpec("probe", "probe", str(tiny_encoder)), meter, context, EvalPlan())
    assert token_counter.joules == 0.0  # sentence embeddings are not token vectors
    evaluate_rung(data, static(tiny_encoder), meter, context, EvalPlan())
    assert token_counter.joules == VOCABULARY
    other = evaluate_rung(data, static(tiny_encoder, threads=1), meter, context, EvalPlan())
    assert token_counter.joules == 2 * VOCABULARY  # another thread count costs otherwise: its own pass
    assert other.cache["misses"] == VOCABULARY
