import pandas as pd
import streamlit as st

from medreview.ingest import InputFile, ingest_files
from pages.common import get_store

store = get_store()
st.title("Upload")
st.caption(
    "DICOM (with or without .dcm, compressed or not), PNG, JPEG, and .zip archives of those. "
    "Duplicates are reported, not stored twice; a bad file never stops the rest."
)

uploads = st.file_uploader("Drop files here", accept_multiple_files=True, key="upload_files")
if uploads and st.button(f"Store {len(uploads)} file(s)", type="primary", key="upload_store"):
    bar = st.progress(0.0, text="Reading files...")
    total = len(uploads)

    def files():
        for upload in uploads:
            yield InputFile(upload.name, upload.getvalue())

    def progress(done: int, name: str) -> None:
        bar.progress(min(done / total, 1.0), text=f"{done} file(s) processed: {name}")

    results = ingest_files(store, files(), progress=progress)
    bar.progress(1.0, text="Done")
    st.session_state["upload_results"] = [r.as_dict() for r in results]

if "upload_results" in st.session_state:
    table = pd.DataFrame(st.session_state["upload_results"])
    stored, duplicate, rejected = (int((table["status"] == s).sum()) for s in ("stored", "duplicate", "rejected"))
    message = f"{stored} stored, {duplicate} duplicate, {rejected} rejected"
    (st.warning if rejected else st.success)(message)
    st.dataframe(
        table[["file", "status", "reason"]],
        hide_index=True,
        key="upload_table",
        column_config={"reason": st.column_config.TextColumn(width="large")},
    )
