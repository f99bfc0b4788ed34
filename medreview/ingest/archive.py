"""Unpack an uploaded zip archive safely, one member at a time.

A zip is the usual way a study leaves a PACS or a CD, and also the usual way to deliver a zip bomb.
:func:`iter_zip_members` never writes to disk and never trusts a member's header: each member is
read with a hard cap, so one that claims to be small but inflates without end is cut off at the limit.

Refusals come in two sizes:

- one member (unsafe path, link, encrypted, too large, suspicious compression, corrupt, nested
  archive): yielded as an :class:`ArchiveMember` with ``data=None`` and a plain ``error``; the rest
  of the archive is still read;
- the whole archive (not a zip, too many members, too many bytes in total): ``IngestError``, raised
  before any member is yielded, so a refused archive never leaves some of its files stored. The byte
  total is the sum of the sizes the members declare; that bound holds because a member is never read
  past its declared size (``zipfile`` reports a member that inflates beyond it as corrupt).
"""

from __future__ import annotations

import io
import re
import stat
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass

from medreview.config import IngestLimits
from medreview.errors import IngestError

__all__ = ["ArchiveMember", "is_zip", "iter_zip_members"]

_LOCAL_HEADER_MAGIC = b"PK\x03\x04"
_EMPTY_ARCHIVE_MAGIC = b"PK\x05\x06"
_READ_CHUNK_BYTES = 1024 * 1024
_DRIVE_LETTER = re.compile(r"^[A-Za-z]:")
# Files that archive tools add on their own; skipped without a word.
_JUNK_DIRECTORIES = frozenset({"__MACOSX"})
_JUNK_FILES = frozenset({".DS_Store", "Thumbs.db", "desktop.ini"})
# The index file of a DICOM CD / export: it describes the images but holds none.
_INDEX_FILES = frozenset({"DICOMDIR"})
_ZIP_FLAG_ENCRYPTED = 0x1


@dataclass(frozen=True)
class ArchiveMember:
    """One file inside an archive: its bytes, or the reason it was refused."""

    name: str  # path inside the archive, as written
    data: bytes | None  # None when refused
    error: str | None  # plain reason when refused


def is_zip(data: bytes) -> bool:
    """True when the bytes start like a zip archive (a local file header, or an empty archive)."""
    return data[:4] in (_LOCAL_HEADER_MAGIC, _EMPTY_ARCHIVE_MAGIC)


def iter_zip_members(data: bytes, limits: IngestLimits) -> Iterator[ArchiveMember]:
    """Yield each file of the zip archive in ``data``, refusing unsafe members one by one.

    Directories, macOS resource files (``__MACOSX/``, ``._*``, ``.DS_Store``), Windows thumbnails and
    a DICOMDIR index are skipped silently. Raises ``IngestError`` for an unreadable archive, more than
    ``limits.max_archive_members`` members, or more than ``limits.max_archive_total_bytes`` extracted.
    """
    try:
        archive = zipfile.ZipFile(io.BytesIO(data))
    except (zipfile.BadZipFile, zipfile.LargeZipFile, OSError, ValueError, EOFError) as error:
        raise IngestError(f"not a readable zip archive ({error})") from error
    except Exception as error:  # zipfile raises assorted errors on hostile central directories
        raise IngestError(f"not a readable zip archive ({type(error).__name__})") from error

    with archive:
        members = archive.infolist()
        if len(members) > limits.max_archive_members:
            raise IngestError(
                f"archive has too many files: {len(members):,} (limit {limits.max_archive_members:,}); "
                "split it into smaller archives"
            )
        refusals = {id(info): _header_refusal(info, limits) for info in members if not _is_skipped(info)}
        declared_bytes = sum(info.file_size for info in members if id(info) in refusals and refusals[id(info)] is None)
        if declared_bytes > limits.max_archive_total_bytes:
            raise _archive_too_large(limits)
        total_bytes = 0
        for info in members:
            if id(info) not in refusals:
                continue
            error = refusals[id(info)]
            if error is None:
                remaining_budget = limits.max_archive_total_bytes - total_bytes
                try:
                    content = _read_capped(archive, info, limits.max_file_bytes, remaining_budget)
                except _MemberRefused as refusal:
                    error = str(refusal)
                except _BudgetExceeded:  # only if a member inflates past its declared size unnoticed
                    raise _archive_too_large(limits) from None
                else:
                    total_bytes += len(content)
                    if is_zip(content):
                        error = _NESTED_ARCHIVE
            if error is not None:
                yield ArchiveMember(info.filename, None, error)
            else:
                yield ArchiveMember(info.filename, content, None)


def _archive_too_large(limits: IngestLimits) -> IngestError:
    return IngestError(
        f"archive too large once unpacked: more than {limits.max_archive_total_bytes:,} bytes in total; "
        "split it into smaller archives"
    )


class _MemberRefused(Exception):
    """One member cannot be used; the message is the plain reason."""


class _BudgetExceeded(Exception):
    """The archive as a whole unpacks to more than ``max_archive_total_bytes``."""


_NESTED_ARCHIVE = "nested archive: unzip it first and upload its contents"


def _path_parts(name: str) -> list[str]:
    return [part for part in re.split(r"[\\/]", name) if part]


def _is_skipped(info: zipfile.ZipInfo) -> bool:
    if info.is_dir() or info.filename.endswith(("/", "\\")):
        return True
    parts = _path_parts(info.filename)
    if not parts:
        return True
    if any(part in _JUNK_DIRECTORIES for part in parts[:-1]):
        return True
    base_name = parts[-1]
    return base_name in _JUNK_FILES or base_name.startswith("._") or base_name.upper() in _INDEX_FILES


def _header_refusal(info: zipfile.ZipInfo, limits: IngestLimits) -> str | None:
    """Reason to refuse a member from its header alone, before reading a byte of it."""
    name = info.filename
    if name.startswith(("/", "\\")) or _DRIVE_LETTER.match(name):
        return "unsafe path in archive: absolute paths are not allowed"
    if ".." in _path_parts(name):
        return "unsafe path in archive: '..' would point outside the archive"
    if stat.S_ISLNK(info.external_attr >> 16):
        return "symbolic link in archive: links are not followed"
    if info.flag_bits & _ZIP_FLAG_ENCRYPTED:
        return "encrypted (password-protected) archive member: remove the password and upload again"
    if name.lower().endswith(".zip"):
        return _NESTED_ARCHIVE
    if info.file_size > limits.max_file_bytes:
        return f"file too large: {info.file_size:,} bytes unpacked (limit {limits.max_file_bytes:,})"
    if info.file_size > limits.max_unpacked_bytes(info.compress_size):
        return (
            f"suspicious compression: {info.compress_size:,} bytes unpack to {info.file_size:,} "
            f"(more than {limits.max_compression_ratio:g} times); refusing a possible zip bomb"
        )
    return None


def _read_capped(archive: zipfile.ZipFile, info: zipfile.ZipInfo, member_cap: int, budget: int) -> bytes:
    """Read one member in chunks, never holding more than ``min(member_cap, budget) + 1`` bytes.

    Raises ``_MemberRefused`` for this member, ``_BudgetExceeded`` when the archive-wide budget runs out.
    """
    cap = min(member_cap, budget)
    chunks: list[bytes] = []
    read_bytes = 0
    try:
        with archive.open(info) as member:
            while read_bytes <= cap:
                chunk = member.read(min(_READ_CHUNK_BYTES, cap + 1 - read_bytes))
                if not chunk:
                    break
                chunks.append(chunk)
                read_bytes += len(chunk)
    except zipfile.BadZipFile as error:
        if "CRC" in str(error):
            raise _MemberRefused("corrupt archive member: checksum mismatch") from error
        raise _MemberRefused("corrupt archive member: its data cannot be read") from error
    except NotImplementedError as error:
        raise _MemberRefused("archive member uses a compression method that is not supported; re-zip it") from error
    except RuntimeError as error:  # zipfile's wording for encrypted data without a password
        raise _MemberRefused("encrypted archive member: remove the password and upload again") from error
    except Exception as error:  # zlib.error, EOFError, struct.error, ... on damaged data
        raise _MemberRefused("corrupt archive member: its data cannot be read") from error
    if read_bytes > member_cap:
        # The header passed the size check, so the member inflates beyond what it declared.
        raise _MemberRefused(
            f"file too large once unpacked: more than {member_cap:,} bytes "
            f"(its header claimed {info.file_size:,}); refusing a possible zip bomb"
        )
    if read_bytes > budget:
        raise _BudgetExceeded
    return b"".join(chunks)
