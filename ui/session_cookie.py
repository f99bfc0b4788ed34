"""The browser's copy of the login token: a cookie that brings the sign-in back after a reload.

Streamlit 1.67 shows a script the cookies of the request that opened its session
(``st.context.cookies``: read-only, and fixed for the session's life) and has no way to set one
from Python. So a tiny Components v2 element (inline JavaScript, no iframe, zero height) writes
the cookie in the page, and the next page load (F5, a new tab, a typed URL) sends it with the
request that opens the new session, where :func:`sent_token` reads it.

The cookie: ``medreview_session``, ``Path=/`` (the websocket is /_stcore/stream), ``SameSite=Strict``
(never sent by another site's link or form), ``Max-Age`` the session length (rewritten at most
once a minute while the user works, so it slides as the server's expiry does), ``Secure`` when the
page is served over https. It cannot be ``HttpOnly``, since script writes it; what it holds is
worth little alone: the store has only its hash, and logging out, deactivation, a new password or
an expiry end it server-side (medreview.team.accounts).

Writes are requested through session state (:func:`remember`, :func:`forget`) and happen where the
app mounts :func:`sync` on each run; the element runs its script only when what it is given changes.
"""

from __future__ import annotations

import time

import streamlit as st

__all__ = ["COOKIE_NAME", "STATE_KEYS", "forget", "remember", "sent_token", "sync"]

COOKIE_NAME = "medreview_session"
# Session state: what the cookie should hold ({"token", "max_age"[, "minute"]}); absent: leave it.
_WANTED = "session_cookie_wanted"
# The session state this module keeps: it outlives a sign-in (forget() is carried out after it).
STATE_KEYS = frozenset({_WANTED})

# `data` is {"name", "token", "max_age"[, "minute"]}: an empty token clears the cookie. The minute
# is not read; it only changes the data, which is what makes the element run again.
_JS = """
export default function (component) {
  const data = component.data;
  if (!data || !data.name) {
    return;
  }
  const secure = window.location.protocol === "https:" ? "; Secure" : "";
  const value = data.token ? encodeURIComponent(data.token) : "";
  const maxAge = data.token ? Math.max(0, Math.floor(data.max_age)) : 0;
  document.cookie = `${data.name}=${value}; Path=/; Max-Age=${maxAge}; SameSite=Strict${secure}`;
}
"""

_cookie_writer = st.components.v2.component("medreview_session_cookie", js=_JS)


def sent_token() -> str | None:
    """The login token the browser sent when this session opened, if any."""
    return st.context.cookies.get(COOKIE_NAME) or None


def remember(token: str, max_age_seconds: int) -> None:
    """Have the browser keep ``token`` for ``max_age_seconds``. Called on every signed-in run: the
    cookie is rewritten when the minute changes, so its life counts from the last activity."""
    st.session_state[_WANTED] = {"token": token, "max_age": max_age_seconds, "minute": int(time.time() // 60)}


def forget() -> None:
    """Have the browser drop the cookie (logout, or a login that ended or was refused). Unlike
    :func:`remember` this does not change by the minute: a signed-out tab left open must not clear,
    on some later rerun, the cookie that another tab of the same browser has set since."""
    st.session_state[_WANTED] = {"token": "", "max_age": 0}


def sync() -> None:
    """Mount the cookie writer with what :func:`remember` / :func:`forget` asked for (nothing if
    neither was called in this session). Call once per run, in the container it should sit in."""
    wanted = st.session_state.get(_WANTED)
    if wanted is not None:
        _cookie_writer(key="session_cookie", data={"name": COOKIE_NAME, **wanted}, height=0)
