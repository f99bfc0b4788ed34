"""The image viewer shared by the pages: one Streamlit Components v2 component (TypeScript source and
its committed build under ui/viewer/), the process-wide cache of decoded images, and the server half
of the viewer's protocol.

Protocol (ui/viewer/src/types.ts is the other half). The component keeps one state value, ``sync``:
the image the reader is on (``position``), the frames it wants in priority order (``want``), the
reads not yet acknowledged (``pending``) and a counter (``tick``) that grows whenever it asks again.
Each run of a page reads that state before mounting the component, saves the pending reads
(idempotently: a read's ``seq`` is saved once per session), and sends back in ``data`` the frames
asked for (up to a byte budget a run), the acknowledgements and failures, and the worklist from the
current image on. That way pixels reach the browser only through the signed-in Streamlit session's
websocket. Where a run gives them a frame URL the viewers fetch their frames over HTTP instead
(ui/frame_route.py: a run per 16 frames is too slow for a scrolled CT, let alone four viewports of
512 x 512 series scrolled together), under a frame token of the session that only the images the run
offered pass (the images sent and their series) and that holds only while the session's sign-in
does; without a login token, or once the URL is refused, they ask through the runs.

A viewer's report reruns only the fragment it sits in (the Label page's) or the page, and the
reader is resolved from the store on each (``ui.session.session_actor``): once the sign-in has ended
(a logout here or in another tab, a deactivation), the report saves nothing and gets no pixels, and
the viewer is told it was signed out (:func:`signed_out_viewer`).

The browser keeps the reads it holds in the tab's session storage too, under the sign-in they were
made in (``owner``: :func:`sign_in_id`), and sends them again from the next Label viewer of that
sign-in when the page was left or reloaded before they were acknowledged; a read of another sign-in
is refused here as well.
"""

from __future__ import annotations

import base64
import hashlib
import math
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import streamlit as st

from medreview.errors import MedreviewError
from medreview.imaging.decoding import DecodedImage, Window
from medreview.imaging.display import default_display_window, window_choices
from medreview.imaging.overlays import INFERNO_RGB
from medreview.imaging.transfer import display_facts, encode_frame, heatmap_intensities
from medreview.reading.assist import model_call, shown_call
from medreview.reading.browse import series_image_ids, series_slices
from medreview.reading.catalog import ImageRecord, decode_image, get_image
from medreview.reading.reads import save_read
from medreview.store import Store
from medreview.team.roles import Actor
from ui.session import LOGIN_KEY, get_store

if TYPE_CHECKING:
    from medreview.reading.protocols import Hanging

__all__ = [
    "CASE_LAYOUTS",
    "DecodedCache",
    "ViewportSeries",
    "case_viewer",
    "decoded",
    "hung_viewports",
    "image_viewer",
    "list_follower",
    "pending_case_reads",
    "save_pending_reads",
    "series_viewport",
    "sign_in_id",
    "signed_out_viewer",
    "viewer_state",
    "window_controls",
]

BUNDLE = Path(__file__).parent / "viewer" / "dist" / "viewer.js"
# Raw bytes of frames sent in one run: 16 512x512 int16 CT slices. The viewer asks again for the
# rest, so a big series streams in a few runs while the first frames are already on screen. Bigger
# batches stall the browser's main thread longer when one arrives (parsing a message of 24 MB held
# a scrolling reader up for 100-300 ms on this machine).
FRAME_BYTES_PER_RUN = 8 * 1024 * 1024
# Seconds an image must be painted before a class key counts: two key presses closer than this
# (a key bounce) cannot label an image the reader has not seen.
MIN_SECONDS_ON_SCREEN = 0.12
# Images whose first frame is sent with the data that opens them, before the viewer asks.
PUSHED_IMAGES = 3
# CSS pixels the Label viewer keeps free under it: the title of the comment box stays on screen.
LABEL_ROOM_BELOW = 48

_component = st.components.v2.component("medreview.viewer", js=BUNDLE.read_text(encoding="utf-8"), isolate_styles=False)


class DecodedCache:
    """Decoded images by id, least recently used first out, bounded by their bytes in memory (a
    count would let 24 CT series fill the server's memory). Shared by every session of the
    process; stored originals never change, so an entry is valid for good."""

    def __init__(self, max_bytes: int) -> None:
        self.max_bytes = max_bytes
        self._entries: OrderedDict[int, DecodedImage] = OrderedDict()
        self._bytes = 0
        self._lock = threading.Lock()

    @property
    def size_bytes(self) -> int:
        return self._bytes

    def get(self, image_id: int, load) -> DecodedImage:  # type: ignore[no-untyped-def]
        with self._lock:
            if image_id in self._entries:
                self._entries.move_to_end(image_id)
                return self._entries[image_id]
        image = load(image_id)  # outside the lock: decoding one image must not stall the others
        size = int(image.frames.nbytes)
        with self._lock:
            if image_id not in self._entries and size <= self.max_bytes:
                self._entries[image_id] = image
                self._bytes += size
                while self._bytes > self.max_bytes:
                    _, evicted = self._entries.popitem(last=False)
                    self._bytes -= int(evicted.frames.nbytes)
        return image


@st.cache_resource(show_spinner=False)
def _decoded_cache() -> DecodedCache:
    return DecodedCache(get_store().settings.decoded_cache_bytes)


def decoded(image_id: int) -> DecodedImage:
    """The decoded pixels of a stored image, from the process-wide cache."""
    return _decoded_cache().get(image_id, lambda wanted: decode_image(get_store(), wanted))


def window_controls(image: DecodedImage, key: str) -> tuple[int, Window | None]:
    """Frame slider and window/level controls; returns (frame index, window or None for colour).
    For server-side renderings (thumbnails, exports); the viewer windows in the browser."""
    frame_index = 0
    if image.frame_count > 1:
        frame_index = st.slider("Frame", 1, image.frame_count, key=f"{key}_frame") - 1
    if image.is_color:
        return frame_index, None
    options: dict[str, Window | None] = {**window_choices(image, frame_index), "Manual": None}
    choice = st.selectbox("Window", list(options), key=f"{key}_preset")
    window = options.get(choice)
    if window is None:
        start = default_display_window(image, frame_index)
        center_column, width_column = st.columns(2)
        center = center_column.number_input("Center", value=float(start.center), key=f"{key}_center")
        width = width_column.number_input(
            "Width", min_value=1.0, value=float(max(start.width, 1.0)), key=f"{key}_width"
        )
        window = Window(center=center, width=width)
    return frame_index, window


# --- the viewer's protocol ---------------------------------------------------------------------


def viewer_state(key: str) -> dict[str, Any]:
    """The viewer's ``sync`` state as the browser last sent it (empty before its first report)."""
    state = st.session_state.get(key) or {}
    sync = state.get("sync") if isinstance(state, dict) else getattr(state, "sync", None)
    return sync if isinstance(sync, dict) else {}


def sign_in_id() -> str:
    """This session's sign-in as the browser may know it: a name for the reads the viewer keeps in
    the tab's storage, so that only the sign-in that made them sends them again. Derived from the
    login token (one way: the token itself never reaches the page), else from the user name."""
    login = st.session_state.get(LOGIN_KEY)
    token = getattr(login, "token", None)
    username = getattr(getattr(login, "actor", None), "username", "")
    secret = f"token\n{token}" if token else f"user\n{username}"
    return hashlib.sha256(f"medreview viewer reads\n{secret}".encode()).hexdigest()[:32]


# Display facts kept per image, as many as this (a few kB each).
FACTS_KEPT = 4096


@st.cache_resource(show_spinner=False)
def _facts_by_image() -> dict[int, dict[str, Any]]:
    return {}


def _display_facts(image_id: int) -> dict[str, Any]:
    """An image's display facts, once per process (as its decoded pixels, :func:`decoded`): a stored
    original never changes, and the automatic window is a percentile over every pixel (tens of ms
    for a chest film), which each run of a page would otherwise compute again for every image sent."""
    facts = _facts_by_image()
    if image_id not in facts:
        if len(facts) >= FACTS_KEPT:
            facts.pop(next(iter(facts)))  # the oldest out
        facts[image_id] = display_facts(decoded(image_id))
    return facts[image_id]


def image_info(
    actor: Actor,
    image_id: int,
    record: ImageRecord | None = None,
    series: list[int] | None = None,
    *,
    blind: bool = False,
    assist: str | None = None,
) -> dict[str, Any]:
    """What the viewer shows about one image, the reader's own read included (never others').
    ``series``: the image's series in reading order when the caller already has it.

    ``blind``: a reader study's case: nothing of the reader's own earlier read, and no file name or
    patient key that could carry the truth (a file named ``person1_bacteria_1.jpeg``). ``assist``:
    the project's assist mode (medreview.reading.assist) on a page that may show the model's call
    (the Label page): ``model`` is what the mode lets the reader see of it now, else None."""
    store = get_store()
    record = record or get_image(store, actor, image_id)
    facts = _display_facts(image_id)
    series = series if series is not None else series_image_ids(store, image_id)
    caption = f"{record.modality} · {record.columns}×{record.rows}"
    if not blind:
        caption = f"{record.modality} · patient {record.patient_key} · {record.columns}×{record.rows}"
    if record.number_of_frames > 1:
        caption += f" · {record.number_of_frames} frames"
    return {
        **facts,
        "id": image_id,
        "name": "case image" if blind else record.display_name.rsplit("/", 1)[-1],
        "caption": caption,
        "series": series if len(series) > 1 else None,
        # For the viewer's corner: described at import from coded values and geometry only, so it
        # carries no identifier (medreview.ingest.deid); the patient key stays out of the corners.
        "seriesDescription": record.series_description,
        "label": None if blind else record.label,
        "labels": [] if blind else list(record.labels),
        "boxes": [] if blind else [dict(box) for box in record.boxes],
        "read": False if blind else record.read,
        "model": None if blind or assist is None else shown_call(store, image_id, record.read, assist),
    }


def _frame_rows(want: Sequence[str], allowed: Callable[[int], bool]) -> tuple[list[dict[str, Any]], dict[str, str]]:
    """Encoded frames for the keys ("<image id>:<frame>") the viewer wants, in its order, up to
    FRAME_BYTES_PER_RUN; and a reason for each key that cannot be served."""
    rows: list[dict[str, Any]] = []
    missing: dict[str, str] = {}
    sent_bytes = 0
    for key in want:
        if sent_bytes >= FRAME_BYTES_PER_RUN:
            break
        try:
            image_part, frame_part = str(key).split(":")
            image_id, frame_index = int(image_part), int(frame_part)
        except ValueError:
            missing[str(key)] = "not a frame"
            continue
        if not allowed(image_id):
            missing[str(key)] = "not available to you"
            continue
        try:
            image = decoded(image_id)
            encoded = encode_frame(image, frame_index)
        except (MedreviewError, ValueError) as error:
            missing[str(key)] = str(error)
            continue
        sent_bytes += encoded.raw_bytes
        rows.append(
            {
                "key": f"{image_id}:{frame_index}",
                "dtype": encoded.dtype,
                "width": encoded.width,
                "height": encoded.height,
                "channels": encoded.channels,
                "data": base64.b64encode(encoded.payload).decode("ascii"),
            }
        )
    return rows, missing


# Why a read from the viewer is refused before it reaches the store.
NOT_THIS_SIGN_IN = "made under another sign-in: not saved for this one"
CLASS_NEEDED = "choose a class for this image: this project takes boxes with a class (Settings)"


def save_pending_reads(
    key: str, actor: Actor, *, comments: dict[int, str] | None = None, boxes_alone: bool = True
) -> tuple[list[int], dict[int, str]]:
    """Save the reads the viewer holds as pending; returns (acknowledged seqs, failed seq -> reason).

    Each read is saved once per session (by its ``seq``): the viewer resends its pending list with
    every report until it sees the acknowledgement, and a rerun may be interrupted in between.
    ``comments``: comments typed on the page and not saved yet, by image id; a read of that image
    takes its comment along (and out of the mapping). ``boxes_alone``: whether a read may be boxes
    without a class (the project's ``box_only_reads``). A read the viewer made under another sign-in
    (its ``owner``) is refused.
    """
    store = get_store()
    saved: set[int] = st.session_state.setdefault(f"{key}__saved_seqs", set())
    owner = sign_in_id()
    acked: list[int] = []
    failed: dict[int, str] = {}
    for entry in viewer_state(key).get("pending", []) or []:
        try:
            seq = int(entry["seq"])
            image_id = int(entry["imageId"])
        except (KeyError, TypeError, ValueError):
            continue
        if seq not in saved:
            if entry.get("owner") not in (None, owner):
                failed[seq] = NOT_THIS_SIGN_IN
                continue
            if entry.get("label") is None and not entry.get("labels") and not boxes_alone:
                failed[seq] = CLASS_NEEDED
                continue
            typed = (comments or {}).get(image_id)
            try:
                save_read(
                    store,
                    actor,
                    image_id,
                    entry.get("label"),
                    labels=entry.get("labels") or (),
                    boxes=entry.get("boxes") if entry.get("boxes") is not None else _stored_boxes(actor, image_id),
                    unsure=bool(entry.get("unsure")),
                    comment=typed,  # None keeps the stored one
                    seconds_on_case=_seconds(entry.get("seconds")),
                    assisted=True,  # the Label viewer: the assist mode decided what was shown
                )
            except MedreviewError as error:
                failed[seq] = str(error)  # the viewer escapes it as HTML text
                continue
            saved.add(seq)
            if comments is not None and typed is not None:
                comments.pop(image_id, None)
        acked.append(seq)
    return acked, failed


def _stored_boxes(actor: Actor, image_id: int) -> list[dict[str, Any]]:
    """The reader's stored boxes of an image: a class key without box editing keeps them."""
    try:
        return [dict(box) for box in get_image(get_store(), actor, image_id).boxes]
    except MedreviewError:
        return []


def _seconds(value: Any) -> float | None:
    try:
        seconds = float(value)
    except (TypeError, ValueError):
        return None
    return seconds if 0 <= seconds < 86_400 else None


def assist_map(store: Store, image_id: int, read: bool, mode: str) -> tuple[np.ndarray, str] | None:
    """The model's map of its call on ``image_id`` ((h, w) float32 in [0, 1]) and the class it is
    of, when the assist mode (medreview.reading.assist) lets the reader see the call and the map is
    stored (the Predictions page's view map, else the prediction job's); None otherwise, and
    outside the training data (no call)."""
    # Imported here: the ml package is loaded by the pages that need it, not by every viewer.
    from medreview.ml.explanations import stored_view_maps

    if shown_call(store, image_id, read, mode) is None:
        return None
    with store.db.read() as session:
        call = model_call(session, image_id)
    if call is None or call.label is None or call.label not in call.class_names:
        return None
    maps = stored_view_maps(store, call.version_id, image_id)  # (C, h, w), or None
    path = call.heatmap_path
    if maps is None and path and path.endswith(".npy") and store.data_path(path).exists():
        maps = np.load(store.data_path(path)).astype(np.float32)
    if maps is None or maps.ndim != 3 or maps.shape[0] != len(call.class_names):
        return None
    return np.asarray(maps[call.class_names.index(call.label)], dtype=np.float32), call.label


def overlay_row(image_id: int, frame_index: int, heat: np.ndarray, label: str) -> dict[str, Any]:
    """A heat map ((h, w) float in [0, 1]) for the viewer's overlay layer over one frame."""
    intensities = heatmap_intensities(heat)  # (h, w) uint8
    return {
        "key": f"{image_id}:{frame_index}",
        "width": int(intensities.shape[1]),
        "height": int(intensities.shape[0]),
        "data": base64.b64encode(intensities.tobytes()).decode("ascii"),
        "label": label,
    }


def list_follower(key: str, viewer: str = "label") -> None:
    """An invisible companion of the Label viewer (ui/viewer/src/follower.ts) in the fragment that
    draws the worklist: it reruns that fragment when the viewer says the reader moved on or reads
    were saved, a moment after the viewer's own report (the viewer's reports rerun the viewer
    alone)."""
    _component(key=key, data={"follows": viewer}, default={"progress": None}, on_progress_change=lambda: None)


def signed_out_viewer(key: str, reason: str) -> None:
    """Mount the viewer under ``key`` with nothing but the news that its sign-in ended (``reason``,
    as the sign-in page gives it): the browser drops the pixels it holds, sends nothing more and
    shows its pending reads as not saved. For ``session_actor(on_refused=...)`` in a fragment."""
    _component(key=key, data={"signedOut": reason}, default={"sync": None}, on_sync_change=lambda: None)


def image_viewer(
    key: str,
    actor: Actor,
    images: Sequence[int],
    *,
    mode: str = "view",
    position: int | None = None,
    jump: int | None = None,
    list_version: str = "",
    classes: Sequence[str] = (),
    multi: bool = False,
    boxes: bool = False,
    boxes_alone: bool = False,
    left: dict[str, Any] | None = None,
    acked: Sequence[int] = (),
    failed: dict[int, str] | None = None,
    overlays: Sequence[dict[str, Any]] = (),
    max_height: int = 0,
    below: int | None = None,
    split: bool = False,
    allowed: Callable[[int], bool] | None = None,
    blind: bool = False,
    assist: str | None = None,
    report_active: bool = False,
) -> dict[str, Any]:
    """Mount the viewer; returns its ``sync`` state (see the module docstring).

    ``report_active`` (view mode): the viewer sends the active reading time of the image on screen
    (tab visible, idle gaps over a minute left out) to the frame route whenever the reader leaves
    the image for the page's own controls (a reader study's rating form), without a run of the page;
    :func:`reported_active_seconds` reads it.

    ``images``: the image to open first, then the worklist's next ones (label mode) or nothing else
    (view mode). ``jump``: the viewer moves to ``position`` whenever this value changes (a click in a
    list); defaults to the position itself. ``allowed``: which image ids this reader may receive
    pixels of (default: any image of the store, which every signed-in role may browse).
    ``boxes_alone``: a read may be boxes without a class. ``left``: past the list's last image
    (``position`` None), {"count", "first"} of the images on the list still to do. The viewer's height
    follows the window, at most ``max_height`` (0: no limit), leaving ``below`` CSS pixels under it for
    the page (default: the Label page's comment title in label mode). ``split``: the image and the
    image under its map (``overlays``) side by side, sharing window, zoom, pan and slice. ``blind``
    and ``assist``: see :func:`image_info` (a reader study's case; the Label page's assist mode).
    """
    sync = viewer_state(key)
    started = time.perf_counter()
    infos = []
    series_of: dict[int, list[int]] = {}  # a worklist of CT slices shares one series: look it up once
    for image_id in images:
        try:
            info = image_info(actor, int(image_id), series=series_of.get(int(image_id)), blind=blind, assist=assist)
        except MedreviewError:
            continue  # an image deleted meanwhile: the viewer skips it
        infos.append(info)
        for member in info["series"] or ():
            series_of.setdefault(member, info["series"])
    # Frames are sent once per request: a run for another reason (a filter, a save) with the same
    # ``tick`` resends nothing. The viewer asks again (a new tick) for what has not arrived.
    rows: list[dict[str, Any]] = []
    missing: dict[str, str] = {}
    served_key = f"{key}__served_tick"
    wanted: list[str] = []
    if sync.get("tick") is not None and sync.get("tick") != st.session_state.get(served_key):
        # A shown series' slices are asked for by id: they need no info of their own.
        wanted = [str(item) for item in sync.get("want", []) or []]
        st.session_state[served_key] = sync.get("tick")
    position = position if position is not None else (int(images[0]) if images else None)
    # The model's map beside its call, where the assist mode shows the call (none given by the page).
    shown_info = next((info for info in infos if info["id"] == position), None) if assist is not None else None
    if shown_info is not None and not overlays and (shown_info["model"] or {}).get("label"):
        found = assist_map(get_store(), shown_info["id"], shown_info["read"], assist)
        if found is not None:
            overlays = [overlay_row(shown_info["id"], 0, found[0], f"model map: {found[1]}")]
    offered = {info["id"] for info in infos} | {member for info in infos for member in info["series"] or ()}
    frame_url = _frame_url(key, [image_id for image_id in offered if allowed is None or allowed(image_id)])
    # The first frames go out with the data that opens an image, unasked: the viewer paints the
    # first image without waiting a round trip for its request (once per image and session). With a
    # frame URL only the image opened comes so; the viewer fetches the others as the data arrives.
    pushed: set[str] = st.session_state.setdefault(f"{key}__pushed", set())
    for info in infos[:PUSHED_IMAGES] if frame_url is None else [info for info in infos[:1] if info["id"] == position]:
        frame_key = f"{info['id']}:0"
        if frame_key not in pushed and frame_key not in wanted:
            pushed.add(frame_key)
            if info["id"] == position:
                wanted.insert(0, frame_key)
            else:
                wanted.append(frame_key)
    if wanted:
        rows, missing = _frame_rows(wanted, allowed or (lambda _image_id: True))
    data = {
        "mode": mode,
        "position": position,
        "jump": position if jump is None else jump,
        "listVersion": list_version,
        "order": [info["id"] for info in infos],
        "images": infos,
        "classes": list(classes),
        "multi": multi,
        "boxesEnabled": boxes,
        "boxOnly": boxes_alone,
        "pixels": rows,
        "missing": missing,
        "frameUrl": frame_url,
        "overlays": list(overlays),
        "colormap": INFERNO_RGB,
        "acked": list(acked),
        "failed": {str(seq): reason for seq, reason in (failed or {}).items()},
        "minSecondsOnScreen": MIN_SECONDS_ON_SCREEN,
        "maxHeight": max_height,
        "below": (LABEL_ROOM_BELOW if mode == "label" else 0) if below is None else below,
        "split": split,
        "activeUrl": _active_url(key) if report_active else None,
        "owner": sign_in_id() if mode == "label" else "",
        "left": left,
        "serverMs": round((time.perf_counter() - started) * 1000, 1),
    }
    _component(key=key, data=data, default={"sync": None}, on_sync_change=lambda: None)
    return viewer_state(key)


# --- a case in a grid of viewports ------------------------------------------------------------

# Grid layouts the viewer draws (ui/viewer/src/linking.ts LAYOUTS), by how many viewports each holds.
CASE_LAYOUTS = {"1x1": 1, "1x2": 2, "1x3": 3, "2x2": 4}


@dataclass(frozen=True)
class ViewportSeries:
    """One viewport of a case: a series' image ids in reading order and how to hang it.

    ``positions``: each image's position along the slice normal in mm (None where unknown), in the
    same order; the viewer scrolls series of one frame of reference together by it.
    ``preset``: a window preset to open with, by name ("Lung"; None: the image's own first window).
    ``mirror``: shown flipped left to right (a left mammogram view facing the right one).
    ``prior``: set for a prior study's series, the words its corner shows ("Prior · 2024-03-01").
    ``empty``: no images, and why (a protocol's viewport that no series of the study filled).
    """

    image_ids: tuple[int, ...]
    positions: tuple[float | None, ...] = ()
    preset: str | None = None
    mirror: bool = False
    prior: str | None = None
    empty: str | None = None


def series_viewport(
    series_id: int,
    *,
    image_ids: Sequence[int] | None = None,
    preset: str | None = None,
    mirror: bool = False,
    prior: str | None = None,
) -> ViewportSeries:
    """A viewport showing a stored series, its slices in reading order with their positions (the
    position along the normal stored at ingest, :func:`medreview.reading.browse.series_slices`).
    ``image_ids``: some of its images only, in this order (one view of a projection series)."""
    slices = series_slices(get_store(), series_id)
    position_of = {
        int(image_id): _millimetres(location)
        for image_id, location in zip(slices["image_id"], slices["slice_location"], strict=True)
    }
    shown = [int(image_id) for image_id in (slices["image_id"] if image_ids is None else image_ids)]
    return ViewportSeries(
        image_ids=tuple(shown),
        positions=tuple(position_of.get(image_id) for image_id in shown),
        preset=preset,
        mirror=mirror,
        prior=prior,
    )


def hung_viewports(hanging: Hanging) -> list[ViewportSeries]:
    """The viewports of a study as a hanging protocol hangs it (medreview.reading.protocols), row by
    row; a cell no series filled stays empty and says why."""
    viewports = []
    for cell in hanging.viewports:
        if cell.series_id is None or not cell.image_ids:
            viewports.append(ViewportSeries(image_ids=(), empty=cell.reason or "no series matched this viewport"))
            continue
        viewports.append(
            series_viewport(
                cell.series_id, image_ids=cell.image_ids, preset=cell.preset, mirror=cell.mirror, prior=cell.prior_label
            )
        )
    return viewports


def hung_case(scope: str, case_id: int, memo_key: str) -> tuple[list[ViewportSeries], str, str]:
    """(viewports, layout, what hung it) of a study by the project's hanging protocols, or a series
    alone: as the Label and Review pages open a case. Kept in the session under ``memo_key`` by case
    and rules: the viewer's every request for frames reruns its fragment, and hanging a study reads
    headers (about 10 ms a study)."""
    from medreview.reading.protocols import hanging_for_study
    from medreview.team.settings import get_setting

    store = get_store()
    protocols = get_setting(store, "hanging_protocols") if scope == "study" else None
    memo: dict[str, tuple[list[ViewportSeries], str, str]] = st.session_state.setdefault(memo_key, {})
    key = f"{scope}:{case_id}:{hashlib.sha256(repr(protocols).encode()).hexdigest()[:16]}"
    if key not in memo:
        if len(memo) > 64:
            memo.clear()
        if scope == "study":
            hanging = hanging_for_study(store, case_id, protocols)
            memo[key] = (hung_viewports(hanging), hanging.layout, hanging.reason)
        else:
            memo[key] = ([series_viewport(case_id)], "1x1", "one series")
    return memo[key]


def _millimetres(value: Any) -> float | None:
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None  # None or pandas' NA: no position stored
    return number if math.isfinite(number) else None


def pending_case_reads(key: str) -> list[dict[str, Any]]:
    """The case reads the case viewer under ``key`` holds as pending: {seq, caseId, label, seconds,
    viewport, owner}, one per key press of a class (ui/viewer/src/controller.ts). The page saves them
    through the reading service of the case's scope and passes the saved seqs back as ``acked``."""
    reads = []
    for entry in viewer_state(key).get("pending", []) or []:
        try:
            reads.append(
                {
                    "seq": int(entry["seq"]),
                    "caseId": str(entry["caseId"]),
                    "label": str(entry["label"]),
                    "seconds": _seconds(entry.get("seconds")),
                    "viewport": int(entry.get("viewport", 0)),
                    "owner": str(entry.get("owner", "")),
                }
            )
        except (KeyError, TypeError, ValueError):
            continue  # not a case read: nothing to save
    return reads


def case_viewer(
    key: str,
    actor: Actor,
    case_id: str,
    viewports: Sequence[ViewportSeries],
    *,
    layout: str | None = None,
    classes: Sequence[str] = (),
    acked: Sequence[int] = (),
    failed: dict[int, str] | None = None,
    max_height: int = 0,
    below: int = 0,
    allowed: Callable[[int], bool] | None = None,
    next_case: tuple[str, Sequence[ViewportSeries], str | None] | None = None,
) -> dict[str, Any]:
    """Mount the viewer with a case in a grid; returns its ``sync`` state: the frames it wants, which
    viewport is active (``active``), the slice each shows (``view``: [{imageId, index, frame}]) and the
    case reads not yet acknowledged (``pending``, see :func:`pending_case_reads`).

    ``case_id``: what the reads name ("study:12"). ``layout``: "1x1", "1x2", "1x3" or "2x2" (None: the
    smallest that holds the viewports); viewports beyond it are not shown. ``classes``: keys 1-9 label
    the case (none: a viewer only). ``allowed``: which image ids this reader may receive pixels of.
    ``next_case``: (case id, viewports, layout) of the case a class key opens next: the viewer holds
    it, with the first slice of each viewport, and opens it at once while the read is saved.
    Raises ValueError for an unknown layout, or when no viewport has images.
    """
    sync = viewer_state(key)
    started = time.perf_counter()
    # Facts of each viewport's first image speak for its series; the slices on screen get their own
    # (a name, a position) once the viewer reports them.
    views = sync.get("view") if isinstance(sync.get("view"), list) else []
    on_screen = {int(item["imageId"]) for item in views if isinstance(item, dict) and item.get("imageId")}
    infos: dict[int, dict[str, Any]] = {}
    shown = _case_spec(actor, case_id, viewports, layout, on_screen, infos)
    upcoming = None
    if next_case is not None and next_case[0] != case_id:
        try:
            upcoming = _case_spec(actor, next_case[0], next_case[1], next_case[2], on_screen, infos)
        except ValueError:
            upcoming = None  # a next case with nothing to show opens when the server gets there
    wanted: list[str] = []
    served_key = f"{key}__served_tick"
    if sync.get("tick") is not None and sync.get("tick") != st.session_state.get(served_key):
        wanted = [str(item) for item in sync.get("want", []) or []]
        st.session_state[served_key] = sync.get("tick")
    offered = [
        image_id for spec in (shown, upcoming) if spec for view in spec["viewports"] for image_id in view["images"]
    ]
    frame_url = _frame_url(key, [image_id for image_id in offered if allowed is None or allowed(image_id)])
    # Without a frame URL the first slice of each viewport goes out with the data that opens the
    # case, unasked, and so does the next case's: a class key opens it from the browser's cache. With
    # one, the viewer fetches them as soon as the data arrives, and this run deflates nothing.
    pushed: set[str] = st.session_state.setdefault(f"{key}__pushed", set())
    for spec in [*shown["viewports"], *(upcoming["viewports"] if upcoming else [])] if frame_url is None else []:
        if not spec["images"]:
            continue
        frame_key = f"{spec['images'][0]}:0"
        if frame_key not in pushed and frame_key not in wanted:
            pushed.add(frame_key)
            wanted.append(frame_key)
    rows: list[dict[str, Any]] = []
    missing: dict[str, str] = {}
    if wanted:
        rows, missing = _frame_rows(wanted, allowed or (lambda _image_id: True))
    data = {
        "case": shown,
        "next": upcoming,
        "frameUrl": frame_url,
        "images": list(infos.values()),
        "pixels": rows,
        "missing": missing,
        "classes": list(classes),
        "owner": sign_in_id() if classes else "",
        "acked": list(acked),
        "failed": {str(seq): reason for seq, reason in (failed or {}).items()},
        "minSecondsOnScreen": MIN_SECONDS_ON_SCREEN,
        "maxHeight": max_height,
        "below": below,
        "serverMs": round((time.perf_counter() - started) * 1000, 1),
    }
    _component(key=key, data=data, default={"sync": None}, on_sync_change=lambda: None)
    return viewer_state(key)


def _active_url(key: str) -> str | None:
    """Where the viewer under ``key`` sends its active reading seconds (its frame token's)."""
    from ui import frame_route

    token = st.session_state.get(f"{key}__frame_token")
    return f"{frame_route.ACTIVE_PATH}/{token}" if token else None


def reported_active_seconds(key: str, image_id: int) -> float | None:
    """The active reading seconds the viewer under ``key`` last sent for ``image_id`` (None: none)."""
    from ui import frame_route

    return frame_route.active_seconds(st.session_state.get(f"{key}__frame_token"), image_id)


def _frame_url(key: str, image_ids: Sequence[int]) -> str | None:
    """Where the case viewer fetches the frames of ``image_ids`` over HTTP (ui/frame_route.py), under
    a frame token of this session renewed by each run; None for a session without a login token (the
    viewer then asks through its runs). Relative to the page: Streamlit serves the app at the root."""
    from ui import frame_route

    token = getattr(st.session_state.get(LOGIN_KEY), "token", None)
    if not token:
        return None
    held = st.session_state.get(f"{key}__frame_token")
    store, cache = get_store(), _decoded_cache()  # resolved here: the route runs outside any script run
    granted = frame_route.grants.grant(
        held,
        login_token=token,
        store=store,
        load=lambda image_id: cache.get(image_id, lambda wanted: decode_image(store, wanted)),
        image_ids=image_ids,
    )
    st.session_state[f"{key}__frame_token"] = granted
    return f"{frame_route.FRAMES_PATH}/{granted}"


def _case_spec(
    actor: Actor,
    case_id: str,
    viewports: Sequence[ViewportSeries],
    layout: str | None,
    on_screen: set[int],
    infos: dict[int, dict[str, Any]],
) -> dict[str, Any]:
    """A case as the viewer opens it: {id, layout, viewports: [spec]}; the facts of each viewport's
    first image (and of the slices on screen) are added to ``infos``. The same case gives the same
    spec, so the viewer knows a case it opened ahead when the server names it."""
    if layout is None:
        layout = next((name for name, count in CASE_LAYOUTS.items() if count >= len(viewports)), "2x2")
    if layout not in CASE_LAYOUTS:
        raise ValueError(f"unknown layout {layout!r}: expected one of {', '.join(CASE_LAYOUTS)}")
    if not any(viewport.image_ids for viewport in viewports):
        raise ValueError("a case viewer needs at least one viewport with images")
    specs = []
    for viewport in list(viewports)[: CASE_LAYOUTS[layout]]:
        series = [int(image_id) for image_id in viewport.image_ids]
        if not series:
            specs.append({"images": [], "positions": [], "frameOfReference": None, "preset": None,
                          "mirror": False, "prior": viewport.prior, "empty": viewport.empty})  # fmt: skip
            continue
        for image_id in [series[0], *(member for member in series if member in on_screen)]:
            if image_id not in infos:
                try:
                    infos[image_id] = image_info(actor, image_id, series=series)
                except MedreviewError:
                    continue
        first = infos.get(series[0], {})
        positions = list(viewport.positions) if len(viewport.positions) == len(series) else [None] * len(series)
        specs.append(
            {
                "images": series,
                "positions": positions,
                "frameOfReference": first.get("frameOfReference"),
                "preset": viewport.preset,
                "mirror": viewport.mirror,
                "prior": viewport.prior,
                "empty": None,
            }
        )
    return {"id": case_id, "layout": layout, "viewports": specs}
