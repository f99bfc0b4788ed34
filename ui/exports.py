"""The label exports as a page offers them: reviewers on the Review page, admins on the Team page.

One form for both: the export kind and format, and, for admins only, the original file names (which
identify patients; medreview.reading.exchange refuses them to anyone else and audits the request).
The file is made when the button is pressed and handed to this browser tab (ui/downloads.py).
"""

from __future__ import annotations

import streamlit as st

from medreview.reading.exchange import EXPORT_KINDS, export_bytes
from medreview.store import Store
from medreview.team.roles import Actor
from ui import downloads
from ui.session import attempt

__all__ = ["export_ui"]


def export_ui(store: Store, actor: Actor, key_prefix: str) -> None:
    """The export form; its widgets are keyed ``<key_prefix>_export...``."""
    kind_column, format_column = st.columns(2)
    kind = kind_column.selectbox("Export", EXPORT_KINDS, key=f"{key_prefix}_export_kind")
    file_format = format_column.radio(
        "Format", ["json"] if kind == "coco" else ["csv", "json"], horizontal=True, key=f"{key_prefix}_export_format"
    )
    original_names = actor.can("admin") and st.checkbox(
        "Add the original file names (identifying; recorded in the audit trail)",
        key=f"{key_prefix}_export_original_names",
    )
    name = f"{kind}.{file_format}"
    if st.button(f"Download {name}", key=f"{key_prefix}_export"):
        # Made now, for this session only (ui/downloads.py): never a file on disk or at a URL.
        made = attempt(lambda: export_bytes(store, actor, kind, file_format, original_names))
        if made is not None:
            content, rows = made
            mime = "text/csv" if file_format == "csv" else "application/json"
            downloads.send(content, name, mime, key=f"{key_prefix}_export_download")
            st.success(f"{name}: {rows} rows.")
