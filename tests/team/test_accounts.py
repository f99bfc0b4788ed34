"""Accounts: first admin, logins, roles enforced by the services themselves, session expiry."""

from __future__ import annotations

import datetime as dt

import argon2
import pytest
from sqlalchemy import select

from medreview.errors import MedreviewError, NotFoundError, PermissionDeniedError
from medreview.store.models import AuditEvent, User
from medreview.team import accounts
from medreview.team.accounts import (
    LoginSession,
    authenticate,
    change_password,
    create_first_admin,
    create_user,
    current_actor,
    list_users,
    needs_first_admin,
    reader_names,
    set_active,
    set_role,
)
from medreview.team.roles import ROLES, SYSTEM, Actor, require

PASSWORD = "correct horse battery"
FAST_HASHER = argon2.PasswordHasher(time_cost=1, memory_cost=8192, parallelism=1)
# Taken at import, before the fixture below swaps it.
PRODUCTION_HASHER = accounts._hasher


@pytest.fixture(autouse=True)
def fast_hashing(monkeypatch: pytest.MonkeyPatch) -> None:
    # Production hashes use argon2-cffi's secure defaults (~150 ms a verify); the checks below do
    # not depend on the cost, only on the algorithm.
    monkeypatch.setattr(accounts, "_hasher", FAST_HASHER)


def _with_team(store) -> Actor:
    """An admin "ada" plus annotator "ann" and reviewer "rev"; returns the admin."""
    admin = create_first_admin(store, "ada", PASSWORD)
    create_user(store, admin, "ann", PASSWORD, "annotator")
    create_user(store, admin, "rev", PASSWORD, "reviewer")
    return admin


def _events(store, action: str) -> list[AuditEvent]:
    with store.db.read() as session:
        return list(session.scalars(select(AuditEvent).where(AuditEvent.action == action).order_by(AuditEvent.id)))


def _password_hash(store, username: str) -> str | None:
    with store.db.read() as session:
        return session.scalar(select(User.password_hash).where(User.username == username))


# --- first run ------------------------------------------------------------------------------------


def test_first_visit_creates_the_admin_and_only_once(any_store):
    assert needs_first_admin(any_store)
    admin = create_first_admin(any_store, "Ada ", PASSWORD)  # names are stored lower case, trimmed
    assert admin == Actor("ada", "admin")
    assert not needs_first_admin(any_store)
    assert authenticate(any_store, "ada", PASSWORD) == admin

    with pytest.raises(PermissionDeniedError, match="already exists"):
        create_first_admin(any_store, "mallory", PASSWORD)
    assert [user["username"] for user in list_users(any_store, admin)] == ["ada"]
    [event] = _events(any_store, "user.create")
    assert (event.actor, event.object_id, event.details["role"]) == ("ada", "ada", "admin")


def test_seeded_local_user_can_never_log_in(any_store):
    # Each attempt from a client of its own: a fourth failure in a row from one client would wait
    # (the back-off, tests/team/test_throttle.py) instead of being checked.
    for number, password in enumerate(("", "local", PASSWORD)):
        with pytest.raises(MedreviewError, match="wrong user name or password"):
            authenticate(any_store, "local", password, client=f"192.0.2.{number}")
    # Not even if a hash were written to its row behind the services' back.
    with any_store.db.write() as session:
        session.scalar(select(User).where(User.username == "local")).password_hash = FAST_HASHER.hash(PASSWORD)
    with pytest.raises(MedreviewError, match="wrong user name or password"):
        authenticate(any_store, "local", PASSWORD, client="192.0.2.9")
    admin = create_first_admin(any_store, "ada", PASSWORD)
    with pytest.raises(MedreviewError, match="built-in"):
        change_password(any_store, admin, "local", "another long password")
    with pytest.raises(MedreviewError, match="reserved"):
        create_user(any_store, admin, "local", PASSWORD, "annotator")
    with pytest.raises(MedreviewError, match="reserved"):
        create_user(any_store, admin, "system", PASSWORD, "annotator")


# --- login ----------------------------------------------------------------------------------------


def test_wrong_password_unknown_user_and_inactive_user_get_the_same_answer(any_store):
    admin = _with_team(any_store)
    set_active(any_store, admin, "ann", False)
    messages = []
    for username, password in [("rev", "not the password"), ("nobody", PASSWORD), ("ann", PASSWORD)]:
        with pytest.raises(MedreviewError) as caught:
            authenticate(any_store, username, password)
        messages.append(str(caught.value))
    assert messages == ["wrong user name or password"] * 3
    assert authenticate(any_store, "rev", PASSWORD) == Actor("rev", "reviewer")

    set_active(any_store, admin, "ann", True)
    assert authenticate(any_store, "ann", PASSWORD) == Actor("ann", "annotator")


def test_unknown_user_is_checked_against_a_dummy_hash(store, monkeypatch):
    # Same work whether or not the name exists, so timing does not reveal which names exist.
    create_first_admin(store, "ada", PASSWORD)
    verified = []
    real_verify = FAST_HASHER.verify

    class CountingHasher(argon2.PasswordHasher):
        def verify(self, hash, password):
            verified.append(hash)
            return real_verify(hash, password)

    monkeypatch.setattr(accounts, "_hasher", CountingHasher(time_cost=1, memory_cost=8192, parallelism=1))
    for username in ("nobody", "ada"):
        with pytest.raises(MedreviewError):
            authenticate(store, username, "wrong password!")
    assert len(verified) == 2
    assert all(hash.startswith("$argon2id$") for hash in verified)


def test_hashes_are_argon2_and_never_the_password(any_store):
    _with_team(any_store)
    for username in ("ada", "ann", "rev"):
        password_hash = _password_hash(any_store, username)
        assert password_hash.startswith("$argon2id$")
        assert PASSWORD not in password_hash
    # Same password, different salts.
    assert _password_hash(any_store, "ann") != _password_hash(any_store, "rev")


def test_production_hasher_uses_secure_defaults():
    defaults = argon2.PasswordHasher()
    assert PRODUCTION_HASHER.time_cost >= defaults.time_cost
    assert PRODUCTION_HASHER.memory_cost >= defaults.memory_cost
    assert PRODUCTION_HASHER.type is argon2.Type.ID


def test_login_rehashes_a_hash_made_with_old_parameters(store, monkeypatch):
    old_hasher = argon2.PasswordHasher(time_cost=1, memory_cost=8192, parallelism=1)
    monkeypatch.setattr(accounts, "_hasher", old_hasher)
    create_first_admin(store, "ada", PASSWORD)
    old_hash = _password_hash(store, "ada")

    monkeypatch.setattr(accounts, "_hasher", argon2.PasswordHasher(time_cost=2, memory_cost=8192, parallelism=1))
    authenticate(store, "ada", PASSWORD)
    new_hash = _password_hash(store, "ada")
    assert new_hash != old_hash and "t=2" in new_hash
    assert authenticate(store, "ada", PASSWORD).username == "ada"


def test_password_and_username_rules(store):
    admin = create_first_admin(store, "ada", PASSWORD)
    with pytest.raises(MedreviewError, match="at least 10"):
        create_user(store, admin, "bob", "short", "annotator")
    for bad_name in ("ab", "has space", "x" * 65, "-dash", "bob!"):
        with pytest.raises(MedreviewError, match="user name"):
            create_user(store, admin, bad_name, PASSWORD, "annotator")
    with pytest.raises(MedreviewError, match="unknown role"):
        create_user(store, admin, "bob", PASSWORD, "superuser")
    create_user(store, admin, "bob.smith-2", PASSWORD, "annotator")
    with pytest.raises(MedreviewError, match="already exists"):
        create_user(store, admin, "Bob.Smith-2", PASSWORD, "reviewer")
    with pytest.raises(MedreviewError, match="cannot be the user name"):
        create_user(store, admin, "longusername", "longusername", "annotator")


# --- roles ----------------------------------------------------------------------------------------


def test_role_hierarchy():
    annotator, reviewer, admin = (Actor("someone", role) for role in ROLES)
    assert [annotator.can(role) for role in ROLES] == [True, False, False]
    assert [reviewer.can(role) for role in ROLES] == [True, True, False]
    assert [admin.can(role) for role in ROLES] == [True, True, True]
    with pytest.raises(ValueError):
        Actor("someone", "root")
    with pytest.raises(ValueError):
        admin.can("root")
    require(reviewer, "reviewer", "review")
    with pytest.raises(PermissionDeniedError, match=r"someone \(annotator\) may not review; needs reviewer"):
        require(annotator, "reviewer", "review")
    assert SYSTEM.can("admin")


def test_admin_only_functions_refuse_annotators_and_reviewers(any_store):
    _with_team(any_store)
    admin_only = [
        lambda actor: create_user(any_store, actor, "newbie", PASSWORD, "admin"),
        lambda actor: set_role(any_store, actor, "ann", "admin"),
        lambda actor: set_active(any_store, actor, "ada", False),
        lambda actor: change_password(any_store, actor, "ada", "taken over account"),
        lambda actor: list_users(any_store, actor),
    ]
    for actor in (Actor("ann", "annotator"), Actor("rev", "reviewer")):
        for call in admin_only:
            with pytest.raises(PermissionDeniedError):
                call(actor)
    # Nothing changed.
    assert {(u["username"], u["role"], u["active"]) for u in list_users(any_store, SYSTEM)} == {
        ("ada", "admin", True),
        ("ann", "annotator", True),
        ("rev", "reviewer", True),
    }
    assert authenticate(any_store, "ada", PASSWORD).role == "admin"


def test_a_demoted_admin_loses_admin_rights_at_once(store):
    admin = _with_team(store)
    create_user(store, admin, "bea", PASSWORD, "admin")
    bea = authenticate(store, "bea", PASSWORD)
    set_role(store, admin, "bea", "reviewer")
    # bea's login session still says admin, but the database does not.
    with pytest.raises(PermissionDeniedError, match="no longer an active admin"):
        create_user(store, bea, "sneaky", PASSWORD, "admin")
    assert current_actor(store, bea) == Actor("bea", "reviewer")
    set_active(store, admin, "bea", False)
    with pytest.raises(PermissionDeniedError, match="no longer active"):
        current_actor(store, bea)


def test_last_admin_cannot_be_demoted_or_deactivated(any_store):
    admin = _with_team(any_store)
    with pytest.raises(MedreviewError, match="last active admin"):
        set_role(any_store, admin, "ada", "reviewer")
    with pytest.raises(MedreviewError, match="your own account"):
        set_active(any_store, admin, "ada", False)
    with pytest.raises(MedreviewError, match="last active admin"):
        set_active(any_store, SYSTEM, "ada", False)

    # With a second admin, the first can step down.
    set_role(any_store, admin, "rev", "admin")
    set_role(any_store, admin, "ada", "reviewer")
    rev = Actor("rev", "admin")
    with pytest.raises(MedreviewError, match="last active admin"):
        set_role(any_store, rev, "rev", "annotator")
    assert authenticate(any_store, "ada", PASSWORD).role == "reviewer"


def test_unknown_user_is_not_found(store):
    admin = create_first_admin(store, "ada", PASSWORD)
    with pytest.raises(NotFoundError):
        set_role(store, admin, "ghost", "reviewer")
    with pytest.raises(NotFoundError):
        set_active(store, admin, "ghost", False)


# --- passwords ------------------------------------------------------------------------------------


def test_users_change_their_own_password_with_the_old_one(any_store):
    admin = _with_team(any_store)
    ann = Actor("ann", "annotator")
    with pytest.raises(MedreviewError, match="current password is wrong"):
        change_password(any_store, ann, "ann", "brand new password")
    with pytest.raises(MedreviewError, match="current password is wrong"):
        change_password(any_store, ann, "ann", "brand new password", old_password="guess guess guess")
    change_password(any_store, ann, "ann", "brand new password", old_password=PASSWORD)
    assert authenticate(any_store, "ann", "brand new password") == ann
    with pytest.raises(MedreviewError):
        authenticate(any_store, "ann", PASSWORD)

    # An admin resets someone else's without the old one.
    change_password(any_store, admin, "ann", "reset by the admin")
    assert authenticate(any_store, "ann", "reset by the admin") == ann


def test_a_password_someone_else_set_must_be_replaced_at_the_next_sign_in(any_store):
    admin = create_first_admin(any_store, "ada", PASSWORD)
    create_user(any_store, admin, "ann", PASSWORD, "annotator", temporary=True)  # as the Team page adds one
    ann = Actor("ann", "annotator")
    assert accounts.password_change_required(any_store, ann)
    assert not accounts.password_change_required(any_store, admin)  # the first admin chose theirs
    assert authenticate(any_store, "ann", PASSWORD) == ann  # signing in works; the app asks for a new one
    with pytest.raises(MedreviewError, match="other than the current one"):
        change_password(any_store, ann, "ann", PASSWORD, old_password=PASSWORD)
    change_password(any_store, ann, "ann", "my very own password", old_password=PASSWORD)
    assert not accounts.password_change_required(any_store, ann)

    change_password(any_store, admin, "ann", "reset by the admin")  # a reset from the Team page
    assert accounts.password_change_required(any_store, ann)
    change_password(any_store, SYSTEM, "ann", "set by the operator", temporary=False)  # `users password`
    assert not accounts.password_change_required(any_store, ann)
    create_user(any_store, SYSTEM, "operator", PASSWORD, "annotator", temporary=False)  # `users add`
    assert not accounts.password_change_required(any_store, Actor("operator", "annotator"))
    events = [(event.actor, event.details) for event in _events(any_store, "user.password")]
    assert events == [
        ("ann", {"self_service": True, "must_change": False}),
        ("ada", {"self_service": False, "must_change": True}),
        ("system", {"self_service": False, "must_change": False}),
    ]


# --- lists ----------------------------------------------------------------------------------------


def test_list_users_and_reader_names(any_store):
    admin = _with_team(any_store)
    create_user(any_store, admin, "gone", PASSWORD, "annotator", temporary=True)  # as the Team page adds one
    set_active(any_store, admin, "gone", False)
    users = list_users(any_store, admin)
    assert [user["username"] for user in users] == ["ada", "ann", "gone", "rev"]
    assert set(users[0]) == {"username", "role", "active", "must_change_password", "created_at"}
    assert [user["must_change_password"] for user in users] == [False, False, True, False]
    assert all(user["created_at"].tzinfo is not None for user in users)
    # Pickers offer everyone who can log in, any role; never "local" or the inactive.
    assert reader_names(any_store) == ["ada", "ann", "rev"]


# --- sessions -------------------------------------------------------------------------------------


def test_login_session_expires_after_inactivity():
    start = dt.datetime(2026, 11, 2, 9, 0, tzinfo=dt.UTC)
    login = LoginSession(Actor("ann", "annotator"), last_seen=start)
    assert not login.expired(start + dt.timedelta(minutes=30), timeout_minutes=30)
    assert login.expired(start + dt.timedelta(minutes=30, seconds=1), timeout_minutes=30)
    # Activity restarts the clock.
    login.touch(start + dt.timedelta(minutes=25))
    assert not login.expired(start + dt.timedelta(minutes=50), timeout_minutes=30)
    assert login.expired(start + dt.timedelta(minutes=56), timeout_minutes=30)
    # Any time zone compares correctly; naive times are refused rather than guessed.
    plus_two = dt.timezone(dt.timedelta(hours=2))
    assert not login.expired(dt.datetime(2026, 11, 2, 11, 50, tzinfo=plus_two), timeout_minutes=30)
    with pytest.raises(ValueError):
        login.expired(dt.datetime(2026, 11, 2, 9, 0), timeout_minutes=30)
    with pytest.raises(ValueError):
        LoginSession(Actor("ann", "annotator"), last_seen=dt.datetime(2026, 11, 2, 9, 0))
