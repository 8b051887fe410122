"""Texts as token batches: tokenized once and packed (PackedTokens), and cut into length-sorted batches
(length_batches). The encoder's inference and the training loop (rightsize.training) both batch here."""

from __future__ import annotations

import itertools
from typing import Iterator, Sequence

import numpy as np

TOKENIZE_CHUNK = 2048  # texts tokenized per call before packing (bounds the tokenizer's objects)
CPU_PAD_SLACK = 1.5  # on the CPU a batch's padded tokens stay within 1.5x its real tokens (length_batches)


class PackedTokens:
    """Texts tokenized once (truncated to ``max_length``, not padded), packed, and padded batch by batch.

    Why packed: the tokenizer's own per-text objects take ~4 KB a text (200 MB for 50k short
    texts, more than an encoder's output matrix); packed, a token costs 1 to 4 bytes, so memory
    stays flat in n. Texts are tokenized ``TOKENIZE_CHUNK`` at a time; each output is kept in the
    smallest integer type that holds it (see :func:`_compact`), and one with a single value across
    a chunk (the attention mask before padding, single sentences' token type ids) as that value
    alone. ``chunks`` holds one dict per chunk (text i is in chunk i // TOKENIZE_CHUNK), ``starts``
    each text's start within its chunk and ``lengths`` each text's token count. The encoder's
    inference and the training loop (rightsize.training) both cut their length-sorted batches here.
    """

    def __init__(self, tokenizer, chunks: list[dict[str, np.ndarray]], starts: np.ndarray, lengths: np.ndarray):
        self.tokenizer = tokenizer
        self.chunks = chunks
        self.starts = starts
        self.lengths = lengths

    @classmethod
    def of(cls, tokenizer, texts: Sequence[str], max_length: int) -> "PackedTokens":
        n = len(texts)
        chunks: list[dict[str, np.ndarray]] = []
        lengths = np.empty(n, dtype=np.int32)
        starts = np.zeros(n, dtype=np.int32)  # within a chunk: < TOKENIZE_CHUNK x max_length
        for lo in range(0, n, TOKENIZE_CHUNK):
            hi = min(n, lo + TOKENIZE_CHUNK)
            encoded = tokenizer([texts[i] for i in range(lo, hi)], truncation=True, max_length=max_length,
                                padding=False)
            lengths[lo:hi] = [len(ids) for ids in encoded["input_ids"]]
            np.cumsum(lengths[lo : hi - 1], out=starts[lo + 1 : hi])
            chunks.append({key: _compact(np.fromiter(itertools.chain.from_iterable(rows), dtype=np.int64))
                           for key, rows in encoded.items()})
            del encoded
        return cls(tokenizer, chunks, starts, lengths)

    def row(self, key: str, i: int) -> list[int]:
        """Text ``i``'s values of the tokenizer output ``key``."""
        return _row(self.chunks[i // TOKENIZE_CHUNK][key], self.starts[i], self.lengths[i])

    def pad(self, idx: Sequence[int]) -> dict:
        """The texts ``idx`` as one batch of torch tensors, padded to the longest of them."""
        features = {key: [self.row(key, i) for i in idx] for key in self.chunks[0]}
        return self.tokenizer.pad(features, return_tensors="pt")


def _compact(ids: np.ndarray) -> np.ndarray:
    """``ids`` in the smallest signed integer type that holds them (masks and type ids fit in int8),
    or a 0-d array of the one value when all are equal (read back by :func:`_row`)."""
    if ids.size and (ids == ids[0]).all():
        return np.array(ids[0])
    for dtype in (np.int8, np.int16, np.int32):
        info = np.iinfo(dtype)
        if ids.size == 0 or (info.min <= ids.min() and ids.max() <= info.max):
            return ids.astype(dtype)
    return ids


def _row(packed: np.ndarray, start: int, length: int) -> list[int]:
    """One text's values of one tokenizer output, from its chunk's array packed by :func:`_compact`."""
    if packed.ndim == 0:
        return [int(packed)] * int(length)
    return packed[start : start + length].tolist()


def length_batches(order: np.ndarray, lengths: np.ndarray, batch_size: int, device: str) -> Iterator[np.ndarray]:
    """Runs of ``order`` (longest first) of at most ``batch_size`` texts each. On the CPU a run
    also ends before the padding would exceed :data:`CPU_PAD_SLACK` times its real tokens.

    Why: a batch is padded to its longest text, and on the CPU a forward pass costs about its
    padded tokens. A 50-text slice of Banking77 (median 14 tokens, longest 93) in one batch of
    64 took 1.45x the CPU time of the same texts cut by length (measured here with MiniLM-L6);
    growing-subset scoring in `rightsize search` encodes exactly such slices. On a GPU a batch
    costs about the same until the device is full, so there only ``batch_size`` cuts."""
    if device != "cpu":
        for start in range(0, len(order), batch_size):
            yield order[start : start + batch_size]
        return
    start = 0
    while start < len(order):
        longest = int(lengths[order[start]])
        real = longest
        end = start + 1
        while end < len(order) and end - start < batch_size:
            with_next = real + int(lengths[order[end]])
            if (end - start + 1) * longest > CPU_PAD_SLACK * with_next:
                break
            real, end = with_next, end + 1
        yield order[start:end]
        start = end
