"""Frames for the browser viewer: modality values at full depth, deflated, plus the display facts.

The server decodes once and applies the modality LUT (:mod:`medreview.imaging.decoding`); the viewer
windows, inverts and zooms in the browser (ui/viewer/src/windowing.ts mirrors
:mod:`medreview.imaging.display` number for number). So a frame travels as its modality values,
not as an 8-bit rendering: integer values that fit 16 bits as int16/uint16 (CT in Hounsfield units,
MR, CR/DX, 8/16-bit PNG), anything else as float32, colour as RGB uint8; row-major, little-endian,
zlib-wrapped deflate, which Chromium's ``DecompressionStream("deflate")`` undoes.
"""

from __future__ import annotations

import zlib
from dataclasses import dataclass
from typing import Any

import numpy as np

from medreview.imaging.decoding import DecodedImage, opposite_letters
from medreview.imaging.display import default_display_window, window_choices

__all__ = ["EncodedFrame", "display_facts", "encode_frame", "heatmap_intensities"]

# zlib level 1: a 512x512 int16 CT slice deflates in about 3 ms to roughly half its size; higher
# levels cost several times longer for a few per cent less.
DEFLATE_LEVEL = 1


@dataclass(frozen=True)
class EncodedFrame:
    dtype: str  # "int16" | "uint16" | "float32" | "uint8" (colour: RGB triplets)
    width: int
    height: int
    channels: int  # 1 greyscale, 3 RGB
    payload: bytes  # zlib(deflate) of the row-major little-endian values (or the values, uncompressed)

    @property
    def raw_bytes(self) -> int:
        """The frame's size once inflated in the browser."""
        itemsize = {"int16": 2, "uint16": 2, "float32": 4, "uint8": 1}[self.dtype]
        return self.width * self.height * self.channels * itemsize


def _compact(values: np.ndarray) -> np.ndarray:
    """The smallest exact little-endian array for (H, W) float32 modality values."""
    if values.size and np.isfinite(values).all() and np.array_equal(values, np.floor(values)):
        low, high = float(values.min()), float(values.max())
        if low >= -32768 and high <= 32767:
            return values.astype("<i2")
        if low >= 0 and high <= 65535:
            return values.astype("<u2")
    return values.astype("<f4")


def encode_frame(image: DecodedImage, frame_index: int, *, compress: bool = True) -> EncodedFrame:
    """One frame of ``image`` for the viewer (see the module docstring). ``compress=False``: the
    payload is the values' bytes as they are (a frame sent over HTTP to a browser on the same
    network: deflating a 512 x 512 slice costs the server more than sending it)."""
    if not 0 <= frame_index < image.frame_count:
        raise ValueError(f"frame {frame_index} does not exist: the image has {image.frame_count} frame(s)")
    frame = image.frames[frame_index]
    if image.is_color:  # (H, W, 3) uint8 RGB
        values = np.ascontiguousarray(frame, dtype=np.uint8)
        channels = 3
    else:  # (H, W) float32 modality values
        values = np.ascontiguousarray(_compact(frame))
        channels = 1
    height, width = int(frame.shape[0]), int(frame.shape[1])
    dtype = {"<i2": "int16", "<u2": "uint16", "<f4": "float32", "|u1": "uint8"}[values.dtype.str]
    raw = values.tobytes()
    return EncodedFrame(dtype, width, height, channels, zlib.compress(raw, DEFLATE_LEVEL) if compress else raw)


def display_facts(image: DecodedImage) -> dict[str, Any]:
    """What the viewer needs to window an image as the server would (JSON-ready): the offered
    windows in menu order, the first window shown, the VOI LUT, MONOCHROME1, pixel spacing (the
    ruler and the scale bar) and the patient direction at each edge (the orientation marker)."""
    windows: list[dict[str, Any]] = []
    default = None
    if not image.is_color:
        windows = [
            {"name": name, "center": float(window.center), "width": float(window.width)}
            for name, window in window_choices(image, 0).items()
        ]
        first = default_display_window(image, 0)
        default = None if first is None else {"center": float(first.center), "width": float(first.width)}
    voi_lut = None
    if image.voi_lut is not None:
        voi_lut = {
            "firstMapped": int(image.voi_lut.first_mapped),
            "outputMax": int(image.voi_lut.output_max),
            "table": [int(value) for value in image.voi_lut.table],
        }
    return {
        "modality": image.modality,
        "photometric": image.photometric_interpretation,
        "color": bool(image.is_color),
        "frames": image.frame_count,
        "width": int(image.frames.shape[2]),
        "height": int(image.frames.shape[1]),
        "windows": windows,
        "defaultWindow": default,
        "voiLut": voi_lut,
        "pixelSpacing": list(image.pixel_spacing) if image.pixel_spacing else None,
        "orientation": edge_directions(image.patient_directions),
        # Linked scrolling between series (ui/viewer/src/linking.ts): where this slice lies along the
        # normal, comparable with the slices of series that share the frame of reference.
        "slicePosition": image.slice_position,
        "frameOfReference": image.frame_of_reference_uid,
    }


def edge_directions(directions: tuple[str, str] | None) -> dict[str, str] | None:
    """The patient direction at each edge of the image as shown (no flip or rotation: the viewer has
    none), from (along a row, down a column): ("L", "F") -> right "L", left "R", bottom "F", top "H"."""
    if directions is None:
        return None
    row, column = directions
    return {"left": opposite_letters(row), "right": row, "top": opposite_letters(column), "bottom": column}


def heatmap_intensities(heat: np.ndarray) -> np.ndarray:
    """A (h, w) heat map in [0, 1] as (h, w) uint8 0..255 intensities, which the viewer colours
    (with :data:`medreview.imaging.overlays.INFERNO_RGB`) and stretches over the frame it belongs to."""
    return np.ascontiguousarray(np.clip(np.rint(np.asarray(heat, dtype=np.float64) * 255.0), 0, 255).astype(np.uint8))
