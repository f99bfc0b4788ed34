"""8 concurrent writers (4 threads in this process, 4 other processes), 200 label writes each, on
SQLite and on PostgreSQL: no write lost, no "database is locked" (or any other error)."""

from __future__ import annotations

import json
import subprocess
import sys
import threading
import traceback
from pathlib import Path

import pytest
from sqlalchemy import func, select

from medreview.config import Settings
from medreview.ingest import InputFile, ingest_files
from medreview.reading.reads import LOCAL_ACTOR, reads_table, save_read
from medreview.store import Store
from medreview.store.models import AuditEvent, User
from medreview.team.roles import Actor
from tests.helpers import ROOT, png_bytes

WRITERS = 8
WRITES = 200
IMAGES = 50
CLASSES = ("normal", "pneumonia")


def label_for(writer: int, write: int) -> str:
    # Each writer passes over the images 4 times, flipping its label every pass.
    return CLASSES[(write // IMAGES + writer) % 2]


def write_labels(settings: Settings, writer: int, image_ids: list[int]) -> str:
    """Runs in a thread or a separate process; returns "" or the error it hit."""
    store = Store.open(settings)
    try:
        actor = Actor(f"writer{writer}", "annotator")
        for write in range(WRITES):
            save_read(store, actor, image_ids[write % IMAGES], label_for(writer, write))
        return ""
    except Exception:
        return traceback.format_exc()
    finally:
        store.close()


def test_eight_concurrent_writers_lose_no_write(any_store):
    settings = any_store.settings
    with any_store.db.write() as session:
        for writer in range(WRITERS):
            session.add(User(username=f"writer{writer}", role="annotator", password_hash="unused"))
    image_ids = [
        r.image_id
        for r in ingest_files(
            any_store, LOCAL_ACTOR, [InputFile(f"{i}.png", png_bytes(500 + i)) for i in range(IMAGES)]
        )
    ]

    errors: list[str] = []
    threads = [
        threading.Thread(target=lambda w=writer: errors.append(write_labels(settings, w, image_ids)))
        for writer in range(WRITERS // 2)
    ]
    # Separate interpreters, started as plain subprocesses (multiprocessing's spawn would re-run
    # whatever script AppTest last left as __main__ in this process).
    job = json.dumps(
        {"data_dir": str(settings.data_dir), "database_url": settings.database_url, "image_ids": image_ids}
    )
    processes = [
        subprocess.Popen(
            [sys.executable, "-m", "tests.store.test_concurrency", str(writer)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            cwd=ROOT,
        )
        for writer in range(WRITERS // 2, WRITERS)
    ]
    for process in processes:
        process.stdin.write(job)
        process.stdin.close()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    for process in processes:
        output = process.stdout.read()
        assert process.wait(timeout=600) == 0, output
        errors.append(output.strip())
    assert [error for error in errors if error] == []

    reads = reads_table(any_store, LOCAL_ACTOR)
    assert len(reads) == WRITERS * IMAGES
    for writer in range(WRITERS):
        mine = reads[reads["reader"] == f"writer{writer}"]
        # The last pass wins for every image: no lost or out-of-order update.
        assert set(mine["label"]) == {label_for(writer, WRITES - 1)}
        assert len(mine) == IMAGES
    with any_store.db.read() as session:
        events = session.scalar(
            select(func.count(AuditEvent.id)).where(AuditEvent.action.in_(("label.create", "label.change")))
        )
    assert events == WRITERS * WRITES  # every write was audited, none lost there either


def test_settings_are_picklable_for_worker_processes(tmp_path: Path):
    # The writers above receive Settings in another process; a change that breaks pickling
    # would otherwise show up only as an obscure pool error.
    import pickle

    settings = Settings(data_dir=tmp_path, database_url=f"sqlite:///{tmp_path / 'x.db'}")
    assert pickle.loads(pickle.dumps(settings)) == settings


pytestmark = [pytest.mark.timeout(900), pytest.mark.slow]


if __name__ == "__main__":
    # A writer process: job as JSON on stdin, writer number as the argument; prints any error.
    job = json.loads(sys.stdin.read())
    settings = Settings(data_dir=Path(job["data_dir"]), database_url=job["database_url"])
    print(write_labels(settings, int(sys.argv[1]), job["image_ids"]), end="")
