"""The back-off after failed sign-ins (medreview.team.throttle through accounts.authenticate):
guessing waits longer and longer, a wait is short and capped, and nobody can use it to keep
someone else out."""

from __future__ import annotations

import datetime as dt
import json

import argon2
import pytest
from sqlalchemy import select

from medreview.errors import MedreviewError
from medreview.store.models import AuditEvent, SignInFailure
from medreview.team import accounts, throttle
from medreview.team.accounts import authenticate, create_first_admin, create_user
from medreview.team.roles import Actor

pytestmark = pytest.mark.usefixtures("fast_hashing")

PASSWORD = "correct horse battery"
START = dt.datetime(2026, 11, 3, 9, 0, tzinfo=dt.UTC)
ATTACKER = "203.0.113.66"
DESK = "198.51.100.7"


def _team(store) -> Actor:
    admin = create_first_admin(store, "ada", PASSWORD)
    create_user(store, admin, "ann", PASSWORD, "annotator", temporary=False)
    return admin


def _fail(store, username: str, at: dt.datetime, client: str = ATTACKER) -> str:
    """One wrong password; returns the message the user reads."""
    with pytest.raises(MedreviewError) as refused:
        authenticate(store, username, "not the password", client=client, now=at)
    return str(refused.value)


def _wait(store, username: str, at: dt.datetime, client: str = ATTACKER) -> int:
    with store.db.read() as session:
        return throttle.wait_before_attempt(session, client, username, at).seconds


def _fail_as_fast_as_allowed(store, username: str, count: int, client: str = ATTACKER) -> dt.datetime:
    """``count`` wrong passwords, each as soon as the back-off allows; returns the last one's time."""
    moment = START
    for number in range(count):
        if number:
            moment += dt.timedelta(seconds=_wait(store, username, moment, client))
        _fail(store, username, moment, client)
    return moment


def _events(store, action: str) -> list[AuditEvent]:
    with store.db.read() as session:
        return list(session.scalars(select(AuditEvent).where(AuditEvent.action == action).order_by(AuditEvent.id)))


def test_eight_wrong_passwords_then_the_right_one_must_wait(any_store):
    _team(any_store)
    last = _fail_as_fast_as_allowed(any_store, "ada", 8)
    with pytest.raises(MedreviewError, match=r"too many failed sign-ins from here: wait 32 seconds, then try again"):
        authenticate(any_store, "ada", PASSWORD, client=ATTACKER, now=last)
    # Not a lock: once the wait is over the right password signs in.
    assert authenticate(any_store, "ada", PASSWORD, client=ATTACKER, now=last + dt.timedelta(seconds=32)).username
    [throttled] = _events(any_store, "login.throttled")
    assert (throttled.actor, throttled.object_id) == ("ada", "ada")
    assert throttled.details == {"wait_seconds": 32, "scope": "account", "client": ATTACKER}
    assert len(_events(any_store, "login.failed")) == 8 and len(_events(any_store, "login")) == 1


def test_the_wait_doubles_after_three_free_failures_up_to_a_minute(any_store):
    _team(any_store)
    waits = []
    moment = START
    for _ in range(12):
        _fail(any_store, "ada", moment)
        waits.append(_wait(any_store, "ada", moment))
        moment += dt.timedelta(seconds=waits[-1])  # tries again as soon as allowed
    assert waits == [0, 0, 1, 2, 4, 8, 16, 32, 60, 60, 60, 60]


def test_an_attempt_inside_the_wait_is_not_checked_and_does_not_lengthen_it(any_store, monkeypatch):
    _team(any_store)
    last = _fail_as_fast_as_allowed(any_store, "ada", 5)  # 5 failures: wait 4 seconds
    checked = []
    real_verify = accounts._hasher.verify

    class CountingHasher(argon2.PasswordHasher):
        def verify(self, hash, password):  # type: ignore[no-untyped-def]
            checked.append(password)
            return real_verify(hash, password)

    monkeypatch.setattr(accounts, "_hasher", CountingHasher(time_cost=1, memory_cost=8192, parallelism=1))
    for second in range(4):
        with pytest.raises(MedreviewError, match=f"wait {4 - second} second"):
            authenticate(any_store, "ada", PASSWORD, client=ATTACKER, now=last + dt.timedelta(seconds=second))
    assert checked == []  # guessing inside the wait learns nothing
    assert authenticate(any_store, "ada", PASSWORD, client=ATTACKER, now=last + dt.timedelta(seconds=4))
    assert checked == [PASSWORD]
    assert [event.details["wait_seconds"] for event in _events(any_store, "login.throttled")] == [4, 3, 2, 1]


def test_an_attacker_cannot_keep_the_admin_out(any_store):
    _team(any_store)
    moment = _fail_as_fast_as_allowed(any_store, "ada", 40)  # an attacker failing on the admin's account
    # The admin at their own desk is not delayed at all...
    assert authenticate(any_store, "ada", PASSWORD, client=DESK, now=moment).username == "ada"
    # ...and even from the attacker's own address the wait is never more than a minute.
    with pytest.raises(MedreviewError, match="wait 60 seconds"):
        authenticate(any_store, "ada", PASSWORD, client=ATTACKER, now=moment)
    assert authenticate(any_store, "ada", PASSWORD, client=ATTACKER, now=moment + throttle.MAX_DELAY).username


def test_a_client_trying_many_names_waits_for_every_name(any_store):
    _team(any_store)
    names = ["ann", "ada", "bob", "carol", "dave"]
    for attempt in range(10):  # two failures per name: under each name's free three
        _fail(any_store, names[attempt % len(names)], START)
    # Every name now waits from this client, an existing account's as well as an unknown one...
    for name, password in (("ann", PASSWORD), ("zed", "whatever-password")):
        with pytest.raises(MedreviewError, match="wait 1 second, then try again"):
            authenticate(any_store, name, password, client=ATTACKER, now=START)
    [first, second] = _events(any_store, "login.throttled")
    assert first.details["scope"] == "client" and second.actor == "(unknown)"
    # ...and another client does not.
    assert authenticate(any_store, "ann", PASSWORD, client=DESK, now=START).username == "ann"


def test_success_clears_the_accounts_wait_but_not_the_clients(any_store):
    _team(any_store)
    for number in range(3):
        _fail(any_store, "ann", START + dt.timedelta(seconds=number))
    for number in range(7):
        _fail(any_store, "nobody", START + dt.timedelta(seconds=100 + 10 * number))
    later = START + dt.timedelta(seconds=200)
    assert authenticate(any_store, "ann", PASSWORD, client=ATTACKER, now=later).username == "ann"
    with any_store.db.read() as session:
        rows = {row.account: row.failures for row in session.scalars(select(SignInFailure))}
    # ann's row went with the right password; the client's row over all names stays (a guesser
    # with an account of their own cannot wipe it by signing in between guesses).
    assert "ann" not in rows and rows[throttle.ANY_ACCOUNT] == 10


def test_a_quiet_client_starts_again_from_zero(any_store):
    _team(any_store)
    last = _fail_as_fast_as_allowed(any_store, "ada", 8)
    assert _wait(any_store, "ada", last) == 32
    quiet = last + throttle.FORGET_AFTER + dt.timedelta(seconds=1)
    assert authenticate(any_store, "ada", PASSWORD, client=ATTACKER, now=quiet).username == "ada"
    _fail(any_store, "ann", quiet)  # the next failure also deletes rows of clients gone quiet
    with any_store.db.read() as session:
        rows = {row.account: row.failures for row in session.scalars(select(SignInFailure))}
    assert rows == {"ann": 1, throttle.ANY_ACCOUNT: 1}


def test_a_name_that_matches_no_account_waits_the_same_and_is_never_stored(any_store):
    _team(any_store)
    typed = "my-secret-password-typed-as-a-name"
    moments = [START + dt.timedelta(seconds=second) for second in range(6)]
    known = [_fail(any_store, "ada", moment) for moment in moments]
    unknown = [_fail(any_store, typed, moment, client=DESK) for moment in moments]
    # The same answers, attempt by attempt: the back-off does not tell which names exist.
    assert unknown == known
    assert known.count("wrong user name or password") == 5 and "wait 1 second" in known[4]
    with any_store.db.read() as session:
        stored = repr([(row.client, row.account) for row in session.scalars(select(SignInFailure))])
    assert typed not in stored and "ada" in stored
    assert typed not in json.dumps([(event.actor, event.details) for event in _events(any_store, "login.throttled")])
