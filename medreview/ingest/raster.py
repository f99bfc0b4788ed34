"""Validate an uploaded PNG or JPEG (exported X-rays, screenshots, teaching files).

Formats are recognised by their magic bytes only, never by the file name: an SVG or an HTML page
named ``.png`` is refused. :func:`read_raster` checks the declared size before decoding (a 1 kB PNG
can claim 100 000 x 100 000 pixels) and then decodes every pixel, so a truncated upload is refused
at import instead of showing up grey at reading time.

:func:`strip_metadata` removes what a camera or an editor writes next to the pixels (EXIF with
dates, device serials and GPS, XMP, comments), which may identify a patient or an institution.
"""

from __future__ import annotations

import io
import re
import struct
import warnings
from dataclasses import dataclass

from PIL import Image

from medreview.config import IngestLimits
from medreview.errors import IngestError
from medreview.imaging.codestreams import MAX_JPEG_SCANS, frame_header

__all__ = ["RasterInfo", "looks_like_raster", "read_raster", "strip_jpeg_codestream", "strip_metadata"]

_PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
_JPEG_SIGNATURE = b"\xff\xd8\xff"
_EXIF_ORIENTATION_TAG = 0x0112


@dataclass(frozen=True)
class RasterInfo:
    """What the header and a full decode of a PNG/JPEG say about it."""

    format: str  # "PNG" or "JPEG"
    width: int
    height: int
    mode: str  # Pillow mode as decoded, e.g. "L", "RGB", "I;16"


def _format_of(data: bytes) -> str | None:
    if data.startswith(_PNG_SIGNATURE):
        return "PNG"
    if data.startswith(_JPEG_SIGNATURE):
        return "JPEG"
    return None


def looks_like_raster(data: bytes) -> bool:
    """True when the bytes start with a PNG or JPEG signature (the file name is never consulted)."""
    return _format_of(data) is not None


def _looks_like_text(data: bytes) -> bool:
    head = data[:4096].lstrip(b"\xef\xbb\xbf \t\r\n")  # UTF-8 byte-order mark, blank lines
    if head.startswith(b"<"):
        return True
    if not head:
        return False
    printable = sum(1 for byte in head if byte in b"\t\r\n" or 32 <= byte < 127)
    return printable / len(head) > 0.95


def _refuse_unknown(data: bytes) -> IngestError:
    if not data:
        return IngestError("empty file: no image data")
    if _looks_like_text(data):
        return IngestError("not a PNG or JPEG image (looks like text/HTML/SVG)")
    return IngestError("not a PNG or JPEG image (unrecognised file type)")


def read_raster(data: bytes, limits: IngestLimits) -> RasterInfo:
    """Validate one PNG/JPEG upload; raise ``IngestError`` for anything that will not display.

    The pixel count from the header is checked against ``limits.max_frame_pixels`` before any
    decoding; the image is then fully decoded (truncated files are refused, never padded).
    """
    image_format = _format_of(data)
    if image_format is None:
        raise _refuse_unknown(data)
    try:
        with warnings.catch_warnings():
            # Our own pixel limit below is the guard; Pillow's bomb warning would only repeat it.
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            image = Image.open(io.BytesIO(data), formats=[image_format])
    except Image.DecompressionBombError as error:
        # Pillow refuses before it reports a size: read the declared size from the header ourselves.
        declared = _declared_size(data, image_format)
        if declared is None:
            raise IngestError(f"image too large: {error}; refusing a possible decompression bomb") from error
        raise _too_large(*declared, limits) from error
    except Exception as error:  # Pillow raises UnidentifiedImageError, SyntaxError, struct.error...
        raise IngestError(f"damaged {image_format} image: the header cannot be read ({error})") from error
    with image:
        width, height = image.size
        if width <= 0 or height <= 0:
            raise IngestError(f"damaged {image_format} image: it declares an empty size ({width} x {height})")
        if width * height > limits.max_frame_pixels:
            raise _too_large(width, height, limits)
        header = frame_header(data) if image_format == "JPEG" else None
        if header is not None and header.scans > MAX_JPEG_SCANS:
            raise IngestError(
                f"JPEG image with {header.scans:,} scans (limit {MAX_JPEG_SCANS:,}); "
                "refusing a possible decompression bomb"
            )
        try:
            image.load()
        except Exception as error:  # OSError "image file is truncated", zlib errors, SyntaxError...
            raise IngestError(
                f"truncated or damaged {image_format} image: the pixels cannot be fully decoded ({error})"
            ) from error
        return RasterInfo(format=image_format, width=width, height=height, mode=image.mode)


def _too_large(width: int, height: int, limits: IngestLimits) -> IngestError:
    return IngestError(
        f"image too large: {width} x {height} pixels (limit {limits.max_frame_pixels:,} pixels); "
        "refusing a possible decompression bomb"
    )


def _declared_size(data: bytes, image_format: str) -> tuple[int, int] | None:
    """(width, height) as the PNG IHDR or the JPEG frame header states it; None if unreadable."""
    if image_format == "PNG":
        if len(data) < 24 or data[12:16] != b"IHDR":
            return None
        width, height = struct.unpack_from(">II", data, 16)
        return width, height
    header = frame_header(data)
    return (header.columns, header.rows) if header is not None else None


def strip_metadata(data: bytes) -> bytes:
    """Return the image without its metadata; the decoded pixels stay identical.

    PNG: decoded and re-encoded losslessly with no text, EXIF, time or ICC chunks (palette and
    transparency are kept, they are part of the pixels). JPEG: the APPn and COM segments (EXIF, XMP,
    ICC, comments, JFIF extension thumbnails) are cut out of the byte stream without re-compressing;
    the JFIF and Adobe segments stay, reduced to their defined fields, because decoders need them to
    interpret colours, and an EXIF orientation other than "normal" is kept as a minimal EXIF block so
    the image is not shown rotated.
    """
    image_format = _format_of(data)
    if image_format is None:
        raise _refuse_unknown(data)
    try:
        if image_format == "PNG":
            return _strip_png(data)
        return _strip_jpeg(data)
    except IngestError:
        raise
    except Exception as error:
        raise IngestError(f"damaged {image_format} image: cannot remove its metadata ({error})") from error


def _strip_png(data: bytes) -> bytes:
    with Image.open(io.BytesIO(data), formats=["PNG"]) as image:
        image.load()
        kept_info = {key: image.info[key] for key in ("transparency",) if key in image.info}
        image.info = kept_info
        output = io.BytesIO()
        image.save(output, format="PNG", **kept_info)
    return output.getvalue()


def _exif_orientation(data: bytes) -> int:
    try:
        with Image.open(io.BytesIO(data), formats=["JPEG"]) as image:
            orientation = image.getexif().get(_EXIF_ORIENTATION_TAG, 1)
    except (OSError, SyntaxError, ValueError, TypeError, KeyError, struct.error):
        return 1  # unreadable EXIF: nothing worth keeping
    return orientation if isinstance(orientation, int) and 1 <= orientation <= 8 else 1


def _orientation_segment(orientation: int) -> bytes:
    exif = Image.Exif()
    exif[_EXIF_ORIENTATION_TAG] = orientation
    payload = exif.tobytes()  # b"Exif\0\0" + TIFF structure
    return b"\xff\xe1" + struct.pack(">H", len(payload) + 2) + payload


# The defined fields of the two application segments decoders need: APP0 "JFIF\0" (version, density
# units, X and Y density, thumbnail width and height: 14 bytes, then an optional thumbnail) and APP14
# "Adobe" (version, two flag words, colour transform: 12 bytes). Whatever follows the fields is
# free for text; the thumbnail is a picture that may show a name.
_JFIF_FIELDS = 14
_ADOBE_FIELDS = 12


def _kept_application_payload(marker: int, payload: bytes) -> bytes | None:
    """The payload an APPn segment is rewritten with, or None when the segment goes."""
    if marker == 0xE0 and payload.startswith(b"JFIF\x00") and len(payload) >= _JFIF_FIELDS:
        return payload[: _JFIF_FIELDS - 2] + b"\x00\x00"  # thumbnail 0 x 0, and none follows
    if marker == 0xEE and payload.startswith(b"Adobe") and len(payload) >= _ADOBE_FIELDS:
        return payload[:_ADOBE_FIELDS]  # tells RGB from YCbCr (and CMYK from YCCK)
    return None


def _strip_jpeg(data: bytes) -> bytes:
    """The JPEG without APPn and COM segments, an EXIF orientation kept as a minimal EXIF block."""
    orientation = _exif_orientation(data)
    return _rewrite_jpeg(data, b"" if orientation == 1 else _orientation_segment(orientation), jpeg_ls=False)


def strip_jpeg_codestream(codestream: bytes, *, jpeg_ls: bool = False) -> bytes:
    """A JPEG (ITU T.81) or JPEG-LS codestream without its APPn and COM segments, as a DICOM frame.

    The JFIF and Adobe segments keep their defined fields only; every other segment and the
    entropy-coded data are copied as they are, so the decoded pixels stay identical; nothing after
    the end-of-image marker is kept. Unlike :func:`strip_metadata` no EXIF orientation survives:
    DICOM displays a frame as its rows and columns say. Raises ``IngestError`` for a codestream
    whose markers cannot be followed.
    """
    return _rewrite_jpeg(codestream, b"", jpeg_ls=jpeg_ls)


# Where an entropy-coded segment ends: at 0xFF followed by anything but a stuffed 0x00 (T.81) or a
# byte below 0x80 (JPEG-LS stuffs a zero bit), and not a restart marker (RST0-RST7 lie inside a scan).
_T81_MARKER_AFTER_SCAN = re.compile(rb"\xff[^\x00\xd0-\xd7]")
_JPEG_LS_MARKER_AFTER_SCAN = re.compile(rb"\xff[\x80-\xcf\xd8-\xff]")


def _rewrite_jpeg(data: bytes, inserted: bytes, *, jpeg_ls: bool) -> bytes:
    """Copy the JPEG marker by marker, leaving out APPn and COM segments, rewriting the JFIF and
    Adobe segments with their defined fields, and inserting ``inserted`` (a whole segment, or
    b"") after the application segments at the start."""
    output = bytearray(data[:2])  # SOI
    position = 2
    inserted_done = not inserted
    length = len(data)
    scan_end = _JPEG_LS_MARKER_AFTER_SCAN if jpeg_ls else _T81_MARKER_AFTER_SCAN
    while position < length:
        if data[position] != 0xFF:
            raise IngestError("damaged JPEG image: a segment marker is missing")
        # Any number of 0xFF fill bytes may precede a marker.
        while position < length and data[position] == 0xFF:
            position += 1
        if position >= length:
            raise IngestError("damaged JPEG image: it ends inside a marker")
        marker = data[position]
        position += 1
        if marker == 0xD9:  # EOI
            output += b"\xff\xd9"
            return bytes(output)
        if 0xD0 <= marker <= 0xD7 or marker == 0x01:  # stand-alone markers, no length
            output += bytes((0xFF, marker))
            continue
        if position + 2 > length:
            raise IngestError("damaged JPEG image: it ends inside a segment header")
        (segment_length,) = struct.unpack_from(">H", data, position)
        if segment_length < 2 or position + segment_length > length:
            raise IngestError("damaged JPEG image: a segment runs past the end of the file")
        segment_end = position + segment_length
        if 0xE0 <= marker <= 0xEF:
            payload = _kept_application_payload(marker, data[position + 2 : segment_end])
            if payload is not None:
                output += bytes((0xFF, marker)) + struct.pack(">H", len(payload) + 2) + payload
        elif marker != 0xFE:  # COM goes
            if not inserted_done:
                output += inserted
                inserted_done = True
            output += bytes((0xFF, marker)) + data[position:segment_end]
        position = segment_end
        if marker == 0xDA:  # SOS: entropy-coded data follows until the next real marker
            found = scan_end.search(data, position)
            next_marker = found.start() if found is not None else length
            output += data[position:next_marker]
            position = next_marker
    raise IngestError("damaged JPEG image: the end-of-image marker is missing")
