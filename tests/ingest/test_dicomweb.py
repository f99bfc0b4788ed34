"""PACS import over DICOMweb, against a real Orthanc with its DICOMweb plugin (see tests/orthanc.py)."""

from __future__ import annotations

import socket
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from pydicom.uid import generate_uid
from sqlalchemy import func, select

from medreview.config import IngestLimits, Settings
from medreview.errors import IngestError
from medreview.ingest.dicomweb import DicomWebClient, _iter_multipart, import_study
from medreview.reading.reads import LOCAL_ACTOR
from medreview.store import Store
from medreview.store.models import Image, Patient, Series, Study
from medreview.team.settings import set_setting
from tests.helpers import dicom_bytes
from tests.orthanc import OrthancServer, free_port, run_orthanc

pytestmark = pytest.mark.slow  # runs Orthanc


@dataclass(frozen=True)
class Pacs:
    server: OrthancServer
    ct_study_uid: str  # patient PACS-CT: one CT series of 3 slices
    mr_study_uid: str  # patient "PACS MR" (a space in the ID): one MR instance
    ct_files: tuple[bytes, ...]  # the CT slices as uploaded

    def client(self, **overrides: object) -> DicomWebClient:
        values: dict[str, object] = {
            "base_url": self.server.dicomweb_url,
            "username": self.server.username,
            "password": self.server.password,
            "timeout": 10.0,
        }
        values.update(overrides)
        return DicomWebClient(**values)  # type: ignore[arg-type]


@pytest.fixture(scope="module")
def pacs(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Pacs]:
    with run_orthanc(tmp_path_factory.mktemp("orthanc")) as server:
        ct_study_uid, ct_series_uid = generate_uid(), generate_uid()
        ct_files = tuple(
            dicom_bytes("PACS-CT", study_uid=ct_study_uid, series_uid=ct_series_uid, instance_number=slice_number)
            for slice_number in (1, 2, 3)
        )
        for data in ct_files:
            server.upload(data)
        mr_study_uid = generate_uid()
        server.upload(dicom_bytes("PACS MR", study_uid=mr_study_uid, modality="MR"))
        yield Pacs(server, ct_study_uid, mr_study_uid, ct_files)


def _store_counts(store: Store) -> tuple[int, int, int, int]:
    with store.db.read() as session:
        return (
            session.scalar(select(func.count(Patient.id))) or 0,
            session.scalar(select(func.count(Study.id))) or 0,
            session.scalar(select(func.count(Series.id))) or 0,
            session.scalar(select(func.count(Image.id))) or 0,
        )


# -- search ---------------------------------------------------------------------------------------


def test_search_by_patient_id_finds_the_study_with_its_counts(pacs: Pacs) -> None:
    studies = pacs.client().search_studies(patient_id="PACS-CT")

    assert len(studies) == 1
    study = studies[0]
    assert study.study_uid == pacs.ct_study_uid
    assert study.patient_id == "PACS-CT"
    assert study.patient_name == "Test^PACS-CT"
    assert study.modalities == "CT"
    assert (study.series_count, study.instance_count) == (1, 3)


def test_search_filters_by_modality_and_name_wildcard(pacs: Pacs) -> None:
    client = pacs.client()

    assert [study.study_uid for study in client.search_studies(modality="MR")] == [pacs.mr_study_uid]
    by_name = {study.study_uid for study in client.search_studies(patient_name="Test^PACS*")}
    assert by_name == {pacs.ct_study_uid, pacs.mr_study_uid}
    # "^" and " " cannot reach Orthanc 1.10 percent-encoded (it does not decode query values):
    # they are sent as the "?" wildcard, so exact names and IDs with them are still found.
    exact_name = client.search_studies(patient_name="Test^PACS MR")
    assert [study.study_uid for study in exact_name] == [pacs.mr_study_uid]
    assert [study.patient_id for study in client.search_studies(patient_id="PACS MR")] == ["PACS MR"]
    assert len(client.search_studies(limit=1)) == 1


def test_search_without_a_match_returns_nothing(pacs: Pacs) -> None:
    assert pacs.client().search_studies(patient_id="NOBODY") == []


# -- import ---------------------------------------------------------------------------------------


def test_import_stores_every_instance_and_a_second_import_reports_duplicates(pacs: Pacs, store: Store) -> None:
    # Byte-for-byte comparison with what the PACS holds needs de-identification off (it is on by
    # default; test_import_is_deidentified_by_default covers that path).
    set_setting(store, LOCAL_ACTOR, "deidentify", False)
    seen_progress: list[int] = []

    results = import_study(
        store, LOCAL_ACTOR, pacs.client(), pacs.ct_study_uid, progress=lambda done, _name: seen_progress.append(done)
    )

    assert [result.status for result in results] == ["stored"] * 3
    assert all(result.file.startswith(f"{pacs.ct_study_uid}/") for result in results)
    assert seen_progress == [1, 2, 3]
    assert _store_counts(store) == (1, 1, 1, 3)
    with store.db.read() as session:
        assert session.scalar(select(Study.study_uid)) == pacs.ct_study_uid
        assert session.scalar(select(Patient.patient_key)) == "PACS-CT"
        assert sorted(session.scalars(select(Image.instance_number))) == [1, 2, 3]
        sha256s = session.scalars(select(Image.sha256)).all()
    # transfer-syntax=* keeps the originals byte-for-byte: the store holds what was sent to the PACS.
    assert sorted(store.blobs.read(sha256) for sha256 in sha256s) == sorted(pacs.ct_files)

    again = import_study(store, LOCAL_ACTOR, pacs.client(), pacs.ct_study_uid)

    assert [result.status for result in again] == ["duplicate"] * 3
    assert all("already stored" in result.reason for result in again)


def test_import_is_deidentified_by_default(pacs: Pacs, store: Store) -> None:
    results = import_study(store, LOCAL_ACTOR, pacs.client(), pacs.ct_study_uid)
    assert [result.status for result in results] == ["stored"] * 3
    with store.db.read() as session:
        assert session.scalar(select(Patient.patient_key)).startswith("ANON-")
        assert session.scalar(select(Study.study_uid)) != pacs.ct_study_uid  # remapped, consistently:
        assert _store_counts(store) == (1, 1, 1, 3)  # the three slices still share one study and series
        for sha256 in session.scalars(select(Image.sha256)):
            assert b"PACS-CT" not in store.blobs.read(sha256)
    again = import_study(store, LOCAL_ACTOR, pacs.client(), pacs.ct_study_uid)
    assert [result.status for result in again] == ["duplicate"] * 3
    assert _store_counts(store) == (1, 1, 1, 3)


def test_import_refuses_a_study_larger_than_the_limit(pacs: Pacs, tmp_path: Path) -> None:
    settings = Settings(
        data_dir=tmp_path,
        database_url=f"sqlite:///{tmp_path / 'medreview.db'}",
        limits=IngestLimits(max_archive_total_bytes=10_000),  # one 64x64 16-bit slice is ~8.5 kB
    )
    small_store = Store.open(settings)
    try:
        with pytest.raises(IngestError, match=r"larger than the import limit \(10000 bytes\)"):
            import_study(small_store, LOCAL_ACTOR, pacs.client(), pacs.ct_study_uid)
        assert _store_counts(small_store)[3] == 0
    finally:
        small_store.close()


def test_a_study_the_pacs_does_not_have_is_a_plain_error(pacs: Pacs, store: Store) -> None:
    # Decision: an unknown study is an error, not an empty result, so a typo is never mistaken
    # for an empty study.
    missing_uid = generate_uid()
    with pytest.raises(IngestError, match=f"has no study {missing_uid}"):
        import_study(store, LOCAL_ACTOR, pacs.client(), missing_uid)
    with pytest.raises(IngestError, match="not a valid study UID"):
        import_study(store, LOCAL_ACTOR, pacs.client(), "../../instances")
    assert _store_counts(store)[3] == 0


# -- failures a user can cause ------------------------------------------------------------------


def test_a_closed_port_is_a_plain_connection_error() -> None:
    port = free_port()
    client = DicomWebClient(f"http://127.0.0.1:{port}/dicom-web", timeout=5)

    with pytest.raises(IngestError) as raised:
        client.search_studies()

    assert str(raised.value) == f"cannot reach the PACS at http://127.0.0.1:{port}/dicom-web: connection refused"


def test_a_wrong_password_is_a_refused_login_and_never_shown(pacs: Pacs) -> None:
    client = pacs.client(password="wrong-secret")

    with pytest.raises(IngestError) as raised:
        client.search_studies()

    assert str(raised.value) == "the PACS refused the login (HTTP 401)"
    assert "wrong-secret" not in repr(client)
    with pytest.raises(IngestError, match=r"the PACS asks for a login \(HTTP 401\)"):
        pacs.client(username=None, password=None).search_studies()


def test_a_credential_in_the_address_is_never_shown() -> None:
    port = free_port()
    client = DicomWebClient(f"http://reader:hunter2@127.0.0.1:{port}/dicom-web", timeout=5)

    with pytest.raises(IngestError) as raised:
        client.search_studies()

    assert "hunter2" not in str(raised.value)
    assert f"http://127.0.0.1:{port}/dicom-web" in str(raised.value)


def test_an_address_that_is_not_a_dicomweb_service_says_so(pacs: Pacs) -> None:
    with pytest.raises(IngestError, match=r"no DICOMweb service at .*/not-dicom-web \(HTTP 404\)"):
        pacs.client(base_url=f"{pacs.server.url}/not-dicom-web").search_studies()


def test_a_server_that_never_answers_times_out_plainly() -> None:
    # A real socket that accepts connections and then says nothing.
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen()
        port = listener.getsockname()[1]
        accepted: list[socket.socket] = []
        thread = threading.Thread(target=lambda: accepted.append(listener.accept()[0]), daemon=True)
        thread.start()
        client = DicomWebClient(f"http://127.0.0.1:{port}/dicom-web", timeout=0.5)

        with pytest.raises(IngestError) as raised:
            client.search_studies()

        thread.join(timeout=5)
        for connection in accepted:
            connection.close()
    assert str(raised.value) == f"the PACS at http://127.0.0.1:{port}/dicom-web did not answer within 0.5 seconds"


# -- multipart/related splitting ----------------------------------------------------------------

BOUNDARY = b"8648c65e-7bd8-4041-867b-e1ff3f4e56c4"
BODY = (
    b"preamble to ignore\r\n"
    b"--" + BOUNDARY + b"\r\nContent-Type: application/dicom\r\n\r\nfirst\r\n--not the boundary\r\n"
    b"\r\n--" + BOUNDARY + b"  \r\n\r\nsecond, without headers"
    b"\r\n--" + BOUNDARY + b"--\r\nepilogue to ignore"
)


@pytest.mark.parametrize("chunk_size", [1, 2, 7, 64, len(BODY)])
def test_multipart_parts_are_split_however_the_body_arrives(chunk_size: int) -> None:
    chunks = [BODY[start : start + chunk_size] for start in range(0, len(BODY), chunk_size)]

    parts = list(_iter_multipart(chunks, BOUNDARY))

    assert parts == [b"first\r\n--not the boundary\r\n", b"second, without headers"]


def test_a_cut_multipart_body_is_refused() -> None:
    cut = BODY[: BODY.index(b"second")]
    with pytest.raises(IngestError, match="incomplete multipart body"):
        list(_iter_multipart([cut], BOUNDARY))
