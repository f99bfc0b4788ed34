"""Bounding boxes between the screen and the store.

Boxes are stored in IMAGE PIXEL coordinates (``{"label", "x", "y", "width", "height", "frame"}``,
floats, origin at the top-left corner of the top-left pixel; see ``annotation.save_read``). The
Label page draws them on a canvas that shows the image scaled to some display size, so every box
crosses one boundary twice: display pixels -> image pixels when the reader saves, and image
pixels -> display pixels when saved boxes are drawn again (at whatever size the canvas has then).

The canvas is streamlit-drawable-canvas, which speaks fabric.js JSON: a drawn box is an object of
type ``"Rect"`` (``drawing_mode="rect"``) or ``"LabeledRect"`` (``drawing_mode="labeled_rect"``,
which also carries a ``label``) with ``left``/``top`` at its origin, ``width``/``height`` as
first drawn, and ``scaleX``/``scaleY`` set when the reader resizes it afterwards.

Where no canvas is used (a read-only view, a report), :func:`draw_boxes` burns the boxes into an
RGB copy of the rendered frame.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
from skimage import draw

__all__ = [
    "BOX_COLOR",
    "BOX_OBJECT_TYPES",
    "Viewport",
    "boxes_to_canvas",
    "canvas_to_boxes",
    "display_to_image",
    "draw_boxes",
    "image_to_display",
    "replace_frame_boxes",
]

# Amber: visible on both dark and bright parts of a greyscale radiograph.
BOX_COLOR = (255, 193, 7)
# fabric.js object types that are boxes (compared case-insensitively: fabric 4 wrote "rect").
BOX_OBJECT_TYPES = ("rect", "labeledrect")
# Where an object's left/top sit on the box, as a fraction of its width/height, per origin.
_ORIGIN_FRACTION = {"left": 0.0, "top": 0.0, "center": 0.5, "right": 1.0, "bottom": 1.0}


@dataclass(frozen=True)
class Viewport:
    """An image of ``columns`` x ``rows`` pixels shown at ``display_width`` x ``display_height``
    screen pixels (each axis scaled on its own, as a canvas with a stretched background does)."""

    display_width: float
    display_height: float
    columns: int
    rows: int

    def __post_init__(self) -> None:
        if min(self.display_width, self.display_height, self.columns, self.rows) <= 0:
            raise ValueError(f"a viewport needs positive sizes, got {self}")

    @classmethod
    def fit(cls, columns: int, rows: int, max_width: int, max_height: int | None = None) -> Viewport:
        """The largest whole-pixel display size within ``max_width`` (and ``max_height``) that
        keeps the image's aspect ratio; small images are enlarged to fit too."""
        if min(columns, rows, max_width) <= 0 or (max_height is not None and max_height <= 0):
            raise ValueError("image and display sizes must be positive")
        scale = max_width / columns
        if max_height is not None:
            scale = min(scale, max_height / rows)
        width = max(1, round(columns * scale))
        height = max(1, round(rows * scale))
        return cls(width, height, columns, rows)

    @property
    def scale_x(self) -> float:
        """Display pixels per image column."""
        return self.display_width / self.columns

    @property
    def scale_y(self) -> float:
        """Display pixels per image row."""
        return self.display_height / self.rows


def image_to_display(box: Mapping[str, Any], viewport: Viewport) -> dict[str, float]:
    """An image-pixel box (x, y, width, height) as display pixels (left, top, width, height)."""
    return {
        "left": float(box["x"]) * viewport.scale_x,
        "top": float(box["y"]) * viewport.scale_y,
        "width": float(box["width"]) * viewport.scale_x,
        "height": float(box["height"]) * viewport.scale_y,
    }


def display_to_image(rectangle: Mapping[str, Any], viewport: Viewport) -> dict[str, float]:
    """A display-pixel rectangle (left, top, width, height) as an image-pixel box
    (x, y, width, height). Not clipped: ``save_read`` clips to the image and refuses boxes
    that lie wholly outside it."""
    return {
        "x": float(rectangle["left"]) / viewport.scale_x,
        "y": float(rectangle["top"]) / viewport.scale_y,
        "width": float(rectangle["width"]) / viewport.scale_x,
        "height": float(rectangle["height"]) / viewport.scale_y,
    }


def _object_rectangle(canvas_object: Mapping[str, Any]) -> dict[str, float]:
    """The on-screen rectangle of a fabric.js rect: scale applied, origin moved to top-left."""
    width = float(canvas_object.get("width", 0)) * abs(float(canvas_object.get("scaleX", 1)))
    height = float(canvas_object.get("height", 0)) * abs(float(canvas_object.get("scaleY", 1)))
    origin_x = _ORIGIN_FRACTION.get(str(canvas_object.get("originX", "left")), 0.0)
    origin_y = _ORIGIN_FRACTION.get(str(canvas_object.get("originY", "top")), 0.0)
    return {
        "left": float(canvas_object.get("left", 0)) - origin_x * width,
        "top": float(canvas_object.get("top", 0)) - origin_y * height,
        "width": width,
        "height": height,
    }


def canvas_to_boxes(
    drawing: Mapping[str, Any] | None,
    viewport: Viewport,
    *,
    frame: int = 0,
    default_label: str | None = None,
) -> list[dict[str, Any]]:
    """The boxes of a canvas drawing (its ``json_data``) in image pixel coordinates.

    A ``LabeledRect`` keeps its own label (when it has one); a plain ``Rect`` gets
    ``default_label``. Objects that are not boxes (free drawing, circles, ...) and boxes with no
    area are skipped. Every box is on ``frame``, the frame the canvas showed.
    """
    boxes: list[dict[str, Any]] = []
    for canvas_object in (drawing or {}).get("objects") or []:
        if str(canvas_object.get("type", "")).lower() not in BOX_OBJECT_TYPES:
            continue
        rectangle = _object_rectangle(canvas_object)
        if not (rectangle["width"] > 0 and rectangle["height"] > 0):
            continue
        label = canvas_object.get("label") or default_label
        if label is None:
            raise ValueError("a box drawn without a label needs default_label")
        boxes.append({"label": str(label), **display_to_image(rectangle, viewport), "frame": frame})
    return boxes


def boxes_to_canvas(
    boxes: Iterable[Mapping[str, Any]],
    viewport: Viewport,
    *,
    frame: int = 0,
    stroke_color: str = "#ffc107",
    stroke_width: int = 2,
) -> dict[str, Any]:
    """A canvas ``initial_drawing`` that redraws the image-pixel ``boxes`` of ``frame`` in the
    right place at this viewport's display size (as labelled boxes, so each keeps its class)."""
    objects = []
    for box in boxes:
        if int(box.get("frame", 0)) != frame:
            continue
        objects.append(
            {
                "type": "LabeledRect",
                "label": str(box["label"]),
                **image_to_display(box, viewport),
                "originX": "left",
                "originY": "top",
                "scaleX": 1,
                "scaleY": 1,
                "angle": 0,
                "stroke": stroke_color,
                "strokeWidth": stroke_width,
                "strokeUniform": True,
                "fill": "rgba(0, 0, 0, 0)",
                "lockRotation": True,
            }
        )
    return {"objects": objects}


def replace_frame_boxes(
    boxes: Iterable[Mapping[str, Any]], frame: int, frame_boxes: Iterable[Mapping[str, Any]]
) -> list[dict[str, Any]]:
    """``boxes`` with those on ``frame`` replaced by ``frame_boxes`` (a canvas shows one frame
    of a multi-frame image; saving it must keep the boxes drawn on the other frames)."""
    kept = [dict(box) for box in boxes if int(box.get("frame", 0)) != frame]
    return kept + [{**box, "frame": frame} for box in frame_boxes]


def draw_boxes(
    pixels: np.ndarray,
    boxes: Iterable[Mapping[str, Any]],
    frame: int = 0,
    color: tuple[int, int, int] = BOX_COLOR,
    thickness: int | None = None,
) -> np.ndarray:
    """A copy of a rendered frame with the outlines of ``frame``'s boxes drawn in.

    ``pixels``: (H, W) or (H, W, 3) uint8, as ``imaging.render_frame`` returns. Returns
    (H, W, 3) uint8. The outline lies on the box's own edge pixels (so a box touching the image
    border stays visible), ``thickness`` pixels wide inwards (default: about 1/300 of the longer
    side, at least 1). Parts of a box outside the image are clipped.
    """
    if pixels.dtype != np.uint8 or pixels.ndim not in (2, 3) or (pixels.ndim == 3 and pixels.shape[2] != 3):
        raise ValueError(f"expected (H, W) or (H, W, 3) uint8 pixels, got {pixels.shape} {pixels.dtype}")
    rgb = np.repeat(pixels[:, :, np.newaxis], 3, axis=2) if pixels.ndim == 2 else pixels.copy()
    height, width = rgb.shape[:2]
    if thickness is None:
        thickness = max(1, max(height, width) // 300)
    if thickness < 1:
        raise ValueError("thickness must be at least 1 pixel")
    for box in boxes:
        if int(box.get("frame", 0)) != frame:
            continue
        # Inclusive pixel bounds of the box, clipped to the image.
        left = max(0, math.floor(float(box["x"])))
        top = max(0, math.floor(float(box["y"])))
        right = min(width - 1, math.ceil(float(box["x"]) + float(box["width"])) - 1)
        bottom = min(height - 1, math.ceil(float(box["y"]) + float(box["height"])) - 1)
        for inset in range(thickness):
            box_top, box_left, box_bottom, box_right = top + inset, left + inset, bottom - inset, right - inset
            if box_bottom < box_top or box_right < box_left:
                break
            if box_bottom - box_top < 2 or box_right - box_left < 2:
                # Too small to have an inside: the whole box is outline.
                rgb[box_top : box_bottom + 1, box_left : box_right + 1] = color
                break
            # rectangle_perimeter outlines the pixels just around start..end: pass the inside.
            row_indices, column_indices = draw.rectangle_perimeter(
                (box_top + 1, box_left + 1), (box_bottom - 1, box_right - 1), shape=rgb.shape[:2], clip=True
            )
            rgb[row_indices, column_indices] = color
    return rgb
