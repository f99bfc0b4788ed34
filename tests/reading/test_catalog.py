"""The catalog the pages read: one image's record (with whose read), the image table, and the
counts on the home page."""

from __future__ import annotations

import pytest

from medreview.errors import NotFoundError
from medreview.ingest import InputFile, ingest_files
from medreview.reading.catalog import counts, get_image, image_table
from medreview.reading.reads import LOCAL_ACTOR, save_read
from medreview.team.accounts import create_first_admin, create_user
from medreview.team.roles import Actor
from medreview.team.settings import set_setting
from tests.helpers import dicom_bytes, png_bytes

ANN = Actor("ann", "annotator")
BOB = Actor("bob", "annotator")


@pytest.fixture
def readers(store, fast_hashing):
    admin = create_first_admin(store, "boss", "boss-password")
    for actor in (ANN, BOB):
        create_user(store, admin, actor.username, f"{actor.username}-password", actor.role)
    return store


def test_an_unknown_image_is_not_found(store):
    with pytest.raises(NotFoundError, match="image 777 does not exist"):
        get_image(store, LOCAL_ACTOR, 777)


def test_a_reader_gets_their_own_read_only(readers):
    store = readers
    [result] = ingest_files(store, LOCAL_ACTOR, [InputFile("chest.png", png_bytes(800))])
    save_read(store, ANN, result.image_id, "normal", comment="clear lungs")
    save_read(store, BOB, result.image_id, "pneumonia", unsure=True)
    ann = get_image(store, ANN, result.image_id)
    assert (ann.read, ann.label, ann.unsure, ann.comment, ann.status) == (
        True,
        "normal",
        False,
        "clear lungs",
        "submitted",
    )
    bob = get_image(store, BOB, result.image_id)
    assert (bob.label, bob.unsure, bob.comment) == ("pneumonia", True, "")
    # A reader who has not read it sees no label at all, not someone else's.
    nobody = get_image(store, Actor("boss", "admin"), result.image_id)
    assert (nobody.read, nobody.label, nobody.status, nobody.labels, nobody.boxes) == (False, None, None, (), ())


def test_nobody_is_shown_another_readers_read(readers):
    # Browse, Predictions and Review showed "the newest read" of anyone: a blinded reader saw
    # another reader's label there. Now a record carries only the actor's own read.
    store = readers
    [result] = ingest_files(store, LOCAL_ACTOR, [InputFile("chest.png", png_bytes(801))])
    save_read(store, ANN, result.image_id, "normal")
    save_read(store, BOB, result.image_id, "pneumonia")
    assert get_image(store, LOCAL_ACTOR, result.image_id).label is None
    assert get_image(store, ANN, result.image_id).label == "normal"


def test_the_record_describes_the_stored_file(store):
    [result] = ingest_files(store, LOCAL_ACTOR, [InputFile("slice.dcm", dicom_bytes("P-5", modality="CT"))])
    record = get_image(store, LOCAL_ACTOR, result.image_id)
    # De-identified by default: the name shown is derived from de-identified facts, not "slice.dcm".
    assert record.display_name.startswith("CT-s0-i1-") and record.display_name.endswith(".dcm")
    assert (record.media_type, record.modality) == ("dicom", "CT")
    assert (record.rows, record.columns, record.number_of_frames) == (64, 64, 1)
    assert record.path.is_file() and record.path == store.blobs.path_for(record.sha256)
    assert record.patient_key.startswith("ANON-")  # de-identified by default


def test_image_table_lists_every_image_oldest_first(store):
    set_setting(store, LOCAL_ACTOR, "deidentify", False)  # names as uploaded
    results = ingest_files(
        store,
        LOCAL_ACTOR,
        [
            InputFile("b.png", png_bytes(810)),
            InputFile("a.dcm", dicom_bytes("P-6")),
            InputFile("c.png", png_bytes(811)),
        ],
    )
    table = image_table(store)
    assert list(table.columns) == ["image_id", "file", "modality"]
    assert table.values.tolist() == [
        [results[0].image_id, "b.png", "OT"],
        [results[1].image_id, "a.dcm", "CT"],
        [results[2].image_id, "c.png", "OT"],
    ]


def test_image_table_of_an_empty_store_keeps_its_columns(store):
    table = image_table(store)
    assert table.empty and list(table.columns) == ["image_id", "file", "modality"]


def test_counts_after_ingest_and_labelling(store):
    assert counts(store) == type(counts(store))(images=0, labelled=0, patients=0, models=0)
    results = ingest_files(
        store,
        LOCAL_ACTOR,
        [
            InputFile("one.png", png_bytes(820)),
            InputFile("two.png", png_bytes(821)),
            InputFile("s1.dcm", dicom_bytes("P-7", instance_number=1)),
            InputFile("s2.dcm", dicom_bytes("P-7", instance_number=2)),
            InputFile("broken.png", b"not an image"),
        ],
    )
    save_read(store, LOCAL_ACTOR, results[0].image_id, "normal")
    save_read(store, LOCAL_ACTOR, results[2].image_id, "pneumonia")
    store_counts = counts(store)
    # Each PNG is its own patient; the two slices share one; the broken file is not stored.
    assert (store_counts.images, store_counts.labelled, store_counts.patients, store_counts.models) == (4, 2, 3, 0)
