"""Model architectures that the training job can build, by name.

Every model takes ``(input_size, input_size, 1)`` float32 grey images scaled to [0, 1] and ends in a
``Dense`` layer named ``"logits"`` followed by a softmax layer named ``"probabilities"``. Grad-CAM
(:mod:`medreview.ml.explain`) takes its gradient from the logits, and finds the feature map through the
layer named ``"last_conv"`` (small CNN) or the last 4-D layer of a nested backbone.

Custom layers are registered with Keras so that a saved ``.keras`` file reloads with
``safe_mode=True``; ``Lambda`` layers would not.
"""

from __future__ import annotations

from pathlib import Path

import keras
from keras import layers

from medreview.errors import TrainingError
from medreview.ml.training import ARCHITECTURES  # re-exported: the names live where TensorFlow is not

__all__ = ["ARCHITECTURES", "GreyToRGB", "build_model"]

# Names other modules rely on.
LOGITS_LAYER = "logits"
PROBABILITIES_LAYER = "probabilities"
LAST_CONV_LAYER = "last_conv"
BACKBONE_LAYER = "backbone"


@keras.saving.register_keras_serializable(package="medreview")
class GreyToRGB(layers.Layer):
    """Map a grey image in [0, 1] to the 3-channel [-1, 1] input that MobileNetV2 expects.

    (N, H, W, 1) float32 in [0, 1] -> (N, H, W, 3) float32 in [-1, 1].
    """

    def call(self, inputs):
        scaled = inputs * 2.0 - 1.0
        return keras.ops.concatenate([scaled, scaled, scaled], axis=-1)

    def compute_output_shape(self, input_shape):
        return (*input_shape[:-1], 3)


def build_model(
    architecture: str,
    input_size: int,
    num_classes: int,
    seed: int = 0,
    weights_path: str | None = None,
) -> keras.Model:
    """Build an uncompiled classifier: (N, S, S, 1) float32 in [0, 1] -> (N, num_classes) probabilities.

    ``seed`` seeds Keras' global random state (``keras.utils.set_random_seed``) before the layers are
    created, so the initial weights are reproducible. ``weights_path`` names a local ImageNet weights
    file for a backbone architecture (the app never downloads weights); without it the backbone starts
    from random weights.
    """
    if architecture not in ARCHITECTURES:
        raise TrainingError(f"Unknown architecture {architecture!r}; choose one of {', '.join(sorted(ARCHITECTURES))}.")
    if num_classes < 2:
        raise TrainingError(f"A classifier needs at least 2 classes, not {num_classes}.")
    keras.utils.set_random_seed(seed)
    if architecture == "small_cnn":
        if weights_path is not None:
            raise TrainingError("The small CNN has no pretrained weights; leave the weights file empty.")
        return _small_cnn(input_size, num_classes)
    return _mobilenet_v2(input_size, num_classes, weights_path)


def _small_cnn(input_size: int, num_classes: int) -> keras.Model:
    # Three 2x poolings: 8 px is the smallest input that keeps a 1x1 map at the end.
    if input_size < 8:
        raise TrainingError(f"The small CNN needs images of at least 8 px, not {input_size} px.")
    # No BatchNormalization: with class weights at 28 px a BN variant collapsed to AUC 0.5 here
    # (see DESIGN.md, Pitfalls); plain ReLU convolutions train reliably at this depth.
    inputs = keras.Input(shape=(input_size, input_size, 1), name="image")  # (N, S, S, 1) float32 [0, 1]
    x = layers.Conv2D(32, 3, padding="same", activation="relu", name="conv1")(inputs)
    x = layers.MaxPooling2D(name="pool1")(x)  # (N, S/2, S/2, 32)
    x = layers.Conv2D(64, 3, padding="same", activation="relu", name="conv2")(x)
    x = layers.MaxPooling2D(name="pool2")(x)  # (N, S/4, S/4, 64)
    # Grad-CAM reads this map: at 28 px it is 7x7, at 128 px 32x32.
    x = layers.Conv2D(128, 3, padding="same", activation="relu", name=LAST_CONV_LAYER)(x)
    x = layers.MaxPooling2D(name="pool3")(x)  # (N, S/8, S/8, 128)
    x = layers.GlobalAveragePooling2D(name="pool")(x)  # (N, 128)
    x = layers.Dropout(0.3, name="dropout")(x)
    logits = layers.Dense(num_classes, name=LOGITS_LAYER)(x)  # (N, C) float32
    probabilities = layers.Softmax(name=PROBABILITIES_LAYER)(logits)
    return keras.Model(inputs, probabilities, name="small_cnn")


def _mobilenet_v2(input_size: int, num_classes: int, weights_path: str | None) -> keras.Model:
    if input_size < 32:
        raise TrainingError(f"MobileNetV2 needs images of at least 32 px, not {input_size} px.")
    if weights_path is not None and not Path(weights_path).is_file():
        raise TrainingError(f"The weights file {weights_path} does not exist.")
    try:
        backbone = keras.applications.MobileNetV2(
            input_shape=(input_size, input_size, 3),
            alpha=0.35,
            include_top=False,
            weights=weights_path,
            name=BACKBONE_LAYER,
        )
    except ValueError as error:
        raise TrainingError(f"The weights file {weights_path} does not fit MobileNetV2 (0.35): {error}") from error
    inputs = keras.Input(shape=(input_size, input_size, 1), name="image")  # (N, S, S, 1) float32 [0, 1]
    x = GreyToRGB(name="grey_to_rgb")(inputs)  # (N, S, S, 3) float32 [-1, 1]
    x = backbone(x)  # (N, ~S/32, ~S/32, 1280)
    x = layers.GlobalAveragePooling2D(name="pool")(x)
    x = layers.Dropout(0.2, name="dropout")(x)
    logits = layers.Dense(num_classes, name=LOGITS_LAYER)(x)
    probabilities = layers.Softmax(name=PROBABILITIES_LAYER)(logits)
    return keras.Model(inputs, probabilities, name="mobilenet_v2")
