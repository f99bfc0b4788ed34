import dataclasses

import numpy as np
import pytest

from medreview.ml.configs import CONFIGS, get_config
from medreview.ml.explain import find_last_conv_layer, grad_cam
from medreview.ml.training.fit import FitConfig, fit_model
from tests.ml.training import SQUARE_SIDE, bright_square_images

pytestmark = pytest.mark.slow  # trains a model


@pytest.fixture(scope="module")
def square_model():
    images, labels, _ = bright_square_images(384, seed=1)
    config = dataclasses.replace(FitConfig(), architecture="small_cnn", epochs=4, batch_size=32)
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


@pytest.mark.parametrize("architecture", sorted(CONFIGS))
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


# --- HiResCAM beside Grad-CAM ---------------------------------------------------------------------


def tiny_model(head: str, seed: int = 0):
    """(N, 8, 8, 1) -> conv "features" -> ``head`` -> logits -> softmax, untrained but seeded.

    ``head``: "one_by_one" (an 8x8 valid convolution: a 1x1 feature map, then flatten), "average"
    (global average pooling straight after the feature map) or "flatten" (an 8x8 feature map,
    flattened: every position has its own weights, so the gradient varies across the map)."""
    import keras
    from keras import layers

    keras.utils.set_random_seed(seed)
    inputs = keras.Input(shape=(8, 8, 1))
    if head == "one_by_one":
        x = layers.Conv2D(6, 8, padding="valid", activation="relu", name="features")(inputs)  # (N, 1, 1, 6)
        x = layers.Flatten()(x)
    elif head == "average":
        x = layers.Conv2D(6, 3, padding="same", activation="relu", name="features")(inputs)  # (N, 8, 8, 6)
        x = layers.GlobalAveragePooling2D()(x)
    else:
        x = layers.Conv2D(6, 3, padding="same", activation="relu", name="features")(inputs)  # (N, 8, 8, 6)
        x = layers.Flatten()(x)
    logits = layers.Dense(3, name="logits")(x)
    return keras.Model(inputs, layers.Softmax()(logits))


@pytest.mark.parametrize("head", ["one_by_one", "average"])
def test_hirescam_equals_grad_cam_where_the_gradient_is_spatially_constant(head):
    model = tiny_model(head)
    images = np.random.default_rng(0).uniform(size=(4, 8, 8)).astype(np.float32)
    for class_index in range(3):
        grad = grad_cam(model, images, class_index=class_index, layer_name="features", method="gradcam")
        hires = grad_cam(model, images, class_index=class_index, layer_name="features", method="hirescam")
        np.testing.assert_allclose(hires, grad, atol=1e-5)


def test_hirescam_differs_from_grad_cam_where_the_gradient_varies():
    model = tiny_model("flatten")
    images = np.random.default_rng(0).uniform(size=(4, 8, 8)).astype(np.float32)
    grad = grad_cam(model, images, class_index=0, layer_name="features", method="gradcam")
    hires = grad_cam(model, images, class_index=0, layer_name="features", method="hirescam")
    assert grad.shape == hires.shape == (4, 8, 8)
    assert np.all((hires >= 0) & (hires <= 1))
    assert np.abs(hires - grad).max() > 0.1


def test_an_unknown_map_method_is_refused():
    with pytest.raises(ValueError, match="Unknown map method 'saliency'"):
        grad_cam(tiny_model("average"), np.zeros((1, 8, 8), np.float32), layer_name="features", method="saliency")


# --- faithfulness: a model that sees one quadrant ---------------------------------------------------

QUADRANT_SIZE = 32
QUADRANT_SQUARE = 6


def quadrant_images(count: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """(N, 32, 32) float32 noise in [0, 0.3]: class 1 has a bright square in the top-left quadrant,
    and both classes have bright squares in the other three quadrants at random (they carry no
    signal, and a masked model never sees them)."""
    generator = np.random.default_rng(seed)
    images = generator.uniform(0.0, 0.3, size=(count, QUADRANT_SIZE, QUADRANT_SIZE)).astype(np.float32)
    labels = np.arange(count, dtype=np.int64) % 2
    half = QUADRANT_SIZE // 2
    for image, label in zip(images, labels, strict=True):
        for top, left in ((0, 0), (0, half), (half, 0), (half, half)):
            if (top, left) == (0, 0) and not label:
                continue
            if (top, left) != (0, 0) and generator.random() < 0.5:
                continue
            row, column = np.array([top, left]) + generator.integers(2, half - QUADRANT_SQUARE - 1, size=2)
            image[row : row + QUADRANT_SQUARE, column : column + QUADRANT_SQUARE] = 1.0
    return images, labels


@pytest.fixture(scope="module")
def top_left_model():
    """A small CNN (conv, pool, conv "features", pool, average, logits) whose input is multiplied by
    a mask of the top-left quadrant before the first convolution, trained on quadrant_images."""
    import keras
    from keras import layers

    keras.utils.set_random_seed(0)
    mask = np.zeros((1, QUADRANT_SIZE, QUADRANT_SIZE, 1), dtype=np.float32)
    mask[:, : QUADRANT_SIZE // 2, : QUADRANT_SIZE // 2] = 1.0
    inputs = keras.Input(shape=(QUADRANT_SIZE, QUADRANT_SIZE, 1))
    x = inputs * keras.ops.convert_to_tensor(mask)  # only the top-left quadrant reaches the convolutions
    x = layers.Conv2D(16, 3, padding="same", activation="relu")(x)
    x = layers.MaxPooling2D()(x)  # (N, 16, 16, 16)
    x = layers.Conv2D(32, 3, padding="same", activation="relu", name="features")(x)  # (N, 16, 16, 32)
    x = layers.MaxPooling2D()(x)  # max pooling after the map: Grad-CAM and HiResCAM differ
    x = layers.GlobalAveragePooling2D()(x)
    model = keras.Model(inputs, layers.Softmax()(layers.Dense(2, name="logits")(x)))
    images, labels = quadrant_images(512, seed=1)
    model.compile(optimizer=keras.optimizers.Adam(3e-3), loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    history = model.fit(images[..., np.newaxis], labels, epochs=6, batch_size=32, verbose=0)
    assert history.history["accuracy"][-1] > 0.95, "the masked model must learn the task to be worth explaining"
    return model


@pytest.mark.parametrize("method", ["gradcam", "hirescam"])
def test_a_model_that_sees_one_quadrant_gets_its_map_there(top_left_model, method):
    # Bright squares in all four quadrants: a map that followed the image instead of the model would
    # spread over all of them.
    images, _ = quadrant_images(8, seed=5)
    half = QUADRANT_SIZE // 2
    for image in images:
        image[2 : 2 + QUADRANT_SQUARE, 2 : 2 + QUADRANT_SQUARE] = 1.0
        image[half + 4 : half + 4 + QUADRANT_SQUARE, half + 4 : half + 4 + QUADRANT_SQUARE] = 1.0
    maps = grad_cam(top_left_model, images, class_index=1, layer_name="features", method=method)  # (8, 16, 16)
    assert maps.shape == (8, 16, 16)
    share_inside = maps[:, :8, :8].sum(axis=(1, 2)) / maps.sum(axis=(1, 2))
    assert share_inside.min() >= 0.8, share_inside


# --- sanity (Adebayo et al. 2018): the map must depend on what the model learned ------------------


@pytest.fixture(scope="module")
def retrained_square_model():
    """The same task and recipe as ``square_model`` with another seed: a second model that learned it."""
    images, labels, _ = bright_square_images(384, seed=1)
    config = dataclasses.replace(FitConfig(), architecture="small_cnn", epochs=4, batch_size=32, seed=1)
    model, logs = fit_model(images[:320], labels[:320], images[320:], labels[320:], 2, config)
    assert max(log.val_auc for log in logs) > 0.95
    return model


def mean_rank_correlation(maps: np.ndarray, others: np.ndarray) -> float:
    """Mean Spearman correlation of paired maps; a constant map (no evidence anywhere) ranks
    nothing, so it agrees with nothing: 0."""
    from scipy.stats import spearmanr

    values = []
    for heat, other in zip(maps, others, strict=True):
        if np.ptp(heat) == 0 or np.ptp(other) == 0:
            values.append(0.0)
        else:
            values.append(float(spearmanr(heat.ravel(), other.ravel()).statistic))
    return float(np.mean(values))


@pytest.mark.parametrize("method", ["gradcam", "hirescam"])
def test_a_randomly_initialised_model_gets_a_clearly_different_map(square_model, retrained_square_model, method):
    images, labels, _ = bright_square_images(16, seed=2)
    images = images[labels == 1]
    kwargs = {"class_index": 1, "layer_name": "last_conv", "method": method}
    trained = grad_cam(square_model, images, **kwargs)
    # Model randomisation: the same architecture, re-initialised with other seeds. One random network
    # can still light up a bright square by chance (a ReLU network responds to bright input), so the
    # comparison averages over eight re-initialisations.
    random_correlations = [
        mean_rank_correlation(trained, grad_cam(get_config("small_cnn").build(28, 2, seed=seed), images, **kwargs))
        for seed in range(1, 9)
    ]
    random_mean = float(np.mean(random_correlations))
    assert random_mean < 0.5, random_correlations
    # Control: the test can tell maps apart. A second model that learned the task agrees far better
    # than the random ones (a map that was noise, or ignored the weights, fails one side or the other).
    retrained = mean_rank_correlation(trained, grad_cam(retrained_square_model, images, **kwargs))
    assert retrained > random_mean + 0.3, (retrained, random_correlations)
