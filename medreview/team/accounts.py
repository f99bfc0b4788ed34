"""Local accounts: users, roles, password checks and login sessions.

Roles and the role check live in :mod:`medreview.team.roles`.

A sign-in survives a page reload through a login token (:func:`issue_login_token`): an opaque
random string the browser keeps, of which the store keeps only the SHA-256
(:class:`~medreview.store.models.LoginToken`), so a copy of the database holds no usable token.
A token expires after ``session_minutes`` without use (the expiry slides each time it is used:
:func:`resume_login` on a reload, :func:`refresh_login` on every page run) and ends for good when
its user logs out, is deactivated or gets a new password. Neither the token nor its hash is ever
logged or written to the audit trail.

A password someone else chose (an account an admin created, an admin's reset) is temporary: the
user must choose their own at the next sign-in (:func:`password_change_required`) before any page
opens. Failed sign-ins slow the next attempts from the same client (:mod:`medreview.team.throttle`).

Passwords are stored as argon2id hashes (argon2-cffi's default, secure parameters). The module
level ``_hasher`` is the one PasswordHasher used for hashing and verifying; tests swap it for a
cheap one (``monkeypatch.setattr(accounts, "_hasher", PasswordHasher(time_cost=1,
memory_cost=8192))``) to stay fast. Hashes made with other parameters still verify, and are
rehashed with the current ones at the next login.

Before any account exists the store holds only the seeded, passwordless "local" user (the
author of reads made before accounts). It can never log in; the first visit creates the first
admin (:func:`needs_first_admin`, :func:`create_first_admin`).

:data:`SYSTEM` is the actor for the CLI, the worker and internal calls. The CLI runs as the
machine's operator: whoever can run it can already read the data dir and the database, so a role
check would protect nothing there; its actions are still audited, as "system".
"""

from __future__ import annotations

import datetime as dt
import hashlib
import re
import secrets
from dataclasses import dataclass, field
from typing import Any

import argon2
from sqlalchemy import delete, exists, or_, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from medreview.errors import MedreviewError, NotFoundError, PermissionDeniedError
from medreview.store import LOCAL_USER, Store
from medreview.store.models import LoginToken, User, as_utc, utcnow
from medreview.team import audit, throttle
from medreview.team.roles import ROLES, SYSTEM, Actor, require
from medreview.team.settings import get_setting

__all__ = [
    "LoginSession",
    "authenticate",
    "change_password",
    "create_first_admin",
    "create_user",
    "current_actor",
    "issue_login_token",
    "list_users",
    "logout",
    "needs_first_admin",
    "password_change_required",
    "reader_names",
    "refresh_login",
    "resume_login",
    "revoke_login_token",
    "set_active",
    "set_role",
]

MIN_PASSWORD_LENGTH = 10
MAX_PASSWORD_LENGTH = 1024
# Lower case, 3-64 characters, starting with a letter or digit (so a name can never begin a
# spreadsheet formula or look like an option on the command line).
USERNAME_PATTERN = re.compile(r"[a-z0-9][a-z0-9._-]{2,63}")
# "local" is the seeded pre-accounts user and "system" the CLI/worker actor: an account with
# either name would make the audit trail ambiguous.
RESERVED_USERNAMES = frozenset({LOCAL_USER, "system"})

LOGIN_FAILED_MESSAGE = "wrong user name or password"

# 32 random bytes, URL-safe base64 (43 characters): safe in a cookie as it is.
LOGIN_TOKEN_BYTES = 32
# A longer cookie value is not one of ours: refused before it is hashed or looked up.
MAX_LOGIN_TOKEN_LENGTH = 128
# A token in use is written back (last use, new expiry) at most this often: pages rerun on every
# click or key press, and a write per rerun would serialise every reader on SQLite's write lock.
# The expiry therefore slides with a granularity of a minute.
LOGIN_TOKEN_TOUCH_INTERVAL = dt.timedelta(minutes=1)
# Ended tokens (expired or revoked) are deleted this long after they ended, when the next token is
# issued; until then the row shows when a session began, was last used and ended.
ENDED_LOGIN_TOKEN_KEPT = dt.timedelta(days=30)

# Swapped for a cheaper hasher in tests only (see the module docstring).
_hasher = argon2.PasswordHasher()


# --- helpers ------------------------------------------------------------------------------------


def _clean_username(username: str) -> str:
    return username.strip().lower()


def _check_new_username(username: str) -> str:
    cleaned = _clean_username(username)
    if not USERNAME_PATTERN.fullmatch(cleaned):
        raise MedreviewError(
            "a user name has 3-64 characters: lower-case letters, digits, '.', '_' or '-', "
            "starting with a letter or digit"
        )
    if cleaned in RESERVED_USERNAMES:
        raise MedreviewError(f"'{cleaned}' is reserved; choose another user name")
    return cleaned


def _check_new_password(password: str, username: str) -> None:
    if len(password) < MIN_PASSWORD_LENGTH:
        raise MedreviewError(f"a password needs at least {MIN_PASSWORD_LENGTH} characters")
    if len(password) > MAX_PASSWORD_LENGTH:
        raise MedreviewError(f"a password can have at most {MAX_PASSWORD_LENGTH} characters")
    if password.strip().lower() == username:
        raise MedreviewError("the password cannot be the user name")


def _check_role(role: str) -> None:
    if role not in ROLES:
        raise MedreviewError(f"unknown role '{role}'; choose one of {', '.join(ROLES)}")


_dummy: tuple[argon2.PasswordHasher, str] | None = None


def _dummy_hash() -> str:
    """A hash made with the current hasher, verified when the user does not exist so that an
    unknown name takes as long to refuse as a wrong password (no user enumeration by timing)."""
    global _dummy
    if _dummy is None or _dummy[0] is not _hasher:
        _dummy = (_hasher, _hasher.hash("no such user: timing dummy"))
    return _dummy[1]


def _verify(password_hash: str, password: str) -> bool:
    try:
        return _hasher.verify(password_hash, password)
    except (argon2.exceptions.VerificationError, argon2.exceptions.InvalidHashError):
        return False


def _user(session: Session, username: str, for_update: bool = False) -> User:
    """The account row to manage; the seeded "local" user is not an account."""
    cleaned = _clean_username(username)
    if cleaned == LOCAL_USER:
        raise MedreviewError(
            f"'{LOCAL_USER}' is the built-in author of reads made before accounts and cannot be changed"
        )
    statement = select(User).where(User.username == cleaned)
    if for_update:
        statement = statement.with_for_update()
    user = session.scalar(statement)
    if user is None:
        raise NotFoundError(f"no user named '{cleaned}'")
    return user


def _require_admin(session: Session, actor: Actor, action: str) -> None:
    """The role check, then the same against the database: an admin demoted or deactivated
    while logged in loses user management at once, not when the login session expires."""
    require(actor, "admin", action)
    if actor == SYSTEM:
        return
    row = session.scalar(select(User).where(User.username == actor.username))
    if row is None or not row.active or row.password_hash is None or row.role != "admin":
        raise PermissionDeniedError(f"{actor.username} may not {action}: the account is no longer an active admin")


def _other_active_admins(session: Session, username: str) -> int:
    """Active admins with a password, other than ``username``, counted under row locks.

    FOR UPDATE makes two admins who demote each other at the same moment (PostgreSQL) take turns;
    the second then re-reads and sees that only one admin is left. SQLite write sessions are
    serialised by BEGIN IMMEDIATE already.
    """
    admins = session.scalars(
        select(User.username)
        .where(User.role == "admin", User.active.is_(True), User.password_hash.is_not(None))
        .with_for_update()
    ).all()
    return sum(1 for name in admins if name != username)


# --- first run ----------------------------------------------------------------------------------


def _has_accounts(session: Session) -> bool:
    return bool(session.scalar(select(exists().where(User.password_hash.is_not(None), User.username != LOCAL_USER))))


def needs_first_admin(store: Store) -> bool:
    """True until the first real account exists (the seeded "local" user does not count)."""
    with store.db.read() as session:
        return not _has_accounts(session)


def create_first_admin(store: Store, username: str, password: str) -> Actor:
    """Create the first admin on an empty store; refused once any account exists."""
    username = _check_new_username(username)
    _check_new_password(password, username)
    password_hash = _hasher.hash(password)
    with store.db.write() as session:
        # Lock the seeded row so two first visits at once (PostgreSQL) cannot both pass the check.
        session.scalar(select(User).where(User.username == LOCAL_USER).with_for_update())
        if _has_accounts(session):
            raise PermissionDeniedError("the first admin already exists; ask an admin for an account")
        session.add(User(username=username, password_hash=password_hash, role="admin", active=True))
        audit.record(session, username, "user.create", "user", username, role="admin", first_admin=True)
    return Actor(username, "admin")


# --- user management (admin) --------------------------------------------------------------------


def create_user(store: Store, actor: Actor, username: str, password: str, role: str, temporary: bool = False) -> None:
    """Add an account (admin only). With ``temporary`` (as the Team page adds accounts) the user
    must choose their own password at the first sign-in."""
    require(actor, "admin", "add users")
    username = _check_new_username(username)
    _check_new_password(password, username)
    _check_role(role)
    password_hash = _hasher.hash(password)  # before the transaction: ~150 ms not spent holding the lock
    try:
        with store.db.write() as session:
            _require_admin(session, actor, "add users")
            if session.scalar(select(User.id).where(User.username == username)) is not None:
                raise MedreviewError(f"a user named '{username}' already exists")
            session.add(
                User(
                    username=username,
                    password_hash=password_hash,
                    role=role,
                    active=True,
                    must_change_password=temporary,
                )
            )
            session.flush()  # a concurrent insert of the same name fails here, on the unique constraint
            audit.record(session, actor.username, "user.create", "user", username, role=role, must_change=temporary)
    except IntegrityError as error:
        raise MedreviewError(f"a user named '{username}' already exists") from error


def set_role(store: Store, actor: Actor, username: str, role: str) -> None:
    """Change a user's role (admin only); the last active admin cannot be demoted."""
    require(actor, "admin", "change roles")
    _check_role(role)
    with store.db.write() as session:
        _require_admin(session, actor, "change roles")
        user = _user(session, username, for_update=True)
        old_role = user.role
        if old_role == role:
            return
        if old_role == "admin" and user.active and _other_active_admins(session, user.username) == 0:
            raise MedreviewError(f"{user.username} is the last active admin; make another admin first")
        user.role = role
        audit.record(session, actor.username, "user.role", "user", user.username, old=old_role, new=role)


def set_active(store: Store, actor: Actor, username: str, active: bool) -> None:
    """Activate or deactivate an account (admin only). A deactivated user cannot log in and every
    login token of theirs ends (a reload signs them out); their reads and audit entries stay.
    Nobody can deactivate themselves or the last active admin."""
    require(actor, "admin", "activate or deactivate users")
    with store.db.write() as session:
        _require_admin(session, actor, "activate or deactivate users")
        user = _user(session, username, for_update=True)
        if user.active == active:
            return
        if not active:
            if user.username == actor.username:
                raise MedreviewError("you cannot deactivate your own account")
            if user.role == "admin" and _other_active_admins(session, user.username) == 0:
                raise MedreviewError(f"{user.username} is the last active admin; make another admin first")
        user.active = active
        if not active:
            _revoke_user_tokens(session, user)
        audit.record(session, actor.username, "user.active", "user", user.username, old=not active, new=active)


def change_password(
    store: Store,
    actor: Actor,
    username: str,
    new_password: str,
    old_password: str | None = None,
    temporary: bool | None = None,
) -> None:
    """Set a new password: users change their own (giving the current one, and choosing another);
    an admin may reset anyone else's without it. Every login token of the user ends: whoever signed
    in with the old password (a reset is often about a password that leaked) signs in again with
    the new one (the caller signs the user who changed their own back in, with a new token).

    A reset is ``temporary`` unless said otherwise (the user must choose their own at the next
    sign-in); a password users choose themselves never is."""
    target = _clean_username(username)
    self_service = target == actor.username
    if not self_service:
        require(actor, "admin", "change another user's password")
    must_change = False if self_service else (True if temporary is None else temporary)
    _check_new_password(new_password, target)
    if self_service and old_password is not None and new_password == old_password:
        raise MedreviewError("choose a password other than the current one")
    with store.db.read() as session:
        user = _user(session, target)
        current_hash = user.password_hash
    if self_service and (old_password is None or current_hash is None or not _verify(current_hash, old_password)):
        raise MedreviewError("the current password is wrong")
    new_hash = _hasher.hash(new_password)
    with store.db.write() as session:
        if not self_service:
            _require_admin(session, actor, "change another user's password")
        user = _user(session, target, for_update=True)
        if self_service and not user.active:
            raise PermissionDeniedError("this account is deactivated")
        user.password_hash = new_hash
        user.must_change_password = must_change
        _revoke_user_tokens(session, user)
        audit.record(
            session, actor.username, "user.password", "user", target, self_service=self_service, must_change=must_change
        )


def password_change_required(store: Store, actor: Actor) -> bool:
    """True when ``actor``'s password was set by someone else and they have not chosen their own."""
    if actor == SYSTEM:
        return False
    with store.db.read() as session:
        required = session.scalar(select(User.must_change_password).where(User.username == actor.username))
    return bool(required)


def list_users(store: Store, actor: Actor) -> list[dict[str, Any]]:
    """Accounts for the admin page, by user name: username, role, active, must_change_password
    (the user has not yet replaced a password an admin set), created_at (UTC)."""
    require(actor, "admin", "list users")
    with store.db.read() as session:
        _require_admin(session, actor, "list users")
        users = session.scalars(select(User).where(User.username != LOCAL_USER).order_by(User.username)).all()
        return [
            {
                "username": user.username,
                "role": user.role,
                "active": user.active,
                "must_change_password": user.must_change_password,
                "created_at": as_utc(user.created_at),
            }
            for user in users
        ]


def reader_names(store: Store) -> list[str]:
    """User names that can log in (active, with a password), any role: for assignment pickers."""
    with store.db.read() as session:
        return list(
            session.scalars(
                select(User.username)
                .where(User.active.is_(True), User.password_hash.is_not(None), User.username != LOCAL_USER)
                .order_by(User.username)
            )
        )


# --- login --------------------------------------------------------------------------------------


def authenticate(
    store: Store, username: str, password: str, client: str | None = None, now: dt.datetime | None = None
) -> Actor:
    """Check a user name and password; every refusal has the same message and about the same cost.

    ``client`` is the address the attempt comes from (None: not said; counted as this machine).
    After a few failures from a client the next attempt must wait (:mod:`medreview.team.throttle`):
    one made too soon is refused, with the wait in the message, before the password is checked,
    and logged "login.throttled".

    Logs "login" or "login.failed" (with the reason, never the password). A name that matches no
    user is logged as "(unknown)", not as typed: people type their password into the name field.
    """
    now = _aware(now)
    cleaned = _clean_username(username)
    client_name = throttle.client_key(client)
    where = {} if client is None else {"client": client_name}
    with store.db.read() as session:
        user = session.scalar(select(User).where(User.username == cleaned)) if cleaned else None
        stored_hash = user.password_hash if user is not None else None
        active = user.active if user is not None else False
        role = user.role if user is not None else ""
        account = throttle.account_key(cleaned, exists=user is not None)
        wait = throttle.wait_before_attempt(session, client_name, account, now)
    logged_name, object_id = (cleaned, cleaned) if user is not None else ("(unknown)", "")

    if wait.seconds:
        details = {"wait_seconds": wait.seconds, "scope": wait.scope, **where}
        audit.record_now(store, logged_name, "login.throttled", "user", object_id, **details)
        unit = "second" if wait.seconds == 1 else "seconds"
        raise MedreviewError(f"too many failed sign-ins from here: wait {wait.seconds} {unit}, then try again")

    if user is None or cleaned == LOCAL_USER or stored_hash is None:
        _verify(_dummy_hash(), password)
        reason = "unknown user" if user is None else "no password"
        object_id = ""
        verified = False
    else:
        # Verify before looking at ``active`` so an inactive account costs the same as a wrong password.
        verified = _verify(stored_hash, password)
        reason = "wrong password" if not verified else "inactive"
    if not verified or not active:
        with store.db.write() as session:
            throttle.record_failure(session, client_name, account, now)
            audit.record(session, logged_name, "login.failed", "user", object_id, reason=reason, **where)
        raise MedreviewError(LOGIN_FAILED_MESSAGE)

    with store.db.write() as session:
        throttle.record_success(session, client_name, account)
        if stored_hash is not None and _hasher.check_needs_rehash(stored_hash):
            row = session.scalar(select(User).where(User.username == cleaned).with_for_update())
            if row is not None and row.password_hash == stored_hash:
                row.password_hash = _hasher.hash(password)
        audit.record(session, cleaned, "login", "user", cleaned, **where)
    return Actor(cleaned, role)


def current_actor(store: Store, actor: Actor) -> Actor:
    """``actor`` as the database has it now: call on every page load so a role change applies at
    once and a deactivated user is shut out (raises :class:`PermissionDeniedError`)."""
    if actor == SYSTEM:
        return actor
    with store.db.read() as session:
        row = session.scalar(select(User).where(User.username == actor.username))
    if row is None or not row.active or row.password_hash is None:
        raise PermissionDeniedError(f"the account '{actor.username}' is no longer active; log in again")
    return actor if row.role == actor.role else Actor(row.username, row.role)


def logout(store: Store, actor: Actor, expired: bool = False, token: str | None = None) -> None:
    """End a login session (by the user, or by inactivity when ``expired``): its login ``token``,
    if it has one, is revoked, so the browser's copy no longer signs anyone in. The user's
    sessions in other browsers keep their own tokens."""
    with store.db.write() as session:
        if token is not None and _token_format_ok(token):
            user_id = select(User.id).where(User.username == actor.username).scalar_subquery()
            session.execute(
                update(LoginToken)
                .where(
                    LoginToken.token_hash == _token_hash(token),
                    LoginToken.user_id == user_id,
                    LoginToken.revoked_at.is_(None),
                )
                .values(revoked_at=utcnow())
            )
        audit.record(session, actor.username, "logout", "user", actor.username, expired=expired)


# --- login tokens (a sign-in that survives a reload) --------------------------------------------


def _token_hash(token: str) -> str:
    """SHA-256 hex of the token: what the store keeps. The token is 256 random bits, so a plain
    hash is enough (no salt or slow hash: there is nothing to guess)."""
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


def _token_format_ok(token: str) -> bool:
    return 0 < len(token) <= MAX_LOGIN_TOKEN_LENGTH and token.isascii()


def _revoke_user_tokens(session: Session, user: User) -> None:
    session.execute(
        update(LoginToken)
        .where(LoginToken.user_id == user.id, LoginToken.revoked_at.is_(None))
        .values(revoked_at=utcnow())
    )


def _aware(moment: dt.datetime | None) -> dt.datetime:
    if moment is None:
        return utcnow()
    if moment.tzinfo is None:
        raise ValueError("now must be timezone-aware")
    return moment


def issue_login_token(store: Store, actor: Actor, now: dt.datetime | None = None) -> str:
    """A new login token for ``actor``, who has just signed in; the caller hands it to the browser.

    Only its SHA-256 is stored, with an expiry ``session_minutes`` from ``now``. Tokens that ended
    more than :data:`ENDED_LOGIN_TOKEN_KEPT` ago are deleted on the way.
    """
    now = _aware(now)
    if actor == SYSTEM:
        raise MedreviewError("the system actor does not sign in")
    token = secrets.token_urlsafe(LOGIN_TOKEN_BYTES)
    lifetime = dt.timedelta(minutes=int(get_setting(store, "session_minutes")))
    with store.db.write() as session:
        user = session.scalar(select(User).where(User.username == actor.username))
        if user is None or not user.active or user.password_hash is None:
            raise PermissionDeniedError(f"the account '{actor.username}' is not active")
        cutoff = now - ENDED_LOGIN_TOKEN_KEPT
        session.execute(delete(LoginToken).where(or_(LoginToken.expires_at < cutoff, LoginToken.revoked_at < cutoff)))
        session.add(
            LoginToken(
                user_id=user.id,
                token_hash=_token_hash(token),
                created_at=now,
                last_used_at=now,
                expires_at=now + lifetime,
            )
        )
    return token


# Why a token is refused, as the user reads it; the audit trail has the reason's name.
_REFUSALS = {
    "unknown": "this sign-in is not known (any more); please log in",
    "revoked": "you were signed out (logged out, new password or account changed); please log in again",
    "expired": "your session expired; please log in again",
}


@dataclass(frozen=True)
class _TokenCheck:
    actor: Actor | None  # the token's user; None when the token names nobody
    refusal: str | None  # None, or a key of _REFUSALS, or "inactive"
    stale: bool  # last use older than LOGIN_TOKEN_TOUCH_INTERVAL: write the use back


def _check_login_token(store: Store, token: str, now: dt.datetime) -> _TokenCheck:
    """Look the token up (a read: pages call this on every run)."""
    with store.db.read() as session:
        row = None
        if _token_format_ok(token):
            row = session.scalar(select(LoginToken).where(LoginToken.token_hash == _token_hash(token)))
        if row is None:
            return _TokenCheck(None, "unknown", stale=False)
        user = row.user
        actor = Actor(user.username, user.role)
        if not user.active or user.password_hash is None:
            refusal: str | None = "inactive"
        elif row.revoked_at is not None:
            refusal = "revoked"
        elif now >= as_utc(row.expires_at):
            refusal = "expired"
        else:
            refusal = None
        return _TokenCheck(actor, refusal, stale=now - as_utc(row.last_used_at) >= LOGIN_TOKEN_TOUCH_INTERVAL)


def _refusal_error(check: _TokenCheck) -> PermissionDeniedError:
    if check.refusal == "inactive" and check.actor is not None:
        return PermissionDeniedError(f"the account '{check.actor.username}' is no longer active; log in again")
    return PermissionDeniedError(_REFUSALS[str(check.refusal)])


def _touch_login_token(session: Session, token: str, now: dt.datetime, lifetime: dt.timedelta) -> None:
    """Record a use: the expiry slides to ``lifetime`` after it. Only a live token is touched (it may
    have been revoked since it was checked; revoked stays revoked either way)."""
    session.execute(
        update(LoginToken)
        .where(LoginToken.token_hash == _token_hash(token), LoginToken.revoked_at.is_(None))
        .values(last_used_at=now, expires_at=now + lifetime)
    )


def resume_login(store: Store, token: str, now: dt.datetime | None = None, client: str | None = None) -> Actor:
    """Sign in again with a login token the browser kept (a reload, a new tab): the user as the
    database has them now (their current role).

    Refuses, with :class:`PermissionDeniedError` and a message for the user, a token that is
    unknown, revoked, expired, or whose user was deactivated ("login.failed" with the reason).
    A resume is logged "login.resume" once per login session, not at every page load: the first
    time, and again only when the session comes back from another ``client`` address (None: not
    said, counted as this machine). Never the token or its hash.
    """
    now = _aware(now)
    client_name = throttle.client_key(client)
    lifetime = dt.timedelta(minutes=int(get_setting(store, "session_minutes")))
    check = _check_login_token(store, token, now)
    actor = check.actor
    with store.db.write() as session:
        if actor is None or check.refusal is not None:
            # An unknown token is logged as "(unknown)": it names nobody, and is never written down.
            name = "(unknown)" if actor is None else actor.username
            object_id = "" if actor is None else actor.username
            audit.record(session, name, "login.failed", "user", object_id, reason=f"session {check.refusal}")
        else:
            _touch_login_token(session, token, now, lifetime)
            # Atomic: of two tabs resuming at once, one sees the old address and logs the resume.
            moved = session.execute(
                update(LoginToken)
                .where(
                    LoginToken.token_hash == _token_hash(token),
                    or_(LoginToken.resumed_from.is_(None), LoginToken.resumed_from != client_name),
                )
                .values(resumed_from=client_name)
            )
            if moved.rowcount:
                where = {} if client is None else {"client": client_name}
                audit.record(session, actor.username, "login.resume", "user", actor.username, **where)
    if actor is None or check.refusal is not None:
        raise _refusal_error(check)
    return actor


def refresh_login(store: Store, token: str, now: dt.datetime | None = None) -> Actor:
    """The signed-in user of a running session, checked again through its login token: call on every
    page run so that logging out elsewhere, deactivation or a new password end the session at once,
    and a role change applies at once. Refuses as :func:`resume_login` does, without auditing
    (the session already began); keeps the token's expiry sliding, writing at most once a minute."""
    now = _aware(now)
    check = _check_login_token(store, token, now)
    if check.actor is None or check.refusal is not None:
        raise _refusal_error(check)
    if check.stale:
        lifetime = dt.timedelta(minutes=int(get_setting(store, "session_minutes")))
        with store.db.write() as session:
            _touch_login_token(session, token, now, lifetime)
    return check.actor


def revoke_login_token(store: Store, token: str) -> None:
    """End one login token (whoever's it is); an unknown or already ended token is left as it is."""
    if not _token_format_ok(token):
        return
    with store.db.write() as session:
        session.execute(
            update(LoginToken)
            .where(LoginToken.token_hash == _token_hash(token), LoginToken.revoked_at.is_(None))
            .values(revoked_at=utcnow())
        )


@dataclass
class LoginSession:
    """A logged-in user in the UI's session state; expires after a period of inactivity
    (the project setting ``session_minutes``). Pure logic: the page decides what "now" is."""

    actor: Actor
    last_seen: dt.datetime  # timezone-aware UTC
    # The login token the browser keeps (see issue_login_token); None for a session without one.
    # Out of repr, so a logged or printed session never shows it.
    token: str | None = field(default=None, repr=False)
    # Signed in with a password someone else set (see password_change_required): no page opens
    # until the user has chosen their own.
    must_change_password: bool = False

    def __post_init__(self) -> None:
        if self.last_seen.tzinfo is None:
            raise ValueError("last_seen must be timezone-aware")

    def expired(self, now: dt.datetime, timeout_minutes: int) -> bool:
        """True when more than ``timeout_minutes`` passed since the last activity."""
        if now.tzinfo is None:
            raise ValueError("now must be timezone-aware")
        if timeout_minutes <= 0:
            raise ValueError("timeout_minutes must be positive")
        return now - self.last_seen > dt.timedelta(minutes=timeout_minutes)

    def touch(self, now: dt.datetime) -> None:
        """Record activity; the inactivity clock restarts."""
        if now.tzinfo is None:
            raise ValueError("now must be timezone-aware")
        self.last_seen = now
