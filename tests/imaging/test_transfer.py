"""Frames for the browser: modality values travel at full depth and exactly, in the smallest exact
type, and the display facts tell the viewer how the server would window them."""

from __future__ import annotations

import io
import zlib

import numpy as np
import pydicom
import pytest

from medreview.imaging.decoding import DecodedImage, VoiLut, Window, decode_dicom
from medreview.imaging.transfer import display_facts, encode_frame, heatmap_intensities
from tests.helpers import dicom_bytes

TYPES = {"int16": "<i2", "uint16": "<u2", "float32": "<f4", "uint8": "|u1"}


def grey(values: np.ndarray, **details) -> DecodedImage:
    fields = {"is_color": False, "photometric_interpretation": "MONOCHROME2", "modality": "CT",
              "default_window": None, "voi_lut": None, **details}  # fmt: skip
    return DecodedImage(frames=np.asarray(values, dtype=np.float32)[np.newaxis], **fields)


def round_trip(image: DecodedImage, frame: int = 0) -> tuple[str, np.ndarray]:
    encoded = encode_frame(image, frame)
    values = np.frombuffer(zlib.decompress(encoded.payload), dtype=TYPES[encoded.dtype])
    shape = (encoded.height, encoded.width) + ((3,) if encoded.channels == 3 else ())
    return encoded.dtype, values.reshape(shape)


@pytest.mark.parametrize(
    ("values", "dtype"),
    [
        ([[-1024.0, 0.0], [40.0, 3071.0]], "int16"),  # CT Hounsfield units
        ([[0.0, 40000.0], [65535.0, 1.0]], "uint16"),  # 16-bit PNG / unsigned DX
        ([[0.5, -3.25], [1e6, 7.0]], "float32"),  # rescaled MR, beyond 16 bits
    ],
)
def test_greyscale_frames_arrive_exactly_in_the_smallest_exact_type(values, dtype):
    sent_type, sent = round_trip(grey(np.array(values)))
    assert sent_type == dtype
    np.testing.assert_array_equal(sent.astype(np.float32), np.array(values, dtype=np.float32))


def test_colour_frames_arrive_as_rgb_bytes():
    rgb = np.arange(2 * 3 * 3, dtype=np.uint8).reshape(1, 2, 3, 3)
    image = DecodedImage(frames=rgb, is_color=True, photometric_interpretation="RGB", modality="US",
                         default_window=None, voi_lut=None)  # fmt: skip
    sent_type, sent = round_trip(image)
    assert sent_type == "uint8"
    np.testing.assert_array_equal(sent, rgb[0])


def test_a_frame_beyond_the_image_is_refused():
    with pytest.raises(ValueError, match="frame 1 does not exist"):
        encode_frame(grey(np.zeros((2, 2))), 1)


def test_display_facts_carry_the_servers_windows_lut_and_inversion():
    lut = VoiLut(first_mapped=0, table=np.array([0, 5, 10]), output_max=10)
    image = grey(np.zeros((4, 6)), photometric_interpretation="MONOCHROME1", default_window=Window(40, 400),
                 file_windows=(("BRAIN", Window(40, 80)),), voi_lut=lut, pixel_spacing=(0.5, 0.25))  # fmt: skip
    facts = display_facts(image)
    assert (facts["width"], facts["height"], facts["frames"]) == (6, 4, 1)
    assert facts["photometric"] == "MONOCHROME1" and facts["color"] is False
    assert facts["defaultWindow"] == {"center": 40.0, "width": 400.0}
    assert facts["windows"][0] == {"name": "From file: BRAIN", "center": 40.0, "width": 80.0}
    assert "Lung" in [window["name"] for window in facts["windows"]]  # CT presets follow
    assert facts["voiLut"] == {"firstMapped": 0, "outputMax": 10, "table": [0, 5, 10]}
    assert facts["pixelSpacing"] == [0.5, 0.25]


def with_attributes(**attributes) -> bytes:
    dataset = pydicom.dcmread(io.BytesIO(dicom_bytes()))
    for keyword, value in attributes.items():
        setattr(dataset, keyword, value)
    buffer = io.BytesIO()
    dataset.save_as(buffer, enforce_file_format=True)
    return buffer.getvalue()


def test_pixel_spacing_is_read_from_the_file_for_the_ruler():
    assert decode_dicom(dicom_bytes()).pixel_spacing is None  # none given: the ruler says px, not mm
    assert decode_dicom(with_attributes(PixelSpacing=[0.7, 0.6])).pixel_spacing == (0.7, 0.6)
    # A projection radiograph may give only the detector's spacing.
    assert decode_dicom(with_attributes(ImagerPixelSpacing=[0.139, 0.139])).pixel_spacing == (0.139, 0.139)
    assert decode_dicom(with_attributes(PixelSpacing=[0, 0.5])).pixel_spacing is None  # nonsense: ignored


@pytest.mark.parametrize(
    ("attributes", "edges"),
    [
        # An axial slice: rows run to the patient's left, columns to the back.
        ({"ImageOrientationPatient": [1, 0, 0, 0, 1, 0]}, {"left": "R", "right": "L", "top": "A", "bottom": "P"}),
        # A coronal slice: columns run to the feet.
        ({"ImageOrientationPatient": [1, 0, 0, 0, 0, -1]}, {"left": "R", "right": "L", "top": "H", "bottom": "F"}),
        # Oblique: both main axes named, the stronger first; a near-zero component names nothing.
        (
            {"ImageOrientationPatient": [0.8, 0.6, 0.01, 0, 0, -1]},
            {"left": "RA", "right": "LP", "top": "H", "bottom": "F"},
        ),
        # A radiograph gives Patient Orientation instead (a PA chest film: row to the left, column down).
        ({"PatientOrientation": ["L", "F"]}, {"left": "R", "right": "L", "top": "H", "bottom": "F"}),
        ({"PatientOrientation": ["A", "FR"]}, {"left": "P", "right": "A", "top": "HL", "bottom": "FR"}),
        # Neither, or nonsense: no marker rather than a wrong one.
        ({}, None),
        ({"PatientOrientation": ["X", "Y"]}, None),
        ({"ImageOrientationPatient": [0, 0, 0, 0, 0, 0]}, None),
    ],
)
def test_display_facts_name_the_patient_direction_at_each_edge(attributes, edges):
    assert display_facts(decode_dicom(with_attributes(**attributes)))["orientation"] == edges


def test_heat_maps_travel_as_intensities_the_viewer_colours():
    heat = np.array([[0.0, 0.5], [1.0, 1.7]])  # a value past 1 is clipped, not wrapped
    np.testing.assert_array_equal(heatmap_intensities(heat), [[0, 128], [255, 255]])
    assert encode_frame(grey(np.zeros((3, 5))), 0).raw_bytes == 3 * 5 * 2  # int16 once inflated


def test_display_facts_give_the_slice_position_along_the_normal_and_the_frame_of_reference():
    # A sagittal slice: rows run to the back, columns to the feet, so the normal (row x column) points
    # to the patient's right (-x): a slice 12.5 mm to the left lies at -12.5 whatever its y and z.
    facts = display_facts(
        decode_dicom(
            with_attributes(
                ImageOrientationPatient=[0, 1, 0, 0, 0, -1],
                ImagePositionPatient=[12.5, -80, 40],
                FrameOfReferenceUID="1.2.826.0.1.3680043.8.498.1",
            )
        )
    )
    assert facts["slicePosition"] == pytest.approx(-12.5)
    assert facts["frameOfReference"] == "1.2.826.0.1.3680043.8.498.1"
    # Without a position there is no place along the stack to link by, rather than a made-up one.
    bare = display_facts(decode_dicom(with_attributes(ImageOrientationPatient=[1, 0, 0, 0, 1, 0])))
    assert bare["slicePosition"] is None and bare["frameOfReference"] is None
