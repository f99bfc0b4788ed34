"""Content-addressed file storage: originals by SHA-256, kept byte for byte.

A blob is written before the database row that names it, to a temporary file in the target
folder, fsynced, renamed into place, and the folder fsynced (so the rename itself survives a
power cut): a crash leaves either nothing or a complete file, and once the row is committed the
file is on disk. A crash between the rename and the row's commit leaves an orphan file:
:func:`collect_orphans` removes blobs that no row names (it runs at start-up).

Many blobs at once (an upload chunk): ``put(..., sync_folder=False)`` for each, possibly from
several threads (``fsync`` releases the GIL), then :meth:`BlobStore.sync_folders` once, before
the rows are committed. That fsyncs each folder once per chunk instead of once per file.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import tempfile
import time
from collections.abc import Iterable, Iterator
from pathlib import Path

__all__ = ["BlobStore", "atomic_file", "atomic_write", "fsync_folder", "sha256_hex"]


def sha256_hex(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def fsync_folder(folder: Path) -> None:
    """Make the names in ``folder`` durable (a rename or a new file is a change to the folder).

    No-op where folders cannot be opened for fsync (Windows)."""
    try:
        descriptor = os.open(folder, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
    except (IsADirectoryError, PermissionError):  # Windows: folders cannot be opened
        return
    try:
        os.fsync(descriptor)
    finally:
        os.close(descriptor)


@contextlib.contextmanager
def atomic_file(path: Path, *, sync_folder: bool = True, exclusive: bool = False) -> Iterator[Path]:
    """The one way to write a file whole: yields a temporary path (mode 0600) in ``path``'s folder
    for the caller to write; when the block ends normally the file is fsynced and put at ``path``
    in one step, so readers see the old file or the whole new one, never half. On an error the
    temporary file is removed and ``path`` is untouched.

    ``exclusive``: put the file in place only if ``path`` does not exist yet (a hard link, which
    fails when the name is taken: of two processes racing, exactly one wins and the other gets
    :class:`FileExistsError`). With ``sync_folder`` (the default) the folder is fsynced after the
    rename as well (and its parent when the folder was just created), so the new name is durable
    when this returns. A caller writing many files may pass False and call :func:`fsync_folder`
    once per folder.
    """
    path = Path(path)
    folder = path.parent
    created_folder = not folder.is_dir()
    if created_folder:
        folder.mkdir(parents=True, exist_ok=True)
    descriptor, temp_name = tempfile.mkstemp(dir=folder, prefix=f".tmp-{path.stem}.", suffix=path.suffix)
    os.close(descriptor)
    temporary = Path(temp_name)
    try:
        yield temporary
        with open(temporary, "rb+") as handle:
            os.fsync(handle.fileno())
        if exclusive:
            os.link(temporary, path)
        else:
            os.replace(temporary, path)
    finally:
        temporary.unlink(missing_ok=True)
    if sync_folder:
        fsync_folder(folder)
        if created_folder:
            fsync_folder(folder.parent)


def _modified_before(path: Path, cutoff: float) -> bool:
    try:
        return path.stat().st_mtime < cutoff
    except FileNotFoundError:
        return False


def atomic_write(path: Path, data: bytes, *, sync_folder: bool = True) -> None:
    """Write ``data`` to ``path`` whole (see :func:`atomic_file`)."""
    with atomic_file(path, sync_folder=sync_folder) as temporary:
        temporary.write_bytes(data)


class BlobStore:
    def __init__(self, root: Path) -> None:
        self.root = root

    def path_for(self, sha256: str) -> Path:
        return self.root / sha256[:2] / sha256

    def put(self, data: bytes, sha256: str | None = None, *, sync_folder: bool = True) -> str:
        """Store ``data``; returns its SHA-256. Storing the same bytes twice is a no-op (the file
        is not rewritten). ``sync_folder=False``: the caller calls :meth:`sync_folders` later."""
        digest = sha256 or sha256_hex(data)
        path = self.path_for(digest)
        try:
            # An existing blob (an earlier upload whose row never committed, say) is made young
            # again, so the orphan sweep leaves it to the row about to name it.
            os.utime(path)
        except FileNotFoundError:
            atomic_write(path, data, sync_folder=sync_folder)
        return digest

    def sync_folders(self, sha256s: Iterable[str]) -> None:
        """Fsync, once each, the folders holding these blobs, then the root (which names the
        folders). Call it after ``put(..., sync_folder=False)`` and before committing the rows.

        It covers blobs that already existed too: another upload may have renamed one into place
        and not yet synced its folder, and our row must not become durable before that name."""
        for folder in sorted({self.path_for(digest).parent for digest in sha256s}):
            fsync_folder(folder)
        fsync_folder(self.root)

    def read(self, sha256: str) -> bytes:
        return self.path_for(sha256).read_bytes()

    def orphan_candidates(self, referenced: Iterable[str], min_age_seconds: float = 3600) -> list[Path]:
        """Blobs no row references and stale temporary files, older than ``min_age_seconds``.
        Only candidates: the caller deletes them after checking again under the blob lock (see
        :meth:`medreview.store.Store.collect_orphans`)."""
        keep = set(referenced)
        if not self.root.exists():
            return []
        cutoff = time.time() - min_age_seconds
        return [
            path
            for path in self.root.glob("*/*")
            if (path.name.startswith(".tmp-") or path.name not in keep) and _modified_before(path, cutoff)
        ]
