"""Choose the training resolution from the images themselves."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from medreview.errors import TrainingError

__all__ = ["DEFAULT_RESOLUTION_CAP", "default_resolution"]

# 128 px keeps a chest film's gross findings (consolidation, effusion, cardiomegaly) and trains at about
# 33 images/s on 2 CPU cores with the small CNN; 224 px is ~3x slower. Raise it on a GPU worker.
DEFAULT_RESOLUTION_CAP = 128


def default_resolution(
    image_shapes: Sequence[tuple[int, int]],
    cap: int = DEFAULT_RESOLUTION_CAP,
    floor: int = 28,
) -> int:
    """Return the square side, in pixels, that the images are resized to for training.

    The rule, in order:

    1. take the median over images of the short side ``min(height, width)``: one odd thumbnail or one
       huge film does not move it;
    2. never upsample the typical image: use at most that median, and at most ``cap``;
    3. above ``floor``, round down to a multiple of 8 (three 2x poolings then divide evenly), but not
       below ``floor``;
    4. data at or below ``floor`` keeps its own size (28 px PneumoniaMNIST trains at 28 px).

    Examples with the defaults: 28x28 images -> 28; 1500x1800 films -> 128; a median short side of
    100 px -> 96; 30 px -> 28.
    """
    if not image_shapes:
        raise TrainingError("Cannot choose a training resolution without any images.")
    if floor < 1 or cap < floor:
        raise TrainingError(f"The resolution bounds are inconsistent: floor {floor}, cap {cap}.")
    short_sides = np.array([min(int(height), int(width)) for height, width in image_shapes])
    if short_sides.min() < 1:
        raise TrainingError("An image with no pixels cannot be trained on.")
    median_short_side = int(np.median(short_sides))
    size = min(median_short_side, cap)
    if size <= floor:
        return size
    return max(size - size % 8, floor)
