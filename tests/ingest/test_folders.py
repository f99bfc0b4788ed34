"""``import-folder``: DIR/<class>/<images> is stored and labelled with the folder's class, one
result per file, hidden entries skipped with a note, and one bad file or class folder stops
nothing else."""

from __future__ import annotations

from pathlib import Path

import pytest

from medreview.errors import MedreviewError
from medreview.ingest.folders import import_class_folders
from medreview.reading.reads import LOCAL_ACTOR, current_labels, reads_table
from medreview.reading.schema import label_classes
from tests.helpers import dicom_bytes, jpeg_bytes, png_bytes


def write(path: Path, data: bytes) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    return path


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    root = tmp_path / "dataset"
    write(root / "normal" / "n1.png", png_bytes(1000))
    write(root / "normal" / "nested" / "n2.jpg", jpeg_bytes(1001))
    write(root / "pneumonia" / "p1.dcm", dicom_bytes("P-100"))
    write(root / "normal" / "broken.png", b"this is not an image")
    write(root / "pneumonia" / "p2.png", png_bytes(1002))
    write(root / "Pleural  Effusion" / "e1.png", png_bytes(1003))
    write(root / ".cache" / "hidden.png", png_bytes(1004))  # hidden folder
    write(root / "normal" / ".DS_Store", b"\x00\x01finder data")  # hidden file
    write(root / "pneumonia" / ".thumbs" / "t1.png", png_bytes(1005))  # hidden folder inside a class
    write(root / "README.txt", b"not in a class folder")
    return root


def test_each_file_is_stored_and_labelled_with_its_folder(store, folder):
    results = import_class_folders(store, folder)
    stored = {Path(result.file).name: result for result in results if result.status == "stored"}
    assert set(stored) == {"n1.png", "n2.jpg", "p1.dcm", "p2.png", "e1.png"}
    labels = current_labels(store).set_index("image_id")["label"]
    assert {name: labels[result.image_id] for name, result in stored.items()} == {
        "n1.png": "normal",
        "n2.jpg": "normal",  # sub-folders of a class folder belong to that class
        "p1.dcm": "pneumonia",
        "p2.png": "pneumonia",
        "e1.png": "pleural effusion",
    }
    assert set(reads_table(store, LOCAL_ACTOR)["reader"]) == {"local"}


def test_a_new_folder_name_becomes_a_class(store, folder):
    assert "pleural effusion" not in label_classes(store)
    import_class_folders(store, folder)
    # Spaces and case are normalised as for any class name.
    assert label_classes(store) == ["normal", "pneumonia", "pleural effusion"]


def test_hidden_folders_and_files_and_loose_files_are_skipped_with_a_note(store, folder):
    results = import_class_folders(store, folder)
    skipped = {result.file: result.reason for result in results if result.status == "skipped"}
    assert set(skipped) == {".cache/", "normal/.DS_Store", "pneumonia/.thumbs/", "README.txt"}
    assert all(reason for reason in skipped.values())
    stored_names = {Path(result.file).name for result in results if result.status == "stored"}
    assert stored_names.isdisjoint({"hidden.png", "t1.png", ".DS_Store", "README.txt"})
    assert ".cache" not in label_classes(store) and "cache" not in label_classes(store)


def test_files_are_named_below_the_folder_not_by_their_full_path(store, folder):
    results = import_class_folders(store, folder)
    assert {result.file for result in results if result.status == "stored"} == {
        "normal/n1.png",
        "normal/nested/n2.jpg",
        "pneumonia/p1.dcm",
        "pneumonia/p2.png",
        "Pleural  Effusion/e1.png",
    }


@pytest.mark.parametrize("bad_name", ["   ", "x" * 80])
def test_a_class_folder_with_an_unusable_name_is_refused_and_the_others_import(store, folder, bad_name):
    write(folder / bad_name / "b1.png", png_bytes(1020))
    results = import_class_folders(store, folder)
    [refused] = [result for result in results if result.file == bad_name + "/"]
    assert refused.status == "rejected" and "class name" in refused.reason
    assert len([result for result in results if result.status == "stored"]) == 5


def test_a_bad_file_is_reported_and_the_rest_still_imports(store, folder):
    results = [result for result in import_class_folders(store, folder) if result.status != "skipped"]
    assert len(results) == 6  # one per file in a class folder, the broken one included
    [broken] = [result for result in results if Path(result.file).name == "broken.png"]
    assert broken.status == "rejected" and broken.reason and broken.image_id is None
    # The files after it in its folder ("normal") and the folder after that were stored.
    assert [result.status for result in results if Path(result.file).name != "broken.png"] == ["stored"] * 5


def test_importing_again_stores_nothing_twice_and_keeps_the_labels(store, folder):
    import_class_folders(store, folder)
    again = import_class_folders(store, folder)
    assert {result.status for result in again} == {"duplicate", "rejected", "skipped"}
    assert len(reads_table(store, LOCAL_ACTOR)) == 5 and len(current_labels(store)) == 5


def test_a_path_that_is_not_a_folder_or_has_no_class_folders_is_refused(store, tmp_path):
    with pytest.raises(MedreviewError, match="is not a folder"):
        import_class_folders(store, tmp_path / "missing")
    write(tmp_path / "flat" / "loose.png", png_bytes(1010))
    write(tmp_path / "flat" / ".hidden" / "x.png", png_bytes(1011))
    with pytest.raises(MedreviewError, match="has no sub-folders"):
        import_class_folders(store, tmp_path / "flat")


def test_a_folder_imported_as_an_evaluation_set_is_frozen_and_never_trained_on(store, folder, tmp_path):
    from medreview.ml.training.dataset import training_table
    from medreview.reading.evaluation_sets import evaluation_set_images, find_evaluation_set

    results = import_class_folders(store, folder, evaluation_set="external test")
    imported = {result.image_id for result in results if result.image_id is not None}
    made = find_evaluation_set(store, "external test")
    assert made.is_default and made.images == len(imported) == 5
    assert made.class_counts == {"normal": 2, "pneumonia": 2, "pleural effusion": 1}
    assert set(evaluation_set_images(store, made.id)["image_id"]) == imported
    # A second folder trains; the first one never does.
    training = tmp_path / "training"
    for number in range(3):
        write(training / "normal" / f"t{number}.png", png_bytes(2000 + number))
        write(training / "pneumonia" / f"u{number}.png", png_bytes(2100 + number))
    import_class_folders(store, training)
    table, _ = training_table(store)
    assert len(table) == 6 and not set(table["image_id"]) & imported


def test_a_taken_evaluation_set_name_is_refused_before_anything_is_imported(store, folder, tmp_path):
    import_class_folders(store, folder, evaluation_set="external test")
    other = tmp_path / "other"
    write(other / "normal" / "x.png", png_bytes(3000))
    with pytest.raises(MedreviewError, match="named 'external test' already"):
        import_class_folders(store, other, evaluation_set="external  test")
    assert len(current_labels(store)) == 5  # the other folder's image was not imported
