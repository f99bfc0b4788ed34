"""Leaving the Label page right after class keys, in a real browser against `python -m medreview serve`.

The viewer moves on at once and saves in the background; a sidebar click 50, 100 or 150 ms after a
burst of keys used to lose the reads still in flight (the page change carried no viewer state) and
could leave a blank page (the viewer's report reran its fragment after the page was left: "Couldn't
find fragment" in the server log; a key pressed just after the click did it every other time).
Every read the viewer accepted must be in the database, the new page must open, no report may
follow the click, and a tab closed with reads still pending asks first."""

from __future__ import annotations

import sqlite3
import time
from pathlib import Path

import numpy as np
import pytest

from tests.e2e.conftest import log_in, new_page
from tests.e2e.viewer import wait_painted
from tests.helpers import dicom_bytes

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

PASSWORD = "chief-password"
# Longer than the viewer's bounce guard (0.12 s), shorter than a reader's look: a burst.
BURST_PAUSE = 0.18


def stored_reads(server) -> dict[int, str]:  # type: ignore[no-untyped-def]
    """image id -> class of chief's reads in the server's store."""
    with sqlite3.connect(server.data_dir / "medreview.db") as connection:
        rows = connection.execute(
            "SELECT annotations.image_id, label_classes.name FROM annotations"
            " JOIN users ON users.id = annotations.reader_id"
            " LEFT JOIN label_classes ON label_classes.id = annotations.label_class_id"
            " WHERE users.username = 'chief'"
        ).fetchall()
    return dict(rows)


def click_link_after_next_key(page, path: str, delay_ms: int) -> None:  # type: ignore[no-untyped-def]
    """Arrange a click on the sidebar link to ``path`` ``delay_ms`` after the next key goes down
    (timed in the page, as a reader's hand moves from the key to the mouse)."""
    page.evaluate(
        """([path, delay]) => window.addEventListener("keydown", () => setTimeout(() => {
            document.querySelector(`[data-testid=stSidebarNav] a[href$="/${path}"]`).click();
        }, delay), { once: true, capture: true })""",
        [path, delay_ms],
    )


def burst(page, keys: int, before_last=lambda: None) -> list[int]:  # type: ignore[no-untyped-def]
    """Class keys on consecutive images, each just past the bounce guard (``before_last`` called
    before the last one); the labelled ids."""
    labelled = []
    for number in range(keys):
        labelled.append(wait_painted(page, not_image=labelled[-1] if labelled else None))
        time.sleep(BURST_PAUSE)
        if number == keys - 1:
            before_last()
        page.keyboard.press("1")
    return labelled


def back_to_label(page) -> None:  # type: ignore[no-untyped-def]
    page.get_by_test_id("stSidebarNav").get_by_role("link", name="Label").click()
    page.wait_for_url("**/label")


def test_leaving_label_right_after_keys_keeps_every_read_and_opens_the_page(server, browser, tmp_path: Path):
    folder = tmp_path / "films"
    folder.mkdir()
    rng = np.random.default_rng(3)
    for number in range(14):
        pixels = rng.integers(0, 4000, (64, 64)).astype(np.uint16)
        (folder / f"film-{number:02}.dcm").write_bytes(dicom_bytes(f"P{number}", pixels=pixels, modality="DX"))
    server.cli("users", "add", "chief", password=PASSWORD)
    server.cli("ingest", str(folder))
    page = new_page(browser)
    log_in(page, f"{server.url}/label", "chief", PASSWORD)
    labelled: list[int] = []
    for delay_ms in (50, 100, 150):
        wait_painted(page)
        time.sleep(0.5)  # the next images prefetched, as after a reader's first look
        keys = burst(page, 3, before_last=lambda: click_link_after_next_key(page, "train", delay_ms))  # noqa: B023
        # The click lands on the Train page, drawn (not a blank page).
        page.get_by_role("heading", name="Train").first.wait_for(timeout=60_000)
        page.wait_for_url("**/train")
        labelled += keys
        back_to_label(page)
        # A key pressed just after the click, while the Label page is still on screen: the viewer
        # has been left and reports nothing (its report reran its fragment after the page change).
        wait_painted(page)
        time.sleep(0.5)
        page.evaluate("() => document.querySelector('[data-testid=stSidebarNav] a[href$=\"/train\"]').click()")
        page.keyboard.press("1")
        page.get_by_role("heading", name="Train").first.wait_for(timeout=60_000)
        back_to_label(page)
    wait_painted(page)
    deadline = time.monotonic() + 15
    while set(labelled) - set(stored_reads(server)) and time.monotonic() < deadline:
        time.sleep(0.25)
    reads = stored_reads(server)
    assert {image_id: reads.get(image_id) for image_id in labelled} == dict.fromkeys(labelled, "normal")
    # A read that was lost put its image back on the to-do list, where a later key labelled it again.
    assert sorted(set(labelled)) == sorted(labelled), f"images labelled twice: {labelled}"
    log = (tmp_path / "server.log").read_text()
    assert "Couldn't find fragment" not in log, "a viewer report reran its fragment after the page was left"
    assert set(stored_reads(server)) == set(labelled), "a key after the click labelled nothing"
    # A tab closed with a read still waiting for the server asks first.
    burst(page, 1)
    with page.expect_event("dialog", timeout=5_000) as asked:
        page.close(run_before_unload=True)
    assert asked.value.type == "beforeunload"
    asked.value.dismiss()
