"""The back-off after failed sign-ins: password guessing slows down, and nobody can lock an account.

Each failed sign-in counts against two rows of ``sign_in_failures``
(:class:`~medreview.store.models.SignInFailure`): the client's row for the account name tried, and
the client's row over every name. Past a few free failures a row imposes a wait before the next
attempt, counted from its last failure, that doubles with each further failure up to
:data:`MAX_DELAY`. An attempt inside the wait is refused before the password is looked at (so
guessing gains nothing by trying) and is not counted (so it never makes the wait longer). The
right password clears the client's row for that account; rows of a client quiet for
:data:`FORGET_AFTER` count from zero again.

Why per client, and not per account across every client: an account-wide lock is a lock-out an
attacker can use, failing on purpose to keep an admin out for as long as they keep at it. Here an
attacker's failures delay only the attacker's client, and never for more than :data:`MAX_DELAY`;
the admin at their own desk is not delayed at all. The price: guessing spread over many client
addresses is slowed per address. Behind a reverse proxy every client has the proxy's address, so
its clients share these rows (the wait is still capped).

The client is the address Streamlit reports for the browser's connection (``"local"`` when it is
this machine). The account name of a user that does not exist is kept only as a hash under a key
that lives in this process's memory: people type their password into the name field, and the
table must not keep it (the same reason the audit trail logs such a name as "(unknown)").
"""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import math
import secrets
from dataclasses import dataclass

from sqlalchemy import delete, select, update
from sqlalchemy.orm import Session

from medreview.store.db import insert_missing
from medreview.store.models import SignInFailure, as_utc

__all__ = [
    "FORGET_AFTER",
    "MAX_DELAY",
    "Wait",
    "account_key",
    "client_key",
    "record_failure",
    "record_success",
    "wait_before_attempt",
]

# Failures allowed before the first wait: for one account name, and over all names from a client
# (a few typos are free; trying many names from one client is a guess at someone's password).
ACCOUNT_FREE_FAILURES = 3
CLIENT_FREE_FAILURES = 10
# The first wait; each failure after it doubles the wait, up to MAX_DELAY.
FIRST_DELAY = dt.timedelta(seconds=1)
MAX_DELAY = dt.timedelta(seconds=60)
# A client that has not failed for this long starts again from zero (its rows are deleted).
FORGET_AFTER = dt.timedelta(minutes=15)

# Over every account name (the client's own row).
ANY_ACCOUNT = ""
_CLIENT_MAX = 64  # SignInFailure.client is String(64)
# Names that match no account are hashed under this; it never leaves the process.
_UNKNOWN_NAME_KEY = secrets.token_bytes(32)


@dataclass(frozen=True)
class Wait:
    """How long the client must wait before its next attempt, and why."""

    seconds: int  # whole seconds, rounded up; 0: no wait
    scope: str  # "account" (this name from this client) or "client" (every name from this client)


def client_key(address: str | None) -> str:
    """The row key of a client address (None: this machine)."""
    return (address or "local")[:_CLIENT_MAX]


def account_key(username: str, exists: bool) -> str:
    """The row key of an account name tried: the user name when it names an account, else "?" and
    a keyed hash of what was typed (a user name never starts with "?", so the two never collide)."""
    if exists:
        return username
    digest = hmac.new(_UNKNOWN_NAME_KEY, username.encode("utf-8"), hashlib.sha256).hexdigest()
    return "?" + digest[:63]


def _delay(failures: int, free: int) -> dt.timedelta:
    """The wait after ``failures`` consecutive failures of a row allowing ``free`` of them."""
    if failures < free:
        return dt.timedelta(0)
    # min() on the exponent first: 2 ** failures is huge for a long attack.
    return min(FIRST_DELAY * 2 ** min(failures - free, 16), MAX_DELAY)


def _rows(session: Session, client: str, account: str) -> dict[str, SignInFailure]:
    rows = session.scalars(
        select(SignInFailure).where(SignInFailure.client == client, SignInFailure.account.in_((account, ANY_ACCOUNT)))
    ).all()
    return {row.account: row for row in rows}


def wait_before_attempt(session: Session, client: str, account: str, now: dt.datetime) -> Wait:
    """The wait the client must still sit out before trying ``account`` (0 seconds: try now)."""
    rows = _rows(session, client, account)
    longest = Wait(0, "account")
    limits = (("account", account, ACCOUNT_FREE_FAILURES), ("client", ANY_ACCOUNT, CLIENT_FREE_FAILURES))
    for scope, key, free in limits:
        row = rows.get(key)
        if row is None or now - as_utc(row.last_failure_at) >= FORGET_AFTER:
            continue
        remaining = as_utc(row.last_failure_at) + _delay(row.failures, free) - now
        seconds = max(0, math.ceil(remaining.total_seconds()))
        if seconds > longest.seconds:
            longest = Wait(seconds, scope)
    return longest


def record_failure(session: Session, client: str, account: str, now: dt.datetime) -> None:
    """Count a failed sign-in against the client's row for ``account`` and its row over all names,
    inside the caller's write session. Rows quiet for :data:`FORGET_AFTER` start again at one."""
    session.execute(delete(SignInFailure).where(SignInFailure.last_failure_at < now - FORGET_AFTER))
    keys = (account, ANY_ACCOUNT)
    insert_missing(
        session,
        SignInFailure,
        [{"client": client, "account": key, "failures": 0, "last_failure_at": now} for key in keys],
        conflict_columns=["client", "account"],
    )
    # One statement per row, the increment in SQL: two failures at once (two tabs, two app
    # processes) both count, with no read-modify-write in between.
    session.execute(
        update(SignInFailure)
        .where(SignInFailure.client == client, SignInFailure.account.in_(keys))
        .values(failures=SignInFailure.failures + 1, last_failure_at=now)
    )


def record_success(session: Session, client: str, account: str) -> None:
    """The right password: the client's row for that account goes. Its row over all names stays
    (a guesser with an account of their own must not clear it by signing in between guesses)."""
    session.execute(delete(SignInFailure).where(SignInFailure.client == client, SignInFailure.account == account))
