import io

import keras
import numpy as np
import pytest
from PIL import Image

from medreview.errors import TrainingError
from medreview.imaging.decoding import decode_raster
from medreview.ml.configs import CONFIGS, DEFAULT_ARCHITECTURE, Preprocessing, get_config, version_preprocessing
from medreview.ml.training.fit import load_model, predict_probabilities, save_model_atomic
from tests.helpers import png_bytes

# Small sizes each architecture accepts, to keep the tests fast.
SIZES = {"small_cnn": 28, "mobilenet_v2": 32, "bn_cnn": 28}


@pytest.mark.slow
@pytest.mark.parametrize("architecture", sorted(CONFIGS))
def test_builds_gives_probabilities_and_reloads_in_safe_mode(architecture, tmp_path):
    size = SIZES[architecture]
    model = get_config(architecture).build(size, num_classes=3, seed=1)
    images = np.random.default_rng(0).uniform(size=(4, size, size)).astype(np.float32)
    probabilities = predict_probabilities(model, images)
    assert probabilities.shape == (4, 3) and probabilities.dtype == np.float32
    np.testing.assert_allclose(probabilities.sum(axis=1), 1.0, atol=1e-5)
    assert model.get_layer("logits") is not None

    path = tmp_path / "model.keras"
    digest = save_model_atomic(model, path)
    assert len(digest) == 64
    # Reload in a fresh registry-only state: custom layers must come back through registration.
    keras.backend.clear_session()
    reloaded = load_model(path)
    np.testing.assert_allclose(predict_probabilities(reloaded, images), probabilities, atol=1e-6)


def test_small_cnn_is_reproducible_for_a_seed():
    first = get_config("small_cnn").build(28, 2, seed=5).get_weights()
    second = get_config("small_cnn").build(28, 2, seed=5).get_weights()
    other = get_config("small_cnn").build(28, 2, seed=6).get_weights()
    assert all(np.array_equal(a, b) for a, b in zip(first, second, strict=True))
    assert not np.array_equal(first[0], other[0])


def test_small_cnn_builds_at_chest_film_sizes():
    for size in (128, 224):
        assert get_config("small_cnn").build(size, 2).outputs[0].shape[-1] == 2


def test_bad_requests_are_plain_errors():
    with pytest.raises(TrainingError, match="at least 32 px"):
        get_config("mobilenet_v2").build(28, 2)
    with pytest.raises(TrainingError, match="Unknown architecture"):
        get_config("resnet9000").build(28, 2)
    with pytest.raises(TrainingError, match="does not exist"):
        get_config("mobilenet_v2").build(64, 2, weights_path="/nonexistent/imagenet.h5")


def test_bn_cnn_halves_large_inputs_first_and_grad_cam_reads_a_small_map():
    config = get_config("bn_cnn")
    # (input size, stem blocks, side of the feature map Grad-CAM reads)
    for size, stems, side in ((8, 0, 2), (28, 0, 7), (64, 1, 8), (128, 2, 8), (224, 3, 7)):
        assert config.stem_blocks(size) == stems
        model = config.build(size, 2)
        assert tuple(model.get_layer(config.feature_layer).output.shape[1:3]) == (side, side)
        assert sum(isinstance(layer, keras.layers.BatchNormalization) for layer in model.layers) == 6 + stems
    # get_layer raises for a missing name; the logits feed the probabilities, the model's output.
    assert model.get_layer(config.logits_layer).output.shape[1:] == (2,)
    assert model.get_layer(config.probabilities_layer).output is model.output


def test_bn_cnn_is_reproducible_for_a_seed():
    first = get_config("bn_cnn").build(16, 2, seed=5).get_weights()
    second = get_config("bn_cnn").build(16, 2, seed=5).get_weights()
    assert all(np.array_equal(a, b) for a, b in zip(first, second, strict=True))


def test_the_default_architecture_is_offered():
    assert DEFAULT_ARCHITECTURE in CONFIGS and "small_cnn" in CONFIGS


@pytest.mark.parametrize("architecture", sorted(CONFIGS))
def test_augmentation_never_flips_left_and_right(architecture):
    # A film whose left half is bright: shifted, zoomed, rotated or contrasted, the left must stay
    # the brighter side in every sample; a horizontal flip would swap the patient's sides.
    size = 32
    image = np.zeros((size, size, 1), dtype=np.float32)
    image[:, : size // 2] = 0.9
    image[:, size // 2 :] = 0.1
    x = keras.ops.convert_to_tensor(np.repeat(image[np.newaxis], 64, axis=0))
    for layer in get_config(architecture).augmentation(seed=3):
        x = layer(x, training=True)
    augmented = keras.ops.convert_to_numpy(x)  # (64, S, S, 1)
    assert not np.allclose(augmented, image[np.newaxis]), "the augmentation should change the images"
    left = augmented[:, :, : size // 2].mean(axis=(1, 2, 3))
    right = augmented[:, :, size // 2 :].mean(axis=(1, 2, 3))
    assert (left > right).all()
    assert augmented.min() >= 0.0 and augmented.max() <= 1.0


# --- the preprocessing recipe ------------------------------------------------------------------


@pytest.mark.parametrize("architecture", sorted(CONFIGS))
def test_recipe_round_trips_through_json(architecture):
    import json

    recipe = get_config(architecture).recipe(28)
    assert recipe == {
        "window_policy": "file-or-stored",
        "input_size": 28,
        "resize": "bilinear-antialias",
        "channels": "grey-luma",
    }
    restored = Preprocessing.from_dict(json.loads(json.dumps(recipe)))
    assert restored == get_config(architecture).preprocessing(28)
    assert restored.key() == get_config(architecture).preprocessing(28).key()


def test_recipe_key_changes_with_the_recipe():
    base = Preprocessing("file-or-stored", 28)
    assert len(base.key()) == 12
    assert base.key() == Preprocessing("file-or-stored", 28).key()
    others = [Preprocessing("file-or-percentiles", 28), Preprocessing("file-or-stored", 32)]
    assert len({base.key(), *(other.key() for other in others)}) == 3


def test_bad_recipes_are_plain_errors():
    with pytest.raises(TrainingError, match="unknown entries: colour"):
        Preprocessing.from_dict({"window_policy": "file-or-stored", "input_size": 28, "colour": "rgb"})
    with pytest.raises(TrainingError, match="incomplete"):
        Preprocessing.from_dict({"window_policy": "file-or-stored"})
    with pytest.raises(TrainingError, match="window policy"):
        Preprocessing("stretch", 28)
    with pytest.raises(TrainingError, match="input size"):
        Preprocessing("file-or-stored", 0)


def test_versions_without_a_recipe_get_the_percentile_stretch_they_were_trained_with():
    assert version_preprocessing(None, 64) == Preprocessing("file-or-percentiles", 64)
    stored = Preprocessing("file-or-stored", 64).to_dict()
    assert version_preprocessing(stored, 64) == Preprocessing("file-or-stored", 64)


def test_prepare_applies_the_recipe_it_is_given():
    pixels = np.linspace(10, 200, 64).round().astype(np.uint8).reshape(8, 8)
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, format="PNG")
    image = decode_raster(buffer.getvalue())
    config = get_config(DEFAULT_ARCHITECTURE)
    as_stored = config.prepare(image, config.recipe(8))
    np.testing.assert_allclose(as_stored, pixels / 255.0, atol=1e-6)
    np.testing.assert_array_equal(config.prepare(image, 8), as_stored)  # a size: the current recipe
    stretched = config.prepare(image, version_preprocessing(None, 8))
    assert stretched.max() == pytest.approx(1.0, abs=0.01)
    assert config.prepare(decode_raster(png_bytes(1, size=40)), config.recipe(16)).shape == (16, 16)
