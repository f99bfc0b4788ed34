import streamlit as st

from medreview.annotation import add_label_class, label_classes, rename_label_class, set_label_class_active
from pages.common import attempt, get_store

store = get_store()
st.title("Settings")

st.subheader("Label schema")
st.caption("One button per class on the Label page, in this order. Retiring a class keeps its labels.")
active = label_classes(store)
everything = label_classes(store, include_retired=True)
for name in everything:
    name_column, rename_column, toggle_column = st.columns([2, 3, 1])
    name_column.write(f"**{name}**" if name in active else f"~~{name}~~ (retired)")
    new_name = rename_column.text_input(
        "Rename to", value=name, key=f"settings_rename_{name}", label_visibility="collapsed"
    )
    if new_name != name and attempt(lambda old=name, new=new_name: rename_label_class(store, old, new)):
        st.rerun()
    if name in active:
        if toggle_column.button("Retire", key=f"settings_retire_{name}"):
            attempt(lambda n=name: set_label_class_active(store, n, False))
            st.rerun()
    elif toggle_column.button("Restore", key=f"settings_restore_{name}"):
        attempt(lambda n=name: set_label_class_active(store, n, True))
        st.rerun()

with st.form("settings_add_class", clear_on_submit=True):
    new_class = st.text_input("New class", key="settings_new_class")
    if st.form_submit_button("Add class") and attempt(lambda: add_label_class(store, new_class)):
        st.rerun()

st.subheader("Storage")
st.write(f"Data folder: `{store.settings.data_dir}`")
st.write(f"Database: `{store.db.engine.url.render_as_string(hide_password=True)}`")
st.write(f"Job queue: {'Redis' if store.settings.redis_url else 'SQLite (' + str(store.settings.queue_path) + ')'}")
limits = store.settings.limits
st.write(
    f"Upload limits: {limits.max_file_bytes // 2**20} MiB per file, {limits.max_frame_pixels // 2**20} Mpx per frame, "
    f"{limits.max_archive_members} members and {limits.max_archive_total_bytes // 2**30} GiB per archive, "
    f"compression ratio {limits.max_compression_ratio:.0f}:1"
)
