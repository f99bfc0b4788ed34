"""Worklists: the images a reader has to read, filtered and ordered, and the next one to open.

A worklist is personal: when images are assigned to a reader it holds those only, and its
filters speak of the reader's own reads ("read by me"), never of other readers' labels (blinding).
Whether an image is *labelled* for the project is defined once, in :mod:`medreview.reading.reads`.

A :class:`WorklistFilter` (status, my label, modality, a search text and a sort order) decides which
images are on the list and in what order, and the same filter drives everything built on the list: a
page of rows, the counts, the position of an image ("image 3 of 120"), and the next image to open
after a save, so a reader who chose "CR" never gets a DX image as "next", and a reader who sorted
by patient moves through the patients in the order the table shows. Everything is computed in SQL
(LIMIT/OFFSET, COUNT, keyset comparisons such as ``id > ?``), never by loading the whole list: at
20,000 images the next image in upload order is one indexed query (the reader's own read of each
image is found through the ``(scope, case_id, reader_id)`` unique index, the images walked in
primary-key order; a study or series read, kept at its case's key image, is not a read of that image).

When the project has study- or series-scoped classes the reader reads *cases*: a
:class:`CaseWorklist` (the scope and the same :class:`WorklistFilter`) lists studies or series,
one row per case, with the same counts, pages, position and "next" (``case_*`` functions below), the
reader's read of a case found by the same unique index at the case's scope.

The default order is upload order (image id). The other orders (patient, study date, modality,
status) end with the image id, so every order is total and "after this image" always means one place.
An assignment may carry a place of its own (``list_place``, standing where its image id would):
gold-standard cases are placed among the reader's ordinary cases that way
(:func:`medreview.reading.studies.mix_gold`), so evaluation-set images, usually the oldest, do not
sit together at the top of the list. A list with a placed case is ordered by (place, image id) where
the others order by the image id; a list without one keeps its order and its queries. Nothing the
list sends (its columns, counts, position) says whether a case has a place or why.
An image that leaves the list (it was just read) keeps its place in the orders of patient, study
date and modality; under the status order its place moves with its new status.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import pandas as pd
from sqlalchemy import ColumnElement, Select, and_, case, func, or_, select
from sqlalchemy.orm import Session

from medreview.errors import MedreviewError
from medreview.reading.reads import user_id
from medreview.store import Store
from medreview.store.models import Annotation, Assignment, Image, LabelClass, Patient, Series, Study
from medreview.team.roles import Actor

__all__ = [
    "CASE_WORKLIST_COLUMNS",
    "WORKLIST_COLUMNS",
    "WORKLIST_FILTERS",
    "WORKLIST_SORTS",
    "CaseWorklist",
    "WorklistFilter",
    "case_list_position",
    "case_worklist",
    "case_worklist_counts",
    "case_worklist_page",
    "following_case_ids",
    "following_image_ids",
    "list_position",
    "modalities",
    "next_case_id",
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
# sort -> what the Label page calls it. Every order ends with the image id (upload order).
WORKLIST_SORTS = {
    "list": "Worklist order",
    "patient": "Patient",
    "study_date": "Study date, newest first",
    "modality": "Modality",
    "status": "My read's status",
}
WORKLIST_COLUMNS = [
    "image_id",
    "file",
    "modality",
    "patient",
    "study_date",
    "study",
    "series",
    "rows",
    "columns",
    "frames",
    "label",
    "status",
]
# The longest search text taken: a search box, not a query language.
MAX_SEARCH_CHARS = 100
# The reader's own read under the status order: sent back to me first (it waits on me), then not
# read, then read (submitted, then what the reviewer decided). Unknown statuses go last.
_STATUS_RANKS = {"returned": 0, "submitted": 2, "rejected": 3, "overruled": 4, "approved": 5}
_UNREAD_RANK = 1


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
    search: str = ""
    sort: str = "list"

    def __post_init__(self) -> None:
        if self.status not in WORKLIST_FILTERS:
            raise MedreviewError(
                f"unknown worklist filter '{self.status}' (choose one of {', '.join(WORKLIST_FILTERS)})"
            )
        if self.sort not in WORKLIST_SORTS:
            raise MedreviewError(f"unknown worklist order '{self.sort}' (choose one of {', '.join(WORKLIST_SORTS)})")
        if len(self.search) > MAX_SEARCH_CHARS:
            raise MedreviewError(f"the search text is too long: at most {MAX_SEARCH_CHARS} characters")
        object.__setattr__(self, "search", " ".join(self.search.split()))

    @property
    def search_terms(self) -> list[str]:
        """The words searched for: an image is listed when each word is found in its patient
        pseudonym, study (date, description), file name, modality or series description."""
        return self.search.split()

    @property
    def needs_hierarchy(self) -> bool:
        """Whether the search or the order reads the image's series, study or patient."""
        return bool(self.search) or self.sort in ("patient", "study_date", "modality")


def _is_assigned_work(session: Session, reader_id: int) -> bool:
    """Whether images are assigned to the reader (then their worklist holds those only)."""
    return session.scalar(select(Assignment.id).where(Assignment.reader_id == reader_id).limit(1)) is not None


@dataclass(frozen=True)
class _ReaderList:
    """Whose worklist it is and how it is made: ``assigned``, images are assigned to the reader (the
    list holds those only); ``placed``, one of those assignments has a place of its own (the list
    runs in place order, see the module docstring)."""

    reader_id: int
    assigned: bool
    placed: bool


def _reader_list(session: Session, actor: Actor) -> _ReaderList:
    reader_id = user_id(session, actor.username)
    assigned = _is_assigned_work(session, reader_id)
    # One seek of the (reader_id, list_place) index; asked only of an assigned list.
    placed = assigned and (
        session.scalar(
            select(Assignment.id).where(Assignment.reader_id == reader_id, Assignment.list_place.is_not(None)).limit(1)
        )
        is not None
    )
    return _ReaderList(reader_id, assigned, placed)


def _status_rank() -> ColumnElement[int]:
    """The place of the reader's own read (outer-joined) under the status order."""
    ranks = [(Annotation.status == status, rank) for status, rank in _STATUS_RANKS.items()]
    return case((Annotation.id.is_(None), _UNREAD_RANK), *ranks, else_=len(_STATUS_RANKS) + 1)


def _sort_keys(sort: str, placed: bool = False) -> list[tuple[ColumnElement[Any], bool]]:
    """The expressions a list is ordered by, each with whether it runs descending; never NULL
    (keyset comparisons need a value) and ending with the image id (so the order is total). On a
    ``placed`` list (the assignment joined) the image id is preceded by the case's place, its image
    id when it has none."""
    if sort == "patient":
        keys: list[tuple[ColumnElement[Any], bool]] = [(Patient.patient_key, False)]
    elif sort == "study_date":
        # Newest first, undated ("") last; the images of one study together.
        keys = [(func.coalesce(Study.study_date, ""), True), (Study.id, False)]
    elif sort == "modality":
        keys = [(Series.modality, False)]
    elif sort == "status":
        keys = [(_status_rank(), False)]
    else:
        keys = []
    if placed:
        keys.append((func.coalesce(Assignment.list_place, Image.id), False))
    return [*keys, (Image.id, False)]


def _beyond(keys: list[tuple[ColumnElement[Any], bool]], anchor: tuple[Any, ...], later: bool) -> ColumnElement[bool]:
    """Rows strictly after (``later``) or strictly before ``anchor``'s place in the order ``keys``:
    the first key that differs decides (a lexicographic comparison spelled out, so keys may run in
    different directions)."""
    alternatives = []
    for index, (key, descending) in enumerate(keys):
        value = anchor[index]
        ahead = (key < value) if descending == later else (key > value)
        alternatives.append(and_(*[k == v for (k, _), v in zip(keys[:index], anchor, strict=False)], ahead))
    return or_(*alternatives) if len(alternatives) > 1 else alternatives[0]


def _search_condition(terms: list[str], like_ignores_case: bool) -> ColumnElement[bool]:
    """Each word found in one of the image's searchable facts (case-insensitive, ``%`` and ``_``
    taken literally). A word of digits and date separators ("2024-03") is also looked for in the
    study date, which the store keeps as YYYYMMDD.

    ``like_ignores_case``: SQLite's LIKE already ignores the case of ASCII letters (and its lower()
    knows no others), so a plain LIKE does there what ILIKE does on PostgreSQL, at half the cost of
    lower() on both sides (two words on 20,000 images: 28 ms instead of 52). One LIKE per fact:
    the database stops at the first fact that matches (one LIKE over the facts joined into one
    text was no faster)."""
    conditions = []
    for term in terms:
        fields = (Patient.patient_key, Image.display_name, Series.modality, Series.description, Study.description)
        if like_ignores_case:
            found = [field.contains(term, autoescape=True) for field in fields]
        else:
            found = [field.icontains(term, autoescape=True) for field in fields]
        digits = term.replace("-", "").replace("/", "").replace(".", "")
        if digits.isdigit():
            found.append(Study.study_date.contains(digits, autoescape=True))
        conditions.append(or_(*found))
    return and_(*conditions)


def _images(reader_id: int, *columns: Any, series: bool = False, hierarchy: bool = False) -> Select[Any]:
    """SELECT ``columns`` FROM images with the reader's own read outer-joined on (image_id,
    reader_id), the key of a unique index, so each image costs one index lookup and annotations
    are never scanned; the series (``series``), or the series, study and patient (``hierarchy``)
    joined."""
    own_read = and_(Annotation.scope == "image", Annotation.case_id == Image.id, Annotation.reader_id == reader_id)
    query = select(*columns).select_from(Image).outerjoin(Annotation, own_read)
    if series or hierarchy:
        query = query.join(Series, Series.id == Image.series_id)
    if hierarchy:
        query = query.join(Study, Study.id == Series.study_id).join(Patient, Patient.id == Study.patient_id)
    return query


def _filtered(
    session: Session,
    reader_list: _ReaderList,
    worklist_filter: WorklistFilter,
    *columns: Any,
    with_hierarchy: bool = False,
) -> Select[Any]:
    """SELECT ``columns`` FROM the reader's filtered worklist, unordered.

    The series is joined for the modality filter, and the study and patient too for the search,
    an order that reads them, or when ``with_hierarchy`` (columns of them are wanted)."""
    reader_id = reader_list.reader_id
    hierarchy = with_hierarchy or worklist_filter.needs_hierarchy
    query = _images(reader_id, *columns, series=bool(worklist_filter.modality), hierarchy=hierarchy)
    if reader_list.assigned:
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
    if worklist_filter.modality:
        query = query.where(Series.modality == worklist_filter.modality)
    if worklist_filter.search_terms:
        like_ignores_case = session.get_bind().dialect.name == "sqlite"
        query = query.where(_search_condition(worklist_filter.search_terms, like_ignores_case))
    return query


def _ordered(query: Select[Any], reader_list: _ReaderList, worklist_filter: WorklistFilter) -> Select[Any]:
    keys = _sort_keys(worklist_filter.sort, reader_list.placed)
    return query.order_by(*(key.desc() if descending else key for key, descending in keys))


def _anchor(
    session: Session, reader_list: _ReaderList, worklist_filter: WorklistFilter, image_id: int
) -> tuple[Any, ...] | None:
    """The values of ``image_id``'s sort keys, whether or not it is on the list (an image just read
    has left a "to do" list and the list goes on after its place); None for no such image."""
    keys = _sort_keys(worklist_filter.sort, reader_list.placed)
    if len(keys) == 1:  # upload order: the image id is the place
        return (image_id,)
    query = _images(reader_list.reader_id, *(key for key, _ in keys), hierarchy=True).where(Image.id == image_id)
    if reader_list.placed:
        # Outer: an image not (or no longer) assigned has no place, and its image id stands for it.
        query = query.outerjoin(
            Assignment, and_(Assignment.image_id == Image.id, Assignment.reader_id == reader_list.reader_id)
        )
    row = session.execute(query.limit(1)).one_or_none()
    return tuple(row) if row is not None else None


def _rows_query(session: Session, reader_list: _ReaderList, worklist_filter: WorklistFilter) -> Select[Any]:
    """The list's rows in list order (WORKLIST_COLUMNS, the series as number and description)."""
    query = _filtered(
        session,
        reader_list,
        worklist_filter,
        Image.id.label("image_id"),
        Image.display_name.label("file"),
        Series.modality,
        Patient.patient_key.label("patient"),
        Study.study_date,
        Study.description.label("study"),
        Series.series_number,
        Series.description.label("series_description"),
        Image.rows,
        Image.columns,
        Image.number_of_frames.label("frames"),
        LabelClass.name.label("label"),
        Annotation.status,
        with_hierarchy=True,
    )
    return _ordered(
        query.outerjoin(LabelClass, LabelClass.id == Annotation.label_class_id), reader_list, worklist_filter
    )


def _study_date_text(study_date: str | None) -> str:
    """YYYYMMDD as 2024-03-01 ("" when the store has none: removed by de-identification). The
    date is the one stored: shifted per patient when the project shifts dates."""
    if not study_date or len(study_date) != 8:
        return ""
    return f"{study_date[:4]}-{study_date[4:6]}-{study_date[6:]}"


def _series_text(series_number: int | None, description: str | None) -> str:
    """ "#2 CT chest axial 1.25 mm": the number and the description filed at import (from coded
    values and geometry when de-identified, never free text)."""
    number = f"#{series_number}" if series_number is not None else ""
    return " ".join(part for part in (number, description or "") if part)


def _frame(session: Session, query: Select[Any]) -> pd.DataFrame:
    rows = []
    for row in session.execute(query).mappings():
        values = dict(row)
        values["study_date"] = _study_date_text(values["study_date"])
        values["series"] = _series_text(values.pop("series_number"), values.pop("series_description"))
        rows.append(values)
    return pd.DataFrame(rows, columns=WORKLIST_COLUMNS)


def worklist_page(
    store: Store,
    actor: Actor,
    worklist_filter: WorklistFilter,
    offset: int = 0,
    limit: int = 50,
    *,
    total: int | None = None,
) -> tuple[pd.DataFrame, int]:
    """One page of the actor's filtered worklist and the list's length.

    The page holds the rows ``offset`` to ``offset + limit - 1`` in list order (the filter's sort,
    image id last), with columns image_id, file, modality, patient (the pseudonym), study_date
    ("YYYY-MM-DD" as stored, "" when none), study (its description), series ("#2 CT chest"),
    rows, columns, frames, label (the actor's own read), status (of that read; None when unread).
    Both the page and the total are computed by the database (LIMIT/OFFSET and COUNT); a caller
    that has just counted the list (:func:`worklist_counts`) passes ``total`` and saves a count."""
    if offset < 0 or limit < 1:
        raise ValueError(f"a worklist page needs offset >= 0 and limit >= 1, got offset={offset}, limit={limit}")
    with store.db.read() as session:
        reader_list = _reader_list(session, actor)
        if total is None:
            total = session.scalar(_filtered(session, reader_list, worklist_filter, func.count(Image.id))) or 0
        page = _frame(session, _rows_query(session, reader_list, worklist_filter).offset(offset).limit(limit))
    return page, int(total)


def worklist_counts(store: Store, actor: Actor, worklist_filter: WorklistFilter = WorklistFilter()) -> dict[str, int]:
    """How many images each status filter would list, under ``worklist_filter``'s label, modality
    and search (its status and order are ignored): {"todo", "unread", "read", "returned", "all"}."""
    everything = WorklistFilter("all", worklist_filter.label, worklist_filter.modality, worklist_filter.search)
    unread = case((Annotation.id.is_(None), 1), else_=0)
    returned = case((Annotation.status == "returned", 1), else_=0)
    with store.db.read() as session:
        query = _filtered(
            session,
            _reader_list(session, actor),
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
    store: Store,
    actor: Actor,
    worklist_filter: WorklistFilter,
    after_image_id: int | None,
    limit: int,
    *,
    include_anchor: bool = False,
) -> list[int]:
    """The next ``limit`` images of the filtered list strictly after ``after_image_id`` in list
    order (from the start when None), without wrapping round. ``after_image_id`` need not be on
    the list (it may have just left it, e.g. by being read): the list continues after its place.
    ``include_anchor``: the image itself first when it is on the list ("at or after")."""
    if limit < 1:
        raise ValueError(f"limit must be at least 1, got {limit}")
    with store.db.read() as session:
        reader_list = _reader_list(session, actor)
        query = _filtered(session, reader_list, worklist_filter, Image.id)
        if after_image_id is not None:
            anchor = _anchor(session, reader_list, worklist_filter, after_image_id)
            if anchor is not None:
                after = _beyond(_sort_keys(worklist_filter.sort, reader_list.placed), anchor, later=True)
                query = query.where(or_(after, Image.id == after_image_id) if include_anchor else after)
        ordered = _ordered(query, reader_list, worklist_filter)
        return [int(image_id) for image_id in session.scalars(ordered.limit(limit))]


def next_image_id(
    store: Store,
    actor: Actor,
    worklist_filter: WorklistFilter = WorklistFilter(),
    after_image_id: int | None = None,
    *,
    include_anchor: bool = False,
) -> int | None:
    """The next image of the filtered list after ``after_image_id`` (or at it, with
    ``include_anchor``), wrapping round to the start (so it may be ``after_image_id`` itself when
    that is the only image left); None when the list is empty. The default filter is what is left
    to do: images not read by the actor or sent back to them."""
    following = following_image_ids(store, actor, worklist_filter, after_image_id, 1, include_anchor=include_anchor)
    if not following and after_image_id is not None:
        following = following_image_ids(store, actor, worklist_filter, None, 1)
    return following[0] if following else None


def list_position(store: Store, actor: Actor, worklist_filter: WorklistFilter, image_id: int) -> int | None:
    """The 0-based place of ``image_id`` in the filtered list ("image 3 of 120" is position 2),
    or None when the image is not on it (never was, or has just left it)."""
    with store.db.read() as session:
        reader_list = _reader_list(session, actor)
        on_list = session.scalar(_filtered(session, reader_list, worklist_filter, Image.id).where(Image.id == image_id))
        if on_list is None:
            return None
        anchor = _anchor(session, reader_list, worklist_filter, image_id)
        if anchor is None:
            return None
        before = _beyond(_sort_keys(worklist_filter.sort, reader_list.placed), anchor, later=False)
        counted = _filtered(session, reader_list, worklist_filter, func.count(Image.id)).where(before)
        return int(session.scalar(counted) or 0)


def worklist(
    store: Store,
    actor: Actor,
    status: str = "all",
    label: str | None = None,
    modality: str | None = None,
    search: str = "",
    sort: str = "list",
) -> pd.DataFrame:
    """The actor's whole filtered worklist (see :func:`worklist_page` for the columns). For
    small lists and scripts: a page should show :func:`worklist_page`."""
    worklist_filter = WorklistFilter(status, label, modality, search, sort)
    with store.db.read() as session:
        return _frame(session, _rows_query(session, _reader_list(session, actor), worklist_filter))


def modalities(store: Store) -> list[str]:
    """The modalities of the stored series, for the modality filter."""
    with store.db.read() as session:
        return list(session.scalars(select(Series.modality).distinct().order_by(Series.modality)))


# --- case worklists -------------------------------------------------------------------------------

CASE_WORKLIST_COLUMNS = [
    "case_id",
    "patient",
    "study_date",
    "prior_studies",
    "study",
    "modality",
    "series",
    "images",
    "label",
    "status",
]
CASE_SCOPES = ("study", "series")


@dataclass(frozen=True)
class CaseWorklist:
    """The reader's worklist of cases at ``scope`` ("study" or "series"), under ``filter``: the
    status, label and order mean what they mean for images, said of the reader's read of the case.
    ``modality``: a study with a series of that modality, a series of it. The search looks in the
    patient pseudonym, the study date and description, and the modality and description of the
    case's series. When cases of this scope are assigned to the reader, the list holds those only."""

    scope: str = "study"
    filter: WorklistFilter = WorklistFilter()

    def __post_init__(self) -> None:
        if self.scope not in CASE_SCOPES:
            raise MedreviewError(f"a case worklist lists studies or series, not '{self.scope}'")

    @property
    def case_column(self) -> Any:
        """The case's id: the study's or the series'."""
        return Study.id if self.scope == "study" else Series.id

    def modality(self) -> ColumnElement[str]:
        """The modality the order sorts by: a study's first modality alphabetically."""
        if self.scope == "series":
            return Series.modality
        first = select(func.min(Series.modality)).where(Series.study_id == Study.id).scalar_subquery()
        return func.coalesce(first, "")


def _case_sort_keys(cases: CaseWorklist) -> list[tuple[ColumnElement[Any], bool]]:
    """As :func:`_sort_keys`, ending with the case id."""
    sort = cases.filter.sort
    if sort == "patient":
        keys: list[tuple[ColumnElement[Any], bool]] = [(Patient.patient_key, False)]
    elif sort == "study_date":
        keys = [(func.coalesce(Study.study_date, ""), True), (Study.id, False)]
    elif sort == "modality":
        keys = [(cases.modality(), False)]
    elif sort == "status":
        keys = [(_status_rank(), False)]
    else:
        keys = []
    return [*keys, (cases.case_column, False)]


def _case_search_condition(cases: CaseWorklist, like_ignores_case: bool) -> ColumnElement[bool]:
    """Each word found in the case's patient pseudonym, study description or date, or the modality
    or description of one of its series (see :func:`_search_condition` for LIKE and the dates)."""
    case_series = Series.__table__.alias("searched_series")
    conditions = []
    for term in cases.filter.search_terms:

        def has(field: Any, term: str = term) -> ColumnElement[bool]:
            return (
                field.contains(term, autoescape=True) if like_ignores_case else field.icontains(term, autoescape=True)
            )

        series_match = or_(has(case_series.c.modality), has(case_series.c.description))
        if cases.scope == "series":
            in_series = or_(has(Series.modality), has(Series.description))
        else:
            in_series = select(case_series.c.id).where(case_series.c.study_id == Study.id, series_match).exists()
        found = [has(Patient.patient_key), has(Study.description), in_series]
        digits = term.replace("-", "").replace("/", "").replace(".", "")
        if digits.isdigit():
            found.append(Study.study_date.contains(digits, autoescape=True))
        conditions.append(or_(*found))
    return and_(*conditions)


def _cases(session: Session, actor: Actor, cases: CaseWorklist, *columns: Any, unfiltered: bool = False) -> Select[Any]:
    """SELECT ``columns`` FROM the actor's cases (study or series, its study and patient joined,
    the reader's read of the case outer-joined by the unique index on (scope, case_id, reader_id)),
    filtered by ``cases.filter`` unless ``unfiltered``, unordered. A case without images is never
    listed (there is nothing to read)."""
    reader_id = user_id(session, actor.username)
    case_id = cases.case_column
    own_read = and_(Annotation.scope == cases.scope, Annotation.case_id == case_id, Annotation.reader_id == reader_id)
    if cases.scope == "study":
        query = select(*columns).select_from(Study)
        holds_images = select(Image.id).join(Series, Series.id == Image.series_id).where(Series.study_id == Study.id)
    else:
        query = select(*columns).select_from(Series).join(Study, Study.id == Series.study_id)
        holds_images = select(Image.id).where(Image.series_id == Series.id)
    query = query.join(Patient, Patient.id == Study.patient_id).outerjoin(Annotation, own_read)
    query = query.where(holds_images.exists())
    assigned = and_(Assignment.scope == cases.scope, Assignment.reader_id == reader_id)
    if session.scalar(select(Assignment.id).where(assigned).limit(1)) is not None:
        query = query.join(Assignment, and_(assigned, Assignment.case_id == case_id))
    if unfiltered:
        return query
    worklist_filter = cases.filter
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
    if worklist_filter.modality:
        if cases.scope == "series":
            query = query.where(Series.modality == worklist_filter.modality)
        else:
            case_series = Series.__table__.alias("modality_series")
            query = query.where(
                select(case_series.c.id)
                .where(case_series.c.study_id == Study.id, case_series.c.modality == worklist_filter.modality)
                .exists()
            )
    if worklist_filter.search_terms:
        like_ignores_case = session.get_bind().dialect.name == "sqlite"
        query = query.where(_case_search_condition(cases, like_ignores_case))
    return query


def _case_ordered(query: Select[Any], cases: CaseWorklist) -> Select[Any]:
    return query.order_by(*(key.desc() if descending else key for key, descending in _case_sort_keys(cases)))


def _case_anchor(session: Session, actor: Actor, cases: CaseWorklist, case_id: int) -> tuple[Any, ...] | None:
    """The values of the case's sort keys, on the list or not; None for no such case."""
    keys = _case_sort_keys(cases)
    query = _cases(session, actor, cases, *(key for key, _ in keys), unfiltered=True)
    row = session.execute(query.where(cases.case_column == case_id)).one_or_none()
    return tuple(row) if row is not None else None


def _case_facts(session: Session, cases: CaseWorklist, rows: list[dict[str, Any]]) -> None:
    """Fill in the page's series, image, modality and prior-study columns: computed for the page's
    cases only (a count over every case's images would cost the whole list at 200,000 images)."""
    case_ids = [row["case_id"] for row in rows]
    if not case_ids:
        return
    if cases.scope == "study":
        counts = {
            study_id: (series, images)
            for study_id, series, images in session.execute(
                select(Series.study_id, func.count(func.distinct(Series.id)), func.count(Image.id))
                .join(Image, Image.series_id == Series.id)
                .where(Series.study_id.in_(case_ids))
                .group_by(Series.study_id)
            )
        }
        modalities_by_study: dict[int, list[str]] = {}
        for study_id, modality in session.execute(
            select(Series.study_id, Series.modality)
            .where(Series.study_id.in_(case_ids))
            .distinct()
            .order_by(Series.study_id, Series.modality)
        ):
            modalities_by_study.setdefault(study_id, []).append(modality)
        for row in rows:
            series, images = counts.get(row["case_id"], (0, 0))
            row["series"] = f"{series} series"
            row["images"] = int(images)
            row["modality"] = "/".join(modalities_by_study.get(row["case_id"], []))
    else:
        images_by_series = {
            series_id: images
            for series_id, images in session.execute(
                select(Image.series_id, func.count(Image.id))
                .where(Image.series_id.in_(case_ids))
                .group_by(Image.series_id)
            )
        }
        for row in rows:
            row["images"] = int(images_by_series.get(row["case_id"], 0))
    # Earlier studies of the same patient (priors): by the stored (shifted) dates, which keep the
    # intervals between one patient's studies.
    patient_ids = {row["patient_id"] for row in rows}
    dates_by_patient: dict[int, list[str]] = {}
    for patient_id, study_date in session.execute(
        select(Study.patient_id, Study.study_date).where(Study.patient_id.in_(patient_ids))
    ):
        if study_date:
            dates_by_patient.setdefault(patient_id, []).append(study_date)
    for row in rows:
        stored = row.pop("stored_date")
        earlier = [date for date in dates_by_patient.get(row.pop("patient_id"), []) if stored and date < stored]
        row["prior_studies"] = len(earlier)


def _case_rows(session: Session, query: Select[Any], cases: CaseWorklist) -> pd.DataFrame:
    rows = []
    for row in session.execute(query).mappings():
        values = dict(row)
        values["stored_date"] = values["study_date"]
        values["study_date"] = _study_date_text(values["study_date"])
        if cases.scope == "series":
            values["series"] = _series_text(values.pop("series_number"), values.pop("series_description"))
        rows.append(values)
    _case_facts(session, cases, rows)
    return pd.DataFrame(rows, columns=CASE_WORKLIST_COLUMNS)


def _case_rows_query(session: Session, actor: Actor, cases: CaseWorklist) -> Select[Any]:
    columns = [
        cases.case_column.label("case_id"),
        Patient.id.label("patient_id"),
        Patient.patient_key.label("patient"),
        Study.study_date,
        Study.description.label("study"),
        LabelClass.name.label("label"),
        Annotation.status,
    ]
    if cases.scope == "series":
        columns += [Series.modality, Series.series_number, Series.description.label("series_description")]
    query = _cases(session, actor, cases, *columns)
    return _case_ordered(query.outerjoin(LabelClass, LabelClass.id == Annotation.label_class_id), cases)


def case_worklist_page(
    store: Store, actor: Actor, cases: CaseWorklist, offset: int = 0, limit: int = 50, *, total: int | None = None
) -> tuple[pd.DataFrame, int]:
    """One page of the actor's case worklist and the list's length, as :func:`worklist_page` for
    images. Columns: case_id (the study or series id), patient (the pseudonym), study_date (as
    stored: shifted per patient when the project shifts dates, "" when de-identification removed
    it), prior_studies (the patient's earlier studies), study (its description), modality ("CT",
    "CT/PT" for a study of several), series ("3 series" for a study, "#2 T1" for a series),
    images, label and status (the actor's read of the case; None when unread)."""
    if offset < 0 or limit < 1:
        raise ValueError(f"a worklist page needs offset >= 0 and limit >= 1, got offset={offset}, limit={limit}")
    with store.db.read() as session:
        if total is None:
            total = session.scalar(_cases(session, actor, cases, func.count(cases.case_column))) or 0
        page = _case_rows(session, _case_rows_query(session, actor, cases).offset(offset).limit(limit), cases)
    return page, int(total)


def case_worklist(store: Store, actor: Actor, cases: CaseWorklist) -> pd.DataFrame:
    """The actor's whole case worklist (columns as :func:`case_worklist_page`): for small lists."""
    with store.db.read() as session:
        return _case_rows(session, _case_rows_query(session, actor, cases), cases)


def case_worklist_counts(store: Store, actor: Actor, cases: CaseWorklist) -> dict[str, int]:
    """How many cases each status filter would list under the filter's label, modality and search:
    {"todo", "unread", "read", "returned", "all"}; a case counts once, however many images it has."""
    worklist_filter = cases.filter
    everything = CaseWorklist(
        cases.scope, WorklistFilter("all", worklist_filter.label, worklist_filter.modality, worklist_filter.search)
    )
    unread = case((Annotation.id.is_(None), 1), else_=0)
    returned = case((Annotation.status == "returned", 1), else_=0)
    with store.db.read() as session:
        query = _cases(
            session,
            actor,
            everything,
            func.count(cases.case_column),
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


def following_case_ids(
    store: Store,
    actor: Actor,
    cases: CaseWorklist,
    after_case_id: int | None,
    limit: int,
    *,
    include_anchor: bool = False,
) -> list[int]:
    """The next ``limit`` cases strictly after ``after_case_id`` in list order (from the start when
    None), without wrapping round; the case need not be on the list (it may have just been read)."""
    if limit < 1:
        raise ValueError(f"limit must be at least 1, got {limit}")
    with store.db.read() as session:
        query = _cases(session, actor, cases, cases.case_column)
        if after_case_id is not None:
            anchor = _case_anchor(session, actor, cases, after_case_id)
            if anchor is not None:
                after = _beyond(_case_sort_keys(cases), anchor, later=True)
                query = query.where(or_(after, cases.case_column == after_case_id) if include_anchor else after)
        return [int(case_id) for case_id in session.scalars(_case_ordered(query, cases).limit(limit))]


def next_case_id(
    store: Store,
    actor: Actor,
    cases: CaseWorklist = CaseWorklist(),
    after_case_id: int | None = None,
    *,
    include_anchor: bool = False,
) -> int | None:
    """The next case of the list after ``after_case_id`` (or at it, with ``include_anchor``),
    wrapping round to the start; None when the list is empty."""
    following = following_case_ids(store, actor, cases, after_case_id, 1, include_anchor=include_anchor)
    if not following and after_case_id is not None:
        following = following_case_ids(store, actor, cases, None, 1)
    return following[0] if following else None


def case_list_position(store: Store, actor: Actor, cases: CaseWorklist, case_id: int) -> int | None:
    """The 0-based place of the case in the list, or None when it is not on it."""
    with store.db.read() as session:
        column = cases.case_column
        if session.scalar(_cases(session, actor, cases, column).where(column == case_id)) is None:
            return None
        anchor = _case_anchor(session, actor, cases, case_id)
        if anchor is None:
            return None
        before = _beyond(_case_sort_keys(cases), anchor, later=False)
        return int(session.scalar(_cases(session, actor, cases, func.count(column)).where(before)) or 0)
