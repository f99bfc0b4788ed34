"""A reader's empirical ROC curve in a reader study's results (issue 19 item 3): its trapezoidal
area is the reader's Mann-Whitney AUC (ties 1/2), worked by hand on a small example and checked on
the Van Dyke ratings' readers."""

from __future__ import annotations

import numpy as np
import pytest

from medreview.reading.mrmc import empirical_auc
from medreview.reading.studies import empirical_roc


def area(roc: dict[str, list[float]]) -> float:
    return float(np.trapezoid(roc["tpr"], roc["fpr"]))


def test_a_small_example_worked_by_hand():
    # Positives rated 5, 3, 3; negatives 3, 1. Thresholds 5, 3, 1:
    # >= 5: TPR 1/3, FPR 0; >= 3: TPR 1, FPR 1/2; >= 1: TPR 1, FPR 1.
    # Area: 1/2 * (1/3 + 1) * 1/2 + 1 * 1/2 = 1/3 + 1/2 = 5/6; Mann-Whitney: pairs (5>3, 5>1, 3=3, 3>1,
    # 3=3, 3>1) = (1 + 1 + 1/2 + 1 + 1/2 + 1) / 6 = 5/6.
    ratings = np.array([5.0, 3.0, 3.0, 3.0, 1.0])
    truth = np.array([True, True, True, False, False])
    roc = empirical_roc(ratings, truth)
    assert roc == {"fpr": [0.0, 0.0, 0.5, 1.0], "tpr": [0.0, 1 / 3, 1.0, 1.0]}
    assert area(roc) == pytest.approx(5 / 6)
    assert empirical_auc(ratings, truth) == pytest.approx(5 / 6)


def test_the_area_is_the_readers_auc_on_generated_ratings():
    generator = np.random.default_rng(3)
    for _ in range(20):
        truth = generator.random(40) < 0.4
        ratings = generator.integers(1, 6, size=40).astype(float) + truth * generator.integers(0, 3, size=40)
        roc = empirical_roc(ratings, truth)
        assert roc["fpr"][0] == roc["tpr"][0] == 0.0 and roc["fpr"][-1] == roc["tpr"][-1] == 1.0
        assert area(roc) == pytest.approx(empirical_auc(ratings, truth))


def test_one_class_only_gives_no_curve():
    assert empirical_roc(np.array([1.0, 2.0]), np.array([True, True])) == {"fpr": [], "tpr": []}
