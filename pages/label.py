import streamlit as st

from medreview.annotation import WORKLIST_FILTERS, label_classes, modalities, next_image_id, save_label, worklist
from medreview.catalog import get_image
from medreview.errors import MedreviewError
from medreview.imaging import render_frame
from pages.common import decoded, get_store, window_controls

store = get_store()
st.title("Label")

classes = label_classes(store)
with st.sidebar:
    status = st.segmented_control("Show", WORKLIST_FILTERS, default="unlabelled", key="label_status") or "all"
    by_class = st.selectbox("Class", ["any", *classes], key="label_class_filter")
    by_modality = st.selectbox("Modality", ["any", *modalities(store)], key="label_modality_filter")

items = worklist(
    store,
    status=status,
    label=None if by_class == "any" else by_class,
    modality=None if by_modality == "any" else by_modality,
)

if "label_image_id" not in st.session_state:
    st.session_state["label_image_id"] = next_image_id(store) or (
        int(items["image_id"].iloc[0]) if len(items) else None
    )

list_column, view_column = st.columns([1, 2])
with list_column:
    st.caption(f"{len(items)} image(s)")
    selection = st.dataframe(
        items[["image_id", "file", "modality", "label"]],
        hide_index=True,
        on_select="rerun",
        selection_mode="single-row",
        key="label_worklist",
        height=520,
    )
    rows = selection.selection.rows if selection else []
    if rows:
        picked = int(items["image_id"].iloc[rows[0]])
        if st.session_state.get("label_last_pick") != picked:
            st.session_state["label_last_pick"] = picked
            st.session_state["label_image_id"] = picked

image_id = st.session_state["label_image_id"]
if image_id is None:
    view_column.info("No images yet: add some on the Upload page (or load the demo data on Home).")
    st.stop()

try:
    record = get_image(store, image_id)
    image = decoded(image_id)
except MedreviewError as error:
    view_column.error(str(error))
    st.stop()

with view_column:
    st.subheader(record.original_filename.rsplit("/", 1)[-1])
    st.caption(
        f"{record.modality} · patient {record.patient_key} · {record.columns}×{record.rows}"
        + (f" · {record.number_of_frames} frames" if record.number_of_frames > 1 else "")
        + (f" · label: **{record.label}**" if record.label else " · unlabelled")
    )
    if record.burned_in_annotation:
        st.warning("This image may carry burned-in patient information.")
    controls, picture = st.columns([1, 3])
    with controls:
        frame_index, window = window_controls(image, key="label")
        unsure = st.checkbox("Unsure", value=record.unsure, key=f"label_unsure_{image_id}")
        comment = st.text_input("Comment", value=record.comment, key=f"label_comment_{image_id}")
    picture.image(render_frame(image, frame_index, window), width="stretch")

    st.write("Label and go to the next unlabelled image (keys 1, 2, ...):")
    buttons = st.columns(max(len(classes), 1))
    for position, (column, class_name) in enumerate(zip(buttons, classes, strict=False)):
        shortcut = str(position + 1) if position < 9 else None
        kind = "primary" if class_name == record.label else "secondary"
        if column.button(class_name, key=f"label_button_{class_name}", type=kind, shortcut=shortcut, width="stretch"):
            try:
                save_label(store, image_id, class_name, unsure=unsure, comment=comment)
            except MedreviewError as error:
                st.error(str(error))
            else:
                following = next_image_id(store, after_image_id=image_id)
                if following is None:
                    st.session_state["label_done"] = True
                else:
                    st.session_state["label_image_id"] = following
                st.rerun()

    previous_column, next_column = st.columns(2)
    ids = [int(i) for i in items["image_id"]]
    if image_id in ids:
        where = ids.index(image_id)
        if previous_column.button("← Previous", key="label_previous", disabled=where == 0, shortcut="Left"):
            st.session_state["label_image_id"] = ids[where - 1]
            st.rerun()
        if next_column.button("Next →", key="label_next", disabled=where == len(ids) - 1, shortcut="Right"):
            st.session_state["label_image_id"] = ids[where + 1]
            st.rerun()
    if st.session_state.pop("label_done", False):
        st.success("Every image is labelled.")
