"""The encoder's output assembly: texts run in length order, batch by batch, and each batch is
written straight into its texts' rows of one preallocated matrix (no list of batch outputs, no
reordering copy). Row i must be text i's vector whatever the lengths, chunk edges and repeats, with
or without the embedding cache; and the packed token arrays must read back as the tokenizer's own.
"""

from __future__ import annotations

import hashlib
from typing import Any

import numpy as np
import pytest

from rightsize import encoder as E
from rightsize import token_batches as TB
from rightsize.cache import EmbeddingCache, _checksum, text_keys
from rightsize.energy.meter import Meter
from rightsize.energy.counter import StepFree

WORDS = "rain storm cold bank card fee team goal win the sun is warm loan rate cash".split()


def mixed_texts() -> list[str]:
    """Lengths from 1 word to past max_length (32 tokens), repeats at a distance, an empty text."""
    texts = [" ".join(WORDS[(3 * i) % 7 :][: 1 + (5 * i) % 13]) for i in range(26)]
    return texts + ["", " ".join(WORDS * 4), texts[3], texts[0]]


class Counter(StepFree):
    name = source = "fake"

    def read(self) -> dict[str, float]:
        return {"fake": 0.0}

    def describe(self) -> dict[str, Any]:
        return {}

    def close(self) -> None:
        pass


@pytest.fixture
def small_chunks(monkeypatch):
    monkeypatch.setattr(TB, "TOKENIZE_CHUNK", 5)  # many chunks, their edges inside batches


def loaded(folder, **kw) -> E.Encoder:
    enc = E.Encoder(str(folder), batch_size=4, **kw)
    enc.load()
    return enc


def one_by_one(enc: E.Encoder, texts: list[str]) -> np.ndarray:
    """Each text alone through sentence-transformers: no padding, no ordering to get wrong."""
    return enc.st.encode(texts, batch_size=1, normalize_embeddings=True, convert_to_numpy=True)


def test_rows_follow_the_input_order_with_mixed_lengths_and_repeats(tiny_encoder, small_chunks):
    texts = mixed_texts()
    assert len({len(t.split()) for t in texts}) > 8 and len(set(texts)) < len(texts)
    enc = loaded(tiny_encoder)
    got = enc.encode(texts)
    assert got.shape == (len(texts), enc.dimension) and got.dtype == np.float32
    np.testing.assert_allclose(got, one_by_one(enc, texts), atol=1e-5)
    for i, text in enumerate(texts):  # a repeat gets its text's vector (batches may pad it differently)
        np.testing.assert_allclose(got[i], got[texts.index(text)], atol=1e-6)


def test_compute_writes_each_batch_into_the_given_rows_only(tiny_encoder, small_chunks):
    texts = mixed_texts()
    enc = loaded(tiny_encoder)
    out = np.full((len(texts) + 3, enc.dimension), 7.0, dtype=np.float32)
    rows = np.random.default_rng(0).permutation(len(out))[: len(texts)]
    returned, lengths = enc._compute(texts, out=out, rows=rows)
    assert returned is out  # filled in place, not a copy
    np.testing.assert_allclose(out[rows], one_by_one(enc, texts), atol=1e-5)
    untouched = np.setdiff1d(np.arange(len(out)), rows)
    assert (out[untouched] == 7.0).all()
    assert lengths.tolist() == [len(ids) for ids in enc.st.tokenizer(texts, truncation=True, max_length=32)["input_ids"]]


def test_packed_tokens_read_back_as_the_tokenizer_output(tiny_encoder, small_chunks):
    texts = mixed_texts()
    enc = loaded(tiny_encoder)
    tokens = TB.PackedTokens.of(enc.st.tokenizer, texts, enc.max_length)
    want = enc.st.tokenizer(texts, truncation=True, max_length=enc.max_length, padding=False)
    assert len(tokens.chunks) == -(-len(texts) // TB.TOKENIZE_CHUNK)
    for key, rows in want.items():
        assert [tokens.row(key, i) for i in range(len(texts))] == rows, key
    # One value per chunk (a mask before padding, single sentences' type ids) costs no memory per token.
    assert all(chunk["attention_mask"].ndim == 0 for chunk in tokens.chunks)
    assert all(chunk["input_ids"].dtype == np.int8 for chunk in tokens.chunks)  # 40 words fit in int8
    # A batch is padded to its longest text, and its mask says which tokens are real.
    batch = tokens.pad([0, 26])
    assert batch["input_ids"].shape == (2, max(tokens.lengths[[0, 26]]))
    assert batch["attention_mask"].sum(dim=1).tolist() == tokens.lengths[[0, 26]].tolist()


def test_compact_keeps_values_and_picks_the_smallest_type():
    np.testing.assert_array_equal(TB._compact(np.array([5, -3, 300])), [5, -3, 300])
    assert TB._compact(np.array([5, -3, 300])).dtype == np.int16
    assert TB._compact(np.array([1, 2**40])).dtype == np.int64
    constant = TB._compact(np.array([1, 1, 1]))
    assert constant.ndim == 0 and TB._row(constant, 7, 3) == [1, 1, 1]
    assert TB._compact(np.zeros(0, dtype=np.int64)).size == 0


@pytest.mark.parametrize("warm", [[], [0, 5, 9], list(range(12))])
def test_cached_rows_follow_the_input_order_with_hits_misses_and_repeats(tiny_encoder, tmp_path, small_chunks, warm):
    """Misses are encoded straight into the output's rows; repeats of a hit or of a miss take its
    row; the shard written holds the vectors that were returned."""
    texts = mixed_texts()
    cache, meter = EmbeddingCache(tmp_path / "c"), Meter([Counter()])
    loaded(tiny_encoder, cache=cache, meter=meter).encode([texts[i] for i in warm])
    enc = loaded(tiny_encoder, cache=cache, meter=meter)
    got = enc.encode(texts)
    plain = loaded(tiny_encoder).encode(texts)
    np.testing.assert_allclose(got, plain, atol=1e-5)
    for i, text in enumerate(texts):
        np.testing.assert_array_equal(got[i], got[texts.index(text)])  # repeats copied, exactly
    distinct_new = len(set(texts) - {texts[i] for i in warm})
    assert enc.ledger.misses == distinct_new and enc.ledger.hits == len(texts) - distinct_new
    again = loaded(tiny_encoder, cache=cache, meter=meter)
    np.testing.assert_array_equal(again.encode(texts), got)  # served from the shards just written
    assert again.ledger.misses == 0


def test_cold_cache_of_distinct_texts_stores_the_output_itself(tiny_encoder, tmp_path):
    texts = list(dict.fromkeys(mixed_texts()))
    cache, meter = EmbeddingCache(tmp_path / "c"), Meter([Counter()])
    stored = []
    real_store = cache.store
    cache.store = lambda ns, keys, vectors, j, s: stored.append(vectors) or real_store(ns, keys, vectors, j, s)
    got = loaded(tiny_encoder, cache=cache, meter=meter).encode(texts)
    assert len(stored) == 1 and stored[0] is got  # no (n x dim) copy for the shard


def test_lookup_fills_repeated_keys_in_place(tmp_path):
    cache = EmbeddingCache(tmp_path / "c")
    dim = 4
    cache.store("ns", text_keys(["a", "b"]), np.array([[1.0] * dim, [2.0] * dim], np.float32),
                np.array([1.0, 2.0]), np.array([0.1, 0.2]))
    served = cache.lookup("ns", text_keys(["b", "x", "a", "b", "x", "a", "a"]), dim)
    assert served.found.tolist() == [True, False, True, True, False, True, True]
    np.testing.assert_array_equal(served.vectors[:, 0], [2, 0, 1, 2, 0, 1, 1])
    np.testing.assert_array_equal(served.joules, [2, 0, 1, 2, 0, 1, 1])
    np.testing.assert_array_equal(served.seconds, [0.2, 0, 0.1, 0.2, 0, 0.1, 0.1])


def test_the_checksum_is_over_the_same_bytes_as_before():
    """Hashing the arrays' buffers instead of ``tobytes()`` copies must not change any checksum, or
    every shard already on disk would read as corrupt."""
    arrays = {"keys": text_keys(["a", "b", "c"]), "vectors": np.arange(12, dtype=np.float32).reshape(3, 4),
              "joules": np.array([1.0, 2.0, 3.5]), "seconds": np.array([0.1, 0.2, 0.3])}
    h = hashlib.sha256()
    for name in ("keys", "vectors", "joules", "seconds"):
        a = arrays[name]
        h.update(f"{name}:{a.dtype.str}:{a.shape}".encode())
        h.update(np.ascontiguousarray(a).tobytes())
    assert _checksum(arrays) == h.hexdigest()
    arrays["vectors"] = np.asfortranarray(np.arange(12, dtype=np.float32).reshape(3, 4))
    assert _checksum(arrays) == h.hexdigest()  # a non-contiguous input hashes as its C-order bytes


@pytest.mark.parametrize("device", ["cpu", "cuda"])
def test_batches_cover_every_text_once_longest_first_within_the_batch_size(device):
    lengths = np.array([3, 40, 5, 5, 6, 38, 4, 4, 5, 3], dtype=np.int32)
    order = np.argsort(-lengths, kind="stable")
    batches = list(TB.length_batches(order, lengths, 4, device))
    assert np.array_equal(np.concatenate(batches), order) and all(len(b) <= 4 for b in batches)
    if device == "cuda":  # a GPU batch costs about the same until the device is full: size cuts only
        assert [len(b) for b in batches] == [4, 4, 2]
    else:
        # 40 38 6: 120 padded tokens for 84 real (within 1.5x); a 5 more would make 160 for 89: cut.
        # Then 5 5 5 4 (20 for 19), then 4 3 3 (12 for 10).
        assert [lengths[b].tolist() for b in batches] == [[40, 38, 6], [5, 5, 5, 4], [4, 3, 3]]
        for b in batches:
            assert len(b) * lengths[b].max() <= TB.CPU_PAD_SLACK * lengths[b].sum()


def test_a_text_longer_than_all_others_by_far_gets_a_batch_of_its_own():
    lengths = np.array([2] * 10 + [100], dtype=np.int32)
    batches = list(TB.length_batches(np.argsort(-lengths, kind="stable"), lengths, 64, "cpu"))
    assert [len(b) for b in batches] == [1, 10]
