"""The Team page's "DICOM SR / KOS for a PACS" expander in AppTest: the SR zip reaches the session
that asked, with one report per DICOM case and a plain per-case line for a PNG (no traceback)."""

from __future__ import annotations

import io
import zipfile

import pydicom

from medreview.ingest import InputFile, ingest_files
from medreview.reading.dicomout.documents import NO_DICOM
from medreview.reading.reads import save_read
from medreview.store.models import Image
from tests.conftest import ADMIN, run_page_as
from tests.helpers import dicom_bytes, png_bytes
from tests.pages.test_team_page import downloads_sent


def test_the_sr_zip_holds_a_report_per_dicom_read_and_says_why_a_png_has_none(page_store):
    results = ingest_files(page_store, ADMIN, [InputFile("a.dcm", dicom_bytes("P1")), InputFile("c.png", png_bytes(3))])
    dicom_id, png_id = (result.image_id for result in results)
    save_read(page_store, ADMIN, dicom_id, "pneumonia")
    save_read(page_store, ADMIN, png_id, "normal")

    app = run_page_as("team")
    app.multiselect(key="team_sr_sources").set_value(["reads"]).run()
    app.button(key="team_sr_zip").click().run()
    assert not app.exception, app.exception

    [sent] = downloads_sent(app)
    assert sent["name"] == "medreview-sr.zip"
    with zipfile.ZipFile(io.BytesIO(sent["content"])) as archive:
        reports = [pydicom.dcmread(io.BytesIO(archive.read(name))) for name in archive.namelist()]
    assert [report.Modality for report in reports] == ["SR"]
    [series] = reports[0].CurrentRequestedProcedureEvidenceSequence[0].ReferencedSeriesSequence
    with page_store.db.read() as session:
        stored_uid = session.get(Image, dicom_id).sop_instance_uid
    assert series.ReferencedSOPSequence[0].ReferencedSOPInstanceUID == stored_uid

    [table] = [frame.value for frame in app.dataframe if "case" in frame.value.columns]
    rows = {row["case"]: (row["status"], row["reason"]) for _, row in table.iterrows()}
    assert rows == {f"image {dicom_id}": ("written", ""), f"image {png_id}": ("skipped", NO_DICOM)}
