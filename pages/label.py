from typing import Any

import numpy as np
import streamlit as st
from PIL import Image

from medreview.errors import MedreviewError
from medreview.imaging import boxes as box_geometry
from medreview.imaging.display import render_frame
from medreview.imaging.overlays import thumbnail
from medreview.reading.catalog import ImageRecord, get_image
from medreview.reading.reads import can_see_others, save_read
from medreview.reading.review import image_reads
from medreview.reading.schema import label_classes
from medreview.reading.worklists import WORKLIST_FILTERS, modalities, next_image_id, worklist
from medreview.team.settings import get_setting
from ui.session import get_store, session_actor
from ui.text import plain
from ui.viewer import decoded, window_controls

# Canvas widths in display pixels; the default fits the image column of a 1440-px-wide window.
CANVAS_WIDTHS = (320, 448, 512, 640, 768, 1024)
# Canvas pixels (display size), not image pixels: the tallest a canvas may be before it scrolls.
CANVAS_MAX_HEIGHT = 1024


def box_canvas_ui(
    record: ImageRecord,
    frame_pixels: np.ndarray,
    frame_index: int,
    saved: list[dict[str, Any]],
    box_class: str,
    canvas_width: int,
) -> list[dict[str, Any]]:
    """The image on a drawing canvas; returns every box of the image in image pixels: the canvas's
    boxes for the shown frame, the stored (or drafted) ones for the other frames.

    The canvas is keyed by image, frame and size: a new size or frame mounts a new canvas whose
    initial drawing is the draft (or the stored boxes) converted to that size. The initial
    drawing of a mounted canvas is kept unchanged, since the canvas reloads whenever it changes.
    """
    # Imported here, not at the top: a Components v2 package registers its assets only inside a
    # running Streamlit app (streamlit-drawable-canvas 0.13 on Streamlit 1.67).
    from streamlit_drawable_canvas import st_canvas

    draft = st.session_state.get("label_box_draft")
    if draft is None or draft["image_id"] != record.image_id:
        draft = {"image_id": record.image_id, "frames": {}}
        st.session_state["label_box_draft"] = draft
    shown = draft["frames"].get(frame_index, [box for box in saved if int(box.get("frame", 0)) == frame_index])
    viewport = box_geometry.Viewport.fit(record.columns, record.rows, canvas_width, CANVAS_MAX_HEIGHT)
    canvas_key = f"label_canvas_{record.image_id}_{frame_index}_{viewport.display_width}"
    initial = st.session_state.get("label_canvas_initial", {})
    if canvas_key not in initial:
        initial = {canvas_key: box_geometry.boxes_to_canvas(shown, viewport, frame=frame_index)}
        st.session_state["label_canvas_initial"] = initial
    # The canvas stretches its background to its own size: sending more pixels than it shows
    # only costs bandwidth. (H, W) or (H, W, 3) uint8.
    background = thumbnail(frame_pixels, int(max(viewport.display_width, viewport.display_height)))
    result = st_canvas(
        fill_color="rgba(0, 0, 0, 0)",  # outline only: the finding stays visible
        stroke_width=2,
        stroke_color="#ffc107",
        background_image=Image.fromarray(background),
        width=int(viewport.display_width),
        height=int(viewport.display_height),
        drawing_mode="labeled_rect",
        label=box_class,
        font_size=14,
        initial_drawing=initial[canvas_key],
        key=canvas_key,
    )
    try:
        drawn = box_geometry.canvas_to_boxes(result.json_data, viewport, frame=frame_index, default_label=box_class)
    except ValueError as error:
        st.error(f"Could not read the boxes from the canvas: {plain(error)}")
        drawn = shown
    draft["frames"][frame_index] = drawn
    merged = saved
    for drafted_frame, frame_boxes in draft["frames"].items():
        merged = box_geometry.replace_frame_boxes(merged, drafted_frame, frame_boxes)
    return merged


store = get_store()
actor = session_actor("annotator")
st.title("Label")

classes = label_classes(store)
multi = get_setting(store, "label_mode") == "multi"
boxes_on = bool(get_setting(store, "boxes")) and bool(classes)
with st.sidebar:
    status = (
        st.segmented_control(
            "Show", list(WORKLIST_FILTERS), format_func=WORKLIST_FILTERS.get, default="unread", key="label_status"
        )
        or "all"
    )
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
    record = get_image(store, actor, image_id)
    image = decoded(image_id)
except MedreviewError as error:
    view_column.error(plain(error))
    st.stop()

with view_column:
    st.subheader(plain(record.display_name.rsplit("/", 1)[-1]))
    st.caption(
        f"{plain(record.modality)} · patient {plain(record.patient_key)} · {record.columns}×{record.rows}"
        + (f" · {record.number_of_frames} frames" if record.number_of_frames > 1 else "")
        + (
            f" · my label: **{plain(record.label)}**"
            if record.label
            else ""
            if record.read
            else " · not read by me yet"
        )
    )
    if record.burned_in_annotation:
        st.warning("This image may carry burned-in patient information: check before sharing.")
    if record.status == "returned":
        st.warning(f"Sent back by the reviewer: {plain(record.review_comment)}")
    controls, picture = st.columns([1, 3])
    with controls:
        frame_index, window = window_controls(image, key="label")
        unsure = st.checkbox("Unsure", value=record.unsure, key=f"label_unsure_{image_id}")
        comment = st.text_input("Comment", value=record.comment, key=f"label_comment_{image_id}")
        if boxes_on:
            box_class = st.selectbox("Box class", classes, key="label_box_class")
            canvas_width = st.select_slider("Canvas width", CANVAS_WIDTHS, value=448, key="label_canvas_width")
    frame_pixels = render_frame(image, frame_index, window)  # (H, W) or (H, W, 3) uint8
    # Boxes (image pixels) that every save of this run stores: the canvas's, when boxes are on.
    current_boxes: list[dict[str, Any]] = []
    if boxes_on:
        saved_boxes = list(record.boxes)
        with picture:
            try:
                current_boxes = box_canvas_ui(record, frame_pixels, frame_index, saved_boxes, box_class, canvas_width)
            except ImportError:
                st.warning("The drawing canvas (streamlit-drawable-canvas) is not installed: boxes are shown only.")
                st.image(box_geometry.draw_boxes(frame_pixels, saved_boxes, frame_index), width="stretch")
                current_boxes = saved_boxes
            st.caption(
                f"{sum(box['frame'] == frame_index for box in current_boxes)} box(es) on this frame. Drag to draw a "
                "box of the chosen class; the toolbar's edit toggle moves, resizes, relabels or deletes one."
            )
    else:
        picture.image(frame_pixels, width="stretch")

    def saved_then_next(**read) -> None:
        try:
            save_read(store, actor, image_id, unsure=unsure, comment=comment, boxes=current_boxes, **read)
        except MedreviewError as error:
            st.error(plain(error))
            return
        following = next_image_id(store, actor, after_image_id=image_id)
        if following is None or following == image_id:
            st.session_state["label_done"] = True
        else:
            st.session_state["label_image_id"] = following
        st.rerun()

    if multi:
        chosen = st.pills(
            "Classes present",
            classes,
            format_func=plain,
            selection_mode="multi",
            default=[name for name in record.labels if name in classes],
            key=f"label_multi_{image_id}",
        )
        if st.button("Save and next", type="primary", key="label_save_multi", shortcut="Enter"):
            saved_then_next(labels=chosen or [])
    if boxes_on and st.button("Save boxes", key="label_save_boxes", help="Save the boxes and stay on this image"):
        try:
            save_read(
                store,
                actor,
                image_id,
                None if multi else record.label,
                labels=(chosen or []) if multi else (),
                boxes=current_boxes,
                unsure=unsure,
                comment=comment,
            )
        except MedreviewError as error:
            st.error(plain(error))
        else:
            st.toast(f"Saved {len(current_boxes)} box(es).")
    if not multi:
        st.write("Label and go to the next image (keys 1, 2, ...):")
        buttons = st.columns(max(len(classes), 1))
        for position, (column, class_name) in enumerate(zip(buttons, classes, strict=False)):
            kind = "primary" if class_name == record.label else "secondary"
            if column.button(
                plain(class_name),
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
