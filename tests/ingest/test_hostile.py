"""Hostile and malformed uploads through the real ``ingest_files`` entry point.

Each test sends one bad input together with one good DICOM file and checks what a user relies on:

(a) the bad input gets a per-file "rejected" result whose reason says what is wrong;
(b) nothing of it is stored: the good file is the only image row and its blob the only file on disk;
(c) the rest of the batch goes through: the good file is stored.

Size limits are settings (:class:`~medreview.config.IngestLimits`); the bombs here are kept small by
tightening them, which exercises the same code paths as the defaults with a gigabyte-sized input.
"""

from __future__ import annotations

import io
import stat
import struct
import zipfile
import zlib
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pydicom
import pytest
from PIL import Image as PILImage
from pydicom.encaps import encapsulate, generate_frames
from pydicom.uid import DeflatedExplicitVRLittleEndian, RLELossless
from sqlalchemy import select

from medreview.config import IngestLimits
from medreview.errors import ImagingError
from medreview.imaging.decoding import decode_dicom, decode_file
from medreview.ingest import IngestResult, InputFile, ingest_files
from medreview.reading.reads import LOCAL_ACTOR
from medreview.store import Store
from medreview.store.models import Image
from tests.conftest import make_settings
from tests.helpers import corpus_file, dicom_bytes
from tests.ingest.bomb_files import deflated_dicom, flat_jpeg, jpeg_dicom

GOOD_NAME = "good/CT0001.dcm"


@pytest.fixture
def tight_store(tmp_path: Path) -> Iterator[Store]:
    """A store whose limits are small enough to build every bomb in a few kilobytes."""
    limits = IngestLimits(
        max_file_bytes=4 * 1024 * 1024,
        max_frame_pixels=1_000_000,
        max_decoded_bytes=8 * 1024 * 1024,
        max_frames=50,
        max_archive_members=20,
        max_archive_total_bytes=200_000,
        max_compression_ratio=50.0,
        max_element_bytes=4096,
    )
    opened = Store.open(make_settings(tmp_path, limits=limits))
    yield opened
    opened.close()


def ingest_with_a_good_file(store: Store, *hostile: InputFile) -> dict[str, IngestResult]:
    """Ingest the hostile inputs followed by one good DICOM; return the results by file name."""
    good = InputFile(GOOD_NAME, dicom_bytes(patient_id="GOOD"))
    results = ingest_files(store, LOCAL_ACTOR, [*hostile, good])
    by_name = {result.file: result for result in results}
    assert len(by_name) == len(results), "one result per file"
    assert by_name[GOOD_NAME].status == "stored", by_name[GOOD_NAME].reason
    assert_only_the_good_file_is_stored(store, by_name[GOOD_NAME].image_id)
    return by_name


def assert_only_the_good_file_is_stored(store: Store, good_image_id: int | None) -> None:
    with store.db.read() as session:
        images = session.scalars(select(Image)).all()
        stored = [(image.id, image.sha256) for image in images]
    assert [image_id for image_id, _ in stored] == [good_image_id]
    files_on_disk = sorted(path for path in store.settings.objects_dir.rglob("*") if path.is_file())
    assert files_on_disk == [store.blobs.path_for(stored[0][1])]


def assert_rejected(results: dict[str, IngestResult], name: str, *reason_parts: str) -> None:
    result = results[name]
    assert result.status == "rejected"
    assert result.image_id is None
    for part in reason_parts:
        assert part in result.reason


def zip_bytes(*members: tuple[str | zipfile.ZipInfo, bytes]) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        for name, content in members:
            archive.writestr(name, content)
    return buffer.getvalue()


def image_bytes(array: np.ndarray, image_format: str, **options: object) -> bytes:
    buffer = io.BytesIO()
    PILImage.fromarray(array).save(buffer, format=image_format, **options)
    return buffer.getvalue()


def a_valid_dicom(patient_id: str = "INNER") -> bytes:
    return dicom_bytes(patient_id=patient_id)


def tampered_dicom(**attributes: object) -> bytes:
    """A valid CT object with some header attributes overwritten (the pixel data left as it was)."""
    dataset = pydicom.dcmread(io.BytesIO(a_valid_dicom("TAMPERED")))
    for keyword, value in attributes.items():
        setattr(dataset, keyword, value)
    buffer = io.BytesIO()
    dataset.save_as(buffer)
    return buffer.getvalue()


# --- archives --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("member_name", "reason"),
    [
        ("../../etc/cron.d/evil.dcm", "'..' would point outside the archive"),
        ("study/../../evil.dcm", "'..' would point outside the archive"),
        ("/etc/passwd.dcm", "absolute paths are not allowed"),
        ("C:\\Windows\\evil.dcm", "absolute paths are not allowed"),
    ],
)
def test_zip_member_with_an_escaping_path_is_refused(store: Store, member_name: str, reason: str) -> None:
    archive = zip_bytes((member_name, a_valid_dicom()))
    results = ingest_with_a_good_file(store, InputFile("upload.zip", archive))
    assert_rejected(results, f"upload.zip/{member_name}", "unsafe path", reason)


def test_zip_symlink_member_is_refused(store: Store) -> None:
    link = zipfile.ZipInfo("study/link.dcm")
    link.external_attr = (stat.S_IFLNK | 0o777) << 16
    archive = zip_bytes((link, b"/etc/passwd"))
    results = ingest_with_a_good_file(store, InputFile("links.zip", archive))
    assert_rejected(results, "links.zip/study/link.dcm", "symbolic link")


def test_zip_bomb_is_refused_by_compression_ratio(tight_store: Store) -> None:
    bomb = zip_bytes(("zeros.dcm", b"\0" * (2 * 1024 * 1024)))
    assert len(bomb) < 10_000  # 2 MiB of zeros deflate to a few kilobytes
    results = ingest_with_a_good_file(tight_store, InputFile("bomb.zip", bomb))
    assert_rejected(results, "bomb.zip/zeros.dcm", "suspicious compression", "zip bomb")


def test_zip_bomb_is_refused_by_total_unpacked_size_with_nothing_of_it_stored(tight_store: Store) -> None:
    # The valid DICOM comes first: it must not be stored, since the archive as a whole is refused.
    members = [
        ("a-valid.dcm", a_valid_dicom()),
        *((f"filler{index}.bin", bytes([index]) * 90_000) for index in range(3)),
    ]
    results = ingest_with_a_good_file(tight_store, InputFile("big.zip", zip_bytes(*members)))
    assert_rejected(results, "big.zip", "archive too large once unpacked", "200,000 bytes")
    assert not any(name.startswith("big.zip/") for name in results)


def test_zip_member_that_inflates_past_its_declared_size_is_refused(tight_store: Store) -> None:
    archive = bytearray(zip_bytes(("liar.dcm", b"\0" * (1024 * 1024))))
    # Both headers claim 1,000 bytes (local header: size at offset 22, central directory: offset 24).
    for signature, size_offset in ((b"PK\x03\x04", 22), (b"PK\x01\x02", 24)):
        position = archive.find(signature)
        archive[position + size_offset : position + size_offset + 4] = (1000).to_bytes(4, "little")
    results = ingest_with_a_good_file(tight_store, InputFile("liar.zip", bytes(archive)))
    assert_rejected(results, "liar.zip/liar.dcm", "corrupt archive member")


def test_nested_archive_is_refused(store: Store) -> None:
    inner = zip_bytes(("inner.dcm", a_valid_dicom()))
    outer = zip_bytes(("inner.zip", inner), ("renamed.dcm", inner))
    results = ingest_with_a_good_file(store, InputFile("outer.zip", outer))
    assert_rejected(results, "outer.zip/inner.zip", "nested archive")
    assert_rejected(results, "outer.zip/renamed.dcm", "nested archive")


def test_archive_with_too_many_members_is_refused_whole(tight_store: Store) -> None:
    archive = zip_bytes(*((f"img{index}.dcm", a_valid_dicom(f"P{index}")) for index in range(21)))
    results = ingest_with_a_good_file(tight_store, InputFile("many.zip", archive))
    assert_rejected(results, "many.zip", "too many files: 21 (limit 20)")


def test_truncated_archive_is_refused(store: Store) -> None:
    archive = zip_bytes(("scan.dcm", a_valid_dicom()))
    results = ingest_with_a_good_file(store, InputFile("cut.zip", archive[: len(archive) // 2]))
    assert_rejected(results, "cut.zip", "not a readable zip archive")


# --- decompression bombs and truncated pictures ----------------------------------------------


@pytest.mark.parametrize("image_format", ["PNG", "JPEG"])
def test_decompression_bomb_picture_is_refused_from_its_header(tight_store: Store, image_format: str) -> None:
    # 2000 x 2000 black pixels compress to a few kilobytes and would decode to 4 MB (limit 1 Mpx).
    bomb = image_bytes(np.zeros((2000, 2000), dtype=np.uint8), image_format)
    assert len(bomb) < 100_000
    name = f"bomb.{image_format.lower()}"
    results = ingest_with_a_good_file(tight_store, InputFile(name, bomb))
    assert_rejected(results, name, "image too large", "2000 x 2000", "decompression bomb")


def repeated_scans_jpeg(repetitions: int) -> bytes:
    """A real 64 x 64 progressive JPEG whose last scan is repeated ``repetitions`` more times."""
    picture = np.random.default_rng(3).integers(0, 255, (64, 64), dtype=np.uint8)
    progressive = image_bytes(picture, "JPEG", progressive=True)
    last_scan = progressive[progressive.rfind(b"\xff\xda") : -2]  # up to the end-of-image marker
    return progressive[:-2] + last_scan * repetitions + b"\xff\xd9"


def claiming_size(data: bytes, image_format: str, width: int, height: int) -> bytes:
    """A real small PNG/JPEG whose header is rewritten to claim ``width`` x ``height`` pixels."""
    patched = bytearray(data)
    if image_format == "PNG":
        patched[16:24] = struct.pack(">II", width, height)
        patched[29:33] = struct.pack(">I", zlib.crc32(bytes(patched[12:29])))  # IHDR checksum
    else:
        frame_header = patched.find(b"\xff\xc0")  # baseline SOF0: length, precision, height, width
        patched[frame_header + 5 : frame_header + 9] = struct.pack(">HH", height, width)
    return bytes(patched)


@pytest.mark.parametrize("image_format", ["PNG", "JPEG"])
def test_picture_whose_header_claims_a_gigapixel_is_refused(store: Store, image_format: str) -> None:
    small = image_bytes(np.zeros((16, 16), dtype=np.uint8), image_format)
    name = f"giant.{image_format.lower()}"
    results = ingest_with_a_good_file(store, InputFile(name, claiming_size(small, image_format, 60_000, 50_000)))
    assert_rejected(results, name, "image too large", "60000 x 50000 pixels", "decompression bomb")


def test_progressive_jpeg_picture_with_a_thousand_repeated_scans_is_refused(store: Store) -> None:
    # Pillow decodes a progressive JPEG once per scan: a small file of repeated scans costs minutes.
    results = ingest_with_a_good_file(store, InputFile("scans.jpg", repeated_scans_jpeg(1000)))
    assert_rejected(results, "scans.jpg", "JPEG image with 1,0", "scans (limit 500)", "decompression bomb")


@pytest.mark.parametrize("image_format", ["PNG", "JPEG"])
def test_truncated_picture_is_refused(store: Store, image_format: str) -> None:
    gradient = np.tile(np.arange(256, dtype=np.uint8), (128, 1))
    data = image_bytes(gradient, image_format)
    name = f"cut.{image_format.lower()}"
    results = ingest_with_a_good_file(store, InputFile(name, data[: len(data) * 2 // 3]))
    assert_rejected(results, name, "truncated or damaged", image_format)


# --- DICOM headers that lie ------------------------------------------------------------------


def test_truncated_dicom_is_refused(store: Store) -> None:
    data = a_valid_dicom()
    results = ingest_with_a_good_file(store, InputFile("cut.dcm", data[:-1000]))
    assert_rejected(results, "cut.dcm", "truncated DICOM", "pixel data ends early")


@pytest.mark.parametrize(
    ("attributes", "reason"),
    [
        ({"Rows": 4096}, "pixel data ends early"),  # 64 x 64 pixels stored
        ({"Columns": 4096}, "pixel data ends early"),
        ({"Rows": 0}, "empty image size"),
        ({"Rows": 1200, "Columns": 1200}, "image too large: 1200 x 1200 pixels"),  # limit 1 Mpx
        ({"BitsAllocated": 12}, "invalid bits allocated (12)"),
        ({"BitsAllocated": 32, "BitsStored": 32, "HighBit": 31}, "pixel data ends early"),
        ({"NumberOfFrames": 40}, "pixel data ends early"),
        ({"NumberOfFrames": 1_000_000}, "too many frames: 1,000,000 (limit 50)"),
        ({"NumberOfFrames": 0}, "invalid number of frames"),
        ({"SamplesPerPixel": 4}, "unsupported samples per pixel"),
    ],
    ids=lambda value: "-".join(f"{key}={item}" for key, item in value.items()) if isinstance(value, dict) else None,
)
def test_dicom_header_lying_about_its_image_is_refused(
    tight_store: Store, attributes: dict[str, int], reason: str
) -> None:
    results = ingest_with_a_good_file(tight_store, InputFile("liar.dcm", tampered_dicom(**attributes)))
    assert_rejected(results, "liar.dcm", reason)


def test_compressed_dicom_claiming_more_frames_than_it_holds_is_refused(store: Store) -> None:
    dataset = pydicom.dcmread(corpus_file("MR_small_RLE.dcm"))
    assert dataset.file_meta.TransferSyntaxUID == RLELossless
    dataset.NumberOfFrames = 8  # one RLE frame is stored
    buffer = io.BytesIO()
    dataset.save_as(buffer)
    results = ingest_with_a_good_file(store, InputFile("frames.dcm", buffer.getvalue()))
    assert_rejected(results, "frames.dcm", "cannot decode pixel data (RLE Lossless)")


def test_dicom_with_an_unknown_transfer_syntax_is_refused(store: Store) -> None:
    dataset = pydicom.dcmread(io.BytesIO(a_valid_dicom()))
    dataset.file_meta.TransferSyntaxUID = "1.2.3.4.5.6.7"
    buffer = io.BytesIO()
    dataset.save_as(buffer, enforce_file_format=False)
    results = ingest_with_a_good_file(store, InputFile("odd-syntax.dcm", buffer.getvalue()))
    assert_rejected(results, "odd-syntax.dcm", "unsupported transfer syntax 1.2.3.4.5.6.7")


def test_dicom_with_a_huge_private_element_is_refused(tight_store: Store) -> None:
    dataset = pydicom.dcmread(io.BytesIO(a_valid_dicom()))
    block = dataset.private_block(0x0099, "HOSTILE VENDOR", create=True)
    block.add_new(0x01, "OB", b"\xab" * 100_000)  # limit 4,096 bytes
    buffer = io.BytesIO()
    dataset.save_as(buffer)
    results = ingest_with_a_good_file(tight_store, InputFile("private.dcm", buffer.getvalue()))
    assert_rejected(results, "private.dcm", "DICOM element (0099,1001) is too large", "100,000 bytes")


# --- decompression bombs inside DICOM --------------------------------------------------------


@pytest.mark.parametrize("preamble", [True, False], ids=["part-10-file", "no-preamble"])
def test_deflated_dicom_that_inflates_far_past_its_size_is_refused_before_it_is_inflated(
    store: Store, preamble: bool
) -> None:
    bomb = deflated_dicom(zero_bytes=64 * 1024 * 1024)  # 64 MiB of zeros behind a 16 x 16 header
    bomb = bomb if preamble else bomb[128 + 4 :]  # a legacy file starting with its file meta elements
    assert len(bomb) < 100_000
    results = ingest_with_a_good_file(store, InputFile("deflated-bomb.dcm", bomb))
    assert_rejected(
        results, "deflated-bomb.dcm", "suspicious compression", "more than 200 times", "possible decompression bomb"
    )


def test_deflated_bomb_stored_before_ingest_refused_it_is_not_inflated_at_display() -> None:
    # A store may hold one from an earlier release: each display inflated it again.
    with pytest.raises(ImagingError, match="suspicious compression"):
        decode_dicom(deflated_dicom(zero_bytes=64 * 1024 * 1024))


@pytest.mark.slow
def test_deflated_dicom_past_the_file_limit_once_inflated_is_refused(tight_store: Store) -> None:
    # Two-bit noise deflates about 4:1, well under the ratio limit (50 here), and 6 MiB of it inflate
    # past the 4 MiB file limit: the same limit an uncompressed upload of it would meet.
    noise = np.random.default_rng(7).integers(0, 4, 6 * 1024 * 1024, dtype=np.uint8).tobytes()
    big = deflated_dicom(pixel_data=noise, rows=2048, columns=3072)
    assert len(big) < 4 * 1024 * 1024
    results = ingest_with_a_good_file(tight_store, InputFile("big-deflated.dcm", big))
    assert_rejected(results, "big-deflated.dcm", "too large once inflated", "limit 4,194,304")


def test_deflated_dicom_with_pixel_data_longer_than_its_header_is_refused(store: Store) -> None:
    # Under 1 MiB inflated, so not judged on compression ratio: refused because nothing decodes the rest.
    results = ingest_with_a_good_file(store, InputFile("long.dcm", deflated_dicom(zero_bytes=512 * 1024)))
    assert_rejected(results, "long.dcm", "pixel data longer than its header says", "of 16 x 16 take 256")


def test_deflated_dicom_cut_short_is_refused_with_a_plain_reason(store: Store) -> None:
    cut = deflated_dicom(pixel_data=bytes(range(256)))[:-40]
    results = ingest_with_a_good_file(store, InputFile("cut-deflated.dcm", cut))
    assert_rejected(results, "cut-deflated.dcm", "truncated or damaged DICOM: its deflated data ends early")


def test_deflated_dicom_is_stored_and_decodes_from_the_store(store: Store) -> None:
    pixels = (np.arange(64 * 64, dtype=np.uint16).reshape(64, 64) * 7 % 4096).astype(np.uint16)
    dataset = pydicom.dcmread(io.BytesIO(dicom_bytes("DEFLATED", pixels=pixels)))
    dataset.file_meta.TransferSyntaxUID = DeflatedExplicitVRLittleEndian
    buffer = io.BytesIO()
    dataset.save_as(buffer, enforce_file_format=True)
    [result] = ingest_files(store, LOCAL_ACTOR, [InputFile("deflated.dcm", buffer.getvalue())])
    assert result.status == "stored", result.reason
    with store.db.read() as session:
        stored = session.get(Image, result.image_id)
        assert stored is not None
        path = store.blobs.path_for(stored.sha256)
    decoded = decode_file(path, "dicom")  # inflated again, within the limits
    assert np.array_equal(decoded.frames[0], pixels.astype(np.float32) - 1024)  # CT: intercept -1024


@pytest.mark.parametrize(("trailer_bytes", "stored"), [(128, True), (64 * 1024, False)], ids=["padding", "payload"])
def test_native_pixel_data_may_carry_padding_but_not_a_payload(store: Store, trailer_bytes: int, stored: bool) -> None:
    dataset = pydicom.dcmread(io.BytesIO(a_valid_dicom("TRAILER")))
    dataset.PixelData = dataset.PixelData + b"\xab" * trailer_bytes  # 64 x 64 x 2 bytes = 8,192 expected
    buffer = io.BytesIO()
    dataset.save_as(buffer)
    results = ingest_files(store, LOCAL_ACTOR, [InputFile("trailer.dcm", buffer.getvalue())])
    assert [result.status for result in results] == ["stored" if stored else "rejected"]
    if not stored:
        assert "pixel data longer than its header says: 73,728 bytes" in results[0].reason


def test_jpeg_frame_that_matches_its_header_is_stored(store: Store) -> None:
    """The builder's JPEG is a real one: the bombs below are refused for their size, not their bytes."""
    [result] = ingest_files(store, LOCAL_ACTOR, [InputFile("flat.dcm", jpeg_dicom([flat_jpeg(16, 16)] * 2, 16, 16))])
    assert result.status == "stored", result.reason


@pytest.mark.parametrize(
    ("frame", "frame_count", "says"),
    [(flat_jpeg(20000, 20000), 1, "20000 x 20000"), (flat_jpeg(4096, 4096), 40, "4096 x 4096")],
    ids=["one-frame-of-400-megapixels", "40-frames-of-16-megapixels"],
)
def test_jpeg_frames_larger_than_the_dicom_header_are_refused_before_decoding(
    store: Store, frame: bytes, frame_count: int, says: str
) -> None:
    bomb = jpeg_dicom([frame] * frame_count, rows=16, columns=16)
    assert len(bomb) < 3_000_000
    results = ingest_with_a_good_file(store, InputFile("jpeg-bomb.dcm", bomb))
    assert_rejected(
        results,
        "jpeg-bomb.dcm",
        f"compressed frame 1 says it is {says} pixels with 1 component(s) where the DICOM header says 16 x 16",
        "possible decompression bomb",
    )


def _claiming_8000_by_8000(name: str) -> bytes:
    """A real JPEG 2000 / JPEG-LS corpus file whose frame header is rewritten to say 8000 x 8000."""
    dataset = pydicom.dcmread(corpus_file(name))
    frame = bytearray(next(generate_frames(dataset.PixelData, number_of_frames=1)))
    siz = frame.find(b"\xff\x4f\xff\x51")
    if siz == 0:  # JPEG 2000 SIZ: Xsiz, Ysiz after the marker, its length and Rsiz (origin 0 here)
        assert struct.unpack_from(">II", frame, 16) == (0, 0)
        frame[8:16] = struct.pack(">II", 8000, 8000)
    else:  # JPEG-LS SOF55: precision, then Y and X
        frame_header = frame.find(b"\xff\xf7")
        frame[frame_header + 5 : frame_header + 9] = struct.pack(">HH", 8000, 8000)
    dataset.PixelData = encapsulate([bytes(frame)])
    buffer = io.BytesIO()
    dataset.save_as(buffer)
    return buffer.getvalue()


@pytest.mark.parametrize("name", ["MR_small_jp2klossless.dcm", "MR_small_jpeg_ls_lossless.dcm"])
def test_jpeg_2000_and_jpeg_ls_frames_larger_than_the_header_are_refused(store: Store, name: str) -> None:
    results = ingest_with_a_good_file(store, InputFile(name, _claiming_8000_by_8000(name)))
    assert_rejected(results, name, "compressed frame 1 says it is 8000 x 8000 pixels", "header says 64 x 64")


def test_compressed_pixel_data_holding_more_frames_than_its_header_is_refused(store: Store) -> None:
    # pydicom would decode the third frame too ("excess frames") and hand back more than was counted.
    extra = jpeg_dicom([flat_jpeg(16, 16)] * 3, rows=16, columns=16, number_of_frames=2)
    results = ingest_with_a_good_file(store, InputFile("extra-frames.dcm", extra))
    assert_rejected(results, "extra-frames.dcm", "compressed pixel data holds more frames than its header's 2")


def test_progressive_jpeg_with_a_thousand_repeated_scans_is_refused(store: Store) -> None:
    # A progressive JPEG is decoded again for each scan: repeating its last one makes a small file
    # cost minutes of CPU (Pillow decodes every repetition).
    frame = repeated_scans_jpeg(1000)
    results = ingest_with_a_good_file(store, InputFile("scans.dcm", jpeg_dicom([frame], rows=64, columns=64)))
    assert_rejected(results, "scans.dcm", "compressed frame 1 has 1,0", "scans (limit 500)")


# --- things that are not images --------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "content"),
    [
        ("scan.png", b'<?xml version="1.0"?><svg xmlns="http://www.w3.org/2000/svg"><script>alert(1)</script></svg>'),
        ("scan.jpg", b"<svg onload=alert(1) xmlns='http://www.w3.org/2000/svg'></svg>"),
        ("scan.jpeg", b"<!DOCTYPE html><html><body><img src=x onerror=alert(1)></body></html>"),
        ("scan.dcm", b"<html><head><title>Not a study</title></head></html>"),
        ("notes.png", b"Patient moved during acquisition, please repeat.\n" * 4),
        ("report.dcm", b"FINDINGS: no acute abnormality.\n"),
    ],
)
def test_markup_or_text_with_an_image_name_is_refused(store: Store, name: str, content: bytes) -> None:
    results = ingest_with_a_good_file(store, InputFile(name, content))
    assert_rejected(results, name, "not a DICOM, PNG, JPEG or zip file")


def test_empty_file_is_refused(store: Store) -> None:
    results = ingest_with_a_good_file(store, InputFile("empty.dcm", b""))
    assert_rejected(results, "empty.dcm", "empty file")


def test_file_over_the_size_limit_is_refused(tight_store: Store) -> None:
    oversized = b"\0" * (4 * 1024 * 1024 + 1)
    results = ingest_with_a_good_file(tight_store, InputFile("huge.dcm", oversized))
    assert_rejected(results, "huge.dcm", "file too large")


def test_many_hostile_files_in_one_batch_are_each_refused_on_their_own(tight_store: Store) -> None:
    hostile = [
        InputFile("empty.dcm", b""),
        InputFile("page.png", b"<html></html>"),
        InputFile("liar.dcm", tampered_dicom(Rows=4096)),
        InputFile("bomb.zip", zip_bytes(("zeros.dcm", b"\0" * (2 * 1024 * 1024)))),
    ]
    results = ingest_with_a_good_file(tight_store, *hostile)
    assert [results[name].status for name in ("empty.dcm", "page.png", "liar.dcm", "bomb.zip/zeros.dcm")] == [
        "rejected"
    ] * 4
    assert all(results[name].reason for name in results if name != GOOD_NAME)
