"""The store: database + content-addressed files under one data dir.

Every service takes a :class:`Store` as its first argument. ``Store.open()`` reads settings from
the environment, creates the schema on first use and seeds a fresh project (default label
schema, the local user).
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy import select, text
from sqlalchemy.orm import Session

from medreview.config import Settings, get_settings
from medreview.store import schema
from medreview.store.blobs import BlobStore
from medreview.store.db import Database
from medreview.store.models import Image, LabelClass, ModelVersion, Prediction, Setting, User

__all__ = ["DEFAULT_CLASSES", "LOCAL_USER", "Store"]

DEFAULT_CLASSES = ("normal", "pneumonia")
# Until accounts exist every read is made by this user.
LOCAL_USER = "local"
# An arbitrary constant naming the PostgreSQL advisory lock of the blob sweep ("medblb").
_BLOB_LOCK_KEY = 0x6D65_6462_6C62


@dataclass
class Store:
    settings: Settings
    db: Database
    blobs: BlobStore

    @classmethod
    def open(cls, settings: Settings | None = None) -> Store:
        settings = settings or get_settings()
        settings.data_dir.mkdir(parents=True, exist_ok=True)
        store = cls(settings=settings, db=Database(settings.database_url), blobs=BlobStore(settings.objects_dir))
        # Creates the schema on first use, upgrades an older store (after a backup copy).
        schema.upgrade(store.db.engine, store.db.sqlite_path)
        store._seed()
        return store

    def _seed(self) -> None:
        with self.db.write() as session:
            if session.scalar(select(Setting).where(Setting.key == "initialised")) is not None:
                return
            for position, name in enumerate(DEFAULT_CLASSES):
                session.add(LabelClass(name=name, position=position))
            session.add(User(username=LOCAL_USER, role="admin"))
            session.add(Setting(key="initialised", value=True))

    def data_path(self, relative: str) -> Path:
        """Resolve a path stored relative to the data dir (model files, cache files)."""
        return self.settings.data_dir / relative

    def collect_orphans(self, min_age_seconds: float = 3600) -> int:
        """Remove files no row names, left by a crash between writing a file and committing its
        row: originals, Grad-CAM maps, model files (and their temporary files). Only files older
        than ``min_age_seconds``, so a write in flight in another process is left alone."""
        with self.db.read() as session:
            referenced = session.scalars(select(Image.sha256)).all()
            kept = set(session.scalars(select(Prediction.heatmap_path)))
            kept |= set(session.scalars(select(ModelVersion.path)))
        candidates = self.blobs.orphan_candidates(referenced, min_age_seconds)
        removed = 0
        if candidates:
            # Delete under the blob lock, after looking again: an upload committing a row for one
            # of these files checks, under the same lock, that its file is still there (see
            # lock_blobs), so no row is ever committed whose file the sweep removed.
            cutoff = time.time() - min_age_seconds
            with self.db.write() as session:
                self.lock_blobs(session, exclusive=True)
                names = [path.name for path in candidates]
                still_referenced = set(session.scalars(select(Image.sha256).where(Image.sha256.in_(names))))
                for path in candidates:
                    if path.name in still_referenced:
                        continue
                    try:
                        if path.stat().st_mtime < cutoff:  # not touched by an upload meanwhile
                            path.unlink()
                            removed += 1
                    except FileNotFoundError:
                        pass
        cutoff = time.time() - min_age_seconds
        for folder, pattern in ((self.settings.cache_dir / "gradcam", "*.npy"), (self.settings.models_dir, "*.keras")):
            for path in folder.glob(pattern) if folder.exists() else ():
                if str(path.relative_to(self.settings.data_dir)) not in kept and path.stat().st_mtime < cutoff:
                    path.unlink(missing_ok=True)
                    removed += 1
        return removed

    def lock_blobs(self, session: Session, exclusive: bool = False) -> None:
        """Take the lock that orders the orphan sweep (exclusive) against uploads committing rows
        for their blobs (shared), for the rest of ``session``'s transaction. On SQLite every write
        transaction already holds the one write lock (BEGIN IMMEDIATE); PostgreSQL takes an
        advisory transaction lock."""
        if self.db.engine.dialect.name == "postgresql":
            function = "pg_advisory_xact_lock" if exclusive else "pg_advisory_xact_lock_shared"
            session.execute(text(f"SELECT {function}(:key)"), {"key": _BLOB_LOCK_KEY})

    def close(self) -> None:
        self.db.dispose()
