"""The reader study in the pages (AppTest): what the Label page sends the viewer in each arm (the
image; the model's map and probability in the aided arm only; never the truth or other readers),
and the Studies page's results for a reviewer."""

from __future__ import annotations

import json

import numpy as np
from sqlalchemy import update

from medreview.reading.studies import StudyCase, next_case, rate_case
from medreview.store.models import Prediction, User
from medreview.team.roles import Actor
from tests.conftest import run_page_as
from tests.pages.viewer import viewer_data
from tests.reading.test_studies import READERS, START, build_project, make_study, read_all, truthful

READER = Actor("reader1", "annotator")


def with_maps(project: dict) -> None:
    """A stored (C, h, w) map per prediction, as a prediction job leaves it."""
    store = project["store"]
    for image_id in project["images"]:
        relative = f"heatmaps/test-{image_id}.npy"
        path = store.data_path(relative)
        path.parent.mkdir(parents=True, exist_ok=True)
        np.save(path, np.stack([np.zeros((4, 4)), np.eye(4)]).astype(np.float32))  # normal, pneumonia
        with store.db.write() as session:
            session.execute(update(Prediction).where(Prediction.image_id == image_id).values(heatmap_path=relative))


def test_the_label_page_sends_the_image_alone_unaided_and_the_model_aided(page_store):
    project = build_project(page_store)
    with_maps(project)
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


def test_the_studies_page_shows_the_results_to_a_reviewer_only(page_store):
    project = build_project(page_store)
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
