"""The Settings page through AppTest: the de-identification options an admin chooses."""

from __future__ import annotations

import json

from medreview.reading.reads import LOCAL_ACTOR
from medreview.team.audit import query
from medreview.team.settings import get_setting
from tests.conftest import run_page_as


def test_shifted_dates_are_off_by_default_and_turning_them_on_is_audited(page_store):
    app = run_page_as("settings")
    toggle = app.toggle(key="settings_shift_dates")
    assert toggle.value is False and not toggle.proto.disabled
    assert "Modified Dates" in toggle.help

    toggle.set_value(True).run()

    assert not app.exception, app.exception
    assert get_setting(page_store, "shift_dates") is True
    [event] = query(page_store, LOCAL_ACTOR, action="settings.change").itertuples()
    assert (event.actor, event.object_id, json.loads(event.details)) == (
        "admin",
        "shift_dates",
        {"old": False, "new": True},
    )


def test_shifted_dates_cannot_be_chosen_without_de_identification(page_store):
    app = run_page_as("settings")
    app.toggle(key="settings_deidentify").set_value(False).run()

    assert app.toggle(key="settings_shift_dates").proto.disabled
