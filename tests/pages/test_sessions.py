"""Sessions through app.py in AppTest: the login token the browser keeps, resuming from it, ending
it, and deep links. AppTest cannot send cookies (``st.context.cookies`` is empty there), so these
tests stand in for the browser's cookie by patching ``ui.session_cookie.sent_token``; the real
cookie round trip is in tests/e2e/test_sessions.py."""

from __future__ import annotations

import datetime as dt
import hashlib

import pytest
import streamlit as st
from sqlalchemy import select
from streamlit.testing.v1 import AppTest

from medreview.store.models import AuditEvent, LoginToken, utcnow
from medreview.team.accounts import create_user, issue_login_token, set_active
from medreview.team.roles import Actor
from tests.conftest import ADMIN
from tests.helpers import ROOT
from ui import session_cookie
from ui.text import plain

ADMIN_PASSWORD = "admin-password-1"  # tests/conftest.py page_store
TIMEOUT = 60


def new_visit(monkeypatch: pytest.MonkeyPatch, cookie: str | None = None, deep_link: str | None = None) -> AppTest:
    """A browser opening the app: with ``cookie`` as its medreview_session cookie, at the URL of
    ``deep_link`` (a page file, e.g. "pages/upload.py": /upload) or at the root."""
    monkeypatch.setattr(session_cookie, "sent_token", lambda: cookie)
    app = AppTest.from_file(str(ROOT / "app.py"), default_timeout=TIMEOUT)
    if deep_link is not None:
        # Before the first run AppTest names the page by its file name, as the URL /upload does.
        app.switch_page(deep_link)
    return app.run()


def log_in(app: AppTest, username: str, password: str) -> AppTest:
    app.text_input(key="login_username").set_value(username)
    app.text_input(key="login_password").set_value(password)
    app.form_submit_button[0].click().run()
    assert not app.exception, app.exception
    return app


def wanted_cookie(app: AppTest) -> dict:
    """What the page asked the browser's cookie to hold (ui/session_cookie.py)."""
    return app.session_state["session_cookie_wanted"]


def token_row(store, token: str) -> LoginToken:
    with store.db.read() as session:
        row = session.scalar(
            select(LoginToken).where(LoginToken.token_hash == hashlib.sha256(token.encode()).hexdigest())
        )
    assert row is not None
    return row


@pytest.fixture(autouse=True)
def fresh_cache():
    st.cache_resource.clear()
    yield
    st.cache_resource.clear()


def test_logging_in_hands_the_browser_a_token_the_store_keeps_hashed(page_store, monkeypatch):
    app = log_in(new_visit(monkeypatch), ADMIN.username, ADMIN_PASSWORD)
    assert app.title[0].value == "medreview"  # Home
    login = app.session_state["login"]
    assert login.actor == ADMIN and login.token
    cookie = wanted_cookie(app)
    assert cookie["token"] == login.token
    assert cookie["max_age"] == 480 * 60  # the default session_minutes
    assert token_row(page_store, login.token).revoked_at is None


def test_a_reload_with_the_cookie_resumes_the_sign_in(page_store, monkeypatch):
    token = issue_login_token(page_store, ADMIN)
    app = new_visit(monkeypatch, cookie=token)
    assert not app.exception, app.exception
    assert app.session_state["login"].actor == ADMIN
    assert app.title[0].value == "medreview"
    assert "login_username" not in {widget.key for widget in app.text_input}  # no sign-in form
    assert "Signed in as" in app.sidebar.caption[0].value


def test_a_deep_link_opens_its_page_after_signing_in(page_store, monkeypatch):
    app = new_visit(monkeypatch, deep_link="pages/upload.py")
    assert app.text_input(key="login_username")  # the sign-in form, at /upload
    assert [title.value for title in app.title] == ["medreview"]
    log_in(app, ADMIN.username, ADMIN_PASSWORD)
    assert app.title[0].value == "Upload"


def test_a_deep_link_with_the_cookie_opens_its_page_at_once(page_store, monkeypatch):
    token = issue_login_token(page_store, ADMIN)
    app = new_visit(monkeypatch, cookie=token, deep_link="pages/settings.py")
    assert not app.exception, app.exception
    assert app.title[0].value == "Settings"


def test_a_page_above_the_role_refuses_a_deep_link_with_a_message(page_store, monkeypatch):
    create_user(page_store, ADMIN, "ann", "annotator-password", "annotator")
    app = new_visit(monkeypatch, deep_link="pages/train.py")
    log_in(app, "ann", "annotator-password")
    assert app.error[0].value == "The Train page is for the admin role and above; you are signed in as annotator."
    assert not app.title  # nothing of the Train page ran
    # Signed in, the same page is still refused, from the cookie as well.
    token = app.session_state["login"].token
    again = new_visit(monkeypatch, cookie=token, deep_link="pages/team.py")
    assert "The Team page is for the admin role" in again.error[0].value


def test_logout_revokes_the_token_and_clears_the_cookie(page_store, monkeypatch):
    token = issue_login_token(page_store, ADMIN)
    app = new_visit(monkeypatch, cookie=token)
    app.sidebar.button(key="logout").click().run()
    assert not app.exception, app.exception
    assert "login" not in app.session_state
    assert app.info[0].value == plain("You logged out.")
    assert app.text_input(key="login_username")
    assert token_row(page_store, token).revoked_at is not None
    assert wanted_cookie(app) == {"token": "", "max_age": 0}
    # The session still "has" the cookie it opened with: it must not sign in again from it.
    app.run()
    assert "login" not in app.session_state
    # Nor does a reload that still sends it (the browser had not cleared it yet).
    reload = new_visit(monkeypatch, cookie=token)
    assert "login" not in reload.session_state
    assert "signed out" in reload.info[0].value
    assert wanted_cookie(reload) == {"token": "", "max_age": 0}
    with page_store.db.read() as session:
        actions = list(session.scalars(select(AuditEvent.action).order_by(AuditEvent.id)))
    assert actions[-3:] == ["login.resume", "logout", "login.failed"]  # resumed from the cookie


def test_an_unknown_or_expired_cookie_shows_the_sign_in_page_not_an_error(page_store, monkeypatch):
    app = new_visit(monkeypatch, cookie="not-a-token-we-issued")
    assert not app.exception, app.exception
    assert app.text_input(key="login_username")
    assert "not known" in app.info[0].value
    assert wanted_cookie(app) == {"token": "", "max_age": 0}
    log_in(app, ADMIN.username, ADMIN_PASSWORD)  # and signing in works as usual
    assert app.session_state["login"].actor == ADMIN


def test_deactivation_ends_a_running_session_and_its_reload(page_store, monkeypatch):
    create_user(page_store, ADMIN, "ann", "annotator-password", "annotator")
    app = log_in(new_visit(monkeypatch), "ann", "annotator-password")
    token = app.session_state["login"].token
    set_active(page_store, ADMIN, "ann", False)
    app.run()  # the next click or key press
    assert "login" not in app.session_state
    assert "no longer active" in app.info[0].value
    assert wanted_cookie(app) == {"token": "", "max_age": 0}
    reload = new_visit(monkeypatch, cookie=token)
    assert "login" not in reload.session_state
    assert reload.text_input(key="login_username")


def test_a_role_change_applies_to_the_menu_at_once(page_store, monkeypatch):
    from medreview.team.accounts import set_role

    create_user(page_store, ADMIN, "ann", "annotator-password", "annotator")
    app = log_in(new_visit(monkeypatch), "ann", "annotator-password")
    set_role(page_store, ADMIN, "ann", "reviewer")
    app.run()
    assert app.session_state["login"].actor == Actor("ann", "reviewer")
    assert "(reviewer)" in app.sidebar.caption[0].value


def test_an_expired_cookie_shows_the_sign_in_page_with_a_notice(page_store, monkeypatch):
    token = issue_login_token(page_store, ADMIN, now=utcnow() - dt.timedelta(minutes=481))
    app = new_visit(monkeypatch, cookie=token)
    assert not app.exception, app.exception
    assert "login" not in app.session_state
    assert app.info[0].value == plain("Your session expired; please log in again.")
    assert wanted_cookie(app) == {"token": "", "max_age": 0}


def test_inactivity_ends_the_session_and_revokes_its_token(page_store, monkeypatch):
    token = issue_login_token(page_store, ADMIN)
    app = new_visit(monkeypatch, cookie=token)
    app.session_state["login"].last_seen = utcnow() - dt.timedelta(minutes=481)
    app.run()
    assert "login" not in app.session_state
    assert "session expired" in app.info[0].value
    assert token_row(page_store, token).revoked_at is not None
