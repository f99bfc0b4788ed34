"""Cases: what a read is about, at the scope of its label class.

A label class has a scope (medreview.store.models.SCOPES): a *study* ("PE present"), a *series* or
an *image* (boxes, image-level classes). The read, review decision, final label, assignment,
evaluation-set member and prediction of a class belong to one case at that scope: the rows keep
an ``image_id`` and add ``scope`` and ``case_id`` (the study, series or image id; see the models'
docstring for why). For a study or series, ``image_id`` is the case's *key image*: its first image
in reading order, so a reader who saves a study read from slice 37 of a 100-slice series saves the
study's one read, at the same image whichever slice was on screen.

Reading order: series by series number (none last), then id; images by instance number, then slice
position (none last), then id. The order is deterministic, so the key image of a case is the same
for every reader as long as no image is added before it.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
from sqlalchemy import ColumnElement, Select, case, select
from sqlalchemy.orm import Session

from medreview.errors import MedreviewError, NotFoundError
from medreview.store import Store
from medreview.store.models import SCOPES, Image, Series

__all__ = [
    "SCOPES",
    "case_images",
    "case_in",
    "case_key_column",
    "case_keys",
    "case_of",
    "check_scope",
    "images_in_case",
]


def case_keys(scopes: pd.Series, case_ids: pd.Series) -> np.ndarray:
    """One int64 per (scope, case id) pair, distinct across scopes (case id x 4 + the scope's
    rank): a column to group reads by case as fast as by image. (N,) int64."""
    ranks = scopes.map({scope: rank for rank, scope in enumerate(SCOPES)}).to_numpy(dtype=np.int64)
    return case_ids.to_numpy(dtype=np.int64) * 4 + ranks


def case_key_column(model: Any) -> ColumnElement[int]:
    """The SQL of :func:`case_keys` on a table with ``scope`` and ``case_id`` columns."""
    rank = case(*((model.scope == scope, index) for index, scope in enumerate(SCOPES)), else_=len(SCOPES))
    return model.case_id * 4 + rank


def check_scope(scope: str) -> str:
    """The scope, or a MedreviewError naming the ones there are."""
    if scope not in SCOPES:
        raise MedreviewError(f"unknown scope '{scope}' (choose one of {', '.join(SCOPES)})")
    return scope


def _reading_order(query: Select[Any]) -> Select[Any]:
    return query.order_by(
        Series.series_number.is_(None),
        Series.series_number,
        Series.id,
        Image.instance_number.is_(None),
        Image.instance_number,
        Image.slice_location.is_(None),
        Image.slice_location,
        Image.id,
    )


def images_in_case(session: Session, scope: str, case_id: int) -> list[int]:
    """The case's image ids in reading order (see the module docstring), in an open session."""
    check_scope(scope)
    if scope == "image":
        return [case_id] if session.get(Image, case_id) is not None else []
    query = select(Image.id).join(Series, Series.id == Image.series_id)
    query = query.where(Series.study_id == case_id) if scope == "study" else query.where(Series.id == case_id)
    return list(session.scalars(_reading_order(query)))


def case_in(session: Session, image_id: int, scope: str) -> tuple[int, int]:
    """(case id, key image id) of the case at ``scope`` that holds the image, in an open session."""
    check_scope(scope)
    row = session.execute(
        select(Series.id, Series.study_id).join(Image, Image.series_id == Series.id).where(Image.id == image_id)
    ).first()
    if row is None:
        raise NotFoundError(f"image {image_id} does not exist")
    if scope == "image":
        return image_id, image_id
    case_id = row.study_id if scope == "study" else row.id
    key_image_id = images_in_case(session, scope, case_id)[0]
    return case_id, key_image_id


def case_of(store: Store, image_id: int, scope: str) -> tuple[int, int]:
    """(study id | series id | image id, key image id) of the case at ``scope`` holding the image:
    the case a read of a class of that scope, made on this image, belongs to."""
    with store.db.read() as session:
        return case_in(session, image_id, scope)


def case_images(store: Store, scope: str, case_id: int) -> list[int]:
    """The image ids of a case in reading order (series by series number, images by instance
    number, then slice position); NotFoundError for a case that does not exist."""
    with store.db.read() as session:
        images = images_in_case(session, scope, case_id)
    if not images:
        raise NotFoundError(f"{scope} {case_id} does not exist or holds no image")
    return images
