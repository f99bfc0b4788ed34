"""Import from a PACS over DICOMweb: search studies (QIDO-RS), retrieve them (WADO-RS) into the store.

:class:`DicomWebClient` speaks to one DICOMweb service (for Orthanc with its DICOMweb plugin the
base URL is ``http://host:8042/dicom-web``); :func:`import_study` retrieves one study and hands its
instances to :func:`~medreview.ingest.service.ingest_files`, so a PACS import is stored, deduplicated
and reported exactly like an upload.

Every failure a user can cause (wrong address, server down, wrong password, a study the PACS does
not have, a study larger than the import limit, a garbled answer) raises
:class:`~medreview.errors.IngestError` with a plain message. Passwords never appear in messages,
logs or the client's ``repr``.

A PACS is not trusted to behave: redirects are followed only within the same scheme, host and
port (the login must never travel to a server the user did not name), every answer is read as a
stream against a size cap (:data:`MAX_SEARCH_BYTES` for a search; the caller's limits for a
retrieve), and every call has an overall deadline (:data:`SEARCH_DEADLINE_SECONDS`,
:data:`RETRIEVE_DEADLINE_SECONDS`) that a server dripping bytes cannot stretch.
"""

from __future__ import annotations

import email.message
import json
import re
import socket
import string
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote, urljoin, urlsplit, urlunsplit

import requests
import urllib3.connection
import urllib3.connectionpool
from requests.adapters import HTTPAdapter

from medreview.errors import IngestError
from medreview.ingest.service import IngestResult, InputFile, ingest_files
from medreview.store import Store
from medreview.team.roles import Actor, require

__all__ = [
    "MAX_SEARCH_BYTES",
    "RETRIEVE_DEADLINE_SECONDS",
    "SEARCH_DEADLINE_SECONDS",
    "DicomWebClient",
    "StudySummary",
    "import_study",
]

# The largest search answer read: a study is a few hundred bytes of DICOM JSON, so this holds tens
# of thousands of studies; search_studies(max_bytes=...) overrides it.
MAX_SEARCH_BYTES = 32 * 1024 * 1024
# Overall time limits, connecting and reading the whole answer included (DicomWebClient fields
# override them). A retrieve may move gigabytes over a hospital network, hence the hour.
SEARCH_DEADLINE_SECONDS = 120.0
RETRIEVE_DEADLINE_SECONDS = 3600.0
# Redirects followed within the PACS's own scheme, host and port; more is a loop.
_MAX_REDIRECTS = 5
_DEFAULT_PORTS = {"http": 80, "https": 443}

# DICOM JSON model keys (PS3.18 F.2): upper-case hex group+element.
_STUDY_INSTANCE_UID = "0020000D"
_PATIENT_ID = "00100020"
_PATIENT_NAME = "00100010"
_STUDY_DATE = "00080020"
_STUDY_DESCRIPTION = "00081030"
_MODALITIES_IN_STUDY = "00080061"
_SERIES_COUNT = "00201206"  # NumberOfStudyRelatedSeries
_INSTANCE_COUNT = "00201208"  # NumberOfStudyRelatedInstances
# Attributes a PACS need not return unless asked for (PS3.18 8.3.4, "includefield").
_INCLUDE_FIELDS = ",".join([_STUDY_DESCRIPTION, _MODALITIES_IN_STUDY, _SERIES_COUNT, _INSTANCE_COUNT])

_SEARCH_ACCEPT = "application/dicom+json"
# transfer-syntax=* asks for the instances as stored: no transcoding on the server, originals kept
# byte-for-byte as the store promises.
_RETRIEVE_ACCEPT = 'multipart/related; type="application/dicom"; transfer-syntax=*'
_UID_PATTERN = re.compile(r"[0-9]+(\.[0-9]+)*")
_CHUNK_BYTES = 1024 * 1024
_PART_HEADER_BYTES = 64 * 1024  # more header than this in one multipart part is not a PACS
# Characters that travel unescaped in a URL query (RFC 3986 unreserved, the wildcards, and
# separators with no meaning in a query value); "&", "=", "+", "#" and "%" are not among them.
_QUERY_SAFE = frozenset(string.ascii_letters + string.digits + "-._~*?:@/,")


@dataclass(frozen=True)
class StudySummary:
    """One study as a QIDO-RS search describes it; counts are ``None`` when the PACS omits them."""

    study_uid: str
    patient_id: str
    patient_name: str  # DICOM form, e.g. "Doe^Jane"
    study_date: str  # YYYYMMDD or ""
    description: str
    modalities: str  # e.g. "CT\\SR" joined with a backslash, as in DICOM
    series_count: int | None
    instance_count: int | None


@dataclass(frozen=True)
class DicomWebClient:
    """A DICOMweb service: ``base_url`` is the service root, e.g. ``http://127.0.0.1:8042/dicom-web``.

    ``username``/``password`` are sent as HTTP basic auth when a username is given.
    ``timeout`` (seconds) bounds connecting and each wait for data; ``search_deadline`` and
    ``retrieve_deadline`` (seconds) bound a whole call, however slowly the data comes.
    """

    base_url: str
    username: str | None = None
    password: str | None = field(default=None, repr=False)
    timeout: float = 30.0
    search_deadline: float = SEARCH_DEADLINE_SECONDS
    retrieve_deadline: float = RETRIEVE_DEADLINE_SECONDS

    @property
    def display_url(self) -> str:
        """``base_url`` without any ``user:password@`` part, for messages."""
        try:
            parts = urlsplit(self.base_url)
        except ValueError:  # e.g. an unclosed "[" of an IPv6 address
            return re.sub(r"//[^/]*@", "//", self.base_url).rstrip("/")
        host_and_port = parts.netloc.rpartition("@")[2]
        return urlunsplit((parts.scheme, host_and_port, parts.path, "", "")).rstrip("/")

    def search_studies(
        self,
        patient_id: str = "",
        patient_name: str = "",
        study_date: str = "",
        modality: str = "",
        limit: int = 100,
        max_bytes: int = MAX_SEARCH_BYTES,
    ) -> list[StudySummary]:
        """QIDO-RS study search; empty filters match everything, up to ``limit`` studies.

        Matching follows DICOM: exact unless the value holds ``*`` or ``?`` wildcards
        (``patient_name="Doe*"``); ``study_date`` is ``YYYYMMDD`` or a range ``YYYYMMDD-YYYYMMDD``.
        A character that would need percent-encoding in the URL (space, ``^``, non-ASCII, ...) is
        sent as the one-character wildcard ``?``: see :func:`_query_value`. An answer larger than
        ``max_bytes`` raises :class:`IngestError`.
        """
        if limit < 1:
            raise ValueError(f"limit must be at least 1, got {limit}")
        query = [f"includefield={_INCLUDE_FIELDS}", f"limit={limit}"]
        for keyword, value in (
            ("PatientID", patient_id),
            ("PatientName", patient_name),
            ("StudyDate", study_date),
            ("ModalitiesInStudy", modality),
        ):
            if value.strip():
                query.append(f"{keyword}={_query_value(value.strip())}")
        with self._get("/studies?" + "&".join(query), accept=_SEARCH_ACCEPT, action="search") as response:
            declared = response.headers.get("Content-Length", "")
            if declared.isdigit() and int(declared) > max_bytes:
                raise self._search_too_large(max_bytes)
            content = b"".join(self._limited_search(self._chunks(response), max_bytes))
            # Some servers answer "no match" with 204 No Content rather than an empty array.
            if response.status_code == 204 or not content.strip():
                return []
            try:
                datasets = json.loads(content)
            except ValueError:
                raise IngestError(
                    f"the PACS at {self.display_url} answered the search with something other than JSON"
                ) from None
            except RecursionError:  # e.g. "[[[[...]]]]": the parser recurses once per level
                raise IngestError(
                    f"the PACS at {self.display_url} answered the search with JSON nested too deeply"
                ) from None
        if not isinstance(datasets, list) or not all(isinstance(item, dict) for item in datasets):
            raise IngestError(f"the PACS at {self.display_url} answered the search with unexpected JSON")
        summaries = [_summary(dataset) for dataset in datasets]
        return [summary for summary in summaries if summary.study_uid][:limit]

    def retrieve_study(
        self, study_uid: str, max_bytes: int | None = None, max_instance_bytes: int | None = None
    ) -> Iterator[tuple[str, bytes]]:
        """WADO-RS retrieve of a whole study: yields ``("pacs-instance-<n>.dcm", DICOM file bytes)``
        (never named after the study's UID: that is an identifier of the patient's study).

        The answer is streamed and split as it arrives, so memory holds one instance at a time.
        More than ``max_bytes`` in the answer, or one instance of more than ``max_instance_bytes``,
        raises :class:`IngestError` (instances already yielded stay with the caller). A study the
        PACS does not have raises :class:`IngestError`.
        """
        study_uid = study_uid.strip()
        if not _UID_PATTERN.fullmatch(study_uid) or len(study_uid) > 64:
            raise IngestError(f"{study_uid!r} is not a valid study UID (digits separated by dots)")
        path = f"/studies/{quote(study_uid)}"
        with self._get(path, accept=_RETRIEVE_ACCEPT, action="retrieve", study_uid=study_uid) as response:
            content_type = response.headers.get("Content-Type", "")
            boundary = _boundary(content_type)
            if boundary is None:
                raise IngestError(
                    f"the PACS at {self.display_url} answered with {content_type or 'no content type'} "
                    "instead of DICOM files (multipart/related)"
                )
            declared = response.headers.get("Content-Length", "")
            if max_bytes is not None and declared.isdigit() and int(declared) > max_bytes:
                raise _too_large(study_uid, max_bytes)
            chunks = _limited(self._chunks(response), max_bytes, study_uid)
            parts = _iter_multipart(chunks, boundary.encode("latin-1"), max_part_bytes=max_instance_bytes)
            for number, part in enumerate(parts, start=1):
                yield f"pacs-instance-{number:05d}.dcm", part

    # -- HTTP ---------------------------------------------------------------------------------

    @contextmanager
    def _get(self, path: str, *, accept: str, action: str, study_uid: str = "") -> Iterator[requests.Response]:
        """GET ``path`` below the base URL and yield the streamed answer (status 2xx).

        Redirects are followed by hand, only within the same scheme, host and port, so the login
        never reaches a server the user did not name. The whole call, from connecting to the end
        of the body, is bounded by the action's deadline (for a retrieve this includes the time
        the caller spends storing the instances it is handed): a failure in reading caused by the
        deadline (the watchdog shuts the socket) is reported as the deadline.
        """
        seconds = self.retrieve_deadline if action == "retrieve" else self.search_deadline
        deadline = _Deadline(seconds)
        session: requests.Session | None = None
        response: requests.Response | None = None
        try:
            session = _watched_session()
            response = self._follow(session, self.base_url.rstrip("/") + path, accept, action, study_uid, deadline)
            yield response
            if deadline.expired:  # the body ended early because the deadline shut the socket
                raise self._deadline_error(action, seconds)
        except Exception:
            # Whatever broke once the deadline shut the socket (a cut body, a half JSON answer, a
            # network error), the reason to report is the deadline.
            if deadline.expired:
                raise self._deadline_error(action, seconds) from None
            raise
        finally:
            deadline.cancel()
            if response is not None:
                response.close()
            if session is not None:
                session.close()

    def _follow(
        self,
        session: requests.Session,
        url: str,
        accept: str,
        action: str,
        study_uid: str,
        deadline: _Deadline,
    ) -> requests.Response:
        """The first answer that is not a redirect, following same-origin redirects only."""
        auth = self._auth()
        origin = _origin(url)
        for _ in range(_MAX_REDIRECTS + 1):
            remaining = deadline.remaining()
            if remaining <= 0:
                raise self._deadline_error(action, deadline.seconds)
            try:
                with deadline.watching():
                    response = session.get(
                        url,
                        headers={"Accept": accept},
                        auth=auth,
                        # Connecting may not outlast the deadline; the watchdog bounds the rest.
                        timeout=(min(self.timeout, remaining), self.timeout),
                        stream=True,
                        allow_redirects=False,
                    )
            except requests.RequestException as error:
                if deadline.expired:
                    raise self._deadline_error(action, deadline.seconds) from None
                raise self._network_error(error) from None
            if not response.is_redirect:
                self._check_status(response, action, study_uid)
                return response
            location = response.headers.get("Location", "")
            response.close()
            url = urljoin(url, location)
            target = _origin(url)
            if target is None or target != origin:
                raise IngestError(
                    f"the PACS at {self.display_url} redirected the {action} to another server "
                    f"({_describe_origin(url)}); refused, so that the login is not sent there"
                )
        raise IngestError(f"the PACS at {self.display_url} redirected the {action} more than {_MAX_REDIRECTS} times")

    def _auth(self) -> tuple[str, str] | None:
        if self.username:
            return (self.username, self.password or "")
        # A login written into the address ("http://user:password@host/...") is kept for
        # same-origin redirects too, whose Location usually has none.
        try:
            from_url = requests.utils.get_auth_from_url(self.base_url)
        except ValueError:
            return None
        return from_url if any(from_url) else None

    def _check_status(self, response: requests.Response, action: str, study_uid: str) -> None:
        status = response.status_code
        if 200 <= status < 300:
            return
        response.close()
        if status in (401, 403) and not self._auth():
            raise IngestError(f"the PACS asks for a login (HTTP {status}); give a user name and password")
        if status in (401, 403):
            raise IngestError(f"the PACS refused the login (HTTP {status})")
        if status == 404 and action == "retrieve":
            raise IngestError(f"the PACS at {self.display_url} has no study {study_uid}")
        if status == 404:
            raise IngestError(
                f"no DICOMweb service at {self.display_url} (HTTP 404); check the address "
                "(for Orthanc it ends in /dicom-web)"
            )
        raise IngestError(f"the PACS at {self.display_url} failed the {action} (HTTP {status})")

    def _deadline_error(self, action: str, seconds: float) -> IngestError:
        return IngestError(f"the PACS at {self.display_url} did not complete the {action} within {seconds:g} seconds")

    def _search_too_large(self, max_bytes: int) -> IngestError:
        return IngestError(
            f"the PACS at {self.display_url} answered the search with more than {max_bytes} bytes; "
            "refused (narrow the search)"
        )

    def _limited_search(self, chunks: Iterable[bytes], max_bytes: int) -> Iterator[bytes]:
        received = 0
        for chunk in chunks:
            received += len(chunk)
            if received > max_bytes:
                raise self._search_too_large(max_bytes)
            yield chunk

    def _chunks(self, response: requests.Response) -> Iterator[bytes]:
        try:
            yield from response.iter_content(chunk_size=_CHUNK_BYTES)
        except requests.RequestException as error:
            raise self._network_error(error) from None

    def _network_error(self, error: requests.RequestException) -> IngestError:
        if isinstance(error, requests.Timeout) or _caused_by(error, _is_timeout):
            return IngestError(f"the PACS at {self.display_url} did not answer within {self.timeout:g} seconds")
        if isinstance(error, requests.exceptions.InvalidURL | requests.exceptions.MissingSchema):
            return IngestError(f"{self.display_url!r} is not a valid address (expected http://host:port/path)")
        if isinstance(error, requests.exceptions.InvalidSchema):
            return IngestError(f"{self.display_url!r} is not an http:// or https:// address")
        if isinstance(error, requests.exceptions.SSLError):
            return IngestError(f"cannot reach the PACS at {self.display_url}: the secure connection failed")
        if isinstance(error, requests.exceptions.ChunkedEncodingError):
            return IngestError(f"the connection to the PACS at {self.display_url} broke off during the transfer")
        if _caused_by(error, lambda cause: isinstance(cause, ConnectionRefusedError)):
            reason = "connection refused"
        elif _caused_by(error, lambda cause: isinstance(cause, socket.gaierror)):
            reason = "unknown host name"
        else:
            reason = "network error"
        return IngestError(f"cannot reach the PACS at {self.display_url}: {reason}")


def import_study(
    store: Store,
    actor: Actor,
    client: DicomWebClient,
    study_uid: str,
    progress: Callable[[int, str], None] | None = None,
) -> list[IngestResult]:
    """Retrieve one study from the PACS and store it; one result per instance (stored / duplicate /
    rejected), as :func:`~medreview.ingest.service.ingest_files` reports an upload.

    The transfer is limited to the store's ``max_archive_total_bytes`` and each instance to its
    ``max_file_bytes``, as an uploaded archive and its members are. When it fails midway
    (network, limit) an :class:`IngestError` is raised; instances already committed stay stored,
    each complete, and importing the study again reports them as duplicates.
    """
    # Admins only: the server fetches from an address the user gives, which must not become a way
    # for any account to probe the hospital network.
    require(actor, "admin", "import from a PACS")
    limits = store.settings.limits
    retrieved = client.retrieve_study(
        study_uid, max_bytes=limits.max_archive_total_bytes, max_instance_bytes=limits.max_file_bytes
    )
    files = (InputFile(name, data) for name, data in retrieved)
    results = ingest_files(store, actor, files, progress=progress)
    if not results:
        raise IngestError(f"the PACS at {client.display_url} sent no instances for study {study_uid.strip()}")
    return results


# -- HTTP plumbing: origins, the deadline watchdog ------------------------------------------------


def _origin(url: str) -> tuple[str, str, int] | None:
    """(scheme, host, port) of an address, default ports filled in; None when it has none."""
    try:
        parts = urlsplit(url)
        scheme = parts.scheme.lower()
        port = parts.port or _DEFAULT_PORTS.get(scheme)
    except ValueError:  # a port that is not a number, an unclosed "[" ...
        return None
    if not parts.hostname or port is None:
        return None
    return scheme, parts.hostname.lower(), port


def _describe_origin(url: str) -> str:
    """``scheme://host:port`` of a redirect target for a message: never its user or password."""
    origin = _origin(url)
    if origin is None:
        return "an invalid address"
    scheme, host, port = origin
    return f"{scheme}://{f'[{host}]' if ':' in host else host}:{port}"


class _Deadline:
    """An overall time limit for one call. When it passes, a timer shuts down every socket the
    call opened (registered through :meth:`watching`), which wakes a read blocked on a server
    that sends a byte now and then; a per-socket timeout alone never fires on such a server."""

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds
        self.expired = False
        self._ends_at = time.monotonic() + seconds
        self._lock = threading.Lock()
        self._sockets: list[socket.socket] = []
        self._timer = threading.Timer(max(seconds, 0.0), self._expire)
        self._timer.daemon = True
        self._timer.start()

    def remaining(self) -> float:
        return self._ends_at - time.monotonic()

    @contextmanager
    def watching(self) -> Iterator[None]:
        """Sockets connected in this thread meanwhile are shut down when the deadline passes."""
        previous = getattr(_watched, "deadline", None)
        _watched.deadline = self
        try:
            yield
        finally:
            _watched.deadline = previous

    def watch(self, sock: socket.socket) -> None:
        with self._lock:
            self._sockets.append(sock)
            expired = self.expired
        if expired:
            _shut(sock)

    def cancel(self) -> None:
        self._timer.cancel()

    def _expire(self) -> None:
        with self._lock:
            self.expired = True
            sockets = list(self._sockets)
        for sock in sockets:
            _shut(sock)


def _shut(sock: socket.socket) -> None:
    with suppress(OSError):  # already closed
        sock.shutdown(socket.SHUT_RDWR)


# The deadline of the call connecting in this thread (see _Deadline.watching).
_watched = threading.local()


def _watch_new_socket(sock: socket.socket) -> None:
    deadline = getattr(_watched, "deadline", None)
    if deadline is not None:
        deadline.watch(sock)


# urllib3 creates the socket in HTTPConnection._new_conn, before TLS and before the status line
# is read; hooking it there lets the deadline cover every phase of a request.
class _WatchedHTTPConnection(urllib3.connection.HTTPConnection):
    def _new_conn(self) -> socket.socket:
        sock = super()._new_conn()
        _watch_new_socket(sock)
        return sock


class _WatchedHTTPSConnection(urllib3.connection.HTTPSConnection):
    def _new_conn(self) -> socket.socket:
        sock = super()._new_conn()
        _watch_new_socket(sock)
        return sock


class _WatchedHTTPConnectionPool(urllib3.connectionpool.HTTPConnectionPool):
    ConnectionCls = _WatchedHTTPConnection


class _WatchedHTTPSConnectionPool(urllib3.connectionpool.HTTPSConnectionPool):
    ConnectionCls = _WatchedHTTPSConnection


_WATCHED_POOLS = {"http": _WatchedHTTPConnectionPool, "https": _WatchedHTTPSConnectionPool}


class _WatchedAdapter(HTTPAdapter):
    """requests' adapter with connections the deadline can shut, also through an HTTP proxy."""

    def init_poolmanager(self, *args: Any, **kwargs: Any) -> None:
        super().init_poolmanager(*args, **kwargs)
        self.poolmanager.pool_classes_by_scheme = dict(_WATCHED_POOLS)

    def proxy_manager_for(self, proxy: str, **proxy_kwargs: Any) -> Any:
        manager = super().proxy_manager_for(proxy, **proxy_kwargs)
        if not proxy.lower().startswith("socks"):  # SOCKS pools make their own connections
            manager.pool_classes_by_scheme = dict(_WATCHED_POOLS)
        return manager


def _watched_session() -> requests.Session:
    session = requests.Session()
    adapter = _WatchedAdapter(max_retries=0)
    session.mount("http://", adapter)
    session.mount("https://", adapter)
    return session


def _caused_by(error: BaseException, matches: Callable[[BaseException], bool]) -> bool:
    """Whether ``error`` or anything it wraps matches; requests and urllib3 nest the socket error
    several levels deep (in ``__cause__``/``__context__``, ``args`` and ``reason``)."""
    pending: list[object] = [error]
    seen: set[int] = set()
    while pending:
        cause = pending.pop()
        if not isinstance(cause, BaseException) or id(cause) in seen:
            continue
        seen.add(id(cause))
        if matches(cause):
            return True
        pending.extend([cause.__cause__, cause.__context__, getattr(cause, "reason", None), *cause.args])
    return False


def _is_timeout(cause: BaseException) -> bool:
    # urllib3's ReadTimeoutError is not a builtin TimeoutError, and requests re-raises a timeout
    # during a streamed read as a plain ConnectionError.
    return isinstance(cause, TimeoutError) or type(cause).__name__.endswith("TimeoutError")


def _query_value(value: str) -> str:
    """A QIDO-RS match value that needs no percent-encoding.

    Orthanc 1.10 (Debian 12) does not percent-decode query values: ``PatientName=Doe%5EJane`` is
    compared as the literal text ``Doe%5EJane`` and matches nothing, and requests cannot send
    ``^`` or a space unencoded. Wildcards ``*`` and ``?`` are valid literally in a URL query, so
    every other character outside a small URL-safe set becomes ``?`` (any one character):
    ``Doe^Jane`` is sent as ``Doe?Jane``. The search is at most slightly broader, never narrower,
    on Orthanc and on servers that follow the standard alike.
    """
    return "".join(character if character in _QUERY_SAFE else "?" for character in value)


# -- DICOM JSON -----------------------------------------------------------------------------------


def _values(dataset: dict[str, object], tag: str) -> list[object]:
    element = dataset.get(tag)
    if not isinstance(element, dict):
        return []
    values = element.get("Value")
    return values if isinstance(values, list) else []


def _text(dataset: dict[str, object], tag: str) -> str:
    parts: list[str] = []
    for value in _values(dataset, tag):
        if isinstance(value, dict):  # PN: {"Alphabetic": "Doe^Jane", "Ideographic": ...}
            value = value.get("Alphabetic", "")
        if value is not None and value != "":
            parts.append(str(value))
    return "\\".join(parts)


def _count(dataset: dict[str, object], tag: str) -> int | None:
    values = _values(dataset, tag)
    if not values:
        return None
    try:
        return int(str(values[0]).strip())
    except ValueError:
        return None


def _summary(dataset: dict[str, object]) -> StudySummary:
    return StudySummary(
        study_uid=_text(dataset, _STUDY_INSTANCE_UID),
        patient_id=_text(dataset, _PATIENT_ID),
        patient_name=_text(dataset, _PATIENT_NAME),
        study_date=_text(dataset, _STUDY_DATE),
        description=_text(dataset, _STUDY_DESCRIPTION),
        modalities=_text(dataset, _MODALITIES_IN_STUDY),
        series_count=_count(dataset, _SERIES_COUNT),
        instance_count=_count(dataset, _INSTANCE_COUNT),
    )


# -- multipart/related ---------------------------------------------------------------------------


def _boundary(content_type: str) -> str | None:
    """The boundary of a ``multipart/related`` Content-Type header, or None for anything else."""
    message = email.message.Message()
    message["Content-Type"] = content_type
    if message.get_content_type() != "multipart/related":
        return None
    boundary = message.get_param("boundary")
    return boundary if isinstance(boundary, str) and boundary else None


def _too_large(study_uid: str, max_bytes: int) -> IngestError:
    return IngestError(f"study {study_uid} is larger than the import limit ({max_bytes} bytes); import refused")


def _limited(chunks: Iterable[bytes], max_bytes: int | None, study_uid: str) -> Iterator[bytes]:
    received = 0
    for chunk in chunks:
        received += len(chunk)
        if max_bytes is not None and received > max_bytes:
            raise _too_large(study_uid, max_bytes)
        yield chunk


def _iter_multipart(chunks: Iterable[bytes], boundary: bytes, max_part_bytes: int | None = None) -> Iterator[bytes]:
    """Split a streamed multipart body (RFC 2046) into part bodies, without their headers.

    A delimiter is CRLF "--" boundary, then "--" for the last one or optional padding and CRLF
    before the next part. The preamble before the first delimiter and the epilogue after the
    last are ignored. A body that ends before its closing delimiter raises :class:`IngestError`
    (a cut transfer must not pass for a complete study). A part (headers included), or a
    preamble, longer than ``max_part_bytes`` raises :class:`IngestError` as soon as it is seen,
    so a part that never ends cannot fill the memory.
    """
    delimiter = b"\r\n--" + boundary
    # Allowed beyond the instance itself: its part headers, the leading CRLF and a delimiter
    # split across chunks (an instance of exactly the limit must pass).
    slack = _PART_HEADER_BYTES + len(delimiter) + 2
    # A leading CRLF lets the first delimiter (usually at byte 0, no preamble) match like the others.
    buffer = bytearray(b"\r\n")
    search_from = 0
    in_part = False  # False while in the preamble
    received_any = False
    for chunk in chunks:
        received_any = received_any or bool(chunk)
        buffer += chunk
        while True:
            index = buffer.find(delimiter, search_from)
            if max_part_bytes is not None and (index if index >= 0 else len(buffer)) > max_part_bytes + slack:
                raise IngestError(
                    f"the PACS sent an instance larger than the file limit ({max_part_bytes} bytes); import refused"
                )
            if index < 0:
                search_from = max(0, len(buffer) - len(delimiter) + 1)
                break
            after = index + len(delimiter)
            if buffer[after : after + 2] == b"--":
                if in_part:
                    yield _part_body(bytes(buffer[:index]))
                return
            line_end = buffer.find(b"\r\n", after)
            if line_end < 0 or len(buffer) < after + 2:
                search_from = index  # wait for the rest of the delimiter line
                break
            if in_part:
                yield _part_body(bytes(buffer[:index]))
            del buffer[: line_end + 2]
            in_part = True
            search_from = 0
    if not received_any:
        return  # an empty answer: no instances
    raise IngestError("the PACS answer ended before its last part (incomplete multipart body)")


def _part_body(part: bytes) -> bytes:
    # Headers end at the first empty line; a part without headers starts with that empty line.
    if part.startswith(b"\r\n"):
        return part[2:]
    header_end = part.find(b"\r\n\r\n")
    if header_end < 0:
        raise IngestError("the PACS sent a part without a header/body separator (bad multipart body)")
    return part[header_end + 4 :]
