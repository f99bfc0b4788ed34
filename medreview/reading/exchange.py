"""Export and import of labels.

Exports (CSV or JSON) carry, on every row, the original file name, the SHA-256 of the stored file
and the SHA-256 of the file as uploaded (``source_sha256``, which matches the image in another
store even when the two stores de-identify under different keys):

- ``labels``: each image's final label (see ``annotation.current_labels``);
- ``reads``: every reader's read, with review state;
- ``predictions``: the active model's predictions; an image outside the model's training data has
  no class and no probability, ``outside_training_data`` true and the reason in ``outside_reason``;
- ``coco``: bounding boxes as COCO JSON (JSON only).

Labels and reads carry their ``scope`` (study, series or image) and every row the store's
(de-identified) ``study_uid`` and ``series_uid``; the file keys of a study or series read are those
of the case's key image (medreview.reading.cases). Import puts a read back on the case at its scope.

``import_labels`` takes a JSON export of reads (plus final labels), or medreview's own DICOM SR
(``export sr``: a file, a zip or a folder; images found by SOP Instance UID), and re-creates them in a store
that holds the same images, so an export re-imported into an empty store (after the same files
were uploaded) reproduces the labels. Readers missing from the target store are created as
inactive accounts without a password.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pandas as pd
from sqlalchemy import select

from medreview.errors import MedreviewError
from medreview.ml.prediction import predictions_table
from medreview.ml.registry import active_model
from medreview.reading.cases import SCOPES, case_in, images_in_case
from medreview.reading.consensus import AUTO_ACCEPTED
from medreview.reading.reads import current_labels, image_facts, reads_table
from medreview.reading.schema import label_classes
from medreview.store import Store
from medreview.store.blobs import atomic_write
from medreview.store.db import upsert
from medreview.store.models import (
    Annotation,
    FinalLabel,
    Image,
    LabelClass,
    PseudonymEntry,
    Series,
    Study,
    User,
    utcnow,
)
from medreview.team.audit import neutralise_formula, record, record_now
from medreview.team.roles import Actor, require

__all__ = ["EXPORT_FORMATS", "EXPORT_KINDS", "export_bytes", "export_data", "import_labels", "write_export"]

EXPORT_KINDS = ("labels", "reads", "predictions", "coco")
EXPORT_FORMATS = ("csv", "json")
FORMAT_NAME = "medreview-labels"


def _with_keys(store: Store, table: pd.DataFrame) -> pd.DataFrame:
    keys = image_facts(store)[["image_id", "display_name", "sha256", "source_sha256", "study_uid", "series_uid"]]
    table = table.drop(columns=[c for c in ("display_name", "sha256") if c in table.columns])
    return keys.merge(table, on="image_id", how="inner")


def export_data(store: Store, actor: Actor, kind: str, original_names: bool = False) -> pd.DataFrame | dict[str, Any]:
    """The rows (or, for ``coco``, the document) of an export.

    Images are named by their display name and the stored object's SHA-256 (with the upload's
    SHA-256, which re-import matches on). ``original_names`` (admins only) adds each image's
    upload name from the pseudonym map, for those who must map back; the export's audit event
    says so."""
    require(actor, "reviewer", "export data")
    if original_names:
        require(actor, "admin", "export the original file names")
    if kind == "labels":
        table = _with_keys(store, current_labels(store, scope=None)[["image_id", "scope", "label", "method"]])
    elif kind == "reads":
        reads = reads_table(store, actor, include_rejected=True)
        reads = reads.assign(updated_at=reads["updated_at"].astype(str))
        table = _with_keys(store, reads.drop(columns=["annotation_id", "case_id"]))
    elif kind == "predictions":
        model = active_model(store)
        if model is None:
            raise MedreviewError("no active model, so there are no predictions to export")
        predictions = predictions_table(store, actor, model.id)
        # No confident class for an image outside the training data: the flag and its reason instead.
        outside = predictions["outside_training_data"].astype(bool)
        table = predictions.assign(
            predicted_class=predictions["predicted_class"].where(~outside, None),
            probability=predictions["probability"].where(~outside, None),
        )[["image_id", "predicted_class", "probability", "label", "outside_training_data", "outside_reason"]]
        table = _with_keys(store, table.assign(model_version_id=model.id))
    elif kind == "coco":
        document = _coco(store, actor)
        if original_names:
            names = _original_names(store)
            for image in document["images"]:
                image["original_name"] = names.get(image["file_name"], image["file_name"])
        return document
    else:
        raise MedreviewError(f"unknown export '{kind}' (choose one of {', '.join(EXPORT_KINDS)})")
    if original_names:
        names = _original_names(store)
        table.insert(2, "original_name", [names.get(name, name) for name in table["display_name"]])
    return table


def _original_names(store: Store) -> dict[str, str]:
    """Display name -> the upload's name, from the pseudonym map (names not in it are their own)."""
    with store.db.read() as session:
        rows = session.execute(
            select(PseudonymEntry.pseudonym, PseudonymEntry.original).where(PseudonymEntry.kind == "file_name")
        ).all()
    return {pseudonym: original for pseudonym, original in rows}


def _coco(store: Store, actor: Actor) -> dict[str, Any]:
    """Boxes of every non-rejected read, COCO style (bbox = [x, y, width, height] in pixels)."""
    classes = label_classes(store, include_retired=True)
    category = {name: number for number, name in enumerate(classes, start=1)}
    keys = image_facts(store)
    reads = reads_table(store, actor)
    images, annotations = [], []
    with_boxes = set()
    for read in reads.itertuples(index=False):
        for box in read.boxes or []:
            with_boxes.add(int(read.image_id))
            annotations.append(
                {
                    "id": len(annotations) + 1,
                    "image_id": int(read.image_id),
                    "category_id": category[box["label"]],
                    "bbox": [box["x"], box["y"], box["width"], box["height"]],
                    "area": box["width"] * box["height"],
                    "iscrowd": 0,
                    "attributes": {"reader": read.reader, "frame": box.get("frame", 0)},
                }
            )
    for row in keys[keys["image_id"].isin(with_boxes)].itertuples(index=False):
        images.append(
            {
                "id": int(row.image_id),
                "file_name": row.display_name,
                "width": int(row.columns),
                "height": int(row.rows),
                "sha256": row.sha256,
                "source_sha256": row.source_sha256,
            }
        )
    return {
        "info": {"description": "medreview bounding boxes", "date_created": utcnow().isoformat()},
        "images": images,
        "annotations": annotations,
        "categories": [{"id": number, "name": name} for name, number in category.items()],
    }


def _export_content(store: Store, actor: Actor, kind: str, file_format: str, original_names: bool) -> tuple[bytes, int]:
    """An export's file content (UTF-8) and its number of rows (COCO: boxes)."""
    if file_format not in EXPORT_FORMATS:
        raise MedreviewError(f"unsupported export format '{file_format}' (csv or json)")
    data = export_data(store, actor, kind, original_names)
    if kind == "coco":
        if file_format != "json":
            raise MedreviewError("COCO exports are JSON only")
        content = json.dumps(data, indent=1)
        count = len(data["annotations"])
    elif file_format == "csv":
        # Comments and file names are user text: keep spreadsheets from running them as formulas.
        text_columns = data.select_dtypes(include=["object", "string"]).columns
        safe = data.assign(**{column: data[column].map(_safe_cell) for column in text_columns})
        content = safe.to_csv(index=False)
        count = len(data)
    else:
        document: dict[str, Any] = {"format": FORMAT_NAME, "kind": kind, "rows": _records(data)}
        if kind == "reads":
            final = export_data(store, actor, "labels")
            document["final_labels"] = _records(final[final["method"] != "unanimous"])
        # allow_nan=False: a missing value must be null, never NaN (which is not JSON).
        content = json.dumps(document, indent=1, default=str, allow_nan=False)
        count = len(data)
    return content.encode("utf-8"), count


def _record_export(store: Store, actor: Actor, kind: str, file_format: str, rows: int, original_names: bool) -> None:
    record_now(
        store, actor.username, "export", "export", kind, format=file_format, rows=rows, original_names=original_names
    )


def export_bytes(
    store: Store, actor: Actor, kind: str, file_format: str = "csv", original_names: bool = False
) -> tuple[bytes, int]:
    """An export for a download: the file's bytes and its number of rows (COCO: boxes). Audited;
    nothing is written to disk."""
    content, count = _export_content(store, actor, kind, file_format, original_names)
    _record_export(store, actor, kind, file_format, count, original_names)
    return content, count


def write_export(
    store: Store, actor: Actor, kind: str, path: Path, file_format: str = "csv", original_names: bool = False
) -> int:
    """Write an export file; returns the number of rows (COCO: boxes). Audited."""
    content, count = _export_content(store, actor, kind, file_format, original_names)
    if not Path(path).parent.is_dir():
        raise MedreviewError(f"cannot write {path}: the folder {Path(path).parent} does not exist")
    try:
        atomic_write(Path(path), content, sync_folder=False)
    except OSError as error:
        raise MedreviewError(f"cannot write {path}: {error.strerror or error}") from error
    _record_export(store, actor, kind, file_format, count, original_names)
    return count


def _records(frame: pd.DataFrame) -> list[dict[str, Any]]:
    """Rows as dicts with missing values (NaN, NaT, None) as None."""
    return frame.astype(object).where(frame.notna(), None).to_dict(orient="records")


def _safe_cell(value: Any) -> Any:
    return neutralise_formula(value) if isinstance(value, str) else value


READ_STATES = ("submitted", "approved", "rejected", "returned", "overruled")  # medreview.reading.review


def _check_row(row: dict[str, Any], number: int) -> None:
    """Refuse a row that is not what medreview exports (a hand-edited or foreign file)."""
    from medreview.team.accounts import USERNAME_PATTERN

    where = f"row {number}"
    reader = row.get("reader")
    if not isinstance(reader, str) or not USERNAME_PATTERN.fullmatch(reader) or reader == "system":
        raise MedreviewError(f"{where}: '{reader}' is not a valid reader name")
    if (row.get("scope") or "image") not in SCOPES:
        raise MedreviewError(f"{where}: unknown scope '{row.get('scope')}' (study, series or image)")
    if (row.get("status") or "submitted") not in READ_STATES:
        raise MedreviewError(f"{where}: unknown review state '{row.get('status')}'")
    for key in ("labels", "boxes"):
        if not isinstance(row.get(key) or [], list):
            raise MedreviewError(f"{where}: '{key}' must be a list")
    for box in row.get("boxes") or []:
        try:
            if not (
                float(box["width"]) > 0 and float(box["height"]) > 0 and float(box["x"]) >= 0 and float(box["y"]) >= 0
            ):
                raise ValueError("not a positive box")
            str(box["label"])
        except (KeyError, TypeError, ValueError) as error:
            raise MedreviewError(f"{where}: a box is malformed ({error})") from error


def import_labels(store: Store, actor: Actor, source: Path | bytes) -> dict[str, int]:
    """Re-create reads (and adjudicated/approved final labels) from a JSON ``reads`` export: a file,
    or its bytes (an upload, which never needs to touch the disk).

    Returns counts: reads, final_labels, images_missing (rows whose image is not in this store).
    """
    require(actor, "admin", "import labels")
    try:
        data = source if isinstance(source, bytes) else b"" if Path(source).is_dir() else Path(source).read_bytes()
        if not data or data[128:132] == b"DICM" or data[:4] == b"PK\x03\x04":
            # medreview's own DICOM SR (a file, a zip or a folder of them): reads come back from it.
            # (highdicom is loaded only here: the pages that import this module never need it.)
            from medreview.reading.dicomout.parse import read_datasets, reads_document

            document = reads_document(store, read_datasets(source))
        else:
            document = json.loads(data)
    except (OSError, ValueError) as error:
        # An upload's message names no file (on the server it would be a temporary path).
        where = "the uploaded file" if isinstance(source, bytes) else source
        raise MedreviewError(f"cannot read {where}: {error}") from error
    if not isinstance(document, dict) or document.get("format") != FORMAT_NAME or document.get("kind") != "reads":
        raise MedreviewError("not a medreview reads export (export it with: export reads --format json)")
    keys = image_facts(store)
    by_source = {k: i for k, i in zip(keys["source_sha256"], keys["image_id"], strict=True) if k}
    by_sha = dict(zip(keys["sha256"], keys["image_id"], strict=True))
    counts = {"reads": 0, "final_labels": 0, "images_missing": 0}
    with store.db.write() as session:
        classes = {row.name: row for row in session.scalars(select(LabelClass))}
        users = {row.username: row for row in session.scalars(select(User))}

        def image_for(row: dict[str, Any]) -> int | None:
            found = by_source.get(row.get("source_sha256") or "") or by_sha.get(row.get("sha256") or "")
            if found is None and row.get("sop_instance_uid"):  # from a DICOM SR
                found = session.scalar(select(Image.id).where(Image.sop_instance_uid == str(row["sop_instance_uid"])))
            if found is None and row.get("scope") in ("study", "series"):
                # A case whose key image is not here (another image of it is): found by its UID
                # when both stores de-identify under the same key.
                model, uid = (Study, Study.study_uid) if row["scope"] == "study" else (Series, Series.series_uid)
                case = session.scalar(select(model.id).where(uid == str(row.get(f"{row['scope']}_uid") or "")))
                if case is not None:
                    images = images_in_case(session, row["scope"], case)
                    found = images[0] if images else None
            return found

        def case_for(row: dict[str, Any], image_id: int) -> dict[str, Any]:
            scope = row.get("scope") or "image"
            case_id, key_image_id = case_in(session, image_id, scope)
            return {"image_id": key_image_id, "scope": scope, "case_id": case_id}

        def class_id(name: str | None, scope: str) -> int | None:
            if name is None or (isinstance(name, float) and pd.isna(name)):
                return None
            if not isinstance(name, str) or name != " ".join(name.split()).lower() or not 0 < len(name) <= 64:
                raise MedreviewError(f"'{name}' is not a valid class name")
            if name not in classes:
                classes[name] = LabelClass(name=name, position=len(classes), scope=scope)
                session.add(classes[name])
                session.flush()
            if classes[name].scope != scope:
                raise MedreviewError(
                    f"class '{name}' is {classes[name].scope}-scoped here but the file has {scope} reads of it"
                )
            return classes[name].id

        for number, row in enumerate(document.get("rows", []), start=1):
            image_id = image_for(row) if isinstance(row, dict) else None
            if image_id is None:
                counts["images_missing"] += 1
                continue
            _check_row(row, number)
            case = case_for(row, image_id)
            reader = row["reader"]
            if reader not in users:
                users[reader] = User(username=reader, role="annotator", active=False)
                session.add(users[reader])
                session.flush()
            values = {
                "label_class_id": class_id(row.get("label"), case["scope"]),
                "labels": list(row.get("labels") or []),
                "boxes": list(row.get("boxes") or []),
                "unsure": bool(row.get("unsure")),
                "comment": row.get("comment") or "",
                "status": row.get("status") or "submitted",
                "review_comment": row.get("review_comment") or "",
                "updated_at": utcnow(),
            }
            upsert(
                session,
                Annotation,
                {**case, "reader_id": users[reader].id, "created_at": utcnow(), **values},
                conflict_columns=["scope", "case_id", "reader_id"],
                update_columns=list(values),
            )
            counts["reads"] += 1
        for row in document.get("final_labels", []):
            image_id = image_for(row) if isinstance(row, dict) else None
            if image_id is None:
                continue
            if row.get("method", "adjudicated") not in ("adjudicated", "approved", AUTO_ACCEPTED):
                raise MedreviewError(f"final label of image {row.get('sha256', '?')}: unknown method")
            if (row.get("scope") or "image") not in SCOPES:
                raise MedreviewError(f"final label of image {row.get('sha256', '?')}: unknown scope")
            case = case_for(row, image_id)
            values = {
                "label_class_id": class_id(row.get("label"), case["scope"]),
                "method": row.get("method") or "adjudicated",
                "decided_by": actor.username,
                "comment": "imported",
            }
            upsert(
                session,
                FinalLabel,
                {**case, "labels": [], "boxes": [], "decided_at": utcnow(), **values},
                conflict_columns=["scope", "case_id"],
                update_columns=list(values),
            )
            counts["final_labels"] += 1
        name = "upload" if isinstance(source, bytes) else Path(source).name
        record(session, actor.username, "label.import", "file", name, **counts)
    return counts
