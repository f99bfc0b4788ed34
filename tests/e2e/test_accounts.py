"""Accounts in a real browser against `python -m medreview serve`: a password an admin set (a new
account, a reset on the Team page) is replaced at the next sign-in before any page opens, users
change their own in the sidebar, guessing a password waits, and page loads are not sign-ins in the
audit trail."""

from __future__ import annotations

import re
import sqlite3
import time

import pytest
from playwright.sync_api import expect

from tests.e2e.conftest import log_in, new_page, open_page

pytestmark = [pytest.mark.e2e, pytest.mark.slow]


def settle(page) -> None:  # type: ignore[no-untyped-def]
    """Wait until the app's script run has finished (until then the last run's elements linger)."""
    page.locator('[data-testid="stApp"][data-test-script-state="notRunning"]').wait_for()


def audit_actions(server) -> list[tuple[str, str]]:  # type: ignore[no-untyped-def]
    """(actor, action) of every audit event in the server's SQLite store, oldest first."""
    with sqlite3.connect(server.data_dir / "medreview.db") as connection:
        return connection.execute("SELECT actor, action FROM audit_events ORDER BY id").fetchall()


def wait_for_cookie(page, other_than: str | None = None) -> str:  # type: ignore[no-untyped-def]
    """The sign-in cookie's value, once set (to something else than ``other_than``): it is written
    by script in the page shortly after the run that asks for it."""
    deadline = time.monotonic() + 20
    while True:
        values = [cookie["value"] for cookie in page.context.cookies() if cookie["name"] == "medreview_session"]
        if values and values[0] and values[0] != other_than:
            return values[0]
        assert time.monotonic() < deadline, "the sign-in cookie was never set"
        time.sleep(0.2)


def wait_for_password_changes(server, count: int) -> None:  # type: ignore[no-untyped-def]
    """Wait until ``count`` password changes are in the audit trail."""
    deadline = time.monotonic() + 30
    while len([action for _, action in audit_actions(server) if action == "user.password"]) < count:
        assert time.monotonic() < deadline, f"fewer than {count} password changes were recorded"
        time.sleep(0.1)


def choose_password(page, current: str, new: str) -> None:  # type: ignore[no-untyped-def]
    page.get_by_label("Current password").fill(current)
    page.get_by_label(re.compile("^New password")).fill(new)
    page.get_by_label("Repeat the new password").fill(new)
    page.get_by_role("button", name="Change password").click()


def sign_in_here(page, username: str, password: str) -> None:  # type: ignore[no-untyped-def]
    page.get_by_label("User name").fill(username)
    page.get_by_label("Password", exact=True).fill(password)
    page.get_by_role("button", name="Log in").click()


def test_a_password_an_admin_set_is_replaced_at_the_next_sign_in(server, browser):
    server.cli("users", "add", "chief", password="chief-password")
    admin = new_page(browser)
    log_in(admin, server.url, "chief", "chief-password")
    # Home's first run imports pydicom: two threads importing it at once for the first time can
    # fail (a rerun starts the next page before the last run ends), which is not what this tests.
    settle(admin)
    admin.get_by_role("link", name="Team").click()
    admin.get_by_role("heading", name="Team").wait_for()
    settle(admin)
    admin.get_by_label("User name").fill("ann")
    admin.get_by_label("Initial password").fill("initial-password-1")
    admin.get_by_role("button", name="Add user").click()
    settle(admin)

    # The new user signs in with the admin's password and gets no page before choosing their own,
    # not even by URL.
    ann = new_page(browser)
    log_in(ann, server.url, "ann", "initial-password-1")
    ann.get_by_role("heading", name="Choose your password").wait_for()
    expect(ann.get_by_role("link", name="Upload")).to_have_count(0)
    first_cookie = wait_for_cookie(ann)
    open_page(ann, f"{server.url}/upload")
    ann.get_by_role("heading", name="Choose your password").wait_for()
    expect(ann.get_by_role("heading", name="Upload")).to_have_count(0)
    choose_password(ann, "initial-password-1", "initial-password-1")
    ann.get_by_text("choose a password other than the current one", exact=False).wait_for()
    choose_password(ann, "initial-password-1", "ann-own-password-1")
    ann.get_by_role("heading", name="Upload").wait_for()  # the page of the URL opens
    wait_for_cookie(ann, other_than=first_cookie)  # the session carries on with a new login token
    ann.reload()
    ann.get_by_role("heading", name="Upload").wait_for()
    ann.get_by_text("Signed in as ann").wait_for()

    # The admin resets ann's password from the Team page: ann's session ends at once...
    settle(admin)
    admin.locator(".st-key-team_edit_user").click()
    admin.get_by_role("option", name="ann").click()
    admin.get_by_label("Temporary password").fill("temporary-password-2")
    admin.get_by_role("button", name="Reset password").click()
    admin.get_by_text("ann signs in with the temporary password, then chooses their own.").wait_for()
    ann.get_by_role("link", name="Home").click()
    ann.get_by_role("button", name="Log in").wait_for()
    ann.get_by_text(re.compile("You were signed out")).wait_for()
    settle(ann)
    # ...the old password no longer works, and the temporary one must be replaced again.
    sign_in_here(ann, "ann", "ann-own-password-1")
    ann.get_by_text("wrong user name or password").wait_for()
    sign_in_here(ann, "ann", "temporary-password-2")
    ann.get_by_role("heading", name="Choose your password").wait_for()
    choose_password(ann, "temporary-password-2", "ann-own-password-2")
    ann.get_by_role("heading", name="medreview").wait_for()

    # Users change their own password in the sidebar, any time, giving the current one.
    settle(ann)
    ann.get_by_test_id("stSidebar").locator("summary").filter(has_text="Change password").click()
    choose_password(ann, "ann-own-password-2", "ann-own-password-3")
    # The sidebar still says "Your password was changed." from the page above until a run ends:
    # wait for this change to be on the record (a Log out clicked before it would go first).
    wait_for_password_changes(server, 4)
    settle(ann)
    ann.get_by_text("Your password was changed.").wait_for()
    ann.get_by_text("Signed in as ann").wait_for()
    ann.get_by_role("button", name="Log out").click()
    ann.get_by_role("button", name="Log in").wait_for()
    settle(ann)  # the logout's run ends by clearing the cookie; a form filled before then is drawn anew
    sign_in_here(ann, "ann", "ann-own-password-2")
    ann.get_by_text("wrong user name or password").wait_for()
    sign_in_here(ann, "ann", "ann-own-password-3")
    ann.get_by_text("Signed in as ann").wait_for()
    ann.get_by_role("heading", name="medreview").wait_for()  # no password change asked for this time

    # Who set each password: ann, the admin's reset, ann after it, ann in the sidebar.
    changes = [actor for actor, action in audit_actions(server) if action == "user.password"]
    assert changes == ["ann", "chief", "ann", "ann"]


def answer_to_sign_in(page, server, username: str, password: str) -> str:  # type: ignore[no-untyped-def]
    """Sign in and return the message the sign-in page answers with (a sign-in attempt is on the
    record before its answer is on screen: wait for the record, then for the screen)."""
    attempts = len([action for _, action in audit_actions(server) if action.startswith("login")])
    sign_in_here(page, username, password)
    while len([action for _, action in audit_actions(server) if action.startswith("login")]) == attempts:
        time.sleep(0.1)
    settle(page)
    return page.get_by_test_id("stAlert").inner_text()


def test_guessing_a_password_waits_and_the_right_one_works_after_the_wait(server, browser):
    server.cli("users", "add", "chief", password="chief-password")
    page = new_page(browser)
    open_page(page, server.url)
    # Guessing as fast as the sign-in page allows: a few wrong passwords are answered as such, then
    # each counted failure doubles the wait before the next attempt (1 s, 2 s, 4 s, ...).
    answers: list[str] = []
    waits: list[int] = []
    wait = 0
    while wait < 4:
        assert len(answers) < 16, answers  # the wait has grown well before this
        time.sleep(wait)
        answers.append(answer_to_sign_in(page, server, "chief", f"guess number {len(answers)}"))
        waiting = re.search(r"wait (\d+) seconds?, then try again", answers[-1])
        wait = int(waiting.group(1)) if waiting else 0
        waits += [wait] if wait else []
    assert answers[:3] == ["wrong user name or password"] * 3  # a few typos are free
    assert waits == sorted(waits) and waits[-1] >= 2 * waits[0], waits  # the wait grows
    assert all(re.fullmatch(r"too many failed sign-ins from here: wait \d+ seconds?, then try again", answer)
               for answer in answers if not answer.startswith("wrong"))  # fmt: skip
    # The right password now does not sign in: the client must sit out the wait...
    refusal = answer_to_sign_in(page, server, "chief", "chief-password")
    assert refusal.startswith("too many failed sign-ins from here: wait ")
    expect(page.get_by_text("Signed in as")).to_have_count(0)
    # ...and it is not a lock: after the wait the right password signs in.
    time.sleep(int(re.search(r"wait (\d+) second", refusal).group(1)))
    sign_in_here(page, "chief", "chief-password")
    page.get_by_text("Signed in as chief").wait_for()
    actions = [action for _, action in audit_actions(server)]
    assert actions.count("login.failed") >= 5 and actions.count("login.throttled") >= 2
    assert actions[-1] == "login"


def test_page_loads_are_not_sign_ins_in_the_audit_trail(server, browser):
    server.cli("users", "add", "chief", password="chief-password")
    page = new_page(browser)
    log_in(page, server.url, "chief", "chief-password")
    wait_for_cookie(page)
    for _ in range(5):  # five reloads in a minute
        page.reload()
        page.get_by_text("Signed in as chief").wait_for()
    sign_ins = [event for event in audit_actions(server) if event[1].startswith("login")]
    # One sign-in with the password, and one resumed session from the cookie: not one per page load.
    assert sign_ins == [("chief", "login"), ("chief", "login.resume")]
