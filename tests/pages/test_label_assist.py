"""The Label page's assist modes (issue 18 item 4) through AppTest: what of the active model's call
the page sends the viewer for an image the reader has and has not read, in each mode."""

from __future__ import annotations

import json

from medreview.ingest import InputFile, ingest_files
from medreview.reading.reads import LOCAL_ACTOR
from medreview.team.accounts import create_user
from medreview.team.roles import SYSTEM, Actor
from medreview.team.settings import set_setting
from tests.conftest import ADMIN, run_page_as
from tests.helpers import add_model_version, add_predictions, png_bytes
from tests.pages.test_predictions_page import store_view_maps
from tests.pages.viewer import report, save, viewer_data

KEY = "label_viewer"
READER = Actor("reader1", "annotator")


def models_sent(data) -> dict[int, dict | None]:  # type: ignore[no-untyped-def]
    return {info["id"]: info["model"] for info in data["images"]}


def test_each_assist_mode_sends_the_viewer_what_it_allows_of_the_model(page_store):
    create_user(page_store, SYSTEM, READER.username, "reader-password-1", role="annotator")
    files = [InputFile(f"film-{index}.png", png_bytes(400 + index)) for index in range(3)]
    first, second, outside = (result.image_id for result in ingest_files(page_store, LOCAL_ACTOR, files))
    version = add_model_version(page_store, active=True)
    calls = {image_id: {"normal": 0.13, "pneumonia": 0.87} for image_id in (first, second, outside)}
    add_predictions(page_store, version, calls, outside={outside: "a colour photograph, not a chest film"})
    store_view_maps(page_store, version, first, (0.13, 0.87))

    # Unaided: nothing of the model reaches the browser, read or not.
    set_setting(page_store, ADMIN, "assist_mode", "unaided")
    app = run_page_as("label", READER)
    data = viewer_data(app, KEY)
    assert models_sent(data) == {first: None, second: None, outside: None}
    assert "0.87" not in json.dumps(data["images"]) and "pneumonia" not in json.dumps(data["images"])
    assert data["overlays"] == []

    # Aided after: not before the first save; once the read is saved, the call and its probability.
    set_setting(page_store, ADMIN, "assist_mode", "aided_after")
    data = report(app, KEY, position=first)
    assert models_sent(data) == {first: None, second: None, outside: None} and data["overlays"] == []
    data = report(app, KEY, position=second, pending=[save(1, first, "normal")])
    assert data["acked"] == [1]
    data = report(app, KEY, position=first)  # the reader goes back to the image read
    shown = models_sent(data)[first]
    assert (shown["label"], shown["probability"], shown["suggest"], shown["version"]) == (
        "pneumonia",
        0.87,
        False,
        version,
    )
    assert [overlay["label"] for overlay in data["overlays"]] == ["model map: pneumonia"]  # and its map

    # Aided: a suggestion for an unread image (never the read: label and read stay empty), and for
    # an image outside the training data no class, the reason instead.
    set_setting(page_store, ADMIN, "assist_mode", "aided")
    data = report(app, KEY, position=second)
    infos = {info["id"]: info for info in data["images"]}
    suggestion = infos[second]["model"]
    assert (suggestion["label"], suggestion["probability"], suggestion["suggest"]) == ("pneumonia", 0.87, True)
    assert (infos[second]["label"], infos[second]["read"]) == (None, False)
    no_call = infos[outside]["model"]
    assert (no_call["label"], no_call["probability"], no_call["suggest"]) == (None, None, False)
    assert no_call["reason"] == "a colour photograph, not a chest film"


def _blind_viewer_script(image_id: int, blind: bool) -> None:
    from medreview.team.roles import Actor
    from ui.viewer import image_viewer

    image_viewer("blind_viewer", Actor("reader1", "annotator"), [image_id], blind=blind, assist="aided")


def test_a_blind_viewer_gets_no_earlier_read_no_file_name_no_patient_key_and_no_model(page_store):
    from streamlit.testing.v1 import AppTest

    from medreview.reading.reads import save_read

    create_user(page_store, SYSTEM, READER.username, "reader-password-1", role="annotator")
    [result] = ingest_files(page_store, LOCAL_ACTOR, [InputFile("person1_bacteria_1.png", png_bytes(500))])
    version = add_model_version(page_store, active=True)
    add_predictions(page_store, version, {result.image_id: {"normal": 0.2, "pneumonia": 0.8}})
    save_read(
        page_store,
        READER,
        result.image_id,
        "pneumonia",
        boxes=[{"label": "pneumonia", "x": 1, "y": 1, "width": 4, "height": 4}],
    )
    infos = {}
    for blind in (False, True):
        app = AppTest.from_function(_blind_viewer_script, args=(result.image_id, blind), default_timeout=30).run()
        assert not app.exception, app.exception
        [infos[blind]] = viewer_data(app, "blind_viewer")["images"]
    seen, blinded = infos[False], infos[True]
    assert (seen["label"], seen["read"], len(seen["boxes"])) == ("pneumonia", True, 1)
    # (De-identification already renames the stored file; the blind name is neutral whatever it is.)
    assert seen["name"].endswith(".png") and "patient" in seen["caption"] and seen["model"] is not None
    assert (blinded["label"], blinded["labels"], blinded["boxes"], blinded["read"]) == (None, [], [], False)
    assert blinded["name"] == "case image" and "bacteria" not in json.dumps(blinded)
    assert "patient" not in blinded["caption"] and seen["caption"].split(" · ")[1] not in json.dumps(blinded)
    assert blinded["model"] is None


def test_an_admin_chooses_aided_reading_and_the_team_page_shows_how_suggestions_were_used(page_store):
    from medreview.reading.reads import save_read
    from medreview.reading.review import adjudicate
    from medreview.team.settings import get_setting

    create_user(page_store, SYSTEM, READER.username, "reader-password-1", role="annotator")
    files = [InputFile(f"film-{index}.png", png_bytes(600 + index)) for index in range(2)]
    first, second = (result.image_id for result in ingest_files(page_store, LOCAL_ACTOR, files))
    version = add_model_version(page_store, active=True)
    add_predictions(page_store, version, {image_id: {"normal": 0.3, "pneumonia": 0.7} for image_id in (first, second)})
    app = run_page_as("settings")
    app.selectbox(key="settings_assist_mode").set_value("aided").run()
    assert not app.exception, app.exception
    assert get_setting(page_store, "assist_mode") == "aided"
    save_read(page_store, READER, first, "pneumonia", assisted=True)  # accepted, and right
    save_read(page_store, READER, second, "normal", assisted=True)  # overridden, and wrong
    adjudicate(page_store, ADMIN, first, "pneumonia")
    adjudicate(page_store, ADMIN, second, "pneumonia")
    team = run_page_as("team")
    assert not team.exception, team.exception
    [table] = [frame for frame in team.dataframe if "accuracy_accepted" in frame.value.columns]
    row = table.value.iloc[0]
    assert (row["reader"], row["model_version"], row["accepted"], row["overridden"]) == ("reader1", version, 1, 1)
    assert (row["accuracy_accepted"], row["accuracy_overridden"]) == (1.0, 0.0)
