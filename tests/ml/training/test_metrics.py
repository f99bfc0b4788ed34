import numpy as np
import pytest

from medreview.errors import TrainingError
from medreview.ml.training.metrics import (
    SUMMARY_KEYS,
    TEMPERATURE_RANGE,
    apply_calibrator,
    apply_temperature,
    bootstrap_roc_auc_interval,
    calibrated_calls,
    calibrator_of,
    choose_threshold,
    classification_metrics,
    evaluate_model,
    evaluation_notes,
    expected_calibration_error,
    fit_temperature,
    newcombe_auc_interval,
    reliability_diagram_png,
    roc_auc_interval,
    roc_curve_png,
    summary,
    threshold_for_sensitivity,
    youden_threshold,
)


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


# --- choices made on validation -------------------------------------------------------------------


def test_youden_threshold_on_a_hand_built_example():
    # Positives 0.9 0.8 0.7 0.35, negatives 0.6 0.3 0.2 0.1. Between 0.6 and 0.7 (threshold 0.65):
    # sensitivity 3/4, specificity 4/4, J = 0.75. Between 0.3 and 0.35: 1 + 2/4 - 1 = 0.5; between
    # 0.35 and 0.6: 3/4 + 3/4 - 1 = 0.5. So 0.65, the midpoint between the two images it separates.
    is_positive = np.array([1, 1, 1, 1, 0, 0, 0, 0], dtype=bool)
    scores = np.array([0.9, 0.8, 0.7, 0.35, 0.6, 0.3, 0.2, 0.1])
    assert youden_threshold(is_positive, scores) == pytest.approx(0.65)
    # The same through choose_threshold on (N, 2) probabilities, and a target sensitivity of 1 moves
    # it down to keep the 0.35 positive: midway between 0.3 and 0.35.
    probabilities = _as_probabilities(scores.tolist())
    assert choose_threshold(is_positive.astype(int), probabilities) == pytest.approx(0.65)
    assert choose_threshold(is_positive.astype(int), probabilities, target_sensitivity=1.0) == pytest.approx(0.325)
    assert threshold_for_sensitivity(is_positive, scores, 0.75) == pytest.approx(0.65)
    # More than two classes: the call is the arg-max, there is no threshold.
    assert choose_threshold(np.array([0, 1, 2]), np.eye(3)) is None


def test_a_useless_model_gets_a_threshold_between_its_scores_not_at_half():
    # All scores under 0.5, ranked perfectly: at 0.5 every image is called negative; Youden's J
    # puts the threshold between the classes.
    is_positive = np.array([0, 0, 0, 1, 1, 1], dtype=bool)
    scores = np.array([0.30, 0.31, 0.32, 0.40, 0.41, 0.42])
    threshold = youden_threshold(is_positive, scores)
    assert 0.32 < threshold < 0.40
    metrics = classification_metrics(
        is_positive.astype(int), _as_probabilities(scores.tolist()), ["n", "p"], threshold=threshold
    )
    assert metrics["accuracy"] == 1.0


def _overconfident(true_temperature: float, n: int = 20000, classes: int = 2, seed: int = 0):  # type: ignore[no-untyped-def]
    """Labels drawn from softmax(z) and reported probabilities softmax(z * true_temperature)."""
    generator = np.random.default_rng(seed)
    logits = generator.normal(0.0, 2.0, (n, classes))
    calibrated = np.exp(logits - logits.max(axis=1, keepdims=True))
    calibrated /= calibrated.sum(axis=1, keepdims=True)
    labels = (calibrated.cumsum(axis=1) < generator.random((n, 1))).sum(axis=1)
    reported = np.exp(true_temperature * (logits - logits.max(axis=1, keepdims=True)))
    reported /= reported.sum(axis=1, keepdims=True)
    return labels, reported


def _negative_log_likelihood(labels: np.ndarray, probabilities: np.ndarray) -> float:
    return float(-np.mean(np.log(probabilities[np.arange(len(labels)), labels])))


@pytest.mark.parametrize(("true_temperature", "classes"), [(2.5, 2), (0.5, 2), (2.0, 3)])
def test_temperature_scaling_recovers_a_known_temperature_and_lowers_the_loss(true_temperature, classes):
    labels, reported = _overconfident(true_temperature, classes=classes)
    temperature = fit_temperature(labels, reported)
    assert temperature == pytest.approx(true_temperature, rel=0.05)
    calibrated = apply_temperature(reported, temperature)
    assert np.allclose(calibrated.sum(axis=1), 1.0)
    assert _negative_log_likelihood(labels, calibrated) < _negative_log_likelihood(labels, reported) - 0.01
    assert expected_calibration_error(labels, calibrated) < expected_calibration_error(labels, reported)


def test_temperature_stays_in_its_range_and_is_one_for_a_single_class():
    # Perfectly separated: the likelihood keeps falling as T -> 0; the fit stops at the range's edge.
    labels = np.array([0, 0, 1, 1])
    assert fit_temperature(labels, _as_probabilities([0.4, 0.45, 0.55, 0.6])) == TEMPERATURE_RANGE[0]
    assert fit_temperature(np.zeros(4, dtype=int), _as_probabilities([0.1, 0.2, 0.3, 0.4])) == 1.0


def test_calibrated_calls_use_the_stored_calibrator_and_threshold_as_the_evaluation_did():
    labels, probabilities = _scored_sample(300, seed=3)
    evaluation = evaluate_model(labels, probabilities, None, None, ["normal", "pneumonia"])
    calibrated, called = calibrated_calls(probabilities, evaluation["calibrator"], evaluation["threshold"])
    assert np.allclose(calibrated, apply_calibrator(probabilities, evaluation["calibrator"]))
    # A version stored before calibrators were chosen is used with its bare temperature, as before.
    old, _ = calibrated_calls(probabilities, calibrator_of({"temperature": 2.0}), evaluation["threshold"])
    assert np.allclose(old, apply_temperature(probabilities, 2.0))
    # The calls reproduce the stored confusion matrix.
    matrix = np.zeros((2, 2), dtype=int)
    np.add.at(matrix, (labels, called), 1)
    assert matrix.tolist() == evaluation["validation"]["confusion_matrix"]
    # Probabilities under 0.5 are called positive when the threshold is lower.
    _, called = calibrated_calls(_as_probabilities([0.3, 0.2]), threshold=0.25)
    assert called.tolist() == [1, 0]
    _, called = calibrated_calls(np.array([[0.2, 0.5, 0.3]]), threshold=0.25)
    assert called.tolist() == [1]  # three classes: arg-max


# --- interval and calibration ---------------------------------------------------------------------


def _scored_sample(n: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """n images, half positive, whose positive scores overlap the negatives' (AUC about 0.85)."""
    generator = np.random.default_rng(seed)
    labels = np.arange(n) % 2
    scores = 1 / (1 + np.exp(-(1.5 * labels + generator.normal(0, 1, n) - 0.75)))
    return labels, _as_probabilities(scores.tolist())


def test_bootstrap_interval_holds_the_estimate_and_narrows_with_more_images():
    widths = {}
    for n in (11, 1000):
        labels, probabilities = _scored_sample(n)
        auc = classification_metrics(labels, probabilities, ["n", "p"])["roc_auc"]
        low, high = bootstrap_roc_auc_interval(labels, probabilities, seed=0)
        assert low <= auc <= high
        widths[n] = high - low
    assert widths[11] > 0.2  # the page calls an interval this wide "wide"
    assert widths[1000] < 0.1
    labels, probabilities = _scored_sample(11)
    assert bootstrap_roc_auc_interval(labels, probabilities, seed=4) == bootstrap_roc_auc_interval(
        labels, probabilities, seed=4
    )  # seeded
    assert bootstrap_roc_auc_interval(np.zeros(5, dtype=int), probabilities[:5]) is None


def test_a_perfect_score_on_a_few_images_gets_a_wide_interval_not_a_bare_one():
    # The bootstrap alone sees separated resamples only and says [1, 1]; the reported interval does not.
    labels = np.array([0, 0, 0, 1, 1, 1])
    probabilities = _as_probabilities([0.1, 0.2, 0.3, 0.6, 0.7, 0.8])
    assert bootstrap_roc_auc_interval(labels, probabilities) == [1.0, 1.0]
    metrics = classification_metrics(labels, probabilities, ["n", "p"], bootstrap_resamples=200)
    assert metrics["roc_auc"] == 1.0
    low, high = metrics["roc_auc_ci"]
    assert high == 1.0 and low < 0.6
    # On many images the score interval is narrow too, and agrees with the bootstrap.
    low, high = newcombe_auc_interval(1.0, 500, 500)
    assert low > 0.99
    labels, probabilities = _scored_sample(1000)
    bootstrap = bootstrap_roc_auc_interval(labels, probabilities)
    combined = roc_auc_interval(labels, probabilities)
    assert combined[0] == pytest.approx(bootstrap[0], abs=0.01) and combined[1] == pytest.approx(bootstrap[1], abs=0.01)


def test_newcombe_interval_matches_hand_computed_bounds():
    # m = n = 3, AUC 1: N* = 2, V(t) = t (1 - t) (1 + 2 (1 - t) / (2 - t) + 2 t / (1 + t)) / 9.
    # At the lower bound 1 - t = 1.96 sqrt(V(t)); t = 0.5010 solves it.
    low, high = newcombe_auc_interval(1.0, 3, 3)
    assert high == 1.0
    t = low
    variance = t * (1 - t) * (1 + 2 * (1 - t) / (2 - t) + 2 * t / (1 + t)) / 9
    assert 1 - t == pytest.approx(1.959964 * np.sqrt(variance), abs=1e-6)
    assert newcombe_auc_interval(0.5, 3, 3)[0] == pytest.approx(1 - newcombe_auc_interval(0.5, 3, 3)[1])


def test_ece_is_near_zero_when_calibrated_and_large_when_overconfident():
    generator = np.random.default_rng(1)
    probability = generator.random(20000)
    labels = (generator.random(20000) < probability).astype(int)
    assert expected_calibration_error(labels, _as_probabilities(probability.tolist())) < 0.02
    # Overconfident: the same images reported at 0.02 or 0.98.
    confident = np.where(probability > 0.5, 0.98, 0.02)
    assert expected_calibration_error(labels, _as_probabilities(confident.tolist())) > 0.2
    metrics = classification_metrics(labels, _as_probabilities(confident.tolist()), ["n", "p"])
    assert metrics["ece"] == pytest.approx(expected_calibration_error(labels, _as_probabilities(confident.tolist())))
    assert metrics["calibration"]["kind"] == "positive class"


def test_ece_of_a_hand_built_example():
    # Bin [0.1, 0.2): 0.15 twice, 1 of 2 positive: gap 0.35. Bin [0.9, 1]: 0.95 twice, both positive: 0.05.
    labels = np.array([0, 1, 1, 1])
    ece = expected_calibration_error(labels, _as_probabilities([0.15, 0.15, 0.95, 0.95]))
    assert ece == pytest.approx((2 * 0.35 + 2 * 0.05) / 4)


# --- the evaluation the job stores ----------------------------------------------------------------


def test_evaluate_model_chooses_on_validation_and_only_scores_test():
    labels, probabilities = _scored_sample(400, seed=1)
    test_labels, test_probabilities = _scored_sample(400, seed=2)
    evaluation = evaluate_model(labels, probabilities, test_labels, test_probabilities, ["normal", "pneumonia"])
    # The threshold and calibrator come from validation: changing the test part changes neither.
    flipped = evaluate_model(labels, probabilities, 1 - test_labels, test_probabilities, ["normal", "pneumonia"])
    assert (flipped["threshold"], flipped["calibrator"]) == (evaluation["threshold"], evaluation["calibrator"])
    calibrated = apply_calibrator(probabilities, evaluation["calibrator"])
    assert evaluation["threshold"] == pytest.approx(choose_threshold(labels, calibrated))
    assert evaluation["headline"] == "test" and evaluation["test"]["threshold"] == evaluation["threshold"]
    assert set(summary(evaluation["test"])) == set(SUMMARY_KEYS)
    assert evaluation["test"]["n"] == 400 and len(evaluation["test"]["roc_auc_ci"]) == 2
    # Earlier readers of the metrics find the validation figures at the top level.
    assert evaluation["roc_auc"] == evaluation["validation"]["roc_auc"]
    without_test = evaluate_model(labels, probabilities, None, None, ["normal", "pneumonia"])
    assert without_test["test"] is None and without_test["headline"] == "validation"


def test_notes_say_plainly_when_the_figures_cannot_be_trusted():
    # 11 images, perfectly ranked, all called 'normal' at 0.5: the "ROC AUC 1.000" model.
    labels = np.array([0] * 6 + [1] * 5)
    probabilities = _as_probabilities([0.1, 0.12, 0.14, 0.16, 0.18, 0.2, 0.3, 0.32, 0.34, 0.36, 0.38])
    metrics = classification_metrics(labels, probabilities, ["normal", "pneumonia"], bootstrap_resamples=200)
    notes = evaluation_notes("validation", metrics)
    assert any("Only 11 validation images (6 normal, 5 pneumonia)" in note for note in notes)
    assert any("calls every validation image 'normal'" in note for note in notes)
    many_labels, many_probabilities = _scored_sample(2000)
    good = classification_metrics(many_labels, many_probabilities, ["normal", "pneumonia"], bootstrap_resamples=200)
    assert evaluation_notes("test", good) == []


# --- plots ----------------------------------------------------------------------------------------


def _pixels(png: bytes) -> np.ndarray:
    import io

    from PIL import Image

    return np.asarray(Image.open(io.BytesIO(png)).convert("RGBA"))  # (H, W, 4) uint8


@pytest.mark.parametrize("draw", [roc_curve_png, reliability_diagram_png])
def test_plots_are_readable_on_the_dark_theme(draw):
    labels, probabilities = _scored_sample(200)
    png = draw(classification_metrics(labels, probabilities, ["normal", "pneumonia"], bootstrap_resamples=100))
    pixels = _pixels(png)
    # A transparent background (the page's dark one shows through), not a white square ...
    assert pixels[0, 0, 3] == 0 and pixels[-1, -1, 3] == 0
    assert np.mean(pixels[..., 3] == 0) > 0.5
    # ... and no dark ink, which would vanish on it: what is drawn is light or coloured.
    drawn = pixels[pixels[..., 3] > 200][:, :3].astype(int)
    assert len(drawn) > 0
    assert np.mean(drawn.max(axis=1) < 90) < 0.01
