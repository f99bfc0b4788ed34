"""Reading the store for display: one image's record, its decoded pixels, and counts."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pandas as pd
from sqlalchemy import func, select

from medreview.errors import NotFoundError
from medreview.imaging.decoding import DecodedImage, decode_file
from medreview.reading.cases import check_scope
from medreview.reading.reads import labelled_image_ids
from medreview.store import Store
from medreview.store.models import Annotation, Image, LabelClass, ModelVersion, Patient, Series, Study, User
from medreview.team.roles import Actor, require

__all__ = ["ImageRecord", "StoreCounts", "counts", "decode_image", "get_image", "image_table"]


@dataclass(frozen=True)
class ImageRecord:
    image_id: int
    display_name: str
    sha256: str
    media_type: str
    path: Path
    modality: str
    patient_key: str
    study_description: str
    series_description: str
    rows: int
    columns: int
    number_of_frames: int
    burned_in_annotation: bool
    label: str | None
    unsure: bool
    comment: str
    read: bool  # whether there is a read (of ``reader`` when given); a read may carry only boxes
    labels: tuple[str, ...]
    boxes: tuple[dict, ...]
    status: str | None  # review state of that read
    review_comment: str


def get_image(store: Store, actor: Actor, image_id: int, scope: str = "image") -> ImageRecord:
    """The record of one image with ``actor``'s own read of the case at ``scope`` holding it (the
    image's own read by default; the study's read for a study-scoped class, whichever of its images
    this is). Never another reader's: those are :func:`medreview.reading.review.image_reads`, which
    applies blinding."""
    require(actor, "annotator", "see images")
    with store.db.read() as session:
        row = session.execute(
            select(Image, Series, Study, Patient)
            .join(Series, Series.id == Image.series_id)
            .join(Study, Study.id == Series.study_id)
            .join(Patient, Patient.id == Study.patient_id)
            .where(Image.id == image_id)
        ).first()
        if row is None:
            raise NotFoundError(f"image {image_id} does not exist")
        image, series, study, patient = row
        case_id = {"image": image.id, "series": series.id, "study": study.id}[check_scope(scope)]
        read_query = (
            select(Annotation, LabelClass.name)
            .outerjoin(LabelClass, LabelClass.id == Annotation.label_class_id)
            .where(Annotation.scope == scope, Annotation.case_id == case_id)
            .order_by(Annotation.updated_at.desc(), Annotation.id.desc())
        )
        read_query = read_query.join(User, User.id == Annotation.reader_id).where(User.username == actor.username)
        read = session.execute(read_query.limit(1)).first()
        return ImageRecord(
            image_id=image.id,
            display_name=image.display_name,
            sha256=image.sha256,
            media_type=image.media_type,
            path=store.blobs.path_for(image.sha256),
            modality=series.modality,
            patient_key=patient.patient_key,
            study_description=study.description,
            series_description=series.description,
            rows=image.rows,
            columns=image.columns,
            number_of_frames=image.number_of_frames,
            burned_in_annotation=image.burned_in_annotation,
            label=read[1] if read else None,
            unsure=bool(read[0].unsure) if read else False,
            comment=read[0].comment if read else "",
            read=read is not None,
            labels=tuple(read[0].labels or ()) if read else (),
            boxes=tuple(read[0].boxes or ()) if read else (),
            status=read[0].status if read else None,
            review_comment=read[0].review_comment if read else "",
        )


def decode_image(store: Store, image_id: int) -> DecodedImage:
    """The decoded pixels of a stored image. The caller has checked the user (the Streamlit
    process caches pixels by image id for every session; reads never pass through here)."""
    with store.db.read() as session:
        image = session.get(Image, image_id)
        if image is None:
            raise NotFoundError(f"image {image_id} does not exist")
        sha256, media_type = image.sha256, image.media_type
    return decode_file(store.blobs.path_for(sha256), media_type)


def image_table(store: Store) -> pd.DataFrame:
    """Every stored image, oldest first: image_id, file, modality (for pickers and assignment;
    a reader's own list is annotation.worklist)."""
    query = (
        select(Image.id.label("image_id"), Image.display_name.label("file"), Series.modality)
        .join(Series, Series.id == Image.series_id)
        .order_by(Image.id)
    )
    with store.db.read() as session:
        return pd.DataFrame(session.execute(query).mappings().all(), columns=["image_id", "file", "modality"])


@dataclass(frozen=True)
class StoreCounts:
    images: int
    labelled: int
    patients: int
    models: int


def counts(store: Store) -> StoreCounts:
    with store.db.read() as session:
        return StoreCounts(
            images=session.scalar(select(func.count(Image.id))) or 0,
            labelled=session.scalar(select(func.count()).select_from(labelled_image_ids().subquery())) or 0,
            patients=session.scalar(select(func.count(Patient.id))) or 0,
            models=session.scalar(select(func.count(ModelVersion.id))) or 0,
        )
