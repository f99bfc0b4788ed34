"""Thumbnails in tables: the cached ones as data URLs for ``st.column_config.ImageColumn``, the missing
ones made in the background by one process-wide maker (medreview.reading.thumbnails) and shown on a
later run; meanwhile a placeholder. Never decodes in the page's run."""

from __future__ import annotations

import base64
from collections.abc import Sequence

import streamlit as st

from medreview.reading.thumbnails import ThumbnailMaker, stored_thumbnails
from ui.session import get_store

# A light square with a dashed edge: "a picture comes here", the size of a thumbnail.
PLACEHOLDER = "data:image/svg+xml;base64," + base64.b64encode(
    b'<svg xmlns="http://www.w3.org/2000/svg" width="64" height="64" viewBox="0 0 64 64">'
    b'<rect x="2" y="2" width="60" height="60" rx="6" fill="#f0f2f6" stroke="#b8bcc6" '
    b'stroke-width="2" stroke-dasharray="5 4"/></svg>'
).decode("ascii")


@st.cache_resource(show_spinner=False)
def thumbnail_maker() -> ThumbnailMaker:
    """The one maker of the server process (a thread of its own, started on demand)."""
    return ThumbnailMaker(get_store())


def thumbnail_urls(image_ids: Sequence[int]) -> list[str]:
    """A data URL for each image, in order: its thumbnail when made, else the placeholder, the
    missing ones asked of the background maker."""
    found = stored_thumbnails(get_store(), image_ids)
    missing = [image_id for image_id, data in found.items() if data is None]
    if missing:
        thumbnail_maker().request(missing)
    return [
        "data:image/jpeg;base64," + base64.b64encode(data).decode("ascii") if data else PLACEHOLDER
        for data in (found[image_id] for image_id in image_ids)
    ]
