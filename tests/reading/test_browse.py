"""Hierarchy browsing: counts per level, reading order within a series, the DICOM header table."""

from __future__ import annotations

import io

import pydicom
import pytest
from pydicom.dataset import Dataset
from pydicom.sequence import Sequence
from pydicom.uid import generate_uid

from medreview.errors import NotFoundError
from medreview.ingest import InputFile, ingest_files
from medreview.reading.browse import (
    dicom_header,
    filter_header,
    patients,
    series_image_ids,
    series_list,
    series_slices,
    studies,
)
from medreview.reading.reads import LOCAL_ACTOR
from medreview.store.models import Image
from medreview.team.settings import set_setting
from tests.helpers import dicom_bytes, png_bytes

# Axial slices: row direction +x, column direction +y, so the slice normal is +z.
AXIAL = [1.0, 0.0, 0.0, 0.0, 1.0, 0.0]


def positioned_dicom_bytes(
    z: float | None, instance_number: int, study_uid: str, series_uid: str, referenced_uid: str | None = None
) -> bytes:
    """``dicom_bytes`` plus ImagePositionPatient/ImageOrientationPatient at height ``z`` (mm), and
    optionally a ReferencedImageSequence item, so slice location and nesting can be tested."""
    dataset = pydicom.dcmread(
        io.BytesIO(dicom_bytes(study_uid=study_uid, series_uid=series_uid, instance_number=instance_number))
    )
    if z is not None:
        dataset.ImagePositionPatient = [-100.0, -100.0, z]
        dataset.ImageOrientationPatient = AXIAL
    if referenced_uid is not None:
        reference = Dataset()
        reference.ReferencedSOPClassUID = "1.2.840.10008.5.1.4.1.1.2"
        reference.ReferencedSOPInstanceUID = referenced_uid
        dataset.ReferencedImageSequence = Sequence([reference])
    buffer = io.BytesIO()
    dataset.save_as(buffer, enforce_file_format=True)
    return buffer.getvalue()


def ingest(store, payloads: list[bytes]) -> list[int]:
    results = ingest_files(
        store, LOCAL_ACTOR, [InputFile(f"file{index}.dcm", data) for index, data in enumerate(payloads)]
    )
    assert [result.status for result in results] == ["stored"] * len(payloads), results
    return [result.image_id for result in results]


def series_of(store, image_id: int) -> int:
    with store.db.read() as session:
        return session.get(Image, image_id).series_id


def test_series_orders_by_slice_position_not_instance_number_or_upload(store):
    study_uid, series_uid = generate_uid(), generate_uid()
    heights = [30.0, 10.0, 50.0, 20.0, 40.0]  # upload order
    instance_numbers = [2, 5, 1, 4, 3]  # shuffled against both upload order and height
    ids = ingest(
        store,
        [
            positioned_dicom_bytes(z, number, study_uid, series_uid)
            for z, number in zip(heights, instance_numbers, strict=True)
        ],
    )
    by_height = [image_id for _, image_id in sorted(zip(heights, ids, strict=True))]
    series_id = series_of(store, ids[0])
    assert slice_ids(store, series_id) == by_height
    slices = series_slices(store, series_id)
    assert slices["slice_location"].tolist() == sorted(heights)
    assert slices["instance_number"].tolist() == [5, 4, 2, 3, 1]
    # The viewer scrolls the same stack, from any of its slices (it once ordered by instance number
    # and opened Browse's first slice as the last of its stack).
    assert series_image_ids(store, ids[2]) == by_height


def test_series_orders_by_instance_number_without_positions(store):
    study_uid, series_uid = generate_uid(), generate_uid()
    instance_numbers = [3, 1, 5, 2, 4]
    ids = ingest(
        store,
        [dicom_bytes(study_uid=study_uid, series_uid=series_uid, instance_number=n) for n in instance_numbers],
    )
    by_instance = [image_id for _, image_id in sorted(zip(instance_numbers, ids, strict=True))]
    assert slice_ids(store, series_of(store, ids[0])) == by_instance


def test_one_slice_without_position_falls_back_to_instance_numbers(store):
    study_uid, series_uid = generate_uid(), generate_uid()
    # By height the order would be 3, 2, 1; one slice has no position, so instance numbers decide.
    ids = ingest(
        store,
        [
            positioned_dicom_bytes(30.0, 1, study_uid, series_uid),
            positioned_dicom_bytes(20.0, 2, study_uid, series_uid),
            positioned_dicom_bytes(None, 3, study_uid, series_uid),
        ],
    )
    assert slice_ids(store, series_of(store, ids[0])) == ids


def test_counts_at_each_level(store):
    first_study, second_study, other_study = generate_uid(), generate_uid(), generate_uid()
    series_a, series_b, series_c, series_d = (generate_uid() for _ in range(4))
    ingest(
        store,
        [
            dicom_bytes("P1", study_uid=first_study, series_uid=series_a, instance_number=1),
            dicom_bytes("P1", study_uid=first_study, series_uid=series_a, instance_number=2),
            dicom_bytes("P1", study_uid=first_study, series_uid=series_b, instance_number=1),
            dicom_bytes("P1", study_uid=second_study, series_uid=series_c, instance_number=1),
            dicom_bytes("P2", study_uid=other_study, series_uid=series_d, instance_number=1),
        ],
    )
    table = patients(store)
    assert list(table.columns) == ["patient_id", "patient_key", "patient_name", "studies", "images"]
    # Patient keys may be pseudonyms (de-identification at import), so match patients by their counts.
    assert sorted(zip(table["studies"], table["images"], strict=True)) == [(1, 1), (2, 4)]
    busy_patient = int(table.loc[table["images"] == 4, "patient_id"].iloc[0])

    patient_studies = studies(store, busy_patient)
    assert list(patient_studies.columns) == ["study_id", "study_uid", "study_date", "description", "series", "images"]
    assert sorted(zip(patient_studies["series"], patient_studies["images"], strict=True)) == [(1, 1), (2, 3)]
    two_series_study = int(patient_studies.loc[patient_studies["series"] == 2, "study_id"].iloc[0])

    study_series = series_list(store, two_series_study)
    assert list(study_series.columns) == [
        "series_id",
        "series_uid",
        "modality",
        "description",
        "series_number",
        "images",
    ]
    assert sorted(study_series["images"]) == [1, 2]
    assert set(study_series["modality"]) == {"CT"}


def test_png_has_its_own_patient_study_and_series(store):
    [image_id] = ingest(store, [png_bytes(3)])
    [patient_id] = patients(store)["patient_id"]
    [study_id] = studies(store, int(patient_id))["study_id"]
    [series_id] = series_list(store, int(study_id))["series_id"]
    assert slice_ids(store, int(series_id)) == [image_id]


def test_unknown_ids_raise_not_found(store):
    for call in (
        lambda: studies(store, 999),
        lambda: series_list(store, 999),
        lambda: slice_ids(store, 999),
        lambda: dicom_header(store, LOCAL_ACTOR, 999),
    ):
        with pytest.raises(NotFoundError):
            call()


@pytest.mark.parametrize("deidentify", [True, False], ids=["deidentified", "as-uploaded"])
def test_dicom_header_lists_identifiers_and_nested_items_but_not_pixels(store, deidentify):
    set_setting(store, LOCAL_ACTOR, "deidentify", deidentify)
    study_uid, series_uid = generate_uid(), generate_uid()
    [image_id] = ingest(store, [positioned_dicom_bytes(5.0, 1, study_uid, series_uid, referenced_uid=generate_uid())])
    with store.db.read() as session:
        stored = pydicom.dcmread(store.blobs.path_for(session.get(Image, image_id).sha256))

    header = dicom_header(store, LOCAL_ACTOR, image_id)
    assert list(header.columns) == ["tag", "keyword", "vr", "value"]
    assert header["tag"].iloc[0].startswith("(0002,")  # file meta first
    rows = header.set_index("keyword")
    # What the stored file says (a pseudonym when de-identification is on), not what was uploaded.
    assert rows.loc["PatientID", "tag"] == "(0010,0020)"
    assert rows.loc["PatientID", "value"] == stored.PatientID
    assert rows.loc["SOPInstanceUID", "value"] == stored.SOPInstanceUID
    assert rows.loc["ReferencedImageSequence", "value"] == "<1 item>"
    assert rows.loc["> ReferencedSOPInstanceUID", "value"] == stored.ReferencedImageSequence[0].ReferencedSOPInstanceUID
    assert "> Item 1" in rows.index
    assert "(7FE0,0010)" not in set(header["tag"])
    assert "PixelData" not in set(header["keyword"])


def test_dicom_header_truncates_long_values(store):
    [image_id] = ingest(store, [dicom_bytes()])
    header = dicom_header(store, LOCAL_ACTOR, image_id, max_value_chars=12)
    uid = header.set_index("keyword").loc["SOPInstanceUID", "value"]
    assert len(uid) == 12 and uid.endswith("…")
    assert header["value"].str.len().max() <= 12


def test_filter_header_matches_tag_keyword_or_value(store):
    [image_id] = ingest(store, [dicom_bytes()])
    header = dicom_header(store, LOCAL_ACTOR, image_id)
    assert filter_header(header, "0010,0020")["keyword"].tolist() == ["PatientID"]
    assert "PatientID" in filter_header(header, "patientid")["keyword"].tolist()
    modality = filter_header(header, "modality")
    assert modality["value"].tolist() == ["CT"]
    assert len(filter_header(header, "  ")) == len(header)


def test_png_header_says_not_dicom(store):
    [image_id] = ingest(store, [png_bytes(4, size=48)])
    header = dicom_header(store, LOCAL_ACTOR, image_id)
    values = header.set_index("keyword")["value"]
    assert values["Note"] == "not a DICOM file"
    assert values["Format"] == "PNG"
    assert values["Size"] == "48 × 48 pixels"


def slice_ids(store, series_id):
    """A series' image ids in reading order."""
    return [int(image_id) for image_id in series_slices(store, series_id)["image_id"]]
