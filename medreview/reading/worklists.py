"""Worklists: the images a reader has to read, filtered and ordered, and the next one to open.

A worklist is personal: when images are assigned to a reader it holds those only, and its
filters speak of the reader's own reads ("read by me"), never of other readers' labels (blinding).
Whether an image is *labelled* for the project is defined once, in :mod:`medreview.reading.reads`.

The list is in image id order (upload order). A :class:`WorklistFilter` (status, my label,
modality) decides which images are on it, and the same filter drives everything built on the list:
a page of rows, the counts, the position of an image ("image 3 of 120"), and the next image to open
after a save, so a reader who chose "CR" never gets a DX image as "next". Everything is computed in
SQL (LIMIT/OFFSET, COUNT, ``id > ?``), never by loading the whole list: at 20,000 images the next
image is one indexed query (the reader's own read of each image is found through the
``(image_id, reader_id)`` unique index, the images walked in primary-key order).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import pandas as pd
from sqlalchemy import Select, and_, case, func, select
from sqlalchemy.orm import Session

from medreview.errors import MedreviewError
from medreview.reading.reads import user_id
from medreview.store import Store
from medreview.store.models import Annotation, Assignment, Image, LabelClass, Patient, Series, Study
from medreview.team.roles import Actor

__all__ = [
    "WORKLIST_COLUMNS",
    "WORKLIST_FILTERS",
    "WorklistFilter",
    "following_image_ids",
    "list_position",
    "modalities",
    "next_image_id",
    "worklist",
    "worklist_counts",
    "worklist_page",
]

# status filter -> what the Label page calls it; "todo" (the default) is what is left to do.
WORKLIST_FILTERS = {
    "todo": "To do",
    "unread": "Not read by me",
    "read": "Read by me",
    "returned": "Returned to me",
    "all": "All",
}
WORKLIST_COLUMNS = ["image_id", "file", "modality", "patient", "rows", "columns", "frames", "label", "status"]


@dataclass(frozen=True)
class WorklistFilter:
    """Which images of the reader's worklist are listed.

    ``status``: todo (not read by me, or my read was sent back to me) | unread (no read by me) |
    read (read by me) | returned (my read was sent back) | all. ``label``: the class of my own
    read (never another reader's). ``modality``: the series modality (CT, CR, DX, OT, ...).
    """

    status: str = "todo"
    label: str | None = None
    modality: str | None = None

    def __post_init__(self) -> None:
        if self.status not in WORKLIST_FILTERS:
            raise MedreviewError(
                f"unknown worklist filter '{self.status}' (choose one of {', '.join(WORKLIST_FILTERS)})"
            )


def _is_assigned_work(session: Session, reader_id: int) -> bool:
    """Whether images are assigned to the reader (then their worklist holds those only)."""
    return session.scalar(select(Assignment.id).where(Assignment.reader_id == reader_id).limit(1)) is not None


def _filtered(
    session: Session, actor: Actor, worklist_filter: WorklistFilter, *columns: Any, with_series: bool = False
) -> Select[Any]:
    """SELECT ``columns`` FROM the actor's filtered worklist, unordered.

    The actor's own read of each image is outer-joined on (image_id, reader_id), the key of a
    unique index, so each image costs one index lookup and annotations are never scanned. The
    series is joined for the modality filter or when ``with_series`` (columns of it are wanted).
    """
    reader_id = user_id(session, actor.username)
    own_read = and_(Annotation.image_id == Image.id, Annotation.reader_id == reader_id)
    query = select(*columns).select_from(Image).outerjoin(Annotation, own_read)
    if _is_assigned_work(session, reader_id):
        query = query.join(Assignment, and_(Assignment.image_id == Image.id, Assignment.reader_id == reader_id))
    status = worklist_filter.status
    if status == "todo":
        query = query.where((Annotation.id.is_(None)) | (Annotation.status == "returned"))
    elif status == "unread":
        query = query.where(Annotation.id.is_(None))
    elif status == "read":
        query = query.where(Annotation.id.is_not(None))
    elif status == "returned":
        query = query.where(Annotation.status == "returned")
    if worklist_filter.label:
        label_class_id = select(LabelClass.id).where(LabelClass.name == worklist_filter.label).scalar_subquery()
        query = query.where(Annotation.label_class_id == label_class_id)
    if worklist_filter.modality or with_series:
        query = query.join(Series, Series.id == Image.series_id)
    if worklist_filter.modality:
        query = query.where(Series.modality == worklist_filter.modality)
    return query


def _rows_query(session: Session, actor: Actor, worklist_filter: WorklistFilter) -> Select[Any]:
    """The list's rows (WORKLIST_COLUMNS) in list order."""
    query = _filtered(
        session,
        actor,
        worklist_filter,
        Image.id.label("image_id"),
        Image.display_name.label("file"),
        Series.modality,
        Patient.patient_key.label("patient"),
        Image.rows,
        Image.columns,
        Image.number_of_frames.label("frames"),
        LabelClass.name.label("label"),
        Annotation.status,
        with_series=True,
    )
    return (
        query.join(Study, Study.id == Series.study_id)
        .join(Patient, Patient.id == Study.patient_id)
        .outerjoin(LabelClass, LabelClass.id == Annotation.label_class_id)
        .order_by(Image.id)
    )


def _frame(session: Session, query: Select[Any]) -> pd.DataFrame:
    return pd.DataFrame(session.execute(query).mappings().all(), columns=WORKLIST_COLUMNS)


def worklist_page(
    store: Store, actor: Actor, worklist_filter: WorklistFilter, offset: int = 0, limit: int = 50
) -> tuple[pd.DataFrame, int]:
    """One page of the actor's filtered worklist and the list's length.

    The page holds the rows ``offset`` to ``offset + limit - 1`` in list order (image id
    ascending), with columns image_id, file, modality, patient, rows, columns, frames, label (the
    actor's own read), status (of that read; None when unread). Both the page and the total are
    computed by the database (LIMIT/OFFSET and COUNT)."""
    if offset < 0 or limit < 1:
        raise ValueError(f"a worklist page needs offset >= 0 and limit >= 1, got offset={offset}, limit={limit}")
    with store.db.read() as session:
        total = session.scalar(_filtered(session, actor, worklist_filter, func.count(Image.id))) or 0
        page = _frame(session, _rows_query(session, actor, worklist_filter).offset(offset).limit(limit))
    return page, int(total)


def worklist_counts(store: Store, actor: Actor, worklist_filter: WorklistFilter = WorklistFilter()) -> dict[str, int]:
    """How many images each status filter would list, under ``worklist_filter``'s label and
    modality filters (its status is ignored): {"todo", "unread", "read", "returned", "all"}."""
    everything = WorklistFilter("all", worklist_filter.label, worklist_filter.modality)
    unread = case((Annotation.id.is_(None), 1), else_=0)
    returned = case((Annotation.status == "returned", 1), else_=0)
    with store.db.read() as session:
        query = _filtered(
            session,
            actor,
            everything,
            func.count(Image.id),
            func.count(Annotation.id),
            func.coalesce(func.sum(unread), 0),
            func.coalesce(func.sum(returned), 0),
        )
        total, read, not_read, sent_back = session.execute(query).one()
    return {
        "todo": int(not_read) + int(sent_back),
        "unread": int(not_read),
        "read": int(read),
        "returned": int(sent_back),
        "all": int(total),
    }


def following_image_ids(
    store: Store, actor: Actor, worklist_filter: WorklistFilter, after_image_id: int | None, limit: int
) -> list[int]:
    """The next ``limit`` images of the filtered list strictly after ``after_image_id`` in list
    order (from the start when None), without wrapping round. ``after_image_id`` need not be on
    the list (it may have just left it, e.g. by being read): the list continues after its place."""
    if limit < 1:
        raise ValueError(f"limit must be at least 1, got {limit}")
    with store.db.read() as session:
        query = _filtered(session, actor, worklist_filter, Image.id)
        if after_image_id is not None:
            query = query.where(Image.id > after_image_id)
        return [int(image_id) for image_id in session.scalars(query.order_by(Image.id).limit(limit))]


def next_image_id(
    store: Store,
    actor: Actor,
    worklist_filter: WorklistFilter = WorklistFilter(),
    after_image_id: int | None = None,
) -> int | None:
    """The next image of the filtered list after ``after_image_id``, wrapping round to the start
    (so it may be ``after_image_id`` itself when that is the only image left); None when the
    list is empty. The default filter is what is left to do: images not read by the actor or
    sent back to them."""
    following = following_image_ids(store, actor, worklist_filter, after_image_id, 1)
    if not following and after_image_id is not None:
        following = following_image_ids(store, actor, worklist_filter, None, 1)
    return following[0] if following else None


def list_position(store: Store, actor: Actor, worklist_filter: WorklistFilter, image_id: int) -> int | None:
    """The 0-based place of ``image_id`` in the filtered list ("image 3 of 120" is position 2),
    or None when the image is not on it (never was, or has just left it)."""
    with store.db.read() as session:
        on_list = session.scalar(_filtered(session, actor, worklist_filter, Image.id).where(Image.id == image_id))
        if on_list is None:
            return None
        before = _filtered(session, actor, worklist_filter, func.count(Image.id)).where(Image.id < image_id)
        return int(session.scalar(before) or 0)


def worklist(
    store: Store,
    actor: Actor,
    status: str = "all",
    label: str | None = None,
    modality: str | None = None,
) -> pd.DataFrame:
    """The actor's whole filtered worklist (see :func:`worklist_page` for the columns). For
    small lists and scripts: a page should show :func:`worklist_page`."""
    worklist_filter = WorklistFilter(status, label, modality)
    with store.db.read() as session:
        return _frame(session, _rows_query(session, actor, worklist_filter))


def modalities(store: Store) -> list[str]:
    """The modalities of the stored series, for the modality filter."""
    with store.db.read() as session:
        return list(session.scalars(select(Series.modality).distinct().order_by(Series.modality)))
