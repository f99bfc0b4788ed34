"""Builders of decompression bombs: DICOM files that are small on disk and huge once decoded.

Each is built the way an attacker would, with real encoders or byte for byte from the standard, and
costs the test a few megabytes at most:

- :func:`deflated_dicom`: a Deflated Explicit VR Little Endian object whose header says 16 x 16 and
  whose Pixel Data element holds any number of zeros (a gigabyte deflates to about a megabyte);
- :func:`flat_jpeg`: a valid baseline JPEG of any size whose every 8 x 8 block costs two bits, so a
  20000 x 20000 picture (400 million pixels once decoded) takes 1.5 MB;
- :func:`jpeg_dicom`: frames like that encapsulated in an object whose header says otherwise.
"""

from __future__ import annotations

import struct
import zlib

from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.encaps import encapsulate
from pydicom.filebase import DicomBytesIO
from pydicom.filewriter import write_dataset, write_file_meta_info
from pydicom.uid import (
    DeflatedExplicitVRLittleEndian,
    JPEGBaseline8Bit,
    SecondaryCaptureImageStorage,
    generate_uid,
)

__all__ = ["deflated_dicom", "flat_jpeg", "image_header", "jpeg_dicom", "part10"]

_ZERO_CHUNK_BYTES = 4 * 1024 * 1024


def image_header(rows: int = 16, columns: int = 16, number_of_frames: int = 1) -> Dataset:
    """The header of an 8-bit greyscale image, without pixel data."""
    dataset = Dataset()
    dataset.SOPClassUID = SecondaryCaptureImageStorage
    dataset.SOPInstanceUID = generate_uid()
    dataset.StudyInstanceUID = generate_uid()
    dataset.SeriesInstanceUID = generate_uid()
    dataset.PatientID = "BOMB"
    dataset.Modality = "OT"
    dataset.Rows, dataset.Columns = rows, columns
    if number_of_frames != 1:
        dataset.NumberOfFrames = number_of_frames
    dataset.SamplesPerPixel = 1
    dataset.PhotometricInterpretation = "MONOCHROME2"
    dataset.BitsAllocated = 8
    dataset.BitsStored = 8
    dataset.HighBit = 7
    dataset.PixelRepresentation = 0
    return dataset


def part10(dataset: Dataset, transfer_syntax: str) -> tuple[bytes, bytes]:
    """(preamble + file meta saying ``transfer_syntax``, the dataset encoded Explicit VR Little Endian)."""
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = dataset.SOPClassUID
    meta.MediaStorageSOPInstanceUID = dataset.SOPInstanceUID
    meta.TransferSyntaxUID = transfer_syntax
    meta_buffer = DicomBytesIO()
    meta_buffer.is_little_endian, meta_buffer.is_implicit_VR = True, False
    write_file_meta_info(meta_buffer, meta, enforce_standard=True)
    body_buffer = DicomBytesIO()
    body_buffer.is_little_endian, body_buffer.is_implicit_VR = True, False
    write_dataset(body_buffer, dataset)
    return b"\0" * 128 + b"DICM" + meta_buffer.getvalue(), body_buffer.getvalue()


def deflated_dicom(zero_bytes: int = 0, pixel_data: bytes = b"", rows: int = 16, columns: int = 16) -> bytes:
    """A deflated 8-bit image object whose Pixel Data holds ``pixel_data`` followed by ``zero_bytes``
    zeros, whatever ``rows`` x ``columns`` says."""
    header, body = part10(image_header(rows, columns), DeflatedExplicitVRLittleEndian)
    length = len(pixel_data) + zero_bytes
    pixel_element = struct.pack("<HH2sHI", 0x7FE0, 0x0010, b"OB", 0, length + length % 2)
    compressor = zlib.compressobj(9, zlib.DEFLATED, -zlib.MAX_WBITS)
    parts = [header, compressor.compress(body + pixel_element + pixel_data), compressor.flush(zlib.Z_FULL_FLUSH)]
    whole_chunks, rest = divmod(zero_bytes + length % 2, _ZERO_CHUNK_BYTES)
    if whole_chunks:
        # After a full flush the compressor starts afresh, so equal input gives equal output: a
        # gigabyte of zeros is one chunk compressed once and repeated (a second, not a minute).
        block = compressor.compress(bytes(_ZERO_CHUNK_BYTES)) + compressor.flush(zlib.Z_FULL_FLUSH)
        parts.append(block * whole_chunks)
    parts.append(compressor.compress(bytes(rest)) + compressor.flush())
    return b"".join(parts)


def _segment(marker: int, payload: bytes) -> bytes:
    return struct.pack(">HH", marker, len(payload) + 2) + payload


def flat_jpeg(height: int, width: int) -> bytes:
    """A valid baseline JPEG of ``height`` x ``width`` mid-grey pixels in about height * width / 256 bytes.

    Its Huffman tables hold one 1-bit code each (DC difference 0, end of block), so every 8 x 8 block
    is the two bits 00 and the entropy-coded data is all zero bytes (ISO 10918-1 B.2, F.1.2).
    """
    one_code_of_length_1 = bytes([1] + [0] * 15)
    quantisation = _segment(0xFFDB, b"\x00" + b"\x01" * 64)
    huffman = _segment(0xFFC4, b"\x00" + one_code_of_length_1 + b"\x00" + b"\x10" + one_code_of_length_1 + b"\x00")
    frame = _segment(0xFFC0, struct.pack(">BHHB", 8, height, width, 1) + b"\x01\x11\x00")
    scan = _segment(0xFFDA, b"\x01\x01\x00\x00\x3f\x00")
    bits = 2 * ((height + 7) // 8) * ((width + 7) // 8)
    # The last byte is padded with 1-bits (F.1.2.3).
    entropy_coded = bytes(bits // 8) + (bytes([0xFF >> (bits % 8)]) if bits % 8 else b"")
    return b"\xff\xd8" + quantisation + huffman + frame + scan + entropy_coded + b"\xff\xd9"


def jpeg_dicom(frames: list[bytes], rows: int, columns: int, number_of_frames: int | None = None) -> bytes:
    """JPEG Baseline object holding ``frames`` (with a basic offset table) under a header that says
    ``rows`` x ``columns`` and ``number_of_frames`` (default: as many as there are)."""
    dataset = image_header(rows, columns, number_of_frames or len(frames))
    dataset.PixelData = encapsulate(frames, has_bot=True)
    dataset["PixelData"].VR = "OB"
    header, body = part10(dataset, JPEGBaseline8Bit)
    return header + body
