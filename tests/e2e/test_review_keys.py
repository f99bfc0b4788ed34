"""Review from the keyboard in Chromium (issue 18): a reviewer clears a 50-read queue with keys
alone: A on each read, one R, and one S with a comment typed into the box it focuses and sent with
Enter. The reads are made through the services, not the UI; one server for the file."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from playwright.sync_api import TimeoutError as PlaywrightTimeoutError

from medreview.ingest import InputFile, ingest_files
from medreview.reading.reads import LOCAL_ACTOR, reads_table, save_read
from medreview.store import Store
from medreview.team.accounts import create_first_admin, create_user
from medreview.team.roles import Actor
from tests.conftest import make_settings
from tests.e2e.conftest import log_in, new_page, require_chromium, serving
from tests.helpers import png_bytes

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

READS = 50
REJECTED, SENT_BACK = 10, 20  # the queue positions (0-based) the reviewer rejects and sends back
READER = Actor("reader1", "annotator")


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, Store]]:
    require_chromium()
    data_dir = tmp_path_factory.mktemp("review-keys") / "data"
    data_dir.mkdir()
    store = Store.open(make_settings(data_dir))
    try:
        create_first_admin(store, "chief", "chief-password")
        create_user(store, Actor("chief", "admin"), "senior", "senior-password", "reviewer")
        create_user(store, Actor("chief", "admin"), READER.username, "reader1-password", "annotator")
        files = [InputFile(f"film{n}.png", png_bytes(900 + n, size=16)) for n in range(READS)]
        for number, result in enumerate(ingest_files(store, LOCAL_ACTOR, files)):
            save_read(store, READER, result.image_id, "pneumonia" if number % 3 == 0 else "normal")
    finally:
        store.close()
    with serving(data_dir) as server:
        yield server.url, Store.open(make_settings(data_dir))


def wait_handled(page, presses: int) -> None:  # type: ignore[no-untyped-def]
    """Wait until the page has handled ``presses`` keys; say where the keyboard stood if it does not."""
    try:
        page.locator(f'[data-review-handled="{presses}"]').wait_for(state="attached", timeout=30_000)
    except PlaywrightTimeoutError:
        marker = page.locator("[data-review-handled]").evaluate("element => JSON.stringify(element.dataset)")
        focused = page.evaluate("() => document.activeElement.outerHTML.slice(0, 200)")
        pytest.fail(f"key {presses} was not handled: keyboard {marker}, focus on {focused}")


def test_a_reviewer_clears_a_50_read_queue_with_the_keyboard_alone(served, shared_chromium):
    url, store = served
    page = new_page(shared_chromium)
    log_in(page, url, "senior", "senior-password")
    page.get_by_role("link", name="Review").click()
    page.get_by_text(f"Reviewer queue ({READS})").wait_for()
    page.locator('[data-review-handled="0"]').wait_for(state="attached")
    for position in range(READS):
        if position == SENT_BACK:
            page.keyboard.press("s")  # focuses the comment box; the next keys are the comment
            page.keyboard.type("check the left apex")
            page.keyboard.press("Enter")
        else:
            page.keyboard.press("r" if position == REJECTED else "a")
        # Each key is acknowledged once handled; the next read is then on screen.
        wait_handled(page, position + 1)
    page.get_by_text("No submitted reads are waiting for review.").wait_for()

    reads = reads_table(store, LOCAL_ACTOR, include_rejected=True)
    assert (reads["status"].value_counts().to_dict()) == {"approved": READS - 2, "rejected": 1, "returned": 1}
    returned = reads[reads["status"] == "returned"].iloc[0]
    assert returned["review_comment"] == "check the left apex"
    # Oldest first: the reads decided at those positions are the 11th and 21st saved.
    order = reads.sort_values("annotation_id")["status"].tolist()
    assert (order[REJECTED], order[SENT_BACK]) == ("rejected", "returned")
    store.close()
