"""Browse: patient -> study in the sidebar, the study's series in a grid of viewports, the DICOM header
of the slice on screen in the active viewport."""

from collections import Counter

import pandas as pd
import streamlit as st

from medreview.errors import MedreviewError
from medreview.reading.browse import dicom_header, filter_header, patients, series_list, series_slices, studies
from medreview.reading.catalog import get_image
from medreview.reading.protocols import hanging_for_study
from medreview.store import Store
from medreview.team.settings import get_setting
from ui.session import get_store, session_actor
from ui.text import plain, spreadsheet_safe
from ui.viewer import case_viewer, hung_viewports


def count_text(count: int, singular: str, plural: str) -> str:
    return f"{count} {singular if count == 1 else plural}"


def date_text(study_date: str | None) -> str:
    return f"{study_date[:4]}-{study_date[4:6]}-{study_date[6:8]}" if study_date else "undated"


def uid_tail(uid: str) -> str:
    # Tells apart studies/series with no date, number or description (de-identified uploads).
    return f"UID …{uid[-6:]}"


def patient_label(row) -> str:
    name = row.patient_name if row.patient_name and row.patient_name != row.patient_key else ""
    counts = f"{count_text(row.studies, 'study', 'studies')}, {count_text(row.images, 'image', 'images')}"
    return " · ".join(part for part in (row.patient_key, name) if part) + f" ({counts})"


def study_label(row) -> str:
    parts = [date_text(row.study_date), row.description or uid_tail(row.study_uid)]
    counts = f"{count_text(row.series, 'series', 'series')}, {count_text(row.images, 'image', 'images')}"
    return " · ".join(parts) + f" ({counts})"


def series_label(row) -> str:
    # "#2 · CT chest axial 1.25 mm (120 images)": with de-identification the description is built
    # from coded values and geometry at import (medreview.ingest.deid.series_description).
    number = "" if pd.isna(row.series_number) else f"#{row.series_number}"
    description = row.description or ("" if number else uid_tail(row.series_uid))
    what = " ".join(part for part in (row.modality, description) if part)
    parts = [part for part in (number, what) if part]
    return " · ".join(parts) + f" ({count_text(row.images, 'image', 'images')})"


def series_labels(series_table: pd.DataFrame) -> dict[int, str]:
    """A label per series; series whose labels would read the same get their UID's end as well."""
    labels = {int(row.series_id): series_label(row) for row in series_table.itertuples()}
    repeated = {label for label, count in Counter(labels.values()).items() if count > 1}
    uids = dict(zip(series_table["series_id"].astype(int), series_table["series_uid"], strict=True))
    return {
        series_id: f"{label} · {uid_tail(uids[series_id])}" if label in repeated else label
        for series_id, label in labels.items()
    }


def pickers_ui(store: Store, patient_table: pd.DataFrame) -> int:
    """Patient and study selectboxes; returns the chosen study id.

    Selectboxes rather than tables: the first entry is preselected at every level, so a patient with
    one study is on screen at once, and each box filters as the reader types an ID or description.
    """
    patient_labels = {int(row.patient_id): patient_label(row) for row in patient_table.itertuples()}
    patient_id = st.selectbox(
        "Patient", list(patient_labels), format_func=patient_labels.__getitem__, key="browse_patient"
    )
    study_labels = {int(row.study_id): study_label(row) for row in studies(store, patient_id).itertuples()}
    return st.selectbox("Study", list(study_labels), format_func=study_labels.__getitem__, key="browse_study")


def header_ui(store: Store, image_id: int) -> None:
    with st.expander("DICOM header"):
        needle = st.text_input(
            "Filter", key="browse_header_filter", placeholder="tag, keyword or value, e.g. 0010,0020 or Patient"
        )
        header = filter_header(dicom_header(store, actor, image_id), needle)
        st.dataframe(spreadsheet_safe(header), hide_index=True, width="stretch")


def slice_caption(store: Store, series_id: int, image_id: int, title: str) -> str:
    """The slice on screen in the active viewport: its place in the series, instance, location, file."""
    slices = series_slices(store, series_id)
    shown_ids = [int(found) for found in slices["image_id"]]
    position = shown_ids.index(image_id) if image_id in shown_ids else 0
    current = slices.iloc[position]
    record = get_image(store, actor, int(current["image_id"]))
    details = [plain(title), f"Slice {position + 1}/{len(slices)}"]
    if not pd.isna(current["instance_number"]):
        details.append(f"instance {current['instance_number']}")
    if not pd.isna(current["slice_location"]):
        details.append(f"location {current['slice_location']:.1f} mm")
    details.append(f"{plain(record.modality)} · {record.columns}×{record.rows}")
    if record.number_of_frames > 1:
        details.append(f"{record.number_of_frames} frames")
    return " · ".join(details) + f" · {plain(record.display_name.rsplit('/', 1)[-1])}"


store = get_store()
actor = session_actor()
st.title("Browse")

try:
    patient_table = patients(store)
    if int(patient_table["images"].sum()) == 0:
        st.info("No images yet: add some on the Upload page (or load the demo data on Home).")
        st.stop()
    with st.sidebar:
        study_id = pickers_ui(store, patient_table)
    series_table = series_list(store, study_id)
    series_table = series_table[series_table["images"] > 0]
    if series_table.empty:
        st.info("This study holds no images.")
        st.stop()

    # The study opens as the project's hanging protocols hang it (Settings), a series a viewport; a
    # study no protocol matches opens 1x1 with its first series. The viewer scrolls, windows and links
    # the viewports in the browser and reports the active one and the slice each shows: that slice's
    # details and header are shown below it.
    hanging = hanging_for_study(store, study_id, get_setting(store, "hanging_protocols"))
    viewports = hung_viewports(hanging)
    labels = series_labels(series_table)
    sync = case_viewer("browse_viewer", actor, f"study:{study_id}", viewports, layout=hanging.layout)
    filled = [index for index, viewport in enumerate(viewports) if viewport.image_ids]
    active = sync.get("active") if sync.get("active") in filled else filled[0]
    views = sync.get("view") if isinstance(sync.get("view"), list) else []
    shown = views[active] if active < len(views) and isinstance(views[active], dict) else {}
    image_id = shown.get("imageId") if shown.get("imageId") in viewports[active].image_ids else None
    image_id = int(image_id) if image_id is not None else viewports[active].image_ids[0]
    series_id = hanging.viewports[active].series_id
    st.caption(f"Hung by {plain(hanging.reason)}.")
    st.caption(
        slice_caption(
            store, series_id, image_id, f"Viewport {active + 1}: {labels.get(series_id) or viewports[active].prior}"
        )
    )
    if get_image(store, actor, image_id).burned_in_annotation:
        st.warning("This image may carry burned-in patient information.")

    header_ui(store, image_id)
except MedreviewError as error:
    st.error(plain(error))
