"""Reusable Streamlit pieces for the pages: session and login, the cached store, image widgets.

With the pages, the only code that imports streamlit; ``medreview`` never does.
"""
