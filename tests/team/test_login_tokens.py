"""Login tokens: a sign-in that survives a page reload, kept hashed, expiring, and revocable."""

from __future__ import annotations

import datetime as dt
import hashlib

import pytest
from sqlalchemy import select

from medreview.errors import MedreviewError, PermissionDeniedError
from medreview.store.models import AuditEvent, LoginToken, User, as_utc, utcnow
from medreview.team import audit
from medreview.team.accounts import (
    ENDED_LOGIN_TOKEN_KEPT,
    LoginSession,
    change_password,
    create_first_admin,
    create_user,
    issue_login_token,
    logout,
    refresh_login,
    resume_login,
    revoke_login_token,
    set_active,
    set_role,
)
from medreview.team.roles import SYSTEM, Actor
from medreview.team.settings import set_setting

PASSWORD = "correct horse battery"
# In the past: revocations take the wall clock, and the pruning test needs START long before it.
START = dt.datetime(2025, 11, 3, 9, 0, tzinfo=dt.UTC)

pytestmark = pytest.mark.usefixtures("fast_hashing")


def _team(store) -> Actor:
    """Admin "ada" and annotator "ann" (sessions of 60 minutes); returns the admin."""
    admin = create_first_admin(store, "ada", PASSWORD)
    create_user(store, admin, "ann", PASSWORD, "annotator")
    set_setting(store, admin, "session_minutes", 60)
    return admin


ANN = Actor("ann", "annotator")


def _rows(store) -> list[LoginToken]:
    with store.db.read() as session:
        return list(session.scalars(select(LoginToken).order_by(LoginToken.id)))


def _row(store, token: str) -> LoginToken:
    digest = hashlib.sha256(token.encode()).hexdigest()
    with store.db.read() as session:
        row = session.scalar(select(LoginToken).where(LoginToken.token_hash == digest))
    assert row is not None
    return row


def _events(store, action: str) -> list[AuditEvent]:
    with store.db.read() as session:
        return list(session.scalars(select(AuditEvent).where(AuditEvent.action == action).order_by(AuditEvent.id)))


def test_the_store_keeps_the_hash_never_the_token(any_store):
    _team(any_store)
    token = issue_login_token(any_store, ANN, now=START)
    other = issue_login_token(any_store, ANN, now=START)
    assert token != other and len(token) >= 43  # 32 random bytes, URL-safe base64
    assert token.replace("-", "").replace("_", "").isalnum()  # safe in a cookie as it is
    rows = _rows(any_store)
    assert len(rows) == 2
    row = _row(any_store, token)
    assert row.token_hash == hashlib.sha256(token.encode()).hexdigest()
    for stored in rows:
        assert token not in repr(vars(stored)) and other not in repr(vars(stored))
    with any_store.db.read() as session:
        assert row.user_id == session.scalar(select(User.id).where(User.username == "ann"))
    assert as_utc(row.expires_at) == START + dt.timedelta(minutes=60)
    assert row.revoked_at is None


def test_a_kept_token_signs_the_user_in_again_with_their_current_role(any_store):
    admin = _team(any_store)
    token = issue_login_token(any_store, ANN, now=START)
    assert resume_login(any_store, token, now=START + dt.timedelta(minutes=5)) == ANN
    set_role(any_store, admin, "ann", "reviewer")
    assert resume_login(any_store, token, now=START + dt.timedelta(minutes=6)) == Actor("ann", "reviewer")
    # A resume is not a sign-in, and is recorded once per login session, not at every page load.
    assert _events(any_store, "login") == []
    resumed = _events(any_store, "login.resume")
    assert [(event.actor, event.object_id) for event in resumed] == [("ann", "ann")]


def test_page_loads_are_not_sign_ins_a_resume_is_recorded_once_per_login_session(any_store):
    _team(any_store)
    token = issue_login_token(any_store, ANN, now=START)
    for second in range(5):  # five reloads in a minute
        resume_login(any_store, token, now=START + dt.timedelta(seconds=10 * second), client="198.51.100.7")
    assert _events(any_store, "login") == []
    [resumed] = _events(any_store, "login.resume")
    assert (resumed.actor, resumed.details) == ("ann", {"client": "198.51.100.7"})
    # The same login coming back from another address is worth a line; so is another sign-in.
    resume_login(any_store, token, now=START + dt.timedelta(minutes=2), client="203.0.113.66")
    resume_login(any_store, token, now=START + dt.timedelta(minutes=3), client="203.0.113.66")
    other = issue_login_token(any_store, ANN, now=START)
    resume_login(any_store, other, now=START + dt.timedelta(minutes=4), client="198.51.100.7")
    clients = [event.details["client"] for event in _events(any_store, "login.resume")]
    assert clients == ["198.51.100.7", "203.0.113.66", "198.51.100.7"]


def test_the_expiry_slides_with_use_and_an_unused_token_expires(any_store):
    _team(any_store)
    token = issue_login_token(any_store, ANN, now=START)
    # Used after 50 minutes: valid for 60 minutes from then, not from the sign-in.
    resume_login(any_store, token, now=START + dt.timedelta(minutes=50))
    row = _row(any_store, token)
    assert as_utc(row.last_used_at) == START + dt.timedelta(minutes=50)
    assert as_utc(row.expires_at) == START + dt.timedelta(minutes=110)
    assert refresh_login(any_store, token, now=START + dt.timedelta(minutes=109)) == ANN
    # 60 minutes after the last use (at 109) it has expired.
    with pytest.raises(PermissionDeniedError, match="session expired"):
        resume_login(any_store, token, now=START + dt.timedelta(minutes=169))
    with pytest.raises(PermissionDeniedError, match="session expired"):
        refresh_login(any_store, token, now=START + dt.timedelta(minutes=169))
    [failed] = _events(any_store, "login.failed")
    assert (failed.actor, failed.details) == ("ann", {"reason": "session expired"})


def test_page_runs_write_the_use_back_at_most_once_a_minute(any_store):
    _team(any_store)
    token = issue_login_token(any_store, ANN, now=START)
    refresh_login(any_store, token, now=START + dt.timedelta(seconds=30))
    assert as_utc(_row(any_store, token).last_used_at) == START  # a read only
    refresh_login(any_store, token, now=START + dt.timedelta(seconds=61))
    assert as_utc(_row(any_store, token).last_used_at) == START + dt.timedelta(seconds=61)
    assert as_utc(_row(any_store, token).expires_at) == START + dt.timedelta(seconds=61, minutes=60)
    # Page runs are not sign-ins: nothing audited.
    assert _events(any_store, "login") == [] and _events(any_store, "login.resume") == []


@pytest.mark.parametrize("wrong", ["", "x", "a" * 43, "é" * 43, "a" * 10_000, "' OR 1=1 --"])
def test_a_wrong_token_is_refused(store, wrong):
    _team(store)
    token = issue_login_token(store, ANN, now=START)
    assert wrong != token
    with pytest.raises(PermissionDeniedError, match="not known"):
        resume_login(store, wrong, now=START)
    with pytest.raises(PermissionDeniedError, match="not known"):
        refresh_login(store, wrong, now=START)
    [failed] = _events(store, "login.failed")
    assert (failed.actor, failed.object_id, failed.details) == ("(unknown)", "", {"reason": "session unknown"})
    # The right token still works; a near miss (one character changed) does not.
    assert resume_login(store, token, now=START) == ANN
    near_miss = token[:-1] + ("A" if token[-1] != "A" else "B")
    with pytest.raises(PermissionDeniedError):
        resume_login(store, near_miss, now=START)


def test_logout_revokes_that_sessions_token_only(any_store):
    _team(any_store)
    here = issue_login_token(any_store, ANN, now=START)
    elsewhere = issue_login_token(any_store, ANN, now=START)
    logout(any_store, ANN, token=here)
    assert _row(any_store, here).revoked_at is not None
    with pytest.raises(PermissionDeniedError, match="signed out"):
        resume_login(any_store, here, now=START)
    with pytest.raises(PermissionDeniedError, match="signed out"):
        refresh_login(any_store, here, now=START)
    # The same user's session in another browser goes on.
    assert resume_login(any_store, elsewhere, now=START) == ANN
    [event] = _events(any_store, "logout")
    assert (event.actor, event.details) == ("ann", {"expired": False})


def test_logout_cannot_revoke_another_users_token(any_store):
    admin = _team(any_store)
    admins_token = issue_login_token(any_store, admin, now=START)
    logout(any_store, ANN, token=admins_token)
    assert resume_login(any_store, admins_token, now=START) == admin


def test_deactivation_revokes_every_token_of_the_user_and_reactivation_revives_none(any_store):
    admin = _team(any_store)
    tokens = [issue_login_token(any_store, ANN, now=START) for _ in range(2)]
    admins_token = issue_login_token(any_store, admin, now=START)
    set_active(any_store, admin, "ann", False)
    for token in tokens:
        assert _row(any_store, token).revoked_at is not None
        with pytest.raises(PermissionDeniedError, match="no longer active"):
            resume_login(any_store, token, now=START)
        with pytest.raises(PermissionDeniedError, match="no longer active"):
            refresh_login(any_store, token, now=START)
    with pytest.raises(PermissionDeniedError, match="not active"):
        issue_login_token(any_store, ANN, now=START)
    set_active(any_store, admin, "ann", True)
    for token in tokens:
        with pytest.raises(PermissionDeniedError, match="signed out"):
            resume_login(any_store, token, now=START)
    assert resume_login(any_store, admins_token, now=START) == admin


def test_a_new_password_revokes_every_token_of_the_user(any_store):
    admin = _team(any_store)
    reset = issue_login_token(any_store, ANN, now=START)
    change_password(any_store, admin, "ann", "a new password here")  # an admin's reset
    with pytest.raises(PermissionDeniedError, match="signed out"):
        resume_login(any_store, reset, now=START)
    own = issue_login_token(any_store, ANN, now=START)
    change_password(any_store, ANN, "ann", "another new password", old_password="a new password here")
    with pytest.raises(PermissionDeniedError, match="signed out"):
        refresh_login(any_store, own, now=START)
    assert issue_login_token(any_store, ANN, now=START)  # signing in again works


def test_revoke_login_token(any_store):
    _team(any_store)
    token = issue_login_token(any_store, ANN, now=START)
    revoke_login_token(any_store, token)
    revoke_login_token(any_store, token)  # twice is harmless
    revoke_login_token(any_store, "no such token")
    with pytest.raises(PermissionDeniedError, match="signed out"):
        resume_login(any_store, token, now=START)


def test_only_active_accounts_get_tokens(any_store):
    _team(any_store)
    with pytest.raises(MedreviewError):
        issue_login_token(any_store, SYSTEM, now=START)
    with pytest.raises(PermissionDeniedError):
        issue_login_token(any_store, Actor("nobody", "admin"), now=START)
    with pytest.raises(PermissionDeniedError):
        issue_login_token(any_store, Actor("local", "annotator"), now=START)  # the seeded, passwordless user


def test_ended_tokens_are_deleted_a_month_after_they_ended(any_store):
    _team(any_store)
    expired = issue_login_token(any_store, ANN, now=START)  # ended at START + 60 minutes
    revoked = issue_login_token(any_store, ANN)
    revoke_login_token(any_store, revoked)  # ended now (revocations take the wall clock)
    live = issue_login_token(any_store, ANN)
    # A month after now, less a minute: the token that ended at START is older than a month.
    assert START + dt.timedelta(minutes=60) < utcnow() - dt.timedelta(minutes=1)
    issue_login_token(any_store, ANN, now=utcnow() + ENDED_LOGIN_TOKEN_KEPT - dt.timedelta(minutes=1))
    hashes = {row.token_hash for row in _rows(any_store)}
    assert hashlib.sha256(expired.encode()).hexdigest() not in hashes
    assert hashlib.sha256(revoked.encode()).hexdigest() in hashes
    assert hashlib.sha256(live.encode()).hexdigest() in hashes
    assert len(hashes) == 3


def test_no_token_or_hash_reaches_the_audit_trail_or_a_repr(any_store):
    admin = _team(any_store)
    token = issue_login_token(any_store, ANN, now=START)
    resume_login(any_store, token, now=START)
    with pytest.raises(PermissionDeniedError):
        resume_login(any_store, token + "x", now=START)
    logout(any_store, ANN, token=token)
    with pytest.raises(PermissionDeniedError):
        resume_login(any_store, token, now=START)
    trail = audit.query(any_store, admin, limit=None).to_csv()
    digest = hashlib.sha256(token.encode()).hexdigest()
    assert token not in trail and digest not in trail and token[:12] not in trail
    assert token not in repr(LoginSession(ANN, START, token=token))
