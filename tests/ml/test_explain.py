import dataclasses

import numpy as np
import pytest

from medreview.ml.configs import get_config
from medreview.ml.explain import find_last_conv_layer, grad_cam
from medreview.ml.training.fit import FitConfig, fit_model
from tests.ml.training import SQUARE_SIDE, bright_square_images

pytestmark = pytest.mark.slow  # trains a model


@pytest.fixture(scope="module")
def square_model():
    images, labels, _ = bright_square_images(384, seed=1)
    config = dataclasses.replace(FitConfig(), epochs=4, batch_size=32)
    model, logs = fit_model(images[:320], labels[:320], images[320:], labels[320:], 2, config)
    assert max(log.val_auc for log in logs) > 0.95, "the toy model must learn the task to be worth explaining"
    return model


def test_heat_sits_on_the_bright_square(square_model):
    images, labels, corners = bright_square_images(16, seed=2)
    squares = labels == 1
    maps = grad_cam(square_model, images[squares], class_index=1)  # (n, 7, 7) at 28 px
    assert maps.shape == (squares.sum(), 7, 7)
    scale = 28 / 7
    for heat, (row, column) in zip(maps, corners[squares], strict=True):
        inside = np.zeros_like(heat, dtype=bool)
        top, left = int(row // scale), int(column // scale)
        bottom, right = (
            int(np.ceil((row + SQUARE_SIDE) / scale)),
            int(np.ceil((column + SQUARE_SIDE) / scale)),
        )
        inside[top:bottom, left:right] = True
        assert heat[inside].mean() > heat[~inside].mean()
        assert inside[np.unravel_index(heat.argmax(), heat.shape)]


def test_default_class_is_the_predicted_one_and_maps_are_normalised(square_model):
    images, _, _ = bright_square_images(6, seed=3)
    maps = grad_cam(square_model, images[..., np.newaxis])
    assert maps.dtype == np.float32 and maps.shape == (6, 7, 7)
    assert np.all((maps >= 0) & (maps <= 1))
    assert all(heat.max() in (0.0, 1.0) for heat in maps)


@pytest.mark.parametrize("architecture", ["small_cnn", "mobilenet_v2"])
def test_each_config_names_its_last_feature_map_for_grad_cam(architecture):
    config = get_config(architecture)
    model = config.build(max(config.min_input_size, 28), 2)
    assert find_last_conv_layer(model) == config.feature_layer


def test_grad_cam_through_a_nested_backbone():
    model = get_config("mobilenet_v2").build(64, 3, seed=0)
    images = np.random.default_rng(0).uniform(size=(3, 64, 64)).astype(np.float32)
    maps = grad_cam(model, images)
    assert maps.shape == (3, 2, 2)  # MobileNetV2 downsamples 32x
    assert not np.isnan(maps).any()
    assert np.all((maps >= 0) & (maps <= 1))
    # Asking again reuses the gradient model and gives the same maps.
    np.testing.assert_array_equal(grad_cam(model, images), maps)


def test_grad_cam_on_a_sequential_model():
    import keras
    from keras import layers

    model = keras.Sequential(
        [
            keras.Input(shape=(16, 16, 1)),
            layers.Conv2D(4, 3, padding="same", activation="relu", name="conv"),
            layers.GlobalAveragePooling2D(),
            layers.Dense(2, name="logits"),
            layers.Softmax(),
        ]
    )
    images = np.random.default_rng(0).uniform(size=(2, 16, 16, 1)).astype(np.float32)
    assert find_last_conv_layer(model) == "conv"
    maps = grad_cam(model, images, class_index=0)
    assert maps.shape == (2, 16, 16)
    assert np.all((maps >= 0) & (maps <= 1))
