"""Label: the reader's worklist beside the viewer. Class keys label the image on screen and the next
one appears at once from the browser; the saves reach the server in the background (ui/viewer.py)."""

from functools import partial

import streamlit as st

from medreview.errors import MedreviewError
from medreview.reading.catalog import get_image
from medreview.reading.reads import can_see_others, save_read
from medreview.reading.review import image_reads
from medreview.reading.schema import label_classes
from medreview.reading.worklists import (
    WORKLIST_FILTERS,
    WorklistFilter,
    following_image_ids,
    list_position,
    modalities,
    next_image_id,
    worklist_counts,
    worklist_page,
)
from medreview.team.settings import get_setting
from ui.session import get_store, session_actor
from ui.text import plain, spreadsheet_safe
from ui.viewer import image_viewer, save_pending_reads, signed_out_viewer, viewer_state

# Images after the current one whose pixels the browser holds before the reader gets there.
PREFETCH_IMAGES = 12
PAGE_ROWS = 50
VIEWER_KEY = "label_viewer"

store = get_store()
actor = session_actor("annotator")
st.title("Label")

classes = label_classes(store)
multi = get_setting(store, "label_mode") == "multi"
boxes_on = bool(get_setting(store, "boxes")) and bool(classes)
with st.sidebar:
    status = (
        st.segmented_control(
            "Show", list(WORKLIST_FILTERS), format_func=WORKLIST_FILTERS.get, default="todo", key="label_status"
        )
        or "todo"
    )
    by_class = st.selectbox("My label", ["any", *classes], key="label_class_filter")
    by_modality = st.selectbox("Modality", ["any", *modalities(store)], key="label_modality_filter")

worklist_filter = WorklistFilter(
    status=status,
    label=None if by_class == "any" else by_class,
    modality=None if by_modality == "any" else by_modality,
)
list_version = f"{worklist_filter.status}|{worklist_filter.label}|{worklist_filter.modality}"
if not classes:
    st.warning("The label schema has no classes yet: an admin defines them under Settings.")


def jump_to(image_id: int | None) -> None:
    """Move the viewer to an image (a click in the list, a new filter)."""
    st.session_state["label_position"] = image_id
    st.session_state["label_jump"] = st.session_state.get("label_jump", 0) + 1


# A new filter opens the nearest image of the new list at or after the current one.
if st.session_state.get("label_list_version") != list_version:
    st.session_state["label_list_version"] = list_version
    here = viewer_state(VIEWER_KEY).get("position") or st.session_state.get("label_position")
    jump_to(next_image_id(store, actor, worklist_filter, after_image_id=(int(here) - 1) if here else None))


def current_position() -> tuple[int | None, int]:
    """The image the reader is on, and the count of jumps the page asked the viewer for."""
    reported = viewer_state(VIEWER_KEY).get("position")
    position = st.session_state.get("label_position")
    jump = st.session_state.get("label_jump", 0)
    if st.session_state.get("label_seen_jump") == jump and reported:
        position = int(reported)  # the viewer moved on by itself (a class key, back, skip)
    return position, jump


def worklist_ui() -> None:
    """The counts and one page of the worklist; a click opens that image in the viewer. Drawn by the
    page's full runs only: the viewer's reports rerun the viewer alone (a rerun redraws every
    element it holds, and a 50-row table on each key would stall a scrolling reader)."""
    save_pending_reads(VIEWER_KEY, actor)  # the counts include the reads the viewer still holds
    position, _ = current_position()
    counts = worklist_counts(store, actor, worklist_filter)
    total = counts.get(worklist_filter.status, 0)
    st.caption(" · ".join(f"{counts.get(name, 0)} {WORKLIST_FILTERS[name].lower()}" for name in WORKLIST_FILTERS))
    pages = max(1, -(-total // PAGE_ROWS))
    where = list_position(store, actor, worklist_filter, position) if position else None
    default_page = (where // PAGE_ROWS + 1) if where is not None else 1
    page = st.number_input(
        f"Page (of {pages})", 1, pages, value=min(default_page, pages), key=f"label_page_{list_version}"
    )
    rows, total = worklist_page(store, actor, worklist_filter, offset=(int(page) - 1) * PAGE_ROWS, limit=PAGE_ROWS)
    selection = st.dataframe(
        spreadsheet_safe(rows[["image_id", "file", "modality", "label", "status"]]),
        hide_index=True,
        on_select="rerun",
        selection_mode="single-row",
        key=f"label_worklist_{list_version}_{page}",
        height=560,
        column_config={"label": "my label", "status": "my read"},
    )
    picked_rows = selection.selection.rows if selection else []
    if picked_rows and picked_rows[0] < len(rows):
        picked = int(rows["image_id"].iloc[picked_rows[0]])
        if st.session_state.get("label_last_pick") != picked:
            st.session_state["label_last_pick"] = picked
            jump_to(picked)


@st.fragment
def viewer_ui() -> None:
    """The viewer, the comment and the other readers' reads; the viewer's reports rerun this only,
    without the page's check above: each report resolves the reader from the store again, and one
    made after the sign-in ended saves nothing and gets no pixels (the browser shows it was signed
    out, with the reads it still held as not saved)."""
    reader = session_actor("annotator", on_refused=partial(signed_out_viewer, VIEWER_KEY))
    acked, failed = save_pending_reads(VIEWER_KEY, reader)
    position, jump = current_position()
    if position is None:
        st.info("Nothing to read on this list.", icon=":material/check_circle:")
        if worklist_filter.status == "todo":
            st.success("Every image on your worklist is read.")
        return
    st.session_state["label_position"] = position
    st.session_state["label_seen_jump"] = jump
    upcoming = following_image_ids(store, reader, worklist_filter, after_image_id=position, limit=PREFETCH_IMAGES)
    image_viewer(
        VIEWER_KEY,
        reader,
        [position, *upcoming],
        mode="label",
        position=position,
        jump=jump,
        list_version=list_version,
        classes=classes,
        multi=multi,
        boxes=boxes_on,
        acked=acked,
        failed=failed,
    )
    try:
        record = get_image(store, reader, position)
    except MedreviewError as error:
        st.error(plain(error))
        return
    if record.burned_in_annotation:
        st.warning("This image may carry burned-in patient information: check before sharing.")
    if record.status == "returned":
        st.warning(f"Sent back by the reviewer: {plain(record.review_comment)}")
    with st.expander("Comment" + (f": {plain(record.comment)}" if record.comment else "")):
        comment = st.text_input("Comment on this image", value=record.comment, key=f"label_comment_{position}")
        if st.button("Save comment", key="label_save_comment"):
            try:
                save_read(
                    store,
                    reader,
                    position,
                    record.label,
                    labels=record.labels,
                    boxes=record.boxes,
                    unsure=record.unsure,
                    comment=comment,
                )
            except MedreviewError as error:
                st.error(plain(error))
            else:
                st.toast("Comment saved.")
    if can_see_others(store, reader, position):
        reads = image_reads(store, reader, position)
        others = reads[reads["reader"] != reader.username]
        if len(others):
            with st.expander(f"Other readers ({len(others)})"):
                st.dataframe(
                    spreadsheet_safe(others[["reader", "label", "labels", "unsure", "status", "comment"]]),
                    hide_index=True,
                )
    else:
        st.caption("Blinded reading: other readers' labels appear once you have saved yours.")


list_column, view_column = st.columns([1, 3])
with list_column:
    worklist_ui()
with view_column:
    viewer_ui()
