"""The Settings page through AppTest: the de-identification options and the hanging protocols an admin chooses."""

from __future__ import annotations

import json

from medreview.reading.protocols import DEFAULT_PROTOCOLS
from medreview.reading.reads import LOCAL_ACTOR
from medreview.team.audit import query
from medreview.team.settings import get_setting
from tests.conftest import run_page_as
from ui.text import plain


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


KNEE = [{"name": "Knee", "modality": "MR", "layout": "1x2", "viewports": [{"orientation": "sagittal"}, {}]}]


def test_a_bad_hanging_protocol_is_refused_with_a_message_naming_it_and_nothing_is_saved(page_store):
    app = run_page_as("settings")
    bad = [{**KNEE[0], "viewports": [{"description": "T1("}]}]
    app.text_area(key="settings_hanging_protocols").set_value(json.dumps(bad)).run()
    app.button(key="settings_save_protocols").click().run()

    assert not app.exception, app.exception
    assert [error.value for error in app.error] == [
        plain(
            "protocol 'Knee' viewport 1: 'description' is not a valid regular expression "
            "(missing ), unterminated subpattern at position 2)"
        )
    ]
    app.text_area(key="settings_hanging_protocols").set_value("[{'name': 'Knee'}]").run()
    app.button(key="settings_save_protocols").click().run()
    assert [error.value for error in app.error] == [
        plain("the protocols are not valid JSON: Expecting property name enclosed in double quotes at line 1, column 3")
    ]
    assert get_setting(page_store, "hanging_protocols") == DEFAULT_PROTOCOLS
    assert query(page_store, LOCAL_ACTOR, action="settings.change").empty


def test_an_admin_edits_the_hanging_protocols_and_restores_the_defaults_both_audited(page_store):
    app = run_page_as("settings")
    assert json.loads(app.text_area(key="settings_hanging_protocols").value) == DEFAULT_PROTOCOLS
    assert app.button(key="settings_restore_protocols").proto.disabled  # nothing to restore yet

    app.text_area(key="settings_hanging_protocols").set_value(json.dumps(KNEE)).run()
    app.button(key="settings_save_protocols").click().run()

    assert not app.exception and not app.error, (app.exception, app.error)
    assert get_setting(page_store, "hanging_protocols") == KNEE
    assert [notice.value for notice in app.success] == ["Hanging protocols saved."]

    app.button(key="settings_restore_protocols").click().run()

    assert get_setting(page_store, "hanging_protocols") == DEFAULT_PROTOCOLS
    assert json.loads(app.text_area(key="settings_hanging_protocols").value) == DEFAULT_PROTOCOLS
    events = query(page_store, LOCAL_ACTOR, action="settings.change").iloc[::-1]
    assert [(row.object_id, json.loads(row.details)["new"]) for row in events.itertuples()] == [
        ("hanging_protocols", KNEE),
        ("hanging_protocols", DEFAULT_PROTOCOLS),
    ]


def test_an_admin_turns_the_consensus_auto_accept_rule_on_and_applies_it_now(page_store):
    from medreview.ingest import InputFile, ingest_files
    from medreview.reading.reads import save_read
    from medreview.team.accounts import create_user
    from medreview.team.roles import Actor
    from tests.conftest import ADMIN
    from tests.helpers import add_model_version, add_predictions, png_bytes

    readers = [Actor("ann", "annotator"), Actor("bob", "annotator")]
    for reader in readers:
        create_user(page_store, ADMIN, reader.username, f"{reader.username}-password", reader.role)
    [image] = ingest_files(page_store, LOCAL_ACTOR, [InputFile("film.png", png_bytes(5))])
    for reader in readers:  # read before the rule is on: only "apply now" takes them
        save_read(page_store, reader, image.image_id, "pneumonia")
    add_predictions(page_store, add_model_version(page_store, active=True), {image.image_id: {"pneumonia": 0.97}})
    app = run_page_as("settings")
    assert app.button(key="settings_auto_accept_apply").disabled, "nothing to apply while the rule is off"
    app.toggle(key="settings_auto_accept").set_value(True)
    app.slider(key="settings_auto_accept_probability").set_value(0.9)
    app.button(key="FormSubmitter:settings_auto_accept-Save the rule").click().run()
    assert not app.exception, app.exception
    assert (get_setting(page_store, "auto_accept"), get_setting(page_store, "auto_accept_probability")) == (True, 0.9)
    app.button(key="settings_auto_accept_apply").click().run()
    assert "The rule accepted 1 case." in [message.value for message in app.success]
