"""Validate one uploaded DICOM object and read the header fields the store needs.

:func:`read_dicom` is the gate every DICOM upload passes: it parses the bytes once, refuses objects
that are not images, use a transfer syntax we cannot decode, or carry headers that lie about their
size, and then decodes the pixel data once to prove the image can be shown. Everything it refuses
raises :class:`~medreview.errors.IngestError` with a message written for a radiologist.

Decompression bombs are refused before they cost memory: a deflated object is inflated in bounded
steps and refused past the limits; native pixel data longer than the header says is refused (a
gigabyte of zeros behind a 16 x 16 header deflates to a megabyte); each compressed frame's own
header (JPEG SOF, JPEG 2000 SIZ) must give the image size of the DICOM header before a decoder,
which allocates what the frame says, is let near it.

:func:`open_dataset` is the one place that turns DICOM bytes (or a stored file) into a pydicom
``Dataset``, including legacy files without the 128-byte preamble and file meta header; the display
pipeline in :mod:`medreview.imaging` uses it too.
"""

from __future__ import annotations

import io
import math
import struct
import warnings
import zlib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pydicom
from pydicom.datadict import tag_for_keyword
from pydicom.dataset import Dataset, FileDataset, FileMetaDataset
from pydicom.encaps import generate_fragmented_frames
from pydicom.filereader import read_dataset
from pydicom.multival import MultiValue
from pydicom.pixels import get_decoder
from pydicom.sequence import Sequence
from pydicom.uid import (
    UID,
    DeflatedExplicitVRLittleEndian,
    ExplicitVRBigEndian,
    ExplicitVRLittleEndian,
    ImplicitVRLittleEndian,
    JPEG2000TransferSyntaxes,
    JPEGLSTransferSyntaxes,
    JPEGTransferSyntaxes,
)

from medreview.config import IngestLimits, get_settings
from medreview.errors import IngestError, short_reason
from medreview.imaging.codestreams import MAX_JPEG_SCANS, frame_header
from medreview.imaging.tags import PIXEL_DATA_TAGS

__all__ = ["DicomInfo", "looks_like_dicom", "open_dataset", "read_dicom", "read_dicom_dataset"]

_PREAMBLE_LENGTH = 128
_MAGIC = b"DICM"
_ALLOWED_BITS_ALLOCATED = (1, 8, 16, 32, 64)
_UNDEFINED_LENGTH = 0xFFFFFFFF
# Two-letter value representations, used to recognise an explicit-VR object without a preamble.
_VALUE_REPRESENTATIONS = frozenset(
    b"AE AS AT CS DA DS DT FD FL IS LO LT OB OD OF OL OV OW PN SH SL SQ SS ST SV TM UC UI UL UN UR US UT UV".split()
)
# Explicit-VR elements whose length is 4 bytes after 2 reserved ones (PS3.5 7.1.2); the others have 2.
_LONG_LENGTH_VALUE_REPRESENTATIONS = frozenset(b"OB OD OF OL OV OW SQ SV UC UN UR UT UV".split())
_DEFLATED_UID = str(DeflatedExplicitVRLittleEndian).encode("ascii")
# A deflated dataset is inflated this many bytes at a time (output), from this many bytes of input.
_INFLATE_OUTPUT_BYTES = 16 * 1024 * 1024
_INFLATE_INPUT_BYTES = 1024 * 1024
# Native pixel data may run past what the header implies by its padding to an even length and by
# this much more (some writers pad, e.g. pydicom's MR_small_padded.dcm: 128 bytes); more is refused,
# since nothing decodes it and a gigabyte of it deflates to a megabyte.
_PIXEL_DATA_SLACK_BYTES = 4096
# Transfer syntaxes whose every frame starts with a header giving its size (JPEG SOF, JPEG-LS SOF55,
# JPEG 2000 SIZ); RLE's segments decode into a buffer sized from the DICOM header instead.
_CODECS_WITH_FRAME_HEADERS = frozenset(
    str(uid) for uid in (*JPEGTransferSyntaxes, *JPEGLSTransferSyntaxes, *JPEG2000TransferSyntaxes)
)


@dataclass(frozen=True)
class DicomInfo:
    """Header fields of one DICOM image object, as the store files it."""

    sop_instance_uid: str
    sop_class_uid: str
    # "" when the object has no Study / Series Instance UID (broken legacy files); the caller decides.
    study_instance_uid: str
    series_instance_uid: str
    patient_id: str  # "" when absent
    patient_name: str  # str(PatientName) or ""
    modality: str  # "" when absent: file it as "OT"
    study_date: str | None  # "YYYYMMDD" or None
    study_description: str
    series_description: str
    series_number: int | None
    instance_number: int | None
    # Millimetres along the slice normal: ImagePositionPatient projected on the normal of
    # ImageOrientationPatient when both are present, else SliceLocation, else None.
    slice_location: float | None
    rows: int
    columns: int
    number_of_frames: int
    photometric_interpretation: str
    transfer_syntax_uid: str
    burned_in_annotation: bool  # BurnedInAnnotation == "YES": text such as the patient name is in the pixels


def looks_like_dicom(data: bytes) -> bool:
    """True for a DICOM Part 10 file ("DICM" after the preamble) or a plausible preamble-less object.

    A legacy object without preamble starts directly with a group 0x0002 (file meta) or 0x0008
    (identifying) element, in implicit VR little endian or explicit VR (either byte order).
    """
    if len(data) >= _PREAMBLE_LENGTH + 4 and data[_PREAMBLE_LENGTH : _PREAMBLE_LENGTH + 4] == _MAGIC:
        return True
    if len(data) < 8:
        return False
    (group_little_endian,) = struct.unpack_from("<H", data, 0)
    (group_big_endian,) = struct.unpack_from(">H", data, 0)
    has_value_representation = data[4:6] in _VALUE_REPRESENTATIONS
    if group_big_endian in (0x0002, 0x0008) and has_value_representation:
        return True  # explicit VR big endian (retired, still found in old archives)
    if group_little_endian not in (0x0002, 0x0008):
        return False
    if has_value_representation:
        return True
    (implicit_length,) = struct.unpack_from("<I", data, 4)
    return implicit_length == _UNDEFINED_LENGTH or 8 + implicit_length <= len(data)


def _has_preamble(data: bytes) -> bool:
    return data[_PREAMBLE_LENGTH : _PREAMBLE_LENGTH + 4] == _MAGIC


def open_dataset(source: Path | bytes, limits: IngestLimits | None = None) -> Dataset:
    """Parse DICOM bytes or a stored file into a pydicom ``Dataset`` (pixel data not decoded).

    ``force=True`` is used only for objects without the "DICM" preamble that :func:`looks_like_dicom`
    accepts; when the file meta header is missing, its transfer syntax is filled in from the encoding
    pydicom detected so that the pixel data can be decoded.

    A deflated object (Deflated Explicit VR Little Endian) is inflated in bounded steps and refused
    once it passes ``limits.max_file_bytes`` (what the same object may weigh uncompressed) or, past
    1 MiB, ``limits.max_compression_ratio`` times its compressed size; pydicom alone would inflate all
    of it first. ``limits`` default to the configured ones.
    """
    try:
        data = source.read_bytes() if isinstance(source, Path) else bytes(source)
    except OSError as error:
        # strerror, not the exception: its text names the server's path.
        raise IngestError(f"cannot read the file: {error.strerror or type(error).__name__}") from error
    if not data:
        raise IngestError("empty file: no DICOM data")
    has_preamble = _has_preamble(data)
    if not has_preamble and not looks_like_dicom(data):
        raise IngestError("not a DICOM file (no 'DICM' marker and no DICOM header at the start)")
    deflated_start = _deflated_dataset_start(data, _PREAMBLE_LENGTH + 4 if has_preamble else 0)
    parsed: bytes | bytearray = data
    try:
        if deflated_start is not None:
            parsed = _inflate_capped(memoryview(data)[deflated_start:], limits or get_settings().limits)
            dataset = _read_inflated(data[:deflated_start], parsed, has_preamble)
        else:
            # Small objects: BytesIO's C reads are faster than any Python reader; copies cost nothing.
            reader = _ZeroCopyReader(data) if len(data) >= _ZeroCopyReader.VIEW_THRESHOLD else io.BytesIO(data)
            dataset = pydicom.dcmread(reader, force=not has_preamble)
    except IngestError:
        raise
    except Exception as error:  # pydicom raises many types for broken headers
        raise IngestError(f"unreadable DICOM header: {short_reason(error)}") from error
    if not isinstance(dataset, Dataset) or len(dataset) == 0:
        if has_preamble:
            raise IngestError(
                "truncated or damaged DICOM: the file header is there but none of the data after it can be read"
            )
        raise IngestError("not a DICOM file (no data elements could be read)")
    _fill_transfer_syntax(dataset)
    if len(parsed) >= _ZeroCopyReader.VIEW_THRESHOLD:
        _copy_views_except_native_pixels(dataset)
    return dataset


def _deflated_dataset_start(data: bytes, meta_start: int) -> int | None:
    """Where the (compressed) dataset starts when the file meta elements from ``meta_start`` on (after
    the preamble, or at 0 in a file without one) give Deflated Explicit VR Little Endian as the
    transfer syntax; None for any other syntax, or no file meta."""
    position = meta_start
    transfer_syntax = b""
    while position + 8 <= len(data):
        group, element = struct.unpack_from("<HH", data, position)
        if group != 0x0002:
            break
        value_representation = data[position + 4 : position + 6]
        if value_representation in _LONG_LENGTH_VALUE_REPRESENTATIONS:
            (length,) = struct.unpack_from("<I", data, position + 8) if position + 12 <= len(data) else (0,)
            header_length = 12
        elif value_representation in _VALUE_REPRESENTATIONS:
            (length,) = struct.unpack_from("<H", data, position + 6)
            header_length = 8
        else:  # a non-conformant implicit-VR file meta, which pydicom also reads
            (length,) = struct.unpack_from("<I", data, position + 4)
            header_length = 8
        if length == _UNDEFINED_LENGTH:
            return None
        if element == 0x0010:
            transfer_syntax = data[position + header_length : position + header_length + length].rstrip(b"\x00 ")
        position += header_length + length
    return position if transfer_syntax == _DEFLATED_UID and position <= len(data) else None


def _inflate_capped(compressed: memoryview, limits: IngestLimits) -> bytearray:
    """Inflate a raw deflate stream (PS3.5 A.5) without ever holding more than the limits allow.

    Refused past ``limits.max_file_bytes`` or past the compression-ratio limit, whichever is lower:
    a 1 MB file whose header says 16 x 16 must not take a gigabyte to find out that it lies.
    """
    cap = min(limits.max_file_bytes, limits.max_unpacked_bytes(len(compressed)))
    inflater = zlib.decompressobj(-zlib.MAX_WBITS)
    inflated = bytearray()
    position = 0
    pending = b""  # input that the last call had no room to inflate
    try:
        while not inflater.eof:
            if not pending and position < len(compressed):
                pending = compressed[position : position + _INFLATE_INPUT_BYTES]
                position += len(pending)
            chunk = inflater.decompress(pending, min(_INFLATE_OUTPUT_BYTES, cap + 1 - len(inflated)))
            pending = inflater.unconsumed_tail
            inflated += chunk
            if len(inflated) > cap:
                break
            if not chunk and not pending and position >= len(compressed):
                break  # all input used and nothing more comes out: the stream is cut short
    except zlib.error as error:
        raise IngestError("damaged deflated DICOM: its compressed data cannot be inflated") from error
    if len(inflated) > cap:
        if cap == limits.max_file_bytes:
            raise IngestError(
                f"DICOM data too large once inflated: more than {cap:,} bytes "
                f"(limit {limits.max_file_bytes:,}); refusing a possible decompression bomb"
            )
        raise IngestError(
            f"suspicious compression: {len(compressed):,} bytes of deflated DICOM inflate to more than "
            f"{cap:,} (more than {limits.max_compression_ratio:g} times); refusing a possible decompression bomb"
        )
    if not inflater.eof:
        raise IngestError("truncated or damaged DICOM: its deflated data ends early")
    return inflated


def _read_inflated(header: bytes, inflated: bytearray, has_preamble: bool) -> FileDataset:
    """The dataset of a deflated file from its preamble and file meta (``header``) and its inflated
    dataset, read as pydicom reads one (Explicit VR Little Endian once inflated)."""
    # The header alone reads as a file with an empty dataset (pydicom stops at its end).
    preamble_and_meta = pydicom.dcmread(io.BytesIO(header), force=not has_preamble)
    reader = _ZeroCopyReader(inflated) if len(inflated) >= _ZeroCopyReader.VIEW_THRESHOLD else io.BytesIO(inflated)
    body = read_dataset(reader, is_implicit_VR=False, is_little_endian=True)
    dataset = FileDataset(
        "",
        body,
        preamble=preamble_and_meta.preamble,
        file_meta=preamble_and_meta.file_meta,
        is_implicit_VR=False,
        is_little_endian=True,
    )
    dataset.set_original_encoding(False, True, body.original_character_set)
    return dataset


class _ZeroCopyReader(io.RawIOBase):
    """A read-only file over ``bytes`` whose large reads are views, not copies.

    ``io.BytesIO`` copies every value it hands to pydicom, so a 60 MB uncompressed image would be
    held twice (and paged in twice) before decoding even starts. Reads of 1 MiB or more are in
    practice pixel data or large blobs and come back as a ``memoryview``; everything smaller is
    returned as ``bytes`` because pydicom decodes text from it. After parsing,
    :func:`_copy_views_except_native_pixels` turns every view but native pixel data back into bytes.
    """

    VIEW_THRESHOLD = 1024 * 1024

    def __init__(self, data: bytes) -> None:
        super().__init__()
        self._view = memoryview(data)
        self._position = 0

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def tell(self) -> int:
        return self._position

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        if whence == io.SEEK_CUR:
            offset += self._position
        elif whence == io.SEEK_END:
            offset += len(self._view)
        self._position = max(0, offset)
        return self._position

    def read(self, size: int | None = -1) -> bytes | memoryview:  # type: ignore[override]
        end = len(self._view) if size is None or size < 0 else min(len(self._view), self._position + size)
        chunk = self._view[self._position : end]
        self._position = max(self._position, end)
        return chunk if len(chunk) >= self.VIEW_THRESHOLD else chunk.tobytes()


def _copy_views_except_native_pixels(dataset: Dataset) -> None:
    """Turn every ``memoryview`` value into ``bytes`` except uncompressed pixel data.

    Decoders of encapsulated (compressed) pixel data and most other code expect ``bytes``; the
    zero-copy view only pays off for native pixels, which numpy reads straight from the buffer.
    """
    file_meta = getattr(dataset, "file_meta", None)
    syntax = file_meta.get("TransferSyntaxUID") if file_meta is not None else None
    uid = UID(str(syntax)) if syntax is not None else None
    keep_native_pixels = uid is not None and uid.is_transfer_syntax and not uid.is_compressed
    for element in list(dataset.values()):
        if not isinstance(element.value, memoryview):
            continue
        tag = int(element.tag)
        if tag in PIXEL_DATA_TAGS and keep_native_pixels:
            continue
        dataset[tag].value = element.value.tobytes()


def _fill_transfer_syntax(dataset: Dataset) -> None:
    """Give a meta-less legacy object the transfer syntax it was actually read with."""
    file_meta = getattr(dataset, "file_meta", None)
    if file_meta is not None and "TransferSyntaxUID" in file_meta:
        return
    is_implicit_vr, is_little_endian = dataset.original_encoding
    if is_implicit_vr is None or is_little_endian is None:
        return
    if is_implicit_vr:
        syntax = ImplicitVRLittleEndian
    else:
        syntax = ExplicitVRLittleEndian if is_little_endian else ExplicitVRBigEndian
    if file_meta is None:
        dataset.file_meta = FileMetaDataset()
    dataset.file_meta.TransferSyntaxUID = syntax


def read_dicom(data: bytes, limits: IngestLimits) -> DicomInfo:
    """Validate one uploaded DICOM object and return its header fields (see :func:`read_dicom_dataset`)."""
    return read_dicom_dataset(data, limits)[0]


def read_dicom_dataset(data: bytes, limits: IngestLimits) -> tuple[DicomInfo, Dataset]:
    """Validate one uploaded DICOM object; return its header fields and the parsed dataset (for
    de-identification, so the file is parsed once).

    Parses once, checks every size the header declares against ``limits`` before any pixel is
    decoded, then decodes the pixel data once to prove it is readable. Raises ``IngestError``.
    """
    try:
        dataset = open_dataset(data, limits)
        transfer_syntax = _transfer_syntax(dataset)
        # No element can be longer than the file, unless the file was deflated.
        if len(data) > limits.max_element_bytes or transfer_syntax.is_deflated:
            _check_element_sizes(dataset, limits)
        geometry = _check_image_geometry(dataset, transfer_syntax, limits)
        if transfer_syntax.is_compressed:
            _check_compressed_frames(dataset, transfer_syntax, geometry)
        if not _plainly_readable(dataset, transfer_syntax, geometry):
            _decode_once(dataset, transfer_syntax)
        return _info_from(dataset, transfer_syntax, geometry.number_of_frames), dataset
    except IngestError:
        raise
    except Exception as error:  # never let a raw exception reach the page
        raise IngestError(f"unreadable DICOM object: {short_reason(error)}") from error


@dataclass(frozen=True)
class _Geometry:
    rows: int
    columns: int
    number_of_frames: int
    samples_per_pixel: int
    bits_allocated: int


def _check_element_sizes(dataset: Dataset, limits: IngestLimits) -> None:
    """Refuse any non-pixel element bigger than ``limits.max_element_bytes`` (e.g. a private blob)."""
    oversized = _find_oversized_element(dataset, limits.max_element_bytes)
    if oversized is not None:
        tag, size = oversized
        raise IngestError(
            f"DICOM element ({tag >> 16:04X},{tag & 0xFFFF:04X}) is too large "
            f"({size:,} bytes, limit {limits.max_element_bytes:,}); refusing a possibly hostile file"
        )


def _find_oversized_element(dataset: Dataset, max_bytes: int) -> tuple[int, int] | None:
    # Dataset.values() gives the raw (unconverted) elements, so this walk costs almost nothing: a
    # sequence is only parsed when its raw bytes exceed the limit, since anything it holds is smaller.
    for element in list(dataset.values()):
        tag = int(element.tag)
        if tag in PIXEL_DATA_TAGS:
            continue
        value = element.value
        if isinstance(value, Sequence):
            found = _find_in_sequence(value, max_bytes)
            if found is not None:
                return found
            continue
        size = len(value) if isinstance(value, bytes | bytearray | memoryview | str) else 0
        if size <= max_bytes:
            continue
        converted = dataset[tag]  # implicit-VR raw elements carry no VR until converted
        if converted.VR == "SQ":
            found = _find_in_sequence(converted.value, max_bytes)
            if found is not None:
                return found
            continue
        return tag, size
    return None


def _find_in_sequence(sequence: Sequence, max_bytes: int) -> tuple[int, int] | None:
    for item in sequence:
        found = _find_oversized_element(item, max_bytes)
        if found is not None:
            return found
    return None


def _transfer_syntax(dataset: Dataset) -> UID:
    file_meta = getattr(dataset, "file_meta", None)
    uid = file_meta.get("TransferSyntaxUID") if file_meta is not None else None
    if not uid:
        raise IngestError("DICOM object has no transfer syntax: cannot tell how its pixels are encoded")
    uid = UID(str(uid).strip("\x00 "))
    try:
        decoder = get_decoder(uid)
    except NotImplementedError:
        name = uid.name if uid.is_transfer_syntax else "unknown transfer syntax"
        raise IngestError(f"unsupported transfer syntax {uid} ({name}): its pixels cannot be decoded here") from None
    if not decoder.is_available:
        raise IngestError(
            f"transfer syntax {uid} ({uid.name}) needs a decoder plug-in that is not installed on this server"
        )
    return uid


def _int_attribute(dataset: Dataset, keyword: str, default: int | None = None) -> int:
    tag = tag_for_keyword(keyword)
    element = dataset.get(tag) if tag is not None else None  # by tag: much cheaper than by keyword
    value = element.value if element is not None else default
    if isinstance(value, MultiValue | list):
        value = value[0] if value else default
    if value is None or value == "":
        if default is None:
            raise IngestError(f"DICOM image has no {keyword}")
        return default
    try:
        return int(value)
    except (TypeError, ValueError):
        raise IngestError(f"DICOM image has an invalid {keyword} ({value!r})") from None


def _check_image_geometry(dataset: Dataset, transfer_syntax: UID, limits: IngestLimits) -> _Geometry:
    pixel_tag = next((tag for tag in PIXEL_DATA_TAGS if tag in dataset), None)
    if pixel_tag is None:
        if "Rows" in dataset and "Columns" in dataset:
            raise IngestError("truncated DICOM: the image header is there but the pixel data is missing")
        kind = _object_kind(dataset)
        if "Image" in kind:
            raise IngestError(f"no image in this DICOM object: its header says {kind} but it holds no pixel data")
        raise IngestError(f"no image in this DICOM object ({kind}); only images can be reviewed")
    rows = _int_attribute(dataset, "Rows")
    columns = _int_attribute(dataset, "Columns")
    if rows <= 0 or columns <= 0:
        raise IngestError(f"DICOM header gives an empty image size ({rows} rows x {columns} columns)")
    if rows * columns > limits.max_frame_pixels:
        raise IngestError(
            f"image too large: {columns} x {rows} pixels per frame (limit {limits.max_frame_pixels:,} pixels)"
        )
    number_of_frames = _int_attribute(dataset, "NumberOfFrames", 1)
    if number_of_frames <= 0:
        raise IngestError(f"DICOM header gives an invalid number of frames ({number_of_frames})")
    if number_of_frames > limits.max_frames:
        raise IngestError(f"too many frames: {number_of_frames:,} (limit {limits.max_frames:,})")
    samples_per_pixel = _int_attribute(dataset, "SamplesPerPixel", 1)
    if samples_per_pixel not in (1, 3):
        raise IngestError(f"unsupported samples per pixel ({samples_per_pixel}); expected 1 or 3")
    bits_allocated = _int_attribute(dataset, "BitsAllocated")
    if bits_allocated not in _ALLOWED_BITS_ALLOCATED:
        raise IngestError(f"DICOM header gives an invalid bits allocated ({bits_allocated})")
    if "PhotometricInterpretation" not in dataset:
        raise IngestError("DICOM image has no PhotometricInterpretation")

    # Uncompressed YBR_FULL_422 stores two pixels as Y1 Y2 Cb Cr: two samples a pixel, not three.
    photometric = _text(dataset, "PhotometricInterpretation").upper()
    stored_samples = 2 if photometric == "YBR_FULL_422" and samples_per_pixel == 3 else samples_per_pixel
    expected_bytes = math.ceil(rows * columns * number_of_frames * stored_samples * bits_allocated / 8)
    # The decoder may widen 8-bit data or produce RGB from palette; 8 bytes per sample bounds it.
    decoded_bytes = rows * columns * number_of_frames * samples_per_pixel * max(bits_allocated, 8) // 8
    if decoded_bytes > limits.max_decoded_bytes:
        raise IngestError(
            f"image too large once decoded: {decoded_bytes:,} bytes "
            f"(limit {limits.max_decoded_bytes:,}); {number_of_frames} frame(s) of {columns} x {rows}"
        )
    if not transfer_syntax.is_compressed:
        found_bytes = _value_length(dataset, pixel_tag)
        if found_bytes < expected_bytes:
            raise IngestError(
                f"truncated DICOM: pixel data ends early (expected {expected_bytes} bytes, found {found_bytes})"
            )
        # YBR_FULL_422 with three full samples a pixel is a known writer error that decoders accept.
        largest_bytes = math.ceil(rows * columns * number_of_frames * samples_per_pixel * bits_allocated / 8)
        if found_bytes > largest_bytes + largest_bytes % 2 + _PIXEL_DATA_SLACK_BYTES:
            raise IngestError(
                f"pixel data longer than its header says: {found_bytes:,} bytes where {number_of_frames} frame(s) "
                f"of {columns} x {rows} take {expected_bytes:,}; refusing a possibly hostile file"
            )
    return _Geometry(rows, columns, number_of_frames, samples_per_pixel, bits_allocated)


def _check_compressed_frames(dataset: Dataset, transfer_syntax: UID, geometry: _Geometry) -> None:
    """Refuse, before any decoder runs, encapsulated pixel data that holds more frames than the header
    says, or a frame whose own header (JPEG SOF, JPEG-LS SOF55, JPEG 2000 SIZ) gives another size or
    number of components than Rows, Columns and SamplesPerPixel: a decoder allocates what the frame
    says (a 1.5 MB JPEG can say 20000 x 20000), and the limits were checked against the DICOM header.
    """
    element = dataset.get_item(0x7FE00010)
    encapsulated = element.value if element is not None else None
    if not isinstance(encapsulated, bytes | bytearray):
        return  # no pixel data, or not encapsulated: the decoder refuses it
    needs_header = str(transfer_syntax) in _CODECS_WITH_FRAME_HEADERS
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # pydicom warns about missing end-of-image markers here
        frames = generate_fragmented_frames(
            encapsulated, number_of_frames=geometry.number_of_frames, extended_offsets=_extended_offsets(dataset)
        )
        for index, fragments in enumerate(_frames_or_refusal(frames, transfer_syntax)):
            number = index + 1
            if number > geometry.number_of_frames:
                raise IngestError(
                    f"compressed pixel data holds more frames than its header's {geometry.number_of_frames}; "
                    "refusing a possibly hostile file"
                )
            if not needs_header:
                continue
            header = frame_header(fragments[0] if len(fragments) == 1 else b"".join(fragments))
            if header is None:
                raise IngestError(
                    f"damaged compressed image: frame {number} has no readable frame header ({transfer_syntax.name})"
                )
            if (header.rows, header.columns, header.components) != (
                geometry.rows,
                geometry.columns,
                geometry.samples_per_pixel,
            ):
                raise IngestError(
                    f"compressed frame {number} says it is {header.columns} x {header.rows} pixels with "
                    f"{header.components} component(s) where the DICOM header says {geometry.columns} x "
                    f"{geometry.rows} with {geometry.samples_per_pixel}; refusing a possible decompression bomb"
                )
            if header.scans > MAX_JPEG_SCANS:
                raise IngestError(
                    f"compressed frame {number} has {header.scans:,} scans (limit {MAX_JPEG_SCANS:,}); "
                    "refusing a possible decompression bomb"
                )


def _frames_or_refusal(frames: Iterator[tuple[bytes, ...]], transfer_syntax: UID) -> Iterator[tuple[bytes, ...]]:
    """``frames``, with pydicom's errors on broken encapsulation (fewer fragments than frames, a
    damaged item) turned into the refusal a decoder's would give."""
    try:
        yield from frames
    except Exception as error:  # ValueError, struct.error, EOFError, ...
        raise IngestError(f"cannot decode pixel data ({transfer_syntax.name}): {short_reason(error)}") from error


def _extended_offsets(dataset: Dataset) -> tuple[bytes, bytes] | None:
    """The raw Extended Offset Table and its lengths, as pydicom's decoder uses them; None if absent."""
    offsets, lengths = dataset.get_item(0x7FE00001), dataset.get_item(0x7FE00002)
    if offsets is None or lengths is None:
        return None
    if not isinstance(offsets.value, bytes | bytearray) or not isinstance(lengths.value, bytes | bytearray):
        return None
    return bytes(offsets.value), bytes(lengths.value)


def _object_kind(dataset: Dataset) -> str:
    """Plain name of what a non-image object is, e.g. "Basic Text SR Storage", from its SOP class."""
    file_meta = getattr(dataset, "file_meta", None)
    uid_text = _text(dataset, "SOPClassUID") or (
        str(file_meta.get("MediaStorageSOPClassUID", "")).strip("\x00 ") if file_meta is not None else ""
    )
    if not uid_text:
        return "no SOP class given: a report, plan, index or other non-image"
    name = UID(uid_text).name
    if name == uid_text:  # pydicom knows no name for it
        return f"SOP class {uid_text}: a report, plan, index or other non-image"
    return name


def _value_length(dataset: Dataset, tag: int) -> int:
    element = dataset.get_item(tag)
    value = element.value if element is not None else None
    return len(value) if isinstance(value, bytes | bytearray | memoryview) else 0


_PLAIN_PHOTOMETRIC = frozenset({"MONOCHROME1", "MONOCHROME2", "RGB"})


def _plainly_readable(dataset: Dataset, transfer_syntax: UID, geometry: _Geometry) -> bool:
    """Uncompressed grey or RGB pixels of whole bytes whose length the geometry check has already
    matched against the header: decoding them is a reinterpretation of those bytes that cannot
    fail, so it is not done at import (about 1 ms a CT slice). Compressed, palette, YBR and
    bit-packed data are always decoded once."""
    photometric = str(dataset.get("PhotometricInterpretation", "")).strip().upper()
    return (
        not transfer_syntax.is_compressed
        and 0x7FE00010 in dataset
        and geometry.bits_allocated in (8, 16, 32)
        and photometric in _PLAIN_PHOTOMETRIC
    )


def _decode_once(dataset: Dataset, transfer_syntax: UID) -> None:
    try:
        # Proving every frame decodes is the point; converting YBR to RGB is not (it cannot fail, and
        # costs a third of the time for a multi-frame ultrasound clip). The dataset is ours to change.
        dataset.pixel_array_options(as_rgb=False)
        pixels = dataset.pixel_array
    except Exception as error:  # decoders raise RuntimeError, ValueError, struct.error, ...
        raise IngestError(f"cannot decode pixel data ({transfer_syntax.name}): {short_reason(error)}") from error
    if not isinstance(pixels, np.ndarray) or pixels.size == 0:
        raise IngestError(f"cannot decode pixel data ({transfer_syntax.name}): the decoder returned no pixels")


def _text_values(dataset: Dataset, keyword: str) -> list[str]:
    """The values of a text element (UI, CS, LO, PN, DA, IS, DS, ...), stripped; [] when absent.

    ASCII values are split straight from the raw bytes: pydicom's full conversion costs ~15 us an
    element, which would make the header fields the slowest part of reading a small image. Anything
    else goes through pydicom so that the Specific Character Set is honoured.
    """
    tag = tag_for_keyword(keyword)
    element = dataset.get_item(tag) if tag is not None else None
    if element is None:
        return []
    value = element.value
    if isinstance(value, bytes | bytearray):
        if value.isascii():
            return [part.strip(" \x00") for part in value.decode("ascii").split("\\")]
        value = dataset[tag].value
    if value is None:
        return []
    if isinstance(value, MultiValue | list | tuple):
        return [str(item).strip() for item in value]
    return [str(value).strip()]


def _text(dataset: Dataset, keyword: str) -> str:
    values = _text_values(dataset, keyword)
    return values[0] if values else ""


def _optional_int(dataset: Dataset, keyword: str) -> int | None:
    text = _text(dataset, keyword)
    try:
        return int(float(text)) if text else None
    except ValueError:
        return None


def _float_values(dataset: Dataset, keyword: str, count: int) -> list[float] | None:
    try:
        numbers = [float(item) for item in _text_values(dataset, keyword)]
    except (TypeError, ValueError):
        return None
    if len(numbers) != count or not all(math.isfinite(number) for number in numbers):
        return None
    return numbers


def _slice_location(dataset: Dataset) -> float | None:
    position = _float_values(dataset, "ImagePositionPatient", 3)
    orientation = _float_values(dataset, "ImageOrientationPatient", 6)
    if position is not None and orientation is not None:
        # Slice normal = row direction x column direction (plain floats: numpy is slower for 3-vectors).
        row_x, row_y, row_z, column_x, column_y, column_z = orientation
        normal = (
            row_y * column_z - row_z * column_y,
            row_z * column_x - row_x * column_z,
            row_x * column_y - row_y * column_x,
        )
        norm = math.sqrt(sum(component * component for component in normal))
        if norm > 0:
            return sum(p * n for p, n in zip(position, normal, strict=True)) / norm
    text = _text(dataset, "SliceLocation")
    try:
        location = float(text) if text else None
    except ValueError:
        return None
    return location if location is not None and math.isfinite(location) else None


def _study_date(dataset: Dataset) -> str | None:
    text = _text(dataset, "StudyDate").replace(".", "")  # ACR-NEMA style "YYYY.MM.DD"
    return text[:8] if len(text) >= 8 and text[:8].isdigit() else None


def _info_from(dataset: Dataset, transfer_syntax: UID, number_of_frames: int) -> DicomInfo:
    sop_instance_uid = _text(dataset, "SOPInstanceUID")
    if not sop_instance_uid:
        raise IngestError("DICOM object has no SOP Instance UID, so it cannot be told apart from others")
    return DicomInfo(
        sop_instance_uid=sop_instance_uid,
        sop_class_uid=_text(dataset, "SOPClassUID"),
        study_instance_uid=_text(dataset, "StudyInstanceUID"),
        series_instance_uid=_text(dataset, "SeriesInstanceUID"),
        patient_id=_text(dataset, "PatientID"),
        patient_name=_text(dataset, "PatientName"),
        modality=_text(dataset, "Modality").upper(),
        study_date=_study_date(dataset),
        study_description=_text(dataset, "StudyDescription"),
        series_description=_text(dataset, "SeriesDescription"),
        series_number=_optional_int(dataset, "SeriesNumber"),
        instance_number=_optional_int(dataset, "InstanceNumber"),
        slice_location=_slice_location(dataset),
        rows=int(dataset.Rows),
        columns=int(dataset.Columns),
        number_of_frames=number_of_frames,
        photometric_interpretation=_text(dataset, "PhotometricInterpretation"),
        transfer_syntax_uid=str(transfer_syntax),
        burned_in_annotation=_text(dataset, "BurnedInAnnotation").upper() == "YES",
    )
