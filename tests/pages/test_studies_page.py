"""The reader study in the pages (AppTest): what the Label page sends the viewer in each arm (the
image; the model's map and probability in the aided arm only; never the truth or other readers),
and the Studies page's results for a reviewer."""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from sqlalchemy import select

from medreview.errors import NotFoundError
from medreview.ml import explanations
from medreview.reading.reads import LOCAL_ACTOR, save_read
from medreview.reading.studies import StudyCase, next_case, rate_case, study_heatmap
from medreview.store.models import ReaderStudyRating, User, as_utc
from medreview.team.roles import Actor
from tests.conftest import ADMIN, run_page_as
from tests.pages.viewer import viewer_data
from tests.reading.test_studies import (
    READERS,
    START,
    add_readers,
    make_study,
    open_project_copy,
    read_all,
    truthful,
)
from ui import frame_route
from ui.viewer import overlay_row

READER = Actor("reader1", "annotator")


@pytest.fixture
def page_project(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    tmp_path_factory: pytest.TempPathFactory,
    new_store_file: Path,
) -> Iterator[dict]:
    """A copy of the built project (tests/reading/test_studies.py) with an admin account, and the
    pages' cached Store pointed at it."""
    import streamlit as st

    project = open_project_copy(tmp_path, monkeypatch, tmp_path_factory, new_store_file)
    st.cache_resource.clear()
    add_readers(project["store"], ADMIN.username, role="admin")
    yield project
    st.cache_resource.clear()
    project["store"].close()


def test_the_label_page_sends_the_image_alone_unaided_and_the_model_aided(page_project):
    project = page_project
    page_store = project["store"]
    study_id = make_study(project)
    app = run_page_as("label", READER)
    [source] = [box for box in app.selectbox if box.label == "Worklist"]
    source.set_value("cxr study").run()
    data = viewer_data(app, "study_viewer")
    case = next_case(page_store, READER, study_id)
    assert case.arm == "unaided" and [image["id"] for image in data["images"]] == [case.image_id]
    sent = json.dumps(data)
    assert data["overlays"] == [] and not app.metric  # no model unaided
    assert data["images"][0]["label"] is None and data["classes"] == []  # no truth, no class to save
    assert not any(reader in sent for reader in READERS[1:])  # no other reader
    # The reader rates through the form; the next case opens and the rated one cannot come back.
    app.radio(key=f"study_{study_id}_unaided_{case.member_id}_class").set_value("pneumonia")
    app.slider(key=f"study_{study_id}_unaided_{case.member_id}_confidence").set_value(80)
    app.button[0].click().run()
    assert not app.exception
    assert next_case(page_store, READER, study_id).member_id != case.member_id
    # Aided: the map of the positive class beside the image, and the model's probability.
    while (unaided := next_case(page_store, READER, study_id)).arm == "unaided":
        rate_case(page_store, READER, study_id, unaided.member_id, "unaided", label="normal", confidence=50)
    app.run()
    assert isinstance(unaided, StudyCase) and unaided.arm == "aided"
    data = viewer_data(app, "study_viewer")
    assert [overlay["label"] for overlay in data["overlays"]] == ["model map: pneumonia"] and data["split"]
    assert app.metric[0].label == "Model: probability of pneumonia"


def test_the_studies_page_shows_the_results_to_a_reviewer_only(page_project):
    project = page_project
    page_store = project["store"]
    study_id = make_study(project)
    right = truthful(project)
    for number, reader in enumerate(READERS):

        def rate(case, number=number):  # each reader misses a different case, aided fewer
            label, _ = right(case)
            if (case.image_id + number) % (8 if case.arm == "aided" else 3) == 0:
                label = "normal" if label == "pneumonia" else "pneumonia"
            return label, (case.image_id * 7 + number * 13) % 100

        read_all(page_store, study_id, reader, rate, START)
    with page_store.db.write() as session:
        session.add(User(username="senior", role="reviewer", password_hash="unusable"))
    app = run_page_as("studies", Actor("senior", "reviewer"))
    assert any("Readers per arm" in block.value for block in app.markdown)
    assert "Obuchowski-Rockette" in app.code[0].value and "Variance components" in app.code[0].value
    assert not app.expander  # only an admin makes studies
    refused = run_page_as("studies", READER)
    assert not refused.code and not any("Readers per arm" in block.value for block in refused.markdown)


def test_the_aided_arm_shows_the_map_the_predictions_page_shows(page_project):
    """The Predictions page draws the map of the view it opens (Grad-CAM of frame 0 at the file's own
    display, cached by the explanation job); the aided arm draws that one, else the prediction job's
    stored map (the same computation), and neither to someone who does not read the study."""
    project = page_project  # with the prediction job's maps: the identity for pneumonia
    page_store = project["store"]
    study_id = make_study(project, design="crossed")
    reader = Actor("reader2", "annotator")
    while (case := next_case(page_store, reader, study_id)).arm != "aided":
        rate_case(page_store, reader, study_id, case.member_id, case.arm, label="normal", confidence=50)
    # The Predictions page's view map for this image: a different pattern from the stored one.
    view = explanations._job_params(project["model"], case.image_id, 0, None, "gradcam")
    page_map = np.stack([np.zeros((4, 4)), np.tril(np.ones((4, 4)))]).astype(np.float16)  # (C, h, w)
    path = page_store.data_path(view["path"])
    path.parent.mkdir(parents=True, exist_ok=True)
    np.savez(path, maps=page_map, probabilities=np.array([0.2, 0.8], dtype=np.float32))
    shown = explanations.request_view_maps(page_store, LOCAL_ACTOR, project["model"], case.image_id)
    assert shown.ready and np.array_equal(shown.maps[1], page_map[1])
    assert np.array_equal(study_heatmap(page_store, reader, case), shown.maps[1])
    app = run_page_as("label", reader)
    [source] = [box for box in app.selectbox if box.label == "Worklist"]
    source.set_value("cxr study").run()
    [overlay] = viewer_data(app, "study_viewer")["overlays"]
    assert overlay["data"] == overlay_row(case.image_id, 0, shown.maps[1], "")["data"]
    # Without the page's map the stored one is drawn; nobody outside the study gets either.
    path.unlink()
    assert np.array_equal(study_heatmap(page_store, reader, case), np.eye(4, dtype=np.float32))
    with pytest.raises(NotFoundError):
        study_heatmap(page_store, Actor("outsider", "annotator"), case)


def test_a_reader_s_own_earlier_read_of_a_study_image_is_not_sent_to_the_viewer(page_project):
    project = page_project
    page_store = project["store"]
    study_id = make_study(project)
    case = next_case(page_store, READER, study_id)
    # reader1 read this image in ordinary reading before it went into the study, and boxed it.
    save_read(
        page_store,
        READER,
        case.image_id,
        "pneumonia",
        boxes=[{"label": "pneumonia", "x": 1, "y": 1, "width": 4, "height": 4}],
    )
    app = run_page_as("label", READER)
    [source] = [box for box in app.selectbox if box.label == "Worklist"]
    source.set_value("cxr study").run()
    [image] = viewer_data(app, "study_viewer")["images"]
    assert (image["label"], image["labels"], image["boxes"], image["read"]) == (None, [], [], False)


def test_a_rating_keeps_the_viewers_active_seconds_not_the_time_the_case_was_open(page_project):
    # The case was open for 10 minutes, of which the viewer counted 42.5 s active (the tab hidden or
    # the reader idle the rest) and sent it as it left the image: the rating records the viewer's
    # figure, not the cap or the interval.
    project = page_project
    page_store = project["store"]
    study_id = make_study(project)
    app = run_page_as("label", READER)
    [source] = [box for box in app.selectbox if box.label == "Worklist"]
    source.set_value("cxr study").run()
    case = next_case(page_store, READER, study_id)
    readers_rating = select(ReaderStudyRating).where(
        ReaderStudyRating.study_id == study_id,
        ReaderStudyRating.arm == case.arm,
        ReaderStudyRating.member_id == case.member_id,
        ReaderStudyRating.reader_id == select(User.id).where(User.username == READER.username).scalar_subquery(),
    )
    with page_store.db.write() as session:
        row = session.scalar(readers_rating)
        row.shown_at = as_utc(row.shown_at) - dt.timedelta(minutes=10)
    # What the viewer sent to the frame route (tests/ui/test_frame_route.py) under this viewer's token.
    token = frame_route.grants.grant(
        None, login_token="a sign-in", store=page_store, load=lambda image_id: None, image_ids=[case.image_id]
    )
    frame_route.grants.lookup(token).active[case.image_id] = 42.5
    app.session_state["study_viewer__frame_token"] = token
    app.radio(key=f"study_{study_id}_unaided_{case.member_id}_class").set_value("normal")
    app.button[0].click().run()
    assert not app.exception
    with page_store.db.read() as session:
        row = session.scalar(readers_rating)
        assert (row.active_seconds, row.seconds) == (42.5, 42.5)
