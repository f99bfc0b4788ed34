"""A store the size of a real reading project, for timing the reading pages and services.

    .venv/bin/python bench/reading_store.py --data-dir /tmp/reading-store [--images 20000] [--ct-slices 500]

Builds (or reuses, when a store was already built there with the same parameters) a store under
``--data-dir``:

- ``images`` distinct small grayscale PNGs (256 x 256, 8-bit: a smooth background, a few random
  shapes, a noise patch and the image's number as a bar code, so no two are the same bytes),
  stored through the real ingest path (``ingest_files``, de-identification on as a user gets it);
- one synthetic CT series of ``ct_slices`` 512 x 512 int16 slices (``bench/ingest.py``'s
  ``write_ct_series``: rescale slope/intercept, window, pixel spacing, image positions, one study
  and series UID, modality CT), ingested the same way;
- an admin account and ``readers`` annotator accounts (``reader1``, ``reader2``, ...);
- reads by the readers on most images (one to all readers per image) with some disagreement, then
  review decisions by the admin (approvals, rejections, reads sent back, adjudications), so the
  Review page has a queue of tens of thousands of reads and thousands of disagreements.

The reads and decisions are written in bulk (see :func:`_write_reads`), the images and accounts
through the services. A marker file records the parameters and what was built; a later call with
the same parameters returns it at once. The passwords are generated per store and kept in the
marker file: this is a throw-away benchmark store, never a real one.
"""

from __future__ import annotations

import argparse
import io
import json
import secrets
import shutil
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image as PILImage
from sqlalchemy import insert, select

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.ingest import write_ct_series
from medreview.config import Settings
from medreview.ingest import InputFile, ingest_files
from medreview.reading.reads import user_id
from medreview.store import Store
from medreview.store.models import Annotation, AuditEvent, FinalLabel, Image, LabelClass, Series, utcnow
from medreview.team.accounts import create_first_admin, create_user
from medreview.team.roles import Actor

MARKER = "reading-store.json"
IMAGE_SIZE = 256
INGEST_CHUNK = 500
# Of the PNG images: the share with at least one read, and how many readers read an image
# (probabilities for 1, 2, 3, ... readers, cut to the readers there are).
READ_SHARE = 0.85
READERS_PER_IMAGE = (0.2, 0.3, 0.5)
TRUE_CLASS_SHARE = {"normal": 0.6, "pneumonia": 0.4}
READER_ACCURACY = 0.8  # chance a reader names the true class; otherwise a random one (which may be it)
# Review decisions by the admin, per read (the rest stay submitted: the reviewer queue) and per
# disagreement (adjudicated).
APPROVED_SHARE, REJECTED_SHARE, RETURNED_SHARE = 0.2, 0.02, 0.03
ADJUDICATED_SHARE = 0.1


def _open(data_dir: Path) -> Store:
    return Store.open(Settings(data_dir=data_dir, database_url=f"sqlite:///{data_dir / 'medreview.db'}"))


# (H, W) float32 pixel coordinates, shared by every generated image.
_GRID_Y, _GRID_X = np.mgrid[:IMAGE_SIZE, :IMAGE_SIZE].astype(np.float32)


def png_image(index: int, rng: np.random.Generator) -> bytes:
    """One distinct 256 x 256 8-bit grayscale PNG (about 13 kB: mostly smooth, so it compresses
    even at the fastest zlib level)."""
    center_y, center_x = rng.uniform(0.3, 0.7, 2) * IMAGE_SIZE
    # (H, W) float32 grey levels 0-255: a radial gradient with two to four bright ellipses.
    pixels = 200.0 - 0.6 * np.hypot(_GRID_Y - center_y, _GRID_X - center_x)
    for _ in range(rng.integers(2, 5)):
        cy, cx = rng.uniform(0, IMAGE_SIZE, 2)
        ry, rx = rng.uniform(8, 48, 2)
        # Only the ellipse's bounding box is touched (a full-image mask per shape doubles the cost).
        top, bottom = int(max(cy - ry, 0)), int(min(cy + ry + 1, IMAGE_SIZE))
        left, right = int(max(cx - rx, 0)), int(min(cx + rx + 1, IMAGE_SIZE))
        box_y, box_x = _GRID_Y[top:bottom, left:right], _GRID_X[top:bottom, left:right]
        inside = ((box_y - cy) / ry) ** 2 + ((box_x - cx) / rx) ** 2 < 1
        pixels[top:bottom, left:right] += rng.uniform(20, 80) * inside
    noise_y, noise_x = rng.integers(0, IMAGE_SIZE - 32, 2)
    pixels[noise_y : noise_y + 32, noise_x : noise_x + 32] += rng.normal(0, 12, (32, 32))
    # The image number as 32 bits along the top rows: no two images share their bytes.
    bits = (index >> np.arange(32)) & 1
    pixels[:4, : 32 * 4] = np.repeat(bits * 255, 4)[None, :]
    buffer = io.BytesIO()
    PILImage.fromarray(np.clip(pixels, 0, 255).astype(np.uint8)).save(buffer, format="PNG", compress_level=1)
    return buffer.getvalue()


def _ingest(store: Store, actor: Actor, files: Iterator[InputFile], total: int, what: str) -> list[int]:
    """Image ids of ``files`` (stored or duplicates), printing progress every chunk."""
    start = time.perf_counter()

    def progress(done: int, _name: str) -> None:
        if done % INGEST_CHUNK == 0 or done == total:
            rate = done / max(time.perf_counter() - start, 1e-9)
            print(f"  {what}: {done}/{total} ingested ({rate:.0f}/s)", flush=True)

    results = ingest_files(store, actor, files, progress=progress, chunk_size=INGEST_CHUNK)
    refused = [result for result in results if result.image_id is None]
    if refused:
        raise RuntimeError(f"{len(refused)} {what} refused, first: {refused[0].file}: {refused[0].reason}")
    return [int(result.image_id) for result in results]  # type: ignore[arg-type]


def _review_status(draw: float) -> str:
    """A read's review state from a uniform draw in [0, 1)."""
    for status, share in (("approved", APPROVED_SHARE), ("rejected", REJECTED_SHARE), ("returned", RETURNED_SHARE)):
        if draw < share:
            return status
        draw -= share
    return "submitted"


def _write_reads(store: Store, image_ids: list[int], readers: list[str], admin: str, seed: int) -> dict[str, int]:
    """Reads of most images by 1..len(readers) readers, with disagreement, then review decisions.

    Written in bulk, not through ``save_read``/``decide``/``adjudicate``: those are one write
    transaction each (with an audit row), 4 ms apiece here, so the ~39,000 reads and ~10,000
    decisions of a 20,000-image store would add over three minutes to the build. The rows are the
    ones the services write (read states, reviewer, final labels of approved agreeing reads and of
    adjudications, a "label.create" audit row per read; the decisions have no audit rows), so every
    page and service reads them as it reads its own.
    """
    rng = np.random.default_rng(seed + 1)
    classes = list(TRUE_CLASS_SHARE)
    readers_per_image = np.array(READERS_PER_IMAGE[: len(readers)])
    readers_per_image /= readers_per_image.sum()
    now = utcnow()
    with store.db.write() as session:
        class_ids = {name: session.scalar(select(LabelClass.id).where(LabelClass.name == name)) for name in classes}
        reader_ids = {name: user_id(session, name) for name in readers}
        admin_id = user_id(session, admin)
        reads: list[dict[str, Any]] = []
        finals: list[dict[str, Any]] = []
        disagreeing = 0
        for image_id in image_ids:
            if rng.random() >= READ_SHARE:
                continue
            truth = classes[rng.choice(len(classes), p=list(TRUE_CLASS_SHARE.values()))]
            count = 1 + int(rng.choice(len(readers_per_image), p=readers_per_image))
            chosen = rng.choice(len(readers), size=count, replace=False)
            labels = [truth if rng.random() < READER_ACCURACY else rng.choice(classes) for _ in chosen]
            statuses = [_review_status(rng.random()) for _ in chosen]
            for reader_index, label, status in zip(chosen, labels, statuses, strict=True):
                reviewed = status != "submitted"
                reads.append(
                    {
                        "image_id": image_id,
                        "reader_id": reader_ids[readers[reader_index]],
                        "label_class_id": class_ids[label],
                        "blind_label_class_id": None,
                        "changed_after_unblinding": False,
                        "labels": [],
                        "boxes": [],
                        "unsure": bool(rng.random() < 0.05),
                        "comment": "",
                        "status": status,
                        "review_comment": "please look again" if status == "returned" else "",
                        "reviewed_by_id": admin_id if reviewed else None,
                        "reviewed_at": now if reviewed else None,
                        "created_at": now,
                        "updated_at": now,
                    }
                )
            # As ``decide`` and ``adjudicate`` do: approving a read whose image's (not rejected)
            # readers agree makes that class final; a disagreement is settled by adjudication.
            standing = {label for label, status in zip(labels, statuses, strict=True) if status != "rejected"}
            final = None
            if len(standing) == 1 and "approved" in statuses:
                final = ("approved", standing.pop())
            elif len(standing) > 1:
                disagreeing += 1
                if rng.random() < ADJUDICATED_SHARE:
                    final = ("adjudicated", truth)
            if final is not None:
                finals.append(
                    {
                        "image_id": image_id,
                        "label_class_id": class_ids[final[1]],
                        "labels": [],
                        "boxes": [],
                        "method": final[0],
                        "decided_by": admin,
                        "comment": "",
                        "decided_at": now,
                    }
                )
        for start in range(0, len(reads), 5000):
            session.execute(insert(Annotation), reads[start : start + 5000])
        if finals:
            session.execute(insert(FinalLabel), finals)
        events = [
            {
                "created_at": now,
                "actor": next(name for name, id_ in reader_ids.items() if id_ == read["reader_id"]),
                "action": "label.create",
                "object_type": "image",
                "object_id": str(read["image_id"]),
                "details": {"bench": True},
            }
            for read in reads
        ]
        for start in range(0, len(events), 5000):
            session.execute(insert(AuditEvent), events[start : start + 5000])
    adjudicated = sum(final["method"] == "adjudicated" for final in finals)
    return {
        "reads": len(reads),
        "submitted": sum(read["status"] == "submitted" for read in reads),
        "open_disagreements": disagreeing - adjudicated,
        "adjudicated": adjudicated,
        "approved_final_labels": len(finals) - adjudicated,
    }


def build_reading_store(
    data_dir: Path, images: int = 20000, ct_slices: int = 500, readers: int = 3, seed: int = 0
) -> dict[str, Any]:
    """Build the benchmark store under ``data_dir`` (or reuse the one built there with the same
    parameters). Returns {"data_dir", "admin": (user, password), "readers": [(user, password),
    ...], "image_count", "ct_series_uid"} and the counts of what was written."""
    if images < 1 or readers < 1 or ct_slices < 0:
        raise ValueError("images and readers must be at least 1, ct_slices at least 0")
    data_dir = Path(data_dir).resolve()
    parameters = {"images": images, "ct_slices": ct_slices, "readers": readers, "seed": seed}
    marker = data_dir / MARKER
    if marker.exists():
        built = json.loads(marker.read_text())
        if built["parameters"] == parameters:
            print(f"reusing the store built in {data_dir}")
            return _result(built)
        print(f"{data_dir} holds a store built with other parameters: rebuilding it")
        shutil.rmtree(data_dir)
    elif data_dir.exists() and any(data_dir.iterdir()):
        raise ValueError(f"{data_dir} is not empty and holds no benchmark store: choose an empty or new folder")

    rng = np.random.default_rng(seed)
    store = _open(data_dir)
    try:
        admin_password = secrets.token_urlsafe(12)
        admin = create_first_admin(store, "admin", admin_password)
        reader_accounts = [(f"reader{n + 1}", secrets.token_urlsafe(12)) for n in range(readers)]
        for name, password in reader_accounts:
            create_user(store, admin, name, password, "annotator")

        print(f"building {images} PNG images and a {ct_slices}-slice CT series in {data_dir}", flush=True)
        image_files = (InputFile(f"bench-{index:06d}.png", png_image(index, rng)) for index in range(images))
        image_ids = _ingest(store, admin, image_files, images, "PNG images")
        ct_series_uid = None
        if ct_slices:
            with tempfile.TemporaryDirectory(prefix="medreview-bench-ct-") as folder:
                paths = write_ct_series(Path(folder), ct_slices)
                slices = (InputFile(path.name, path.read_bytes()) for path in paths)
                [first_slice, *_] = _ingest(store, admin, slices, ct_slices, "CT slices")
            with store.db.read() as session:
                ct_series_uid = session.scalar(
                    select(Series.series_uid).join(Image, Image.series_id == Series.id).where(Image.id == first_slice)
                )
        print("writing reads and review decisions", flush=True)
        counts = _write_reads(store, image_ids, [name for name, _ in reader_accounts], admin.username, seed)
    finally:
        store.close()
    built = {
        "parameters": parameters,
        "data_dir": str(data_dir),
        "admin": ["admin", admin_password],
        "readers": reader_accounts,
        "image_count": images + ct_slices,
        "ct_series_uid": ct_series_uid,
        "counts": counts,
    }
    marker.write_text(json.dumps(built, indent=2))
    return _result(built)


def _result(built: dict[str, Any]) -> dict[str, Any]:
    return {
        "data_dir": Path(built["data_dir"]),
        "admin": tuple(built["admin"]),
        "readers": [tuple(account) for account in built["readers"]],
        "image_count": built["image_count"],
        "ct_series_uid": built["ct_series_uid"],
        "counts": built["counts"],
    }


def time_review_page(built: dict[str, Any], runs: int = 5) -> dict[str, dict[str, float]]:
    """Seconds the Review page takes on the server, signed in as the admin, per section: the page
    script run by Streamlit's AppTest against the built store (the first run, with its imports and
    the opening of the store, and the fastest and median of ``runs`` reruns, with the median CPU
    time).

    AppTest runs the script as the server does, without the browser: this is the server's share of
    opening the page. The sections are chosen as a user would, through the page's own widgets."""
    import os
    import statistics

    from streamlit.runtime.pages_manager import PagesManager
    from streamlit.testing.v1 import AppTest

    from medreview.team.accounts import LoginSession

    os.environ["MEDREVIEW_DATA_DIR"] = str(built["data_dir"])
    os.environ.pop("MEDREVIEW_DATABASE_URL", None)
    # AppTest resets the legacy `pages/` discovery flag before each run; a server leaves that mode
    # on its first request (ui.session.leave_legacy_page_discovery), so each run starts there too.
    original_init = PagesManager.__init__

    def steady_state_init(self, *args, **kwargs):  # type: ignore[no-untyped-def]
        original_init(self, *args, **kwargs)
        PagesManager.uses_pages_directory = False

    PagesManager.__init__ = steady_state_init  # type: ignore[method-assign]
    root = Path(__file__).resolve().parent.parent
    app = AppTest.from_file(str(root / "pages" / "review.py"), default_timeout=600)
    app.session_state["login"] = LoginSession(Actor(built["admin"][0], "admin"), utcnow())
    timings: dict[str, dict[str, float]] = {}

    def timed_run() -> tuple[float, float]:
        """(wall seconds, CPU seconds of this process) of one run of the page. The CPU time
        says what the page costs when the machine is shared and the wall time is not its own."""
        wall, cpu = time.perf_counter(), time.process_time()
        app.run()
        return time.perf_counter() - wall, time.process_time() - cpu

    first_wall, first_cpu = timed_run()
    sections = ["queue"]
    if len(app.button_group):  # a page with sections as a segmented control (st.tabs has no choice)
        sections += ["disagreements", "agreement"]
    for section in sections:
        if section != "queue":
            app.button_group(key="review_section").set_value(section).run()
        walls, cpus = zip(*(timed_run() for _ in range(runs)), strict=True)
        if app.exception:
            raise RuntimeError(f"the Review page failed: {app.exception[0].message}")
        timings[section] = {"fastest": min(walls), "median": statistics.median(walls), "cpu": statistics.median(cpus)}
    timings["first run"] = {"fastest": first_wall, "median": first_wall, "cpu": first_cpu}
    return timings


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data-dir", type=Path, required=True, help="where the store is built (or reused)")
    parser.add_argument("--images", type=int, default=20000, help="PNG images (default 20000)")
    parser.add_argument("--ct-slices", type=int, default=500, help="slices of the CT series (default 500)")
    parser.add_argument("--readers", type=int, default=3, help="annotator accounts (default 3)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--time-review", action="store_true", help="then time the Review page on the store")
    arguments = parser.parse_args()
    start = time.perf_counter()
    built = build_reading_store(
        arguments.data_dir, arguments.images, arguments.ct_slices, arguments.readers, arguments.seed
    )
    seconds = time.perf_counter() - start
    print(json.dumps({**built, "data_dir": str(built["data_dir"])}, indent=2))
    print(f"done in {seconds:.1f} s")
    if arguments.time_review:
        for section, timing in time_review_page(built).items():
            print(
                f"Review page, {section}: fastest {timing['fastest']:.3f} s, median {timing['median']:.3f} s "
                f"(median CPU {timing['cpu']:.3f} s)"
            )


if __name__ == "__main__":
    main()
