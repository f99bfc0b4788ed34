"""An open Label tab whose sign-in ends in a real browser against `python -m medreview serve`: after a
logout in another tab of the same browser, or a deactivation from the command line, the next class
key saves no read, the tab says it was signed out, and the read it could not save stays on screen as
not saved (the viewer's reports rerun only its fragment, which checks the sign-in on each one)."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest
from playwright.sync_api import expect

from tests.e2e.conftest import log_in, new_page, open_page
from tests.e2e.viewer import canvas_pixel, press_class, wait_painted, wait_saved
from tests.helpers import dicom_bytes

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

PASSWORDS = {"chief": "chief-password", "ann": "ann-password", "bea": "bea-password"}


def read_images(server, username: str) -> dict[int, str]:  # type: ignore[no-untyped-def]
    """image id -> class of every read ``username`` has in the server's store."""
    with sqlite3.connect(server.data_dir / "medreview.db") as connection:
        rows = connection.execute(
            "SELECT annotations.image_id, label_classes.name FROM annotations"
            " JOIN users ON users.id = annotations.reader_id"
            " LEFT JOIN label_classes ON label_classes.id = annotations.label_class_id"
            " WHERE users.username = ?",
            (username,),
        ).fetchall()
    return dict(rows)


def label_tab(server, browser, username: str):  # type: ignore[no-untyped-def]
    page = new_page(browser)
    # Straight to /label: a click on Label while Home's first run was still importing pydicom failed
    # here once with "partially initialized module 'pydicom.dataset'" (two runs importing at once).
    log_in(page, f"{server.url}/label", username, PASSWORDS[username])
    wait_painted(page)
    return page


def shown_name(page) -> str:  # type: ignore[no-untyped-def]
    return page.locator(".mrv-header b").first.inner_text()


def assert_signed_out_with_unsaved(page, name: str, label: str, reason: str) -> None:  # type: ignore[no-untyped-def]
    signed_out = page.locator(".mrv-signed-out")
    expect(signed_out).to_contain_text("Signed out")
    expect(signed_out).to_contain_text(reason)
    expect(signed_out).to_contain_text("1 read(s) not saved")
    expect(page.locator(".mrv-unsaved li")).to_have_text([f"{name}: {label}"])
    expect(page.locator(".mrv-message")).to_have_text("Signed out: log in again to go on reading.")
    # The pixels are gone from the page: the canvas is black and nothing is painted any more.
    assert page.locator(".mrv-root").first.get_attribute("data-signed-out") == "true"
    assert page.locator(".mrv-root").first.get_attribute("data-painted-image") is None
    assert canvas_pixel(page)[:3] == [0, 0, 0]
    # Keys do nothing more (no read is queued for someone who is signed out).
    page.keyboard.press("1")
    expect(page.locator(".mrv-unsaved li")).to_have_count(1)


def test_a_class_key_after_the_sign_in_ended_saves_nothing_and_says_signed_out(server, browser, tmp_path: Path):
    folder = tmp_path / "films"
    folder.mkdir()
    for index in range(4):
        (folder / f"film-{index}.dcm").write_bytes(dicom_bytes(f"P{index}", modality="DX"))
    server.cli("users", "add", "chief", password=PASSWORDS["chief"])
    server.cli("users", "add", "ann", "--role", "annotator", password=PASSWORDS["ann"])
    server.cli("users", "add", "bea", "--role", "annotator", password=PASSWORDS["bea"])
    server.cli("ingest", str(folder))

    # A logout in another tab of the same browser (it shares the sign-in cookie).
    page = label_tab(server, browser, "ann")
    first = press_class(page, "1")
    wait_saved(page)
    assert read_images(server, "ann") == {first: "normal"}  # signed in, a key saves
    other_tab = page.context.new_page()
    open_page(other_tab, server.url)
    other_tab.get_by_text("Signed in as ann").wait_for()
    other_tab.get_by_role("button", name="Log out").click()
    other_tab.get_by_role("button", name="Log in").wait_for()
    wait_painted(page, not_image=first)
    name = shown_name(page)
    press_class(page, "2")
    assert_signed_out_with_unsaved(page, name, "pneumonia", "You were signed out")
    assert read_images(server, "ann") == {first: "normal"}

    # An administrator deactivates the reader while their Label tab is open.
    page = label_tab(server, browser, "bea")
    name = shown_name(page)
    server.cli("users", "deactivate", "bea")
    press_class(page, "1")
    assert_signed_out_with_unsaved(page, name, "normal", "no longer active")
    assert read_images(server, "bea") == {}
