"""The audit trail: who did what and when, filtered and exported by admins, append-only in the
database itself on SQLite and PostgreSQL."""

from __future__ import annotations

import csv
import datetime as dt
import json

import argon2
import pytest
from sqlalchemy import func, select, text
from sqlalchemy.exc import DatabaseError

from medreview.errors import MedreviewError, PermissionDeniedError
from medreview.store.models import AuditEvent
from medreview.team import accounts, audit
from medreview.team.roles import SYSTEM, Actor

PASSWORD = "correct horse battery"


@pytest.fixture(autouse=True)
def fast_hashing(monkeypatch: pytest.MonkeyPatch) -> None:
    # argon2-cffi's secure defaults cost ~150 ms a hash; the audit does not depend on the cost.
    monkeypatch.setattr(accounts, "_hasher", argon2.PasswordHasher(time_cost=1, memory_cost=8192, parallelism=1))


def _all_events(store) -> list[AuditEvent]:
    with store.db.read() as session:
        return list(session.scalars(select(AuditEvent).order_by(AuditEvent.id)))


def _count(store) -> int:
    with store.db.read() as session:
        return session.scalar(select(func.count(AuditEvent.id)))


# --- what is recorded -----------------------------------------------------------------------------


def test_account_actions_are_recorded_with_who_when_and_details(any_store):
    before = dt.datetime.now(dt.UTC)
    admin = accounts.create_first_admin(any_store, "ada", PASSWORD)
    accounts.create_user(any_store, admin, "ann", PASSWORD, "annotator")
    accounts.set_role(any_store, admin, "ann", "reviewer")
    accounts.set_active(any_store, admin, "ann", False)
    accounts.set_active(any_store, admin, "ann", True)
    accounts.change_password(any_store, admin, "ann", "a new password here")
    ann = accounts.authenticate(any_store, "ann", "a new password here")
    accounts.logout(any_store, ann)
    after = dt.datetime.now(dt.UTC)

    frame = audit.query(any_store, admin)
    rows = list(frame.sort_values("id").itertuples(index=False))
    summary = [(row.actor, row.action, row.object_id, json.loads(row.details)) for row in rows]
    assert summary == [
        ("ada", "user.create", "ada", {"first_admin": True, "role": "admin"}),
        ("ada", "user.create", "ann", {"role": "annotator", "must_change": False}),
        ("ada", "user.role", "ann", {"old": "annotator", "new": "reviewer"}),
        ("ada", "user.active", "ann", {"old": True, "new": False}),
        ("ada", "user.active", "ann", {"old": False, "new": True}),
        ("ada", "user.password", "ann", {"self_service": False, "must_change": True}),
        ("ann", "login", "ann", {}),
        ("ann", "logout", "ann", {"expired": False}),
    ]
    assert all(before <= row.created_at <= after for row in rows)
    # Passwords appear nowhere in the log.
    assert PASSWORD not in frame.to_csv() and "a new password here" not in frame.to_csv()


def test_failed_logins_are_recorded_without_the_password(any_store):
    admin = accounts.create_first_admin(any_store, "ada", PASSWORD)
    accounts.create_user(any_store, admin, "ann", PASSWORD, "annotator")
    accounts.set_active(any_store, admin, "ann", False)
    attempts = [("ada", "guessed-password-1"), ("ann", PASSWORD), ("guessed-password-2", "x"), ("local", "")]
    for username, password in attempts:
        with pytest.raises(MedreviewError):
            accounts.authenticate(any_store, username, password)

    failures = audit.query(any_store, admin, action="login.failed").sort_values("id")
    reasons = [(row.actor, json.loads(row.details)["reason"]) for row in failures.itertuples()]
    # A name that matches nobody may be a password typed in the wrong field: it is not logged.
    assert reasons == [
        ("ada", "wrong password"),
        ("ann", "inactive"),
        ("(unknown)", "unknown user"),
        ("local", "no password"),
    ]
    dump = audit.query(any_store, admin).to_csv()
    assert "guessed-password" not in dump and PASSWORD not in dump


def test_an_event_rolls_back_with_the_change_it_describes(any_store):
    before = _count(any_store)
    with pytest.raises(RuntimeError), any_store.db.write() as session:
        audit.record(session, "ada", "label.change", "annotation", 7, old="normal", new="pneumonia")
        session.flush()
        raise RuntimeError("the label write failed")
    assert _count(any_store) == before

    with any_store.db.write() as session:
        audit.record(session, "ada", "label.change", "annotation", 7, old="normal", new="pneumonia")
    [event] = [e for e in _all_events(any_store) if e.action == "label.change"]
    assert (event.actor, event.object_type, event.object_id) == ("ada", "annotation", "7")
    assert event.details == {"old": "normal", "new": "pneumonia"}


def test_record_refuses_secrets_unknown_actions_and_non_json(store):
    with store.db.write() as session:
        for details in ({"password": "x"}, {"new_password_hash": "x"}, {"API_SECRET": "x"}, {"old": {"Password": "x"}}):
            with pytest.raises(ValueError, match="passwords or secrets"):
                audit.record(session, "ada", "settings.change", **details)
        with pytest.raises(ValueError, match="unknown audit action"):
            audit.record(session, "ada", "label.delete")
        with pytest.raises(ValueError, match="JSON"):
            audit.record(session, "ada", "export", when=dt.datetime.now(dt.UTC))
        with pytest.raises(ValueError, match="actor"):
            audit.record(session, "", "export")
    assert _count(store) == 0


# --- viewing and exporting ------------------------------------------------------------------------


def _seed_events(store) -> dict[str, dt.datetime]:
    """Five events at known times, written as rows so the times are exact."""
    base = dt.datetime(2024, 3, 1, 8, 0, tzinfo=dt.UTC)
    times = {
        name: base + dt.timedelta(hours=hours)
        for name, hours in [("t0", 0), ("t1", 1), ("t2", 2), ("t3", 3), ("t4", 4)]
    }
    rows = [
        ("t0", "ada", "login"),
        ("t1", "ann", "label.create"),
        ("t2", "ann", "label.change"),
        ("t3", "rev", "review.approve"),
        ("t4", "ada", "model.promote"),
    ]
    with store.db.write() as session:
        for key, actor, action in rows:
            session.add(AuditEvent(created_at=times[key], actor=actor, action=action, details={}))
    return times


def test_query_filters_by_action_actor_and_time_newest_first(any_store):
    times = _seed_events(any_store)
    admin = Actor("ada", "admin")

    everything = audit.query(any_store, admin)
    assert list(everything.columns) == list(audit.COLUMNS)
    assert list(everything["action"]) == ["model.promote", "review.approve", "label.change", "label.create", "login"]
    assert str(everything["created_at"].dt.tz) == "UTC"

    assert list(audit.query(any_store, admin, action="label.change")["actor"]) == ["ann"]
    assert list(audit.query(any_store, admin, action=["login", "model.promote"])["action"]) == [
        "model.promote",
        "login",
    ]
    assert list(audit.query(any_store, admin, actor_name="ann")["action"]) == ["label.change", "label.create"]
    window = audit.query(any_store, admin, since=times["t1"], until=times["t3"])  # since inclusive, until exclusive
    assert list(window["action"]) == ["label.change", "label.create"]
    # Another time zone names the same instants.
    plus_one = dt.timezone(dt.timedelta(hours=1))
    assert len(audit.query(any_store, admin, since=times["t3"].astimezone(plus_one))) == 2
    assert list(audit.query(any_store, admin, limit=2)["action"]) == ["model.promote", "review.approve"]
    assert audit.query(any_store, admin, action="export").empty
    with pytest.raises(ValueError):
        audit.query(any_store, admin, since=dt.datetime(2024, 3, 1))


def test_only_admins_view_or_export_the_log(store, tmp_path):
    _seed_events(store)
    for actor in (Actor("ann", "annotator"), Actor("rev", "reviewer")):
        with pytest.raises(PermissionDeniedError):
            audit.query(store, actor)
        with pytest.raises(PermissionDeniedError):
            audit.export_csv(store, actor, tmp_path / "audit.csv")
    assert not (tmp_path / "audit.csv").exists()


def test_export_writes_csv_and_is_itself_audited(any_store, tmp_path):
    times = _seed_events(any_store)
    with any_store.db.write() as session:
        # Cells a spreadsheet would execute are neutralised.
        audit.record(
            session, "ann", "label.create", "annotation", '=HYPERLINK("http://x")', comment='a, "quoted"\nline'
        )
    admin = Actor("ada", "admin")

    written = audit.export_csv(any_store, admin, tmp_path / "audit.csv", since=times["t1"])
    with open(tmp_path / "audit.csv", newline="", encoding="utf-8") as handle:
        rows = list(csv.DictReader(handle))
    assert written == len(rows) == 5
    assert list(rows[0]) == list(audit.COLUMNS)
    assert rows[0]["object_id"] == '\'=HYPERLINK("http://x")'
    assert json.loads(rows[0]["details"]) == {"comment": 'a, "quoted"\nline'}
    assert [row["action"] for row in rows[1:]] == ["model.promote", "review.approve", "label.change", "label.create"]
    assert dt.datetime.fromisoformat(rows[-1]["created_at"]) == times["t1"]

    [export] = audit.query(any_store, admin, action="audit.export")["details"]
    assert json.loads(export) == {"rows": 5, "filters": {"since": times["t1"].isoformat(), "limit": None}}
    assert list(audit.query(any_store, admin, action="audit.export")["actor"]) == ["ada"]


# --- append-only in the database ------------------------------------------------------------------


def test_database_refuses_update_and_delete_of_audit_events(any_store):
    # The guards come with the schema (migration 0001), nothing else installs them.
    engine = any_store.db.engine
    audit.record_now(any_store, "ada", "export", "file", "labels.csv", rows=3)

    for statement in (
        "UPDATE audit_events SET actor = 'mallory'",
        "DELETE FROM audit_events",
    ):
        with pytest.raises(DatabaseError, match="append-only"), engine.begin() as connection:
            connection.execute(text(statement))
    if engine.dialect.name == "postgresql":
        with pytest.raises(DatabaseError, match="append-only"), engine.begin() as connection:
            connection.execute(text("TRUNCATE audit_events"))

    # Inserting still works, and the first event is untouched.
    audit.record_now(any_store, SYSTEM.username, "export", "file", "labels.csv", rows=4)
    events = _all_events(any_store)
    assert [(e.actor, e.details["rows"]) for e in events] == [("ada", 3), ("system", 4)]


def test_actions_list_covers_the_issue():
    required = {
        "login", "login.failed", "logout", "user.create",
        # A session resumed from the cookie is its own kind (once, not at every page load), and an
        # attempt refused by the back-off after failed sign-ins is on the record too.
        "login.resume", "login.throttled", "user.role", "user.active", "user.password",
        "label.create", "label.change", "review.approve", "review.reject", "review.return", "review.adjudicate",
        "assignment.create", "assignment.delete", "training.start", "model.promote", "export", "audit.export",
        "settings.change", "label.import", "pseudonyms.view", "job.cancel",
        # Evaluation sets decide which version becomes active: freezing one, choosing the default
        # and starting an evaluation are on the record too.
        "evaluation_set.create", "evaluation_set.default", "evaluation.start",
        # The consensus rule's final labels and a reviewer's revert of one (issue 18).
        "review.auto_accept", "review.auto_accept_revert",
        # Reader studies: a study made, each rating (never changed after), gold cases mixed in (issue 19).
        "reader_study.create", "reader_study.rate", "gold.mix",
    }  # fmt: skip
    assert set(audit.ACTIONS) == required
    assert len(audit.ACTIONS) == len(required)
    # The module offers no way to change or remove an event.
    assert not [name for name in dir(audit) if name.startswith(("update", "delete", "remove", "purge", "edit"))]
