"""A reader's reading of a reader study on the Label page: one case at a time in the viewer (the
model's probability and map beside it in the aided arm only), rated with a class and a confidence
or on the 5-point scale. What the viewer gets is the image alone (medreview.reading.studies.next_case
decides what a reader may see); the rating goes to the service, which refuses a change."""

from __future__ import annotations

import streamlit as st

from medreview.errors import MedreviewError
from medreview.reading.studies import FIVE_POINT, StudyCase, StudySummary, next_case, rate_case, study_heatmap
from medreview.team.roles import Actor
from ui.session import get_store
from ui.text import plain
from ui.viewer import image_viewer, overlay_row, reported_active_seconds

STUDY_VIEWER_KEY = "study_viewer"


def study_reading_ui(actor: Actor, study: StudySummary) -> None:
    """The case the reader reads now in ``study`` and its rating form, or why there is none."""
    store = get_store()
    case = next_case(store, actor, study.id)
    if not isinstance(case, StudyCase):
        (st.success if case.done else st.info)(plain(case.message))
        return
    st.caption(
        f"Reader study {plain(study.name)} · {case.arm} arm · case {case.order} of {case.of} "
        f"({case.done} of {case.total} rated) · a rating cannot be changed once saved"
    )
    overlays = []
    missing_map = False
    if case.arm == "aided":
        heat = study_heatmap(store, actor, case)
        if heat is not None:
            overlays = [overlay_row(case.image_id, 0, heat, f"model map: {case.positive_class}")]
        missing_map = heat is None
    view_column, rating_column = st.columns([9, 4])
    with view_column:
        image_viewer(
            STUDY_VIEWER_KEY,
            actor,
            [case.image_id],
            overlays=overlays,
            split=bool(overlays),
            blind=True,
            report_active=True,
        )
    with rating_column:
        if case.arm == "aided" and case.model_probability is not None:
            st.metric(f"Model: probability of {plain(case.positive_class)}", f"{case.model_probability:.0%}")
        if missing_map:
            st.caption(
                "The model's map of this image is not stored yet: an admin computes it by opening the image "
                "on the Predictions page."
            )
        rating_form(actor, case)


def rating_form(actor: Actor, case: StudyCase) -> None:
    key = f"study_{case.study_id}_{case.arm}_{case.member_id}"
    with st.form(f"{key}_form"):
        if case.scale == "five_point":
            label = None
            confidence = st.radio(
                f"Is there {plain(case.positive_class)}?",
                list(FIVE_POINT),
                format_func=lambda value: f"{value} {FIVE_POINT[value]}",
                index=None,
                key=f"{key}_five",
            )
        else:
            label = st.radio("Class", case.classes, index=None, format_func=plain, key=f"{key}_class")
            confidence = st.slider("Confidence", 0, 100, 50, key=f"{key}_confidence")
        if st.form_submit_button("Save rating", type="primary"):
            if confidence is None or (case.scale == "confidence" and label is None):
                st.error("Choose a rating first.")
                return
            try:
                rate_case(
                    get_store(),
                    actor,
                    case.study_id,
                    case.member_id,
                    case.arm,
                    label=label,
                    confidence=confidence,
                    # What the viewer counted (tab visible, no idle gap over a minute), if it sent it.
                    seconds=reported_active_seconds(STUDY_VIEWER_KEY, case.image_id),
                )
            except MedreviewError as error:
                st.error(plain(error))
                return
            st.rerun()
