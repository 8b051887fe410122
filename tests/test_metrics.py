import numpy as np
import pytest

from rightsize import metrics as M


def test_accuracy_and_macro_f1_by_hand():
    y_true = np.array([0, 0, 1, 1])
    y_pred = np.array([0, 1, 1, 1])
    assert M.score("accuracy", y_true, y_pred, 2) == 0.75
    # class 0: p=1, r=0.5 -> f1=2/3; class 1: p=2/3, r=1 -> f1=0.8; mean = 0.7333
    assert M.score("macro_f1", y_true, y_pred, 2) == pytest.approx((2 / 3 + 0.8) / 2)


def test_macro_f1_matches_sklearn_on_random_labels():
    from sklearn.metrics import f1_score

    rng = np.random.default_rng(0)
    y_true, y_pred = rng.integers(0, 5, 300), rng.integers(0, 5, 300)
    assert M.score("macro_f1", y_true, y_pred, 5) == pytest.approx(f1_score(y_true, y_pred, average="macro"))


def test_confidence_interval_brackets_the_score_and_shrinks_with_more_data():
    rng = np.random.default_rng(1)
    small_true = rng.integers(0, 2, 100)
    small_pred = np.where(rng.random(100) < 0.8, small_true, 1 - small_true)
    lo, hi = M.confidence_interval("accuracy", small_true, small_pred, 2)
    assert lo <= M.score("accuracy", small_true, small_pred, 2) <= hi
    big_true = np.tile(small_true, 10)
    big_pred = np.tile(small_pred, 10)
    lo2, hi2 = M.confidence_interval("accuracy", big_true, big_pred, 2)
    assert (hi2 - lo2) < (hi - lo) / 2


def test_perfect_predictions_have_a_degenerate_interval():
    y = np.arange(50) % 3
    assert M.confidence_interval("macro_f1", y, y, 3) == (1.0, 1.0)
