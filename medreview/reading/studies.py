"""Reader studies on frozen evaluation sets, and gold-standard checks in everyday reading.

A study (an admin makes it) asks whether readers read the set's cases as well as a model version,
and whether they read better with it: each reader rates each case in each *arm* ("unaided", and
"aided": the version's calibrated probability of the positive class and its heat map shown). The
set's frozen labels are the truth (a case is positive when its label is the study's
``positive_class``).

Design. Each reader's cases come in a random order drawn from the study's stored seed and the
reader's id (so one reader's order does not depend on who else reads). "crossover": the arms one
after the other, readers in turn starting with the first or the second arm (counterbalanced), and
the second arm opens for a reader only ``washout_days`` after they rated the last case of the
first. "crossed": every (case, arm) pair in one shuffled list, no washout.

Blinding. A reader gets one case at a time (:func:`next_case`): the image, and in the aided arm the
model's probability and map; never the truth, other readers' ratings or (unaided) the model. A
rating is accepted only for the case being read and never changed after (:func:`rate_case`).

Time per case. The store notes when a case was first given to the reader (``shown_at``) and the
rating's arrival. The study's viewer reports its active reading seconds (ui/viewer/src/activetime.ts:
the tab visible, idle gaps over a minute left out), and ``seconds`` and ``active_seconds`` are that
figure (never more than the interval). Without a report the interval counts, and ``active_seconds``
at most :data:`ACTIVE_SECONDS_CAP` per case: a reader who left a case on screen over lunch does not
make the arm look slow. Per reader and arm: the median and total, and cases per hour.

Results (:func:`study_results`): per reader and arm sensitivity and specificity at their calls
with Wilson intervals and the AUC of their ratings; the model's ROC curve on the set with each
reader's operating point; the model against each reader and against the average reader (DeLong);
and the MRMC analysis of the arms (:func:`medreview.reading.mrmc.analyze`).

Gold-standard checks (:func:`mix_gold`): cases of an evaluation set put on readers' worklists at
a set rate, as ordinary assignments placed among their cases (nothing tells the reader);
:func:`gold_scores` scores each reader's reads of them against the set's labels.
"""

from __future__ import annotations

import datetime as dt
import io
import json
import math
import secrets
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
import pandas as pd
from sqlalchemy import and_, func, select

from medreview.errors import MedreviewError, NotFoundError
from medreview.reading import mrmc
from medreview.reading.evaluation_sets import find_evaluation_set
from medreview.store import Store
from medreview.store.models import (
    Annotation,
    Assignment,
    EvaluationSet,
    EvaluationSetImage,
    GoldCase,
    LabelClass,
    ModelVersion,
    Prediction,
    ReaderStudy,
    ReaderStudyRating,
    ReaderStudyReader,
    User,
    as_utc,
    utcnow,
)
from medreview.team.audit import record
from medreview.team.roles import Actor, require

__all__ = [
    "ACTIVE_SECONDS_CAP",
    "ARMS",
    "DESIGNS",
    "FIVE_POINT",
    "SCALES",
    "StudyCase",
    "StudySummary",
    "StudyWait",
    "create_study",
    "empirical_roc",
    "export_results",
    "find_study",
    "gold_scores",
    "gold_trend",
    "list_studies",
    "mix_gold",
    "next_case",
    "rate_case",
    "ratings_csv",
    "ratings_frame",
    "reading_schedule",
    "results_json",
    "roc_png",
    "score_of",
    "study_heatmap",
    "study_results",
    "timing_table",
]

ARMS = ("unaided", "aided")
DESIGNS = ("crossover", "crossed")
SCALES = ("confidence", "five_point")
# The 5-point scale, 1..5: a rating of 3 or more is a positive call.
FIVE_POINT = {
    1: "definitely negative",
    2: "probably negative",
    3: "possibly positive",
    4: "probably positive",
    5: "definitely positive",
}
# At most this many seconds of one case count as active reading (see the module docstring).
ACTIVE_SECONDS_CAP = 120.0


@dataclass(frozen=True)
class StudySummary:
    id: int
    name: str
    evaluation_set: str
    model_version_id: int | None
    positive_class: str
    arms: list[str]
    design: str
    washout_days: int
    seed: int
    scale: str
    readers: list[str]
    cases: int
    rated: int  # ratings made, all readers and arms
    created_by: str
    created_at: dt.datetime


@dataclass(frozen=True)
class StudyCase:
    """The case a reader reads now: all that is sent to them. ``model_probability`` and
    ``heatmap_path`` only in the aided arm (None otherwise)."""

    study_id: int
    arm: str
    member_id: int
    image_id: int
    order: int  # 1-based place in this arm's list
    of: int  # cases in this arm
    done: int  # ratings made by this reader, all arms
    total: int  # ratings this reader makes in the study
    classes: list[str]
    scale: str
    positive_class: str
    model_probability: float | None = None
    model_class: str | None = None
    heatmap_path: str | None = None


@dataclass(frozen=True)
class StudyWait:
    """Nothing to read now: ``done`` (every case rated) or the next arm opens at ``opens_at``."""

    study_id: int
    done: bool
    opens_at: dt.datetime | None
    message: str


# --- making a study --------------------------------------------------------------------------------


def create_study(
    store: Store,
    actor: Actor,
    name: str,
    evaluation_set: str,
    readers: list[str],
    *,
    positive_class: str,
    arms: tuple[str, ...] = ARMS,
    design: str = "crossover",
    washout_days: int = 0,
    scale: str = "confidence",
    model_version_id: int | None = None,
    seed: int | None = None,
) -> StudySummary:
    """Make a reader study on the frozen set ``evaluation_set``; audited. Refuses, in plain words: a
    blank or taken name, an unknown reader, an arm or design or scale not offered, a positive class
    the set does not hold (or holds only), an aided arm without a model version whose predictions
    cover every case of the set, a negative washout."""
    require(actor, "admin", "create a reader study")
    name = " ".join(str(name).split())
    if not name or len(name) > 64:
        raise MedreviewError("give the study a name of 1 to 64 characters")
    arms = tuple(dict.fromkeys(arms))
    if not arms or any(arm not in ARMS for arm in arms):
        raise MedreviewError(f"arms are one or both of {', '.join(ARMS)}, not {', '.join(arms) or 'none'}")
    if design not in DESIGNS:
        raise MedreviewError(f"the design is one of {', '.join(DESIGNS)}, not {design!r}")
    if scale not in SCALES:
        raise MedreviewError(f"the rating scale is one of {', '.join(SCALES)}, not {scale!r}")
    if int(washout_days) < 0:
        raise MedreviewError("the washout is a number of days, 0 or more")
    readers = list(dict.fromkeys(" ".join(str(r).split()) for r in readers if str(r).strip()))
    if not readers:
        raise MedreviewError("choose at least one reader")
    target = find_evaluation_set(store, evaluation_set)
    if target.class_counts.get(positive_class, 0) == 0:
        raise MedreviewError(
            f"the set '{target.name}' holds no case labelled '{positive_class}' "
            f"(it holds {', '.join(target.class_counts) or 'nothing'})"
        )
    if target.class_counts[positive_class] == target.images:
        raise MedreviewError(f"every case of '{target.name}' is '{positive_class}': a study needs negative cases too")
    with store.db.write() as session:
        if session.scalar(select(ReaderStudy.id).where(ReaderStudy.name == name)) is not None:
            raise MedreviewError(f"there is a reader study named '{name}' already")
        members = session.execute(
            select(EvaluationSetImage.id, EvaluationSetImage.image_id, EvaluationSetImage.scope).where(
                EvaluationSetImage.evaluation_set_id == target.id
            )
        ).all()
        if any(member.scope != "image" for member in members):
            raise MedreviewError("reader studies read image cases; this set holds study or series cases")
        user_ids = dict(
            session.execute(select(User.username, User.id).where(User.username.in_(readers))).tuples().all()
        )
        unknown = [reader for reader in readers if reader not in user_ids]
        if unknown:
            raise MedreviewError(f"no such user: {', '.join(unknown)}")
        if "aided" in arms:
            if model_version_id is None or session.get(ModelVersion, model_version_id) is None:
                raise MedreviewError("the aided arm shows a model's output: choose a model version")
            predicted = set(
                session.scalars(
                    select(Prediction.image_id).where(
                        Prediction.model_version_id == model_version_id,
                        Prediction.scope == "image",  # a case model's call is no image's
                        Prediction.image_id.in_([member.image_id for member in members]),
                    )
                )
            )
            missing = len(members) - len(predicted)
            if missing:
                raise MedreviewError(
                    f"model version {model_version_id} has no stored image prediction for {missing} of the "
                    f"{len(members)} cases of '{target.name}': run it on them (Predictions page) first"
                )
        study = ReaderStudy(
            name=name,
            evaluation_set_id=target.id,
            model_version_id=model_version_id,
            positive_class=positive_class,
            arms=list(arms),
            design=design,
            washout_days=int(washout_days),
            seed=int(seed) if seed is not None else secrets.randbits(31),
            scale=scale,
            created_by=actor.username,
        )
        session.add(study)
        session.flush()
        for position, reader in enumerate(readers):
            session.add(ReaderStudyReader(study_id=study.id, reader_id=user_ids[reader], position=position))
        record(
            session,
            actor.username,
            "reader_study.create",
            "reader_study",
            study.id,
            name=name,
            evaluation_set=target.name,
            readers=readers,
            arms=list(arms),
            design=design,
            washout_days=int(washout_days),
            scale=scale,
            model_version=model_version_id,
            seed=study.seed,
        )
        study_id = study.id
    return find_study(store, actor, study_id)


def list_studies(store: Store, actor: Actor, reading: bool = False) -> list[StudySummary]:
    """Every study for a reviewer or admin (newest first); for an annotator, or with ``reading``,
    the ones the actor reads."""
    require(actor, "annotator", "see reader studies")
    with store.db.read() as session:
        query = select(ReaderStudy.id).order_by(ReaderStudy.id.desc())
        if reading or not actor.can("reviewer"):
            query = query.join(ReaderStudyReader, ReaderStudyReader.study_id == ReaderStudy.id).join(
                User, User.id == ReaderStudyReader.reader_id
            )
            query = query.where(User.username == actor.username)
        ids = list(session.scalars(query))
    return [_summary(store, study_id) for study_id in ids]


def find_study(store: Store, actor: Actor, study: int | str) -> StudySummary:
    """A study by id or name; NotFoundError (also for an annotator who does not read it)."""
    for summary in list_studies(store, actor):
        if str(study) in (str(summary.id), summary.name):
            return summary
    raise NotFoundError(f"there is no reader study '{study}'")


def _summary(store: Store, study_id: int) -> StudySummary:
    with store.db.read() as session:
        study = session.get(ReaderStudy, study_id)
        readers = list(
            session.scalars(
                select(User.username)
                .join(ReaderStudyReader, ReaderStudyReader.reader_id == User.id)
                .where(ReaderStudyReader.study_id == study_id)
                .order_by(ReaderStudyReader.position)
            )
        )
        cases = session.scalar(
            select(func.count()).where(EvaluationSetImage.evaluation_set_id == study.evaluation_set_id)
        )
        rated = session.scalar(
            select(func.count()).where(ReaderStudyRating.study_id == study_id, ReaderStudyRating.rated_at.is_not(None))
        )
        set_name = session.get(EvaluationSet, study.evaluation_set_id).name
        return StudySummary(
            id=study.id,
            name=study.name,
            evaluation_set=set_name,
            model_version_id=study.model_version_id,
            positive_class=study.positive_class,
            arms=list(study.arms),
            design=study.design,
            washout_days=study.washout_days,
            seed=study.seed,
            scale=study.scale,
            readers=readers,
            cases=int(cases or 0),
            rated=int(rated or 0),
            created_by=study.created_by,
            created_at=as_utc(study.created_at),
        )


# --- the reading schedule -----------------------------------------------------------------------


def reading_schedule(
    seed: int, reader_id: int, position: int, member_ids: list[int], arms: list[str], design: str
) -> list[list[tuple[str, int]]]:
    """A reader's reading, as blocks of (arm, member id) read in turn: per arm a block in
    "crossover" (the arms' order reversed for every second reader, ``position`` odd), one shuffled
    block of every (arm, case) pair in "crossed". The order comes from ``seed`` and the reader's id
    only: the same study gives each reader the same order on every call."""
    rng = np.random.default_rng([int(seed), int(reader_id)])
    members = sorted(member_ids)
    if design == "crossed":
        pairs = [(arm, member) for arm in arms for member in members]
        return [[pairs[i] for i in rng.permutation(len(pairs))]]
    ordered_arms = list(arms) if position % 2 == 0 else list(reversed(arms))
    # One permutation per arm of the study (in the study's arm order), so the draw of an arm's
    # order does not depend on which arm this reader reads first.
    orders = {arm: [members[i] for i in rng.permutation(len(members))] for arm in arms}
    return [[(arm, member) for member in orders[arm]] for arm in ordered_arms]


def _reader_context(session: Any, actor: Actor, study_id: int) -> tuple[ReaderStudy, int, list[list[tuple[str, int]]]]:
    study = session.get(ReaderStudy, study_id)
    if study is None:
        raise NotFoundError(f"there is no reader study {study_id}")
    row = session.execute(
        select(ReaderStudyReader.reader_id, ReaderStudyReader.position)
        .join(User, User.id == ReaderStudyReader.reader_id)
        .where(ReaderStudyReader.study_id == study_id, User.username == actor.username)
    ).first()
    if row is None:
        raise NotFoundError(f"{actor.username} is not a reader of the study '{study.name}'")
    members = list(
        session.scalars(
            select(EvaluationSetImage.id).where(EvaluationSetImage.evaluation_set_id == study.evaluation_set_id)
        )
    )
    schedule = reading_schedule(study.seed, row.reader_id, row.position, members, list(study.arms), study.design)
    return study, row.reader_id, schedule


def next_case(store: Store, actor: Actor, study_id: int, now: dt.datetime | None = None) -> StudyCase | StudyWait:
    """The case the reader reads now (noted as shown, the first time), or why there is none: every
    case rated, or the next arm opens after the washout."""
    require(actor, "annotator", "read a reader study")
    now = now or utcnow()
    with store.db.write() as session:
        return _next_case(session, actor, study_id, now)


def _next_case(session: Any, actor: Actor, study_id: int, now: dt.datetime) -> StudyCase | StudyWait:
    """:func:`next_case` inside the caller's write transaction (noting the case as shown)."""
    study, reader_id, schedule = _reader_context(session, actor, study_id)
    ratings = {
        (row.arm, row.member_id): row
        for row in session.scalars(
            select(ReaderStudyRating).where(
                ReaderStudyRating.study_id == study_id, ReaderStudyRating.reader_id == reader_id
            )
        )
    }
    done = sum(1 for row in ratings.values() if row.rated_at is not None)
    total = sum(len(block) for block in schedule)
    finished_block_at: dt.datetime | None = None
    for block in schedule:
        pending = [(arm, member) for arm, member in block if _rated(ratings.get((arm, member))) is None]
        if not pending:
            finished_block_at = max(as_utc(ratings[pair].rated_at) for pair in block)
            continue
        if finished_block_at is not None and study.washout_days:
            opens_at = finished_block_at + dt.timedelta(days=study.washout_days)
            if now < opens_at:
                return StudyWait(
                    study_id,
                    False,
                    opens_at,
                    f"The next arm of '{study.name}' opens on {opens_at:%Y-%m-%d %H:%M} UTC, "
                    f"{study.washout_days} days after you finished the first (washout).",
                )
        arm, member_id = pending[0]
        order = [m for a, m in block if a == arm].index(member_id) + 1
        of = sum(1 for a, _ in block if a == arm)
        member = session.get(EvaluationSetImage, member_id)
        row = ratings.get((arm, member_id))
        if row is None:
            session.add(
                ReaderStudyRating(
                    study_id=study_id,
                    reader_id=reader_id,
                    arm=arm,
                    member_id=member_id,
                    image_id=member.image_id,
                    reading_order=order,
                    shown_at=now,
                )
            )
        classes = list(
            session.scalars(select(LabelClass.name).where(LabelClass.active.is_(True)).order_by(LabelClass.position))
        )
        aided: dict[str, Any] = {}
        if arm == "aided":
            prediction = session.scalar(
                select(Prediction).where(
                    Prediction.model_version_id == study.model_version_id, Prediction.image_id == member.image_id
                )
            )
            if prediction is not None:
                aided = {
                    "model_probability": float((prediction.probabilities or {}).get(study.positive_class, math.nan)),
                    "model_class": prediction.predicted_class,
                    "heatmap_path": prediction.heatmap_path,
                }
        return StudyCase(
            study_id=study_id,
            arm=arm,
            member_id=member_id,
            image_id=member.image_id,
            order=order,
            of=of,
            done=done,
            total=total,
            classes=classes,
            scale=study.scale,
            positive_class=study.positive_class,
            **aided,
        )
    return StudyWait(study_id, True, None, f"You have rated every case of '{study.name}'. Thank you.")


def study_heatmap(store: Store, actor: Actor, case: StudyCase) -> np.ndarray | None:
    """The model's map of the positive class for an aided case, (h, w) float32 in [0, 1]: the map
    the Predictions page shows when it opens the image (Grad-CAM of frame 0 at the file's own
    display, :func:`medreview.ml.explanations.request_view_maps`, cached once someone opened it
    there), else the prediction job's stored map, the same computation on the same input. None in
    the unaided arm or when neither map is stored; NotFoundError for someone who does not read the study."""
    require(actor, "annotator", "read a reader study")
    if case.arm != "aided":
        return None
    # Imported here: ml sits beside reading (the map's cache belongs to ml), and only the aided
    # arm needs it.
    from medreview.ml.explanations import stored_view_maps

    with store.db.read() as session:
        study, _, _ = _reader_context(session, actor, case.study_id)
        member = session.get(EvaluationSetImage, case.member_id)
        version = session.get(ModelVersion, study.model_version_id) if study.model_version_id else None
        prediction = (
            session.scalar(
                select(Prediction).where(
                    Prediction.model_version_id == version.id, Prediction.image_id == member.image_id
                )
            )
            if version is not None and member is not None
            else None
        )
        if prediction is None or member.evaluation_set_id != study.evaluation_set_id:
            return None
        class_names = list(version.class_names)
        stored_path = prediction.heatmap_path if prediction.scope == "image" else None
    if study.positive_class not in class_names:
        return None
    maps = stored_view_maps(store, version.id, member.image_id)  # (C, h, w) float32, or None
    if maps is None and stored_path and stored_path.endswith(".npy") and store.data_path(stored_path).exists():
        maps = np.load(store.data_path(stored_path)).astype(np.float32)  # (C, h, w)
    if maps is None or maps.ndim != 3 or maps.shape[0] != len(class_names):
        return None
    return maps[class_names.index(study.positive_class)]


def _rated(row: ReaderStudyRating | None) -> dt.datetime | None:
    return None if row is None else row.rated_at


def score_of(scale: str, positive_class: str, label: str | None, confidence: float | None) -> tuple[float, bool]:
    """(score on one axis, higher = more likely positive; whether the rating calls the case positive).
    "confidence": a class and 0-100, the score 50 +- confidence / 2 (positive class +); "five_point":
    the rating 1..5 itself, 3 or more a positive call."""
    if scale == "five_point":
        if confidence is None or int(confidence) != confidence or int(confidence) not in FIVE_POINT:
            raise MedreviewError("a rating on the 5-point scale is 1, 2, 3, 4 or 5")
        return float(confidence), confidence >= 3
    if confidence is None or not 0 <= float(confidence) <= 100:
        raise MedreviewError("the confidence is a number from 0 to 100")
    if not label:
        raise MedreviewError("choose a class")
    positive = label == positive_class
    return 50.0 + (1 if positive else -1) * float(confidence) / 2, positive


def rate_case(
    store: Store,
    actor: Actor,
    study_id: int,
    member_id: int,
    arm: str,
    *,
    label: str | None = None,
    confidence: float | None = None,
    seconds: float | None = None,
    now: dt.datetime | None = None,
) -> None:
    """Rate the case the reader reads now (``member_id`` in ``arm``, as :func:`next_case` gave it);
    audited. Refused: a case rated before (a rating is never changed), a case that is not the one
    being read (the reader moved on, or has not got there), a bad rating. ``seconds``: the viewer's
    active reading seconds, when it reports them (never more than the time since the case was shown)."""
    require(actor, "annotator", "read a reader study")
    now = now or utcnow()
    # One write transaction: which case is being read, and its rating (no rating can slip in between).
    with store.db.write() as session:
        current = _next_case(session, actor, study_id, now)
        session.flush()  # the row of a case shown just now
        study, reader_id, _ = _reader_context(session, actor, study_id)
        row = session.scalar(
            select(ReaderStudyRating).where(
                ReaderStudyRating.study_id == study_id,
                ReaderStudyRating.reader_id == reader_id,
                ReaderStudyRating.arm == arm,
                ReaderStudyRating.member_id == member_id,
            )
        )
        if row is not None and row.rated_at is not None:
            raise MedreviewError("this case is rated already: a study's ratings cannot be changed once you move on")
        if not isinstance(current, StudyCase) or (current.arm, current.member_id) != (arm, member_id) or row is None:
            raise MedreviewError("this is not the case you are reading now: study cases are rated in their order")
        if label is not None and study.scale == "confidence":
            known = set(session.scalars(select(LabelClass.name).where(LabelClass.active.is_(True))))
            if label not in known:
                raise MedreviewError(f"'{label}' is not a class of this project")
        score, _ = score_of(study.scale, study.positive_class, label, confidence)
        shown = (now - as_utc(row.shown_at)).total_seconds()
        reported = seconds if seconds is not None and 0 <= seconds < 86_400 else None
        elapsed = max(0.0, min(shown, reported) if reported is not None else shown)
        row.label = label if study.scale == "confidence" else FIVE_POINT[int(confidence)]  # type: ignore[index, arg-type]
        row.confidence = float(confidence)  # type: ignore[arg-type]
        row.score = score
        row.rated_at = now
        row.seconds = round(elapsed, 2)
        # The viewer's active seconds leave out a hidden tab and idle gaps itself; without them the
        # time since the case was shown counts, up to the cap.
        row.active_seconds = round(elapsed if reported is not None else min(elapsed, ACTIVE_SECONDS_CAP), 2)
        record(
            session,
            actor.username,
            "reader_study.rate",
            "reader_study",
            study_id,
            arm=arm,
            case=member_id,
            label=row.label,
            confidence=row.confidence,
        )


# --- ratings, timing and results -------------------------------------------------------------------


RATING_COLUMNS = ("modality", "reader", "case", "truth", "rating", "arm", "order", "seconds")


def ratings_frame(store: Store, actor: Actor, study_id: int) -> pd.DataFrame:
    """The study's ratings in the long format of :mod:`medreview.reading.mrmc`: modality (= arm),
    reader, case (the set's case id), truth (1: the positive class), rating (the score), arm,
    order (1-based, in the reader's list for the arm), seconds (active seconds); also label,
    confidence, called (the positive call) for the per-reader figures."""
    require(actor, "reviewer", "see a reader study's ratings")
    with store.db.read() as session:
        study = session.get(ReaderStudy, study_id)
        if study is None:
            raise NotFoundError(f"there is no reader study {study_id}")
        rows = session.execute(
            select(
                ReaderStudyRating.arm,
                User.username,
                EvaluationSetImage.case_id,
                EvaluationSetImage.label.label("truth_label"),
                ReaderStudyRating.score,
                ReaderStudyRating.reading_order,
                ReaderStudyRating.active_seconds,
                ReaderStudyRating.label,
                ReaderStudyRating.confidence,
            )
            .join(User, User.id == ReaderStudyRating.reader_id)
            .join(EvaluationSetImage, EvaluationSetImage.id == ReaderStudyRating.member_id)
            .where(ReaderStudyRating.study_id == study_id, ReaderStudyRating.rated_at.is_not(None))
            .order_by(User.username, ReaderStudyRating.arm, ReaderStudyRating.reading_order)
        ).all()
    frame = pd.DataFrame(
        [
            {
                "modality": row.arm,
                "reader": row.username,
                "case": str(row.case_id),
                "truth": int(row.truth_label == study.positive_class),
                "rating": row.score,
                "arm": row.arm,
                "order": row.reading_order,
                "seconds": row.active_seconds,
                "label": row.label,
                "confidence": row.confidence,
                "called": bool(score_of(study.scale, study.positive_class, row.label, row.confidence)[1])
                if study.scale == "confidence"
                else bool(row.confidence >= 3),
            }
            for row in rows
        ],
        columns=[*RATING_COLUMNS, "label", "confidence", "called"],
    )
    return frame


def ratings_csv(store: Store, actor: Actor, study_id: int) -> bytes:
    """The ratings CSV (``modality,reader,case,truth,rating,arm,order,seconds``; what ``reader-study
    analyze`` reads); audited as an export."""
    frame = ratings_frame(store, actor, study_id)
    data = frame[list(RATING_COLUMNS)].to_csv(index=False).encode()
    with store.db.write() as session:
        record(
            session, actor.username, "export", "reader_study", study_id, kind="reader_study_ratings", rows=len(frame)
        )
    return data


def timing_table(ratings: pd.DataFrame) -> pd.DataFrame:
    """Per reader and arm: cases rated, median and total active seconds, cases per hour."""
    rows = []
    for (reader, arm), group in ratings.groupby(["reader", "arm"], sort=True):
        seconds = group["seconds"].dropna().astype(float)
        total = float(seconds.sum())
        rows.append(
            {
                "reader": reader,
                "arm": arm,
                "cases": len(group),
                "median_seconds": float(seconds.median()) if len(seconds) else math.nan,
                "total_seconds": total,
                "cases_per_hour": len(seconds) * 3600 / total if total > 0 else math.nan,
            }
        )
    return pd.DataFrame(rows, columns=["reader", "arm", "cases", "median_seconds", "total_seconds", "cases_per_hour"])


@dataclass
class StudyResults:
    study: StudySummary
    readers: list[dict[str, Any]]  # per reader and arm: sensitivity, specificity (Wilson), auc, point
    timing: list[dict[str, Any]]
    model: dict[str, Any] | None  # auc, roc (fpr, tpr) on the set, comparisons per arm
    analysis: dict[str, Any] | None  # mrmc.MrmcResult.as_json()
    analysis_text: str
    notes: list[str] = field(default_factory=list)


def study_results(store: Store, actor: Actor, study_id: int, covariance: mrmc.Covariance = "delong") -> StudyResults:
    """The study's figures so far (see the module docstring); what cannot be computed yet (a reader
    who has not rated every case, one class only) is said in ``notes``."""
    require(actor, "reviewer", "see a reader study's results")
    summary = find_study(store, actor, study_id)
    ratings = ratings_frame(store, actor, study_id)
    notes: list[str] = []
    readers: list[dict[str, Any]] = []
    for (reader, arm), group in ratings.groupby(["reader", "arm"], sort=True):
        truth = group["truth"].to_numpy() == 1
        called = group["called"].to_numpy(dtype=bool)
        positives, negatives = int(truth.sum()), int((~truth).sum())
        true_positive, true_negative = int((called & truth).sum()), int((~called & ~truth).sum())
        sensitivity_ci = mrmc.wilson_interval(true_positive, positives)
        specificity_ci = mrmc.wilson_interval(true_negative, negatives)
        auc = (
            float(mrmc.empirical_auc(group["rating"].to_numpy(dtype=float), truth))
            if positives and negatives
            else math.nan
        )
        readers.append(
            {
                "reader": reader,
                "arm": arm,
                "roc": empirical_roc(group["rating"].to_numpy(dtype=float), truth),
                "cases": len(group),
                "sensitivity": true_positive / positives if positives else math.nan,
                "sensitivity_ci": list(sensitivity_ci),
                "specificity": true_negative / negatives if negatives else math.nan,
                "specificity_ci": list(specificity_ci),
                "auc": auc,
            }
        )
    timing = timing_table(ratings).to_dict(orient="records")
    model = _model_figures(store, summary, ratings, notes)
    analysis: dict[str, Any] | None = None
    analysis_text = ""
    if ratings.empty:
        notes.append("No ratings yet.")
    else:
        try:
            result = mrmc.analyze(ratings, covariance)
        except mrmc.RatingsError as error:
            notes.append(f"The MRMC analysis waits for complete ratings: {error}")
        else:
            analysis, analysis_text = result.as_json(), result.as_text()
    return StudyResults(summary, readers, timing, model, analysis, analysis_text, notes)


def empirical_roc(ratings: np.ndarray, truth: np.ndarray) -> dict[str, list[float]]:
    """A reader's empirical ROC curve from their ratings: (1 - specificity, sensitivity) when every
    rating at or above each distinct rating counts as positive, from (0, 0) to (1, 1). The area under
    it (trapezoids) is the reader's Mann-Whitney AUC with ties as 1/2."""
    truth = np.asarray(truth, dtype=bool)
    positives, negatives = int(truth.sum()), int((~truth).sum())
    if not positives or not negatives:
        return {"fpr": [], "tpr": []}
    thresholds = np.unique(ratings)[::-1]
    tpr = [0.0] + [float((ratings[truth] >= value).sum() / positives) for value in thresholds]
    fpr = [0.0] + [float((ratings[~truth] >= value).sum() / negatives) for value in thresholds]
    return {"fpr": fpr, "tpr": tpr}


def _model_figures(
    store: Store, summary: StudySummary, ratings: pd.DataFrame, notes: list[str]
) -> dict[str, Any] | None:
    """The model version's ROC on the set and DeLong comparisons with the readers who rated every case."""
    if summary.model_version_id is None:
        return None
    with store.db.read() as session:
        study = session.get(ReaderStudy, summary.id)
        rows = session.execute(
            select(EvaluationSetImage.case_id, EvaluationSetImage.label, Prediction.probabilities)
            .join(
                Prediction,
                (Prediction.image_id == EvaluationSetImage.image_id)
                & (Prediction.model_version_id == study.model_version_id),
            )
            .where(EvaluationSetImage.evaluation_set_id == study.evaluation_set_id)
            .order_by(EvaluationSetImage.case_id)
        ).all()
    if not rows:
        notes.append("The model version has no predictions on the set.")
        return None
    cases = [str(row.case_id) for row in rows]
    truth = np.array([row.label == summary.positive_class for row in rows])
    scores = np.array([float((row.probabilities or {}).get(summary.positive_class, math.nan)) for row in rows])
    if truth.all() or not truth.any() or not np.isfinite(scores).all():
        notes.append("The model's ROC needs positive and negative cases with a probability of the positive class.")
        return None
    from sklearn.metrics import roc_curve  # imported here: 1.4 s, paid only when results are drawn

    fpr, tpr, _ = roc_curve(truth, scores)
    figures: dict[str, Any] = {
        "auc": float(mrmc.empirical_auc(scores, truth)),
        "roc": {"fpr": fpr.tolist(), "tpr": tpr.tolist()},
        "against_readers": [],
        "against_average_reader": [],
    }
    model_by_case = pd.Series(scores, index=cases)
    for arm, arm_ratings in ratings.groupby("arm", sort=True):
        table = arm_ratings.pivot(index="case", columns="reader", values="rating").reindex(cases)
        complete = [reader for reader in table.columns if table[reader].notna().all()]
        for reader in complete:
            test = mrmc.delong_paired_test(truth, model_by_case.to_numpy(), table[reader].to_numpy(dtype=float))
            figures["against_readers"].append({"arm": arm, "reader": reader, **asdict(test)})
        if complete:
            figures["against_average_reader"].append(
                {"arm": arm, "readers": len(complete), **_model_vs_average(truth, scores, table[complete].to_numpy().T)}
            )
    return figures


def _model_vs_average(truth: np.ndarray, model: np.ndarray, readers: np.ndarray) -> dict[str, float | None]:
    """The model's AUC minus the readers' average AUC on the same cases, DeLong's covariance of the
    model's and the readers' AUCs giving the variance of that contrast (readers fixed: a statement
    about these readers, not readers at large). ``readers`` (R, N)."""
    from scipy import stats

    ratings = np.vstack([model[None, :], readers.astype(float)])  # (1 + R, N)
    auc = mrmc.empirical_auc(ratings, truth)
    contrast = np.concatenate([[1.0], np.full(len(readers), -1.0 / len(readers))])
    variance = float(contrast @ mrmc.delong_covariance(ratings, truth) @ contrast)
    difference = float(contrast @ auc)
    std_error = math.sqrt(max(variance, 0.0))
    p_value = float(2 * stats.norm.sf(abs(difference) / std_error)) if std_error > 0 else None
    return {
        "model_auc": float(auc[0]),
        "average_reader_auc": float(auc[1:].mean()),
        "difference": difference,
        "std_error": std_error,
        "ci_low": difference - 1.959963984540054 * std_error,
        "ci_high": difference + 1.959963984540054 * std_error,
        "p_value": p_value,
    }


def results_json(results: StudyResults) -> dict[str, Any]:
    """The results as one JSON-ready object: the analysis as ``reader-study analyze --json`` prints
    it under ``analysis``, beside the study, per-reader figures, timing and the model's."""
    study = asdict(results.study)
    study["created_at"] = results.study.created_at.isoformat()
    return mrmc._finite(  # the one clean-up of non-finite figures for JSON
        {
            "study": study,
            "readers": results.readers,
            "timing": results.timing,
            "model": results.model,
            "analysis": results.analysis,
            "notes": results.notes,
        }
    )


def export_results(store: Store, actor: Actor, study_id: int) -> tuple[bytes, bytes]:
    """The results as JSON bytes and the ROC plot as PNG bytes; audited as an export."""
    results = study_results(store, actor, study_id)
    content = json.dumps(results_json(results), indent=2).encode()
    png = roc_png(results)
    with store.db.write() as session:
        record(session, actor.username, "export", "reader_study", study_id, kind="reader_study_results")
    return content, png


def roc_png(results: StudyResults) -> bytes:
    """The model's ROC curve with each reader's operating point per arm (1 - specificity,
    sensitivity) and their empirical ROC curve (solid unaided, dashed aided), as PNG bytes."""
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib import pyplot

    figure, axes = pyplot.subplots(figsize=(5.5, 5), dpi=100)
    try:
        if results.model is not None:
            roc = results.model["roc"]
            axes.plot(roc["fpr"], roc["tpr"], color="black", label=f"model (AUC {results.model['auc']:.3f})")
        markers = {"unaided": "o", "aided": "^"}
        colours = pyplot.get_cmap("tab10")
        names = sorted({row["reader"] for row in results.readers})
        for row in results.readers:
            if row.get("roc", {}).get("fpr"):  # the reader's empirical ROC from their ratings
                axes.plot(
                    row["roc"]["fpr"],
                    row["roc"]["tpr"],
                    color=colours(names.index(row["reader"]) % 10),
                    linestyle="--" if row["arm"] == "aided" else "-",
                    linewidth=0.8,
                    alpha=0.6,
                )
            if math.isnan(row["sensitivity"]) or math.isnan(row["specificity"]):
                continue
            axes.scatter(
                1 - row["specificity"],
                row["sensitivity"],
                marker=markers.get(row["arm"], "s"),
                color=colours(names.index(row["reader"]) % 10),
                label=f"{row['reader']} ({row['arm']})",
                zorder=3,
            )
        axes.plot([0, 1], [0, 1], linestyle=":", color="grey")
        axes.set_xlim(-0.02, 1.02)
        axes.set_ylim(-0.02, 1.02)
        axes.set_xlabel("1 - specificity")
        axes.set_ylabel("sensitivity")
        axes.set_title(f"{results.study.name}: the model's ROC and the readers")
        axes.legend(loc="lower right", fontsize="small")
        buffer = io.BytesIO()
        figure.savefig(buffer, format="png", bbox_inches="tight")
        return buffer.getvalue()
    finally:
        pyplot.close(figure)


# --- gold-standard checks ---------------------------------------------------------------------------


def mix_gold(
    store: Store, actor: Actor, readers: list[str], evaluation_set: str, rate: float, seed: int | None = None
) -> dict[str, int]:
    """Put cases of ``evaluation_set`` on each reader's worklist so that gold makes up ``rate`` of
    what they have left to read (0 < rate <= 0.5; of their assigned cases not read by them or sent
    back to them, gold ones included), unannounced. Returns the gold cases added per reader (fewer
    when the set runs out); audited, with the seed. Image cases only.

    A gold case is an ordinary assignment with a place among the reader's cases still to read
    (:attr:`Assignment.list_place`, see :mod:`medreview.reading.worklists`): a random gap between two
    of them, before the first or after the last, never beside another gold case (the rate, at most
    one gold case per ordinary one, always leaves enough gaps). Without places the worklist's upload
    order would put them together at the top: evaluation-set images are usually the oldest. The
    cases and places are drawn from ``seed`` and the reader's id, so one reader's are reproducible
    whoever else is mixed at the same time; without a seed one is drawn (and recorded). A case the
    reader has read before is never gold for them."""
    require(actor, "admin", "mix gold-standard cases into worklists")
    if not 0 < float(rate) <= 0.5:
        raise MedreviewError("the gold rate is a share above 0 and at most 0.5 of the worklist")
    target = find_evaluation_set(store, evaluation_set)
    seed = int(seed) if seed is not None else secrets.randbits(31)
    added: dict[str, int] = {}
    with store.db.write() as session:
        members = session.execute(
            select(EvaluationSetImage.image_id, EvaluationSetImage.label, EvaluationSetImage.scope).where(
                EvaluationSetImage.evaluation_set_id == target.id
            )
        ).all()
        if any(member.scope != "image" for member in members):
            raise MedreviewError("gold checks mix image cases; this set holds study or series cases")
        for reader in readers:
            reader_id = session.scalar(select(User.id).where(User.username == reader))
            if reader_id is None:
                raise MedreviewError(f"no such user: {reader}")
            rng = np.random.default_rng([seed, int(reader_id)])
            own_read = and_(
                Annotation.scope == "image",
                Annotation.case_id == Assignment.image_id,
                Annotation.reader_id == reader_id,
            )
            assignments = session.execute(
                select(Assignment.image_id, Assignment.list_place, Annotation.status)
                .outerjoin(Annotation, own_read)
                .where(Assignment.reader_id == reader_id)
            ).all()
            gold = set(session.scalars(select(GoldCase.image_id).where(GoldCase.reader_id == reader_id)))
            # The cases still to read, in list order: (place, image id), a case's place its image id
            # when it has none (as the worklist orders them).
            to_read = sorted(
                (row.image_id if row.list_place is None else row.list_place, row.image_id)
                for row in assignments
                if row.status is None or row.status == "returned"
            )
            gold_left = sum(image_id in gold for _, image_id in to_read)
            ordinary_left = len(to_read) - gold_left
            # gold / (ordinary + gold) = rate  ->  gold = rate * ordinary / (1 - rate)
            wanted = max(0, math.ceil(rate * ordinary_left / (1 - rate) - 1e-9) - gold_left)
            read_before = set(
                session.scalars(
                    select(Annotation.case_id).where(
                        Annotation.reader_id == reader_id,
                        Annotation.scope == "image",
                        Annotation.case_id.in_([member.image_id for member in members]),
                    )
                )
            )
            taken = {row.image_id for row in assignments} | read_before
            candidates = [member for member in members if member.image_id not in taken]
            chosen = [candidates[i] for i in rng.permutation(len(candidates))[:wanted]]
            places = _gold_places(
                [place for place, _ in to_read], [image_id in gold for _, image_id in to_read], len(chosen), rng
            )
            for member, place in zip(chosen, places, strict=True):
                session.add(
                    Assignment(
                        image_id=member.image_id,
                        scope="image",
                        reader_id=reader_id,
                        assigned_by=actor.username,
                        list_place=place,
                    )
                )
                session.add(
                    GoldCase(
                        reader_id=reader_id,
                        image_id=member.image_id,
                        evaluation_set_id=target.id,
                        label=member.label,
                        assigned_by=actor.username,
                    )
                )
            added[reader] = len(chosen)
        record(
            session,
            actor.username,
            "gold.mix",
            "evaluation_set",
            target.id,
            readers=list(readers),
            rate=float(rate),
            seed=seed,
            added=added,
        )
    return added


def _gold_places(places: list[float], is_gold: list[bool], count: int, rng: np.random.Generator) -> list[float]:
    """``count`` new places among a reader's cases to read (``places``, ascending; ``is_gold``, which
    of them are gold): gap ``i`` lies before case ``i`` (gap ``len(places)`` after the last), and
    the gaps are drawn without repeats among those with no gold case on either side; only when
    those run out (not at a rate of at most 0.5) do several share a gap. A gap's places split it
    evenly; the ends reach one place beyond the first and the last case. In ascending order."""
    cases = len(places)
    if count < 1:
        return []
    if cases == 0:
        return [float(n) for n in range(count)]
    free = [
        gap for gap in range(cases + 1) if not (gap > 0 and is_gold[gap - 1]) and not (gap < cases and is_gold[gap])
    ]
    spread = min(count, len(free))
    gaps = [int(gap) for gap in rng.choice(free, size=spread, replace=False)] if spread else []
    gaps += [int(gap) for gap in rng.integers(0, cases + 1, size=count - spread)]
    chosen: list[float] = []
    for gap in sorted(set(gaps)):
        sharing = gaps.count(gap)
        low = float(places[gap - 1]) if gap > 0 else float(places[0]) - 1.0
        high = float(places[gap]) if gap < cases else float(places[-1]) + 1.0
        chosen += [low + (high - low) * share / (sharing + 1) for share in range(1, sharing + 1)]
    return chosen


def _gold_reads(store: Store) -> pd.DataFrame:
    """Each reader's reads of their gold cases: reader, label (theirs), gold, seconds, read_at."""
    query = (
        select(
            User.username.label("reader"),
            LabelClass.name.label("label"),
            GoldCase.label.label("gold"),
            Annotation.seconds_on_case.label("seconds"),
            Annotation.created_at.label("read_at"),
        )
        .join(GoldCase, (GoldCase.reader_id == Annotation.reader_id) & (GoldCase.image_id == Annotation.image_id))
        .join(User, User.id == Annotation.reader_id)
        .outerjoin(
            LabelClass, LabelClass.id == func.coalesce(Annotation.blind_label_class_id, Annotation.label_class_id)
        )
        .where(Annotation.scope == "image")
    )
    with store.db.read() as session:
        rows = session.execute(query).mappings().all()
    frame = pd.DataFrame(rows, columns=["reader", "label", "gold", "seconds", "read_at"])
    frame["read_at"] = pd.to_datetime(frame["read_at"], utc=True)
    return frame


def _kappa(labels: pd.Series, gold: pd.Series) -> float:
    """Cohen's kappa of a reader's labels with the gold labels; NaN when undefined (one class)."""
    categories = sorted(set(labels.dropna()) | set(gold))
    if len(labels) < 2 or len(categories) < 2:
        return math.nan
    table = pd.crosstab(
        pd.Categorical(labels, categories=categories), pd.Categorical(gold, categories=categories), dropna=False
    ).to_numpy(dtype=float)
    total = table.sum()
    observed = np.trace(table) / total
    expected = float((table.sum(axis=0) * table.sum(axis=1)).sum()) / total**2
    return math.nan if expected >= 1 else (observed - expected) / (1 - expected)


def _gold_figures(group: pd.DataFrame) -> dict[str, Any]:
    return {
        "gold_cases_read": len(group),
        "accuracy": float((group["label"] == group["gold"]).mean()) if len(group) else math.nan,
        "kappa": _kappa(group["label"], group["gold"]),
        "median_seconds": float(group["seconds"].dropna().median()) if group["seconds"].notna().any() else math.nan,
    }


def gold_scores(store: Store, actor: Actor) -> pd.DataFrame:
    """Per reader: gold cases on their worklist, read, accuracy and Cohen's kappa against the gold
    labels, median seconds per gold case."""
    require(actor, "admin", "see gold-standard scores")
    reads = _gold_reads(store)
    with store.db.read() as session:
        placed = dict(
            session.execute(
                select(User.username, func.count())
                .join(GoldCase, GoldCase.reader_id == User.id)
                .group_by(User.username)
            )
            .tuples()
            .all()
        )
    rows = []
    for reader in sorted(placed):
        group = reads[reads["reader"] == reader]
        rows.append({"reader": reader, "gold_cases": placed[reader], **_gold_figures(group)})
    columns = ["reader", "gold_cases", "gold_cases_read", "accuracy", "kappa", "median_seconds"]
    return pd.DataFrame(rows, columns=columns)


def gold_trend(store: Store, actor: Actor) -> pd.DataFrame:
    """Per reader and week (the Monday of the week the read was made): the gold figures, for a trend."""
    require(actor, "admin", "see gold-standard scores")
    reads = _gold_reads(store)
    rows = []
    if len(reads):
        reads["week"] = (reads["read_at"].dt.tz_convert(None).dt.to_period("W-SUN").dt.start_time).dt.date
        for (reader, week), group in reads.groupby(["reader", "week"], sort=True):
            rows.append({"reader": reader, "week": week, **_gold_figures(group)})
    return pd.DataFrame(rows, columns=["reader", "week", "gold_cases_read", "accuracy", "kappa", "median_seconds"])
