"""The size a compressed frame says it has, read from its own header without decoding it.

A DICOM object's Rows and Columns say how large each frame is, but a decoder allocates what the
codestream itself declares: a JPEG whose frame header (SOF) says 20000 x 20000 inside an object
that says 16 x 16 makes the decoder build 400 million pixels before anything can compare the two.
:func:`frame_header` reads that declaration from the first bytes of a frame, so the ingest gate can
compare it with the DICOM header and the limits before any decoder runs.

Headers read (each a few dozen bytes at the start of the frame):

- JPEG (ISO 10918-1 B.2.2): the first SOFn marker segment: precision, lines, samples per line, components;
- JPEG-LS (ISO 14495-1 C.2.2): the SOF55 (0xFFF7) segment, laid out as a JPEG SOF;
- JPEG 2000 (ISO 15444-1 A.5.1): the SIZ segment after SOC: image extent minus origin, components and
  their precision; a JP2 file (boxes around the codestream) is unwrapped to its ``jp2c`` box first.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

__all__ = ["MAX_JPEG_SCANS", "FrameHeader", "frame_header"]

# A progressive JPEG is decoded again for every scan: thousands of tiny repeated scans cost minutes of
# CPU for one small file, where a real one has about ten scans a component. More are refused.
MAX_JPEG_SCANS = 500

_JPEG_SOI = b"\xff\xd8"
_J2K_SOC_SIZ = b"\xff\x4f\xff\x51"
_JP2_SIGNATURE = b"\x00\x00\x00\x0cjP  \r\n\x87\n"
# SOF0-SOF3, SOF5-SOF7, SOF9-SOF11, SOF13-SOF15 (0xC4 DHT, 0xC8 JPG and 0xCC DAC are not frame
# headers), and JPEG-LS SOF55.
_JPEG_FRAME_MARKERS = frozenset({*range(0xC0, 0xD0)} - {0xC4, 0xC8, 0xCC}) | {0xF7}
_JPEG_START_OF_SCAN = 0xDA
_JPEG_END_OF_IMAGE = 0xD9
# Markers without a length field: TEM and RST0-RST7 (SOI and EOI are handled on their own).
_JPEG_STANDALONE_MARKERS = frozenset({0x01, *range(0xD0, 0xD8)})


@dataclass(frozen=True)
class FrameHeader:
    """What a compressed frame declares about the image it decodes to."""

    codec: str  # "JPEG", "JPEG-LS" or "JPEG 2000"
    rows: int
    columns: int
    components: int
    bits: int  # the largest sample precision of any component
    # Scans a decoder goes through (JPEG, JPEG-LS: SOS markers; JPEG 2000: 1). A progressive JPEG
    # is decoded again for each of its scans, so thousands of tiny scans cost minutes.
    scans: int = 1


def frame_header(frame: bytes) -> FrameHeader | None:
    """The header of a JPEG, JPEG-LS or JPEG 2000 frame; None when ``frame`` starts as none of them
    or its header is cut short or malformed before the size is given."""
    try:
        if frame.startswith(_JPEG_SOI):
            return _jpeg_frame_header(frame)
        if frame.startswith(_J2K_SOC_SIZ):
            return _j2k_siz(frame, 0)
        if frame.startswith(_JP2_SIGNATURE):
            start = _jp2_codestream_start(frame)
            return _j2k_siz(frame, start) if start is not None else None
    except struct.error:  # a length field pointing past the end of the frame
        return None
    return None


def _jpeg_frame_header(frame: bytes) -> FrameHeader | None:
    position = 2  # after SOI
    while position + 4 <= len(frame):
        if frame[position] != 0xFF:
            return None  # not at a marker: the segment lengths do not add up
        marker = frame[position + 1]
        if marker == 0xFF:  # fill byte before a marker (B.1.1.2)
            position += 1
            continue
        if marker in _JPEG_STANDALONE_MARKERS:
            position += 2
            continue
        if marker in (_JPEG_START_OF_SCAN, _JPEG_END_OF_IMAGE):
            return None  # entropy-coded data (or the end) before any frame header
        (length,) = struct.unpack_from(">H", frame, position + 2)
        if marker in _JPEG_FRAME_MARKERS:
            # Lf (2), P (1), Y (2), X (2), Nf (1)
            precision, rows, columns, components = struct.unpack_from(">BHHB", frame, position + 4)
            # Entropy-coded data never holds 0xFFDA (a coded 0xFF is followed by 0x00 or a restart
            # marker), so counting the pair counts the scans, give or take one in an APP segment.
            scans = frame.count(b"\xff\xda", position)
            codec = "JPEG-LS" if marker == 0xF7 else "JPEG"
            return FrameHeader(codec, rows, columns, components, precision, scans)
        if length < 2:
            return None
        position += 2 + length
    return None


def _j2k_siz(frame: bytes, start: int) -> FrameHeader | None:
    if frame[start : start + 4] != _J2K_SOC_SIZ:
        return None
    # After SOC and the SIZ marker: Lsiz (2), Rsiz (2), Xsiz, Ysiz, XOsiz, YOsiz (4 each),
    # XTsiz, YTsiz, XTOsiz, YTOsiz (4 each), Csiz (2), then Ssiz, XRsiz, YRsiz per component.
    width, height, x_origin, y_origin = struct.unpack_from(">IIII", frame, start + 8)
    (components,) = struct.unpack_from(">H", frame, start + 40)
    if len(frame) < start + 42 + 3 * components:
        return None
    precisions = [(frame[start + 42 + 3 * index] & 0x7F) + 1 for index in range(components)]
    return FrameHeader(
        "JPEG 2000",
        rows=height - y_origin,
        columns=width - x_origin,
        components=components,
        bits=max(precisions, default=0),
    )


def _jp2_codestream_start(frame: bytes) -> int | None:
    """Offset of the codestream inside a JP2 file: the content of its top-level ``jp2c`` box."""
    position = 0
    while position + 8 <= len(frame):
        length, box_type = struct.unpack_from(">I4s", frame, position)
        header = 8
        if length == 1:  # the length follows as 8 bytes
            (length,) = struct.unpack_from(">Q", frame, position + 8)
            header = 16
        if box_type == b"jp2c":
            return position + header
        if length == 0 or length < header:  # 0: the box runs to the end of the file, and is not jp2c
            return None
        position += length
    return None
