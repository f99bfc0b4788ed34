"""Metrics of a classifier as JSON-serialisable dicts, the choices made on validation, and plots.

Pure functions: they take the true labels and the predicted probabilities and return plain Python
numbers and lists, so a run's metrics can be stored as JSON and shown by any page.

What the training job does with them, in order (see :mod:`medreview.ml.training.job`):

1. :func:`fit_temperature` on the validation probabilities: one temperature ``T`` such that
   ``softmax(log(p) / T)`` has the lowest negative log-likelihood on validation (temperature scaling,
   Guo et al. 2017). The model outputs probabilities; ``log(p)`` are its logits up to a constant per
   image, which the softmax ignores. ``T > 1`` softens an overconfident model, ``T < 1`` sharpens a
   timid one; the ranking of images, and so the ROC AUC, does not change.
2. :func:`choose_threshold` on the calibrated validation probabilities: the operating threshold on the
   positive class's probability, by Youden's J or for a target sensitivity.
3. :func:`classification_metrics` with that threshold, on validation and on the held-out test part,
   with a 95% interval for the ROC AUC (:func:`roc_auc_interval`: the stratified bootstrap, widened to
   Newcombe's score interval where the bootstrap collapses, as it does on a perfect score) and the
   expected calibration error.

:func:`evaluate_model` does all three; :func:`calibrated_calls` applies the stored temperature and
threshold to new images.

Two classes have a threshold. With more than two, the call is the arg-max class and ``threshold`` is
``None`` everywhere; temperature scaling applies all the same.
"""

from __future__ import annotations

import io
from collections.abc import Sequence
from typing import Any

import numpy as np
from scipy.optimize import brentq, minimize, minimize_scalar
from scipy.stats import norm, rankdata
from sklearn.metrics import confusion_matrix, roc_auc_score, roc_curve

from medreview.errors import TrainingError

__all__ = [
    "BOOTSTRAP_RESAMPLES",
    "CALIBRATION_BINS",
    "CALIBRATION_METHODS",
    "ISOTONIC_MIN_PER_CLASS",
    "SUMMARY_KEYS",
    "TEMPERATURE_RANGE",
    "WIDE_INTERVAL",
    "adjust_to_prevalence",
    "apply_calibrator",
    "apply_temperature",
    "at_edge",
    "bootstrap_roc_auc_interval",
    "calibrated_calls",
    "calibrator_edge_notes",
    "calibrator_of",
    "choose_threshold",
    "classification_metrics",
    "describe_calibrator",
    "estimate_prevalence",
    "evaluate_model",
    "evaluation_notes",
    "expected_calibration_error",
    "fit_calibrator",
    "fit_temperature",
    "newcombe_auc_interval",
    "operating_point",
    "reliability_diagram_png",
    "roc_auc_interval",
    "roc_curve_png",
    "roc_curves_png",
    "summary",
    "threshold_for_sensitivity",
    "uncalibrated_reliability",
    "youden_threshold",
]

MAX_ROC_POINTS = 200
CALIBRATION_BINS = 10
BOOTSTRAP_RESAMPLES = 1000
# A fitted temperature is kept inside this range: a validation set the model separates perfectly
# drives the likelihood-optimal temperature towards 0 (probabilities of exactly 0 and 1).
TEMPERATURE_RANGE = (0.1, 10.0)
# An interval of ROC AUC at least this wide is called wide, in the notes and on the page.
WIDE_INTERVAL = 0.2
# The keys of one part's block in `python -m medreview train --wait --json` (see summary()).
# ``ece_uncalibrated``: the ECE of the model's raw probabilities on the same images, before calibration.
SUMMARY_KEYS = (
    "roc_auc",
    "roc_auc_ci",
    "accuracy",
    "sensitivity",
    "specificity",
    "threshold",
    "ece",
    "ece_uncalibrated",
    "n",
)
_SMALLEST_PROBABILITY = 1e-12  # log(0) guard for the logits of a saturated softmax


def classification_metrics(
    y_true: np.ndarray,
    probabilities: np.ndarray,
    class_names: Sequence[str],
    positive_class: int | None = None,
    threshold: float = 0.5,
    bootstrap_resamples: int = 0,
    seed: int = 0,
) -> dict:
    """Return the metrics of ``probabilities`` (N, C) float against ``y_true`` (N,) int class indices.

    Keys, always present (``None`` where a metric does not apply or is undefined):

    - ``roc_auc``: binary, the AUC of ``positive_class``'s probability; multi-class, the macro mean of
      one-vs-rest AUCs over classes that have both positives and negatives; ``None`` when the labels
      hold a single class.
    - ``roc_auc_ci``: ``[low, high]``, the 95% interval of ``roc_auc`` from ``bootstrap_resamples``
      stratified bootstrap resamples seeded with ``seed``, widened where the score interval is wider
      (see :func:`roc_auc_interval`); ``None`` when ``bootstrap_resamples`` is 0 or ``roc_auc`` is
      ``None``.
    - ``accuracy``; ``confusion_matrix`` (rows = true class, columns = predicted class); ``n``;
      ``class_counts`` (images per true class); ``class_names``; ``threshold``; ``positive_class``.
    - ``ece``: the expected calibration error over 10 equal-width bins (see
      :func:`expected_calibration_error`); ``calibration``: the reliability diagram's bins
      (``bin_mean_predicted``, ``bin_fraction_positive``, ``bin_count``; empty bins hold ``None``, 0)
      and ``kind``, what they bin: ``"positive class"`` (binary) or ``"top label"`` (multi-class).
    - binary only: ``sensitivity`` and ``specificity`` of ``positive_class`` (default 1) when an image is
      called positive at ``probability >= threshold``; ``roc_curve`` ``{"fpr", "tpr", "thresholds"}``
      with at most 200 points.

    Multi-class predictions are the arg-max class and ``threshold`` is not used.
    """
    y_true, probabilities = _checked(y_true, probabilities, len(class_names))
    num_classes = len(class_names)
    binary = num_classes == 2
    if positive_class is None:
        positive_class = 1 if binary else None
    elif not 0 <= positive_class < num_classes:
        raise TrainingError(f"The positive class must be between 0 and {num_classes - 1}.")

    result: dict = {
        "class_names": [str(name) for name in class_names],
        "n": int(y_true.shape[0]),
        "class_counts": np.bincount(y_true, minlength=num_classes).tolist(),
        "threshold": float(threshold) if binary else None,
        "positive_class": positive_class,
        "roc_auc": None,
        "roc_auc_ci": None,
        "accuracy": None,
        "sensitivity": None,
        "specificity": None,
        "confusion_matrix": None,
        "roc_curve": None,
        "calibration": None,
        "ece": None,
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
    result["calibration"] = _reliability_bins(y_true, probabilities, positive_class)
    result["ece"] = _ece_from_bins(result["calibration"])

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
    else:
        per_class_auc = []
        for class_index in range(num_classes):
            is_class = y_true == class_index
            if 0 < is_class.sum() < len(is_class):
                per_class_auc.append(float(roc_auc_score(is_class, probabilities[:, class_index])))
        result["roc_auc"] = float(np.mean(per_class_auc)) if per_class_auc else None
    if bootstrap_resamples and result["roc_auc"] is not None:
        result["roc_auc_ci"] = roc_auc_interval(
            y_true, probabilities, positive_class, resamples=bootstrap_resamples, seed=seed
        )
    return result


def summary(metrics: dict) -> dict[str, Any]:
    """The headline of one part (validation or test): exactly :data:`SUMMARY_KEYS`."""
    return {key: metrics.get(key) for key in SUMMARY_KEYS}


def evaluate_model(
    y_validation: np.ndarray,
    validation_probabilities: np.ndarray,
    y_test: np.ndarray | None,
    test_probabilities: np.ndarray | None,
    class_names: Sequence[str],
    target_sensitivity: float | None = None,
    seed: int = 0,
    bootstrap_resamples: int = BOOTSTRAP_RESAMPLES,
    prevalence: float | str | None = None,
    unlabelled_probabilities: np.ndarray | None = None,
) -> dict:
    """A trained model's evaluation: calibrator and threshold chosen on validation, then scored on
    validation and, when there is one, on the held-out test part, which takes part in no choice.

    ``*_probabilities``: (N, C) float, the model's raw outputs; ``y_*``: (N,) int class indices.
    ``prevalence`` (two classes): the expected share of class 1 in the population to be read, or
    ``"estimate"``: estimated by EM (:func:`estimate_prevalence`) from ``unlabelled_probabilities``
    (the raw outputs on the project's unlabelled images). With it, the calibrated posterior is moved
    from validation's shares to that prevalence (:func:`adjust_to_prevalence`) and an image is called
    positive when the moved posterior is at least 0.5: the fewest expected errors in that population.
    Returns a JSON-serialisable dict:

    - ``validation``, ``test``: :func:`classification_metrics` of the calibrated probabilities at the
      chosen threshold, with ``roc_auc_ci``, plus ``ece_uncalibrated`` and ``calibration_uncalibrated``
      (the raw probabilities' ECE and reliability bins: the diagram before calibration); ``test`` is
      ``None`` without a test part.
    - ``headline``: ``"test"`` when there is a test part, else ``"validation"``: the part to show first.
    - ``calibrator``: :func:`fit_calibrator`'s choice (method, parameters, each candidate's NLL), with
      ``prior_shift`` under a prevalence; apply it with :func:`apply_calibrator`, or
      :func:`calibrator_of` on the stored metrics. ``temperature``: the calibrator's temperature when
      it is temperature scaling, else 1.0 (the key older versions were used with).
    - ``threshold`` (on the calibrated probability of class 1; ``None`` for more than two classes);
      ``threshold_rule``: ``"youden"``, ``"target sensitivity"``, ``"prevalence"`` or ``"arg-max"``;
      ``target_sensitivity``; ``operating_point``: the rule in words with the expected sensitivity and
      specificity at it (on validation) and, under a prevalence, the expected accuracy there.
    - ``notes``: plain-words warnings (:func:`evaluation_notes` of the headline part, and a calibration
      parameter fitted at the edge of its range).
    - the validation block's keys at the top level too, for readers of the metrics written before
      there was a test part (``metrics["roc_auc"]`` is the validation AUC).
    """
    binary = len(class_names) == 2
    calibrator = fit_calibrator(y_validation, validation_probabilities, seed=seed)
    prevalence_facts = None
    if prevalence is not None:
        if not binary:
            raise TrainingError(f"A prevalence needs two classes; this run has {len(class_names)}.")
        prevalence_facts = _target_prevalence(
            y_validation, validation_probabilities, calibrator, prevalence, unlabelled_probabilities
        )
        calibrator["prior_shift"] = prevalence_facts["shift"]
    calibrated_validation = apply_calibrator(validation_probabilities, calibrator)
    if prevalence_facts is not None:
        threshold: float | None = 0.5
        rule = "prevalence"
    else:
        threshold = choose_threshold(y_validation, calibrated_validation, target_sensitivity=target_sensitivity)
        rule = "arg-max" if not binary else "youden" if target_sensitivity is None else "target sensitivity"

    def scored(y_true: np.ndarray, raw: np.ndarray, calibrated: np.ndarray) -> dict:
        block = classification_metrics(
            y_true,
            calibrated,
            class_names,
            threshold=threshold if threshold is not None else 0.5,
            bootstrap_resamples=bootstrap_resamples,
            seed=seed,
        )
        return {**block, **uncalibrated_reliability(y_true, raw)}

    validation = scored(y_validation, validation_probabilities, calibrated_validation)
    test = None
    if y_test is not None and test_probabilities is not None and len(y_test):
        test = scored(y_test, test_probabilities, apply_calibrator(test_probabilities, calibrator))
    headline = "test" if test is not None else "validation"
    notes = evaluation_notes(headline, test if test is not None else validation)
    notes.extend(calibrator_edge_notes(calibrator))
    return {
        **validation,
        "validation": validation,
        "test": test,
        "headline": headline,
        "calibrator": calibrator,
        "temperature": float(calibrator["temperature"]) if calibrator["method"] == "temperature" else 1.0,
        "threshold": threshold,
        "threshold_rule": rule,
        "target_sensitivity": target_sensitivity,
        "operating_point": operating_point(rule, validation, prevalence_facts, target_sensitivity),
        "notes": notes,
    }


def uncalibrated_reliability(y_true: np.ndarray, raw_probabilities: np.ndarray) -> dict[str, Any]:
    """``ece_uncalibrated`` and ``calibration_uncalibrated`` (the reliability bins) of a model's raw
    probabilities (N, C): the before of a before/after reliability diagram."""
    y_true, raw = _checked(y_true, raw_probabilities)
    bins = _reliability_bins(y_true, raw, 1 if raw.shape[1] == 2 else None)
    return {"ece_uncalibrated": _ece_from_bins(bins), "calibration_uncalibrated": bins}


def operating_point(
    rule: str, validation: dict, prevalence_facts: dict | None = None, target_sensitivity: float | None = None
) -> dict[str, Any]:
    """The operating rule, in words and figures: ``rule``, ``threshold``, ``description``,
    ``expected_sensitivity`` and ``expected_specificity`` (measured on validation at the threshold),
    and under a prevalence ``prevalence`` (the share of class 1 it was set for), ``prevalence_source``
    and ``expected_accuracy`` there (``prevalence * sensitivity + (1 - prevalence) * specificity``)."""
    sensitivity, specificity = validation.get("sensitivity"), validation.get("specificity")
    threshold = validation.get("threshold") if rule != "arg-max" else None
    point: dict[str, Any] = {
        "rule": rule,
        "threshold": threshold,
        "expected_sensitivity": sensitivity,
        "expected_specificity": specificity,
    }
    if rule == "arg-max":
        point["description"] = "each image is called its most probable class"
    elif rule == "youden":
        point["description"] = "Youden's J on validation (sensitivity + specificity - 1 at its largest)"
    elif rule == "target sensitivity":
        point["description"] = f"the most specific threshold with a sensitivity of at least {target_sensitivity:g}"
    else:
        assert prevalence_facts is not None
        share = prevalence_facts["prevalence"]
        point["prevalence"] = share
        point["prevalence_source"] = prevalence_facts["source"]
        point["description"] = (
            f"posterior adjusted to a prevalence of {share:.1%} ({prevalence_facts['source']}), "
            "called positive at 0.5: the fewest expected errors there"
        )
        if sensitivity is not None and specificity is not None:
            point["expected_accuracy"] = share * sensitivity + (1 - share) * specificity
    return point


def _target_prevalence(
    y_validation: np.ndarray,
    validation_probabilities: np.ndarray,
    calibrator: dict[str, Any],
    prevalence: float | str,
    unlabelled_probabilities: np.ndarray | None,
) -> dict[str, Any]:
    counts = np.bincount(np.asarray(y_validation, dtype=np.int64), minlength=2).astype(np.float64)
    validation_share = counts / counts.sum()
    if (validation_share <= 0).any():
        raise TrainingError("A prevalence adjustment needs validation images of both classes.")
    if prevalence == "estimate":
        if unlabelled_probabilities is None or len(unlabelled_probabilities) == 0:
            raise TrainingError(
                "The prevalence cannot be estimated: the project has no unlabelled images to estimate it from. "
                "State the expected prevalence instead."
            )
        shares, iterations = estimate_prevalence(
            apply_calibrator(unlabelled_probabilities, calibrator), validation_share
        )
        share = float(shares[1])
        source = f"estimated by EM from {len(unlabelled_probabilities)} unlabelled images in {iterations} iterations"
    else:
        try:
            share = float(prevalence)
        except (TypeError, ValueError):
            raise TrainingError(
                f"The prevalence must be a share between 0 and 1 or 'estimate', not {prevalence!r}."
            ) from None
        if not 0.0 < share < 1.0:
            raise TrainingError(f"The prevalence must lie strictly between 0 and 1, not {share}.")
        source = "stated"
    shift = {"from": validation_share.tolist(), "to": [1.0 - share, share], "source": source}
    return {"prevalence": share, "source": source, "shift": shift}


# --- choices made on validation -------------------------------------------------------------------


def fit_temperature(y_true: np.ndarray, probabilities: np.ndarray) -> float:
    """The temperature that minimises the negative log-likelihood of ``y_true`` (N,) int under
    ``softmax(log(probabilities) / T)``, ``probabilities`` (N, C); within :data:`TEMPERATURE_RANGE`.

    Returns 1.0 (no change) when the labels hold a single class: the likelihood would then reward
    calling everything that class with certainty, which says nothing about calibration.
    """
    y_true, probabilities = _checked(y_true, probabilities)
    if len(np.unique(y_true)) < 2:
        return 1.0
    logits = np.log(np.clip(probabilities, _SMALLEST_PROBABILITY, 1.0))  # (N, C) float64

    def negative_log_likelihood(log_temperature: float) -> float:
        log_probabilities = _log_softmax(logits / np.exp(log_temperature))
        return float(-np.mean(log_probabilities[np.arange(len(y_true)), y_true]))

    low, high = np.log(TEMPERATURE_RANGE[0]), np.log(TEMPERATURE_RANGE[1])
    # Bounded Brent on log T: the likelihood is smooth and unimodal in log T for a fixed ranking.
    found = minimize_scalar(negative_log_likelihood, bounds=(low, high), method="bounded", options={"xatol": 1e-5})
    log_temperature = float(found.x)
    # Brent stops just inside a bound; compare with the bounds themselves so an edge optimum is exact
    # (and reads as the bound: callers compare the result with TEMPERATURE_RANGE).
    candidates = {low: TEMPERATURE_RANGE[0], high: TEMPERATURE_RANGE[1]}
    candidates[log_temperature] = float(np.exp(log_temperature))
    return candidates[min(candidates, key=negative_log_likelihood)]


def apply_temperature(probabilities: np.ndarray, temperature: float) -> np.ndarray:
    """``softmax(log(probabilities) / temperature)``: (N, C) float64 rows that sum to 1."""
    if not temperature > 0:
        raise TrainingError(f"The temperature must be positive, not {temperature}.")
    probabilities = np.asarray(probabilities, dtype=np.float64)
    logits = np.log(np.clip(probabilities, _SMALLEST_PROBABILITY, 1.0))
    return np.exp(_log_softmax(logits / temperature))


# --- calibrators ----------------------------------------------------------------------------------

# The calibrators evaluate_model chooses among, simplest first (a tie goes to the simpler one).
CALIBRATION_METHODS = ("none", "temperature", "platt", "vector scaling", "isotonic")
# Platt / vector scaling: logit' = a * logit + b, with a (the slope, 1 / temperature) and b kept here.
SLOPE_RANGE = (0.1, 10.0)
BIAS_RANGE = (-10.0, 10.0)
# Isotonic regression (two classes only) is a candidate when validation has this many images of
# each class: with fewer, its steps follow the noise of a few images.
ISOTONIC_MIN_PER_CLASS = 200
# Folds of the cross-validation on validation that compares the calibrators: each is fitted on the
# other folds and scored on its own, so a flexible calibrator cannot win by memorising validation.
CALIBRATION_FOLDS = 5
# A fitted parameter within this share of its range's width (on a log scale for slopes and
# temperatures) of a bound is reported at the edge.
EDGE_TOLERANCE = 0.02


def fit_calibrator(y_true: np.ndarray, probabilities: np.ndarray, seed: int = 0) -> dict[str, Any]:
    """Choose and fit the calibrator of a model's raw ``probabilities`` (N, C) on validation
    labels ``y_true`` (N,), by negative log-likelihood.

    Candidates (:data:`CALIBRATION_METHODS`): ``none``; ``temperature`` (one divisor of the logits,
    which can only stretch or squeeze them); with two classes ``platt`` (``sigmoid(a * z + b)`` on
    the logit ``z = log(p1 / p0)``: it can also move them), with more ``vector scaling``
    (``softmax(w * log p + b)``, a weight and a bias per class); and with two classes and at least
    :data:`ISOTONIC_MIN_PER_CLASS` validation images of each class, ``isotonic`` (a monotone step
    function of p1). Each is scored by the mean NLL over a stratified :data:`CALIBRATION_FOLDS`-fold
    cross-validation on the validation images (fitted on the other folds), the lowest wins, and the
    winner is refitted on all of them. With fewer than 2 images of a class there are no folds: only
    none and temperature compete, on the fitting NLL (as temperature alone was before).

    Returns ``{"method", ...parameters, "nll": {method: cross-validated NLL}}``; parameters:
    ``temperature``; ``a``, ``b`` (platt); ``w``, ``b`` lists (vector scaling); ``x``, ``y`` lists
    (isotonic: the step function's knots, interpolated linearly). Apply with :func:`apply_calibrator`.
    """
    y_true, probabilities = _checked(y_true, probabilities)
    counts = np.bincount(y_true, minlength=probabilities.shape[1])
    if (counts > 0).sum() < 2:
        return {"method": "none", "nll": {}}
    binary = probabilities.shape[1] == 2
    methods = ["none", "temperature", "platt" if binary else "vector scaling"]
    if binary and counts.min() >= ISOTONIC_MIN_PER_CLASS:
        methods.append("isotonic")
    folds = min(CALIBRATION_FOLDS, int(counts[counts > 0].min()))
    if folds < 2:
        methods = ["none", "temperature"]
        scores = {m: _nll(y_true, apply_calibrator(probabilities, _fit_one(m, y_true, probabilities))) for m in methods}
    else:
        fold_of = np.empty(len(y_true), dtype=np.int64)
        generator = np.random.default_rng(seed)
        for c in np.flatnonzero(counts):
            members = generator.permutation(np.flatnonzero(y_true == c))
            fold_of[members] = np.arange(len(members)) % folds
        scores = {}
        for method in methods:
            losses = []
            for fold in range(folds):
                held = fold_of == fold
                fitted = _fit_one(method, y_true[~held], probabilities[~held])
                losses.append(_nll(y_true[held], apply_calibrator(probabilities[held], fitted)) * held.sum())
            scores[method] = float(sum(losses) / len(y_true))
    best = min(methods, key=lambda m: (round(scores[m], 6), methods.index(m)))
    return {**_fit_one(best, y_true, probabilities), "nll": {m: round(scores[m], 6) for m in methods}}


def apply_calibrator(probabilities: np.ndarray, calibrator: dict[str, Any] | float) -> np.ndarray:
    """A model's raw ``probabilities`` (N, C) through ``calibrator`` (:func:`fit_calibrator`'s dict,
    or a bare temperature, as model versions stored before there was a choice), then through its
    ``prior_shift`` when it has one (:func:`adjust_to_prevalence`). (N, C) float64 rows summing to 1."""
    if not isinstance(calibrator, dict):
        return apply_temperature(probabilities, float(calibrator))
    probabilities = np.asarray(probabilities, dtype=np.float64)
    method = calibrator.get("method", "temperature")
    logits = np.log(np.clip(probabilities, _SMALLEST_PROBABILITY, 1.0))
    if method == "none":
        calibrated = probabilities / probabilities.sum(axis=1, keepdims=True)
    elif method == "temperature":
        calibrated = apply_temperature(probabilities, float(calibrator.get("temperature", 1.0)))
    elif method == "platt":
        z = calibrator["a"] * (logits[:, 1] - logits[:, 0]) + calibrator["b"]
        calibrated = np.exp(_log_softmax(np.stack([np.zeros_like(z), z], axis=1)))
    elif method == "vector scaling":
        calibrated = np.exp(_log_softmax(logits * np.asarray(calibrator["w"]) + np.asarray(calibrator["b"])))
    elif method == "isotonic":
        positive = np.interp(probabilities[:, 1], calibrator["x"], calibrator["y"])
        calibrated = np.stack([1 - positive, positive], axis=1)
    else:
        raise TrainingError(f"Unknown calibration method {method!r}.")
    shift = calibrator.get("prior_shift")
    if shift:
        calibrated = adjust_to_prevalence(calibrated, shift["from"], shift["to"])
    return calibrated


def calibrator_of(metrics: dict[str, Any]) -> dict[str, Any]:
    """The calibrator a model version's ``metrics`` say to use: ``metrics["calibrator"]``, or, for a
    version stored before calibrators were chosen, its temperature (1.0 when it has none)."""
    calibrator = metrics.get("calibrator")
    if calibrator:
        return calibrator
    return {"method": "temperature", "temperature": float(metrics.get("temperature", 1.0))}


def describe_calibrator(calibrator: dict[str, Any]) -> str:
    """The calibrator in words, e.g. "Platt scaling (a 1.12, b -0.31)"."""
    method = calibrator.get("method", "temperature")
    if method == "none":
        words = "no calibration (the model's own probabilities)"
    elif method == "temperature":
        words = f"temperature scaling (T {float(calibrator.get('temperature', 1.0)):.3g})"
    elif method == "platt":
        words = f"Platt scaling on the logit (a {calibrator['a']:.3g}, b {calibrator['b']:+.3g})"
    elif method == "vector scaling":
        weights = ", ".join(f"{w:.3g}" for w in calibrator["w"])
        biases = ", ".join(f"{b:+.3g}" for b in calibrator["b"])
        words = f"vector scaling (w {weights}; b {biases})"
    else:
        words = f"isotonic regression ({len(calibrator['x'])} knots)"
    shift = calibrator.get("prior_shift")
    if shift:
        words += f", then adjusted to a prevalence of {shift['to'][1]:.1%} ({shift.get('source', 'stated')})"
    return words


def calibrator_edge_notes(calibrator: dict[str, Any], tolerance: float = EDGE_TOLERANCE) -> list[str]:
    """Plain-words notes for each fitted parameter within ``tolerance`` of its range's edge (a
    share of the range's width; log scale for temperature and slopes): the optimum lay outside."""
    method = calibrator.get("method")
    checks: list[tuple[str, float, tuple[float, float], bool]] = []
    if method == "temperature":
        checks.append(("temperature", float(calibrator["temperature"]), TEMPERATURE_RANGE, True))
    elif method == "platt":
        checks += [("slope a", float(calibrator["a"]), SLOPE_RANGE, True)]
        checks += [("bias b", float(calibrator["b"]), BIAS_RANGE, False)]
    elif method == "vector scaling":
        checks += [(f"weight w[{i}]", float(w), SLOPE_RANGE, True) for i, w in enumerate(calibrator["w"])]
        checks += [(f"bias b[{i}]", float(b), BIAS_RANGE, False) for i, b in enumerate(calibrator["b"])]
    notes = []
    for name, value, bounds, logarithmic in checks:
        if at_edge(value, bounds, tolerance, logarithmic):
            notes.append(
                f"The calibration's {name} fitted on validation, {value:.3g}, is at the edge of its range "
                f"({bounds[0]:g} to {bounds[1]:g}): the validation images are too few, or too easily told "
                "apart, or the model's outputs too far off, to calibrate the probabilities well."
            )
    return notes


def at_edge(
    value: float, bounds: tuple[float, float], tolerance: float = EDGE_TOLERANCE, logarithmic: bool = False
) -> bool:
    """Whether ``value`` lies within ``tolerance`` of the range's width from either bound (the width
    measured on a log scale when ``logarithmic``)."""
    low, high = bounds
    if logarithmic:
        value, low, high = np.log(value), np.log(low), np.log(high)
    margin = tolerance * (high - low)
    return bool(value <= low + margin or value >= high - margin)


def _nll(y_true: np.ndarray, probabilities: np.ndarray) -> float:
    true_class = np.clip(probabilities[np.arange(len(y_true)), y_true], _SMALLEST_PROBABILITY, 1.0)
    return float(-np.mean(np.log(true_class)))


def _fit_one(method: str, y_true: np.ndarray, probabilities: np.ndarray) -> dict[str, Any]:
    if method == "none":
        return {"method": "none"}
    if method == "temperature":
        return {"method": "temperature", "temperature": fit_temperature(y_true, probabilities)}
    logits = np.log(np.clip(probabilities, _SMALLEST_PROBABILITY, 1.0))
    if len(np.unique(y_true)) < 2:
        return {"method": "none"}
    if method == "platt":
        z = logits[:, 1] - logits[:, 0]
        target = (y_true == 1).astype(np.float64)

        def platt_loss(params: np.ndarray) -> tuple[float, np.ndarray]:
            s = params[0] * z + params[1]
            # -[t log sigmoid(s) + (1 - t) log sigmoid(-s)] = logaddexp(0, s) - t * s
            loss = np.logaddexp(0.0, s) - target * s
            residual = 1.0 / (1.0 + np.exp(-s)) - target
            return float(loss.mean()), np.array([np.mean(residual * z), np.mean(residual)])

        found = minimize(
            platt_loss, np.array([1.0, 0.0]), jac=True, method="L-BFGS-B", bounds=[SLOPE_RANGE, BIAS_RANGE]
        )
        return {"method": "platt", "a": float(found.x[0]), "b": float(found.x[1])}
    if method == "vector scaling":
        classes = probabilities.shape[1]
        onehot = np.eye(classes)[y_true]

        def vector_loss(params: np.ndarray) -> tuple[float, np.ndarray]:
            w, b = params[:classes], params[classes:]
            log_q = _log_softmax(logits * w + b)
            residual = np.exp(log_q) - onehot  # (N, C)
            loss = -np.mean((log_q * onehot).sum(axis=1))
            return float(loss), np.concatenate([(residual * logits).mean(axis=0), residual.mean(axis=0)])

        start = np.concatenate([np.ones(classes), np.zeros(classes)])
        bounds = [SLOPE_RANGE] * classes + [BIAS_RANGE] * classes
        found = minimize(vector_loss, start, jac=True, method="L-BFGS-B", bounds=bounds)
        b = found.x[classes:] - found.x[classes:].mean()  # the softmax ignores a common shift
        return {"method": "vector scaling", "w": found.x[:classes].tolist(), "b": b.tolist()}
    if method == "isotonic":
        from sklearn.isotonic import IsotonicRegression

        # Never exactly 0 or 1: one image beyond the step would cost an infinite log-likelihood.
        margin = 1.0 / (2 * (len(y_true) + 1))
        regression = IsotonicRegression(y_min=margin, y_max=1 - margin, out_of_bounds="clip")
        regression.fit(probabilities[:, 1], (y_true == 1).astype(np.float64))
        return {
            "method": "isotonic",
            "x": [float(v) for v in regression.X_thresholds_],
            "y": [float(v) for v in regression.y_thresholds_],
        }
    raise TrainingError(f"Unknown calibration method {method!r}.")


# --- prevalence -----------------------------------------------------------------------------------


def adjust_to_prevalence(
    probabilities: np.ndarray, from_prior: Sequence[float], to_prior: Sequence[float]
) -> np.ndarray:
    """Posteriors ``probabilities`` (N, C), calibrated where the classes had the shares ``from_prior``
    (C,), moved to a population with the shares ``to_prior`` (C,) (Bayes' rule with the likelihoods
    unchanged, Saerens et al. 2002 eq. 2.4): ``p'(c) proportional to p(c) * to(c) / from(c)``. (N, C) float64."""
    probabilities = np.asarray(probabilities, dtype=np.float64)
    source, target = np.asarray(from_prior, dtype=np.float64), np.asarray(to_prior, dtype=np.float64)
    if source.shape != (probabilities.shape[1],) or target.shape != source.shape:
        raise TrainingError(f"A prevalence needs one share per class ({probabilities.shape[1]}).")
    if (source <= 0).any() or (target < 0).any():
        raise TrainingError("The class shares of a prevalence adjustment must be positive.")
    weighted = probabilities * (target / source)
    return weighted / np.maximum(weighted.sum(axis=1, keepdims=True), _SMALLEST_PROBABILITY)


def estimate_prevalence(
    probabilities: np.ndarray, training_prior: Sequence[float], tolerance: float = 1e-6, max_iterations: int = 1000
) -> tuple[np.ndarray, int]:
    """The class shares of an unlabelled population, by EM (Saerens, Latinne and Decaestecker, Neural
    Computation 2002): from the calibrated posteriors ``probabilities`` (N, C) of its images (under
    the training shares ``training_prior``), alternately adjust every posterior to the current
    estimate and take their mean as the next estimate, until it moves less than ``tolerance``.
    Returns (shares (C,), iterations)."""
    probabilities = np.asarray(probabilities, dtype=np.float64)
    if probabilities.ndim != 2 or len(probabilities) == 0:
        raise TrainingError("Estimating a prevalence needs the probabilities of at least one image.")
    estimate = np.asarray(training_prior, dtype=np.float64)
    for iteration in range(1, max_iterations + 1):
        updated = adjust_to_prevalence(probabilities, training_prior, estimate).mean(axis=0)
        updated = np.clip(updated, 1e-6, 1.0)
        updated /= updated.sum()
        if np.abs(updated - estimate).max() < tolerance:
            return updated, iteration
        estimate = updated
    return estimate, max_iterations


def youden_threshold(is_positive: np.ndarray, scores: np.ndarray) -> float:
    """The threshold on ``scores`` (N,) that maximises Youden's J = sensitivity + specificity - 1
    when an image is called positive at ``score >= threshold``; ``is_positive`` (N,) bool.

    Candidates are the midpoints between consecutive distinct scores, so the threshold sits between
    the images it separates rather than on one of them. Ties go to the candidate nearest 0.5. With
    fewer than two distinct scores, or a single class, there is nothing to choose: 0.5.
    """
    is_positive, scores = _binary_inputs(is_positive, scores)
    candidates = _candidate_thresholds(scores)
    if len(candidates) == 0 or is_positive.all() or not is_positive.any():
        return 0.5
    sensitivity, specificity = _rates_at(is_positive, scores, candidates)
    youden = sensitivity + specificity - 1.0
    best = np.flatnonzero(np.isclose(youden, youden.max(), rtol=0, atol=1e-12))
    return float(candidates[best[np.argmin(np.abs(candidates[best] - 0.5))]])


def threshold_for_sensitivity(is_positive: np.ndarray, scores: np.ndarray, target_sensitivity: float) -> float:
    """The highest threshold at which at least ``target_sensitivity`` of the positives score
    ``>= threshold``: the most specific operating point that still finds that share of positives.

    Candidates as in :func:`youden_threshold`, plus the lowest score itself (every image positive),
    which meets any target.
    """
    if not 0.0 < target_sensitivity <= 1.0:
        raise TrainingError(f"The target sensitivity must be above 0 and at most 1, not {target_sensitivity}.")
    is_positive, scores = _binary_inputs(is_positive, scores)
    if not is_positive.any():
        raise TrainingError("A target sensitivity needs validation images of the positive class; there are none.")
    candidates = np.concatenate([[scores.min()], _candidate_thresholds(scores)])
    sensitivity, _ = _rates_at(is_positive, scores, candidates)
    return float(candidates[sensitivity >= target_sensitivity - 1e-12].max())


def choose_threshold(
    y_true: np.ndarray,
    probabilities: np.ndarray,
    positive_class: int = 1,
    target_sensitivity: float | None = None,
) -> float | None:
    """The operating threshold on ``positive_class``'s probability, from ``probabilities`` (N, 2):
    Youden's J, or the most specific threshold reaching ``target_sensitivity``. ``None`` for more
    than two classes, whose call is the arg-max."""
    y_true, probabilities = _checked(y_true, probabilities)
    if probabilities.shape[1] != 2:
        return None
    is_positive = y_true == positive_class
    scores = probabilities[:, positive_class]
    if target_sensitivity is None:
        return youden_threshold(is_positive, scores)
    return threshold_for_sensitivity(is_positive, scores, target_sensitivity)


def calibrated_calls(
    probabilities: np.ndarray,
    calibration: dict[str, Any] | float = 1.0,
    threshold: float | None = None,
    positive_class: int = 1,
) -> tuple[np.ndarray, np.ndarray]:
    """What a model version says about new images, as its evaluation scored them: the calibrated
    probabilities (N, C) float64 and the called class (N,) int64.

    ``calibration``: the version's calibrator (:func:`calibrator_of` its metrics), or a bare
    temperature, as versions stored before calibrators were chosen were used
    (:func:`apply_calibrator`). Two classes with a ``threshold`` (the model version's
    ``metrics["threshold"]``): ``positive_class`` when its calibrated probability is ``>= threshold``,
    else the other class. Otherwise the arg-max. ``probabilities``: the model's raw (N, C) output.
    """
    calibrated = apply_calibrator(probabilities, calibration)
    if threshold is not None and calibrated.shape[1] == 2:
        called = np.where(calibrated[:, positive_class] >= threshold, positive_class, 1 - positive_class)
    else:
        called = calibrated.argmax(axis=1)
    return calibrated, called.astype(np.int64)


# --- uncertainty and calibration ------------------------------------------------------------------


def roc_auc_interval(
    y_true: np.ndarray,
    probabilities: np.ndarray,
    positive_class: int | None = None,
    resamples: int = BOOTSTRAP_RESAMPLES,
    confidence: float = 0.95,
    seed: int = 0,
) -> list[float] | None:
    """``[low, high]``: the ROC AUC's interval that the metrics report, the union of two intervals.

    - :func:`bootstrap_roc_auc_interval`: the percentile bootstrap. It sees only the images it has:
      on a sample the model separates perfectly every resample is separated too, and the interval
      is [1, 1] however few images there are, which is the "bare 1.000" this interval is to prevent.
    - :func:`newcombe_auc_interval`: a score interval that depends only on the AUC and the class
      counts, and stays wide at an AUC of 1 on a handful of images. Multi-class: the mean of the
      per-class bounds (one-vs-rest), which assumes the classes' errors move together.

    On a few hundred images the two agree closely; on a few they differ, and the wider one is kept.
    ``None`` when the labels hold a single class. (N, C) probabilities, (N,) int labels.
    """
    y_true, probabilities = _checked(y_true, probabilities)
    bootstrap = bootstrap_roc_auc_interval(y_true, probabilities, positive_class, resamples, confidence, seed)
    if bootstrap is None:
        return None
    if probabilities.shape[1] == 2:
        scored_classes = [1 if positive_class is None else positive_class]
    else:
        scored_classes = [int(c) for c in np.unique(y_true)]
    bounds = []
    for c in scored_classes:
        is_class = y_true == c
        auc = float(roc_auc_score(is_class, probabilities[:, c]))
        bounds.append(newcombe_auc_interval(auc, int(is_class.sum()), int((~is_class).sum()), confidence))
    score_low, score_high = np.mean(bounds, axis=0)
    return [float(min(bootstrap[0], score_low)), float(max(bootstrap[1], score_high))]


def newcombe_auc_interval(auc: float, positives: int, negatives: int, confidence: float = 0.95) -> list[float]:
    """``[low, high]``: Newcombe's score interval for an AUC (the Mann-Whitney statistic), his method 5
    (Stat Med 2006; 25:559-573): the ``theta`` with ``|auc - theta| <= z * sqrt(V(theta))``, where
    ``V`` is Hanley and McNeil's variance with both group sizes replaced by ``(m + n) / 2 - 1``.
    Unlike the Wald or bootstrap intervals it does not collapse to a point at an AUC of 0 or 1."""
    if positives < 1 or negatives < 1:
        raise TrainingError("An AUC interval needs at least one image of each class.")
    if not 0.0 <= auc <= 1.0:
        raise TrainingError(f"An AUC lies between 0 and 1, not {auc}.")
    z = float(norm.ppf(1 - (1 - confidence) / 2))
    size = (positives + negatives) / 2 - 1  # m* = n*

    def standard_error(theta: float) -> float:
        variance = theta * (1 - theta) * (1 + size * (1 - theta) / (2 - theta) + size * theta / (1 + theta))
        return float(np.sqrt(max(variance, 0.0) / (positives * negatives)))

    def below(theta: float) -> float:  # falls from auc (at 0) to <= 0 (at auc)
        return auc - theta - z * standard_error(theta)

    def above(theta: float) -> float:  # falls from >= 0 (at auc) to auc - 1 (at 1)
        return auc - theta + z * standard_error(theta)

    tiny = 1e-12  # at an AUC of exactly 0 or 1 the bracket starts just inside, where the sign is right
    low = 0.0
    if auc > 0:
        edge = min(auc, 1 - tiny)
        low = edge if below(edge) >= 0 else brentq(below, 0.0, edge, xtol=1e-9)
    high = 1.0
    if auc < 1:
        edge = max(auc, tiny)
        high = edge if above(edge) <= 0 else brentq(above, edge, 1.0, xtol=1e-9)
    return [float(low), float(high)]


def bootstrap_roc_auc_interval(
    y_true: np.ndarray,
    probabilities: np.ndarray,
    positive_class: int | None = None,
    resamples: int = BOOTSTRAP_RESAMPLES,
    confidence: float = 0.95,
    seed: int = 0,
) -> list[float] | None:
    """``[low, high]``: the percentile bootstrap interval of the ROC AUC (binary: of
    ``positive_class``'s probability; multi-class: the macro one-vs-rest mean).

    Stratified: every resample draws, with replacement, as many images of each class as there are,
    so each has both classes and a defined AUC. Seeded: the same inputs give the same interval.
    ``None`` when the labels hold a single class. (N, C) probabilities, (N,) int labels.
    """
    y_true, probabilities = _checked(y_true, probabilities)
    if resamples < 1 or not 0.0 < confidence < 1.0:
        raise TrainingError("The bootstrap needs at least one resample and a confidence between 0 and 1.")
    classes = np.unique(y_true)
    if len(classes) < 2:
        return None
    if probabilities.shape[1] == 2:
        scored_classes = [1 if positive_class is None else positive_class]
    else:
        scored_classes = [int(c) for c in classes]
    generator = np.random.default_rng(seed)
    members = [np.flatnonzero(y_true == c) for c in classes]
    aucs: list[np.ndarray] = []
    chunk = max(1, min(resamples, 4_000_000 // max(1, len(y_true))))  # bound memory at about 32 MB
    for start in range(0, resamples, chunk):
        count = min(chunk, resamples - start)
        # (count, N) image indices, each class's columns drawn from that class only.
        drawn = np.concatenate([generator.choice(index, size=(count, len(index))) for index in members], axis=1)
        drawn_labels = y_true[drawn[0]]  # the same for every row: class blocks in a fixed order
        per_class = [_rank_auc(probabilities[drawn, c], drawn_labels == c) for c in scored_classes]
        aucs.append(np.mean(per_class, axis=0))
    values = np.concatenate(aucs)  # (resamples,)
    tail = (1.0 - confidence) / 2 * 100
    low, high = np.percentile(values, [tail, 100 - tail])
    return [float(low), float(high)]


def expected_calibration_error(
    y_true: np.ndarray, probabilities: np.ndarray, positive_class: int | None = None, bins: int = CALIBRATION_BINS
) -> float:
    """The expected calibration error over ``bins`` equal-width bins: the image-weighted mean gap
    between the mean predicted probability and the observed frequency in each bin.

    Binary: of ``positive_class``'s (default 1) probability against the share of positives, the
    quantity the reliability diagram shows. Multi-class: of the top-label confidence against the share
    of correct calls. 0 is perfect; an overconfident model scores high.
    """
    y_true, probabilities = _checked(y_true, probabilities)
    if positive_class is None and probabilities.shape[1] == 2:
        positive_class = 1
    return _ece_from_bins(_reliability_bins(y_true, probabilities, positive_class, bins))


def _reliability_bins(
    y_true: np.ndarray, probabilities: np.ndarray, positive_class: int | None, bins: int = CALIBRATION_BINS
) -> dict:
    if probabilities.shape[1] == 2 and positive_class is not None:
        kind = "positive class"
        scores = probabilities[:, positive_class]  # (N,)
        outcome = y_true == positive_class
    else:
        kind = "top label"
        scores = probabilities.max(axis=1)
        outcome = probabilities.argmax(axis=1) == y_true
    # Bin b holds scores in [b/bins, (b+1)/bins); a score of exactly 1.0 goes to the last bin.
    bin_index = np.minimum((scores * bins).astype(np.int64), bins - 1)
    mean_predicted: list[float | None] = []
    fraction_positive: list[float | None] = []
    counts: list[int] = []
    for b in range(bins):
        in_bin = bin_index == b
        count = int(in_bin.sum())
        counts.append(count)
        mean_predicted.append(float(scores[in_bin].mean()) if count else None)
        fraction_positive.append(float(outcome[in_bin].mean()) if count else None)
    return {
        "kind": kind,
        "bin_mean_predicted": mean_predicted,
        "bin_fraction_positive": fraction_positive,
        "bin_count": counts,
    }


def _ece_from_bins(calibration: dict) -> float:
    total = sum(calibration["bin_count"])
    gaps = [
        count * abs(predicted - observed)
        for count, predicted, observed in zip(
            calibration["bin_count"],
            calibration["bin_mean_predicted"],
            calibration["bin_fraction_positive"],
            strict=True,
        )
        if count
    ]
    return float(sum(gaps) / total) if total else 0.0


# --- plain-words warnings -------------------------------------------------------------------------


def evaluation_notes(part: str, metrics: dict) -> list[str]:
    """Warnings, in plain words, about one part's figures (``part``: "validation" or "test"): too few
    images for the interval to mean much, a single class called for everything, an accuracy no better
    than always calling the commonest class, an AUC that cannot be computed."""
    notes: list[str] = []
    names = metrics["class_names"]
    counts = metrics.get("class_counts") or [sum(row) for row in metrics["confusion_matrix"]]
    n = metrics["n"]
    composition = ", ".join(f"{count} {name}" for name, count in zip(names, counts, strict=True))
    auc, interval = metrics.get("roc_auc"), metrics.get("roc_auc_ci")
    if auc is None:
        notes.append(
            f"ROC AUC cannot be computed on the {part} part: its {n} images are all of one class ({composition})."
        )
    elif interval is not None and interval[1] - interval[0] >= WIDE_INTERVAL:
        notes.append(
            f"Only {n} {part} images ({composition}): ROC AUC {auc:.2f} could be anywhere from "
            f"{interval[0]:.2f} to {interval[1]:.2f} (95% interval). That is too few images to tell a good "
            "model from a poor one; label more before trusting it."
        )
    predicted_counts = np.asarray(metrics["confusion_matrix"]).sum(axis=0)  # (C,) calls per class
    majority = int(np.argmax(counts))
    majority_rate = counts[majority] / n if n else 0.0
    if n and (predicted_counts == n).any():
        called = names[int(np.argmax(predicted_counts))]
        notes.append(f"At the chosen threshold the model calls every {part} image '{called}'.")
    elif n and metrics["accuracy"] <= majority_rate:
        notes.append(
            f"{part.capitalize()} accuracy {metrics['accuracy']:.3f} is no better than calling every image "
            f"'{names[majority]}' ({majority_rate:.3f})."
        )
    return notes


# --- plots ----------------------------------------------------------------------------------------

# Readable on the app's dark theme (.streamlit/config.toml) and on white: transparent background,
# light text, saturated lines that differ in hue and in style.
_TEXT = "#E6E6E6"
_GRID = "#5A5F6B"
_CURVE = "#4FC3F7"  # light blue
_POINT = "#FFB74D"  # orange
_CHANCE = "#9E9E9E"


def roc_curve_png(metrics: dict) -> bytes:
    """Draw the ROC curve of :func:`classification_metrics`' result, with its operating point at
    ``metrics["threshold"]``; returns PNG bytes with a transparent background."""
    curve = metrics.get("roc_curve")
    if not curve:
        raise TrainingError(
            "There is no ROC curve for this run: it needs a two-class model and validation images of both classes."
        )
    figure, axes = _dark_figure()
    axes.plot([0, 1], [0, 1], color=_CHANCE, linestyle="--", linewidth=1, label="chance")
    axes.plot(curve["fpr"], curve["tpr"], color=_CURVE, linewidth=2, label="model")
    if all(metrics.get(key) is not None for key in ("sensitivity", "specificity", "threshold")):
        axes.plot(
            [1 - metrics["specificity"]],
            [metrics["sensitivity"]],
            marker="o",
            markersize=8,
            color=_POINT,
            linestyle="none",
            label=f"threshold {metrics['threshold']:.2f}",
        )
    axes.set_xlim(0, 1)
    axes.set_ylim(0, 1.01)
    axes.set_xlabel("1 - specificity (false positive rate)")
    axes.set_ylabel("Sensitivity (true positive rate)")
    auc, interval = metrics.get("roc_auc"), metrics.get("roc_auc_ci")
    title = "ROC curve"
    if auc is not None:
        title += f", AUC {auc:.3f}"
        if interval:
            title += f"\n95% interval {interval[0]:.2f}-{interval[1]:.2f}, {metrics['n']} images"
    axes.set_title(title, color=_TEXT)
    _legend(axes, "lower right")
    return _png(figure)


# Line colours and styles for several curves on one plot: hue and dash both differ, so the curves
# stay apart on the dark theme and for readers who do not tell the hues apart.
_SERIES = [
    ("#4FC3F7", "-"),
    ("#FFB74D", "--"),
    ("#81C784", "-."),
    ("#F06292", ":"),
    ("#BA68C8", "-"),
    ("#E0E0E0", "--"),
]


def roc_curves_png(curves: Sequence[tuple[str, dict]], title: str = "ROC curves") -> bytes:
    """Overlay the ROC curves of several :func:`classification_metrics` results scored on the same
    images (model versions on one evaluation set); ``curves``: (legend label, metrics) pairs, each
    with its operating point. Results without a curve are left out. PNG bytes, transparent."""
    drawn = [(label, metrics) for label, metrics in curves if metrics.get("roc_curve")]
    if not drawn:
        raise TrainingError(
            "There are no ROC curves to compare: they need two-class models and images of both classes."
        )
    figure, axes = _dark_figure()
    figure.set_size_inches(5, 5)
    axes.plot([0, 1], [0, 1], color=_CHANCE, linestyle="--", linewidth=1)
    for number, (label, metrics) in enumerate(drawn):
        colour, style = _SERIES[number % len(_SERIES)]
        auc, interval = metrics.get("roc_auc"), metrics.get("roc_auc_ci")
        legend = label if auc is None else f"{label}: AUC {auc:.3f}"
        if interval:
            legend += f" ({interval[0]:.2f}-{interval[1]:.2f})"
        curve = metrics["roc_curve"]
        axes.plot(curve["fpr"], curve["tpr"], color=colour, linestyle=style, linewidth=2, label=legend)
        if metrics.get("sensitivity") is not None and metrics.get("specificity") is not None:
            axes.plot(
                [1 - metrics["specificity"]], [metrics["sensitivity"]], marker="o", color=colour, linestyle="none"
            )
    axes.set_xlim(0, 1)
    axes.set_ylim(0, 1.01)
    axes.set_xlabel("1 - specificity (false positive rate)")
    axes.set_ylabel("Sensitivity (true positive rate)")
    axes.set_title(title, color=_TEXT)
    _legend(axes, "lower right")
    return _png(figure)


def reliability_diagram_png(metrics: dict) -> bytes:
    """Draw the reliability diagram of :func:`classification_metrics`' ``calibration``: observed
    frequency against mean predicted probability per bin, marker area by image count, and the ECE;
    with ``calibration_uncalibrated`` in ``metrics`` (:func:`uncalibrated_reliability`), the raw
    probabilities' curve too, dotted: before and after calibration on the same images."""
    calibration = metrics.get("calibration")
    if not calibration or not any(calibration["bin_count"]):
        raise TrainingError("There is no reliability diagram for this run: it has no scored images.")
    figure, axes = _dark_figure()
    axes.plot([0, 1], [0, 1], color=_CHANCE, linestyle="--", linewidth=1, label="perfectly calibrated")
    filled = [
        (predicted, observed, count)
        for predicted, observed, count in zip(
            calibration["bin_mean_predicted"],
            calibration["bin_fraction_positive"],
            calibration["bin_count"],
            strict=True,
        )
        if count
    ]
    predicted, observed, counts = (list(column) for column in zip(*filled, strict=True))
    largest = max(counts)
    before = metrics.get("calibration_uncalibrated")
    if before and any(before["bin_count"]):
        # The raw probabilities on the same images: what calibration changed.
        raw = [
            (p, o)
            for p, o, c in zip(
                before["bin_mean_predicted"], before["bin_fraction_positive"], before["bin_count"], strict=True
            )
            if c
        ]
        ece_before = metrics.get("ece_uncalibrated")
        axes.plot(
            [p for p, _ in raw],
            [o for _, o in raw],
            color=_CHANCE,
            linestyle=":",
            marker="s",
            markersize=4,
            linewidth=1.2,
            label="before calibration" + (f" (ECE {ece_before:.3f})" if ece_before is not None else ""),
        )
    axes.plot(predicted, observed, color=_CURVE, linewidth=1.5, label="calibrated" if before else "model")
    axes.scatter(predicted, observed, s=[30 + 170 * c / largest for c in counts], color=_POINT, zorder=3)
    positive = calibration.get("kind", "positive class") == "positive class"
    if positive and metrics.get("positive_class") is not None:
        name = metrics["class_names"][metrics["positive_class"]]
        axes.set_xlabel(f"Predicted probability of '{name}'")
        axes.set_ylabel(f"Share of images that are '{name}'")
    else:
        axes.set_xlabel("Confidence of the predicted class")
        axes.set_ylabel("Share of calls that are right")
    axes.set_xlim(0, 1)
    axes.set_ylim(-0.05, 1.05)  # room for the markers of bins at 0 and 1
    ece = metrics.get("ece")
    axes.set_title(
        "Reliability" + (f", ECE {ece:.3f}" if ece is not None else "") + f"\n{metrics['n']} images", color=_TEXT
    )
    _legend(axes, "upper left")
    return _png(figure)


def _dark_figure():  # type: ignore[no-untyped-def]
    # Agg through the object API: no pyplot global state, safe in a server thread.
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    figure = Figure(figsize=(4, 4), dpi=100)
    FigureCanvasAgg(figure)
    figure.patch.set_alpha(0.0)
    axes = figure.add_subplot()
    axes.set_facecolor("none")
    for spine in axes.spines.values():
        spine.set_color(_GRID)
    axes.tick_params(colors=_TEXT, which="both")
    axes.xaxis.label.set_color(_TEXT)
    axes.yaxis.label.set_color(_TEXT)
    axes.grid(color=_GRID, linewidth=0.5, alpha=0.6)
    return figure, axes


def _legend(axes, location: str) -> None:  # type: ignore[no-untyped-def]
    legend = axes.legend(loc=location, frameon=False, fontsize=8)
    for text in legend.get_texts():
        text.set_color(_TEXT)


def _png(figure) -> bytes:  # type: ignore[no-untyped-def]
    figure.tight_layout()
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", transparent=True)
    return buffer.getvalue()


# --- helpers --------------------------------------------------------------------------------------


def _checked(
    y_true: np.ndarray, probabilities: np.ndarray, num_classes: int | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """(N,) int64 labels and (N, C) float64 probabilities, or a TrainingError saying what is wrong.
    ``num_classes`` None: whatever C the probabilities have, at least 2."""
    y_true = np.asarray(y_true).astype(np.int64).reshape(-1)
    probabilities = np.asarray(probabilities, dtype=np.float64)
    if num_classes is None:
        num_classes = probabilities.shape[1] if probabilities.ndim == 2 else 0
    if probabilities.ndim != 2 or probabilities.shape[1] != num_classes or num_classes < 2:
        raise TrainingError(f"Expected probabilities of shape (N, {num_classes}), got {probabilities.shape}.")
    if probabilities.shape[0] != y_true.shape[0]:
        raise TrainingError(f"Got {probabilities.shape[0]} predictions for {y_true.shape[0]} labels.")
    if y_true.shape[0] == 0:
        raise TrainingError("Cannot compute metrics on an empty set of images.")
    if y_true.min() < 0 or y_true.max() >= num_classes:
        raise TrainingError(f"Labels must be class indices between 0 and {num_classes - 1}.")
    return y_true, probabilities


def _binary_inputs(is_positive: np.ndarray, scores: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    is_positive = np.asarray(is_positive, dtype=bool).reshape(-1)
    scores = np.asarray(scores, dtype=np.float64).reshape(-1)
    if is_positive.shape != scores.shape or len(scores) == 0:
        raise TrainingError(
            f"Got {len(scores)} scores for {len(is_positive)} labels; they must match and not be empty."
        )
    return is_positive, scores


def _candidate_thresholds(scores: np.ndarray) -> np.ndarray:
    distinct = np.unique(scores)  # sorted ascending
    return (distinct[:-1] + distinct[1:]) / 2


def _rates_at(is_positive: np.ndarray, scores: np.ndarray, thresholds: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(sensitivity, specificity), each (T,), when ``score >= threshold`` is called positive."""
    called = scores[np.newaxis, :] >= thresholds[:, np.newaxis]  # (T, N) bool
    positives, negatives = is_positive.sum(), (~is_positive).sum()
    sensitivity = (called & is_positive).sum(axis=1) / max(positives, 1)
    specificity = (~called & ~is_positive).sum(axis=1) / max(negatives, 1)
    return sensitivity, specificity


def _rank_auc(scores: np.ndarray, is_positive: np.ndarray) -> np.ndarray:
    """ROC AUC of each row of ``scores`` (B, N) for the columns marked by ``is_positive`` (N,): the
    Mann-Whitney statistic, ties counted half, as roc_auc_score computes it."""
    ranks = rankdata(scores, axis=1)  # (B, N) float64, average ranks for ties
    positives = int(is_positive.sum())
    negatives = len(is_positive) - positives
    rank_sum = ranks[:, is_positive].sum(axis=1)
    return (rank_sum - positives * (positives + 1) / 2) / (positives * negatives)


def _log_softmax(logits: np.ndarray) -> np.ndarray:
    shifted = logits - logits.max(axis=1, keepdims=True)
    return shifted - np.log(np.exp(shifted).sum(axis=1, keepdims=True))


def _downsample(length: int, max_points: int) -> np.ndarray:
    """Indices of at most ``max_points`` evenly spread points that keep the first and the last."""
    if length <= max_points:
        return np.arange(length)
    return np.unique(np.round(np.linspace(0, length - 1, max_points)).astype(np.int64))
