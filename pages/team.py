import datetime as dt

import pandas as pd
import streamlit as st

from medreview.ingest.dicomweb import DicomWebClient
from medreview.ingest.pseudonyms import pseudonym_table
from medreview.reading.assist import assist_monitor
from medreview.reading.catalog import image_table
from medreview.reading.dicomout.documents import SOURCES, kos_objects, sr_objects, zip_objects
from medreview.reading.dicomout.send import send_objects
from medreview.reading.evaluation_sets import list_evaluation_sets
from medreview.reading.exchange import import_labels
from medreview.reading.review import assign
from medreview.reading.studies import gold_scores, gold_trend, mix_gold
from medreview.team.accounts import change_password, create_user, list_users, reader_names, set_active, set_role
from medreview.team.audit import ACTIONS, csv_bytes, query
from medreview.team.roles import ROLES
from ui import downloads
from ui.exports import export_ui
from ui.session import attempt, get_store, session_actor, succeeded
from ui.text import spreadsheet_safe

store = get_store()
actor = session_actor("admin")
st.title("Team")

users_tab, assign_tab, audit_tab, data_tab, map_tab = st.tabs(
    ["Users", "Assignments", "Audit trail", "Export / import", "Pseudonym map"]
)

with users_tab:
    users = list_users(store, actor)
    st.dataframe(spreadsheet_safe(users), hide_index=True, key="team_users")
    with st.form("team_add_user", clear_on_submit=True):
        name_column, role_column, password_column = st.columns(3)
        username = name_column.text_input("User name", key="team_new_username")
        role = role_column.selectbox("Role", ROLES, key="team_new_role")
        password = password_column.text_input("Initial password", type="password", key="team_new_password")
        st.caption("The new user chooses their own password at the first sign-in.")
        if st.form_submit_button("Add user") and succeeded(
            lambda: create_user(store, actor, username, password, role, temporary=True)
        ):
            st.rerun()
    names = [user["username"] for user in users]
    if names:
        who_column, role_column, active_column, reset_column = st.columns(4)
        who = who_column.selectbox("User", names, key="team_edit_user")
        current = next(user for user in users if user["username"] == who)
        new_role = role_column.selectbox("Role", ROLES, index=ROLES.index(current["role"]), key="team_edit_role")
        if (
            new_role != current["role"]
            and role_column.button("Change role", key="team_change_role")
            and succeeded(lambda: set_role(store, actor, who, new_role))
        ):
            st.rerun()
        label = "Deactivate" if current["active"] else "Reactivate"
        if active_column.button(label, key="team_toggle_active") and succeeded(
            lambda: set_active(store, actor, who, not current["active"])
        ):
            st.rerun()
        if who == actor.username:
            reset_column.caption("Change your own password in the sidebar.")
        else:
            # A reset signs the user out everywhere; they choose their own password at the next sign-in.
            with reset_column.form("team_reset_form", clear_on_submit=True, border=False):
                temporary = st.text_input("Temporary password", type="password", key="team_reset_password")
                if st.form_submit_button("Reset password") and succeeded(
                    lambda: change_password(store, actor, who, temporary)
                ):
                    st.success(f"{who} signs in with the temporary password, then chooses their own.")

with assign_tab:
    readers = st.multiselect("Readers", reader_names(store), key="team_assign_readers")
    per_image = st.number_input("Readers per image", 1, 10, 2, key="team_assign_per_image")
    images = image_table(store)
    scope = st.radio("Images", ["all", "first N"], horizontal=True, key="team_assign_scope")
    if scope == "first N":
        count = st.number_input("N", 1, max(len(images), 1), min(20, max(len(images), 1)), key="team_assign_n")
        images = images.head(int(count))
    if st.button(f"Assign {len(images)} image(s)", type="primary", key="team_assign"):
        made = attempt(lambda: assign(store, actor, [int(i) for i in images["image_id"]], readers, int(per_image)))
        if made is not None:
            st.success(f"{made} new assignment(s).")

with audit_tab:
    action_column, actor_column, since_column = st.columns(3)
    actions = action_column.multiselect("Actions", ACTIONS, key="team_audit_actions")
    who = actor_column.text_input("User", key="team_audit_user")
    since = since_column.date_input("Since", value=None, key="team_audit_since")
    since_time = dt.datetime.combine(since, dt.time(), dt.UTC) if since else None
    events = query(store, actor, action=actions or None, actor_name=who or None, since=since_time, limit=500)
    st.dataframe(spreadsheet_safe(events), hide_index=True, key="team_audit_table")
    if st.button("Download these events as audit.csv", key="team_audit_export"):
        # Through the audited export: downloading the trail is itself an audit event. Made now, for
        # this session only (ui/downloads.py): never a file on disk or at a URL.
        filters = {"action": actions or None, "actor_name": who or None, "since": since_time}
        content = attempt(lambda: csv_bytes(store, actor, "audit.csv", **filters))
        if content is not None:
            downloads.send(content, "audit.csv", "text/csv", key="team_audit_download")

with data_tab:
    export_ui(store, actor, "team")  # the same form reviewers have on the Review page
    uploaded = st.file_uploader(
        "Import reads (a JSON 'reads' export, or medreview's SR: .dcm or .zip)",
        type=["json", "dcm", "zip"],
        key="team_import",
    )
    if uploaded is not None and st.button("Import", key="team_import_run"):
        counts = attempt(lambda: import_labels(store, actor, uploaded.getvalue()))
        if counts is not None:
            st.success(
                f"{counts['reads']} reads and {counts['final_labels']} final labels imported; "
                f"{counts['images_missing']} rows name images this store does not hold."
            )

with data_tab, st.expander("DICOM SR / KOS for a PACS"):
    # Structured reports (and evaluation sets as Key Object Selection) that point at the images;
    # written for download, or stored on the PACS with STOW-RS (nothing is sent twice).
    sources = st.multiselect("Reports of", SOURCES, default=list(SOURCES), key="team_sr_sources")
    model_number = st.number_input("Model version (predictions; 0: the active one)", 0, step=1, key="team_sr_model")
    sets = [summary.name for summary in list_evaluation_sets(store)]
    kos_set = st.selectbox("Evaluation set as KOS", ["(none)", *sets], key="team_kos_set")

    def dicom_objects() -> list:
        objects, results = sr_objects(store, actor, sources, model_id=int(model_number) or None)
        if kos_set != "(none)":
            kos, kos_results = kos_objects(store, actor, kos_set)
            objects, results = objects + kos, results + kos_results
        st.dataframe(spreadsheet_safe(pd.DataFrame(results)), hide_index=True, key="team_sr_results")
        return objects

    if st.button("Write the SR zip", key="team_sr_zip"):
        content = attempt(lambda: zip_objects(store, actor, dicom_objects()))
        if content is not None:
            downloads.send(content, "medreview-sr.zip", "application/zip", key="team_sr_download")
    url_column, user_column, password_column = st.columns(3)
    pacs_url = url_column.text_input("DICOMweb address", placeholder="http://pacs:8042/dicom-web", key="team_sr_url")
    pacs_user = user_column.text_input("User", key="team_sr_user")
    pacs_password = password_column.text_input("Password", type="password", key="team_sr_password")
    if pacs_url and st.button("Send to PACS", key="team_sr_send"):
        pacs = DicomWebClient(pacs_url, username=pacs_user or None, password=pacs_password or None)
        with st.spinner("Sending to the PACS..."):
            sent = attempt(lambda: send_objects(store, actor, pacs, dicom_objects()))
        if sent is not None:
            st.dataframe(spreadsheet_safe(pd.DataFrame(sent)), hide_index=True, key="team_sr_sent")

with map_tab:
    st.caption("Original identifiers and their pseudonyms. Every look is recorded in the audit trail.")
    search = st.text_input("Search", key="team_map_search")
    if st.button("Show", key="team_map_show"):
        st.dataframe(spreadsheet_safe(attempt(lambda: pseudonym_table(store, actor, search))), hide_index=True)

with assign_tab, st.expander("Gold-standard checks"):
    # Cases of a frozen evaluation set mixed into readers' worklists at a rate, unannounced (they
    # look like any other assignment); each reader's reads of them scored against the set's labels.
    gold_sets = [summary.name for summary in list_evaluation_sets(store)]
    if not gold_sets:
        st.info("Freeze an evaluation set on the Train page first: its labels are the gold standard.")
    else:
        with st.form("team_gold_form"):
            gold_set = st.selectbox("Evaluation set (its labels are the gold standard)", gold_sets, key="team_gold_set")
            gold_readers = st.multiselect("Readers", reader_names(store), key="team_gold_readers")
            gold_rate = st.slider("Share of each worklist that is gold", 0.05, 0.5, 0.1, 0.05, key="team_gold_rate")
            if st.form_submit_button("Mix gold cases in"):
                added = attempt(lambda: mix_gold(store, actor, gold_readers, gold_set, gold_rate))
                if added is not None:
                    st.success("Gold cases added: " + ", ".join(f"{reader} {count}" for reader, count in added.items()))
    scores = attempt(lambda: gold_scores(store, actor))
    if scores is not None and len(scores):
        st.markdown("**Per reader** (accuracy and Cohen's kappa against the gold labels, seconds per gold case)")
        st.dataframe(spreadsheet_safe(scores), hide_index=True, key="team_gold_scores")
        trend = gold_trend(store, actor)
        if len(trend):
            st.markdown("**Accuracy per week** (the Monday of the week the gold case was read)")
            st.line_chart(trend.pivot(index="week", columns="reader", values="accuracy"), height=220)
            st.dataframe(spreadsheet_safe(trend), hide_index=True, key="team_gold_trend")
    elif scores is not None:
        st.caption("No gold cases on any worklist yet.")

with users_tab, st.expander("Model suggestions (automation-bias monitor)"):
    st.caption(
        "Reads made with the model's suggestion on screen (Settings: model on the Label page, aided), per "
        "reader and model version: how often the suggestion was accepted unchanged or overridden, and the "
        "reader's accuracy against the final label in each case (over the reads whose case has one). A reader "
        "who accepts nearly everything and is less accurate when accepting may be following the model."
    )
    monitor = assist_monitor(store, actor)
    if monitor.empty:
        st.caption("No read has been made with a suggestion yet.")
    else:
        st.dataframe(
            spreadsheet_safe(monitor),
            hide_index=True,
            key="team_assist_monitor",
            column_config={
                "accepted_share": st.column_config.NumberColumn("accepted", format="percent"),
                "accepted": st.column_config.NumberColumn("accepted (n)"),
                "accuracy_accepted": st.column_config.NumberColumn("accuracy when accepted", format="percent"),
                "accuracy_overridden": st.column_config.NumberColumn("accuracy when overridden", format="percent"),
                "final_accepted": st.column_config.NumberColumn("accepted, with final label"),
                "final_overridden": st.column_config.NumberColumn("overridden, with final label"),
                "changed_after_model": st.column_config.NumberColumn("changed after seeing the model"),
            },
        )
