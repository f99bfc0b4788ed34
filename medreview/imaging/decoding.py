"""Decoding: a stored original to modality values, plus what the display needs from the header.

The first two steps of the DICOM PS3.3 C.11 display pipeline (the rest is
:mod:`medreview.imaging.display`):

1. decode the stored pixels (:func:`decode_dicom`, :func:`decode_raster`);
2. modality LUT: Rescale Slope/Intercept or a Modality LUT Sequence, giving modality values
   (Hounsfield units for CT) as float32.

Colour images (RGB, YBR converted to RGB, palette colour expanded) are kept as stored. The file's
windows and VOI LUT are read here and applied by the display. Every decode failure raises
:class:`~medreview.errors.ImagingError`.
"""

from __future__ import annotations

import io
import math
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps
from pydicom.dataset import Dataset
from pydicom.multival import MultiValue
from pydicom.pixels import apply_color_lut, apply_modality_lut

from medreview.errors import ImagingError, MedreviewError, short_reason
from medreview.ingest.dicom import open_dataset

__all__ = ["DecodedImage", "VoiLut", "Window", "decode_dicom", "decode_file", "decode_raster"]

_GREY_PHOTOMETRIC = ("MONOCHROME1", "MONOCHROME2")


@dataclass(frozen=True)
class Window:
    """A linear VOI window in modality units (Hounsfield units for CT)."""

    center: float
    width: float


@dataclass(frozen=True)
class VoiLut:
    """One item of a VOI LUT Sequence, ready to apply (PS3.3 C.11.2.1.1)."""

    first_mapped: int  # the input value that maps to the first entry
    table: np.ndarray  # (N,) int64 output values
    output_max: int  # top of the output range: 2**bits - 1 from the LUT Descriptor, or the table max


@dataclass
class DecodedImage:
    """Decoded pixels plus what the display pipeline needs from the header."""

    # Greyscale: (F, H, W) float32 modality values (modality LUT applied).
    # Colour: (F, H, W, 3) uint8 RGB.
    frames: np.ndarray
    is_color: bool
    photometric_interpretation: str  # as in the file; "MONOCHROME2" for greyscale PNG/JPEG
    modality: str  # "OT" for PNG/JPEG
    default_window: Window | None  # first valid window of the file; None if absent or all invalid (width <= 0)
    voi_lut: VoiLut | None  # first item of the VOI LUT Sequence; None if absent
    # Every valid window of the file, in file order, named by its Window Center & Width Explanation
    # when the file gives one (a CT often carries "BRAIN", "SUBDURAL", "BONE" side by side).
    file_windows: tuple[tuple[str, Window], ...] = ()
    # (row spacing, column spacing) in mm between pixel centres, from Pixel Spacing (or Imager
    # Pixel Spacing for projection radiographs); None when the file gives neither (PNG/JPEG).
    pixel_spacing: tuple[float, float] | None = None
    # The patient directions along a row (towards the right edge) and down a column (towards the
    # bottom edge) as PS3.3 C.7.6.1.1.1 letters ("L", "P", "H", "LP" when oblique), from Image
    # Orientation (Patient) or Patient Orientation; None when the file gives neither (PNG/JPEG).
    patient_directions: tuple[str, str] | None = None
    # Frame of Reference UID (remapped with the other UIDs at import): slice positions of two series
    # compare only when they share it. None when the file has none (PNG/JPEG, projection films).
    frame_of_reference_uid: str | None = None
    # Image Position (Patient) projected on the slice normal (row x column direction), in mm: where
    # the slice lies along its stack, comparable across the series of one frame of reference.
    # None without both Image Position and Image Orientation (Patient).
    slice_position: float | None = None

    @property
    def frame_count(self) -> int:
        return int(self.frames.shape[0])


# --- decoding --------------------------------------------------------------------------------


def decode_file(path: Path, media_type: str) -> DecodedImage:
    """Decode a stored original; ``media_type`` is "dicom", "png" or "jpeg"."""
    if media_type == "dicom":
        return decode_dicom(path)
    if media_type in ("png", "jpeg"):
        return decode_raster(path)
    raise ImagingError(f"unknown image type {media_type!r}: expected dicom, png or jpeg")


def decode_dicom(path_or_bytes: Path | bytes) -> DecodedImage:
    """Decode all frames of a DICOM image and apply its modality LUT."""
    try:
        dataset = open_dataset(path_or_bytes)
        return _decode_dataset(dataset)
    except ImagingError:
        raise
    except MedreviewError as error:
        raise ImagingError(str(error)) from error
    except Exception as error:  # decoders and malformed headers raise many types
        raise ImagingError(f"cannot decode this DICOM image: {short_reason(error)}") from error


def _decode_dataset(dataset: Dataset) -> DecodedImage:
    photometric = str(dataset.get("PhotometricInterpretation", "")).strip().upper()
    modality = str(dataset.get("Modality", "") or "").strip().upper() or "OT"
    samples_per_pixel = int(dataset.get("SamplesPerPixel", 1) or 1)
    with warnings.catch_warnings():
        # pydicom warns about harmless header quirks; the pixels are what matter here.
        warnings.simplefilter("ignore", UserWarning)
        # as_rgb (pydicom's default) converts YBR_FULL / YBR_FULL_422 to RGB for colour images.
        stored = dataset.pixel_array
    # pydicom drops the frame axis for single-frame objects: give every image (F, H, W[, 3]).
    if stored.ndim == (2 if samples_per_pixel == 1 else 3):
        stored = stored[np.newaxis]

    if photometric == "PALETTE COLOR":
        return DecodedImage(
            frames=_palette_to_rgb(stored, dataset),
            is_color=True,
            photometric_interpretation=photometric,
            modality=modality,
            default_window=None,
            voi_lut=None,
        )
    if stored.ndim == 4:  # (F, H, W, samples): RGB, or YBR already converted by pydicom
        return DecodedImage(
            frames=_colour_to_uint8(stored, _bits_stored(dataset)),
            is_color=True,
            photometric_interpretation=photometric,
            modality=modality,
            default_window=None,
            voi_lut=None,
        )
    if photometric and photometric not in _GREY_PHOTOMETRIC:
        raise ImagingError(f"unsupported photometric interpretation {photometric!r} for a single-sample image")
    file_windows = _file_windows(dataset)
    return DecodedImage(
        frames=_modality_values(stored, dataset),
        is_color=False,
        photometric_interpretation=photometric or "MONOCHROME2",
        modality=modality,
        default_window=file_windows[0][1] if file_windows else None,
        voi_lut=_voi_lut(dataset),
        file_windows=file_windows,
        pixel_spacing=_pixel_spacing(dataset),
        patient_directions=_patient_directions(dataset),
        frame_of_reference_uid=str(dataset.get("FrameOfReferenceUID", "") or "").strip() or None,
        slice_position=slice_position(dataset),
    )


def slice_position(dataset: Dataset) -> float | None:
    """Image Position (Patient) projected on the slice normal (mm), or None without a usable
    position and orientation."""
    try:
        position = [float(value) for value in dataset.get("ImagePositionPatient") or ()]
        cosines = [float(value) for value in dataset.get("ImageOrientationPatient") or ()]
    except (TypeError, ValueError):
        return None
    if len(position) != 3 or len(cosines) != 6 or not all(math.isfinite(value) for value in (*position, *cosines)):
        return None
    row_x, row_y, row_z, column_x, column_y, column_z = cosines
    normal = (
        row_y * column_z - row_z * column_y,
        row_z * column_x - row_x * column_z,
        row_x * column_y - row_y * column_x,
    )
    norm = math.sqrt(sum(component * component for component in normal))
    if norm == 0:
        return None
    return sum(p * n for p, n in zip(position, normal, strict=True)) / norm


def _pixel_spacing(dataset: Dataset) -> tuple[float, float] | None:
    """(row, column) spacing in mm, or None when absent or not two positive finite numbers."""
    for keyword in ("PixelSpacing", "ImagerPixelSpacing"):
        value = dataset.get(keyword)
        if value is None:
            continue
        try:
            row, column = (float(part) for part in value)
        except (TypeError, ValueError):
            continue
        if all(math.isfinite(part) and part > 0 for part in (row, column)):
            return (row, column)
    return None


# Patient axes (PS3.3 C.7.6.2.1.1): +x towards the patient's left, +y posterior, +z head.
_AXIS_LETTERS = (("R", "L"), ("A", "P"), ("F", "H"))
_OPPOSITE_LETTERS = str.maketrans("LRAPHF", "RLPAFH")
# A direction cosine below this names no letter: 0.25 keeps the main axes of an oblique plane
# ("LP" for 45 degrees) and drops the noise of a near-axial one.
_DIRECTION_MINIMUM = 0.25


def direction_letters(cosines: tuple[float, float, float]) -> str:
    """A direction in patient coordinates as letters, strongest first: (0, 0, -1) is "F",
    (0.7, 0.7, 0) is "LP"; "" for a zero vector."""
    order = sorted(range(3), key=lambda axis: -abs(cosines[axis]))
    return "".join(_AXIS_LETTERS[axis][cosines[axis] > 0] for axis in order if abs(cosines[axis]) >= _DIRECTION_MINIMUM)


def opposite_letters(letters: str) -> str:
    """The opposite direction: "LP" -> "RA"."""
    return letters.translate(_OPPOSITE_LETTERS)


def _patient_directions(dataset: Dataset) -> tuple[str, str] | None:
    """(along a row, down a column) as letters, from Image Orientation (Patient) (cross-sectional
    images, or the shared Plane Orientation of an enhanced multi-frame) or else Patient Orientation
    (projection radiographs); None without a usable value."""
    orientation = dataset.get("ImageOrientationPatient")
    shared = dataset.get("SharedFunctionalGroupsSequence")
    if orientation is None and shared:
        plane = shared[0].get("PlaneOrientationSequence")
        orientation = plane[0].get("ImageOrientationPatient") if plane else None
    try:
        cosines = [float(value) for value in orientation] if orientation is not None else []
    except (TypeError, ValueError):
        cosines = []
    if len(cosines) == 6 and all(math.isfinite(value) for value in cosines):
        row = direction_letters((cosines[0], cosines[1], cosines[2]))
        column = direction_letters((cosines[3], cosines[4], cosines[5]))
        if row and column:
            return (row, column)
    patient_orientation = dataset.get("PatientOrientation")
    if isinstance(patient_orientation, MultiValue | list) and len(patient_orientation) == 2:
        row, column = (str(value).strip().upper() for value in patient_orientation)
        if row and column and set(row + column) <= set("LRAPHF"):
            return (row, column)
    return None


def _bits_stored(dataset: Dataset) -> int:
    return int(dataset.get("BitsStored", dataset.get("BitsAllocated", 8)) or 8)


def _colour_to_uint8(stored: np.ndarray, bits_stored: int) -> np.ndarray:
    """(F, H, W, 3) RGB of any integer depth -> uint8 (16-bit colour is scaled, not clipped)."""
    if stored.dtype == np.uint8:
        return np.ascontiguousarray(stored)
    maximum = float(2**bits_stored - 1) if bits_stored > 0 else float(stored.max() or 1)
    scaled = np.clip(stored.astype(np.float32) * (255.0 / maximum), 0, 255)
    return np.rint(scaled).astype(np.uint8)


_PALETTE_DATA_KEYWORDS = tuple(f"{colour}PaletteColorLookupTableData" for colour in ("Red", "Green", "Blue", "Alpha"))


def _palette_to_rgb(stored: np.ndarray, dataset: Dataset) -> np.ndarray:
    """Expand PALETTE COLOR indices into (F, H, W, 3) uint8 RGB."""
    _palette_to_little_endian(dataset)
    rgb = apply_color_lut(stored, dataset)
    descriptor = dataset.get("RedPaletteColorLookupTableDescriptor")
    lut_bits = int(descriptor[2]) if descriptor is not None and len(descriptor) >= 3 else 8
    return _colour_to_uint8(rgb[..., :3], 16 if lut_bits > 8 else 8)


def _palette_to_little_endian(dataset: Dataset) -> None:
    """Byte-swap 16-bit palette tables of a big endian object, in place.

    pydicom 3.0's ``apply_color_lut`` reads (non-segmented) palette data in the machine's byte order,
    so a big endian file came out with its colours scrambled (0x2500 read as 0x0025: a black image).
    """
    if getattr(dataset, "original_encoding", (None, True))[1] is not False:
        return
    descriptor = dataset.get("RedPaletteColorLookupTableDescriptor")
    entries = (int(descriptor[0]) or 65536) if descriptor is not None and len(descriptor) >= 1 else 0
    for keyword in _PALETTE_DATA_KEYWORDS:
        raw = dataset.get(keyword)
        if isinstance(raw, bytes | bytearray) and entries and len(raw) == 2 * entries:
            dataset[keyword].value = np.frombuffer(raw, dtype=">u2").astype("<u2").tobytes()


def _first_number(value: object) -> float | None:
    if isinstance(value, MultiValue | list | tuple):
        value = value[0] if len(value) else None
    if value is None or value == "":
        return None
    try:
        number = float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return None
    return number if math.isfinite(number) else None


def _rescale(item: Dataset) -> tuple[float, float] | None:
    """(slope, intercept) from a dataset or functional-group item, None when absent."""
    slope = _first_number(item.get("RescaleSlope"))
    intercept = _first_number(item.get("RescaleIntercept"))
    if slope is None and intercept is None:
        return None
    # A slope of 0 would flatten the image to the intercept: it is always a header error, read as 1.
    return (slope if slope else 1.0), (intercept or 0.0)


def _functional_group_item(dataset: Dataset, group_keyword: str, frame_index: int | None) -> Dataset | None:
    """The first item of ``group_keyword`` in the per-frame (else shared) functional groups."""
    sources = []
    if frame_index is not None:
        per_frame = dataset.get("PerFrameFunctionalGroupsSequence")
        if per_frame is not None and frame_index < len(per_frame):
            sources.append(per_frame[frame_index])
    shared = dataset.get("SharedFunctionalGroupsSequence")
    if shared:
        sources.append(shared[0])
    for source in sources:
        group = source.get(group_keyword)
        if group:
            return group[0]
    return None


def _modality_values(stored: np.ndarray, dataset: Dataset) -> np.ndarray:
    """(F, H, W) stored values -> (F, H, W) float32 modality values."""
    if "ModalityLUTSequence" in dataset:
        return np.asarray(apply_modality_lut(stored, dataset), dtype=np.float32)
    values = stored.astype(np.float32)
    rescale = _rescale(dataset)
    if rescale is not None:
        slope, intercept = rescale
        return values * np.float32(slope) + np.float32(intercept)
    # Enhanced multi-frame objects keep the rescale in functional groups, possibly per frame.
    for frame_index in range(values.shape[0]):
        item = _functional_group_item(dataset, "PixelValueTransformationSequence", frame_index)
        frame_rescale = _rescale(item) if item is not None else None
        if frame_rescale is not None:
            slope, intercept = frame_rescale
            values[frame_index] = values[frame_index] * np.float32(slope) + np.float32(intercept)
    return values


def _numbers(value: object) -> list[float | None]:
    """Every value of a (possibly multi-valued) DS element; None for an unreadable or non-finite one."""
    values = list(value) if isinstance(value, MultiValue | list | tuple) else [value]
    return [_first_number(item) for item in values]


def _texts(value: object) -> list[str]:
    if value is None:
        return []
    values = list(value) if isinstance(value, MultiValue | list | tuple) else [value]
    return [str(item).strip() for item in values]


def _file_windows(dataset: Dataset) -> tuple[tuple[str, Window], ...]:
    """Every valid (width > 0) Window Center/Width pair of the file, with its explanation.

    Read from the top level, else from the first frame's Frame VOI LUT functional group (enhanced
    multi-frame objects). A centre without a width, or a width of 0, is a header error and is skipped.
    """
    candidates = [dataset]
    frame_voi = _functional_group_item(dataset, "FrameVOILUTSequence", 0)
    if frame_voi is not None:
        candidates.append(frame_voi)
    for item in candidates:
        centers = _numbers(item.get("WindowCenter"))
        widths = _numbers(item.get("WindowWidth"))
        if "WindowCenter" not in item or "WindowWidth" not in item:
            continue
        explanations = _texts(item.get("WindowCenterWidthExplanation"))
        windows = []
        for index, (center, width) in enumerate(zip(centers, widths, strict=False)):
            if center is None or width is None or width <= 0:
                continue
            explanation = explanations[index] if index < len(explanations) else ""
            windows.append((explanation, Window(center, width)))
        if windows:
            return tuple(windows)
    return ()


def _voi_lut(dataset: Dataset) -> VoiLut | None:
    sequence = dataset.get("VOILUTSequence")
    if not sequence:
        return None
    item = sequence[0]
    descriptor = item.get("LUTDescriptor")
    if descriptor is None or "LUTData" not in item or len(descriptor) < 3:
        return None
    entries = int(descriptor[0]) or 65536  # 0 means 2**16 entries
    first_mapped = int(descriptor[1])
    # The second value is unsigned (US) in the header but signed when the pixels are (PS3.3 C.11.2.1.1).
    if first_mapped >= 32768 and int(dataset.get("PixelRepresentation", 0) or 0) == 1:
        first_mapped -= 65536
    bits = int(descriptor[2])
    raw = item.LUTData
    if isinstance(raw, bytes | bytearray):
        is_little_endian = getattr(dataset, "original_encoding", (None, True))[1] is not False
        if len(raw) >= 2 * entries:
            table = np.frombuffer(raw, dtype="<u2" if is_little_endian else ">u2", count=entries)
        else:
            table = np.frombuffer(raw, dtype=np.uint8, count=min(entries, len(raw)))
    else:
        table = np.asarray(raw if isinstance(raw, MultiValue | list | tuple) else [raw])
    table = table.astype(np.int64)
    if table.size == 0:
        return None
    output_max = max(2**bits - 1 if 0 < bits <= 16 else 0, int(table.max()), 1)
    return VoiLut(first_mapped=first_mapped, table=table, output_max=output_max)


def decode_raster(path_or_bytes: Path | bytes) -> DecodedImage:
    """Decode a PNG/JPEG; greyscale (incl. 16-bit PNG, values kept) or RGB whose channels differ."""
    try:
        data = path_or_bytes.read_bytes() if isinstance(path_or_bytes, Path) else bytes(path_or_bytes)
        with Image.open(io.BytesIO(data), formats=["PNG", "JPEG"]) as opened:
            opened.load()
            # Phones and some exporters store the picture sideways plus an EXIF "rotate" flag.
            image = ImageOps.exif_transpose(opened)
        frames, is_color = _raster_pixels(image)
    except ImagingError:
        raise
    except Exception as error:  # Pillow: UnidentifiedImageError, OSError (truncated), ...
        raise ImagingError(f"cannot decode this PNG/JPEG image: {short_reason(error)}") from error
    return DecodedImage(
        frames=frames,
        is_color=is_color,
        photometric_interpretation="RGB" if is_color else "MONOCHROME2",
        modality="OT",
        default_window=None,
        voi_lut=None,
    )


def _raster_pixels(image: Image.Image) -> tuple[np.ndarray, bool]:
    """Pillow image -> ((1, H, W) float32 grey, False) or ((1, H, W, 3) uint8 RGB, True)."""
    mode = image.mode
    if mode in ("I;16", "I;16L", "I;16B", "I;16N", "I", "F", "L", "1"):
        grey = np.asarray(image).astype(np.float32)
        return grey[np.newaxis], False
    if mode in ("LA", "La"):
        return np.asarray(image.getchannel("L")).astype(np.float32)[np.newaxis], False
    rgb = np.asarray(image.convert("RGB"))  # P, RGBA, CMYK, YCbCr, ... -> (H, W, 3) uint8
    if np.array_equal(rgb[..., 0], rgb[..., 1]) and np.array_equal(rgb[..., 0], rgb[..., 2]):
        return rgb[..., 0].astype(np.float32)[np.newaxis], False
    return np.ascontiguousarray(rgb)[np.newaxis], True
