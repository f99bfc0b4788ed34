"""Filing into patient -> study -> series: never one patient's image under another's."""

from __future__ import annotations

import io

import pydicom
import pytest
from sqlalchemy import select

from medreview.ingest import InputFile, ingest_files
from medreview.reading.reads import LOCAL_ACTOR
from medreview.store.models import Image, Patient, Series, Study
from medreview.team.settings import set_setting
from tests.helpers import dicom_bytes


def without(data: bytes, *keywords: str) -> bytes:
    dataset = pydicom.dcmread(io.BytesIO(data))
    for keyword in keywords:
        delattr(dataset, keyword)
    buffer = io.BytesIO()
    dataset.save_as(buffer, enforce_file_format=True)
    return buffer.getvalue()


def filing(store) -> list[tuple[str, str, str]]:
    """(patient key, study UID, series UID) of every stored image, in image order."""
    with store.db.read() as session:
        rows = session.execute(
            select(Patient.patient_key, Study.study_uid, Series.series_uid)
            .join(Study, Study.patient_id == Patient.id)
            .join(Series, Series.study_id == Study.id)
            .join(Image, Image.series_id == Series.id)
            .order_by(Image.id)
        ).all()
    return [tuple(row) for row in rows]


@pytest.mark.parametrize("deidentify", [True, False])
def test_uidless_files_of_two_patients_stay_two_patients(store, deidentify):
    set_setting(store, LOCAL_ACTOR, "deidentify", deidentify)
    files = [
        InputFile(
            f"{patient}-{number}.dcm",
            without(dicom_bytes(patient, instance_number=number), "StudyInstanceUID", "SeriesInstanceUID"),
        )
        for patient in ("P1", "P2")
        for number in (1, 2)
    ]
    results = ingest_files(store, LOCAL_ACTOR, files)
    assert [result.status for result in results] == ["stored"] * 4, [result.message for result in results]
    (p1, s1, r1), (p1b, s1b, r1b), (p2, s2, r2), (p2b, s2b, r2b) = filing(store)
    # One patient's two files share a (replacement) study and series; the two patients share nothing.
    assert (p1, s1, r1) == (p1b, s1b, r1b) and (p2, s2, r2) == (p2b, s2b, r2b)
    assert p1 != p2 and s1 != s2 and r1 != r2
    assert "" not in {s1, s2, r1, r2} and all(uid.startswith("2.25.") for uid in (s1, s2, r1, r2))


@pytest.mark.parametrize("deidentify", [True, False])
def test_files_without_patient_id_or_study_uid_are_not_merged(store, deidentify):
    set_setting(store, LOCAL_ACTOR, "deidentify", deidentify)
    files = [
        InputFile(
            f"anonymous-{number}.dcm", without(dicom_bytes("X"), "PatientID", "StudyInstanceUID", "SeriesInstanceUID")
        )
        for number in (1, 2)
    ]
    results = ingest_files(store, LOCAL_ACTOR, files)
    assert [result.status for result in results] == ["stored", "stored"], [result.message for result in results]
    first, second = filing(store)
    assert first[0] != second[0] and first[1] != second[1]
    assert "" not in first + second


def test_filing_replacements_are_the_same_on_every_upload(tmp_path):
    # Deterministic: the same file gives the same replacement UIDs in another store (de-identification off).
    from medreview.store import Store
    from tests.conftest import make_settings

    data = without(dicom_bytes("P7"), "StudyInstanceUID", "SeriesInstanceUID")
    filings = []
    for name in ("one", "two"):
        other = Store.open(make_settings(tmp_path / name))
        set_setting(other, LOCAL_ACTOR, "deidentify", False)
        ingest_files(other, LOCAL_ACTOR, [InputFile("scan.dcm", data)])
        filings.append(filing(other))
        other.close()
    assert filings[0] == filings[1]


@pytest.mark.parametrize(("mode", "expected"), [("CMYK", "RGB"), ("RGB", "RGB"), ("L", "MONOCHROME2")])
def test_a_jpeg_is_recorded_with_its_colour(store, mode, expected):
    import numpy as np
    from PIL import Image as PILImage

    pixels = np.random.default_rng(5).integers(0, 256, (32, 32, 4 if mode == "CMYK" else 3), dtype=np.uint8)
    picture = PILImage.fromarray(pixels[..., :3] if mode == "RGB" else pixels, mode="CMYK" if mode == "CMYK" else None)
    picture = picture.convert("L") if mode == "L" else picture
    buffer = io.BytesIO()
    picture.save(buffer, format="JPEG")
    [result] = ingest_files(store, LOCAL_ACTOR, [InputFile(f"{mode}.jpg", buffer.getvalue())])
    assert result.status == "stored", result.message
    with store.db.read() as session:
        assert session.get(Image, result.image_id).photometric_interpretation == expected
