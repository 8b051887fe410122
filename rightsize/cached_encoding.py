"""An encoder's texts through the embedding cache: each text encoded once per encoder configuration.

Misses are encoded inside their own meter window and stored with that measured cost net of idle (split
by token share; at the namespace's encode rate when the window was too short for the meter to resolve);
hits are served from disk and their stored cost is charged to the ledger, so a configuration's energy is
the same whether or not the cache served it.
"""

from __future__ import annotations

import itertools
import logging
from typing import TYPE_CHECKING, Callable, Sequence

import numpy as np

from rightsize.cache import CacheLedger, EmbeddingCache, split_cost, text_keys

if TYPE_CHECKING:
    from rightsize.energy import Meter

log = logging.getLogger(__name__)
_windows = itertools.count()

# Computes the rows ``todo`` of ``out`` for real; returns the tokens each took.
Compute = Callable[[np.ndarray, np.ndarray], np.ndarray]


class CachedEncoding:
    """The cache, namespace, meter and ledger of one loaded encoder."""

    def __init__(self, cache: EmbeddingCache, namespace: str, meter: Meter, ledger: CacheLedger):
        self.cache, self.namespace, self.meter, self.ledger = cache, namespace, meter, ledger

    def encode(self, texts: Sequence[str], compute_texts, dimension: int) -> np.ndarray:
        """``texts`` embedded (input order kept); ``compute_texts(texts, out=, rows=)`` is the encoder's."""
        def compute(todo: np.ndarray, out: np.ndarray) -> np.ndarray:
            return compute_texts([texts[i] for i in todo], out=out, rows=todo)[1]

        return self.serve(self.namespace, text_keys(texts), dimension, compute)

    def serve(self, namespace: str, keys: np.ndarray, dim: int, compute: Compute) -> np.ndarray:
        """The vectors of ``keys`` in ``namespace``, the missing ones computed, inside one meter window
        the ledger adds up. Other namespaces hold vectors derived from the same model (a static
        model's token vectors), served and charged as encodes are."""
        window = f"encode-{next(_windows)}"
        self.meter.begin(window)
        try:
            return self._serve(namespace, keys, dim, compute)
        finally:
            m = self.meter.end(window)
            self.ledger.encode_joules += m.net_joules
            self.ledger.encode_seconds += m.seconds

    def _serve(self, namespace: str, keys: np.ndarray, dim: int, compute: Compute) -> np.ndarray:
        served = self.cache.lookup(namespace, keys, dim)
        out = served.vectors
        joules, seconds = served.joules, served.seconds
        # Compute each missing key once, even if it occurs several times in ``keys``.
        _, first, inverse = np.unique(keys, return_index=True, return_inverse=True)
        todo = np.sort(first[~served.found[first]])
        if len(todo):
            window = f"encode-miss-{next(_windows)}"
            self.meter.begin(window)
            try:
                # Straight into the output's rows: no second (misses x dim) matrix to copy from.
                tokens = compute(todo, out)
            finally:
                m = self.meter.end(window)
            cost_j, cost_s = split_cost(m.net_joules, tokens), split_cost(m.seconds, tokens)
            joules[todo], seconds[todo] = cost_j, cost_s
            stored_j = self._stored_cost(namespace, m, tokens, cost_j)
            if stored_j is not None:
                # The shard needs the new rows contiguous: the output itself when every key was a new,
                # distinct one (a cold cache), else a copy of just those rows.
                self.cache.store(namespace, keys[todo], out if len(todo) == len(out) else out[todo],
                                 stored_j, cost_s)
                self.ledger.stored += len(todo)
            # Repeats of a key computed just now take its row and its cost.
            source = first[np.ravel(inverse)]  # each key's first occurrence
            repeats = np.flatnonzero(~served.found & (source != np.arange(len(keys))))
            out[repeats] = out[source[repeats]]
            joules[repeats], seconds[repeats] = joules[source[repeats]], seconds[source[repeats]]
        # Everything not computed just now (hits and repeats) is charged its measured cost.
        charged = np.ones(len(keys), dtype=bool)
        charged[todo] = False
        self.ledger.hits += int(charged.sum())
        self.ledger.misses += len(todo)
        self.ledger.charged_joules += float(joules[charged].sum())
        self.ledger.charged_seconds += float(seconds[charged].sum())
        return out

    def _stored_cost(self, namespace: str, m, tokens: np.ndarray, measured: np.ndarray) -> np.ndarray | None:
        """What the cache keeps as these keys' cost: as measured when the window was resolved (which
        also adds to the encode rate), else the encode rate's share; None (store nothing) before a rate."""
        if not m.below_resolution:
            self.cache.add_to_encode_rate(namespace, m.net_joules, int(np.sum(tokens)))
            return measured
        rate = self.cache.encode_rate(namespace)
        if rate is None:
            log.debug("compute of %d keys below the meter's resolution and no encode rate yet: not cached",
                      len(tokens))
            return None
        return rate * np.asarray(tokens, dtype=np.float64)
