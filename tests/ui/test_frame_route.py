"""The case viewer's frame route (ui/frame_route.py): a frame token serves the images its page run
offered, to a sign-in that still holds, and nothing else."""

from __future__ import annotations

import json
import struct

import numpy as np

from medreview.imaging.decoding import DecodedImage
from medreview.store import Store
from medreview.team.accounts import create_first_admin, issue_login_token, revoke_login_token
from ui import frame_route
from ui.frame_route import GRANT_SECONDS, FrameGrants, serve_frames


def slice_of(value: int) -> DecodedImage:
    frames = np.full((1, 4, 6), value, dtype=np.float32)  # one 6 x 4 frame
    return DecodedImage(
        frames=frames,
        is_color=False,
        photometric_interpretation="MONOCHROME2",
        modality="CT",
        default_window=None,
        voi_lut=None,
    )


def parse(body: bytes) -> tuple[list[dict], list[bytes]]:
    (length,) = struct.unpack("<I", body[:4])
    entries = json.loads(body[4 : 4 + length])
    payloads, offset = [], 4 + length
    for entry in entries:
        if "bytes" in entry:
            payloads.append(body[offset : offset + entry["bytes"]])
            offset += entry["bytes"]
    assert offset == len(body)
    return entries, payloads


def test_a_token_serves_the_offered_frames_while_the_sign_in_holds(store: Store, monkeypatch):
    actor = create_first_admin(store, "admin", "a long enough password")
    login = issue_login_token(store, actor)
    now = [100.0]
    grants = FrameGrants(clock=lambda: now[0])
    monkeypatch.setattr(frame_route.time, "monotonic", lambda: now[0])
    token = grants.grant(None, login_token=login, store=store, load=slice_of, image_ids=[7, 8])

    status, body, media_type = serve_frames(token, "7:0,9:0,8:3,x", registry=grants)
    assert status == 200 and media_type == "application/octet-stream"
    entries, payloads = parse(body)
    assert entries[0]["key"] == "7:0" and (entries[0]["width"], entries[0]["height"]) == (6, 4)
    assert np.all(np.frombuffer(payloads[0], dtype=entries[0]["dtype"]) == 7)
    # Not offered to this viewer, a frame the image lacks, not a frame: refused one by one.
    assert entries[1] == {"key": "9:0", "missing": "not available to you"}
    assert "frame 3 does not exist" in entries[2]["missing"]
    assert entries[3] == {"key": "x", "missing": "not a frame"}

    # The next run offers another case: the previous one's frames still come (a viewer ahead of
    # the server), the one before that no longer does.
    assert grants.grant(token, login_token=login, store=store, load=slice_of, image_ids=[9]) == token
    assert [entry.get("missing") for entry in parse(serve_frames(token, "7:0,9:0", registry=grants)[1])[0]] == [
        None,
        None,
    ]
    grants.grant(token, login_token=login, store=store, load=slice_of, image_ids=[10])
    assert parse(serve_frames(token, "7:0", registry=grants)[1])[0][0]["missing"] == "not available to you"

    # Logged out (here or in another tab): the next request is refused, and the token is gone.
    now[0] += 2  # past the once-a-second check of the sign-in
    revoke_login_token(store, login)
    status, body, _ = serve_frames(token, "10:0", registry=grants)
    assert status == 403 and "log in" in json.loads(body)["error"].lower()
    assert grants.lookup(token) is None


def test_a_token_expires_without_runs_and_is_never_another_logins(store: Store):
    actor = create_first_admin(store, "admin", "a long enough password")
    login, other = issue_login_token(store, actor), issue_login_token(store, actor)
    now = [0.0]
    grants = FrameGrants(clock=lambda: now[0])
    token = grants.grant(None, login_token=login, store=store, load=slice_of, image_ids=[1])
    assert grants.grant(token, login_token=other, store=store, load=slice_of, image_ids=[1]) != token
    now[0] += GRANT_SECONDS + 1
    assert serve_frames(token, "1:0", registry=grants)[0] == 403
    assert serve_frames("a-guessed-token", "1:0", registry=grants)[0] == 403


def test_a_viewer_sends_its_active_seconds_for_an_offered_image_only(store: Store, monkeypatch):
    actor = create_first_admin(store, "admin", "a long enough password")
    login = issue_login_token(store, actor)
    grants = FrameGrants()
    token = grants.grant(None, login_token=login, store=store, load=slice_of, image_ids=[7])

    assert frame_route.record_active(token, b'{"imageId": 7, "seconds": 42.5}', registry=grants) == 204
    assert frame_route.active_seconds(token, 7, registry=grants) == 42.5
    # An image not offered, a bad body, an impossible figure, an unknown token: nothing kept.
    assert frame_route.record_active(token, b'{"imageId": 8, "seconds": 3}', registry=grants) == 403
    assert frame_route.record_active(token, b"not json", registry=grants) == 400
    assert frame_route.record_active(token, b'{"imageId": 7, "seconds": -1}', registry=grants) == 400
    assert frame_route.record_active("unknown", b'{"imageId": 7, "seconds": 1}', registry=grants) == 403
    assert frame_route.active_seconds(token, 8, registry=grants) is None
    assert frame_route.active_seconds(token, 7, registry=grants) == 42.5
    # After a logout the token's sign-in no longer holds.
    revoke_login_token(store, login)
    monkeypatch.setattr(frame_route.time, "monotonic", lambda: 1e12)  # past the once-a-second check
    assert frame_route.record_active(token, b'{"imageId": 7, "seconds": 50}', registry=grants) == 403
