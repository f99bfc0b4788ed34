"""The Settings page's project-settings download (issue 17 item 4), through AppTest."""

from __future__ import annotations

import json

from medreview.reading.reads import LOCAL_ACTOR
from medreview.team.audit import query
from tests.conftest import run_page_as


def test_download_project_settings_makes_the_file_and_audits_it(page_store):
    app = run_page_as("settings")
    app.button(key="settings_export").click().run()

    assert not app.exception, app.exception
    assert not app.error, [error.value for error in app.error]
    [event] = query(page_store, LOCAL_ACTOR, action="export").itertuples()
    assert (event.actor, event.object_id, json.loads(event.details)) == ("admin", "settings", {"kind": "settings"})
