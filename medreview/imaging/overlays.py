"""Overlays drawn over a displayed frame: heat maps (Grad-CAM, HiResCAM), their colour bar, and
thumbnails."""

from __future__ import annotations

import matplotlib
import numpy as np
from skimage import transform

__all__ = ["HEATMAP_COLORMAP", "INFERNO_RGB", "colour_bar", "overlay_heatmap", "thumbnail"]

# The heat-map colour scale: matplotlib's inferno (black -> purple -> orange -> pale yellow), sampled
# to 256 steps. Perceptually uniform with a lightness that rises monotonically over nearly the whole
# range, so equal steps of evidence look like equal steps, "brighter" always means "more", and the
# order survives a colour-blind reader or a grey print. jet, used before, has bright cyan and yellow
# bands in the middle of its range that read as edges which are not in the map and mislead about
# where the evidence peaks. inferno rather than viridis: its lightness spans almost black to almost
# white, the widest range, so faint evidence recedes and the peak stands out over a grey film.
HEATMAP_COLORMAP = "inferno"
_HEATMAP_TABLE = matplotlib.colormaps[HEATMAP_COLORMAP](np.linspace(0.0, 1.0, 256))[:, :3]  # (256, 3) float64 [0, 1]
# The same table as 256 [r, g, b] 0-255 triplets, for the browser viewer's overlay layer.
INFERNO_RGB: list[list[int]] = np.rint(_HEATMAP_TABLE * 255.0).astype(int).tolist()
# The colour bar's frame: mid grey shows on a light and on a dark page alike (inferno's low end is
# black, which a dark theme would swallow).
_BAR_BORDER = 128


def overlay_heatmap(grey: np.ndarray, heatmap: np.ndarray, opacity: float) -> np.ndarray:
    """Blend a [0, 1] heat map (Grad-CAM or HiResCAM, any size) over an image: (H, W, 3) uint8, in
    :data:`HEATMAP_COLORMAP`.

    ``grey`` is (H, W) or (H, W, 3) uint8; opacity 0 gives the image, 1 the pure colour map.
    """
    if not 0.0 <= opacity <= 1.0:
        raise ValueError(f"opacity must be between 0 and 1, got {opacity}")
    if grey.ndim == 2:
        base = np.repeat(grey[..., np.newaxis], 3, axis=-1)
    elif grey.ndim == 3 and grey.shape[-1] == 3:
        base = grey
    else:
        raise ValueError(f"image must be (H, W) or (H, W, 3), got shape {grey.shape}")
    if heatmap.ndim != 2 or heatmap.size == 0:
        raise ValueError(f"heat map must be a non-empty (h, w) array, got shape {heatmap.shape}")
    height, width = base.shape[:2]
    heat = np.nan_to_num(heatmap.astype(np.float64), nan=0.0)
    if heat.shape != (height, width):
        heat = transform.resize(heat, (height, width), order=1, mode="edge", anti_aliasing=False)
    steps = np.rint(np.clip(heat, 0.0, 1.0) * 255.0).astype(np.intp)  # (H, W) indices into the table
    colours = _HEATMAP_TABLE[steps] * 255.0  # (H, W, 3) float64 in [0, 255]
    blended = (1.0 - opacity) * base.astype(np.float64) + opacity * colours
    return np.rint(np.clip(blended, 0.0, 255.0)).astype(np.uint8)


def colour_bar(height: int, width: int) -> np.ndarray:
    """The heat-map colour scale as an image: (height, width, 3) uint8, low evidence at the left,
    high at the right, framed by a one-pixel mid-grey border. Shown beside an overlay with its
    labels ("low", "high evidence for <class>") drawn by the page."""
    if height < 3 or width < 3:
        raise ValueError(f"a colour bar needs at least 3 x 3 pixels, got {height} x {width}")
    steps = np.rint(np.linspace(0.0, 255.0, width - 2)).astype(np.intp)  # (W - 2,) indices into the table
    row = np.rint(_HEATMAP_TABLE[steps] * 255.0).astype(np.uint8)  # (W - 2, 3)
    bar = np.full((height, width, 3), _BAR_BORDER, dtype=np.uint8)
    bar[1:-1, 1:-1] = row[np.newaxis]
    return bar


def thumbnail(pixels: np.ndarray, max_side: int) -> np.ndarray:
    """Shrink (H, W) or (H, W, C) pixels so the longer side is at most ``max_side``; never enlarges.

    Keeps the aspect ratio and the dtype.
    """
    if max_side < 1:
        raise ValueError(f"thumbnail size must be at least 1 pixel, got {max_side}")
    height, width = pixels.shape[:2]
    if max(height, width) <= max_side:
        return pixels.copy()
    scale = max_side / max(height, width)
    shape = (max(1, round(height * scale)), max(1, round(width * scale)), *pixels.shape[2:])
    resized = transform.resize(
        pixels.astype(np.float64), shape, order=1, mode="edge", anti_aliasing=True, preserve_range=True
    )
    if np.issubdtype(pixels.dtype, np.integer):
        info = np.iinfo(pixels.dtype)
        resized = np.clip(np.rint(resized), info.min, info.max)
    return resized.astype(pixels.dtype)
