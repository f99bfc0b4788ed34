"""Display: windows (the file's, automatic, presets), the VOI step and MONOCHROME1, a frame for
the screen, and the network input derived from it.

Follows DICOM PS3.3 C.11: modality values (already applied by :mod:`medreview.imaging.decoding`)
go through a VOI LUT Sequence or a linear window, then MONOCHROME1 is inverted (it is defined on
the VOI output, so it comes last). Colour images are shown as stored.
"""

from __future__ import annotations

import numpy as np
from skimage import transform

from medreview.imaging.decoding import DecodedImage, VoiLut, Window

__all__ = [
    "AUTO_WINDOW_NAME",
    "WINDOW_PRESETS",
    "auto_window",
    "default_display_window",
    "render_frame",
    "training_array",
    "window_choices",
    "window_presets",
]

# ITU-R BT.601 luma weights, the usual conversion of an RGB image to grey.
_LUMA_WEIGHTS = np.array([0.299, 0.587, 0.114], dtype=np.float32)


WINDOW_PRESETS: dict[str, dict[str, Window]] = {
    "CT": {
        "lung": Window(-600.0, 1500.0),
        "mediastinum": Window(50.0, 350.0),
        "bone": Window(400.0, 1800.0),
        "brain": Window(40.0, 80.0),
        "abdomen": Window(40.0, 400.0),
    },
}


def window_presets(modality: str) -> dict[str, Window]:
    """Named windows for a modality ("lung", "bone", ... for CT); empty when there are none.

    Only CT has fixed presets: its values are Hounsfield units, the same on every scanner. MR, CR, DX,
    US and the rest have arbitrary units, so their window comes from the image itself
    (:func:`auto_window`, offered by :func:`window_choices`).
    """
    return dict(WINDOW_PRESETS.get(modality.upper(), {}))


AUTO_WINDOW_NAME = "Auto (percentiles)"


def window_choices(image: DecodedImage, frame_index: int = 0) -> dict[str, Window]:
    """The windows to offer for one greyscale frame, in menu order; empty for colour.

    The file's own windows first ("From file", or "From file: BRAIN" when the file names them), then
    the automatic window of this frame, then the modality's presets ("Lung", "Bone", ... for CT).
    """
    if image.is_color:
        return {}
    choices: dict[str, Window] = {}
    for position, (explanation, window) in enumerate(image.file_windows, start=1):
        name = f"From file: {explanation}" if explanation else "From file"
        if name in choices:
            name = f"{name} ({position})"
        choices[name] = window
    choices[AUTO_WINDOW_NAME] = auto_window(image.frames[_checked_frame_index(image, frame_index)])
    for name, window in window_presets(image.modality).items():
        choices[name.title()] = window
    return choices


def auto_window(frame: np.ndarray) -> Window:
    """A window spanning the 0.5th to 99.5th percentile of a (H, W) frame, robust to outliers.

    A constant frame (a blank image) gets width 1 just above its value, so it shows black (white
    once inverted for MONOCHROME1), never a glaring white.
    """
    finite = np.asarray(frame, dtype=np.float64)
    finite = finite[np.isfinite(finite)]
    if finite.size == 0:
        return Window(0.0, 1.0)
    low, high = np.percentile(finite, [0.5, 99.5])
    if not high > low:
        return Window(float(low) + 0.5, 1.0)
    return Window(float((low + high) / 2.0), float(high - low))


def default_display_window(image: DecodedImage, frame_index: int = 0) -> Window | None:
    """The file's window when valid, else :func:`auto_window` of the frame; None for colour."""
    if image.is_color:
        return None
    if image.default_window is not None and image.default_window.width > 0:
        return image.default_window
    return auto_window(image.frames[_checked_frame_index(image, frame_index)])


def _checked_frame_index(image: DecodedImage, frame_index: int) -> int:
    if not 0 <= frame_index < image.frame_count:
        raise ValueError(f"frame {frame_index} does not exist: the image has {image.frame_count} frame(s)")
    return frame_index


def _apply_linear_window(values: np.ndarray, window: Window) -> np.ndarray:
    """DICOM PS3.3 C.11.2.1.2.1 LINEAR window: modality values -> float64 in [0, 255]."""
    center = float(window.center)
    width = float(window.width)
    values = values.astype(np.float64, copy=False)
    if width <= 1.0:
        # Width 1 is a threshold at center - 0.5 (the formula divides by width - 1).
        return np.where(values <= center - 0.5, 0.0, 255.0)
    scaled = ((values - (center - 0.5)) / (width - 1.0) + 0.5) * 255.0
    return np.clip(scaled, 0.0, 255.0)


def _apply_voi_lut(values: np.ndarray, lut: VoiLut) -> np.ndarray:
    """VOI LUT Sequence: modality values -> float64 in [0, 255] using the LUT's output range."""
    indices = np.rint(values).astype(np.int64) - lut.first_mapped
    np.clip(indices, 0, lut.table.size - 1, out=indices)
    return lut.table[indices].astype(np.float64) * (255.0 / lut.output_max)


def render_frame(
    image: DecodedImage, frame_index: int = 0, window: Window | None = None, use_voi_lut: bool = True
) -> np.ndarray:
    """One frame ready for the screen: (H, W) uint8 for greyscale, (H, W, 3) uint8 for colour.

    Greyscale: an explicit ``window`` wins; without one, the file's VOI LUT Sequence is used when
    present and ``use_voi_lut`` is set, else :func:`default_display_window`. MONOCHROME1 (bright =
    low values, e.g. some CR/DX) is inverted after the VOI step. Colour frames are returned as stored.
    """
    frame = image.frames[_checked_frame_index(image, frame_index)]
    if image.is_color:
        return frame
    if window is None and use_voi_lut and image.voi_lut is not None:
        display = _apply_voi_lut(frame, image.voi_lut)
    else:
        chosen = window if window is not None else default_display_window(image, frame_index)
        if chosen is None:  # unreachable for greyscale; keeps the type checker honest
            chosen = auto_window(frame)
        display = _apply_linear_window(frame, chosen)
    if image.photometric_interpretation == "MONOCHROME1":
        display = 255.0 - display
    return np.rint(display).astype(np.uint8)


# --- the network input -------------------------------------------------------------------------


def training_array(image: DecodedImage, size: int) -> np.ndarray:
    """(size, size) float32 in [0, 1]: frame 0 as displayed by default, grey, resized.

    The aspect ratio is not preserved: the frame is stretched to a square, so every image fills the
    network input the same way (chest radiographs are close to square; letterboxing would waste
    input pixels and add an artificial border).
    """
    if size < 1:
        raise ValueError(f"training size must be at least 1 pixel, got {size}")
    rendered = render_frame(image, 0)
    if rendered.ndim == 3:  # colour -> luminance
        grey = rendered.astype(np.float32) @ _LUMA_WEIGHTS / 255.0
    else:
        grey = rendered.astype(np.float32) / 255.0
    shrinking = grey.shape[0] > size or grey.shape[1] > size
    resized = transform.resize(grey, (size, size), order=1, mode="edge", anti_aliasing=shrinking, preserve_range=True)
    return np.clip(np.nan_to_num(resized, nan=0.0), 0.0, 1.0).astype(np.float32)
