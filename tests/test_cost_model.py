"""The cost model's lower bounds: compute weights (rightsize.model_facts) times rates from records."""

from __future__ import annotations

import pytest

from rightsize.cost_model import SAFETY, UNSEEN_SETTINGS, CostModel, settings_of
from rightsize.records import Record
from rightsize.rungs import RungSpec
from test_model_facts import PER_LAYER, POOLER


def knn(model, **knobs) -> RungSpec:
    return RungSpec("k", "knn", str(model), knobs)


def test_a_lower_bound_scales_the_least_rate_of_the_same_settings(tiny_encoder):
    cost = CostModel()
    assert cost.lower_bound(knn(tiny_encoder)) is None  # nothing measured: no bound
    cost.observe(knn(tiny_encoder), Record(joules_per_query=2.0))
    cost.observe(knn(tiny_encoder, k=3), Record(joules_per_query=1.0))  # same settings: the least rate wins
    full = 2 * PER_LAYER + POOLER
    assert cost.lower_bound(knn(tiny_encoder, k=20)) == pytest.approx(SAFETY * 1.0)
    assert cost.lower_bound(knn(tiny_encoder, layers=1)) == pytest.approx(SAFETY * (PER_LAYER + POOLER) / full)
    # Settings never measured might be cheaper in ways no one can predict: a wider margin.
    assert cost.lower_bound(knn(tiny_encoder, precision="int8")) == pytest.approx(SAFETY * UNSEEN_SETTINGS)
    assert cost.lower_bound(RungSpec("t", "tfidf")) is None  # no model, no compute weights


def test_records_without_a_cost_teach_nothing(tiny_encoder):
    cost = CostModel()
    cost.observe(knn(tiny_encoder), Record(joules_per_query=None))
    cost.observe(RungSpec("t", "tfidf"), Record(joules_per_query=0.5))
    assert cost.lower_bound(knn(tiny_encoder)) is None


def test_settings_fill_in_the_rung_defaults(tiny_encoder):
    assert settings_of(knn(tiny_encoder)) == settings_of(knn(tiny_encoder, precision="fp32", batch_size=64))
    assert settings_of(knn(tiny_encoder)) != settings_of(knn(tiny_encoder, batch_size=8))


def test_an_unreadable_model_gives_no_bound(tmp_path):
    (tmp_path / "m").mkdir()
    cost = CostModel()
    cost.observe(knn(tmp_path / "m"), Record(joules_per_query=1.0))
    assert cost.lower_bound(knn(tmp_path / "m")) is None


def test_the_search_order_estimate_is_weights_times_the_rate_known(tiny_encoder, tmp_path):
    cost = CostModel()
    full, one = 2 * PER_LAYER + POOLER, PER_LAYER + POOLER
    assert cost.estimate(RungSpec("t", "tfidf")) == 0.0  # no model: first
    assert cost.estimate(knn(tiny_encoder)) == full  # nothing measured: compute weights alone order them
    assert cost.estimate(knn(tiny_encoder, layers=1)) == one
    cost.observe(knn(tiny_encoder), Record(joules_per_query=2.0))
    assert cost.estimate(knn(tiny_encoder, layers=1)) == pytest.approx(2.0 * one / full)
    assert cost.estimate(knn(tiny_encoder, precision="int8")) == pytest.approx(2.0)  # any rate known, no margin
    (tmp_path / "config.json").write_text("{}")  # a model whose weights cannot be read: last
    assert cost.estimate(knn(tmp_path)) == float("inf")
