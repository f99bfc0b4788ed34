"""The audit trail: an append-only log of who did what, and when.

Services call :func:`record` inside the write session of the change they describe, so the event
commits or rolls back with that change: there is never a logged label change that did not happen,
nor a change without its event. Events with no other write (a login, an export) go through
:func:`record_now`, which opens its own transaction.

Append-only is enforced twice. This module has no update or delete path, and the schema
migrations (medreview/store/migrations, 0001) put triggers on ``audit_events`` so the database
itself refuses UPDATE and DELETE (and TRUNCATE on PostgreSQL) from any client. The triggers stop
mistakes and ordinary clients; whoever can rewrite the SQLite file or owns the PostgreSQL schema
can still drop them.

Details are JSON and must never hold a password or secret: :func:`record` refuses any key that
names one, at any depth.
"""

from __future__ import annotations

import datetime as dt
import json
import re
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pandas as pd
from sqlalchemy import select
from sqlalchemy.orm import Session

from medreview.store.blobs import atomic_write
from medreview.store.models import AuditEvent, as_utc
from medreview.team.roles import Actor, require

if TYPE_CHECKING:
    from medreview.store import Store

__all__ = ["ACTIONS", "COLUMNS", "csv_bytes", "export_csv", "query", "record", "record_now"]

# Every action name written to the log. record() refuses others, so this list stays the complete,
# documented vocabulary that admins filter on; a new kind of event is added here first.
ACTIONS: tuple[str, ...] = (
    "login",  # a sign-in with a password
    "login.resume",  # a login session taken up again from the browser's cookie: once, or from a new client
    "login.failed",
    "login.throttled",  # an attempt refused unchecked: too soon after failed ones (medreview.team.throttle)
    "logout",
    "user.create",
    "user.role",
    "user.active",
    "user.password",
    "label.create",
    "label.change",
    "review.approve",
    "review.reject",
    "review.return",
    "review.adjudicate",
    "review.auto_accept",  # the consensus rule set a final label without a review (medreview.reading.consensus)
    "review.auto_accept_revert",  # a reviewer undid it: the reads wait for review again
    "assignment.create",
    "assignment.delete",
    "training.start",
    "model.promote",
    "evaluation_set.create",
    "evaluation_set.default",
    "evaluation.start",
    "reader_study.create",
    "reader_study.rate",  # a reader's rating of a study case (medreview.reading.studies): never changed after
    "gold.mix",  # evaluation-set cases put on readers' worklists, unannounced, as gold-standard checks
    "export",
    "audit.export",
    "settings.change",
    "label.import",
    "pseudonyms.view",
    "job.cancel",
)

COLUMNS = ("id", "created_at", "actor", "action", "object_type", "object_id", "details")

_FORBIDDEN_KEY_PARTS = ("password", "secret")
_ACTOR_MAX = 64  # AuditEvent.actor is String(64)
_OBJECT_TYPE_MAX = 32
_OBJECT_ID_MAX = 128


def _check_details(value: Any, path: str = "") -> None:
    """Refuse keys that name a password or secret, in nested dicts and lists too."""
    if isinstance(value, dict):
        for key, item in value.items():
            lowered = str(key).lower()
            if any(part in lowered for part in _FORBIDDEN_KEY_PARTS):
                raise ValueError(f"audit details must not hold passwords or secrets (key '{path}{key}')")
            _check_details(item, f"{path}{key}.")
    elif isinstance(value, list | tuple):
        for item in value:
            _check_details(item, path)


def record(
    session: Session, actor: str, action: str, object_type: str = "", object_id: str | int = "", **details: Any
) -> None:
    """Add one event to the caller's open write session; it commits or rolls back with it.

    ``actor`` is a user name (or "system"); ``object_type`` / ``object_id`` name what was acted on
    ("annotation", 42). ``details`` are JSON-serialisable keyword values, e.g. ``old=`` / ``new=``
    for a change. Bad arguments are programming errors and raise ``ValueError``.
    """
    if action not in ACTIONS:
        raise ValueError(f"unknown audit action '{action}'; add it to medreview.team.audit.ACTIONS")
    if not actor or len(actor) > _ACTOR_MAX:
        raise ValueError(f"audit actor must be 1-{_ACTOR_MAX} characters, got {actor!r}")
    object_id = str(object_id)
    if len(object_type) > _OBJECT_TYPE_MAX or len(object_id) > _OBJECT_ID_MAX:
        raise ValueError("audit object_type or object_id is too long")
    _check_details(details)
    try:
        # Round-trip so what is stored is exactly what JSON can hold (tuples become lists), and a
        # non-serialisable value fails here with a clear message rather than at flush time.
        stored = json.loads(json.dumps(details, allow_nan=False))
    except (TypeError, ValueError) as error:
        raise ValueError(f"audit details must be JSON-serialisable: {error}") from error
    session.add(AuditEvent(actor=actor, action=action, object_type=object_type, object_id=object_id, details=stored))


def record_now(
    store: Store, actor: str, action: str, object_type: str = "", object_id: str | int = "", **details: Any
) -> None:
    """Record one event in its own transaction (for events that come with no other write)."""
    with store.db.write() as session:
        record(session, actor, action, object_type, object_id, **details)


def _as_utc(moment: dt.datetime, name: str) -> dt.datetime:
    if moment.tzinfo is None:
        raise ValueError(f"{name} must be timezone-aware (UTC is stored)")
    return moment.astimezone(dt.UTC)


def query(
    store: Store,
    actor: Actor,
    action: str | Sequence[str] | None = None,
    actor_name: str | None = None,
    since: dt.datetime | None = None,
    until: dt.datetime | None = None,
    limit: int | None = 1000,
) -> pd.DataFrame:
    """Audit events, newest first (admins only).

    ``action`` is one name or several; ``since`` is inclusive and ``until`` exclusive, both
    timezone-aware. ``limit=None`` returns every match. Columns: id, created_at (UTC), actor,
    action, object_type, object_id, details (a JSON string).
    """
    require(actor, "admin", "view the audit log")
    statement = select(AuditEvent).order_by(AuditEvent.created_at.desc(), AuditEvent.id.desc())
    if action is not None:
        actions = [action] if isinstance(action, str) else list(action)
        statement = statement.where(AuditEvent.action.in_(actions))
    if actor_name is not None:
        statement = statement.where(AuditEvent.actor == actor_name)
    if since is not None:
        statement = statement.where(AuditEvent.created_at >= _as_utc(since, "since"))
    if until is not None:
        statement = statement.where(AuditEvent.created_at < _as_utc(until, "until"))
    if limit is not None:
        if limit < 1:
            raise ValueError("limit must be at least 1")
        statement = statement.limit(limit)
    with store.db.read() as session:
        events = session.scalars(statement).all()
    rows = [
        {
            "id": event.id,
            # SQLite hands back naive datetimes; every stored time is UTC.
            "created_at": as_utc(event.created_at),
            "actor": event.actor,
            "action": event.action,
            "object_type": event.object_type,
            "object_id": event.object_id,
            "details": json.dumps(event.details, sort_keys=True),
        }
        for event in events
    ]
    frame = pd.DataFrame(rows, columns=list(COLUMNS))
    frame["created_at"] = pd.to_datetime(frame["created_at"], utc=True)
    return frame


# A signed decimal number, or several separated by backslashes (a DICOM multi-value such as an
# image position "-125.0\-125.0\0"): a spreadsheet reads it as a value, and it spells no formula.
_NUMBERS = re.compile(r"[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?(\\[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?)*")


def neutralise_formula(value: str) -> str:
    """Prefix cells a spreadsheet would run as a formula (CSV injection): object ids and user
    names can come from user input, and admins open these exports in spreadsheet programs.
    Numbers (``-1024``) are left as they are: they run nothing and stay readable."""
    if value[:1] in ("=", "+", "-", "@", "\t", "\r") and not _NUMBERS.fullmatch(value):
        return "'" + value
    return value


def _csv(store: Store, actor: Actor, filters: dict[str, Any]) -> tuple[bytes, int, dict[str, Any]]:
    """The matching events as UTF-8 CSV, their number, and the filters as the audit event logs them."""
    require(actor, "admin", "export the audit log")
    filters.setdefault("limit", None)
    frame = query(store, actor, **filters)
    for column in ("actor", "action", "object_type", "object_id"):
        frame[column] = frame[column].map(neutralise_formula)
    text = frame.to_csv(index=False, date_format="%Y-%m-%dT%H:%M:%S.%f%z")
    logged_filters = {
        key: value.isoformat() if isinstance(value, dt.datetime) else value for key, value in filters.items()
    }
    return text.encode("utf-8"), len(frame), logged_filters


def csv_bytes(store: Store, actor: Actor, name: str = "audit.csv", **filters: Any) -> bytes:
    """The matching events as CSV for a download, logged as an export named ``name``; nothing is
    written to disk. ``filters`` are :func:`export_csv`'s."""
    content, rows, logged_filters = _csv(store, actor, filters)
    record_now(store, actor.username, "audit.export", "file", name, rows=rows, filters=logged_filters)
    return content


def export_csv(store: Store, actor: Actor, path: str | Path, **filters: Any) -> int:
    """Write the matching events to a CSV file and log the export; returns the number of rows.

    ``filters`` are :func:`query`'s (action, actor_name, since, until, limit); unlike the page
    view, an export has no row limit unless one is given. The file is written to a temporary
    name and renamed, so a reader never sees half a file.
    """
    content, rows, logged_filters = _csv(store, actor, filters)
    target = Path(path)
    atomic_write(target, content, sync_folder=False)
    record_now(store, actor.username, "audit.export", "file", target.name, rows=rows, filters=logged_filters)
    return rows
