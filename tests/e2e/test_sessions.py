"""Sessions in a real browser against `python -m medreview serve`: a reload (F5) keeps the sign-in
and the page, a deep link opens its page after signing in, and a logout or a deactivation ends
the sign-in for good, even for a browser that still sends the old cookie."""

from __future__ import annotations

import hashlib
import re
import sqlite3
import time

import pytest
from playwright.sync_api import expect

from tests.e2e.conftest import log_in, new_page, open_page

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

COOKIE = "medreview_session"


def session_cookie(page):  # type: ignore[no-untyped-def]
    """The medreview_session cookie of the page's browser context, or None."""
    return next((cookie for cookie in page.context.cookies() if cookie["name"] == COOKIE), None)


def wait_for_cookie(page, present: bool = True):  # type: ignore[no-untyped-def]
    """The cookie is written by script in the page shortly after the run that asks for it."""
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        cookie = session_cookie(page)
        if (cookie is not None) == present:
            return cookie
        time.sleep(0.2)
    raise AssertionError(f"the {COOKIE} cookie was {'never set' if present else 'never cleared'}")


def reload(page) -> None:  # type: ignore[no-untyped-def]
    """F5: a new page load, so a new Streamlit session that knows only the cookie."""
    page.reload()
    page.get_by_test_id("stApp").wait_for()
    page.wait_for_load_state("networkidle")


def stored_token_hashes(server) -> dict[str, str | None]:  # type: ignore[no-untyped-def]
    """token_hash -> revoked_at of every login token in the server's SQLite store."""
    with sqlite3.connect(server.data_dir / "medreview.db") as connection:
        return dict(connection.execute("SELECT token_hash, revoked_at FROM login_tokens").fetchall())


def assert_signed_out(page, notice: str | None = None) -> None:  # type: ignore[no-untyped-def]
    page.get_by_role("button", name="Log in").wait_for()
    if notice is not None:
        page.get_by_text(notice).wait_for()
    # Polls: the previous run's sidebar stays on screen until the new run has finished.
    expect(page.get_by_text("Signed in as")).to_have_count(0)


def test_reload_keeps_the_sign_in_and_the_page(server, browser):
    server.cli("users", "add", "chief", password="chief-password")
    page = new_page(browser)
    log_in(page, server.url, "chief", "chief-password")
    cookie = wait_for_cookie(page)
    assert cookie["path"] == "/" and cookie["sameSite"] == "Strict"
    assert not cookie["secure"]  # plain http here; https pages set Secure
    assert 470 * 60 < cookie["expires"] - time.time() <= 480 * 60  # the default session of 480 minutes
    # The store has the token's SHA-256, never the token.
    hashes = stored_token_hashes(server)
    assert hashlib.sha256(cookie["value"].encode()).hexdigest() in hashes
    assert cookie["value"] not in repr(hashes)

    page.get_by_role("link", name="Upload").click()
    page.get_by_role("heading", name="Upload").wait_for()
    assert page.url.endswith("/upload")
    reload(page)
    page.get_by_text("Signed in as chief").wait_for()
    page.get_by_role("heading", name="Upload").wait_for()
    assert page.url.endswith("/upload")
    assert page.get_by_role("button", name="Log in").count() == 0
    # A second tab of the same browser is signed in too.
    other_tab = page.context.new_page()
    open_page(other_tab, f"{server.url}/settings")
    other_tab.get_by_role("heading", name="Settings").wait_for()


def test_a_deep_link_opens_its_page_after_signing_in(server, browser):
    server.cli("users", "add", "chief", password="chief-password")
    server.cli("users", "add", "ann", "--role", "annotator", password="ann-password")
    page = new_page(browser)
    open_page(page, f"{server.url}/label")
    page.get_by_role("button", name="Log in").wait_for()
    assert page.url.endswith("/label")
    page.get_by_label("User name").fill("ann")
    page.get_by_label("Password", exact=True).fill("ann-password")
    page.get_by_role("button", name="Log in").click()
    page.get_by_text("Signed in as ann").wait_for()
    page.get_by_role("heading", name="Label").wait_for()
    assert page.url.endswith("/label")
    # A page above the role is refused with a message, not opened and not silently swapped for Home.
    open_page(page, f"{server.url}/team")
    page.get_by_text("The Team page is for the admin role and above; you are signed in as annotator.").wait_for()
    assert page.get_by_role("heading", name="Team").count() == 0


def test_logout_then_reload_is_signed_out(server, browser):
    server.cli("users", "add", "chief", password="chief-password")
    page = new_page(browser)
    log_in(page, server.url, "chief", "chief-password")
    cookie = wait_for_cookie(page)
    page.get_by_role("button", name="Log out").click()
    assert_signed_out(page, "You logged out.")
    wait_for_cookie(page, present=False)
    reload(page)
    assert_signed_out(page)
    assert stored_token_hashes(server)[hashlib.sha256(cookie["value"].encode()).hexdigest()] is not None
    # A browser that kept the old cookie (a copy of it) gets nothing from it: revoked server-side.
    page.context.add_cookies([{key: cookie[key] for key in ("name", "value", "domain", "path", "sameSite")}])
    reload(page)
    assert_signed_out(page, re.compile("You were signed out"))
    wait_for_cookie(page, present=False)  # and the dead cookie is cleared


def test_a_deactivated_users_reload_is_signed_out(server, browser):
    server.cli("users", "add", "chief", password="chief-password")
    server.cli("users", "add", "ann", "--role", "annotator", password="ann-password")
    page = new_page(browser)
    log_in(page, server.url, "ann", "ann-password")
    wait_for_cookie(page)
    server.cli("users", "deactivate", "ann")
    reload(page)
    assert_signed_out(page, re.compile("no longer active"))
    wait_for_cookie(page, present=False)
    # Signing in with the password is refused as well.
    page.get_by_label("User name").fill("ann")
    page.get_by_label("Password", exact=True).fill("ann-password")
    page.get_by_role("button", name="Log in").click()
    page.get_by_text("wrong user name or password").wait_for()
