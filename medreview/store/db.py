"""Engine and sessions.

SQLite is the embedded default and needs care to be safe under concurrent writers (Streamlit
sessions are threads; the worker is another process):

- WAL journal so readers never block the writer, and ``busy_timeout`` so a writer waits for the
  lock instead of failing with "database is locked".
- ``synchronous=FULL``: every commit syncs the WAL to disk before it returns, so a read the
  viewer was told is saved survives a power cut, not only a crash of the app. (With WAL,
  ``NORMAL`` syncs only at checkpoints: the last commits before a power loss may roll back.)
  ``bench/read_commit.py`` measures what it costs per saved read.
- pysqlite's own transaction handling is switched off and we emit ``BEGIN`` ourselves: write
  sessions start with ``BEGIN IMMEDIATE``, which takes the write lock up front. With the default
  deferred BEGIN two read-modify-write transactions can both read, and one loses its update (or
  fails with a lock upgrade error that busy_timeout cannot retry).

On PostgreSQL the same ``write()`` session is a normal transaction; code that reads then writes
uses unique constraints or ``SELECT ... FOR UPDATE`` so it is correct there too.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from sqlalchemy import Engine, create_engine, event
from sqlalchemy.orm import Session, sessionmaker

__all__ = ["Database", "insert_missing", "upsert"]

_IMMEDIATE = "medreview_begin_immediate"


class Database:
    def __init__(self, url: str) -> None:
        self.url = url
        self.is_sqlite = url.startswith("sqlite")
        if self.is_sqlite:
            self.engine: Engine = create_engine(
                url, connect_args={"timeout": 30, "check_same_thread": False}, pool_pre_ping=False
            )
            _configure_sqlite(self.engine)
        else:
            self.engine = create_engine(url, pool_pre_ping=True, pool_size=5, max_overflow=10)
        self._read_sessions = sessionmaker(self.engine, expire_on_commit=False)
        self._write_sessions = sessionmaker(self.engine.execution_options(**{_IMMEDIATE: True}), expire_on_commit=False)

    @contextmanager
    def read(self) -> Iterator[Session]:
        """A session for reads; rolled back at the end."""
        with self._read_sessions() as session:
            yield session

    @contextmanager
    def write(self) -> Iterator[Session]:
        """A write transaction: committed when the block ends, rolled back on any exception."""
        with self._write_sessions() as session, session.begin():
            yield session

    @property
    def sqlite_path(self) -> Path | None:
        """The SQLite file; None for PostgreSQL and in-memory SQLite."""
        database = self.engine.url.database if self.is_sqlite else None
        return Path(database) if database and database != ":memory:" else None

    def dispose(self) -> None:
        self.engine.dispose()


def _configure_sqlite(engine: Engine) -> None:
    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection, _record) -> None:  # type: ignore[no-untyped-def]
        # Let SQLAlchemy's "begin" event below issue BEGIN; pysqlite would otherwise start
        # deferred transactions implicitly.
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA busy_timeout=30000")
        cursor.execute("PRAGMA foreign_keys=ON")
        # A per-connection setting, never stored in the file: every connection must set it.
        cursor.execute("PRAGMA synchronous=FULL")
        cursor.close()

    @event.listens_for(engine, "begin")
    def _on_begin(connection) -> None:  # type: ignore[no-untyped-def]
        immediate = connection.get_execution_options().get(_IMMEDIATE, False)
        connection.exec_driver_sql("BEGIN IMMEDIATE" if immediate else "BEGIN")


def _dialect_insert(session: Session):  # type: ignore[no-untyped-def]
    dialect = session.get_bind().dialect.name
    if dialect == "postgresql":
        from sqlalchemy.dialects.postgresql import insert
    elif dialect == "sqlite":
        from sqlalchemy.dialects.sqlite import insert
    else:
        raise NotImplementedError(f"upsert is not implemented for {dialect}")
    return insert


def insert_missing(session: Session, model: type, rows: list[dict[str, object]], conflict_columns: list[str]) -> None:
    """INSERT ... ON CONFLICT (conflict_columns) DO NOTHING for several rows in one statement."""
    if rows:
        insert = _dialect_insert(session)
        session.execute(insert(model).values(rows).on_conflict_do_nothing(index_elements=conflict_columns))


def upsert(
    session: Session, model: type, values: dict[str, object], conflict_columns: list[str], update_columns: list[str]
) -> None:
    """INSERT ... ON CONFLICT (conflict_columns) DO UPDATE SET update_columns, on SQLite and
    PostgreSQL alike. Unlike select-then-insert, this cannot race with a concurrent insert of
    the same key (a row lock cannot cover a row that does not exist yet)."""
    insert = _dialect_insert(session)
    statement = insert(model).values(**values)
    statement = statement.on_conflict_do_update(
        index_elements=conflict_columns, set_={column: statement.excluded[column] for column in update_columns}
    )
    session.execute(statement)
