"""Settings read from the environment.

``MEDREVIEW_DATA_DIR``      storage root (default ``./data``): originals, models, caches, queue.
``MEDREVIEW_DATABASE_URL``  SQLAlchemy URL (default ``sqlite:///<data dir>/medreview.db``).
``MEDREVIEW_REDIS_URL``     when set, background jobs go through Redis instead of SQLite.

Ingest limits (see :class:`IngestLimits`; unset or empty keeps the default):

``MEDREVIEW_MAX_FILE_BYTES``            one file, extracted archive member or inflated DICOM object, bytes
``MEDREVIEW_MAX_FRAME_PIXELS``          pixels (rows * columns) in one decoded frame
``MEDREVIEW_MAX_DECODED_BYTES``         decoded pixel data of one object, all frames, bytes
``MEDREVIEW_MAX_FRAMES``                frames in one object
``MEDREVIEW_MAX_ARCHIVE_MEMBERS``       members in one zip archive
``MEDREVIEW_MAX_ARCHIVE_TOTAL_BYTES``   uncompressed size of one zip archive, bytes
``MEDREVIEW_MAX_COMPRESSION_RATIO``     uncompressed / compressed size of one zip member or deflated
                                        DICOM object (a float; outputs under 1 MiB are not judged)
``MEDREVIEW_MAX_ELEMENT_BYTES``         one non-pixel DICOM element, bytes

A value that is not a number raises ``ValueError`` naming the variable.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

__all__ = ["COMPRESSION_RATIO_MIN_BYTES", "IngestLimits", "Settings", "get_settings"]

# Unpacked sizes up to this are not judged on compression ratio (IngestLimits.max_unpacked_bytes).
COMPRESSION_RATIO_MIN_BYTES = 1024 * 1024


@dataclass(frozen=True)
class IngestLimits:
    """Upper bounds that keep hostile or broken uploads from exhausting the machine."""

    # One uploaded file (or one archive member once extracted), bytes.
    max_file_bytes: int = 512 * 1024 * 1024
    # Pixels in one decoded frame (rows * columns); Pillow's own bomb guard is ~89 Mpx.
    max_frame_pixels: int = 64 * 1024 * 1024
    # Bytes of decoded pixel data for a whole object (all frames), guards lying headers.
    max_decoded_bytes: int = 2 * 1024 * 1024 * 1024
    max_frames: int = 5000
    # Zip archives: member count, total uncompressed size, and per-member compression ratio (which
    # also bounds a deflated DICOM object: see ``max_unpacked_bytes``).
    max_archive_members: int = 20000
    max_archive_total_bytes: int = 4 * 1024 * 1024 * 1024
    max_compression_ratio: float = 200.0
    # A single non-pixel DICOM element (e.g. a private blob), bytes.
    max_element_bytes: int = 16 * 1024 * 1024

    def max_unpacked_bytes(self, compressed_bytes: int) -> int:
        """The most that ``compressed_bytes`` may unpack to under ``max_compression_ratio``.

        Up to ``COMPRESSION_RATIO_MIN_BYTES`` always passes: a small file of zeros is harmless (and a
        blank image compresses a thousand times).
        """
        return max(COMPRESSION_RATIO_MIN_BYTES, int(max(compressed_bytes, 0) * self.max_compression_ratio))


def _int_env(name: str, default: int) -> int:
    raw = os.environ.get(name)
    if not raw:
        return default
    try:
        return int(raw)
    except ValueError:
        raise ValueError(f"{name} must be a whole number, not {raw!r}") from None


def _float_env(name: str, default: float) -> float:
    raw = os.environ.get(name)
    if not raw:
        return default
    try:
        return float(raw)
    except ValueError:
        raise ValueError(f"{name} must be a number, not {raw!r}") from None


@dataclass(frozen=True)
class Settings:
    data_dir: Path
    database_url: str
    redis_url: str | None = None
    limits: IngestLimits = field(default_factory=IngestLimits)
    # Decoded pixels the app process keeps in memory for reading (one CT series can be 500 MB).
    decoded_cache_bytes: int = 1024 * 1024 * 1024

    @property
    def objects_dir(self) -> Path:
        """Originals, content-addressed by SHA-256."""
        return self.data_dir / "objects"

    @property
    def models_dir(self) -> Path:
        return self.data_dir / "models"

    @property
    def cache_dir(self) -> Path:
        """Derived files (Grad-CAM maps, thumbnails) that can be rebuilt."""
        return self.data_dir / "cache"

    @property
    def queue_path(self) -> Path:
        return self.data_dir / "queue.db"


def get_settings() -> Settings:
    """Read settings from the environment; cheap, so call it where needed."""
    data_dir = Path(os.environ.get("MEDREVIEW_DATA_DIR") or "data").resolve()
    database_url = os.environ.get("MEDREVIEW_DATABASE_URL") or f"sqlite:///{data_dir / 'medreview.db'}"
    limits = IngestLimits(
        max_file_bytes=_int_env("MEDREVIEW_MAX_FILE_BYTES", IngestLimits.max_file_bytes),
        max_frame_pixels=_int_env("MEDREVIEW_MAX_FRAME_PIXELS", IngestLimits.max_frame_pixels),
        max_decoded_bytes=_int_env("MEDREVIEW_MAX_DECODED_BYTES", IngestLimits.max_decoded_bytes),
        max_frames=_int_env("MEDREVIEW_MAX_FRAMES", IngestLimits.max_frames),
        max_archive_members=_int_env("MEDREVIEW_MAX_ARCHIVE_MEMBERS", IngestLimits.max_archive_members),
        max_archive_total_bytes=_int_env("MEDREVIEW_MAX_ARCHIVE_TOTAL_BYTES", IngestLimits.max_archive_total_bytes),
        max_compression_ratio=_float_env("MEDREVIEW_MAX_COMPRESSION_RATIO", IngestLimits.max_compression_ratio),
        max_element_bytes=_int_env("MEDREVIEW_MAX_ELEMENT_BYTES", IngestLimits.max_element_bytes),
    )
    return Settings(
        data_dir=data_dir,
        database_url=database_url,
        redis_url=os.environ.get("MEDREVIEW_REDIS_URL") or None,
        limits=limits,
        decoded_cache_bytes=_int_env("MEDREVIEW_DECODED_CACHE_BYTES", Settings.decoded_cache_bytes),
    )
