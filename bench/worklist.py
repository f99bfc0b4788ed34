"""The Label page's worklist on a store the size of a real project: search, sort and thumbnails.

    .venv/bin/python bench/worklist.py --data-dir /tmp/reading-store [--images 20000] [--ct-slices 500]
                                       [--runs 7] [--json PATH|-]

Builds (or reuses) the benchmark store of ``bench/reading_store.py`` and times, for the reader with
the most left to do, what one run of the Label page's worklist asks of the database for a page of
50 rows in the middle of the list, under each order with and without a search:

- ``list_ms``: the worklist fragment's queries: the counts of the caption, the position of the image
  on screen (which page to show) and the page of 50 rows;
- ``next_ms``: the viewer's query after a key: the 12 images after the one on screen;
- ``thumbnails_ms``: the page's thumbnails read from the cache (never decoded), when none have been
  made yet and when all have.

Then it makes the 50 thumbnails the way the page's background maker does and reports the time per
thumbnail. Each figure is the median of ``--runs`` runs. Target: ``list_ms`` <= 150 and
``next_ms`` <= 50 for every order and search (the page stays responsive, the viewer's next image is
not held up), ``thumbnails_ms`` <= 20.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.reading_store import _open, build_reading_store
from medreview.reading.thumbnails import make_thumbnail, stored_thumbnails, thumbnail_path
from medreview.reading.worklists import (
    WORKLIST_SORTS,
    WorklistFilter,
    following_image_ids,
    list_position,
    worklist_counts,
    worklist_page,
)
from medreview.store.models import Image
from medreview.team.roles import Actor

PAGE_ROWS = 50
PREFETCH_IMAGES = 12
# Searches a reader types: one word found in most file names and patient keys (every image is
# looked at, none excluded early), and two words (modality and a year) that must both be found.
SEARCHES = ("", "raster", "OT 2026")


def median_ms(action: Callable[[], Any], runs: int) -> float:
    action()  # warm the caches as a reader's second look does
    times = []
    for _ in range(runs):
        started = time.perf_counter()
        action()
        times.append((time.perf_counter() - started) * 1000)
    return round(statistics.median(times), 1)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data-dir", type=Path, required=True, help="the benchmark store (built when missing)")
    parser.add_argument("--images", type=int, default=20000, help="PNG images in the store (default 20000)")
    parser.add_argument("--ct-slices", type=int, default=500, help="slices of the CT series (default 500)")
    parser.add_argument("--runs", type=int, default=7)
    parser.add_argument("--json", metavar="PATH", help="write the figures as one JSON object ('-': stdout)")
    args = parser.parse_args()
    built = build_reading_store(args.data_dir, images=args.images, ct_slices=args.ct_slices)
    store = _open(args.data_dir)
    readers = [Actor(name, "annotator") for name, _ in built["readers"]]
    reader = max(readers, key=lambda actor: worklist_counts(store, actor)["todo"])
    figures: dict[str, Any] = {"images": built["image_count"], "reader": reader.username, "orders": {}}
    print(f"{built['image_count']} images; {reader.username}'s worklist; median of {args.runs} runs, ms")
    print(f"{'order':<12} {'search':<10} {'rows':>6} {'list_ms':>8} {'next_ms':>8}")
    page_ids: list[int] = []
    for sort in WORKLIST_SORTS:
        for search in SEARCHES:
            shown = WorklistFilter("todo", search=search, sort=sort)
            total = worklist_counts(store, reader, shown)["todo"]
            offset = max(0, (total // 2) // PAGE_ROWS * PAGE_ROWS)  # the middle page
            middle, _ = worklist_page(store, reader, shown, offset, PAGE_ROWS)
            on_screen = int(middle["image_id"].iloc[len(middle) // 2])
            page_ids = page_ids or [int(image_id) for image_id in middle["image_id"]]

            def worklist_run(shown: WorklistFilter = shown, on_screen: int = on_screen, offset: int = offset) -> None:
                total = worklist_counts(store, reader, shown)["todo"]
                list_position(store, reader, shown, on_screen)
                worklist_page(store, reader, shown, offset, PAGE_ROWS, total=total)

            list_ms = median_ms(worklist_run, args.runs)
            next_ms = median_ms(
                lambda shown=shown, on_screen=on_screen: following_image_ids(
                    store, reader, shown, on_screen, PREFETCH_IMAGES
                ),
                args.runs,
            )
            figures["orders"][f"{sort}|{search}"] = {"rows": total, "list_ms": list_ms, "next_ms": next_ms}
            print(f"{sort:<12} {search or '-':<10} {total:>6} {list_ms:>8} {next_ms:>8}")
    with store.db.read() as session:
        hashes = [session.get(Image, image_id).sha256 for image_id in page_ids]
    for sha256 in hashes:  # start from none made
        thumbnail_path(store, sha256).unlink(missing_ok=True)
    figures["thumbnails_missing_ms"] = median_ms(lambda: stored_thumbnails(store, page_ids), args.runs)
    started = time.perf_counter()
    for image_id in page_ids:
        make_thumbnail(store, image_id)
    figures["thumbnail_make_ms"] = round((time.perf_counter() - started) * 1000 / len(page_ids), 1)
    figures["thumbnails_ms"] = median_ms(lambda: stored_thumbnails(store, page_ids), args.runs)
    print(
        f"thumbnails of a page of {len(page_ids)}: read {figures['thumbnails_ms']} ms "
        f"({figures['thumbnails_missing_ms']} ms with none made); "
        f"made at {figures['thumbnail_make_ms']} ms each in the background"
    )
    worst_list = max(entry["list_ms"] for entry in figures["orders"].values())
    worst_next = max(entry["next_ms"] for entry in figures["orders"].values())
    met = worst_list <= 150 and worst_next <= 50 and figures["thumbnails_ms"] <= 20
    figures.update(worst_list_ms=worst_list, worst_next_ms=worst_next, targets_met=met)
    print(
        f"worst list {worst_list} ms (target 150), worst next {worst_next} ms (target 50): {'met' if met else 'MISSED'}"
    )
    if args.json:
        text = json.dumps(figures, indent=2)
        if args.json == "-":
            print(text)
        else:
            Path(args.json).write_text(text + "\n")


if __name__ == "__main__":
    main()
