"""Browser-test fixtures: a real `python -m medreview serve` (worker + `streamlit run`) on a free
port with its own data dir, and Playwright driving Debian's Chromium."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
CHROMIUM = "/usr/bin/chromium"


@dataclass(frozen=True)
class Server:
    url: str
    data_dir: Path

    def cli(self, *args: str, password: str | None = None) -> str:
        """Run `python -m medreview ...` against this server's data dir."""
        env = {**os.environ, "MEDREVIEW_DATA_DIR": str(self.data_dir)}
        if password:
            env["MEDREVIEW_PASSWORD"] = password
        env.pop("MEDREVIEW_DATABASE_URL", None)
        completed = subprocess.run(
            [sys.executable, "-m", "medreview", *args], cwd=ROOT, env=env, capture_output=True, text=True
        )
        assert completed.returncode in (0, 2), completed.stderr
        return completed.stdout


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def require_chromium() -> None:
    if Path(CHROMIUM).exists():
        return
    message = f"{CHROMIUM} is missing (apt-get install chromium; .ci/run does this)"
    if os.environ.get("CI") == "true":
        pytest.fail(message)
    pytest.skip(message)


@contextlib.contextmanager
def serving(data_dir: Path) -> Iterator[Server]:
    """`python -m medreview serve` on ``data_dir`` and a free port, healthy, stopped afterwards;
    its log is server.log beside the data dir."""
    require_chromium()
    port = _free_port()
    env = {**os.environ, "MEDREVIEW_DATA_DIR": str(data_dir)}
    env.pop("MEDREVIEW_DATABASE_URL", None)
    env.pop("MEDREVIEW_REDIS_URL", None)
    log_path = data_dir.parent / "server.log"
    with log_path.open("w") as log:
        process = subprocess.Popen(
            [sys.executable, "-m", "medreview", "serve", "--headless", "--port", str(port)],
            cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
        )  # fmt: skip
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline:
        try:
            if urllib.request.urlopen(f"{url}/_stcore/health", timeout=2).read() == b"ok":
                break
        except OSError:
            time.sleep(0.5)
    else:
        os.killpg(process.pid, signal.SIGKILL)
        pytest.fail("streamlit did not become healthy:\n" + log_path.read_text()[-3000:])
    try:
        yield Server(url, data_dir)
    finally:
        os.killpg(process.pid, signal.SIGINT)
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)


@pytest.fixture
def server(tmp_path: Path) -> Iterator[Server]:
    """A server of the test's own, on an empty data dir."""
    with serving(tmp_path / "data") as started:
        yield started


def _launch(playwright):  # type: ignore[no-untyped-def]
    return playwright.chromium.launch(
        executable_path=CHROMIUM,
        headless=True,
        args=["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update"],
    )


@pytest.fixture(scope="session")
def launched_chromium():  # type: ignore[no-untyped-def]
    """One Chromium for the browser tests of a test process (they run in turn on one worker), kept
    in a holder so that a test finding it gone (a crash after another test's failure) gets a new one
    instead of every later browser test failing with it."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        holder = {"playwright": playwright, "browser": _launch(playwright)}
        yield holder
        if holder["browser"].is_connected():
            holder["browser"].close()


@pytest.fixture
def chromium(launched_chromium):  # type: ignore[no-untyped-def]
    """The shared Chromium (started again if it is gone); each test's tabs live in browser contexts
    of their own (new_page), closed after the test."""
    if not launched_chromium["browser"].is_connected():
        launched_chromium["browser"] = _launch(launched_chromium["playwright"])
    return launched_chromium["browser"]


@pytest.fixture
def shared_chromium(chromium):  # type: ignore[no-untyped-def]
    """The shared Chromium for a test on a server its file shares; its tabs are closed after it."""
    yield chromium
    for context in chromium.contexts:
        context.close()


@pytest.fixture
def browser(server: Server, chromium):  # type: ignore[no-untyped-def]
    """The shared Chromium, with no tab left open from another test; this test's are closed after
    it (a tab left open would keep reconnecting to its stopped server)."""
    for context in chromium.contexts:
        context.close()
    yield chromium
    for context in chromium.contexts:
        context.close()


def new_page(browser, width: int = 1600, height: int = 1000):  # type: ignore[no-untyped-def]
    """A tab in a fresh browser context (its own cookies: its own Streamlit session)."""
    context = browser.new_context(viewport={"width": width, "height": height})
    tab = context.new_page()
    tab.set_default_timeout(60_000)
    return tab


def open_page(page, url: str) -> None:  # type: ignore[no-untyped-def]
    page.goto(url)
    page.get_by_test_id("stApp").wait_for()
    page.wait_for_load_state("networkidle")


def log_in(page, url: str, username: str, password: str) -> None:  # type: ignore[no-untyped-def]
    open_page(page, url)
    page.get_by_label("User name").fill(username)
    page.get_by_label("Password", exact=True).fill(password)
    page.get_by_role("button", name="Log in").click()
    page.get_by_text(f"Signed in as {username}").wait_for()


def artifacts_dir(tmp_path: Path) -> Path:
    return Path(os.environ.get("MEDREVIEW_E2E_ARTIFACTS", tmp_path))
