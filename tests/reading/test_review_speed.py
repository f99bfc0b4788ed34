"""Review at speed (issue 18, item 5): the queue filtered by what readers and the model say, batch
approval with one audit event per read, and the consensus auto-accept rule with its reversal."""

from __future__ import annotations

import pytest
from sqlalchemy import select

from medreview.errors import MedreviewError, PermissionDeniedError
from medreview.ingest import InputFile, ingest_files
from medreview.reading.consensus import AUTO_ACCEPTED, RULE_ACTOR, apply_consensus_rule
from medreview.reading.exchange import import_labels, write_export
from medreview.reading.reads import LOCAL_ACTOR, save_read
from medreview.reading.review import (
    approve_reads,
    auto_accepted_page,
    decide,
    queue_filter_counts,
    revert_auto_accept,
    review_counts,
    review_queue_page,
)
from medreview.store import Store
from medreview.store.models import Annotation, AuditEvent, FinalLabel
from medreview.team.accounts import create_first_admin, create_user
from medreview.team.settings import set_setting
from tests.conftest import make_settings
from tests.helpers import add_model_version, add_predictions, png_bytes
from tests.reading.test_review import ADMIN, ANN, BOB, REVIEWER


@pytest.fixture
def team(store, fast_hashing):
    create_first_admin(store, ADMIN.username, "boss-password")
    for actor in (REVIEWER, ANN, BOB):
        create_user(store, ADMIN, actor.username, f"{actor.username}-password", actor.role)
    files = [InputFile(f"{n}.png", png_bytes(300 + n)) for n in range(8)]
    ids = [result.image_id for result in ingest_files(store, LOCAL_ACTOR, files)]
    return store, ids, add_model_version(store, active=True)


def call(pneumonia: float) -> dict[str, float]:
    return {"normal": round(1 - pneumonia, 3), "pneumonia": pneumonia}


def queue_images(store, agreement: str = "all", band: tuple[float, float] = (0.0, 1.0)) -> list[tuple[int, str]]:
    page, total = review_queue_page(store, REVIEWER, agreement=agreement, band=band)
    assert total == len(page)
    return sorted(zip(page["image_id"], page["reader"], strict=True))


def events(store, action: str) -> list[AuditEvent]:
    with store.db.read() as session:
        return list(session.scalars(select(AuditEvent).where(AuditEvent.action == action).order_by(AuditEvent.id)))


def test_the_queue_filters_by_reader_and_model_agreement_and_by_probability_band(team):
    store, (agree, split, model_says_no, outside, uncalled, *_), model_id = team
    for image_id, ann_class, bob_class in (
        (agree, "pneumonia", "pneumonia"),
        (split, "normal", "pneumonia"),
        (model_says_no, "normal", None),
        (outside, "normal", None),
        (uncalled, "normal", None),
    ):
        save_read(store, ANN, image_id, ann_class)
        if bob_class:
            save_read(store, BOB, image_id, bob_class)
    add_predictions(
        store,
        model_id,
        {agree: call(0.9), split: call(0.6), model_says_no: call(0.7), outside: call(0.99)},
        {outside: "modality NM, trained on CR, DX"},
    )
    assert queue_images(store, "agree") == [(agree, "ann"), (agree, "bob")]
    assert queue_images(store, "readers_disagree") == [(split, "ann"), (split, "bob")]
    assert queue_images(store, "model_disagrees") == [(model_says_no, "ann")]
    assert queue_images(store, "outside") == [(outside, "ann")]
    assert len(queue_images(store)) == 7
    assert queue_filter_counts(store, REVIEWER) == {
        "all": 7,
        "agree": 2,
        "readers_disagree": 2,
        "model_disagrees": 1,
        "outside": 1,
    }
    # The band is on the calibrated probability of the model's call, inside its training data.
    assert queue_images(store, band=(0.8, 1.0)) == [(agree, "ann"), (agree, "bob")]
    assert queue_images(store, band=(0.55, 0.75)) == [(split, "ann"), (split, "bob"), (model_says_no, "ann")]
    assert queue_filter_counts(store, REVIEWER, band=(0.8, 1.0))["agree"] == 2
    page, _ = review_queue_page(store, REVIEWER, agreement="outside")
    assert page.iloc[0][["model_call", "outside_training_data"]].tolist() == ["pneumonia", True]
    with pytest.raises(MedreviewError, match="unknown queue filter"):
        review_queue_page(store, REVIEWER, agreement="maybe")
    with pytest.raises(MedreviewError, match="probability band"):
        review_queue_page(store, REVIEWER, band=(0.9, 0.1))


def test_batch_approval_approves_each_read_with_its_own_audit_event_and_says_what_it_skipped(team):
    store, (first, second, split, *_), _model_id = team
    save_read(store, ANN, first, "pneumonia")
    save_read(store, BOB, first, "pneumonia")
    save_read(store, ANN, second, "normal")
    save_read(store, ANN, split, "normal")
    save_read(store, BOB, split, "pneumonia")
    save_read(store, REVIEWER, second, "normal")  # the reviewer's own read
    reads = {(row.image_id, row.reader): row.annotation_id for row in review_queue_page(store, ADMIN)[0].itertuples()}
    decide(store, REVIEWER, reads[(second, "ann")], "reject")
    batch = [
        reads[(first, "ann")],
        reads[(first, "bob")],
        reads[(second, "ann")],  # rejected meanwhile
        reads[(second, "rev")],  # the reviewer's own
        reads[(split, "ann")],  # settles the disagreement: bob's read of it is overruled
        reads[(split, "bob")],
        999_999,
    ]
    result = approve_reads(store, REVIEWER, batch)
    assert result["approved"] == [reads[(first, "ann")], reads[(first, "bob")], reads[(split, "ann")]]
    assert result["skipped"] == {
        reads[(second, "ann")]: "already rejected",
        reads[(second, "rev")]: "your own read",
        reads[(split, "bob")]: "already overruled",
        999_999: "no longer exists",
    }
    approvals = events(store, "review.approve")
    assert [int(event.object_id) for event in approvals] == result["approved"]
    assert all(event.actor == "rev" for event in approvals)
    with store.db.read() as session:
        finals = {row.image_id: row.label_class.name for row in session.scalars(select(FinalLabel))}
    assert finals == {first: "pneumonia", split: "normal"}
    with pytest.raises(PermissionDeniedError):
        approve_reads(store, ANN, [reads[(second, "rev")]])


def rule_on(store, readers: int = 2, probability: float = 0.9) -> None:
    set_setting(store, ADMIN, "auto_accept", True)
    set_setting(store, ADMIN, "auto_accept_readers", readers)
    set_setting(store, ADMIN, "auto_accept_probability", probability)


def final_labels(store) -> dict[int, tuple[str, str]]:
    with store.db.read() as session:
        return {row.image_id: (row.label_class.name, row.method) for row in session.scalars(select(FinalLabel))}


def test_auto_accept_fires_only_when_enough_readers_the_calibrated_model_and_the_domain_all_agree(team):
    store, (ok, unsure_model, outside, split, other_call, *_), model_id = team
    add_predictions(
        store,
        model_id,
        {ok: call(0.95), unsure_model: call(0.85), outside: call(0.99), split: call(0.95), other_call: call(0.05)},
        {outside: "modality NM, trained on CR, DX"},
    )
    save_read(store, ANN, ok, "pneumonia")
    save_read(store, BOB, ok, "pneumonia")
    assert final_labels(store) == {}, "the rule is off by default"
    rule_on(store)
    assert apply_consensus_rule(store, ADMIN) == 1  # the admin's "apply now" takes the case read before
    assert final_labels(store) == {ok: ("pneumonia", AUTO_ACCEPTED)}
    for image_id, ann_class, bob_class in (
        (unsure_model, "pneumonia", "pneumonia"),  # the model agrees, at 0.85 < 0.9
        (outside, "pneumonia", "pneumonia"),  # outside the training data
        (split, "pneumonia", "normal"),  # readers disagree
        (other_call, "pneumonia", "pneumonia"),  # the model calls normal
    ):
        save_read(store, ANN, image_id, ann_class)
        assert final_labels(store).keys() == {ok}, "one reader is fewer than the rule's two"
        save_read(store, BOB, image_id, bob_class)
    assert final_labels(store).keys() == {ok}
    assert apply_consensus_rule(store, ADMIN) == 0
    set_setting(store, ADMIN, "auto_accept_probability", 0.8)
    assert apply_consensus_rule(store, ADMIN) == 1
    assert final_labels(store) == {ok: ("pneumonia", AUTO_ACCEPTED), unsure_model: ("pneumonia", AUTO_ACCEPTED)}
    # Audited with the rule's values, the model's call and the reads it approved; off the queue.
    first, second = events(store, "review.auto_accept")
    with store.db.read() as session:
        reads_of_ok = list(session.scalars(select(Annotation).where(Annotation.image_id == ok)))
    assert first.actor == RULE_ACTOR and first.object_id == str(ok)
    assert first.details["rule"] == {"readers": 2, "probability": 0.9}
    assert (first.details["label"], first.details["probability"], first.details["readers"]) == ("pneumonia", 0.95, 2)
    assert sorted(first.details["approved"]) == sorted(read.id for read in reads_of_ok)
    assert {read.status for read in reads_of_ok} == {"approved"}
    assert second.details["rule"] == {"readers": 2, "probability": 0.8}
    assert {image_id for image_id, _ in queue_images(store)} == {outside, split, other_call}
    assert review_counts(store, REVIEWER)["auto_accepted"] == 2


def test_a_case_is_auto_accepted_when_its_last_agreeing_read_is_saved(team, tmp_path):
    store, (image_id, *_), model_id = team
    rule_on(store)
    add_predictions(store, model_id, {image_id: call(0.97)})
    save_read(store, ANN, image_id, "pneumonia")
    assert final_labels(store) == {}
    save_read(store, BOB, image_id, "pneumonia")
    assert final_labels(store) == {image_id: ("pneumonia", AUTO_ACCEPTED)}
    assert events(store, "review.auto_accept")[0].details["triggered_by"] == "bob"
    # A reads export carries the label as auto-accepted, and imports as such (into a second store).
    path = tmp_path / "reads.json"
    write_export(store, ADMIN, "reads", path, "json")
    second = Store.open(make_settings(tmp_path / "second"))
    ingest_files(second, LOCAL_ACTOR, [InputFile("0.png", png_bytes(300))])
    assert import_labels(second, LOCAL_ACTOR, path)["final_labels"] == 1
    assert list(final_labels(second).values()) == [("pneumonia", AUTO_ACCEPTED)]
    second.close()
    # A reader who changes their read takes the label away: the reads disagree now.
    save_read(store, BOB, image_id, "normal")
    assert final_labels(store) == {}


def test_a_reviewer_reverts_an_auto_accept_the_reads_wait_again_and_the_rule_leaves_the_case(team):
    store, (image_id, *_), model_id = team
    rule_on(store)
    add_predictions(store, model_id, {image_id: call(0.97)})
    save_read(store, ANN, image_id, "pneumonia")
    save_read(store, BOB, image_id, "pneumonia")
    page, total = auto_accepted_page(store, REVIEWER)
    assert total == 1 and page.iloc[0][["image_id", "scope", "label"]].tolist() == [image_id, "image", "pneumonia"]
    with pytest.raises(PermissionDeniedError):
        revert_auto_accept(store, ANN, "image", image_id)
    put_back = revert_auto_accept(store, REVIEWER, "image", image_id, "check the costophrenic angle")
    assert len(put_back) == 2
    assert final_labels(store) == {}
    assert queue_images(store) == [(image_id, "ann"), (image_id, "bob")]
    (event,) = events(store, "review.auto_accept_revert")
    assert (event.actor, event.object_id, sorted(event.details["reads"])) == ("rev", str(image_id), sorted(put_back))
    assert apply_consensus_rule(store, ADMIN) == 0, "a reverted case is the reviewers' now"
    assert review_counts(store, REVIEWER)["auto_accepted"] == 0
    with pytest.raises(MedreviewError, match="no auto-accepted final label"):
        revert_auto_accept(store, REVIEWER, "image", image_id)
