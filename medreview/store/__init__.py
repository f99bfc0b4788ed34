"""The store: one database (SQLAlchemy 2.0) and content-addressed files under one data dir.

Knows nothing of the domain: ``db`` (engine, sessions, dialect upserts), ``models`` (the typed
ORM), ``blobs`` (originals by SHA-256, atomic writes) and ``store`` (the :class:`Store` every
service takes first).
"""

from medreview.store.store import DEFAULT_CLASSES, LOCAL_USER, Store

__all__ = ["DEFAULT_CLASSES", "LOCAL_USER", "Store"]
