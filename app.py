"""medreview: the Streamlit entry point. Login gate, then the pages the user's role may see.

Pages live in pages/, their shared Streamlit pieces in ui/; all logic lives in medreview/. Each
page checks the login and role again (ui/session.py session_actor), and each service checks the
role a third time.
"""

from pathlib import Path

import streamlit as st

from medreview.errors import MedreviewError
from medreview.store.models import utcnow
from medreview.team.accounts import LoginSession, authenticate, create_first_admin, logout, needs_first_admin
from ui.session import get_store, leave_legacy_page_discovery
from ui.text import plain

leave_legacy_page_discovery()
# A local icon: a ":material/...:" page icon makes every browser fetch it from fonts.gstatic.com.
st.set_page_config(page_title="medreview", page_icon=str(Path(__file__).parent / "ui" / "icon.png"), layout="wide")
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
            except MedreviewError as error:
                st.error(plain(error))
                return
            st.session_state["login"] = LoginSession(actor, utcnow())
            st.rerun()


def login_ui() -> None:
    st.title("medreview")
    with st.form("login_form"):
        username = st.text_input("User name", key="login_username")
        password = st.text_input("Password", type="password", key="login_password")
        if st.form_submit_button("Log in", type="primary"):
            try:
                actor = authenticate(store, username, password)
            except MedreviewError as error:
                st.error(plain(error))
                return
            st.session_state["login"] = LoginSession(actor, utcnow())
            st.rerun()


def sign_in_page() -> None:
    if needs_first_admin(store):
        first_admin_ui()
    else:
        login_ui()


if "login" not in st.session_state:
    # Navigation with the sign-in screen as its only page: no other page is listed or reachable
    # by URL before login (a deep link lands here), and Streamlit's file list never shows.
    st.navigation([st.Page(sign_in_page, title="Sign in", default=True)], position="hidden").run()
    st.stop()

actor = st.session_state["login"].actor
with st.sidebar:
    st.caption(f"Signed in as **{actor.username}** ({actor.role})")
    if st.button("Log out", key="logout"):
        logout(store, actor)
        del st.session_state["login"]
        st.rerun()

pages = [
    st.Page("pages/home.py", title="Home", icon=":material/home:", default=True),
    st.Page("pages/upload.py", title="Upload", icon=":material/upload:"),
    st.Page("pages/label.py", title="Label", icon=":material/label:"),
    st.Page("pages/browse.py", title="Browse", icon=":material/folder_open:"),
    st.Page("pages/predictions.py", title="Predictions", icon=":material/insights:"),
]
if actor.can("reviewer"):
    pages.append(st.Page("pages/review.py", title="Review", icon=":material/fact_check:"))
if actor.can("admin"):
    pages += [
        st.Page("pages/train.py", title="Train", icon=":material/model_training:"),
        st.Page("pages/team.py", title="Team", icon=":material/group:"),
        st.Page("pages/settings.py", title="Settings", icon=":material/settings:"),
    ]
st.navigation(pages).run()
