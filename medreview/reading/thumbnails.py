"""Worklist thumbnails: a small JPEG of each image, made once and kept as a cache file.

A thumbnail is derived data (it can be rebuilt from the original at any time), so it lives under the
cache folder, named by the stored bytes' SHA-256: ``<data dir>/cache/thumbnails/<side>/ab/<sha256>.jpg``.
It shows the image as the viewer opens it (the file's VOI LUT or window, else the default window;
MONOCHROME1 inverted; colour as stored), the middle frame of a multi-frame image, the longer side
``side`` pixels. Files are written whole (:func:`medreview.store.blobs.atomic_file`): two processes
making the same thumbnail write the same bytes and one replaces the other.

Reading them never decodes: :func:`stored_thumbnails` returns what is on disk and says which are
missing, so a page of the worklist never waits for pixels. :class:`ThumbnailMaker` makes the missing
ones on one background thread, the most recently asked for first; a thumbnail that cannot be made
(an image its decoder refuses) is logged by image id and not tried again by that maker.
"""

from __future__ import annotations

import dataclasses
import io
import logging
import threading
from collections import deque
from collections.abc import Iterable
from pathlib import Path

import numpy as np
from PIL import Image as PILImage
from sqlalchemy import select

from medreview.imaging.decoding import DecodedImage, decode_file
from medreview.imaging.display import render_frame
from medreview.imaging.overlays import thumbnail
from medreview.store import Store
from medreview.store.blobs import atomic_file
from medreview.store.models import Image

__all__ = [
    "THUMBNAIL_SIDE",
    "ThumbnailMaker",
    "make_thumbnail",
    "render_thumbnail",
    "stored_thumbnails",
    "thumbnail_path",
]

log = logging.getLogger(__name__)

THUMBNAIL_SIDE = 64  # pixels, the longer side
JPEG_QUALITY = 85
# Before windowing and the anti-aliased shrink, a large frame is first thinned to about this many
# times the thumbnail's side by taking every n-th pixel: a 3000 x 2500 film took 1.9 s windowed and
# shrunk whole, a few milliseconds thinned first, and at 64 pixels the two cannot be told apart.
_THIN_TO_SIDES = 4


def thumbnail_path(store: Store, sha256: str, side: int = THUMBNAIL_SIDE) -> Path:
    return store.settings.cache_dir / "thumbnails" / str(side) / sha256[:2] / f"{sha256}.jpg"


def render_thumbnail(image: DecodedImage, side: int = THUMBNAIL_SIDE) -> bytes:
    """The JPEG bytes of ``image``'s thumbnail (see the module's docstring for what it shows)."""
    middle = image.frame_count // 2
    step = max(1, max(image.frames.shape[1:3]) // (side * _THIN_TO_SIDES))
    # Thinned before windowing, which costs as much as the shrink on a whole film.
    thinned = dataclasses.replace(image, frames=image.frames[middle : middle + 1, ::step, ::step])
    display = render_frame(thinned, 0)  # (h, w) or (h, w, 3) uint8
    small = thumbnail(display, side)  # longer side <= side, uint8
    buffer = io.BytesIO()
    PILImage.fromarray(np.ascontiguousarray(small)).save(buffer, format="JPEG", quality=JPEG_QUALITY)
    return buffer.getvalue()


def _stored_files(store: Store, image_ids: Iterable[int]) -> dict[int, tuple[str, str]]:
    """image id -> (sha256, media type) for the ids that exist."""
    wanted = sorted(set(image_ids))
    if not wanted:
        return {}
    with store.db.read() as session:
        rows = session.execute(select(Image.id, Image.sha256, Image.media_type).where(Image.id.in_(wanted)))
        return {int(image_id): (sha256, media_type) for image_id, sha256, media_type in rows}


def make_thumbnail(store: Store, image_id: int, side: int = THUMBNAIL_SIDE) -> Path | None:
    """Make ``image_id``'s thumbnail unless it exists; returns its path (None: no such image).
    Decoding errors propagate (:class:`ThumbnailMaker` catches them)."""
    found = _stored_files(store, [image_id]).get(image_id)
    if found is None:
        return None
    sha256, media_type = found
    path = thumbnail_path(store, sha256, side)
    if path.exists():
        return path
    data = render_thumbnail(decode_file(store.blobs.path_for(sha256), media_type), side)
    # A cache file: its folder need not be fsynced (a thumbnail lost in a power cut is made again).
    with atomic_file(path, sync_folder=False) as temporary:
        temporary.write_bytes(data)
    return path


def stored_thumbnails(store: Store, image_ids: Iterable[int], side: int = THUMBNAIL_SIDE) -> dict[int, bytes | None]:
    """The JPEG bytes of each image's thumbnail where it has been made, None where not (or where
    the image does not exist). One query and one file read per thumbnail; never decodes."""
    ids = list(image_ids)
    files = _stored_files(store, ids)
    found: dict[int, bytes | None] = {}
    for image_id in ids:
        if image_id not in files:
            found[image_id] = None
            continue
        try:
            found[image_id] = thumbnail_path(store, files[image_id][0], side).read_bytes()
        except FileNotFoundError:
            found[image_id] = None
    return found


class ThumbnailMaker:
    """Makes thumbnails on one background thread, one at a time, so a page that asked for them
    goes on at once. The thread starts with the first request and ends once nothing is left.

    A new request goes before the ones waiting (the page on screen matters more than the page the
    reader left); an image asked for again while waiting is not queued twice; one that failed is
    not tried again.
    """

    def __init__(self, store: Store, side: int = THUMBNAIL_SIDE) -> None:
        self.store = store
        self.side = side
        self.failed: set[int] = set()
        self._waiting: deque[int] = deque()
        self._lock = threading.Lock()
        self._idle = threading.Condition(self._lock)
        self._thread: threading.Thread | None = None

    def request(self, image_ids: Iterable[int]) -> None:
        """Queue the thumbnails of ``image_ids`` (those not made yet, the caller has checked)."""
        with self._lock:
            fresh = [image_id for image_id in image_ids if image_id not in self.failed]
            for image_id in fresh:
                if image_id in self._waiting:
                    self._waiting.remove(image_id)
            self._waiting.extendleft(reversed(fresh))
            if self._waiting and (self._thread is None or not self._thread.is_alive()):
                self._thread = threading.Thread(target=self._work, name="medreview-thumbnails", daemon=True)
                self._thread.start()

    def wait(self, timeout: float) -> bool:
        """Wait until nothing is waiting or being made; False when ``timeout`` seconds passed first."""
        with self._idle:
            return self._idle.wait_for(lambda: not self._waiting and self._thread is None, timeout)

    def _work(self) -> None:
        while True:
            with self._lock:
                if not self._waiting:
                    self._thread = None
                    self._idle.notify_all()
                    return
                image_id = self._waiting.popleft()
            try:
                make_thumbnail(self.store, image_id, self.side)
            except Exception as error:  # any decoder failure: the list shows its placeholder
                log.warning("no thumbnail for image %s: %s", image_id, type(error).__name__)
                with self._lock:
                    self.failed.add(image_id)
