"""Bounding boxes: display <-> image pixel conversions, canvas JSON, validation on save, overlays."""

from __future__ import annotations

import numpy as np
import pytest

from medreview.errors import MedreviewError
from medreview.imaging.boxes import (
    BOX_COLOR,
    Viewport,
    boxes_to_canvas,
    canvas_to_boxes,
    display_to_image,
    draw_boxes,
    image_to_display,
    replace_frame_boxes,
)
from medreview.ingest.service import InputFile, ingest_files
from medreview.reading.reads import LOCAL_ACTOR, reads_table, save_read
from medreview.reading.schema import add_label_class
from tests.helpers import dicom_bytes

# (columns, rows): square, tall, wide, tiny (MNIST-sized), a large radiograph.
IMAGE_SIZES = [(128, 128), (2048, 2500), (640, 200), (28, 28), (3000, 2400)]
DISPLAY_WIDTHS = [333, 384, 512, 1024]
BOXES = [
    {"label": "opacity", "x": 0.0, "y": 0.0, "width": 5.0, "height": 3.0, "frame": 0},
    {"label": "nodule", "x": 10.25, "y": 7.5, "width": 12.0, "height": 9.75, "frame": 0},
]


def _boxes_for(columns: int, rows: int) -> list[dict]:
    # The fixed boxes above plus one that touches the bottom-right corner of this image.
    corner = {"label": "opacity", "x": columns * 0.6, "y": rows * 0.7, "width": columns * 0.4, "height": rows * 0.3}
    return [*BOXES, {**corner, "frame": 0}]


def _assert_same_boxes(actual: list[dict], expected: list[dict], tolerance: float = 0.5) -> None:
    assert len(actual) == len(expected)
    for got, want in zip(actual, expected, strict=True):
        assert got["label"] == want["label"]
        assert got["frame"] == want["frame"]
        for field in ("x", "y", "width", "height"):
            assert got[field] == pytest.approx(want[field], abs=tolerance), (field, got, want)


# --- viewports ------------------------------------------------------------------------------------


@pytest.mark.parametrize(("columns", "rows"), IMAGE_SIZES)
@pytest.mark.parametrize("max_width", DISPLAY_WIDTHS)
def test_fit_keeps_the_aspect_ratio_within_the_limits(columns, rows, max_width):
    viewport = Viewport.fit(columns, rows, max_width, max_height=900)
    assert viewport.display_width <= max_width and viewport.display_height <= 900
    assert max_width in (viewport.display_width,) or viewport.display_height == 900
    # Whole display pixels: the aspect ratio is kept to within one pixel's rounding.
    assert viewport.display_width / viewport.display_height == pytest.approx(
        columns / rows, rel=1.5 / min(viewport.display_width, viewport.display_height)
    )


def test_fit_enlarges_small_images_and_refuses_empty_sizes():
    assert Viewport.fit(28, 28, 512) == Viewport(512, 512, 28, 28)
    with pytest.raises(ValueError, match="positive"):
        Viewport.fit(0, 28, 512)
    with pytest.raises(ValueError, match="positive"):
        Viewport(512, 0, 28, 28)


# --- conversions ----------------------------------------------------------------------------------


@pytest.mark.parametrize(("columns", "rows"), IMAGE_SIZES)
@pytest.mark.parametrize("max_width", DISPLAY_WIDTHS)
def test_image_to_display_to_image_round_trips(columns, rows, max_width):
    viewport = Viewport.fit(columns, rows, max_width, max_height=1024)
    for box in _boxes_for(columns, rows):
        back = display_to_image(image_to_display(box, viewport), viewport)
        for field in ("x", "y", "width", "height"):
            assert back[field] == pytest.approx(box[field], abs=0.5)


def test_display_coordinates_scale_each_axis_on_its_own():
    # A 200 x 100 image stretched onto a 400 x 400 canvas: x doubles, y quadruples.
    viewport = Viewport(400, 400, 200, 100)
    box = {"x": 10, "y": 20, "width": 30, "height": 40}
    assert image_to_display(box, viewport) == {"left": 20.0, "top": 80.0, "width": 60.0, "height": 160.0}
    assert display_to_image({"left": 20, "top": 80, "width": 60, "height": 160}, viewport) == {
        "x": 10.0,
        "y": 20.0,
        "width": 30.0,
        "height": 40.0,
    }


@pytest.mark.parametrize(("columns", "rows"), IMAGE_SIZES)
def test_saved_boxes_are_redrawn_in_place_at_any_display_size(columns, rows):
    boxes = _boxes_for(columns, rows)
    for first_width in DISPLAY_WIDTHS:
        for second_width in DISPLAY_WIDTHS:
            drawn_at = Viewport.fit(columns, rows, first_width, max_height=1024)
            saved = canvas_to_boxes(boxes_to_canvas(boxes, drawn_at), drawn_at)
            shown_at = Viewport.fit(columns, rows, second_width, max_height=1024)
            drawing = boxes_to_canvas(saved, shown_at)
            _assert_same_boxes(canvas_to_boxes(drawing, shown_at), boxes)
            # ... and on screen the box covers the same fraction of the canvas as of the image.
            corner = drawing["objects"][-1]
            assert corner["left"] / shown_at.display_width == pytest.approx(0.6, abs=0.5 / columns)
            assert corner["top"] / shown_at.display_height == pytest.approx(0.7, abs=0.5 / rows)


def test_a_resized_rect_counts_its_scale():
    # fabric.js keeps width/height as first drawn and records a resize in scaleX/scaleY.
    viewport = Viewport(512, 512, 128, 128)  # 4 display px per image px
    drawing = {
        "objects": [{"type": "Rect", "left": 40, "top": 80, "width": 50, "height": 60, "scaleX": 2, "scaleY": 0.5}]
    }
    [box] = canvas_to_boxes(drawing, viewport, default_label="opacity")
    assert box == {"label": "opacity", "x": 10.0, "y": 20.0, "width": 25.0, "height": 7.5, "frame": 0}


def test_a_flipped_or_centred_rect_is_read_from_its_top_left_corner():
    viewport = Viewport(100, 100, 100, 100)
    centred = {
        "type": "rect",
        "left": 50,
        "top": 50,
        "width": 20,
        "height": 10,
        "originX": "center",
        "originY": "center",
    }
    flipped = {"type": "Rect", "left": 10, "top": 10, "width": 20, "height": 10, "scaleX": -1, "scaleY": 1}
    [from_centre, from_flip] = canvas_to_boxes({"objects": [centred, flipped]}, viewport, default_label="a")
    assert (from_centre["x"], from_centre["y"], from_centre["width"], from_centre["height"]) == (40, 45, 20, 10)
    assert from_flip["width"] == 20


def test_labels_frames_and_objects_that_are_not_boxes():
    viewport = Viewport(256, 256, 128, 128)
    drawing = {
        "objects": [
            {"type": "LabeledRect", "label": "nodule", "left": 0, "top": 0, "width": 20, "height": 20},
            {"type": "LabeledRect", "label": "", "left": 0, "top": 0, "width": 20, "height": 20},
            {"type": "Rect", "left": 0, "top": 0, "width": 20, "height": 20},
            {"type": "Rect", "left": 0, "top": 0, "width": 0, "height": 20},
            {"type": "Path", "left": 0, "top": 0, "width": 20, "height": 20},
            {"type": "Circle", "left": 0, "top": 0, "width": 20, "height": 20, "radius": 10},
        ]
    }
    boxes = canvas_to_boxes(drawing, viewport, frame=3, default_label="opacity")
    assert [box["label"] for box in boxes] == ["nodule", "opacity", "opacity"]
    assert {box["frame"] for box in boxes} == {3}
    assert canvas_to_boxes(None, viewport) == []
    assert canvas_to_boxes({"objects": []}, viewport) == []
    with pytest.raises(ValueError, match="default_label"):
        canvas_to_boxes({"objects": [drawing["objects"][2]]}, viewport)


def test_the_canvas_shows_only_the_boxes_of_its_frame_and_saving_keeps_the_others():
    viewport = Viewport(128, 128, 128, 128)
    boxes = [{**BOXES[0], "frame": 0}, {**BOXES[1], "frame": 2}]
    assert [item["label"] for item in boxes_to_canvas(boxes, viewport, frame=2)["objects"]] == ["nodule"]
    assert boxes_to_canvas(boxes, viewport, frame=1) == {"objects": []}
    redrawn = [{"label": "opacity", "x": 1, "y": 1, "width": 2, "height": 2}]
    merged = replace_frame_boxes(boxes, 2, redrawn)
    assert merged == [{**BOXES[0], "frame": 0}, {**redrawn[0], "frame": 2}]
    assert replace_frame_boxes(boxes, 2, []) == [{**BOXES[0], "frame": 0}]


# --- validation on save ---------------------------------------------------------------------------


@pytest.fixture
def wide_image(store) -> int:
    """A 64-column x 40-row image in a project with the classes opacity and nodule."""
    add_label_class(store, LOCAL_ACTOR, "opacity")
    add_label_class(store, LOCAL_ACTOR, "nodule")
    pixels = (np.arange(40 * 64, dtype=np.uint16).reshape(40, 64) * 7).astype(np.uint16)
    [result] = ingest_files(store, LOCAL_ACTOR, [InputFile("wide.dcm", dicom_bytes(pixels=pixels, modality="DX"))])
    assert result.image_id is not None
    return result.image_id


def _stored_boxes(store, image_id: int) -> list[dict]:
    reads = reads_table(store, LOCAL_ACTOR)
    return list(reads.loc[reads["image_id"] == image_id, "boxes"].iloc[0])


def test_canvas_boxes_past_the_image_edge_are_clipped_when_saved(store, wide_image):
    # Canvas 320 x 200 for a 64 x 40 image: 5 display px per image px on both axes.
    viewport = Viewport.fit(64, 40, 320)
    assert (viewport.display_width, viewport.display_height) == (320, 200)
    drawing = {
        "objects": [
            # Starts 10 image px left of and above the image, ends inside it.
            {"type": "LabeledRect", "label": "nodule", "left": -50, "top": -50, "width": 150, "height": 100},
            # Starts inside, runs past the right and bottom edges.
            {"type": "Rect", "left": 300, "top": 150, "width": 100, "height": 100},
        ]
    }
    save_read(store, LOCAL_ACTOR, wide_image, boxes=canvas_to_boxes(drawing, viewport, default_label="opacity"))
    _assert_same_boxes(
        _stored_boxes(store, wide_image),
        [
            {"label": "nodule", "x": 0, "y": 0, "width": 20, "height": 10, "frame": 0},
            {"label": "opacity", "x": 60, "y": 30, "width": 4, "height": 10, "frame": 0},
        ],
        tolerance=1e-9,
    )


def test_a_box_wholly_outside_the_image_or_of_an_unknown_class_is_refused(store, wide_image):
    viewport = Viewport.fit(64, 40, 320)
    outside = {"objects": [{"type": "Rect", "left": 400, "top": 10, "width": 50, "height": 50}]}
    with pytest.raises(MedreviewError, match="outside the image"):
        save_read(store, LOCAL_ACTOR, wide_image, boxes=canvas_to_boxes(outside, viewport, default_label="opacity"))
    relabelled = {"objects": [{"type": "LabeledRect", "label": "typo", "left": 0, "top": 0, "width": 50, "height": 50}]}
    with pytest.raises(MedreviewError, match="not a class"):
        save_read(store, LOCAL_ACTOR, wide_image, boxes=canvas_to_boxes(relabelled, viewport, default_label="opacity"))
    assert reads_table(store, LOCAL_ACTOR).empty


# --- overlays ---------------------------------------------------------------------------------------


def test_draw_boxes_outlines_the_box_on_its_own_edge_pixels():
    grey = np.full((30, 40), 50, dtype=np.uint8)  # (H, W)
    box = {"label": "opacity", "x": 5, "y": 4, "width": 10, "height": 8, "frame": 0}
    drawn = draw_boxes(grey, [box], thickness=1)
    assert drawn.shape == (30, 40, 3) and drawn.dtype == np.uint8
    outlined = np.all(drawn == BOX_COLOR, axis=2)
    expected = np.zeros((30, 40), dtype=bool)
    expected[4, 5:15] = expected[11, 5:15] = True  # top and bottom rows of the box
    expected[4:12, 5] = expected[4:12, 14] = True  # left and right columns
    np.testing.assert_array_equal(outlined, expected)
    assert np.all(drawn[~outlined] == 50)
    assert np.all(grey == 50), "the input must not be drawn on"


def test_draw_boxes_clips_to_the_image_and_keeps_edge_boxes_visible():
    rgb = np.zeros((20, 20, 3), dtype=np.uint8)
    past_the_corner = {"label": "a", "x": 15.5, "y": -3, "width": 30, "height": 8}
    drawn = draw_boxes(rgb, [past_the_corner], thickness=1)
    outlined = np.all(drawn == BOX_COLOR, axis=2)
    assert outlined[0, 15:20].all() and outlined[0:5, 15].all() and outlined[0:5, 19].all()
    assert outlined[4, 15:20].all() and outlined.sum() == 5 + 5 + 3 + 3


def test_draw_boxes_uses_the_frame_thickness_and_fills_tiny_boxes():
    grey = np.zeros((10, 10), dtype=np.uint8)
    on_frame_two = {"label": "a", "x": 1, "y": 1, "width": 6, "height": 6, "frame": 2}
    assert not draw_boxes(grey, [on_frame_two], frame=0).any()
    thick = np.all(draw_boxes(grey, [on_frame_two], frame=2, thickness=2) == BOX_COLOR, axis=2)
    assert thick[1:7, 1:7].sum() == 36 - 4 and not thick[3:5, 3:5].any()
    tiny = np.all(draw_boxes(grey, [{"label": "a", "x": 3, "y": 3, "width": 2, "height": 1}]) == BOX_COLOR, axis=2)
    assert tiny.sum() == 2 and tiny[3, 3] and tiny[3, 4]


def test_draw_boxes_refuses_pixels_that_are_not_a_rendered_frame():
    with pytest.raises(ValueError, match="uint8"):
        draw_boxes(np.zeros((4, 4), dtype=np.float32), [])
    with pytest.raises(ValueError, match="uint8"):
        draw_boxes(np.zeros((4, 4, 4), dtype=np.uint8), [])
