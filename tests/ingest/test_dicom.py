"""read_dicom: the gate every DICOM upload passes (real corpus files and hostile ones built here)."""

from __future__ import annotations

import io
import random
import warnings

import numpy as np
import pydicom
import pytest
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.encaps import encapsulate
from pydicom.uid import UID, CTImageStorage, ExplicitVRLittleEndian, ImplicitVRLittleEndian, generate_uid

from medreview.config import IngestLimits
from medreview.errors import IngestError
from medreview.imaging.decoding import decode_dicom
from medreview.ingest.dicom import DicomInfo, looks_like_dicom, read_dicom
from tests.helpers import corpus_file

LIMITS = IngestLimits()


def corpus_bytes(name: str) -> bytes:
    return corpus_file(name).read_bytes()


def build_ct_dataset(pixels: np.ndarray | None = None) -> Dataset:
    """A minimal valid CT image: (rows, columns) or (frames, rows, columns) int16 pixels."""
    if pixels is None:
        pixels = np.arange(16, dtype=np.int16).reshape(4, 4)
    file_meta = FileMetaDataset()
    file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
    dataset = Dataset()
    dataset.file_meta = file_meta
    dataset.SOPClassUID = CTImageStorage
    dataset.SOPInstanceUID = generate_uid()
    dataset.StudyInstanceUID = generate_uid()
    dataset.SeriesInstanceUID = generate_uid()
    dataset.PatientID = "P-001"
    dataset.PatientName = "Test^Patient"
    dataset.Modality = "CT"
    dataset.StudyDate = "20240131"
    dataset.Rows, dataset.Columns = pixels.shape[-2:]
    if pixels.ndim == 3:
        dataset.NumberOfFrames = pixels.shape[0]
    dataset.SamplesPerPixel = 1
    dataset.PhotometricInterpretation = "MONOCHROME2"
    dataset.BitsAllocated = 16
    dataset.BitsStored = 16
    dataset.HighBit = 15
    dataset.PixelRepresentation = 1
    dataset.PixelData = pixels.astype(np.int16).tobytes()
    return dataset


def to_bytes(dataset: Dataset, *, file_format: bool = True) -> bytes:
    """Part 10 file (preamble + meta), or with ``file_format=False`` a bare implicit-VR dataset."""
    buffer = io.BytesIO()
    if file_format:
        dataset.save_as(buffer, enforce_file_format=True)
    elif "TransferSyntaxUID" in getattr(dataset, "file_meta", {}):
        pydicom.dcmwrite(buffer, dataset)
    else:
        pydicom.dcmwrite(buffer, dataset, implicit_vr=True, little_endian=True)
    return buffer.getvalue()


# --- real files ------------------------------------------------------------------------------


def test_reads_header_fields_of_a_real_ct() -> None:
    info = read_dicom(corpus_bytes("CT_small.dcm"), LIMITS)
    assert isinstance(info, DicomInfo)
    assert info.modality == "CT"
    assert (info.rows, info.columns, info.number_of_frames) == (128, 128, 1)
    assert info.patient_id == "1CT1"
    assert info.patient_name == "CompressedSamples^CT1"
    assert info.study_date == "20040119"
    assert info.sop_instance_uid == "1.3.6.1.4.1.5962.1.1.1.1.1.20040119072730.12322"
    assert info.transfer_syntax_uid == "1.2.840.10008.1.2.1"
    # Axial slice (orientation 1\0\0\0\1\0): the projection on the normal is the z of the position.
    assert info.slice_location == pytest.approx(-75.699997)
    assert info.burned_in_annotation is False


def test_counts_frames_of_a_multiframe_mr() -> None:
    info = read_dicom(corpus_bytes("emri_small.dcm"), LIMITS)
    assert info.number_of_frames == 10
    assert info.modality == "MR"


@pytest.mark.parametrize(
    "name",
    [
        "JPEG2000.dcm",  # JPEG 2000
        "MR_small_RLE.dcm",  # RLE lossless
        "JPEG-LL.dcm",  # JPEG lossless
        "MR_small_jpeg_ls_lossless.dcm",  # JPEG-LS (pyjpegls)
        "SC_rgb_rle.dcm",  # RGB, RLE
        "JPGExtended.dcm",  # 12-bit JPEG extended (pylibjpeg-libjpeg only)
        "MR_small_bigendian.dcm",  # explicit VR big endian
        "image_dfl.dcm",  # deflated
        "RG1_J2KR.dcm",  # JPEG 2000 lossless, over 1 MiB
    ],
)
def test_accepts_compressed_and_legacy_transfer_syntaxes(name: str) -> None:
    info = read_dicom(corpus_bytes(name), LIMITS)
    assert info.rows > 0 and info.columns > 0


def test_refuses_the_broken_jpeg_lossy_corpus_file_with_the_syntax_name() -> None:
    with pytest.raises(IngestError, match=r"cannot decode pixel data \(JPEG Extended"):
        read_dicom(corpus_bytes("JPEG-lossy.dcm"), LIMITS)


@pytest.mark.parametrize(
    ("name", "kind"), [("rtplan.dcm", "RT Plan Storage"), ("rtstruct.dcm", "RT Structure Set Storage")]
)
def test_refuses_objects_without_pixels_naming_what_they_are(name: str, kind: str) -> None:
    with pytest.raises(IngestError, match=f"no image in this DICOM object \\({kind}\\)"):
        read_dicom(corpus_bytes(name), LIMITS)


def test_refuses_an_image_object_whose_pixel_data_is_missing() -> None:
    dataset = build_ct_dataset(np.zeros((4, 4), dtype=np.int16))
    for keyword in ("PixelData", "Rows", "Columns"):
        delattr(dataset, keyword)
    with pytest.raises(IngestError, match="its header says CT Image Storage but it holds no pixel data"):
        read_dicom(to_bytes(dataset), LIMITS)


def test_accepts_uncompressed_ybr_full_422_with_two_samples_a_pixel() -> None:
    # Y1 Y2 Cb Cr for every pair of pixels: 2/3 of the bytes of RGB, which is not a truncation.
    dataset = build_ct_dataset(np.zeros((4, 4), dtype=np.int16))
    dataset.SamplesPerPixel, dataset.PhotometricInterpretation, dataset.PlanarConfiguration = 3, "YBR_FULL_422", 0
    dataset.BitsAllocated, dataset.BitsStored, dataset.HighBit, dataset.PixelRepresentation = 8, 8, 7, 0
    dataset.PixelData = bytes([128, 130, 128, 128] * 8)  # 4 x 4 pixels, 32 bytes
    assert read_dicom(to_bytes(dataset), LIMITS).photometric_interpretation == "YBR_FULL_422"
    dataset.PixelData = bytes(30)
    with pytest.raises(IngestError, match="expected 32 bytes, found 30"):
        read_dicom(to_bytes(dataset), LIMITS)


def test_a_part10_file_with_nothing_after_its_header_is_called_truncated() -> None:
    data = to_bytes(build_ct_dataset(np.zeros((4, 4), dtype=np.int16)))
    meta_end = data.index(b"\x08\x00", 132 + 12)  # first group 0x0008 element after the file meta
    with pytest.raises(IngestError, match="truncated or damaged DICOM"):
        read_dicom(data[:meta_end] + b"\xfe\xff\xdd", LIMITS)


# --- built datasets --------------------------------------------------------------------------


def test_large_uncompressed_image_is_read_and_decoded() -> None:
    # Objects of 1 MiB or more are parsed without copying the pixel data.
    pixels = (np.arange(1024 * 1024, dtype=np.int64) % 4096 - 1024).astype(np.int16).reshape(1024, 1024)
    data = to_bytes(build_ct_dataset(pixels))
    info = read_dicom(data, LIMITS)
    assert (info.rows, info.columns) == (1024, 1024)
    with pytest.raises(IngestError, match="truncated DICOM"):
        read_dicom(data[:-4096], LIMITS)


def test_reads_a_preamble_less_legacy_object() -> None:
    dataset = build_ct_dataset()
    del dataset.file_meta
    data = to_bytes(dataset, file_format=False)  # implicit VR, no preamble, no file meta
    assert data[128:132] != b"DICM"
    assert looks_like_dicom(data)
    info = read_dicom(data, LIMITS)
    assert info.transfer_syntax_uid == ImplicitVRLittleEndian
    assert info.rows == 4


def test_looks_like_dicom_by_content() -> None:
    assert looks_like_dicom(corpus_bytes("CT_small.dcm"))
    assert not looks_like_dicom(b"")
    assert not looks_like_dicom(b"\x89PNG\r\n\x1a\n" + b"\0" * 200)
    assert not looks_like_dicom(b"<html><body>hello</body></html>" * 10)


def test_projects_the_position_on_the_slice_normal() -> None:
    dataset = build_ct_dataset()
    dataset.ImageOrientationPatient = [0, 1, 0, 0, 0, -1]  # sagittal: normal = row x column = (-1, 0, 0)
    dataset.ImagePositionPatient = [10.0, 20.0, 30.0]
    dataset.SliceLocation = 999.0  # ignored when the geometry is present
    assert read_dicom(to_bytes(dataset), LIMITS).slice_location == pytest.approx(-10.0)
    del dataset.ImageOrientationPatient
    assert read_dicom(to_bytes(dataset), LIMITS).slice_location == pytest.approx(999.0)


def test_reports_burned_in_annotation_and_absent_fields() -> None:
    dataset = build_ct_dataset()
    dataset.BurnedInAnnotation = "YES"
    del dataset.PatientID, dataset.StudyDate, dataset.Modality
    info = read_dicom(to_bytes(dataset), LIMITS)
    assert info.burned_in_annotation is True
    assert (info.patient_id, info.study_date, info.modality) == ("", None, "")
    assert info.slice_location is None


# --- hostile and broken input ----------------------------------------------------------------


def test_refuses_empty_bytes_and_text() -> None:
    with pytest.raises(IngestError, match="empty"):
        read_dicom(b"", LIMITS)
    with pytest.raises(IngestError, match="not a DICOM file"):
        read_dicom(b"<!DOCTYPE html><html><body>not an image</body></html>", LIMITS)


def test_refuses_truncated_pixel_data_with_both_sizes() -> None:
    data = corpus_bytes("CT_small.dcm")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        with pytest.raises(IngestError, match=r"truncated DICOM: pixel data ends early \(expected 32768 bytes"):
            read_dicom(data[:-1200], LIMITS)


def test_refuses_a_header_that_lies_about_the_image_size() -> None:
    dataset = build_ct_dataset()
    dataset.Rows = 512  # the pixel data holds 4 x 4
    with pytest.raises(IngestError, match=r"truncated DICOM: pixel data ends early \(expected 4096 bytes, found 32\)"):
        read_dicom(to_bytes(dataset), LIMITS)


def test_refuses_zero_rows_and_odd_bit_depths() -> None:
    dataset = build_ct_dataset()
    dataset.Rows = 0
    with pytest.raises(IngestError, match="empty image size"):
        read_dicom(to_bytes(dataset), LIMITS)
    dataset = build_ct_dataset()
    dataset.BitsAllocated = 12
    with pytest.raises(IngestError, match="bits allocated"):
        read_dicom(to_bytes(dataset), LIMITS)


def test_checks_sizes_against_the_limits_before_decoding() -> None:
    data = to_bytes(build_ct_dataset(np.zeros((3, 20, 20), dtype=np.int16)))
    with pytest.raises(IngestError, match="image too large: 20 x 20 pixels"):
        read_dicom(data, IngestLimits(max_frame_pixels=399))
    with pytest.raises(IngestError, match="too many frames: 3"):
        read_dicom(data, IngestLimits(max_frames=2))
    with pytest.raises(IngestError, match="image too large once decoded"):
        read_dicom(data, IngestLimits(max_decoded_bytes=2399))
    assert read_dicom(data, IngestLimits(max_frame_pixels=400, max_frames=3, max_decoded_bytes=2400))


@pytest.mark.parametrize("blob_bytes", [4096, 2 * 1024 * 1024])  # small file; file read without copies
def test_refuses_a_huge_private_element(blob_bytes: int) -> None:
    limits = IngestLimits(max_element_bytes=1024)
    dataset = build_ct_dataset()
    dataset.add_new(0x00091010, "LO", "ACME")  # private creator
    dataset.add_new(0x00091011, "OB", b"\0" * blob_bytes)
    with pytest.raises(IngestError, match=rf"\(0009,1011\) is too large \({blob_bytes:,} bytes"):
        read_dicom(to_bytes(dataset), limits)


@pytest.mark.parametrize("implicit_vr", [False, True])  # explicit: parsed sequence; implicit: raw bytes
def test_refuses_a_huge_private_element_inside_a_sequence(implicit_vr: bool) -> None:
    limits = IngestLimits(max_element_bytes=1024)
    nested = build_ct_dataset()
    item = Dataset()
    item.add_new(0x00091010, "LO", "ACME")
    item.add_new(0x00091011, "OB", b"\0" * 4096)
    nested.add_new(0x00091010, "LO", "ACME")
    nested.add_new(0x00091020, "SQ", [item])
    # Implicit VR cannot tell a private sequence from a blob: the whole (0009,1020) is too large then.
    expected_tag = "0009,1020" if implicit_vr else "0009,1011"
    if implicit_vr:
        del nested.file_meta
    with pytest.raises(IngestError, match=rf"\({expected_tag}\) is too large"):
        read_dicom(to_bytes(nested, file_format=not implicit_vr), limits)
    # Pixel data is governed by the decoded-size limits, not by the element limit.
    assert read_dicom(to_bytes(build_ct_dataset(np.zeros((64, 64), dtype=np.int16))), limits)


@pytest.mark.parametrize(
    ("syntax", "expected"),
    [("1.2.3.4.5", r"unsupported transfer syntax 1\.2\.3\.4\.5"), ("1.2.840.10008.1.2.4.100", "MPEG2")],
)
def test_refuses_unknown_transfer_syntaxes_naming_the_uid(syntax: str, expected: str) -> None:
    dataset = pydicom.dcmread(io.BytesIO(to_bytes(build_ct_dataset())))
    dataset.file_meta.TransferSyntaxUID = syntax
    if UID(syntax).is_transfer_syntax:  # a known compressed syntax needs encapsulated pixel data
        dataset.PixelData = encapsulate([b"\0" * 32])
    buffer = io.BytesIO()
    # Written as explicit VR little endian whatever the (fake) syntax says.
    pydicom.dcmwrite(buffer, dataset, implicit_vr=False, little_endian=True)
    with pytest.raises(IngestError, match=expected):
        read_dicom(buffer.getvalue(), LIMITS)


def test_refuses_an_object_without_sop_instance_uid() -> None:
    dataset = build_ct_dataset()
    del dataset.SOPInstanceUID
    with pytest.raises(IngestError, match="SOP Instance UID"):
        read_dicom(to_bytes(dataset, file_format=False), LIMITS)


def test_damaged_files_are_refused_or_decode_as_they_claim() -> None:
    """Random byte damage must never let a raw exception reach the page, and a damaged file that
    is accepted must decode to the image its header describes (DICOM has no checksum: damage inside
    a text value is legitimately invisible)."""
    original = corpus_bytes("CT_small.dcm")
    generator = random.Random(20240131)
    refused = accepted = 0
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for _ in range(60):
            damaged = bytearray(original)
            for _ in range(generator.randint(1, 20)):
                damaged[generator.randrange(128, 1400)] = generator.randrange(256)  # header area
            cut = generator.choice([len(damaged), generator.randrange(132, len(damaged))])
            data = bytes(damaged[:cut])
            try:
                info = read_dicom(data, LIMITS)
            except IngestError:
                refused += 1
                continue
            accepted += 1
            image = decode_dicom(data)  # an ImagingError here would be an accepted file nobody can view
            assert image.frames.shape[1:3] == (info.rows, info.columns)
    # Truncation and damaged lengths or VRs are detectable: most of these files must be refused.
    assert refused >= 45 and refused + accepted == 60
