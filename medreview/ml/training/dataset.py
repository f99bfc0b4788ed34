"""Training data from the store: labelled images as arrays, split by patient.

Arrays are cached per (image sha256, preprocessing recipe) under ``<data dir>/cache/arrays``, as
``<sha256>-<size>-<recipe key>.npy``, so a second run on the same images with the same recipe skips
decoding, and a changed recipe (window policy, resize, channels) never reuses another's arrays; the
cache is derived data and can be deleted at any time.

Images of evaluation sets, and every other image of their patients, are never training data
(:mod:`medreview.reading.evaluation_sets`): :func:`training_table` leaves them out.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from medreview.errors import ImagingError, TrainingError
from medreview.imaging.decoding import decode_file
from medreview.ml.configs import DEFAULT_ARCHITECTURE, ModelConfig, Preprocessing, get_config
from medreview.ml.training.resolution import default_resolution
from medreview.ml.training.split import split_by_patient
from medreview.reading.evaluation_sets import evaluation_patients
from medreview.reading.reads import current_labels
from medreview.reading.schema import label_classes
from medreview.store import Store
from medreview.store.blobs import atomic_write
from medreview.team.settings import get_setting

__all__ = [
    "MIN_IMAGES_PER_CLASS",
    "Dataset",
    "load_dataset",
    "prepared_array",
    "training_label_counts",
    "training_table",
]

MIN_IMAGES_PER_CLASS = 3


@dataclass
class Dataset:
    images: np.ndarray  # (N, S, S) float32 in [0, 1]
    labels: np.ndarray  # (N,) int64 class indices into class_names
    patient_keys: list[str]
    source_sha256s: list[str]  # SHA-256 of each upload as sent: the same in every store
    image_ids: list[int]
    class_names: list[str]
    input_size: int
    # The recipe that made ``images`` (Preprocessing.to_dict()): store it with the model version.
    preprocessing: dict[str, Any] = field(default_factory=dict)
    # Each image's (rows, columns) as stored, before resizing to input_size.
    source_shapes: list[tuple[int, int]] = field(default_factory=list)

    def split(self, validation_fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
        """(train indices, validation indices) by patient, keyed on the uploads' SHA-256 so the same
        files give the same split in any store (see :func:`split_by_patient`)."""
        return split_by_patient(
            self.patient_keys, self.labels, validation_fraction, seed, image_keys=self.source_sha256s
        )


def _usable_labels(store: Store, label_source: str | None) -> tuple[pd.DataFrame, int]:
    """The labelled images training may use (current_labels rows) and how many more are of
    patients in evaluation sets, which it never uses."""
    table = current_labels(store, label_source or get_setting(store, "training_label_source"))
    held_out = table["patient_key"].isin(evaluation_patients(store))
    return table[~held_out].reset_index(drop=True), int(held_out.sum())


def training_label_counts(store: Store, label_source: str | None = None) -> tuple[dict[str, int], int]:
    """What a training run started now would learn from, before any check: labelled images per
    class (schema order) and how many more labelled images are of patients in evaluation sets
    (left out). ``label_source`` as for :func:`training_table`."""
    table, held_out = _usable_labels(store, label_source)
    counts = table["label"].value_counts()
    schema = label_classes(store, include_retired=True)
    ordered = [name for name in schema if name in counts.index] + [name for name in counts.index if name not in schema]
    return {name: int(counts[name]) for name in ordered}, held_out


def training_table(store: Store, label_source: str | None = None) -> tuple[pd.DataFrame, list[str]]:
    """Labelled images usable for training and the class names in schema order.

    ``label_source`` (default: the project's ``training_label_source`` setting) is "final" or
    "all"; see :func:`medreview.reading.reads.current_labels`. Images of the patients in evaluation
    sets are left out. Raises TrainingError in plain words when there is not enough to train on.
    """
    table, held_out = _usable_labels(store, label_source)
    held_out_note = (
        f"; {held_out} more are of patients in evaluation sets, which training never uses" if held_out else ""
    )
    schema = label_classes(store, include_retired=True)
    counts = table["label"].value_counts() if len(table) else pd.Series(dtype=int)
    class_names = [name for name in schema if counts.get(name, 0) > 0]
    if len(class_names) < 2:
        raise TrainingError(
            "need labelled images of at least two classes to train "
            f"(labelled so far: {', '.join(f'{k}: {v}' for k, v in counts.items()) or 'none'}{held_out_note})"
        )
    short = [f"'{name}' has {counts[name]}" for name in class_names if counts[name] < MIN_IMAGES_PER_CLASS]
    if short:
        raise TrainingError(
            f"need at least {MIN_IMAGES_PER_CLASS} labelled images per class; " + ", ".join(short) + held_out_note
        )
    return table, class_names


def load_dataset(
    store: Store,
    input_size: int | None = None,
    progress: Callable[[int, int], None] | None = None,
    label_source: str | None = None,
    model_config: ModelConfig | None = None,
) -> Dataset:
    """The labelled images as network inputs, prepared with ``model_config``'s recipe (default: the
    default architecture's) at ``input_size`` (default: chosen from the data)."""
    model_config = model_config or get_config(DEFAULT_ARCHITECTURE)
    table, class_names = training_table(store, label_source)
    size = input_size or default_resolution(list(zip(table["rows"], table["columns"], strict=True)))
    recipe = model_config.preprocessing(size)
    arrays: list[np.ndarray] = []
    for position, row in enumerate(table.itertuples(index=False)):
        try:
            arrays.append(prepared_array(store, row.sha256, row.media_type, model_config, recipe))
        except ImagingError as error:
            raise TrainingError(f"cannot read labelled image {row.display_name}: {error}") from error
        if progress is not None and (position % 100 == 0 or position == len(table) - 1):
            progress(position + 1, len(table))
    index = {name: i for i, name in enumerate(class_names)}
    return Dataset(
        images=np.stack(arrays),
        labels=np.array([index[name] for name in table["label"]], dtype=np.int64),
        patient_keys=list(table["patient_key"]),
        source_sha256s=[str(value) for value in table["source_sha256"]],
        image_ids=[int(i) for i in table["image_id"]],
        class_names=class_names,
        input_size=size,
        preprocessing=recipe.to_dict(),
        source_shapes=[(int(r), int(c)) for r, c in zip(table["rows"], table["columns"], strict=True)],
    )


def prepared_array(
    store: Store, sha256: str, media_type: str, model_config: ModelConfig, recipe: Preprocessing
) -> np.ndarray:
    """One stored image as a network input through ``recipe``: (S, S) float32 in [0, 1], from the
    array cache when it is there (a damaged cache file is rebuilt). Raises ImagingError when the
    image cannot be decoded."""
    cache_path = store.settings.cache_dir / "arrays" / f"{sha256}-{recipe.input_size}-{recipe.key()}.npy"
    try:
        array = np.load(cache_path) if cache_path.exists() else None
    except (OSError, ValueError, EOFError):  # EOFError: an empty file
        array = None
    if array is None:
        array = model_config.prepare(decode_file(store.blobs.path_for(sha256), media_type), recipe)
        atomic_write(cache_path, _npy_bytes(array))
    return array.astype(np.float32, copy=False)


def _npy_bytes(array: np.ndarray) -> bytes:
    import io

    buffer = io.BytesIO()
    np.save(buffer, array)
    return buffer.getvalue()
