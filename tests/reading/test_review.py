"""Team reading on SQLite and PostgreSQL: roles enforced by the services, blinded reads, the
review states, adjudication into final labels, agreement, assignments, export and re-import."""

from __future__ import annotations

import json

import pytest
from sqlalchemy import func, select

from medreview.errors import MedreviewError, PermissionDeniedError
from medreview.ingest import InputFile, ingest_files
from medreview.reading.exchange import export_data, import_labels, write_export
from medreview.reading.reads import LOCAL_ACTOR, current_labels, reads_table, save_read
from medreview.reading.review import (
    adjudicate,
    agreement,
    assign,
    class_tally,
    decide,
    disagreements,
    disagreements_page,
    image_reads,
    review_counts,
    review_outcomes,
    review_queue,
    review_queue_page,
)
from medreview.reading.worklists import next_image_id, worklist
from medreview.store import Store
from medreview.store.models import AuditEvent, FinalLabel
from medreview.team.accounts import create_first_admin, create_user
from medreview.team.roles import Actor
from medreview.team.settings import set_setting
from tests.conftest import make_settings
from tests.helpers import png_bytes

ADMIN = Actor("boss", "admin")
REVIEWER = Actor("rev", "reviewer")
ANN = Actor("ann", "annotator")
BOB = Actor("bob", "annotator")


@pytest.fixture
def team(any_store, fast_hashing):
    create_first_admin(any_store, ADMIN.username, "boss-password")
    for actor in (REVIEWER, ANN, BOB):
        create_user(any_store, ADMIN, actor.username, f"{actor.username}-password", actor.role)
    ids = [
        r.image_id
        for r in ingest_files(any_store, LOCAL_ACTOR, [InputFile(f"{i}.png", png_bytes(200 + i)) for i in range(6)])
    ]
    return any_store, ids


def audit_actions(store) -> list[str]:
    with store.db.read() as session:
        return list(session.scalars(select(AuditEvent.action).order_by(AuditEvent.id)))


def test_services_enforce_roles_not_just_the_pages(team):
    store, ids = team
    with pytest.raises(PermissionDeniedError):
        decide(store, ANN, 1, "approve")
    with pytest.raises(PermissionDeniedError):
        adjudicate(store, ANN, ids[0], "normal")
    with pytest.raises(PermissionDeniedError):
        assign(store, REVIEWER, ids, ["ann"], 1)
    with pytest.raises(PermissionDeniedError):
        set_setting(store, REVIEWER, "blinded", True)
    with pytest.raises(PermissionDeniedError):
        review_queue(store, ANN)


def test_blinded_reader_sees_others_only_after_submitting(team):
    store, ids = team
    set_setting(store, ADMIN, "blinded", True)
    save_read(store, BOB, ids[0], "pneumonia")
    with pytest.raises(PermissionDeniedError, match="blinded"):
        image_reads(store, ANN, ids[0])
    # Ann's worklist never carries Bob's label.
    assert worklist(store, ANN).set_index("image_id").loc[ids[0], "label"] is None
    save_read(store, ANN, ids[0], "normal")
    assert set(image_reads(store, ANN, ids[0])["reader"]) == {"ann", "bob"}
    assert len(image_reads(store, REVIEWER, ids[1])) == 0  # reviewers are never blinded


def test_review_states_and_resubmission_are_audited(team):
    store, ids = team
    save_read(store, ANN, ids[0], "normal")
    [read_id] = review_queue(store, REVIEWER)["annotation_id"]
    with pytest.raises(MedreviewError, match="say what to change"):
        decide(store, REVIEWER, read_id, "return")
    decide(store, REVIEWER, read_id, "return", "look at the left base again")
    assert review_queue(store, REVIEWER).empty
    assert list(worklist(store, ANN, status="returned")["image_id"]) == [ids[0]]
    assert next_image_id(store, ANN) == ids[0]  # sent back: first on her list again
    save_read(store, ANN, ids[0], "pneumonia")  # resubmitted
    assert list(review_queue(store, REVIEWER)["annotation_id"]) == [read_id]
    decide(store, REVIEWER, read_id, "approve")
    with store.db.read() as session:
        final = session.scalar(select(FinalLabel).where(FinalLabel.image_id == ids[0]))
        assert final.method == "approved" and final.label_class.name == "pneumonia"
    actions = audit_actions(store)
    assert actions.count("label.create") == 1 and actions.count("label.change") == 1
    assert actions.index("review.return") < actions.index("review.approve")
    save_read(store, REVIEWER, ids[1], "normal")
    queue = review_queue(store, ADMIN)
    own_read = int(queue.loc[queue["reader"] == "rev", "annotation_id"].iloc[0])
    with pytest.raises(PermissionDeniedError, match="own read"):
        decide(store, REVIEWER, own_read, "approve")


def test_label_change_records_old_and_new_value(team):
    store, ids = team
    save_read(store, ANN, ids[2], "normal")
    save_read(store, ANN, ids[2], "pneumonia", unsure=True)
    with store.db.read() as session:
        change = session.scalar(select(AuditEvent).where(AuditEvent.action == "label.change"))
    assert change.actor == "ann" and change.object_id == str(ids[2])
    assert change.details["old"]["label"] == "normal" and change.details["new"]["label"] == "pneumonia"


def test_disagreement_is_adjudicated_into_the_final_label_used_for_training(team):
    store, ids = team
    save_read(store, ANN, ids[0], "normal")
    save_read(store, BOB, ids[0], "pneumonia")
    save_read(store, ANN, ids[1], "normal")
    save_read(store, BOB, ids[1], "normal")
    assert list(disagreements(store, REVIEWER)["image_id"]) == [ids[0]]
    final = current_labels(store).set_index("image_id")
    assert ids[0] not in final.index  # readers disagree: no label until adjudicated
    assert final.loc[ids[1], "method"] == "unanimous"
    assert len(current_labels(store, "all")) == 4  # the "all submitted reads" option
    adjudicate(store, REVIEWER, ids[0], "pneumonia", "consolidation right lower lobe")
    assert disagreements(store, REVIEWER).empty
    final = current_labels(store).set_index("image_id")
    assert final.loc[ids[0], "label"] == "pneumonia" and final.loc[ids[0], "method"] == "adjudicated"


def test_agreement_counts_only_images_with_several_readers(team):
    store, ids = team
    for image_id, (ann_label, bob_label) in zip(
        ids[:4],
        [("normal", "normal"), ("pneumonia", "pneumonia"), ("normal", "pneumonia"), ("pneumonia", "pneumonia")],
        strict=True,
    ):
        save_read(store, ANN, image_id, ann_label)
        save_read(store, BOB, image_id, bob_label)
    save_read(store, ANN, ids[4], "normal")  # read once: not in any agreement figure
    summary = agreement(store, REVIEWER)
    pair = summary["pairs"].iloc[0]
    # 2x2 table: both normal 1, both pneumonia 2, ann normal / bob pneumonia 1 -> p_o = 3/4,
    # p_e = (2/4)(1/4) + (2/4)(3/4) = 1/2, kappa = (3/4 - 1/2) / (1 - 1/2) = 0.5
    assert (pair["reader_a"], pair["reader_b"], pair["n_images"]) == ("ann", "bob", 4)
    assert pair["kappa"] == pytest.approx(0.5)
    assert summary["fleiss"]["n_images"] == 4
    assert summary["images_with_multiple_readers"] == 4


def test_assignment_spreads_work_and_builds_personal_worklists(team):
    store, ids = team
    made = assign(store, ADMIN, ids, ["ann", "bob", "rev"], readers_per_image=2)
    assert made == 12
    lists = {actor.username: set(worklist(store, actor)["image_id"]) for actor in (ANN, BOB, REVIEWER)}
    assert sorted(map(len, lists.values())) == [4, 4, 4]
    assert all(sum(image_id in image_ids for image_ids in lists.values()) == 2 for image_id in ids)
    assert assign(store, ADMIN, ids, ["ann", "bob", "rev"], readers_per_image=2) == 0  # idempotent
    assert audit_actions(store).count("assignment.create") == 12


def test_export_reimported_into_an_empty_store_reproduces_the_labels(team, tmp_path):
    store, ids = team
    save_read(store, ANN, ids[0], "normal", comment="clear")
    save_read(store, BOB, ids[0], "pneumonia", boxes=[{"label": "pneumonia", "x": 2, "y": 3, "width": 10, "height": 8}])
    save_read(store, ANN, ids[1], "pneumonia", unsure=True)
    adjudicate(store, REVIEWER, ids[0], "pneumonia")
    path = tmp_path / "reads.json"
    assert write_export(store, ADMIN, "reads", path, "json") == 3
    coco = export_data(store, ADMIN, "coco")
    assert coco["annotations"][0]["bbox"] == [2.0, 3.0, 10.0, 8.0] and len(coco["images"]) == 1
    labels_csv = tmp_path / "labels.csv"
    write_export(store, ADMIN, "labels", labels_csv, "csv")
    assert "source_sha256" in labels_csv.read_text().splitlines()[0]

    # A second, empty store (its own de-identification key) receives the same uploads.
    empty = Store.open(make_settings(tmp_path / "second"))
    ingest_files(empty, LOCAL_ACTOR, [InputFile(f"{i}.png", png_bytes(200 + i)) for i in range(6)])
    counts = import_labels(empty, Actor("local", "admin"), path)
    assert counts == {"reads": 3, "final_labels": 1, "images_missing": 0}
    before = reads_table(store, LOCAL_ACTOR)[["reader", "label", "unsure", "comment", "status"]].sort_values(
        ["reader", "label"]
    )
    after = reads_table(empty, LOCAL_ACTOR)[["reader", "label", "unsure", "comment", "status"]].sort_values(
        ["reader", "label"]
    )
    assert before.reset_index(drop=True).equals(after.reset_index(drop=True))
    assert (
        current_labels(empty)[["label", "method"]].values.tolist()
        == current_labels(store)[["label", "method"]].values.tolist()
    )
    assert json.loads(path.read_text())["format"] == "medreview-labels"
    with empty.db.read() as session:
        assert session.scalar(select(func.count(AuditEvent.id)).where(AuditEvent.action == "label.import")) == 1
    empty.close()


def test_a_changed_or_rejected_read_loses_its_approval(team):
    store, ids = team
    save_read(store, ANN, ids[0], "pneumonia")
    [read_id] = review_queue(store, REVIEWER)["annotation_id"]
    decide(store, REVIEWER, read_id, "approve")
    assert current_labels(store).set_index("image_id").loc[ids[0], "method"] == "approved"
    save_read(store, ANN, ids[0], "normal")  # the reader changes her mind after approval
    labels = current_labels(store).set_index("image_id")
    assert (labels.loc[ids[0], "label"], labels.loc[ids[0], "method"]) == ("normal", "unanimous")
    decide(store, REVIEWER, read_id, "reject")
    assert ids[0] not in set(current_labels(store)["image_id"])  # rejected: no label left
    # An adjudication is the reviewer's own decision and survives later reads.
    adjudicate(store, REVIEWER, ids[1], "pneumonia")
    save_read(store, BOB, ids[1], "normal")
    assert current_labels(store).set_index("image_id").loc[ids[1], "method"] == "adjudicated"


def test_renaming_a_class_renames_it_in_multi_labels_and_boxes(team, tmp_path):
    from medreview.reading.schema import rename_label_class

    store, ids = team
    box = {"label": "pneumonia", "x": 1, "y": 1, "width": 5, "height": 5}
    save_read(store, ANN, ids[0], labels=["normal", "pneumonia"], boxes=[box])
    rename_label_class(store, ADMIN, "pneumonia", "consolidation")
    read = reads_table(store, LOCAL_ACTOR).set_index("image_id").loc[ids[0]]
    assert read["labels"] == ["consolidation", "normal"] and read["boxes"][0]["label"] == "consolidation"
    coco = export_data(store, ADMIN, "coco")  # used to fail on the old name
    assert {c["name"] for c in coco["categories"]} >= {"consolidation"} and len(coco["annotations"]) == 1


@pytest.mark.parametrize(
    "row_change, message",
    [
        ({"reader": "=HYPERLINK()"}, "not a valid reader name"),
        ({"reader": "system"}, "not a valid reader name"),
        ({"status": "deleted"}, "unknown review state"),
        ({"boxes": [{"label": "normal", "x": 0, "y": 0, "width": -3, "height": 2}]}, "box is malformed"),
        ({"label": "Not Clean"}, "not a valid class name"),
    ],
)
def test_import_refuses_a_malformed_file_in_plain_words(team, tmp_path, row_change, message):
    store, ids = team
    save_read(store, ANN, ids[0], "normal")
    path = tmp_path / "reads.json"
    write_export(store, ADMIN, "reads", path, "json")
    document = json.loads(path.read_text())
    document["rows"][0].update(row_change)
    path.write_text(json.dumps(document))
    with pytest.raises(MedreviewError, match=message):
        import_labels(store, ADMIN, path)


def test_csv_exports_cannot_smuggle_spreadsheet_formulas(team, tmp_path):
    store, ids = team
    save_read(store, ANN, ids[0], "normal", comment="=cmd|'/c calc'!A1")
    path = tmp_path / "reads.csv"
    write_export(store, ADMIN, "reads", path, "csv")
    assert "'=cmd" in path.read_text() and ",=cmd" not in path.read_text()


def test_a_read_changed_after_unblinding_is_flagged_and_agreement_keeps_the_blind_one(store, fast_hashing):
    # A reader saves a throwaway read, sees the others' reads (unblinded by saving) and changes it:
    # the change must not count as an independent read.
    from medreview.team.audit import query

    admin = create_first_admin(store, "boss", "boss-password")
    for name in ("reader1", "reader2"):
        create_user(store, admin, name, f"{name}-password", "annotator")
    set_setting(store, admin, "blinded", True)
    first, second = (Actor(name, "annotator") for name in ("reader1", "reader2"))
    ids = [
        result.image_id
        for result in ingest_files(store, LOCAL_ACTOR, [InputFile(f"{n}.png", png_bytes(600 + n)) for n in range(4)])
    ]
    for image_id, (one, two) in zip(
        ids,
        [("normal", "normal"), ("pneumonia", "pneumonia"), ("normal", "pneumonia"), ("pneumonia", "normal")],
        strict=True,
    ):
        save_read(store, first, image_id, one)
        save_read(store, second, image_id, two)
    before = agreement(store, admin)["pairs"].iloc[0]["kappa"]
    save_read(store, second, ids[2], "normal")  # now agrees with reader1, after seeing their read

    reads = reads_table(store, admin).set_index(["image_id", "reader"])
    changed = reads.loc[(ids[2], "reader2")]
    assert (changed["label"], changed["blind_label"], bool(changed["changed_after_unblinding"])) == (
        "normal",
        "pneumonia",
        True,
    )
    assert not reads.loc[(ids[2], "reader1")]["changed_after_unblinding"]
    assert agreement(store, admin)["pairs"].iloc[0]["kappa"] == before  # the blind read still counts
    [details] = query(store, admin, action="label.change")["details"]
    assert '"after_unblinding": true' in details


def test_the_reviewer_queue_comes_a_page_at_a_time_without_the_reviewers_own_reads(team):
    store, ids = team
    for image_id in ids[:5]:
        save_read(store, ANN, image_id, "normal")
    save_read(store, REVIEWER, ids[5], "pneumonia")  # his own read: never his to review
    pages = [review_queue_page(store, REVIEWER, offset, limit=2) for offset in (0, 2, 4)]
    assert [total for _, total in pages] == [5, 5, 5]
    assert [image_id for page, _ in pages for image_id in page["image_id"]] == ids[:5]  # oldest first
    assert {reader for page, _ in pages for reader in page["reader"]} == {"ann"}
    assert review_queue_page(store, ADMIN)[1] == 6  # the admin may review the reviewer's read
    first, _ = pages[0]
    decide(store, REVIEWER, int(first["annotation_id"].iloc[0]), "approve")
    page, total = review_queue_page(store, REVIEWER, 0, limit=2)
    assert (list(page["image_id"]), total) == (ids[1:3], 4)  # decided: gone at once
    assert review_counts(store, REVIEWER)["queue"] == 4


def test_disagreements_come_a_page_at_a_time_with_who_said_what(team):
    store, ids = team
    save_read(store, ANN, ids[0], "normal")
    save_read(store, BOB, ids[0], "pneumonia")
    save_read(store, REVIEWER, ids[0], "pneumonia")
    save_read(store, ANN, ids[1], "pneumonia")
    save_read(store, BOB, ids[1], "normal")
    save_read(store, ANN, ids[2], "normal")
    save_read(store, BOB, ids[2], "normal")  # agreement: not a disagreement
    page, total = disagreements_page(store, REVIEWER, 0, limit=1)
    assert total == 2 and list(page["image_id"]) == [ids[0]]
    assert page["readers"].iloc[0] == 3
    labels = page["labels"].iloc[0]
    assert labels == {"ann": "normal", "bob": "pneumonia", "rev": "pneumonia"}
    assert class_tally(labels) == [("pneumonia", ["bob", "rev"]), ("normal", ["ann"])]
    assert list(disagreements_page(store, REVIEWER, 1, limit=1)[0]["image_id"]) == [ids[1]]
    adjudicate(store, REVIEWER, ids[1], "normal")
    assert disagreements_page(store, REVIEWER)[1] == 1
    assert review_counts(store, REVIEWER)["disagreements"] == 1


def test_adjudication_without_a_class_is_refused_in_plain_words(team):
    store, ids = team
    save_read(store, ANN, ids[0], "normal")
    save_read(store, BOB, ids[0], "pneumonia")
    for nothing in (None, ""):
        with pytest.raises(MedreviewError, match="choose the final class"):
            adjudicate(store, REVIEWER, ids[0], nothing)
    assert list(disagreements(store, REVIEWER)["image_id"]) == [ids[0]]  # still open
    with store.db.read() as session:
        assert session.scalar(select(func.count(FinalLabel.id))) == 0


def test_agreement_of_a_multi_label_project_compares_each_class(team):
    store, ids = team
    set_setting(store, ADMIN, "label_mode", "multi")
    for image_id, (ann_labels, bob_labels) in zip(
        ids[:3],
        [(["pneumonia"], ["pneumonia"]), (["normal"], ["normal", "pneumonia"]), (["normal"], ["normal"])],
        strict=True,
    ):
        save_read(store, ANN, image_id, labels=ann_labels)
        save_read(store, BOB, image_id, labels=bob_labels)
    summary = agreement(store, REVIEWER)
    assert summary["pairs"].empty and summary["fleiss"]["kappa"] is None  # no single-choice class
    per_class = summary["pairs_per_class"].set_index("class")
    # normal: both marked it on images 2 and 3 only -> full agreement; pneumonia: they differ on image 2.
    assert per_class.loc["normal", "kappa"] == pytest.approx(1.0)
    assert per_class.loc["pneumonia", "observed_agreement"] == pytest.approx(2 / 3)
    assert (per_class["n_images"] == 3).all()


def read_states(store, image_id: int) -> dict[str, str]:
    return dict(zip(*[image_reads(store, REVIEWER, image_id)[column] for column in ("reader", "status")], strict=True))


def test_approving_one_read_of_a_disagreement_settles_it_and_resolves_the_other_reads(team):
    store, ids = team
    save_read(store, ANN, ids[0], "normal")
    save_read(store, BOB, ids[0], "pneumonia")
    save_read(store, ADMIN, ids[0], "pneumonia")
    assert list(disagreements(store, REVIEWER)["image_id"]) == [ids[0]]
    bobs = int(review_queue(store, REVIEWER).set_index("reader").loc["bob", "annotation_id"])
    decide(store, REVIEWER, bobs, "approve", "air bronchograms")
    # Approved: the image's final label is Bob's class and it leaves Disagreements...
    assert disagreements(store, REVIEWER).empty and review_counts(store, REVIEWER)["disagreements"] == 0
    labels = current_labels(store).set_index("image_id")
    assert (labels.loc[ids[0], "label"], labels.loc[ids[0], "method"]) == ("pneumonia", "approved")
    # ...and its other reads leave the queue: the one that agrees approved, the other overruled.
    assert review_queue(store, REVIEWER).empty
    assert read_states(store, ids[0]) == {"ann": "overruled", "bob": "approved", "boss": "approved"}
    with store.db.read() as session:
        event = session.scalar(select(AuditEvent).where(AuditEvent.action == "review.approve"))
    assert set(event.details["resolved"]) == {"approved", "overruled"}
    # Overruled reads were independent reads: agreement still counts Ann's "normal".
    assert agreement(store, REVIEWER)["pairs"].set_index(["reader_a", "reader_b"]).loc[("ann", "bob"), "n_images"] == 1


def test_adjudication_resolves_the_images_waiting_reads(team):
    store, ids = team
    save_read(store, ANN, ids[0], "normal")
    save_read(store, BOB, ids[0], "pneumonia")
    save_read(store, ANN, ids[1], "normal")  # another image: untouched
    adjudicate(store, REVIEWER, ids[0], "normal", "no consolidation on the lateral")
    assert list(review_queue(store, REVIEWER)["image_id"]) == [ids[1]]
    assert read_states(store, ids[0]) == {"ann": "approved", "bob": "overruled"}
    reads = image_reads(store, REVIEWER, ids[0]).set_index("reader")
    assert reads.loc["bob", "review_comment"] == "no consolidation on the lateral"
    assert current_labels(store).set_index("image_id").loc[ids[0], "method"] == "adjudicated"
    # An overruled read is still a read: the image stays labelled, and a reader who reads again is
    # reviewed again (the adjudication stands).
    save_read(store, BOB, ids[0], "normal")
    assert read_states(store, ids[0])["bob"] == "submitted"
    assert current_labels(store).set_index("image_id").loc[ids[0], "method"] == "adjudicated"


def test_readers_are_told_which_reads_were_sent_back_rejected_or_overruled(team):
    store, ids = team
    for image_id in ids[:4]:
        save_read(store, ANN, image_id, "normal")
    save_read(store, BOB, ids[3], "pneumonia")
    queue = review_queue(store, REVIEWER).set_index(["reader", "image_id"])["annotation_id"]
    decide(store, REVIEWER, int(queue[("ann", ids[0])]), "return", "look at the left base again")
    decide(store, REVIEWER, int(queue[("ann", ids[1])]), "reject", "this is a lateral view")
    decide(store, REVIEWER, int(queue[("ann", ids[2])]), "approve")
    adjudicate(store, REVIEWER, ids[3], "pneumonia", "consolidation")
    table, counts = review_outcomes(store, ANN)
    assert counts == {"returned": 1, "rejected": 1, "overruled": 1}
    told = table.set_index("image_id")
    assert list(told.index) == [ids[3], ids[1], ids[0]]  # the latest decision first; approvals are not news
    assert told.loc[ids[0], ["status", "review_comment", "reviewed_by"]].tolist() == [
        "returned",
        "look at the left base again",
        "rev",
    ]
    assert told.loc[ids[1], ["status", "review_comment"]].tolist() == ["rejected", "this is a lateral view"]
    assert told.loc[ids[3], ["status", "label", "final_label"]].tolist() == ["overruled", "normal", "pneumonia"]
    assert told.loc[ids[0], "file"].endswith(".png")
    assert review_outcomes(store, BOB)[1] == {"returned": 0, "rejected": 0, "overruled": 0}
    # Read again, the sent-back read is no longer news.
    save_read(store, ANN, ids[0], "pneumonia")
    assert review_outcomes(store, ANN)[1]["returned"] == 0
