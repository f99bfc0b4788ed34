import streamlit as st

from medreview.ingest.demo import load_demo_data
from medreview.reading.catalog import counts
from ui.session import attempt, get_store, session_actor

store = get_store()
actor = session_actor()
st.title("medreview")
st.caption("Label imaging studies, train a CNN on them, review its predictions with Grad-CAM.")

summary = counts(store)
images, labelled, patients, models = st.columns(4)
images.metric("Images", summary.images)
labelled.metric("Labelled", summary.labelled)
patients.metric("Patients", summary.patients)
models.metric("Models", summary.models)

if summary.images == 0 and actor.can("admin"):
    st.info("The store is empty. Upload studies, or load generated demo images to see the whole loop.")
    if st.button("Load demo data", type="primary", key="load_demo"):
        with st.spinner("Generating and storing demo images..."):
            results = attempt(lambda: load_demo_data(store, actor))
        if results is not None:
            st.success(f"{sum(r.status == 'stored' for r in results)} demo images stored; 32 of them labelled.")
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
