import numpy as np
import pytest

from medreview.errors import TrainingError
from medreview.ml.training.split import MIN_TEST_PATIENTS_PER_CLASS, split_by_patient, split_train_validation_test


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


def _the_same_files_in_two_stores(tmp_path, patients: int):  # type: ignore[no-untyped-def]
    """The datasets of two stores that ingested and labelled the same ``patients`` CR films (one per
    patient, alternating classes). Each store de-identifies with its own key, so patient pseudonyms
    differ between the stores; a split must not depend on them."""
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
        for number in range(patients)
    ]
    datasets = []
    for name in ("first", "second"):
        store = Store.open(make_settings(tmp_path / name))
        results = ingest_files(store, LOCAL_ACTOR, [item for item, _ in files])
        for result, (_, label) in zip(results, files, strict=True):
            save_read(store, LOCAL_ACTOR, result.image_id, label)
        datasets.append(load_dataset(store, input_size=16))
        store.close()
    return datasets


def test_the_same_files_in_two_stores_split_the_same_way(tmp_path):
    datasets = _the_same_files_in_two_stores(tmp_path, 16)
    validation_sets = []
    for dataset in datasets:
        _, validation = dataset.split(validation_fraction=0.25, seed=0)  # as the training job splits
        validation_sets.append({dataset.source_sha256s[i] for i in validation})
    pseudonym_sets = [set(dataset.patient_keys) for dataset in datasets]
    assert pseudonym_sets[0].isdisjoint(pseudonym_sets[1])  # de-identified with different keys
    assert validation_sets[0] == validation_sets[1] and len(validation_sets[0]) == 4


# --- train / validation / test --------------------------------------------------------------------


def _sides(split, patient_keys):  # type: ignore[no-untyped-def]
    return [{patient_keys[i] for i in part} for part in (split.train, split.validation, split.test)]


def test_three_way_split_keeps_each_patient_on_one_side_and_uses_every_image_once():
    patient_keys, labels = _cohort(patients_per_class=20)
    split = split_train_validation_test(patient_keys, labels, validation_fraction=0.2, test_fraction=0.25, seed=1)
    assert split.has_test
    together = np.concatenate([split.train, split.validation, split.test])
    assert sorted(together.tolist()) == list(range(len(labels)))
    train, validation, test = _sides(split, patient_keys)
    assert not (train & validation) and not (train & test) and not (validation & test)
    # Stratified: per class, 20% of 20 patients validate, 25% test, the rest (11) train; 3 images each.
    for part, patients_per_class in ((split.validation, 4), (split.test, 5), (split.train, 11)):
        per_class = np.bincount(np.asarray(labels)[part], minlength=2)
        assert per_class.tolist() == [patients_per_class * 3] * 2


def test_three_way_split_is_deterministic_whatever_the_input_order():
    patient_keys, labels = _cohort(patients_per_class=12)
    first = split_train_validation_test(patient_keys, labels, seed=5)
    again = split_train_validation_test(patient_keys, labels, seed=5)
    assert all(np.array_equal(a, b) for a, b in zip(_parts(first), _parts(again), strict=True))
    # The same images in another order: the same patients on each side.
    order = np.random.default_rng(0).permutation(len(labels))
    shuffled = split_train_validation_test([patient_keys[i] for i in order], [labels[i] for i in order], seed=5)
    assert _sides(shuffled, [patient_keys[i] for i in order]) == _sides(first, patient_keys)
    other = split_train_validation_test(patient_keys, labels, seed=6)
    assert not np.array_equal(first.test, other.test)


def _parts(split):  # type: ignore[no-untyped-def]
    return (split.train, split.validation, split.test)


def test_a_test_part_only_when_every_class_has_enough_patients():
    enough, _ = _cohort(patients_per_class=MIN_TEST_PATIENTS_PER_CLASS, images_per_patient=1)
    labels = [0] * MIN_TEST_PATIENTS_PER_CLASS + [1] * MIN_TEST_PATIENTS_PER_CLASS
    assert split_train_validation_test(enough, labels).has_test
    # One class a patient short: no test part, and the rest is exactly the two-way split.
    patient_keys = enough[:-1]
    short_labels = labels[:-1]
    split = split_train_validation_test(patient_keys, short_labels, seed=2)
    assert not split.has_test and len(split.test) == 0
    train, validation = split_by_patient(patient_keys, short_labels, seed=2)
    assert np.array_equal(split.train, train) and np.array_equal(split.validation, validation)
    reason = split.no_test_reason(["normal", "pneumonia"])
    assert f"at least {MIN_TEST_PATIENTS_PER_CLASS} patients" in reason
    assert f"'pneumonia' has {MIN_TEST_PATIENTS_PER_CLASS - 1}" in reason and "'normal'" not in reason


def test_split_counts_say_how_many_images_and_patients_each_part_has():
    patient_keys, labels = _cohort(patients_per_class=10, images_per_patient=2)
    split = split_train_validation_test(patient_keys, labels)
    counts = split.counts(labels, patient_keys, ["normal", "pneumonia"])
    assert counts["test"] == {"images": 8, "patients": 4, "images_per_class": {"normal": 4, "pneumonia": 4}}
    assert counts["validation"]["patients"] == 4 and counts["train"]["patients"] == 12
    assert counts["patients_per_class"] == {"normal": 10, "pneumonia": 10}
    few_keys, few_labels = _cohort(patients_per_class=4)
    assert split_train_validation_test(few_keys, few_labels).counts(few_labels, few_keys, ["a", "b"])["test"] is None


def test_fractions_that_leave_nothing_to_train_on_are_refused():
    patient_keys, labels = _cohort()
    with pytest.raises(TrainingError, match="leave images to train on"):
        split_train_validation_test(patient_keys, labels, validation_fraction=0.5, test_fraction=0.5)


def test_the_same_files_in_two_stores_split_three_ways_the_same_way(tmp_path):
    datasets = _the_same_files_in_two_stores(tmp_path, 2 * MIN_TEST_PATIENTS_PER_CLASS)
    part_sets = []
    for dataset in datasets:
        # As the training job splits.
        split = split_train_validation_test(
            dataset.patient_keys, dataset.labels, seed=0, image_keys=dataset.source_sha256s
        )
        part_sets.append([{dataset.source_sha256s[i] for i in part} for part in _parts(split)])
    pseudonym_sets = [set(dataset.patient_keys) for dataset in datasets]
    assert pseudonym_sets[0].isdisjoint(pseudonym_sets[1])
    assert part_sets[0] == part_sets[1]
    assert [len(part) for part in part_sets[0]] == [12, 4, 4]
