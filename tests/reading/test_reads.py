"""The words of medreview.reading.reads, each with one meaning everywhere: *labelled* (a read not
rejected), *unlabelled* (none), *final label* (adjudicated, approved or unanimous), and the
reader's own "read by me" on worklists. One store holds one image of each kind:

- A: no read;
- B: one read, rejected by a reviewer;
- C: two readers disagree;
- D: two readers agree;
- E: two readers disagree and a reviewer adjudicated.
"""

from __future__ import annotations

from dataclasses import dataclass

import pytest

from medreview.errors import MedreviewError
from medreview.ingest import InputFile, ingest_files
from medreview.reading.catalog import counts
from medreview.reading.reads import LOCAL_ACTOR, current_labels, labelled_image_ids, save_read, unlabelled_image_ids
from medreview.reading.review import adjudicate, decide, review_queue
from medreview.reading.worklists import next_image_id, worklist
from medreview.store import Store
from medreview.team.accounts import create_first_admin, create_user
from medreview.team.roles import Actor
from tests.helpers import png_bytes

ADMIN = Actor("boss", "admin")
REVIEWER = Actor("rev", "reviewer")
ANN = Actor("ann", "annotator")
BOB = Actor("bob", "annotator")


@dataclass(frozen=True)
class Images:
    no_read: int
    rejected: int
    disagreed: int
    agreed: int
    adjudicated: int


@dataclass(frozen=True)
class Project:
    store: Store
    images: Images


@pytest.fixture
def project(any_store: Store, fast_hashing: None) -> Project:
    create_first_admin(any_store, ADMIN.username, "boss-password")
    for actor in (REVIEWER, ANN, BOB):
        create_user(any_store, ADMIN, actor.username, f"{actor.username}-password", actor.role)
    results = ingest_files(
        any_store, LOCAL_ACTOR, [InputFile(f"{name}.png", png_bytes(300 + n)) for n, name in enumerate("ABCDE")]
    )
    images = Images(*(result.image_id for result in results))

    save_read(any_store, ANN, images.rejected, "normal")
    [rejected_read] = review_queue(any_store, REVIEWER)["annotation_id"]
    decide(any_store, REVIEWER, int(rejected_read), "reject")

    save_read(any_store, ANN, images.disagreed, "normal")
    save_read(any_store, BOB, images.disagreed, "pneumonia")

    save_read(any_store, ANN, images.agreed, "pneumonia")
    save_read(any_store, BOB, images.agreed, "pneumonia")

    save_read(any_store, ANN, images.adjudicated, "normal")
    save_read(any_store, BOB, images.adjudicated, "pneumonia")
    adjudicate(any_store, REVIEWER, images.adjudicated, "pneumonia")
    return Project(any_store, images)


def test_unlabelled_means_no_read_or_only_rejected_reads(project: Project):
    images = project.images
    assert unlabelled_image_ids(project.store) == [images.no_read, images.rejected]


def test_labelled_means_at_least_one_read_not_rejected(project: Project):
    images = project.images
    with project.store.db.read() as session:
        labelled = set(session.scalars(labelled_image_ids()))
    assert labelled == {images.disagreed, images.agreed, images.adjudicated}


def test_final_label_needs_agreement_or_a_reviewer_decision(project: Project):
    images = project.images
    final = current_labels(project.store).set_index("image_id")
    # Readers who disagree leave the image labelled but without a final label.
    assert set(final.index) == {images.agreed, images.adjudicated}
    assert (final.loc[images.agreed, "label"], final.loc[images.agreed, "method"]) == ("pneumonia", "unanimous")
    assert (final.loc[images.adjudicated, "label"], final.loc[images.adjudicated, "method"]) == (
        "pneumonia",
        "adjudicated",
    )


def test_label_source_all_lists_every_read_not_rejected(project: Project):
    images = project.images
    every_read = current_labels(project.store, source="all")
    per_image = every_read.groupby("image_id")["label"].apply(sorted).to_dict()
    assert per_image == {
        images.disagreed: ["normal", "pneumonia"],
        images.agreed: ["pneumonia", "pneumonia"],
        images.adjudicated: ["normal", "pneumonia"],
    }


def test_unknown_label_source_is_refused_in_plain_words(project: Project):
    with pytest.raises(MedreviewError, match="unknown label source 'newest'"):
        current_labels(project.store, source="newest")


def test_the_labelled_count_uses_the_same_definition(project: Project):
    store_counts = counts(project.store)
    assert (store_counts.images, store_counts.labelled) == (5, 3)


def test_worklist_unread_speaks_of_the_readers_own_reads(project: Project):
    store, images = project.store, project.images
    # Bob read C, D and E; A and B are still his to read.
    assert list(worklist(store, BOB, status="unread")["image_id"]) == [images.no_read, images.rejected]
    assert list(worklist(store, BOB, status="read")["image_id"]) == [
        images.disagreed,
        images.agreed,
        images.adjudicated,
    ]
    # Ann read B too: a rejected read is still her read, though B is unlabelled for the project.
    assert list(worklist(store, ANN, status="unread")["image_id"]) == [images.no_read]
    # The reviewer read nothing: every image is unread for him.
    assert len(worklist(store, REVIEWER, status="unread")) == 5


def test_next_image_follows_the_unread_worklist_and_wraps_round(project: Project):
    store, images = project.store, project.images
    assert next_image_id(store, BOB) == images.no_read
    assert next_image_id(store, BOB, after_image_id=images.no_read) == images.rejected
    assert next_image_id(store, BOB, after_image_id=images.rejected) == images.no_read
    assert next_image_id(store, ANN, after_image_id=images.no_read) == images.no_read
    save_read(store, ANN, images.no_read, "normal")
    assert next_image_id(store, ANN) is None  # nothing left for Ann


def test_a_returned_read_still_labels_the_image(project: Project):
    store, images = project.store, project.images
    save_read(store, ANN, images.no_read, "normal")
    queue = review_queue(store, REVIEWER)
    [read_id] = queue.loc[queue["image_id"] == images.no_read, "annotation_id"]
    decide(store, REVIEWER, int(read_id), "return", "check the costophrenic angle")
    # Sent back is not rejected: the image stays labelled, and is back on Ann's list.
    assert images.no_read not in unlabelled_image_ids(store)
    assert next_image_id(store, ANN) == images.no_read


def test_a_read_with_boxes_only_labels_the_image_without_a_final_label(project: Project):
    store, images = project.store, project.images
    box = {"label": "pneumonia", "x": 2, "y": 2, "width": 8, "height": 8}
    save_read(store, BOB, images.no_read, boxes=[box])
    assert unlabelled_image_ids(store) == [images.rejected]
    assert images.no_read not in set(current_labels(store)["image_id"])
