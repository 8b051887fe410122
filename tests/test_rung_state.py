"""Each kind that fits something saves its fitted state and restores it: the same predictions after
``restore`` as after ``fit``, from files that are data only (JSON, safetensors, FAISS), never pickle."""

from __future__ import annotations

import pytest

from rightsize.rungs import RunContext, RungSpec, build_rung
from rightsize.tasks import load_data, load_task
from test_lm import build_tiny_lm

SAFE_SUFFIXES = {".json", ".safetensors", ".faiss"}


@pytest.fixture(scope="module")
def tiny_lm(tmp_path_factory):
    return build_tiny_lm(tmp_path_factory.mktemp("tiny-lm"))


@pytest.fixture
def data(tiny_task):
    return load_data(load_task(tiny_task))


def specs(encoder, lm) -> dict[str, RungSpec]:
    enc = str(encoder)
    return {
        "tfidf": RungSpec("tfidf", "tfidf"),
        "probe": RungSpec("probe", "probe", enc, {"batch_size": 8}),
        "knn-flat": RungSpec("knn", "knn", enc, {"k": 5}),
        "knn-hnsw": RungSpec("knn", "knn", enc, {"k": 5, "index": "hnsw"}),
        "knn-ivf": RungSpec("knn", "knn", enc, {"k": 5, "index": "ivf"}),
        "knn-probe": RungSpec("knn-probe", "knn-probe", enc, {"k": 5, "weight": 0.5}),
        "lm-zero-shot": RungSpec("lm", "lm", str(lm), {"max_length": 16}),
        "lm-few-shot": RungSpec("lm", "lm", str(lm), {"shots": 2, "retriever": enc, "max_length": 16}),
    }


@pytest.mark.parametrize("name", ["tfidf", "probe", "knn-flat", "knn-hnsw", "knn-ivf", "knn-probe", "lm-zero-shot",
                                  "lm-few-shot"])
def test_predictions_after_restore_equal_predictions_after_fit(name, data, tiny_encoder, tiny_lm, tmp_path):
    spec = specs(tiny_encoder, tiny_lm)[name]
    texts = data.validation.texts + data.test.texts
    folder = tmp_path / "state"
    folder.mkdir()
    fitted = build_rung(spec, RunContext())
    fitted.load()
    fitted.fit(data.train.texts, data.train.labels)
    expected = fitted.predict(texts)
    fitted.save(folder)
    fitted.close()
    assert {p.suffix for p in folder.iterdir()} <= SAFE_SUFFIXES

    restored = build_rung(spec, RunContext())
    restored.load()
    restored.restore(folder)
    assert restored.predict(texts) == expected
    assert restored.n_params() == fitted.n_params()
    if not name.startswith("lm"):  # a random tiny LM may well say one label; the rest learned the words
        assert len(set(expected)) > 1


def test_a_rung_that_fits_nothing_it_can_save_says_so(tmp_path):
    from rightsize.rungs.base import Rung

    class Plain(Rung):
        kind = "test-plain"

        def load(self):
            pass

        def fit(self, texts, labels):
            pass

        def predict(self, texts):
            return []

        def n_params(self):
            return 0

    rung = Plain(RungSpec("plain", "test-plain"), RunContext())
    with pytest.raises(NotImplementedError, match="test-plain"):
        rung.save(tmp_path)
    with pytest.raises(NotImplementedError, match="test-plain"):
        rung.restore(tmp_path)
    assert rung.training() == {} and Plain.trained is False


def test_a_mismatched_state_is_refused(data, tmp_path):
    spec = RungSpec("tfidf", "tfidf")
    tmp_path = tmp_path / "state"
    tmp_path.mkdir()
    fitted = build_rung(spec, RunContext())
    fitted.load()
    fitted.fit(data.train.texts, data.train.labels)
    fitted.save(tmp_path)
    (tmp_path / "vocabulary.json").write_text('["only", "two"]')
    restored = build_rung(spec, RunContext())
    restored.load()
    with pytest.raises(ValueError, match="vocabulary"):
        restored.restore(tmp_path)
