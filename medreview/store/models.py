"""SQLAlchemy 2.0 ORM: the store's schema.

Groups, top to bottom: imaging hierarchy (patient -> study -> series -> image), labelling
(label classes, users, annotations), background jobs and models (jobs, model versions,
predictions), evaluation sets (sets, their images, model evaluations), project settings. The
same schema runs on SQLite and PostgreSQL, so only portable types are used (JSON, not JSONB;
timezone-aware datetimes stored as UTC).

Cases (migration 0009). A label class has a *scope*: "study", "series" or "image". A read, a
review decision, a final label, an assignment, an evaluation-set member and a prediction belong to
one *case* at that scope, stored as two columns beside the ``image_id`` they always had:
``scope`` and ``case_id`` (the id of the study, series or image the row is about). ``image_id``
stays filled, with the case's *key image* for a study or series (its first image in reading order,
see medreview.reading.cases), so every query keyed by image keeps working, and the uniqueness rule
is one row per case: (scope, case_id, reader) for reads and assignments, (scope, case_id) for final
labels. One integer column was chosen over nullable ``study_id`` / ``series_id`` columns because a
single unique constraint then serves every scope (and ``INSERT ... ON CONFLICT`` on both SQLite and
PostgreSQL), and grouping by case is one GROUP BY (scope, case_id); the study and series of a case
are one join away through its key image. For an image-scoped row ``case_id`` is its ``image_id``,
which the column defaults to, so code that writes image rows as before needs no change.
"""

from __future__ import annotations

import datetime as dt
from typing import Any, ClassVar

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    DateTime,
    Float,
    ForeignKey,
    Index,
    MetaData,
    String,
    Text,
    UniqueConstraint,
    text,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship

__all__ = [
    "SCOPES",
    "Annotation",
    "Assignment",
    "AuditEvent",
    "Base",
    "EvaluationSet",
    "EvaluationSetImage",
    "FinalLabel",
    "GoldCase",
    "Image",
    "Job",
    "LabelClass",
    "LoginToken",
    "ModelEvaluation",
    "ModelVersion",
    "Patient",
    "Prediction",
    "PseudonymEntry",
    "ReaderStudy",
    "ReaderStudyRating",
    "ReaderStudyReader",
    "Series",
    "Setting",
    "SignInFailure",
    "Study",
    "User",
    "as_utc",
    "utcnow",
]


def utcnow() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def as_utc(moment: dt.datetime) -> dt.datetime:
    """A stored time as an aware UTC datetime: SQLite hands back naive datetimes even for
    timezone-aware columns (they were stored as UTC); PostgreSQL returns them aware."""
    return moment if moment.tzinfo else moment.replace(tzinfo=dt.UTC)


# The scopes a label class (and so a case) can have, widest first.
SCOPES = ("study", "series", "image")


def _image_case(context: Any) -> int | None:
    """Default of ``case_id``: the row's image (an image-scoped case is its image)."""
    return context.get_current_parameters().get("image_id")


def _scope_column() -> Mapped[str]:
    return mapped_column(String(8), default="image", server_default="image")


def _case_column(index: bool = False) -> Mapped[int]:
    return mapped_column(default=_image_case, index=index)


# Named constraints so migrations (and error messages) are stable across SQLite and PostgreSQL.
NAMING_CONVENTION = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING_CONVENTION)
    type_annotation_map: ClassVar[dict[Any, Any]] = {
        dt.datetime: DateTime(timezone=True),
        dict[str, Any]: JSON,
        list[Any]: JSON,
    }


# --- imaging hierarchy ------------------------------------------------------------------------


class Patient(Base):
    __tablename__ = "patients"

    id: Mapped[int] = mapped_column(primary_key=True)
    # PatientID from DICOM, or a synthetic key for PNG/JPEG uploads ("raster-<sha prefix>").
    patient_key: Mapped[str] = mapped_column(String(128), unique=True)
    patient_name: Mapped[str] = mapped_column(String(256), default="")
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)

    studies: Mapped[list[Study]] = relationship(back_populates="patient")


class Study(Base):
    __tablename__ = "studies"

    id: Mapped[int] = mapped_column(primary_key=True)
    study_uid: Mapped[str] = mapped_column(String(128), unique=True)
    patient_id: Mapped[int] = mapped_column(ForeignKey("patients.id"), index=True)
    study_date: Mapped[str | None] = mapped_column(String(8))
    description: Mapped[str] = mapped_column(String(256), default="")
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)

    patient: Mapped[Patient] = relationship(back_populates="studies")
    series: Mapped[list[Series]] = relationship(back_populates="study")


class Series(Base):
    __tablename__ = "series"

    id: Mapped[int] = mapped_column(primary_key=True)
    series_uid: Mapped[str] = mapped_column(String(128), unique=True)
    study_id: Mapped[int] = mapped_column(ForeignKey("studies.id"), index=True)
    modality: Mapped[str] = mapped_column(String(16), default="OT", index=True)
    description: Mapped[str] = mapped_column(String(256), default="")
    series_number: Mapped[int | None]
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)

    study: Mapped[Study] = relationship(back_populates="series")
    images: Mapped[list[Image]] = relationship(back_populates="series")


class Image(Base):
    """One stored object: a DICOM instance (possibly multi-frame) or a PNG/JPEG file."""

    __tablename__ = "images"

    id: Mapped[int] = mapped_column(primary_key=True)
    series_id: Mapped[int] = mapped_column(ForeignKey("series.id"), index=True)
    # Dedupe keys: the same bytes or the same SOPInstanceUID are stored once.
    sha256: Mapped[str] = mapped_column(String(64), unique=True)
    # SHA-256 of the bytes as uploaded (before de-identification): matches an image across stores
    # with different de-identification keys, e.g. when labels are re-imported.
    source_sha256: Mapped[str] = mapped_column(String(64), index=True, default="")
    sop_instance_uid: Mapped[str] = mapped_column(String(128), unique=True)
    media_type: Mapped[str] = mapped_column(String(16))  # "dicom" | "png" | "jpeg"
    display_name: Mapped[str] = mapped_column(String(512))
    size_bytes: Mapped[int] = mapped_column(BigInteger)
    rows: Mapped[int]
    columns: Mapped[int]
    number_of_frames: Mapped[int] = mapped_column(default=1)
    photometric_interpretation: Mapped[str] = mapped_column(String(32), default="MONOCHROME2")
    transfer_syntax_uid: Mapped[str | None] = mapped_column(String(128))
    instance_number: Mapped[int | None]
    slice_location: Mapped[float | None] = mapped_column(Float)
    burned_in_annotation: Mapped[bool] = mapped_column(Boolean, default=False)
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)

    series: Mapped[Series] = relationship(back_populates="images")
    annotations: Mapped[list[Annotation]] = relationship(back_populates="image")


# --- labelling ---------------------------------------------------------------------------------


class LabelClass(Base):
    """One class of the project's single-choice label schema."""

    __tablename__ = "label_classes"

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(64), unique=True)
    position: Mapped[int] = mapped_column(default=0)
    # Retired classes keep their annotations but are no longer offered for new labels.
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    # What a read of this class is about: "study", "series" or "image" (SCOPES).
    scope: Mapped[str] = _scope_column()


class User(Base):
    __tablename__ = "users"

    id: Mapped[int] = mapped_column(primary_key=True)
    username: Mapped[str] = mapped_column(String(64), unique=True)
    password_hash: Mapped[str | None] = mapped_column(String(256))
    role: Mapped[str] = mapped_column(String(16), default="annotator")  # annotator | reviewer | admin
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    # The password was chosen by someone else (an admin created the account or reset it): the user
    # chooses their own at the next sign-in before any page opens.
    must_change_password: Mapped[bool] = mapped_column(Boolean, default=False)
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)


class LoginToken(Base):
    """A sign-in that survives a page reload: the browser keeps the random token, the store only
    its SHA-256 (a stolen database yields no usable token). Logging out, an expiry or deactivating
    the user ends it."""

    __tablename__ = "login_tokens"

    id: Mapped[int] = mapped_column(primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id"), index=True)
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    last_used_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    expires_at: Mapped[dt.datetime]
    revoked_at: Mapped[dt.datetime | None]
    # The client address the sign-in was last resumed from (a reload, a new tab): a resume is
    # audited once per login session, and again only when it comes back from another client.
    resumed_from: Mapped[str | None] = mapped_column(String(64))

    user: Mapped[User] = relationship()


class SignInFailure(Base):
    """Consecutive failed sign-ins of one client, for one account name (``account``) or for any
    (``account`` empty): the back-off in medreview.team.throttle. A success clears the client's
    row for that account; rows of clients that went quiet are deleted on the way."""

    __tablename__ = "sign_in_failures"
    __table_args__ = (UniqueConstraint("client", "account", name="uq_sign_in_failures_client_account"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    client: Mapped[str] = mapped_column(String(64))
    # The account's user name; for a name that matches no account, a hash under a key that lives
    # only in the server process (what was typed may be a password typed in the wrong field); ""
    # for the client's row over all accounts.
    account: Mapped[str] = mapped_column(String(64))
    failures: Mapped[int]
    last_failure_at: Mapped[dt.datetime] = mapped_column(index=True)


class Annotation(Base):
    """One reader's read of one case (an image, or a series or study at its key image). A reader has
    at most one read per case; relabelling updates it (and bumps ``updated_at``)."""

    __tablename__ = "annotations"
    __table_args__ = (
        UniqueConstraint("scope", "case_id", "reader_id", name="uq_annotations_scope_case_reader"),
        # A reader's worklist counts and "next image" query filter on these two.
        Index("ix_annotations_reader_status", "reader_id", "status"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    image_id: Mapped[int] = mapped_column(ForeignKey("images.id"), index=True)
    scope: Mapped[str] = _scope_column()
    case_id: Mapped[int] = _case_column()
    reader_id: Mapped[int] = mapped_column(ForeignKey("users.id"), index=True)
    # Single-choice class; None for a read that only carries multi-label classes or boxes.
    label_class_id: Mapped[int | None] = mapped_column(ForeignKey("label_classes.id"), index=True)
    # Multi-label classes (names) and bounding boxes in image pixel coordinates:
    # [{"label": str, "x": float, "y": float, "width": float, "height": float, "frame": int}]
    labels: Mapped[list[Any]] = mapped_column(default=list)
    boxes: Mapped[list[Any]] = mapped_column(default=list)
    unsure: Mapped[bool] = mapped_column(Boolean, default=False)
    comment: Mapped[str] = mapped_column(Text, default="")
    # submitted -> approved | rejected | returned (sent back with a comment) -> submitted again
    status: Mapped[str] = mapped_column(String(16), default="submitted", index=True)
    review_comment: Mapped[str] = mapped_column(Text, default="")
    # Blinded reading: the class of the reader's first read, made before they could see anyone
    # else's; agreement uses it. A later change (made after unblinding) sets the flag.
    blind_label_class_id: Mapped[int | None] = mapped_column(ForeignKey("label_classes.id"))
    changed_after_unblinding: Mapped[bool] = mapped_column(Boolean, default=False)
    # Seconds the image was on the reader's screen before this read was saved (reader statistics);
    # None for reads saved without the viewer (CLI, import, older reads).
    seconds_on_case: Mapped[float | None] = mapped_column(Float)
    # Model-assisted reading (medreview.reading.assist, migration 0013): the project's assist mode at
    # the first save, the model version whose call the reader was shown, the class it suggested
    # before the first save (None: no suggestion shown), whether the first save named it (accepted
    # unchanged) or not (overridden), and whether the class changed once the call was on screen.
    assist_mode: Mapped[str | None] = mapped_column(String(16))
    model_version_id: Mapped[int | None] = mapped_column(ForeignKey("model_versions.id"))
    model_suggestion: Mapped[str | None] = mapped_column(String(64))
    suggestion_accepted: Mapped[bool | None] = mapped_column(Boolean)
    changed_after_model: Mapped[bool] = mapped_column(Boolean, default=False)
    reviewed_by_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    reviewed_at: Mapped[dt.datetime | None]
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[dt.datetime] = mapped_column(default=utcnow)

    image: Mapped[Image] = relationship(back_populates="annotations")
    label_class: Mapped[LabelClass | None] = relationship(foreign_keys=[label_class_id])
    reader: Mapped[User] = relationship(foreign_keys=[reader_id])


class Assignment(Base):
    """A case put on a reader's personal worklist by an admin."""

    __tablename__ = "assignments"
    __table_args__ = (
        UniqueConstraint("scope", "case_id", "reader_id", name="uq_assignments_scope_case_reader"),
        # Whether a reader's list has a placed case, in one seek (migration 0012).
        Index("ix_assignments_reader_place", "reader_id", "list_place"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    image_id: Mapped[int] = mapped_column(ForeignKey("images.id"), index=True)
    scope: Mapped[str] = _scope_column()
    case_id: Mapped[int] = _case_column()
    reader_id: Mapped[int] = mapped_column(ForeignKey("users.id"), index=True)
    assigned_by: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    # Where the case stands in the worklist's order, in place of its image id (None: the image id):
    # a gold-standard case is placed among the reader's ordinary cases (reading.studies.mix_gold).
    list_place: Mapped[float | None] = mapped_column(Float)


class FinalLabel(Base):
    """The label a case ends up with after review: an approved read or an adjudication."""

    __tablename__ = "final_labels"
    __table_args__ = (UniqueConstraint("scope", "case_id", name="uq_final_labels_scope_case"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    image_id: Mapped[int] = mapped_column(ForeignKey("images.id"), index=True)
    scope: Mapped[str] = _scope_column()
    case_id: Mapped[int] = _case_column()
    label_class_id: Mapped[int | None] = mapped_column(ForeignKey("label_classes.id"))
    labels: Mapped[list[Any]] = mapped_column(default=list)
    boxes: Mapped[list[Any]] = mapped_column(default=list)
    method: Mapped[str] = mapped_column(String(16))  # approved | adjudicated
    decided_by: Mapped[str] = mapped_column(String(64))
    comment: Mapped[str] = mapped_column(Text, default="")
    decided_at: Mapped[dt.datetime] = mapped_column(default=utcnow)

    label_class: Mapped[LabelClass | None] = relationship()


class AuditEvent(Base):
    """Append-only audit trail. The code has no update or delete path for these rows, and the
    database refuses both (triggers created by the schema migrations)."""

    __tablename__ = "audit_events"
    __table_args__ = (Index("ix_audit_events_action_created", "action", "created_at"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow, index=True)
    actor: Mapped[str] = mapped_column(String(64), index=True)
    action: Mapped[str] = mapped_column(String(48))
    object_type: Mapped[str] = mapped_column(String(32), default="")
    object_id: Mapped[str] = mapped_column(String(128), default="")
    details: Mapped[dict[str, Any]] = mapped_column(default=dict)


# --- jobs, models, predictions -----------------------------------------------------------------


class Job(Base):
    """A unit of background work run by the worker process: ``kind`` is "train" or "predict".

    A training run is a job of kind "train"; its ``progress`` holds the per-epoch log and its
    ``result`` the final metrics. The worker writes ``heartbeat_at`` while it runs so a run whose
    worker died is detected and marked failed instead of staying "running" for ever.
    """

    __tablename__ = "jobs"
    __table_args__ = (Index("ix_jobs_kind_status", "kind", "status"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    kind: Mapped[str] = mapped_column(String(16))
    status: Mapped[str] = mapped_column(String(16), default="queued")
    params: Mapped[dict[str, Any]] = mapped_column(default=dict)
    progress: Mapped[dict[str, Any]] = mapped_column(default=dict)
    result: Mapped[dict[str, Any]] = mapped_column(default=dict)
    error: Mapped[str | None] = mapped_column(Text)
    cancel_requested: Mapped[bool] = mapped_column(Boolean, default=False)
    created_by: Mapped[str] = mapped_column(String(64), default="local")
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    started_at: Mapped[dt.datetime | None]
    finished_at: Mapped[dt.datetime | None]
    heartbeat_at: Mapped[dt.datetime | None]
    worker_pid: Mapped[int | None]


class ModelVersion(Base):
    __tablename__ = "model_versions"
    # At most one active version, enforced by the database (migration 0002).
    __table_args__ = (
        Index(
            "uq_model_versions_one_active",
            "is_active",
            unique=True,
            sqlite_where=text("is_active"),
            postgresql_where=text("is_active"),
        ),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    job_id: Mapped[int] = mapped_column(ForeignKey("jobs.id"), unique=True)
    # Path relative to the data dir; the file was written atomically before this row existed.
    path: Mapped[str] = mapped_column(String(512))
    sha256: Mapped[str] = mapped_column(String(64))
    architecture: Mapped[str] = mapped_column(String(64))
    input_size: Mapped[int]
    class_names: Mapped[list[Any]] = mapped_column(default=list)
    metrics: Mapped[dict[str, Any]] = mapped_column(default=dict)
    # The preprocessing recipe the model was trained with (medreview.ml.configs.Preprocessing.to_dict():
    # window policy, input size, resize method, channel handling); prediction and explanation apply
    # it. NULL for versions trained before migration 0005, which used the percentile stretch.
    preprocessing: Mapped[dict[str, Any] | None] = mapped_column(JSON, nullable=True)
    # The images the version was trained on, described (medreview.ml.domain.describe_domain():
    # modalities, photometric interpretations, greyscale or colour, rows and columns range);
    # prediction flags an image outside it. NULL for versions trained before migration 0007.
    domain: Mapped[dict[str, Any] | None] = mapped_column(JSON, nullable=True)
    # Why the version is, or is not, active after its training run: the automatic decision on the
    # default evaluation set (medreview.ml.evaluation), in words. NULL before migration 0007.
    activation_reason: Mapped[str | None] = mapped_column(Text)
    is_active: Mapped[bool] = mapped_column(Boolean, default=False)
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)

    job: Mapped[Job] = relationship()


class Prediction(Base):
    __tablename__ = "predictions"
    __table_args__ = (
        UniqueConstraint("image_id", "model_version_id", name="uq_predictions_image_model"),
        # A read's case to its call by a version (the Review queue's filters; migration 0011).
        Index("ix_predictions_scope_case_model", "scope", "case_id", "model_version_id"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    image_id: Mapped[int] = mapped_column(ForeignKey("images.id"), index=True)
    # The case predicted (a case model predicts once per study or series, at its key image).
    scope: Mapped[str] = _scope_column()
    case_id: Mapped[int] = _case_column()
    model_version_id: Mapped[int] = mapped_column(ForeignKey("model_versions.id"), index=True)
    predicted_class: Mapped[str] = mapped_column(String(64))
    probability: Mapped[float] = mapped_column(Float)  # of the predicted class
    probabilities: Mapped[dict[str, Any]] = mapped_column(default=dict)  # class name -> probability
    # Grad-CAM map of the predicted class, relative to the data dir (a rebuildable cache file).
    heatmap_path: Mapped[str | None] = mapped_column(String(512))
    # The image lies outside the data the model version was trained on (its ``domain``): the
    # class above is then no confident call, and the pages and exports show the flag instead.
    out_of_distribution: Mapped[bool] = mapped_column(Boolean, default=False)
    out_of_distribution_reason: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)

    image: Mapped[Image] = relationship()
    model_version: Mapped[ModelVersion] = relationship()


# --- evaluation sets ---------------------------------------------------------------------------


class EvaluationSet(Base):
    """A frozen set of labelled images that training never uses, on which model versions are
    compared. Frozen when made: its images and their labels (copied into the set) never change,
    so every version is scored on the same question. The default set decides automatic
    activation (at most one, enforced by the database)."""

    __tablename__ = "evaluation_sets"
    __table_args__ = (
        Index(
            "uq_evaluation_sets_one_default",
            "is_default",
            unique=True,
            sqlite_where=text("is_default"),
            postgresql_where=text("is_default"),
        ),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(64), unique=True)
    description: Mapped[str] = mapped_column(Text, default="")
    is_default: Mapped[bool] = mapped_column(Boolean, default=False)
    created_by: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)

    images: Mapped[list[EvaluationSetImage]] = relationship(back_populates="evaluation_set")


class EvaluationSetImage(Base):
    """One case of an evaluation set (an image, or a study or series at its key image) with the
    label it had when the set was frozen."""

    __tablename__ = "evaluation_set_images"
    __table_args__ = (
        UniqueConstraint("evaluation_set_id", "scope", "case_id", name="uq_evaluation_set_images_set_scope_case"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    evaluation_set_id: Mapped[int] = mapped_column(ForeignKey("evaluation_sets.id"), index=True)
    image_id: Mapped[int] = mapped_column(ForeignKey("images.id"), index=True)
    scope: Mapped[str] = _scope_column()
    case_id: Mapped[int] = _case_column()
    label: Mapped[str] = mapped_column(String(64))  # the class name, as frozen

    evaluation_set: Mapped[EvaluationSet] = relationship(back_populates="images")


class ModelEvaluation(Base):
    """A model version's figures on an evaluation set (medreview.ml.evaluation): one row per pair."""

    __tablename__ = "model_evaluations"
    __table_args__ = (
        UniqueConstraint("model_version_id", "evaluation_set_id", name="uq_model_evaluations_version_set"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    model_version_id: Mapped[int] = mapped_column(ForeignKey("model_versions.id"), index=True)
    evaluation_set_id: Mapped[int] = mapped_column(ForeignKey("evaluation_sets.id"), index=True)
    metrics: Mapped[dict[str, Any]] = mapped_column(default=dict)
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)


# --- reader studies and gold-standard checks (medreview.reading.studies) -------------------------


class ReaderStudy(Base):
    """A reader study on a frozen evaluation set: its readers read each case in each arm
    ("unaided"; "aided": the model version's calibrated probability and map shown), in a per-reader
    order drawn from ``seed``. ``design``: "crossover" (arms one after the other, in counterbalanced
    order, the second opening ``washout_days`` after the reader finished the first) or "crossed"
    (every case in every arm in one shuffled list). ``scale``: "confidence" (a class and 0-100) or
    "five_point" (1 definitely negative .. 5 definitely positive of ``positive_class``)."""

    __tablename__ = "reader_studies"

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(64), unique=True)
    evaluation_set_id: Mapped[int] = mapped_column(ForeignKey("evaluation_sets.id"), index=True)
    model_version_id: Mapped[int | None] = mapped_column(ForeignKey("model_versions.id"))
    positive_class: Mapped[str] = mapped_column(String(64))
    arms: Mapped[list[Any]] = mapped_column(default=list)
    design: Mapped[str] = mapped_column(String(16))
    washout_days: Mapped[int] = mapped_column(default=0)
    seed: Mapped[int] = mapped_column(BigInteger)
    scale: Mapped[str] = mapped_column(String(16))
    created_by: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)


class ReaderStudyReader(Base):
    """A reader of a study; ``position`` (0, 1, ...) counterbalances the order of the arms."""

    __tablename__ = "reader_study_readers"
    __table_args__ = (UniqueConstraint("study_id", "reader_id", name="uq_reader_study_readers_study_reader"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    study_id: Mapped[int] = mapped_column(ForeignKey("reader_studies.id"), index=True)
    reader_id: Mapped[int] = mapped_column(ForeignKey("users.id"), index=True)
    position: Mapped[int]


class ReaderStudyRating(Base):
    """One reader's rating of one case of a study in one arm. The row is written when the case is
    first shown (``shown_at``; ``rated_at`` NULL) and completed once by the rating: it is never
    changed after (medreview.reading.studies refuses). ``score`` is the rating on one axis, higher
    meaning more likely ``positive_class`` (the AUC's input); ``seconds`` the time the case was
    shown before the rating, ``active_seconds`` that time with idle time left out as far as known."""

    __tablename__ = "reader_study_ratings"
    __table_args__ = (
        UniqueConstraint("study_id", "reader_id", "arm", "member_id", name="uq_reader_study_ratings_study_reader"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    study_id: Mapped[int] = mapped_column(ForeignKey("reader_studies.id"), index=True)
    reader_id: Mapped[int] = mapped_column(ForeignKey("users.id"), index=True)
    arm: Mapped[str] = mapped_column(String(16))
    # The case: a member of the study's evaluation set (its image is ``image_id``).
    member_id: Mapped[int] = mapped_column(ForeignKey("evaluation_set_images.id"))
    image_id: Mapped[int] = mapped_column(ForeignKey("images.id"))
    reading_order: Mapped[int]  # 1-based place in the reader's list for the arm
    label: Mapped[str | None] = mapped_column(String(64))
    confidence: Mapped[float | None] = mapped_column(Float)
    score: Mapped[float | None] = mapped_column(Float)
    shown_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    rated_at: Mapped[dt.datetime | None]
    seconds: Mapped[float | None] = mapped_column(Float)
    active_seconds: Mapped[float | None] = mapped_column(Float)


class GoldCase(Base):
    """A case of an evaluation set put on a reader's worklist, unannounced, as a gold-standard
    check: their read of it is scored against ``label`` (the set's frozen label)."""

    __tablename__ = "gold_cases"
    __table_args__ = (UniqueConstraint("reader_id", "image_id", name="uq_gold_cases_reader_image"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    reader_id: Mapped[int] = mapped_column(ForeignKey("users.id"), index=True)
    image_id: Mapped[int] = mapped_column(ForeignKey("images.id"), index=True)
    evaluation_set_id: Mapped[int] = mapped_column(ForeignKey("evaluation_sets.id"))
    label: Mapped[str] = mapped_column(String(64))
    assigned_by: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)


class PseudonymEntry(Base):
    """Original identifier -> pseudonym written at de-identification (kind: patient_id,
    patient_name, StudyInstanceUID, SeriesInstanceUID, SOPInstanceUID; file_name: the upload's
    name -> the image's display name). Kept apart from the imaging tables
    and read only through ``medreview.ingest.pseudonyms``, which admits admins only."""

    __tablename__ = "pseudonym_map"
    # A UID or patient ID has one pseudonym; a file name may name several uploads.
    __table_args__ = (
        UniqueConstraint("kind", "original", "pseudonym", name="uq_pseudonym_map_kind_original_pseudonym"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    kind: Mapped[str] = mapped_column(String(24))
    original: Mapped[str] = mapped_column(String(1024))
    pseudonym: Mapped[str] = mapped_column(String(128), index=True)
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)


class Setting(Base):
    """Project settings as JSON values (label schema lives in ``label_classes``)."""

    __tablename__ = "settings"

    key: Mapped[str] = mapped_column(String(64), primary_key=True)
    value: Mapped[Any] = mapped_column(JSON)
