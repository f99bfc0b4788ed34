"""UI plumbing shared by the pages: the store, cached decoding, error display.

This is the only place (with the pages) that imports streamlit; ``medreview`` never does.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TypeVar

import streamlit as st

from medreview.errors import MedreviewError, PermissionDeniedError
from medreview.imaging.decoding import DecodedImage, Window
from medreview.reading.catalog import decode_image
from medreview.store import Store
from medreview.store.models import utcnow
from medreview.team.accounts import Actor, LoginSession, current_actor, logout
from medreview.team.settings import get_setting

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


@st.cache_resource(show_spinner=False, max_entries=24)
def decoded(image_id: int) -> DecodedImage:
    # Stored originals never change, so an image id's decoded pixels can be cached for good.
    return decode_image(get_store(), image_id)


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
        st.error(str(error))
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
        st.error(str(error))
        return False
    return True


def attempt(action: Callable[[], T]) -> T | None:
    """Run a service call; show a MedreviewError as a message instead of a traceback."""
    try:
        return action()
    except MedreviewError as error:
        st.error(str(error))
        return None


def window_controls(image: DecodedImage, key: str) -> tuple[int, Window | None]:
    """Frame slider and window/level controls; returns (frame index, window or None for colour)."""
    from medreview.imaging.decoding import default_display_window, window_choices

    frame_index = 0
    if image.frame_count > 1:
        frame_index = st.slider("Frame", 1, image.frame_count, key=f"{key}_frame") - 1
    if image.is_color:
        return frame_index, None
    options: dict[str, Window | None] = {**window_choices(image, frame_index), "Manual": None}
    choice = st.selectbox("Window", list(options), key=f"{key}_preset")
    window = options.get(choice)
    if window is None:
        start = default_display_window(image, frame_index)
        center_column, width_column = st.columns(2)
        center = center_column.number_input("Center", value=float(start.center), key=f"{key}_center")
        width = width_column.number_input(
            "Width", min_value=1.0, value=float(max(start.width, 1.0)), key=f"{key}_width"
        )
        window = Window(center=center, width=width)
    return frame_index, window
