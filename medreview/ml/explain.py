"""Class activation maps: which parts of an image drove the model's score for a class.

Two methods share one gradient computation (:data:`METHODS`):

- ``"gradcam"``, Grad-CAM (Selvaraju et al., ICCV 2017; keras-io examples/vision/grad_cam.py):
  each channel of the feature map is weighted by the *spatial mean* of its gradient, so a channel
  counts the same everywhere, even where the score does not depend on it.
- ``"hirescam"``, HiResCAM (Draelos & Carin, "Use HiResCAM instead of Grad-CAM for faithful
  explanations of convolutional neural networks", 2020): the gradient multiplies the feature map
  *element by element* before the channels are summed. Where the feature map reaches the score
  through (piecewise) linear layers only (max or average pooling, flatten, dense, as in every
  architecture of medreview.ml.configs), the map before its ReLU, summed over positions, is the
  score minus the logits layer's bias: each position gets exactly its share of the score, so the
  map cannot highlight a place the score does not depend on. When the gradient is spatially
  constant (global average pooling straight after the feature map, or a 1x1 map) the two methods
  coincide.

Written in the project because tf-keras-vis 0.8.7 fails on Sequential models and on nested
backbones under TF 2.21.

The gradient is taken of the pre-softmax score (the layer named ``"logits"``) with respect to a
convolutional feature map. A layer inside a nested backbone (a model used as a layer) cannot be an
output of the outer model in Keras 3, so for such a layer the outer graph is rebuilt through a
sub-model of the backbone that returns (feature map, backbone output), and the outer layers after
the backbone are applied again to that output; weights are shared, nothing is copied.
"""

from __future__ import annotations

import weakref

import keras
import numpy as np
import tensorflow as tf

__all__ = ["METHODS", "find_last_conv_layer", "grad_cam"]

# Layer path separator: "backbone/out_relu" names layer out_relu inside the nested model backbone.
SEPARATOR = "/"
# The map methods :func:`grad_cam` computes; medreview.ml.explanations titles them for the UI.
METHODS = ("gradcam", "hirescam")
_BATCH = 32
# Gradient models per (model, layer): building one adds nodes to the shared layers, so a model cached
# by the UI and explained many times must not build a new one per call.
_gradient_models: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


def find_last_conv_layer(model: keras.Model) -> str:
    """Name of the last layer with a 4-D output that is not a pooling layer, searching into nested
    models (returned as ``"outer_name/inner_name"``): the feature map to explain a model that has no
    :class:`~medreview.ml.configs.ModelConfig` naming one."""
    for layer in reversed(model.layers):
        if isinstance(layer, keras.Model):
            try:
                return f"{layer.name}{SEPARATOR}{find_last_conv_layer(layer)}"
            except ValueError:
                continue
        if "Pooling" in type(layer).__name__ or isinstance(layer, keras.layers.InputLayer):
            continue
        if len(_output_shape(layer)) == 4:
            return layer.name
    raise ValueError(f"Model {model.name!r} has no layer with a 4-D (image-like) output for Grad-CAM.")


def grad_cam(
    model: keras.Model,
    images: np.ndarray,
    class_index: int | None = None,
    layer_name: str | None = None,
    logits_layer: str = "logits",
    method: str = "gradcam",
) -> np.ndarray:
    """Class activation maps (N, h, w) float32 in [0, 1] at the feature map's resolution.

    ``images``: (N, S, S) or (N, S, S, 1) float32, the model's input size. ``class_index`` None explains
    each image's predicted class. ``layer_name`` is the config's ``feature_layer`` (default:
    :func:`find_last_conv_layer`); the gradient is taken of ``logits_layer``'s output, or of the
    model's output when it has no such layer. ``method`` is ``"gradcam"`` or ``"hirescam"`` (see the
    module docstring). Each map is divided by its maximum when that is positive; a map with no
    positive evidence is all zeros. The caller resizes the maps to the image for display.
    """
    if method not in METHODS:
        raise ValueError(f"Unknown map method {method!r}; choose one of {', '.join(METHODS)}.")
    images = np.asarray(images, dtype=np.float32)
    if images.ndim == 3:
        images = images[..., np.newaxis]  # (N, S, S, 1)
    expected = tuple(model.inputs[0].shape[1:])
    if images.ndim != 4 or images.shape[1:] != expected:
        raise ValueError(f"Images of shape {images.shape[1:]} do not fit the model's input {expected}.")
    if class_index is not None and not 0 <= class_index < int(model.outputs[0].shape[-1]):
        raise ValueError(f"Class index {class_index} is outside the model's {model.outputs[0].shape[-1]} classes.")
    layer_name = layer_name or find_last_conv_layer(model)
    per_layer = _gradient_models.setdefault(model, {})
    if (layer_name, logits_layer) not in per_layer:
        per_layer[layer_name, logits_layer] = _gradient_model(model, layer_name, logits_layer)
    gradient_model = per_layer[layer_name, logits_layer]
    maps = [
        _maps_batch(gradient_model, images[i : i + _BATCH], class_index, method) for i in range(0, len(images), _BATCH)
    ]
    if not maps:
        return np.zeros((0, 0, 0), dtype=np.float32)
    return np.concatenate(maps)


def _maps_batch(gradient_model: keras.Model, images: np.ndarray, class_index: int | None, method: str) -> np.ndarray:
    with tf.GradientTape() as tape:
        feature_maps, logits = gradient_model(tf.constant(images), training=False)  # (n, h, w, K), (n, C)
        if class_index is None:
            targets = tf.argmax(logits, axis=-1)
        else:
            targets = tf.fill([tf.shape(logits)[0]], tf.constant(class_index, dtype=tf.int64))
        # Each image's score depends only on its own feature map: one summed score, per-image gradients.
        scores = tf.gather(logits, targets, axis=1, batch_dims=1)  # (n,)
    gradients = tape.gradient(scores, feature_maps)  # (n, h, w, K)
    if method == "hirescam":
        # Position by position: sum_k dS/dA_k(h, w) * A_k(h, w).
        cams = tf.nn.relu(tf.reduce_sum(gradients * feature_maps, axis=-1)).numpy()  # (n, h, w)
    else:
        channel_weights = tf.reduce_mean(gradients, axis=(1, 2))  # (n, K)
        cams = tf.nn.relu(tf.einsum("nhwk,nk->nhw", feature_maps, channel_weights)).numpy()  # (n, h, w)
    cams = np.nan_to_num(cams.astype(np.float32), nan=0.0, posinf=0.0, neginf=0.0)
    maxima = cams.max(axis=(1, 2), keepdims=True)
    # Random-init backbones give ~1e-10 activations: normalise any positive map, leave the rest at zero.
    normalised = np.divide(cams, maxima, out=np.zeros_like(cams), where=maxima > 0)
    return np.clip(normalised, 0.0, 1.0)


def _gradient_model(model: keras.Model, layer_name: str, logits_layer: str) -> keras.Model:
    """A model with the same input returning (feature map (N, h, w, K), logits (N, C))."""
    outer_name, _, inner_name = layer_name.partition(SEPARATOR)
    if not inner_name:
        feature_layer = model.get_layer(outer_name)
        logits = _logits_tensor(model, logits_layer)
        return keras.Model(model.inputs, [_single(feature_layer.output), logits])

    # Nested backbone: rebuild the outer graph, layer by layer, through a backbone sub-model that also
    # returns the inner feature map. Assumes the outer model is a chain (one input per layer), as
    # every architecture in medreview.ml.configs is.
    backbone = model.get_layer(outer_name)
    if not isinstance(backbone, keras.Model):
        raise ValueError(f"Layer {outer_name!r} is not a nested model, so it has no layer {inner_name!r}.")
    inner_model = _gradient_model_inner(backbone, inner_name)
    inputs = keras.Input(shape=tuple(model.inputs[0].shape[1:]))
    x = inputs
    feature_map = None
    logits_name = logits_layer if logits_layer in [layer.name for layer in model.layers] else None
    for layer in model.layers:
        if isinstance(layer, keras.layers.InputLayer):
            continue
        if layer is backbone:
            feature_map, x = inner_model(x)
        else:
            x = layer(x)
        if layer.name == logits_name:
            break
    return keras.Model(inputs, [feature_map, x])


def _gradient_model_inner(backbone: keras.Model, layer_path: str) -> keras.Model:
    """Sub-model of ``backbone``: its input -> (the named inner layer's output, the backbone's output)."""
    if SEPARATOR in layer_path:
        raise ValueError(f"Grad-CAM goes one nested model deep, not into {layer_path!r}.")
    feature_layer = backbone.get_layer(layer_path)
    return keras.Model(backbone.inputs, [_single(feature_layer.output), _single(backbone.outputs)])


def _logits_tensor(model: keras.Model, logits_layer: str):
    names = [layer.name for layer in model.layers]
    if logits_layer in names:
        return _single(model.get_layer(logits_layer).output)
    # No explicit logits layer (a model from elsewhere): the gradient of the output score still works.
    return _single(model.outputs)


def _single(tensors):
    # Keras 3 gives one-element lists for .outputs (and Sequential raises on .output).
    return tensors[0] if isinstance(tensors, (list, tuple)) else tensors


def _output_shape(layer: keras.layers.Layer) -> tuple:
    try:
        return tuple(_single(layer.output).shape)
    except (AttributeError, ValueError):
        return ()
