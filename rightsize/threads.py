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


POOLS = ("torch", "faiss", "blas")


def set_threads(threads: int | None, pools: tuple[str, ...] = POOLS) -> None:
    """Limit ``pools`` (all three by default) to ``threads`` (None: leave them as they are). A rung
    that only fits a scikit-learn model passes ``("blas",)``, so it does not import torch for this."""
    if threads is None:
        return
    # Every count is read before any is set: the pools reach each other (setting torch's moved
    # FAISS's here, and an OpenMP build of OpenBLAS sets its count through OpenMP).
    torch = faiss = None
    if "torch" in pools:
        import torch

        _BEFORE.setdefault("torch", torch.get_num_threads())
    if "faiss" in pools:
        import faiss

        _BEFORE.setdefault("faiss", faiss.omp_get_max_threads())
    if torch is not None:
        torch.set_num_threads(threads)
    if faiss is not None:
        faiss.omp_set_num_threads(threads)
    if "blas" in pools:
        import scipy.linalg  # noqa: F401 — loads scipy's own BLAS: a limit reaches only libraries loaded
        from threadpoolctl import threadpool_limits

        limiter = threadpool_limits(limits=threads, user_api="blas")
        _BEFORE.setdefault("blas", limiter)  # the first limiter since a restore holds the original counts


def restore_threads() -> None:
    """Undo :func:`set_threads` once a config is done (only the pools it set)."""
    # BLAS first: an OpenMP build of OpenBLAS sets its count through OpenMP, which can reach the
    # pool torch or FAISS share with it; their own counts are then set last.
    if "blas" in _BEFORE:
        _BEFORE.pop("blas").restore_original_limits()
    if "torch" in _BEFORE:
        import torch

        torch.set_num_threads(_BEFORE.pop("torch"))
    if "faiss" in _BEFORE:
        import faiss

        faiss.omp_set_num_threads(_BEFORE.pop("faiss"))
