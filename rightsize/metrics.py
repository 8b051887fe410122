"""Task metrics and their bootstrap confidence intervals over the evaluated examples."""

from __future__ import annotations

import numpy as np

METRICS = ("accuracy", "macro_f1")


def score(metric: str, y_true: np.ndarray, y_pred: np.ndarray, n_classes: int) -> float:
    """``accuracy`` or ``macro_f1`` (averaged over the classes present in truth or predictions)."""
    y_true = np.asarray(y_true)
    y_pred = np.asarray(y_pred)
    if metric == "accuracy":
        return float(np.mean(y_true == y_pred)) if len(y_true) else 0.0
    if metric == "macro_f1":
        return float(_macro_f1(y_true[None, :], y_pred[None, :], n_classes)[0])
    raise ValueError(f"unknown metric {metric!r}")


def _macro_f1(y_true: np.ndarray, y_pred: np.ndarray, n_classes: int) -> np.ndarray:
    """Macro F1 of many resamples at once: rows are resamples, columns examples."""
    r = y_true.shape[0]
    offs = (np.arange(r) * n_classes)[:, None]
    tp = np.bincount((offs + y_true)[y_true == y_pred], minlength=r * n_classes).reshape(r, n_classes)
    true_n = np.bincount((offs + y_true).ravel(), minlength=r * n_classes).reshape(r, n_classes)
    pred_n = np.bincount((offs + y_pred).ravel(), minlength=r * n_classes).reshape(r, n_classes)
    denom = true_n + pred_n
    present = denom > 0
    f1 = np.where(present, 2 * tp / np.maximum(denom, 1), 0.0)
    return f1.sum(axis=1) / np.maximum(present.sum(axis=1), 1)


def bootstrap_indices(n: int, resamples: int, seed: int) -> np.ndarray:
    """Resample rows shared by every config of a task, so intervals and paired tests agree."""
    return np.random.default_rng(seed).integers(0, n, size=(resamples, n))


def bootstrap_scores(metric: str, y_true, y_pred, n_classes: int, idx: np.ndarray) -> np.ndarray:
    y_true = np.asarray(y_true)[idx]
    y_pred = np.asarray(y_pred)[idx]
    if metric == "accuracy":
        return (y_true == y_pred).mean(axis=1)
    return _macro_f1(y_true, y_pred, n_classes)


def confidence_interval(metric: str, y_true, y_pred, n_classes: int, *, resamples: int = 1000,
                        seed: int = 0, level: float = 0.95) -> tuple[float, float]:
    """Percentile bootstrap interval of the metric over the examples."""
    n = len(y_true)
    if n == 0:
        return (0.0, 0.0)
    scores = bootstrap_scores(metric, y_true, y_pred, n_classes, bootstrap_indices(n, resamples, seed))
    alpha = (1 - level) / 2
    lo, hi = np.quantile(scores, [alpha, 1 - alpha])
    return float(lo), float(hi)
