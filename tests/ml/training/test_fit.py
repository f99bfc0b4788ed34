import dataclasses
import time

import numpy as np
import pytest

from medreview.errors import TrainingError
from medreview.ml.training import fit
from medreview.ml.training.fit import (
    EpochLog,
    FitConfig,
    TrainingCancelled,
    fit_model,
    load_model,
    predict_probabilities,
    save_model_atomic,
)
from tests.ml.training import bright_square_images

pytestmark = pytest.mark.slow  # trains a model

CONFIG = FitConfig(input_size=28, epochs=3, batch_size=32, seed=0)


@pytest.fixture(scope="module")
def square_task():
    images, labels, _ = bright_square_images(320, seed=0)
    return images[:256], labels[:256], images[256:], labels[256:]


def test_learns_a_learnable_task_and_reports_every_epoch(square_task):
    x_train, y_train, x_val, y_val = square_task
    reported: list[EpochLog] = []
    model, logs = fit_model(x_train, y_train, x_val, y_val, 2, CONFIG, on_epoch=reported.append)
    assert reported == logs
    assert [log.epoch for log in logs] == [1, 2, 3]
    assert all(np.isfinite(log.loss) and log.loss > 0 and log.seconds > 0 for log in logs)
    assert all(0.0 <= log.val_accuracy <= 1.0 for log in logs)
    assert max(log.val_auc for log in logs) > 0.9
    # The returned model is the best epoch's: its AUC on validation matches the best logged AUC.
    from medreview.ml.training.metrics import classification_metrics

    probabilities = predict_probabilities(model, x_val)
    best = classification_metrics(y_val, probabilities, ["none", "square"])["roc_auc"]
    assert best == pytest.approx(max(log.val_auc for log in logs), abs=1e-6)


def test_same_seed_gives_identical_weights_and_logs(square_task):
    config = FitConfig(input_size=28, epochs=1, batch_size=32, seed=4)
    first, first_logs = fit_model(*square_task, 2, config)
    second, second_logs = fit_model(*square_task, 2, config)
    assert all(np.array_equal(a, b) for a, b in zip(first.get_weights(), second.get_weights(), strict=True))
    assert [(log.loss, log.val_auc) for log in first_logs] == [(log.loss, log.val_auc) for log in second_logs]


def test_should_stop_cancels_during_an_epoch_and_reports_no_partial_one(square_task):
    started = time.monotonic()
    checked_during_training: list[float] = []

    def should_stop() -> bool:
        if not checked_during_training:  # the check before training starts
            checked_during_training.append(0.0)
            return False
        checked_during_training.append(time.monotonic() - started)
        return True  # the user pressed Cancel while the first epoch runs

    reported: list[EpochLog] = []
    slow = dataclasses.replace(CONFIG, epochs=50)
    with pytest.raises(TrainingCancelled, match="cancelled during epoch 1"):
        fit_model(*square_task, 2, slow, on_epoch=reported.append, should_stop=should_stop)
    assert reported == []  # the partial epoch is not reported as a finished one
    assert time.monotonic() - started < 30  # 50 epochs were asked for: it stopped, and soon


def test_should_stop_before_training_cancels_at_once(square_task):
    with pytest.raises(TrainingCancelled, match="before it started"):
        fit_model(*square_task, 2, CONFIG, should_stop=lambda: True)


def test_wrong_image_size_is_a_plain_error(square_task):
    x_train, y_train, x_val, y_val = square_task
    with pytest.raises(TrainingError, match="expected 32x32"):
        fit_model(x_train, y_train, x_val, y_val, 2, FitConfig(input_size=32, epochs=1))


def test_save_is_atomic_and_hashes_the_final_file(square_task, tmp_path):
    import hashlib

    from medreview.ml.configs import get_config

    model = get_config("small_cnn").build(28, 2)
    path = tmp_path / "models" / "run-1.keras"
    digest = save_model_atomic(model, path)
    assert digest == hashlib.sha256(path.read_bytes()).hexdigest()
    assert [p.name for p in path.parent.iterdir()] == ["run-1.keras"]  # no temp file left behind
    x_val = square_task[2]
    np.testing.assert_allclose(predict_probabilities(load_model(path), x_val), predict_probabilities(model, x_val))
    with pytest.raises(TrainingError):
        save_model_atomic(model, tmp_path / "model.h5")


@pytest.fixture
def restore_only(monkeypatch: pytest.MonkeyPatch) -> None:
    """fit_model without its last step, the BatchNorm re-estimation over the training images (which
    changes the returned model's statistics on purpose: tests/ml/training/test_calibration.py): for
    tests of which epoch is restored, whose logged validation loss is then the returned model's."""
    monkeypatch.setattr(fit, "reestimate_batchnorm", lambda model, x_train, batch_size: None)


def test_when_auc_ties_the_lower_validation_loss_wins(square_task, restore_only):
    # The square task reaches validation AUC 1.0 within a few epochs and keeps it while the loss
    # still falls: the model returned must be the tied epoch with the lowest validation loss, not
    # the first epoch that hit AUC 1.0 (that one predicts everything near 0.5).
    x_train, y_train, x_val, y_val = square_task
    model, logs = fit_model(x_train, y_train, x_val, y_val, 2, FitConfig(input_size=28, epochs=8, batch_size=32))
    best_auc = max(log.val_auc for log in logs)
    tied = [log for log in logs if log.val_auc == best_auc]
    assert len(tied) > 1, "the task should saturate AUC for this test to mean anything"
    probabilities = predict_probabilities(model, x_val)
    loss = float(-np.mean(np.log(probabilities[np.arange(len(y_val)), y_val] + 1e-7)))
    assert loss == pytest.approx(min(log.val_loss for log in tied), rel=1e-3)


# --- the BatchNorm CNN ---------------------------------------------------------------------------

BN_CONFIG = FitConfig(architecture="bn_cnn", input_size=16, epochs=1, batch_size=16, seed=2)


@pytest.fixture(scope="module")
def small_square_task():
    images, labels, _ = bright_square_images(80, size=16, seed=1)
    return images[:64], labels[:64], images[64:], labels[64:]


def test_bn_cnn_trains_deterministically_and_reloads_in_safe_mode(small_square_task, tmp_path):
    import keras

    first, first_logs = fit_model(*small_square_task, 2, BN_CONFIG)
    second, second_logs = fit_model(*small_square_task, 2, BN_CONFIG)
    assert all(np.array_equal(a, b) for a, b in zip(first.get_weights(), second.get_weights(), strict=True))
    assert [(log.loss, log.val_loss) for log in first_logs] == [(log.loss, log.val_loss) for log in second_logs]
    # The saved model is the plain network (no augmentation layers) ending in the softmax.
    assert first.outputs[0].shape[-1] == 2 and first.layers[-1].name == "probabilities"
    assert not any(layer.name.startswith("random_") for layer in first.layers)
    path = tmp_path / "bn.keras"
    save_model_atomic(first, path)
    keras.backend.clear_session()
    x_val = small_square_task[2]
    np.testing.assert_allclose(
        predict_probabilities(load_model(path), x_val), predict_probabilities(first, x_val), atol=1e-6
    )


def test_background_validation_sees_the_epochs_batchnorm_statistics(small_square_task, restore_only):
    # The epoch monitor validates a snapshot of the weights through stateless_call; the BatchNorm
    # moving mean and variance are non-trainable variables and must be part of that snapshot (and of
    # the best-epoch restore): with one epoch, the logged validation loss is the returned model's.
    x_train, y_train, x_val, y_val = small_square_task
    model, logs = fit_model(x_train, y_train, x_val, y_val, 2, BN_CONFIG)
    probabilities = predict_probabilities(model, x_val)
    loss = float(-np.mean(np.log(np.clip(probabilities[np.arange(len(y_val)), y_val], 1e-7, 1.0))))
    assert loss == pytest.approx(logs[0].val_loss, rel=1e-5)
    moving_variance = model.get_layer("block1_1_bn").moving_variance.numpy()
    assert not np.allclose(moving_variance, 1.0)  # trained statistics, not the initial ones


def test_bn_cnn_inference_statistics_follow_a_short_run(small_square_task):
    # The early BatchNorm trial that "collapsed to AUC 0.5" kept Keras' default momentum 0.99: after
    # a few dozen steps the moving variance still holds most of its initial 1.0 while the first
    # convolution's real output variance on [0, 1] images is a few thousandths, so inference
    # squashed every image to the same output. With momentum 0.9 the statistics have caught up
    # after 64 steps (64 images, batch 4, 4 epochs).
    import keras

    x_train, y_train, x_val, y_val = small_square_task
    config = dataclasses.replace(BN_CONFIG, batch_size=4, epochs=4, augment=False)
    model, _ = fit_model(x_train, y_train, x_val, y_val, 2, config)
    layer = model.get_layer("block1_1_bn")
    activations = keras.Model(model.inputs, layer.input).predict(x_train[..., None], verbose=0)
    actual_variance = activations.var(axis=(0, 1, 2))  # (channels,)
    ratio = np.median(layer.moving_variance.numpy() / np.maximum(actual_variance, 1e-12))
    assert 0.3 < ratio < 3.0
    probabilities = predict_probabilities(model, x_val)[:, 1]
    assert probabilities.std() > 0.05  # the images are told apart, not squashed to one output


def test_the_returned_models_batchnorm_statistics_are_those_of_the_training_images(small_square_task):
    # A short run leaves the moving averages trailing the weights, which shifted every logit of the
    # 800-film run by about -5 (ECE 0.46 before calibration): the returned model's statistics are
    # re-estimated over the training images under the final weights.
    import keras

    x_train, y_train, x_val, y_val = small_square_task
    model, _ = fit_model(x_train, y_train, x_val, y_val, 2, BN_CONFIG)
    layer = model.get_layer("block1_1_bn")
    activations = keras.Model(model.inputs, layer.input).predict(x_train[..., None], verbose=0)
    np.testing.assert_allclose(layer.moving_mean.numpy(), activations.mean(axis=(0, 1, 2)), rtol=1e-3, atol=1e-6)
    np.testing.assert_allclose(layer.moving_variance.numpy(), activations.var(axis=(0, 1, 2)), rtol=1e-2, atol=1e-6)
