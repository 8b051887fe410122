"""Temperature scaling: one number per classifier that makes its max class probability mean what it says.

A cascade trusts a stage's answer when the stage's confidence (its largest class probability) reaches
a threshold, so the confidence must be comparable across kinds: a logistic regression with a large C
and a kNN vote are both overconfident in their own ways. Temperature scaling (Guo et al., 2017)
divides the log-probabilities by T > 0 and renormalizes: T > 1 softens, T < 1 sharpens, and the
predicted class never changes. T is the one minimizing the negative log-likelihood of held-out labels
(the cascade holds out a seeded slice of the *train* split for it; validation stays the search's),
found on a fixed log grid so it is deterministic.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np

TEMPERATURES = np.geomspace(0.05, 20.0, 241)  # 1.0 is on the grid (index 120)
_FLOOR = 1e-12  # a zero probability (a kNN vote no neighbour cast) as a very small one


def softmax(logits: np.ndarray) -> np.ndarray:
    shifted = np.exp(logits - logits.max(axis=1, keepdims=True))
    return shifted / shifted.sum(axis=1, keepdims=True)


def scale(probs: np.ndarray, temperature: float) -> np.ndarray:
    """``probs`` (rows sum to 1) at ``temperature``."""
    if len(probs) == 0:
        return probs
    return softmax(np.log(np.clip(probs, _FLOOR, 1.0)) / temperature)


def fit_temperature(probs: np.ndarray, classes: Sequence[str], labels: Sequence[str]) -> float:
    """The temperature of the grid with the lowest mean negative log-likelihood of ``labels``; 1.0
    where no label can be scored (none given, or none among ``classes``)."""
    column = {c: i for i, c in enumerate(classes)}
    rows = [i for i, label in enumerate(labels) if label in column]
    if not rows:
        return 1.0
    gold = np.array([column[labels[i]] for i in rows])
    logp = np.log(np.clip(probs[rows], _FLOOR, 1.0))
    losses = []
    for t in TEMPERATURES:
        z = logp / t
        z = z - z.max(axis=1, keepdims=True)
        log_norm = np.log(np.exp(z).sum(axis=1))
        losses.append(float(np.mean(log_norm - z[np.arange(len(rows)), gold])))
    return float(TEMPERATURES[int(np.argmin(losses))])


def calibration_slice(labels: Sequence[str], fraction: float, seed: int) -> np.ndarray:
    """A seeded boolean mask over ``labels``: about ``fraction`` of each class, never a class's last
    example (the stages must still see every class)."""
    rng = np.random.default_rng(seed)
    mask = np.zeros(len(labels), dtype=bool)
    by_class: dict[str, list[int]] = {}
    for i, label in enumerate(labels):
        by_class.setdefault(label, []).append(i)
    for label in sorted(by_class):
        members = np.array(by_class[label])
        take = min(int(round(fraction * len(members))), len(members) - 1)
        if take > 0:
            mask[rng.choice(members, size=take, replace=False)] = True
    return mask
