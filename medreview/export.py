"""CSV exports: every row carries the original file name and the SHA-256 of the stored bytes."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
from sqlalchemy import select

from medreview.annotation import current_labels
from medreview.errors import MedreviewError
from medreview.models import Image
from medreview.prediction import predictions_table
from medreview.registry import active_model
from medreview.store import Store

__all__ = ["EXPORT_KINDS", "export_table", "write_export"]

EXPORT_KINDS = ("labels", "predictions")


def export_table(store: Store, kind: str) -> pd.DataFrame:
    if kind == "labels":
        table = current_labels(store)
        return table[["image_id", "original_filename", "sha256", "patient_key", "label", "unsure", "labelled_at"]]
    if kind == "predictions":
        model = active_model(store)
        if model is None:
            raise MedreviewError("no active model, so there are no predictions to export")
        table = predictions_table(store, model.id)
        with store.db.read() as session:
            sha_by_id = dict(session.execute(select(Image.id, Image.sha256)).tuples().all())
        table = table.assign(
            original_filename=table["file"], sha256=table["image_id"].map(sha_by_id), model_version_id=model.id
        )
        return table[
            ["image_id", "original_filename", "sha256", "model_version_id", "predicted_class", "probability", "label"]
        ]
    raise MedreviewError(f"unknown export '{kind}' (choose one of {', '.join(EXPORT_KINDS)})")


def write_export(store: Store, kind: str, path: Path, file_format: str = "csv") -> int:
    """Write an export file; returns the number of rows."""
    if file_format != "csv":
        raise MedreviewError(f"unsupported export format '{file_format}' (only csv)")
    table = export_table(store, kind)
    try:
        table.to_csv(path, index=False)
    except OSError as error:
        raise MedreviewError(f"cannot write {path}: {error.strerror or error}") from error
    return len(table)
