"""medreview: the Streamlit entry point. Login gate, then the pages the user's role may see.

Pages live in pages/, their shared Streamlit pieces in ui/; all logic lives in medreview/. Each
page checks the login and role again (ui/session.py session_actor), and each service checks the
role a third time.

A sign-in survives a reload: the browser keeps a login token in a cookie (ui/session_cookie.py)
and a new session resumes from it before anything is drawn. A user who signed in with a password
an admin set chooses their own before any page opens; everyone can change theirs in the sidebar.

Deep links: Streamlit names a page by its URL path (a page's script hash is the hash of its
url_path), and a rerun stays on the page it ran. So before sign-in, every page's URL path is
registered as a hidden stand-in that shows the sign-in form: /label keeps its URL, and the rerun
after signing in runs the real Label page. A page above the user's role is registered as a hidden
page that says so, rather than being missing (which would fall back to Home without a word).
"""

from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from pathlib import Path

# pydicom is imported in full here, before any page: a run interrupted while its page imported
# pydicom (a click on another page during the first visit) left the next run importing it at the
# same time, which found a half-initialised pydicom.dataset ("cannot import name 'Dataset'").
# app.py runs first in every run, so a second run waits here until the first import is complete.
import pydicom.dataset  # noqa: F401
import streamlit as st
from streamlit.navigation.page import StreamlitPage

from medreview.errors import MedreviewError
from medreview.team.accounts import (
    MIN_PASSWORD_LENGTH,
    authenticate,
    change_password,
    create_first_admin,
    logout,
    needs_first_admin,
)
from medreview.team.roles import Actor
from ui import session_cookie
from ui.session import (
    LOGIN_KEY,
    NOTICE_KEY,
    client_address,
    end_login,
    get_store,
    leave_legacy_page_discovery,
    resume_from_cookie,
    signed_in_actor,
    start_login,
)
from ui.text import plain


@dataclass(frozen=True)
class AppPage:
    script: str  # relative to this file
    title: str
    icon: str
    role: str = "annotator"  # the lowest role that may open it

    @property
    def url_path(self) -> str:
        """What st.Page infers from the file name: pages/label.py is /label."""
        return Path(self.script).stem


# Session state: the user's own password was just changed (said once, in the sidebar).
PASSWORD_CHANGED_KEY = "password_changed"

HOME = AppPage("pages/home.py", "Home", ":material/home:")
APP_PAGES = (
    HOME,
    AppPage("pages/upload.py", "Upload", ":material/upload:"),
    AppPage("pages/label.py", "Label", ":material/label:"),
    AppPage("pages/browse.py", "Browse", ":material/folder_open:"),
    AppPage("pages/predictions.py", "Predictions", ":material/insights:"),
    AppPage("pages/review.py", "Review", ":material/fact_check:", "reviewer"),
    AppPage("pages/studies.py", "Studies", ":material/science:", "reviewer"),
    AppPage("pages/train.py", "Train", ":material/model_training:", "admin"),
    AppPage("pages/team.py", "Team", ":material/group:", "admin"),
    AppPage("pages/settings.py", "Settings", ":material/settings:", "admin"),
)

leave_legacy_page_discovery()
# A local icon: a ":material/...:" page icon makes every browser fetch it from fonts.gstatic.com.
st.set_page_config(page_title="medreview", page_icon=str(Path(__file__).parent / "ui" / "icon.png"), layout="wide")
# Streamlit starts every page 6rem below the top, under a toolbar of 3.75rem: at 1280x720 that is
# ~180 px of nothing above each title, which pushed the viewer's image below the fold. A style-only
# st.html takes no room on the page.
st.html(
    "<style>[data-testid='stMainBlockContainer'] { padding-top: 3.25rem; padding-bottom: 2rem; }"
    " [data-testid='stMainBlockContainer'] h1 { padding-top: 0.25rem; }</style>"
)
store = get_store()


def first_admin_ui() -> None:
    st.title("Welcome to medreview")
    st.write("This store has no accounts yet. Create the administrator account to begin.")
    with st.form("first_admin_form"):
        username = st.text_input("User name", key="first_admin_username")
        password = st.text_input("Password (at least 10 characters)", type="password", key="first_admin_password")
        repeat = st.text_input("Repeat the password", type="password", key="first_admin_repeat")
        if st.form_submit_button("Create administrator", type="primary"):
            if password != repeat:
                st.error("The two passwords differ.")
                return
            try:
                actor = create_first_admin(store, username, password)
                start_login(store, actor)
            except MedreviewError as error:
                st.error(plain(error))
                return
            st.rerun()


def login_ui() -> None:
    st.title("medreview")
    notice = st.session_state.get(NOTICE_KEY)
    if notice:
        st.info(plain(notice))
    with st.form("login_form"):
        username = st.text_input("User name", key="login_username")
        password = st.text_input("Password", type="password", key="login_password")
        if st.form_submit_button("Log in", type="primary"):
            try:
                actor = authenticate(store, username, password, client=client_address())
                start_login(store, actor)
            except MedreviewError as error:
                st.error(plain(error))
                return
            st.rerun()


def sign_in_page() -> None:
    if needs_first_admin(store):
        first_admin_ui()
    else:
        login_ui()
    session_cookie.sync()  # clears the cookie of a login that just ended (below the form: no gap above it)


def refused_page(page: AppPage, actor: Actor) -> None:
    st.error(f"The {page.title} page is for the {page.role} role and above; you are signed in as {actor.role}.")
    st.page_link(HOME.script, label="Home", icon=HOME.icon)


def change_password_ui(actor: Actor) -> None:
    """The form with which users change their own password. Every sign-in of theirs ends with the old
    password; this session carries on with a new login token."""
    with st.form("change_password_form", clear_on_submit=True):
        current = st.text_input("Current password", type="password", key="change_password_current")
        new = st.text_input(
            f"New password (at least {MIN_PASSWORD_LENGTH} characters)", type="password", key="change_password_new"
        )
        repeat = st.text_input("Repeat the new password", type="password", key="change_password_repeat")
        if st.form_submit_button("Change password", type="primary"):
            if new != repeat:
                st.error("The two new passwords differ.")
                return
            try:
                change_password(store, actor, actor.username, new, old_password=current)
                start_login(store, actor)
            except MedreviewError as error:
                st.error(plain(error))
                return
            st.session_state[PASSWORD_CHANGED_KEY] = True
            st.rerun()


def choose_password_page(actor: Actor) -> None:
    st.title("Choose your password")
    st.write("An administrator set your password. Choose your own to continue.")
    change_password_ui(actor)


def stand_ins_for(screen: Callable[[], None], title: str) -> list[StreamlitPage]:
    """Navigation of one screen only, for every page's URL path (hidden): no other page is listed or
    reachable, a deep link keeps its URL and the rerun after the screen opens that page, and
    Streamlit's file list never shows."""
    return [st.Page(screen, title=title, default=True)] + [
        st.Page(screen, title=title, url_path=page.url_path, visibility="hidden")
        for page in APP_PAGES
        if page is not HOME
    ]


def log_out(actor: Actor) -> None:
    """The Log out button's callback: it runs before the script, so this very run draws the sign-in
    page, and the cookie is cleared there (nothing reruns in between)."""
    login = st.session_state.get(LOGIN_KEY)
    logout(store, actor, token=login.token if login is not None else None)
    end_login("You logged out.")


resume_from_cookie(store)
actor = signed_in_actor(store)

if actor is None:
    st.navigation(stand_ins_for(sign_in_page, "Sign in"), position="hidden").run()
    st.stop()

must_change_password = st.session_state[LOGIN_KEY].must_change_password
with st.sidebar:
    st.caption(f"Signed in as **{plain(actor.username)}** ({actor.role})")
    st.button("Log out", key="logout", on_click=log_out, args=(actor,))
    if st.session_state.pop(PASSWORD_CHANGED_KEY, False):
        st.success("Your password was changed.")
    if not must_change_password:
        with st.expander("Change password"):
            change_password_ui(actor)
    session_cookie.sync()

if must_change_password:
    st.navigation(stand_ins_for(partial(choose_password_page, actor), "Choose your password"), position="hidden").run()
    st.stop()

pages = []
for page in APP_PAGES:
    if actor.can(page.role):
        pages.append(st.Page(page.script, title=page.title, icon=page.icon, default=page is HOME))
    else:
        pages.append(
            st.Page(
                partial(refused_page, page, actor),
                title=page.title,
                icon=page.icon,
                url_path=page.url_path,
                visibility="hidden",
            )
        )
st.navigation(pages).run()
