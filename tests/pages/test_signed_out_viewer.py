"""A viewer message after the sign-in ended: the Label viewer (a fragment, rerun alone by each of the
viewer's reports, without app.py's login gate) resolves the reader from the database on every
message, so a logout in the same tab (a message replayed on the same websocket), a logout in another
tab or a deactivation saves no read and sends no pixels; the browser is told it was signed out.

Through app.py, as a browser drives it: a viewer report reruns only the viewer's fragment, which
these tests do the way Streamlit does (RerunData.fragment_id_queue, see tests/pages/viewer.py)."""

from __future__ import annotations

import pytest
import streamlit as st
from sqlalchemy import func, select
from streamlit.testing.v1 import AppTest

from medreview.ingest import InputFile, ingest_files
from medreview.reading.reads import LOCAL_ACTOR
from medreview.store.models import Annotation, AuditEvent
from medreview.team.accounts import create_user, issue_login_token, logout, set_active
from medreview.team.roles import SYSTEM, Actor
from tests.helpers import ROOT, dicom_bytes
from tests.pages.viewer import fragment_id, rerun_fragment, save
from ui import session_cookie

KEY = "label_viewer"
READER = Actor("reader1", "annotator")
TIMEOUT = 60


@pytest.fixture(autouse=True)
def fresh_cache():
    st.cache_resource.clear()
    yield
    st.cache_resource.clear()


@pytest.fixture
def image_ids(page_store) -> list[int]:
    create_user(page_store, SYSTEM, READER.username, "reader-password-1", role="annotator")
    files = [InputFile(f"film-{index}.dcm", dicom_bytes(f"P{index}", modality="DX")) for index in range(3)]
    return [result.image_id for result in ingest_files(page_store, LOCAL_ACTOR, files)]


def label_tab(monkeypatch: pytest.MonkeyPatch, token: str) -> AppTest:
    """A browser tab on /label, signed in by its cookie (AppTest sends no cookies: see
    tests/pages/test_sessions.py)."""
    monkeypatch.setattr(session_cookie, "sent_token", lambda: token)
    app = AppTest.from_file(str(ROOT / "app.py"), default_timeout=TIMEOUT)
    app.switch_page("pages/label.py")
    app.run()
    assert not app.exception, app.exception
    assert app.title[0].value == "Label"
    return app


def viewer_fragment(app: AppTest) -> str:
    """The id of the Label page's viewer fragment, as the browser names it in a report."""
    return fragment_id(app, "label_viewer_fragment")


def reads_and_saves(store) -> tuple[int, int]:
    with store.db.read() as session:
        reads = session.scalar(select(func.count(Annotation.id)))
        saves = session.scalar(select(func.count(AuditEvent.id)).where(AuditEvent.action.like("label.%")))
    return int(reads or 0), int(saves or 0)


def test_a_viewer_report_reruns_the_viewer_alone_and_saves_while_signed_in(page_store, image_ids, monkeypatch):
    """The control for the tests below: the same fragment rerun saves the read while signed in."""
    app = label_tab(monkeypatch, issue_login_token(page_store, READER))
    fragment = viewer_fragment(app)
    data = rerun_fragment(
        app,
        fragment,
        KEY,
        position=image_ids[1],
        pending=[save(1, image_ids[0], "pneumonia")],
        want=[f"{image_ids[1]}:0"],
    )
    assert data["acked"] == [1] and not data.get("signedOut")
    assert [row["key"] for row in data["pixels"]] == [f"{image_ids[1]}:0"]
    assert reads_and_saves(page_store) == (1, 1)


def test_a_viewer_message_replayed_after_logout_in_the_same_tab_saves_nothing(page_store, image_ids, monkeypatch):
    app = label_tab(monkeypatch, issue_login_token(page_store, READER))
    fragment = viewer_fragment(app)
    app.sidebar.button(key="logout").click().run()
    assert not app.exception, app.exception
    assert app.button(key="FormSubmitter:login_form-Log in")  # the sign-in page, which ends in st.stop()
    # The old viewer's message, replayed on the same websocket: a read and a frame asked for.
    data = rerun_fragment(
        app,
        fragment,
        KEY,
        position=image_ids[1],
        pending=[save(2, image_ids[0], "pneumonia")],
        want=[f"{image_ids[1]}:0"],
    )
    assert reads_and_saves(page_store) == (0, 0)
    # The browser gets the news and nothing else: no pixels, no image facts, no acknowledgement.
    assert list(data) == ["signedOut"] and data["signedOut"]  # the sign-in page's notice


@pytest.mark.parametrize("ended_by", ["logout in another tab", "deactivation"])
def test_a_viewer_message_after_the_sign_in_ended_elsewhere_saves_nothing(page_store, image_ids, monkeypatch, ended_by):
    token = issue_login_token(page_store, READER)
    app = label_tab(monkeypatch, token)
    fragment = viewer_fragment(app)
    if ended_by == "deactivation":
        set_active(page_store, SYSTEM, READER.username, False)
    else:
        logout(page_store, READER, token=token)  # the other tab shares the cookie, so the token
    data = rerun_fragment(
        app, fragment, KEY, position=image_ids[1], pending=[save(3, image_ids[0], "normal")], want=[f"{image_ids[1]}:0"]
    )
    assert reads_and_saves(page_store) == (0, 0)
    expected = "no longer active" if ended_by == "deactivation" else "You were signed out"
    assert list(data) == ["signedOut"] and expected in data["signedOut"]
    # The session is over in this tab too: its next full run is the sign-in page with the same notice.
    app.run()
    assert app.button(key="FormSubmitter:login_form-Log in")
    assert expected in app.info[0].value
