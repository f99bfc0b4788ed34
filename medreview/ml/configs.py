"""Model configurations: one object per architecture, in the style of MONAI Label's per-model configs.

A :class:`ModelConfig` owns everything that makes one architecture what it is:

- its network builder (:meth:`ModelConfig.network`), whose output ends in a ``Dense`` layer named
  :attr:`~ModelConfig.logits_layer` followed by a softmax layer named
  :attr:`~ModelConfig.probabilities_layer`;
- its preprocessing: the smallest input it accepts and how a decoded image becomes one input
  (:meth:`ModelConfig.prepare`);
- its training augmentation (:meth:`ModelConfig.augmentation`);
- the feature map Grad-CAM reads (:attr:`~ModelConfig.feature_layer`, ``"outer/inner"`` for a
  layer inside a nested backbone).

The training job, prediction and explanation ask the config of a model version
(:func:`get_config`) instead of sharing layer-name constants.

This module is imported by the Streamlit server (the Train page lists :data:`CONFIGS`), so it does
not import TensorFlow at import time: Keras is imported inside the hooks that build layers, which
only the worker calls.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, ClassVar

import numpy as np

from medreview.errors import TrainingError
from medreview.imaging.decoding import DecodedImage
from medreview.imaging.display import training_array

if TYPE_CHECKING:
    import keras

__all__ = ["CONFIGS", "DEFAULT_ARCHITECTURE", "MobileNetV2Config", "ModelConfig", "SmallCNNConfig", "get_config"]


class ModelConfig:
    """Template for one architecture. Subclasses set the class attributes and :meth:`network`."""

    name: ClassVar[str]
    title: ClassVar[str]  # for messages: "The small CNN needs ..."
    description: ClassVar[str]
    min_input_size: ClassVar[int]
    feature_layer: ClassVar[str]
    logits_layer: ClassVar[str] = "logits"
    probabilities_layer: ClassVar[str] = "probabilities"
    accepts_weights_file: ClassVar[bool] = False

    # --- preprocessing --------------------------------------------------------------------------

    def prepare(self, image: DecodedImage, input_size: int) -> np.ndarray:
        """One network input from a decoded image: (S, S) float32 in [0, 1], frame 0, grey."""
        return training_array(image, input_size)

    # --- network --------------------------------------------------------------------------------

    def build(self, input_size: int, num_classes: int, seed: int = 0, weights_path: str | None = None) -> keras.Model:
        """An uncompiled classifier: (N, S, S, 1) float32 in [0, 1] -> (N, num_classes) probabilities.

        ``seed`` seeds Keras' global random state before the layers are created, so the initial
        weights are reproducible. ``weights_path`` names a local weights file for a pretrained
        backbone (the app never downloads weights).
        """
        import keras

        if num_classes < 2:
            raise TrainingError(f"A classifier needs at least 2 classes, not {num_classes}.")
        if input_size < self.min_input_size:
            raise TrainingError(f"{self.title} needs images of at least {self.min_input_size} px, not {input_size} px.")
        if weights_path is not None and not self.accepts_weights_file:
            raise TrainingError(f"{self.title} has no pretrained weights; leave the weights file empty.")
        if weights_path is not None and not Path(weights_path).is_file():
            raise TrainingError(f"The weights file {weights_path} does not exist.")
        keras.utils.set_random_seed(seed)
        return self.network(input_size, num_classes, weights_path)

    def network(self, input_size: int, num_classes: int, weights_path: str | None) -> keras.Model:
        raise NotImplementedError

    def head(self, features: keras.KerasTensor, num_classes: int, dropout: float) -> keras.KerasTensor:
        """Pooled features -> dropout -> the logits layer -> the probabilities layer."""
        from keras import layers

        x = layers.Dropout(dropout, name="dropout")(features)
        logits = layers.Dense(num_classes, name=self.logits_layer)(x)  # (N, C) float32
        return layers.Softmax(name=self.probabilities_layer)(logits)

    # --- augmentation ---------------------------------------------------------------------------

    def augmentation(self, seed: int) -> list[keras.layers.Layer]:
        """Random layers applied in training only: small shifts, zoom and contrast. Never flips: a
        flipped chest film swaps the patient's left and right (situs, the heart's side), which is a
        different finding."""
        from keras import layers

        return [
            layers.RandomTranslation(0.05, 0.05, fill_mode="constant", seed=seed),
            layers.RandomZoom(0.05, fill_mode="constant", seed=seed + 1),
            layers.RandomContrast(0.1, seed=seed + 2),
        ]


class SmallCNNConfig(ModelConfig):
    name = "small_cnn"
    title = "The small CNN"
    description = "Small CNN (3 conv blocks, 32/64/128 filters); trains on CPU in minutes, any size >= 8 px."
    # Three 2x poolings: 8 px is the smallest input that keeps a 1x1 map at the end.
    min_input_size = 8
    feature_layer = "last_conv"

    def network(self, input_size: int, num_classes: int, weights_path: str | None) -> keras.Model:
        import keras
        from keras import layers

        # No BatchNormalization: one early trial of a BN variant with class weights collapsed to
        # validation AUC 0.5 at 28 px; plain ReLU convolutions train reliably at this depth.
        inputs = keras.Input(shape=(input_size, input_size, 1), name="image")  # (N, S, S, 1) float32 [0, 1]
        x = layers.Conv2D(32, 3, padding="same", activation="relu", name="conv1")(inputs)
        x = layers.MaxPooling2D(name="pool1")(x)  # (N, S/2, S/2, 32)
        x = layers.Conv2D(64, 3, padding="same", activation="relu", name="conv2")(x)
        x = layers.MaxPooling2D(name="pool2")(x)  # (N, S/4, S/4, 64)
        # Grad-CAM reads this map: at 28 px it is 7x7, at 128 px 32x32.
        x = layers.Conv2D(128, 3, padding="same", activation="relu", name=self.feature_layer)(x)
        x = layers.MaxPooling2D(name="pool3")(x)  # (N, S/8, S/8, 128)
        x = layers.GlobalAveragePooling2D(name="pool")(x)  # (N, 128)
        return keras.Model(inputs, self.head(x, num_classes, dropout=0.3), name=self.name)


class MobileNetV2Config(ModelConfig):
    name = "mobilenet_v2"
    title = "MobileNetV2"
    description = "MobileNetV2 (width 0.35) backbone; ImageNet weights only from a local file; >= 32 px."
    min_input_size = 32
    accepts_weights_file = True
    backbone_layer = "backbone"
    # The backbone's last activation, reached through the nested model (see medreview.ml.explain).
    feature_layer = "backbone/out_relu"

    def network(self, input_size: int, num_classes: int, weights_path: str | None) -> keras.Model:
        import keras
        from keras import layers

        from medreview.ml.layers import GreyToRGB

        try:
            backbone = keras.applications.MobileNetV2(
                input_shape=(input_size, input_size, 3),
                alpha=0.35,
                include_top=False,
                weights=weights_path,
                name=self.backbone_layer,
            )
        except ValueError as error:
            raise TrainingError(f"The weights file {weights_path} does not fit MobileNetV2 (0.35): {error}") from error
        inputs = keras.Input(shape=(input_size, input_size, 1), name="image")  # (N, S, S, 1) float32 [0, 1]
        x = GreyToRGB(name="grey_to_rgb")(inputs)  # (N, S, S, 3) float32 [-1, 1]
        x = backbone(x)  # (N, ~S/32, ~S/32, 1280)
        x = layers.GlobalAveragePooling2D(name="pool")(x)
        return keras.Model(inputs, self.head(x, num_classes, dropout=0.2), name=self.name)


# name -> config; the Train page and `train --architecture` offer these names.
CONFIGS: dict[str, ModelConfig] = {config.name: config for config in (SmallCNNConfig(), MobileNetV2Config())}
DEFAULT_ARCHITECTURE = SmallCNNConfig.name


def get_config(architecture: str) -> ModelConfig:
    """The config of an architecture name (as stored on a model version)."""
    try:
        return CONFIGS[architecture]
    except KeyError:
        raise TrainingError(
            f"Unknown architecture {architecture!r}; choose one of {', '.join(sorted(CONFIGS))}."
        ) from None
