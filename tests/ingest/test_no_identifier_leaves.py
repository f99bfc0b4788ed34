"""End to end: a DICOM file carrying every attribute of PS3.15 Table E.1-1, uploaded under the
patient's name inside a zip named after the patient, leaves no identifier in the stored object,
in any database row outside the pseudonym map, in any export, or in the log."""

from __future__ import annotations

import io
import logging
import warnings
import zipfile

from sqlalchemy import inspect, text

from medreview.ingest import InputFile, ingest_files
from medreview.reading.exchange import EXPORT_KINDS, write_export
from medreview.reading.reads import LOCAL_ACTOR, save_read
from tests.ingest.test_deid import PHI_VALUES, PROFILE_ROWS, build_every_attribute, to_bytes

ARCHIVE_NAME = "Doe_Johnathan_MRN-5551234.zip"
MEMBER_NAME = "Doe_Johnathan_MRN-5551234/Smith_John_MRN778899_IMG1.dcm"
NAME_PARTS = ["Doe_Johnathan", "MRN-5551234", "Smith_John", "MRN778899"]


def identified_upload() -> tuple[bytes, list[bytes]]:
    tags = [tag for tag in PROFILE_ROWS if tag >> 16 not in (0x0000, 0x0002)]
    dataset, _, markers = build_every_attribute(tags)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        data = to_bytes(dataset)
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr(MEMBER_NAME, data)
    markers = [*markers, *(value.encode() for value in PHI_VALUES), *(part.encode() for part in NAME_PARTS)]
    return buffer.getvalue(), [marker for marker in markers if len(marker) >= 6]


def leaks(blob: bytes, markers: list[bytes]) -> list[bytes]:
    return [marker for marker in markers if marker in blob]


def test_no_identifier_reaches_objects_rows_exports_or_logs(any_store, tmp_path, caplog):
    upload, markers = identified_upload()
    caplog.set_level(logging.DEBUG)
    [result] = ingest_files(any_store, LOCAL_ACTOR, [InputFile(ARCHIVE_NAME, upload)])
    assert result.status == "stored", result.reason
    save_read(
        any_store,
        LOCAL_ACTOR,
        result.image_id,
        "normal",
        boxes=[{"label": "normal", "x": 1, "y": 1, "width": 5, "height": 5}],
    )

    # The stored object.
    [blob] = [path for path in any_store.settings.objects_dir.rglob("*") if path.is_file()]
    assert leaks(blob.read_bytes(), markers) == []

    # Every row of every table but the admin-only pseudonym map, as text.
    with any_store.db.engine.connect() as connection:
        tables = [name for name in inspect(connection).get_table_names() if name != "pseudonym_map"]
        dump = "\n".join(
            repr(row) for table in tables for row in connection.execute(text(f"SELECT * FROM {table}"))
        ).encode()
    assert "images" in tables and leaks(dump, markers) == []

    # Every export, in every format it has.
    for kind in EXPORT_KINDS:
        if kind == "predictions":
            continue  # no model: the export refuses with a message, nothing written
        for file_format in ("json",) if kind == "coco" else ("csv", "json"):
            path = tmp_path / f"{kind}.{file_format}"
            write_export(any_store, LOCAL_ACTOR, kind, path, file_format)
            assert leaks(path.read_bytes(), markers) == [], (kind, file_format)

    # The log of the whole upload.
    assert leaks(caplog.text.encode(), markers) == []

    # The names are kept where they belong: in the pseudonym map, for admins.
    with any_store.db.engine.connect() as connection:
        originals = [row[0] for row in connection.execute(text("SELECT original FROM pseudonym_map"))]
    assert f"{ARCHIVE_NAME}/{MEMBER_NAME}" in originals
