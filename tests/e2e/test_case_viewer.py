"""A case in a grid of viewports in a real browser (issue 17 item 3): Browse opens a 2x2 MR study of
four series sharing a frame of reference; Tab and a click move the active viewport; a scroll in one
moves the others to the slice nearest its position, and unlinked (Y) it moves only itself; L links
window/level across the viewports. Screenshots at 1440x900 and 1280x720.

One server for the file: a store made in this process (tests/pages/test_browse_page.py mr_study_files)."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from medreview.ingest import ingest_files
from medreview.reading.reads import LOCAL_ACTOR
from medreview.store import Store
from medreview.team.accounts import create_first_admin
from tests.conftest import make_settings
from tests.e2e.conftest import log_in, new_page, require_chromium, serving
from tests.pages.test_browse_page import MR_SERIES, mr_study_files

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

PASSWORD = "case-viewer-password"
SHOTS = Path(os.environ.get("MEDREVIEW_SHOTS", "/tmp/shots"))


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    require_chromium()
    data_dir = tmp_path_factory.mktemp("case") / "data"
    data_dir.mkdir()
    store = Store.open(make_settings(data_dir))
    try:
        create_first_admin(store, "chief", PASSWORD)
        results = ingest_files(store, LOCAL_ACTOR, mr_study_files())
        assert {result.status for result in results} == {"stored"}
    finally:
        store.close()
    with serving(data_dir) as server:
        yield server.url


def browse(browser, url: str, width: int, height: int):  # type: ignore[no-untyped-def]
    """Signed in, on Browse, with the four viewports painted."""
    page = new_page(browser, width, height)
    log_in(page, url, "chief", PASSWORD)
    page.get_by_role("link", name="Browse").click()
    page.locator('.mrv-case[data-painted="4"]').wait_for()
    return page


def slices(page) -> list[int]:  # type: ignore[no-untyped-def]
    """The slice (index in reading order) each viewport shows."""
    return [
        int(value) for value in page.eval_on_selector_all(".mrv-case .mrv-stage", "s => s.map(e => e.dataset.slice)")
    ]


def active(page) -> int:  # type: ignore[no-untyped-def]
    return int(page.locator(".mrv-case").get_attribute("data-active") or "-1")


def wheel(page, viewport: int, steps: int) -> None:  # type: ignore[no-untyped-def]
    box = page.locator(".mrv-case .mrv-stage").nth(viewport).bounding_box()
    page.mouse.move(box["x"] + box["width"] / 2, box["y"] + box["height"] / 2)
    for _ in range(abs(steps)):
        page.mouse.wheel(0, 100 if steps > 0 else -100)
        page.wait_for_timeout(60)


def test_tab_and_click_move_the_active_viewport_and_linked_series_scroll_by_position(served, shared_chromium):
    page = browse(shared_chromium, served, 1440, 900)
    SHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SHOTS / "case-2x2-1440x900.png"))
    assert page.locator(".mrv-case").get_attribute("data-layout") == "2x2"
    assert active(page) == 0
    # A click makes a viewport active (and outlined); Tab the next, Shift+Tab back round.
    page.locator(".mrv-case .mrv-stage").nth(2).click()
    assert active(page) == 2
    page.locator('.mrv-case .mrv-stage.mrv-active[data-viewport="2"]').wait_for()  # outlined
    assert page.locator(".mrv-case .mrv-stage.mrv-active").count() == 1
    page.keyboard.press("Tab")
    page.locator('.mrv-case[data-active="3"]').wait_for()
    page.keyboard.press("Tab")
    page.locator('.mrv-case[data-active="0"]').wait_for()
    page.keyboard.press("Shift+Tab")
    page.locator('.mrv-case[data-active="3"]').wait_for()

    # Three slices down in T1 (0, 5, 10, 15 mm): T2 goes to its slice at 15 mm, FLAIR (read by
    # position: 0, 4, ... 20) to 16 mm, DWI (2, 9, 16) to 16 mm.
    wheel(page, 0, 3)
    assert active(page) == 0
    page.wait_for_function("() => document.querySelector('.mrv-case .mrv-stage').dataset.slice === '3'")
    positions = list(MR_SERIES.values())
    assert [sorted(positions[index])[slice_index] for index, slice_index in enumerate(slices(page))] == [15, 15, 16, 16]
    page.screenshot(path=str(SHOTS / "case-2x2-linked-1440x900.png"))

    # Unlinked (Y), T1 scrolls alone.
    page.keyboard.press("y")
    page.locator('.mrv-case[data-link-scroll="false"]').wait_for()
    wheel(page, 0, -2)
    page.wait_for_function("() => document.querySelector('.mrv-case .mrv-stage').dataset.slice === '1'")
    assert slices(page) == [1, 6, 4, 2]

    # Window/level is per viewport until L links it: a drag in T1 then changes T2's window too.
    before = page.eval_on_selector_all(".mrv-case .mrv-stage", "s => s.map(e => e.dataset.window)")
    box = page.locator(".mrv-case .mrv-stage").first.bounding_box()
    centre = (box["x"] + box["width"] / 2, box["y"] + box["height"] / 2)

    def drag(dx: float, was: str) -> list[str]:
        page.mouse.move(*centre)
        page.mouse.down()
        page.mouse.move(centre[0] + dx, centre[1] + 20, steps=4)
        page.mouse.up()
        page.wait_for_function("was => document.querySelector('.mrv-case .mrv-stage').dataset.window !== was", arg=was)
        return page.eval_on_selector_all(".mrv-case .mrv-stage", "s => s.map(e => e.dataset.window)")

    after = drag(40, before[0])
    assert after[1:] == before[1:], (before, after)
    page.keyboard.press("l")
    page.locator('.mrv-case[data-link-window="true"]').wait_for()
    linked = drag(-60, after[0])
    assert len(set(linked)) == 1, linked


def test_the_grid_fits_a_1280x720_window(served, shared_chromium):
    page = browse(shared_chromium, served, 1280, 720)
    page.screenshot(path=str(SHOTS / "case-2x2-1280x720.png"))
    for index in range(4):
        box = page.locator(".mrv-case .mrv-stage").nth(index).bounding_box()
        assert box is not None and box["y"] >= 0 and box["y"] + box["height"] <= 720, (index, box)
        assert box["width"] > 200 and box["height"] > 120, box


def test_the_viewports_fetch_their_frames_over_http_only_while_signed_in(served, shared_chromium):
    """The four viewports' frames come over HTTP (ui/frame_route.py), not through the page's runs;
    the frame URL is the session's and serves nothing once the reader has logged out."""
    page = new_page(shared_chromium, 1440, 900)
    frames: list[tuple[str, int]] = []
    page.on(
        "response",
        lambda response: (
            frames.append((response.url, response.status)) if "/medreview/frames/" in response.url else None
        ),
    )
    log_in(page, served, "chief", PASSWORD)
    page.get_by_role("link", name="Browse").click()
    page.locator('.mrv-case[data-painted="4"]').wait_for()
    assert frames and all(status == 200 for _, status in frames), frames
    url = frames[0][0]
    fetch_status = "url => fetch(url, { cache: 'no-store' }).then((response) => response.status)"
    assert page.evaluate(fetch_status, url) == 200
    page.get_by_role("button", name="Log out").click()
    page.get_by_role("button", name="Log in").wait_for()
    page.wait_for_timeout(1100)  # the route checks the sign-in at most once a second per token
    assert page.evaluate(fetch_status, url) == 403
