"""The Label page with bounding boxes on, through AppTest.

The canvas (streamlit-drawable-canvas, a Components v2 element) appears in AppTest as an
UnknownElement whose proto carries the data the browser would get (``initialDrawing``, the canvas
size). A drawing is simulated by giving the canvas's key the value the browser would send back:
fabric.js JSON in canvas (display) pixels.
"""

from __future__ import annotations

import json

import pandas as pd
import pytest
from streamlit.testing.v1 import AppTest

from medreview.ingest.demo import load_demo_data
from medreview.reading.reads import LOCAL_ACTOR, reads_table, save_read
from medreview.store.models import utcnow
from medreview.team.accounts import LoginSession
from medreview.team.settings import set_setting
from tests.conftest import ADMIN, run_page_as
from tests.helpers import ROOT
from ui.text import plain

# The demo images are 128 x 128; on a 512-px-wide canvas that is 4 display px per image px.
CANVAS_WIDTH = 512
SCALE = CANVAS_WIDTH / 128


@pytest.fixture
def demo_ids(page_store) -> list[int]:
    results = load_demo_data(page_store, LOCAL_ACTOR, per_class=2, unlabelled=3)
    set_setting(page_store, LOCAL_ACTOR, "boxes", True)
    return [result.image_id for result in results if result.image_id is not None]


def _label_page() -> AppTest:
    app = run_page_as("label")
    app.select_slider(key="label_canvas_width").set_value(CANVAS_WIDTH).run()
    assert not app.exception, app.exception
    return app


def _canvas(app: AppTest):
    [canvas] = app.get("bidi_component")
    return canvas


def _canvas_data(app: AppTest) -> dict:
    return json.loads(_canvas(app).proto.json)


def _draw(app: AppTest, *objects: dict) -> None:
    """What the browser sends after the reader draws ``objects`` (canvas pixels) and lets go."""
    app.session_state[_canvas(app).key] = {"drawing": {"raw": {"objects": list(objects)}, "data": None}}
    app.run()
    assert not app.exception, app.exception


def _my_read(store, image_id: int):
    reads = reads_table(store, LOCAL_ACTOR)
    return reads[(reads["reader"] == ADMIN.username) & (reads["image_id"] == image_id)].iloc[0]


def test_with_boxes_on_the_page_shows_a_canvas_and_keeps_its_class_buttons(page_store, demo_ids):
    app = run_page_as("label")
    first = app.session_state["label_image_id"]
    data = _canvas_data(app)
    # The default canvas width, for a square image.
    assert (data["canvasWidth"], data["canvasHeight"], data["drawingMode"]) == (448, 448, "labeled_rect")
    assert data["backgroundImageURL"].startswith("data:image/png;base64,")
    assert data["initialDrawing"]["objects"] == []
    assert app.selectbox(key="label_box_class").options == ["normal", "pneumonia"]
    assert not app.image, "the canvas shows the image; no second copy"
    # The class buttons (keys 1, 2) still save and move on; no box drawn means no box stored.
    app.button(key="label_button_normal").click().run()
    assert not app.exception
    read = _my_read(page_store, first)
    assert (read["label"], list(read["boxes"])) == ("normal", [])
    assert app.session_state["label_image_id"] not in (first, None)


def test_a_drawn_box_is_saved_in_image_pixels_with_the_class_button(page_store, demo_ids):
    app = _label_page()
    first = app.session_state["label_image_id"]
    app.selectbox(key="label_box_class").set_value("pneumonia").run()
    assert _canvas_data(app)["label"] == "pneumonia"
    _draw(
        app,
        {"type": "LabeledRect", "label": "pneumonia", "left": 40, "top": 80, "width": 100, "height": 60},
        # Resized after drawing (scaleX/scaleY) and reaching past the right edge: clipped on save.
        {"type": "LabeledRect", "label": "normal", "left": 480, "top": 0, "width": 40, "height": 30, "scaleX": 2},
    )
    assert "2 box(es) on this frame" in app.caption[-1].value
    app.button(key="label_button_pneumonia").click().run()
    assert not app.exception
    read = _my_read(page_store, first)
    assert read["label"] == "pneumonia"
    assert list(read["boxes"]) == [
        {"label": "pneumonia", "x": 10.0, "y": 20.0, "width": 25.0, "height": 15.0, "frame": 0},
        {"label": "normal", "x": 120.0, "y": 0.0, "width": 8.0, "height": 7.5, "frame": 0},
    ]


def test_saved_boxes_are_redrawn_at_the_canvas_size_and_survive_a_relabel(page_store, demo_ids):
    image_id = demo_ids[-1]
    box = {"label": "pneumonia", "x": 10.0, "y": 20.0, "width": 25.0, "height": 15.0, "frame": 0}
    save_read(page_store, ADMIN, image_id, "pneumonia", boxes=[box])
    app = AppTest.from_file(str(ROOT / "pages" / "label.py"), default_timeout=60)
    app.session_state["login"] = LoginSession(ADMIN, utcnow())
    app.session_state["label_image_id"] = image_id  # as if picked on the worklist
    app.session_state["label_canvas_width"] = CANVAS_WIDTH
    app.run()
    assert not app.exception
    [drawn] = _canvas_data(app)["initialDrawing"]["objects"]
    assert (drawn["type"], drawn["label"]) == ("LabeledRect", "pneumonia")
    assert [drawn[field] for field in ("left", "top", "width", "height")] == [
        value * SCALE for value in (10, 20, 25, 15)
    ]
    # A wider canvas is a new canvas, with the same box scaled to it.
    app.select_slider(key="label_canvas_width").set_value(1024).run()
    assert not app.exception
    data = _canvas_data(app)
    [drawn] = data["initialDrawing"]["objects"]
    assert data["canvasWidth"] == 1024 and (drawn["left"], drawn["top"]) == (80, 160)
    # Changing the image's class (not touching the canvas) keeps the reader's box.
    app.button(key="label_button_normal").click().run()
    assert not app.exception
    read = _my_read(page_store, image_id)
    assert read["label"] == "normal"
    assert list(read["boxes"]) == [box]


def test_save_boxes_stays_on_the_image_and_keeps_the_readers_label(page_store, demo_ids):
    app = _label_page()
    first = app.session_state["label_image_id"]
    # Before any class is chosen, boxes alone are a read.
    _draw(app, {"type": "LabeledRect", "label": "normal", "left": 0, "top": 0, "width": 64, "height": 64})
    app.button(key="label_save_boxes").click().run()
    assert not app.exception
    assert app.session_state["label_image_id"] == first
    read = _my_read(page_store, first)
    assert pd.isna(read["label"])
    assert list(read["boxes"]) == [{"label": "normal", "x": 0.0, "y": 0.0, "width": 16.0, "height": 16.0, "frame": 0}]
    # With a class already chosen, Save boxes keeps it; deleting every box and saving clears them.
    save_read(page_store, ADMIN, first, "pneumonia")
    _draw(app)
    app.button(key="label_save_boxes").click().run()
    assert not app.exception
    read = _my_read(page_store, first)
    assert (read["label"], list(read["boxes"])) == ("pneumonia", [])


def test_save_boxes_with_nothing_to_save_says_so(page_store, demo_ids):
    app = run_page_as("label")
    app.button(key="label_save_boxes").click().run()
    assert not app.exception
    assert plain("choose a class (or draw a box)") in app.error[0].value


def test_multi_label_mode_saves_boxes_with_the_chosen_classes(page_store, demo_ids):
    set_setting(page_store, LOCAL_ACTOR, "label_mode", "multi")
    app = _label_page()
    first = app.session_state["label_image_id"]
    _draw(app, {"type": "LabeledRect", "label": "pneumonia", "left": 4, "top": 8, "width": 40, "height": 20})
    app.pills(key=f"label_multi_{first}").set_value(["pneumonia"]).run()
    app.button(key="label_save_multi").click().run()
    assert not app.exception
    read = _my_read(page_store, first)
    assert list(read["labels"]) == ["pneumonia"]
    assert list(read["boxes"]) == [{"label": "pneumonia", "x": 1.0, "y": 2.0, "width": 10.0, "height": 5.0, "frame": 0}]


def test_with_boxes_off_the_page_shows_the_plain_image(page_store, demo_ids):
    set_setting(page_store, LOCAL_ACTOR, "boxes", False)
    app = run_page_as("label")
    assert not app.get("bidi_component")
    assert len(app.image) == 1
    assert not [button for button in app.button if button.key == "label_save_boxes"]
