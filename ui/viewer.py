"""Image widgets shared by the pages: cached decoding and the frame and window controls."""

from __future__ import annotations

import streamlit as st

from medreview.imaging.decoding import DecodedImage, Window
from medreview.imaging.display import default_display_window, window_choices
from medreview.reading.catalog import decode_image
from ui.session import get_store

__all__ = ["decoded", "window_controls"]


@st.cache_resource(show_spinner=False, max_entries=24)
def decoded(image_id: int) -> DecodedImage:
    # Stored originals never change, so an image id's decoded pixels can be cached for good.
    return decode_image(get_store(), image_id)


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
