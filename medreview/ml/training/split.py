"""Split labelled images into train and validation sets by patient, never by image.

Images of one patient are correlated (same anatomy, same scanner, often the same finding), so an
image-level split leaks the patient into both sides and flatters the validation metrics. The split
here keeps each patient on one side, is seeded, and is stratified by each patient's majority label so
every class shows up in validation when the data allow it.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Sequence

import numpy as np

from medreview.errors import TrainingError

__all__ = ["split_by_patient"]


def split_by_patient(
    patient_keys: Sequence[str],
    labels: Sequence[int],
    validation_fraction: float = 0.2,
    seed: int = 0,
    image_keys: Sequence[str] | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Return ``(train_indices, validation_indices)`` into the input sequences.

    Each patient is assigned the majority label of their images (ties go to the lowest class index).
    Within every class the patients are shuffled with ``seed`` and ``round(validation_fraction * n)``
    of them, at least one and at most ``n - 1``, go to validation; the rest train. A class with a single
    patient stays in training.

    Patients are put in a fixed order before the seeded shuffle: by the smallest of their images'
    ``image_keys`` when given (the training job passes each upload's SHA-256, so the same files
    imported into two stores, whose patient pseudonyms differ, split the same way), else by patient
    key. The result is deterministic for the same data and seed, whatever the input order.

    Raises :class:`TrainingError` with a plain message when there are fewer than two patients, or when
    the split would leave a class out of training or out of validation.
    """
    if len(patient_keys) != len(labels):
        raise TrainingError(
            f"Got {len(patient_keys)} patient keys for {len(labels)} labels; they must match one to one."
        )
    if image_keys is not None and len(image_keys) != len(labels):
        raise TrainingError(f"Got {len(image_keys)} image keys for {len(labels)} labels; they must match one to one.")
    if not 0.0 < validation_fraction < 1.0:
        raise TrainingError(f"The validation fraction must be between 0 and 1, not {validation_fraction}.")

    indices_by_patient: dict[str, list[int]] = defaultdict(list)
    for index, patient_key in enumerate(patient_keys):
        indices_by_patient[patient_key].append(index)
    if len(indices_by_patient) < 2:
        raise TrainingError(
            "Training needs labelled images from at least 2 patients, so that validation uses patients "
            f"the model has not seen; found {len(indices_by_patient)}."
        )

    # A fixed patient order makes the result independent of input and dict order; the seed alone
    # decides the shuffle.
    def order(patient_key: str) -> tuple[str, str]:
        if image_keys is None:
            return (patient_key, patient_key)
        return (min(image_keys[i] for i in indices_by_patient[patient_key]), patient_key)

    patients_by_class: dict[int, list[str]] = defaultdict(list)
    for patient_key in sorted(indices_by_patient, key=order):
        counts = Counter(int(labels[i]) for i in indices_by_patient[patient_key])
        majority_label = min(counts, key=lambda label: (-counts[label], label))
        patients_by_class[majority_label].append(patient_key)

    generator = np.random.default_rng(seed)
    validation_patients: set[str] = set()
    for label in sorted(patients_by_class):
        patients = patients_by_class[label]
        if len(patients) < 2:
            continue
        order = generator.permutation(len(patients))
        count = min(max(1, round(validation_fraction * len(patients))), len(patients) - 1)
        validation_patients.update(patients[i] for i in order[:count])

    train_indices = sorted(i for p, idx in indices_by_patient.items() if p not in validation_patients for i in idx)
    validation_indices = sorted(i for p in validation_patients for i in indices_by_patient[p])

    all_classes = {int(label) for label in labels}
    train_classes = {int(labels[i]) for i in train_indices}
    validation_classes = {int(labels[i]) for i in validation_indices}
    for side, present in (("training", train_classes), ("validation", validation_classes)):
        missing = sorted(all_classes - present)
        if missing:
            raise TrainingError(
                f"Not enough patients to split: class {', '.join(map(str, missing))} would be missing from "
                f"{side}. Each class needs labelled images from at least 2 patients."
            )
    return np.asarray(train_indices, dtype=np.int64), np.asarray(validation_indices, dtype=np.int64)
