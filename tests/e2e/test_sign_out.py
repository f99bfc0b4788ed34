"""What a sign-out leaves behind, in a real browser against `python -m medreview serve`: the next
person in the same tab sees nothing of the last one's session (upload results with original file
names, files chosen for upload, the PACS password), and an export or the audit trail is never at an
address that anyone (another client, the same browser after a logout) could fetch."""

from __future__ import annotations

import http.server
import json
import re
import threading
import urllib.parse
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from playwright.sync_api import expect

from tests.e2e.conftest import log_in, new_page

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

# Upload names are identifiers: they must not be shown to whoever signs in next.
NAMES = ("Smith_John_MRN778899.png", "Doe_Jane_MRN112233.png", "Roe_Richard_MRN445566.png", "Poe_Edgar_MRN990011.png")


def identifying_pngs(folder: Path) -> list[Path]:
    paths = []
    for number, name in enumerate(NAMES):
        path = folder / name
        pixels = np.random.default_rng(number).integers(0, 255, (64, 64), dtype=np.uint8)
        Image.fromarray(pixels).save(path)
        paths.append(path)
    return paths


# One study as a QIDO-RS search answers it (DICOM JSON): a patient's name and ID.
STUDY = {
    "0020000D": {"vr": "UI", "Value": ["1.2.826.0.1.3680043.8.498.1"]},
    "00100010": {"vr": "PN", "Value": [{"Alphabetic": "SMITH^JOHN"}]},
    "00100020": {"vr": "LO", "Value": ["MRN778899"]},
    "00080020": {"vr": "DA", "Value": ["20260105"]},
    "00080061": {"vr": "CS", "Value": ["CR"]},
}


class _SearchAnswer(http.server.BaseHTTPRequestHandler):
    def log_message(self, format: str, *args: object) -> None:  # keep the test output quiet
        pass

    def do_GET(self) -> None:
        body = json.dumps([STUDY]).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/dicom+json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


@pytest.fixture
def pacs() -> Iterator[str]:
    """A DICOMweb address whose study search finds one study (nothing else is needed here)."""
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _SearchAnswer)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}/dicom-web"
    server.shutdown()
    server.server_close()


def settle(page) -> None:  # type: ignore[no-untyped-def]
    """Wait until the app's script run has finished (until then the last run's elements linger)."""
    page.locator('[data-testid="stApp"][data-test-script-state="notRunning"]').wait_for()


def sign_in_here(page, username: str, password: str) -> None:  # type: ignore[no-untyped-def]
    """Sign in on the sign-in page already on screen (the same tab, no new page load)."""
    page.get_by_label("User name").fill(username)
    page.get_by_label("Password", exact=True).fill(password)
    page.get_by_role("button", name="Log in").click()
    page.get_by_text(f"Signed in as {username}").wait_for()
    settle(page)


def log_out(page) -> None:  # type: ignore[no-untyped-def]
    page.get_by_role("button", name="Log out").click()
    page.get_by_role("button", name="Log in").wait_for()
    expect(page.get_by_text("Signed in as")).to_have_count(0)


def test_the_next_person_in_the_same_tab_sees_nothing_of_the_last_ones_session(server, browser, tmp_path, pacs):
    server.cli("users", "add", "chief", password="chief-password")
    server.cli("users", "add", "boss", "--role", "admin", password="boss-password")
    server.cli("users", "add", "ann", "--role", "annotator", password="ann-password")
    first, second, third, fourth = identifying_pngs(tmp_path)
    page = new_page(browser)
    log_in(page, server.url, "chief", "chief-password")
    page.get_by_role("link", name="Upload").click()
    page.get_by_role("heading", name="Upload").wait_for()
    page.locator("input[type=file]").set_input_files([str(first), str(second)])
    page.get_by_role("button", name="Store 2 file(s)").click()
    page.get_by_text("2 stored, 0 duplicate, 0 rejected").wait_for()
    # Two more chosen but not stored: the admin leaves with them in the uploader.
    page.locator("input[type=file]").set_input_files([str(third), str(fourth)])
    page.get_by_role("button", name="Store 4 file(s)").wait_for()
    settle(page)
    page.get_by_text("Import from a PACS (DICOMweb)").click()
    page.get_by_label("Password", exact=True).fill("pacs-secret-1")
    page.get_by_label("DICOMweb address").fill(pacs)
    page.get_by_label("Patient ID").fill("MRN778899")
    page.get_by_label("Patient ID").press("Enter")
    settle(page)
    page.get_by_test_id("stExpanderDetails").get_by_role("button", name="Search").click()
    expect(page.get_by_test_id("stDataFrame")).to_have_count(2)  # the upload results and the studies found
    log_out(page)

    # An annotator signs in in the same tab and lands on the same page (its URL was kept).
    sign_in_here(page, "ann", "ann-password")
    page.get_by_role("heading", name="Upload").wait_for()
    expect(page.get_by_text("stored, ")).to_have_count(0)  # no results summary
    expect(page.get_by_test_id("stDataFrame")).to_have_count(0)  # no results table
    expect(page.get_by_role("button", name=re.compile(r"Store \d+ file"))).to_have_count(0)
    for name in NAMES:
        expect(page.get_by_text(name.removesuffix(".png"))).to_have_count(0)
    log_out(page)

    # The next admin finds the PACS form empty: no address, patient ID or password of the last one.
    sign_in_here(page, "boss", "boss-password")
    page.get_by_role("heading", name="Upload").wait_for()
    page.get_by_text("Import from a PACS (DICOMweb)").click()
    expect(page.get_by_label("Password", exact=True)).to_have_value("")
    expect(page.get_by_label("DICOMweb address")).to_have_value("")
    expect(page.get_by_label("Patient ID")).to_have_value("")
    expect(page.get_by_test_id("stDataFrame")).to_have_count(0)


def download(page, button: str, media_requests: list[str]):  # type: ignore[no-untyped-def]
    """Click ``button`` and return the download it starts; the server's media files the browser
    asked for meanwhile (Streamlit's /media/ route, which serves anyone with the URL) are added
    to ``media_requests``."""

    def note(request) -> None:  # type: ignore[no-untyped-def]
        if urllib.parse.urlparse(request.url).path.startswith("/media/"):
            media_requests.append(request.url)

    page.on("request", note)
    try:
        with page.expect_download() as info:
            page.get_by_role("button", name=button).click()
        return info.value
    finally:
        page.remove_listener("request", note)


def test_exports_reach_the_signed_in_session_only(server, browser, tmp_path):
    server.cli("users", "add", "chief", password="chief-password")
    server.cli("demo")  # 40 images, 32 labelled
    page = new_page(browser)
    media_requests: list[str] = []
    log_in(page, server.url, "chief", "chief-password")
    page.get_by_role("link", name="Team").click()
    page.get_by_role("tab", name="Export / import").click()
    labels = download(page, "Download labels.csv", media_requests)
    content = Path(labels.path()).read_text()
    assert content.startswith("image_id,") and len(content.splitlines()) == 33  # header + 32 labelled
    page.get_by_role("tab", name="Audit trail").click()
    trail = download(page, "Download these events as audit.csv", media_requests)
    assert "export" in Path(trail.path()).read_text()

    # Each file was handed over inside the page (a blob: address of that page), never at a URL on
    # the server that another client could fetch without the session's cookie.
    for saved in (labels, trail):
        assert saved.url.startswith("blob:"), saved.url
    assert media_requests == []
