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
from medreview.reading.protocols import study_facts
from medreview.reading.review import (
    adjudicate,
    agreement,
    approval_settles_disagreement,
    case_reads,
    class_tally,
    decide,
    disagreements_page,
    image_reads,
    review_counts,
    review_queue_page,
)
from medreview.reading.schema import label_class_scopes
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


def show_image(image_id: int) -> None:
    """The image in the viewer, as wide as the column it is drawn in (the reads sit beside it). With
    an active model, the image and its map side by side (sharing window, zoom, pan and slice), the
    map of the class the model gave it, computed on the first frame at the default window."""
    model = active_model(store)
    if model is None:
        image_viewer("review_viewer", actor, [image_id], position=image_id, max_height=640)
        return
    call = image_call(store, actor, model.id, image_id)
    maps = attempt(lambda: request_view_maps(store, actor, model.id, image_id))
    overlays = []
    if maps is not None and maps.ready and call is not None:
        heat = maps.maps[list(model.class_names).index(call["predicted_class"])]
        overlays = [overlay_row(image_id, 0, heat, f"{METHOD_TITLES[maps.method]}: {call['predicted_class']}")]
    image_viewer("review_viewer", actor, [image_id], position=image_id, max_height=640, overlays=overlays, split=True)
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


def show_read_case(row: pd.Series) -> None:
    """The case a queue or disagreement row is about: the image, or the whole study or series."""
    if row["scope"] == "image":
        show_image(int(row["image_id"]))
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


def queue_ui(waiting: int) -> None:
    offset = page_offset(waiting, "review_queue_page")
    queue, total = review_queue_page(store, actor, offset, PAGE_SIZE)
    if queue.empty and total:  # the queue shrank since it was counted (another reviewer's decisions)
        offset = page_offset(total, "review_queue_page")
        queue, total = review_queue_page(store, actor, offset, PAGE_SIZE)
    if queue.empty:
        st.info("No submitted reads are waiting for review.")
        return
    page_picker_ui(total, offset, "Reads", "review_queue_page")
    shown = with_case_names(queue)
    columns = [column for column in ("case",) if column in shown.columns]
    picked = st.dataframe(
        spreadsheet_safe(
            dashed(
                shown[
                    [
                        *columns,
                        "annotation_id",
                        "image_id",
                        "reader",
                        "label",
                        "labels",
                        "unsure",
                        "comment",
                        "updated_at",
                    ]
                ].assign(**{"changed after unblinding": queue["changed_after_unblinding"]})
            )
        ),
        hide_index=True,
        on_select="rerun",
        selection_mode="single-row",
        key="review_queue_table",
        height=180,  # a few rows: the image under the table stays above the fold at 1280x720
    )
    row = picked_row(shown, picked)
    scope = str(row["scope"])
    left, right = st.columns([3, 2])
    with left:
        show_read_case(row)
    with right:
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
        comment = st.text_input("Comment (required to send back)", key=f"review_comment_{row['annotation_id']}")
        approve, reject, send_back = st.columns(3)
        for column, decision, title in (
            (approve, "approve", "Approve"),
            (reject, "reject", "Reject"),
            (send_back, "return", "Send back"),
        ):
            if column.button(title, key=f"review_{decision}", width="stretch"):
                try:
                    decide(store, actor, int(row["annotation_id"]), decision, comment)
                except MedreviewError as error:
                    st.error(plain(error))
                else:
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
elif section == "agreement":
    agreement_ui()
else:
    export_ui(store, actor, "review")
