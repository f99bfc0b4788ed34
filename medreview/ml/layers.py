"""Custom Keras layers, registered so that a saved ``.keras`` file reloads with ``safe_mode=True``
(``Lambda`` layers would not). Loading a model imports this module first."""

from __future__ import annotations

import keras
from keras import layers

__all__ = ["GreyToRGB"]


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
