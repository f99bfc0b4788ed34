"""Display and training pixels: the values a radiologist sees must follow the DICOM rules."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pydicom
import pytest
from PIL import Image
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import CTImageStorage, ExplicitVRLittleEndian, generate_uid

from medreview.errors import ImagingError
from medreview.imaging.decoding import DecodedImage, Window, decode_dicom, decode_file, decode_raster
from medreview.imaging.display import (
    auto_window,
    default_display_window,
    render_frame,
    training_array,
    window_choices,
    window_presets,
)
from medreview.imaging.overlays import overlay_heatmap, thumbnail
from tests.helpers import corpus_file, cxr_sample_paths


def corpus_path(name: str) -> Path:
    return corpus_file(name)


def cxr_path() -> Path:
    return cxr_sample_paths()[0]


def grey_image(values: np.ndarray, photometric: str = "MONOCHROME2", **fields: object) -> DecodedImage:
    """A greyscale DecodedImage from (H, W) or (F, H, W) modality values."""
    frames = np.asarray(values, dtype=np.float32)
    if frames.ndim == 2:
        frames = frames[np.newaxis]
    defaults: dict[str, object] = {"modality": "CT", "default_window": None, "voi_lut": None}
    defaults.update(fields)
    return DecodedImage(frames=frames, is_color=False, photometric_interpretation=photometric, **defaults)  # type: ignore[arg-type]


def ct_bytes(stored: np.ndarray, **attributes: object) -> bytes:
    """A CT object (explicit VR little endian, with preamble) holding int16 ``stored`` values."""
    file_meta = FileMetaDataset()
    file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
    dataset = Dataset()
    dataset.file_meta = file_meta
    dataset.SOPClassUID = CTImageStorage
    dataset.SOPInstanceUID = generate_uid()
    dataset.Modality = "CT"
    dataset.Rows, dataset.Columns = stored.shape
    dataset.SamplesPerPixel = 1
    dataset.PhotometricInterpretation = "MONOCHROME2"
    dataset.BitsAllocated = 16
    dataset.BitsStored = 16
    dataset.HighBit = 15
    dataset.PixelRepresentation = 1
    dataset.PixelData = stored.astype(np.int16).tobytes()
    for keyword, value in attributes.items():
        setattr(dataset, keyword, value)
    buffer = io.BytesIO()
    dataset.save_as(buffer, enforce_file_format=True)
    return buffer.getvalue()


def png_bytes(array: np.ndarray, **save_options: object) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(array).save(buffer, format="PNG", **save_options)
    return buffer.getvalue()


# --- the window rule -------------------------------------------------------------------------

# Center 40, width 400 (abdomen): the ramp runs from -160 (black) to 239 (white), PS3.3 C.11.2.1.2.1.
RAMP = np.array([[-1000.0, -160.0, -159.0, 39.0, 239.0, 240.0, 3000.0]])
RAMP_DISPLAY = [0, 0, 1, 127, 255, 255, 255]


def test_linear_window_follows_the_dicom_formula() -> None:
    rendered = render_frame(grey_image(RAMP), window=Window(40, 400))
    assert rendered.dtype == np.uint8
    assert rendered[0].tolist() == RAMP_DISPLAY


def test_monochrome1_is_inverted_after_the_window() -> None:
    rendered = render_frame(grey_image(RAMP, "MONOCHROME1"), window=Window(40, 400))
    assert rendered[0].tolist() == [255 - value for value in RAMP_DISPLAY]


def test_window_presets_are_ct_only() -> None:
    presets = window_presets("CT")
    assert presets["lung"] == Window(-600, 1500)
    assert presets["bone"] == Window(400, 1800)
    assert set(presets) >= {"lung", "mediastinum", "bone", "brain", "abdomen"}
    assert window_presets("MR") == {}


@pytest.mark.parametrize(
    ("name", "center", "width"),
    [("lung", -600, 1500), ("mediastinum", 50, 350), ("bone", 400, 1800), ("brain", 40, 80), ("abdomen", 40, 400)],
)
def test_ct_preset_maps_its_range_onto_black_to_white(name: str, center: float, width: float) -> None:
    preset = window_presets("CT")[name]
    assert preset == Window(center, width)
    # The ramp runs from center - width/2 (black) to center + width/2 (white); center - 0.5 is its
    # exact middle (127.5, shown as 128).
    low, high = center - width / 2, center + width / 2
    hounsfield = np.array([[low - 100, low, center - 0.5, high, high + 100]])
    assert render_frame(grey_image(hounsfield), window=preset)[0].tolist() == [0, 0, 128, 255, 255]


def test_auto_window_spans_the_robust_percentiles() -> None:
    # 0..999: the 0.5th percentile is 4.995 and the 99.5th 994.005.
    frame = np.arange(1000, dtype=np.float32).reshape(10, 100)
    assert auto_window(frame) == Window(499.5, pytest.approx(989.01))
    rendered = render_frame(grey_image(frame, modality="MR"))
    assert rendered[0, :5].tolist() == [0, 0, 0, 0, 0] and rendered[-1, -5:].tolist() == [255] * 5


def test_window_choices_offer_file_windows_then_auto_then_modality_presets() -> None:
    stored = np.arange(64, dtype=np.int16).reshape(8, 8)
    image = decode_dicom(
        ct_bytes(
            stored,
            WindowCenter=[40, 20, -600],
            WindowWidth=[80, 0, 1500],  # the middle pair is invalid and is skipped
            WindowCenterWidthExplanation=["BRAIN", "BROKEN", "LUNG"],
        )
    )
    assert image.default_window == Window(40, 80)
    assert image.file_windows == (("BRAIN", Window(40, 80)), ("LUNG", Window(-600, 1500)))
    choices = window_choices(image)
    assert list(choices)[:3] == ["From file: BRAIN", "From file: LUNG", "Auto (percentiles)"]
    assert choices["Auto (percentiles)"] == auto_window(image.frames[0])
    assert {"Lung", "Mediastinum", "Bone", "Brain", "Abdomen"} <= set(choices)


def test_window_choices_for_other_modalities_are_automatic_and_colour_has_none() -> None:
    mr = grey_image(np.arange(16.0).reshape(4, 4), modality="MR")
    assert list(window_choices(mr)) == ["Auto (percentiles)"]
    red = DecodedImage(np.zeros((1, 2, 2, 3), dtype=np.uint8), True, "RGB", "US", None, None)
    assert window_choices(red) == {}


def test_first_valid_window_is_the_default_when_the_first_has_width_zero() -> None:
    image = decode_dicom(ct_bytes(np.zeros((2, 2), dtype=np.int16), WindowCenter=[40, 50], WindowWidth=[0, 350]))
    assert image.default_window == Window(50, 350)


def test_file_window_is_used_by_default() -> None:
    image = grey_image(RAMP, default_window=Window(40, 400))
    assert default_display_window(image) == Window(40, 400)
    assert render_frame(image)[0].tolist() == RAMP_DISPLAY


# --- modality LUT and header quirks, through real DICOM bytes --------------------------------


def test_rescale_slope_and_intercept_give_hounsfield_units() -> None:
    stored = np.array([[0, 1000], [1024, 2048]], dtype=np.int16)
    image = decode_dicom(ct_bytes(stored, RescaleSlope=1, RescaleIntercept=-1024))
    assert image.frames.dtype == np.float32
    assert image.frames.shape == (1, 2, 2)
    assert image.frames[0].tolist() == [[-1024, -24], [0, 1024]]
    doubled = decode_dicom(ct_bytes(stored, RescaleSlope=2, RescaleIntercept=-1000))
    assert doubled.frames[0].tolist() == [[-1000, 1000], [1048, 3096]]


def test_large_image_values_survive_decoding() -> None:
    stored = (np.arange(1024 * 1024, dtype=np.int64) % 3000 - 1000).astype(np.int16).reshape(1024, 1024)
    image = decode_dicom(ct_bytes(stored, RescaleSlope=1, RescaleIntercept=-24))
    assert np.array_equal(image.frames[0], stored.astype(np.float32) - 24)


def test_rescale_slope_zero_is_read_as_one() -> None:
    stored = np.array([[0, 100]], dtype=np.int16)
    image = decode_dicom(ct_bytes(stored, RescaleSlope=0, RescaleIntercept=-1024))
    assert image.frames[0].tolist() == [[-1024, -924]]


def test_modality_lut_sequence_maps_stored_values_through_its_table() -> None:
    item = Dataset()
    item.LUTDescriptor = [4, 0, 16]  # 4 entries, first mapped value 0, 16-bit output
    item.ModalityLUTType = "HU"
    item.add_new(0x00283006, "US", [100, 200, 300, 400])  # LUT Data
    stored = np.array([[0, 1, 2, 3, 10]], dtype=np.int16)
    image = decode_dicom(ct_bytes(stored, ModalityLUTSequence=[item], PixelRepresentation=0))
    # Values past the table take its last entry (PS3.3 C.11.1).
    assert image.frames[0].tolist() == [[100, 200, 300, 400, 400]]


def test_real_modality_lut_file_is_mapped_through_its_table() -> None:
    path = corpus_path("mlut_18.dcm")
    dataset = pydicom.dcmread(path)
    image = decode_dicom(path)
    table = np.asarray(dataset.ModalityLUTSequence[0].LUTData)
    first_mapped = int(dataset.ModalityLUTSequence[0].LUTDescriptor[1])
    indices = np.clip(dataset.pixel_array.astype(np.int64) - first_mapped, 0, table.size - 1)
    assert np.array_equal(image.frames[0], table[indices].astype(np.float32))


def test_per_frame_rescale_of_an_enhanced_object_applies_to_each_frame() -> None:
    def rescale_group(slope: float, intercept: float) -> Dataset:
        transformation = Dataset()
        transformation.RescaleSlope, transformation.RescaleIntercept = slope, intercept
        transformation.RescaleType = "HU"
        group = Dataset()
        group.PixelValueTransformationSequence = [transformation]
        return group

    stored = np.array([[10, 20]], dtype=np.int16)
    data = ct_bytes(
        np.concatenate([stored, stored]),  # (2, 2): read as two frames of 1 x 2
        Rows=1,
        NumberOfFrames=2,
        PerFrameFunctionalGroupsSequence=[rescale_group(1, -1000), rescale_group(2, 0)],
    )
    image = decode_dicom(data)
    assert image.frames.tolist() == [[[-990, -980]], [[20, 40]]]


def test_window_width_zero_counts_as_absent() -> None:
    stored = np.arange(100, dtype=np.int16).reshape(10, 10)
    image = decode_dicom(ct_bytes(stored, WindowCenter=40, WindowWidth=0))
    assert image.default_window is None
    assert default_display_window(image) == auto_window(image.frames[0])
    rendered = render_frame(image)
    assert rendered.min() == 0 and rendered.max() == 255


def test_first_of_several_windows_is_the_default() -> None:
    stored = np.zeros((2, 2), dtype=np.int16)
    image = decode_dicom(ct_bytes(stored, WindowCenter=[40, -600], WindowWidth=[400, 1500]))
    assert image.default_window == Window(40, 400)


def test_voi_lut_sequence_is_applied_and_scaled_to_its_output_range() -> None:
    item = Dataset()
    item.LUTDescriptor = [4, 10, 8]  # 4 entries, first mapped value 10, 8-bit output
    item.add_new(0x00283006, "US", [0, 51, 102, 255])  # LUT Data
    stored = np.array([[5, 10, 11, 12, 13, 100]], dtype=np.int16)
    image = decode_dicom(ct_bytes(stored, VOILUTSequence=[item], WindowCenter=0, WindowWidth=2))
    assert image.voi_lut is not None
    assert render_frame(image)[0].tolist() == [0, 0, 51, 102, 255, 255]
    # An explicit window, or switching the LUT off, uses the linear window instead.
    assert render_frame(image, window=Window(10, 1))[0].tolist() == [0, 255, 255, 255, 255, 255]
    assert render_frame(image, use_voi_lut=False)[0].tolist() == [255, 255, 255, 255, 255, 255]


def test_monochrome1_is_inverted_after_the_voi_lut() -> None:
    item = Dataset()
    item.LUTDescriptor = [4, 10, 8]
    item.add_new(0x00283006, "US", [0, 51, 102, 255])
    stored = np.array([[5, 11, 12, 100]], dtype=np.int16)
    image = decode_dicom(ct_bytes(stored, VOILUTSequence=[item], PhotometricInterpretation="MONOCHROME1"))
    assert render_frame(image)[0].tolist() == [255, 204, 153, 0]


def test_real_voi_lut_file_renders_its_lut() -> None:
    # vlut_04.dcm: a 256-entry, 16-bit identity-like LUT (entry i = 257 * i) over 8-bit pixels.
    path = corpus_path("vlut_04.dcm")
    image = decode_dicom(path)
    stored = pydicom.dcmread(path).pixel_array
    assert np.array_equal(render_frame(image), stored.astype(np.uint8))


def test_real_monochrome1_radiograph_is_inverted() -> None:
    path = corpus_path("RG1_UNCI.dcm")
    image = decode_dicom(path)
    assert image.photometric_interpretation == "MONOCHROME1"
    window = Window(15000, 30000)
    as_monochrome2 = DecodedImage(image.frames, False, "MONOCHROME2", image.modality, window, None)
    assert np.array_equal(render_frame(image, window=window), 255 - render_frame(as_monochrome2))


# --- degenerate images -----------------------------------------------------------------------


def test_auto_window_of_a_constant_image_has_width_one_just_above_the_value() -> None:
    assert auto_window(np.full((8, 8), 42.0, dtype=np.float32)) == Window(42.5, 1.0)


def test_auto_window_ignores_outliers() -> None:
    frame = np.tile(np.arange(100, dtype=np.float32), (100, 1))
    frame[0, 0] = 1e6  # one hot pixel must not flatten the image
    window = auto_window(frame)
    assert window.center - window.width / 2 == pytest.approx(0.0, abs=1.0)
    assert window.center + window.width / 2 == pytest.approx(99.0, abs=1.0)


@pytest.mark.parametrize("shape", [(1, 1), (16, 16)])
def test_constant_and_single_pixel_images_render(shape: tuple[int, int]) -> None:
    image = grey_image(np.full(shape, -1000.0))
    rendered = render_frame(image)
    assert rendered.shape == shape
    assert np.unique(rendered).tolist() == [0]  # a blank image is black, not a glaring white
    inverted = render_frame(grey_image(np.full(shape, -1000.0), photometric="MONOCHROME1"))
    assert np.unique(inverted).tolist() == [255]  # MONOCHROME1: low values are bright
    array = training_array(image, 8)
    assert array.shape == (8, 8)
    assert np.isfinite(array).all()


def test_frame_index_out_of_range_is_a_clear_error() -> None:
    image = decode_dicom(corpus_path("emri_small.dcm"))
    assert image.frame_count == 10
    assert render_frame(image, 9).shape == (64, 64)
    with pytest.raises(ValueError, match="frame 10 does not exist"):
        render_frame(image, 10)


# --- real corpus files -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("reference", "compressed"),
    [
        ("MR_small.dcm", "MR_small_RLE.dcm"),
        ("MR_small.dcm", "MR_small_jpeg_ls_lossless.dcm"),
        ("emri_small.dcm", "emri_small_RLE.dcm"),
        ("SC_rgb.dcm", "SC_rgb_rle.dcm"),
    ],
)
def test_lossless_compression_decodes_to_identical_pixels(reference: str, compressed: str) -> None:
    plain = decode_dicom(corpus_path(reference))
    packed = decode_dicom(corpus_path(compressed))
    assert plain.frames.shape == packed.frames.shape
    assert np.array_equal(plain.frames, packed.frames)


@pytest.mark.parametrize("name", ["CT_small.dcm", "JPEG2000.dcm", "JPEG-LL.dcm", "JPGExtended.dcm"])
def test_greyscale_corpus_files_give_float_modality_values(name: str) -> None:
    image = decode_dicom(corpus_path(name))
    assert not image.is_color
    assert image.frames.dtype == np.float32 and image.frames.ndim == 3
    rendered = render_frame(image)
    assert rendered.dtype == np.uint8 and rendered.shape == image.frames.shape[1:]


def test_ct_values_are_hounsfield_units() -> None:
    path = corpus_path("CT_small.dcm")
    dataset = pydicom.dcmread(path)
    image = decode_dicom(path)
    expected = dataset.pixel_array * float(dataset.RescaleSlope) + float(dataset.RescaleIntercept)
    assert np.array_equal(image.frames[0], expected.astype(np.float32))


def test_colour_is_not_touched_by_windowing() -> None:
    image = decode_dicom(corpus_path("SC_rgb_rle.dcm"))
    assert image.is_color and image.frames.shape == (1, 100, 100, 3)
    assert default_display_window(image) is None
    assert np.array_equal(render_frame(image, window=Window(0, 1)), image.frames[0])


@pytest.mark.parametrize("name", ["OBXXXX1A.dcm", "US1_J2KR.dcm", "SC_rgb_jpeg_dcmtk.dcm"])
def test_palette_and_ybr_colour_become_rgb(name: str) -> None:
    image = decode_dicom(corpus_path(name))
    assert image.is_color
    assert image.frames.dtype == np.uint8 and image.frames.shape[-1] == 3


def test_broken_corpus_file_raises_imaging_error() -> None:
    with pytest.raises(ImagingError, match="cannot decode"):
        decode_dicom(corpus_path("JPEG-lossy.dcm"))


def test_garbage_raises_imaging_error() -> None:
    with pytest.raises(ImagingError):
        decode_dicom(b"this is not a DICOM file at all" * 10)
    with pytest.raises(ImagingError):
        decode_raster(b"\x89PNG\r\n\x1a\n" + b"\0" * 40)
    with pytest.raises(ImagingError, match="unknown image type"):
        decode_file(corpus_path("CT_small.dcm"), "tiff")


# --- PNG / JPEG ------------------------------------------------------------------------------


def test_sixteen_bit_png_keeps_its_values() -> None:
    values = np.array([[0, 1000], [40000, 65535]], dtype=np.uint16)
    image = decode_raster(png_bytes(values))
    assert not image.is_color and image.modality == "OT"
    assert image.photometric_interpretation == "MONOCHROME2"
    assert image.frames[0].tolist() == [[0, 1000], [40000, 65535]]


def test_rgb_with_identical_channels_becomes_greyscale() -> None:
    grey = np.arange(12, dtype=np.uint8).reshape(3, 4)
    image = decode_raster(png_bytes(np.stack([grey] * 3, axis=-1)))
    assert not image.is_color
    assert image.frames[0].tolist() == grey.astype(np.float32).tolist()
    colour = np.stack([grey, grey, grey + 1], axis=-1)
    assert decode_raster(png_bytes(colour)).is_color


def test_chest_xray_jpeg_decodes_and_trains() -> None:
    path = cxr_path()
    image = decode_file(path, "jpeg")
    with Image.open(path) as opened:
        width, height = opened.size
    assert image.frames.shape == (1, height, width)
    array = training_array(image, 128)
    assert array.shape == (128, 128) and array.dtype == np.float32
    assert np.isfinite(array).all()
    assert 0.0 <= array.min() < array.max() <= 1.0


# --- training arrays, overlays, thumbnails ---------------------------------------------------


@pytest.mark.parametrize("name", ["CT_small.dcm", "SC_rgb_rle.dcm", "emri_small.dcm"])
def test_training_array_is_square_in_unit_range(name: str) -> None:
    array = training_array(decode_dicom(corpus_path(name)), 32)
    assert array.shape == (32, 32) and array.dtype == np.float32
    assert np.isfinite(array).all()
    assert array.min() >= 0.0 and array.max() <= 1.0
    assert array.max() > array.min()


def test_training_array_uses_luminance_for_colour() -> None:
    red = np.zeros((1, 4, 4, 3), dtype=np.uint8)
    red[..., 0] = 255
    image = DecodedImage(red, True, "RGB", "OT", None, None)
    assert training_array(image, 4) == pytest.approx(np.full((4, 4), 0.299), abs=1e-3)


def test_overlay_extremes() -> None:
    grey = np.array([[0, 100], [200, 255]], dtype=np.uint8)
    heat = np.array([[0.0, 1.0]])  # smaller than the image: resized
    assert np.array_equal(overlay_heatmap(grey, heat, 0.0), np.stack([grey] * 3, axis=-1))
    pure = overlay_heatmap(grey, heat, 1.0)
    assert pure.shape == (2, 2, 3)
    assert np.array_equal(pure, overlay_heatmap(255 - grey, heat, 1.0))  # the image no longer shows
    # jet: low heat is blue, high heat is red
    assert pure[0, 0, 2] > pure[0, 0, 0] and pure[0, 1, 0] > pure[0, 1, 2]
    with pytest.raises(ValueError, match="opacity"):
        overlay_heatmap(grey, heat, 1.5)


def test_overlay_accepts_colour_images() -> None:
    colour = np.zeros((4, 6, 3), dtype=np.uint8)
    blended = overlay_heatmap(colour, np.full((2, 2), 0.5), 0.5)
    assert blended.shape == (4, 6, 3) and blended.dtype == np.uint8


def test_thumbnail_shrinks_keeping_aspect_and_never_enlarges() -> None:
    pixels = np.zeros((400, 200), dtype=np.uint8)
    small = thumbnail(pixels, 100)
    assert small.shape == (100, 50) and small.dtype == np.uint8
    assert thumbnail(pixels, 1000).shape == (400, 200)
    colour = np.zeros((30, 90, 3), dtype=np.uint8)
    assert thumbnail(colour, 45).shape == (15, 45, 3)


# --- PNG / JPEG pixels as stored -------------------------------------------------------------
# Rasters used to be shown and trained through the per-image percentile stretch (auto_window); that
# stretch cost AUC on independent data, so they are now shown and trained as stored, over their bit
# range, and the stretch is a display choice only ("Auto (percentiles)").


def test_png_trains_as_stored_not_stretched() -> None:
    stored = np.linspace(10, 200, 64).round().astype(np.uint8).reshape(8, 8)  # values 10..200
    array = training_array(decode_raster(png_bytes(stored)), 8)
    np.testing.assert_allclose(array, stored / 255.0, atol=1e-6)
    assert array.min() == pytest.approx(10 / 255) and array.max() == pytest.approx(200 / 255)
    # The recipe of model versions that recorded none stretched the same image to 0..1.
    stretched = training_array(decode_raster(png_bytes(stored)), 8, window_policy="file-or-percentiles")
    assert stretched.min() == pytest.approx(0.0, abs=0.01) and stretched.max() == pytest.approx(1.0, abs=0.01)


def test_sixteen_bit_png_trains_scaled_by_65535() -> None:
    stored = np.array([[0, 1000, 2000, 3000], [4000, 30000, 40000, 65535]] * 2, dtype=np.uint16)  # (4, 4)
    array = training_array(decode_raster(png_bytes(stored)), 4)
    np.testing.assert_allclose(array, stored / 65535.0, atol=1e-6)


def test_jpeg_trains_as_its_decoded_values() -> None:
    data = io.BytesIO()
    Image.fromarray(np.linspace(40, 120, 256).astype(np.uint8).reshape(16, 16)).save(data, format="JPEG")
    image = decode_raster(data.getvalue())
    np.testing.assert_allclose(training_array(image, 16), image.frames[0] / 255.0, atol=1e-6)


def test_png_is_shown_as_stored_by_default_and_percentiles_stay_a_choice() -> None:
    stored = np.linspace(10, 200, 64).round().astype(np.uint8).reshape(8, 8)
    image = decode_raster(png_bytes(stored))
    assert default_display_window(image) == Window(128, 256)
    assert np.array_equal(render_frame(image), stored)
    choices = window_choices(image)
    assert list(choices) == ["As stored", "Auto (percentiles)"]
    stretched = render_frame(image, window=choices["Auto (percentiles)"])
    assert stretched.min() == 0 and stretched.max() == 255


def test_sixteen_bit_png_is_shown_over_its_bit_range() -> None:
    image = decode_raster(png_bytes(np.array([[0, 1000], [40000, 65535]], dtype=np.uint16)))
    assert default_display_window(image) == Window(32768, 65536)
    assert render_frame(image).tolist() == [[0, 4], [156, 255]]  # rint(v * 255 / 65535)


def test_dicom_trains_through_its_own_window_unrounded() -> None:
    # The DICOM policy: the network sees what the reader sees by default, the file's window.
    hounsfield = np.array([[-160.0, 39.0], [239.0, 3000.0]])
    image = grey_image(hounsfield, default_window=Window(40, 400))
    expected = np.clip(((hounsfield - 39.5) / 399 + 0.5), 0.0, 1.0)  # PS3.3 C.11.2.1.2.1, on [0, 1]
    np.testing.assert_allclose(training_array(image, 2), expected, atol=1e-6)
    inverted = grey_image(hounsfield, "MONOCHROME1", default_window=Window(40, 400))
    np.testing.assert_allclose(training_array(inverted, 2), 1.0 - expected, atol=1e-6)


def test_windowless_dicom_still_gets_the_percentile_window() -> None:
    image = grey_image(np.arange(64.0).reshape(8, 8) - 1000, modality="CT")
    assert window_choices(image).keys() >= {"Auto (percentiles)"} and "As stored" not in window_choices(image)
    array = training_array(image, 8)
    assert array.min() == 0.0 and array.max() == 1.0


def test_unknown_training_recipe_values_are_refused() -> None:
    image = decode_raster(png_bytes(np.zeros((4, 4), dtype=np.uint8)))
    with pytest.raises(ValueError, match="window policy"):
        training_array(image, 4, window_policy="stretch")
    with pytest.raises(ValueError, match="resize"):
        training_array(image, 4, resize="nearest")
    with pytest.raises(ValueError, match="channel"):
        training_array(image, 4, channels="rgb")
