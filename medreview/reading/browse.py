"""Browsing the imaging hierarchy: patient -> study -> series -> image, and one file's DICOM header.

Pure read queries over the store for the Browse page and the CLI. The tables are pandas frames
(one row per patient, study or series, with counts) so a page can show them as they are;
:func:`series_slices` gives a series' images in reading order, and :func:`dicom_header` lists a
stored file's header elements, read without touching its pixel data.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import pandas as pd
import pydicom
from pydicom.dataelem import DataElement
from pydicom.dataset import Dataset
from pydicom.errors import InvalidDicomError
from pydicom.multival import MultiValue
from sqlalchemy import Row, func, select

from medreview.errors import ImagingError, NotFoundError
from medreview.imaging.tags import PIXEL_DATA_TAGS
from medreview.store import Store
from medreview.store.models import Image, Patient, Series, Study
from medreview.team.roles import Actor, require

__all__ = [
    "HEADER_COLUMNS",
    "dicom_header",
    "filter_header",
    "patients",
    "series_image_ids",
    "series_list",
    "series_slices",
    "studies",
]

HEADER_COLUMNS = ["tag", "keyword", "vr", "value"]
# VRs whose values are raw bytes: shown as a length, never dumped.
_BINARY_VRS = frozenset({"OB", "OD", "OF", "OL", "OV", "OW", "UN", "OB or OW", "US or OW"})
_INDENT = "> "
_WHITESPACE = re.compile(r"\s+")


def patients(store: Store) -> pd.DataFrame:
    """One row per patient: patient_id (row id), patient_key, patient_name, studies, images.

    Sorted by patient_key. PNG/JPEG uploads appear as their synthetic "raster-..." patients.
    """
    with store.db.read() as session:
        rows = session.execute(
            select(
                Patient.id,
                Patient.patient_key,
                Patient.patient_name,
                func.count(func.distinct(Study.id)),
                func.count(Image.id),
            )
            .outerjoin(Study, Study.patient_id == Patient.id)
            .outerjoin(Series, Series.study_id == Study.id)
            .outerjoin(Image, Image.series_id == Series.id)
            .group_by(Patient.id, Patient.patient_key, Patient.patient_name)
            .order_by(Patient.patient_key, Patient.id)
        ).all()
    return pd.DataFrame(
        [tuple(row) for row in rows],
        columns=["patient_id", "patient_key", "patient_name", "studies", "images"],
    )


def studies(store: Store, patient_id: int) -> pd.DataFrame:
    """The studies of one patient, newest first (undated last): study_id, study_uid, study_date
    ("YYYYMMDD" or None), description, series, images. Raises NotFoundError for an unknown patient."""
    with store.db.read() as session:
        if session.get(Patient, patient_id) is None:
            raise NotFoundError(f"patient {patient_id} does not exist")
        rows = session.execute(
            select(
                Study.id,
                Study.study_uid,
                Study.study_date,
                Study.description,
                func.count(func.distinct(Series.id)),
                func.count(Image.id),
            )
            .outerjoin(Series, Series.study_id == Study.id)
            .outerjoin(Image, Image.series_id == Series.id)
            .where(Study.patient_id == patient_id)
            .group_by(Study.id, Study.study_uid, Study.study_date, Study.description)
            .order_by(Study.study_date.is_(None), Study.study_date.desc(), Study.id)
        ).all()
    return pd.DataFrame(
        [tuple(row) for row in rows],
        columns=["study_id", "study_uid", "study_date", "description", "series", "images"],
    )


def series_list(store: Store, study_id: int) -> pd.DataFrame:
    """The series of one study by SeriesNumber (unnumbered last): series_id, series_uid, modality,
    description, series_number (nullable Int64), images. Raises NotFoundError for an unknown study."""
    with store.db.read() as session:
        if session.get(Study, study_id) is None:
            raise NotFoundError(f"study {study_id} does not exist")
        rows = session.execute(
            select(
                Series.id,
                Series.series_uid,
                Series.modality,
                Series.description,
                Series.series_number,
                func.count(Image.id),
            )
            .outerjoin(Image, Image.series_id == Series.id)
            .where(Series.study_id == study_id)
            .group_by(Series.id, Series.series_uid, Series.modality, Series.description, Series.series_number)
            .order_by(Series.series_number.is_(None), Series.series_number, Series.id)
        ).all()
    frame = pd.DataFrame(
        [tuple(row) for row in rows],
        columns=["series_id", "series_uid", "modality", "description", "series_number", "images"],
    )
    frame["series_number"] = frame["series_number"].astype("Int64")
    return frame


def series_slices(store: Store, series_id: int) -> pd.DataFrame:
    """The images of one series in reading order, one row each: image_id, instance_number and
    slice_location (nullable), number_of_frames, media_type.

    By slice location (ImagePositionPatient projected on the slice normal, stored at ingest) when
    every image has one: the only order that is right for a stack whose InstanceNumbers were
    assigned in acquisition order or restarted. Otherwise by InstanceNumber (unnumbered images
    last), otherwise by id (upload order). Ties go by InstanceNumber, then id.
    Raises NotFoundError for an unknown series.
    """
    with store.db.read() as session:
        if session.get(Series, series_id) is None:
            raise NotFoundError(f"series {series_id} does not exist")
        rows = session.execute(
            select(
                Image.id, Image.instance_number, Image.slice_location, Image.number_of_frames, Image.media_type
            ).where(Image.series_id == series_id)
        ).all()
    has_positions = bool(rows) and all(row.slice_location is not None for row in rows)

    def instance_key(row: Row) -> tuple[bool, int, int]:
        return (row.instance_number is None, row.instance_number or 0, row.id)

    if has_positions:
        ordered = sorted(rows, key=lambda row: (row.slice_location, *instance_key(row)))
    else:
        ordered = sorted(rows, key=instance_key)
    frame = pd.DataFrame(
        [tuple(row) for row in ordered],
        columns=["image_id", "instance_number", "slice_location", "number_of_frames", "media_type"],
    )
    frame["instance_number"] = frame["instance_number"].astype("Int64")
    frame["slice_location"] = frame["slice_location"].astype("Float64")
    return frame


def series_image_ids(store: Store, image_id: int) -> list[int]:
    """The images of ``image_id``'s series in reading order (:func:`series_slices`): the stack the
    viewer scrolls through; [image_id] for a lone image. Raises NotFoundError for an unknown image."""
    with store.db.read() as session:
        series_id = session.scalar(select(Image.series_id).where(Image.id == image_id))
    if series_id is None:
        raise NotFoundError(f"image {image_id} does not exist")
    return [int(found) for found in series_slices(store, series_id)["image_id"]]


def dicom_header(store: Store, actor: Actor, image_id: int, max_value_chars: int = 200) -> pd.DataFrame:
    """The header of one stored image as rows of tag "(GGGG,EEEE)", keyword, vr, value (text).

    File meta elements come first, then the dataset in file order. Sequence items are flattened
    under their sequence: an "Item n" row, then the item's elements, each level indented with
    "> " in the keyword. Binary values are shown as their length; values longer than
    ``max_value_chars`` are cut with "…". The file is read with ``stop_before_pixels``, so pixel
    data is never read, let alone decoded. For a PNG/JPEG image the rows describe the file and
    say "not a DICOM file". Raises NotFoundError for an unknown image, ImagingError for a stored
    file that cannot be read.
    """
    require(actor, "annotator", "see image headers")
    if max_value_chars < 2:
        raise ValueError(f"max_value_chars must be at least 2, got {max_value_chars}")
    with store.db.read() as session:
        image = session.get(Image, image_id)
        if image is None:
            raise NotFoundError(f"image {image_id} does not exist")
        media_type, sha256 = image.media_type, image.sha256
        raster_rows = [
            ("", "Note", "", "not a DICOM file"),
            ("", "Format", "", media_type.upper()),
            ("", "Size", "", f"{image.columns} × {image.rows} pixels"),
            ("", "Colour", "", image.photometric_interpretation),
            ("", "FileSize", "", f"{image.size_bytes:,} bytes"),
            ("", "DisplayName", "", image.display_name),
        ]
    if media_type != "dicom":
        rows = raster_rows
    else:
        dataset = _read_header(store.blobs.path_for(sha256))
        rows = [
            (tag, keyword, vr, _truncate(value, max_value_chars)) for tag, keyword, vr, value in _walk_header(dataset)
        ]
    return pd.DataFrame(rows, columns=HEADER_COLUMNS)


def filter_header(header: pd.DataFrame, text: str) -> pd.DataFrame:
    """The rows of a :func:`dicom_header` frame whose tag, keyword or value contains ``text``
    (case-insensitive; "0010,0020" matches "(0010,0020)"). Blank ``text`` keeps every row."""
    needle = text.strip().lower()
    if not needle:
        return header
    matches = pd.Series(False, index=header.index)
    for column in ("tag", "keyword", "value"):
        matches |= header[column].str.lower().str.contains(needle, regex=False)
    return header[matches]


def _read_header(path: Path) -> Dataset:
    try:
        try:
            return pydicom.dcmread(path, stop_before_pixels=True)
        except InvalidDicomError:
            # A legacy object without preamble and file meta: ingest accepted it only after
            # recognising its first elements (medreview.ingest.dicom.looks_like_dicom), so forcing
            # the parse here reads what was validated then.
            return pydicom.dcmread(path, stop_before_pixels=True, force=True)
    except FileNotFoundError:
        raise ImagingError(f"the stored file of this image is missing ({path.name})") from None
    except Exception as error:  # pydicom raises many types for damaged files
        raise ImagingError(f"cannot read the DICOM header: {error}") from error


def _walk_header(dataset: Dataset) -> Iterator[tuple[str, str, str, str]]:
    file_meta = getattr(dataset, "file_meta", None)
    if file_meta is not None:
        yield from _walk_elements(file_meta, depth=0)
    yield from _walk_elements(dataset, depth=0)


def _walk_elements(dataset: Dataset, depth: int) -> Iterator[tuple[str, str, str, str]]:
    indent = _INDENT * depth
    for tag in list(dataset.keys()):
        if int(tag) in PIXEL_DATA_TAGS:
            continue
        try:
            element = dataset[tag]  # converts a raw element: VR, character set, value
        except Exception as error:  # a malformed value must not hide the rest of the header
            yield _tag_text(int(tag)), indent + "?", "", f"<unreadable: {error}>"
            continue
        keyword = element.keyword or element.name
        if element.VR == "SQ":
            items = element.value or []
            yield _tag_text(element.tag), indent + keyword, "SQ", f"<{len(items)} item{'s' * (len(items) != 1)}>"
            for number, item in enumerate(items, start=1):
                # (FFFE,E000) is the Item tag of PS3.5 7.5.
                yield "(FFFE,E000)", _INDENT * (depth + 1) + f"Item {number}", "", ""
                yield from _walk_elements(item, depth + 1)
            continue
        yield _tag_text(element.tag), indent + keyword, str(element.VR), _value_text(element)


def _tag_text(tag: int) -> str:
    return f"({tag >> 16:04X},{tag & 0xFFFF:04X})"


def _value_text(element: DataElement) -> str:
    value = element.value
    if value is None or value == "":
        return ""
    if element.VR in _BINARY_VRS or isinstance(value, bytes | bytearray | memoryview):
        return f"<{len(value):,} bytes>"
    if isinstance(value, MultiValue | list | tuple):
        text = "\\".join(str(item) for item in value)
    else:
        text = str(value)
    # Free text (LT, ST, UT) may hold line breaks; one table row shows one line.
    return _WHITESPACE.sub(" ", text).strip()


def _truncate(text: str, max_chars: int) -> str:
    return text if len(text) <= max_chars else text[: max_chars - 1] + "…"
