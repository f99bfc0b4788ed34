import pandas as pd
import streamlit as st

from medreview.errors import MedreviewError
from medreview.ingest import InputFile, ingest_files
from medreview.ingest.dicomweb import DicomWebClient, import_study
from ui.session import get_store, session_actor
from ui.text import plain, spreadsheet_safe

store = get_store()
actor = session_actor("annotator")
st.title("Upload")
# The limit ingest enforces per file (medreview.config, MEDREVIEW_MAX_FILE_BYTES), in whole MiB, is
# the one the uploader shows and applies; Streamlit's server.maxUploadSize (.streamlit/config.toml)
# is only the ceiling above it.
limit_mib = max(1, min(store.settings.limits.max_file_bytes // 2**20, int(st.get_option("server.maxUploadSize"))))
st.caption(
    "DICOM (with or without .dcm, compressed or not), PNG, JPEG, and .zip archives of those. "
    f"Up to {limit_mib:,} MiB per file. Duplicates are reported, not stored twice; a bad file never stops the rest."
)

uploads = st.file_uploader("Drop files here", accept_multiple_files=True, key="upload_files", max_upload_size=limit_mib)
if uploads and st.button(f"Store {len(uploads)} file(s)", type="primary", key="upload_store"):
    bar = st.progress(0.0, text="Reading files...")
    total = len(uploads)

    def files():
        for upload in uploads:
            yield InputFile(upload.name, upload.getvalue())

    def progress(done: int, name: str) -> None:
        bar.progress(min(done / total, 1.0), text=f"{done} file(s) processed: {name}")

    results = ingest_files(store, actor, files(), progress=progress)
    bar.progress(1.0, text="Done")
    st.session_state["upload_results"] = [r.as_dict() for r in results]


def pacs_import_ui() -> None:
    """Search and retrieve studies over DICOMweb (admins only: the server fetches the address given)."""
    with st.expander("Import from a PACS (DICOMweb)"):
        url_column, user_column, password_column = st.columns([3, 1, 1])
        pacs_url = url_column.text_input("DICOMweb address", placeholder="http://pacs:8042/dicom-web", key="pacs_url")
        pacs_user = user_column.text_input("User", key="pacs_user")
        pacs_password = password_column.text_input("Password", type="password", key="pacs_password")
        id_column, name_column, date_column, modality_column = st.columns(4)
        patient_id = id_column.text_input("Patient ID", key="pacs_patient_id")
        patient_name = name_column.text_input("Patient name", key="pacs_patient_name")
        study_date = date_column.text_input("Study date", placeholder="YYYYMMDD or range", key="pacs_date")
        modality = modality_column.text_input("Modality", key="pacs_modality")
        client = (
            DicomWebClient(pacs_url, username=pacs_user or None, password=pacs_password or None) if pacs_url else None
        )
        if client is not None and st.button("Search", key="pacs_search"):
            try:
                found = client.search_studies(
                    patient_id=patient_id, patient_name=patient_name, study_date=study_date, modality=modality
                )
            except MedreviewError as error:
                st.error(plain(error))
            else:
                st.session_state["pacs_studies"] = pd.DataFrame([study.__dict__ for study in found])
        studies = st.session_state.get("pacs_studies")
        if studies is not None:
            if studies.empty:
                st.info("No studies match.")
            else:
                picked = st.dataframe(
                    spreadsheet_safe(studies),
                    hide_index=True,
                    on_select="rerun",
                    selection_mode="multi-row",
                    key="pacs_table",
                )
                chosen = [studies["study_uid"].iloc[row] for row in picked.selection.rows]
                if client is not None and chosen and st.button(f"Import {len(chosen)} study(ies)", key="pacs_import"):
                    results = []
                    try:
                        with st.spinner("Retrieving from the PACS..."):
                            for study_uid in chosen:
                                results.extend(import_study(store, actor, client, study_uid))
                    except MedreviewError as error:
                        st.error(plain(error))
                    st.session_state["upload_results"] = [r.as_dict() for r in results]


if actor.can("admin"):
    pacs_import_ui()

if st.session_state.get("upload_results"):  # a PACS import that failed at once leaves none
    table = pd.DataFrame(st.session_state["upload_results"])
    # Refused files first (in upload order): at the end of a long table they went unseen.
    table = table.sort_values("status", key=lambda status: status != "rejected", kind="stable")
    stored, duplicate, rejected = (int((table["status"] == s).sum()) for s in ("stored", "duplicate", "rejected"))
    message = f"{stored} stored, {duplicate} duplicate, {rejected} rejected"
    (st.warning if rejected else st.success)(message)
    st.dataframe(
        spreadsheet_safe(table[["file", "status", "reason"]]),
        hide_index=True,
        key="upload_table",
        column_config={"reason": st.column_config.TextColumn(width="large")},
    )
