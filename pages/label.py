import streamlit as st

from medreview.annotation import WORKLIST_FILTERS, label_classes, modalities, next_image_id, save_read, worklist
from medreview.catalog import get_image
from medreview.errors import MedreviewError
from medreview.imaging import render_frame
from medreview.project import get_setting
from medreview.review import can_see_others, image_reads
from pages.common import decoded, get_store, session_actor, window_controls

store = get_store()
actor = session_actor("annotator")
st.title("Label")

classes = label_classes(store)
multi = get_setting(store, "label_mode") == "multi"
with st.sidebar:
    status = st.segmented_control("Show", WORKLIST_FILTERS, default="unlabelled", key="label_status") or "all"
    by_class = st.selectbox("My label", ["any", *classes], key="label_class_filter")
    by_modality = st.selectbox("Modality", ["any", *modalities(store)], key="label_modality_filter")

items = worklist(
    store,
    actor,
    status=status,
    label=None if by_class == "any" else by_class,
    modality=None if by_modality == "any" else by_modality,
)

if st.session_state.get("label_image_id") is None:
    st.session_state["label_image_id"] = next_image_id(store, actor) or (
        int(items["image_id"].iloc[0]) if len(items) else None
    )

list_column, view_column = st.columns([1, 2])
with list_column:
    st.caption(f"{len(items)} image(s) on your worklist")
    selection = st.dataframe(
        items[["image_id", "file", "modality", "label", "status"]],
        hide_index=True,
        on_select="rerun",
        selection_mode="single-row",
        key="label_worklist",
        height=520,
        column_config={"label": "my label", "status": "my read"},
    )
    rows = selection.selection.rows if selection else []
    if rows:
        picked = int(items["image_id"].iloc[rows[0]])
        if st.session_state.get("label_last_pick") != picked:
            st.session_state["label_last_pick"] = picked
            st.session_state["label_image_id"] = picked

image_id = st.session_state["label_image_id"]
if image_id is None:
    view_column.info("No images on your worklist: upload some (or load the demo data on Home).")
    st.stop()

try:
    record = get_image(store, image_id, reader=actor.username)
    image = decoded(image_id)
except MedreviewError as error:
    view_column.error(str(error))
    st.stop()

own = worklist(store, actor)
own = own[own["image_id"] == image_id]
own_status = own["status"].iloc[0] if len(own) else None

with view_column:
    st.subheader(record.original_filename.rsplit("/", 1)[-1])
    st.caption(
        f"{record.modality} · patient {record.patient_key} · {record.columns}×{record.rows}"
        + (f" · {record.number_of_frames} frames" if record.number_of_frames > 1 else "")
        + (f" · my label: **{record.label}**" if record.label else " · not read by me yet")
    )
    if record.burned_in_annotation:
        st.warning("This image may carry burned-in patient information: check before sharing.")
    if own_status == "returned":
        reads = image_reads(store, actor, image_id)
        mine = reads[reads["reader"] == actor.username]
        note = mine["review_comment"].iloc[0] if len(mine) else ""
        st.warning(f"Sent back by the reviewer: {note}")
    controls, picture = st.columns([1, 3])
    with controls:
        frame_index, window = window_controls(image, key="label")
        unsure = st.checkbox("Unsure", value=record.unsure, key=f"label_unsure_{image_id}")
        comment = st.text_input("Comment", value=record.comment, key=f"label_comment_{image_id}")
    picture.image(render_frame(image, frame_index, window), width="stretch")

    def saved_then_next(**read) -> None:
        try:
            save_read(store, actor, image_id, unsure=unsure, comment=comment, **read)
        except MedreviewError as error:
            st.error(str(error))
            return
        following = next_image_id(store, actor, after_image_id=image_id)
        if following is None or following == image_id:
            st.session_state["label_done"] = True
        else:
            st.session_state["label_image_id"] = following
        st.rerun()

    if multi:
        chosen = st.pills("Classes present", classes, selection_mode="multi", key=f"label_multi_{image_id}")
        if st.button("Save and next", type="primary", key="label_save_multi", shortcut="Enter"):
            saved_then_next(labels=chosen or [])
    else:
        st.write("Label and go to the next image (keys 1, 2, ...):")
        buttons = st.columns(max(len(classes), 1))
        for position, (column, class_name) in enumerate(zip(buttons, classes, strict=False)):
            kind = "primary" if class_name == record.label else "secondary"
            if column.button(
                class_name,
                key=f"label_button_{class_name}",
                type=kind,
                shortcut=str(position + 1) if position < 9 else None,
                width="stretch",
            ):
                saved_then_next(label=class_name)

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
        st.success("Every image on your worklist is read.")

    if can_see_others(store, actor, image_id):
        reads = image_reads(store, actor, image_id)
        others = reads[reads["reader"] != actor.username]
        if len(others):
            with st.expander(f"Other readers ({len(others)})"):
                st.dataframe(others[["reader", "label", "labels", "unsure", "status", "comment"]], hide_index=True)
    else:
        st.caption("Blinded reading: other readers' labels appear once you have saved yours.")
