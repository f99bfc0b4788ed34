import streamlit as st

from medreview.ingest import IngestResult
from medreview.ingest.demo import load_demo_data
from medreview.reading.catalog import counts
from medreview.reading.reads import current_labels
from medreview.reading.review import review_outcomes
from ui.session import attempt, get_store, session_actor
from ui.text import plain, spreadsheet_safe

store = get_store()
actor = session_actor()
st.title("medreview")
st.caption("Label imaging studies, train a CNN on them, review its predictions with Grad-CAM.")

DEMO_LOADED_KEY = "home_demo_loaded"


def demo_summary(results: list[IngestResult]) -> str:
    """What the demo loader stored, in words: images, labelled per class, left to label."""
    image_ids = [result.image_id for result in results if result.status == "stored"]
    labels = current_labels(store)
    per_class = labels[labels["image_id"].isin(image_ids)]["label"].value_counts().sort_index()
    labelled = int(per_class.sum())
    classes = ", ".join(f"{count} {plain(name)}" for name, count in per_class.items())
    return (
        f"Demo data loaded: {len(image_ids)} images stored, {labelled} of them labelled ({classes}) and "
        f"{len(image_ids) - labelled} left to label. Open **Label** to read them or **Train** to train a "
        "model on them."
    )


# How each state a reviewer can leave a read in is named to its reader.
OUTCOME_WORDS = {"returned": "sent back to you", "rejected": "rejected", "overruled": "overruled by an adjudication"}


def review_outcomes_ui() -> None:
    """Tell readers what reviewers decided against their reads, with the reviewers' comments: a
    read rejected or overruled is otherwise never heard of again, and a sent-back one only as a
    row of the Label page's worklist."""
    table, outcome_counts = review_outcomes(store, actor)
    total = sum(outcome_counts.values())
    if not total:
        return
    parts = ", ".join(f"{count} {OUTCOME_WORDS[state]}" for state, count in outcome_counts.items() if count)
    returned = " Sent-back reads are on the Label page under **Returned to me**." if outcome_counts["returned"] else ""
    st.warning(f"{total} of your reads came back from review: {parts}.{returned}")
    shown = table.assign(status=table["status"].map(OUTCOME_WORDS)).fillna("—")
    st.dataframe(
        spreadsheet_safe(
            shown[["file", "label", "status", "final_label", "review_comment", "reviewed_by", "reviewed_at"]].rename(
                columns={
                    "label": "your label",
                    "status": "review",
                    "final_label": "final label",
                    "review_comment": "reviewer's comment",
                    "reviewed_by": "reviewer",
                    "reviewed_at": "when",
                }
            )
        ),
        hide_index=True,
        key="home_review_outcomes",
    )


summary = counts(store)
images, labelled, patients, models = st.columns(4)
images.metric("Images", summary.images)
labelled.metric("Labelled", summary.labelled)
patients.metric("Patients", summary.patients)
models.metric("Models", summary.models)

review_outcomes_ui()

# Said in the run after loading (the load reruns the page to refresh the figures above), once.
if DEMO_LOADED_KEY in st.session_state:
    st.success(st.session_state.pop(DEMO_LOADED_KEY))
if summary.images == 0 and actor.can("admin"):
    st.info("The store is empty. Upload studies, or load generated demo images to see the whole loop.")
    if st.button("Load demo data", type="primary", key="load_demo"):
        with st.spinner("Generating and storing demo images..."):
            results = attempt(lambda: load_demo_data(store, actor))
        if results is not None:
            st.session_state[DEMO_LOADED_KEY] = demo_summary(results)
            st.rerun()

st.markdown(
    """
1. **Upload**: drop DICOM, PNG, JPEG files or zip archives.
2. **Label**: read each image with proper windowing; one click (or key 1, 2, ...) labels it and moves on.
3. **Train**: one click trains a CNN in the background worker; watch loss and validation AUC live.
4. **Predictions**: run the active model and compare each image with its Grad-CAM heat map.
"""
)
# The server's folders and database address tell an attacker where to look: admins only.
if actor.can("admin"):
    with st.expander("Where the data lives"):
        st.write(f"Data folder: `{store.settings.data_dir}`")
        st.write(f"Database: `{store.db.engine.url.render_as_string(hide_password=True)}`")
