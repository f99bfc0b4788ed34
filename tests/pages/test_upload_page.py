"""The Upload page (AppTest): the size limit it shows is the one ingest enforces, and files that
were refused are listed first, where a long table cannot hide them."""

from __future__ import annotations

import pytest

from tests.conftest import run_page_as
from tests.helpers import png_bytes


def test_the_uploader_limit_is_the_configured_file_limit(page_store, monkeypatch: pytest.MonkeyPatch):
    # The default: 512 MiB per file (medreview.config), what Settings says, not Streamlit's 1 GB ceiling.
    app = run_page_as("upload")
    assert app.file_uploader(key="upload_files").proto.max_upload_size_mb == 512
    assert "Up to 512 MiB per file" in " ".join(caption.value for caption in app.caption)
    # A limit set for the deployment (MEDREVIEW_MAX_FILE_BYTES) is the one shown and applied.
    monkeypatch.setenv("MEDREVIEW_MAX_FILE_BYTES", str(300 * 2**20))
    import streamlit as st

    st.cache_resource.clear()  # the pages' cached store reads the environment again
    app = run_page_as("upload")
    assert app.file_uploader(key="upload_files").proto.max_upload_size_mb == 300
    assert "Up to 300 MiB per file" in " ".join(caption.value for caption in app.caption)


def test_refused_files_are_listed_first(page_store):
    files = [(f"good{n}.png", png_bytes(n), "image/png") for n in range(3)]
    files.insert(1, ("bad.png", b"<html>not an image</html>", "image/png"))
    files.append(("also-bad.dcm", b"DICM but not really", "application/dicom"))
    app = run_page_as("upload")
    app.file_uploader(key="upload_files").set_value(files).run()
    app.button(key="upload_store").click().run()
    assert not app.exception
    table = app.dataframe[0].value
    assert list(table["status"]) == ["rejected", "rejected", "stored", "stored", "stored"]
    assert list(table["file"]) == ["bad.png", "also-bad.dcm", "good0.png", "good1.png", "good2.png"]
