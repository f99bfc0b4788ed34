"""Review: the reviewer queue, the disagreements to adjudicate, the agreement figures and the label
exports, one section at a time, each list a page at a time (a large project has tens of thousands of
reads waiting).

Reads of a study- or series-scoped class are reads of a case (medreview.reading.cases): their rows
name the case (the study's pseudonymous patient, stored date and modality; a series' description),
the case opens whole in the case viewer, hung by the project's hanging protocols as on Label, and
the decision or the adjudication is the case's. Reads of image classes are shown as they always
were: the image in the viewer, with the active model's map beside it."""

import math

import pandas as pd
import streamlit as st

from medreview.errors import MedreviewError
from medreview.ml.domain import OUTSIDE_TRAINING_DATA
from medreview.ml.explanations import METHOD_TITLES, request_view_maps
from medreview.ml.prediction import image_call
from medreview.ml.registry import active_model
from medreview.reading.catalog import get_image
from medreview.reading.consensus import consensus_rule
from medreview.reading.protocols import study_facts
from medreview.reading.review import (
    ANY_PROBABILITY,
    adjudicate,
    agreement,
    approval_settles_disagreement,
    approve_reads,
    auto_accepted_page,
    case_reads,
    class_tally,
    decide,
    disagreements_page,
    image_reads,
    queue_filter_counts,
    revert_auto_accept,
    review_counts,
    review_queue_page,
)
from medreview.reading.schema import label_class_scopes
from ui import review_keys
from ui.exports import export_ui
from ui.session import attempt, get_store, session_actor
from ui.text import plain, spreadsheet_safe
from ui.viewer import case_viewer, hung_case, image_viewer, overlay_row

# Rows of a list page: the reviewer queue of a large project holds tens of thousands of reads,
# and only one page is fetched, sent and drawn.
PAGE_SIZE = 50
CASE_VIEWER_KEY = "review_case_viewer"

store = get_store()
actor = session_actor("reviewer")
st.title("Review")


def show_image(image_id: int, upcoming: list[int] | None = None) -> None:
    """The image in the viewer, as wide as the column it is drawn in (the reads sit beside it). With
    an active model, the image and its map side by side (sharing window, zoom, pan and slice), the
    map of the class the model gave it, computed on the first frame at the default window.
    ``upcoming``: the next images of the queue, whose first frames the viewer fetches ahead, so the
    next read opens at once after a decision."""
    images = [image_id, *dict.fromkeys(image for image in upcoming or [] if image != image_id)][:3]
    model = active_model(store)
    if model is None:
        image_viewer("review_viewer", actor, images, position=image_id, max_height=640)
        return
    call = image_call(store, actor, model.id, image_id)
    maps = attempt(lambda: request_view_maps(store, actor, model.id, image_id))
    overlays = []
    if maps is not None and maps.ready and call is not None:
        heat = maps.maps[list(model.class_names).index(call["predicted_class"])]
        overlays = [overlay_row(image_id, 0, heat, f"{METHOD_TITLES[maps.method]}: {call['predicted_class']}")]
    image_viewer("review_viewer", actor, images, position=image_id, max_height=640, overlays=overlays, split=True)
    if call is None:
        st.caption(f"Model version {model.id} has not called this image: no map.")
    elif call["outside_training_data"]:
        # No class and no probability for an image the model was not trained on.
        st.caption(
            f"Model version {model.id}: **{OUTSIDE_TRAINING_DATA}** ({plain(call['outside_reason'])}): "
            "outside what the model was trained on, so no class or probability is given."
        )
    else:
        st.caption(
            f"Model version {model.id}: **{plain(call['predicted_class'])}** ({call['probability']:.1%}) · "
            "O shows or hides the map"
        )
    if maps is not None and not maps.ready and call is not None:
        map_wait_ui(model.id, image_id)


def stored_date(study_date: str | None) -> str:
    """A stored "YYYYMMDD" as "2024-03-01" (shifted per patient when the project shifts dates);
    "no date" when de-identification removed it."""
    if not study_date:
        return "no date"
    return f"{study_date[:4]}-{study_date[4:6]}-{study_date[6:8]}" if len(study_date) == 8 else study_date


def case_name(scope: str, case_id: int, key_image_id: int) -> str:
    """What a row of a study or series read names: "Study · P1 · 2024-03-01 · CT" (the pseudonymous
    patient, the stored date, the study's modalities), "Series · P1 · CT · T1 axial"; never an
    identifier. Kept for the session: naming a study reads its series' facts."""
    if scope == "image":
        return f"Image {key_image_id}"
    names: dict[str, str] = st.session_state.setdefault("review_case_names", {})
    key = f"{scope}:{case_id}"
    if key not in names:
        if len(names) > 512:
            names.clear()
        try:
            record = get_image(store, actor, key_image_id)
            facts = study_facts(store, case_id) if scope == "study" else None
        except MedreviewError:
            return f"{scope.capitalize()} {case_id} (no longer stored)"  # deleted since the list was read
        if facts is not None:
            modalities = "/".join(sorted(facts.modalities)) or record.modality
            names[key] = f"Study · {record.patient_key} · {stored_date(facts.study_date)} · {modalities}"
        else:
            described = f" · {record.series_description}" if record.series_description else ""
            names[key] = f"Series · {record.patient_key} · {record.modality}{described}"
    return names[key]


def with_case_names(rows: pd.DataFrame) -> pd.DataFrame:
    """``rows`` with a first column "case" naming each row's case, when the page holds a study or
    series read; a page of image reads only is shown as it always was."""
    if rows.empty or (rows["scope"] == "image").all():
        return rows
    names = [
        case_name(scope, int(case_id), int(image_id))
        for scope, case_id, image_id in zip(rows["scope"], rows["case_id"], rows["image_id"], strict=True)
    ]
    return rows.assign(case=names)[["case", *rows.columns]]


def show_case(scope: str, case_id: int) -> None:
    """The whole study or series in the case viewer's grid, hung as on Label (a viewer only: the
    reviewer's decision is made with the buttons beside it)."""
    try:
        viewports, layout, hung_by = hung_case(scope, case_id, "review_hung_cases")
        case_viewer(CASE_VIEWER_KEY, actor, f"{scope}:{case_id}", viewports, layout=layout, max_height=640)
    except (MedreviewError, ValueError) as error:
        st.error(plain(error))
        return
    priors = [viewport.prior for viewport in viewports if viewport.prior]
    st.caption(f"Hung by {plain(hung_by)}." + (f" {plain(priors[0])} beside the current study." if priors else ""))


def show_read_case(row: pd.Series, upcoming: list[int] | None = None) -> None:
    """The case a queue or disagreement row is about: the image, or the whole study or series."""
    if row["scope"] == "image":
        show_image(int(row["image_id"]), upcoming)
    else:
        show_case(str(row["scope"]), int(row["case_id"]))


def reads_of_case(row: pd.Series) -> pd.DataFrame:
    """Every reader's reads of the row's case: the image's, or the study's or series' reads."""
    if row["scope"] == "image":
        return image_reads(store, actor, int(row["image_id"]))
    return case_reads(store, actor, str(row["scope"]), int(row["case_id"]))


@st.fragment(run_every=2)
def map_wait_ui(model_id: int, image_id: int) -> None:
    """While the map is computed: a note, and the page again once it is there."""
    reader = session_actor("reviewer")  # a fragment reruns on its own: check the user again
    maps = attempt(lambda: request_view_maps(store, reader, model_id, image_id))
    if maps is None:
        return
    if maps.ready:
        st.rerun()
    elif maps.status == "failed":
        st.caption(f"The map could not be computed: {plain(maps.error)}")
    else:
        st.caption(f"Computing the map... (job {maps.job_id}: {maps.status})")


def page_offset(total: int, key: str) -> int:
    """The offset of the list page chosen under ``key``. A page that no longer exists (the list
    shrank after a decision) becomes the last one."""
    pages = max(1, math.ceil(total / PAGE_SIZE))
    if st.session_state.get(key, 1) > pages:
        st.session_state[key] = pages
    return (int(st.session_state.get(key, 1)) - 1) * PAGE_SIZE


def page_picker_ui(total: int, offset: int, noun: str, key: str) -> None:
    pages = max(1, math.ceil(total / PAGE_SIZE))
    if pages > 1:
        st.number_input(f"Page (of {pages:,})", min_value=1, max_value=pages, step=1, key=key)
    st.caption(f"{noun} {offset + 1:,}–{min(offset + PAGE_SIZE, total):,} of {total:,}")


def dashed(frame: pd.DataFrame) -> pd.DataFrame:
    """``frame`` with its missing text (a read with no class, no blind label) as "—": Streamlit
    draws a missing cell as "None"."""
    text = frame.select_dtypes(include="object").columns
    return frame.assign(**{column: frame[column].fillna("—") for column in text})


def picked_row(rows: pd.DataFrame, selection) -> pd.Series:  # type: ignore[no-untyped-def]
    """The row picked in a table, or the first one. A pick beyond the end (its row left the list
    after a decision) falls on the last row: it never fails."""
    picked = selection.selection.rows if selection else []
    return rows.iloc[min(picked[0], len(rows) - 1)] if picked else rows.iloc[0]


def selected_rows(key: str) -> list[int]:
    """The rows picked in the table under ``key`` as the browser last reported them (read before
    the table is drawn, so this run draws what they open)."""
    state = st.session_state.get(key)
    try:
        return [int(row) for row in state["selection"]["rows"]]
    except (KeyError, TypeError, ValueError):
        return []


def queue_table_key(annotation_ids: list[int]) -> str:
    """The queue table's key, new whenever the rows it shows change: a selection is of rows by
    position, so one made on an earlier list must not pick other reads of this one."""
    drawn = st.session_state.setdefault("review_queue_drawn", {"ids": annotation_ids, "version": 0})
    if drawn["ids"] != annotation_ids:
        drawn.update(ids=annotation_ids, version=drawn["version"] + 1)
    return f"review_queue_table_{drawn['version']}"


def at_row(annotation_ids: list[int], state_key: str) -> int:
    """The row index held under ``state_key`` ({"id", "index"}): the read's row while it is on the
    list, else the row that took its place (a decided read leaves; the next one moves up), the last
    row past the end. Never fails."""
    held = st.session_state.get(state_key) or {"id": None, "index": 0}
    if held["id"] in annotation_ids:
        return annotation_ids.index(held["id"])
    return max(0, min(int(held["index"]), len(annotation_ids) - 1))


def hold_row(annotation_ids: list[int], state_key: str, index: int) -> None:
    st.session_state[state_key] = {"id": annotation_ids[index], "index": index}


KEYS_LEGEND = (
    "Keys: **A** approve · **R** reject · **S** send back (type the comment, Enter) · "
    "**J**/**K** or ↓/↑ move · **Enter** open"
)
COMMENT_LABEL = "Comment (required to send back)"
AGREEMENT_FILTERS = {
    "all": "All reads",
    "agree": "Readers and model agree",
    "readers_disagree": "Readers disagree",
    "model_disagrees": "Model disagrees with readers",
    "outside": "Outside the training data",
}


def handle_press(press: dict, annotation_ids: list[int]) -> None:  # type: ignore[type-arg]
    """Act on a key the review keyboard reported (ui.review_keys): a decision on the read open on
    screen, or a move of the highlighted row, or opening it."""
    action = press["action"]
    if annotation_ids:
        opened, cursor = at_row(annotation_ids, "review_open"), at_row(annotation_ids, "review_cursor")
        if action in ("next", "previous"):
            step = 1 if action == "next" else -1
            hold_row(annotation_ids, "review_cursor", max(0, min(cursor + step, len(annotation_ids) - 1)))
        elif action == "open":
            hold_row(annotation_ids, "review_open", cursor)
        elif press.get("annotation") != annotation_ids[opened]:
            st.session_state["review_said"] = (
                "warning",
                "The read on screen changed before the key arrived: nothing was decided.",
            )
        else:
            decide_ui(
                annotation_ids[opened],
                {"approve": "approve", "reject": "reject"}.get(action, "return"),
                press.get("comment") if action == "return" else None,
            )
    review_keys.acknowledge(press)


def decide_ui(annotation_id: int, decision: str, comment: str | None = None) -> bool:
    """One decision on a read, its outcome said on the next run; the next read opens in its place."""
    if comment is None:
        comment = st.session_state.get(f"review_comment_{annotation_id}", "")
    try:
        decide(store, actor, annotation_id, decision, comment)
    except MedreviewError as error:
        st.session_state["review_said"] = ("error", plain(error))
        return False
    done = {"approve": "Approved", "reject": "Rejected", "return": "Sent back"}[decision]
    st.session_state["review_said"] = ("success", f"{done} read {annotation_id}.")
    return True


def say_ui() -> None:
    """The outcome of the last decision, once. Always one element, empty or not: an element that
    comes and goes would move those under it, and the browser would draw them anew (the comment
    box being typed in would lose the focus, and the keys typed would act on the queue)."""
    slot = st.empty()
    said = st.session_state.pop("review_said", None)
    if said is not None:
        kind, text = said
        {"success": slot.success, "warning": slot.warning, "error": slot.error}[kind](text)


def model_text(row: pd.Series) -> str:
    """The active model's call on a row's case: "pneumonia 93%", "outside the training data", "—"."""
    if row.get("outside_training_data") is True:
        return "outside the training data"
    if row.get("model_call") is None or pd.isna(row.get("model_probability")):
        return "—"
    return f"{row['model_call']} {row['model_probability']:.0%}"


def queue_filters_ui() -> tuple[str, tuple[float, float]]:
    """The queue's filters: by what readers and the model say, and by the model's probability. In
    an expander that says what it applies (open while a filter narrows the queue): at 1280x720 the
    two widgets' row pushed the image on screen below the fold."""
    chosen = st.session_state.get("review_filter", "all")
    chosen_band = tuple(st.session_state.get("review_band", ANY_PROBABILITY))
    narrowed = chosen != "all" or chosen_band != ANY_PROBABILITY
    title = (
        f"Filter: {AGREEMENT_FILTERS.get(chosen, chosen)} · model probability {chosen_band[0]:.2f}-{chosen_band[1]:.2f}"
    )
    left, right = st.expander(title, expanded=narrowed).columns([3, 2])
    band = right.slider(
        "Model probability (calibrated, of its call)",
        min_value=0.0,
        max_value=1.0,
        value=ANY_PROBABILITY,
        step=0.05,
        key="review_band",
        help="Reads whose case the active model called with a probability in this band (inside its "
        "training data). The full range keeps every read, those without a call too.",
    )
    band = (float(band[0]), float(band[1]))
    counts = queue_filter_counts(store, actor, band)
    agreement_filter = left.selectbox(
        "Show",
        list(AGREEMENT_FILTERS),
        format_func=lambda name: f"{AGREEMENT_FILTERS[name]} ({counts[name]:,})",
        key="review_filter",
    )
    return agreement_filter, band


@st.fragment
def queue_ui(waiting: int) -> None:
    """The reviewer queue, a fragment: a key, a click in the table or the viewer's request for frames
    reruns this alone, not the app's sign-in checks and the page above it."""
    reviewer = session_actor("reviewer")  # a fragment reruns on its own: check the user again
    filters_column, pages_column = st.columns([3, 1], vertical_alignment="center")  # one row: the image above the fold
    with filters_column:
        agreement_filter, band = queue_filters_ui()
    offset = page_offset(waiting, "review_queue_page")
    queue, total = review_queue_page(store, reviewer, offset, PAGE_SIZE, agreement_filter, band)
    if queue.empty and total:  # the queue shrank since it was counted (another reviewer's decisions)
        offset = page_offset(total, "review_queue_page")
        queue, total = review_queue_page(store, reviewer, offset, PAGE_SIZE, agreement_filter, band)
    press = review_keys.pressed("review_keys")
    if press is not None:
        handle_press(press, [int(value) for value in queue["annotation_id"]])
        if press["action"] in ("approve", "reject", "return"):
            queue, total = review_queue_page(store, reviewer, offset, PAGE_SIZE, agreement_filter, band)
    annotation_ids = [int(value) for value in queue["annotation_id"]]
    table_key = queue_table_key(annotation_ids)
    picked = [row for row in selected_rows(table_key) if row < len(annotation_ids)]
    seen = st.session_state.get("review_seen_selection", (None, []))
    added = [row for row in picked if seen[0] != table_key or row not in seen[1]]
    st.session_state["review_seen_selection"] = (table_key, picked)
    if added:  # a row clicked in the table opens
        hold_row(annotation_ids, "review_open", added[-1])
        hold_row(annotation_ids, "review_cursor", added[-1])
    opened = cursor = 0
    if annotation_ids:
        opened, cursor = at_row(annotation_ids, "review_open"), at_row(annotation_ids, "review_cursor")
        hold_row(annotation_ids, "review_open", opened)
        hold_row(annotation_ids, "review_cursor", cursor)
    # Mounted before the rest is drawn, always here: the browser hears that the key was handled,
    # and may send the next, while this run draws on.
    review_keys.listen(
        "review_keys",
        annotation_ids[opened] if annotation_ids else None,
        arrows=bool(annotation_ids) and queue["scope"].iloc[opened] == "image",
    )
    say_ui()
    if queue.empty:
        filtered = agreement_filter != "all" or band != ANY_PROBABILITY
        st.info(
            "No read of the queue is shown by these filters."
            if filtered
            else "No submitted reads are waiting for review."
        )
        return
    with pages_column:
        page_picker_ui(total, offset, "Reads", "review_queue_page")
    shown = with_case_names(queue)
    columns = [column for column in ("case",) if column in shown.columns]
    marks = ["▶" if index == opened else ("›" if index == cursor else "") for index in range(len(shown))]
    table = shown[[*columns, "annotation_id", "image_id", "reader", "label", "labels"]].assign(
        model=[model_text(row) for _, row in queue.iterrows()],
        unsure=queue["unsure"],
        comment=queue["comment"],
        updated_at=queue["updated_at"],
        **{"changed after unblinding": queue["changed_after_unblinding"]},
    )
    st.dataframe(
        spreadsheet_safe(dashed(table.assign(**{" ": marks})[[" ", *table.columns]])),
        hide_index=True,
        on_select="rerun",
        selection_mode="multi-row",
        key=table_key,
        height=150,  # a few rows: the image under the table stays above the fold at 1280x720
    )
    if picked:
        batch_ui([annotation_ids[row] for row in picked])
    row = shown.iloc[opened]
    following = queue.iloc[opened + 1 :]
    upcoming = [int(image_id) for image_id in following.loc[following["scope"] == "image", "image_id"]]
    scope = str(row["scope"])
    left, right = st.columns([3, 2])
    with left:
        show_read_case(row, upcoming=upcoming)
    with right:
        decision_ui(row, scope)
        st.caption(KEYS_LEGEND)


def batch_ui(annotation_ids: list[int]) -> None:
    """Approve the reads picked in the table in one action (one audited decision per read)."""
    noun = "read" if len(annotation_ids) == 1 else "reads"
    if st.button(f"Approve {len(annotation_ids)} selected {noun}", key="review_approve_selected", type="primary"):
        result = approve_reads(store, actor, annotation_ids)
        approved = len(result["approved"])
        text = f"Approved {approved} {'read' if approved == 1 else 'reads'}."
        skipped = "; ".join(f"read {read}: {reason}" for read, reason in result["skipped"].items())
        st.session_state["review_said"] = (
            "warning" if skipped else "success",
            text + (f" Skipped {skipped}." if skipped else ""),
        )
        st.rerun()


def decision_ui(row: pd.Series, scope: str) -> None:
    """The open read, the other reads of its case and the three decisions."""
    if scope != "image":
        st.markdown(f"**{plain(row['case'])}**: one read of the whole {scope}")
    st.markdown(
        f"**{plain(row['reader'])}** read **{plain(row['label'] or ', '.join(row['labels']))}**"
        + (" (unsure)" if row["unsure"] else "")
    )
    if row["changed_after_unblinding"]:
        st.warning(
            f"Changed after unblinding: the first, blind read was **{plain(row['blind_label'])}**; "
            "agreement counts that one."
        )
    others = attempt(lambda: reads_of_case(row))
    if others is None:
        return
    st.dataframe(
        spreadsheet_safe(
            dashed(others[["reader", "label", "blind_label", "changed_after_unblinding", "status", "comment"]])
        ),
        hide_index=True,
    )
    if approval_settles_disagreement(store, actor, int(row["annotation_id"])):
        st.warning(
            f"Readers disagree on this {scope}: approving this read makes **{plain(row['label'])}** its final "
            "label, approves the other waiting reads of that class and overrules the rest."
        )
    st.text_input(
        COMMENT_LABEL,
        key=f"review_comment_{row['annotation_id']}",
        placeholder=review_keys.comment_placeholder(int(row["annotation_id"])),
    )
    approve, reject, send_back = st.columns(3)
    for column, decision, title in (
        (approve, "approve", "Approve"),
        (reject, "reject", "Reject"),
        (send_back, "return", "Send back"),
    ):
        if column.button(title, key=f"review_{decision}", width="stretch"):
            decide_ui(int(row["annotation_id"]), decision)
            st.rerun()


def auto_accepted_ui(count: int) -> None:
    """The final labels the consensus rule set, and a reviewer's revert of one."""
    rule = consensus_rule(store)
    st.caption(
        (
            f"The rule is on: at least {rule['readers']} readers agree and the active model agrees at "
            f"{rule['probability']:.0%} or more, inside its training data."
            if rule
            else "The rule is off (an admin turns it on in Settings)."
        )
        + " Reverting removes the final label and puts the reads back in the queue."
    )
    offset = page_offset(count, "review_auto_page")
    table, total = auto_accepted_page(store, actor, offset, PAGE_SIZE)
    say_ui()
    if table.empty:
        st.info("No label was auto-accepted.")
        return
    page_picker_ui(total, offset, "Cases", "review_auto_page")
    table = with_case_names(table)
    picked = st.dataframe(
        spreadsheet_safe(table),
        hide_index=True,
        on_select="rerun",
        selection_mode="single-row",
        key="review_auto_table",
    )
    rows = picked.selection.rows if picked else []
    row = table.iloc[min(rows[0], len(table) - 1)] if rows else table.iloc[0]
    name = row["case"] if "case" in table.columns else f"Image {int(row['image_id'])}"
    st.markdown(f"**{plain(name)}**: auto-accepted as **{plain(row['label'])}**")
    note = st.text_input("Why (optional)", key="review_revert_note")
    if st.button("Revert", key="review_revert"):
        try:
            put_back = revert_auto_accept(store, actor, str(row["scope"]), int(row["case_id"]), note)
        except MedreviewError as error:
            st.error(plain(error))
        else:
            st.session_state["review_said"] = ("success", f"Reverted: {len(put_back)} reads are back in the queue.")
            st.rerun()


def tally_text(labels: dict[str, str]) -> str:
    """ "normal: 2 (ann, bob) · pneumonia: 1 (cy)": each class named, how often and by whom."""
    return " · ".join(f"{label}: {len(readers)} ({', '.join(readers)})" for label, readers in class_tally(labels))


def disagreements_ui(open_disagreements: int) -> None:
    offset = page_offset(open_disagreements, "review_disagree_page")
    table, total = disagreements_page(store, actor, offset, PAGE_SIZE)
    if table.empty and total:  # fewer than counted (adjudicated meanwhile by another reviewer)
        offset = page_offset(total, "review_disagree_page")
        table, total = disagreements_page(store, actor, offset, PAGE_SIZE)
    if table.empty:
        st.info("No open disagreements.")
        return
    page_picker_ui(total, offset, "Images" if (table["scope"] == "image").all() else "Cases", "review_disagree_page")
    table = with_case_names(table)
    shown = table.assign(labels=table["labels"].map(tally_text))
    picked = st.dataframe(
        spreadsheet_safe(shown),
        hide_index=True,
        on_select="rerun",
        selection_mode="single-row",
        key="review_disagree_table",
        column_config={"labels": "reads"},
    )
    row = picked_row(table, picked)
    image_id = int(row["image_id"])  # a study's or series' key image: adjudicate settles its case
    scope = str(row["scope"])
    # The image's own keys stay as they were; a case's name its scope and id.
    case_key = str(image_id) if scope == "image" else f"{scope}_{int(row['case_id'])}"
    left, right = st.columns([3, 2])
    with left:
        show_read_case(row)
    with right:
        if scope != "image":
            st.markdown(f"**{plain(row['case'])}**")
        st.markdown(f"**Reads:** {plain(tally_text(row['labels']))}")
        reads = attempt(lambda: reads_of_case(row))
        if reads is None:
            return
        st.dataframe(
            spreadsheet_safe(dashed(reads[["reader", "label", "unsure", "status", "comment"]])), hide_index=True
        )
        st.caption(
            "Adjudicating approves the image's waiting reads of the class chosen and overrules the others; "
            "their readers are told."
            if scope == "image"
            else f"Adjudicating gives the {scope} one final label, approves its waiting reads of the class chosen "
            "and overrules the others; their readers are told."
        )
        # No class is preselected: a preselected one (the first of the schema) would be a nudge,
        # and one click away from being made final by mistake. Keyed by case, so a choice made
        # for one case never carries over to the next. Only the classes of the case's scope: an
        # image class chosen for a study would settle its key image instead.
        final = st.radio(
            "Final label",
            [name for name, class_scope in label_class_scopes(store).items() if class_scope == scope],
            index=None,
            format_func=plain,
            horizontal=True,
            key=f"review_adjudicate_label_{case_key}",
        )
        note = st.text_input("Adjudication note", key=f"review_adjudicate_note_{case_key}")
        if st.button("Adjudicate", type="primary", key="review_adjudicate"):
            try:
                adjudicate(store, actor, image_id, final, note)  # refuses when no class is chosen
            except MedreviewError as error:
                st.error(plain(error))
            else:
                st.rerun()


def per_scope(frame: pd.DataFrame, scopes: dict[str, str]) -> pd.DataFrame:
    """A per-class table of a project with study or series classes, with each class's scope (a
    study-scoped class's reads are reads of studies) and its counts called cases."""
    if frame.empty or "class" not in frame.columns:
        return frame
    frame = frame.rename(columns={"n_images": "n_cases", "n_readers_per_image": "n_readers_per_case"})
    frame.insert(1, "scope", frame["class"].map(scopes).fillna("image"))
    return frame


def agreement_ui() -> None:
    summary = agreement(store, actor)
    scopes = label_class_scopes(store, include_retired=True)
    # Every item is a case (an image is an image's case): the words say "cases" once a class of
    # the project reads studies or series, and stay as they were for images only.
    items = "cases" if any(scope != "image" for scope in scopes.values()) else "images"
    st.caption(f"{items.capitalize()} read by several readers: {summary['images_with_multiple_readers']}")
    fleiss = summary["fleiss"]
    kappa = fleiss.get("kappa")
    st.metric(
        "Fleiss' kappa (all readers)",
        "n/a" if kappa is None else f"{kappa:.3f}",
        help=f"{fleiss.get('n_images', 0)} {items} with {fleiss.get('n_readers_per_image')} readers each. "
        + (fleiss.get("reason") or ""),
    )
    pairs = pd.DataFrame(summary["pairs"])
    shared = pairs[pairs["n_images"] > 0] if len(pairs) else pairs
    st.write(f"Cohen's kappa per reader pair (pairs that read the same {items})")
    for column, pair in zip(
        st.columns(min(max(len(shared), 1), 4)), shared.head(8).itertuples(index=False), strict=False
    ):
        value = "n/a" if pd.isna(pair.kappa) else f"{pair.kappa:.3f}"
        column.metric(
            f"{pair.reader_a} – {pair.reader_b}", value, help=f"{pair.n_images} shared {items}. {pair.reason}"
        )
    if items == "cases":
        shared = shared.rename(columns={"n_images": "n_cases"})
    st.dataframe(spreadsheet_safe(shared), hide_index=True, key="agreement_pairs")
    st.write("Per class")
    per_class_left, per_class_right = st.columns(2)
    per_class = pd.DataFrame(summary["pairs_per_class"])
    per_class = per_class[per_class["n_images"] > 0] if len(per_class) else per_class
    fleiss_per_class = pd.DataFrame(summary["fleiss_per_class"])
    if items == "cases":
        per_class, fleiss_per_class = per_scope(per_class, scopes), per_scope(fleiss_per_class, scopes)
    per_class_left.dataframe(spreadsheet_safe(per_class), hide_index=True)
    per_class_right.dataframe(spreadsheet_safe(fleiss_per_class), hide_index=True)


counts = review_counts(store, actor)
SECTIONS = {
    "queue": f"Reviewer queue ({counts['queue']:,})",
    "disagreements": f"Disagreements ({counts['disagreements']:,})",
    "auto_accepted": f"Auto-accepted ({counts['auto_accepted']:,})",
    "agreement": "Agreement",
    "export": "Export labels",
}
# Only the chosen section is computed and drawn (st.tabs would run them all on every rerun).
section = (
    st.segmented_control("Section", list(SECTIONS), format_func=SECTIONS.get, default="queue", key="review_section")
    or "queue"
)
if section == "queue":
    queue_ui(counts["queue"])
elif section == "disagreements":
    disagreements_ui(counts["disagreements"])
elif section == "auto_accepted":
    auto_accepted_ui(counts["auto_accepted"])
elif section == "agreement":
    agreement_ui()
else:
    export_ui(store, actor, "review")
