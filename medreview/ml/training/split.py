"""Split labelled images by patient, never by image: train / validation, or train / validation / test.

Images of one patient are correlated (same anatomy, same scanner, often the same finding), so an
image-level split leaks the patient into both sides and flatters the validation metrics. The splits
here keep each patient on one side, are seeded, and are stratified by each patient's majority label so
every class shows up in every part when the data allow it.

The test part is held out from every choice the training run makes (best epoch, temperature,
operating threshold): it is scored once, at the end. It exists only when every class has at least
:data:`MIN_TEST_PATIENTS_PER_CLASS` patients; with fewer, a test part of one or two patients per class
would give a number, but not one worth reading, and would starve training and validation.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from medreview.errors import TrainingError

__all__ = ["MIN_TEST_PATIENTS_PER_CLASS", "PatientSplit", "split_by_patient", "split_train_validation_test"]

# At 20% validation and 20% test, 10 patients of a class give 2 to validation, 2 to test and 6 to
# training: the least that leaves each part more than a single patient of every class.
MIN_TEST_PATIENTS_PER_CLASS = 10


@dataclass(frozen=True)
class PatientSplit:
    """Indices into the input sequences, each (K,) int64 sorted, and the patients behind them."""

    train: np.ndarray
    validation: np.ndarray
    test: np.ndarray  # empty when the data are too few for a test part (see ``has_test``)
    # Patients per class (keyed by majority label) over all parts: why there is or is not a test part.
    patients_per_class: dict[int, int]
    min_test_patients_per_class: int

    @property
    def has_test(self) -> bool:
        return len(self.test) > 0

    def counts(self, labels: Sequence[int], patient_keys: Sequence[str], class_names: Sequence[str]) -> dict:
        """Images and patients per part, and images per class in each part, as JSON; ``test`` is
        ``None`` without a test part. ``labels`` and ``patient_keys`` are the split's inputs."""
        parts: dict[str, Any] = {}
        for part, indices in (("train", self.train), ("validation", self.validation), ("test", self.test)):
            if part == "test" and not self.has_test:
                parts[part] = None
                continue
            per_class = Counter(int(labels[i]) for i in indices)
            parts[part] = {
                "images": len(indices),
                "patients": len({patient_keys[i] for i in indices}),
                "images_per_class": {str(name): per_class.get(c, 0) for c, name in enumerate(class_names)},
            }
        parts["patients_per_class"] = {
            str(class_names[c]): count for c, count in sorted(self.patients_per_class.items())
        }
        parts["min_test_patients_per_class"] = self.min_test_patients_per_class
        return parts

    def no_test_reason(self, class_names: Sequence[str]) -> str | None:
        """Why there is no test part, in plain words; ``None`` when there is one."""
        if self.has_test:
            return None
        short = [
            f"'{class_names[c]}' has {count}"
            for c, count in sorted(self.patients_per_class.items())
            if count < self.min_test_patients_per_class
        ]
        return (
            f"No held-out test part: it needs at least {self.min_test_patients_per_class} patients of every "
            f"class, and {', '.join(short)}. The figures are on validation, which also chose the best epoch, "
            "the threshold and the temperature, so they flatter the model."
        )


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
    split = _split(patient_keys, labels, validation_fraction, 0.0, seed, image_keys, min_test_patients=None)
    return split.train, split.validation


def split_train_validation_test(
    patient_keys: Sequence[str],
    labels: Sequence[int],
    validation_fraction: float = 0.2,
    test_fraction: float = 0.2,
    seed: int = 0,
    image_keys: Sequence[str] | None = None,
    min_test_patients_per_class: int = MIN_TEST_PATIENTS_PER_CLASS,
) -> PatientSplit:
    """Split by patient into train, validation and, when the data allow, test.

    There is a test part only when every class present in ``labels`` is the majority label of at least
    ``min_test_patients_per_class`` patients. Then, within every class, the patients shuffled as in
    :func:`split_by_patient` go first to validation (``round(validation_fraction * n)``, at least one),
    then to test (``round(test_fraction * n)``, at least one), and the rest (at least one) train. Without
    a test part the result is exactly :func:`split_by_patient`'s, with an empty ``test``.

    Deterministic for the same data and seed, with the same patient order (by ``image_keys`` when
    given) as :func:`split_by_patient`. Raises :class:`TrainingError` as :func:`split_by_patient` does,
    and when the fractions leave no room for training.
    """
    if not 0.0 < test_fraction < 1.0:
        raise TrainingError(f"The test fraction must be between 0 and 1, not {test_fraction}.")
    if validation_fraction + test_fraction >= 1.0:
        raise TrainingError(
            f"Validation ({validation_fraction}) and test ({test_fraction}) together must leave images to train on."
        )
    if min_test_patients_per_class < 3:
        raise TrainingError("A test part needs at least 3 patients per class: one each for train, validation, test.")
    return _split(
        patient_keys,
        labels,
        validation_fraction,
        test_fraction,
        seed,
        image_keys,
        min_test_patients=min_test_patients_per_class,
    )


def _split(
    patient_keys: Sequence[str],
    labels: Sequence[int],
    validation_fraction: float,
    test_fraction: float,
    seed: int,
    image_keys: Sequence[str] | None,
    min_test_patients: int | None,
) -> PatientSplit:
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
    def patient_order(patient_key: str) -> tuple[str, str]:
        if image_keys is None:
            return (patient_key, patient_key)
        return (min(image_keys[i] for i in indices_by_patient[patient_key]), patient_key)

    patients_by_class: dict[int, list[str]] = defaultdict(list)
    for patient_key in sorted(indices_by_patient, key=patient_order):
        counts = Counter(int(labels[i]) for i in indices_by_patient[patient_key])
        majority_label = min(counts, key=lambda label: (-counts[label], label))
        patients_by_class[majority_label].append(patient_key)

    all_classes = sorted({int(label) for label in labels})
    with_test = min_test_patients is not None and all(
        len(patients_by_class.get(label, [])) >= min_test_patients for label in all_classes
    )

    generator = np.random.default_rng(seed)
    validation_patients: set[str] = set()
    test_patients: set[str] = set()
    for label in sorted(patients_by_class):
        patients = patients_by_class[label]
        if len(patients) < 2:
            continue
        shuffled = [patients[i] for i in generator.permutation(len(patients))]
        validation_count = min(max(1, round(validation_fraction * len(patients))), len(patients) - 1)
        validation_patients.update(shuffled[:validation_count])
        if with_test:
            # Every class has >= min_test_patients (>= 3) patients here: one is left to train at least.
            test_count = min(max(1, round(test_fraction * len(patients))), len(patients) - validation_count - 1)
            test_patients.update(shuffled[validation_count : validation_count + test_count])

    held_out = validation_patients | test_patients
    train_indices = sorted(i for p, idx in indices_by_patient.items() if p not in held_out for i in idx)
    validation_indices = sorted(i for p in validation_patients for i in indices_by_patient[p])
    test_indices = sorted(i for p in test_patients for i in indices_by_patient[p])

    parts = [("training", train_indices), ("validation", validation_indices)]
    if with_test:
        parts.append(("test", test_indices))
    for side, indices in parts:
        missing = sorted(set(all_classes) - {int(labels[i]) for i in indices})
        if missing:
            raise TrainingError(
                f"Not enough patients to split: class {', '.join(map(str, missing))} would be missing from "
                f"{side}. Each class needs labelled images from at least 2 patients."
            )
    return PatientSplit(
        train=np.asarray(train_indices, dtype=np.int64),
        validation=np.asarray(validation_indices, dtype=np.int64),
        test=np.asarray(test_indices, dtype=np.int64),
        patients_per_class={label: len(patients_by_class.get(label, [])) for label in all_classes},
        min_test_patients_per_class=min_test_patients or 0,
    )
