"""One bad file never aborts a batch, on SQLite or PostgreSQL: values the store cannot hold are
refused per file with the reason, and the rest of the batch is stored."""

from __future__ import annotations

import io
import zipfile

import pydicom
import pytest
from sqlalchemy import func, select

from medreview.ingest import InputFile, ingest_files, service
from medreview.reading.reads import LOCAL_ACTOR
from medreview.store.models import Image
from medreview.team.settings import set_setting
from tests.helpers import dicom_bytes, png_bytes


def with_modality(data: bytes, modality: str) -> bytes:
    dataset = pydicom.dcmread(io.BytesIO(data))
    dataset.Modality = modality
    buffer = io.BytesIO()
    dataset.save_as(buffer, enforce_file_format=True)
    return buffer.getvalue()


def image_count(store) -> int:
    with store.db.read() as session:
        return session.scalar(select(func.count(Image.id)))


def test_an_over_long_modality_is_refused_and_the_batch_is_stored(any_store):
    # Values as uploaded: de-identified, a modality outside the defined terms is stored as "OT".
    set_setting(any_store, LOCAL_ACTOR, "deidentify", False)
    files = [
        InputFile("good-1.dcm", dicom_bytes("P1")),
        InputFile("long-modality.dcm", with_modality(dicom_bytes("P2"), "M" * 17)),
        InputFile("good-2.png", png_bytes(3)),
    ]
    results = ingest_files(any_store, LOCAL_ACTOR, files)
    assert [result.status for result in results] == ["stored", "rejected", "stored"]
    assert "modality has 17 characters" in results[1].reason
    assert image_count(any_store) == 2
    assert any_store.collect_orphans(min_age_seconds=0) == 0  # the refused file left no blob


def test_an_over_long_member_name_is_shortened_not_fatal(any_store):
    set_setting(any_store, LOCAL_ACTOR, "deidentify", False)  # names as uploaded
    member = "study/" + "deep-folder-name/" * 35 + "scan.dcm"  # about 600 characters
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr(member, dicom_bytes("P3"))
        archive.writestr("other.png", png_bytes(4))
    results = ingest_files(any_store, LOCAL_ACTOR, [InputFile("upload.zip", buffer.getvalue())])
    assert [result.status for result in results] == ["stored", "stored"], [result.reason for result in results]
    with any_store.db.read() as session:
        names = set(session.scalars(select(Image.display_name)))
    assert any(name.startswith("...") and name.endswith("scan.dcm") and len(name) <= 512 for name in names)


# PostgreSQL only: SQLite does not enforce column lengths, so it never raises DataError here.
@pytest.mark.parametrize("any_store", ["postgresql"], indirect=True)
def test_a_value_the_database_refuses_is_isolated_to_its_file(any_store, monkeypatch):
    # Without the length check, PostgreSQL refuses the value inside the chunk's transaction.
    monkeypatch.setattr(service, "_check_fits", lambda accepted: accepted)
    set_setting(any_store, LOCAL_ACTOR, "deidentify", False)  # the modality as uploaded (see above)
    files = [
        InputFile("good-1.dcm", dicom_bytes("P1")),
        InputFile("long-modality.dcm", with_modality(dicom_bytes("P2"), "M" * 17)),
        InputFile("good-2.dcm", dicom_bytes("P4")),
    ]
    results = ingest_files(any_store, LOCAL_ACTOR, files)
    assert [result.status for result in results] == ["stored", "rejected", "stored"]
    assert "refused one of this file's values" in results[1].reason
    assert image_count(any_store) == 2
