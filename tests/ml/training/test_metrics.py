import numpy as np
import pytest

from medreview.errors import TrainingError
from medreview.ml.training.metrics import classification_metrics, roc_curve_png


def _as_probabilities(positive_scores: list[float]) -> np.ndarray:
    scores = np.asarray(positive_scores)
    return np.stack([1.0 - scores, scores], axis=1)


def test_hand_computed_binary_example():
    y_true = np.array([1, 1, 1, 1, 0, 0, 0, 0])
    # Positives score 0.9 0.8 0.6 0.3, negatives 0.7 0.4 0.2 0.1. AUC = share of (positive, negative)
    # pairs ranked right: 0.9 -> 4, 0.8 -> 4, 0.6 -> 3 (not 0.7), 0.3 -> 2 (not 0.7, 0.4): 13 / 16.
    scores = [0.9, 0.8, 0.6, 0.3, 0.7, 0.4, 0.2, 0.1]
    metrics = classification_metrics(y_true, _as_probabilities(scores), ["normal", "pneumonia"])
    assert metrics["roc_auc"] == pytest.approx(13 / 16)
    # At threshold 0.5: TP 3 (0.9 0.8 0.6), FN 1, FP 1 (0.7), TN 3.
    assert metrics["confusion_matrix"] == [[3, 1], [1, 3]]
    assert metrics["sensitivity"] == pytest.approx(0.75)
    assert metrics["specificity"] == pytest.approx(0.75)
    assert metrics["accuracy"] == pytest.approx(0.75)
    assert metrics["n"] == 8
    assert metrics["roc_curve"]["fpr"][0] == 0.0 and metrics["roc_curve"]["tpr"][-1] == 1.0
    assert sum(metrics["calibration"]["bin_count"]) == 8


def test_threshold_and_positive_class_change_the_call():
    y_true = np.array([1, 1, 1, 1, 0, 0, 0, 0])
    probabilities = _as_probabilities([0.9, 0.8, 0.6, 0.3, 0.7, 0.4, 0.2, 0.1])
    strict = classification_metrics(y_true, probabilities, ["normal", "pneumonia"], threshold=0.75)
    assert (strict["sensitivity"], strict["specificity"]) == (0.5, 1.0)
    # Class 0 as positive: the same ranking read the other way round.
    flipped = classification_metrics(y_true, probabilities, ["normal", "pneumonia"], positive_class=0)
    assert flipped["roc_auc"] == pytest.approx(13 / 16)
    assert flipped["sensitivity"] == pytest.approx(0.75)


def test_single_class_validation_has_no_auc_but_does_not_crash():
    metrics = classification_metrics(np.zeros(5, dtype=int), _as_probabilities([0.1, 0.2, 0.6, 0.3, 0.4]), ["a", "b"])
    assert metrics["roc_auc"] is None
    assert metrics["roc_curve"] is None
    assert metrics["sensitivity"] is None
    assert metrics["specificity"] == pytest.approx(0.8)
    with pytest.raises(TrainingError):
        roc_curve_png(metrics)


def test_multi_class_uses_arg_max_and_macro_auc():
    y_true = np.array([0, 1, 2, 2])
    probabilities = np.array([[0.8, 0.1, 0.1], [0.2, 0.7, 0.1], [0.1, 0.2, 0.7], [0.5, 0.1, 0.4]])
    metrics = classification_metrics(y_true, probabilities, ["a", "b", "c"])
    assert metrics["accuracy"] == pytest.approx(0.75)
    assert metrics["confusion_matrix"] == [[1, 0, 0], [0, 1, 0], [1, 0, 1]]
    # Class a: 0.8 beats 0.2 0.1 0.5 -> 1; b: 1; c: 0.7 and 0.4 vs 0.1 0.1 -> 1.
    assert metrics["roc_auc"] == pytest.approx(1.0)
    assert metrics["sensitivity"] is None


def test_roc_curve_png_is_a_png():
    y_true = np.array([1, 0, 1, 0])
    metrics = classification_metrics(y_true, _as_probabilities([0.9, 0.2, 0.6, 0.7]), ["n", "p"])
    assert roc_curve_png(metrics).startswith(b"\x89PNG\r\n\x1a\n")
