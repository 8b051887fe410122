"""The ``threads`` knob: how many CPU threads a config may use, in every thread pool it touches.

Three pools do a config's work on the CPU: torch's (the encoder's forward pass), FAISS's OpenMP
(the index) and the BLAS that numpy and scipy call (the logistic regressions of the probe and
TF-IDF heads, through scikit-learn). All three are process-wide, so a config's count is set when it
loads and undone when it is done (:func:`restore_threads`): the next config with ``threads`` unset
means "as the process had it", not the last config's count.

Why BLAS too: the heads' fits are many small matrix products, where a second BLAS thread mostly
waits. Measured here (2 vCPUs): a TF-IDF logistic regression on 500 TREC-6 texts used 1.6 s of CPU
with BLAS at 2 threads and 0.19 s at 1, in about the same wall time, so a ``threads: 1`` config whose
BLAS kept every core was charged up to 8x its fit's energy.
"""

from __future__ import annotations

from typing import Any

_BEFORE: dict[str, Any] = {}  # the pools as they were before the first config set its own count


def set_threads(threads: int | None) -> None:
    """Limit torch, FAISS and BLAS to ``threads`` (None: leave them as they are)."""
    if threads is None:
        return
    import faiss
    import torch
    from threadpoolctl import threadpool_limits

    _BEFORE.setdefault("torch", torch.get_num_threads())
    _BEFORE.setdefault("faiss", faiss.omp_get_max_threads())
    torch.set_num_threads(threads)
    faiss.omp_set_num_threads(threads)
    limiter = threadpool_limits(limits=threads, user_api="blas")
    _BEFORE.setdefault("blas", limiter)  # the first limiter since a restore holds the original counts


def restore_threads() -> None:
    """Undo :func:`set_threads` once a config is done."""
    if not _BEFORE:
        return
    import faiss
    import torch

    # BLAS first: an OpenMP build of OpenBLAS sets its count through OpenMP, which can reach the
    # pool torch or FAISS share with it; their own counts are then set last.
    _BEFORE.pop("blas").restore_original_limits()
    torch.set_num_threads(_BEFORE.pop("torch"))
    faiss.omp_set_num_threads(_BEFORE.pop("faiss"))
