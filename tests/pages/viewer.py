"""Driving the viewer component in AppTest.

The viewer (a Components v2 element) appears in AppTest as an UnknownElement whose proto carries the
JSON data the browser would get. What the browser reports back is simulated by giving the
component's key the state it would send: ``{"sync": {...}}`` (ui/viewer/src/types.ts SyncState).
"""

from __future__ import annotations

import base64
import functools
import itertools
import json
import zlib
from typing import Any

import numpy as np
from streamlit.testing.v1 import AppTest

_ticks = itertools.count(1)
DTYPES = {"int16": "<i2", "uint16": "<u2", "float32": "<f4", "uint8": "|u1"}


def viewer_data(app: AppTest, key: str) -> dict[str, Any]:
    """The data the page sent the viewer mounted under ``key`` in its last run."""
    found = [element for element in app.get("bidi_component") if element.key == key]
    assert found, f"no viewer {key!r} on the page"
    return json.loads(found[0].proto.json)


def report(app: AppTest, key: str, **sync: Any) -> dict[str, Any]:
    """Rerun the page as if the browser reported ``sync`` (position, want, pending, view); returns
    the data the page sent back. Every report is a new request (a new tick), as in the browser."""
    state = {"position": None, "want": [], "pending": [], "view": None, **sync, "tick": next(_ticks)}
    app.session_state[key] = {"sync": state}
    app.run()
    assert not app.exception, app.exception
    return viewer_data(app, key)


def frame_values(row: dict[str, Any]) -> np.ndarray:
    """A pixel row the page sent, back to its (H, W) or (H, W, 3) values."""
    values = np.frombuffer(zlib.decompress(base64.b64decode(row["data"])), dtype=DTYPES[row["dtype"]])
    shape = (row["height"], row["width"]) if row["channels"] == 1 else (row["height"], row["width"], 3)
    return values.reshape(shape)


def save(seq: int, image_id: int, label: str | None = None, **extra: Any) -> dict[str, Any]:
    """One pending read as the viewer holds it."""
    return {"seq": seq, "imageId": image_id, "label": label, "labels": None, "boxes": None, "seconds": 2.5,
            "unsure": False, **extra}  # fmt: skip


def rerun_fragment(app: AppTest, fragment_id: str, key: str, **sync: Any) -> dict[str, Any]:
    """Rerun only the fragment ``fragment_id`` as if the viewer mounted under ``key`` inside it
    reported ``sync``, as the browser does (a widget in a fragment sends its fragment's id with the
    report, and Streamlit runs that fragment alone: no app.py, no page script); returns the data
    the fragment sent the viewer."""
    run_fragment(app, fragment_id, key, **sync)
    return viewer_data(app, key)


def run_fragment(app: AppTest, fragment_id: str, key: str, **sync: Any) -> None:
    """Rerun only the fragment ``fragment_id``, the viewer under ``key`` having last reported
    ``sync`` (another widget of that fragment changed: the Label worklist's follower)."""
    from unittest import mock

    from streamlit.testing.v1 import local_script_runner

    fragment_run = functools.partial(local_script_runner.RerunData, fragment_id_queue=[fragment_id])
    state = {"position": None, "want": [], "pending": [], "view": None, **sync, "tick": next(_ticks)}
    app.session_state[key] = {"sync": state}
    with mock.patch.object(local_script_runner, "RerunData", fragment_run):
        app.run()
    assert not app.exception, app.exception


def fragment_id(app: AppTest, key: str) -> str:
    """The id of the fragment drawn with ``@st.fragment(key=key)`` in the app's last run."""
    [found] = app._fragment_storage.resolve_target(key)
    return found
