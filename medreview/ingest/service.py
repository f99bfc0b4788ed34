"""``ingest_files``: the one way files enter the store (upload page, CLI, import-folder, demo).

Each input file gets one :class:`IngestResult`: stored, duplicate, or rejected with a reason.
One bad file never stops the batch. For each accepted file the original bytes are written to
the blob store first and the rows (patient/study/series/image) are committed after, in chunks,
so a crash leaves at most an orphan blob (collected later), never a row without its file.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import logging
from collections.abc import Callable, Iterable, Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path

from sqlalchemy import or_, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from medreview.blobs import sha256_hex
from medreview.deid_map import record_pseudonyms
from medreview.errors import IngestError
from medreview.ingest.archive import is_zip, iter_zip_members
from medreview.ingest.deid import DeidResult, deidentify_dicom, strip_raster_metadata
from medreview.ingest.dicom import DicomInfo, looks_like_dicom, read_dicom
from medreview.ingest.raster import RasterInfo, looks_like_raster, read_raster
from medreview.models import Image, Patient, Series, Study
from medreview.store import Store

__all__ = ["IngestResult", "InputFile", "ingest_files", "ingest_paths"]

log = logging.getLogger(__name__)

STORED, DUPLICATE, REJECTED = "stored", "duplicate", "rejected"


@dataclass(frozen=True)
class InputFile:
    name: str
    data: bytes


@dataclass(frozen=True)
class IngestResult:
    file: str
    status: str  # stored | duplicate | rejected
    reason: str = ""
    image_id: int | None = None

    def as_dict(self) -> dict[str, object]:
        return asdict(self)


@dataclass(frozen=True)
class _Accepted:
    name: str
    data: bytes  # what gets stored: the upload, or its de-identified form
    sha256: str
    media_type: str
    info: DicomInfo | RasterInfo
    deid: DeidResult | None = None
    original_uids: dict[str, str] = field(default_factory=dict)
    source_sha256: str = ""

    @property
    def size(self) -> int:
        return len(self.data)


def _expand(files: Iterable[InputFile], store: Store) -> Iterator[InputFile | IngestResult]:
    """Yield plain files, expanding zip archives; refused members come out as results."""
    limits = store.settings.limits
    for item in files:
        if is_zip(item.data):
            try:
                for member in iter_zip_members(item.data, limits):
                    name = f"{item.name}/{member.name}"
                    if member.error is not None or member.data is None:
                        yield IngestResult(name, REJECTED, member.error or "unreadable archive member")
                    else:
                        yield InputFile(name, member.data)
            except IngestError as error:
                yield IngestResult(item.name, REJECTED, str(error))
        else:
            yield item


@dataclass(frozen=True)
class _Policy:
    """How this batch treats files: read once per batch, not per file."""

    deidentify: bool
    secret: bytes | None


def _policy(store: Store) -> _Policy:
    from medreview.deid_map import project_secret
    from medreview.project import get_setting

    deidentify = bool(get_setting(store, "deidentify"))
    return _Policy(deidentify, project_secret(store) if deidentify else None)


def _inspect(item: InputFile, store: Store, policy: _Policy) -> _Accepted:
    limits = store.settings.limits
    if not item.data:
        raise IngestError("empty file")
    if len(item.data) > limits.max_file_bytes:
        raise IngestError(f"file too large ({len(item.data)} bytes; limit {limits.max_file_bytes})")
    if looks_like_raster(item.data):
        info: DicomInfo | RasterInfo = read_raster(item.data, limits)
        data = strip_raster_metadata(item.data) if policy.deidentify else item.data
        source = sha256_hex(item.data)
        return _Accepted(
            item.name,
            data,
            sha256_hex(data) if data is not item.data else source,
            info.format.lower(),
            info,
            source_sha256=source,
        )
    if looks_like_dicom(item.data):
        # Validate (and decode once) the upload as sent, then store its de-identified form.
        info = read_dicom(item.data, limits)
        source = sha256_hex(item.data)
        if not policy.deidentify:
            return _Accepted(item.name, item.data, source, "dicom", info, source_sha256=source)
        result = deidentify_dicom(item.data, policy.secret)
        originals = {
            "StudyInstanceUID": info.study_instance_uid,
            "SeriesInstanceUID": info.series_instance_uid,
            "SOPInstanceUID": info.sop_instance_uid,
        }
        stored_info = dataclasses.replace(
            info,
            sop_instance_uid=result.uid_map.get(info.sop_instance_uid, info.sop_instance_uid),
            study_instance_uid=result.uid_map.get(info.study_instance_uid, info.study_instance_uid),
            series_instance_uid=result.uid_map.get(info.series_instance_uid, info.series_instance_uid),
            patient_id=result.pseudonym_patient_id,
            patient_name=result.pseudonym_patient_id,
            study_date=None,
            study_description="",
            series_description="",
            burned_in_annotation=info.burned_in_annotation or result.needs_burned_in_review,
        )
        return _Accepted(
            item.name, result.data, sha256_hex(result.data), "dicom", stored_info, result, originals, source
        )
    raise IngestError("not a DICOM, PNG, JPEG or zip file")


def _raster_uid(sha256: str) -> str:
    # A UUID-derived UID under the 2.25 root (PS3.5 B.2), stable for the same bytes.
    return "2.25." + str(int(sha256[:32], 16))


def _get_or_create(session: Session, model: type, key_column: str, key: str, **values: object) -> object:
    existing = session.scalar(select(model).where(getattr(model, key_column) == key))
    if existing is not None:
        return existing
    row = model(**{key_column: key}, **values)
    session.add(row)
    session.flush()
    return row


def _add_rows(session: Session, accepted: _Accepted) -> Image:
    info = accepted.info
    if isinstance(info, DicomInfo):
        patient_key = info.patient_id or f"anonymous-{info.study_instance_uid}"
        patient = _get_or_create(session, Patient, "patient_key", patient_key, patient_name=info.patient_name)
        study = _get_or_create(
            session,
            Study,
            "study_uid",
            info.study_instance_uid,
            patient_id=patient.id,
            study_date=info.study_date,
            description=info.study_description,
        )
        series = _get_or_create(
            session,
            Series,
            "series_uid",
            info.series_instance_uid,
            study_id=study.id,
            modality=info.modality or "OT",
            description=info.series_description,
            series_number=info.series_number,
        )
        image = Image(
            series_id=series.id,
            sha256=accepted.sha256,
            source_sha256=accepted.source_sha256,
            sop_instance_uid=info.sop_instance_uid,
            media_type="dicom",
            original_filename=accepted.name,
            size_bytes=accepted.size,
            rows=info.rows,
            columns=info.columns,
            number_of_frames=info.number_of_frames,
            photometric_interpretation=info.photometric_interpretation,
            transfer_syntax_uid=info.transfer_syntax_uid,
            instance_number=info.instance_number,
            slice_location=info.slice_location,
            burned_in_annotation=info.burned_in_annotation,
        )
    else:
        # PNG/JPEG carry no hierarchy: each file gets its own synthetic patient/study/series, so a
        # patient-level split treats every such image as its own patient.
        uid = _raster_uid(accepted.sha256)
        patient = _get_or_create(session, Patient, "patient_key", f"raster-{accepted.sha256[:16]}")
        study = _get_or_create(
            session,
            Study,
            "study_uid",
            uid + ".1",
            patient_id=patient.id,
            study_date=dt.date.today().strftime("%Y%m%d"),
            description="Uploaded image",
        )
        series = _get_or_create(
            session, Series, "series_uid", uid + ".2", study_id=study.id, modality="OT", description=info.format
        )
        image = Image(
            series_id=series.id,
            sha256=accepted.sha256,
            source_sha256=accepted.source_sha256,
            sop_instance_uid=uid,
            media_type=accepted.media_type,
            original_filename=accepted.name,
            size_bytes=accepted.size,
            rows=info.height,
            columns=info.width,
            number_of_frames=1,
            photometric_interpretation="RGB" if info.mode.startswith("RGB") else "MONOCHROME2",
            transfer_syntax_uid=None,
            instance_number=None,
            slice_location=None,
        )
    session.add(image)
    session.flush()
    return image


def _duplicate_of(session: Session, accepted: _Accepted) -> Image | None:
    uid = accepted.info.sop_instance_uid if isinstance(accepted.info, DicomInfo) else _raster_uid(accepted.sha256)
    return session.scalar(select(Image).where(or_(Image.sha256 == accepted.sha256, Image.sop_instance_uid == uid)))


def _commit_chunk(store: Store, chunk: list[_Accepted]) -> list[IngestResult]:
    results: list[IngestResult] = []
    for accepted in chunk:
        store.blobs.put(accepted.data, accepted.sha256)
    try:
        with store.db.write() as session:
            for accepted in chunk:
                existing = _duplicate_of(session, accepted)
                if existing is not None:
                    why = "same file" if existing.sha256 == accepted.sha256 else "same SOPInstanceUID"
                    results.append(
                        IngestResult(
                            accepted.name,
                            DUPLICATE,
                            f"already stored ({why}) as {existing.original_filename}",
                            existing.id,
                        )
                    )
                    continue
                image = _add_rows(session, accepted)
                if accepted.deid is not None:
                    record_pseudonyms(session, accepted.deid, accepted.original_uids)
                results.append(IngestResult(accepted.name, STORED, "", image.id))
    except IntegrityError:
        # Another writer stored one of these files between our check and our insert: redo the
        # chunk one file at a time so each gets its own honest result.
        if len(chunk) == 1:
            return [IngestResult(chunk[0].name, DUPLICATE, "already stored (concurrent upload)")]
        results = []
        for accepted in chunk:
            results.extend(_commit_chunk(store, [accepted]))
    return results


def ingest_files(
    store: Store,
    files: Iterable[InputFile],
    progress: Callable[[int, str], None] | None = None,
    chunk_size: int = 50,
) -> list[IngestResult]:
    """Store every acceptable file; return one result per input file (archives: per member), in
    input order.

    ``progress(files_done, current_name)`` is called after each file so a page can show a bar.
    Rows are committed every ``chunk_size`` accepted files, so a large upload is not one long
    write transaction and other users keep working meanwhile.
    """
    results: list[IngestResult | None] = []
    chunk: list[_Accepted] = []
    slots: list[int] = []  # position in ``results`` of each accepted file in ``chunk``
    seen_in_batch: dict[str, str] = {}

    def flush() -> None:
        if chunk:
            for slot, result in zip(slots, _commit_chunk(store, chunk), strict=True):
                results[slot] = result
            chunk.clear()
            slots.clear()

    policy = _policy(store)
    for item in _expand(files, store):
        if isinstance(item, IngestResult):
            results.append(item)
        else:
            try:
                accepted = _inspect(item, store, policy)
            except IngestError as error:
                results.append(IngestResult(item.name, REJECTED, str(error)))
            except Exception as error:  # a decoder bug must not abort the batch
                log.exception("unexpected error inspecting an upload")
                results.append(IngestResult(item.name, REJECTED, f"unreadable file ({type(error).__name__})"))
            else:
                if accepted.sha256 in seen_in_batch:
                    why = f"same file as {seen_in_batch[accepted.sha256]} in this upload"
                    results.append(IngestResult(item.name, DUPLICATE, why))
                else:
                    seen_in_batch[accepted.sha256] = item.name
                    slots.append(len(results))
                    results.append(None)
                    chunk.append(accepted)
                    if len(chunk) >= chunk_size:
                        flush()
        if progress is not None:
            progress(len(results), item.file if isinstance(item, IngestResult) else item.name)
    flush()
    return [result for result in results if result is not None]


def ingest_paths(store: Store, paths: Iterable[Path], **kwargs: object) -> list[IngestResult]:
    """CLI helper: ingest files and folders (recursively) from disk."""

    paths = list(paths)

    def walk() -> Iterator[InputFile]:
        for path in paths:
            if path.is_dir():
                for child in sorted(p for p in path.rglob("*") if p.is_file()):
                    yield InputFile(str(child), child.read_bytes())
            elif path.is_file():
                yield InputFile(str(path), path.read_bytes())

    missing = [IngestResult(str(p), REJECTED, "no such file or folder") for p in paths if not p.exists()]
    return missing + ingest_files(store, walk(), **kwargs)  # type: ignore[arg-type]
