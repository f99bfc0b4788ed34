"""Calibration that helps, an operating point that carries, and an input size from the data (issue 18).

Unit tests on generated probabilities (milliseconds), and one tiny training run on a project that mixes
28-px and 1,000-px films."""

from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image

from medreview.errors import TrainingError
from medreview.ml.training.metrics import (
    SLOPE_RANGE,
    TEMPERATURE_RANGE,
    adjust_to_prevalence,
    apply_calibrator,
    apply_temperature,
    calibrator_edge_notes,
    calibrator_of,
    estimate_prevalence,
    evaluate_model,
    expected_calibration_error,
    fit_calibrator,
    fit_temperature,
    reliability_diagram_png,
)
from medreview.ml.training.resolution import default_resolution, resampling_report

CLASSES = ["normal", "pneumonia"]


def _shifted(n: int, shift: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Labels drawn from sigmoid(z) and a model that reports sigmoid(z + shift): right ranking, every
    logit moved, as a network whose BatchNorm statistics trail its weights reports."""
    rng = np.random.default_rng(seed)
    z = rng.normal(0.0, 3.0, n)
    labels = (rng.random(n) < 1 / (1 + np.exp(-z))).astype(np.int64)
    reported = 1 / (1 + np.exp(-(z + shift)))
    return labels, np.stack([1 - reported, reported], axis=1)


def test_a_shift_that_temperature_cannot_fix_is_fixed_by_platt_and_the_choice_is_recorded():
    labels, probabilities = _shifted(1500, shift=-4.0, seed=0)
    raw_ece = expected_calibration_error(labels, probabilities)
    temperature_ece = expected_calibration_error(
        labels, apply_temperature(probabilities, fit_temperature(labels, probabilities))
    )
    assert raw_ece > 0.2 and temperature_ece > 0.08  # stretching cannot move the logits back
    calibrator = fit_calibrator(labels, probabilities)
    assert calibrator["method"] == "platt"
    assert calibrator["a"] == pytest.approx(1.0, abs=0.15) and calibrator["b"] == pytest.approx(4.0, abs=0.4)
    assert calibrator["nll"]["platt"] < calibrator["nll"]["temperature"] < calibrator["nll"]["none"]
    # Held-out images from the same model: calibration helps there too.
    test_labels, test_probabilities = _shifted(1500, shift=-4.0, seed=1)
    assert expected_calibration_error(test_labels, apply_calibrator(test_probabilities, calibrator)) < 0.04

    evaluation = evaluate_model(labels, probabilities, test_labels, test_probabilities, CLASSES, bootstrap_resamples=0)
    assert evaluation["calibrator"]["method"] == "platt" and evaluation["temperature"] == 1.0
    assert evaluation["test"]["ece"] < 0.04 < 0.2 < evaluation["test"]["ece_uncalibrated"]
    # The before/after diagram draws from both sets of bins.
    assert sum(evaluation["test"]["calibration_uncalibrated"]["bin_count"]) == 1500
    assert reliability_diagram_png(evaluation["test"]).startswith(b"\x89PNG")


def test_a_calibrated_model_keeps_none_and_isotonic_needs_enough_images_of_each_class():
    labels, probabilities = _shifted(300, shift=0.0, seed=2)
    small = fit_calibrator(labels, probabilities)
    assert "isotonic" not in small["nll"]  # fewer than 200 of a class
    assert small["method"] in ("none", "temperature", "platt")
    # Already calibrated: whichever wins barely moves the probabilities.
    assert np.abs(apply_calibrator(probabilities, small) - probabilities).max() < 0.1
    labels, probabilities = _shifted(2000, shift=0.0, seed=3)
    assert "isotonic" in fit_calibrator(labels, probabilities)["nll"]


def test_multi_class_vector_scaling_moves_a_shifted_class():
    rng = np.random.default_rng(4)
    logits = rng.normal(0, 2.5, (1500, 3))
    truth = np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)
    labels = np.array([rng.choice(3, p=row) for row in truth])
    shifted = logits + np.array([2.0, 0.0, -2.0])
    reported = np.exp(shifted) / np.exp(shifted).sum(axis=1, keepdims=True)
    calibrator = fit_calibrator(labels, reported)
    assert calibrator["method"] == "vector scaling"
    assert expected_calibration_error(
        labels, apply_calibrator(reported, calibrator)
    ) < 0.6 * expected_calibration_error(labels, apply_temperature(reported, fit_temperature(labels, reported)))


def test_an_old_version_with_only_a_temperature_predicts_exactly_as_before():
    probabilities = np.array([[0.2, 0.8], [0.9, 0.1]])
    assert calibrator_of({"temperature": 3.0}) == {"method": "temperature", "temperature": 3.0}
    assert np.array_equal(
        apply_calibrator(probabilities, calibrator_of({"temperature": 3.0})), apply_temperature(probabilities, 3.0)
    )
    assert np.array_equal(apply_calibrator(probabilities, calibrator_of({})), apply_temperature(probabilities, 1.0))


def test_edge_notes_compare_with_a_tolerance():
    high = TEMPERATURE_RANGE[1]
    assert calibrator_edge_notes({"method": "temperature", "temperature": 9.97})  # the 9.97 of 10
    assert calibrator_edge_notes({"method": "temperature", "temperature": high})
    assert not calibrator_edge_notes({"method": "temperature", "temperature": 9.0})
    assert not calibrator_edge_notes({"method": "platt", "a": 1.2, "b": 0.9})
    [note] = calibrator_edge_notes({"method": "platt", "a": 1.0, "b": -9.9})
    assert "bias b" in note and "edge of its range" in note
    assert calibrator_edge_notes({"method": "platt", "a": SLOPE_RANGE[0] * 1.01, "b": 0.0})


def test_prevalence_adjustment_matches_the_hand_worked_example():
    # Validation had 50% positives; p = 0.8 there has odds 4. At a prevalence of 20% the prior odds go
    # from 1 to 1/4: posterior odds 4 * (0.2 / 0.8) / (0.5 / 0.5) = 1, so p' = 0.5.
    adjusted = adjust_to_prevalence(np.array([[0.2, 0.8]]), [0.5, 0.5], [0.8, 0.2])
    assert adjusted[0, 1] == pytest.approx(0.5)
    # Validation 75% positive, p = 0.9 (odds 9), target 50%: odds 9 * (1 / 3) = 3, p' = 0.75.
    adjusted = adjust_to_prevalence(np.array([[0.1, 0.9]]), [0.25, 0.75], [0.5, 0.5])
    assert adjusted[0, 1] == pytest.approx(0.75)


def test_a_stated_prevalence_sets_the_rule_and_the_expected_figures():
    labels, probabilities = _shifted(1000, shift=0.0, seed=5)
    evaluation = evaluate_model(labels, probabilities, None, None, CLASSES, bootstrap_resamples=0, prevalence=0.2)
    point = evaluation["operating_point"]
    assert evaluation["threshold_rule"] == point["rule"] == "prevalence" and evaluation["threshold"] == 0.5
    shift = evaluation["calibrator"]["prior_shift"]
    assert shift["to"] == [0.8, 0.2] and shift["from"][1] == pytest.approx(labels.mean())
    assert point["prevalence"] == 0.2 and point["prevalence_source"] == "stated"
    sensitivity, specificity = point["expected_sensitivity"], point["expected_specificity"]
    assert point["expected_accuracy"] == pytest.approx(0.2 * sensitivity + 0.8 * specificity)
    # A rarer positive class is called more sparingly than Youden's J calls it.
    youden = evaluate_model(labels, probabilities, None, None, CLASSES, bootstrap_resamples=0)
    assert specificity > youden["operating_point"]["expected_specificity"]
    with pytest.raises(TrainingError, match="no unlabelled images"):
        evaluate_model(labels, probabilities, None, None, CLASSES, bootstrap_resamples=0, prevalence="estimate")


def test_em_estimates_the_prevalence_of_a_generated_unlabelled_sample():
    # Two Gaussian classes N(-1, 1) and N(+1, 1): at equal priors the posterior is sigmoid(2x).
    rng = np.random.default_rng(6)
    positive = rng.random(20000) < 0.2
    x = np.where(positive, rng.normal(1, 1, positive.size), rng.normal(-1, 1, positive.size))
    posterior = 1 / (1 + np.exp(-2 * x))
    shares, iterations = estimate_prevalence(np.stack([1 - posterior, posterior], axis=1), [0.5, 0.5])
    assert shares[1] == pytest.approx(0.2, abs=0.02) and iterations > 1
    # The mean posterior alone, what a naive count gives, is biased towards the training prior.
    assert posterior.mean() > 0.25


def test_input_size_is_a_high_percentile_and_the_run_says_what_was_resampled():
    # Mostly 1,000-px films with some 28-px thumbnails: the films' size (capped), not the smallest.
    shapes = [(1000, 1200)] * 8 + [(28, 28)] * 2
    assert default_resolution(shapes) == 128
    report = resampling_report(list(range(10)), shapes, 128)
    assert report["downsampled"]["count"] == 8 and report["downsampled"]["largest_factor"] == pytest.approx(7.81)
    assert report["upsampled"]["count"] == 2 and report["upsampled"]["largest_factor"] == pytest.approx(4.57)
    assert report["mixed_sizes"] and report["size_spread"] == pytest.approx(35.71)
    assert "8 images downsampled by up to 7.81x" in report["description"]
    uniform = resampling_report([1, 2], [(28, 28), (28, 28)], 28)
    assert not uniform["mixed_sizes"] and uniform["downsampled"]["count"] == uniform["upsampled"]["count"] == 0


def _png(pixels: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, format="PNG")
    return buffer.getvalue()


@pytest.mark.slow
def test_a_run_on_28_px_and_1000_px_films_is_not_activated_by_itself(store, tmp_path):
    from medreview.ingest.folders import import_class_folders
    from medreview.ingest.service import InputFile, ingest_files
    from medreview.jobs import execute_job, get_job, submit_job
    from medreview.ml.registry import active_model
    from medreview.ml.runners import RUNNERS
    from medreview.ml.training.service import TRAINING_JOB
    from medreview.reading.reads import LOCAL_ACTOR

    rng = np.random.default_rng(7)
    for number, name in enumerate(CLASSES):
        folder = tmp_path / "films" / name
        folder.mkdir(parents=True)
        for index in range(14):  # thumbnails: a bright centre for pneumonia
            pixels = rng.integers(0, 120, (28, 28), dtype=np.uint8)
            pixels[8:20, 8:20] += np.uint8(100 * number)
            (folder / f"small-{index}.png").write_bytes(_png(pixels))
        film = rng.integers(0, 200, (1000, 1000), dtype=np.uint8)
        (folder / "film.png").write_bytes(_png(film))
    import_class_folders(store, tmp_path / "films")
    unlabelled = [InputFile(f"u{i}.png", _png(rng.integers(0, 220, (28, 28), dtype=np.uint8))) for i in range(6)]
    ingest_files(store, LOCAL_ACTOR, unlabelled)

    job_id = submit_job(store, TRAINING_JOB, {"epochs": 1, "batch_size": 8, "prevalence": "estimate"})
    assert execute_job(store, job_id, RUNNERS) == "succeeded", get_job(store, job_id).error
    result = get_job(store, job_id).result
    metrics = result["metrics"]
    # 28 of 30 images are 28 px: that is the size, and the two films are shrunk 35.7x, by name.
    assert result["config"]["input_size"] == 28
    assert metrics["resampling"]["downsampled"]["count"] == 2
    assert metrics["resampling"]["downsampled"]["largest_factor"] == pytest.approx(35.71)
    assert not result["activated"] and "differ by 35.7x" in result["activation_reason"]
    assert active_model(store) is None  # even the first model waits for the admin
    # The prevalence was estimated from the 6 unlabelled images and the posterior moved to it.
    point = metrics["operating_point"]
    assert point["rule"] == "prevalence" and point["prevalence_source"].startswith("estimated by EM from 6")
    assert 0 < point["prevalence"] < 1 and metrics["calibrator"]["prior_shift"]["to"][1] == point["prevalence"]


def test_train_json_and_evaluation_sets_carry_the_calibration_before_and_after():
    from medreview.cli import _evaluation, _figures_line
    from medreview.ml.evaluation import score_on_set

    labels, probabilities = _shifted(600, shift=-4.0, seed=8)
    metrics = evaluate_model(labels[:300], probabilities[:300], labels[300:], probabilities[300:], CLASSES, 0.9)
    metrics["split"] = {}
    document = _evaluation(metrics)
    assert document["calibrator"]["method"] == "platt"
    assert document["operating_point"]["rule"] == "target sensitivity"
    assert document["test"]["ece_uncalibrated"] > document["test"]["ece"]
    assert "(before calibration " in _figures_line("test", metrics["test"])
    # An evaluation set is scored through the version's stored calibrator, before and after kept.
    figures = score_on_set(
        [CLASSES[y] for y in labels[300:]], probabilities[300:], CLASSES, metrics["calibrator"], metrics["threshold"]
    )
    assert figures["ece"] == pytest.approx(metrics["test"]["ece"])
    assert figures["calibration_uncalibrated"] == metrics["test"]["calibration_uncalibrated"]
