"""The viewer fits the window at 1440x900 and 1280x720 (issue 16 items 4, 10 and 6): header, image and
class buttons on screen, a comment opened below leaves them there, the corners name the window and
its preset, and on Predictions the image and its map sit side by side and zoom together.

One server for the file: a store made in this process (a tall CR film, a CT slice, a PNG; a model
version with its predictions and stored maps, no TensorFlow), served by `medreview serve`."""

from __future__ import annotations

import re
from collections.abc import Iterator

import pytest

from medreview.ingest import InputFile, ingest_files
from medreview.reading.reads import LOCAL_ACTOR
from medreview.store import Store
from medreview.team.accounts import create_first_admin
from tests.conftest import make_settings
from tests.e2e.conftest import log_in, new_page, require_chromium, serving
from tests.e2e.viewer import wait_painted
from tests.helpers import add_model_version, add_predictions, corpus_file, png_bytes
from tests.pages.test_predictions_page import store_view_maps

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

SIZES = [(1440, 900), (1280, 720)]
PASSWORD = "layout-password"


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A store with the films and a model's calls, and a server on it, for every test of the file."""
    require_chromium()
    data_dir = tmp_path_factory.mktemp("layout") / "data"
    data_dir.mkdir()
    store = Store.open(make_settings(data_dir))
    try:
        create_first_admin(store, "chief", PASSWORD)
        files = [
            InputFile("tall-cr.dcm", corpus_file("RG1_UNCR.dcm").read_bytes()),  # 1841 x 1955, Patient Orientation L\F
            InputFile("ct.dcm", corpus_file("CT_small.dcm").read_bytes()),  # axial, 0.66 mm pixels
            InputFile("film.png", png_bytes(5, size=256)),
        ]
        image_ids = [result.image_id for result in ingest_files(store, LOCAL_ACTOR, files)]
        model_id = add_model_version(store, active=True)
        add_predictions(store, model_id, {key: {"normal": 0.2, "pneumonia": 0.8} for key in image_ids})
        for image_id in image_ids:
            store_view_maps(store, model_id, image_id, (0.2, 0.8))
    finally:
        store.close()
    with serving(data_dir) as server:
        yield server.url


def signed_in(browser, url: str, width: int, height: int):  # type: ignore[no-untyped-def]
    page = new_page(browser, width, height)
    log_in(page, url, "chief", PASSWORD)
    return page


def assert_on_screen(page, selector: str, height: int) -> dict:  # type: ignore[no-untyped-def]
    box = page.locator(selector).first.bounding_box()
    assert box is not None, f"{selector} is not drawn"
    assert box["y"] >= 0 and box["y"] + box["height"] <= height, f"{selector} off screen: {box} at height {height}"
    return box


def idle(page) -> None:  # type: ignore[no-untyped-def]
    """No script run in flight, and a moment for the viewer to take in what the last one sent."""
    page.locator('[data-testid="stApp"][data-test-script-state="notRunning"]').wait_for()
    page.wait_for_timeout(300)


def bottom_left(page, pane: int = 0) -> str:  # type: ignore[no-untyped-def]
    return page.locator(".mrv-bottomLeft").nth(pane).inner_text()


@pytest.mark.parametrize(("width", "height"), SIZES)
def test_label_fits_the_window_and_a_comment_does_not_push_the_header_away(served, shared_chromium, width, height):
    page = signed_in(shared_chromium, served, width, height)
    page.get_by_role("link", name="Label").click()
    wait_painted(page)
    # The tall CR film first (upload order): header, image and class buttons on screen.
    assert "tall-cr" not in page.locator(".mrv-header").inner_text()  # de-identified name, as everywhere
    assert page.locator(".mrv-header").inner_text().startswith("not read by me yet")  # read state first
    assert_on_screen(page, ".mrv-header", height)
    stage = assert_on_screen(page, ".mrv-stage", height)
    assert_on_screen(page, ".mrv-status button.mrv-class >> nth=-1", height)
    # Patient Orientation L\F: a PA film with the patient's left on the right, feet down.
    edges = [page.locator(f".mrv-edge-{edge}").inner_text() for edge in ("left", "right", "top", "bottom")]
    assert edges == ["R", "L", "H", "F"]
    assert not page.locator(".mrv-scale").is_visible()  # its Pixel Spacing is 0\0: no scale bar

    # Opening the comment box below neither grows the viewer nor scrolls its header away; closing it
    # leaves the viewer as it was.
    comment = page.locator("[data-testid=stExpander] summary").filter(has_text="Comment")
    comment.click()
    page.get_by_label("Comment on this image").wait_for()
    page.wait_for_timeout(500)
    assert assert_on_screen(page, ".mrv-header", height)["y"] >= 0
    assert page.locator(".mrv-stage").first.bounding_box()["height"] == stage["height"]
    comment.click()
    page.get_by_label("Comment on this image").wait_for(state="hidden")
    page.wait_for_timeout(500)
    assert_on_screen(page, ".mrv-header", height)
    assert page.locator(".mrv-stage").first.bounding_box() == stage

    # The CT slice: the corners give W/L with the preset's name, Shift+1-9 names the one chosen. N once
    # the page's runs after the comment box are over.
    idle(page)
    page.keyboard.press("n")
    page.wait_for_function("() => document.querySelector('.mrv-header').innerText.includes(' CT · ')")
    wait_painted(page)
    assert re.search(r"W -?\d+ L -?\d+", bottom_left(page))
    # The corner names the window from the start ("W/L: From file"), so wait for Shift+2's change.
    before = bottom_left(page).split("\n")[0]
    page.keyboard.press("Shift+2")
    page.wait_for_function(
        "before => { const t = document.querySelector('.mrv-bottomLeft').innerText.split('\\n')[0];"
        " return t.startsWith('W/L: ') && t !== before; }",
        arg=before,
    )
    second = bottom_left(page).split("\n")[0]
    page.keyboard.press("Shift+1")
    page.wait_for_function(
        "second => { const t = document.querySelector('.mrv-bottomLeft').innerText.split('\\n')[0];"
        " return t.startsWith('W/L: ') && t !== second; }",
        arg=second,
    )
    first = bottom_left(page).split("\n")[0].removeprefix("W/L: ")
    assert f"({first})" in page.locator(".mrv-header").inner_text()
    assert page.locator(".mrv-scale").inner_text().endswith(" mm")  # 0.66 mm pixels: a round bar in mm
    assert [page.locator(f".mrv-edge-{edge}").inner_text() for edge in ("left", "right", "top", "bottom")] == [
        "R", "L", "A", "P",
    ]  # fmt: skip
    page.context.close()


@pytest.mark.parametrize(("width", "height"), SIZES)
def test_predictions_show_the_map_beside_the_image_and_both_zoom_together(served, shared_chromium, width, height):
    page = signed_in(shared_chromium, served, width, height)
    page.get_by_role("link", name="Predictions").click()
    # The map's viewport names the map it shows (the page's caption may already speak of the next
    # view: the viewer reports its window, and the page asks for that view's map).
    page.wait_for_function(
        "() => { const corners = document.querySelectorAll('.mrv-root[data-painted-image] .mrv-topRight');"
        " return corners.length === 2 && corners[1].innerText.endsWith('Grad-CAM: pneumonia'); }"
    )
    wait_painted(page)
    for index in (0, 1):
        assert_on_screen(page, f".mrv-stage >> nth={index}", height)
    zooms = [page.locator(".mrv-bottomRight").nth(index).inner_text() for index in (0, 1)]
    assert zooms[0] == zooms[1]
    # A wheel zoom over the map's viewport zooms the image's too.
    box = page.locator(".mrv-canvas").nth(1).bounding_box()
    page.mouse.move(box["x"] + box["width"] / 2, box["y"] + box["height"] / 2)
    page.mouse.wheel(0, -300)
    page.wait_for_function(
        "before => document.querySelectorAll('.mrv-bottomRight')[0].innerText !== before", arg=zooms[0]
    )
    after = [page.locator(".mrv-bottomRight").nth(index).inner_text() for index in (0, 1)]
    assert after[0] == after[1] and after[0] != zooms[0]
    page.context.close()
