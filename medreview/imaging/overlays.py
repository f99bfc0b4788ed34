"""Overlays drawn over a displayed frame: heat maps (Grad-CAM) and thumbnails."""

from __future__ import annotations

import matplotlib
import numpy as np
from skimage import transform

__all__ = ["HEATMAP_COLORMAP", "overlay_heatmap", "thumbnail"]

# The heat-map colour scale: matplotlib's jet (blue -> cyan -> yellow -> red), sampled to 256 steps.
HEATMAP_COLORMAP = "jet"
_HEATMAP_TABLE = matplotlib.colormaps[HEATMAP_COLORMAP](np.linspace(0.0, 1.0, 256))[:, :3]  # (256, 3) float64 [0, 1]


def overlay_heatmap(grey: np.ndarray, heatmap: np.ndarray, opacity: float) -> np.ndarray:
    """Blend a [0, 1] heat map (e.g. Grad-CAM, any size) over an image: (H, W, 3) uint8.

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
