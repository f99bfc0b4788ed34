"""Choose the training resolution from the images themselves, and say what it does to them."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from medreview.errors import TrainingError

__all__ = [
    "DEFAULT_RESOLUTION_CAP",
    "RESOLUTION_PERCENTILE",
    "SIZE_SPREAD_LIMIT",
    "default_resolution",
    "resampling_report",
]

# 128 px keeps a chest film's gross findings (consolidation, effusion, cardiomegaly) and trains at about
# 33 images/s on 2 CPU cores with the small CNN; 224 px is ~3x slower. Raise it on a GPU worker.
DEFAULT_RESOLUTION_CAP = 128
# The percentile of the images' short sides that sets the size: high, so that a project of mostly
# large films with some thumbnails trains at the films' size, not the thumbnails'.
RESOLUTION_PERCENTILE = 90
# Training images whose short sides differ by more than this factor make a run that is not made
# active by itself: one size is badly resampled (a 1,000-px film shrunk to 28 px is one coarse blob
# for Grad-CAM), and the admin confirms (the run's ``confirm_mixed_sizes``) or promotes by hand.
SIZE_SPREAD_LIMIT = 8.0
_EXAMPLES = 10  # images named per direction in a run's resampling report


def default_resolution(
    image_shapes: Sequence[tuple[int, int]],
    cap: int = DEFAULT_RESOLUTION_CAP,
    floor: int = 28,
    percentile: float = RESOLUTION_PERCENTILE,
) -> int:
    """Return the square side, in pixels, that the images are resized to for training.

    The rule, in order:

    1. take the ``percentile`` (default 90th) over images of the short side ``min(height, width)``,
       as the short side of an actual image (numpy's "lower" method): a few thumbnails in a project
       of films do not pull it down, and it is never the smallest image's size unless most images
       are that small;
    2. at most ``cap`` (for the CPU);
    3. above ``floor``, round down to a multiple of 8 (three 2x poolings then divide evenly), but not
       below ``floor``;
    4. data at or below ``floor`` keeps its own size (28 px PneumoniaMNIST trains at 28 px).

    Examples with the defaults: 28x28 images -> 28; 1500x1800 films -> 128; short sides of 90, 100,
    100, 100 and 3000 px -> 96; 30 px -> 28.
    """
    if not image_shapes:
        raise TrainingError("Cannot choose a training resolution without any images.")
    if floor < 1 or cap < floor:
        raise TrainingError(f"The resolution bounds are inconsistent: floor {floor}, cap {cap}.")
    short_sides = _short_sides(image_shapes)
    typical = int(np.percentile(short_sides, percentile, method="lower"))
    size = min(typical, cap)
    if size <= floor:
        return size
    return max(size - size % 8, floor)


def resampling_report(
    image_ids: Sequence[int], image_shapes: Sequence[tuple[int, int]], input_size: int
) -> dict[str, Any]:
    """What training at ``input_size`` does to each image (``image_shapes`` (height, width) in the
    order of ``image_ids``), for the run's record and its page:

    - ``input_size``; ``downsampled`` and ``upsampled``: ``count``, ``largest_factor`` (short side /
      size, or size / short side) and ``examples`` (up to 10 ``{"image_id", "height", "width",
      "factor"}``, the most resampled first);
    - ``size_spread``: the largest short side over the smallest; ``mixed_sizes``: above
      :data:`SIZE_SPREAD_LIMIT`; ``description``: all of it in a sentence.
    """
    if len(image_ids) != len(image_shapes) or not image_shapes:
        raise TrainingError("A resampling report needs one shape per image, and at least one image.")
    short_sides = _short_sides(image_shapes)
    factors = short_sides / float(input_size)  # > 1: shrunk, < 1: enlarged

    def direction(selected: np.ndarray, scale: np.ndarray) -> dict[str, Any]:
        order = np.flatnonzero(selected)[np.argsort(-scale[selected], kind="stable")]
        return {
            "count": int(selected.sum()),
            "largest_factor": round(float(scale[selected].max()), 2) if selected.any() else None,
            "examples": [
                {
                    "image_id": int(image_ids[i]),
                    "height": int(image_shapes[i][0]),
                    "width": int(image_shapes[i][1]),
                    "factor": round(float(scale[i]), 2),
                }
                for i in order[:_EXAMPLES]
            ],
        }

    downsampled = direction(factors > 1.0, factors)
    upsampled = direction(factors < 1.0, 1.0 / factors)
    spread = float(short_sides.max() / short_sides.min())
    parts = [f"Trained at {input_size} px"]
    for name, block in (("downsampled", downsampled), ("upsampled", upsampled)):
        if block["count"]:
            shown = ", ".join(
                f"image {e['image_id']} ({e['height']}x{e['width']}, {e['factor']:g}x)" for e in block["examples"][:3]
            )
            parts.append(f"{block['count']} images {name} by up to {block['largest_factor']:g}x (e.g. {shown})")
        else:
            parts.append(f"none {name}")
    description = "; ".join(parts) + "."
    mixed = spread > SIZE_SPREAD_LIMIT
    if mixed:
        description += (
            f" The training images' short sides differ by {spread:.1f}x (more than {SIZE_SPREAD_LIMIT:g}x): "
            "the run is not made active unless the admin confirms mixed sizes."
        )
    return {
        "input_size": int(input_size),
        "downsampled": downsampled,
        "upsampled": upsampled,
        "size_spread": round(spread, 2),
        "mixed_sizes": mixed,
        "description": description,
    }


def _short_sides(image_shapes: Sequence[tuple[int, int]]) -> np.ndarray:
    short_sides = np.array([min(int(height), int(width)) for height, width in image_shapes], dtype=np.float64)
    if short_sides.min() < 1:
        raise TrainingError("An image with no pixels cannot be trained on.")
    return short_sides
