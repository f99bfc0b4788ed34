"""read_raster / strip_metadata: PNG and JPEG uploads, honest and hostile."""

from __future__ import annotations

import io
import struct
import zlib
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from medreview.config import IngestLimits
from medreview.errors import IngestError
from medreview.ingest.raster import RasterInfo, looks_like_raster, read_raster, strip_metadata
from tests.helpers import CXR_SAMPLES, cxr_sample_paths, require_shared_data

LIMITS = IngestLimits()
# This sample carries EXIF, XMP, Photoshop and ICC segments written by Photoshop.
CXR_WITH_METADATA = CXR_SAMPLES / "NORMAL2-IM-1427-0001.jpeg"


def cxr_bytes(path: Path = CXR_WITH_METADATA) -> bytes:
    return require_shared_data(path).read_bytes()


def encode(array: np.ndarray, image_format: str, **options: object) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(array).save(buffer, format=image_format, **options)
    return buffer.getvalue()


def decoded(data: bytes) -> np.ndarray:
    with Image.open(io.BytesIO(data)) as image:
        return np.asarray(image)


def png_chunk(kind: bytes, payload: bytes) -> bytes:
    return struct.pack(">I", len(payload)) + kind + payload + struct.pack(">I", zlib.crc32(kind + payload))


GRADIENT = np.tile(np.arange(64, dtype=np.uint8) * 4, (48, 1))


def test_reads_png_and_jpeg_headers_after_a_full_decode() -> None:
    assert read_raster(encode(GRADIENT, "PNG"), LIMITS) == RasterInfo("PNG", 64, 48, "L")
    assert read_raster(encode(GRADIENT, "JPEG"), LIMITS) == RasterInfo("JPEG", 64, 48, "L")
    sixteen_bit = read_raster(encode(GRADIENT.astype(np.uint16) * 256, "PNG"), LIMITS)
    assert sixteen_bit.format == "PNG" and sixteen_bit.mode.startswith("I")


def test_reads_a_real_chest_xray() -> None:
    data = cxr_bytes()
    with Image.open(io.BytesIO(data)) as image:
        size = image.size
    info = read_raster(data, LIMITS)
    assert (info.format, info.mode, (info.width, info.height)) == ("JPEG", "L", size)


def test_format_comes_from_magic_bytes_only() -> None:
    assert looks_like_raster(encode(GRADIENT, "PNG"))
    assert looks_like_raster(encode(GRADIENT, "JPEG"))
    assert not looks_like_raster(b"GIF89a" + b"\0" * 20)
    assert not looks_like_raster(b"")


@pytest.mark.parametrize(
    "content",
    [
        b'<?xml version="1.0"?><svg xmlns="http://www.w3.org/2000/svg"><script>alert(1)</script></svg>',
        b"<!DOCTYPE html><html><body><img src=x onerror=alert(1)></body></html>",
        b"patient list\nDoe, John\n",
    ],
)
def test_refuses_text_disguised_as_an_image(content: bytes) -> None:
    with pytest.raises(IngestError, match=r"not a PNG or JPEG image \(looks like text/HTML/SVG\)"):
        read_raster(content, LIMITS)


def test_refuses_other_binary_formats_and_empty_files() -> None:
    with pytest.raises(IngestError, match="not a PNG or JPEG image"):
        read_raster(encode(GRADIENT, "GIF"), LIMITS)
    with pytest.raises(IngestError, match="empty"):
        read_raster(b"", LIMITS)


@pytest.mark.parametrize("image_format", ["PNG", "JPEG"])
def test_refuses_truncated_images(image_format: str) -> None:
    noise = np.random.default_rng(7).integers(0, 256, (256, 256), dtype=np.uint8)
    data = encode(noise, image_format)
    with pytest.raises(IngestError, match=f"truncated or damaged {image_format} image"):
        read_raster(data[: len(data) // 2], LIMITS)


def test_refuses_a_decompression_bomb_from_its_header() -> None:
    # A valid PNG signature and IHDR (correct CRC) declaring 100 000 x 100 000 8-bit grey pixels.
    header = struct.pack(">IIBBBBB", 100_000, 100_000, 8, 0, 0, 0, 0)
    bomb = (
        b"\x89PNG\r\n\x1a\n"
        + png_chunk(b"IHDR", header)
        + png_chunk(b"IDAT", zlib.compress(b"\0" * 1000))
        + png_chunk(b"IEND", b"")
    )
    with pytest.raises(IngestError, match="too large"):
        read_raster(bomb, LIMITS)


def test_pixel_limit_applies_below_pillows_own_guard() -> None:
    data = encode(GRADIENT, "PNG")  # 64 x 48 = 3072 pixels
    with pytest.raises(IngestError, match=r"image too large: 64 x 48 pixels"):
        read_raster(data, IngestLimits(max_frame_pixels=3071))
    assert read_raster(data, IngestLimits(max_frame_pixels=3072)).width == 64


def test_damaged_pngs_are_refused() -> None:
    # Every PNG chunk carries a CRC: any changed byte after the signature must be caught, with an
    # IngestError (a plain message), never silently accepted and never a raw exception.
    data = encode(GRADIENT, "PNG")
    generator = np.random.default_rng(11)
    for _ in range(40):
        damaged = bytearray(data)
        for position in generator.integers(8, len(data), 5):
            damaged[position] = int(generator.integers(0, 256))
        if bytes(damaged) == data:
            continue
        with pytest.raises(IngestError):
            read_raster(bytes(damaged), LIMITS)


# --- strip_metadata --------------------------------------------------------------------------


def test_strip_jpeg_removes_metadata_and_keeps_pixels_identical() -> None:
    original = cxr_bytes()
    stripped = strip_metadata(original)
    assert np.array_equal(decoded(stripped), decoded(original))
    assert len(stripped) < len(original)
    for marker in (b"Exif\0\0", b"Photoshop 3.0", b"http://ns.adobe.com/xap/1.0/", b"ICC_PROFILE"):
        assert marker in original
        assert marker not in stripped
    with Image.open(io.BytesIO(stripped)) as image:
        assert not image.getexif()
        assert "icc_profile" not in image.info and "xmp" not in image.info


def test_strip_jpeg_removes_comments_without_recompressing() -> None:
    original = cxr_bytes(next(path for path in cxr_sample_paths() if path.name.startswith("person")))
    comment = b"Patient: Doe, John"
    segment = b"\xff\xfe" + struct.pack(">H", len(comment) + 2) + comment
    with_comment = original[:2] + segment + original[2:]
    stripped = strip_metadata(with_comment)
    assert comment not in stripped
    assert np.array_equal(decoded(stripped), decoded(original))


def test_strip_jpeg_keeps_only_the_orientation_from_exif() -> None:
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90 degrees clockwise to display
    exif[0x0131] = "Scanner 3000 serial 12345"
    exif[0x0132] = "2024:01:31 10:00:00"
    original = encode(GRADIENT, "JPEG", exif=exif.tobytes())
    stripped = strip_metadata(original)
    assert b"serial 12345" not in stripped
    with Image.open(io.BytesIO(stripped)) as image:
        assert dict(image.getexif()) == {0x0112: 6}
    assert np.array_equal(decoded(stripped), decoded(original))


def test_strip_png_removes_text_chunks_and_keeps_pixels() -> None:
    from PIL import PngImagePlugin

    info = PngImagePlugin.PngInfo()
    info.add_text("Comment", "Patient: Doe, John")
    original = encode(GRADIENT, "PNG", pnginfo=info)
    stripped = strip_metadata(original)
    assert b"Doe, John" in original and b"Doe, John" not in stripped
    assert b"tEXt" not in stripped
    assert np.array_equal(decoded(stripped), decoded(original))
    sixteen_bit = GRADIENT.astype(np.uint16) * 257
    assert np.array_equal(decoded(strip_metadata(encode(sixteen_bit, "PNG"))), sixteen_bit)


def test_strip_refuses_non_images() -> None:
    with pytest.raises(IngestError, match="not a PNG or JPEG"):
        strip_metadata(b"<svg></svg>")
    with pytest.raises(IngestError, match="damaged JPEG"):
        strip_metadata(b"\xff\xd8\xff\xe1\x00")


def jpeg_segment(marker: int, payload: bytes) -> bytes:
    return bytes((0xFF, marker)) + struct.pack(">H", len(payload) + 2) + payload


def segments(data: bytes) -> list[tuple[int, bytes]]:
    """(marker, payload) of every segment before the first scan."""
    found, position = [], 2
    while data[position + 1] != 0xDA:
        marker = data[position + 1]
        (length,) = struct.unpack_from(">H", data, position + 2)
        found.append((marker, data[position + 4 : position + 2 + length]))
        position += 2 + length
    return found


def test_strip_jpeg_keeps_only_the_defined_fields_of_the_jfif_and_adobe_segments() -> None:
    # Text appended after a JFIF APP0's fields (or in its thumbnail) used to survive with the segment.
    original = encode(np.dstack([GRADIENT, GRADIENT[::-1], 255 - GRADIENT]), "JPEG", quality=95)
    (length,) = struct.unpack_from(">H", original, 4)
    jfif = original[6 : 4 + length]
    assert original[2:4] == b"\xff\xe0" and jfif.startswith(b"JFIF\x00") and len(jfif) == 14
    thumbnail = bytes((1, 1)) + b"DOE"  # a 1 x 1 RGB thumbnail whose pixel spells a name
    hostile_jfif = jfif[:12] + thumbnail + b" JFIF text Doe^Johnathan"
    adobe = b"Adobe" + struct.pack(">HHHB", 100, 0, 0, 1) + b" Adobe text MRN-5551234"  # transform 1: YCbCr
    with_text = original[:2] + jpeg_segment(0xE0, hostile_jfif) + jpeg_segment(0xEE, adobe) + original[4 + length :]
    assert np.array_equal(decoded(with_text), decoded(original))

    stripped = strip_metadata(with_text)

    assert b"Doe^Johnathan" not in stripped and b"MRN-5551234" not in stripped and b"DOE" not in stripped
    kept = segments(stripped)
    assert kept[0] == (0xE0, jfif[:12] + b"\x00\x00")  # the fields, with no thumbnail
    assert kept[1] == (0xEE, adobe[:12])
    assert np.array_equal(decoded(stripped), decoded(original))
