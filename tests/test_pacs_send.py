"""``export sr`` + ``pacs-send`` against a real Orthanc with its DICOMweb plugin (tests/orthanc.py):
the SR is found by QIDO, retrieved by WADO and parsed back with highdicom (class, box, probability,
references), a second send stores nothing, ``import-labels`` of the SR recreates the reads, and a
PACS that refuses or does not answer gets a per-object "refused" result."""

from __future__ import annotations

import http.server
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import highdicom as hd
import numpy as np
import pytest
import requests
from dicomweb_client import DICOMwebClient
from sqlalchemy import delete

from medreview.cli import main
from medreview.ingest import InputFile, ingest_files
from medreview.ingest.dicomweb import DicomWebClient
from medreview.reading.dicomout.documents import CLASS, PROBABILITY, DicomObject, sr_objects
from medreview.reading.dicomout.send import send_objects
from medreview.reading.evaluation_sets import create_evaluation_set
from medreview.reading.reads import LOCAL_ACTOR, reads_table, save_read
from medreview.store import Store
from medreview.store.models import Annotation, Image
from tests.helpers import add_model_version, add_predictions, dicom_bytes
from tests.orthanc import OrthancServer, free_port, run_orthanc

pytestmark = pytest.mark.slow  # runs Orthanc

BOX = {"label": "pneumonia", "x": 8.0, "y": 9.5, "width": 20.0, "height": 11.0, "frame": 0}


@pytest.fixture(scope="module")
def orthanc(tmp_path_factory: pytest.TempPathFactory) -> Iterator[OrthancServer]:
    with run_orthanc(tmp_path_factory.mktemp("orthanc-send")) as server:
        yield server


def _web(server: OrthancServer) -> DICOMwebClient:
    session = requests.Session()
    session.auth = (server.username, server.password)
    return DICOMwebClient(server.dicomweb_url, session=session)


def test_export_send_find_retrieve_parse_and_import_back(orthanc, store: Store, tmp_path, monkeypatch, capsys):
    (image,) = ingest_files(store, LOCAL_ACTOR, [InputFile("ct.dcm", dicom_bytes("SEND-1"))])
    save_read(store, LOCAL_ACTOR, image.image_id, "pneumonia", boxes=[BOX])
    model_id = add_model_version(store, active=True)
    add_predictions(store, model_id, {image.image_id: {"pneumonia": 0.91, "normal": 0.09}})
    # The images themselves are in the PACS as stored (the SRs reference them).
    sha256 = image_sha256(store, image.image_id)
    orthanc.upload(store.blobs.read(sha256))
    folder = tmp_path / "sr"

    assert main(["export", "sr", "-o", str(folder), "--reads", "--predictions"]) == 0
    assert len(list(folder.glob("SR-*.dcm"))) == 2
    create_evaluation_set(store, LOCAL_ACTOR, "held out", [image.image_id])
    assert main(["export", "kos", "-o", str(folder)]) == 0
    assert len(list(folder.glob("KO-*.dcm"))) == 1
    monkeypatch.setenv("MEDREVIEW_PACS_PASSWORD", orthanc.password)
    send = ["pacs-send", orthanc.dicomweb_url, str(folder), "--user", orthanc.username]
    capsys.readouterr()
    assert main(send) == 0
    assert [line.split()[0] for line in capsys.readouterr().out.splitlines()] == ["stored"] * 3
    # Sent again: the PACS has all three, nothing is stored twice.
    assert main(send) == 0
    assert capsys.readouterr().out.count("already there") == 3

    web = _web(orthanc)
    study_uid = str(hd.sr.srread(next(folder.glob("SR-*.dcm"))).StudyInstanceUID)
    (kos,) = web.search_for_instances(study_instance_uid=study_uid, search_filters={"Modality": "KO"})
    kos = web.retrieve_instance(study_uid, kos["0020000E"]["Value"][0], kos["00080018"]["Value"][0])
    images = [item for item in kos.ContentSequence if item.ValueType == "IMAGE"]
    assert [item.ReferencedSOPSequence[0].ReferencedSOPInstanceUID for item in images] == [dicom_sop_uid(store, sha256)]
    found = web.search_for_instances(study_instance_uid=study_uid, search_filters={"Modality": "SR"})
    assert len(found) == 2
    reports = {}
    for entry in found:
        uid = entry["00080018"]["Value"][0]
        series = entry["0020000E"]["Value"][0]
        dataset = web.retrieve_instance(study_uid, series, uid)
        content = hd.sr.Comprehensive3DSR.from_dataset(dataset).content
        reports[content.get_image_measurement_groups()[0].tracking_identifier] = content

    read = reports["medreview read image"]
    group = read.get_image_measurement_groups()[0]
    assert group.get_qualitative_evaluations(CLASS)[0].value.meaning == "pneumonia"
    stored_sop_uid = dicom_sop_uid(store, sha256)
    assert [source.referenced_sop_instance_uid for source in group.source_images] == [stored_sop_uid]
    (box,) = read.get_planar_roi_measurement_groups()
    np.testing.assert_array_equal(box.roi.value, [[8, 9.5], [28, 9.5], [28, 20.5], [8, 20.5], [8, 9.5]])
    prediction = reports["medreview prediction image"].get_image_measurement_groups()[0]
    assert prediction.get_measurements(PROBABILITY)[0].value == pytest.approx(0.91)

    # Import back: the SR files recreate the reader's read, box included.
    before = reads_table(store, LOCAL_ACTOR)[["image_id", "reader", "label", "boxes"]]
    with store.db.write() as session:
        session.execute(delete(Annotation))
    assert main(["import-labels", str(folder)]) == 0
    after = reads_table(store, LOCAL_ACTOR)[["image_id", "reader", "label", "boxes"]]
    assert after.to_dict("records") == before.to_dict("records")


def image_sha256(store: Store, image_id: int) -> str:
    with store.db.read() as session:
        return session.get(Image, image_id).sha256


def dicom_sop_uid(store: Store, sha256: str) -> str:
    import pydicom

    return str(pydicom.dcmread(store.blobs.path_for(sha256), stop_before_pixels=True).SOPInstanceUID)


class _RefusingPacs(http.server.BaseHTTPRequestHandler):
    """QIDO finds nothing; STOW is answered 409 for the first study and 500 for others, or not at all."""

    delay = 0.0

    def do_GET(self) -> None:
        self.send_response(200)
        self.send_header("Content-Type", "application/dicom+json")
        self.end_headers()
        self.wfile.write(b"[]")

    def do_POST(self) -> None:
        self.rfile.read(int(self.headers.get("Content-Length", 0)))
        time.sleep(self.delay)
        self.send_response(409 if "/studies/" in self.path and not self.delay else 500)
        self.end_headers()

    def log_message(self, *args: object) -> None:
        pass


@pytest.mark.parametrize("delay", [0.0, 0.8])
def test_a_refusing_or_silent_pacs_is_reported_per_object(store: Store, delay: float) -> None:
    handler = type("Handler", (_RefusingPacs,), {"delay": delay})
    server = http.server.ThreadingHTTPServer(("127.0.0.1", free_port()), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        (image,) = ingest_files(store, LOCAL_ACTOR, [InputFile("ct.dcm", dicom_bytes("SEND-2"))])
        save_read(store, LOCAL_ACTOR, image.image_id, "normal")
        objects, _ = sr_objects(store, LOCAL_ACTOR, ["reads"])
        pacs = DicomWebClient(f"http://127.0.0.1:{server.server_port}/dicom-web", timeout=0.5)

        results = send_objects(store, LOCAL_ACTOR, pacs, objects)
    finally:
        server.shutdown()
        server.server_close()
    assert [result.status for result in results] == ["refused"]
    expected = "no answer from the PACS within 0.5 s" if delay else "the PACS answered HTTP 409"
    assert results[0].reason.startswith(expected)
    assert isinstance(objects[0], DicomObject)


def test_pacs_send_of_an_empty_folder_says_what_to_do(tmp_path: Path, store: Store, capsys) -> None:
    assert main(["pacs-send", "http://127.0.0.1:9/dicom-web", str(tmp_path)]) == 1
    assert "holds no .dcm files" in capsys.readouterr().err
