"""Case-level models in use: a case's slices in, the case's calibrated call, each slice's attention,
the slices that drive the call and their maps out (worker only: imports TensorFlow).

A case is a study or a series read as one: its slices, in order, each prepared with the model's
slice recipe (:meth:`~medreview.ml.configs.ModelConfig.prepare`) into (S, S) float32 in [0, 1]. The
model (:class:`~medreview.ml.configs.AttentionMILConfig`) sees every slice of the case at prediction
(training thins cases longer than ``max_slices``; see :mod:`medreview.ml.training.cases`), so every
slice gets an attention weight, and the top slices by attention are where the viewer should open,
with their Grad-CAM maps on (:func:`top_slice_maps`).

The calls are calibrated as image calls are (:func:`~medreview.ml.training.metrics.calibrated_calls`:
the version's temperature, and its threshold for two classes), and a case any slice of which lies
outside the version's training domain (:func:`~medreview.ml.domain.outside_domain`) is flagged with the
reasons (:func:`case_outside_domain`).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import keras
import numpy as np
from sqlalchemy import select

from medreview.errors import TrainingError
from medreview.ml.configs import AttentionMILConfig, get_case_config
from medreview.ml.domain import ImageFacts, outside_domain
from medreview.ml.explain import grad_cam
from medreview.ml.training.dataset import prepared_array
from medreview.ml.training.metrics import calibrated_calls
from medreview.reading.cases import case_images
from medreview.store import Store
from medreview.store.models import Image, ModelVersion, Series

__all__ = [
    "CasePrediction",
    "case_inputs",
    "case_outside_domain",
    "case_probabilities",
    "case_volumes",
    "predict_cases",
    "slice_instances",
    "top_slice_maps",
    "version_case_config",
]

# Slices scored by the network in one call: (cases x slices) images, about 64 MB at 128 px.
_SLICES_PER_CALL = 1024


@dataclass(frozen=True)
class CasePrediction:
    """What a case model says about one case.

    ``probabilities``: (C,) float64, calibrated (the version's temperature); ``called``: the class
    index called (threshold for two classes, else the arg-max); ``attention``: (K,) float32, one
    weight per slice of the case as given, summing to 1; ``top_slices``: indices into the case's
    slices, highest attention first; ``outside_reason``: why the case lies outside the training
    domain (None: inside, or no domain given). A flagged case is no confident call: show the reason.
    """

    probabilities: np.ndarray
    called: int
    attention: np.ndarray
    top_slices: list[int]
    outside_reason: str | None = None


def slice_instances(volume: np.ndarray, stack: int) -> np.ndarray:
    """A case's slices as the model's instances: (K, S, S) -> (K, S, S, stack) float32.

    ``stack`` 1 adds the channel axis; 3 puts each slice between its two neighbours (slice k - 1,
    k, k + 1 as channels; the first and last slices stand in for their missing neighbour).
    """
    volume = np.asarray(volume, dtype=np.float32)
    if volume.ndim != 3 or volume.shape[0] < 1:
        raise TrainingError(f"A case must be a stack of 2-D slices (K, S, S), not an array of shape {volume.shape}.")
    if stack == 1:
        return volume[..., np.newaxis]
    if stack % 2 != 1:
        raise TrainingError(f"A slice stack must be an odd number of slices, not {stack}.")
    reach = stack // 2
    positions = np.clip(np.arange(len(volume))[:, None] + np.arange(-reach, reach + 1)[None, :], 0, len(volume) - 1)
    return np.moveaxis(volume[positions], 1, -1)  # (K, stack, S, S) -> (K, S, S, stack)


def case_inputs(
    cases: Sequence[np.ndarray], config: AttentionMILConfig, input_size: int, thin: bool = False
) -> tuple[np.ndarray, np.ndarray, list[np.ndarray]]:
    """The network inputs of some cases: ``(slices, mask, kept)``.

    ``cases``: one (K_i, S, S) float32 array in [0, 1] per case, ``S == input_size``. ``slices``: (N,
    K, S, S, stack) float32 with K the longest case, shorter ones padded with zeros; ``mask``: (N, K)
    float32, 1 on a real slice; ``kept``: per case, the indices of its slices in ``slices`` order.
    With ``thin``, a case longer than ``config.max_slices`` keeps that many slices evenly spread over
    it (the training inputs; its neighbours in a 2.5D stack are still its true neighbours).
    """
    if not len(cases):
        raise TrainingError("No cases to give the model.")
    instances, kept = [], []
    for case in cases:
        volume = np.asarray(case, dtype=np.float32)
        if volume.ndim != 3 or volume.shape[1:] != (input_size, input_size):
            raise TrainingError(
                f"A case's slices have shape {volume.shape[1:]}; expected {input_size}x{input_size} slices."
            )
        indices = np.arange(len(volume))
        if thin and len(volume) > config.max_slices:
            indices = np.unique(np.round(np.linspace(0, len(volume) - 1, config.max_slices)).astype(np.int64))
        instances.append(slice_instances(volume, config.stack)[indices])
        kept.append(indices)
    length = max(len(case) for case in instances)
    slices = np.zeros((len(instances), length, input_size, input_size, config.stack), dtype=np.float32)
    mask = np.zeros((len(instances), length), dtype=np.float32)
    for row, case in enumerate(instances):
        slices[row, : len(case)] = case
        mask[row, : len(case)] = 1.0
    return slices, mask, kept


def case_probabilities(
    model: keras.Model, config: AttentionMILConfig, cases: Sequence[np.ndarray]
) -> tuple[np.ndarray, list[np.ndarray]]:
    """The model's raw output on every slice of each case: (N, C) float32 probabilities and, per
    case, (K_i,) float32 attention weights over its slices. Cases go in groups of about
    :data:`_SLICES_PER_CALL` slices, each group padded to its longest case."""
    input_size = int(model.inputs[0].shape[2])
    probabilities, attention = [], []
    start = 0
    while start < len(cases):
        end = start + 1
        while end < len(cases) and (end + 1 - start) * max(len(c) for c in cases[start : end + 1]) <= _SLICES_PER_CALL:
            end += 1
        slices, mask, _ = case_inputs(cases[start:end], config, input_size)
        case_probs, weights = model([slices, mask], training=False)  # (n, C), (n, K)
        probabilities.append(np.asarray(case_probs, dtype=np.float32))
        weights = np.asarray(weights, dtype=np.float32)
        attention.extend(weights[row, : len(cases[start + row])] for row in range(end - start))
        start = end
    return np.concatenate(probabilities), attention


def predict_cases(
    model: keras.Model,
    config: AttentionMILConfig,
    cases: Sequence[np.ndarray],
    temperature: dict[str, Any] | float = 1.0,
    threshold: float | None = None,
    top: int = 3,
    domain: Mapping[str, Any] | None = None,
    slice_facts: Sequence[Sequence[ImageFacts]] | None = None,
) -> list[CasePrediction]:
    """Calibrated calls, attention and top slices for each case.

    ``temperature`` and ``threshold`` are the model version's (its calibrator,
    :func:`~medreview.ml.training.metrics.calibrator_of` its metrics, or a bare temperature, and its
    ``threshold``); ``top`` the number of slices to name per case. With ``domain`` (the version's) and
    ``slice_facts`` (per case, the store's facts of each slice), a case with a slice outside the
    domain carries the reason.
    """
    if slice_facts is not None and len(slice_facts) != len(cases):
        raise TrainingError(f"Got slice facts for {len(slice_facts)} cases but {len(cases)} cases.")
    raw, attention = case_probabilities(model, config, cases)
    calibrated, called = calibrated_calls(raw, temperature, threshold)
    predictions = []
    for index, weights in enumerate(attention):
        # Highest attention first; equal weights keep slice order (a stable sort of the negated weights).
        order = np.argsort(-weights, kind="stable")[: max(1, top)]
        reason = case_outside_domain(domain, slice_facts[index]) if slice_facts is not None else None
        predictions.append(
            CasePrediction(calibrated[index], int(called[index]), weights, [int(i) for i in order], reason)
        )
    return predictions


def top_slice_maps(
    model: keras.Model,
    config: AttentionMILConfig,
    case: np.ndarray,
    slice_indices: Sequence[int],
    class_index: int,
    method: str = "gradcam",
) -> np.ndarray:
    """Grad-CAM (or HiResCAM) maps of some slices of one case for ``class_index``: (k, h, w) float32 in
    [0, 1] at the encoder's feature-map resolution, in ``slice_indices`` order (the caller resizes
    them to the slice shown, as for images). Each map explains the case head on that slice alone
    (:meth:`~medreview.ml.configs.AttentionMILConfig.slice_model`): where in the slice the evidence
    for the class lies, for the slices :func:`predict_cases` names."""
    instances = slice_instances(case, config.stack)
    indices = [int(i) for i in slice_indices]
    if any(not 0 <= i < len(instances) for i in indices):
        raise TrainingError(f"The case has {len(instances)} slices; slice indices {indices} are not all in it.")
    return grad_cam(
        config.slice_model(model),
        instances[indices],
        class_index=class_index,
        layer_name=config.feature_layer,
        logits_layer=config.logits_layer,
        method=method,
    )


def case_outside_domain(domain: Mapping[str, Any] | None, slice_facts: Sequence[ImageFacts]) -> str | None:
    """Why a case lies outside a model version's training domain: each distinct reason of its slices
    (:func:`~medreview.ml.domain.outside_domain`) with how many slices it applies to; None when every
    slice lies inside, or the version recorded no domain."""
    counts: dict[str, int] = {}
    for facts in slice_facts:
        reason = outside_domain(domain, facts)
        if reason is not None:
            counts[reason] = counts.get(reason, 0) + 1
    if not counts:
        return None
    total = len(slice_facts)
    return "; ".join(f"{reason} ({count} of {total} slices)" for reason, count in counts.items())


# --- a stored case's slices -----------------------------------------------------------------------


def version_case_config(version: ModelVersion) -> AttentionMILConfig:
    """The case config a case model version was trained with (its metrics' ``case_model``)."""
    arguments = (version.metrics or {}).get("case_model") or {}
    return get_case_config(
        arguments.get("architecture", version.architecture),
        arguments.get("encoder", "small_cnn"),
        arguments.get("max_slices"),
    )


def case_volumes(
    store: Store, scope: str, case_ids: list[int], config: AttentionMILConfig, recipe: Any
) -> tuple[list[np.ndarray], list[list[int]]]:
    """Each case's slices as one (K, S, S) float32 array in [0, 1] (reading order) and its image ids.
    Raises ImagingError naming the image that cannot be read."""
    with store.db.read() as session:
        files = {
            int(image_id): (sha256, media_type)
            for image_id, sha256, media_type in session.execute(
                select(Image.id, Image.sha256, Image.media_type)
                .join(Series, Series.id == Image.series_id)
                .where(Series.study_id.in_(case_ids) if scope == "study" else Series.id.in_(case_ids))
            ).tuples()
        }
    volumes, image_ids = [], []
    for case_id in case_ids:
        members = case_images(store, scope, case_id)
        slices = [prepared_array(store, *files[image_id], config, recipe) for image_id in members]
        volumes.append(np.stack(slices))
        image_ids.append(members)
    return volumes, image_ids
