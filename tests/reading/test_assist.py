"""Model-assisted reading (issue 18 item 4): what each assist mode lets a reader see of the model,
what a read records of it, and the automation-bias monitor's figures on a hand-made example."""

from __future__ import annotations

import math

import pytest
from sqlalchemy import select

from medreview.ingest import InputFile, ingest_files
from medreview.reading.assist import assist_mode, assist_monitor, shown_call
from medreview.reading.reads import LOCAL_ACTOR, save_read
from medreview.reading.review import adjudicate
from medreview.store.models import Annotation, User
from medreview.team.accounts import create_first_admin, create_user
from medreview.team.roles import Actor
from medreview.team.settings import set_setting
from tests.helpers import add_model_version, add_predictions, png_bytes

ADMIN = Actor("boss", "admin")
ANN = Actor("ann", "annotator")
BOB = Actor("bob", "annotator")


@pytest.fixture
def project(store, fast_hashing):
    """Six images; an active version calls images 0-4 (0-3 pneumonia at 0.87, 4 normal) and finds
    image 5 outside its training data."""
    create_first_admin(store, ADMIN.username, "boss-password")
    for actor in (ANN, BOB):
        create_user(store, ADMIN, actor.username, f"{actor.username}-password", actor.role)
    files = [InputFile(f"{i}.png", png_bytes(300 + i)) for i in range(6)]
    ids = [result.image_id for result in ingest_files(store, LOCAL_ACTOR, files)]
    version = add_model_version(store, active=True)
    calls = {image_id: {"normal": 0.13, "pneumonia": 0.87} for image_id in ids[:4]}
    calls[ids[4]] = {"normal": 0.9, "pneumonia": 0.1}
    calls[ids[5]] = {"normal": 0.6, "pneumonia": 0.4}
    add_predictions(store, version, calls, outside={ids[5]: "image size far from the training images"})
    return store, ids, version


def read_of(store, username, image_id) -> Annotation:
    with store.db.read() as session:
        reader_id = session.scalar(select(User.id).where(User.username == username))
        read = session.scalar(
            select(Annotation).where(Annotation.image_id == image_id, Annotation.reader_id == reader_id)
        )
        session.expunge(read)
        return read


def test_auto_mode_follows_blinding(project):
    store, _, _ = project
    assert assist_mode(store) == "aided_after"
    set_setting(store, ADMIN, "blinded", True)
    assert assist_mode(store) == "unaided"
    set_setting(store, ADMIN, "assist_mode", "aided")
    assert assist_mode(store) == "aided"


def test_what_each_mode_lets_the_viewer_show(project):
    store, ids, version = project
    set_setting(store, ADMIN, "assist_mode", "unaided")
    assert shown_call(store, ids[0], read=False) is None
    assert shown_call(store, ids[0], read=True) is None
    set_setting(store, ADMIN, "assist_mode", "aided_after")
    assert shown_call(store, ids[0], read=False) is None
    after = shown_call(store, ids[0], read=True)
    assert after["label"] == "pneumonia" and after["probability"] == pytest.approx(0.87)
    assert after["version"] == version and after["suggest"] is False
    set_setting(store, ADMIN, "assist_mode", "aided")
    suggestion = shown_call(store, ids[0], read=False)
    assert suggestion["label"] == "pneumonia" and suggestion["suggest"] is True
    outside = shown_call(store, ids[5], read=False)
    assert outside["label"] is None and outside["probability"] is None and outside["suggest"] is False
    assert outside["reason"] == "image size far from the training images"


def test_aided_reads_record_the_suggestion_accepted_or_overridden(project):
    store, ids, version = project
    set_setting(store, ADMIN, "assist_mode", "aided")
    save_read(store, ANN, ids[0], "pneumonia", assisted=True)
    save_read(store, ANN, ids[1], "normal", assisted=True)
    save_read(store, ANN, ids[5], "normal", assisted=True)  # outside: no suggestion shown
    accepted, overridden, outside = (read_of(store, "ann", image_id) for image_id in ids[:2] + ids[5:])
    assert (accepted.assist_mode, accepted.model_version_id, accepted.model_suggestion) == (
        "aided",
        version,
        "pneumonia",
    )
    assert accepted.suggestion_accepted is True
    assert overridden.model_suggestion == "pneumonia" and overridden.suggestion_accepted is False
    assert outside.model_suggestion is None and outside.suggestion_accepted is None
    assert outside.model_version_id is None
    # A later change keeps what the first read did with the suggestion, and says it came after the call.
    save_read(store, ANN, ids[0], "normal", assisted=True)
    changed = read_of(store, "ann", ids[0])
    assert changed.suggestion_accepted is True and changed.changed_after_model is True


def test_aided_after_records_a_change_made_after_the_model_was_shown(project):
    store, ids, version = project
    set_setting(store, ADMIN, "assist_mode", "aided_after")
    save_read(store, ANN, ids[0], "normal", assisted=True)
    first = read_of(store, "ann", ids[0])
    assert first.assist_mode == "aided_after" and first.model_suggestion is None
    assert first.changed_after_model is False and first.model_version_id is None
    save_read(store, ANN, ids[0], "normal", assisted=True)  # the same class again: no change
    assert read_of(store, "ann", ids[0]).changed_after_model is False
    save_read(store, ANN, ids[0], "pneumonia", assisted=True)  # the model said pneumonia once the read was saved
    changed = read_of(store, "ann", ids[0])
    assert changed.changed_after_model is True and changed.model_version_id == version


def test_a_read_saved_outside_the_viewer_records_no_suggestion(project):
    store, ids, _ = project
    set_setting(store, ADMIN, "assist_mode", "aided")
    save_read(store, ANN, ids[0], "pneumonia")  # a labelled-folder import, a script: no suggestion was shown
    read = read_of(store, "ann", ids[0])
    assert (read.assist_mode, read.model_suggestion, read.suggestion_accepted) == (None, None, None)
    assert assist_monitor(store, ADMIN).empty


def test_unaided_reads_record_nothing_of_the_model(project):
    store, ids, _ = project
    set_setting(store, ADMIN, "assist_mode", "unaided")
    save_read(store, ANN, ids[0], "normal", assisted=True)
    save_read(store, ANN, ids[0], "pneumonia", assisted=True)
    read = read_of(store, "ann", ids[0])
    assert read.assist_mode == "unaided" and read.model_version_id is None
    assert read.changed_after_model is False and read.suggestion_accepted is None


def test_monitor_figures_on_a_hand_made_example(project):
    store, ids, version = project
    set_setting(store, ADMIN, "assist_mode", "aided")
    # The model says pneumonia for images 0-3, normal for 4. Final labels: 0, 1 pneumonia; 3, 4 normal; 2 none.
    # ann accepts 0, 1, 2 (right, right, wrong) and overrides 3 (right) and 4 (wrong: says pneumonia).
    for image_id, label in zip(ids[:5], ["pneumonia", "pneumonia", "pneumonia", "normal", "pneumonia"], strict=True):
        save_read(store, ANN, image_id, label, assisted=True)
    # bob accepts 0 only; his other read (image 2, overridden) has no final label.
    save_read(store, BOB, ids[0], "pneumonia", assisted=True)
    save_read(store, BOB, ids[2], "normal", assisted=True)
    for image_id, label in zip(ids[:2] + ids[3:5], ["pneumonia", "pneumonia", "normal", "normal"], strict=True):
        adjudicate(store, ADMIN, image_id, label)
    monitor = assist_monitor(store, ADMIN).set_index("reader")
    ann = monitor.loc["ann"]
    assert (ann.model_version, ann.suggestions, ann.accepted, ann.overridden) == (version, 5, 3, 2)
    assert ann.accepted_share == pytest.approx(3 / 5)
    # Image 2 has no final label: accuracy over the two accepted reads that have one (0, 1: both right).
    assert (ann.final_accepted, ann.accuracy_accepted) == (2, 1.0)
    assert (ann.final_overridden, ann.accuracy_overridden) == (2, 0.5)
    bob = monitor.loc["bob"]
    assert (bob.suggestions, bob.accepted, bob.overridden, bob.accuracy_accepted) == (2, 1, 1, 1.0)
    assert bob.final_overridden == 0 and (bob.accuracy_overridden is None or math.isnan(bob.accuracy_overridden))
