"""Reads of cases (issue 17 items 1 and 6): a study-scoped class is read once per study, whichever
slice was on screen, and review, final labels, kappa, evaluation sets and exports count the study
once. One small generated CT study: a localiser series (series 1, 2 images) and an axial series
(series 2, 100 slices of 8x8), uploaded out of order; a second study of another patient."""

from __future__ import annotations

import io
import json
import random
from dataclasses import dataclass

import numpy as np
import pydicom
import pytest
from pydicom.uid import generate_uid

from medreview.errors import MedreviewError
from medreview.ingest import InputFile, ingest_files
from medreview.reading.cases import case_images, case_of
from medreview.reading.catalog import get_image
from medreview.reading.evaluation_sets import create_evaluation_set, evaluation_set_images
from medreview.reading.exchange import export_bytes, import_labels
from medreview.reading.reads import (
    LOCAL_ACTOR,
    can_see_others,
    current_labels,
    reads_table,
    save_read,
    unlabelled_image_ids,
)
from medreview.reading.review import (
    adjudicate,
    agreement,
    assign,
    case_reads,
    disagreements,
    review_counts,
    review_queue,
)
from medreview.reading.schema import add_label_class, label_class_scopes, set_label_class_scope
from medreview.store import Store
from medreview.store.models import Assignment, Study
from medreview.team.accounts import create_first_admin, create_user
from medreview.team.roles import Actor
from medreview.team.settings import set_setting
from tests.conftest import make_settings
from tests.helpers import dicom_bytes

ADMIN = Actor("boss", "admin")
REVIEWER = Actor("rev", "reviewer")
ANN = Actor("ann", "annotator")
BOB = Actor("bob", "annotator")
SLICES = 100


def _slice(patient: str, study_uid: str, series_uid: str, series_number: int, instance: int) -> bytes:
    """A tiny CT slice of one series (8x8: the store, not the pixels, is under test)."""
    pixels = np.full((8, 8), instance, dtype=np.uint16)
    dataset = pydicom.dcmread(
        io.BytesIO(
            dicom_bytes(patient, study_uid=study_uid, series_uid=series_uid, pixels=pixels, instance_number=instance)
        )
    )
    dataset.SeriesNumber = series_number
    dataset.SliceLocation = float(instance) * 2.5
    buffer = io.BytesIO()
    dataset.save_as(buffer, enforce_file_format=True)
    return buffer.getvalue()


def ct_files() -> list[InputFile]:
    """The two studies' files, axial slices shuffled (upload order is not reading order)."""
    study, localiser, axial = generate_uid(), generate_uid(), generate_uid()
    files = [InputFile(f"ax{n}.dcm", _slice("P1", study, axial, 2, n)) for n in range(1, SLICES + 1)]
    random.Random(7).shuffle(files)
    files += [InputFile(f"loc{n}.dcm", _slice("P1", study, localiser, 1, n)) for n in (2, 1)]
    other_study = generate_uid()
    files += [InputFile("other.dcm", _slice("P2", other_study, generate_uid(), 1, 1))]
    return files


@dataclass(frozen=True)
class CT:
    store: Store
    files: list[InputFile]
    slices: dict[str, int]  # upload name -> image id
    study_id: int
    other_study_image: int


def _load(store: Store, files: list[InputFile]) -> dict[str, int]:
    results = ingest_files(store, LOCAL_ACTOR, files)
    return {file.name: result.image_id for file, result in zip(files, results, strict=True)}


@pytest.fixture
def ct(any_store: Store, fast_hashing: None) -> CT:
    create_first_admin(any_store, ADMIN.username, "boss-password")
    for actor in (REVIEWER, ANN, BOB):
        create_user(any_store, ADMIN, actor.username, f"{actor.username}-password", actor.role)
    add_label_class(any_store, ADMIN, "pe present", scope="study")
    add_label_class(any_store, ADMIN, "no pe", scope="study")
    add_label_class(any_store, ADMIN, "nodule")  # image-scoped: boxes on slices
    files = ct_files()
    slices = _load(any_store, files)
    study_id, _ = case_of(any_store, slices["ax37.dcm"], "study")
    return CT(any_store, files, slices, study_id, slices["other.dcm"])


def test_a_study_read_saved_from_slice_37_is_the_readers_one_read_of_the_study(ct):
    order = case_images(ct.store, "study", ct.study_id)
    # Reading order: the localiser (series 1) by instance number, then the axial series slice by slice.
    expected = [ct.slices[f"loc{n}.dcm"] for n in (1, 2)] + [ct.slices[f"ax{n}.dcm"] for n in range(1, SLICES + 1)]
    assert order == expected
    assert case_of(ct.store, ct.slices["ax37.dcm"], "study") == (ct.study_id, expected[0])
    series_id, series_key = case_of(ct.store, ct.slices["ax37.dcm"], "series")
    assert series_key == ct.slices["ax1.dcm"] and case_images(ct.store, "series", series_id) == expected[2:]

    save_read(ct.store, ANN, ct.slices["ax37.dcm"], "pe present")
    save_read(ct.store, ANN, ct.slices["ax80.dcm"], "no pe")  # the same read, changed from another slice
    save_read(ct.store, ANN, ct.slices["ax37.dcm"], labels=["nodule"])  # an image-level read beside it
    reads = reads_table(ct.store, ADMIN)
    study_reads = reads[reads["scope"] == "study"]
    assert len(study_reads) == 1
    [study_read] = study_reads.to_dict(orient="records")
    assert (study_read["case_id"], study_read["image_id"], study_read["label"]) == (ct.study_id, expected[0], "no pe")
    image_reads = reads[reads["scope"] == "image"]
    assert image_reads[["image_id", "labels"]].to_dict(orient="records") == [
        {"image_id": ct.slices["ax37.dcm"], "labels": ["nodule"]}
    ]
    # The Label page's record of a slice: the study's read at study scope, the slice's own otherwise.
    assert get_image(ct.store, ANN, ct.slices["ax80.dcm"], scope="study").label == "no pe"
    assert get_image(ct.store, ANN, ct.slices["ax37.dcm"]).labels == ("nodule",)
    assert get_image(ct.store, ANN, ct.slices["ax80.dcm"]).read is False
    # Image-level words stay about images: the study's read does not label its key image.
    assert set(unlabelled_image_ids(ct.store)) == set(ct.slices.values()) - {ct.slices["ax37.dcm"]}


def test_two_readers_study_reads_are_one_kappa_item_and_the_reviewer_settles_the_study_once(ct):
    set_setting(ct.store, ADMIN, "blinded", True)
    save_read(ct.store, ANN, ct.slices["ax37.dcm"], "pe present")
    assert not can_see_others(ct.store, BOB, ct.slices["ax12.dcm"])
    save_read(ct.store, BOB, ct.slices["ax90.dcm"], "no pe")
    # Bob read the study: every slice of it shows him the others' reads, the other study does not.
    assert can_see_others(ct.store, BOB, ct.slices["ax12.dcm"])
    assert not can_see_others(ct.store, BOB, ct.other_study_image)
    save_read(ct.store, ANN, ct.other_study_image, "no pe")
    save_read(ct.store, BOB, ct.other_study_image, "no pe")

    summary = agreement(ct.store, REVIEWER)
    [pair] = summary["pairs"].to_dict(orient="records")
    assert pair["n_images"] == 2  # two studies, not 101 slices
    assert summary["images_with_multiple_readers"] == 2
    assert len(review_queue(ct.store, REVIEWER)) == 4
    save_read(ct.store, ANN, ct.slices["loc1.dcm"], labels=["nodule"])  # the key image's own read
    study_reads = case_reads(ct.store, REVIEWER, "study", ct.study_id)
    assert sorted(zip(study_reads["reader"], study_reads["label"], strict=True)) == [
        ("ann", "pe present"),
        ("bob", "no pe"),
    ]
    [open_case] = disagreements(ct.store, REVIEWER).to_dict(orient="records")
    assert (open_case["scope"], open_case["case_id"], open_case["labels"]) == (
        "study",
        ct.study_id,
        {"ann": "pe present", "bob": "no pe"},
    )

    adjudicate(ct.store, REVIEWER, ct.slices["ax12.dcm"], "pe present", "filling defect")  # from any slice
    assert review_counts(ct.store, REVIEWER) == {"queue": 3, "disagreements": 0, "auto_accepted": 0}
    statuses = reads_table(ct.store, ADMIN).set_index("reader")
    study_statuses = statuses[statuses["case_id"] == ct.study_id]["status"].to_dict()
    assert study_statuses == {"ann": "approved", "bob": "overruled"}
    assert current_labels(ct.store).empty  # image-level training sees no study label at a key image
    study_final = current_labels(ct.store, scope="study").to_dict(orient="records")
    assert [(row["case_id"], row["label"], row["method"]) for row in study_final] == [
        (ct.study_id, "pe present", "adjudicated"),
        (case_of(ct.store, ct.other_study_image, "study")[0], "no pe", "unanimous"),
    ]


def test_an_evaluation_set_and_assignments_count_studies(ct):
    save_read(ct.store, ANN, ct.slices["ax37.dcm"], "pe present")
    save_read(ct.store, ANN, ct.other_study_image, "no pe")
    chosen = [ct.slices[f"ax{n}.dcm"] for n in range(1, SLICES + 1)] + [ct.other_study_image]
    summary = create_evaluation_set(ct.store, ADMIN, "pe holdout", chosen, scope="study")
    assert (summary.images, summary.patients, summary.class_counts) == (2, 2, {"no pe": 1, "pe present": 1})
    members = evaluation_set_images(ct.store, summary.id)
    assert set(members["scope"]) == {"study"} and len(members) == 2

    assert assign(ct.store, ADMIN, chosen, ["ann", "bob"], 2, scope="study") == 4  # 2 studies x 2 readers
    with ct.store.db.read() as session:
        assert session.query(Assignment).filter(Assignment.scope == "study").count() == 4


def test_study_reads_exported_and_imported_into_an_empty_store_are_the_same_reads(ct, tmp_path):
    save_read(ct.store, ANN, ct.slices["ax37.dcm"], "pe present")
    save_read(ct.store, BOB, ct.slices["ax50.dcm"], "no pe")
    adjudicate(ct.store, REVIEWER, ct.slices["ax1.dcm"], "pe present")
    save_read(ct.store, ANN, ct.slices["ax37.dcm"], labels=["nodule"])
    content, _ = export_bytes(ct.store, ADMIN, "reads", "json")
    document = json.loads(content)
    study_rows = [row for row in document["rows"] if row["scope"] == "study"]
    with ct.store.db.read() as session:
        study_uid = session.get(Study, ct.study_id).study_uid
    assert {row["study_uid"] for row in study_rows} == {study_uid}  # the store's (de-identified) UID
    labels_csv, _ = export_bytes(ct.store, ADMIN, "labels", "csv")
    assert "scope" in labels_csv.decode().splitlines()[0] and "study_uid" in labels_csv.decode().splitlines()[0]

    target = Store.open(make_settings(tmp_path / "empty"))
    try:
        create_first_admin(target, ADMIN.username, "boss-password")
        _load(target, ct.files)
        counts = import_labels(target, ADMIN, content)
        assert counts == {"reads": 3, "final_labels": 1, "images_missing": 0}
        # The classes the import made keep their scope.
        scopes = label_class_scopes(target)
        assert (scopes["pe present"], scopes["no pe"]) == ("study", "study")
        columns = ["scope", "reader", "label", "labels", "status"]

        def comparable(store: Store) -> list[dict]:
            table = reads_table(store, ADMIN).sort_values(["scope", "reader"])
            return table[columns].to_dict(orient="records")

        assert comparable(target) == comparable(ct.store)
        final = current_labels(target, scope="study")
        assert final[["label", "method"]].to_dict(orient="records") == [
            {"label": "pe present", "method": "adjudicated"}
        ]
    finally:
        target.close()


def test_a_read_names_classes_of_one_scope_and_a_class_keeps_its_scope_once_read_with(ct):
    box = {"label": "pe present", "x": 1, "y": 1, "width": 2, "height": 2}
    with pytest.raises(MedreviewError, match="a box marks one image"):
        save_read(ct.store, ANN, ct.slices["ax37.dcm"], boxes=[box])
    with pytest.raises(MedreviewError, match="one read names classes of one scope"):
        save_read(ct.store, ANN, ct.slices["ax37.dcm"], "pe present", labels=["nodule"])
    assert reads_table(ct.store, ADMIN).empty

    assert label_class_scopes(ct.store)["pe present"] == "study"
    with pytest.raises(MedreviewError, match="unknown scope 'exam'"):
        add_label_class(ct.store, ADMIN, "fracture", scope="exam")
    set_label_class_scope(ct.store, ADMIN, "pe present", "series")
    save_read(ct.store, ANN, ct.slices["ax37.dcm"], "pe present")
    with pytest.raises(MedreviewError, match="its scope can change only before anyone reads with it"):
        set_label_class_scope(ct.store, ADMIN, "pe present", "study")
    [read] = reads_table(ct.store, ADMIN).to_dict(orient="records")
    assert (read["scope"], read["image_id"]) == ("series", ct.slices["ax1.dcm"])


def test_each_class_s_agreement_counts_the_cases_of_its_own_scope(ct):
    # Two studies and one slice, each read by ann and bob: a study class's kappa counts the two
    # studies, an image class's the one slice (before, every class counted all three cases, the
    # slice's read standing as "no pe" absent and the studies' as "nodule" absent).
    for reader, first, second in ((ANN, "pe present", "no pe"), (BOB, "pe present", "pe present")):
        save_read(ct.store, reader, ct.slices["ax37.dcm"], first)
        save_read(ct.store, reader, ct.other_study_image, second)
    save_read(ct.store, ANN, ct.slices["ax12.dcm"], "nodule")
    save_read(ct.store, BOB, ct.slices["ax12.dcm"], "normal")
    summary = agreement(ct.store, REVIEWER)
    per_class = summary["pairs_per_class"].set_index("class")["n_images"].to_dict()
    assert per_class["pe present"] == per_class["no pe"] == 2
    assert per_class["nodule"] == per_class["normal"] == 1
    fleiss = summary["fleiss_per_class"].set_index("class")["n_images"].to_dict()
    assert (fleiss["pe present"], fleiss["nodule"]) == (2, 1)
    assert summary["images_with_multiple_readers"] == 3
