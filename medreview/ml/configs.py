"""Model configurations: one object per architecture, in the style of MONAI Label's per-model configs.

A :class:`ModelConfig` owns everything that makes one architecture what it is:

- its network builder (:meth:`ModelConfig.network`), whose output ends in a ``Dense`` layer named
  :attr:`~ModelConfig.logits_layer` followed by a softmax layer named
  :attr:`~ModelConfig.probabilities_layer`;
- its preprocessing: the smallest input it accepts and the recipe that turns a decoded image into
  one input (:class:`Preprocessing`, :meth:`ModelConfig.recipe`, :meth:`ModelConfig.prepare`). The
  recipe is stored with every model version, so prediction and explanation apply what the model was
  trained on, and it keys the training-array cache;
- its training augmentation (:meth:`ModelConfig.augmentation`) and how it is trained by default
  (augmentation on or off, label smoothing, weight decay, learning-rate schedule: the defaults of
  :class:`~medreview.ml.training.fit.FitConfig`);
- the feature map Grad-CAM reads (:attr:`~ModelConfig.feature_layer`, ``"outer/inner"`` for a
  layer inside a nested backbone).

The training job, prediction and explanation ask the config of a model version
(:func:`get_config`) instead of sharing layer-name constants.

This module is imported by the Streamlit server (the Train page lists :data:`CONFIGS`), so it does
not import TensorFlow at import time: Keras is imported inside the hooks that build layers, which
only the worker calls.
"""

from __future__ import annotations

import hashlib
import json
import math
import weakref
from collections.abc import Mapping
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

import numpy as np

from medreview.errors import TrainingError
from medreview.imaging.decoding import DecodedImage
from medreview.imaging.display import (
    CHANNELS,
    RESIZE_METHODS,
    WINDOW_POLICIES,
    WINDOW_POLICY_FILE_OR_PERCENTILES,
    WINDOW_POLICY_FILE_OR_STORED,
    WINDOW_POLICY_HOUNSFIELD_OR_FILE,
    training_array,
)

if TYPE_CHECKING:
    import keras

__all__ = [
    "CASE_CONFIGS",
    "CONFIGS",
    "DEFAULT_ARCHITECTURE",
    "AttentionMIL25DConfig",
    "AttentionMILConfig",
    "BatchNormCNNConfig",
    "MobileNetV2Config",
    "ModelConfig",
    "Preprocessing",
    "SmallCNNConfig",
    "get_case_config",
    "get_config",
    "version_preprocessing",
]


@dataclass(frozen=True)
class Preprocessing:
    """How a decoded image becomes one network input: the recipe a model version is trained with.

    ``window_policy``: how greyscale values map to [0, 1] (see :mod:`medreview.imaging.display`):
    "file-or-stored" (a DICOM's own VOI LUT or window, a PNG/JPEG as stored over its bit range) or
    "file-or-percentiles" (versions trained before recipes were recorded) or "hounsfield-or-file"
    (case models' slices: CT through one fixed Hounsfield window). ``input_size``: the side
    of the square input in pixels. ``resize``: "bilinear-antialias". ``channels``: "grey-luma"
    (frame 0; colour to BT.601 luma). Stored as JSON on the model version (:meth:`to_dict`).
    """

    window_policy: str
    input_size: int
    resize: str = "bilinear-antialias"
    channels: str = "grey-luma"

    def __post_init__(self) -> None:
        if self.window_policy not in WINDOW_POLICIES:
            choices = ", ".join(WINDOW_POLICIES)
            raise TrainingError(f"Unknown window policy {self.window_policy!r}; expected one of {choices}.")
        if isinstance(self.input_size, bool) or not isinstance(self.input_size, int) or self.input_size < 1:
            raise TrainingError(f"The input size must be a positive number of pixels, not {self.input_size!r}.")
        if self.resize not in RESIZE_METHODS:
            raise TrainingError(f"Unknown resize method {self.resize!r}; expected one of {', '.join(RESIZE_METHODS)}.")
        if self.channels not in CHANNELS:
            raise TrainingError(f"Unknown channel handling {self.channels!r}; expected one of {', '.join(CHANNELS)}.")

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Preprocessing:
        """The recipe stored by :meth:`to_dict`; unknown or missing keys are a TrainingError."""
        names = {field.name for field in fields(cls)}
        unknown = sorted(set(data) - names)
        if unknown:
            raise TrainingError(f"The preprocessing recipe has unknown entries: {', '.join(unknown)}.")
        try:
            return cls(**dict(data))
        except TypeError as error:
            raise TrainingError(f"The preprocessing recipe is incomplete: {error}") from error

    def key(self) -> str:
        """A short stable hash of the recipe (12 hex digits), for cache file names."""
        canonical = json.dumps(self.to_dict(), sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(canonical.encode()).hexdigest()[:12]

    def apply(self, image: DecodedImage) -> np.ndarray:
        """(S, S) float32 in [0, 1] with S = ``input_size``."""
        return training_array(image, self.input_size, self.window_policy, self.resize, self.channels)


def version_preprocessing(stored: Mapping[str, Any] | None, input_size: int) -> Preprocessing:
    """The recipe of a model version from its ``preprocessing`` column.

    Versions trained before the column existed (migration 0005) recorded none: they were trained on
    frame 0 as then displayed by default, PNG/JPEG stretched to their percentiles.
    """
    if stored is None:
        return Preprocessing(WINDOW_POLICY_FILE_OR_PERCENTILES, input_size)
    return Preprocessing.from_dict(stored)


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
    window_policy: ClassVar[str] = WINDOW_POLICY_FILE_OR_STORED

    # How the architecture trains unless a FitConfig says otherwise (see FitConfig).
    augment_by_default: ClassVar[bool] = False
    label_smoothing: ClassVar[float] = 0.0
    weight_decay: ClassVar[float] = 0.0  # decoupled (AdamW); 0 trains with Adam
    learning_rate_schedule: ClassVar[str] = "constant"  # or "cosine": decays to 0 over the run's steps

    # --- preprocessing --------------------------------------------------------------------------

    def preprocessing(self, input_size: int) -> Preprocessing:
        """The recipe this architecture trains with at ``input_size``."""
        return Preprocessing(self.window_policy, input_size)

    def recipe(self, input_size: int) -> dict[str, Any]:
        """:meth:`preprocessing` as the JSON stored on a model version."""
        return self.preprocessing(input_size).to_dict()

    def prepare(self, image: DecodedImage, recipe: Preprocessing | Mapping[str, Any] | int) -> np.ndarray:
        """One network input from a decoded image: (S, S) float32 in [0, 1], frame 0, grey.

        ``recipe``: a model version's recipe (a :class:`Preprocessing` or its stored dict; see
        :func:`version_preprocessing` for versions that recorded none), or an input size for this
        architecture's current recipe at that size.
        """
        if isinstance(recipe, Preprocessing):
            preprocessing = recipe
        elif isinstance(recipe, Mapping):
            preprocessing = Preprocessing.from_dict(recipe)
        else:
            preprocessing = self.preprocessing(int(recipe))
        return preprocessing.apply(image)

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

    def network(self, input_size: int, num_classes: int, weights_path: str | None, channels: int = 1) -> keras.Model:
        """The network on (N, S, S, ``channels``) inputs; ``channels`` > 1 only for the slice stacks of a
        2.5D case model (:class:`AttentionMIL25DConfig`), which only the CNNs without a pretrained
        backbone support."""
        raise NotImplementedError

    def head(self, features: keras.KerasTensor, num_classes: int, dropout: float) -> keras.KerasTensor:
        """Pooled features -> dropout -> the logits layer -> the probabilities layer."""
        from keras import layers

        x = layers.Dropout(dropout, name="dropout")(features)
        logits = layers.Dense(num_classes, name=self.logits_layer)(x)  # (N, C) float32
        return layers.Softmax(name=self.probabilities_layer)(logits)

    # --- augmentation ---------------------------------------------------------------------------

    def augmentation(self, seed: int) -> list[keras.layers.Layer]:
        """Random layers applied in training only: small shifts, zoom, rotation and contrast.

        Never flips: a flipped chest film swaps the patient's left and right (situs, the heart's
        side), which is a different finding. Pixels moved in from outside the film repeat its edge
        ("nearest"): a black fill adds edges no film has and shifts the BatchNorm statistics away
        from those of unaugmented images (on the official PneumoniaMNIST validation split the
        BatchNorm CNN scored ROC AUC 0.9966 and accuracy 0.958 with "nearest", 0.9953 and 0.916 with
        black). (N, S, S, 1) float32 in [0, 1] in and out.
        """
        from keras import layers

        return [
            layers.RandomTranslation(0.05, 0.05, fill_mode="nearest", seed=seed),
            layers.RandomZoom(0.05, fill_mode="nearest", seed=seed + 1),
            # 0.014 of a full turn: about 5 degrees either way, a patient not quite square to the plate.
            layers.RandomRotation(0.014, fill_mode="nearest", seed=seed + 2),
            layers.RandomContrast(0.1, value_range=(0.0, 1.0), seed=seed + 3),
        ]


class SmallCNNConfig(ModelConfig):
    name = "small_cnn"
    title = "The small CNN"
    description = "Small CNN (3 conv blocks, 32/64/128 filters); trains on CPU in minutes, any size >= 8 px."
    # Three 2x poolings: 8 px is the smallest input that keeps a 1x1 map at the end.
    min_input_size = 8
    feature_layer = "last_conv"

    def network(self, input_size: int, num_classes: int, weights_path: str | None, channels: int = 1) -> keras.Model:
        import keras
        from keras import layers

        # Plain ReLU convolutions, no BatchNormalization (see BatchNormCNNConfig for the stronger
        # network and what made an early BatchNorm trial collapse).
        inputs = keras.Input(
            shape=(input_size, input_size, channels), name="image"
        )  # (N, S, S, channels) float32 [0, 1]
        x = layers.Conv2D(32, 3, padding="same", activation="relu", name="conv1")(inputs)
        x = layers.MaxPooling2D(name="pool1")(x)  # (N, S/2, S/2, 32)
        x = layers.Conv2D(64, 3, padding="same", activation="relu", name="conv2")(x)
        x = layers.MaxPooling2D(name="pool2")(x)  # (N, S/4, S/4, 64)
        # Grad-CAM reads this map: at 28 px it is 7x7, at 128 px 32x32.
        x = layers.Conv2D(128, 3, padding="same", activation="relu", name=self.feature_layer)(x)
        x = layers.MaxPooling2D(name="pool3")(x)  # (N, S/8, S/8, 128)
        x = layers.GlobalAveragePooling2D(name="pool")(x)  # (N, 128)
        return keras.Model(inputs, self.head(x, num_classes, dropout=0.3), name=self.name)


class BatchNormCNNConfig(ModelConfig):
    """Blocks of two 3x3 convolutions, each followed by BatchNorm and ReLU, then 2x2 max pooling;
    global average pooling; trained with light augmentation, label smoothing and AdamW under cosine
    decay.

    Scaling to large films: the three blocks (32/64/128 filters) see 28-55 px. Each doubling of the
    input above that adds one stem block in front (one 3x3 convolution of 32 filters, BatchNorm, ReLU,
    2x2 max pooling; at most :attr:`max_stem_blocks`), which halves the image before the three
    blocks: 56 px gets 1, 128 px 2, 224 px 3. The map Grad-CAM reads stays 7-13 cells wide (7x7 at
    28 and 224 px, 8x8 at 128 px), and the cost stays CPU-sized: 29 M multiply-adds an image at 28 px
    (the small CNN: 7 M), 90 M at 128 px (156 M), 195 M at 224 px (477 M).

    Why an early BatchNorm trial "collapsed to validation AUC 0.5 at 28 px" (DESIGN.md, pitfalls), and
    why :attr:`batchnorm_momentum` is 0.9, not Keras' default 0.99. Reproduced on PneumoniaMNIST
    (28 px, 200 training images, batch 25, 6 epochs = 48 steps, Adam at 1e-2, no augmentation, class
    weights off; the same network with momentum 0.99): every one of 50 validation images got
    P(pneumonia) = 1.0 exactly, so ROC AUC was exactly 0.5, while the same weights with batch
    statistics scored AUC 0.996. Inference normalises with the moving mean and variance, which start
    at 0 and 1 and move (1 - momentum) of the way to each batch's statistics per step. The first
    convolution's output on [0, 1] images has a variance of a few thousandths, so after tens to a few
    hundred steps at momentum 0.99 the first block's moving variance was still 116x (after 48 steps)
    to 354x (80 steps, Adam 1e-3) the real one and its moving means 0.7-1.7 standard deviations off.
    Inference therefore scaled the image signal down to almost nothing: at 1e-3 every output fell in
    0.980-0.986 (accuracy = the majority share; AUC 0.77-0.82 against 0.97-0.98 with batch statistics); at 1e-2
    the logits drifted 40 apart and the float32 softmax rounded all of them to 1.0. Training uses batch
    statistics, so its loss looked healthy throughout. On the full train split (59 steps an epoch)
    momentum 0.99 predicted the majority class for the first 6 of 10 epochs. Class weights are not the
    cause (the exact 0.5 came with them off; with them on at 1e-2 AUC was 0.64), and neither is the
    snapshot validation in fit.py: the moving statistics are non-trainable variables, snapshotted for
    ``stateless_call`` and restored with the best epoch (tests/ml/training/test_fit.py checks both).
    With momentum 0.9 the statistics follow within a few dozen steps: the same 48-step run scored AUC
    0.996 in inference (moving/real variance 2.0), and the 200-image, batch-25, 10-epoch run at 1e-3
    reached 0.991 on the official validation split against 0.816 at 0.99. Still shorter runs (the
    bright-square test task, 24 steps) came out inverted (AUC 0.0) even at 0.9, so fit.py also
    starts the moving statistics at those of the first training batch instead of 0 and 1
    (``_prime_batchnorm``): then the 24-step run scores AUC 1.0 from its first epoch, and the 48-step
    run above 0.987 (0.991 with batch statistics); at momentum 0.99 priming alone is not enough (every
    image called normal, moving means 1.2 standard deviations off after the weights moved).
    """

    name = "bn_cnn"
    title = "The BatchNorm CNN"
    description = (
        "BatchNorm CNN (blocks of 2 conv + BN, global average pooling; light augmentation, label smoothing, "
        "AdamW with cosine decay); trains on CPU in minutes, any size >= 8 px."
    )
    min_input_size = 8
    feature_layer = "features"
    augment_by_default = True
    label_smoothing = 0.1
    weight_decay = 1e-4
    learning_rate_schedule = "cosine"
    max_stem_blocks = 4
    batchnorm_momentum = 0.9
    dropout = 0.3

    def stem_blocks(self, input_size: int) -> int:
        """How many times the input is halved before the three blocks: 0 below 56 px, then one per doubling."""
        return max(0, min(self.max_stem_blocks, math.floor(math.log2(input_size / 28))))

    def network(self, input_size: int, num_classes: int, weights_path: str | None, channels: int = 1) -> keras.Model:
        import keras
        from keras import layers

        def conv_bn_relu(x: keras.KerasTensor, filters: int, prefix: str, name: str | None = None) -> keras.KerasTensor:
            # No bias: BatchNorm's beta replaces it.
            x = layers.Conv2D(filters, 3, padding="same", use_bias=False, name=f"{prefix}_conv")(x)
            x = layers.BatchNormalization(momentum=self.batchnorm_momentum, name=f"{prefix}_bn")(x)
            return layers.ReLU(name=name or f"{prefix}_relu")(x)

        inputs = keras.Input(
            shape=(input_size, input_size, channels), name="image"
        )  # (N, S, S, channels) float32 [0, 1]
        x = inputs
        for stem in range(1, self.stem_blocks(input_size) + 1):
            x = conv_bn_relu(x, 32, f"stem{stem}")
            x = layers.MaxPooling2D(name=f"stem{stem}_pool")(x)  # (N, S / 2**stem, ..., 32)
        for block, filters in enumerate((32, 64, 128), start=1):
            x = conv_bn_relu(x, filters, f"block{block}_1")
            # Grad-CAM reads the last block's output before its pooling: 7x7 at 28 px.
            x = conv_bn_relu(x, filters, f"block{block}_2", name=self.feature_layer if block == 3 else None)
            x = layers.MaxPooling2D(name=f"block{block}_pool")(x)  # (N, S' / 2**block, ..., filters)
        x = layers.GlobalAveragePooling2D(name="pool")(x)  # (N, 128)
        return keras.Model(inputs, self.head(x, num_classes, dropout=self.dropout), name=self.name)


class MobileNetV2Config(ModelConfig):
    name = "mobilenet_v2"
    title = "MobileNetV2"
    description = "MobileNetV2 (width 0.35) backbone; ImageNet weights only from a local file; >= 32 px."
    min_input_size = 32
    accepts_weights_file = True
    backbone_layer = "backbone"
    # The backbone's last activation, reached through the nested model (see medreview.ml.explain).
    feature_layer = "backbone/out_relu"

    def network(self, input_size: int, num_classes: int, weights_path: str | None, channels: int = 1) -> keras.Model:
        import keras
        from keras import layers

        from medreview.ml.layers import GreyToRGB

        if channels != 1:
            raise TrainingError(f"{self.title} takes one grey image, not a stack of {channels} slices.")

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
CONFIGS: dict[str, ModelConfig] = {
    config.name: config for config in (BatchNormCNNConfig(), SmallCNNConfig(), MobileNetV2Config())
}
# The BatchNorm CNN: on the official PneumoniaMNIST validation split (524 images, never trained on) ROC
# AUC 0.995 against 0.986 for the small CNN, 10 epochs each, in about two minutes on 2 CPU cores
# (bench/pneumoniamnist.py).
DEFAULT_ARCHITECTURE = BatchNormCNNConfig.name


def get_config(architecture: str) -> ModelConfig:
    """The config of an architecture name (as stored on a model version)."""
    try:
        return CONFIGS[architecture]
    except KeyError:
        raise TrainingError(
            f"Unknown architecture {architecture!r}; choose one of {', '.join(sorted(CONFIGS))}."
        ) from None


# --- case-level models --------------------------------------------------------------------------


class AttentionMILConfig(ModelConfig):
    """A case-level classifier: a slice encoder (one of the image CNNs above, without its head) applied
    to every slice of a case, then gated attention multiple-instance pooling (Ilse, Tomczak & Welling,
    ICML 2018; :class:`~medreview.ml.layers.GatedAttentionPooling`) over the slices, then the usual
    head. A study- or series-scoped label says "this case shows X", not which slices do: the
    attention learns which slices carry the evidence, and its weights say so (the slices to show
    first, with their maps).

    The slice encoder is the image CNN up to the feature map Grad-CAM reads, globally max-pooled
    (see :meth:`network` for why not averaged); its features are standardised over the batch's slices
    (BatchNormalization) and embedded before the pooling.

    Inputs ``[slices, slice_mask]``: (N, K, S, S, :attr:`stack`) float32 in [0, 1], a case's K slices
    (K may differ between calls; within a batch shorter cases are padded), and (N, K) float32, 1 for a
    real slice and 0 for padding. Outputs ``[probabilities, attention]``: (N, C) float32 class
    probabilities of the case, and (N, K) float32 attention weights (0 on padding, summing to 1).

    Each slice is prepared with the encoder's own recipe (:meth:`ModelConfig.prepare`, the same for
    every slice). Grad-CAM of a slice (:meth:`slice_model`, :attr:`feature_layer`) explains the case
    head applied to that slice alone: within the bag the case score is
    ``sum_k a_k * score_k`` plus what flows through the weights ``a_k`` themselves, so the map of slice
    k is the slice's own evidence for the class, without the attention's share. Training
    (:mod:`medreview.ml.training.cases`) and prediction (:mod:`medreview.ml.cases`) know the rest.
    """

    name = "attention_mil"
    title = "The attention MIL case model"
    description = (
        "Case model: a slice CNN on every slice of a study or series, gated attention pooling over the slices "
        "(Ilse et al. 2018); names the slices that drive its call."
    )
    min_input_size = 8
    logits_layer = "logits"
    probabilities_layer = "probabilities"
    # Layer names the training and prediction code reach for.
    encoder_layer = "slice_encoder"  # the image CNN without its head: (n, S, S, stack) -> (n, F)
    per_slice_layer = "slices_encoded"  # PerSlice(encoder): (N, K, S, S, stack) -> (N, K, F)
    instance_norm_layer = "instance_norm"  # BatchNormalization of the slice features: (N, K, F)
    embedding_layer = "instance_embedding"  # (N, K, F) -> (N, K, E)
    pooling_layer = "attention_pooling"
    attention_layer = "attention"  # (N, K) weights, the model's second output
    # Slices per instance: 1 is a 2D encoder per slice; 2.5D stacks each slice with its neighbours.
    stack: ClassVar[int] = 1
    embedding_units = 64
    attention_units = 64
    dropout = 0.25
    batchnorm_momentum = 0.9  # as BatchNormCNNConfig's, for the same reason
    # Cases are trained on at most this many slices (more are thinned evenly: see training.cases).
    default_max_slices = 64
    encoders: ClassVar[tuple[str, ...]] = ("small_cnn", "bn_cnn")

    def __init__(self, encoder: str = "small_cnn", max_slices: int | None = None) -> None:
        if encoder not in self.encoders:
            raise TrainingError(
                f"A case model encodes slices with one of {', '.join(self.encoders)}, not {encoder!r}: Grad-CAM "
                "reaches one nested model deep, and a pretrained backbone would be two."
            )
        max_slices = self.default_max_slices if max_slices is None else max_slices
        if isinstance(max_slices, bool) or not isinstance(max_slices, int) or max_slices < 1:
            raise TrainingError(f"A case model needs at least one slice per case, not {max_slices!r}.")
        self.encoder = encoder
        self.max_slices = max_slices

    @property
    def encoder_config(self) -> ModelConfig:
        return get_config(self.encoder)

    @property
    def feature_layer(self) -> str:  # type: ignore[override]
        # The encoder's feature map, inside the nested encoder (medreview.ml.explain's "outer/inner").
        return f"{self.encoder_layer}/{self.encoder_config.feature_layer}"

    @property
    def window_policy(self) -> str:  # type: ignore[override]
        # One fixed Hounsfield window for CT slices (see medreview.imaging.display): versions trained
        # before recorded "file-or-stored" in their recipe and are still prepared so.
        return WINDOW_POLICY_HOUNSFIELD_OR_FILE

    def network(self, input_size: int, num_classes: int, weights_path: str | None, channels: int = 1) -> keras.Model:
        import keras
        from keras import layers

        from medreview.ml.layers import GatedAttentionPooling, PerSlice

        # The image CNN up to its feature map (the one Grad-CAM reads), then global *max* pooling, is
        # the slice encoder; the CNN's own average pooling and head are left out. A finding covers a
        # small part of a slice: averaged over the map, a 2-3 px lesion moved the slice features by a
        # sixteenth of its response (8 x 8 cells at 32 px), and on the generated lesion volumes the
        # held-out AUC after 8 epochs was 0.94 with the average, 1.0 with the maximum.
        image_network = self.encoder_config.network(input_size, 2, None, channels=self.stack)
        feature_map = image_network.get_layer(self.encoder_config.feature_layer).output  # (n, h, w, F)
        pooled = layers.GlobalMaxPooling2D(name="slice_pool")(feature_map)  # (n, F)
        encoder = keras.Model(image_network.inputs, pooled, name=self.encoder_layer)  # (n, S, S, stack) -> (n, F)
        slices = keras.Input(shape=(None, input_size, input_size, self.stack), name="slices")  # (N, K, S, S, stack)
        slice_mask = keras.Input(shape=(None,), name="slice_mask")  # (N, K) float32, 1 = a real slice
        x = PerSlice(encoder, name=self.per_slice_layer)(slices)  # (N, K, F)
        # Each feature standardised over the batch's slices: the untrained small CNN's features are
        # about 0.02 and a lesion moved them by about 0.001 (average-pooled, at 32 px), and without
        # this the attention had nothing to tell slices apart by: with the average-pooled encoder on
        # the generated lesion volumes the loss stayed at log 2 for 6 epochs (not re-measured with
        # the maximum).
        x = layers.BatchNormalization(momentum=self.batchnorm_momentum, name=self.instance_norm_layer)(x)
        x = layers.Dense(self.embedding_units, activation="relu", name=self.embedding_layer)(x)  # (N, K, E)
        pooled, weights = GatedAttentionPooling(self.attention_units, name=self.pooling_layer)([x, slice_mask])
        attention = layers.Identity(name=self.attention_layer)(weights)  # (N, K)
        probabilities = self.head(pooled, num_classes, dropout=self.dropout)  # (N, C)
        return keras.Model([slices, slice_mask], [probabilities, attention], name=self.name)

    def training_model(self, model: keras.Model) -> keras.Model:
        """The case model with its probabilities as the only output (what the loss sees); shares its weights."""
        import keras

        return keras.Model(model.inputs, model.outputs[0], name=f"{self.name}_training")

    def slice_model(self, model: keras.Model) -> keras.Model:
        """The case head on one slice (a bag of one, attention weight 1): (n, S, S, stack) -> (n, C)
        probabilities through the case model's own layers (weights shared, nothing copied), with the
        layers named as :func:`medreview.ml.explain.grad_cam` expects. Cached per model: every new
        graph adds nodes to the shared layers."""
        import keras

        cached = _slice_models.get(model)
        if cached is not None:
            return cached
        encoder = model.get_layer(self.per_slice_layer).layer
        image = keras.Input(shape=tuple(encoder.inputs[0].shape[1:]), name="slice")
        x = encoder(image)  # (n, F)
        # The case layers were built on (N, K, F): each slice as a bag of one, (n, 1, F).
        x = keras.layers.Reshape((1, int(x.shape[-1])), name="bag_of_one")(x)
        x = model.get_layer(self.instance_norm_layer)(x)
        x = model.get_layer(self.embedding_layer)(x)  # (n, 1, E)
        x = keras.layers.Reshape((self.embedding_units,), name="slice_embedding")(x)  # (n, E)
        logits = model.get_layer(self.logits_layer)(x)  # (n, C); dropout is a no-op in inference
        probabilities = model.get_layer(self.probabilities_layer)(logits)
        slice_model = keras.Model(image, probabilities, name=f"{self.name}_slice")
        _slice_models[model] = slice_model
        return slice_model


class AttentionMIL25DConfig(AttentionMILConfig):
    """The 2.5D variant: each instance is a slice with its two neighbours as channels (the first and
    last slices repeat themselves), so the encoder sees a little of the third dimension (a lesion that
    appears and fades over a few slices, a vessel that runs through them)."""

    name = "attention_mil_25d"
    title = "The 2.5D attention MIL case model"
    description = (
        "Case model, 2.5D: each slice with its two neighbours as channels through a slice CNN, gated attention "
        "pooling over the slices."
    )
    stack = 3


# Case models by name; kept apart from CONFIGS, which the Train page offers for images.
CASE_CONFIGS: dict[str, type[AttentionMILConfig]] = {
    config.name: config for config in (AttentionMILConfig, AttentionMIL25DConfig)
}
_slice_models: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


def get_case_config(architecture: str, encoder: str = "small_cnn", max_slices: int | None = None) -> AttentionMILConfig:
    """The config of a case-model name (as it would be stored on a model version), with its slice encoder."""
    try:
        config_class = CASE_CONFIGS[architecture]
    except KeyError:
        raise TrainingError(
            f"Unknown case model {architecture!r}; choose one of {', '.join(sorted(CASE_CONFIGS))}."
        ) from None
    return config_class(encoder=encoder, max_slices=max_slices)
