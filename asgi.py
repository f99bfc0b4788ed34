"""medreview's ASGI entry: the Streamlit app (app.py) with the routes it serves besides its pages.

``python -m medreview serve`` runs ``streamlit run asgi.py``: Streamlit finds the ``st.App`` below and
serves app.py through it, with the frame route of the case viewer (ui/frame_route.py: four viewports
fetch their slices over HTTP, in parallel, without a run of the page per request).
"""

import streamlit as st

from ui.frame_route import frame_routes

app = st.App("app.py", routes=frame_routes())
