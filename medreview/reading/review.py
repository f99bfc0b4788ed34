"""Review: assignments, the reviewer queue, decisions, disagreements and adjudication, blinding.

Read states: submitted -> approved | rejected | returned (sent back with a comment) | overruled; a
returned read is submitted again when its reader saves it. Approving a read records its class as
the image's final label (an adjudication stands); a disagreement is settled by adjudication, which
records the reviewer's class as final, or by approving one of its reads. Settling a disagreement
resolves the image's other waiting reads: those of the final class are approved, the others
*overruled* (they still count for agreement: they were independent reads). Every decision is
audited with the old and new state, in the same transaction; readers hear of theirs
(:func:`review_outcomes`).

Everything here is per case (medreview.reading.cases): reads of a study-scoped class are one read
of the study per reader, the disagreement and the final label are the study's, and the ``image_id``
shown for a study or series is its key image. For image-scoped classes a case is an image.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import pandas as pd
from sqlalchemy import ColumnElement, Select, and_, case, distinct, false, func, select, true
from sqlalchemy.orm import Session, aliased

from medreview.errors import MedreviewError, NotFoundError, PermissionDeniedError
from medreview.reading.agreement import agreement_summary
from medreview.reading.cases import case_in, case_key_column, check_scope, images_in_case
from medreview.reading.consensus import AUTO_ACCEPTED, set_final_label
from medreview.reading.reads import READ_COLUMNS, can_see_others, clear_approval, reads_query, user_id
from medreview.reading.schema import label_class_scopes, label_classes
from medreview.store import Store
from medreview.store.models import (
    Annotation,
    Assignment,
    FinalLabel,
    Image,
    LabelClass,
    ModelVersion,
    Prediction,
    User,
    utcnow,
)
from medreview.team.audit import record
from medreview.team.roles import Actor, require
from medreview.team.settings import get_setting

__all__ = [
    "ANY_PROBABILITY",
    "DECISIONS",
    "MODEL_COLUMNS",
    "QUEUE_FILTERS",
    "TOLD_TO_READERS",
    "adjudicate",
    "agreement",
    "approval_settles_disagreement",
    "approve_reads",
    "assign",
    "auto_accepted_page",
    "case_reads",
    "class_tally",
    "decide",
    "disagreements",
    "disagreements_page",
    "image_reads",
    "queue_filter_counts",
    "revert_auto_accept",
    "review_counts",
    "review_outcomes",
    "review_queue",
    "review_queue_page",
]

DECISIONS = {"approve": "approved", "reject": "rejected", "return": "returned"}
# What a reader is told about their own reads (review_outcomes): every state a reviewer's decision
# or an adjudication leaves other than an approval.
TOLD_TO_READERS = ("returned", "rejected", "overruled")


# --- assignments --------------------------------------------------------------------------------


def assign(
    store: Store,
    actor: Actor,
    image_ids: list[int],
    readers: list[str],
    readers_per_image: int,
    scope: str = "image",
) -> int:
    """Put each image's case at ``scope`` (the image, or the series or study holding it; several
    images of one case make one case) on ``readers_per_image`` readers' worklists, spreading the
    work evenly (round robin, skipping readers who already have the case). Returns new
    assignments made."""
    require(actor, "admin", "assign work")
    check_scope(scope)
    if not readers:
        raise MedreviewError("choose at least one reader")
    if not 1 <= readers_per_image <= len(readers):
        raise MedreviewError(f"readers per image must be between 1 and {len(readers)} (the readers chosen)")
    made = 0
    with store.db.write() as session:
        reader_ids = {name: user_id(session, name, active_only=True) for name in readers}
        # case id -> key image id, in the order the images were given
        cases = {}
        for image_id in image_ids:
            case_id, key_image_id = case_in(session, image_id, scope)
            cases.setdefault(case_id, key_image_id)
        existing = {
            (row.case_id, row.reader_id)
            for row in session.scalars(
                select(Assignment).where(Assignment.scope == scope, Assignment.case_id.in_(list(cases)))
            )
        }
        load = dict.fromkeys(readers, 0)
        for case_id, key_image_id in cases.items():
            have = [name for name in readers if (case_id, reader_ids[name]) in existing]
            # Least-loaded readers first, so the work spreads evenly; name breaks ties.
            for name in sorted((n for n in readers if n not in have), key=lambda n: (load[n], n)):
                if len(have) >= readers_per_image:
                    break
                session.add(
                    Assignment(
                        image_id=key_image_id,
                        scope=scope,
                        case_id=case_id,
                        reader_id=reader_ids[name],
                        assigned_by=actor.username,
                    )
                )
                record(session, actor.username, "assignment.create", scope, case_id, reader=name)
                have.append(name)
                load[name] += 1
                made += 1
    return made


# --- reads, as the reviewer sees them -----------------------------------------------------------


def _reads_frame(session: Session, query: Select[Any]) -> pd.DataFrame:
    return pd.DataFrame(session.execute(query).mappings().all(), columns=READ_COLUMNS)


def _check_page(offset: int, limit: int) -> None:
    if offset < 0 or limit < 1:
        raise ValueError(f"a page needs offset >= 0 and limit >= 1, got offset={offset}, limit={limit}")


# --- who may see what ---------------------------------------------------------------------------


def image_reads(store: Store, actor: Actor, image_id: int) -> pd.DataFrame:
    """All readers' reads of one image (rejected ones included, marked), if the actor may see them."""
    require(actor, "annotator", "see reads")
    if not can_see_others(store, actor, image_id):
        raise PermissionDeniedError("blinded reading: submit your own read of this image first")
    with store.db.read() as session:
        return _reads_frame(session, reads_query(Annotation.image_id == image_id).order_by(Annotation.id))


def case_reads(store: Store, actor: Actor, scope: str, case_id: int) -> pd.DataFrame:
    """All readers' reads of one case (a study's reads, not those of its key image's own): as
    :func:`image_reads`, blinding applied to the case."""
    require(actor, "annotator", "see reads")
    check_scope(scope)
    with store.db.read() as session:
        images = images_in_case(session, scope, case_id)
        if not images:
            raise NotFoundError(f"{scope} {case_id} does not exist or holds no image")
        if not can_see_others(store, actor, images[0]):
            raise PermissionDeniedError(f"blinded reading: submit your own read of this {scope} first")
        query = reads_query(Annotation.scope == scope, Annotation.case_id == case_id).order_by(Annotation.id)
        return _reads_frame(session, query)


# --- reviewing ----------------------------------------------------------------------------------


def _waiting(actor: Actor | None) -> list[ColumnElement[bool]]:
    """Conditions of the reads waiting for a decision (by ``actor``: not their own reads)."""
    conditions: list[ColumnElement[bool]] = [Annotation.status == "submitted"]
    if actor is not None:
        conditions.append(Annotation.reader_id.not_in(select(User.id).where(User.username == actor.username)))
    return conditions


def review_queue(store: Store, actor: Actor) -> pd.DataFrame:
    """Submitted reads waiting for a decision, oldest first (everyone's: see
    :func:`review_queue_page` for the actor's own queue, a page at a time)."""
    require(actor, "reviewer", "review labels")
    with store.db.read() as session:
        query = reads_query(*_waiting(None)).order_by(Annotation.updated_at, Annotation.id)
        return _reads_frame(session, query)


# Filters of the queue by what the readers and the active model say of each read's case:
#   agree             no reader of the case named another class, and the model calls this read's
#   readers_disagree  another reader of the case named another class
#   model_disagrees   no reader named another class, but the model calls another (inside its domain)
#   outside           the case lies outside the model's training data (no call is trusted there)
QUEUE_FILTERS = ("all", "agree", "readers_disagree", "model_disagrees", "outside")
# Columns a queue page adds to READ_COLUMNS: the active model's call on the read's case.
MODEL_COLUMNS = ["model_call", "model_probability", "outside_training_data"]
# The calibrated probability band that keeps every read, those without a call included.
ANY_PROBABILITY = (0.0, 1.0)


def _active_version_id(session: Session) -> int | None:
    return session.scalar(select(ModelVersion.id).where(ModelVersion.is_active.is_(True)))


def _with_call(query: Select[Any], version_id: int | None) -> Select[Any]:
    """``query`` (over reads, with LabelClass joined) with the active version's prediction of each
    read's case outer-joined (none when no version is active)."""
    return query.outerjoin(
        Prediction,
        and_(
            Prediction.scope == Annotation.scope,
            Prediction.case_id == Annotation.case_id,
            Prediction.model_version_id == version_id,
        ),
    )


def _filter_conditions() -> dict[str, ColumnElement[bool]]:
    """The condition of each queue filter but "all", over a read joined to its class and the
    active version's prediction (see :func:`_with_call`)."""
    other = aliased(Annotation)
    # EXISTS on the (scope, case_id, reader_id) index: one probe per read, not a grouping of all.
    readers_disagree = (
        select(other.id)
        .where(
            other.scope == Annotation.scope,
            other.case_id == Annotation.case_id,
            other.status != "rejected",
            other.label_class_id.is_not(None),
            other.label_class_id != Annotation.label_class_id,
        )
        .exists()
    )
    readers_agree = and_(Annotation.label_class_id.is_not(None), ~readers_disagree)
    inside = and_(Prediction.id.is_not(None), Prediction.out_of_distribution.is_(false()))
    return {
        "agree": and_(readers_agree, inside, Prediction.predicted_class == LabelClass.name),
        "readers_disagree": readers_disagree,
        "model_disagrees": and_(readers_agree, inside, Prediction.predicted_class != LabelClass.name),
        "outside": Prediction.out_of_distribution.is_(true()),
    }


def _queue_conditions(actor: Actor, agreement: str, band: tuple[float, float]) -> list[ColumnElement[bool]]:
    if agreement not in QUEUE_FILTERS:
        raise MedreviewError(f"unknown queue filter '{agreement}' (one of {', '.join(QUEUE_FILTERS)})")
    low, high = band
    if not 0.0 <= low <= high <= 1.0:
        raise MedreviewError(f"a probability band runs from a low to a high value in 0-1, not {low}-{high}")
    conditions = _waiting(actor)
    if agreement != "all":
        conditions.append(_filter_conditions()[agreement])
    if (low, high) != ANY_PROBABILITY:
        # The calibrated probability of the model's call, inside its training data only.
        conditions += [
            Prediction.out_of_distribution.is_(false()),
            Prediction.probability >= low,
            Prediction.probability <= high,
        ]
    return conditions


def _count_reads(session: Session, version_id: int | None, *conditions: ColumnElement[bool]) -> int:
    query = select(func.count(Annotation.id)).outerjoin(LabelClass, LabelClass.id == Annotation.label_class_id)
    return int(session.scalar(_with_call(query, version_id).where(*conditions)) or 0)


def review_queue_page(
    store: Store,
    actor: Actor,
    offset: int = 0,
    limit: int = 50,
    agreement: str = "all",
    band: tuple[float, float] = ANY_PROBABILITY,
) -> tuple[pd.DataFrame, int]:
    """One page of the actor's reviewer queue and its length: submitted reads by other readers
    (nobody reviews their own reads), oldest first (by last change, then read id), with the
    READ_COLUMNS and the active model's call on each read's case (MODEL_COLUMNS: None where it has
    none). ``agreement`` (QUEUE_FILTERS) and ``band`` (the calibrated probability of the model's
    call, inclusive) narrow it. The page and the total are computed by the database."""
    require(actor, "reviewer", "review labels")
    _check_page(offset, limit)
    conditions = _queue_conditions(actor, agreement, band)
    with store.db.read() as session:
        version_id = _active_version_id(session)
        total = _count_reads(session, version_id, *conditions)
        query = _with_call(reads_query(*conditions), version_id).add_columns(
            Prediction.predicted_class.label("model_call"),
            Prediction.probability.label("model_probability"),
            Prediction.out_of_distribution.label("outside_training_data"),
        )
        rows = session.execute(query.order_by(Annotation.updated_at, Annotation.id).offset(offset).limit(limit))
        page = pd.DataFrame(rows.mappings().all(), columns=[*READ_COLUMNS, *MODEL_COLUMNS])
    return page, total


def queue_filter_counts(store: Store, actor: Actor, band: tuple[float, float] = ANY_PROBABILITY) -> dict[str, int]:
    """How many reads of the actor's queue each filter of QUEUE_FILTERS keeps (within ``band``),
    counted by the database in one pass."""
    require(actor, "reviewer", "review labels")
    conditions = _queue_conditions(actor, "all", band)
    tallies = [func.count(Annotation.id)] + [
        func.sum(case((condition, 1), else_=0)) for condition in _filter_conditions().values()
    ]
    with store.db.read() as session:
        query = select(*tallies).outerjoin(LabelClass, LabelClass.id == Annotation.label_class_id)
        row = session.execute(_with_call(query, _active_version_id(session)).where(*conditions)).one()
    return {name: int(value or 0) for name, value in zip(QUEUE_FILTERS, row, strict=True)}


def _of_case(model: type[Annotation] | type[FinalLabel], scope: str, case_id: int) -> list[ColumnElement[bool]]:
    return [model.scope == scope, model.case_id == case_id]


def _agreeing_class(session: Session, scope: str, case_id: int) -> int | None:
    """The single-choice class all non-rejected reads of a case agree on, else None."""
    classes = set(
        session.scalars(
            select(Annotation.label_class_id).where(
                *_of_case(Annotation, scope, case_id),
                Annotation.status != "rejected",
                Annotation.label_class_id.is_not(None),
            )
        )
    )
    return classes.pop() if len(classes) == 1 else None


def decide(store: Store, actor: Actor, annotation_id: int, decision: str, comment: str = "") -> None:
    """Approve, reject or send back (``return``, with a comment) one read."""
    require(actor, "reviewer", "review labels")
    _check_decision(decision, comment)
    with store.db.write() as session:
        annotation = session.get(Annotation, annotation_id, with_for_update=True)
        if annotation is None:
            raise NotFoundError(f"read {annotation_id} does not exist")
        _decide(session, actor, annotation, decision, comment)


def approve_reads(store: Store, actor: Actor, annotation_ids: Sequence[int], comment: str = "") -> dict[str, Any]:
    """Approve several reads in one action (one transaction), each as :func:`decide` approves one,
    with its own audit event. A read that cannot be approved is skipped with the reason: one that
    no longer exists, the reviewer's own, or one no longer waiting (decided meanwhile, or settled
    by approving an earlier read of the same case in this batch). Returns {"approved": [ids],
    "skipped": {id: reason}}."""
    require(actor, "reviewer", "review labels")
    approved: list[int] = []
    skipped: dict[int, str] = {}
    with store.db.write() as session:
        for annotation_id in dict.fromkeys(int(value) for value in annotation_ids):
            annotation = session.get(Annotation, annotation_id, with_for_update=True)
            if annotation is None:
                skipped[annotation_id] = "no longer exists"
            elif annotation.reader.username == actor.username:
                skipped[annotation_id] = "your own read"
            elif annotation.status != "submitted":
                skipped[annotation_id] = f"already {annotation.status}"
            else:
                _decide(session, actor, annotation, "approve", comment)
                approved.append(annotation_id)
    return {"approved": approved, "skipped": skipped}


def _check_decision(decision: str, comment: str) -> None:
    if decision not in DECISIONS:
        raise MedreviewError(f"unknown decision '{decision}' (approve, reject or return)")
    if decision == "return" and not comment.strip():
        raise MedreviewError("say what to change when sending a read back")


def _decide(session: Session, actor: Actor, annotation: Annotation, decision: str, comment: str) -> None:
    """One decision on one read, audited, in the caller's write session."""
    if annotation.reader.username == actor.username:
        raise PermissionDeniedError("a reviewer cannot review their own read")
    old_status = annotation.status
    annotation.status = DECISIONS[decision]
    annotation.review_comment = comment
    annotation.reviewed_by_id = user_id(session, actor.username, active_only=True)
    annotation.reviewed_at = utcnow()
    session.flush()
    resolved: dict[str, list[int]] = {}
    if decision == "approve":
        settled = _approve_class(session, annotation, actor, comment)
        if settled:
            resolved = _resolve_reads(
                session, annotation.scope, annotation.case_id, annotation.label_class_id, actor, comment
            )
    else:
        clear_approval(session, annotation.scope, annotation.case_id)
    record(
        session,
        actor.username,
        f"review.{decision}",
        "annotation",
        annotation.id,
        image_id=annotation.image_id,
        **({} if annotation.scope == "image" else {annotation.scope: annotation.case_id}),
        reader=annotation.reader.username,
        old=old_status,
        new=annotation.status,
        comment=comment,
        **({"resolved": resolved} if resolved else {}),
    )


def _approval_decides(session: Session, annotation: Annotation) -> bool:
    """Whether approving the read makes its class the image's final label: it has a single-choice
    class and no adjudication stands (that is the reviewer's own decision, and stays)."""
    if annotation.label_class_id is None:
        return False
    final = session.scalar(select(FinalLabel).where(*_of_case(FinalLabel, annotation.scope, annotation.case_id)))
    return final is None or final.method != "adjudicated"


def _approve_class(session: Session, annotation: Annotation, actor: Actor, comment: str) -> bool:
    """Make an approved read's class the image's final label (see :func:`_approval_decides`). True
    when this settled a disagreement (the image's reads named different classes)."""
    if not _approval_decides(session, annotation):
        return False
    disputed = _agreeing_class(session, annotation.scope, annotation.case_id) is None
    set_final_label(
        session,
        (annotation.scope, annotation.case_id, annotation.image_id),
        annotation.label_class_id,
        "approved",
        actor.username,
        comment,
    )
    return disputed


def approval_settles_disagreement(store: Store, actor: Actor, annotation_id: int) -> bool:
    """Whether approving this read would settle a disagreement: its class would become the image's
    final label while other readers named another, whose reads would be overruled. The page says
    so before the reviewer approves."""
    require(actor, "reviewer", "review labels")
    with store.db.read() as session:
        annotation = session.get(Annotation, annotation_id)
        if annotation is None:
            raise NotFoundError(f"read {annotation_id} does not exist")
        return (
            _approval_decides(session, annotation)
            and _agreeing_class(session, annotation.scope, annotation.case_id) is None
        )


def _resolve_reads(
    session: Session, scope: str, case_id: int, label_class_id: int | None, actor: Actor, comment: str
) -> dict[str, list[int]]:
    """The case's reads still waiting for review once its final class is decided: those of that
    class approved, those of another overruled, each with the decision's comment. Reads without a
    single-choice class (boxes or multi-label only) keep waiting: the class does not judge them.
    Returns the read ids by new state, for the audit event of the decision."""
    reviewer_id = user_id(session, actor.username, active_only=True)
    resolved: dict[str, list[int]] = {"approved": [], "overruled": []}
    waiting = session.scalars(
        select(Annotation)
        .where(
            *_of_case(Annotation, scope, case_id),
            Annotation.status == "submitted",
            Annotation.label_class_id.is_not(None),
        )
        .order_by(Annotation.id)
    )
    for annotation in waiting:
        annotation.status = "approved" if annotation.label_class_id == label_class_id else "overruled"
        annotation.review_comment = comment
        annotation.reviewed_by_id = reviewer_id
        annotation.reviewed_at = utcnow()
        resolved[annotation.status].append(annotation.id)
    return {state: ids for state, ids in resolved.items() if ids}


_DISAGREEMENT_IMAGE = func.min(Annotation.image_id).label("image_id")


def _open_disagreements() -> Select[Any]:
    """image_id (the case's key image), scope, case_id, readers (count) of the cases whose
    non-rejected reads name different classes and that have no final label yet, unordered."""
    # NOT EXISTS, probing the final labels' (scope, case_id) unique index: SQLite (3.40) ran the
    # row-value NOT IN over the 40,000 reads of the reading benchmark's store in 5.9 s, NOT EXISTS
    # in 29 ms; PostgreSQL plans either as an anti-join.
    decided = ~(
        select(FinalLabel.id)
        .where(FinalLabel.scope == Annotation.scope, FinalLabel.case_id == Annotation.case_id)
        .exists()
    )
    return (
        select(_DISAGREEMENT_IMAGE, Annotation.scope, Annotation.case_id, func.count(Annotation.id).label("readers"))
        .where(Annotation.status != "rejected", Annotation.label_class_id.is_not(None), decided)
        .group_by(Annotation.scope, Annotation.case_id)
        .having(func.count(distinct(Annotation.label_class_id)) > 1)
    )


def _in_order(query: Select[Any]) -> Select[Any]:
    """Image cases first, by image id (the order before scopes), then series, then studies, by id:
    the order of the (scope, case_id, reader_id) index, so a page is read without sorting them all."""
    return query.order_by(Annotation.scope, Annotation.case_id)


def _with_labels(session: Session, cases: list[Any]) -> pd.DataFrame:
    """image_id, readers, labels (reader -> class, in read order), scope, case_id of the given
    disagreement rows."""
    labels: dict[tuple[str, int], dict[str, str]] = {(row.scope, row.case_id): {} for row in cases}
    case_ids = sorted({row.case_id for row in cases})
    reads = session.execute(
        select(Annotation.scope, Annotation.case_id, User.username, LabelClass.name)
        .join(User, User.id == Annotation.reader_id)
        .join(LabelClass, LabelClass.id == Annotation.label_class_id)
        .where(Annotation.case_id.in_(case_ids), Annotation.status != "rejected")
        .order_by(Annotation.case_id, Annotation.id)
    )
    for scope, case_id, reader, label in reads:
        if (scope, case_id) in labels:
            labels[(scope, case_id)][reader] = label
    rows = [
        {
            "image_id": int(row.image_id),
            "readers": int(row.readers),
            "labels": labels[(row.scope, row.case_id)],
            "scope": row.scope,
            "case_id": int(row.case_id),
        }
        for row in cases
    ]
    return pd.DataFrame(rows, columns=["image_id", "readers", "labels", "scope", "case_id"])


def disagreements(store: Store, actor: Actor) -> pd.DataFrame:
    """Cases whose non-rejected reads name different classes and that have no final label yet:
    image_id (a study's or series' key image), readers, labels (reader -> class), scope, case_id;
    image cases by image id, then series, then studies (see :func:`disagreements_page` for a page
    at a time)."""
    require(actor, "reviewer", "see disagreements")
    with store.db.read() as session:
        cases = session.execute(_in_order(_open_disagreements())).all()
        return _with_labels(session, cases)


def disagreements_page(store: Store, actor: Actor, offset: int = 0, limit: int = 50) -> tuple[pd.DataFrame, int]:
    """One page of :func:`disagreements` (image cases by image id, then series, then studies) and
    how many there are, both computed by the database."""
    require(actor, "reviewer", "see disagreements")
    _check_page(offset, limit)
    with store.db.read() as session:
        total = session.scalar(select(func.count()).select_from(_open_disagreements().subquery())) or 0
        cases = session.execute(_in_order(_open_disagreements()).offset(offset).limit(limit)).all()
        return _with_labels(session, cases), int(total)


def class_tally(labels: Mapping[str, str]) -> list[tuple[str, list[str]]]:
    """Who named which class: (class, readers) pairs, the most named class first (ties by
    class name), readers in the order given. For {"ann": "normal", "bob": "normal", "cy":
    "pneumonia"}: [("normal", ["ann", "bob"]), ("pneumonia", ["cy"])]."""
    readers_by_class: dict[str, list[str]] = {}
    for reader, label in labels.items():
        readers_by_class.setdefault(label, []).append(reader)
    return sorted(readers_by_class.items(), key=lambda item: (-len(item[1]), item[0]))


def review_counts(store: Store, actor: Actor) -> dict[str, int]:
    """{"queue": reads waiting for the actor's decision, "disagreements": open disagreements,
    "auto_accepted": final labels the consensus rule set (medreview.reading.consensus)}."""
    require(actor, "reviewer", "review labels")
    with store.db.read() as session:
        queue = session.scalar(select(func.count(Annotation.id)).where(*_waiting(actor))) or 0
        open_disagreements = session.scalar(select(func.count()).select_from(_open_disagreements().subquery())) or 0
        auto_accepted = session.scalar(select(func.count(FinalLabel.id)).where(FinalLabel.method == AUTO_ACCEPTED))
    return {"queue": int(queue), "disagreements": int(open_disagreements), "auto_accepted": int(auto_accepted or 0)}


def auto_accepted_page(store: Store, actor: Actor, offset: int = 0, limit: int = 50) -> tuple[pd.DataFrame, int]:
    """One page of the final labels the consensus rule set, the latest first: image_id (a case's
    key image), scope, case_id, label, decided_at; and how many there are."""
    require(actor, "reviewer", "review labels")
    _check_page(offset, limit)
    query = (
        select(FinalLabel.image_id, FinalLabel.scope, FinalLabel.case_id, LabelClass.name.label("label"))
        .add_columns(FinalLabel.decided_at)
        .outerjoin(LabelClass, LabelClass.id == FinalLabel.label_class_id)
        .where(FinalLabel.method == AUTO_ACCEPTED)
    )
    with store.db.read() as session:
        total = session.scalar(select(func.count(FinalLabel.id)).where(FinalLabel.method == AUTO_ACCEPTED)) or 0
        rows = session.execute(
            query.order_by(FinalLabel.decided_at.desc(), FinalLabel.id.desc()).offset(offset).limit(limit)
        )
        page = pd.DataFrame(rows.mappings().all(), columns=list(query.selected_columns.keys()))
    return page, int(total)


def revert_auto_accept(store: Store, actor: Actor, scope: str, case_id: int, comment: str = "") -> list[int]:
    """Undo the consensus rule's final label of a case (reviewers): the label goes, the reads it
    approved wait for review again (back in the queue where they were), audited; the rule leaves
    the case alone from then on. Returns the ids of the reads put back."""
    require(actor, "reviewer", "revert an auto-accepted label")
    check_scope(scope)
    with store.db.write() as session:
        final = session.scalar(select(FinalLabel).where(*_of_case(FinalLabel, scope, case_id)).with_for_update())
        if final is None or final.method != AUTO_ACCEPTED:
            raise MedreviewError(f"{scope} {case_id} has no auto-accepted final label to revert")
        label = final.label_class.name if final.label_class else None
        # The rule's approvals are the ones with no reviewer.
        reads = list(
            session.scalars(
                select(Annotation)
                .where(
                    *_of_case(Annotation, scope, case_id),
                    Annotation.status == "approved",
                    Annotation.reviewed_by_id.is_(None),
                )
                .order_by(Annotation.id)
            )
        )
        for read in reads:
            read.status = "submitted"
            read.reviewed_at = None
        session.delete(final)
        record(
            session,
            actor.username,
            "review.auto_accept_revert",
            scope,
            case_id,
            label=label,
            reads=[read.id for read in reads],
            comment=comment,
        )
        return [read.id for read in reads]


def adjudicate(store: Store, actor: Actor, image_id: int, label: str | None, comment: str = "") -> None:
    """Settle a case's label: the reviewer's class becomes final, for the case at the class's
    scope that holds the image (any image of a study, for a study-scoped class)."""
    require(actor, "reviewer", "adjudicate")
    if not label:
        raise MedreviewError("choose the final class before adjudicating")
    with store.db.write() as session:
        if session.get(Image, image_id) is None:
            raise NotFoundError(f"image {image_id} does not exist")
        label_class = session.scalar(select(LabelClass).where(LabelClass.name == label))
        if label_class is None:
            raise MedreviewError(f"'{label}' is not a class of this project's label schema")
        scope = label_class.scope
        case_id, key_image_id = case_in(session, image_id, scope)
        previous = session.scalar(select(FinalLabel).where(*_of_case(FinalLabel, scope, case_id)))
        old = previous.label_class.name if previous is not None and previous.label_class else None
        if previous is not None:
            key_image_id = previous.image_id
        set_final_label(session, (scope, case_id, key_image_id), label_class.id, "adjudicated", actor.username, comment)
        resolved = _resolve_reads(session, scope, case_id, label_class.id, actor, comment)
        record(
            session,
            actor.username,
            "review.adjudicate",
            scope,
            case_id,
            old=old,
            new=label,
            comment=comment,
            **({"resolved": resolved} if resolved else {}),
        )


def review_outcomes(store: Store, actor: Actor, limit: int = 50) -> tuple[pd.DataFrame, dict[str, int]]:
    """What reviewers decided against ``actor``'s own reads: the reads sent back, rejected or
    overruled by an adjudication (TOLD_TO_READERS), the most recently decided first, at most
    ``limit`` of them, with image_id, file, label (the reader's), status, final_label (the image's
    final class now), review_comment, reviewed_by, reviewed_at; and how many there are in each of
    those states. A sent-back read leaves the list once its reader saves it again."""
    require(actor, "annotator", "see the review of their reads")
    reviewer, final_class = aliased(User), aliased(LabelClass)
    mine = [Annotation.reader_id.in_(select(User.id).where(User.username == actor.username))]
    mine.append(Annotation.status.in_(TOLD_TO_READERS))
    query = (
        select(
            Annotation.image_id,
            Image.display_name.label("file"),
            LabelClass.name.label("label"),
            Annotation.status,
            final_class.name.label("final_label"),
            Annotation.review_comment,
            reviewer.username.label("reviewed_by"),
            Annotation.reviewed_at,
        )
        .join(Image, Image.id == Annotation.image_id)
        .outerjoin(LabelClass, LabelClass.id == Annotation.label_class_id)
        .outerjoin(reviewer, reviewer.id == Annotation.reviewed_by_id)
        .outerjoin(FinalLabel, (FinalLabel.scope == Annotation.scope) & (FinalLabel.case_id == Annotation.case_id))
        .outerjoin(final_class, final_class.id == FinalLabel.label_class_id)
        .where(*mine)
        .order_by(Annotation.reviewed_at.desc().nulls_last(), Annotation.id.desc())
        .limit(limit)
    )
    with store.db.read() as session:
        table = pd.DataFrame(session.execute(query).mappings().all(), columns=list(query.selected_columns.keys()))
        counts = dict(
            session.execute(
                select(Annotation.status, func.count(Annotation.id)).where(*mine).group_by(Annotation.status)
            )
            .tuples()
            .all()
        )
    return table, {state: int(counts.get(state, 0)) for state in TOLD_TO_READERS}


def agreement(store: Store, actor: Actor) -> dict:
    """Inter-reader agreement over cases read by several readers (see medreview.reading.agreement):
    a study read by two readers is one item of their pair, whatever the number of its slices.

    Single-choice projects compare the class of each read (Cohen per pair, Fleiss overall and per
    class); multi-label projects compare, per class, whether each reader marked it."""
    require(actor, "reviewer", "see agreement statistics")
    # The statistics' item (their column "image_id") is a case: one integer per (scope, case id),
    # grouped as fast as image ids were.
    case_key = case_key_column(Annotation).label("image_id")
    # Only the columns compared are fetched: the labels and boxes of every read (JSON, decoded
    # row by row) cost more than the statistics at 40,000 reads.
    if get_setting(store, "label_mode") == "multi":
        query = select(case_key, User.username.label("reader"), Annotation.labels, Annotation.scope).select_from(
            Annotation
        )
        columns = ["image_id", "reader", "labels", "scope"]
    else:
        # A read changed after its reader saw the others' is not independent: its first, blind
        # class counts.
        blind_class = aliased(LabelClass)
        label = func.coalesce(blind_class.name, LabelClass.name)
        query = (
            select(case_key, User.username.label("reader"), label.label("label"), Annotation.scope)
            .select_from(Annotation)
            .outerjoin(LabelClass, LabelClass.id == Annotation.label_class_id)
            .outerjoin(blind_class, blind_class.id == Annotation.blind_label_class_id)
            .where(label.is_not(None))
        )
        columns = ["image_id", "reader", "label", "scope"]
    query = (
        query.join(User, User.id == Annotation.reader_id)
        .where(Annotation.status != "rejected")
        .order_by(case_key, Annotation.id)
    )
    with store.db.read() as session:
        # Plain tuples: pandas 3 probes each SQLAlchemy Row for a dtype, 0.5 s at 40,000 rows.
        reads = pd.DataFrame([tuple(row) for row in session.execute(query)], columns=columns)
    # Each class's own figures count the cases of its scope (a study class's kappa counts studies).
    item_scopes = dict(zip(reads["image_id"], reads["scope"], strict=True))
    return agreement_summary(
        reads.drop(columns="scope"),
        label_classes(store, include_retired=True),
        item_scopes=item_scopes,
        class_scopes=label_class_scopes(store, include_retired=True),
    )
