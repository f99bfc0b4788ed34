"""Label: the reader's worklist beside the viewer. Class keys label the image on screen and the next
one appears at once from the browser; the saves reach the server in the background (ui/viewer.py).

The page runs in three parts: the whole page (sidebar filters, the first drawing), the worklist (a
fragment, rerun when the viewer says the reader moved on or reads were saved: counts, the row on
screen, the rows done) and the viewer (a fragment, rerun by each of its reports). Streamlit sends
a batch of widget changes as one fragment's rerun, so a filter changed in the same instant as a
viewer report reached the server as the viewer's rerun alone, and the filter never applied: each
fragment first checks that the filters it was drawn with are the ones on screen, else reruns the
page. The search and the order are filters too: the viewer's "next" follows the table's order.

The list shows a thumbnail of each image (ui/thumbnails.py): made once in the background and
cached, a placeholder until then, so a page of the list never waits for pixels.

Case mode: when the project has study- or series-scoped classes (with image classes beside them,
a toggle chooses), the list holds cases (medreview.reading.worklists.CaseWorklist) under the same
filters, and the picked case opens in the case viewer, hung by the project's hanging protocols with
the patient's prior where a protocol asks for one. A class key is one read of the case, saved at its
key image. The viewer holds the next case of the list (sent with the one on screen) and opens it at
once; once the read is saved the page runs again on that case, so the list's counts and its marked
row follow."""

import hashlib
from functools import partial

import streamlit as st

from medreview.errors import MedreviewError
from medreview.reading.assist import assist_mode
from medreview.reading.cases import case_images
from medreview.reading.catalog import get_image
from medreview.reading.reads import can_see_others, save_read
from medreview.reading.review import image_reads
from medreview.reading.schema import label_class_scopes, label_classes
from medreview.reading.studies import list_studies
from medreview.reading.worklists import (
    MAX_SEARCH_CHARS,
    WORKLIST_FILTERS,
    WORKLIST_SORTS,
    CaseWorklist,
    WorklistFilter,
    case_list_position,
    case_worklist_counts,
    case_worklist_page,
    following_image_ids,
    list_position,
    modalities,
    next_case_id,
    next_image_id,
    worklist_counts,
    worklist_page,
)
from medreview.team.settings import get_setting
from ui.session import get_store, session_actor
from ui.study_reading import study_reading_ui
from ui.text import plain, spreadsheet_safe
from ui.thumbnails import thumbnail_urls
from ui.viewer import (
    NOT_THIS_SIGN_IN,
    case_viewer,
    hung_case,
    image_viewer,
    list_follower,
    pending_case_reads,
    save_pending_reads,
    sign_in_id,
    signed_out_viewer,
    viewer_state,
)

# Images after the current one whose pixels the browser holds before the reader gets there.
PREFETCH_IMAGES = 12
PAGE_ROWS = 50
VIEWER_KEY = "label_viewer"
CASE_VIEWER_KEY = "label_case_viewer"
# Comments typed and not saved yet, by image id: they go with the next save of their image.
DRAFTS_KEY = "label_comment_drafts"
ON_SCREEN = "▶"

store = get_store()
actor = session_actor("annotator")
st.title("Label")

classes = label_classes(store)
multi = get_setting(store, "label_mode") == "multi"
boxes_on = bool(get_setting(store, "boxes")) and bool(classes)
boxes_alone = boxes_on and bool(get_setting(store, "box_only_reads"))
# A reader of a reader study reads it here, as a worklist of its own (ui/study_reading.py).
reading_studies = {study.name: study for study in list_studies(store, actor, reading=True)}
if reading_studies:
    with st.sidebar:
        source = st.selectbox("Worklist", ["My worklist", *reading_studies], key="label_source")
    if source in reading_studies:
        st.caption("Reader study: your own list, in your own order; the truth and other readers stay hidden.")
        study_reading_ui(actor, reading_studies[source])
        st.stop()
with st.sidebar:
    status = (
        st.segmented_control(
            "Show", list(WORKLIST_FILTERS), format_func=WORKLIST_FILTERS.get, default="todo", key="label_status"
        )
        or "todo"
    )
    by_class = st.selectbox("My label", ["any", *classes], key="label_class_filter")
    by_modality = st.selectbox("Modality", ["any", *modalities(store)], key="label_modality_filter")
    # Study- or series-scoped classes are read a case at a time (a study's when the project has
    # both); when image-scoped classes sit beside them the reader chooses which to read.
    scopes = label_class_scopes(store)
    case_scope = next((scope for scope in ("study", "series") if scope in scopes.values()), None)
    case_mode = case_scope is not None
    if case_scope is not None and "image" in scopes.values():
        case_mode = st.toggle(f"Read {case_scope} cases", value=True, key="label_case_mode")
if not classes:
    st.warning("The label schema has no classes yet: an admin defines them under Settings.")
# The search and the order sit above the list they act on; they are the page's widgets, not the
# list fragment's, so a change reruns the whole page (the viewer's "next" follows them).
list_column, view_column = st.columns([4, 9])
with list_column:
    # Labels hidden (kept for screen readers): the placeholder and the "Sort:" say what they are,
    # and the list starts higher.
    search = st.text_input(
        "Search",
        key="label_search",
        max_chars=MAX_SEARCH_CHARS,
        placeholder="Search patient, study date, file, modality",
        label_visibility="collapsed",
    )
    sort = st.selectbox(
        "Sort by",
        list(WORKLIST_SORTS),
        format_func=lambda order: f"Sort: {WORKLIST_SORTS[order]}",
        key="label_sort",
        label_visibility="collapsed",
    )


def chosen_filter(
    status: str | None, by_class: str | None, by_modality: str | None, search: str | None, sort: str | None
) -> WorklistFilter:
    return WorklistFilter(
        status=status or "todo",
        label=None if by_class in (None, "any") else by_class,
        modality=None if by_modality in (None, "any") else by_modality,
        search=(search or "")[:MAX_SEARCH_CHARS],
        sort=sort if sort in WORKLIST_SORTS else "list",
    )


def filters_on_screen() -> WorklistFilter:
    return chosen_filter(
        st.session_state.get("label_status"),
        st.session_state.get("label_class_filter"),
        st.session_state.get("label_modality_filter"),
        st.session_state.get("label_search"),
        st.session_state.get("label_sort"),
    )


worklist_filter = chosen_filter(status, by_class, by_modality, search, sort)
# Names the list for the viewer and the table's keys (the search by a digest: any text, kept short).
searched = hashlib.sha256(worklist_filter.search.encode()).hexdigest()[:12] if worklist_filter.search else ""
list_version = (
    f"{worklist_filter.sort}|{searched}|{worklist_filter.status}|{worklist_filter.label}|{worklist_filter.modality}"
)


def rerun_page_if_filters_changed() -> None:
    """A fragment's run sees the filters of the page's last run; when the sidebar's filters have
    changed since (their change travelled with a viewer report, as that fragment's rerun), the page
    runs again with them."""
    if filters_on_screen() != worklist_filter:
        st.rerun()


def jump_to(image_id: int | None) -> None:
    """Move the viewer to an image (a click in the list, a new filter)."""
    st.session_state["label_position"] = image_id
    st.session_state["label_jump"] = st.session_state.get("label_jump", 0) + 1


# --- case mode: the worklist lists studies (or series), the viewer hangs the case --------------------


def case_page(scope: str) -> None:
    """The case worklist beside the case viewer: the picked case hung by the project's hanging
    protocols (the prior where a protocol asks for one), class keys 1-9 reading the case."""
    cases = CaseWorklist(scope, worklist_filter)
    case_classes = [name for name in classes if scopes.get(name) == scope]
    version = f"case|{scope}|{list_version}"
    if st.session_state.get("label_case_list_version") != version:
        st.session_state["label_case_list_version"] = version
        here = st.session_state.get("label_case")
        st.session_state["label_case"] = next_case_id(store, actor, cases, after_case_id=here, include_anchor=True)
    with list_column:
        case_worklist_ui(cases, version)
    with view_column:
        case_viewer_ui(cases, case_classes)


def save_case_reads(reader, scope: str) -> tuple[list[int], dict[int, str], set[int]]:  # type: ignore[no-untyped-def]
    """Save the case reads the viewer holds (each once per session, by its seq) at each case's key
    image; returns (acknowledged seqs, failed seq -> reason, ids of the cases read just now)."""
    saved: set[int] = st.session_state.setdefault(f"{CASE_VIEWER_KEY}__saved_seqs", set())
    owner = sign_in_id()
    acked: list[int] = []
    failed: dict[int, str] = {}
    read_now: set[int] = set()
    for entry in pending_case_reads(CASE_VIEWER_KEY):
        seq = entry["seq"]
        if seq not in saved:
            if entry["owner"] != owner:
                failed[seq] = NOT_THIS_SIGN_IN
                continue
            case_scope_named, _, case_text = entry["caseId"].partition(":")
            try:
                if case_scope_named != scope or not case_text.isdigit():
                    raise MedreviewError(f"not a {scope} of this worklist")
                key_image = case_images(store, scope, int(case_text))[0]
                save_read(store, reader, key_image, entry["label"], comment=None, seconds_on_case=entry["seconds"])
            except MedreviewError as error:
                failed[seq] = str(error)  # the viewer escapes it as HTML text
                continue
            saved.add(seq)
            read_now.add(int(case_text))
        acked.append(seq)
    return acked, failed, read_now


@st.fragment(key="label_case_list")
def case_worklist_ui(cases: CaseWorklist, version: str) -> None:
    """The counts and one page of the case worklist, the case on screen marked; a click opens it."""
    reader = session_actor("annotator")
    rerun_page_if_filters_changed()
    position = st.session_state.get("label_case")
    counts = case_worklist_counts(store, reader, cases)
    total = counts.get(worklist_filter.status, 0)
    noun = "studies" if cases.scope == "study" else "series"
    st.caption(
        f"{noun.capitalize()}: "
        + " · ".join(f"{counts.get(name, 0)} {WORKLIST_FILTERS[name].lower()}" for name in WORKLIST_FILTERS)
    )
    pages = max(1, -(-total // PAGE_ROWS))
    where = case_list_position(store, reader, cases, position) if position else None
    default_page = min((where // PAGE_ROWS + 1) if where is not None else 1, pages)
    page = st.number_input(
        f"Page (of {pages})", 1, pages, value=default_page, key=f"label_case_page_{version}_{default_page}"
    )
    rows, total = case_worklist_page(
        store, reader, cases, offset=(int(page) - 1) * PAGE_ROWS, limit=PAGE_ROWS, total=total
    )
    if worklist_filter.search and not total:
        st.caption(f"Nothing on this list matches “{plain(worklist_filter.search)}”.")
    marked = [f"{ON_SCREEN if case_id == position else ''} {case_id}".strip() for case_id in rows["case_id"]]
    rows.insert(0, "row", marked)
    shown_columns = ["row", "patient", "study_date", "modality", "prior_studies", "images", "series", "status", "label"]
    selection = st.dataframe(
        spreadsheet_safe(rows[[*shown_columns, "case_id"]]),
        hide_index=True,
        on_select="rerun",
        selection_mode="single-row",
        key=f"label_case_worklist_{version}_{page}_{position}",
        height=560,
        column_order=shown_columns,
        column_config={
            "row": st.column_config.TextColumn("#", width=52),
            "patient": st.column_config.TextColumn("patient", help="The patient's pseudonym", width=92),
            "study_date": st.column_config.TextColumn(
                "study", help="The study date as stored (shifted when the project shifts dates)", width=84
            ),
            "prior_studies": st.column_config.NumberColumn(
                "priors", help="The patient's earlier studies (hung beside this one where a protocol asks)", width=52
            ),
            "modality": st.column_config.TextColumn("mod.", width=44),
            "images": st.column_config.NumberColumn("images", width=56),
            "status": "my read",
            "label": "my label",
        },
    )
    picked_rows = selection.selection.rows if selection else []
    if picked_rows and picked_rows[0] < len(rows):
        picked = int(rows["case_id"].iloc[picked_rows[0]])
        if picked != position:
            st.session_state["label_case"] = picked
            st.rerun()  # the whole page: the viewer opens the picked case


@st.fragment(key="label_case_viewer_fragment")
def case_viewer_ui(cases: CaseWorklist, case_classes: list[str]) -> None:
    """The case on screen in the case viewer. A class key is one read of the case (saved at its key
    image): the viewer opens the next case of the list at once (it holds it, see case_viewer's
    ``next_case``) and, once the read is saved, the page follows it and the worklist redraws."""
    reader = session_actor("annotator", on_refused=partial(signed_out_viewer, CASE_VIEWER_KEY))
    rerun_page_if_filters_changed()
    acked, failed, read_now = save_case_reads(reader, cases.scope)
    position = st.session_state.get("label_case")
    if position is not None and position in read_now:
        # Past every case read just now: a reader quicker than the save may have read the next too.
        for _ in range(len(read_now)):  # bounded: on the "all" list the next wraps round
            position = next_case_id(store, reader, cases, after_case_id=position)
            if position not in read_now:
                break
        st.session_state["label_case"] = position
        st.rerun()  # the worklist follows: counts, the row on screen
    if position is None:
        st.info("Nothing to read on this list.", icon=":material/check_circle:")
        if worklist_filter.status == "todo":
            st.success(f"Every {cases.scope} on your worklist is read.")
        return
    try:
        viewports, layout, hung_by = hung_case(cases.scope, position, "label_hung_cases")
        upcoming = next_case_id(store, reader, cases, after_case_id=position) if case_classes else None
        next_case = None
        if upcoming is not None and upcoming != position:
            next_viewports, next_layout, _ = hung_case(cases.scope, upcoming, "label_hung_cases")
            next_case = (f"{cases.scope}:{upcoming}", next_viewports, next_layout)
        case_viewer(
            CASE_VIEWER_KEY,
            reader,
            f"{cases.scope}:{position}",
            viewports,
            layout=layout,
            classes=case_classes,
            acked=acked,
            failed=failed,
            next_case=next_case,
        )
    except (MedreviewError, ValueError) as error:
        st.error(plain(error))
        return
    priors = [viewport.prior for viewport in viewports if viewport.prior]
    st.caption(f"Hung by {plain(hung_by)}." + (f" {plain(priors[0])} beside the current study." if priors else ""))
    try:
        record = get_image(store, reader, case_images(store, cases.scope, position)[0], scope=cases.scope)
    except MedreviewError as error:
        st.error(plain(error))
        return
    if record.status == "returned":
        st.warning(f"Sent back by the reviewer: {plain(record.review_comment)}")
    elif record.label:
        st.caption(f"My read of this {cases.scope}: {plain(record.label)} ({plain(record.status)}).")
    if not case_classes:
        st.warning(f"No {cases.scope}-level class to read with: an admin defines them under Settings.")


if case_mode and case_scope is not None:
    case_page(case_scope)
    st.stop()
# Reading images: the image classes only (a study's class is read on the case worklist, where the
# study counts as read).
classes = [name for name in classes if scopes.get(name, "image") == "image"]


# A new filter or order opens the nearest image of the new list at or after the current one (in
# the new order: after the current image's place in it when the image itself left the list).
if st.session_state.get("label_list_version") != list_version:
    st.session_state["label_list_version"] = list_version
    here = viewer_state(VIEWER_KEY).get("position") or st.session_state.get("label_position")
    jump_to(
        next_image_id(store, actor, worklist_filter, after_image_id=int(here) if here else None, include_anchor=True)
    )


def current_position() -> tuple[int | None, int, bool]:
    """The image the reader is on, the count of jumps the page asked the viewer for, and whether the
    reader went past the list's last image (the position is then None)."""
    reported = viewer_state(VIEWER_KEY)
    position = st.session_state.get("label_position")
    jump = st.session_state.get("label_jump", 0)
    if st.session_state.get("label_seen_jump") == jump and "position" in reported:
        # The viewer moved on by itself (a class key, back, skip), maybe past the list's end.
        position = None if reported["position"] is None else int(reported["position"])
        return position, jump, position is None
    return position, jump, False


def typed_comments() -> dict[int, str]:
    """Comments typed and not saved yet, by image id, with what the comment box of each image the
    viewer is saving holds now: a read takes its image's comment along (ui.viewer.save_pending_reads
    takes it out of here once saved)."""
    drafts: dict[int, str] = st.session_state.setdefault(DRAFTS_KEY, {})
    for entry in viewer_state(VIEWER_KEY).get("pending") or []:
        image_id = entry.get("imageId") if isinstance(entry, dict) else None
        box = f"label_comment_{image_id}"
        if isinstance(image_id, int) and isinstance(st.session_state.get(box), str):
            drafts[image_id] = st.session_state[box]
    return drafts


def save_viewer_reads(reader) -> tuple[list[int], dict[int, str]]:  # type: ignore[no-untyped-def]
    return save_pending_reads(VIEWER_KEY, reader, comments=typed_comments(), boxes_alone=boxes_alone)


@st.fragment(key="label_list")
def worklist_ui() -> None:
    """The counts and one page of the worklist, the image on screen marked; a click opens that image
    in the viewer. Rerun alone when the viewer says the reader moved on or reads were saved
    (ui.viewer.list_follower): not by each of the viewer's reports, which would redraw a 50-row
    table for every frame a scrolling reader asks for."""
    reader = session_actor("annotator")
    rerun_page_if_filters_changed()
    save_viewer_reads(reader)  # the counts include the reads the viewer still holds
    position, _, _ = current_position()
    counts = worklist_counts(store, reader, worklist_filter)
    total = counts.get(worklist_filter.status, 0)
    st.caption(" · ".join(f"{counts.get(name, 0)} {WORKLIST_FILTERS[name].lower()}" for name in WORKLIST_FILTERS))
    pages = max(1, -(-total // PAGE_ROWS))
    where = list_position(store, reader, worklist_filter, position) if position else None
    default_page = min((where // PAGE_ROWS + 1) if where is not None else 1, pages)
    # Keyed by the page the image on screen is on: the list turns the page when the reader does.
    page = st.number_input(
        f"Page (of {pages})", 1, pages, value=default_page, key=f"label_page_{list_version}_{default_page}"
    )
    rows, total = worklist_page(
        store, reader, worklist_filter, offset=(int(page) - 1) * PAGE_ROWS, limit=PAGE_ROWS, total=total
    )
    if worklist_filter.search and not total:
        st.caption(f"Nothing on this list matches “{plain(worklist_filter.search)}”.")
    rows.insert(0, "here", [ON_SCREEN if image_id == position else "" for image_id in rows["image_id"]])
    rows.insert(1, "picture", thumbnail_urls([int(image_id) for image_id in rows["image_id"]]))
    # The image id, marked on the row on screen: one narrow column for both, the list column is narrow.
    marked = [f"{here} {image_id}".strip() for here, image_id in zip(rows["here"], rows["image_id"], strict=True)]
    rows.insert(2, "row", marked)
    shown_columns = ["row", "picture", "patient", "study_date", "modality", "series", "status", "label", "file"]
    # Keyed by the image on screen: a click ticks a row until the viewer has moved there, and the
    # tick does not stay behind when the viewer moves on.
    selection = st.dataframe(
        spreadsheet_safe(rows[[*shown_columns, "here", "image_id"]]),
        hide_index=True,
        on_select="rerun",
        selection_mode="single-row",
        key=f"label_worklist_{list_version}_{page}_{position}",
        height=560,
        column_order=shown_columns,
        column_config={
            "row": st.column_config.TextColumn("#", width=52),
            "picture": st.column_config.ImageColumn("", width=40),
            "patient": st.column_config.TextColumn("patient", help="The patient's pseudonym", width=92),
            "study_date": st.column_config.TextColumn(
                "study", help="The study date as stored (shifted when the project shifts dates)", width=84
            ),
            "modality": st.column_config.TextColumn("mod.", width=44),
            "status": "my read",
            "label": "my label",
        },
    )
    list_follower("label_list_follower")
    picked_rows = selection.selection.rows if selection else []
    if picked_rows and picked_rows[0] < len(rows):
        picked = int(rows["image_id"].iloc[picked_rows[0]])
        if picked != position:
            jump_to(picked)
            st.rerun()  # the viewer, a fragment of its own, moves with the page's run


def left_on_list(reader) -> dict[str, int | None]:  # type: ignore[no-untyped-def]
    """The images of this list (its label and modality) still to do for the reader, for the end of
    the list: how many, and the first."""
    to_do = WorklistFilter("todo", worklist_filter.label, worklist_filter.modality)
    return {
        "count": worklist_counts(store, reader, worklist_filter)["todo"],
        "first": next_image_id(store, reader, to_do),
    }


@st.fragment(key="label_viewer_fragment")
def viewer_ui() -> None:
    """The viewer, the comment and the other readers' reads; the viewer's reports rerun this only,
    without the page's check above: each report resolves the reader from the store again, and one
    made after the sign-in ended saves nothing and gets no pixels (the browser shows it was signed
    out, with the reads it still held as not saved)."""
    reader = session_actor("annotator", on_refused=partial(signed_out_viewer, VIEWER_KEY))
    rerun_page_if_filters_changed()
    acked, failed = save_viewer_reads(reader)
    position, jump, past_end = current_position()
    if position is None and not past_end:
        st.info("Nothing to read on this list.", icon=":material/check_circle:")
        if worklist_filter.status == "todo":
            st.success("Every image on your worklist is read.")
        return
    st.session_state["label_position"] = position
    st.session_state["label_seen_jump"] = jump
    shown = dict(
        mode="label",
        jump=jump,
        list_version=list_version,
        classes=classes,
        multi=multi,
        boxes=boxes_on,
        boxes_alone=boxes_alone,
        acked=acked,
        failed=failed,
        assist=assist_mode(store),  # what the reader may see of the model's call (assist.py)
    )
    if position is None:  # past the list's last image: the viewer offers what is left on it
        image_viewer(VIEWER_KEY, reader, [], position=None, left=left_on_list(reader), **shown)
        return
    upcoming = following_image_ids(store, reader, worklist_filter, after_image_id=position, limit=PREFETCH_IMAGES)
    image_viewer(VIEWER_KEY, reader, [position, *upcoming], position=position, **shown)
    try:
        record = get_image(store, reader, position)
    except MedreviewError as error:
        st.error(plain(error))
        return
    if record.burned_in_annotation:
        st.warning("This image may carry burned-in patient information: check before sharing.")
    if record.status == "returned":
        st.warning(f"Sent back by the reviewer: {plain(record.review_comment)}")
    comment_ui(reader, record)
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


def comment_ui(reader, record) -> None:  # type: ignore[no-untyped-def]
    """The reader's comment on the image on screen. A comment typed before the image has a read is
    kept, shown as not saved, and saved with the image's next read (a class key)."""
    drafts: dict[int, str] = st.session_state.setdefault(DRAFTS_KEY, {})
    image_id = record.image_id
    unsaved = image_id in drafts
    title = (
        "Comment (not saved yet)" if unsaved else "Comment" + (f": {plain(record.comment)}" if record.comment else "")
    )
    with st.expander(title, expanded=unsaved):
        comment = st.text_input(
            "Comment on this image", value=drafts.get(image_id, record.comment), key=f"label_comment_{image_id}"
        )
        if comment != record.comment:
            drafts[image_id] = comment
        else:
            drafts.pop(image_id, None)
        if st.button("Save comment", key="label_save_comment"):
            if not record.read:
                drafts[image_id] = comment
                st.info("Comment kept: it is saved with your label of this image (a class key).")
                return
            try:
                save_read(
                    store,
                    reader,
                    image_id,
                    record.label,
                    labels=record.labels,
                    boxes=record.boxes,
                    unsure=record.unsure,
                    comment=comment,
                )
            except MedreviewError as error:
                st.error(plain(error))
            else:
                drafts.pop(image_id, None)
                st.toast("Comment saved.")
        elif image_id in drafts:
            st.caption(":orange[Not saved yet: it is saved with your next label of this image (a class key).]")


with list_column:
    worklist_ui()
with view_column:
    viewer_ui()
