"""Frames over HTTP for the case viewer: four viewports fetch their slices in parallel, each request a
batch of frames, without a run of the page per request (issue 17 item 8).

The websocket path (ui/viewer.py: the viewer's ``want`` answered by the fragment's next run) costs a
run of the page for every 16 frames, one run at a time: four 512 x 512 series scrolled together
need 120 frames a second. This route serves the same encoded frames (medreview.imaging.transfer)
straight from the process's decoded-image cache.

Who gets pixels: a page run that mounts a case viewer grants its session a *frame token*
(:func:`grant_frames`): 32 random bytes, unguessable, named in the viewer's data (so only that
browser tab learns it), valid for the images the run offered the viewer (the case and the next one,
and the previous run's: a viewer ahead of the server) and for :data:`GRANT_SECONDS` after the last
run. Each request checks the grant and then the session's login token against the store
(``refresh_login``): a logout, here or in another tab, a deactivation or an expired session refuses
the next request, as it refuses the next run of the page. An image the run did not offer is refused
per frame. The login token itself never leaves the server.

Response: ``application/octet-stream``: a 4-byte little-endian length, that many bytes of JSON (one
entry per key asked for, in order: {key, dtype, width, height, channels, bytes} or {key, missing}),
then the entries' values one after another, uncompressed (row-major, little-endian): deflating a
512 x 512 slice (~15 ms here) costs more than sending its 512 kB, and a batch is never gzipped
(``Content-Encoding: identity`` keeps Streamlit's gzip middleware off it).

Served by the app's ASGI entry (asgi.py, ``st.App`` with :func:`frame_routes`). This module never
imports streamlit: the route runs outside any script run.
"""

from __future__ import annotations

import json
import secrets
import struct
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from medreview.errors import MedreviewError
from medreview.imaging.transfer import encode_frame

if TYPE_CHECKING:
    from medreview.imaging.decoding import DecodedImage
    from medreview.store import Store

__all__ = [
    "ACTIVE_PATH",
    "FRAMES_PATH",
    "GRANT_SECONDS",
    "MAX_KEYS",
    "FrameGrants",
    "active_seconds",
    "frame_routes",
    "grants",
    "record_active",
    "serve_frames",
]

FRAMES_PATH = "/medreview/frames"
# Where a viewer sends the active reading seconds of its image (record_active).
ACTIVE_PATH = "/medreview/active"
# A grant lives this long after the last page run that renewed it.
GRANT_SECONDS = 15 * 60
# Frames one request may ask for (a batch the browser decodes while the next is on its way).
MAX_KEYS = 32
# Grants held at once (a session that goes away leaves its grant to expire; the oldest go first).
MAX_GRANTS = 4096


@dataclass
class Grant:
    login_token: str
    store: Store
    load: Callable[[int], DecodedImage]
    image_ids: frozenset[int]
    previous_ids: frozenset[int] = frozenset()
    expires: float = 0.0
    checked_at: float = field(default=-1e9)
    # Active reading seconds per image, as the viewer last sent them (record_active).
    active: dict[int, float] = field(default_factory=dict)


class FrameGrants:
    """Frame tokens -> what they may fetch. Shared by the page runs (which grant) and the route
    (which checks); thread-safe."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._grants: dict[str, Grant] = {}
        self._lock = threading.Lock()
        self._clock = clock

    def grant(
        self,
        token: str | None,
        *,
        login_token: str,
        store: Store,
        load: Callable[[int], DecodedImage],
        image_ids: Iterable[int],
    ) -> str:
        """Renew ``token`` (or make a new one when it is None, unknown or of another login) for
        ``image_ids``, keeping the ids of its previous grant too; returns the token."""
        ids = frozenset(int(image_id) for image_id in image_ids)
        now = self._clock()
        with self._lock:
            held = self._grants.get(token) if token else None
            if held is None or held.login_token != login_token or held.expires <= now:
                token = secrets.token_urlsafe(32)
                held = Grant(login_token, store, load, frozenset())
                self._grants[token] = held
            if ids != held.image_ids:
                held.previous_ids, held.image_ids = held.image_ids, ids
            held.store, held.load, held.expires = store, load, now + GRANT_SECONDS
            self._grants[token] = self._grants.pop(token)  # the newest last
            while len(self._grants) > MAX_GRANTS:
                self._grants.pop(next(iter(self._grants)))
        return token

    def revoke(self, token: str | None) -> None:
        with self._lock:
            self._grants.pop(token or "", None)

    def lookup(self, token: str) -> Grant | None:
        """The live grant of ``token``; None when unknown or expired."""
        now = self._clock()
        with self._lock:
            held = self._grants.get(token)
            if held is not None and held.expires <= now:
                del self._grants[token]
                held = None
        return held


grants = FrameGrants()


def _login_refused(held: Grant) -> str | None:
    """Why the grant's sign-in no longer gets pixels (None: it still does). The store is asked at
    most once a second per grant: a logout refuses the requests after it within that second."""
    now = time.monotonic()
    if now - held.checked_at < 1.0:
        return None
    from medreview.team.accounts import refresh_login

    try:
        refresh_login(held.store, held.login_token)
    except MedreviewError as error:
        return str(error)
    held.checked_at = now
    return None


def serve_frames(token: str, keys_text: str, registry: FrameGrants | None = None) -> tuple[int, bytes, str]:
    """(HTTP status, body, media type) for ``keys_text`` ("<image id>:<frame>,..."), see the module
    docstring. 403 with a JSON reason when the token or its sign-in no longer holds."""
    held = (registry or grants).lookup(token)
    if held is None:
        expired = {"error": "this viewer's frame token expired: reload the page"}
        return 403, json.dumps(expired).encode(), "application/json"
    refusal = _login_refused(held)
    if refusal is not None:
        (registry or grants).revoke(token)
        return 403, json.dumps({"error": refusal}).encode(), "application/json"
    keys = [key for key in keys_text.split(",") if key][:MAX_KEYS]
    entries: list[dict[str, Any]] = []
    payloads: list[bytes] = []
    for key in keys:
        try:
            image_part, frame_part = key.split(":")
            image_id, frame_index = int(image_part), int(frame_part)
        except ValueError:
            entries.append({"key": key, "missing": "not a frame"})
            continue
        if image_id not in held.image_ids and image_id not in held.previous_ids:
            entries.append({"key": key, "missing": "not available to you"})
            continue
        try:
            encoded = encode_frame(held.load(image_id), frame_index, compress=False)
        except (MedreviewError, ValueError) as error:
            entries.append({"key": key, "missing": str(error)})
            continue
        entries.append(
            {
                "key": f"{image_id}:{frame_index}",
                "dtype": encoded.dtype,
                "width": encoded.width,
                "height": encoded.height,
                "channels": encoded.channels,
                "bytes": len(encoded.payload),
            }
        )
        payloads.append(encoded.payload)
    header = json.dumps(entries).encode()
    return 200, b"".join([struct.pack("<I", len(header)), header, *payloads]), "application/octet-stream"


def record_active(token: str, body: bytes, registry: FrameGrants | None = None) -> int:
    """Keep the active reading seconds the viewer sends for an image it was offered (a JSON body
    ``{"imageId": N, "seconds": S}``, sent as a beacon when the reader leaves the image for the
    page's own controls: no run of the page). Returns the HTTP status: 204 kept, 400 a bad body,
    403 the token or its sign-in no longer holds, or an image not offered."""
    held = (registry or grants).lookup(token)
    if held is None or _login_refused(held) is not None:
        return 403
    try:
        sent = json.loads(body[:1000])
        image_id, seconds = int(sent["imageId"]), float(sent["seconds"])
    except (ValueError, TypeError, KeyError):
        return 400
    if not 0 <= seconds < 86_400:
        return 400
    if image_id not in held.image_ids and image_id not in held.previous_ids:
        return 403
    held.active[image_id] = seconds
    return 204


def active_seconds(token: str | None, image_id: int, registry: FrameGrants | None = None) -> float | None:
    """The active reading seconds the viewer of ``token`` last sent for ``image_id`` (None: none)."""
    held = (registry or grants).lookup(token) if token else None
    return None if held is None else held.active.get(int(image_id))


def frame_routes() -> list[Any]:
    """The Starlette routes of this module, for ``st.App(routes=...)``."""
    from starlette.concurrency import run_in_threadpool
    from starlette.responses import Response
    from starlette.routing import Route

    def frames(request: Any) -> Any:  # a plain function: Starlette runs it in its thread pool
        status, body, media_type = serve_frames(request.path_params["token"], request.query_params.get("k", ""))
        headers = {"Cache-Control": "no-store", "Content-Encoding": "identity"}
        return Response(body, status_code=status, media_type=media_type, headers=headers)

    async def active(request: Any) -> Any:
        body = await request.body()
        # The sign-in check reads the store: in the thread pool, off the event loop.
        status = await run_in_threadpool(record_active, request.path_params["token"], body)
        return Response(status_code=status)

    return [
        Route(FRAMES_PATH + "/{token}", frames, methods=["GET"]),
        Route(ACTIVE_PATH + "/{token}", active, methods=["POST"]),
    ]
