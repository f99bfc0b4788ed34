"""frame_header: the size a compressed frame declares, read from frames made by real encoders."""

from __future__ import annotations

import io
import struct

import numpy as np
import pydicom
import pytest
from PIL import Image as PILImage
from PIL import features
from pydicom.encaps import generate_frames

from medreview.imaging.codestreams import FrameHeader, frame_header
from tests.helpers import corpus_file


def encoded(array: np.ndarray, image_format: str, **options: object) -> bytes:
    buffer = io.BytesIO()
    PILImage.fromarray(array).save(buffer, format=image_format, **options)
    return buffer.getvalue()


def noise(shape: tuple[int, ...]) -> np.ndarray:
    return np.random.default_rng(0).integers(0, 255, shape, dtype=np.uint8)


@pytest.mark.parametrize("progressive", [False, True], ids=["baseline", "progressive"])
def test_jpeg_gives_rows_columns_and_components(progressive: bool) -> None:
    grey = frame_header(encoded(noise((37, 53)), "JPEG", progressive=progressive))
    colour = frame_header(encoded(noise((20, 30, 3)), "JPEG", progressive=progressive))
    assert grey is not None and colour is not None
    assert (grey.codec, grey.rows, grey.columns, grey.components, grey.bits) == ("JPEG", 37, 53, 1, 8)
    assert (colour.rows, colour.columns, colour.components) == (20, 30, 3)
    assert grey.scans > 1 if progressive else grey.scans == 1


def test_jpeg_frame_header_is_found_after_application_segments() -> None:
    exif = PILImage.Exif()
    exif[0x013B] = "Someone" * 1000  # Artist: a 7 kB APP1 segment before the frame header
    data = encoded(noise((12, 34)), "JPEG", exif=exif.tobytes(), comment=b"a comment")
    assert data.find(b"\xff\xc0") > 7000
    assert frame_header(data) == FrameHeader("JPEG", 12, 34, 1, 8, 1)


def test_jpeg_ls_gives_its_sof55_header() -> None:
    dataset = pydicom.dcmread(corpus_file("MR_small_jpeg_ls_lossless.dcm"))
    frame = next(generate_frames(dataset.PixelData, number_of_frames=1))
    header = frame_header(frame)
    assert header is not None
    assert (header.codec, header.rows, header.columns, header.components) == ("JPEG-LS", 64, 64, 1)


@pytest.mark.skipif(not features.check("jpg_2000"), reason="this Pillow is built without OpenJPEG")
@pytest.mark.parametrize("no_jp2", [True, False], ids=["codestream", "jp2-file"])
def test_jpeg_2000_size_is_the_extent_less_the_image_offset(no_jp2: bool) -> None:
    # An image offset (XOsiz, YOsiz) moves the extent in the SIZ header: Xsiz = offset + width.
    data = encoded(noise((72, 48, 3)), "JPEG2000", no_jp2=no_jp2, offset=(5, 3), tile_size=(64, 64), tile_offset=(0, 0))
    siz = data.find(b"\xff\x4f\xff\x51")
    assert struct.unpack_from(">II", data, siz + 8) == (48 + 5, 72 + 3)
    header = frame_header(data)
    assert header is not None
    assert (header.codec, header.rows, header.columns, header.components, header.bits) == ("JPEG 2000", 72, 48, 3, 8)


def test_jpeg_2000_of_a_dicom_corpus_file() -> None:
    dataset = pydicom.dcmread(corpus_file("MR_small_jp2klossless.dcm"))
    header = frame_header(next(generate_frames(dataset.PixelData, number_of_frames=1)))
    assert header is not None
    assert (header.rows, header.columns, header.components) == (64, 64, 1)


@pytest.mark.parametrize(
    "frame",
    [
        b"",
        b"not an image at all",
        encoded(noise((8, 8)), "PNG"),
        encoded(noise((8, 8)), "JPEG")[:20],  # cut before the frame header
        b"\xff\xd8\xff\xda\x00\x08" + bytes(20),  # a scan before any frame header
        b"\xff\x4f\xff\x51\x00\x29" + bytes(10),  # a SIZ segment cut short
    ],
    ids=["empty", "text", "png", "jpeg-cut-short", "scan-first", "siz-cut-short"],
)
def test_anything_else_has_no_frame_header(frame: bytes) -> None:
    assert frame_header(frame) is None
