"""Labelling: the label schema, reads, worklists and the labels images end up with.

A *read* is one reader's labels for one image (a single-choice class, multi-label classes and/or
bounding boxes, an unsure flag, a comment). Saving again replaces that reader's read. Every write
checks the actor's role and lands in the audit trail in the same transaction.

The label an image *has* (for training, export and the model-vs-label comparison) is its final
label: an adjudicated or approved decision when a reviewer made one, otherwise the class its
non-rejected reads agree on. Images whose readers disagree have no label until adjudicated.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import pandas as pd
from sqlalchemy import delete, func, select
from sqlalchemy.orm import Session

from medreview.errors import MedreviewError, NotFoundError
from medreview.store import LOCAL_USER, Store
from medreview.store.db import upsert
from medreview.store.models import (
    Annotation,
    Assignment,
    FinalLabel,
    Image,
    LabelClass,
    Patient,
    Series,
    Study,
    User,
    utcnow,
)
from medreview.team.accounts import Actor, require
from medreview.team.audit import record
from medreview.team.settings import CHOICES

__all__ = [
    "LABEL_SOURCES",
    "LOCAL_ACTOR",
    "WORKLIST_FILTERS",
    "add_label_class",
    "current_labels",
    "image_facts",
    "label_classes",
    "modalities",
    "next_image_id",
    "reads_table",
    "rename_label_class",
    "save_read",
    "set_label_class_active",
    "worklist",
]

WORKLIST_FILTERS = ("all", "unlabelled", "labelled", "returned")
LABEL_SOURCES = CHOICES["training_label_source"]
# The CLI, the demo loader and import-folder act as the seeded local admin (it cannot log in to
# the web app: it has no password). Their reads are that user's reads.
LOCAL_ACTOR = Actor(LOCAL_USER, "admin")


# --- schema -------------------------------------------------------------------------------------


def label_classes(store: Store, include_retired: bool = False) -> list[str]:
    """Class names in display order."""
    with store.db.read() as session:
        query = select(LabelClass.name).order_by(LabelClass.position, LabelClass.id)
        if not include_retired:
            query = query.where(LabelClass.active.is_(True))
        return list(session.scalars(query))


def _clean_name(name: str) -> str:
    cleaned = " ".join(name.strip().split()).lower()
    if not cleaned:
        raise MedreviewError("a class name cannot be empty")
    if len(cleaned) > 64:
        raise MedreviewError("a class name can have at most 64 characters")
    return cleaned


def add_label_class(store: Store, actor: Actor, name: str) -> str:
    require(actor, "admin", "change the label schema")
    cleaned = _clean_name(name)
    with store.db.write() as session:
        existing = session.scalar(select(LabelClass).where(LabelClass.name == cleaned))
        if existing is not None:
            if existing.active:
                raise MedreviewError(f"class '{cleaned}' already exists")
            existing.active = True
        else:
            position = (session.scalar(select(func.max(LabelClass.position))) or 0) + 1
            session.add(LabelClass(name=cleaned, position=position))
        record(session, actor.username, "settings.change", "label_class", cleaned, change="add")
    return cleaned


def rename_label_class(store: Store, actor: Actor, old_name: str, new_name: str) -> str:
    require(actor, "admin", "change the label schema")
    cleaned = _clean_name(new_name)
    with store.db.write() as session:
        row = session.scalar(select(LabelClass).where(LabelClass.name == old_name))
        if row is None:
            raise NotFoundError(f"no class named '{old_name}'")
        if cleaned != old_name and session.scalar(select(LabelClass).where(LabelClass.name == cleaned)):
            raise MedreviewError(f"class '{cleaned}' already exists")
        row.name = cleaned
        # Multi-label classes and box labels are stored by name: rename them in the same transaction.
        for read in session.scalars(select(Annotation)):
            _rename_in_read(read, old_name, cleaned)
        for final in session.scalars(select(FinalLabel)):
            _rename_in_read(final, old_name, cleaned)
        record(session, actor.username, "settings.change", "label_class", cleaned, old=old_name, new=cleaned)
    return cleaned


def _rename_in_read(read: Annotation | FinalLabel, old_name: str, new_name: str) -> None:
    if old_name in (read.labels or []):
        read.labels = sorted(new_name if name == old_name else name for name in read.labels)
    if any(box.get("label") == old_name for box in read.boxes or []):
        read.boxes = [{**box, "label": new_name} if box.get("label") == old_name else box for box in read.boxes]


def set_label_class_active(store: Store, actor: Actor, name: str, active: bool) -> None:
    """Retire (or restore) a class. Retiring keeps existing labels; it only stops new ones."""
    require(actor, "admin", "change the label schema")
    with store.db.write() as session:
        row = session.scalar(select(LabelClass).where(LabelClass.name == name))
        if row is None:
            raise NotFoundError(f"no class named '{name}'")
        row.active = active
        record(session, actor.username, "settings.change", "label_class", name, active=active)


# --- reads --------------------------------------------------------------------------------------


def user_id(session: Session, username: str, active_only: bool = False) -> int:
    """The id of a user (an active one when ``active_only``); NotFoundError otherwise."""
    query = select(User.id).where(User.username == username)
    if active_only:
        query = query.where(User.active.is_(True))
    found = session.scalar(query)
    if found is None:
        raise NotFoundError(f"no {'active ' if active_only else ''}user named '{username}'")
    return found


def _check_boxes(boxes: Sequence[dict[str, Any]], image: Image, allowed: set[str]) -> list[dict[str, Any]]:
    """Boxes in image pixel coordinates, clipped to the image; refuse nonsense."""
    checked = []
    for box in boxes:
        try:
            x, y = float(box["x"]), float(box["y"])
            width, height = float(box["width"]), float(box["height"])
            frame = int(box.get("frame", 0))
            label = str(box["label"])
        except (KeyError, TypeError, ValueError) as error:
            raise MedreviewError(f"a box needs label, x, y, width and height ({error})") from error
        if label not in allowed:
            raise MedreviewError(f"box label '{label}' is not a class of this project")
        if not all(map(math.isfinite, (x, y, width, height))) or width <= 0 or height <= 0:
            raise MedreviewError("a box needs a positive, finite width and height")
        left, top = max(0.0, x), max(0.0, y)
        right, bottom = min(float(image.columns), x + width), min(float(image.rows), y + height)
        if right <= left or bottom <= top:
            raise MedreviewError("the box lies outside the image")
        if not 0 <= frame < image.number_of_frames:
            raise MedreviewError(f"frame {frame + 1} does not exist in this image")
        checked.append(
            {"label": label, "x": left, "y": top, "width": right - left, "height": bottom - top, "frame": frame}
        )
    return checked


def _read_value(annotation: Annotation | None, class_name: str | None) -> dict[str, Any] | None:
    if annotation is None:
        return None
    return {
        "label": class_name,
        "labels": list(annotation.labels or []),
        "boxes": len(annotation.boxes or []),
        "unsure": annotation.unsure,
        "status": annotation.status,
    }


def save_read(
    store: Store,
    actor: Actor,
    image_id: int,
    label: str | None = None,
    *,
    labels: Sequence[str] = (),
    boxes: Sequence[dict[str, Any]] = (),
    unsure: bool = False,
    comment: str = "",
) -> None:
    """Record ``actor``'s read of an image (replacing their earlier one; a read that was sent
    back becomes submitted again)."""
    require(actor, "annotator", "label images")
    if label is None and not labels and not boxes:
        raise MedreviewError("choose a class (or draw a box) before saving")
    with store.db.write() as session:
        image = session.get(Image, image_id)
        if image is None:
            raise NotFoundError(f"image {image_id} does not exist")
        active = {row.name: row for row in session.scalars(select(LabelClass).where(LabelClass.active.is_(True)))}
        for name in [label, *labels] if label is not None else list(labels):
            if name not in active:
                raise MedreviewError(f"'{name}' is not a class of this project's label schema")
        checked_boxes = _check_boxes(boxes, image, set(active))
        reader_id = user_id(session, actor.username)
        previous = session.scalar(
            select(Annotation).where(Annotation.image_id == image_id, Annotation.reader_id == reader_id)
        )
        old = _read_value(previous, previous.label_class.name if previous and previous.label_class else None)
        now = utcnow()
        values = {
            "label_class_id": active[label].id if label is not None else None,
            "labels": sorted(set(labels)),
            "boxes": checked_boxes,
            "unsure": unsure,
            "comment": comment,
            "status": "submitted",
            "updated_at": now,
        }
        upsert(
            session,
            Annotation,
            {"image_id": image_id, "reader_id": reader_id, "created_at": now, **values},
            conflict_columns=["image_id", "reader_id"],
            update_columns=list(values),
        )
        new = {"label": label, "labels": values["labels"], "boxes": len(checked_boxes), "unsure": unsure}
        if old is not None and (old["label"], old["labels"]) != (label, values["labels"]):
            # An approval was of the class the reader had then; a changed read needs review again.
            # (An adjudication stands: it is the reviewer's own decision, not the reader's.)
            clear_approval(session, image_id)
        action = "label.create" if previous is None else "label.change"
        record(session, actor.username, action, "image", image_id, old=old, new=new)


def clear_approval(session: Session, image_id: int) -> None:
    """Drop an image's final label when it came from approving a read that has since changed."""
    session.execute(delete(FinalLabel).where(FinalLabel.image_id == image_id, FinalLabel.method == "approved"))


def reads_table(store: Store, include_rejected: bool = False) -> pd.DataFrame:
    """Every read: annotation_id, image_id, reader, label, labels, boxes, unsure, comment, status,
    review_comment, updated_at. (Access rules are the caller's: see ``review.image_reads``.)"""
    query = (
        select(
            Annotation.id.label("annotation_id"),
            Annotation.image_id,
            User.username.label("reader"),
            LabelClass.name.label("label"),
            Annotation.labels,
            Annotation.boxes,
            Annotation.unsure,
            Annotation.comment,
            Annotation.status,
            Annotation.review_comment,
            Annotation.updated_at,
        )
        .join(User, User.id == Annotation.reader_id)
        .outerjoin(LabelClass, LabelClass.id == Annotation.label_class_id)
        .order_by(Annotation.image_id, Annotation.id)
    )
    if not include_rejected:
        query = query.where(Annotation.status != "rejected")
    with store.db.read() as session:
        rows = session.execute(query).mappings().all()
    return pd.DataFrame(rows, columns=list(query.selected_columns.keys()))


def image_facts(store: Store) -> pd.DataFrame:
    """One row per stored image: image_id, patient_key, original_filename, sha256, source_sha256,
    media_type, rows, columns (the keys labels are joined to, exported with and imported by)."""
    query = (
        select(
            Image.id.label("image_id"),
            Patient.patient_key,
            Image.original_filename,
            Image.sha256,
            Image.source_sha256,
            Image.media_type,
            Image.rows,
            Image.columns,
        )
        .join(Series, Series.id == Image.series_id)
        .join(Study, Study.id == Series.study_id)
        .join(Patient, Patient.id == Study.patient_id)
    )
    with store.db.read() as session:
        return pd.DataFrame(session.execute(query).mappings().all(), columns=list(query.selected_columns.keys()))


def current_labels(store: Store, source: str = "final") -> pd.DataFrame:
    """The label of each labelled image: image_id, label, method, patient_key, original_filename,
    sha256, media_type, rows, columns.

    ``source="final"``: one row per image: its adjudicated/approved final label, else the class
    all its non-rejected reads agree on ("unanimous"); images whose readers disagree are left out.
    ``source="all"``: one row per non-rejected single-choice read (an image may appear more than
    once, with different labels).
    """
    if source not in LABEL_SOURCES:
        raise MedreviewError(f"unknown label source '{source}' (choose one of {', '.join(LABEL_SOURCES)})")
    reads = reads_table(store)
    reads = reads[reads["label"].notna()]
    if source == "all":
        labelled = reads[["image_id", "label"]].assign(method="read")
    else:
        with store.db.read() as session:
            decided = pd.DataFrame(
                session.execute(
                    select(FinalLabel.image_id, LabelClass.name.label("label"), FinalLabel.method).join(
                        LabelClass, LabelClass.id == FinalLabel.label_class_id
                    )
                )
                .mappings()
                .all(),
                columns=["image_id", "label", "method"],
            )
        per_image = reads.groupby("image_id")["label"].agg(lambda labels: set(labels))
        unanimous = per_image[per_image.map(len) == 1].map(lambda labels: next(iter(labels)))
        agreed = pd.DataFrame({"image_id": unanimous.index, "label": unanimous.values, "method": "unanimous"})
        agreed = agreed[~agreed["image_id"].isin(decided["image_id"])]
        labelled = pd.concat([decided, agreed], ignore_index=True)
    table = labelled.merge(image_facts(store), on="image_id", how="inner")
    columns = [
        "image_id",
        "label",
        "method",
        "patient_key",
        "original_filename",
        "sha256",
        "media_type",
        "rows",
        "columns",
    ]
    return table[columns].sort_values("image_id", kind="stable").reset_index(drop=True)


# --- worklists ----------------------------------------------------------------------------------


def _assigned_ids(session: Session, reader_id: int) -> set[int] | None:
    """Image ids on the reader's personal worklist, or None when nothing is assigned to them
    (then every image is on it)."""
    ids = set(session.scalars(select(Assignment.image_id).where(Assignment.reader_id == reader_id)))
    return ids or None


def worklist(
    store: Store,
    actor: Actor,
    status: str = "all",
    label: str | None = None,
    modality: str | None = None,
) -> pd.DataFrame:
    """The actor's worklist, oldest first: image_id, file, modality, patient, rows, columns, frames,
    label (the actor's own read: never other readers'), status (of the actor's read).

    When images are assigned to the actor, the list holds those only. ``status``: all |
    unlabelled (no read by the actor) | labelled (read by the actor) | returned (sent back).
    """
    if status not in WORKLIST_FILTERS:
        raise MedreviewError(f"unknown worklist filter '{status}'")
    with store.db.read() as session:
        reader_id = user_id(session, actor.username)
        assigned = _assigned_ids(session, reader_id)
        own = (
            select(Annotation.image_id, Annotation.label_class_id, Annotation.status, Annotation.unsure)
            .where(Annotation.reader_id == reader_id)
            .subquery()
        )
        query = (
            select(
                Image.id.label("image_id"),
                Image.original_filename.label("file"),
                Series.modality,
                Patient.patient_key.label("patient"),
                Image.rows,
                Image.columns,
                Image.number_of_frames.label("frames"),
                LabelClass.name.label("label"),
                own.c.status,
            )
            .join(Series, Series.id == Image.series_id)
            .join(Study, Study.id == Series.study_id)
            .join(Patient, Patient.id == Study.patient_id)
            .outerjoin(own, own.c.image_id == Image.id)
            .outerjoin(LabelClass, LabelClass.id == own.c.label_class_id)
            .order_by(Image.id)
        )
        if assigned is not None:
            query = query.where(Image.id.in_(assigned))
        if status == "unlabelled":
            query = query.where(own.c.image_id.is_(None))
        elif status == "labelled":
            query = query.where(own.c.image_id.is_not(None))
        elif status == "returned":
            query = query.where(own.c.status == "returned")
        if label:
            query = query.where(LabelClass.name == label)
        if modality:
            query = query.where(Series.modality == modality)
        rows = session.execute(query).mappings().all()
    return pd.DataFrame(rows, columns=list(query.selected_columns.keys()))


def next_image_id(store: Store, actor: Actor, after_image_id: int | None = None) -> int | None:
    """The next image on the actor's worklist they have not read (or that was sent back to them),
    after ``after_image_id`` and wrapping round; None when they are done."""
    todo = worklist(store, actor, status="unlabelled")
    returned = worklist(store, actor, status="returned")
    ids = sorted(set(todo["image_id"]) | set(returned["image_id"]))
    if not ids:
        return None
    if after_image_id is not None:
        later = [image_id for image_id in ids if image_id > after_image_id]
        if later:
            return int(later[0])
    return int(ids[0])


def modalities(store: Store) -> list[str]:
    with store.db.read() as session:
        return list(session.scalars(select(Series.modality).distinct().order_by(Series.modality)))
