"""strip_jpeg2000_comments: a JPEG 2000 frame without its comments decodes to the same pixels."""

from __future__ import annotations

import struct

import numpy as np
import openjpeg
import pytest

from medreview.errors import IngestError
from medreview.ingest.jpeg2000 import strip_jpeg2000_comments

PIXELS = (np.arange(64 * 80, dtype=np.uint16).reshape(64, 80) * 7) % 4096


def encoded(**options: object) -> bytes:
    return bytes(openjpeg.encode(PIXELS, bits_stored=12, **options))


def comment(text: bytes) -> bytes:
    return b"\xff\x64" + struct.pack(">H", len(text) + 4) + b"\x00\x01" + text


def tile_part_start(codestream: bytes) -> int:
    return codestream.index(b"\xff\x90")


def main_header(codestream: bytes) -> bytes:
    return codestream[: tile_part_start(codestream)]


def test_comments_go_and_the_pixels_stay() -> None:
    original = encoded()
    assert b"Created by OpenJPEG" in main_header(original)

    stripped = strip_jpeg2000_comments(original)

    assert b"OpenJPEG" not in stripped and b"\xff\x64" not in main_header(stripped)
    assert np.array_equal(openjpeg.decode(stripped), PIXELS)
    assert strip_jpeg2000_comments(stripped) is stripped  # nothing left to remove: the same bytes


def test_a_comment_in_the_last_tile_part_without_a_length_goes() -> None:
    # Psot = 0: the last tile-part runs up to the end-of-codestream marker.
    original = strip_jpeg2000_comments(encoded())
    start = tile_part_start(original)
    sot = bytearray(original[start : start + 12])
    struct.pack_into(">I", sot, 6, 0)
    hostile = original[:start] + bytes(sot) + comment(b"Doe^Johnathan") + original[start + 12 :]
    assert np.array_equal(openjpeg.decode(hostile), PIXELS)

    stripped = strip_jpeg2000_comments(hostile)

    assert b"Doe^Johnathan" not in stripped
    assert np.array_equal(openjpeg.decode(stripped), PIXELS)


def test_tile_part_lengths_are_rewritten_and_a_stale_length_table_goes() -> None:
    original = encoded(add_tlm=True)
    assert b"\xff\x55" in main_header(original)
    start = tile_part_start(original)
    (length,) = struct.unpack_from(">I", original, start + 6)
    text = comment(b"MRN-5551234")
    sot = bytearray(original[start : start + 12])
    struct.pack_into(">I", sot, 6, length + len(text))
    hostile = original[:start] + bytes(sot) + text + original[start + 12 :]

    stripped = strip_jpeg2000_comments(hostile)

    assert b"MRN-5551234" not in stripped
    assert b"\xff\x55" not in main_header(stripped)  # its lengths would no longer add up
    start = tile_part_start(stripped)
    assert struct.unpack_from(">I", stripped, start + 6)[0] == len(stripped) - 2 - start  # up to EOC
    assert np.array_equal(openjpeg.decode(stripped), PIXELS)


def test_text_after_the_end_of_the_codestream_goes() -> None:
    original = strip_jpeg2000_comments(encoded())

    stripped = strip_jpeg2000_comments(original + b"Doe^Johnathan 19610314")

    assert stripped == original


def test_a_jp2_file_is_unwrapped_to_its_codestream() -> None:
    wrapped = encoded(codec_format=1)
    assert wrapped[4:8] == b"jP  "

    stripped = strip_jpeg2000_comments(wrapped)

    assert stripped.startswith(b"\xff\x4f\xff\x51") and b"OpenJPEG" not in stripped
    assert np.array_equal(openjpeg.decode(stripped), PIXELS)


@pytest.mark.parametrize(
    "frame",
    [
        b"\xff\x4f\xff\x51\x00",  # cut inside the first segment
        b"\xff\x4f\xff\x51\x00\x04\x00\x00\x00\x00",  # no tile-part, no end marker
        b"\x00\x00\x00\x0cjP  \r\n\x87\n" + b"\x00\x00\x00\x08free",  # a JP2 file without a codestream
        b"not a codestream",
    ],
)
def test_a_frame_whose_markers_cannot_be_followed_is_refused(frame: bytes) -> None:
    with pytest.raises(IngestError, match="damaged JPEG 2000 frame"):
        strip_jpeg2000_comments(frame)
