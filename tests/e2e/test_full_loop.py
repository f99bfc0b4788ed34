"""The whole loop in a real browser: `python -m medreview serve` (worker + `streamlit run`),
driven by Playwright in Debian's Chromium. Upload the 16 sample chest X-rays, label each one,
train a tiny model, run predictions, and see a Grad-CAM overlay beside the image."""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from tests.conftest import CXR_SAMPLES, require_shared_data

ROOT = Path(__file__).resolve().parents[2]
CHROMIUM = "/usr/bin/chromium"
pytestmark = pytest.mark.e2e


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@pytest.fixture
def server(tmp_path):
    if not Path(CHROMIUM).exists():
        message = f"{CHROMIUM} is missing (apt-get install chromium; .ci/run does this)"
        if os.environ.get("CI") == "true":
            pytest.fail(message)
        pytest.skip(message)
    port = _free_port()
    env = {**os.environ, "MEDREVIEW_DATA_DIR": str(tmp_path / "data")}
    env.pop("MEDREVIEW_DATABASE_URL", None)
    env.pop("MEDREVIEW_REDIS_URL", None)
    log = (tmp_path / "server.log").open("w")
    process = subprocess.Popen(
        [sys.executable, "-m", "medreview", "serve", "--headless", "--port", str(port)],
        cwd=ROOT,
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline:
        try:
            if urllib.request.urlopen(f"{url}/_stcore/health", timeout=2).read() == b"ok":
                break
        except OSError:
            time.sleep(0.5)
    else:
        process.kill()
        pytest.fail("streamlit did not become healthy:\n" + (tmp_path / "server.log").read_text()[-3000:])
    yield url
    os.killpg(process.pid, signal.SIGINT)
    try:
        process.wait(timeout=30)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)


@pytest.fixture
def page(server):
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=CHROMIUM,
            headless=True,
            args=["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update"],
        )
        context = browser.new_context(viewport={"width": 1600, "height": 1000})
        tab = context.new_page()
        tab.set_default_timeout(60_000)
        yield tab
        browser.close()


def _open(page, url: str) -> None:
    page.goto(url)
    page.get_by_test_id("stApp").wait_for()
    page.wait_for_load_state("networkidle")


def test_upload_label_train_predict_in_a_real_browser(server, page, tmp_path):
    samples = sorted(require_shared_data(CXR_SAMPLES).glob("*.jpeg"))
    assert len(samples) == 16
    artifacts = Path(os.environ.get("MEDREVIEW_E2E_ARTIFACTS", tmp_path))

    # Upload all 16 films at once.
    _open(page, f"{server}/upload")
    page.locator("input[type=file]").set_input_files([str(path) for path in samples])
    page.get_by_role("button", name="Store 16 file(s)").click()
    page.get_by_text("16 stored, 0 duplicate, 0 rejected").wait_for(timeout=120_000)

    # Label: each click saves and moves to the next unlabelled image.
    _open(page, f"{server}/label")
    for _ in range(16):
        heading = page.locator("h3").first
        heading.wait_for()
        name = heading.inner_text().strip()
        class_name = "normal" if name.startswith("NORMAL") else "pneumonia"
        # The button's accessible name carries its keyboard shortcut too ("normal 1").
        page.get_by_role("button", name=re.compile(rf"^{class_name}\b")).click()
        if _ < 15:
            page.wait_for_function(
                "name => !document.querySelector('h3') || document.querySelector('h3').innerText.trim() !== name",
                arg=name,
            )
    page.get_by_text("Every image is labelled.").wait_for()
    page.screenshot(path=str(artifacts / "label.png"), full_page=True)

    # Train a tiny model in the background worker and watch it finish.
    _open(page, f"{server}/train")
    page.get_by_label("Epochs").fill("2")  # no Enter: that would submit the form a second time
    page.get_by_role("button", name="Train").click()
    page.get_by_text("Run 1: succeeded").wait_for(timeout=300_000)
    page.get_by_text("ROC AUC").first.wait_for()
    page.screenshot(path=str(artifacts / "train.png"), full_page=True)

    # Predict all images and see the Grad-CAM overlay beside the image.
    _open(page, f"{server}/predictions")
    page.get_by_text("All images").click()
    page.get_by_role("button", name="Run predictions").click()
    page.get_by_text("Grad-CAM:").first.wait_for(timeout=300_000)
    images = page.locator("[data-testid=stImage] img")
    assert images.count() >= 2
    page.screenshot(path=str(artifacts / "predictions.png"), full_page=True)
