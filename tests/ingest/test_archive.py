"""iter_zip_members: unpacking uploads safely (traversal, links, bombs, nesting, limits)."""

from __future__ import annotations

import io
import zipfile

import pytest

from medreview.config import IngestLimits
from medreview.errors import IngestError
from medreview.ingest.archive import ArchiveMember, is_zip, iter_zip_members

LIMITS = IngestLimits()


def make_zip(members: list[tuple[str | zipfile.ZipInfo, bytes]], compression: int = zipfile.ZIP_DEFLATED) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", compression=compression) as archive:
        for name, content in members:
            archive.writestr(name, content)
    return buffer.getvalue()


def members_by_name(data: bytes, limits: IngestLimits = LIMITS) -> dict[str, ArchiveMember]:
    return {member.name: member for member in iter_zip_members(data, limits)}


def test_yields_files_and_skips_folders_and_macos_junk() -> None:
    data = make_zip(
        [
            ("study/", b""),
            ("study/img1.dcm", b"first"),
            ("study/img2.png", b"second"),
            ("__MACOSX/study/._img1.dcm", b"resource fork"),
            ("study/.DS_Store", b"finder"),
        ]
    )
    members = list(iter_zip_members(data, LIMITS))
    assert members == [
        ArchiveMember("study/img1.dcm", b"first", None),
        ArchiveMember("study/img2.png", b"second", None),
    ]


@pytest.mark.parametrize("name", ["../evil.dcm", "study/../../evil.dcm", "/etc/x", "C:\\Windows\\x.dcm", "..\\evil"])
def test_refuses_paths_that_leave_the_archive(name: str) -> None:
    members = members_by_name(make_zip([(name, b"payload"), ("ok.dcm", b"fine")]))
    assert members[name].data is None
    assert "unsafe path" in (members[name].error or "")
    assert members["ok.dcm"].data == b"fine"  # the rest of the archive still comes through


def test_refuses_symbolic_links() -> None:
    link = zipfile.ZipInfo("passwd.dcm")
    link.external_attr = (0o120777 << 16) | 0x20  # S_IFLNK | rwxrwxrwx
    members = members_by_name(make_zip([(link, b"/etc/passwd"), ("ok.dcm", b"fine")]))
    assert members["passwd.dcm"].data is None
    assert "symbolic link" in (members["passwd.dcm"].error or "")
    assert members["ok.dcm"].data == b"fine"


def test_refuses_encrypted_members() -> None:
    data = bytearray(make_zip([("secret.dcm", b"x" * 10)], compression=zipfile.ZIP_STORED))
    # Set the "encrypted" flag bit in both the local and the central header.
    for signature, flag_offset in ((b"PK\x03\x04", 6), (b"PK\x01\x02", 8)):
        position = data.find(signature)
        data[position + flag_offset] |= 0x01
    member = next(iter_zip_members(bytes(data), LIMITS))
    assert member.data is None and "encrypted" in (member.error or "")


def test_refuses_a_zip_bomb_by_compression_ratio() -> None:
    bomb = make_zip([("zeros.dcm", b"\0" * (50 * 1024 * 1024)), ("ok.dcm", b"fine")])
    assert len(bomb) < 1024 * 1024
    members = members_by_name(bomb, IngestLimits(max_compression_ratio=100))
    assert members["zeros.dcm"].data is None
    assert "zip bomb" in (members["zeros.dcm"].error or "")
    assert members["ok.dcm"].data == b"fine"


def test_refuses_a_member_declared_larger_than_the_file_limit() -> None:
    data = make_zip([("big.dcm", bytes(range(256)) * 8192)])  # 2 MiB, barely compressible
    member = next(iter_zip_members(data, IngestLimits(max_file_bytes=1024 * 1024)))
    assert member.data is None and "file too large" in (member.error or "")


def test_a_member_whose_header_understates_its_size_is_not_inflated() -> None:
    content = b"\0" * (8 * 1024 * 1024)
    data = bytearray(make_zip([("liar.dcm", content)]))
    # Claim 1000 bytes instead of 8 MiB in both headers (local: offset 22, central: offset 24).
    for signature, size_offset in ((b"PK\x03\x04", 22), (b"PK\x01\x02", 24)):
        position = data.find(signature)
        data[position + size_offset : position + size_offset + 4] = (1000).to_bytes(4, "little")
    member = next(iter_zip_members(bytes(data), IngestLimits(max_file_bytes=4096)))
    assert member.data is None
    assert member.error is not None and "corrupt" in member.error


def test_refuses_a_member_with_a_bad_checksum() -> None:
    data = bytearray(make_zip([("scan.dcm", b"A" * 100)], compression=zipfile.ZIP_STORED))
    data[data.find(b"A" * 100) + 50] = ord("B")
    member = next(iter_zip_members(bytes(data), LIMITS))
    assert member.data is None and member.error == "corrupt archive member: checksum mismatch"


def test_refuses_nested_archives_by_name_and_by_content() -> None:
    inner = make_zip([("img.dcm", b"x")])
    members = members_by_name(make_zip([("inner.zip", inner), ("disguised.dcm", inner), ("ok.dcm", b"y")]))
    expected = "nested archive: unzip it first and upload its contents"
    assert members["inner.zip"].error == expected and members["inner.zip"].data is None
    assert members["disguised.dcm"].error == expected
    assert members["ok.dcm"].data == b"y"


def test_too_many_members_stops_the_whole_archive() -> None:
    data = make_zip([(f"img{index}.dcm", b"x") for index in range(5)])
    with pytest.raises(IngestError, match=r"too many files: 5 \(limit 4\)"):
        next(iter_zip_members(data, IngestLimits(max_archive_members=4)))
    assert len(list(iter_zip_members(data, IngestLimits(max_archive_members=5)))) == 5


def test_total_unpacked_size_stops_the_whole_archive_before_any_member() -> None:
    data = make_zip([(f"img{index}.dcm", bytes([index]) * 60_000) for index in range(3)])
    members = iter_zip_members(data, IngestLimits(max_archive_total_bytes=150_000))
    # Refused up front: no member is handed out (and stored) before the archive is found too large.
    with pytest.raises(IngestError, match="archive too large once unpacked"):
        next(members)
    assert len(list(iter_zip_members(data, IngestLimits(max_archive_total_bytes=180_000)))) == 3


def test_members_refused_from_their_headers_do_not_count_towards_the_total() -> None:
    data = make_zip([("../escape.dcm", b"x" * 100_000), ("scan.dcm", b"y" * 1000)])
    members = members_by_name(data, IngestLimits(max_archive_total_bytes=50_000))
    assert members["../escape.dcm"].data is None
    assert members["scan.dcm"].data == b"y" * 1000


def test_not_a_zip() -> None:
    assert is_zip(make_zip([("a.dcm", b"x")]))
    assert is_zip(make_zip([]))
    assert not is_zip(b"\x89PNG\r\n\x1a\n")
    with pytest.raises(IngestError, match="not a readable zip archive"):
        list(iter_zip_members(b"PK\x03\x04 then garbage", LIMITS))
    truncated = make_zip([("a.dcm", b"x" * 1000)])[:-30]
    with pytest.raises(IngestError, match="not a readable zip archive"):
        list(iter_zip_members(truncated, LIMITS))
