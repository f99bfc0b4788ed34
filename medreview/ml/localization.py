"""Does the model look where readers look? A model version's heat maps scored against reader boxes.

Two scores, each on one image's heat map and boxes in the same pixel grid (pure numpy):

- **pointing game** (Zhang et al., "Top-down neural attention by excitation backprop", ECCV 2016):
  a hit when the map's maximum falls inside a box, or within a tolerance of one. Zhang et al. allow
  15 px at a 224-px input; the network input is the image stretched to a square, so the tolerance
  here is :data:`POINTING_TOLERANCE` (15/224) of the image's height vertically and of its width
  horizontally (an ellipse around the maximum). A map with no positive evidence (all zeros) points
  nowhere: a miss.
- **mass in boxes**: the share of the (non-negative) map's total mass that lies inside the union of
  the boxes (0 for a map with no positive evidence).

A version's figures on an evaluation set (:func:`score_localization`, called by
:func:`medreview.ml.evaluation.evaluate_version`) are the means over the set's images that have
boxes and give a map: ``{"pointing_game", "mass_in_boxes", "n", "images_with_boxes", "cap"}``.

- The boxes of an image (:func:`reference_boxes`) are its **final label's boxes** when it has any
  (an imported final label carries them), **else the union of its readers' boxes** (every read but
  rejected and overruled ones). Only boxes on frame 0 count: the network sees frame 0. When some of
  the boxes name the image's class (its label in the set), only those count.
- The map is the Grad-CAM map (:func:`medreview.ml.explain.grad_cam`, the config's feature layer) of
  the image's class in the set, computed on the network input (frame 0 stretched to the model's
  square input size: no crop, no pad) and resized back to the stored image's pixel grid, as the
  viewer's overlay resizes it (:func:`map_to_image`), where the boxes are.
- Maps cost a gradient pass each: at most :data:`LOCALIZATION_CAP` (200) images are scored per set,
  the first by image id, so every version of a frozen set is scored on the same images.

Boxes are in image pixel coordinates (``x``, ``y`` the top-left corner, ``width``, ``height``, as
medreview.reading.reads stores them); pixel (row r, column c) covers [c, c + 1) x [r, r + 1) and lies
in a box when its centre (c + 0.5, r + 0.5) does.

TensorFlow enters only inside :func:`score_localization` (the worker), through explain.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd
from sqlalchemy import select

from medreview.errors import ImagingError
from medreview.ml.configs import get_config, version_preprocessing
from medreview.ml.training.dataset import prepared_array
from medreview.store import Store
from medreview.store.models import Annotation, FinalLabel, Image, ModelVersion

if TYPE_CHECKING:
    import keras

__all__ = [
    "LOCALIZATION_CAP",
    "POINTING_TOLERANCE",
    "boxes_mask",
    "localization_summary",
    "map_to_image",
    "mass_in_boxes",
    "pointing_game",
    "reference_boxes",
    "score_localization",
]

# Images scored per (version, set): each needs a Grad-CAM pass and a map at the image's full size.
LOCALIZATION_CAP = 200
# Zhang et al. 2016: 15 px of tolerance at a 224-px input, as a share of the input's side.
POINTING_TOLERANCE = 15 / 224
# Reads whose boxes do not count: a reviewer rejected the read, or its class was overruled.
_DISCARDED_READS = ("rejected", "overruled")
_BATCH = 32


# --- scores on one image (pure) -------------------------------------------------------------------


def boxes_mask(shape: tuple[int, int], boxes: Sequence[Mapping[str, Any]]) -> np.ndarray:
    """(rows, columns) bool: the pixels whose centres lie in the union of ``boxes``."""
    rows, columns = shape
    mask = np.zeros((rows, columns), dtype=bool)
    for box in boxes:
        x, y, width, height = (float(box[key]) for key in ("x", "y", "width", "height"))
        # Pixel c is in when x <= c + 0.5 <= x + width.
        first_column, last_column = max(int(np.ceil(x - 0.5)), 0), min(int(np.floor(x + width - 0.5)), columns - 1)
        first_row, last_row = max(int(np.ceil(y - 0.5)), 0), min(int(np.floor(y + height - 0.5)), rows - 1)
        if first_column <= last_column and first_row <= last_row:
            mask[first_row : last_row + 1, first_column : last_column + 1] = True
    return mask


def pointing_game(
    heat_map: np.ndarray, boxes: Sequence[Mapping[str, Any]], tolerance: float | tuple[float, float] = 0.0
) -> bool:
    """Whether the maximum of ``heat_map`` (rows, columns) falls in one of ``boxes`` (same pixel grid),
    or within ``tolerance`` pixels of one: a number, or (vertical, horizontal) for a grid stretched
    from a square input. The first maximum in row-major order counts; an all-zero map is a miss."""
    heat = _non_negative(heat_map)
    if heat.size == 0 or heat.max() <= 0.0 or not boxes:
        return False
    row, column = np.unravel_index(int(np.argmax(heat)), heat.shape)
    point_y, point_x = row + 0.5, column + 0.5
    vertical, horizontal = (tolerance, tolerance) if isinstance(tolerance, (int, float)) else tolerance
    for box in boxes:
        x, y, width, height = (float(box[key]) for key in ("x", "y", "width", "height"))
        # Distance from the point to the rectangle along each axis (0 inside it), then in tolerances.
        dx = max(x - point_x, 0.0, point_x - (x + width))
        dy = max(y - point_y, 0.0, point_y - (y + height))
        if _in_tolerances(dx, float(horizontal)) + _in_tolerances(dy, float(vertical)) <= 1.0:
            return True
    return False


def _in_tolerances(distance: float, tolerance: float) -> float:
    """(distance / tolerance) squared: the point is within an ellipse of tolerances when the sum over
    both axes is at most 1; a distance with no tolerance on its axis is never within."""
    if distance == 0.0:
        return 0.0
    return (distance / tolerance) ** 2 if tolerance > 0.0 else math.inf


def mass_in_boxes(heat_map: np.ndarray, boxes: Sequence[Mapping[str, Any]]) -> float:
    """The share of the non-negative ``heat_map``'s (rows, columns) total mass inside the union of
    ``boxes``, in [0, 1]; 0.0 for a map with no positive evidence."""
    heat = _non_negative(heat_map)
    total = float(heat.sum())
    if total <= 0.0:
        return 0.0
    return float(heat[boxes_mask(heat.shape, boxes)].sum()) / total


def map_to_image(heat_map: np.ndarray, rows: int, columns: int) -> np.ndarray:
    """A map at the feature map's (h, w) resolution over the network input -> (rows, columns) float64
    over the stored image. The input is the image stretched to a square (no crop, no pad), so the map
    is stretched back the same way: bilinear, pixel centres aligned, edges clamped, the values the
    viewer's overlay draws (skimage's ``resize(order=1, mode="edge")`` in
    :func:`medreview.imaging.overlays.overlay_heatmap`). Computed as two small matrix products, one
    per axis, so a 2,000-px film takes milliseconds."""
    heat = _non_negative(heat_map)
    if heat.ndim != 2 or heat.size == 0:
        raise ValueError(f"a heat map must be a non-empty (h, w) array, got shape {heat.shape}")
    if rows < 1 or columns < 1:
        raise ValueError(f"an image needs at least one pixel, got {rows} x {columns}")
    if heat.shape == (rows, columns):
        return heat
    # (rows, h) @ (h, w) @ (w, columns)
    return _linear_weights(rows, heat.shape[0]) @ heat @ _linear_weights(columns, heat.shape[1]).T


def _linear_weights(size: int, source: int) -> np.ndarray:
    """(size, source) float64: row i holds the weights of the source cells that output pixel i
    interpolates, its centre at source coordinate (i + 0.5) * source / size - 0.5, clamped to the
    first and last cells."""
    position = np.clip((np.arange(size) + 0.5) * source / size - 0.5, 0.0, source - 1)  # (size,)
    lower = np.floor(position).astype(np.intp)
    upper = np.minimum(lower + 1, source - 1)
    fraction = position - lower
    weights = np.zeros((size, source))
    np.add.at(weights, (np.arange(size), lower), 1.0 - fraction)
    np.add.at(weights, (np.arange(size), upper), fraction)
    return weights


def _non_negative(heat_map: np.ndarray) -> np.ndarray:
    """float64 with NaN and infinities as 0 and negative values as 0; a clean map is not copied."""
    heat = np.asarray(heat_map, dtype=np.float64)
    if heat.size and np.isfinite(heat).all() and heat.min() >= 0.0:
        return heat
    return np.clip(np.nan_to_num(heat, nan=0.0, posinf=0.0, neginf=0.0), 0.0, None)


# --- a version on a set ---------------------------------------------------------------------------


def reference_boxes(store: Store, image_ids: Sequence[int]) -> dict[int, list[dict[str, Any]]]:
    """The frame-0 boxes of each image that has any: its final label's when it has some, else the
    union of its readers' (reads neither rejected nor overruled). Images without boxes are absent."""
    wanted = [int(image_id) for image_id in image_ids]
    if not wanted:
        return {}
    with store.db.read() as session:
        final = session.execute(select(FinalLabel.image_id, FinalLabel.boxes).where(FinalLabel.image_id.in_(wanted)))
        read = session.execute(
            select(Annotation.image_id, Annotation.boxes).where(
                Annotation.image_id.in_(wanted), Annotation.status.not_in(_DISCARDED_READS)
            )
        )
        final_rows, read_rows = final.all(), read.all()
    by_final: dict[int, list[dict[str, Any]]] = {}
    by_readers: dict[int, list[dict[str, Any]]] = {}
    for rows, target in ((final_rows, by_final), (read_rows, by_readers)):
        for image_id, boxes in rows:
            frame_zero = [dict(box) for box in boxes or [] if int(box.get("frame", 0)) == 0]
            if frame_zero:
                target.setdefault(int(image_id), []).extend(frame_zero)
    return {**by_readers, **by_final}


def score_localization(
    store: Store,
    version: ModelVersion,
    images: pd.DataFrame,
    model: keras.Model,
    cap: int = LOCALIZATION_CAP,
) -> dict[str, Any] | None:
    """``version``'s (``model``, loaded) heat maps against the boxes of an evaluation set's ``images``
    (:func:`~medreview.reading.evaluation_sets.evaluation_set_images`: image_id, label, sha256,
    media_type); see the module docstring. None for a case model (its maps are per case, not per
    image). ``{"error": reason}`` when the model gives no map."""
    from medreview.ml.explain import grad_cam
    from medreview.ml.prediction import case_scope

    if case_scope(version) is not None:
        return None
    class_index = {name: position for position, name in enumerate(version.class_names)}
    boxes = reference_boxes(store, [int(image_id) for image_id in images["image_id"]])
    with_boxes = [
        row for row in images.itertuples(index=False) if int(row.image_id) in boxes and row.label in class_index
    ]
    chosen = with_boxes[:cap]
    with store.db.read() as session:
        sizes = dict(
            (image_id, (rows, columns))
            for image_id, rows, columns in session.execute(
                select(Image.id, Image.rows, Image.columns).where(Image.id.in_([int(row.image_id) for row in chosen]))
            )
        )
    config = get_config(version.architecture)
    recipe = version_preprocessing(version.preprocessing, version.input_size)
    hits: list[float] = []
    masses: list[float] = []
    # One Grad-CAM pass per class, over that class's images in batches.
    for class_name, position in class_index.items():
        of_class = [row for row in chosen if row.label == class_name]
        for start in range(0, len(of_class), _BATCH):
            arrays, kept = [], []
            for row in of_class[start : start + _BATCH]:
                try:
                    arrays.append(prepared_array(store, row.sha256, row.media_type, config, recipe))
                    kept.append(int(row.image_id))
                except ImagingError:
                    continue  # unreadable: no map, not counted in n
            if not kept:
                continue
            try:
                maps = grad_cam(
                    model,
                    np.stack(arrays),  # (B, S, S) float32 in [0, 1]
                    class_index=position,
                    layer_name=config.feature_layer,
                    logits_layer=config.logits_layer,
                )  # (B, h, w) float32 in [0, 1]
            except ValueError as error:
                return {"error": f"the model gives no heat map: {error}"}
            for image_id, feature_map in zip(kept, maps, strict=True):
                rows, columns = sizes[image_id]
                heat = map_to_image(feature_map, int(rows), int(columns))  # (rows, columns) float64
                image_boxes = _boxes_of_class(boxes[image_id], class_name)
                tolerance = (POINTING_TOLERANCE * rows, POINTING_TOLERANCE * columns)
                hits.append(float(pointing_game(heat, image_boxes, tolerance)))
                masses.append(mass_in_boxes(heat, image_boxes))
    return {
        "pointing_game": float(np.mean(hits)) if hits else None,
        "mass_in_boxes": float(np.mean(masses)) if masses else None,
        "n": len(hits),
        "images_with_boxes": len(with_boxes),
        "cap": cap,
    }


def _boxes_of_class(boxes: list[dict[str, Any]], class_name: str) -> list[dict[str, Any]]:
    """The boxes that name ``class_name`` when some do, else all of them (boxes drawn with a finding's
    own class, e.g. "opacity", on an image labelled "pneumonia")."""
    named = [box for box in boxes if box.get("label") == class_name]
    return named or boxes


def localization_summary(metrics: Mapping[str, Any] | None) -> dict[str, Any] | None:
    """A stored evaluation's ``{"pointing_game", "mass_in_boxes", "n"}`` (``evaluate --json``, the Train
    page); None when the evaluation did not score localization (made before it existed, a case model,
    or no map)."""
    block = metrics.get("localization") if isinstance(metrics, Mapping) else None
    if not isinstance(block, Mapping) or "error" in block:
        return None
    return {key: block.get(key) for key in ("pointing_game", "mass_in_boxes", "n")}
