"""Evaluation sets: frozen labelled images, kept out of training with every image of their patients,
made by admins only and audited; one default set."""

from __future__ import annotations

import json

import pytest

from medreview.errors import MedreviewError, NotFoundError, PermissionDeniedError
from medreview.ingest import InputFile, ingest_files
from medreview.ml.training.dataset import training_table
from medreview.reading.evaluation_sets import (
    create_evaluation_set,
    default_evaluation_set,
    evaluation_set_images,
    find_evaluation_set,
    list_evaluation_sets,
    set_default_evaluation_set,
)
from medreview.reading.reads import LOCAL_ACTOR, save_read
from medreview.store import Store
from medreview.team.audit import query
from medreview.team.roles import Actor
from tests.helpers import dicom_bytes

REVIEWER = Actor("rev", "reviewer")


def labelled_patients(store: Store, labels_by_patient: dict[str, list[str]]) -> dict[str, list[int]]:
    """One DICOM per label, each patient's images in one study; returns patient -> image ids."""
    images: dict[str, list[int]] = {}
    for patient, labels in labels_by_patient.items():
        files = [
            InputFile(f"{patient}-{n}.dcm", dicom_bytes(patient_id=patient, modality="DX", instance_number=n + 1))
            for n in range(len(labels))
        ]
        results = ingest_files(store, LOCAL_ACTOR, files)
        for result, label in zip(results, labels, strict=True):
            save_read(store, LOCAL_ACTOR, result.image_id, label)
        images[patient] = [result.image_id for result in results]
    return images


@pytest.fixture
def project(store: Store) -> tuple[Store, dict[str, list[int]]]:
    patients = {f"P{n}": ["normal", "normal"] for n in range(4)} | {f"Q{n}": ["pneumonia"] * 2 for n in range(4)}
    return store, labelled_patients(store, patients)


def test_a_set_freezes_its_images_with_their_labels_of_that_moment(project):
    store, images = project
    chosen = [images["P0"][0], images["Q0"][0]]
    made = create_evaluation_set(store, LOCAL_ACTOR, "  held  out ", chosen)
    assert (made.name, made.images, made.patients, made.is_default) == ("held out", 2, 2, True)
    assert made.class_counts == {"normal": 1, "pneumonia": 1}
    # A later relabel changes the image's label, not the set's question.
    save_read(store, LOCAL_ACTOR, images["P0"][0], "pneumonia")
    frozen = evaluation_set_images(store, made.id)
    assert dict(zip(frozen["image_id"], frozen["label"], strict=True)) == {
        images["P0"][0]: "normal",
        images["Q0"][0]: "pneumonia",
    }


def test_training_never_uses_a_set_image_nor_any_image_of_its_patients(project):
    store, images = project
    create_evaluation_set(store, LOCAL_ACTOR, "held out", [images["P0"][0], images["Q1"][1]])
    table, class_names = training_table(store)
    used = set(table["image_id"])
    assert used.isdisjoint(images["P0"] + images["Q1"])  # their second images too: the patient is held out
    assert used == {image_id for patient in ("P1", "P2", "P3", "Q0", "Q2", "Q3") for image_id in images[patient]}
    assert class_names == ["normal", "pneumonia"]


def test_too_little_left_to_train_says_how_many_are_held_out(store):
    images = labelled_patients(store, {"P0": ["normal"] * 3, "Q0": ["pneumonia"] * 3, "Q1": ["pneumonia"]})
    create_evaluation_set(store, LOCAL_ACTOR, "held out", [images["Q1"][0], images["P0"][0]])
    with pytest.raises(MedreviewError, match=r"4 more are of patients in evaluation sets, which training never uses"):
        training_table(store)


def test_an_unlabelled_or_disputed_image_cannot_be_frozen(project):
    store, images = project
    [unread] = ingest_files(store, LOCAL_ACTOR, [InputFile("unread.dcm", dicom_bytes(patient_id="U1"))])
    with pytest.raises(MedreviewError, match=r"1 of the 2 chosen images have no final label"):
        create_evaluation_set(store, LOCAL_ACTOR, "held out", [images["P0"][0], unread.image_id])
    assert list_evaluation_sets(store) == []


@pytest.mark.parametrize(
    "name, image_ids, message",
    [
        ("   ", [1], "give the evaluation set a name"),
        ("x" * 65, [1], "at most 64 characters"),
        ("empty", [], "choose at least one labelled image"),
    ],
)
def test_bad_requests_are_refused_in_plain_words(project, name, image_ids, message):
    store, _ = project
    with pytest.raises(MedreviewError, match=message):
        create_evaluation_set(store, LOCAL_ACTOR, name, image_ids)


def test_a_set_is_frozen_so_its_name_cannot_be_reused(project):
    store, images = project
    create_evaluation_set(store, LOCAL_ACTOR, "held out", images["P0"])
    with pytest.raises(MedreviewError, match="named 'held out' already; sets are frozen"):
        create_evaluation_set(store, LOCAL_ACTOR, "held out", images["P1"])
    assert [summary.images for summary in list_evaluation_sets(store)] == [2]


def test_only_admins_freeze_sets_and_choose_the_default_and_both_are_audited(project):
    store, images = project
    with pytest.raises(PermissionDeniedError, match="may not freeze an evaluation set"):
        create_evaluation_set(store, REVIEWER, "held out", images["P0"])
    first = create_evaluation_set(store, LOCAL_ACTOR, "first", images["P0"])
    second = create_evaluation_set(store, LOCAL_ACTOR, "second", images["Q0"])
    assert default_evaluation_set(store).id == first.id and not second.is_default  # the first stays default
    with pytest.raises(PermissionDeniedError, match="may not choose the default evaluation set"):
        set_default_evaluation_set(store, REVIEWER, "second")
    set_default_evaluation_set(store, LOCAL_ACTOR, "second")
    assert find_evaluation_set(store).name == "second"  # no name: the default set
    assert [summary.name for summary in list_evaluation_sets(store) if summary.is_default] == ["second"]
    created = query(store, LOCAL_ACTOR, action="evaluation_set.create")
    assert sorted(json.loads(details)["name"] for details in created["details"]) == ["first", "second"]
    [chosen] = query(store, LOCAL_ACTOR, action="evaluation_set.default")["details"]
    assert json.loads(chosen) == {"name": "second", "old": ["first"]}


def test_an_unknown_set_is_not_found_naming_the_sets_there_are(project):
    store, images = project
    with pytest.raises(NotFoundError, match="there is no evaluation set yet"):
        find_evaluation_set(store)
    create_evaluation_set(store, LOCAL_ACTOR, "held out", images["P0"])
    with pytest.raises(NotFoundError, match="no evaluation set named 'other' \\(there are: 'held out'\\)"):
        find_evaluation_set(store, "other")
