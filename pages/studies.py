"""Studies: reader studies on frozen evaluation sets. An admin makes one (readers, arms, design,
scale, the model version whose output the aided arm shows); reviewers and admins see its results:
per-reader sensitivity and specificity, AUCs, the model's ROC with the readers' points, DeLong
comparisons with the model, the MRMC analysis of the arms, time per case; and download the
ratings, the results and the plot. Readers read a study on their Label page."""

import pandas as pd
import streamlit as st

from medreview.ml.registry import list_models
from medreview.reading.evaluation_sets import list_evaluation_sets
from medreview.reading.studies import (
    ARMS,
    DESIGNS,
    SCALES,
    create_study,
    export_results,
    list_studies,
    ratings_csv,
    roc_png,
    study_results,
)
from medreview.team.accounts import reader_names
from ui import downloads
from ui.session import attempt, get_store, session_actor, succeeded
from ui.text import plain, spreadsheet_safe

SCALE_NAMES = {"confidence": "class + confidence 0-100", "five_point": "5-point scale"}
DESIGN_NAMES = {"crossover": "arms in turn, with a washout", "crossed": "fully crossed, one shuffled list"}

store = get_store()
actor = session_actor("reviewer")
st.title("Reader studies")


def create_ui() -> None:
    sets = list_evaluation_sets(store)
    if not sets:
        st.info("Freeze an evaluation set on the Train page first: a study reads one.")
        return
    with st.form("studies_create"):
        name = st.text_input("Study name", key="studies_name")
        set_name = st.selectbox("Evaluation set (its labels are the truth)", [s.name for s in sets], key="studies_set")
        chosen = next(s for s in sets if s.name == set_name)
        positive = st.selectbox("Positive class", list(chosen.class_counts), key="studies_positive")
        readers = st.multiselect("Readers", reader_names(store), key="studies_readers")
        arms = st.multiselect("Arms", ARMS, default=list(ARMS), key="studies_arms")
        versions = [version.id for version in list_models(store)]
        model = st.selectbox("Model version shown in the aided arm", versions, index=None, key="studies_model")
        design = st.selectbox("Design", DESIGNS, format_func=DESIGN_NAMES.get, key="studies_design")
        washout = st.number_input("Washout between arms (days)", 0, 365, 0, key="studies_washout")
        scale = st.selectbox("Rating scale", SCALES, format_func=SCALE_NAMES.get, key="studies_scale")
        if st.form_submit_button("Create study") and succeeded(
            lambda: create_study(
                store,
                actor,
                name,
                set_name,
                readers,
                positive_class=positive,
                arms=tuple(arms),
                design=design,
                washout_days=int(washout),
                scale=scale,
                model_version_id=model,
            )
        ):
            st.rerun()


def results_ui(study_id: int) -> None:
    results = attempt(lambda: study_results(store, actor, study_id))
    if results is None:
        return
    study = results.study
    st.caption(
        f"Set {plain(study.evaluation_set)} · {study.cases} cases · positive: {plain(study.positive_class)} · "
        f"arms {', '.join(study.arms)} · {DESIGN_NAMES[study.design]}"
        + (f" ({study.washout_days} days)" if study.design == "crossover" else "")
        + f" · {SCALE_NAMES[study.scale]} · seed {study.seed} · {study.rated} ratings"
    )
    for note in results.notes:
        st.info(plain(note))
    plot_column, table_column = st.columns([5, 7])
    png = roc_png(results)
    plot_column.image(
        png,
        caption="The model's ROC curve, each reader's operating point per arm, and their empirical ROC "
        "curves from the ratings (solid unaided, dashed aided)",
    )
    readers = pd.DataFrame(results.readers).drop(columns=["roc"], errors="ignore")
    if len(readers):
        for column in ("sensitivity", "specificity"):
            readers[f"{column} 95% CI"] = [f"{low:.2f}-{high:.2f}" for low, high in readers.pop(f"{column}_ci")]
        table_column.markdown("**Readers per arm** (sensitivity and specificity at their calls, Wilson intervals)")
        table_column.dataframe(spreadsheet_safe(readers), hide_index=True, key="studies_readers_table")
    if results.timing:
        table_column.markdown("**Active time per case**")
        table_column.dataframe(spreadsheet_safe(pd.DataFrame(results.timing)), hide_index=True)
    if results.model is not None:
        st.markdown(f"**Model** AUC {results.model['auc']:.3f} on the set; against each reader (DeLong):")
        st.dataframe(spreadsheet_safe(pd.DataFrame(results.model["against_readers"])), hide_index=True)
        if results.model["against_average_reader"]:
            st.markdown("Against the average reader (DeLong, these readers):")
            st.dataframe(spreadsheet_safe(pd.DataFrame(results.model["against_average_reader"])), hide_index=True)
    if results.analysis is not None:
        st.subheader("Aided versus unaided: Obuchowski-Rockette, Hillis ddf")
        modalities = pd.DataFrame(results.analysis["modalities"])
        st.dataframe(spreadsheet_safe(modalities), hide_index=True, key="studies_modalities")
        st.code(results.analysis_text, language=None)
        st.markdown("Variance components")
        st.dataframe(spreadsheet_safe(pd.DataFrame([results.analysis["variance_components"]])), hide_index=True)
    csv_column, json_column = st.columns(2)
    if csv_column.button("Download ratings (CSV)", key="studies_csv"):
        content = attempt(lambda: ratings_csv(store, actor, study_id))
        if content is not None:
            downloads.send(content, f"study-{study_id}-ratings.csv", "text/csv", key="studies_csv_send")
    if json_column.button("Download results (JSON + PNG)", key="studies_json"):
        exported = attempt(lambda: export_results(store, actor, study_id))
        if exported is not None:
            downloads.send(exported[0], f"study-{study_id}.json", "application/json", key="studies_json_send")
            downloads.send(exported[1], f"study-{study_id}-roc.png", "image/png", key="studies_png_send")


studies = list_studies(store, actor)
if actor.can("admin"):
    with st.expander("New reader study", expanded=not studies):
        create_ui()
if not studies:
    st.info("No reader study yet." + ("" if actor.can("admin") else " An admin makes one here."))
    st.stop()
names = {study.name: study.id for study in studies}
chosen_name = st.selectbox("Study", list(names), key="studies_chosen")
results_ui(names[chosen_name])
