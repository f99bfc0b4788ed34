"""The orphan sweep never leaves a row without its file, even racing an upload of the same bytes."""

from __future__ import annotations

import os
import time

from sqlalchemy import select

from medreview.ingest import InputFile, ingest_files
from medreview.reading.reads import LOCAL_ACTOR
from medreview.store.models import Image
from tests.helpers import png_bytes

HOURS_AGO = time.time() - 2 * 3600


def rows_without_files(store) -> list[str]:
    with store.db.read() as session:
        return [sha for sha in session.scalars(select(Image.sha256)) if not store.blobs.path_for(sha).exists()]


def test_a_blob_left_by_a_crash_and_uploaded_again_survives_the_sweep(any_store, monkeypatch):
    data = [png_bytes(seed) for seed in range(6)]
    # A crash after writing the blobs and before committing their rows, hours ago.
    for item in data:
        os.utime(any_store.blobs.path_for(any_store.blobs.put(item)), (HOURS_AGO, HOURS_AGO))

    # The upload again, with the sweep running between its blob writes and its commit (the worst
    # moment): the upload's writes make the old blobs young, so the sweep leaves them.
    original_sync = any_store.blobs.sync_folders

    def sweep_then_sync(sha256s):
        any_store.collect_orphans()
        original_sync(sha256s)

    monkeypatch.setattr(any_store.blobs, "sync_folders", sweep_then_sync)
    results = ingest_files(any_store, LOCAL_ACTOR, [InputFile(f"{n}.png", item) for n, item in enumerate(data)])
    assert [result.status for result in results] == ["stored"] * 6
    assert rows_without_files(any_store) == []


def test_a_blob_the_sweep_removed_before_the_commit_is_written_again(any_store, monkeypatch):
    data = [png_bytes(seed) for seed in range(10, 14)]

    # Worse: the sweep saw the blobs old (a clock step, a sweep that looked just before the touch)
    # and removed them between the upload's blob writes and its commit.
    original_sync = any_store.blobs.sync_folders

    def age_sweep_then_sync(sha256s):
        sha256s = list(sha256s)
        for sha in sha256s:
            os.utime(any_store.blobs.path_for(sha), (HOURS_AGO, HOURS_AGO))
        assert any_store.collect_orphans() == len(sha256s)
        original_sync(sha256s)

    monkeypatch.setattr(any_store.blobs, "sync_folders", age_sweep_then_sync)
    results = ingest_files(any_store, LOCAL_ACTOR, [InputFile(f"{n}.png", item) for n, item in enumerate(data)])
    assert [result.status for result in results] == ["stored"] * 4
    assert rows_without_files(any_store) == []


def test_the_sweep_removes_old_unreferenced_blobs_only(store):
    kept = ingest_files(store, LOCAL_ACTOR, [InputFile("kept.png", png_bytes(20))])[0]
    orphan = store.blobs.put(png_bytes(21))
    young = store.blobs.put(png_bytes(22))
    with store.db.read() as session:
        kept_sha = session.get(Image, kept.image_id).sha256
    for sha in (kept_sha, orphan):
        os.utime(store.blobs.path_for(sha), (HOURS_AGO, HOURS_AGO))
    assert store.collect_orphans() == 1
    assert store.blobs.path_for(kept_sha).exists() and store.blobs.path_for(young).exists()
    assert not store.blobs.path_for(orphan).exists()


def test_the_worker_sweeps_periodically_not_only_at_start(store, monkeypatch):
    import threading

    from medreview import jobs

    monkeypatch.setattr(jobs, "ORPHAN_SWEEP_INTERVAL", 0.2)
    monkeypatch.setattr(jobs, "HEARTBEAT_INTERVAL", 0.05)
    stop = threading.Event()
    stamper = threading.Thread(target=jobs._stamp_worker, args=(store, stop), daemon=True)
    stamper.start()
    try:
        time.sleep(0.3)  # the sweep at start has run; an orphan appears afterwards
        orphan = store.blobs.put(png_bytes(30))
        os.utime(store.blobs.path_for(orphan), (HOURS_AGO, HOURS_AGO))
        deadline = time.monotonic() + 5
        while store.blobs.path_for(orphan).exists() and time.monotonic() < deadline:
            time.sleep(0.05)
        assert not store.blobs.path_for(orphan).exists()
    finally:
        stop.set()
        stamper.join(timeout=5)
