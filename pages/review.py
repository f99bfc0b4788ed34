import pandas as pd
import streamlit as st

from medreview.errors import MedreviewError
from medreview.imaging.display import render_frame
from medreview.reading.catalog import get_image
from medreview.reading.review import adjudicate, agreement, decide, disagreements, image_reads, review_queue
from medreview.reading.schema import label_classes
from ui.session import get_store, session_actor
from ui.text import plain
from ui.viewer import decoded

store = get_store()
actor = session_actor("reviewer")
st.title("Review")


def show_image(image_id: int) -> None:
    try:
        record = get_image(store, actor, image_id)
        st.image(render_frame(decoded(image_id)), caption=plain(record.display_name.rsplit("/", 1)[-1]), width=420)
    except MedreviewError as error:
        st.error(plain(error))


queue_tab, disagree_tab, agreement_tab = st.tabs(["Reviewer queue", "Disagreements", "Agreement"])

with queue_tab:
    queue = review_queue(store, actor)
    queue = queue[queue["reader"] != actor.username]  # nobody reviews their own reads
    if queue.empty:
        st.info("No submitted reads are waiting for review.")
    else:
        picked = st.dataframe(
            queue[["annotation_id", "image_id", "reader", "label", "labels", "unsure", "comment", "updated_at"]].assign(
                **{"changed after unblinding": queue["changed_after_unblinding"]}
            ),
            hide_index=True,
            on_select="rerun",
            selection_mode="single-row",
            key="review_queue_table",
            height=260,
        )
        row = queue.iloc[picked.selection.rows[0]] if picked.selection.rows else queue.iloc[0]
        left, right = st.columns([2, 3])
        with left:
            show_image(int(row["image_id"]))
        with right:
            st.markdown(
                f"**{plain(row['reader'])}** read **{plain(row['label'] or ', '.join(row['labels']))}**"
                + (" (unsure)" if row["unsure"] else "")
            )
            if row["changed_after_unblinding"]:
                st.warning(
                    f"Changed after unblinding: the first, blind read was **{plain(row['blind_label'])}**; "
                    "agreement counts that one."
                )
            others = image_reads(store, actor, int(row["image_id"]))
            st.dataframe(
                others[["reader", "label", "blind_label", "changed_after_unblinding", "status", "comment"]],
                hide_index=True,
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

with disagree_tab:
    table = disagreements(store, actor)
    if table.empty:
        st.info("No open disagreements.")
    else:
        shown = table.assign(labels=table["labels"].map(lambda d: ", ".join(f"{k}: {v}" for k, v in d.items())))
        picked = st.dataframe(
            shown, hide_index=True, on_select="rerun", selection_mode="single-row", key="review_disagree_table"
        )
        row = table.iloc[picked.selection.rows[0]] if picked.selection.rows else table.iloc[0]
        left, right = st.columns([2, 3])
        with left:
            show_image(int(row["image_id"]))
        with right:
            st.markdown("Readers: " + plain(", ".join(f"{reader}: {label}" for reader, label in row["labels"].items())))
            final = st.radio(
                "Final label", label_classes(store), format_func=plain, horizontal=True, key="review_adjudicate_label"
            )
            note = st.text_input("Adjudication note", key="review_adjudicate_note")
            if st.button("Adjudicate", type="primary", key="review_adjudicate"):
                try:
                    adjudicate(store, actor, int(row["image_id"]), final, note)
                except MedreviewError as error:
                    st.error(plain(error))
                else:
                    st.rerun()

with agreement_tab:
    summary = agreement(store, actor)
    st.caption(f"Images read by several readers: {summary['images_with_multiple_readers']}")
    fleiss = summary["fleiss"]
    kappa = fleiss.get("kappa")
    st.metric(
        "Fleiss' kappa (all readers)",
        "n/a" if kappa is None else f"{kappa:.3f}",
        help=f"{fleiss.get('n_images', 0)} images with {fleiss.get('n_readers_per_image')} readers each. "
        + (fleiss.get("reason") or ""),
    )
    pairs = pd.DataFrame(summary["pairs"])
    shared = pairs[pairs["n_images"] > 0] if len(pairs) else pairs
    st.write("Cohen's kappa per reader pair (pairs that read the same images)")
    for column, pair in zip(
        st.columns(min(max(len(shared), 1), 4)), shared.head(8).itertuples(index=False), strict=False
    ):
        value = "n/a" if pd.isna(pair.kappa) else f"{pair.kappa:.3f}"
        column.metric(f"{pair.reader_a} – {pair.reader_b}", value, help=f"{pair.n_images} shared images. {pair.reason}")
    st.dataframe(shared, hide_index=True, key="agreement_pairs")
    st.write("Per class")
    per_class_left, per_class_right = st.columns(2)
    per_class = pd.DataFrame(summary["pairs_per_class"])
    per_class_left.dataframe(per_class[per_class["n_images"] > 0] if len(per_class) else per_class, hide_index=True)
    per_class_right.dataframe(pd.DataFrame(summary["fleiss_per_class"]), hide_index=True)
