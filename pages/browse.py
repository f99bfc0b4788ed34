"""Browse: patient -> study -> series in the sidebar, the series as a navigable stack, the DICOM header."""

import pandas as pd
import streamlit as st

from medreview.errors import MedreviewError
from medreview.imaging.display import render_frame
from medreview.reading.browse import dicom_header, filter_header, patients, series_list, series_slices, studies
from medreview.reading.catalog import get_image
from medreview.store import Store
from ui.session import get_store, session_actor
from ui.text import plain
from ui.viewer import decoded, window_controls

SLICE_KEY = "browse_slice"
# window_controls(image, key="browse") keeps its frame slider's position under "browse_frame".
FRAME_KEY = "browse_frame"


def count_text(count: int, singular: str, plural: str) -> str:
    return f"{count} {singular if count == 1 else plural}"


def date_text(study_date: str | None) -> str:
    return f"{study_date[:4]}-{study_date[4:6]}-{study_date[6:8]}" if study_date else "undated"


def step(key: str, delta: int, count: int) -> None:
    """Button callback: move a 1-based slider position by ``delta``, staying within 1..count."""
    st.session_state[key] = min(max(int(st.session_state.get(key, 1)) + delta, 1), count)


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
    number = "" if pd.isna(row.series_number) else f"#{row.series_number}"
    description = row.description or ("" if number else uid_tail(row.series_uid))
    parts = [part for part in (number, row.modality, description) if part]
    return " · ".join(parts) + f" ({count_text(row.images, 'image', 'images')})"


def pickers_ui(store: Store, patient_table: pd.DataFrame) -> int:
    """Patient, study and series selectboxes; returns the chosen series id.

    Selectboxes rather than tables: the first entry is preselected at every level, so a patient with
    one study is on screen at once, and each box filters as the reader types an ID or description.
    """
    patient_labels = {int(row.patient_id): patient_label(row) for row in patient_table.itertuples()}
    patient_id = st.selectbox(
        "Patient", list(patient_labels), format_func=patient_labels.__getitem__, key="browse_patient"
    )
    study_labels = {int(row.study_id): study_label(row) for row in studies(store, patient_id).itertuples()}
    study_id = st.selectbox("Study", list(study_labels), format_func=study_labels.__getitem__, key="browse_study")
    series_labels = {int(row.series_id): series_label(row) for row in series_list(store, study_id).itertuples()}
    return st.selectbox("Series", list(series_labels), format_func=series_labels.__getitem__, key="browse_series")


def slice_controls_ui(series_id: int, count: int) -> int:
    """Slice slider with Previous/Next buttons (Up/Down arrow keys); returns the 0-based position."""
    if st.session_state.get("browse_shown_series") != series_id:
        # A newly chosen series opens at its first slice.
        st.session_state["browse_shown_series"] = series_id
        st.session_state[SLICE_KEY] = 1
    if count == 1:
        return 0
    if st.session_state.get(SLICE_KEY, 1) > count:  # the series lost slices since the last run
        st.session_state[SLICE_KEY] = count
    position = st.slider("Slice", 1, count, key=SLICE_KEY)
    stepper_ui("slice", SLICE_KEY, position - 1, count, shortcuts=("Up", "Down"))
    return position - 1


def stepper_ui(noun: str, state_key: str, index: int, count: int, shortcuts: tuple[str, str]) -> None:
    """Previous/Next buttons (with keyboard shortcuts) that move the slider at ``state_key``."""
    previous_column, next_column = st.columns(2)
    for column, word, delta, shortcut, disabled in (
        (previous_column, "Previous", -1, shortcuts[0], index == 0),
        (next_column, "Next", 1, shortcuts[1], index == count - 1),
    ):
        column.button(
            f"{word} {noun}",
            key=f"browse_{word.lower()}_{noun}",
            shortcut=shortcut,
            disabled=disabled,
            on_click=step,
            args=(state_key, delta, count),
            width="stretch",
        )


def header_ui(store: Store, image_id: int) -> None:
    with st.expander("DICOM header"):
        needle = st.text_input(
            "Filter", key="browse_header_filter", placeholder="tag, keyword or value, e.g. 0010,0020 or Patient"
        )
        header = filter_header(dicom_header(store, actor, image_id), needle)
        st.dataframe(header, hide_index=True, width="stretch")


store = get_store()
actor = session_actor()
st.title("Browse")

try:
    patient_table = patients(store)
    if int(patient_table["images"].sum()) == 0:
        st.info("No images yet: add some on the Upload page (or load the demo data on Home).")
        st.stop()
    with st.sidebar:
        series_id = pickers_ui(store, patient_table)
    slices = series_slices(store, series_id)
    if slices.empty:
        st.info("This series holds no images.")
        st.stop()

    controls, picture = st.columns([1, 3])
    with controls:
        position = slice_controls_ui(series_id, len(slices))
        current = slices.iloc[position]
        image_id = int(current["image_id"])
        record = get_image(store, actor, image_id)
        image = decoded(image_id)
        if st.session_state.get(FRAME_KEY, 1) > image.frame_count:  # came from a longer clip
            st.session_state[FRAME_KEY] = image.frame_count
        frame_index, window = window_controls(image, key="browse")
        if image.frame_count > 1:
            stepper_ui("frame", FRAME_KEY, frame_index, image.frame_count, shortcuts=("Left", "Right"))

    details = [f"Slice {position + 1}/{len(slices)}"]
    if not pd.isna(current["instance_number"]):
        details.append(f"instance {current['instance_number']}")
    if not pd.isna(current["slice_location"]):
        details.append(f"location {current['slice_location']:.1f} mm")
    if image.frame_count > 1:
        details.append(f"frame {frame_index + 1}/{image.frame_count}")
    details.append(f"{plain(record.modality)} · {record.columns}×{record.rows}")
    with picture:
        st.caption(" · ".join(details) + f" · {plain(record.display_name.rsplit('/', 1)[-1])}")
        if record.burned_in_annotation:
            st.warning("This image may carry burned-in patient information.")
        st.image(render_frame(image, frame_index, window), width="stretch")

    header_ui(store, image_id)
except MedreviewError as error:
    st.error(plain(error))
