"""Training data from the store: labelled images as arrays, split by patient.

Arrays are cached per (image sha256, preprocessing recipe) under ``<data dir>/cache/arrays``, as
``<sha256>-<size>-<recipe key>.npy``, so a second run on the same images with the same recipe skips
decoding, and a changed recipe (window policy, resize, channels) never reuses another's arrays; the
cache is derived data and can be deleted at any time.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from medreview.errors import ImagingError, TrainingError
from medreview.imaging.decoding import decode_file
from medreview.ml.configs import DEFAULT_ARCHITECTURE, ModelConfig, get_config
from medreview.ml.training.resolution import default_resolution
from medreview.ml.training.split import split_by_patient
from medreview.reading.reads import current_labels
from medreview.reading.schema import label_classes
from medreview.store import Store
from medreview.store.blobs import atomic_write
from medreview.team.settings import get_setting

__all__ = ["MIN_IMAGES_PER_CLASS", "Dataset", "load_dataset", "training_table"]

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

    def split(self, validation_fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
        """(train indices, validation indices) by patient, keyed on the uploads' SHA-256 so the same
        files give the same split in any store (see :func:`split_by_patient`)."""
        return split_by_patient(
            self.patient_keys, self.labels, validation_fraction, seed, image_keys=self.source_sha256s
        )


def training_table(store: Store, label_source: str | None = None) -> tuple[pd.DataFrame, list[str]]:
    """Labelled images usable for training and the class names in schema order.

    ``label_source`` (default: the project's ``training_label_source`` setting) is "final" or
    "all"; see :func:`medreview.reading.reads.current_labels`. Raises TrainingError in plain words
    when there is not enough to train on.
    """
    table = current_labels(store, label_source or get_setting(store, "training_label_source"))
    schema = label_classes(store, include_retired=True)
    counts = table["label"].value_counts() if len(table) else pd.Series(dtype=int)
    class_names = [name for name in schema if counts.get(name, 0) > 0]
    if len(class_names) < 2:
        raise TrainingError(
            "need labelled images of at least two classes to train "
            f"(labelled so far: {', '.join(f'{k}: {v}' for k, v in counts.items()) or 'none'})"
        )
    short = [f"'{name}' has {counts[name]}" for name in class_names if counts[name] < MIN_IMAGES_PER_CLASS]
    if short:
        raise TrainingError(f"need at least {MIN_IMAGES_PER_CLASS} labelled images per class; " + ", ".join(short))
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
    recipe_key = recipe.key()
    cache_dir = store.settings.cache_dir / "arrays"
    arrays: list[np.ndarray] = []
    for position, row in enumerate(table.itertuples(index=False)):
        cache_path = cache_dir / f"{row.sha256}-{size}-{recipe_key}.npy"
        try:
            array = np.load(cache_path) if cache_path.exists() else None
        except (OSError, ValueError, EOFError):  # EOFError: an empty file
            array = None  # a damaged cache file is rebuilt
        if array is None:
            try:
                decoded = decode_file(store.blobs.path_for(row.sha256), row.media_type)
            except ImagingError as error:
                raise TrainingError(f"cannot read labelled image {row.display_name}: {error}") from error
            array = model_config.prepare(decoded, recipe)  # (size, size) float32 in [0, 1]
            buffer = _npy_bytes(array)
            atomic_write(cache_path, buffer)
        arrays.append(array.astype(np.float32, copy=False))
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
    )


def _npy_bytes(array: np.ndarray) -> bytes:
    import io

    buffer = io.BytesIO()
    np.save(buffer, array)
    return buffer.getvalue()
