"""Import from a PACS over DICOMweb: search studies (QIDO-RS), retrieve them (WADO-RS) into the store.

:class:`DicomWebClient` speaks to one DICOMweb service (for Orthanc with its DICOMweb plugin the
base URL is ``http://host:8042/dicom-web``); :func:`import_study` retrieves one study and hands its
instances to :func:`~medreview.ingest.service.ingest_files`, so a PACS import is stored, deduplicated
and reported exactly like an upload.

Every failure a user can cause (wrong address, server down, wrong password, a study the PACS does
not have, a study larger than the import limit, a garbled answer) raises
:class:`~medreview.errors.IngestError` with a plain message. Passwords never appear in messages,
logs or the client's ``repr``.
"""

from __future__ import annotations

import email.message
import json
import re
import socket
import string
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from urllib.parse import quote, urlsplit, urlunsplit

import requests

from medreview.errors import IngestError
from medreview.ingest.service import IngestResult, InputFile, ingest_files
from medreview.store import Store
from medreview.team.roles import Actor, require

__all__ = ["DicomWebClient", "StudySummary", "import_study"]

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
    ``timeout`` (seconds) bounds connecting and each wait for data, not the whole transfer.
    """

    base_url: str
    username: str | None = None
    password: str | None = field(default=None, repr=False)
    timeout: float = 30.0

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
    ) -> list[StudySummary]:
        """QIDO-RS study search; empty filters match everything, up to ``limit`` studies.

        Matching follows DICOM: exact unless the value holds ``*`` or ``?`` wildcards
        (``patient_name="Doe*"``); ``study_date`` is ``YYYYMMDD`` or a range ``YYYYMMDD-YYYYMMDD``.
        A character that would need percent-encoding in the URL (space, ``^``, non-ASCII, ...) is
        sent as the one-character wildcard ``?``: see :func:`_query_value`.
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
            # Some servers answer "no match" with 204 No Content rather than an empty array.
            if response.status_code == 204 or not response.content.strip():
                return []
            try:
                datasets = json.loads(response.content)
            except ValueError:
                raise IngestError(
                    f"the PACS at {self.display_url} answered the search with something other than JSON"
                ) from None
        if not isinstance(datasets, list) or not all(isinstance(item, dict) for item in datasets):
            raise IngestError(f"the PACS at {self.display_url} answered the search with unexpected JSON")
        summaries = [_summary(dataset) for dataset in datasets]
        return [summary for summary in summaries if summary.study_uid][:limit]

    def retrieve_study(self, study_uid: str, max_bytes: int | None = None) -> Iterator[tuple[str, bytes]]:
        """WADO-RS retrieve of a whole study: yields ``("<study_uid>/<n>.dcm", DICOM file bytes)``.

        The answer is streamed and split as it arrives, so memory holds one instance at a time.
        More than ``max_bytes`` in the answer raises :class:`IngestError` (instances already
        yielded stay with the caller). A study the PACS does not have raises :class:`IngestError`.
        """
        study_uid = study_uid.strip()
        if not _UID_PATTERN.fullmatch(study_uid) or len(study_uid) > 64:
            raise IngestError(f"{study_uid!r} is not a valid study UID (digits separated by dots)")
        path = f"/studies/{quote(study_uid)}"
        with self._get(path, accept=_RETRIEVE_ACCEPT, action="retrieve", study_uid=study_uid, stream=True) as response:
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
            for number, part in enumerate(_iter_multipart(chunks, boundary.encode("latin-1")), start=1):
                yield f"{study_uid}/{number}.dcm", part

    # -- HTTP ---------------------------------------------------------------------------------

    def _get(
        self,
        path: str,
        *,
        accept: str,
        action: str,
        study_uid: str = "",
        stream: bool = False,
    ) -> requests.Response:
        url = self.base_url.rstrip("/") + path
        auth = (self.username, self.password or "") if self.username else None
        try:
            response = requests.get(url, headers={"Accept": accept}, auth=auth, timeout=self.timeout, stream=stream)
        except requests.RequestException as error:
            raise self._network_error(error) from None
        if response.status_code >= 400:
            status = response.status_code
            response.close()
            if status in (401, 403) and not self.username:
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
        return response

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

    The transfer is limited to the store's ``max_archive_total_bytes``. When it fails midway
    (network, limit) an :class:`IngestError` is raised; instances already committed stay stored,
    each complete, and importing the study again reports them as duplicates.
    """
    # Admins only: the server fetches from an address the user gives, which must not become a way
    # for any account to probe the hospital network.
    require(actor, "admin", "import from a PACS")
    limit = store.settings.limits.max_archive_total_bytes
    files = (InputFile(name, data) for name, data in client.retrieve_study(study_uid, max_bytes=limit))
    results = ingest_files(store, files, progress=progress)
    if not results:
        raise IngestError(f"the PACS at {client.display_url} sent no instances for study {study_uid.strip()}")
    return results


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


def _iter_multipart(chunks: Iterable[bytes], boundary: bytes) -> Iterator[bytes]:
    """Split a streamed multipart body (RFC 2046) into part bodies, without their headers.

    A delimiter is CRLF "--" boundary, then "--" for the last one or optional padding and CRLF
    before the next part. The preamble before the first delimiter and the epilogue after the
    last are ignored. A body that ends before its closing delimiter raises :class:`IngestError`
    (a cut transfer must not pass for a complete study).
    """
    delimiter = b"\r\n--" + boundary
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
