"""Image widgets shared by the pages: cached decoding and the frame and window controls."""

from __future__ import annotations

import threading
from collections import OrderedDict

import streamlit as st

from medreview.imaging.decoding import DecodedImage, Window
from medreview.imaging.display import default_display_window, window_choices
from medreview.reading.catalog import decode_image
from ui.session import get_store

__all__ = ["DecodedCache", "decoded", "window_controls"]


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
    """Frame slider and window/level controls; returns (frame index, window or None for colour)."""
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
