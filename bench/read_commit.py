"""What a saved read costs on the server with SQLite ``synchronous=NORMAL`` and ``FULL``: the part of
the Label viewer's key -> read committed time that the setting changes.

    .venv/bin/python bench/read_commit.py [--reads 400] [--data-dir DIR] [--json PATH|-]

A class key in the viewer shows the next image at once and sends the read to the server in the
background; the server saves it with ``ui.viewer.save_pending_reads``, which calls
:func:`medreview.reading.catalog.get_image` (the reader's stored boxes, kept by a class key) and
:func:`medreview.reading.reads.save_read` (one ``BEGIN IMMEDIATE`` write transaction: the read and its
audit event), then acknowledges it. This bench times exactly those two calls, per read, on two
stores built the same way in the same run:

- ``FULL``: the store as medreview opens it (``medreview/store/db.py`` sets ``synchronous=FULL`` on
  every connection: each commit syncs the WAL to disk before the read is acknowledged);
- ``NORMAL``: the same, with a connection hook of this bench's that sets ``synchronous=NORMAL``
  after medreview's own (the setting before; a commit reaches the disk only at a checkpoint).

Each store holds ``--reads`` PNG images (ingested through ``ingest_files``, de-identification on) and
one annotator; the reader saves one read per image, key after key. The two stores take turns read
by read (the order alternating), so a busy machine slows both alike. The pragma in force is read
back from every store before timing. The stores live in a fresh folder under ``--data-dir``
(default ``data/bench``, git-ignored), on the disk a real store would use: a RAM-backed folder
(tmpfs) makes a sync free and the comparison meaningless, and is refused. The folder is deleted
afterwards.

Printed: p50 / p95 / max in milliseconds per mode and the FULL / NORMAL ratio of each. The browser
half of key -> read committed (the websocket round trip and the rerun that carries the read) is
the same in both modes: ``bench/reading.py`` measures the viewer in the browser.
"""

from __future__ import annotations

import argparse
import json
import secrets
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
from sqlalchemy import event

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.reading_store import png_image  # noqa: E402
from medreview.config import Settings  # noqa: E402
from medreview.ingest import InputFile, ingest_files  # noqa: E402
from medreview.reading.catalog import get_image  # noqa: E402
from medreview.reading.reads import LOCAL_ACTOR, save_read  # noqa: E402
from medreview.store import Store  # noqa: E402
from medreview.team.accounts import create_first_admin, create_user  # noqa: E402
from medreview.team.roles import Actor  # noqa: E402

MODES = ("NORMAL", "FULL")
# PRAGMA synchronous reads back as a number.
PRAGMA_VALUES = {"NORMAL": 1, "FULL": 2}
WARM_UP_READS = 10  # not timed: first-call costs (imports, statement caches, the file cache)
READER = Actor("reader1", "annotator")


def filesystem_type(folder: Path) -> str:
    """The type of the file system holding ``folder`` (the longest matching mount point)."""
    best, kind = "", "unknown"
    resolved = str(folder.resolve())
    with open("/proc/mounts", encoding="utf-8") as mounts:
        for line in mounts:
            fields = line.split()
            mount_point, mount_kind = fields[1], fields[2]
            inside = resolved == mount_point or resolved.startswith(mount_point.rstrip("/") + "/")
            if inside and len(mount_point) > len(best):
                best, kind = mount_point, mount_kind
    return kind


def build_store(folder: Path, mode: str, images: int) -> tuple[Store, list[int]]:
    """A store with ``images`` PNGs and one annotator, every connection at ``synchronous=mode``."""
    store = Store.open(Settings(data_dir=folder, database_url=f"sqlite:///{folder / 'medreview.db'}"))
    if mode != "FULL":
        # Runs after medreview's own connect hook (hooks run in the order they were added).
        @event.listens_for(store.db.engine, "connect")
        def _synchronous(dbapi_connection, _record) -> None:  # type: ignore[no-untyped-def]
            dbapi_connection.execute(f"PRAGMA synchronous={mode}")

        store.db.engine.dispose()  # connections opened before the hook reconnect with it
    rng = np.random.default_rng(0)
    files = [InputFile(f"bench-{number:05d}.png", png_image(number, rng)) for number in range(images)]
    image_ids = [result.image_id for result in ingest_files(store, LOCAL_ACTOR, files) if result.image_id]
    admin = create_first_admin(store, "admin", secrets.token_urlsafe(16))
    create_user(store, admin, READER.username, secrets.token_urlsafe(16), READER.role)
    with store.db.engine.connect() as connection:
        in_force = connection.exec_driver_sql("PRAGMA synchronous").scalar()
    if in_force != PRAGMA_VALUES[mode]:
        raise SystemExit(f"{mode} store runs synchronous={in_force}, not {PRAGMA_VALUES[mode]}")
    return store, image_ids


def save_like_the_viewer(store: Store, image_id: int, label: str) -> float:
    """Seconds to save one read as ``ui.viewer.save_pending_reads`` does for a class key."""
    started = time.perf_counter()
    boxes = [dict(box) for box in get_image(store, READER, image_id).boxes]
    save_read(store, READER, image_id, label, boxes=boxes, unsure=False, comment=None, seconds_on_case=1.5)
    return time.perf_counter() - started


def percentile(values: list[float], fraction: float) -> float:
    """Nearest-rank percentile of ``values`` (seconds)."""
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(fraction * len(ordered)) - 1))]


def run(reads: int, data_dir: Path) -> dict[str, Any]:
    data_dir.mkdir(parents=True, exist_ok=True)
    kind = filesystem_type(data_dir)
    if kind in ("tmpfs", "ramfs"):
        raise SystemExit(f"{data_dir} is on {kind}: a sync costs nothing there; give --data-dir on a disk")
    folder = Path(tempfile.mkdtemp(prefix="read-commit-", dir=data_dir))
    stores: dict[str, Store] = {}
    try:
        image_ids: dict[str, list[int]] = {}
        for mode in MODES:
            stores[mode], image_ids[mode] = build_store(folder / mode.lower(), mode, reads + WARM_UP_READS)
        seconds: dict[str, list[float]] = {mode: [] for mode in MODES}
        for number in range(reads + WARM_UP_READS):
            order = MODES if number % 2 == 0 else MODES[::-1]
            for mode in order:
                label = ("normal", "pneumonia")[number % 2]
                elapsed = save_like_the_viewer(stores[mode], image_ids[mode][number], label)
                if number >= WARM_UP_READS:
                    seconds[mode].append(elapsed)
    finally:
        for store in stores.values():
            store.close()
        shutil.rmtree(folder, ignore_errors=True)
    figures: dict[str, Any] = {"reads": reads, "filesystem": kind}
    for mode in MODES:
        figures[mode] = {
            "p50_ms": statistics.median(seconds[mode]) * 1000,
            "p95_ms": percentile(seconds[mode], 0.95) * 1000,
            "max_ms": max(seconds[mode]) * 1000,
        }
    figures["full_over_normal"] = {
        name: figures["FULL"][name] / figures["NORMAL"][name] for name in ("p50_ms", "p95_ms", "max_ms")
    }
    return figures


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--reads", type=int, default=400, help="reads timed per mode")
    parser.add_argument("--data-dir", type=Path, default=ROOT / "data" / "bench", help="folder for the stores")
    parser.add_argument("--json", help="also write the figures as JSON to this file (- for stdout)")
    arguments = parser.parse_args()
    figures = run(arguments.reads, arguments.data_dir)
    print(f"{figures['reads']} reads per mode, saved as the viewer saves them, on {figures['filesystem']}")
    for mode in MODES:
        row = figures[mode]
        print(
            f"synchronous={mode:<6}  p50 {row['p50_ms']:7.2f} ms  p95 {row['p95_ms']:7.2f} ms  "
            f"max {row['max_ms']:7.2f} ms"
        )
    ratio = figures["full_over_normal"]
    print(
        f"FULL / NORMAL        p50 {ratio['p50_ms']:7.2f} x   p95 {ratio['p95_ms']:7.2f} x   "
        f"max {ratio['max_ms']:7.2f} x"
    )
    if arguments.json:
        text = json.dumps(figures, indent=1)
        if arguments.json == "-":
            print(text)
        else:
            Path(arguments.json).write_text(text + "\n", encoding="utf-8")


if __name__ == "__main__":
    main()
