"""Reads and the labels images end up with.

A *read* is one reader's labels for one image (a single-choice class, multi-label classes and/or
bounding boxes, an unsure flag, a comment). Saving again replaces that reader's read. Every write
checks the actor's role and lands in the audit trail in the same transaction.

The words, each with one meaning, used by worklists, prediction scopes, the "label next" queue,
the counts and training alike:

- an image is **labelled** when it has at least one read a reviewer has not rejected
  (:func:`labelled_image_ids`), and **unlabelled** when it has none;
- an image **has a final label** (the label used for training, export and the model-vs-label
  comparison) when a reviewer adjudicated or approved one, or all its non-rejected single-choice
  reads agree on a class (:func:`current_labels` with ``source="final"``). Images whose readers
  disagree are labelled but have no final label until adjudicated.

A reader's own worklist speaks of images *read by me* (:mod:`medreview.reading.worklists`).

Cases: a read of a study- or series-scoped class is the reader's one read of that case
(medreview.reading.cases), stored at the case's key image whichever image it was saved from; its
final label is the case's. The columns ``scope`` and ``case_id`` of reads and labels name the case;
for image-scoped classes (every class before migration 0009) the case is the image.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import pandas as pd
from sqlalchemy import ColumnElement, Select, delete, select
from sqlalchemy.orm import Session, aliased

from medreview.errors import MedreviewError, NotFoundError
from medreview.reading.assist import assist_values
from medreview.reading.cases import case_in, case_keys, check_scope
from medreview.reading.consensus import AUTO_ACCEPTED, accept_by_consensus
from medreview.store import LOCAL_USER, Store
from medreview.store.db import upsert
from medreview.store.models import (
    Annotation,
    FinalLabel,
    Image,
    LabelClass,
    Patient,
    Series,
    Study,
    User,
    utcnow,
)
from medreview.team.audit import record
from medreview.team.roles import Actor, require
from medreview.team.settings import CHOICES, get_setting

__all__ = [
    "LABEL_SOURCES",
    "LOCAL_ACTOR",
    "READ_COLUMNS",
    "can_see_others",
    "current_labels",
    "image_facts",
    "labelled_image_ids",
    "reads_query",
    "reads_table",
    "save_read",
    "unlabelled_image_ids",
    "visible_image_ids",
]

LABEL_SOURCES = CHOICES["training_label_source"]
# The CLI, the demo loader and import-folder act as the seeded local admin (it cannot log in to
# the web app: it has no password). Their reads are that user's reads.
LOCAL_ACTOR = Actor(LOCAL_USER, "admin")


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
    comment: str | None = "",
    seconds_on_case: float | None = None,
    assisted: bool = False,
) -> None:
    """Record ``actor``'s read of an image, or of the study or series holding it when the classes
    named are study- or series-scoped (replacing their earlier read of that case; a read that was
    sent back becomes submitted again). One read names classes of one scope; boxes mark one image,
    so they go with image-scoped classes only.

    ``comment`` None keeps the earlier read's comment (the viewer's keyboard saves carry none).
    ``seconds_on_case``: how long the image was on the reader's screen before this save.
    ``assisted``: the read was made in the Label viewer, where the project's assist mode decides what
    of the model was on screen (medreview.reading.assist): its suggestion and a change made after
    seeing the model are recorded. Other saves (imports, a comment) leave that record as it was.
    """
    if seconds_on_case is not None and not (math.isfinite(seconds_on_case) and seconds_on_case >= 0):
        raise MedreviewError("seconds on case must be a finite number of seconds, not negative")
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
        scope = _read_scope(active, label, labels, checked_boxes)
        case_id, key_image_id = case_in(session, image_id, scope)
        reader_id = user_id(session, actor.username)
        previous = session.scalar(
            select(Annotation).where(
                Annotation.scope == scope, Annotation.case_id == case_id, Annotation.reader_id == reader_id
            )
        )
        old = _read_value(previous, previous.label_class.name if previous and previous.label_class else None)
        now = utcnow()
        label_class_id = active[label].id if label is not None else None
        # Blinded reading: the first read is blind, and agreement keeps it. Once saved, the reader
        # may see the others' reads, so a later change of class is not independent: flagged.
        blinded = bool(get_setting(store, "blinded"))
        blind_label_class_id = previous.blind_label_class_id if previous is not None else None
        changed_after_unblinding = previous.changed_after_unblinding if previous is not None else False
        if blinded and previous is None:
            blind_label_class_id = label_class_id
        elif blinded and previous.label_class_id != label_class_id:
            changed_after_unblinding = True
        values = {
            "label_class_id": label_class_id,
            "blind_label_class_id": blind_label_class_id,
            "changed_after_unblinding": changed_after_unblinding,
            "labels": sorted(set(labels)),
            "boxes": checked_boxes,
            "unsure": unsure,
            "comment": comment if comment is not None else (previous.comment if previous is not None else ""),
            "seconds_on_case": seconds_on_case,
            "status": "submitted",
            "updated_at": now,
        }
        # What the reader saw of the model (medreview.reading.assist): the suggestion and its fate.
        if assisted:
            values.update(assist_values(store, session, image_id, previous, label))
        # The read of a case stays at the key image it was first saved at (image_id is not updated).
        upsert(
            session,
            Annotation,
            {
                "image_id": key_image_id,
                "scope": scope,
                "case_id": case_id,
                "reader_id": reader_id,
                "created_at": now,
                **values,
            },
            conflict_columns=["scope", "case_id", "reader_id"],
            update_columns=list(values),
        )
        new = {"label": label, "labels": values["labels"], "boxes": len(checked_boxes), "unsure": unsure}
        if old is not None and (old["label"], old["labels"]) != (label, values["labels"]):
            # An approval was of the class the reader had then; a changed read needs review again.
            # (An adjudication stands: it is the reviewer's own decision, not the reader's.)
            clear_approval(session, scope, case_id)
        action = "label.create" if previous is None else "label.change"
        if blinded and previous is not None and previous.label_class_id != label_class_id:
            new["after_unblinding"] = True
        if scope == "image":
            record(session, actor.username, action, "image", image_id, old=old, new=new)
        else:
            record(session, actor.username, action, scope, case_id, image_id=image_id, old=old, new=new)
        # Readers and the model may now agree enough for the project's auto-accept rule.
        accept_by_consensus(store, session, actor.username, [(scope, case_id)])


def _read_scope(
    active: dict[str, LabelClass], label: str | None, labels: Sequence[str], boxes: Sequence[dict[str, Any]]
) -> str:
    """The scope of a read: that of the classes it names (one scope per read)."""
    named = [name for name in [label, *labels, *(box["label"] for box in boxes)] if name is not None]
    scopes = {active[name].scope for name in named}
    if len(scopes) > 1:
        by_scope = ", ".join(f"'{name}' ({active[name].scope})" for name in dict.fromkeys(named))
        raise MedreviewError(f"one read names classes of one scope (study, series or image), not {by_scope}")
    scope = scopes.pop() if scopes else "image"
    if boxes and scope != "image":
        raise MedreviewError(f"a box marks one image: its class must be image-scoped, not {scope}-scoped")
    return scope


def clear_approval(session: Session, scope: str, case_id: int) -> None:
    """Drop a case's final label when it came from approving a read (or from the auto-accept rule)
    that has since changed."""
    session.execute(
        delete(FinalLabel).where(
            FinalLabel.scope == scope,
            FinalLabel.case_id == case_id,
            FinalLabel.method.in_(("approved", AUTO_ACCEPTED)),
        )
    )


# --- blinding: who may see which reads ---------------------------------------------------------


def can_see_others(store: Store, actor: Actor, image_id: int) -> bool:
    """In blinded mode an annotator sees other readers' labels and the model's output for an
    image only once they have submitted their own read of it. Reviewers always see them."""
    visible = visible_image_ids(store, actor)
    return visible is None or image_id in visible


def visible_image_ids(store: Store, actor: Actor) -> set[int] | None:
    """Images whose other reads and predictions the actor may see; None means all of them. A read
    of a study or series unblinds every image of it (the others' reads of the case sit at its key
    image, whichever slice is on screen)."""
    if actor.can("reviewer") or not get_setting(store, "blinded"):
        return None
    mine = (
        select(Annotation.scope, Annotation.case_id, Annotation.image_id)
        .join(User, User.id == Annotation.reader_id)
        .where(User.username == actor.username)
    )
    with store.db.read() as session:
        reads = session.execute(mine).all()
        visible = {row.image_id for row in reads}
        studies = [row.case_id for row in reads if row.scope == "study"]
        series = [row.case_id for row in reads if row.scope == "series"]
        if studies or series:
            visible.update(
                session.scalars(
                    select(Image.id)
                    .join(Series, Series.id == Image.series_id)
                    .where(Series.study_id.in_(studies) | Series.id.in_(series))
                )
            )
        return visible


def reads_table(store: Store, actor: Actor, include_rejected: bool = False) -> pd.DataFrame:
    """The reads ``actor`` may see: annotation_id, image_id (a case's key image), scope, case_id,
    reader, label, labels, boxes, unsure, comment, status, review_comment, updated_at. In blinded
    mode an annotator sees the reads of the images they have read themselves only (see :func:`can_see_others`)."""
    require(actor, "annotator", "see reads")
    reads = _all_reads(store, include_rejected)
    visible = visible_image_ids(store, actor)
    if visible is not None:
        reads = reads[reads["image_id"].isin(visible)].reset_index(drop=True)
    return reads


def reads_query(*conditions: ColumnElement[bool]) -> Select[Any]:
    """SELECT the columns of a read (READ_COLUMNS) for the reads meeting ``conditions``, unordered:
    the one query behind :func:`reads_table` and the Review page's pages of reads.

    ``blind_label`` is the class of the reader's first, blind read (blinded mode); it differs from
    ``label`` when ``changed_after_unblinding``."""
    blind_class = aliased(LabelClass)
    return (
        select(
            Annotation.id.label("annotation_id"),
            Annotation.image_id,
            Annotation.scope,
            Annotation.case_id,
            User.username.label("reader"),
            LabelClass.name.label("label"),
            Annotation.labels,
            Annotation.boxes,
            Annotation.unsure,
            Annotation.comment,
            Annotation.status,
            Annotation.review_comment,
            Annotation.updated_at,
            blind_class.name.label("blind_label"),
            Annotation.changed_after_unblinding,
        )
        .join(User, User.id == Annotation.reader_id)
        .outerjoin(LabelClass, LabelClass.id == Annotation.label_class_id)
        .outerjoin(blind_class, blind_class.id == Annotation.blind_label_class_id)
        .where(*conditions)
    )


READ_COLUMNS = list(reads_query().selected_columns.keys())


def _all_reads(store: Store, include_rejected: bool = False) -> pd.DataFrame:
    """Every read (for the services of this module that decide what the reads add up to)."""
    query = reads_query().order_by(Annotation.image_id, Annotation.id)
    if not include_rejected:
        query = query.where(Annotation.status != "rejected")
    with store.db.read() as session:
        rows = session.execute(query).mappings().all()
    return pd.DataFrame(rows, columns=READ_COLUMNS)


def image_facts(store: Store) -> pd.DataFrame:
    """One row per stored image: image_id, patient_key, display_name, sha256, source_sha256,
    media_type, rows, columns, study_uid, series_uid (the store's, de-identified: the keys labels are
    joined to, exported with and imported by)."""
    query = (
        select(
            Image.id.label("image_id"),
            Patient.patient_key,
            Image.display_name,
            Image.sha256,
            Image.source_sha256,
            Image.media_type,
            Image.rows,
            Image.columns,
            Study.study_uid,
            Series.series_uid,
        )
        .join(Series, Series.id == Image.series_id)
        .join(Study, Study.id == Series.study_id)
        .join(Patient, Patient.id == Study.patient_id)
    )
    with store.db.read() as session:
        return pd.DataFrame(session.execute(query).mappings().all(), columns=list(query.selected_columns.keys()))


def labelled_image_ids() -> Select[tuple[int]]:
    """SQL for the ids of labelled images: those with at least one image-level read not rejected
    by a reviewer (a study's read, kept at its key image, does not label that image)."""
    return select(Annotation.image_id).where(Annotation.status != "rejected", Annotation.scope == "image").distinct()


def unlabelled_image_ids(store: Store) -> list[int]:
    """Ids of unlabelled images (no read, or only rejected ones), in id order."""
    with store.db.read() as session:
        return list(session.scalars(select(Image.id).where(Image.id.not_in(labelled_image_ids())).order_by(Image.id)))


def current_labels(store: Store, source: str = "final", scope: str | None = "image") -> pd.DataFrame:
    """The label of each labelled case at ``scope`` (None: every scope): image_id (the case's key
    image for a study or series), label, method, patient_key, display_name, sha256, source_sha256,
    media_type, rows, columns, scope, case_id.

    Images by default: the callers that predate scopes (image-level training, prediction, the
    counts) must not take a study's label for its key image's.

    ``source="final"``: one row per case: its adjudicated/approved final label, else the class
    all its non-rejected reads agree on ("unanimous"); cases whose readers disagree are left out.
    ``source="all"``: one row per non-rejected single-choice read (a case may appear more than
    once, with different labels).
    """
    if source not in LABEL_SOURCES:
        raise MedreviewError(f"unknown label source '{source}' (choose one of {', '.join(LABEL_SOURCES)})")
    if scope is not None:
        check_scope(scope)
    reads = _all_reads(store)
    reads = reads[reads["label"].notna()]
    case = ["scope", "case_id"]
    if source == "all":
        labelled = reads[["image_id", *case, "label"]].assign(method="read")
    else:
        with store.db.read() as session:
            decided = pd.DataFrame(
                session.execute(
                    select(
                        FinalLabel.image_id,
                        FinalLabel.scope,
                        FinalLabel.case_id,
                        LabelClass.name.label("label"),
                        FinalLabel.method,
                    ).join(LabelClass, LabelClass.id == FinalLabel.label_class_id)
                )
                .mappings()
                .all(),
                columns=["image_id", *case, "label", "method"],
            )
        # A case's reads may sit at different key images (an image added before the first one
        # after some reads): the case keeps its first.
        reads = reads.assign(case_key=case_keys(reads["scope"], reads["case_id"]))
        per_case = reads.groupby("case_key")
        agreed = per_case.agg(
            image_id=("image_id", "min"),
            scope=("scope", "first"),
            case_id=("case_id", "first"),
            label=("label", "first"),
        )
        agreed = agreed[per_case["label"].nunique() == 1].assign(method="unanimous")
        agreed = agreed[~agreed.index.isin(case_keys(decided["scope"], decided["case_id"]))]
        agreed = agreed.reset_index(drop=True)[["image_id", *case, "label", "method"]]
        labelled = pd.concat([decided, agreed], ignore_index=True)
    if scope is not None:
        labelled = labelled[labelled["scope"] == scope]
    table = labelled.merge(image_facts(store), on="image_id", how="inner")
    columns = [
        "image_id",
        "label",
        "method",
        "patient_key",
        "display_name",
        "sha256",
        "source_sha256",
        "media_type",
        "rows",
        "columns",
        *case,
    ]
    return table[columns].sort_values("image_id", kind="stable").reset_index(drop=True)
