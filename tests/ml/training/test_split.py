import numpy as np
import pytest

from medreview.errors import TrainingError
from medreview.ml.training.split import split_by_patient


def _cohort(patients_per_class: int = 20, images_per_patient: int = 3) -> tuple[list[str], list[int]]:
    patient_keys, labels = [], []
    for label in (0, 1):
        for patient in range(patients_per_class):
            for _ in range(images_per_patient):
                patient_keys.append(f"class{label}-patient{patient}")
                labels.append(label)
    return patient_keys, labels


def test_no_patient_is_on_both_sides_and_every_image_is_used_once():
    patient_keys, labels = _cohort()
    train, validation = split_by_patient(patient_keys, labels, validation_fraction=0.25, seed=3)
    assert sorted(np.concatenate([train, validation]).tolist()) == list(range(len(labels)))
    assert not {patient_keys[i] for i in train} & {patient_keys[i] for i in validation}
    # Stratified: 25% of each class's 20 patients, 3 images each.
    assert len(validation) == 2 * 5 * 3
    assert sorted({labels[i] for i in validation}) == [0, 1]


def test_same_seed_gives_the_same_split_and_another_seed_a_different_one():
    patient_keys, labels = _cohort()
    first = split_by_patient(patient_keys, labels, seed=7)
    again = split_by_patient(patient_keys, labels, seed=7)
    other = split_by_patient(patient_keys, labels, seed=8)
    assert all(np.array_equal(a, b) for a, b in zip(first, again, strict=True))
    assert not np.array_equal(first[1], other[1])


def test_every_class_reaches_validation_even_when_rare():
    # 30 patients of class 0, 2 of class 1: 20% of 2 rounds to 0, but one still goes to validation.
    patient_keys = [f"n{i}" for i in range(30)] + ["p0", "p1"]
    labels = [0] * 30 + [1, 1]
    train, validation = split_by_patient(patient_keys, labels)
    assert {labels[i] for i in validation} == {0, 1}
    assert {labels[i] for i in train} == {0, 1}


def test_a_single_patient_cannot_be_split():
    with pytest.raises(TrainingError, match="at least 2 patients"):
        split_by_patient(["only"] * 5, [0, 1, 0, 1, 0])


def test_a_class_held_by_one_patient_is_a_plain_error():
    patient_keys = ["a", "b", "c", "d"]
    labels = [0, 0, 0, 1]
    with pytest.raises(TrainingError, match="class 1 would be missing from validation"):
        split_by_patient(patient_keys, labels)
