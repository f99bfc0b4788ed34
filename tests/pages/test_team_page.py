"""The Team page in AppTest: exports and the audit trail made for the session that asks (no file
left in the temporary folder, nothing kept in the session), an import read from the upload, and
an admin's password reset."""

from __future__ import annotations

import base64
import json
import tempfile
from pathlib import Path

import pytest

from medreview.ingest.demo import load_demo_data
from medreview.team.accounts import authenticate, create_user, password_change_required
from medreview.team.roles import Actor
from tests.conftest import ADMIN, run_page_as


@pytest.fixture
def temporary_folder(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """The system's temporary folder, as the page sees it (tempfile.gettempdir())."""
    import streamlit.testing.v1  # noqa: F401  (AppTest makes a folder of its own there when imported)

    folder = tmp_path / "system-temp"
    folder.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(folder))
    return folder


def downloads_sent(app) -> list[dict]:  # type: ignore[no-untyped-def]
    """The files the page handed to the browser in its last run (ui/downloads.py's element)."""

    def walk(node):  # type: ignore[no-untyped-def]
        yield node
        for child in getattr(node, "children", {}).values():
            yield from walk(child)

    sent = []
    for node in walk(app._tree):
        proto = getattr(node, "proto", None)
        if proto is not None and getattr(proto, "component_name", "") == "medreview_download":
            data = json.loads(proto.json)
            sent.append({**data, "content": base64.b64decode(data["content"])})
    return sent


def test_exports_and_the_audit_csv_go_to_the_session_and_leave_no_temporary_files(page_store, temporary_folder):
    load_demo_data(page_store, ADMIN)
    app = run_page_as("team")
    app.button(key="team_export").click().run()
    assert not app.exception, app.exception
    [labels] = downloads_sent(app)
    assert labels["name"] == "labels.csv" and labels["mime"] == "text/csv"
    assert labels["content"].decode().startswith("image_id,") and len(labels["content"].splitlines()) == 33

    app.button(key="team_audit_export").click().run()
    assert not app.exception, app.exception
    [trail] = downloads_sent(app)  # the labels file is not sent again
    assert trail["name"] == "audit.csv" and b"export" in trail["content"]

    reads = run_page_as("team")
    reads.selectbox(key="team_export_kind").set_value("reads").run()
    reads.radio(key="team_export_format").set_value("json").run()
    reads.button(key="team_export").click().run()
    [export] = downloads_sent(reads)
    reads.file_uploader(key="team_import").set_value([("reads.json", export["content"], "application/json")]).run()
    reads.button(key="team_import_run").click().run()
    assert not reads.exception, reads.exception
    assert "reads and" in reads.success[-1].value

    assert list(temporary_folder.iterdir()) == []  # nothing was written to the temporary folder
    # Nothing of the files stays in the session either (a sign-out clears it, but it never had them).
    kept = repr({key: app.session_state[key] for key in app.session_state})
    assert "image_id," not in kept and "audit.csv" not in kept


def test_an_upload_that_is_not_an_export_is_refused_without_a_server_path(page_store, temporary_folder):
    app = run_page_as("team")
    app.file_uploader(key="team_import").set_value([("reads.json", b"{not json", "application/json")]).run()
    app.button(key="team_import_run").click().run()
    assert not app.exception, app.exception
    [error] = app.error
    assert error.value.startswith("cannot read the uploaded file")
    assert str(temporary_folder) not in error.value and "/tmp" not in error.value


def test_an_admin_resets_a_password_and_the_user_must_choose_a_new_one(page_store):
    create_user(page_store, ADMIN, "ann", "ann-own-password", "annotator", temporary=False)
    app = run_page_as("team")
    app.selectbox(key="team_edit_user").set_value("ann").run()
    app.text_input(key="team_reset_password").set_value("temporary-password-1")
    app.button(key="FormSubmitter:team_reset_form-Reset password").click().run()
    assert not app.exception, app.exception
    assert "ann signs in with the temporary password" in app.success[0].value
    assert authenticate(page_store, "ann", "temporary-password-1") == Actor("ann", "annotator")
    assert password_change_required(page_store, Actor("ann", "annotator"))
    # An admin's own password is changed in the sidebar, with the current one, not reset here.
    app.selectbox(key="team_edit_user").set_value(ADMIN.username).run()
    assert "team_reset_password" not in {widget.key for widget in app.text_input}
