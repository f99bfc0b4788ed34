"""medreview's own SR read back: a reads document that ``import_labels`` takes, and a text dump.

Only SRs medreview wrote are understood (their case group's tracking identifier is
``"medreview <source> <scope>"``): a read becomes a read again (the reader found by user name, or by
the pseudonym the export gave them under this store's key), a final label a final label; a
prediction's SR is not a read and is counted as skipped. Images are found by their SOP Instance UID.
"""

from __future__ import annotations

import io
import zipfile
from pathlib import Path
from typing import Any

import highdicom as hd
import pydicom
from pydicom.dataset import Dataset
from pydicom.errors import InvalidDicomError
from sqlalchemy import select

from medreview.errors import MedreviewError
from medreview.ingest.pseudonyms import project_secret
from medreview.reading.cases import SCOPES
from medreview.reading.dicomout.codes import class_code_parts
from medreview.reading.dicomout.documents import CLASS, CLASS_PRESENT, reader_pseudonym
from medreview.store import Store
from medreview.store.models import LabelClass, User
from medreview.team.settings import get_setting

__all__ = ["content_tree_text", "read_datasets", "reads_document"]

_MAX_MEMBERS = 100_000


def read_datasets(source: Path | bytes) -> list[Dataset]:
    """The DICOM objects of a file, a zip of files, or (a path) a folder of ``.dcm`` files."""
    try:
        if isinstance(source, Path) and source.is_dir():
            return [pydicom.dcmread(path) for path in sorted(source.glob("*.dcm"))]
        data = source if isinstance(source, bytes) else Path(source).read_bytes()
        if data[:4] == b"PK\x03\x04":
            with zipfile.ZipFile(io.BytesIO(data)) as archive:
                names = [name for name in archive.namelist() if name.lower().endswith(".dcm")][:_MAX_MEMBERS]
                return [pydicom.dcmread(io.BytesIO(archive.read(name))) for name in names]
        return [pydicom.dcmread(io.BytesIO(data))]
    except (OSError, InvalidDicomError, zipfile.BadZipFile, ValueError) as error:
        raise MedreviewError(f"cannot read the DICOM objects: {error}") from error


def reads_document(store: Store, datasets: list[Dataset]) -> dict[str, Any]:
    """The reads and final labels in medreview SRs, as a JSON ``reads`` export would hold them
    (rows keyed by ``sop_instance_uid``); ``skipped`` counts objects that are not reads (predictions' SRs, KOS)."""
    secret = project_secret(store)
    with store.db.read() as session:
        usernames = list(session.scalars(select(User.username)))
        class_names = list(session.scalars(select(LabelClass.name)))
    readers = {reader_pseudonym(secret, name): name for name in usernames} | {name: name for name in usernames}
    class_codes = dict(get_setting(store, "class_codes"))
    by_code = {class_code_parts(name, class_codes): name for name in class_names}
    rows: list[dict[str, Any]] = []
    final_labels: list[dict[str, Any]] = []
    skipped = 0
    for number, dataset in enumerate(datasets, start=1):
        if dataset.get("Modality") == "KO":  # an evaluation set's KOS from the same export folder
            skipped += 1
            continue
        try:
            report = hd.sr.Comprehensive3DSR.from_dataset(dataset).content
            group = report.get_image_measurement_groups()[0]
            words = str(group.tracking_identifier or "").split()
        except (AttributeError, IndexError, ValueError, TypeError, KeyError) as error:
            raise MedreviewError(f"object {number} is not a medreview structured report ({error})") from error
        if len(words) != 3 or words[0] != "medreview" or words[2] not in SCOPES:
            raise MedreviewError(f"object {number} is not a medreview structured report")
        source, scope = words[1], words[2]

        def name_of(concept: hd.sr.CodedConcept) -> str:
            return by_code.get((concept.scheme_designator, concept.value), concept.meaning)

        evaluations = group.get_qualitative_evaluations()
        label = next((name_of(item.value) for item in evaluations if item.name == CLASS), None)
        labels = sorted(name_of(item.value) for item in evaluations if item.name == CLASS_PRESENT)
        key_image = group.source_images[0].referenced_sop_instance_uid
        row: dict[str, Any] = {"scope": scope, "label": label, "sop_instance_uid": key_image}
        if source == "final":
            final_labels.append({**row, "method": "adjudicated"})
            continue
        if source != "read":
            skipped += 1
            continue
        boxes = []
        for roi_group in report.get_planar_roi_measurement_groups():
            region = roi_group.roi
            points = region.value  # (5, 2) (column, row) image pixels
            reference = region.ContentSequence[0].ReferencedSOPSequence[0]
            frames = reference.get("ReferencedFrameNumber")
            left, top = float(points[:, 0].min()), float(points[:, 1].min())
            boxes.append(
                {
                    "label": name_of(roi_group.finding_type),
                    "x": left,
                    "y": top,
                    "width": float(points[:, 0].max()) - left,
                    "height": float(points[:, 1].max()) - top,
                    "frame": int(frames[0] if isinstance(frames, list | pydicom.multival.MultiValue) else frames) - 1
                    if frames
                    else 0,
                }
            )
        observer = report.get_observer_contexts()[0].observer_identifying_attributes
        name = str(getattr(observer, "login_name", None) or str(observer.name).rstrip("^"))
        rows.append({**row, "reader": readers.get(name, name), "labels": labels, "boxes": boxes, "status": "submitted"})
    return {
        "format": "medreview-labels",
        "kind": "reads",
        "rows": rows,
        "final_labels": final_labels,
        "skipped": skipped,
    }


def content_tree_text(dataset: Dataset) -> str:
    """An SR's content tree, one item a line, indented by depth: relationship, value type, concept
    name and value (codes as meaning (scheme value), coordinates as numbers, references as UIDs)."""
    lines: list[str] = []

    def concept(item: Dataset, keyword: str) -> str:
        if keyword not in item or not item.get(keyword):
            return ""
        code = item.get(keyword)[0]
        value = code.get("CodeValue") or code.get("LongCodeValue") or code.get("URNCodeValue")
        return f"{code.CodeMeaning} ({code.CodingSchemeDesignator} {value})"

    def walk(items: Any, depth: int) -> None:
        for item in items:
            name = concept(item, "ConceptNameCodeSequence")
            kind = item.get("ValueType", "")
            value = ""
            if kind == "CODE":
                value = concept(item, "ConceptCodeSequence")
            elif kind in ("TEXT", "UIDREF", "PNAME", "DATETIME", "DATE", "TIME"):
                keyword = {"TEXT": "TextValue", "UIDREF": "UID", "PNAME": "PersonName"}.get(kind, kind.title())
                value = str(item.get(keyword, ""))
            elif kind == "NUM":
                measured = item.MeasuredValueSequence[0]
                value = f"{measured.NumericValue} {concept(measured, 'MeasurementUnitsCodeSequence')}"
            elif kind == "SCOORD":
                value = f"{item.GraphicType} {[float(number) for number in item.GraphicData]}"
            if "ReferencedSOPSequence" in item:
                reference = item.ReferencedSOPSequence[0]
                value = f"{value} SOP {reference.ReferencedSOPInstanceUID}".strip()
            lines.append(f"{'  ' * depth}{item.get('RelationshipType', '')} {kind} {name} = {value}".rstrip(" ="))
            if "ContentSequence" in item:
                walk(item.ContentSequence, depth + 1)

    title = concept(dataset, "ConceptNameCodeSequence")
    lines.append(f"CONTAINER {title}")
    walk(dataset.get("ContentSequence", []), 1)
    return "\n".join(lines)
