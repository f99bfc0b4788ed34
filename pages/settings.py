import streamlit as st

from medreview.reading.consensus import apply_consensus_rule
from medreview.reading.project_settings import import_project_settings, project_settings_bytes
from medreview.reading.protocols import parse_protocols, protocols_text
from medreview.reading.schema import (
    add_label_class,
    label_class_scopes,
    label_classes,
    rename_label_class,
    set_label_class_active,
)
from medreview.team.settings import CHOICES, DEFAULTS, project_settings, set_setting
from ui import downloads
from ui.session import attempt, get_store, session_actor, succeeded
from ui.text import plain

store = get_store()
actor = session_actor("admin")
st.title("Settings")

st.subheader("Project")
current = project_settings(store)
left, right = st.columns(2)
with left:
    deidentify = st.toggle(
        "De-identify at import (PS3.15 Basic Profile)",
        value=current["deidentify"],
        key="settings_deidentify",
        help="Names, IDs, dates and free text removed; UIDs remapped; PNG/JPEG metadata stripped. "
        "Off: originals, with patient data, are stored as uploaded.",
    )
    shift_dates = st.toggle(
        "Keep dates, shifted per patient",
        value=current["shift_dates"],
        key="settings_shift_dates",
        disabled=not deidentify,
        help="PS3.15 Retain Longitudinal Temporal Information with Modified Dates: every date of a patient "
        "moves back by the same secret number of days (1 to 10 years), so studies keep their order and "
        "intervals; times of day, age (over 89: 90) and sex are kept. For files imported from now on.",
    )
    blinded = st.toggle(
        "Blinded reading",
        value=current["blinded"],
        key="settings_blinded",
        help="Annotators see other readers' labels and the model's output for an image only after saving theirs.",
    )
    boxes = st.toggle("Bounding boxes", value=current["boxes"], key="settings_boxes")
    box_only_reads = st.toggle(
        "Boxes without a class",
        value=current["box_only_reads"],
        key="settings_box_only_reads",
        disabled=not boxes,
        help="A reader may save boxes alone (S) as their read of an image. Off: boxes are saved with a class.",
    )
with right:
    label_mode = st.radio(
        "Label type",
        CHOICES["label_mode"],
        index=CHOICES["label_mode"].index(current["label_mode"]),
        horizontal=True,
        key="settings_label_mode",
        format_func={"single": "Single choice", "multi": "Multi-label"}.get,
    )
    source = st.radio(
        "Training uses",
        CHOICES["training_label_source"],
        index=CHOICES["training_label_source"].index(current["training_label_source"]),
        horizontal=True,
        key="settings_source",
        format_func={"final": "Final labels (adjudicated, approved or unanimous)", "all": "All submitted reads"}.get,
    )
    minutes = st.number_input(
        "Log out after inactivity (minutes)", 5, 7 * 24 * 60, current["session_minutes"], key="settings_minutes"
    )
    assist = st.selectbox(
        "Model on the Label page",
        CHOICES["assist_mode"],
        index=CHOICES["assist_mode"].index(current["assist_mode"]),
        key="settings_assist_mode",
        format_func={
            "auto": "Automatic (unaided with blinded reading, else after the read)",
            "unaided": "Unaided: never before the read is saved",
            "aided_after": "After the read: call, probability and map once saved",
            "aided": "Aided: the call as a suggestion (Enter accepts)",
        }.get,
        help="What a reader sees of the active model's call. Each read records the suggestion shown and "
        "whether it was accepted or overridden; the Team page shows how often, per reader and model version.",
    )
wanted = {
    "deidentify": deidentify,
    "shift_dates": shift_dates,
    "blinded": blinded,
    "boxes": boxes,
    "box_only_reads": box_only_reads,
    "label_mode": label_mode,
    "training_label_source": source,
    "session_minutes": int(minutes),
    "assist_mode": assist,
}
changed = {key: value for key, value in wanted.items() if value != current[key]}
# Every change is attempted (a list, not a generator: no short-circuit); rerun only if all worked.
if changed and all(
    [succeeded(lambda k=key, v=value: set_setting(store, actor, k, v)) for key, value in changed.items()]
):
    st.rerun()

st.subheader("Label schema")
st.caption("One button per class on the Label page, in this order. Retiring a class keeps its labels.")
SCOPE_WORDS = {"image": "an image", "series": "a series", "study": "a study"}
active = label_classes(store)
scopes = label_class_scopes(store, include_retired=True)
for name in label_classes(store, include_retired=True):
    name_column, rename_column, toggle_column = st.columns([2, 3, 1])
    shown = f"**{plain(name)}**" if name in active else f"~~{plain(name)}~~ (retired)"
    name_column.markdown(f"{shown} · reads {SCOPE_WORDS[scopes.get(name, 'image')]}")
    new_name = rename_column.text_input(
        "Rename to", value=name, key=f"settings_rename_{name}", label_visibility="collapsed"
    )
    if new_name != name and succeeded(lambda old=name, new=new_name: rename_label_class(store, actor, old, new)):
        st.rerun()
    if name in active:
        if toggle_column.button("Retire", key=f"settings_retire_{name}") and succeeded(
            lambda n=name: set_label_class_active(store, actor, n, False)
        ):
            st.rerun()
    elif toggle_column.button("Restore", key=f"settings_restore_{name}") and succeeded(
        lambda n=name: set_label_class_active(store, actor, n, True)
    ):
        st.rerun()

with st.form("settings_add_class", clear_on_submit=True):
    new_class = st.text_input("New class", key="settings_new_class")
    new_scope = st.radio(
        "A read of it labels",
        list(SCOPE_WORDS),
        format_func=SCOPE_WORDS.get,
        horizontal=True,
        key="settings_new_class_scope",
        help="A study or series class is read once per case (a study-level 'PE present'); an image class per image.",
    )
    if st.form_submit_button("Add class") and succeeded(
        lambda: add_label_class(store, actor, new_class, scope=new_scope or "image")
    ):
        st.rerun()

st.subheader("Hanging protocols")
st.caption(
    "How a study opens in the viewer. Protocols are tried in order: the first whose modality the study has and "
    "that fills at least one viewport hangs it; a study none matches opens 1x1 with its first series. "
    "Protocol fields: name, modality, layout (1x1, 1x2, 1x3, 2x2), viewports (row by row). Viewport fields: "
    "modality, description (a regular expression, any case; on MR it also matches the weighting T1, T2, PD, "
    "FLAIR, DWI or ADC read from the scan, since de-identification removes descriptions), orientation (axial, "
    "coronal, sagittal, oblique), laterality (R, L, B), view_position (CC, MLO, PA, ...), preset (a CT window: "
    "mediastinum, lung, bone, brain, abdomen), mirror and prior (true or false). In JSON a backslash is written `\\\\`."
)
PROTOCOLS_KEY = "settings_hanging_protocols"
if PROTOCOLS_KEY not in st.session_state:
    st.session_state[PROTOCOLS_KEY] = protocols_text(current["hanging_protocols"])
notice = st.session_state.pop("settings_protocols_notice", None)
if notice:
    st.success(notice)
st.text_area("Protocols (JSON)", key=PROTOCOLS_KEY, height=420)
save_column, restore_column = st.columns([1, 5])
if save_column.button("Save protocols", key="settings_save_protocols", type="primary"):
    edited = attempt(lambda: parse_protocols(st.session_state[PROTOCOLS_KEY]))
    if edited is not None and (
        edited == current["hanging_protocols"]
        or succeeded(lambda: set_setting(store, actor, "hanging_protocols", edited))
    ):
        st.session_state["settings_protocols_notice"] = "Hanging protocols saved."
        del st.session_state[PROTOCOLS_KEY]  # shown again as saved, laid out one viewport a line
        st.rerun()
if restore_column.button(
    "Restore defaults",
    key="settings_restore_protocols",
    disabled=current["hanging_protocols"] == DEFAULTS["hanging_protocols"],
) and succeeded(lambda: set_setting(store, actor, "hanging_protocols", DEFAULTS["hanging_protocols"])):
    st.session_state["settings_protocols_notice"] = "The shipped hanging protocols are restored."
    del st.session_state[PROTOCOLS_KEY]
    st.rerun()

st.subheader("Consensus auto-accept")
st.caption(
    "A case's final label is set without a review when enough readers agree, the active model agrees with "
    "them at a calibrated probability at least this high, and the case is inside the model's training data. "
    "It runs when a read is saved and when predictions are stored; each is audited (review.auto_accept, with "
    "the rule's values), counted on Review, and a reviewer can revert it."
)
with st.form("settings_auto_accept", border=False):
    rule_left, rule_middle, rule_right = st.columns(3)
    auto_accept = rule_left.toggle("Auto-accept on", value=current["auto_accept"], key="settings_auto_accept")
    auto_readers = rule_middle.number_input(
        "Readers who agree (at least)", 1, 20, current["auto_accept_readers"], key="settings_auto_accept_readers"
    )
    auto_probability = rule_right.slider(
        "Model probability (at least)",
        0.5,
        1.0,
        float(current["auto_accept_probability"]),
        step=0.01,
        key="settings_auto_accept_probability",
    )
    rule = {
        "auto_accept": auto_accept,
        "auto_accept_readers": int(auto_readers),
        "auto_accept_probability": round(float(auto_probability), 4),
    }
    if st.form_submit_button("Save the rule") and all(
        [
            succeeded(lambda k=key, v=value: set_setting(store, actor, k, v))
            for key, value in rule.items()
            if value != current[key]
        ]
    ):
        st.rerun()
if st.button("Apply the rule now", key="settings_auto_accept_apply", disabled=not current["auto_accept"]):
    accepted = attempt(lambda: apply_consensus_rule(store, actor))
    if accepted is not None:
        st.success(f"The rule accepted {accepted} case{'' if accepted == 1 else 's'}.")

st.subheader("Class codes in DICOM")
st.caption(
    "The code each class gets in DICOM structured reports, as SCHEME:VALUE (SNOMED CT `SCT:233604007`, RadLex "
    "`RADLEX:RID5350`). A class left empty gets medreview's private code (scheme 99MEDREVIEW, see the README)."
)
with st.form("settings_class_codes", border=False):
    codes = {
        name: st.text_input(plain(name), value=current["class_codes"].get(name, ""), key=f"settings_code_{name}")
        for name in label_classes(store)
    }
    if st.form_submit_button("Save codes") and succeeded(lambda: set_setting(store, actor, "class_codes", codes)):
        st.success("Class codes saved.")

st.subheader("Export and import")
st.caption(
    "The label schema (with each class's scope), the hanging protocols and the settings above as one JSON file, "
    "to set up another project the same way. No pseudonym key, account or password is in it. An import is "
    "checked whole first: a bad rule or an unknown key is named and nothing is changed."
)
download_column, upload_column = st.columns([1, 2])
if download_column.button("Download project settings", key="settings_export"):
    content = attempt(lambda: project_settings_bytes(store, actor))
    if content is not None:
        downloads.send(content, "project.json", "application/json", key="settings_export_download")
import_notice = st.session_state.pop("settings_import_notice", None)
if import_notice:
    st.success(import_notice)
uploaded_key = "settings_import_file"
uploaded = upload_column.file_uploader("Project settings file", type=["json"], key=uploaded_key)
if uploaded is not None and upload_column.button("Import project settings", key="settings_import"):
    changed = attempt(lambda: import_project_settings(store, actor, uploaded.getvalue()))
    if changed is not None:
        # The widgets above hold the old values in their state: drop it, or the next run would write them back.
        for key in [key for key in st.session_state if str(key).startswith("settings_") and key != uploaded_key]:
            del st.session_state[key]
        st.session_state["settings_import_notice"] = (
            f"Project settings imported: {len(changed['settings'])} settings changed"
            + (f" ({', '.join(changed['settings'])})" if changed["settings"] else "")
            + f"; label classes {', '.join(changed['label_classes']) or 'unchanged'}."
        )
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
