"""Custom Keras layers, registered so that a saved ``.keras`` file reloads with ``safe_mode=True``
(``Lambda`` layers would not). Loading a model imports this module first."""

from __future__ import annotations

import keras
from keras import layers

__all__ = ["GatedAttentionPooling", "GreyToRGB", "PerSlice"]


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


@keras.saving.register_keras_serializable(package="medreview")
class GatedAttentionPooling(layers.Layer):
    """Gated attention multiple-instance pooling (Ilse, Tomczak & Welling, "Attention-based deep
    multiple instance learning", ICML 2018, eq. 9): a bag of instance embeddings becomes one
    embedding, the weighted mean of the instances, and the weights say which instances drive it.

    ``a_k = softmax_k(w . (tanh(V h_k) * sigmoid(U h_k)))``, ``z = sum_k a_k h_k``. The sigmoid gate
    lets the score of an instance switch off where tanh alone, nearly linear around 0, could not.

    Inputs ``[embeddings, mask]``: (N, K, D) float32 instance embeddings (a case's slices) and (N, K)
    float32, 1 for a real slice and 0 for padding; padded slices get weight 0. Outputs
    ``[pooled, weights]``: (N, D) float32 and (N, K) float32 attention weights summing to 1 over the
    real slices of each case.
    """

    def __init__(self, units: int = 64, **kwargs):
        super().__init__(**kwargs)
        self.units = int(units)

    def build(self, input_shape):
        embedding_shape = input_shape[0]
        dimension = int(embedding_shape[-1])
        self.tanh_branch = self.add_weight(name="V", shape=(dimension, self.units), initializer="glorot_uniform")
        self.gate_branch = self.add_weight(name="U", shape=(dimension, self.units), initializer="glorot_uniform")
        self.score = self.add_weight(name="w", shape=(self.units, 1), initializer="glorot_uniform")

    def call(self, inputs):
        embeddings, mask = inputs  # (N, K, D), (N, K)
        ops = keras.ops
        hidden = ops.tanh(ops.matmul(embeddings, self.tanh_branch)) * ops.sigmoid(
            ops.matmul(embeddings, self.gate_branch)
        )  # (N, K, units)
        scores = ops.squeeze(ops.matmul(hidden, self.score), axis=-1)  # (N, K)
        mask = ops.cast(mask, scores.dtype)
        # Padding gets a score far below any real one: exp() of it is 0 in float32.
        scores = ops.where(mask > 0, scores, ops.full_like(scores, -1e9))
        weights = ops.softmax(scores, axis=-1) * mask
        weights = weights / ops.maximum(ops.sum(weights, axis=-1, keepdims=True), 1e-12)  # (N, K)
        pooled = ops.sum(embeddings * ops.expand_dims(weights, -1), axis=1)  # (N, D)
        return [pooled, weights]

    def compute_output_shape(self, input_shape):
        embedding_shape = input_shape[0]
        return [(embedding_shape[0], embedding_shape[-1]), (embedding_shape[0], embedding_shape[1])]

    def get_config(self):
        return {**super().get_config(), "units": self.units}


@keras.saving.register_keras_serializable(package="medreview")
class PerSlice(layers.Wrapper):
    """Apply a slice encoder to every slice of a batch of cases in one call.

    (N, K, S, S, c) -> (N, K, F): the cases' slices are folded into one batch of N*K images for the
    wrapped model and unfolded after. Keras' ``TimeDistributed`` calls its layer once per slice
    position (K calls of N images each) and, with K unknown until called, failed on a second K
    here; one call of N*K images is also what BatchNormalization should normalise over.
    """

    def build(self, input_shape):
        if not self.layer.built:
            self.layer.build((None, *input_shape[2:]))
        self.built = True

    def compute_output_shape(self, input_shape):
        inner = self.layer.compute_output_shape((None, *input_shape[2:]))
        return (input_shape[0], input_shape[1], *inner[1:])

    def call(self, inputs, training=None):
        ops = keras.ops
        shape = ops.shape(inputs)
        flat = ops.reshape(inputs, (-1, *inputs.shape[2:]))  # (N*K, S, S, c)
        encoded = self.layer(flat, training=training)  # (N*K, F)
        return ops.reshape(encoded, (shape[0], shape[1], *encoded.shape[1:]))
