"""PACS import over DICOMweb, against a real Orthanc with its DICOMweb plugin (see tests/orthanc.py)."""

from __future__ import annotations

import http.server
import socket
import threading
import time
from collections.abc import Iterator
from contextlib import closing, contextmanager
from dataclasses import dataclass
from pathlib import Path

import pytest
import requests
from pydicom.uid import generate_uid
from sqlalchemy import func, select
from urllib3.util.retry import Retry

from medreview.config import IngestLimits, Settings
from medreview.errors import IngestError
from medreview.ingest.dicomweb import DicomWebClient, _Guard, _GuardedSession, import_study, pacs_client
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
    # Instances are numbered, never named after the original study UID (an identifier).
    assert all(result.file.startswith("pacs-instance-") for result in results)
    assert not any(pacs.ct_study_uid in result.file + result.reason for result in results)
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
        # A read that timed out is not retried (RETRY: read=0): no second connection comes.
        listener.settimeout(0.2)
        with pytest.raises(TimeoutError):
            accepted.append(listener.accept()[0])
        for connection in accepted:
            connection.close()
    assert str(raised.value) == f"the PACS at http://127.0.0.1:{port}/dicom-web did not answer within 0.5 seconds"


# -- a misbehaving server: redirects elsewhere, endless answers, a slow drip ----------------------

# How long the misbehaving server keeps going at most, so a client without limits fails its test
# instead of hanging it (and a stuck handler thread ends with the test run).
_MISBEHAVING_SECONDS = 20.0
_ENDLESS_BYTES = 64 * 1024 * 1024
_DRIP_BOUNDARY = "drip-boundary"
_STUDY_TYPE = f'multipart/related; type="application/dicom"; boundary={_DRIP_BOUNDARY}'
# Two instances as a PACS may send them: a part whose content holds a line that only looks like a
# delimiter, a part without headers, an epilogue.
_INSTANCES = (b"first\r\n--not the boundary\r\n", b"second, without headers")
_STUDY_BODY = (
    f"--{_DRIP_BOUNDARY}\r\nContent-Type: application/dicom\r\n\r\n".encode()
    + _INSTANCES[0]
    + f"\r\n--{_DRIP_BOUNDARY}  \r\n\r\n".encode()
    + _INSTANCES[1]
    + f"\r\n--{_DRIP_BOUNDARY}--\r\nepilogue to ignore".encode()
)
_NESTING = 100_000


class _MisbehavingHandler(http.server.BaseHTTPRequestHandler):
    """Answers by path; ``server.seen`` records (path, Authorization header) of every request."""

    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: object) -> None:  # keep the test output quiet
        pass

    def do_GET(self) -> None:
        server: _MisbehavingServer = self.server  # type: ignore[assignment]
        server.seen.append((self.path, self.headers.get("Authorization")))
        path = self.path.split("?")[0]
        try:
            if path.startswith("/away/"):
                self._redirect(f"{server.elsewhere}/dicom-web/studies")
            elif path.startswith("/moved/"):
                self._redirect(path.removeprefix("/moved"))  # same host and port: followed
            elif path.startswith("/loop/"):
                self._redirect(path)
            elif path == "/dicom-web/studies":
                self._answer(b"[]", "application/dicom+json")
            elif path.startswith("/endless-json/"):
                self._endless(
                    b'[{"0020000D": {"vr": "UI", "Value": ["1.2.3"]}}' + b" " * 65536, "application/dicom+json"
                )
            elif path.startswith("/nested-json/"):
                # Valid JSON, far deeper than Python's parser recurses (about 1,000 levels).
                self._answer(b"[" * _NESTING + b"]" * _NESTING, "application/dicom+json")
            elif path.startswith("/huge-json/"):
                self._answer(b"[]", "application/dicom+json", declared=10**12)
            elif path.startswith("/endless-study/"):
                self._endless(
                    f"--{_DRIP_BOUNDARY}\r\nContent-Type: application/dicom\r\n\r\n".encode(),
                    f'multipart/related; type="application/dicom"; boundary={_DRIP_BOUNDARY}',
                )
            elif path.startswith("/drip-body/"):
                self._drip_body(retrieve="/studies/" in path)
            elif path.startswith("/busy/"):
                self._answer(b"busy", "text/plain", status=503)
            elif path.startswith("/busy-once/"):
                first = sum(seen.split("?")[0] == self.path.split("?")[0] for seen, _ in server.seen) == 1
                self._answer(b"busy" if first else b"[]", "application/dicom+json", status=503 if first else 200)
            elif path.startswith("/no-login/"):
                self._answer(b"who are you?", "text/plain", status=401)
            elif path.startswith("/study/"):
                self._answer(_STUDY_BODY, _STUDY_TYPE)
            elif path.startswith("/cut-study/"):  # the connection closes before the closing delimiter
                self._endless(_STUDY_BODY[: _STUDY_BODY.index(b"second") + 3], _STUDY_TYPE, blocks=0)
            elif path.startswith("/cut-headers-study/"):  # ... within the second part's headers
                self._endless(_STUDY_BODY[: _STUDY_BODY.index(b"second") - 2], _STUDY_TYPE, blocks=0)
            elif path.startswith("/preamble-study/"):  # RFC 2046 allows it; dicomweb-client does not
                self._answer(b"preamble\r\n" + _STUDY_BODY, _STUDY_TYPE)
            elif path.startswith("/json-study/"):
                self._answer(b"[]", "application/dicom+json")
            elif path.startswith("/drip-headers/"):
                self._drip(b"HTTP/1.1 200 OK\r\nContent-Type: application/dicom+json\r\n" + b"X-Slow: y\r\n" * 100)
            else:
                self.send_error(404)
        except OSError:  # the client hung up, as it should on a misbehaving server
            pass

    def _redirect(self, location: str) -> None:
        self.send_response(302)
        self.send_header("Location", location)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def _answer(self, body: bytes, content_type: str, declared: int | None = None, status: int = 200) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(declared if declared is not None else len(body)))
        self.end_headers()
        self.wfile.write(body)

    def _endless(self, start: bytes, content_type: str, blocks: int = _ENDLESS_BYTES // 65536) -> None:
        self.send_response(200)
        self.send_header("Content-Type", content_type)
        self.send_header("Connection", "close")  # no length: the body runs until the server stops
        self.end_headers()
        self.wfile.write(start)
        block = b"\0" * 65536
        for _ in range(blocks):
            self.wfile.write(block)
        self.close_connection = True

    def _drip_body(self, retrieve: bool) -> None:
        if retrieve:
            content_type = f'multipart/related; type="application/dicom"; boundary={_DRIP_BOUNDARY}'
            body = f"--{_DRIP_BOUNDARY}\r\n\r\n{'x' * 100}\r\n--{_DRIP_BOUNDARY}--".encode()
        else:
            content_type, body = "application/dicom+json", b"[" + b" " * 98 + b"]"
        self.send_response(200)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self._drip(body)

    def _drip(self, data: bytes) -> None:
        """One byte a second: every read gets data long before any socket timeout."""
        server: _MisbehavingServer = self.server  # type: ignore[assignment]
        ends_at = time.monotonic() + _MISBEHAVING_SECONDS
        for byte in data:
            if server.stopping.is_set() or time.monotonic() > ends_at:
                break
            self.wfile.write(bytes([byte]))
            self.wfile.flush()
            server.stopping.wait(1.0)
        self.close_connection = True


class _MisbehavingServer(http.server.ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, elsewhere: str) -> None:
        super().__init__(("127.0.0.1", 0), _MisbehavingHandler)
        self.elsewhere = elsewhere
        self.seen: list[tuple[str, str | None]] = []
        self.stopping = threading.Event()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}"


@contextmanager
def _serving(elsewhere: str = "") -> Iterator[_MisbehavingServer]:
    server = _MisbehavingServer(elsewhere)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    try:
        yield server
    finally:
        server.stopping.set()
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


@pytest.fixture
def misbehaving() -> Iterator[tuple[_MisbehavingServer, _MisbehavingServer]]:
    """(the server the client is pointed at, another server its redirects point to)."""
    with _serving() as other, _serving(elsewhere=f"http://localhost:{other.server_address[1]}") as server:
        # "localhost", not 127.0.0.1: another host name as well as another port.
        yield server, other


def _client(server: _MisbehavingServer, prefix: str, **overrides: object) -> DicomWebClient:
    values: dict[str, object] = {
        "base_url": f"{server.url}/{prefix}/dicom-web",
        "username": "reader",
        "password": "pacs-secret",
        "timeout": 5.0,
    }
    values.update(overrides)
    return DicomWebClient(**values)  # type: ignore[arg-type]


def test_a_redirect_to_another_host_is_refused_and_the_login_never_sent_there(misbehaving) -> None:
    server, other = misbehaving
    client = _client(server, "away")

    with pytest.raises(IngestError) as raised:
        client.search_studies()

    port = other.server_address[1]
    assert str(raised.value) == (
        f"the PACS at {server.url}/away/dicom-web redirected the search to another server "
        f"(http://localhost:{port}); refused, so that the login is not sent there"
    )
    assert other.seen == []  # not even a request without the login
    with pytest.raises(IngestError, match=f"redirected the retrieve to another server \\(http://localhost:{port}\\)"):
        list(client.retrieve_study("1.2.3"))
    assert other.seen == []


def test_a_redirect_within_the_same_server_is_followed_with_the_login(misbehaving) -> None:
    server, _ = misbehaving

    assert _client(server, "moved").search_studies() == []
    assert [path.split("?")[0] for path, _ in server.seen] == ["/moved/dicom-web/studies", "/dicom-web/studies"]
    assert server.seen[0][1] == server.seen[1][1] is not None  # the same basic-auth header both times


def test_a_redirect_loop_ends_with_a_plain_error(misbehaving) -> None:
    server, _ = misbehaving
    with pytest.raises(IngestError, match=r"redirected the search more than 5 times"):
        _client(server, "loop").search_studies()


def test_an_endless_search_answer_is_cut_at_the_cap(misbehaving) -> None:
    server, _ = misbehaving
    client = _client(server, "endless-json")

    with pytest.raises(IngestError) as raised:
        client.search_studies(max_bytes=1_000_000)

    assert str(raised.value) == (
        f"the PACS at {server.url}/endless-json/dicom-web answered the search with more than 1000000 bytes; "
        "refused (narrow the search)"
    )
    # An answer that declares its excess up front is refused before any of it is read.
    with pytest.raises(IngestError, match="answered the search with more than 33554432 bytes"):
        _client(server, "huge-json").search_studies()


def test_a_search_answer_nested_too_deeply_is_refused_plainly(misbehaving, capsys) -> None:
    from medreview.cli import main

    server, _ = misbehaving
    client = _client(server, "nested-json")

    with pytest.raises(IngestError) as raised:
        client.search_studies()

    expected = f"the PACS at {server.url}/nested-json/dicom-web answered the search with JSON nested too deeply"
    assert str(raised.value) == expected
    # The command line says the same in one line (no traceback); the Upload page shows the
    # IngestError message the same way as every other search failure.
    assert main(["pacs-search", f"{server.url}/nested-json/dicom-web"]) == 1
    assert capsys.readouterr().err == f"error: {expected}\n"


def test_the_upload_page_shows_a_too_deeply_nested_search_answer_as_a_message(misbehaving, page_store) -> None:
    from tests.conftest import run_page_as
    from ui.text import plain

    server, _ = misbehaving
    app = run_page_as("upload")
    app.text_input(key="pacs_url").set_value(f"{server.url}/nested-json/dicom-web").run()
    app.button(key="pacs_search").click().run()

    assert not app.exception
    assert [error.value for error in app.error] == [
        plain(f"the PACS at {server.url}/nested-json/dicom-web answered the search with JSON nested too deeply")
    ]


def test_an_endless_instance_is_cut_at_the_file_limit(misbehaving, tmp_path: Path) -> None:
    server, _ = misbehaving
    settings = Settings(
        data_dir=tmp_path,
        database_url=f"sqlite:///{tmp_path / 'medreview.db'}",
        limits=IngestLimits(max_file_bytes=1_000_000),  # the study total stays at its 4 GiB default
    )
    small_store = Store.open(settings)
    try:
        started = time.monotonic()
        with pytest.raises(IngestError) as raised:
            import_study(small_store, LOCAL_ACTOR, _client(server, "endless-study"), "1.2.3")
        assert (
            str(raised.value) == "the PACS sent an instance larger than the file limit (1000000 bytes); import refused"
        )
        assert time.monotonic() - started < 10
        assert _store_counts(small_store)[3] == 0
    finally:
        small_store.close()
    with pytest.raises(IngestError, match=r"study 1.2.3 is larger than the import limit \(2000000 bytes\)"):
        list(_client(server, "endless-study").retrieve_study("1.2.3", max_bytes=2_000_000))


@pytest.mark.parametrize("prefix", ["drip-body", "drip-headers"])
def test_a_server_dripping_a_byte_a_second_hits_the_deadline(misbehaving, prefix: str) -> None:
    server, _ = misbehaving
    # Every read gets a byte within a second, far inside the 5 s socket timeout: only the overall
    # deadline can end this.
    client = _client(server, prefix, search_deadline=2.0, retrieve_deadline=2.0)

    started = time.monotonic()
    with pytest.raises(IngestError) as raised:
        client.search_studies()
    elapsed = time.monotonic() - started

    assert (
        str(raised.value) == f"the PACS at {server.url}/{prefix}/dicom-web did not complete the search within 2 seconds"
    )
    assert 1.5 < elapsed < 5
    started = time.monotonic()
    with pytest.raises(IngestError, match="did not complete the retrieve within 2 seconds"):
        list(client.retrieve_study("1.2.3"))
    assert time.monotonic() - started < 5


# -- retries, and the dicomweb-client client other modules use -----------------------------------


def _requests_to(server: _MisbehavingServer, prefix: str) -> int:
    return sum(path.startswith(f"/{prefix}/") for path, _ in server.seen)


def test_a_busy_pacs_is_asked_twice_more_and_a_refused_login_once(misbehaving) -> None:
    server, _ = misbehaving

    # 503 once, then the answer: the search succeeds on the second try.
    assert _client(server, "busy-once").search_studies() == []
    assert _requests_to(server, "busy-once") == 2
    # Still busy after two more tries: the last status is reported.
    with pytest.raises(IngestError, match=r"failed the search \(HTTP 503\)$"):
        _client(server, "busy").search_studies()
    assert _requests_to(server, "busy") == 3
    # A caller of the library client may ask for no retries at all.
    client = pacs_client(_client(server, "busy"), retry=Retry(0))
    with closing(client._session), pytest.raises(requests.HTTPError, match="503"):
        client.search_for_studies()
    assert _requests_to(server, "busy") == 3 + 1
    # A refused login is an answer, not a hiccup: never repeated.
    with pytest.raises(IngestError, match=r"refused the login \(HTTP 401\)"):
        _client(server, "no-login").search_studies()
    assert _requests_to(server, "no-login") == 1


def test_the_login_is_dropped_on_any_change_of_scheme_host_or_port() -> None:
    # requests itself keeps the login on an http -> https redirect to the same host (and only
    # some versions drop it on a port change); medreview's session drops it on every change,
    # and refuses such a redirect before sending it (see the redirect tests above).
    assert requests.Session().should_strip_auth("http://pacs/dicom-web", "https://pacs/dicom-web") is False
    session = _GuardedSession(
        ("http://pacs/dicom-web", ("http", "pacs", 80), ("reader", "secret")), 5.0, _Guard(None, None, IngestError)
    )
    try:
        for elsewhere in ("https://pacs/dicom-web", "http://pacs:8080/dicom-web", "http://other/dicom-web"):
            assert session.should_strip_auth("http://pacs/dicom-web", elsewhere) is True
        assert session.should_strip_auth("http://pacs/dicom-web", "http://PACS:80/elsewhere") is False
    finally:
        session.close()


def test_the_library_client_keeps_the_guards(misbehaving) -> None:
    # pacs_client is what other modules (sending to the PACS) build their DICOMweb calls on.
    server, other = misbehaving

    client = pacs_client(_client(server, "away"))
    refused = pytest.raises(requests.RequestException, match=r"redirect to another server refused")
    with closing(client._session), refused:
        client.search_for_studies()
    assert other.seen == []
    client = pacs_client(_client(server, "moved"))
    with closing(client._session):
        assert client.search_for_studies() == []
    moved = [auth for path, auth in server.seen if path.startswith(("/moved/", "/dicom-web/"))]
    assert len(moved) == 2 and moved[0] == moved[1] is not None
    client = pacs_client(_client(server, "endless-json"), max_answer_bytes=1_000_000)
    with closing(client._session), pytest.raises(IngestError, match=r"answered with more than 1000000 bytes; refused$"):
        client.search_for_studies()


def test_the_library_client_searches_the_real_pacs_with_the_login(pacs: Pacs) -> None:
    client = pacs_client(pacs.client())
    with closing(client._session):
        found = client.search_for_studies(search_filters={"PatientID": "PACS-CT"})
    assert [dataset["0020000D"]["Value"] for dataset in found] == [[pacs.ct_study_uid]]


# -- a retrieve answer split into instances --------------------------------------------------------


def test_a_retrieve_answer_is_split_into_instances_byte_for_byte(misbehaving) -> None:
    server, _ = misbehaving

    instances = list(_client(server, "study").retrieve_study("1.2.3"))

    assert instances == [("pacs-instance-00001.dcm", _INSTANCES[0]), ("pacs-instance-00002.dcm", _INSTANCES[1])]
    # The same after a redirect within the server (whose own body is read and counted first).
    assert list(_client(server, "moved/study").retrieve_study("1.2.3")) == instances


@pytest.mark.parametrize("prefix", ["cut-study", "cut-headers-study"])
def test_a_retrieve_cut_before_its_end_is_refused(misbehaving, prefix: str) -> None:
    server, _ = misbehaving
    received: list[bytes] = []

    with pytest.raises(IngestError, match=r"ended before its last instance was complete \(cut transfer\)"):
        for _name, data in _client(server, prefix).retrieve_study("1.2.3"):
            received.append(data)

    assert received == [_INSTANCES[0]]  # the complete one was handed on, the cut one never


def test_a_retrieve_answered_with_something_else_says_so(misbehaving) -> None:
    server, _ = misbehaving
    # A preamble before the first instance: dicomweb-client 0.61 cannot split such an answer (no
    # DICOMweb server known to us sends one); the user gets a plain refusal, nothing is stored.
    with pytest.raises(IngestError, match=r"answered the retrieve with a garbled body$"):
        list(_client(server, "preamble-study").retrieve_study("1.2.3"))
    with pytest.raises(IngestError, match=r"answered with application/dicom\+json instead of DICOM files$"):
        list(_client(server, "json-study").retrieve_study("1.2.3"))
