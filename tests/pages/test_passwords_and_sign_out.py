"""Through app.py in AppTest: a password an admin set is replaced before any page opens, users
change their own in the sidebar, a sign-in attempt made too soon waits, and a sign-out leaves the
next person nothing of the session. The same in a real browser: tests/e2e/test_accounts.py and
tests/e2e/test_sign_out.py."""

from __future__ import annotations

import pytest
import streamlit as st
from streamlit.testing.v1 import AppTest

from medreview.team.accounts import authenticate, create_user, issue_login_token, password_change_required
from medreview.team.roles import Actor
from tests.conftest import ADMIN
from tests.helpers import ROOT
from ui import session_cookie
from ui.text import plain

TIMEOUT = 60
ANN = Actor("ann", "annotator")


@pytest.fixture(autouse=True)
def fresh_cache():
    st.cache_resource.clear()
    yield
    st.cache_resource.clear()


def visit(monkeypatch: pytest.MonkeyPatch, cookie: str | None = None, page: str | None = None) -> AppTest:
    """A browser opening the app (at ``page``'s URL), sending ``cookie`` (see tests/pages/test_sessions.py)."""
    monkeypatch.setattr(session_cookie, "sent_token", lambda: cookie)
    app = AppTest.from_file(str(ROOT / "app.py"), default_timeout=TIMEOUT)
    if page is not None:
        app.switch_page(page)
    app.run()
    assert not app.exception, app.exception
    return app


def change_password_form(app: AppTest, current: str, new: str, repeat: str | None = None) -> AppTest:
    app.text_input(key="change_password_current").set_value(current)
    app.text_input(key="change_password_new").set_value(new)
    app.text_input(key="change_password_repeat").set_value(new if repeat is None else repeat)
    app.button(key="FormSubmitter:change_password_form-Change password").click().run()
    assert not app.exception, app.exception
    return app


def test_a_temporary_password_opens_no_page_until_the_user_chose_their_own(page_store, monkeypatch):
    create_user(page_store, ADMIN, "ann", "temporary-password-1", "annotator", temporary=True)
    first_token = issue_login_token(page_store, ANN)
    app = visit(monkeypatch, first_token, page="pages/upload.py")
    assert app.title[0].value == "Choose your password"  # not the Upload page of the URL
    assert "Change password" not in [expander.label for expander in app.sidebar.expander]
    change_password_form(app, "temporary-password-1", "my-own-password-1", repeat="a typo in it")
    assert app.error[0].value == "The two new passwords differ."
    change_password_form(app, "a wrong password", "my-own-password-1")
    assert "current password is wrong" in app.error[0].value
    change_password_form(app, "temporary-password-1", "my-own-password-1")
    assert app.title[0].value == "Upload"  # the page of the URL opens now
    assert app.sidebar.success[0].value == "Your password was changed."
    assert not password_change_required(page_store, ANN)
    assert authenticate(page_store, "ann", "my-own-password-1") == ANN
    # The old password's sign-ins ended; this session carries on with a new token.
    assert "login" not in visit(monkeypatch, first_token).session_state
    assert visit(monkeypatch, app.session_state["login"].token).title[0].value == "medreview"


def test_users_change_their_own_password_in_the_sidebar(page_store, monkeypatch):
    app = visit(monkeypatch, issue_login_token(page_store, ADMIN))
    assert app.title[0].value == "medreview"
    change_password_form(app, "admin-password-1", "a-new-admin-password")
    assert app.sidebar.success[0].value == "Your password was changed."
    assert app.session_state["login"].actor == ADMIN  # still signed in
    assert authenticate(page_store, ADMIN.username, "a-new-admin-password") == ADMIN


def test_a_sign_in_too_soon_after_failures_waits_with_a_clear_message(page_store, monkeypatch):
    # The attempts come at one moment, as a script's would: on a busy machine eight page runs
    # could otherwise outlast the waits they build up.
    from medreview.team import accounts

    moment = accounts.utcnow()
    monkeypatch.setattr(accounts, "utcnow", lambda: moment)
    app = visit(monkeypatch)
    answers = []
    for attempt in range(8):
        app.text_input(key="login_username").set_value(ADMIN.username)
        app.text_input(key="login_password").set_value(f"guess number {attempt}")
        app.button(key="FormSubmitter:login_form-Log in").click().run()
        answers.append(app.error[0].value)
    assert answers[:3] == [plain("wrong user name or password")] * 3
    # The right password straight after eight wrong ones: the wait has grown past these few seconds.
    app.text_input(key="login_password").set_value("admin-password-1")
    app.button(key="FormSubmitter:login_form-Log in").click().run()
    assert app.error[0].value.startswith(plain("too many failed sign-ins from here: wait "))
    assert "login" not in app.session_state


def test_signing_out_leaves_the_next_person_nothing_of_the_session(page_store, monkeypatch):
    app = visit(monkeypatch, issue_login_token(page_store, ADMIN))
    # What pages keep for the signed-in user: upload results with original names, PACS search
    # results, a widget's value.
    app.session_state["upload_results"] = [{"file": "Smith_John_MRN778899.dcm", "status": "stored", "reason": ""}]
    app.session_state["pacs_studies"] = "SMITH^JOHN MRN778899"
    app.session_state["pacs_password"] = "pacs-secret"
    app.run()
    app.sidebar.button(key="logout").click().run()
    assert not app.exception, app.exception
    left = {key: app.session_state[key] for key in app.session_state}
    kept = {"sign_in_notice", "session_cookie_tried", "session_cookie_wanted"}
    drawn_since = {"login_username", "login_password", "FormSubmitter:login_form-Log in", "session_cookie"}
    assert set(left) <= kept | drawn_since, left  # the sign-in page's own widgets, drawn empty
    assert (left["login_username"], left["login_password"]) == ("", "")
    assert "MRN778899" not in repr(left) and "pacs-secret" not in repr(left)
    assert app.info[0].value == plain("You logged out.")
