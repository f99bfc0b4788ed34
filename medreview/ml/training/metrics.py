"""Validation metrics of a classifier, as a JSON-serialisable dict, and the ROC curve as a PNG.

Pure functions: they take the true labels and the predicted probabilities and return plain Python
numbers and lists, so a run's metrics can be stored as JSON and shown by any page.
"""

from __future__ import annotations

import io
from collections.abc import Sequence

import numpy as np
from sklearn.metrics import confusion_matrix, roc_auc_score, roc_curve

from medreview.errors import TrainingError

__all__ = ["classification_metrics", "roc_curve_png"]

MAX_ROC_POINTS = 200
CALIBRATION_BINS = 10


def classification_metrics(
    y_true: np.ndarray,
    probabilities: np.ndarray,
    class_names: Sequence[str],
    positive_class: int | None = None,
    threshold: float = 0.5,
) -> dict:
    """Return the metrics of ``probabilities`` (N, C) float against ``y_true`` (N,) int class indices.

    Keys, always present (``None`` where a metric does not apply or is undefined):

    - ``roc_auc``: binary, the AUC of ``positive_class``'s probability; multi-class, the macro mean of
      one-vs-rest AUCs over classes that have both positives and negatives; ``None`` when the labels
      hold a single class.
    - ``accuracy``; ``confusion_matrix`` (rows = true class, columns = predicted class); ``n``;
      ``class_names``; ``threshold``; ``positive_class``.
    - binary only: ``sensitivity`` and ``specificity`` of ``positive_class`` (default 1) when an image is
      called positive at ``probability >= threshold``; ``roc_curve`` ``{"fpr", "tpr", "thresholds"}``
      with at most 200 points; ``calibration`` over 10 equal-width bins of the positive probability
      (``bin_mean_predicted``, ``bin_fraction_positive``, ``bin_count``; empty bins hold ``None``, 0).

    Multi-class predictions are the arg-max class and ``threshold`` is not used.
    """
    y_true = np.asarray(y_true).astype(np.int64).reshape(-1)  # (N,) int64
    probabilities = np.asarray(probabilities, dtype=np.float64)  # (N, C) float64
    num_classes = len(class_names)
    if probabilities.ndim != 2 or probabilities.shape[1] != num_classes:
        raise TrainingError(f"Expected probabilities of shape (N, {num_classes}), got {probabilities.shape}.")
    if probabilities.shape[0] != y_true.shape[0]:
        raise TrainingError(f"Got {probabilities.shape[0]} predictions for {y_true.shape[0]} labels.")
    if y_true.shape[0] == 0:
        raise TrainingError("Cannot compute metrics on an empty validation set.")
    if y_true.min() < 0 or y_true.max() >= num_classes:
        raise TrainingError(f"Labels must be class indices between 0 and {num_classes - 1}.")
    binary = num_classes == 2
    if positive_class is None:
        positive_class = 1 if binary else None
    elif not 0 <= positive_class < num_classes:
        raise TrainingError(f"The positive class must be between 0 and {num_classes - 1}.")

    result: dict = {
        "class_names": [str(name) for name in class_names],
        "n": int(y_true.shape[0]),
        "threshold": float(threshold) if binary else None,
        "positive_class": positive_class,
        "roc_auc": None,
        "accuracy": None,
        "sensitivity": None,
        "specificity": None,
        "confusion_matrix": None,
        "roc_curve": None,
        "calibration": None,
    }

    if binary:
        positive_scores = probabilities[:, positive_class]  # (N,)
        negative_class = 1 - positive_class
        is_positive = y_true == positive_class
        predicted = np.where(positive_scores >= threshold, positive_class, negative_class)
    else:
        predicted = probabilities.argmax(axis=1)

    matrix = confusion_matrix(y_true, predicted, labels=list(range(num_classes)))  # (C, C) int64
    result["confusion_matrix"] = matrix.tolist()
    result["accuracy"] = float(np.mean(predicted == y_true))

    if binary:
        true_positives = int(matrix[positive_class, positive_class])
        positives = int(matrix[positive_class].sum())
        true_negatives = int(matrix[negative_class, negative_class])
        negatives = int(matrix[negative_class].sum())
        result["sensitivity"] = true_positives / positives if positives else None
        result["specificity"] = true_negatives / negatives if negatives else None
        if positives and negatives:
            result["roc_auc"] = float(roc_auc_score(is_positive, positive_scores))
            fpr, tpr, thresholds = roc_curve(is_positive, positive_scores)
            keep = _downsample(len(fpr), MAX_ROC_POINTS)
            # roc_curve's first threshold is +inf, which JSON cannot hold: clip it to 1.
            result["roc_curve"] = {
                "fpr": fpr[keep].tolist(),
                "tpr": tpr[keep].tolist(),
                "thresholds": np.minimum(thresholds[keep], 1.0).tolist(),
            }
        result["calibration"] = _calibration(is_positive, positive_scores)
    else:
        per_class_auc = []
        for class_index in range(num_classes):
            is_class = y_true == class_index
            if 0 < is_class.sum() < len(is_class):
                per_class_auc.append(float(roc_auc_score(is_class, probabilities[:, class_index])))
        result["roc_auc"] = float(np.mean(per_class_auc)) if per_class_auc else None
    return result


def _downsample(length: int, max_points: int) -> np.ndarray:
    """Indices of at most ``max_points`` evenly spread points that keep the first and the last."""
    if length <= max_points:
        return np.arange(length)
    return np.unique(np.round(np.linspace(0, length - 1, max_points)).astype(np.int64))


def _calibration(is_positive: np.ndarray, scores: np.ndarray) -> dict:
    # Bin b holds scores in [b/10, (b+1)/10); a score of exactly 1.0 goes to the last bin.
    bins = np.minimum((scores * CALIBRATION_BINS).astype(np.int64), CALIBRATION_BINS - 1)
    mean_predicted: list[float | None] = []
    fraction_positive: list[float | None] = []
    counts: list[int] = []
    for b in range(CALIBRATION_BINS):
        in_bin = bins == b
        count = int(in_bin.sum())
        counts.append(count)
        mean_predicted.append(float(scores[in_bin].mean()) if count else None)
        fraction_positive.append(float(is_positive[in_bin].mean()) if count else None)
    return {
        "bin_mean_predicted": mean_predicted,
        "bin_fraction_positive": fraction_positive,
        "bin_count": counts,
    }


def roc_curve_png(metrics: dict) -> bytes:
    """Draw the ROC curve of :func:`classification_metrics`' result; returns PNG bytes."""
    curve = metrics.get("roc_curve")
    if not curve:
        raise TrainingError(
            "There is no ROC curve for this run: it needs a two-class model and validation images of both classes."
        )
    # Agg through the object API: no pyplot global state, safe in a server thread.
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    figure = Figure(figsize=(4, 4), dpi=100)
    FigureCanvasAgg(figure)
    axes = figure.add_subplot()
    axes.plot(curve["fpr"], curve["tpr"], color="tab:blue", linewidth=2)
    axes.plot([0, 1], [0, 1], color="grey", linestyle="--", linewidth=1)
    axes.set_xlim(0, 1)
    axes.set_ylim(0, 1.01)
    axes.set_xlabel("1 - specificity (false positive rate)")
    axes.set_ylabel("Sensitivity (true positive rate)")
    auc = metrics.get("roc_auc")
    axes.set_title(f"ROC curve, AUC = {auc:.3f}" if auc is not None else "ROC curve")
    figure.tight_layout()
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png")
    return buffer.getvalue()
