"""Aided reading in a real browser (issue 18 item 4; issue 19's active time): the model's suggestion
is a badge, never the read; Enter accepts it, a class key overrides it, and an image outside the
model's training data gets no suggestion (the badge says why, Enter saves nothing). A read's seconds
leave out the time the tab was hidden.

One server for the file: a store made in this process (three PNG films; an active model version's
calls, no TensorFlow), served by `medreview serve`."""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest
from playwright.sync_api import expect
from sqlalchemy import select

from medreview.ingest import InputFile, ingest_files
from medreview.reading.reads import LOCAL_ACTOR
from medreview.store import Store
from medreview.store.models import Annotation
from medreview.team.accounts import create_first_admin
from medreview.team.roles import Actor
from medreview.team.settings import set_setting
from tests.conftest import make_settings
from tests.e2e.conftest import Server, log_in, new_page, require_chromium, serving
from tests.e2e.viewer import READING_PAUSE, painted, press_class, wait_painted, wait_saved
from tests.helpers import add_model_version, add_predictions, png_bytes

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

PASSWORD = "assist-password"
HIDDEN_SECONDS = 2.0

# The page tells the viewer the tab was hidden, then shown again (as Chromium does on a tab switch).
SET_VISIBILITY_JS = """state => {
    Object.defineProperty(document, "visibilityState", { configurable: true, get: () => state });
    Object.defineProperty(document, "hidden", { configurable: true, get: () => state === "hidden" });
    document.dispatchEvent(new Event("visibilitychange"));
}"""


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Server, list[int], int]]:
    require_chromium()
    data_dir = tmp_path_factory.mktemp("assist") / "data"
    data_dir.mkdir()
    store = Store.open(make_settings(data_dir))
    try:
        create_first_admin(store, "chief", PASSWORD)
        files = [InputFile(f"film-{index}.png", png_bytes(700 + index, size=64)) for index in range(3)]
        ids = [result.image_id for result in ingest_files(store, LOCAL_ACTOR, files)]
        version = add_model_version(store, active=True)
        calls = {image_id: {"normal": 0.13, "pneumonia": 0.87} for image_id in ids}
        add_predictions(store, version, calls, outside={ids[2]: "unlike the training images"})
        set_setting(store, Actor("chief", "admin"), "assist_mode", "aided")
    finally:
        store.close()
    with serving(data_dir) as server:
        yield server, ids, version


def stored_reads(server: Server) -> dict[int, Annotation]:
    store = Store.open(make_settings(server.data_dir))
    try:
        with store.db.read() as session:
            rows = session.scalars(select(Annotation)).all()
            for row in rows:
                _ = row.label_class
            return {row.image_id: row for row in rows}
    finally:
        store.close()


def test_enter_accepts_the_suggestion_a_class_key_overrides_it_and_hidden_time_is_not_counted(served, shared_chromium):
    server, (first, second, outside), version = served
    page = new_page(shared_chromium)
    log_in(page, server.url, "chief", PASSWORD)
    page.get_by_role("link", name="Label").click()
    assert wait_painted(page) == first
    badge = page.locator(".mrv-header .mrv-model")
    expect(badge).to_contain_text("model: pneumonia 87%")
    assert badge.get_attribute("data-suggest") == "true"
    # A suggestion, not the read: the image is still unread.
    assert page.locator(".mrv-header").inner_text().startswith("not read by me yet")

    # The reader looks, switches to another tab for a while, comes back and accepts with Enter.
    started = time.monotonic()
    page.evaluate(SET_VISIBILITY_JS, "hidden")
    page.wait_for_timeout(HIDDEN_SECONDS * 1000)
    page.evaluate(SET_VISIBILITY_JS, "visible")
    time.sleep(READING_PAUSE)
    page.keyboard.press("Enter")
    assert time.monotonic() - started >= HIDDEN_SECONDS
    assert wait_painted(page, not_image=first) == second
    # A class key overrides the suggestion.
    assert press_class(page, "1") == second
    assert wait_painted(page, not_image=second) == outside
    expect(badge).to_contain_text("no suggestion (unlike the training images)")
    time.sleep(READING_PAUSE)
    page.keyboard.press("Enter")  # nothing to accept: nothing saved, the image stays
    page.wait_for_timeout(300)
    assert painted(page) == outside
    wait_saved(page)

    reads = stored_reads(server)
    assert sorted(reads) == [first, second]
    accepted, overridden = reads[first], reads[second]
    assert (accepted.label_class.name, accepted.model_suggestion, accepted.suggestion_accepted) == (
        "pneumonia",
        "pneumonia",
        True,
    )
    assert accepted.model_version_id == version and accepted.assist_mode == "aided"
    assert (overridden.label_class.name, overridden.suggestion_accepted) == ("normal", False)
    # The seconds of the first read leave the hidden two seconds out.
    assert 0 < accepted.seconds_on_case < HIDDEN_SECONDS - 0.4
