"""The batched ingest path keeps its guarantees: per-chunk duplicate checks and hierarchy lookups,
blobs written by a thread pool and made durable before the rows are committed, and the
``MEDREVIEW_MAX_*`` limits read from the environment."""

from __future__ import annotations

import errno
import os
import threading
from pathlib import Path

import pytest
from sqlalchemy import event, func, select

from medreview.config import IngestLimits, get_settings
from medreview.ingest import IngestResult, InputFile, ingest_files
from medreview.ingest.pseudonyms import project_secret
from medreview.reading.reads import LOCAL_ACTOR
from medreview.store import Store, blobs
from medreview.store.blobs import BlobStore, atomic_write
from medreview.store.models import Image, Patient, Series, Study
from medreview.team.settings import set_setting
from tests.helpers import dicom_bytes, png_bytes

STUDY_UID, SERIES_UID = "1.2.826.0.1.3680043.8.498.70", "1.2.826.0.1.3680043.8.498.71"


def slice_bytes(number: int, sop_instance_uid: str | None = None, patient_id: str = "PAT-1") -> bytes:
    return dicom_bytes(
        patient_id,
        sop_instance_uid=sop_instance_uid or f"1.2.826.0.1.3680043.8.498.72.{number}",
        study_uid=STUDY_UID,
        series_uid=SERIES_UID,
        instance_number=number,
    )


def count(store: Store, model: type) -> int:
    with store.db.read() as session:
        return session.scalar(select(func.count()).select_from(model))


def files_on_disk(store: Store) -> list[Path]:
    return sorted(path for path in store.settings.objects_dir.rglob("*") if path.is_file())


@pytest.mark.parametrize("chunk_size", [50, 2])
def test_a_chunk_mixing_new_files_and_duplicates_gets_one_right_result_per_file(any_store, chunk_size):
    first = slice_bytes(1)
    earlier, earlier_zero = ingest_files(
        any_store, LOCAL_ACTOR, [InputFile("first.dcm", first), InputFile("zero.dcm", slice_bytes(0))]
    )
    assert [earlier.status, earlier_zero.status] == ["stored", "stored"]
    # Same SOPInstanceUID as zero.dcm, other bytes (another patient name).
    zero_relabelled = slice_bytes(0, patient_id="PAT-1-renamed")
    second, picture = slice_bytes(2), png_bytes(7)
    # Same SOPInstanceUID as second.dcm, other bytes: a duplicate within this upload.
    second_relabelled = slice_bytes(2, patient_id="PAT-1-renamed")
    batch = [
        InputFile("second.dcm", second),
        InputFile("first-again.dcm", first),
        InputFile("third.dcm", slice_bytes(3)),
        InputFile("second-relabelled.dcm", second_relabelled),
        InputFile("picture.png", picture),
        InputFile("zero-relabelled.dcm", zero_relabelled),
        InputFile("second-again.dcm", second),
        InputFile("picture-again.png", picture),
        InputFile("fourth.dcm", slice_bytes(4)),
    ]
    results = ingest_files(any_store, LOCAL_ACTOR, batch, chunk_size=chunk_size)

    assert [result.file for result in results] == [item.name for item in batch]
    statuses = {result.file: result.status for result in results}
    assert statuses == {
        "second.dcm": "stored",
        "first-again.dcm": "duplicate",
        "third.dcm": "stored",
        "second-relabelled.dcm": "duplicate",
        "picture.png": "stored",
        "zero-relabelled.dcm": "duplicate",
        "second-again.dcm": "duplicate",
        "picture-again.png": "duplicate",
        "fourth.dcm": "stored",
    }
    by_name = {result.file: result for result in results}
    with any_store.db.read() as session:
        shown_first = session.get(Image, earlier.image_id).display_name
        shown_zero = session.get(Image, earlier_zero.image_id).display_name
    # A file stored by an earlier upload is named by its display name (the upload name is hidden);
    # files of this same upload by the names the uploader gave them.
    assert by_name["first-again.dcm"].image_id == earlier.image_id
    assert "same file" in by_name["first-again.dcm"].reason and shown_first in by_name["first-again.dcm"].reason
    assert by_name["zero-relabelled.dcm"].image_id == earlier_zero.image_id
    assert (
        "SOPInstanceUID" in by_name["zero-relabelled.dcm"].reason
        and shown_zero in by_name["zero-relabelled.dcm"].reason
    )
    assert "SOPInstanceUID" in by_name["second-relabelled.dcm"].reason
    assert "second.dcm" in by_name["second-relabelled.dcm"].reason
    assert "second.dcm" in by_name["second-again.dcm"].reason
    stored_ids = [result.image_id for result in results if result.status == "stored"]
    assert len(set(stored_ids)) == 4 and None not in stored_ids
    assert not set(stored_ids) & {earlier.image_id, earlier_zero.image_id}

    # One patient/study/series for the five slices (the first rows reused), one each for the PNG.
    assert count(any_store, Image) == 6
    assert count(any_store, Patient) == count(any_store, Study) == count(any_store, Series) == 2
    with any_store.db.read() as session:
        images = session.scalars(select(Image)).all()
        assert len({image.series_id for image in images if image.media_type == "dicom"}) == 1
        stored = {image.sha256 for image in images}
    # Every row has its file. Duplicates found within the upload never reach the blob store; the
    # blob of zero-relabelled.dcm (other bytes, found a duplicate only by the database) is an
    # orphan until collected.
    on_disk = {path.name for path in files_on_disk(any_store)}
    assert stored <= on_disk and len(on_disk - stored) == 1
    assert any_store.collect_orphans(min_age_seconds=0) == 1
    assert {path.name for path in files_on_disk(any_store)} == stored


def test_a_failed_blob_write_rejects_that_file_and_leaves_no_row(any_store, monkeypatch):
    set_setting(any_store, LOCAL_ACTOR, "deidentify", False)  # the blob is then the upload itself
    doomed = png_bytes(31)
    put = any_store.blobs.put

    def put_or_fail(data: bytes, sha256: str | None = None, **options: object) -> str:
        if data == doomed:
            raise OSError(errno.ENOSPC, "No space left on device")
        return put(data, sha256, **options)

    monkeypatch.setattr(any_store.blobs, "put", put_or_fail)
    results = ingest_files(
        any_store,
        LOCAL_ACTOR,
        [InputFile("a.png", png_bytes(30)), InputFile("doomed.png", doomed), InputFile("c.dcm", slice_bytes(1))],
    )
    assert [result.status for result in results] == ["stored", "rejected", "stored"]
    assert "No space left on device" in results[1].reason and results[1].image_id is None
    with any_store.db.read() as session:
        names = set(session.scalars(select(Image.display_name)))
    assert names == {"a.png", "c.dcm"}
    assert len(files_on_disk(any_store)) == 2


def test_a_failed_folder_sync_commits_nothing_of_the_chunk(store, monkeypatch):
    def failing_sync(sha256s: object) -> None:
        raise OSError(errno.EIO, "Input/output error")

    monkeypatch.setattr(store.blobs, "sync_folders", failing_sync)
    results = ingest_files(store, LOCAL_ACTOR, [InputFile("a.png", png_bytes(40)), InputFile("b.dcm", slice_bytes(1))])
    assert [result.status for result in results] == ["rejected", "rejected"]
    assert all("Input/output error" in result.reason for result in results)
    assert count(store, Image) == 0


def test_blob_folders_are_synced_before_the_rows_are_committed(store, monkeypatch):
    events: list[str] = []
    fsync_folder = blobs.fsync_folder

    def recording_fsync_folder(folder: Path) -> None:
        events.append(f"sync {folder}")
        fsync_folder(folder)

    monkeypatch.setattr(blobs, "fsync_folder", recording_fsync_folder)
    event.listen(store.db.engine, "commit", lambda connection: events.append("commit"))
    results = ingest_files(
        store, LOCAL_ACTOR, [InputFile(f"{number}.dcm", slice_bytes(number)) for number in range(1, 6)]
    )
    assert [result.status for result in results] == ["stored"] * 5

    first_commit = events.index("commit")
    synced_before_commit = set(events[:first_commit])
    for path in files_on_disk(store):
        assert f"sync {path.parent}" in synced_before_commit
    assert f"sync {store.blobs.root}" in synced_before_commit


def test_atomic_write_leaves_nothing_when_fsync_fails(tmp_path, monkeypatch):
    def failing_fsync(descriptor: int) -> None:
        raise OSError(errno.EIO, "Input/output error")

    monkeypatch.setattr(blobs.os, "fsync", failing_fsync)
    target = tmp_path / "ab" / "blob"
    with pytest.raises(OSError, match="Input/output error"):
        atomic_write(target, b"half a file must never be visible")
    assert list(target.parent.iterdir()) == []


def test_storing_existing_bytes_again_does_not_rewrite_the_file(tmp_path):
    store = BlobStore(tmp_path)
    digest = store.put(b"same bytes")
    path = store.path_for(digest)
    os.utime(path, (1_000_000, 1_000_000))
    before = os.stat(path)
    store.put(b"same bytes", digest, sync_folder=False)
    after = os.stat(path)
    # The same file (not rewritten), made young again so the orphan sweep leaves it alone.
    assert after.st_ino == before.st_ino and path.read_bytes() == b"same bytes"
    assert after.st_mtime > before.st_mtime


def create_the_deidentification_key(store: Store) -> None:
    # The key is created on first use; these tests are about the rows and blobs of uploads that
    # race, not about racing to create the key (pseudonyms.project_secret's own concern).
    project_secret(store)


def test_concurrent_uploads_of_the_same_study_store_each_file_once(any_store):
    create_the_deidentification_key(any_store)
    files = [InputFile(f"{number}.dcm", slice_bytes(number)) for number in range(1, 13)]
    uploads = 3
    barrier = threading.Barrier(uploads)
    outcomes: list[list[IngestResult]] = []
    errors: list[BaseException] = []

    def upload() -> None:
        try:
            barrier.wait()
            outcomes.append(ingest_files(any_store, LOCAL_ACTOR, files, chunk_size=4))
        except BaseException as error:
            errors.append(error)

    threads = [threading.Thread(target=upload) for _ in range(uploads)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert errors == []
    for position, item in enumerate(files):
        statuses = sorted(results[position].status for results in outcomes)
        assert statuses == ["duplicate"] * (uploads - 1) + ["stored"], item.name
        stored_id = next(results[position].image_id for results in outcomes if results[position].status == "stored")
        # A duplicate found in the database names the image it duplicates.
        assert {results[position].image_id for results in outcomes} == {stored_id}
    assert count(any_store, Image) == len(files)
    assert count(any_store, Patient) == count(any_store, Study) == count(any_store, Series) == 1


@pytest.mark.parametrize("chunk_size", [1, 2])
def test_concurrent_uploads_of_different_slices_of_one_study_are_all_stored(any_store, chunk_size):
    """A lost race for the shared patient/study/series rows is retried, not reported as a duplicate."""
    create_the_deidentification_key(any_store)
    uploads = 3
    batches = [
        [InputFile(f"{upload}-{number}.dcm", slice_bytes(upload * 100 + number)) for number in range(6)]
        for upload in range(uploads)
    ]
    barrier = threading.Barrier(uploads)
    outcomes: list[list[IngestResult]] = []
    errors: list[BaseException] = []

    def upload(batch: list[InputFile]) -> None:
        try:
            barrier.wait()
            outcomes.append(ingest_files(any_store, LOCAL_ACTOR, batch, chunk_size=chunk_size))
        except BaseException as error:
            errors.append(error)

    threads = [threading.Thread(target=upload, args=(batch,)) for batch in batches]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert errors == []
    assert [result.status for results in outcomes for result in results] == ["stored"] * (uploads * 6)
    assert count(any_store, Image) == uploads * 6
    assert count(any_store, Patient) == count(any_store, Study) == count(any_store, Series) == 1


def test_every_ingest_limit_is_read_from_the_environment(monkeypatch):
    values = {
        "MEDREVIEW_MAX_FILE_BYTES": ("max_file_bytes", 1001),
        "MEDREVIEW_MAX_FRAME_PIXELS": ("max_frame_pixels", 1002),
        "MEDREVIEW_MAX_DECODED_BYTES": ("max_decoded_bytes", 1003),
        "MEDREVIEW_MAX_FRAMES": ("max_frames", 7),
        "MEDREVIEW_MAX_ARCHIVE_MEMBERS": ("max_archive_members", 1004),
        "MEDREVIEW_MAX_ARCHIVE_TOTAL_BYTES": ("max_archive_total_bytes", 1005),
        "MEDREVIEW_MAX_COMPRESSION_RATIO": ("max_compression_ratio", 12.5),
        "MEDREVIEW_MAX_ELEMENT_BYTES": ("max_element_bytes", 1006),
    }
    for name, (_, value) in values.items():
        monkeypatch.setenv(name, str(value))
    limits = get_settings().limits
    assert {field: getattr(limits, field) for field, _ in values.values()} == dict(values.values())
    # Every field of IngestLimits has its variable.
    assert {field for field, _ in values.values()} == set(IngestLimits.__dataclass_fields__)


def test_unset_limits_keep_their_defaults_and_a_bad_value_names_its_variable(monkeypatch):
    for name in ("MEDREVIEW_MAX_FRAMES", "MEDREVIEW_MAX_COMPRESSION_RATIO"):
        monkeypatch.delenv(name, raising=False)
    limits = get_settings().limits
    assert (limits.max_frames, limits.max_compression_ratio) == (
        IngestLimits.max_frames,
        IngestLimits.max_compression_ratio,
    )
    monkeypatch.setenv("MEDREVIEW_MAX_COMPRESSION_RATIO", "lots")
    with pytest.raises(ValueError, match="MEDREVIEW_MAX_COMPRESSION_RATIO"):
        get_settings()
