"""The embedding cache: hits, misses, corruption, the size bound, the CLI, and the energy rule.

The energy rule is pinned with a scripted meter whose only energy is what the encoder's forward
passes add (1 J per text), so every number in the assertions is exact.
"""

from __future__ import annotations

import logging
import os
import zipfile

import numpy as np
import pytest
from click.testing import CliRunner

from rightsize.cache import EmbeddingCache, split_cost, text_keys
from rightsize.cli import cli
from rightsize.encoder import Encoder
from rightsize.energy.meter import Meter
from rightsize.evaluate import EvalPlan, evaluate_rung
from rightsize.rungs import RunContext, RungSpec
from rightsize.tasks import load_data, load_task
from rightsize.energy.counter import StepFree

TEXTS = ["rain storm cold", "bank card fee", "team goal win", "the sun is warm", "loan rate cash"]


def encoder(folder, cache, meter, **kw) -> Encoder:
    enc = Encoder(str(folder), cache=cache, meter=meter, **{"batch_size": 2, **kw})
    enc.load()
    return enc


def test_miss_then_hit_serves_the_same_vectors_and_charges_the_measured_cost(tiny_encoder, tmp_path, counter):
    cache, meter = EmbeddingCache(tmp_path / "c"), Meter([counter])
    first = encoder(tiny_encoder, cache, meter)
    v1 = first.encode(TEXTS)
    assert (first.ledger.hits, first.ledger.misses) == (0, 5)
    assert counter.joules == 5.0 and first.ledger.charged_joules == 0.0
    second = encoder(tiny_encoder, cache, meter)
    v2 = second.encode(TEXTS[::-1])
    assert counter.joules == 5.0  # nothing encoded again
    np.testing.assert_array_equal(v2, v1[::-1])
    assert (second.ledger.hits, second.ledger.misses) == (5, 0)
    assert second.ledger.charged_joules == pytest.approx(5.0)  # what encoding them cost the first time


def test_only_the_missing_texts_are_encoded_and_repeats_once(tiny_encoder, tmp_path, counter):
    cache, meter = EmbeddingCache(tmp_path / "c"), Meter([counter])
    encoder(tiny_encoder, cache, meter).encode(TEXTS[:2])
    enc = encoder(tiny_encoder, cache, meter)
    before = counter.joules
    vectors = enc.encode(TEXTS + [TEXTS[4]])
    assert counter.joules - before == 3.0  # three new texts; the repeated one is encoded once
    assert (enc.ledger.hits, enc.ledger.misses) == (3, 3)
    np.testing.assert_array_equal(vectors[5], vectors[4])
    fresh = Encoder(str(tiny_encoder), batch_size=2)
    fresh.load()
    np.testing.assert_allclose(vectors, fresh.encode(TEXTS + [TEXTS[4]]), atol=1e-6)


def test_configurations_do_not_share_entries(tiny_encoder, tmp_path, counter):
    cache, meter = EmbeddingCache(tmp_path / "c"), Meter([counter])
    a = encoder(tiny_encoder, cache, meter)
    b = encoder(tiny_encoder, cache, meter, layers=1)
    c = encoder(tiny_encoder, cache, meter, batch_size=4)  # same vectors, different cost: own entry
    assert len({a.namespace, b.namespace, c.namespace}) == 3
    a.encode(TEXTS)
    b.encode(TEXTS)
    assert b.ledger.misses == 5 and not np.allclose(a.encode(TEXTS), b.encode(TEXTS))


def corrupt_truncate(path):
    path.write_bytes(path.read_bytes()[:100])


def corrupt_flip_a_byte(path):
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0xFF
    path.write_bytes(bytes(data))


def corrupt_checksum(path):
    """A well-formed file whose vectors no longer match its checksum."""
    with np.load(path) as z:
        arrays = {k: z[k] for k in z.files}
    arrays["vectors"] = arrays["vectors"] + 1.0
    with open(path, "wb") as f:
        np.savez(f, **arrays)


def corrupt_shape(path):
    with np.load(path) as z:
        arrays = {k: z[k] for k in z.files}
    arrays["vectors"] = arrays["vectors"][:, :5]
    with open(path, "wb") as f:
        np.savez(f, **arrays)


@pytest.mark.parametrize("corrupt", [corrupt_truncate, corrupt_flip_a_byte, corrupt_checksum, corrupt_shape])
def test_a_corrupt_entry_is_detected_deleted_and_recomputed(tiny_encoder, tmp_path, counter, caplog, corrupt):
    cache, meter = EmbeddingCache(tmp_path / "c"), Meter([counter])
    good = encoder(tiny_encoder, cache, meter).encode(TEXTS)
    (shard,) = cache.shards()
    corrupt(shard)
    enc = encoder(tiny_encoder, cache, meter)
    with caplog.at_level(logging.WARNING, logger="rightsize.cache"):
        again = enc.encode(TEXTS)
    assert "corrupt" in caplog.text and shard.name in caplog.text
    assert enc.ledger.misses == 5 and enc.ledger.hits == 0  # nothing trusted
    np.testing.assert_allclose(again, good, atol=1e-6)
    assert len(cache.shards()) == 1  # the bad shard is gone, a good one written in its place
    third = encoder(tiny_encoder, cache, meter)
    third.encode(TEXTS)
    assert third.ledger.hits == 5 and counter.joules == 10.0  # encoded twice in all, then served


def test_the_size_bound_evicts_the_least_recently_used_shard(tmp_path):
    cache = EmbeddingCache(tmp_path / "c", max_bytes=10**9)
    dim = 64
    shards = {}
    for i, name in enumerate("abc"):
        keys = text_keys([f"{name}{j}" for j in range(50)])
        shards[name] = cache.store("ns", keys, np.full((50, dim), i, np.float32), np.ones(50), np.ones(50))
        os.utime(shards[name], ns=(10**18 + i * 10**9, 10**18 + i * 10**9))  # a, b, c: oldest first
    assert cache.lookup("ns", text_keys(["a0"]), dim).found.all()  # reading a marks it used
    cache.max_bytes = cache.size_bytes() - 1
    assert cache.evict() == 1
    assert not shards["b"].exists() and shards["a"].exists() and shards["c"].exists()
    assert cache.size_bytes() <= cache.max_bytes


def test_a_shard_larger_than_the_bound_is_not_kept(tmp_path):
    cache = EmbeddingCache(tmp_path / "c", max_bytes=1000)
    keys = text_keys([str(i) for i in range(100)])
    assert cache.store("ns", keys, np.zeros((100, 32), np.float32), np.ones(100), np.ones(100)) is None
    assert cache.size_bytes() == 0


def test_cost_is_split_by_token_share():
    np.testing.assert_allclose(split_cost(10.0, np.array([1, 3, 6])), [1.0, 3.0, 6.0])
    assert split_cost(6.0, np.array([0, 0])).tolist() == [3.0, 3.0]


def test_weights_hash_is_memoized_and_follows_the_files(tmp_path):
    folder = tmp_path / "model"
    folder.mkdir()
    (folder / "model.safetensors").write_bytes(b"weights-1")
    cache = EmbeddingCache(tmp_path / "c")
    first = cache.weights_hash(folder)
    assert cache.weights_hash(folder) == first and (cache.root / "weights-sha256.json").exists()
    (folder / "model.safetensors").write_bytes(b"weights-2!")
    assert cache.weights_hash(folder) != first


def test_cache_info_and_clear_from_the_cli(tiny_encoder, tmp_path, counter):
    root = tmp_path / "c"
    encoder(tiny_encoder, EmbeddingCache(root), Meter([counter])).encode(TEXTS)
    info = CliRunner().invoke(cli, ["cache", "info", "--cache-dir", str(root)])
    assert info.exit_code == 0, info.output
    assert str(tiny_encoder) in info.output and "MiB" in info.output
    cleared = CliRunner().invoke(cli, ["cache", "clear", "--cache-dir", str(root)])
    assert cleared.exit_code == 0 and "cleared" in cleared.output
    assert EmbeddingCache(root).size_bytes() == 0


# ---------------------------------------------------------------- the energy accounting rule


@pytest.fixture
def data(tiny_task):
    return load_data(load_task(tiny_task))


@pytest.mark.parametrize("kind", ["knn", "probe", "knn-probe"])
def test_energy_rule_a_cached_run_costs_the_same_and_spends_nothing_on_encoding(
        data, tiny_encoder, tmp_path, counter, kind):
    context = RunContext(cache=EmbeddingCache(tmp_path / "c"))
    meter = Meter([counter])
    spec = RungSpec("r", kind, str(tiny_encoder), {"batch_size": 4})
    n_train, n_val = len(data.train.texts), len(data.validation.texts)

    first = evaluate_rung(data, spec, meter, context, EvalPlan())
    assert first.status == "ok", first.error
    assert first.joules_spent == first.joules  # nothing was cached: cost is what was spent
    assert first.joules["fit"] == pytest.approx(n_train) and first.joules["infer"] == pytest.approx(n_val)
    assert first.cache["misses"] == n_train + n_val and first.cache["hits"] == 0

    second = evaluate_rung(data, spec, meter, context, EvalPlan())
    assert second.joules_spent["fit"] == 0.0 and second.joules_spent["infer"] == 0.0
    assert second.joules == pytest.approx(first.joules)  # the config's cost does not change
    assert second.joules_per_query == pytest.approx(first.joules_per_query)
    assert second.joules_per_query_spent == 0.0
    assert second.cache["hits"] == n_train + n_val and second.cache["misses"] == 0
    assert second.cache["charged_joules"] == pytest.approx(n_train + n_val)


def test_energy_rule_other_configs_with_the_same_encoder_are_charged_too(data, tiny_encoder, tmp_path, counter):
    context, meter = RunContext(cache=EmbeddingCache(tmp_path / "c")), Meter([counter])
    knn = evaluate_rung(data, RungSpec("knn", "knn", str(tiny_encoder), {"batch_size": 4}), meter, context)
    probe = evaluate_rung(data, RungSpec("probe", "probe", str(tiny_encoder), {"batch_size": 4}), meter, context)
    assert probe.joules_total_spent == 0.0
    assert probe.joules["fit"] == pytest.approx(knn.joules["fit"])


def test_without_a_cache_every_run_spends_its_cost(data, tiny_encoder, counter):
    spec = RungSpec("r", "knn", str(tiny_encoder), {"batch_size": 4})
    for _ in range(2):
        record = evaluate_rung(data, spec, Meter([counter]), RunContext(cache=None))
        assert record.joules == record.joules_spent
        assert record.joules["fit"] == pytest.approx(len(data.train.texts))


@pytest.mark.parametrize("command", ["evaluate", "search"])
@pytest.mark.parametrize("problem", ["file", "max"])
def test_an_unusable_cache_setting_is_one_line_before_any_evaluation(tiny_task, tiny_ladder, tmp_path, monkeypatch,
                                                                    problem, command):
    args = [command, str(tiny_task), "--ladder", str(tiny_ladder), "--out", str(tmp_path / "run")]
    if problem == "file":
        blocker = tmp_path / "a-file"
        blocker.write_text("x")
        args += ["--cache-dir", str(blocker / "cache")]
        expected = "embedding cache"
    else:
        monkeypatch.setenv("RIGHTSIZE_CACHE_MAX_MB", "lots")
        expected = "RIGHTSIZE_CACHE_MAX_MB='lots'"
    result = CliRunner().invoke(cli, args)
    assert result.exit_code == 2, result.output
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert len(lines) == 1 and expected in lines[0] and "Traceback" not in result.output
    assert not (tmp_path / "run" / "runs.jsonl").exists()


def test_no_cache_encodes_every_time(tiny_task, tiny_ladder, tmp_path):
    from rightsize.results import RunLog

    root = tmp_path / "c"
    for _ in range(2):
        result = CliRunner().invoke(cli, ["evaluate", str(tiny_task), "--ladder", str(tiny_ladder), "--rungs",
                                          "tiny-knn", "--out", str(tmp_path / "run"), "--force", "--no-cache",
                                          "--cache-dir", str(root), "--meter", "estimate", "--quiet"])
        assert result.exit_code == 0, result.output
    records = RunLog(tmp_path / "run", create=False).records()
    assert [r.cache["hits"] for r in records] == [0, 0] and not root.exists()


def test_the_attention_kernel_is_keyed_as_loaded(tiny_encoder, tmp_path, counter):
    cache, meter = EmbeddingCache(tmp_path / "c"), Meter([counter])
    default = encoder(tiny_encoder, cache, meter)
    assert default.attn_used == "sdpa"  # BERT's default kernel
    assert encoder(tiny_encoder, cache, meter, attn_implementation="sdpa").namespace == default.namespace
    assert encoder(tiny_encoder, cache, meter, attn_implementation="eager").namespace != default.namespace
