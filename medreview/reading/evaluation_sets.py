"""Evaluation sets: frozen sets of labelled images that training never uses.

An admin freezes a set from images that have a final label (:func:`~medreview.reading.reads.current_labels`):
the set keeps each image with the label it had at that moment, and it is frozen when it is made (no
image is added or removed, and relabelling an image later does not change the set), so every model
version is scored on the same question. A different question is a new set, under a new name.

Training leaves out every image of every set *and every other image of their patients*
(:func:`evaluation_patients`), so no patient is learnt from and then scored on.

A set holds cases at one scope (medreview.reading.cases): images, or the studies or series of a
study- or series-scoped class, each once with its final label (a member row keeps the case's key
image). The figures that count a set's "images" count its cases.

One set is the default (the first one made, until an admin chooses another): a newly trained model
version becomes active by itself only if it is not worse there (:mod:`medreview.ml.evaluation`).
"""

from __future__ import annotations

import datetime as dt
from collections import Counter
from dataclasses import dataclass

import pandas as pd
from sqlalchemy import func, insert, select
from sqlalchemy.exc import IntegrityError

from medreview.errors import MedreviewError, NotFoundError
from medreview.reading.cases import case_in, check_scope
from medreview.reading.reads import current_labels
from medreview.store import Store
from medreview.store.models import EvaluationSet, EvaluationSetImage, Image, Patient, Series, Study, as_utc
from medreview.team.audit import record
from medreview.team.roles import Actor, require

__all__ = [
    "MAX_NAME_LENGTH",
    "EvaluationSetSummary",
    "create_evaluation_set",
    "default_evaluation_set",
    "evaluation_patients",
    "evaluation_set_images",
    "find_evaluation_set",
    "list_evaluation_sets",
    "new_set_name",
    "set_default_evaluation_set",
]

MAX_NAME_LENGTH = 64  # EvaluationSet.name is String(64)


@dataclass(frozen=True)
class EvaluationSetSummary:
    id: int
    name: str
    description: str
    is_default: bool
    created_by: str
    created_at: dt.datetime
    images: int
    patients: int
    class_counts: dict[str, int]  # frozen label -> images, most frequent first


def create_evaluation_set(
    store: Store, actor: Actor, name: str, image_ids: list[int], description: str = "", scope: str = "image"
) -> EvaluationSetSummary:
    """Freeze the cases at ``scope`` holding ``image_ids`` (each case with a final label: any image
    of a study names the study) as the evaluation set ``name``; audited.

    The first set becomes the default one. Sets may share images (a set of hard cases drawn from a
    larger one). Refuses, in plain words: a blank, over-long or taken name, no images, an image
    without a final label."""
    require(actor, "admin", "freeze an evaluation set")
    name = new_set_name(store, name)
    check_scope(scope)
    chosen = sorted({int(image_id) for image_id in image_ids})
    if not chosen:
        raise MedreviewError("choose at least one labelled image for the evaluation set")
    # case id -> key image id (sorted by case id)
    with store.db.read() as session:
        cases = dict(sorted(case_in(session, image_id, scope) for image_id in chosen))
    wanted = list(cases)
    labels = current_labels(store, "final", scope=scope).set_index("case_id")["label"]
    unlabelled = [case_id for case_id in wanted if case_id not in labels.index]
    if unlabelled:
        what = "images" if scope == "image" else f"{scope} cases"
        raise MedreviewError(
            f"{len(unlabelled)} of the {len(wanted)} chosen {what} have no final label ({scope} "
            f"{unlabelled[0]} is one): an evaluation set holds labelled {what} only. Label, approve or "
            "adjudicate them first."
        )
    with store.db.write() as session:
        if session.scalar(select(EvaluationSet.id).where(EvaluationSet.name == name)) is not None:
            raise MedreviewError(
                f"there is an evaluation set named '{name}' already; sets are frozen: choose a new name"
            )
        has_default = session.scalar(select(EvaluationSet.id).where(EvaluationSet.is_default.is_(True)))
        evaluation_set = EvaluationSet(
            name=name, description=description, created_by=actor.username, is_default=has_default is None
        )
        session.add(evaluation_set)
        try:
            session.flush()
        except IntegrityError as error:  # the same name, or a first default, made at the same moment
            raise MedreviewError("another evaluation set was made at the same moment; look again and retry") from error
        session.execute(
            insert(EvaluationSetImage),
            [
                {
                    "evaluation_set_id": evaluation_set.id,
                    "image_id": cases[case_id],
                    "scope": scope,
                    "case_id": case_id,
                    "label": str(labels[case_id]),
                }
                for case_id in wanted
            ],
        )
        class_counts = dict(Counter(str(labels[case_id]) for case_id in wanted).most_common())
        record(
            session,
            actor.username,
            "evaluation_set.create",
            "evaluation_set",
            evaluation_set.id,
            name=name,
            images=len(wanted),
            classes=class_counts,
            default=evaluation_set.is_default,
        )
        set_id = evaluation_set.id
    return _summaries(store, set_id)[0]


def new_set_name(store: Store, name: str) -> str:
    """``name`` with its spaces tidied, when it can name a new set; MedreviewError saying why not."""
    name = " ".join(str(name).split())
    if not name:
        raise MedreviewError("give the evaluation set a name")
    if len(name) > MAX_NAME_LENGTH:
        raise MedreviewError(f"an evaluation set's name has at most {MAX_NAME_LENGTH} characters")
    with store.db.read() as session:
        if session.scalar(select(EvaluationSet.id).where(EvaluationSet.name == name)) is not None:
            raise MedreviewError(
                f"there is an evaluation set named '{name}' already; sets are frozen: choose a new name"
            )
    return name


def list_evaluation_sets(store: Store) -> list[EvaluationSetSummary]:
    """Every evaluation set, the default one first, then newest first."""
    return _summaries(store)


def default_evaluation_set(store: Store) -> EvaluationSetSummary | None:
    return next((summary for summary in _summaries(store) if summary.is_default), None)


def find_evaluation_set(store: Store, name: str | None = None) -> EvaluationSetSummary:
    """The set named ``name``, or the default set when ``name`` is None; NotFoundError otherwise."""
    summaries = _summaries(store)
    if not summaries:
        raise NotFoundError("there is no evaluation set yet: freeze one on the Train page first")
    if name is None:
        found = next((summary for summary in summaries if summary.is_default), None)
    else:
        found = next((summary for summary in summaries if summary.name == " ".join(name.split())), None)
    if found is None:
        known = ", ".join(f"'{summary.name}'" for summary in summaries)
        raise NotFoundError(f"there is no evaluation set named '{name}' (there are: {known})")
    return found


def set_default_evaluation_set(store: Store, actor: Actor, name: str) -> None:
    """Make ``name`` the default set, the one automatic activation compares on; audited."""
    require(actor, "admin", "choose the default evaluation set")
    target = find_evaluation_set(store, name)
    with store.db.write() as session:
        previous = session.scalars(select(EvaluationSet).where(EvaluationSet.is_default.is_(True))).all()
        for evaluation_set in previous:
            evaluation_set.is_default = False
        session.flush()
        session.get(EvaluationSet, target.id).is_default = True
        try:
            session.flush()
        except IntegrityError as error:
            raise MedreviewError("another set was made the default at the same moment; look again and retry") from error
        record(
            session,
            actor.username,
            "evaluation_set.default",
            "evaluation_set",
            target.id,
            name=target.name,
            old=[evaluation_set.name for evaluation_set in previous],
        )


def evaluation_set_images(store: Store, evaluation_set_id: int) -> pd.DataFrame:
    """The cases of a set with their frozen labels: image_id (a study's or series' key image),
    label, sha256, media_type, display_name, patient_key, scope, case_id, in image id order."""
    query = (
        select(
            EvaluationSetImage.image_id,
            EvaluationSetImage.label,
            Image.sha256,
            Image.media_type,
            Image.display_name,
            Patient.patient_key,
            EvaluationSetImage.scope,
            EvaluationSetImage.case_id,
        )
        .join(Image, Image.id == EvaluationSetImage.image_id)
        .join(Series, Series.id == Image.series_id)
        .join(Study, Study.id == Series.study_id)
        .join(Patient, Patient.id == Study.patient_id)
        .where(EvaluationSetImage.evaluation_set_id == evaluation_set_id)
        .order_by(EvaluationSetImage.image_id)
    )
    with store.db.read() as session:
        return pd.DataFrame(session.execute(query).mappings().all(), columns=list(query.selected_columns.keys()))


def evaluation_patients(store: Store) -> set[str]:
    """The patient keys of every image in any evaluation set: training leaves out all their images."""
    query = (
        select(Patient.patient_key)
        .join(Study, Study.patient_id == Patient.id)
        .join(Series, Series.study_id == Study.id)
        .join(Image, Image.series_id == Series.id)
        .join(EvaluationSetImage, EvaluationSetImage.image_id == Image.id)
        .distinct()
    )
    with store.db.read() as session:
        return set(session.scalars(query))


def _summaries(store: Store, evaluation_set_id: int | None = None) -> list[EvaluationSetSummary]:
    sets_query = select(EvaluationSet).order_by(EvaluationSet.is_default.desc(), EvaluationSet.id.desc())
    counts_query = select(EvaluationSetImage.evaluation_set_id, EvaluationSetImage.label, func.count()).group_by(
        EvaluationSetImage.evaluation_set_id, EvaluationSetImage.label
    )
    patients_query = (
        select(EvaluationSetImage.evaluation_set_id, func.count(func.distinct(Study.patient_id)))
        .join(Image, Image.id == EvaluationSetImage.image_id)
        .join(Series, Series.id == Image.series_id)
        .join(Study, Study.id == Series.study_id)
        .group_by(EvaluationSetImage.evaluation_set_id)
    )
    if evaluation_set_id is not None:
        sets_query = sets_query.where(EvaluationSet.id == evaluation_set_id)
        counts_query = counts_query.where(EvaluationSetImage.evaluation_set_id == evaluation_set_id)
        patients_query = patients_query.where(EvaluationSetImage.evaluation_set_id == evaluation_set_id)
    with store.db.read() as session:
        sets = session.scalars(sets_query).all()
        class_counts: dict[int, Counter[str]] = {}
        for set_id, label, count in session.execute(counts_query):
            class_counts.setdefault(set_id, Counter())[label] = count
        patients = dict(session.execute(patients_query).tuples().all())
        return [
            EvaluationSetSummary(
                id=evaluation_set.id,
                name=evaluation_set.name,
                description=evaluation_set.description,
                is_default=evaluation_set.is_default,
                created_by=evaluation_set.created_by,
                created_at=as_utc(evaluation_set.created_at),
                images=sum(class_counts.get(evaluation_set.id, Counter()).values()),
                patients=patients.get(evaluation_set.id, 0),
                class_counts=dict(class_counts.get(evaluation_set.id, Counter()).most_common()),
            )
            for evaluation_set in sets
        ]
