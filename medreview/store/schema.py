"""The versioned schema: Alembic migrations in ``medreview/store/migrations``, applied at open.

Every schema change is a migration. :func:`upgrade` brings a database to the newest revision:

- an empty database gets every migration, from the first release's schema on;
- a store written by the first release (its tables, no ``alembic_version``) is stamped with the
  baseline revision and upgraded from there;
- before anything changes in an existing SQLite store, the file is copied next to itself
  (``medreview.db.before-<revision>-<time>.bak``, with SQLite's online backup, so a concurrent
  reader never sees a half-made copy).

Processes that open the store at the same time (app replicas, workers, the CLI) take turns: a
file lock beside the SQLite file, an advisory lock on PostgreSQL.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import fcntl
import sqlite3
from collections.abc import Iterator
from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Connection, Engine, inspect, text

__all__ = ["BASELINE", "current_revision", "head_revision", "upgrade"]

BASELINE = "0001_first_release"
_MIGRATIONS = Path(__file__).parent / "migrations"
# An arbitrary constant naming the PostgreSQL advisory lock that serialises upgrades ("medmig").
_LOCK_KEY = 0x6D65_646D_6967


def _config(connection: Connection | None = None) -> Config:
    config = Config()
    config.set_main_option("script_location", str(_MIGRATIONS))
    if connection is not None:
        config.attributes["connection"] = connection
    return config


def head_revision() -> str:
    return ScriptDirectory.from_config(_config()).get_current_head() or BASELINE


def current_revision(engine: Engine) -> str | None:
    """The revision the database is at; None when it has no version table (empty, or first release)."""
    with engine.connect() as connection:
        return MigrationContext.configure(connection).get_current_revision()


def upgrade(engine: Engine, sqlite_path: Path | None = None) -> str | None:
    """Bring the database to the newest revision; returns the path of the backup made, if any."""
    with _upgrade_lock(engine, sqlite_path):
        head = head_revision()
        current = current_revision(engine)
        if current == head:
            return None
        with engine.connect() as connection:
            tables = set(inspect(connection).get_table_names())
        first_release = current is None and "images" in tables
        backup = None
        if sqlite_path is not None and (current is not None or first_release):
            backup = _backup_sqlite(sqlite_path, current or "first-release")
        with engine.connect() as connection, _foreign_keys_off(connection), connection.begin():
            config = _config(connection)
            if first_release:
                command.stamp(config, BASELINE)
            command.upgrade(config, "head")
        return str(backup) if backup else None


@contextlib.contextmanager
def _foreign_keys_off(connection: Connection) -> Iterator[None]:
    """SQLite: batch migrations copy a table and drop the old one, which foreign keys pointing at
    it would refuse. The pragma works only outside a transaction, so it goes to the driver's
    connection directly (autocommit: the store emits BEGIN itself)."""
    if connection.dialect.name != "sqlite":
        yield
        return
    driver = connection.connection.driver_connection
    driver.execute("PRAGMA foreign_keys=OFF")
    try:
        yield
    finally:
        driver.execute("PRAGMA foreign_keys=ON")


@contextlib.contextmanager
def _upgrade_lock(engine: Engine, sqlite_path: Path | None) -> Iterator[None]:
    if engine.dialect.name == "postgresql":
        with engine.connect() as connection:
            connection.execute(text("SELECT pg_advisory_lock(:key)"), {"key": _LOCK_KEY})
            try:
                yield
            finally:
                connection.execute(text("SELECT pg_advisory_unlock(:key)"), {"key": _LOCK_KEY})
                connection.commit()
        return
    if sqlite_path is None:  # an in-memory database belongs to one process
        yield
        return
    lock_path = sqlite_path.with_name(sqlite_path.name + ".upgrade-lock")
    with open(lock_path, "a") as lock_file:
        fcntl.flock(lock_file, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(lock_file, fcntl.LOCK_UN)


def _backup_sqlite(path: Path, revision: str) -> Path:
    stamp = dt.datetime.now(dt.UTC).strftime("%Y%m%dT%H%M%SZ")
    target = path.with_name(f"{path.name}.before-{revision}-{stamp}.bak")
    with contextlib.closing(sqlite3.connect(path)) as source, contextlib.closing(sqlite3.connect(target)) as copy:
        source.backup(copy)
    return target
