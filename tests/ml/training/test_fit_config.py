"""FitConfig takes the architecture's training choices, and build_and_compile compiles what it says
(optimizer, schedule, label smoothing) without training anything."""

from __future__ import annotations

import dataclasses
import math

import keras
import numpy as np
import pytest

from medreview.errors import TrainingError
from medreview.ml.training.fit import FitConfig, build_and_compile, training_targets
from tests.ml.training import bright_square_images


def test_unset_training_choices_come_from_the_architecture_and_are_recorded():
    config = FitConfig(architecture="bn_cnn")
    assert (config.augment, config.label_smoothing, config.weight_decay, config.learning_rate_schedule) == (
        True,
        0.1,
        1e-4,
        "cosine",
    )
    plain = FitConfig(architecture="small_cnn")
    assert (plain.augment, plain.label_smoothing, plain.weight_decay, plain.learning_rate_schedule) == (
        False,
        0.0,
        0.0,
        "constant",
    )
    # An explicit choice wins, and the stored config (asdict) rebuilds the same run.
    chosen = FitConfig(architecture="bn_cnn", augment=False, label_smoothing=0.0)
    assert chosen.augment is False and chosen.label_smoothing == 0.0 and chosen.weight_decay == 1e-4
    assert FitConfig(**dataclasses.asdict(chosen)) == chosen


def test_training_targets_are_one_hot():
    assert training_targets(np.array([1, 0, 2]), 3).tolist() == [[0, 1, 0], [1, 0, 0], [0, 0, 1]]


def test_bn_cnn_compiles_adamw_with_cosine_decay_over_the_whole_run():
    images, labels, _ = bright_square_images(40, size=16)
    config = FitConfig(architecture="bn_cnn", input_size=16, epochs=3, batch_size=16)
    model, fit_kwargs = build_and_compile(images, labels, 2, config)
    assert isinstance(model.optimizer, keras.optimizers.AdamW)
    assert model.optimizer.weight_decay == pytest.approx(1e-4)
    schedule = model.optimizer._learning_rate
    assert isinstance(schedule, keras.optimizers.schedules.CosineDecay)
    assert schedule.decay_steps == math.ceil(40 / 16) * 3
    assert float(schedule(0)) == pytest.approx(1e-3) and float(schedule(schedule.decay_steps)) == pytest.approx(0.0)
    assert fit_kwargs["shuffle"] is True and set(fit_kwargs["class_weight"]) == {0, 1}


def test_small_cnn_keeps_adam_at_a_constant_rate():
    images, labels, _ = bright_square_images(8, size=16)
    model, _ = build_and_compile(images, labels, 2, FitConfig(architecture="small_cnn", input_size=16))
    assert type(model.optimizer) is keras.optimizers.Adam
    assert float(model.optimizer.learning_rate) == pytest.approx(1e-3)


def test_label_smoothing_is_applied_to_the_loss():
    images, labels, _ = bright_square_images(16, size=16)
    targets = training_targets(labels, 2)
    losses = {}
    for smoothing in (0.0, 0.2):
        config = FitConfig(
            architecture="bn_cnn", input_size=16, label_smoothing=smoothing, augment=False, class_weighting=False
        )
        model, _ = build_and_compile(images, labels, 2, config)  # same seed: the same initial weights
        logits = model.get_layer("logits")  # confident outputs, so that smoothing changes the loss clearly
        logits.set_weights([weights * 10.0 for weights in logits.get_weights()])
        losses[smoothing] = model.evaluate(images[..., None], targets, batch_size=16, verbose=0)
        probabilities = model.predict(images[..., None], verbose=0)  # (16, 2) softmax
    smoothed_targets = targets * (1 - 0.2) + 0.2 / 2
    expected = float(np.mean(-np.sum(smoothed_targets * np.log(probabilities), axis=1)))
    unsmoothed = float(np.mean(-np.log(probabilities[np.arange(16), labels])))
    assert losses[0.2] == pytest.approx(expected, rel=1e-4)
    assert losses[0.0] == pytest.approx(unsmoothed, rel=1e-4)
    assert abs(losses[0.2] - losses[0.0]) > 0.01


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("label_smoothing", 1.0, "Label smoothing"),
        ("weight_decay", -0.1, "Weight decay"),
        ("learning_rate_schedule", "step", "learning-rate schedule"),
    ],
)
def test_bad_training_choices_are_plain_errors(field, value, message):
    images, labels, _ = bright_square_images(8, size=16)
    config = FitConfig(architecture="bn_cnn", input_size=16, **{field: value})
    with pytest.raises(TrainingError, match=message):
        build_and_compile(images, labels, 2, config)


def test_unknown_architecture_is_refused_when_the_config_is_made():
    with pytest.raises(TrainingError, match="Unknown architecture"):
        FitConfig(architecture="resnet9000")


def test_batchnorm_statistics_start_at_the_first_training_batch():
    # Not at Keras' 0 and 1, which inference would use until a moving average forgets them (see
    # BatchNormCNNConfig): the first layer's moving variance is the real variance of its input.
    images, labels, _ = bright_square_images(48, size=16)
    model, _ = build_and_compile(images, labels, 2, FitConfig(architecture="bn_cnn", input_size=16, batch_size=16))
    plain = model.layers[-1] if isinstance(model.layers[-1], keras.Model) else model  # behind augmentation
    layer = plain.get_layer("block1_1_bn")
    activations = keras.Model(plain.inputs, layer.input).predict(images[..., None], verbose=0)  # (48, 16, 16, 32)
    np.testing.assert_allclose(layer.moving_mean.numpy(), activations.mean(axis=(0, 1, 2)), rtol=1e-3, atol=1e-6)
    np.testing.assert_allclose(layer.moving_variance.numpy(), activations.var(axis=(0, 1, 2)), rtol=1e-2)
    assert layer.momentum == pytest.approx(0.9)  # restored after priming
