"""Worklists: the images a reader has to read, filtered and ordered, and the next one to open.

A worklist is personal: when images are assigned to a reader it holds those only, and its
filters speak of the reader's own reads ("read by me"), never of other readers' labels (blinding).
Whether an image is *labelled* for the project is defined once, in :mod:`medreview.reading.reads`.
"""

from __future__ import annotations

import pandas as pd
from sqlalchemy import select
from sqlalchemy.orm import Session

from medreview.errors import MedreviewError
from medreview.reading.reads import user_id
from medreview.store import Store
from medreview.store.models import Annotation, Assignment, Image, LabelClass, Patient, Series, Study
from medreview.team.roles import Actor

__all__ = ["WORKLIST_FILTERS", "modalities", "next_image_id", "worklist"]

# filter -> what the Label page calls it
WORKLIST_FILTERS = {"all": "All", "unread": "Not read by me", "read": "Read by me", "returned": "Returned to me"}


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
    unread (no read by the actor) | read (read by the actor) | returned (sent back to the actor).
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
                Image.display_name.label("file"),
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
        if status == "unread":
            query = query.where(own.c.image_id.is_(None))
        elif status == "read":
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
    todo = worklist(store, actor, status="unread")
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
