"""Labelling: the label schema, reads (annotations), and the worklist.

A read is one reader's label for one image; saving again replaces that reader's label. The label
an image "has" (for the worklist, training and export) is its most recent read.
"""

from __future__ import annotations

import pandas as pd
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from medreview.db import upsert
from medreview.errors import MedreviewError, NotFoundError
from medreview.models import Annotation, Image, LabelClass, Patient, Series, Study, User, utcnow
from medreview.store import LOCAL_USER, Store

__all__ = [
    "WORKLIST_FILTERS",
    "add_label_class",
    "current_labels",
    "label_classes",
    "modalities",
    "next_image_id",
    "rename_label_class",
    "save_label",
    "set_label_class_active",
    "worklist",
]

WORKLIST_FILTERS = ("all", "unlabelled", "labelled")


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


def add_label_class(store: Store, name: str) -> str:
    cleaned = _clean_name(name)
    with store.db.write() as session:
        existing = session.scalar(select(LabelClass).where(LabelClass.name == cleaned))
        if existing is not None:
            if existing.active:
                raise MedreviewError(f"class '{cleaned}' already exists")
            existing.active = True
            return cleaned
        position = (session.scalar(select(func.max(LabelClass.position))) or 0) + 1
        session.add(LabelClass(name=cleaned, position=position))
    return cleaned


def rename_label_class(store: Store, old_name: str, new_name: str) -> str:
    cleaned = _clean_name(new_name)
    with store.db.write() as session:
        row = session.scalar(select(LabelClass).where(LabelClass.name == old_name))
        if row is None:
            raise NotFoundError(f"no class named '{old_name}'")
        if cleaned != old_name and session.scalar(select(LabelClass).where(LabelClass.name == cleaned)):
            raise MedreviewError(f"class '{cleaned}' already exists")
        row.name = cleaned
    return cleaned


def set_label_class_active(store: Store, name: str, active: bool) -> None:
    """Retire (or restore) a class. Retiring keeps existing labels; it only stops new ones."""
    with store.db.write() as session:
        row = session.scalar(select(LabelClass).where(LabelClass.name == name))
        if row is None:
            raise NotFoundError(f"no class named '{name}'")
        row.active = active


# --- reads --------------------------------------------------------------------------------------


def _user_id(session: Session, username: str) -> int:
    user_id = session.scalar(select(User.id).where(User.username == username))
    if user_id is None:
        raise NotFoundError(f"no user named '{username}'")
    return user_id


def save_label(
    store: Store,
    image_id: int,
    class_name: str,
    reader: str = LOCAL_USER,
    unsure: bool = False,
    comment: str = "",
) -> None:
    """Record ``reader``'s label for an image (replacing their earlier one)."""
    with store.db.write() as session:
        if session.get(Image, image_id) is None:
            raise NotFoundError(f"image {image_id} does not exist")
        label = session.scalar(select(LabelClass).where(LabelClass.name == class_name, LabelClass.active.is_(True)))
        if label is None:
            raise MedreviewError(f"'{class_name}' is not a class of this project's label schema")
        reader_id = _user_id(session, reader)
        now = utcnow()
        upsert(
            session,
            Annotation,
            {
                "image_id": image_id,
                "reader_id": reader_id,
                "label_class_id": label.id,
                "unsure": unsure,
                "comment": comment,
                "status": "submitted",
                "created_at": now,
                "updated_at": now,
            },
            conflict_columns=["image_id", "reader_id"],
            update_columns=["label_class_id", "unsure", "comment", "status", "updated_at"],
        )


def _latest_read_subquery():  # type: ignore[no-untyped-def]
    ranked = select(
        Annotation.image_id,
        Annotation.label_class_id,
        Annotation.unsure,
        Annotation.updated_at,
        func.row_number()
        .over(partition_by=Annotation.image_id, order_by=(Annotation.updated_at.desc(), Annotation.id.desc()))
        .label("rank"),
    ).subquery()
    return select(ranked).where(ranked.c.rank == 1).subquery()


def current_labels(store: Store) -> pd.DataFrame:
    """One row per labelled image: image_id, label, patient_key, original_filename, sha256."""
    latest = _latest_read_subquery()
    query = (
        select(
            Image.id.label("image_id"),
            LabelClass.name.label("label"),
            Patient.patient_key,
            Image.original_filename,
            Image.sha256,
            Image.media_type,
            Image.rows,
            Image.columns,
            latest.c.unsure,
            latest.c.updated_at.label("labelled_at"),
        )
        .join(latest, latest.c.image_id == Image.id)
        .join(LabelClass, LabelClass.id == latest.c.label_class_id)
        .join(Series, Series.id == Image.series_id)
        .join(Study, Study.id == Series.study_id)
        .join(Patient, Patient.id == Study.patient_id)
        .order_by(Image.id)
    )
    with store.db.read() as session:
        return pd.DataFrame(session.execute(query).mappings().all(), columns=list(query.selected_columns.keys()))


def worklist(store: Store, status: str = "all", label: str | None = None, modality: str | None = None) -> pd.DataFrame:
    """Images for the label page, oldest first: id, file, modality, patient, size, label."""
    if status not in WORKLIST_FILTERS:
        raise MedreviewError(f"unknown worklist filter '{status}'")
    latest = _latest_read_subquery()
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
            latest.c.unsure,
        )
        .join(Series, Series.id == Image.series_id)
        .join(Study, Study.id == Series.study_id)
        .join(Patient, Patient.id == Study.patient_id)
        .outerjoin(latest, latest.c.image_id == Image.id)
        .outerjoin(LabelClass, LabelClass.id == latest.c.label_class_id)
        .order_by(Image.id)
    )
    if status == "unlabelled":
        query = query.where(latest.c.image_id.is_(None))
    elif status == "labelled":
        query = query.where(latest.c.image_id.is_not(None))
    if label:
        query = query.where(LabelClass.name == label)
    if modality:
        query = query.where(Series.modality == modality)
    with store.db.read() as session:
        return pd.DataFrame(session.execute(query).mappings().all(), columns=list(query.selected_columns.keys()))


def next_image_id(store: Store, after_image_id: int | None = None) -> int | None:
    """The next unlabelled image after ``after_image_id`` (wrapping round), or None when done."""
    latest = _latest_read_subquery()
    query = select(Image.id).outerjoin(latest, latest.c.image_id == Image.id).where(latest.c.image_id.is_(None))
    with store.db.read() as session:
        if after_image_id is not None:
            later = session.scalar(query.where(Image.id > after_image_id).order_by(Image.id).limit(1))
            if later is not None:
                return later
        return session.scalar(query.order_by(Image.id).limit(1))


def modalities(store: Store) -> list[str]:
    with store.db.read() as session:
        return list(session.scalars(select(Series.modality).distinct().order_by(Series.modality)))
