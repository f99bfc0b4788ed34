"""Import from a PACS over DICOMweb: search studies (QIDO-RS), retrieve them (WADO-RS) into the store.

The HTTP side (requests, the QIDO/WADO transactions, splitting a multipart answer into instances)
is the maintained ``dicomweb-client`` library; this module keeps what is medreview's: what to
search and fetch, the limits a PACS is held to, the messages a user sees, and handing each
retrieved instance to :func:`~medreview.ingest.service.ingest_files`, so a PACS import is
de-identified, stored, deduplicated and reported per instance exactly like an upload.

:class:`DicomWebClient` holds the address and login of one DICOMweb service (for Orthanc with its
DICOMweb plugin ``http://host:8042/dicom-web``); :func:`pacs_client` turns it into a
``dicomweb_client.DICOMwebClient`` with medreview's guards, for any DICOMweb transaction (STOW
included); :func:`import_study` retrieves one study into the store.

Every failure a user can cause (wrong address, server down, wrong password, a study the PACS does
not have, a study larger than the import limit, a garbled answer) raises
:class:`~medreview.errors.IngestError` with a plain message. Passwords never appear in messages,
logs or the client's ``repr``.

A PACS is not trusted to behave:

- redirects are followed only within the same scheme, host and port, at most
  :data:`MAX_REDIRECTS` times; one to another server is refused before anything is sent there,
  so the login never travels to a server the user did not name (:class:`_GuardedSession`);
- every answer is read as a stream against a size cap (:data:`MAX_SEARCH_BYTES` for a search;
  the store's archive and file limits for a retrieve), counted as the library reads it;
- every call has an overall deadline (:data:`SEARCH_DEADLINE_SECONDS`,
  :data:`RETRIEVE_DEADLINE_SECONDS`) that a server dripping bytes cannot stretch, on top of the
  per-request time-out;
- retries are explicit (:data:`RETRY`): the library's own retrying is switched off.
"""

from __future__ import annotations

import logging
import re
import socket
import string
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import requests
import urllib3.connection
import urllib3.connectionpool
from dicomweb_client import DICOMwebClient
from requests.adapters import HTTPAdapter
from urllib3.util.retry import Retry

from medreview.errors import IngestError
from medreview.ingest.service import IngestResult, InputFile, ingest_files
from medreview.store import Store
from medreview.team.roles import Actor, require

__all__ = [
    "MAX_REDIRECTS",
    "MAX_SEARCH_BYTES",
    "RETRIEVE_DEADLINE_SECONDS",
    "RETRY",
    "SEARCH_DEADLINE_SECONDS",
    "DicomWebClient",
    "StudySummary",
    "import_study",
    "pacs_client",
]

# The largest search answer read: a study is a few hundred bytes of DICOM JSON, so this holds tens
# of thousands of studies; search_studies(max_bytes=...) overrides it.
MAX_SEARCH_BYTES = 32 * 1024 * 1024
# Overall time limits, connecting and reading the whole answer included (DicomWebClient fields
# override them). A retrieve may move gigabytes over a hospital network, hence the hour.
SEARCH_DEADLINE_SECONDS = 120.0
RETRIEVE_DEADLINE_SECONDS = 3600.0
# Redirects followed within the PACS's own scheme, host and port; more is a loop.
MAX_REDIRECTS = 5
# Retries, done by urllib3 under requests (dicomweb-client's own retrying is switched off: it
# retries every exception, a refused login or our own size-cap refusal included, five times with
# waits of 2 to 16 s, far past a search's patience):
# - a connection that could not be made (refused, unknown host, connect time-out): 2 more tries,
#   for any method, since nothing reached the server;
# - an answer 429/502/503/504 (busy, restarting, gateway) to a GET: 2 more tries;
# - never a read that failed or timed out midway (read=0): the request may have been acted on,
#   and a user waiting out a time-out should not wait it out three times.
# Waits are 0 s then 0.5 s (backoff_factor 0.25); Retry-After is not obeyed, so that a server
# cannot park a call past its deadline (the deadline cannot interrupt a sleep).
RETRY = Retry(
    total=4,
    connect=2,
    read=0,
    status=2,
    other=0,
    redirect=0,  # requests follows redirects itself, through _GuardedSession
    status_forcelist=(429, 502, 503, 504),
    allowed_methods=frozenset({"GET", "HEAD"}),
    backoff_factor=0.25,
    respect_retry_after_header=False,
    raise_on_status=False,  # the last answer goes back to the caller, who reports its status
)
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

# transfer-syntax=* asks for the instances as stored: no transcoding on the server, originals kept
# byte-for-byte as the store promises (dicomweb-client's retrieve_study would parse and re-encode
# them, so the retrieve uses its lower-level GET and part splitting, see retrieve_study).
_RETRIEVE_ACCEPT = 'multipart/related; type="application/dicom"; transfer-syntax=*'
_UID_PATTERN = re.compile(r"[0-9]+(\.[0-9]+)*")
# How much the library reads at a time; also the slack of the instance cap (see _Guard).
_CHUNK_BYTES = 256 * 1024
_PART_HEADER_BYTES = 64 * 1024  # allowed for an instance's part headers and delimiters
# Characters that travel unescaped in a URL query (RFC 3986 unreserved, the wildcards, and
# separators with no meaning in a query value); "&", "=", "+", "#" and "%" are not among them.
_QUERY_SAFE = frozenset(string.ascii_letters + string.digits + "-._~*?:@/,")

# dicomweb-client logs each request's URL at DEBUG; a search URL holds the patient ID and name.
logging.getLogger("dicomweb_client").setLevel(logging.INFO)


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

    ``username``/``password`` are sent as HTTP basic auth when a username is given (a
    ``user:password@`` in the address works too). ``timeout`` (seconds) bounds connecting and
    each wait for data; ``search_deadline`` and ``retrieve_deadline`` (seconds) bound a whole
    call, however slowly the data comes.
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
        # The query is written here rather than by the library's search_for_studies, which
        # percent-encodes every value ("*" becomes "%2A"), and Orthanc 1.10 does not decode
        # query values: no wildcard search would match there (see _query_value).
        query = [f"includefield={_INCLUDE_FIELDS}", f"limit={limit}"]
        for keyword, value in (
            ("PatientID", patient_id),
            ("PatientName", patient_name),
            ("StudyDate", study_date),
            ("ModalitiesInStudy", modality),
        ):
            if value.strip():
                query.append(f"{keyword}={_query_value(value.strip())}")
        with self._calling("search", max_bytes=max_bytes) as (client, _guard):
            url = f"{client.base_url}/studies?" + "&".join(query)
            try:
                # stream=True: read through the size cap, and no Host header of the library's own
                datasets: object = client._http_get_application_json(url, stream=True)
            except requests.JSONDecodeError:
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

        The answer is streamed and split as it arrives (by dicomweb-client), so memory holds one
        instance at a time, and each instance is handed on byte-for-byte as the PACS stores it.
        More than ``max_bytes`` in the answer, or one instance of more than
        ``max_instance_bytes``, raises :class:`IngestError` (instances already yielded stay with
        the caller), as does an answer cut before its end. A study the PACS does not have
        raises :class:`IngestError`.
        """
        study_uid = study_uid.strip()
        if not _UID_PATTERN.fullmatch(study_uid) or len(study_uid) > 64:
            raise IngestError(f"{study_uid!r} is not a valid study UID (digits separated by dots)")
        calling = self._calling("retrieve", max_bytes=max_bytes, max_part_bytes=max_instance_bytes, study_uid=study_uid)
        with calling as (client, guard):
            # The library's retrieve_study / iter_study parse every instance with pydicom (which
            # would re-encode them, and fail the whole import on one bad instance); its GET and
            # its part splitter hand over the bytes as sent.
            response = client._http_get(
                f"{client.base_url}/studies/{study_uid}", headers={"Accept": _RETRIEVE_ACCEPT}, stream=True
            )
            instances = client._decode_multipart_message(response, stream=True)
            number = 0
            while True:
                try:
                    instance = next(instances)
                except StopIteration:
                    break
                except ValueError:  # the library's word for an answer it cannot split
                    if guard.ended:  # it failed on what was left when the answer ended: a cut
                        raise _Guard.cut() from None
                    raise self._not_instances(guard.content_type) from None
                guard.instance_received()
                number += 1
                yield f"pacs-instance-{number:05d}.dcm", instance

    # -- one call: a guarded session, the library client, errors as messages -------------------

    @contextmanager
    def _calling(
        self, action: str, *, max_bytes: int | None, max_part_bytes: int | None = None, study_uid: str = ""
    ) -> Iterator[tuple[DICOMwebClient, _Guard]]:
        """A library client for one call, and the guard that counts its answer.

        Every failure becomes an :class:`IngestError`; whatever broke once the deadline shut the
        socket (a cut body, a half JSON answer, a network error) is reported as the deadline.
        For a retrieve the deadline includes the time the caller spends storing the instances.
        """
        seconds = self.retrieve_deadline if action == "retrieve" else self.search_deadline
        too_large = self._search_too_large if action == "search" else lambda cap: _too_large(study_uid, cap)
        guard = _Guard(max_bytes, max_part_bytes, too_large)
        session = _GuardedSession(self._origin_and_login(), seconds, guard)
        try:
            client = _library_client(self, session)
            yield client, guard
            if session.deadline.expired:  # the body ended early because the deadline shut the socket
                raise self._deadline_error(action, seconds)
        except Exception as error:
            if session.deadline.expired:
                raise self._deadline_error(action, seconds) from None
            if isinstance(error, IngestError):
                raise
            raise self._error(error, action, study_uid) from None
        finally:
            session.close()

    def _origin_and_login(self) -> tuple[str, tuple[str, str, int], tuple[str, str] | None]:
        """(the address without a login in it, its origin, the login), or IngestError."""
        try:
            parts = urlsplit(self.base_url.strip())
            scheme = parts.scheme.lower()
            if scheme not in _DEFAULT_PORTS:
                raise IngestError(f"{self.display_url!r} is not an http:// or https:// address")
            origin = _origin(self.base_url.strip())
        except ValueError:
            origin = None
        if origin is None:
            raise IngestError(f"{self.display_url!r} is not a valid address (expected http://host:port/path)")
        address = urlunsplit((scheme, parts.netloc.rpartition("@")[2], parts.path.rstrip("/"), "", ""))
        return address, origin, self._auth()

    def _auth(self) -> tuple[str, str] | None:
        if self.username:
            return (self.username, self.password or "")
        # A login written into the address ("http://user:password@host/...").
        try:
            from_url = requests.utils.get_auth_from_url(self.base_url)
        except ValueError:
            return None
        return from_url if any(from_url) else None

    def _error(self, error: Exception, action: str, study_uid: str) -> IngestError:
        """The message for what the library or requests raised."""
        if isinstance(error, _OffOriginRedirect):
            return IngestError(
                f"the PACS at {self.display_url} redirected the {action} to another server "
                f"({_describe_origin(error.url)}); refused, so that the login is not sent there"
            )
        if isinstance(error, requests.TooManyRedirects):
            return IngestError(
                f"the PACS at {self.display_url} redirected the {action} more than {MAX_REDIRECTS} times"
            )
        if isinstance(error, requests.HTTPError) and error.response is not None:
            error.response.close()
            return self._status_error(error.response.status_code, action, study_uid)
        if isinstance(error, requests.RequestException):
            return self._network_error(error)
        return IngestError(f"the PACS at {self.display_url} failed the {action} ({type(error).__name__})")

    def _status_error(self, status: int, action: str, study_uid: str) -> IngestError:
        if status in (401, 403) and not self._auth():
            return IngestError(f"the PACS asks for a login (HTTP {status}); give a user name and password")
        if status in (401, 403):
            return IngestError(f"the PACS refused the login (HTTP {status})")
        if status == 404 and action == "retrieve":
            return IngestError(f"the PACS at {self.display_url} has no study {study_uid}")
        if status == 404:
            return IngestError(
                f"no DICOMweb service at {self.display_url} (HTTP 404); check the address "
                "(for Orthanc it ends in /dicom-web)"
            )
        return IngestError(f"the PACS at {self.display_url} failed the {action} (HTTP {status})")

    def _not_instances(self, content_type: str) -> IngestError:
        if content_type.partition(";")[0].strip().lower() != _RETRIEVE_ACCEPT.partition(";")[0]:
            return IngestError(
                f"the PACS at {self.display_url} answered with {content_type or 'no content type'} "
                "instead of DICOM files"
            )
        return IngestError(f"the PACS at {self.display_url} answered the retrieve with a garbled body")

    def _deadline_error(self, action: str, seconds: float) -> IngestError:
        return IngestError(f"the PACS at {self.display_url} did not complete the {action} within {seconds:g} seconds")

    def _search_too_large(self, max_bytes: int) -> IngestError:
        return IngestError(
            f"the PACS at {self.display_url} answered the search with more than {max_bytes} bytes; "
            "refused (narrow the search)"
        )

    def _answer_too_large(self, max_bytes: int) -> IngestError:
        return IngestError(f"the PACS at {self.display_url} answered with more than {max_bytes} bytes; refused")

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


def pacs_client(
    config: DicomWebClient,
    *,
    deadline: float | None = None,
    max_answer_bytes: int | None = None,
    retry: Retry = RETRY,
) -> DICOMwebClient:
    """A ``dicomweb_client.DICOMwebClient`` for the service ``config`` names, with medreview's guards.

    Its session logs in with ``config``'s login; retries as ``retry`` says (default
    :data:`RETRY`, ``Retry(0)`` for none; the library's own retrying is off); follows redirects
    only within the service's scheme, host and port (a redirect elsewhere raises a
    ``requests.RequestException`` before anything is sent there); times out each request after
    ``config.timeout`` seconds; and stops the client's whole work ``deadline`` seconds after this
    call (default ``config.retrieve_deadline``): its sockets are shut then, so a request still
    running fails. ``max_answer_bytes`` caps each answer body as it is read
    (:class:`IngestError`; default: no cap). ``client._session.close()`` releases its
    connections and deadline timer early. An address that is not http(s) raises
    :class:`IngestError`.

    Use one client per piece of work (a search, an import, a send): the deadline is the client's.
    """
    guard = _Guard(max_answer_bytes, None, config._answer_too_large)
    seconds = config.retrieve_deadline if deadline is None else deadline
    return _library_client(config, _GuardedSession(config._origin_and_login(), seconds, guard, retry))


def _library_client(config: DicomWebClient, session: _GuardedSession) -> DICOMwebClient:
    try:
        client = DICOMwebClient(
            url=session.address, session=session, timeout=(config.timeout, config.timeout), chunk_size=_CHUNK_BYTES
        )
    except ValueError:  # the library's own address check ("Malformed URL")
        session.close()
        raise IngestError(f"{config.display_url!r} is not a valid address (expected http://host:port/path)") from None
    client.set_http_retry_params(retry=False)  # retries are RETRY's, in the session's adapter
    return client


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


# -- the guarded session: redirects, answer caps, the deadline ------------------------------------


class _OffOriginRedirect(requests.RequestException):
    """A redirect to another scheme, host or port: refused before anything is sent there."""

    def __init__(self, url: str) -> None:
        super().__init__(f"redirect to another server refused ({_describe_origin(url)})")
        self.url = url


class _Guard:
    """Counts an answer's bytes as the library reads them, and refuses past the caps.

    ``max_bytes`` caps each answer. ``max_part_bytes`` caps one instance without parsing
    the multipart body: the library yields each instance as soon as its closing delimiter is
    read, so the bytes read since the last instance was handed over bound the next instance's
    size; allowed beyond the cap are one read chunk (the rest of the chunk that ended the last
    instance) and the part's headers and delimiter, so an instance of exactly the cap passes (the
    exact per-file limit is ingest_files', which rejects that instance with its own message).

    ``ended`` is set once the answer has been read to its end; an instance handed over after
    that came from the library's leftover buffer: the body ended before its closing delimiter,
    i.e. the transfer was cut, and the instance may be incomplete.
    """

    def __init__(
        self, max_bytes: int | None, max_part_bytes: int | None, too_large: Callable[[int], IngestError]
    ) -> None:
        self.max_bytes = max_bytes
        self.max_part_bytes = max_part_bytes
        self.too_large = too_large
        self.content_type = ""
        self.ended = False
        self._received = 0
        self._since_instance = 0

    def check_declared(self, response: requests.Response) -> None:
        """An answer that declares its excess up front is refused before any of it is read."""
        declared = response.headers.get("Content-Length", "")
        if self.max_bytes is not None and declared.isdigit() and int(declared) > self.max_bytes:
            response.close()
            raise self.too_large(self.max_bytes)

    def count(self, size: int) -> None:
        self._received += size
        self._since_instance += size
        if self.max_bytes is not None and self._received > self.max_bytes:
            raise self.too_large(self.max_bytes)
        slack = _CHUNK_BYTES + _PART_HEADER_BYTES
        if self.max_part_bytes is not None and self._since_instance > self.max_part_bytes + slack:
            raise IngestError(
                f"the PACS sent an instance larger than the file limit ({self.max_part_bytes} bytes); import refused"
            )

    def instance_received(self) -> None:
        if self.ended:
            raise self.cut()
        self._since_instance = 0

    @staticmethod
    def cut() -> IngestError:
        return IngestError("the PACS answer ended before its last instance was complete (cut transfer)")

    def counted(self, response: requests.Response) -> None:
        """Route the response's body through :meth:`count` (``.content`` reads it this way too).

        Each answer is counted on its own (a redirect's, then the final one's)."""
        self._received = self._since_instance = 0
        self.ended = False
        read = response.iter_content

        def iter_content(chunk_size: int | None = 1, decode_unicode: bool = False) -> Iterator[Any]:
            for chunk in read(chunk_size=chunk_size, decode_unicode=decode_unicode):
                self.count(len(chunk))
                yield chunk
            self.ended = True

        response.iter_content = iter_content  # type: ignore[method-assign]


class _GuardedSession(requests.Session):
    """requests' session with medreview's guards, for the dicomweb-client library to use.

    - Redirects: followed by requests, at most :data:`MAX_REDIRECTS`; :meth:`rebuild_auth`,
      which requests calls for each redirect before sending it, refuses any target outside the
      service's scheme, host and port. requests alone would strip the login on a redirect to
      another host, but not on every change (http to https on the same host keeps it), and netrc
      could add one; refusing is simpler to trust, and tells the user.
    - Answers: a response hook counts each body against the caps of the :class:`_Guard`.
    - Time: each request's connect time-out is clipped to what is left of the deadline, and the
      sockets it opens are shut when the deadline passes (:class:`_Deadline`).
    - Retries: ``retry`` (default :data:`RETRY`), in the adapter.
    """

    def __init__(
        self,
        address_origin_login: tuple[str, tuple[str, str, int], tuple[str, str] | None],
        deadline_seconds: float,
        guard: _Guard,
        retry: Retry = RETRY,
    ) -> None:
        super().__init__()
        self.address, self.origin, self.auth = address_origin_login
        self.max_redirects = MAX_REDIRECTS
        self.guard = guard
        self.deadline = _Deadline(deadline_seconds)
        adapter = _WatchedAdapter(max_retries=retry)
        self.mount("http://", adapter)
        self.mount("https://", adapter)
        self.hooks["response"].append(self._on_response)

    def _on_response(self, response: requests.Response, **_: Any) -> requests.Response:
        self.guard.counted(response)
        if 200 <= response.status_code < 300:
            self.guard.content_type = response.headers.get("Content-Type", "")
            self.guard.check_declared(response)
        return response

    def should_strip_auth(self, old_url: str, new_url: str) -> bool:
        # Any change of scheme, host or port drops the login (requests keeps it for http -> https).
        return _origin(new_url) != self.origin or super().should_strip_auth(old_url, new_url)

    def rebuild_auth(self, prepared_request: requests.PreparedRequest, response: requests.Response) -> None:
        if _origin(prepared_request.url or "") != self.origin:
            raise _OffOriginRedirect(prepared_request.url or "")
        super().rebuild_auth(prepared_request, response)

    def send(self, request: requests.PreparedRequest, **kwargs: Any) -> requests.Response:  # type: ignore[override]
        remaining = self.deadline.remaining()
        if remaining <= 0:
            raise requests.Timeout("the deadline passed")
        timeout = kwargs.get("timeout")
        if isinstance(timeout, tuple):
            kwargs["timeout"] = (min(timeout[0], remaining), timeout[1])
        elif isinstance(timeout, int | float):
            kwargs["timeout"] = (min(timeout, remaining), timeout)
        with self.deadline.watching():
            return super().send(request, **kwargs)

    def close(self) -> None:
        self.deadline.cancel()
        super().close()


def _too_large(study_uid: str, max_bytes: int) -> IngestError:
    return IngestError(f"study {study_uid} is larger than the import limit ({max_bytes} bytes); import refused")


# -- origins, the deadline watchdog ------------------------------------------------


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
