"""FAISS nearest-neighbour search over normalized embeddings, and neighbour label votes."""

from __future__ import annotations

import math

import numpy as np

INDEX_KINDS = ("flat", "hnsw", "ivf")


def build_index(vectors: np.ndarray, kind: str = "flat", *, hnsw_m: int = 32, nprobe: int = 8, seed: int = 0):
    """An inner-product index over L2-normalized ``vectors`` (inner product = cosine).

    ``flat`` is exact; ``hnsw`` and ``ivf`` are approximate and pay off only when exact search
    over a large train split dominates the energy.
    """
    import faiss

    vectors = np.ascontiguousarray(vectors, dtype=np.float32)
    n, d = vectors.shape
    if kind == "flat":
        index = faiss.IndexFlatIP(d)
    elif kind == "hnsw":
        index = faiss.IndexHNSWFlat(d, hnsw_m, faiss.METRIC_INNER_PRODUCT)
    elif kind == "ivf":
        # ~sqrt(n) lists is the usual rule of thumb; FAISS wants ~39 training points per list.
        nlist = max(1, min(int(math.sqrt(n)), n // 39 or 1))
        quantizer = faiss.IndexFlatIP(d)
        index = faiss.IndexIVFFlat(quantizer, d, nlist, faiss.METRIC_INNER_PRODUCT)
        index.cp.seed = seed
        index.train(vectors)
        index.nprobe = min(nprobe, nlist)
    else:
        raise ValueError(f"unknown index kind {kind!r}")
    index.add(vectors)
    return index


def search(index, queries: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Top-``k`` similarities and train positions for each query (positions -1 where missing)."""
    k = min(k, index.ntotal)
    sims, ids = index.search(np.ascontiguousarray(queries, dtype=np.float32), k)
    return sims, ids


def neighbour_distribution(
    sims: np.ndarray, ids: np.ndarray, train_label_ids: np.ndarray, n_classes: int, temperature: float
) -> np.ndarray:
    """Label distribution per query from its neighbours, each weighted by exp(similarity / T).

    The softmax weighting (as in kNN-LM) lets a close neighbour outvote several distant ones;
    a large temperature approaches a plain majority vote.
    """
    valid = ids >= 0
    logits = np.where(valid, sims / temperature, -np.inf)
    logits -= logits.max(axis=1, keepdims=True)
    weights = np.where(valid, np.exp(logits), 0.0)
    dist = np.zeros((len(ids), n_classes), dtype=np.float64)
    rows = np.repeat(np.arange(len(ids)), ids.shape[1])
    np.add.at(dist, (rows, train_label_ids[np.where(valid, ids, 0)].ravel()), weights.ravel())
    dist /= np.maximum(dist.sum(axis=1, keepdims=True), 1e-12)
    return dist


def index_bytes(index) -> int:
    """Serialized size of an index: what serving it would hold in memory."""
    import faiss

    return int(faiss.serialize_index(index).nbytes)
