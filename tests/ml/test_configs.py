import keras
import numpy as np
import pytest

from medreview.errors import TrainingError
from medreview.ml.configs import CONFIGS, get_config
from medreview.ml.training.fit import load_model, predict_probabilities, save_model_atomic

# The smallest size each architecture accepts, to keep the tests fast.
SIZES = {"small_cnn": 28, "mobilenet_v2": 32}


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
