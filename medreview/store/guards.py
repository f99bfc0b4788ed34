"""Database-side guards on tables whose rows must never change.

``audit_events`` is append-only (see :mod:`medreview.team.audit`): triggers refuse UPDATE and
DELETE (and TRUNCATE on PostgreSQL) from any client. The triggers stop mistakes and ordinary
clients; whoever can rewrite the SQLite file or owns the PostgreSQL schema can still drop them.
They are schema, so the store installs them, knowing only the table's name.
"""

from __future__ import annotations

from sqlalchemy import Engine, text

__all__ = ["install_guards"]

_APPEND_ONLY_MESSAGE = "audit_events is append-only"

_SQLITE_GUARDS = (
    "DROP TRIGGER IF EXISTS audit_events_no_update",
    "DROP TRIGGER IF EXISTS audit_events_no_delete",
    "CREATE TRIGGER audit_events_no_update BEFORE UPDATE ON audit_events "
    f"BEGIN SELECT RAISE(ABORT, '{_APPEND_ONLY_MESSAGE}'); END",
    "CREATE TRIGGER audit_events_no_delete BEFORE DELETE ON audit_events "
    f"BEGIN SELECT RAISE(ABORT, '{_APPEND_ONLY_MESSAGE}'); END",
)

# An arbitrary constant naming the advisory lock that serialises guard installation: app replicas
# and workers open the store at the same time, and concurrent CREATE OR REPLACE FUNCTION on one
# function fails with "tuple concurrently updated".
_GUARD_LOCK_KEY = 0x6D65_6461_7564  # "medaud"

_POSTGRES_GUARDS = (
    f"SELECT pg_advisory_xact_lock({_GUARD_LOCK_KEY})",
    "CREATE OR REPLACE FUNCTION audit_events_append_only() RETURNS trigger LANGUAGE plpgsql AS $$ "
    f"BEGIN RAISE EXCEPTION '{_APPEND_ONLY_MESSAGE}'; END; $$",
    "DROP TRIGGER IF EXISTS audit_events_no_change ON audit_events",
    "CREATE TRIGGER audit_events_no_change BEFORE UPDATE OR DELETE ON audit_events "
    "FOR EACH ROW EXECUTE FUNCTION audit_events_append_only()",
    "DROP TRIGGER IF EXISTS audit_events_no_truncate ON audit_events",
    "CREATE TRIGGER audit_events_no_truncate BEFORE TRUNCATE ON audit_events "
    "FOR EACH STATEMENT EXECUTE FUNCTION audit_events_append_only()",
)


def install_guards(engine: Engine) -> None:
    """Make ``audit_events`` append-only in the database itself (idempotent; call after
    ``create_all``). Drop-and-create in one transaction, so a changed definition replaces the
    old one and no moment exists without a guard."""
    dialect = engine.dialect.name
    if dialect == "sqlite":
        statements = _SQLITE_GUARDS
    elif dialect == "postgresql":
        statements = _POSTGRES_GUARDS
    else:
        raise NotImplementedError(f"audit guards are not implemented for {dialect}")
    with engine.begin() as connection:
        for statement in statements:
            connection.execute(text(statement))
