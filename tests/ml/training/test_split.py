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


def test_the_same_files_in_two_stores_split_the_same_way(tmp_path):
    # Each store de-identifies with its own key, so patient pseudonyms differ between the stores;
    # the split must not depend on them.
    from medreview.ingest import InputFile, ingest_files
    from medreview.ml.training.dataset import load_dataset
    from medreview.reading.reads import LOCAL_ACTOR, save_read
    from medreview.store import Store
    from tests.conftest import make_settings
    from tests.helpers import dicom_bytes

    files = [
        (
            InputFile(f"p{number}.dcm", dicom_bytes(f"PATIENT-{number:02d}", modality="CR")),
            "normal" if number % 2 else "pneumonia",
        )
        for number in range(16)
    ]
    validation_sets, pseudonym_sets = [], []
    for name in ("first", "second"):
        store = Store.open(make_settings(tmp_path / name))
        results = ingest_files(store, LOCAL_ACTOR, [item for item, _ in files])
        for result, (_, label) in zip(results, files, strict=True):
            save_read(store, LOCAL_ACTOR, result.image_id, label)
        dataset = load_dataset(store, input_size=16)
        _, validation = dataset.split(validation_fraction=0.25, seed=0)  # as the training job splits
        validation_sets.append({dataset.source_sha256s[i] for i in validation})
        pseudonym_sets.append(set(dataset.patient_keys))
        store.close()
    assert pseudonym_sets[0].isdisjoint(pseudonym_sets[1])  # de-identified with different keys
    assert validation_sets[0] == validation_sets[1] and len(validation_sets[0]) == 4
