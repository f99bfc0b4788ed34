"""Session plumbing shared by the pages: the cached store, the signed-in user, error display.

A sign-in lives in ``st.session_state["login"]`` (a :class:`LoginSession` with the login token)
and in the browser's cookie (ui/session_cookie.py), which brings it back after a reload:
:func:`resume_from_cookie` once per browser session, :func:`start_login` after a password,
:func:`signed_in_actor` on every run (expiry, logout elsewhere, deactivation, role changes),
:func:`end_login` when it ends. A login that ends leaves a notice for the sign-in page.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TypeVar

import streamlit as st

from medreview.errors import MedreviewError, PermissionDeniedError
from medreview.store import Store
from medreview.store.models import utcnow
from medreview.team.accounts import (
    LoginSession,
    current_actor,
    issue_login_token,
    logout,
    password_change_required,
    refresh_login,
    resume_login,
)
from medreview.team.roles import Actor
from medreview.team.settings import get_setting
from ui import session_cookie
from ui.text import plain

T = TypeVar("T")


def leave_legacy_page_discovery() -> None:
    """Make this run go through app.py's st.navigation.

    Because the project has a `pages/` folder, Streamlit starts in its legacy auto-discovery
    mode until some run calls st.navigation: a fresh server's first request for a deep link
    (say /label) would run the page script without app.py (no login gate, no layout, the raw file
    list as navigation). app.py and every page call this before drawing anything; it switches the
    mode off and reruns, and the same URL then resolves through app.py.
    """
    from streamlit.runtime.pages_manager import PagesManager

    if PagesManager.uses_pages_directory:
        PagesManager.uses_pages_directory = False
        st.rerun()


leave_legacy_page_discovery()


@st.cache_resource(show_spinner=False)
def get_store() -> Store:
    return Store.open()


LOGIN_KEY = "login"
# Session state: a message for the sign-in page (why the last login ended, or was not resumed).
NOTICE_KEY = "sign_in_notice"
# Session state: the cookie the session opened with was tried (it is fixed for the session's life:
# after a logout it still holds the old token, which must not sign anyone in again).
_COOKIE_TRIED_KEY = "session_cookie_tried"
# All the session state a sign-in leaves behind: the sign-in page's notice and the cookie's
# bookkeeping. Everything else (widgets, upload results, PACS login and search results, anything a
# page keeps) belonged to the person who signed out and goes with them.
_KEPT_AT_SIGN_OUT = frozenset({NOTICE_KEY, _COOKIE_TRIED_KEY}) | session_cookie.STATE_KEYS


def client_address() -> str | None:
    """The address of this session's browser as Streamlit sees it (None: this machine, or unknown)."""
    address = st.context.ip_address
    return address if isinstance(address, str) and address else None  # AppTest hands back a mock


def _sentence(error: Exception) -> str:
    text = str(error)
    return text[:1].upper() + text[1:] + ("" if text.endswith(".") else ".")


def start_login(store: Store, actor: Actor, token: str | None = None) -> None:
    """Sign ``actor`` in for this browser session: a new login token (or the ``token`` it resumed
    with), kept by the browser for the session length. A password someone else set must be
    replaced before any page opens (app.py)."""
    token = token or issue_login_token(store, actor)
    must_change = password_change_required(store, actor)
    st.session_state[LOGIN_KEY] = LoginSession(actor, utcnow(), token=token, must_change_password=must_change)
    st.session_state.pop(NOTICE_KEY, None)
    session_cookie.remember(token, int(get_setting(store, "session_minutes")) * 60)


def end_login(notice: str | None = None) -> None:
    """Forget this session's sign-in and the browser's cookie; ``notice`` is shown at sign-in.
    The caller has already logged out or found the login refused (the token is dead either way).

    Whoever signs in next in this tab finds nothing of this session: every key of the session
    state but the sign-in bookkeeping goes (widget values too), and so do the files uploaded in it."""
    for key in list(st.session_state.keys()):
        if key not in _KEPT_AT_SIGN_OUT:
            del st.session_state[key]
    _forget_uploaded_files()
    session_cookie.forget()
    if notice:
        st.session_state[NOTICE_KEY] = notice
    else:
        st.session_state.pop(NOTICE_KEY, None)


def _forget_uploaded_files() -> None:
    """Drop the files this session uploaded (Streamlit keeps them for the session's life, and a
    file uploader drawn again with its old value would hand them to the next person)."""
    from streamlit.runtime import exists, get_instance
    from streamlit.runtime.scriptrunner import get_script_run_ctx

    context = get_script_run_ctx()
    if context is not None and exists():
        get_instance().uploaded_file_mgr.remove_session_files(context.session_id)


def resume_from_cookie(store: Store) -> None:
    """On the first run of a browser session (a reload, a new tab), sign in with the login token
    the browser sent, if any. A refused token (expired, revoked, unknown, user deactivated) leaves
    the sign-in page with a notice, and the cookie is cleared."""
    if LOGIN_KEY in st.session_state or st.session_state.get(_COOKIE_TRIED_KEY):
        return
    st.session_state[_COOKIE_TRIED_KEY] = True
    token = session_cookie.sent_token()
    if token is None:
        return
    try:
        actor = resume_login(store, token, client=client_address())
    except MedreviewError as error:
        end_login(_sentence(error))
        return
    start_login(store, actor, token)


def signed_in_actor(store: Store) -> Actor | None:
    """The signed-in user for this run, as the store has them now; None when nobody is signed in.

    Ends the login (with a notice, see :func:`end_login`) when it expired after ``session_minutes``
    of inactivity, its token was revoked (logout in another tab, a new password) or the account
    was deactivated.
    """
    login: LoginSession | None = st.session_state.get(LOGIN_KEY)
    if login is None:
        return None
    now = utcnow()
    minutes = int(get_setting(store, "session_minutes"))
    if login.expired(now, minutes):
        logout(store, login.actor, expired=True, token=login.token)
        end_login("Your session expired; please log in again.")
        return None
    try:
        actor = refresh_login(store, login.token, now) if login.token else current_actor(store, login.actor)
    except PermissionDeniedError as error:
        end_login(_sentence(error))
        return None
    login.actor = actor
    login.touch(now)
    if login.token:
        session_cookie.remember(login.token, minutes * 60)
    return actor


def session_actor(role: str = "annotator", on_refused: Callable[[str], None] | None = None) -> Actor:
    """The logged-in user for this run of a page, a fragment or a callback, as the store has them
    now (:func:`signed_in_actor`: the login token by its unique hash, its user and the session
    length: 0.7 ms on SQLite on this machine idle, 2.6 ms under load, against 100+ ms for a viewer
    report's rerun). Stops the run (with a message) when nobody is logged in, the session expired or
    was ended elsewhere, the account was deactivated, or the role is too low.

    Pages check this themselves, so a page reached by URL is as guarded as one reached by the menu.
    Every fragment and widget or component callback begins with it and acts as the user it returns
    (tests/ui/test_actor_checks.py walks them): they run without app.py's gate and the page script,
    and after a logout in the same tab the page's fragments stay registered (the sign-in page ends
    in st.stop(), which skips Streamlit's fragment cleanup), so a replayed message reaches them.

    ``on_refused`` draws the refusal (it is given the reason) instead of the message, before the
    run stops: the viewer tells the browser, which keeps the reads it could not save on screen."""
    signed_in = LOGIN_KEY in st.session_state
    actor = signed_in_actor(get_store()) if signed_in else None
    if actor is not None and actor.can(role):
        return actor
    if actor is not None:
        refusal = f"This page is for the {role} role and above; you are signed in as {actor.role}."
    else:
        refusal = str(st.session_state.get(NOTICE_KEY) or "Please log in.")
    if on_refused is not None:
        on_refused(refusal)
    elif actor is not None:
        st.error(refusal)
    elif signed_in:
        st.warning(plain(refusal))  # the login ended just now (expired, ended elsewhere, deactivated)
    else:
        st.info("Please log in.")
    st.stop()


def succeeded(action: Callable[[], object]) -> bool:
    """Run a service call; True if it worked, else show its message (kept on screen: callers
    rerun only on success, so the message is not wiped by the rerun)."""
    try:
        action()
    except MedreviewError as error:
        st.error(plain(error))
        return False
    return True


def attempt(action: Callable[[], T]) -> T | None:
    """Run a service call; show a MedreviewError as a message instead of a traceback."""
    try:
        return action()
    except MedreviewError as error:
        st.error(plain(error))
        return None
