"""Session plumbing shared by the pages: the cached store, the signed-in user, error display."""

from __future__ import annotations

from collections.abc import Callable
from typing import TypeVar

import streamlit as st

from medreview.errors import MedreviewError, PermissionDeniedError
from medreview.store import Store
from medreview.store.models import utcnow
from medreview.team.accounts import LoginSession, current_actor, logout
from medreview.team.roles import Actor
from medreview.team.settings import get_setting
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


def session_actor(role: str = "annotator") -> Actor:
    """The logged-in user for this run of a page. Stops the page (with a message) when nobody is
    logged in, the session expired, the account was deactivated, or the role is too low. Pages
    check this themselves, so a page reached by URL is as guarded as one reached by the menu."""
    login: LoginSession | None = st.session_state.get("login")
    if login is None:
        st.info("Please log in.")
        st.stop()
    store = get_store()
    now = utcnow()
    if login.expired(now, int(get_setting(store, "session_minutes"))):
        logout(store, login.actor, expired=True)
        del st.session_state["login"]
        st.warning("Your session expired; please log in again.")
        st.stop()
    try:
        actor = current_actor(store, login.actor)
    except PermissionDeniedError as error:
        del st.session_state["login"]
        st.error(plain(error))
        st.stop()
    login.actor = actor
    login.touch(now)
    if not actor.can(role):
        st.error(f"This page is for the {role} role and above; you are signed in as {actor.role}.")
        st.stop()
    return actor


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
