"""Review: assignments, the reviewer queue, decisions, disagreements and adjudication, blinding.

Read states: submitted -> approved | rejected | returned (sent back with a comment); a returned
read is submitted again when its reader saves it. Approving a read of an image whose readers
agree records that class as the image's final label; a disagreement is settled by adjudication,
which records the reviewer's class as final. Every decision is audited with the old and new
state, in the same transaction.
"""

from __future__ import annotations

import pandas as pd
from sqlalchemy import select
from sqlalchemy.orm import Session

from medreview.errors import MedreviewError, NotFoundError, PermissionDeniedError
from medreview.reading.agreement import agreement_summary
from medreview.reading.reads import can_see_others, clear_approval, reads_table, user_id
from medreview.reading.schema import label_classes
from medreview.store import Store
from medreview.store.db import upsert
from medreview.store.models import Annotation, Assignment, FinalLabel, Image, LabelClass, utcnow
from medreview.team.audit import record
from medreview.team.roles import Actor, require
from medreview.team.settings import get_setting

__all__ = [
    "DECISIONS",
    "adjudicate",
    "agreement",
    "assign",
    "decide",
    "disagreements",
    "image_reads",
    "review_queue",
]

DECISIONS = {"approve": "approved", "reject": "rejected", "return": "returned"}


# --- assignments --------------------------------------------------------------------------------


def assign(store: Store, actor: Actor, image_ids: list[int], readers: list[str], readers_per_image: int) -> int:
    """Put each image on ``readers_per_image`` readers' worklists, spreading the work evenly
    (round robin, skipping readers who already have the image). Returns new assignments made."""
    require(actor, "admin", "assign work")
    if not readers:
        raise MedreviewError("choose at least one reader")
    if not 1 <= readers_per_image <= len(readers):
        raise MedreviewError(f"readers per image must be between 1 and {len(readers)} (the readers chosen)")
    made = 0
    with store.db.write() as session:
        reader_ids = {name: user_id(session, name, active_only=True) for name in readers}
        existing = {
            (row.image_id, row.reader_id)
            for row in session.scalars(select(Assignment).where(Assignment.image_id.in_(image_ids)))
        }
        load = dict.fromkeys(readers, 0)
        for image_id in image_ids:
            if session.get(Image, image_id) is None:
                raise NotFoundError(f"image {image_id} does not exist")
            have = [name for name in readers if (image_id, reader_ids[name]) in existing]
            # Least-loaded readers first, so the work spreads evenly; name breaks ties.
            for name in sorted((n for n in readers if n not in have), key=lambda n: (load[n], n)):
                if len(have) >= readers_per_image:
                    break
                session.add(Assignment(image_id=image_id, reader_id=reader_ids[name], assigned_by=actor.username))
                record(session, actor.username, "assignment.create", "image", image_id, reader=name)
                have.append(name)
                load[name] += 1
                made += 1
    return made


# --- who may see what ---------------------------------------------------------------------------


def image_reads(store: Store, actor: Actor, image_id: int) -> pd.DataFrame:
    """All readers' reads of one image (rejected ones included, marked), if the actor may see them."""
    require(actor, "annotator", "see reads")
    if not can_see_others(store, actor, image_id):
        raise PermissionDeniedError("blinded reading: submit your own read of this image first")
    reads = reads_table(store, actor, include_rejected=True)
    return reads[reads["image_id"] == image_id].reset_index(drop=True)


# --- reviewing ----------------------------------------------------------------------------------


def review_queue(store: Store, actor: Actor) -> pd.DataFrame:
    """Submitted reads waiting for a decision, oldest first."""
    require(actor, "reviewer", "review labels")
    reads = reads_table(store, actor)
    return reads[reads["status"] == "submitted"].sort_values("updated_at", kind="stable").reset_index(drop=True)


def _agreeing_class(session: Session, image_id: int) -> int | None:
    """The single-choice class all non-rejected reads of an image agree on, else None."""
    classes = set(
        session.scalars(
            select(Annotation.label_class_id).where(
                Annotation.image_id == image_id, Annotation.status != "rejected", Annotation.label_class_id.is_not(None)
            )
        )
    )
    return classes.pop() if len(classes) == 1 else None


def decide(store: Store, actor: Actor, annotation_id: int, decision: str, comment: str = "") -> None:
    """Approve, reject or send back (``return``, with a comment) one read."""
    require(actor, "reviewer", "review labels")
    if decision not in DECISIONS:
        raise MedreviewError(f"unknown decision '{decision}' (approve, reject or return)")
    if decision == "return" and not comment.strip():
        raise MedreviewError("say what to change when sending a read back")
    with store.db.write() as session:
        annotation = session.get(Annotation, annotation_id, with_for_update=True)
        if annotation is None:
            raise NotFoundError(f"read {annotation_id} does not exist")
        if annotation.reader.username == actor.username:
            raise PermissionDeniedError("a reviewer cannot review their own read")
        old_status = annotation.status
        annotation.status = DECISIONS[decision]
        annotation.review_comment = comment
        annotation.reviewed_by_id = user_id(session, actor.username, active_only=True)
        annotation.reviewed_at = utcnow()
        session.flush()
        if decision == "approve":
            agreed = _agreeing_class(session, annotation.image_id)
            if agreed is not None and annotation.label_class_id == agreed:
                _set_final(session, annotation.image_id, agreed, "approved", actor.username, comment)
        else:
            clear_approval(session, annotation.image_id)
        record(
            session,
            actor.username,
            f"review.{decision}",
            "annotation",
            annotation_id,
            image_id=annotation.image_id,
            reader=annotation.reader.username,
            old=old_status,
            new=annotation.status,
            comment=comment,
        )


def _set_final(session: Session, image_id: int, label_class_id: int, method: str, by: str, comment: str) -> None:
    values = {"label_class_id": label_class_id, "method": method, "decided_by": by, "comment": comment}
    upsert(
        session,
        FinalLabel,
        {"image_id": image_id, "decided_at": utcnow(), "labels": [], "boxes": [], **values},
        conflict_columns=["image_id"],
        update_columns=[*values, "decided_at"],
    )


def disagreements(store: Store, actor: Actor) -> pd.DataFrame:
    """Images whose non-rejected reads name different classes and that have no final label yet:
    image_id, readers, labels (reader -> class)."""
    require(actor, "reviewer", "see disagreements")
    reads = reads_table(store, actor)
    reads = reads[reads["label"].notna()]
    with store.db.read() as session:
        settled = set(session.scalars(select(FinalLabel.image_id)))
    rows = []
    for image_id, group in reads.groupby("image_id"):
        if group["label"].nunique() > 1 and image_id not in settled:
            rows.append(
                {
                    "image_id": int(image_id),
                    "readers": len(group),
                    "labels": dict(zip(group["reader"], group["label"], strict=True)),
                }
            )
    return pd.DataFrame(rows, columns=["image_id", "readers", "labels"])


def adjudicate(store: Store, actor: Actor, image_id: int, label: str, comment: str = "") -> None:
    """Settle an image's label: the reviewer's class becomes final."""
    require(actor, "reviewer", "adjudicate")
    with store.db.write() as session:
        if session.get(Image, image_id) is None:
            raise NotFoundError(f"image {image_id} does not exist")
        label_class = session.scalar(select(LabelClass).where(LabelClass.name == label))
        if label_class is None:
            raise MedreviewError(f"'{label}' is not a class of this project's label schema")
        previous = session.scalar(select(FinalLabel).where(FinalLabel.image_id == image_id))
        old = previous.label_class.name if previous is not None and previous.label_class else None
        _set_final(session, image_id, label_class.id, "adjudicated", actor.username, comment)
        record(session, actor.username, "review.adjudicate", "image", image_id, old=old, new=label, comment=comment)


def agreement(store: Store, actor: Actor) -> dict:
    """Inter-reader agreement over images read by several readers (see medreview.reading.agreement).

    Single-choice projects compare the class of each read (Cohen per pair, Fleiss overall and per
    class); multi-label projects compare, per class, whether each reader marked it."""
    require(actor, "reviewer", "see agreement statistics")
    reads = reads_table(store, actor)
    if get_setting(store, "label_mode") == "multi":
        reads = reads[["image_id", "reader", "labels"]]
    else:
        # A read changed after its reader saw the others' is not independent: its first, blind
        # class counts.
        reads = reads.assign(label=reads["blind_label"].where(reads["blind_label"].notna(), reads["label"]))
        reads = reads[reads["label"].notna()][["image_id", "reader", "label"]]
    return agreement_summary(reads, label_classes(store, include_retired=True))
