"""Content-addressed file storage: originals by SHA-256, kept byte for byte.

A blob is written before the database row that names it, to a temporary file in the target
folder, fsynced and renamed into place, so a crash leaves either nothing or a complete file.
A crash between the rename and the row's commit leaves an orphan file: :func:`collect_orphans`
removes blobs that no row names (it runs at start-up).
"""

from __future__ import annotations

import hashlib
import os
import tempfile
import time
from collections.abc import Iterable
from pathlib import Path

__all__ = ["BlobStore", "atomic_write", "sha256_hex"]


def sha256_hex(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def atomic_write(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` so readers see the old file or the whole new one, never half."""
    path.parent.mkdir(parents=True, exist_ok=True)
    descriptor, temp_name = tempfile.mkstemp(dir=path.parent, prefix=".tmp-", suffix=path.suffix)
    try:
        with os.fdopen(descriptor, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(temp_name, path)
    except BaseException:
        Path(temp_name).unlink(missing_ok=True)
        raise


class BlobStore:
    def __init__(self, root: Path) -> None:
        self.root = root

    def path_for(self, sha256: str) -> Path:
        return self.root / sha256[:2] / sha256

    def put(self, data: bytes, sha256: str | None = None) -> str:
        """Store ``data``; returns its SHA-256. Storing the same bytes twice is a no-op."""
        digest = sha256 or sha256_hex(data)
        path = self.path_for(digest)
        if not path.exists():
            atomic_write(path, data)
        return digest

    def read(self, sha256: str) -> bytes:
        return self.path_for(sha256).read_bytes()

    def delete(self, sha256: str) -> None:
        self.path_for(sha256).unlink(missing_ok=True)

    def collect_orphans(self, referenced: Iterable[str], min_age_seconds: float = 3600) -> int:
        """Delete blobs no row references (older than ``min_age_seconds``, so a write in flight
        in another process is left alone); also stale temp files. Returns how many went."""
        keep = set(referenced)
        removed = 0
        if not self.root.exists():
            return 0
        cutoff = time.time() - min_age_seconds
        for path in self.root.glob("*/*"):
            if path.stat().st_mtime > cutoff:
                continue
            if path.name.startswith(".tmp-") or path.name not in keep:
                path.unlink(missing_ok=True)
                removed += 1
        return removed
