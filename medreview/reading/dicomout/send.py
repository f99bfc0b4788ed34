"""Sending medreview's DICOM objects (SR, KOS) to a PACS with STOW-RS, one result per object.

The server and login are the PACS import's (:class:`medreview.ingest.dicomweb.DicomWebClient`:
the ``pacs-*`` commands' URL, ``--user`` and ``MEDREVIEW_PACS_PASSWORD``, or the Team page's
form), and so is the client (``pacs_client``, with its redirect, size and deadline guards); the
transfer is ``dicomweb-client``'s ``store_instances``, without retries (a refused object is
reported, and the next ``pacs-send`` tries it again).

Nothing is sent twice: before storing an object, a QIDO-RS search asks the PACS for its SOP
Instance UID in its study; an object found is "already there". medreview's SOP Instance UIDs are
stable (:mod:`.documents`), so re-exporting unchanged reads and sending again stores nothing new.
A PACS that refuses an object (an HTTP error such as 409 or 500, a failed-SOP answer, no answer
in time) gets a "refused" result with the reason; nothing is recorded as sent.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import requests
from dicomweb_client import DICOMwebClient
from pydicom.dataset import Dataset
from urllib3.util.retry import Retry

from medreview.errors import MedreviewError
from medreview.reading.dicomout.documents import DicomObject
from medreview.reading.dicomout.parse import read_datasets
from medreview.store import Store
from medreview.team.audit import record_now
from medreview.team.roles import Actor, require

if TYPE_CHECKING:
    from medreview.ingest.dicomweb import DicomWebClient

__all__ = ["STATUSES", "SendResult", "send_folder", "send_objects"]

STATUSES = ("stored", "already there", "refused")
# A QIDO answer for one SOP Instance UID, or a STOW answer for one object, is a few kB.
MAX_ANSWER_BYTES = 4 * 1024 * 1024


@dataclass(frozen=True)
class SendResult:
    file: str
    sop_instance_uid: str
    status: str  # one of STATUSES
    reason: str = ""


def _web_client(pacs: DicomWebClient) -> DICOMwebClient:
    # The PACS import's client, with its guards (the login never follows a redirect to another
    # server, a cap on each answer, an overall deadline), and explicitly no retries: a refused or
    # timed-out object is reported at once, and the next pacs-send tries it again.
    from medreview.ingest.dicomweb import pacs_client

    return pacs_client(pacs, max_answer_bytes=MAX_ANSWER_BYTES, retry=Retry(0))


def _reason(error: Exception, timeout: float) -> str:
    if isinstance(error, requests.HTTPError) and error.response is not None:
        return f"the PACS answered HTTP {error.response.status_code} {error.response.reason or ''}".strip()
    if isinstance(error, requests.Timeout):
        return f"no answer from the PACS within {timeout:g} s"
    if isinstance(error, requests.ConnectionError):
        return "cannot reach the PACS"
    if isinstance(error, MedreviewError):
        return str(error)
    return f"the PACS's answer was not understood ({type(error).__name__})"


def _send_one(client: DICOMwebClient, name: str, dataset: Dataset, timeout: float) -> SendResult:
    sop_uid = str(dataset.SOPInstanceUID)
    study_uid = str(dataset.StudyInstanceUID)
    try:
        found = client.search_for_instances(
            study_instance_uid=study_uid, search_filters={"SOPInstanceUID": sop_uid}, limit=1
        )
        if found:
            return SendResult(name, sop_uid, "already there")
        answer = client.store_instances([dataset], study_instance_uid=study_uid)
    except (requests.RequestException, ValueError, MedreviewError) as error:
        return SendResult(name, sop_uid, "refused", _reason(error, timeout))
    for failed in answer.get("FailedSOPSequence", []):
        if str(failed.get("ReferencedSOPInstanceUID", "")) == sop_uid:
            return SendResult(
                name, sop_uid, "refused", f"the PACS refused it (failure reason {failed.get('FailureReason', '?')})"
            )
    return SendResult(name, sop_uid, "stored")


def send_objects(store: Store, actor: Actor, pacs: DicomWebClient, objects: list[DicomObject]) -> list[SendResult]:
    """STOW-RS each object to the PACS (admins only); one result per object, in order. Audited."""
    require(actor, "admin", "send to a PACS")
    client = _web_client(pacs)
    try:
        results = [_send_one(client, item.file_name, item.dataset, pacs.timeout) for item in objects]
    finally:
        client._session.close()  # its connections and deadline timer (see pacs_client)
    counts = {status: sum(result.status == status for result in results) for status in STATUSES}
    record_now(store, actor.username, "export", "pacs", pacs.display_url[:128], format="stow-rs", **counts)
    return results


def send_folder(store: Store, actor: Actor, pacs: DicomWebClient, folder: Path) -> list[SendResult]:
    """Send every ``.dcm`` file of a folder (``export sr``/``export kos`` output)."""
    require(actor, "admin", "send to a PACS")
    paths = sorted(Path(folder).glob("*.dcm"))
    if not paths:
        raise MedreviewError(f"{folder} holds no .dcm files (write them with: export sr -o {folder})")
    datasets = read_datasets(Path(folder))
    objects = [DicomObject(dataset, path.name) for path, dataset in zip(paths, datasets, strict=True)]
    return send_objects(store, actor, pacs, objects)
