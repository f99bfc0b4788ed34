"""Reading speed in a real browser: the Label page's viewer and the Review page on a store the size
of a real project.

    .venv/bin/python bench/reading.py --images 20000 [--ct-slices 500] [--json PATH|-] [--port N]
                                      [--data-dir DIR] [--cases [--cases-only] [--case-data-dir DIR]
                                      [--viewport-studies 10] [--viewport-slices 100]]

1. Builds (or reuses) the benchmark store with ``bench/reading_store.py``: ``--images`` PNG images,
   one ``--ct-slices``-slice 512 x 512 CT series, an admin and three readers with reads and review
   decisions. Default folder: data/bench/reading-<images> (git-ignored).
2. Starts ``python -m medreview serve --headless`` on that store and drives Debian's Chromium
   (headless, software rendering) with Playwright.
3. Measures, with the ``performance.mark`` entries the viewer (ui/viewer/src/marks.ts) sets:
   ``medreview:paint`` on every paint, ``medreview:key`` when a class key is accepted. The viewer
   clears its marks once 256 are held, so the bench keeps them as they are made, with a
   PerformanceObserver installed in each page before its scripts run.

   - ``first_image_ms``: a reader signed in on Home clicks Label; from the click (``performance.now()``
     taken in the page just before it) to the first paint.
   - ``key_to_next_ms_p50`` / ``_p95``: 50 consecutive class keys, each from its ``medreview:key``
     mark to the first later paint of another image. Before the first key the viewer is given 2 s
     to fetch the next images, as a reader looking at the first image gives it; between keys the
     bench waits 0.25 s after the paint (the viewer refuses a key within 0.12 s of a paint), which
     is not part of the time measured.
   - ``window_drag_fps``: the Label filters set to All and CT, the series' first slice painted and
     2 s of prefetch, a 2 s left-button drag on the canvas (120 moves, 60 a second, as a mouse
     reports them): animation frames with a paint, per second. The input rate caps it: each
     Playwright move is a round trip to the browser, and on a loaded machine fewer than 60 a
     second reach the page, so the pointer moves received per second are printed with it, and
     so is the same drag with the moves dispatched in the page (120 a second) for comparison.
   - ``slice_scroll_fps``: then ArrowDown 60 times, 30 a second: slices painted (paints of an image
     other than the one before) per second. The key rate caps it at 30. Also reported: the slice
     the header shows after each press, and the presses after which it showed "Loading…" (pixels
     not in the browser yet) or no slice number at all.
   - ``review_page_ms``: the admin, on Home, clicks Review; from the click to the page's title and
     first table drawn with the app no longer running; the median of three.

Targets: key -> next p95 <= 50 ms, drag >= 30 fps, scroll >= 20 fps, first image <= 1000 ms,
Review <= 500 ms. Each run labels 50 images of the worklist of the reader with the most left to do
(the reads are saved in the store): a later run labels the next 50.

With ``--cases`` (issue 17 item 8) the case figures follow, on a second store (default
data/bench/cases-2000, built or reused with ``bench/case_worklist.py``): 2,000 CT studies of 100
64 x 64 slices (rows written in bulk, a quarter of the patients with a prior, a reader with a third
read) plus ``--viewport-studies`` MR studies of four series (T1, T2, FLAIR, DWI: the MR brain
protocol hangs them 2x2) of ``--viewport-slices`` real 512 x 512 slices sharing a frame of
reference, written with the real ingest path. ``--cases-only`` skips the image-level figures.

   - ``case_worklist_ms``: ``bench/case_worklist.py``'s figure (in Python, not the browser): the
     slowest, over each order, status and search, of the counts, position and page of 50 rows one
     run of the case worklist asks for.
   - ``case_open_ms``: the reader on Label (case mode), the Modality filter on MR; once the app has
     been idle for 1 s, a click on a row of the worklist (rows 3, 5, 7, 9: never the next study,
     which the viewer holds already) to the animation frame at which all four viewports have painted
     the new study's slice; the median. A click that opens nothing within 10 s (lost while a run
     redrew the table) is made again, timed from the second, and counted in the output.
   - ``case_scroll_fps``: the last study opened, 2 s of prefetch, then ArrowDown 60 times, 30 a
     second, with the scroll linked: animation frames at which all four viewports show a new slice
     painted (none Loading…), per second. The key rate caps it at 30.

Case targets: worklist <= 300 ms, open <= 1000 ms, linked scroll >= 20 fps. The case figures label
nothing: a later run measures the same.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import socket
import statistics
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.case_worklist import READER as CASE_READER  # noqa: E402
from bench.case_worklist import add_viewport_studies, build_case_store, time_case_worklist  # noqa: E402
from bench.reading_store import build_reading_store  # noqa: E402
from medreview.config import Settings  # noqa: E402
from medreview.reading.worklists import worklist_counts  # noqa: E402
from medreview.store import Store  # noqa: E402
from medreview.team.roles import Actor  # noqa: E402

CHROMIUM = "/usr/bin/chromium"
KEY_PRESSES = 50
# A reader looks at an image longer than the viewer's bounce guard (0.12 s) before the next key.
SECONDS_BETWEEN_KEYS = 0.25
# Time the viewer is given to fetch what comes next before a measurement starts.
PREFETCH_SECONDS = 2.0
DRAG_SECONDS, DRAG_MOVES = 2.0, 120
SCROLL_PRESSES, SCROLL_KEYS_PER_SECOND = 60, 30
REVIEW_REPEATS = 3
# figure -> (comparison, target, unit)
TARGETS: dict[str, tuple[str, float, str]] = {
    "first_image_ms": ("<=", 1000, "ms"),
    "key_to_next_ms_p50": ("<=", 50, "ms"),
    "key_to_next_ms_p95": ("<=", 50, "ms"),
    "window_drag_fps": (">=", 30, "fps"),
    "slice_scroll_fps": (">=", 20, "fps"),
    "review_page_ms": ("<=", 500, "ms"),
    "case_worklist_ms": ("<=", 300, "ms"),
    "case_open_ms": ("<=", 1000, "ms"),
    "case_scroll_fps": (">=", 20, "fps"),
}
IMAGE_FIGURES = ("first_image_ms", "key_to_next_ms_p50", "key_to_next_ms_p95", "window_drag_fps",
                 "slice_scroll_fps", "review_page_ms")  # fmt: skip
CASE_FIGURES = ("case_worklist_ms", "case_open_ms", "case_scroll_fps")
CASE_READER_PASSWORD = "bench-reader-password"  # bench/case_worklist.py's reader
# Rows of the MR case list clicked for case_open_ms (1-based): never the one after the study on
# screen, which the viewer holds already (it opens at once after a class key).
CASE_OPEN_ROWS = (3, 5, 7, 9)

# In every page, before its scripts: the viewer's marks as they are made, kept in window.__marks
# (the viewer clears its own from the browser's buffer; an observer sees each one, cleared or not).
KEEP_MARKS_JS = """(() => {
    window.__marks = [];
    new PerformanceObserver((list) => {
        for (const entry of list.getEntries()) if (entry.name.startsWith("medreview:")) window.__marks.push(entry);
    }).observe({ type: "mark" });
})();"""

# In the page: the time from each class key to the first later paint of another image (ms).
KEY_TO_NEXT_JS = """async () => {
    await new Promise((resolve) => setTimeout(resolve, 200));  // the observer's last deliveries
    const paints = window.__marks.filter((mark) => mark.name === "medreview:paint");
    return window.__marks.filter((mark) => mark.name === "medreview:key").map((key) => {
        const next = paints.find(
            (paint) => paint.startTime >= key.startTime && paint.detail.imageId !== key.detail.imageId);
        return next ? next.startTime - key.startTime : null;
    });
}"""

# In the page: from each ArrowDown, what the viewer showed at the next animation frame (the
# viewer's own paint is requested in the same frame, earlier). Capture phase on window, as the
# viewer listens, and added after it, so this runs after it has moved to the next slice.
WATCH_SLICE_KEYS_JS = """() => {
    window.__sliceKeys = [];
    window.addEventListener("keydown", (event) => {
        if (event.key !== "ArrowDown" && event.key !== "ArrowUp") return;
        requestAnimationFrame(() => {
            const message = document.querySelector(".mrv-root .mrv-message");
            const slice = document.querySelector(".mrv-root .mrv-slice");
            window.__sliceKeys.push({
                loading: !!message && message.textContent.startsWith("Loading"),
                slice: slice ? Number(slice.textContent) : null,
            });
        });
    }, true);
}"""


# In the page: count the animation frames in which the viewer painted (its running count of
# paints changed since the frame before), and the pointer moves the canvas received, until
# STOP_COUNTING_FRAMES_JS. Paints that land in one frame count once, as the screen shows them once.
COUNT_PAINTED_FRAMES_JS = """() => {
    const root = document.querySelector(".mrv-root");
    const canvas = root.querySelector("canvas.mrv-canvas");
    const counter = { frames: 0, moves: 0, start: performance.now(), end: null, paints: root.dataset.paints };
    counter.onMove = () => { counter.moves += 1; };
    canvas.addEventListener("pointermove", counter.onMove);
    window.__paintedFrames = counter;
    const tick = () => {
        if (root.dataset.paints !== counter.paints) {
            counter.frames += 1;
            counter.paints = root.dataset.paints;
        }
        if (counter.end === null) requestAnimationFrame(tick);
    };
    requestAnimationFrame(tick);
}"""
# In the page: two more frames (the paint the last move asked for is seen), then the counts.
STOP_COUNTING_FRAMES_JS = """() => new Promise((resolve) => requestAnimationFrame(() => requestAnimationFrame(() => {
    const counter = window.__paintedFrames;
    counter.end = performance.now();
    document.querySelector(".mrv-root canvas.mrv-canvas").removeEventListener("pointermove", counter.onMove);
    resolve({ frames: counter.frames, moves: counter.moves, seconds: (counter.end - counter.start) / 1000 });
})))"""
# In the page: pointer moves dispatched on the canvas every 1/120 s for `seconds` (a 120 Hz mouse,
# sawtooth as in the drag through Playwright); a move waits while the page is busy, as a real one
# does. Resolves with the number dispatched.
DISPATCH_MOVES_JS = """([x, y, seconds]) => new Promise((resolve) => {
    const canvas = document.querySelector(".mrv-root canvas.mrv-canvas");
    const start = performance.now();
    let count = 0;
    const move = () => {
        const elapsed = performance.now() - start;
        if (elapsed >= seconds * 1000) return resolve(count);
        count += 1;
        canvas.dispatchEvent(new PointerEvent("pointermove", {
            pointerId: 1, pointerType: "mouse", isPrimary: true, buttons: 1, bubbles: true,
            clientX: x + elapsed / 16, clientY: y + (count % 40) - 20,
        }));
        setTimeout(move, 1000 / 120);
    };
    move();
})"""


# In the page: when the viewer's element first appears (performance.now()).
WATCH_VIEWER_MOUNT_JS = """() => {
    window.__viewerMountedAt = null;
    const observer = new MutationObserver(() => {
        if (document.querySelector(".mrv-root")) {
            window.__viewerMountedAt = performance.now();
            observer.disconnect();
        }
    });
    observer.observe(document.body, { childList: true, subtree: true });
}"""


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@contextmanager
def running_server(data_dir: Path, port: int, log_path: Path) -> Iterator[str]:
    """``python -m medreview serve`` on ``data_dir``; yields its URL, stops it with SIGINT."""
    env = {**os.environ, "MEDREVIEW_DATA_DIR": str(data_dir)}
    env.pop("MEDREVIEW_DATABASE_URL", None)
    env.pop("MEDREVIEW_REDIS_URL", None)
    with log_path.open("w") as log:
        process = subprocess.Popen(
            [sys.executable, "-m", "medreview", "serve", "--headless", "--port", str(port)],
            cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
        )  # fmt: skip
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 90
        while True:
            try:
                if urllib.request.urlopen(f"{url}/_stcore/health", timeout=2).read() == b"ok":
                    break
            except OSError:
                if time.monotonic() > deadline or process.poll() is not None:
                    raise RuntimeError("the server did not become healthy:\n" + log_path.read_text()[-3000:]) from None
                time.sleep(0.5)
        yield url
    finally:
        os.killpg(process.pid, signal.SIGINT)
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)


def reader_with_most_to_do(data_dir: Path, readers: list[tuple[str, str]]) -> tuple[str, str]:
    """The reader account with the most images left on its worklist (each run labels some)."""
    store = Store.open(Settings(data_dir=data_dir, database_url=f"sqlite:///{data_dir / 'medreview.db'}"))
    try:
        to_do = {name: worklist_counts(store, Actor(name, "annotator"))["todo"] for name, _ in readers}
    finally:
        store.close()
    name = max(to_do, key=to_do.__getitem__)
    if to_do[name] <= KEY_PRESSES:
        raise SystemExit(
            f"the readers have {to_do} images left to label, {KEY_PRESSES + 1} are needed: "
            f"delete {data_dir} to build the store again"
        )
    return next(account for account in readers if account[0] == name)


def new_page(browser):  # type: ignore[no-untyped-def]
    """A tab in a fresh browser context (its own cookies: its own Streamlit session)."""
    context = browser.new_context(viewport={"width": 1600, "height": 1000})
    context.add_init_script(KEEP_MARKS_JS)
    page = context.new_page()
    page.set_default_timeout(60_000)
    return page


def sign_in(page, url: str, username: str, password: str) -> None:  # type: ignore[no-untyped-def]
    """Sign in, then load Home afresh: the login cookie resumes the sign-in (or, should it not, the
    form on the fresh page signs in again), so the page measured next starts from a clean load."""
    page.goto(url)
    fill_sign_in_form(page, username, password)
    wait_until_idle(page)
    # The app writes its login cookie from the page, after the run that signed in: give it a moment.
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline and not any(
        not cookie["name"].startswith("_streamlit") for cookie in page.context.cookies()
    ):
        time.sleep(0.1)
    page.goto(url)
    page.get_by_text(f"Signed in as {username}").or_(page.get_by_role("button", name="Log in")).wait_for()
    if not page.get_by_text(f"Signed in as {username}").is_visible():
        print(f"the fresh page load did not resume {username}'s sign-in: signing in on it", flush=True)
        fill_sign_in_form(page, username, password)
    wait_until_idle(page)


def fill_sign_in_form(page, username: str, password: str) -> None:  # type: ignore[no-untyped-def]
    page.get_by_role("button", name="Log in").wait_for()
    wait_until_idle(page)  # a field filled during a rerun can lose its value
    page.get_by_label("User name").fill(username)
    page.locator("input[type=password]").fill(password)
    page.get_by_role("button", name="Log in").click()
    page.get_by_text(f"Signed in as {username}").wait_for()


def wait_until_idle(page) -> None:  # type: ignore[no-untyped-def]
    """Until the app has finished its run (Streamlit's running indicator gone)."""
    page.wait_for_load_state("networkidle")
    page.wait_for_function("() => !document.querySelector('[data-testid=\"stStatusWidget\"]')", timeout=60_000)


def click_timed(page, locator, done_js: str, timeout_ms: int) -> float:  # type: ignore[no-untyped-def]
    """Milliseconds from a click on ``locator`` to the first animation frame at which ``done_js``
    (a JS expression, given ``start``: performance.now() just before the click) holds."""
    locator.wait_for()
    if page.evaluate(f"start => !!({done_js})", page.evaluate("() => performance.now()")):
        raise RuntimeError(f"already true before the click: {done_js}")
    start = locator.evaluate(
        "element => { const start = performance.now(); window.__clickedAt = start; element.click(); return start; }"
    )
    handle = page.wait_for_function(
        f"start => ({done_js}) ? performance.now() : false", arg=start, polling="raf", timeout=timeout_ms
    )
    return float(handle.json_value()) - float(start)


def painted_image(page) -> int | None:  # type: ignore[no-untyped-def]
    value = page.evaluate("() => document.querySelector('.mrv-root')?.dataset.paintedImage ?? null")
    return None if value is None else int(value)


def wait_for_paint_of_another(page, image_id: int | None, timeout_ms: int = 30_000) -> int:  # type: ignore[no-untyped-def]
    page.wait_for_function(
        "previous => { const root = document.querySelector('.mrv-root');"
        " return !!root && root.dataset.paintedImage !== undefined && root.dataset.paintedImage !== previous; }",
        arg=None if image_id is None else str(image_id),
        timeout=timeout_ms,
    )
    return painted_image(page)  # type: ignore[return-value]


def measure_first_image(page) -> tuple[float, float | None]:  # type: ignore[no-untyped-def]
    """Label clicked on Home -> (the first image painted, the viewer's element created) in ms."""
    page.evaluate(WATCH_VIEWER_MOUNT_JS)
    done = "performance.getEntriesByName('medreview:paint').some((paint) => paint.startTime >= start)"
    painted_ms = click_timed(page, page.get_by_role("link", name="Label"), done, timeout_ms=30_000)
    mounted_at, clicked_at = page.evaluate("() => [window.__viewerMountedAt, window.__clickedAt]")
    return painted_ms, None if mounted_at is None else mounted_at - clicked_at


def measure_key_to_next(page, presses: int) -> list[float]:  # type: ignore[no-untyped-def]
    """Class keys on consecutive images; each key -> the next image painted (ms)."""
    time.sleep(PREFETCH_SECONDS)
    page.evaluate("() => { window.__marks = window.__marks.filter((mark) => mark.name !== 'medreview:key'); }")
    image_id = painted_image(page)
    for number in range(presses):
        time.sleep(SECONDS_BETWEEN_KEYS)
        page.keyboard.press(str(1 + number % 2))
        image_id = wait_for_paint_of_another(page, image_id)
    times = page.evaluate(KEY_TO_NEXT_JS)
    if len(times) != presses or None in times:
        raise RuntimeError(f"{presses} keys pressed, the viewer marked {len(times)}: {times}")
    return [float(value) for value in times]


def seconds_until_saved(page) -> float:  # type: ignore[no-untyped-def]
    """Seconds until the viewer says every read it holds is acknowledged by the server."""
    began = time.perf_counter()
    page.locator(".mrv-root .mrv-saved").wait_for(timeout=60_000)
    return time.perf_counter() - began


def open_ct_series(page) -> None:  # type: ignore[no-untyped-def]
    """Show every CT image on the Label worklist and wait for the first slice to be painted."""
    sidebar = page.get_by_test_id("stSidebar")
    # Every image, read or not: the series opens at its first slice however far earlier runs got.
    sidebar.get_by_role("radio", name="All", exact=True).click()
    wait_until_idle(page)
    sidebar.get_by_label("Modality").click()
    page.get_by_role("option", name="CT", exact=True).click()
    page.wait_for_function(
        "() => { const root = document.querySelector('.mrv-root');"
        " return !!root && !!root.querySelector('.mrv-slice')"
        " && root.dataset.paintedImage !== undefined && !root.querySelector('.mrv-message').textContent; }",
        timeout=60_000,
    )
    wait_until_idle(page)


def paints_between(page, start: float, end: float) -> list[dict[str, Any]]:  # type: ignore[no-untyped-def]
    return page.evaluate(
        "async ([start, end]) => { await new Promise((resolve) => setTimeout(resolve, 200));"
        " return window.__marks.filter((mark) => mark.name === 'medreview:paint')"
        ".filter((paint) => paint.startTime >= start && paint.startTime <= end)"
        ".map((paint) => ({ at: paint.startTime, imageId: paint.detail.imageId })); }",
        [start, end],
    )


def paced(count: int, per_second: float, action: Callable[[int], None]) -> None:
    """Call ``action(index)`` ``count`` times at ``per_second`` (as far as it keeps up)."""
    began = time.perf_counter()
    for index in range(count):
        delay = began + index / per_second - time.perf_counter()
        if delay > 0:
            time.sleep(delay)
        action(index)


@dataclass(frozen=True)
class WindowDrag:
    frames_per_second: float  # animation frames with a paint, per second of the drag
    moves_per_second: float  # pointer moves the canvas received, per second of the drag
    seconds: float


def measure_window_drag(page, in_page_moves: bool) -> WindowDrag:  # type: ignore[no-untyped-def]
    """A left-button window drag on the canvas: Playwright's mouse pressed and released, the moves
    between either Playwright's (``page.mouse``, 60 a second as far as it keeps up: each move is a
    round trip to the browser) or dispatched in the page at 120 a second (what the viewer can do
    when the input is not the limit)."""
    box = page.locator(".mrv-root canvas.mrv-canvas").bounding_box()
    x, y = box["x"] + box["width"] / 2, box["y"] + box["height"] / 2
    page.mouse.move(x, y)
    page.evaluate(COUNT_PAINTED_FRAMES_JS)
    page.mouse.down()
    if in_page_moves:
        page.evaluate(DISPATCH_MOVES_JS, [x, y, DRAG_SECONDS])
    else:
        # A sawtooth to the right: the window's width and level both keep changing.
        paced(DRAG_MOVES, DRAG_MOVES / DRAG_SECONDS, lambda index: page.mouse.move(x + index, y + (index % 40) - 20))
    page.mouse.up()
    counts = page.evaluate(STOP_COUNTING_FRAMES_JS)
    seconds = counts["seconds"]
    return WindowDrag(counts["frames"] / seconds, counts["moves"] / seconds, seconds)


def shown_slice(page) -> int | None:  # type: ignore[no-untyped-def]
    """The slice number in the viewer's header (None when the header shows none)."""
    text = page.evaluate("() => document.querySelector('.mrv-root .mrv-slice')?.textContent ?? null")
    return None if text is None else int(text)


@dataclass(frozen=True)
class SliceScroll:
    slices_per_second: float  # paints of another slice than the paint before, per second
    # The same up to the last such paint: the rate while the viewer kept up, should it stop early.
    slices_per_second_until_last: float
    presses_loading: int  # presses after which the viewer showed "Loading…"
    presses_without_slice: int  # presses after which the header showed no slice number
    slices_after_presses: list[int | None]  # the header's slice number after each press
    first_slice: int | None
    last_slice: int | None


def measure_slice_scroll(page) -> SliceScroll:  # type: ignore[no-untyped-def]
    """ArrowDown (or ArrowUp, from the stack's far end) through the series at SCROLL_KEYS_PER_SECOND;
    slices painted per second."""
    time.sleep(PREFETCH_SECONDS)
    page.evaluate(WATCH_SLICE_KEYS_JS)
    first_slice = shown_slice(page)
    # The Label worklist opens the series at its first image by upload order, which may be either end
    # of the stack (the stack runs by slice position): scroll towards the other end.
    total = int(page.evaluate("() => /slice \\d+\\/(\\d+)/.exec(document.querySelector('.mrv-header').innerText)[1]"))
    key = "ArrowDown" if (first_slice or 1) <= total // 2 else "ArrowUp"
    previous = painted_image(page)
    start = page.evaluate("() => performance.now()")
    paced(SCROLL_PRESSES, SCROLL_KEYS_PER_SECOND, lambda _index: page.keyboard.press(key))
    # One more animation frame: the paint the last press asked for.
    end = page.evaluate("() => new Promise((resolve) => requestAnimationFrame(() => resolve(performance.now())))")
    slices, last_slice_at = 0, end
    for paint in paints_between(page, start, end):
        if paint["imageId"] != previous:
            slices, last_slice_at = slices + 1, paint["at"]
        previous = paint["imageId"]
    presses = page.evaluate("() => window.__sliceKeys")
    return SliceScroll(
        slices_per_second=slices / ((end - start) / 1000),
        slices_per_second_until_last=slices / max((last_slice_at - start) / 1000, 1e-3),
        presses_loading=sum(1 for press in presses if press["loading"]),
        presses_without_slice=sum(1 for press in presses if press["slice"] is None),
        slices_after_presses=[press["slice"] for press in presses],
        first_slice=first_slice,
        last_slice=shown_slice(page),
    )


def measure_review_page(page, repeats: int) -> list[float]:  # type: ignore[no-untyped-def]
    """Review clicked on Home -> title and first table drawn, the run finished (ms), ``repeats`` times."""
    done = (
        f"{title_is('Review')}"
        ' && !!document.querySelector(\'[data-testid="stMain"] [data-testid="stDataFrame"]\')'
        " && !document.querySelector('[data-testid=\"stStatusWidget\"]')"
    )
    times = []
    for _ in range(repeats):
        times.append(click_timed(page, page.get_by_role("link", name="Review"), done, timeout_ms=60_000))
        wait_until_idle(page)
        page.get_by_role("link", name="Home").click()
        page.wait_for_function(f"() => {title_is('medreview')}")
        wait_until_idle(page)
    return times


def title_is(text: str) -> str:
    """A JS expression: the page's title (its one h1) is ``text``."""
    return f"[...document.querySelectorAll('h1')].some((title) => title.textContent.trim() === {json.dumps(text)})"


# In the page: whether every viewport of the case viewer shows its slice painted (not Loading…).
CASE_PAINTED_JS = """() => {
    const stages = [...document.querySelectorAll(".mrv-case .mrv-stage")];
    return stages.length > 0
        && stages.every((stage) => stage.dataset.imageId && stage.dataset.painted === stage.dataset.imageId);
}"""
# In the page: count the animation frames at which all viewports show a new slice painted, until
# STOP_COUNTING_CASE_FRAMES_JS.
COUNT_CASE_FRAMES_JS = """() => {
    const root = document.querySelector(".mrv-case");
    const counter = { frames: 0, loadingFrames: 0, start: performance.now(), end: null, last: null };
    window.__caseFrames = counter;
    const tick = () => {
        const stages = [...root.querySelectorAll(".mrv-stage")];
        const shown = stages.map(
            (stage) => stage.dataset.painted === stage.dataset.imageId ? stage.dataset.imageId : null);
        const all = shown.every((imageId) => imageId !== null && imageId !== undefined);
        const key = shown.join(",");
        if (all && key !== counter.last) { counter.frames += 1; counter.last = key; }
        if (!all) counter.loadingFrames += 1;
        if (counter.end === null) requestAnimationFrame(tick);
    };
    requestAnimationFrame(tick);
}"""
STOP_COUNTING_CASE_FRAMES_JS = """() => new Promise((resolve) => requestAnimationFrame(
    () => requestAnimationFrame(() => {
    const counter = window.__caseFrames;
    counter.end = performance.now();
    const slices = [...document.querySelectorAll(".mrv-case .mrv-stage")].map((stage) => Number(stage.dataset.slice));
    const seconds = (counter.end - counter.start) / 1000;
    resolve({ frames: counter.frames, loadingFrames: counter.loadingFrames, seconds, slices });
})))"""


def case_on_screen(page) -> str | None:  # type: ignore[no-untyped-def]
    return page.evaluate("() => document.querySelector('.mrv-case')?.dataset.caseId ?? null")


def open_mr_cases(page, mr_studies: list[int]) -> None:  # type: ignore[no-untyped-def]
    """On Label (case mode), the Modality filter on MR: the list holds the MR studies only, and the
    first of them is open with its four viewports painted."""
    page.get_by_role("link", name="Label").click()
    page.locator(".mrv-case").wait_for()
    wait_until_idle(page)
    page.get_by_label("Modality").click()
    page.get_by_role("option", name="MR", exact=True).click()
    wanted = [f"study:{study_id}" for study_id in mr_studies]
    page.wait_for_function(
        "wanted => wanted.includes(document.querySelector('.mrv-case')?.dataset.caseId)", arg=wanted, timeout=60_000
    )
    page.wait_for_function(CASE_PAINTED_JS, timeout=60_000)
    wait_until_idle(page)


def wait_until_quiet(page, seconds: float = 1.0, timeout: float = 30.0) -> None:  # type: ignore[no-untyped-def]
    """Until the app has not been running for ``seconds`` in a row (the viewer's prefetch done), as a
    reader looks at a case before picking another: a click on the list while a run redraws it is lost."""
    deadline = time.monotonic() + timeout
    quiet_since = None
    while time.monotonic() < deadline:
        running = page.evaluate(
            "() => document.querySelector('[data-testid=stApp]')?.dataset.testScriptState === 'running'"
        )
        if running:
            quiet_since = None
        elif quiet_since is None:
            quiet_since = time.monotonic()
        elif time.monotonic() - quiet_since >= seconds:
            return
        time.sleep(0.05)


def measure_case_open(page, rows: int) -> tuple[list[float], int]:  # type: ignore[no-untyped-def]
    """A click on each of CASE_OPEN_ROWS of the case list -> all four viewports painted (ms), and
    the clicks lost (the study did not open within 10 s: clicked again, timed from the second)."""
    from playwright.sync_api import TimeoutError as PlaywrightTimeout

    table = page.locator("[data-testid=stDataFrame]").first
    times, lost = [], 0
    for row in CASE_OPEN_ROWS:
        if row > rows:
            break
        table.locator(f'table[aria-rowcount="{rows + 1}"]').wait_for(state="attached")
        wait_until_quiet(page)
        before = case_on_screen(page)
        for attempt in range(2):
            grid = table.bounding_box()
            start = page.evaluate("() => performance.now()")
            # Rows are 35 px under a 35 px header; the row marker sits 14 px from the left edge.
            page.mouse.click(grid["x"] + 14, grid["y"] + 35 + 35 * (row - 1) + 17)
            try:
                handle = page.wait_for_function(
                    "before => { const root = document.querySelector('.mrv-case');"
                    " if (!root || root.dataset.caseId === before) return false;"
                    f" return ({CASE_PAINTED_JS})() ? performance.now() : false; }}",
                    arg=before,
                    polling="raf",
                    timeout=10_000 if attempt == 0 else 30_000,
                )
                break
            except PlaywrightTimeout:
                if attempt:
                    raise
                lost += 1
                wait_until_quiet(page)
        times.append(float(handle.json_value()) - float(start))
        print(f"  row {row}: {before} -> {case_on_screen(page)} in {times[-1]:.0f} ms", flush=True)
    return times, lost


def measure_case_scroll(page) -> dict[str, Any]:  # type: ignore[no-untyped-def]
    """ArrowDown SCROLL_PRESSES times at SCROLL_KEYS_PER_SECOND in the first viewport, linked."""
    page.locator(".mrv-case .mrv-stage").first.click()
    if page.evaluate("() => document.querySelector('.mrv-case').dataset.linkScroll") != "true":
        raise RuntimeError("the case viewer's scroll link is off")
    time.sleep(PREFETCH_SECONDS)
    held = page.evaluate("() => Number(document.querySelector('.mrv-case').dataset.framesHeld)")
    page.evaluate(COUNT_CASE_FRAMES_JS)
    paced(SCROLL_PRESSES, SCROLL_KEYS_PER_SECOND, lambda _index: page.keyboard.press("ArrowDown"))
    counts = page.evaluate(STOP_COUNTING_CASE_FRAMES_JS)
    counts["fps"] = counts["frames"] / counts["seconds"]
    counts["held"] = held
    return counts


def run_cases(url: str, mr_studies: list[int], screenshot_path: Path) -> dict[str, float]:
    """case_open_ms and case_scroll_fps in Chromium (see the module docstring)."""
    from playwright.sync_api import sync_playwright

    figures: dict[str, float] = {}
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=CHROMIUM,
            headless=True,
            args=["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update"],
        )
        page = None
        try:
            page = new_page(browser)
            sign_in(page, url, CASE_READER.username, CASE_READER_PASSWORD)
            open_mr_cases(page, mr_studies)
            open_times, lost = measure_case_open(page, len(mr_studies))
            figures["case_open_ms"] = statistics.median(open_times)
            print(
                "case open (click -> four viewports painted): "
                + " ".join(f"{value:.0f}" for value in open_times)
                + f" ms; clicks lost and made again: {lost}",
                flush=True,
            )
            scroll = measure_case_scroll(page)
            figures["case_scroll_fps"] = scroll["fps"]
            print(
                f"linked scroll of four viewports: {scroll['frames']} frames with all four on a new slice in "
                f"{scroll['seconds']:.2f} s ({scroll['fps']:.1f}/s); frames with a viewport still loading: "
                f"{scroll['loadingFrames']}; slices after {SCROLL_PRESSES} presses: {scroll['slices']}; frames "
                f"held after {PREFETCH_SECONDS:g} s of prefetch: {scroll['held']}",
                flush=True,
            )
            page.screenshot(path=str(screenshot_path.with_name("bench-case.png")))
            page.context.close()
        except Exception:
            if page is not None:
                page.screenshot(path=str(screenshot_path), full_page=True)
                print(f"the page at the failure: {screenshot_path}", file=sys.stderr)
            raise
        finally:
            browser.close()
    return figures


def percentile(values: list[float], share: float) -> float:
    """Nearest-rank percentile (share in 0..1)."""
    ordered = sorted(values)
    return ordered[max(0, min(len(ordered) - 1, round(share * len(ordered) + 0.5) - 1))]


def passes(name: str, value: float) -> bool:
    comparison, target, _unit = TARGETS[name]
    return value <= target if comparison == "<=" else value >= target


def report_table(figures: dict[str, float]) -> str:
    lines = [f"{'figure':<22} {'value':>10}  {'target':<12} result"]
    for name, value in figures.items():
        comparison, target, unit = TARGETS[name]
        lines.append(
            f"{name:<22} {value:>10.1f}  {comparison + ' ' + format(target, 'g') + ' ' + unit:<12} "
            f"{'pass' if passes(name, value) else 'FAIL'}"
        )
    return "\n".join(lines)


def run(url: str, built: dict[str, Any], screenshot_path: Path) -> dict[str, float]:
    from playwright.sync_api import sync_playwright

    reader, reader_password = reader_with_most_to_do(Path(built["data_dir"]), built["readers"])
    admin, admin_password = built["admin"]
    figures: dict[str, float] = {}
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=CHROMIUM,
            headless=True,
            args=["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update"],
        )
        page = None
        try:
            page = new_page(browser)
            sign_in(page, url, reader, reader_password)
            figures["first_image_ms"], mounted_ms = measure_first_image(page)
            print(
                f"first image: viewer created {mounted_ms if mounted_ms is None else round(mounted_ms)} ms, painted "
                f"{figures['first_image_ms']:.0f} ms after Label was clicked",
                flush=True,
            )

            key_times = measure_key_to_next(page, KEY_PRESSES)
            figures["key_to_next_ms_p50"] = statistics.median(key_times)
            figures["key_to_next_ms_p95"] = percentile(key_times, 0.95)
            print(
                f"class key -> next image over {len(key_times)} keys: "
                + " ".join(f"{value:.0f}" for value in key_times)
                + " ms",
                flush=True,
            )
            print(f"every read acknowledged {seconds_until_saved(page):.2f} s after the last key", flush=True)

            open_ct_series(page)
            time.sleep(PREFETCH_SECONDS)
            drag = measure_window_drag(page, in_page_moves=False)
            figures["window_drag_fps"] = drag.frames_per_second
            print(
                f"window drag with Playwright's mouse: {drag.frames_per_second:.1f} frames painted/s, "
                f"{drag.moves_per_second:.1f} pointer moves/s reached the canvas over {drag.seconds:.2f} s",
                flush=True,
            )
            drag = measure_window_drag(page, in_page_moves=True)
            print(
                f"window drag with moves dispatched in the page (not the figure): "
                f"{drag.frames_per_second:.1f} frames painted/s, {drag.moves_per_second:.1f} pointer moves/s "
                f"over {drag.seconds:.2f} s",
                flush=True,
            )
            scroll = measure_slice_scroll(page)
            figures["slice_scroll_fps"] = scroll.slices_per_second
            print(
                f"slice scroll: {SCROLL_PRESSES} presses from slice {scroll.first_slice} reached slice "
                f"{scroll.last_slice}, {scroll.slices_per_second:.1f} slices painted/s "
                f"({scroll.slices_per_second_until_last:.1f}/s up to the last slice painted); presses after which "
                f"the viewer showed Loading…: {scroll.presses_loading}, no slice number: "
                f"{scroll.presses_without_slice}",
                flush=True,
            )
            print(
                "slice in the header after each press: "
                + " ".join("-" if number is None else str(number) for number in scroll.slices_after_presses),
                flush=True,
            )
            page.context.close()

            page = new_page(browser)
            sign_in(page, url, admin, admin_password)
            review_times = measure_review_page(page, REVIEW_REPEATS)
            figures["review_page_ms"] = statistics.median(review_times)
            print("Review page: " + " ".join(f"{value:.0f}" for value in review_times) + " ms", flush=True)
            page.context.close()
        except Exception:
            if page is not None:  # what the page showed, for the reason of the failure
                page.screenshot(path=str(screenshot_path), full_page=True)
                print(f"the page at the failure: {screenshot_path}", file=sys.stderr)
            raise
        finally:
            browser.close()
    return {name: round(figures[name], 1) for name in IMAGE_FIGURES}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--images", type=int, default=20000, help="PNG images in the store (default 20000)")
    parser.add_argument("--ct-slices", type=int, default=500, help="slices of the CT series (default 500)")
    parser.add_argument("--json", metavar="PATH", help="write the figures as one JSON object ('-': stdout)")
    parser.add_argument("--port", type=int, default=0, help="the server's port (default: a free one)")
    parser.add_argument("--data-dir", type=Path, help="the store (default data/bench/reading-<images>)")
    parser.add_argument("--cases", action="store_true", help="the case figures too (issue 17)")
    parser.add_argument("--cases-only", action="store_true", help="with --cases: the case figures only")
    parser.add_argument("--case-data-dir", type=Path, help="the case store (default data/bench/cases-2000)")
    parser.add_argument("--case-studies", type=int, default=2000, help="CT studies of the case store")
    parser.add_argument("--viewport-studies", type=int, default=10, help="MR studies of four 512x512 series")
    parser.add_argument("--viewport-slices", type=int, default=100, help="slices of each MR series")
    arguments = parser.parse_args()
    if arguments.cases_only and not arguments.cases:
        parser.error("--cases-only goes with --cases")
    if arguments.cases and arguments.viewport_studies < max(CASE_OPEN_ROWS):
        parser.error(f"--viewport-studies must be at least {max(CASE_OPEN_ROWS)}: the bench clicks those rows")
    if arguments.images <= KEY_PRESSES:
        parser.error(f"--images must be above {KEY_PRESSES}: the bench labels {KEY_PRESSES} of them")
    if arguments.ct_slices < 2:
        parser.error("--ct-slices must be at least 2: the bench scrolls through the series")
    if not Path(CHROMIUM).exists():
        raise SystemExit(f"{CHROMIUM} is missing (apt-get install chromium)")
    figures: dict[str, float] = {}
    if not arguments.cases_only:
        data_dir = arguments.data_dir or ROOT / "data" / "bench" / f"reading-{arguments.images}"
        started = time.perf_counter()
        built = build_reading_store(data_dir, images=arguments.images, ct_slices=arguments.ct_slices)
        print(
            f"store ready in {time.perf_counter() - started:.0f} s: {built['image_count']} images in {data_dir}",
            flush=True,
        )
        port = arguments.port or free_port()
        data_dir = Path(built["data_dir"])
        with running_server(data_dir, port, data_dir / "bench-server.log") as url:
            figures.update(run(url, built, data_dir / "bench-failure.png"))
    if arguments.cases:
        case_dir = arguments.case_data_dir or ROOT / "data" / "bench" / f"cases-{arguments.case_studies}"
        started = time.perf_counter()
        store = build_case_store(case_dir, arguments.case_studies, 100)
        try:
            mr_studies = add_viewport_studies(store, case_dir, arguments.viewport_studies, arguments.viewport_slices)
            print(f"case store ready in {time.perf_counter() - started:.0f} s in {case_dir}", flush=True)
            case_figures = {"case_worklist_ms": time_case_worklist(store, runs=5)["case_worklist_ms"]}
        finally:
            store.close()
        port = arguments.port or free_port()
        with running_server(case_dir, port, case_dir / "bench-server.log") as url:
            case_figures.update(run_cases(url, mr_studies, case_dir / "bench-failure.png"))
        figures.update({name: round(case_figures[name], 1) for name in CASE_FIGURES})
    print()
    print(report_table(figures))
    if arguments.json == "-":
        print(json.dumps(figures))
    elif arguments.json:
        Path(arguments.json).write_text(json.dumps(figures, indent=2) + "\n")


if __name__ == "__main__":
    main()
