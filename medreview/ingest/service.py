"""``ingest_files``: the one way files enter the store (upload page, CLI, import-folder, demo).

Each input file gets one :class:`IngestResult`: stored, duplicate, or rejected with a reason.
One bad file never stops the batch. For each accepted file the original bytes are written to
the blob store first and the rows (patient/study/series/image) are committed after, in chunks,
so a crash leaves at most an orphan blob (collected later), never a row without its file.

Duplicates (same bytes or same SOPInstanceUID) are found within the upload before any blob is
written, and against the database in the chunk's write transaction; a concurrent writer that wins
a race surfaces as an ``IntegrityError`` and the chunk is redone file by file.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import logging
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from sqlalchemy import or_, select
from sqlalchemy.exc import DataError, IntegrityError
from sqlalchemy.orm import InstrumentedAttribute, Session

from medreview.errors import OUT_OF_MEMORY_REASON, IngestError
from medreview.ingest.archive import is_zip, iter_zip_members
from medreview.ingest.deid import DeidResult, deidentify_dataset, strip_raster_metadata
from medreview.ingest.dicom import DicomInfo, looks_like_dicom, read_dicom_dataset
from medreview.ingest.pseudonyms import file_name_row, pseudonym_rows, record_pseudonyms
from medreview.ingest.raster import RasterInfo, looks_like_raster, read_raster
from medreview.store import Store
from medreview.store.blobs import sha256_hex
from medreview.store.models import Image, Patient, Series, Study
from medreview.team.roles import Actor, require

__all__ = ["IngestResult", "InputFile", "ingest_files", "ingest_paths"]

log = logging.getLogger(__name__)

STORED, DUPLICATE, REJECTED = "stored", "duplicate", "rejected"
# Deliberately not imported (a hidden file, a file outside a class folder); not an error.
SKIPPED = "skipped"

# Threads writing blobs: each mostly waits in fsync with the GIL released, so a few overlap the
# disk's latency with parsing the next files; more only queue on the same disk.
_BLOB_WRITERS = 4


@dataclass(frozen=True)
class InputFile:
    name: str
    data: bytes


@dataclass(frozen=True)
class IngestResult:
    file: str
    status: str  # stored | duplicate | rejected | skipped
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
    # With de-identification on the upload's name is an identifier ("Smith_John_MRN778899.dcm"):
    # the store shows ``display_name`` and keeps the name only in the pseudonym map.
    display_name: str = ""
    name_hidden: bool = False  # the upload's name goes to the pseudonym map
    # PNG/JPEG: a screenshot or a photographed film may show a name in its pixels (DICOM: in info).
    needs_burned_in_review: bool = False

    @property
    def shown_name(self) -> str:
        return self.display_name or self.name

    @property
    def size(self) -> int:
        return len(self.data)

    @property
    def sop_instance_uid(self) -> str:
        """The dedupe key next to ``sha256`` (PNG/JPEG: a UID derived from the bytes)."""
        if isinstance(self.info, DicomInfo):
            return self.info.sop_instance_uid
        return _raster_uid(self.sha256)


def _expand(files: Iterable[InputFile | IngestResult], store: Store) -> Iterator[InputFile | IngestResult]:
    """Yield plain files, expanding zip archives; refused members come out as results, and so do
    results the caller already decided (a file it could not read)."""
    limits = store.settings.limits
    for item in files:
        if isinstance(item, IngestResult):
            yield item
        elif is_zip(item.data):
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
    # PS3.15's Modified Dates option (and age and sex with it): dates kept, shifted per patient.
    shift_dates: bool = False


def _policy(store: Store) -> _Policy:
    from medreview.ingest.pseudonyms import project_secret
    from medreview.team.settings import get_setting

    deidentify = bool(get_setting(store, "deidentify"))
    shift_dates = deidentify and bool(get_setting(store, "shift_dates"))
    return _Policy(deidentify, project_secret(store) if deidentify else None, shift_dates)


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
            # Secondary capture by nature: flagged as SC DICOM without BurnedInAnnotation is.
            needs_burned_in_review=policy.deidentify,
        )
    if looks_like_dicom(item.data):
        # Validate (and decode once) the upload as sent, then store its de-identified form.
        info, dataset = read_dicom_dataset(item.data, limits)
        source = sha256_hex(item.data)
        if not policy.deidentify:
            return _Accepted(item.name, item.data, source, "dicom", info, source_sha256=source)
        # The dataset parsed above, not a second parse.
        result = deidentify_dataset(dataset, policy.secret, shift_dates=policy.shift_dates)
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
            modality=result.modality,  # as stored: "OT" where the upload's was no defined term
            study_date=result.study_date,  # shifted per patient, or None (removed)
            study_description="",
            series_description=result.series_description,  # from coded values and geometry, never free text
            burned_in_annotation=info.burned_in_annotation or result.needs_burned_in_review,
        )
        return _Accepted(
            item.name, result.data, sha256_hex(result.data), "dicom", stored_info, result, originals, source
        )
    raise IngestError("not a DICOM, PNG, JPEG or zip file")


_GREY_RASTER_MODES = frozenset({"1", "L", "LA", "La", "I", "F", "I;16", "I;16L", "I;16B", "I;16N"})


def display_name(accepted: _Accepted) -> str:
    """The name a de-identified image is shown and exported under, from de-identified facts only:
    "CT-s3-i12-1a2b3c4d.dcm" (modality, series and instance number, the stored bytes' hash) or
    "image-1a2b3c4d5e6f.png"."""
    info = accepted.info
    if isinstance(info, DicomInfo):
        modality = "".join(character for character in (info.modality or "OT") if character.isalnum()) or "OT"
        return f"{modality}-s{info.series_number or 0}-i{info.instance_number or 0}-{accepted.sha256[:8]}.dcm"
    extension = "jpg" if accepted.media_type == "jpeg" else accepted.media_type
    return f"image-{accepted.sha256[:12]}.{extension}"


def _raster_uid(sha256: str) -> str:
    # A UUID-derived UID under the 2.25 root (PS3.5 B.2), stable for the same bytes.
    return "2.25." + str(int(sha256[:32], 16))


@dataclass(frozen=True)
class _Hierarchy:
    """The patient, study and series one accepted file belongs to, with their values if new."""

    patient_key: str
    patient_values: dict[str, object]
    study_uid: str
    study_values: dict[str, object]  # without patient_id, known once the patient row is
    series_uid: str
    series_values: dict[str, object]  # without study_id


def _derived_uid(*parts: str) -> str:
    """A UID under the 2.25 root derived from ``parts``: the same parts give the same UID."""
    return _raster_uid(sha256_hex("\0".join(parts).encode("utf-8")))


def _hierarchy(accepted: _Accepted) -> _Hierarchy:
    info = accepted.info
    if isinstance(info, DicomInfo):
        # Nothing is keyed on an empty value: a file without a Patient ID is its study's patient
        # (its own, without a Study UID), and missing Study / Series UIDs get replacements derived
        # from the patient, so UID-less files of two patients never share a study.
        patient_key = info.patient_id or f"anonymous-{info.study_instance_uid or info.sop_instance_uid}"
        study_uid = info.study_instance_uid or _derived_uid("study", patient_key)
        series_uid = info.series_instance_uid or _derived_uid(
            "series", study_uid, info.modality or "OT", str(info.series_number or "")
        )
        return _Hierarchy(
            patient_key=patient_key,
            patient_values={"patient_name": info.patient_name},
            study_uid=study_uid,
            study_values={"study_date": info.study_date, "description": info.study_description},
            series_uid=series_uid,
            series_values={
                "modality": info.modality or "OT",
                "description": info.series_description,
                "series_number": info.series_number,
            },
        )
    # PNG/JPEG carry no hierarchy: each file gets its own synthetic patient/study/series, so a
    # patient-level split treats every such image as its own patient.
    uid = _raster_uid(accepted.sha256)
    return _Hierarchy(
        patient_key=f"raster-{accepted.sha256[:16]}",
        patient_values={},
        study_uid=uid + ".1",
        study_values={"study_date": dt.date.today().strftime("%Y%m%d"), "description": "Uploaded image"},
        series_uid=uid + ".2",
        series_values={"modality": "OT", "description": info.format},
    )


_NAME_COLUMN_LENGTH = Image.__table__.c.display_name.type.length


def _check_fits(accepted: _Accepted) -> _Accepted:
    """Refuse, with the reason, a file whose values the store's columns cannot hold (PostgreSQL
    would refuse the whole chunk's transaction over one over-long value). A file name that is too
    long is shortened, keeping its end (the file's own name), rather than refused."""
    if len(accepted.shown_name) > _NAME_COLUMN_LENGTH:
        shortened = "..." + accepted.shown_name[-(_NAME_COLUMN_LENGTH - 3) :]
        accepted = dataclasses.replace(accepted, display_name=shortened)
    hierarchy = _hierarchy(accepted)
    image = _image_row(accepted)
    checks = [
        (Image, {"sop_instance_uid": accepted.sop_instance_uid, "transfer_syntax_uid": image.transfer_syntax_uid}),
        (Image, {"photometric_interpretation": image.photometric_interpretation}),
        (Patient, {"patient_key": hierarchy.patient_key, **hierarchy.patient_values}),
        (Study, {"study_uid": hierarchy.study_uid, **hierarchy.study_values}),
        (Series, {"series_uid": hierarchy.series_uid, **hierarchy.series_values}),
    ]
    for model, values in checks:
        for column_name, value in values.items():
            length = getattr(model.__table__.c[column_name].type, "length", None)
            if isinstance(value, str) and length is not None and len(value) > length:
                raise IngestError(
                    f"{column_name.replace('_', ' ')} has {len(value)} characters; "
                    f"the store holds at most {length} (not valid DICOM either)"
                )
    return accepted


def _image_row(accepted: _Accepted) -> Image:
    """The Image row of an accepted file; ``series_id`` is set once the series row is known."""
    info = accepted.info
    common = {
        "sha256": accepted.sha256,
        "source_sha256": accepted.source_sha256,
        "sop_instance_uid": accepted.sop_instance_uid,
        "media_type": accepted.media_type,
        "display_name": accepted.shown_name,
        "size_bytes": accepted.size,
    }
    if isinstance(info, DicomInfo):
        return Image(
            **common,
            rows=info.rows,
            columns=info.columns,
            number_of_frames=info.number_of_frames,
            photometric_interpretation=info.photometric_interpretation,
            transfer_syntax_uid=info.transfer_syntax_uid,
            instance_number=info.instance_number,
            slice_location=info.slice_location,
            burned_in_annotation=info.burned_in_annotation,
        )
    return Image(
        **common,
        rows=info.height,
        columns=info.width,
        number_of_frames=1,
        # Pillow's grey modes are grey; every other mode (RGB, RGBA, CMYK, YCbCr, P, ...) is colour.
        photometric_interpretation="MONOCHROME2" if info.mode in _GREY_RASTER_MODES else "RGB",
        transfer_syntax_uid=None,
        instance_number=None,
        slice_location=None,
        burned_in_annotation=accepted.needs_burned_in_review,
    )


def _get_or_add(session: Session, key_column: InstrumentedAttribute[str], values: dict[str, dict]) -> dict[str, Any]:
    """Rows of ``key_column``'s table for each key of ``values``: the existing ones in one query,
    the others added with their values and flushed, so that every row has its id."""
    model = key_column.class_
    rows = {getattr(row, key_column.key): row for row in session.scalars(select(model).where(key_column.in_(values)))}
    missing = [model(**{key_column.key: key}, **row_values) for key, row_values in values.items() if key not in rows]
    if missing:
        session.add_all(missing)
        session.flush()
        rows.update((getattr(row, key_column.key), row) for row in missing)
    return rows


def _add_chunk(session: Session, chunk: list[_Accepted]) -> list[IngestResult]:
    """Add the rows for a chunk of files whose blobs are on disk; one result per file, in order.

    A handful of queries per chunk, not per file: one for the images already stored with the same
    bytes or SOPInstanceUID, one per hierarchy level for the rows that exist, one flush for the
    new images. A file that repeats an earlier file of the chunk is a duplicate of that one.
    """
    stored = session.scalars(
        select(Image).where(
            or_(
                Image.sha256.in_({accepted.sha256 for accepted in chunk}),
                Image.sop_instance_uid.in_({accepted.sop_instance_uid for accepted in chunk}),
            )
        )
    ).all()
    by_sha256 = {image.sha256: image for image in stored}
    by_sop_instance_uid = {image.sop_instance_uid: image for image in stored}
    outcomes: list[tuple[_Accepted, Image, str]] = []  # (file, its image, why a duplicate or "")
    new: list[tuple[_Accepted, Image, _Hierarchy]] = []
    for accepted in chunk:
        existing = by_sha256.get(accepted.sha256) or by_sop_instance_uid.get(accepted.sop_instance_uid)
        if existing is not None:
            outcomes.append(
                (accepted, existing, "same file" if existing.sha256 == accepted.sha256 else "same SOPInstanceUID")
            )
            continue
        image = _image_row(accepted)
        by_sha256[accepted.sha256] = by_sop_instance_uid[accepted.sop_instance_uid] = image
        outcomes.append((accepted, image, ""))
        new.append((accepted, image, _hierarchy(accepted)))

    if new:
        # The first file of a patient/study/series in the chunk gives the new row its values.
        patient_values: dict[str, dict] = {}
        for _, _, hierarchy in new:
            patient_values.setdefault(hierarchy.patient_key, hierarchy.patient_values)
        patients = _get_or_add(session, Patient.patient_key, patient_values)
        study_values: dict[str, dict] = {}
        for _, _, hierarchy in new:
            study_values.setdefault(
                hierarchy.study_uid, {"patient_id": patients[hierarchy.patient_key].id, **hierarchy.study_values}
            )
        studies = _get_or_add(session, Study.study_uid, study_values)
        series_values: dict[str, dict] = {}
        for _, _, hierarchy in new:
            series_values.setdefault(
                hierarchy.series_uid, {"study_id": studies[hierarchy.study_uid].id, **hierarchy.series_values}
            )
        series = _get_or_add(session, Series.series_uid, series_values)
        for _, image, hierarchy in new:
            image.series_id = series[hierarchy.series_uid].id
        session.add_all(image for _, image, _ in new)
        session.flush()
        map_rows: list[dict[str, object]] = []
        for accepted, _, _ in new:
            if accepted.deid is not None:
                map_rows += pseudonym_rows(accepted.deid, accepted.original_uids)
            if accepted.name_hidden:
                map_rows.append(file_name_row(accepted.name, accepted.display_name))
        record_pseudonyms(session, map_rows)

    return [
        IngestResult(accepted.name, DUPLICATE, f"already stored ({why}) as {image.display_name}", image.id)
        if why
        else IngestResult(accepted.name, STORED, "", image.id)
        for accepted, image, why in outcomes
    ]


def _commit_chunk(store: Store, chunk: list[_Accepted], attempts: int = 3) -> list[IngestResult]:
    try:
        with store.db.write() as session:
            # Under the blob lock the orphan sweep cannot remove a file until this commits; a
            # file it removed before (an old blob of an upload that crashed) is written again.
            store.lock_blobs(session)
            for accepted in chunk:
                if not store.blobs.path_for(accepted.sha256).exists():
                    store.blobs.put(accepted.data, accepted.sha256)
            return _add_chunk(session, chunk)
    except DataError as error:
        # A value the database refused (PostgreSQL checks lengths and types; SQLite does not):
        # _check_fits should have caught it. Isolate the file, so the rest of the chunk is stored.
        if len(chunk) > 1:
            return [result for accepted in chunk for result in _commit_chunk(store, [accepted])]
        log.warning("the database refused a value of %s: %s", chunk[0].shown_name, type(error.orig).__name__)
        return [IngestResult(chunk[0].name, REJECTED, "the store refused one of this file's values; nothing stored")]
    except IntegrityError:
        # Another writer committed a row this chunk was about to insert (the same image, or a
        # patient/study/series/pseudonym row the files share) between our lookups and our inserts
        # (PostgreSQL; SQLite's BEGIN IMMEDIATE serialises writers). Its rows are visible now:
        # redo one file per transaction, so each file gets its own honest result.
        if len(chunk) > 1:
            return [result for accepted in chunk for result in _commit_chunk(store, [accepted])]
        if attempts > 1:
            return _commit_chunk(store, chunk, attempts - 1)
        log.warning("gave up storing %s after repeated conflicts with concurrent uploads", chunk[0].shown_name)
        reason = "not stored: other uploads kept writing the same study at the same time; upload it again"
        return [IngestResult(chunk[0].name, REJECTED, reason)]


def _describe(error: BaseException) -> str:
    # Never the server's paths: the reason is shown to the uploader.
    strerror = getattr(error, "strerror", None)
    return strerror or type(error).__name__


def _finish_chunk(store: Store, chunk: list[_Accepted], writes: list[Future[str]]) -> list[IngestResult]:
    """Wait for every blob write of the chunk, make the new names durable, then commit the rows of
    the files whose blob is complete on disk. A file whose blob could not be written is rejected
    and gets no row (its temporary file is removed; a complete blob without a row is an orphan)."""
    failed: dict[int, str] = {}
    for index, write in enumerate(writes):
        try:
            write.result()
        except Exception as error:
            log.error("could not write the blob of %s", chunk[index].shown_name, exc_info=error)
            failed[index] = f"could not be saved on the server ({_describe(error)}); nothing stored"
    written = [accepted for index, accepted in enumerate(chunk) if index not in failed]
    if written:
        try:
            store.blobs.sync_folders(accepted.sha256 for accepted in written)
        except OSError as error:
            log.error("could not sync the blob folders", exc_info=error)
            reason = f"could not be saved on the server ({_describe(error)}); nothing stored"
            return [IngestResult(accepted.name, REJECTED, reason) for accepted in chunk]
    committed = iter(_commit_chunk(store, written) if written else [])
    return [
        IngestResult(accepted.name, REJECTED, failed[index]) if index in failed else next(committed)
        for index, accepted in enumerate(chunk)
    ]


def ingest_files(
    store: Store,
    actor: Actor,
    files: Iterable[InputFile | IngestResult],
    progress: Callable[[int, str], None] | None = None,
    chunk_size: int = 50,
) -> list[IngestResult]:
    """Store every acceptable file; return one result per input file (archives: per member), in
    input order. Any signed-in role may upload (annotators bring their own studies).

    ``progress(files_done, current_name)`` is called after each file so a page can show a bar.
    Rows are committed every ``chunk_size`` accepted files, so a large upload is not one long
    write transaction and other users keep working meanwhile.

    Each accepted file's blob is written by a small thread pool while the next files are
    inspected (``fsync`` waits on the disk with the GIL released); a chunk's rows are committed
    only after all of its blobs are written and their folders synced.
    """
    require(actor, "annotator", "upload images")
    results: list[IngestResult | None] = []
    chunk: list[_Accepted] = []
    writes: list[Future[str]] = []  # the blob write of each file in ``chunk``
    slots: list[int] = []  # position in ``results`` of each accepted file in ``chunk``
    seen_sha256: dict[str, str] = {}  # file name by content, in this upload
    seen_sop_instance_uid: dict[str, str] = {}

    policy = _policy(store)
    with ThreadPoolExecutor(max_workers=_BLOB_WRITERS, thread_name_prefix="medreview-blob") as writer:

        def flush() -> None:
            if chunk:
                for slot, result in zip(slots, _finish_chunk(store, chunk, writes), strict=True):
                    results[slot] = result
                chunk.clear()
                writes.clear()
                slots.clear()

        for item in _expand(files, store):
            if isinstance(item, IngestResult):
                results.append(item)
            else:
                try:
                    accepted = _inspect(item, store, policy)
                    if policy.deidentify:
                        accepted = dataclasses.replace(accepted, display_name=display_name(accepted), name_hidden=True)
                    accepted = _check_fits(accepted)
                except IngestError as error:
                    results.append(IngestResult(item.name, REJECTED, str(error)))
                except MemoryError:
                    # The exception's text is for developers; the file is refused, the batch goes on.
                    log.warning("ran out of memory inspecting an upload")
                    results.append(IngestResult(item.name, REJECTED, f"not stored: {OUT_OF_MEMORY_REASON}"))
                except Exception as error:  # a decoder bug must not abort the batch
                    log.exception("unexpected error inspecting an upload")
                    results.append(IngestResult(item.name, REJECTED, f"unreadable file ({type(error).__name__})"))
                else:
                    if accepted.sha256 in seen_sha256:
                        why = f"same file as {seen_sha256[accepted.sha256]} in this upload"
                        results.append(IngestResult(item.name, DUPLICATE, why))
                    elif accepted.sop_instance_uid in seen_sop_instance_uid:
                        why = (
                            f"same SOPInstanceUID as {seen_sop_instance_uid[accepted.sop_instance_uid]} in this upload"
                        )
                        results.append(IngestResult(item.name, DUPLICATE, why))
                    else:
                        seen_sha256[accepted.sha256] = seen_sop_instance_uid[accepted.sop_instance_uid] = item.name
                        writes.append(writer.submit(store.blobs.put, accepted.data, accepted.sha256, sync_folder=False))
                        slots.append(len(results))
                        results.append(None)
                        chunk.append(accepted)
                        if len(chunk) >= chunk_size:
                            flush()
            if progress is not None:
                progress(len(results), item.file if isinstance(item, IngestResult) else item.name)
        flush()
    return [result for result in results if result is not None]


def ingest_paths(store: Store, actor: Actor, paths: Iterable[Path], **kwargs: object) -> list[IngestResult]:
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
    return missing + ingest_files(store, actor, walk(), **kwargs)  # type: ignore[arg-type]
