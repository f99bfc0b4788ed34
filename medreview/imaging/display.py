"""Display: windows (the file's, the stored range, automatic, presets), the VOI step and MONOCHROME1,
a frame for the screen, and the network input derived from it.

Follows DICOM PS3.3 C.11: modality values (already applied by :mod:`medreview.imaging.decoding`)
go through a VOI LUT Sequence or a linear window, then MONOCHROME1 is inverted (it is defined on
the VOI output, so it comes last). Colour images are shown as stored.

A greyscale PNG/JPEG carries no window: it is shown, and fed to a network, as stored, the identity
over its bit range (8-bit: 0..255, 16-bit PNG: 0..65535). A per-image percentile stretch
(:func:`auto_window`) is offered as a choice for the eye only: as a training input it cost several
points of AUC on independent data (DESIGN.md, pitfalls), because it erases the exposure differences
between images that the network could learn from and amplifies noise in flat images.
"""

from __future__ import annotations

import numpy as np
from skimage import transform

from medreview.imaging.decoding import DecodedImage, VoiLut, Window

__all__ = [
    "AUTO_WINDOW_NAME",
    "CHANNELS",
    "HOUNSFIELD_WINDOW",
    "RESIZE_METHODS",
    "STORED_WINDOW_NAME",
    "WINDOW_POLICIES",
    "WINDOW_POLICY_FILE_OR_PERCENTILES",
    "WINDOW_POLICY_FILE_OR_STORED",
    "WINDOW_POLICY_HOUNSFIELD_OR_FILE",
    "WINDOW_PRESETS",
    "auto_window",
    "default_display_window",
    "render_frame",
    "stored_range_window",
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
STORED_WINDOW_NAME = "As stored"


def window_choices(image: DecodedImage, frame_index: int = 0) -> dict[str, Window]:
    """The windows to offer for one greyscale frame, in menu order; empty for colour.

    The file's own windows first ("From file", or "From file: BRAIN" when the file names them); for a
    PNG/JPEG the stored pixels ("As stored", :func:`stored_range_window`); then the automatic window
    of this frame, then the modality's presets ("Lung", "Bone", ... for CT). The first entry is what
    :func:`default_display_window` shows.
    """
    if image.is_color:
        return {}
    choices: dict[str, Window] = {}
    for position, (explanation, window) in enumerate(image.file_windows, start=1):
        name = f"From file: {explanation}" if explanation else "From file"
        if name in choices:
            name = f"{name} ({position})"
        choices[name] = window
    stored = stored_range_window(image)
    if stored is not None:
        choices[STORED_WINDOW_NAME] = stored
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


def stored_range_window(image: DecodedImage) -> Window | None:
    """The identity window over a greyscale PNG/JPEG's bit range; None for any other image.

    8-bit values 0..255 give Window(128, 256), which maps every value onto itself on the 0-255 display
    scale (PS3.3 C.11.2.1.2.1: ``((x - 127.5) / 255 + 0.5) * 255 == x``); 16-bit PNG values give
    Window(32768, 65536), which maps 0..65535 linearly onto 0..255.

    The decoder does not record a raster's bit depth, so it is read from the values: a greyscale
    image with no window, no VOI LUT, photometric MONOCHROME2 and modality OT (how
    :func:`~medreview.imaging.decoding.decode_raster` describes every PNG/JPEG) whose values are
    integers in 0..255 is 8-bit, in 0..65535 16-bit. A 16-bit PNG whose values all lie below 256
    is therefore shown and trained as 8-bit. A DICOM secondary capture described the same way (no
    window of its own) gets the same identity window, which is also what its stored values mean.
    """
    if (
        image.is_color
        or image.modality != "OT"
        or image.photometric_interpretation != "MONOCHROME2"
        or image.default_window is not None
        or image.voi_lut is not None
        or image.file_windows
    ):
        return None
    frames = image.frames  # (F, H, W) float32 stored values
    if frames.size == 0:
        return None
    low, high = float(frames.min()), float(frames.max())
    if not (np.isfinite(low) and np.isfinite(high)) or low < 0 or high > 65535:
        return None
    if not np.array_equal(frames, np.floor(frames)):
        return None  # rescaled or float values: not the stored integers of a raster
    top = 255 if high <= 255 else 65535
    return Window(center=(top + 1) / 2.0, width=float(top + 1))


def default_display_window(image: DecodedImage, frame_index: int = 0) -> Window | None:
    """The window a reader sees first: the file's window when valid, else a PNG/JPEG as stored
    (:func:`stored_range_window`), else :func:`auto_window` of the frame; None for colour."""
    if image.is_color:
        return None
    if image.default_window is not None and image.default_window.width > 0:
        return image.default_window
    stored = stored_range_window(image)
    if stored is not None:
        return stored
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
    return np.rint(_grey_display(image, frame_index, window, use_voi_lut)).astype(np.uint8)


def _grey_display(image: DecodedImage, frame_index: int, window: Window | None, use_voi_lut: bool) -> np.ndarray:
    """The VOI step and MONOCHROME1 of one greyscale frame: (H, W) float64 in [0, 255], unrounded."""
    frame = image.frames[frame_index]
    if window is None and use_voi_lut and image.voi_lut is not None:
        display = _apply_voi_lut(frame, image.voi_lut)
    else:
        chosen = window if window is not None else default_display_window(image, frame_index)
        if chosen is None:  # unreachable for greyscale; keeps the type checker honest
            chosen = auto_window(frame)
        display = _apply_linear_window(frame, chosen)
    if image.photometric_interpretation == "MONOCHROME1":
        display = 255.0 - display
    return display


# --- the network input -------------------------------------------------------------------------

# How a greyscale frame's values become the network's [0, 1] (the "window policy" of a model's
# preprocessing recipe, recorded with every model version).
#
# file-or-stored (models trained since recipes were recorded): a DICOM goes through its own VOI LUT
#   or first valid window, exactly as the reader sees it by default: those are the values the
#   modality or the sending workstation chose for presentation (a CR/DX's VOI LUT carries its
#   processing), and a DICOM's modality values have no range the app could assume (Hounsfield
#   units, arbitrary MR units, 10-16 stored bits). A DICOM with neither gets the percentile window
#   of the frame, again as displayed. A PNG/JPEG is taken as stored: values over the bit range
#   (/255, /65535 for 16-bit PNG), unrounded. MONOCHROME1 is inverted, so bright is dense for all.
# file-or-percentiles (model versions without a recorded recipe): the same for a DICOM with a
#   window; everything else, PNG/JPEG included, stretched to its 0.5-99.5 percentiles and rounded
#   to 8 bits, which is how those versions were trained.
# hounsfield-or-file (case models' slices): a CT through one fixed window over Hounsfield units
#   (HOUNSFIELD_WINDOW), whatever window the file carries; any other image as file-or-stored. A case
#   model compares the slices of a case and the cases with each other, so one value must give one
#   input: a CT stored without a window got each slice's own percentile window, which stretched every
#   slice to its brightest pixel; a lesion then darkened the rest of its slice instead of standing out,
#   and a case model learnt that darkening (Grad-CAM of its top slices was empty). A file window is
#   for presentation and differs between series (lung, soft tissue), so it is not used for CT either.
WINDOW_POLICY_FILE_OR_STORED = "file-or-stored"
WINDOW_POLICY_FILE_OR_PERCENTILES = "file-or-percentiles"
WINDOW_POLICY_HOUNSFIELD_OR_FILE = "hounsfield-or-file"
WINDOW_POLICIES = (WINDOW_POLICY_FILE_OR_STORED, WINDOW_POLICY_FILE_OR_PERCENTILES, WINDOW_POLICY_HOUNSFIELD_OR_FILE)
# -1000 HU (air) to +1000 HU (dense bone) onto [0, 1]: water at 0.5.
HOUNSFIELD_WINDOW = Window(center=0.0, width=2000.0)
# bilinear-antialias: bilinear interpolation (edge pixels repeated), Gaussian anti-aliasing when shrinking.
RESIZE_METHODS = ("bilinear-antialias",)
# grey-luma: frame 0, grey as it is; colour -> ITU-R BT.601 luma of the 0-255 RGB.
CHANNELS = ("grey-luma",)


def training_array(
    image: DecodedImage,
    size: int,
    window_policy: str = WINDOW_POLICY_FILE_OR_STORED,
    resize: str = "bilinear-antialias",
    channels: str = "grey-luma",
) -> np.ndarray:
    """(size, size) float32 in [0, 1]: frame 0 through ``window_policy`` (see above), grey, resized.

    The aspect ratio is not preserved: the frame is stretched to a square, so every image fills the
    network input the same way (chest radiographs are close to square; letterboxing would waste
    input pixels and add an artificial border).
    """
    if size < 1:
        raise ValueError(f"training size must be at least 1 pixel, got {size}")
    if window_policy not in WINDOW_POLICIES:
        raise ValueError(f"unknown window policy {window_policy!r}: expected one of {', '.join(WINDOW_POLICIES)}")
    if resize not in RESIZE_METHODS:
        raise ValueError(f"unknown resize method {resize!r}: expected one of {', '.join(RESIZE_METHODS)}")
    if channels not in CHANNELS:
        raise ValueError(f"unknown channel handling {channels!r}: expected one of {', '.join(CHANNELS)}")
    frame = image.frames[_checked_frame_index(image, 0)]
    if image.is_color:  # (H, W, 3) uint8 -> luma
        grey = frame.astype(np.float32) @ _LUMA_WEIGHTS / 255.0
    elif window_policy == WINDOW_POLICY_HOUNSFIELD_OR_FILE and image.modality == "CT":
        grey = (_grey_display(image, 0, HOUNSFIELD_WINDOW, use_voi_lut=False) / 255.0).astype(np.float32)
    elif window_policy in (WINDOW_POLICY_FILE_OR_STORED, WINDOW_POLICY_HOUNSFIELD_OR_FILE):
        grey = (_grey_display(image, 0, None, use_voi_lut=True) / 255.0).astype(np.float32)
    else:
        has_file_window = image.voi_lut is not None or (
            image.default_window is not None and image.default_window.width > 0
        )
        window = None if has_file_window else auto_window(frame)
        grey = np.rint(_grey_display(image, 0, window, use_voi_lut=True)).astype(np.float32) / 255.0
    shrinking = grey.shape[0] > size or grey.shape[1] > size
    resized = transform.resize(grey, (size, size), order=1, mode="edge", anti_aliasing=shrinking, preserve_range=True)
    return np.clip(np.nan_to_num(resized, nan=0.0), 0.0, 1.0).astype(np.float32)
