"""Text inside a JPEG 2000 frame: comment segments, and the boxes of a JP2 file around a codestream.

A JPEG 2000 codestream (ISO 15444-1 Annex A) may carry COM segments (0xFF64) in its main header and
in each tile-part header: free text or binary that encoders and archive tools fill ("Created by
OpenJPEG", or whatever a site's converter writes). A frame wrapped as a JP2 file (boxes around the
codestream; DICOM forbids it, some writers do it) may also carry XML, UUID and IPR boxes.
:func:`strip_jpeg2000_comments` returns the bare codestream without comments, its coded data copied
as it is, so the decoded pixels stay identical.

Layout relied on: SOC (0xFF4F); main header marker segments, each with a two-byte length that
counts itself; then tile-parts, each an SOT segment (0xFF90: length 10, tile index, Psot = the
tile-part's length from its SOT marker on, 0 for "up to EOC", tile-part index, count), its header's
marker segments up to SOD (0xFF93), and its coded data; EOC (0xFFD9) last.
"""

from __future__ import annotations

import struct

from medreview.errors import IngestError

__all__ = ["strip_jpeg2000_comments"]

_SOC = b"\xff\x4f"
_SOT = b"\xff\x90"
_SOD = b"\xff\x93"
_EOC = b"\xff\xd9"
_COM = b"\xff\x64"
_TLM = b"\xff\x55"  # tile-part lengths: wrong once a tile-part header loses a comment
_SOT_SEGMENT_BYTES = 12  # marker, Lsot (10), Isot, Psot, TPsot, TNsot
_JP2_SIGNATURE = b"\x00\x00\x00\x0cjP  \r\n\x87\n"


def strip_jpeg2000_comments(frame: bytes) -> bytes:
    """The frame's codestream without COM segments and without anything after EOC; a JP2-wrapped
    frame is unwrapped to its codestream. Returns ``frame`` itself when there is nothing to remove.
    Raises ``IngestError`` when the marker segments cannot be followed."""
    try:
        codestream = _unwrapped(frame) if frame.startswith(_JP2_SIGNATURE) else frame
        return _without_comments(codestream)
    except (struct.error, IndexError) as error:
        raise IngestError("damaged JPEG 2000 frame: a segment runs past its end") from error


def _unwrapped(frame: bytes) -> bytes:
    """The contents of the JP2 file's contiguous codestream box ("jp2c")."""
    position = 0
    while position + 8 <= len(frame):
        length, kind = struct.unpack_from(">I4s", frame, position)
        header = 8
        if length == 1:  # the length follows, in eight bytes
            (length,) = struct.unpack_from(">Q", frame, position + 8)
            header = 16
        elif length == 0:  # the last box: to the end of the file
            length = len(frame) - position
        if length < header:
            break
        if kind == b"jp2c":
            return frame[position + header : position + length]
        position += length
    raise IngestError("damaged JPEG 2000 frame: a JP2 file without a codestream")


def _segments_until(codestream: bytes, position: int, end_marker: bytes) -> tuple[list[bytes], int]:
    """The marker segments from ``position`` up to (not including) ``end_marker``, and where it is."""
    segments = []
    while codestream[position : position + 2] != end_marker:
        if codestream[position] != 0xFF or position + 4 > len(codestream):
            raise IngestError("damaged JPEG 2000 frame: a header marker is missing")
        (length,) = struct.unpack_from(">H", codestream, position + 2)
        if length < 2:
            raise IngestError("damaged JPEG 2000 frame: a header segment has no length")
        segments.append(codestream[position : position + 2 + length])
        position += 2 + length
    return segments, position


def _without_comments(codestream: bytes) -> bytes:
    if not codestream.startswith(_SOC):
        raise IngestError("damaged JPEG 2000 frame: it does not start with a codestream")
    main_header, position = _segments_until(codestream, 2, _SOT)
    tile_parts: list[bytes] = []
    tile_part_lengths_changed = False
    removed = False
    while codestream[position : position + 2] == _SOT:
        (tile_part_length,) = struct.unpack_from(">I", codestream, position + 6)
        if tile_part_length:
            end = position + tile_part_length
        else:  # the last tile-part: up to EOC
            end = len(codestream) - 2 if codestream.endswith(_EOC) else len(codestream)
        if end > len(codestream) or end < position + _SOT_SEGMENT_BYTES:
            raise IngestError("damaged JPEG 2000 frame: a tile-part runs past its end")
        header, data_start = _segments_until(codestream, position + _SOT_SEGMENT_BYTES, _SOD)
        kept = [segment for segment in header if not segment.startswith(_COM)]
        removed |= len(kept) != len(header)
        sot = bytearray(codestream[position : position + _SOT_SEGMENT_BYTES])
        body = codestream[data_start:end]  # SOD and the coded data
        if tile_part_length:
            new_length = len(sot) + sum(map(len, kept)) + len(body)
            tile_part_lengths_changed |= new_length != tile_part_length
            struct.pack_into(">I", sot, 6, new_length)
        tile_parts.append(bytes(sot) + b"".join(kept) + body)
        position = end
    if codestream[position : position + 2] != _EOC:
        raise IngestError("damaged JPEG 2000 frame: the end-of-codestream marker is missing")
    dropped = (_COM, _TLM) if tile_part_lengths_changed else (_COM,)
    kept_main = [segment for segment in main_header if not segment.startswith(dropped)]
    removed |= len(kept_main) != len(main_header)
    if not removed and position + 2 == len(codestream):
        return codestream  # no comment, nothing after EOC: the frame as uploaded
    return _SOC + b"".join(kept_main) + b"".join(tile_parts) + _EOC
