"""Page logic through Streamlit's AppTest: each page against a real store in a temp data dir."""

from __future__ import annotations

import re

import pytest
import streamlit as st
from argon2 import PasswordHasher
from streamlit.testing.v1 import AppTest

from medreview.ingest import InputFile, ingest_files
from medreview.ingest.demo import load_demo_data
from medreview.jobs import execute_job, list_jobs
from medreview.ml.prediction import submit_predictions
from medreview.ml.runners import RUNNERS
from medreview.ml.training.service import submit_training
from medreview.reading.reads import LOCAL_ACTOR
from medreview.reading.schema import label_classes
from medreview.team import accounts
from medreview.team.accounts import create_user
from medreview.team.roles import Actor
from tests.conftest import ADMIN, run_page_as
from tests.helpers import ROOT, png_bytes
from tests.ml.views import save_model_version, two_frame_ct_bytes
from tests.pages.viewer import report, viewer_data

TIMEOUT = 60


def run_page(name: str, actor: Actor | None = ADMIN) -> AppTest:
    return run_page_as(name, actor)


PAGES = ("home", "upload", "label", "browse", "predictions", "review", "train", "team", "settings")


def test_every_page_renders_on_an_empty_store(page_store):
    for name in PAGES:
        run_page(name)


def test_every_page_refuses_a_visitor_who_is_not_logged_in(page_store):
    for name in PAGES:
        app = run_page(name, actor=None)
        assert app.info[0].value == "Please log in."
        assert not app.title or name == "home"


def test_roles_gate_pages(page_store):
    create_user(page_store, ADMIN, "ann", "annotator-password", "annotator")
    annotator = Actor("ann", "annotator")
    for name in ("train", "team", "settings", "review"):
        app = run_page(name, actor=annotator)
        assert "is for the" in app.error[0].value, name
    assert run_page("label", actor=annotator).title[0].value == "Label"


def test_first_visit_creates_the_admin_then_login_is_required(store, monkeypatch):
    monkeypatch.setattr(accounts, "_hasher", PasswordHasher(time_cost=1, memory_cost=8192, parallelism=1))
    st.cache_resource.clear()
    app = AppTest.from_file(str(ROOT / "app.py"), default_timeout=TIMEOUT)
    app.run()
    assert app.title[0].value == "Welcome to medreview"
    app.text_input(key="first_admin_username").set_value("chief")
    app.text_input(key="first_admin_password").set_value("a-long-password")
    app.text_input(key="first_admin_repeat").set_value("a-long-password")
    app.form_submit_button[0].click().run()
    assert not app.exception
    assert app.session_state["login"].actor == Actor("chief", "admin")
    app.switch_page("pages/team.py").run()
    assert app.title[0].value == "Team"
    # A fresh visitor now gets the login form, and a wrong password is refused in plain words.
    visitor = AppTest.from_file(str(ROOT / "app.py"), default_timeout=TIMEOUT)
    visitor.run()
    visitor.text_input(key="login_username").set_value("chief")
    visitor.text_input(key="login_password").set_value("wrong-password")
    visitor.form_submit_button[0].click().run()
    assert visitor.error[0].value == "wrong user name or password"
    assert "login" not in visitor.session_state
    visitor.text_input(key="login_password").set_value("a-long-password")
    visitor.form_submit_button[0].click().run()
    assert not visitor.exception
    assert visitor.session_state["login"].actor == Actor("chief", "admin")
    assert visitor.title[0].value == "medreview"  # the Home page
    st.cache_resource.clear()


def test_home_offers_demo_data_on_an_empty_store(page_store):
    app = run_page("home")
    app.button(key="load_demo").click().run()
    assert not app.exception
    assert [metric.value for metric in app.metric][:2] == ["40", "32"]


def test_upload_reports_every_file(page_store):
    app = run_page("upload")
    app.file_uploader(key="upload_files").set_value(
        [("good.png", png_bytes(1), "image/png"), ("bad.png", b"<html>not an image</html>", "image/png")]
    ).run()
    app.button(key="upload_store").click().run()
    assert not app.exception
    assert "1 stored, 0 duplicate, 1 rejected" in app.warning[0].value
    table = app.dataframe[0].value
    assert dict(zip(table["file"], table["status"], strict=True)) == {"good.png": "stored", "bad.png": "rejected"}
    assert table.loc[table["file"] == "bad.png", "reason"].iloc[0]


@pytest.mark.slow
def test_train_page_queues_a_run_and_shows_its_metrics(page_store):
    load_demo_data(page_store, LOCAL_ACTOR, per_class=6, unlabelled=2)
    app = run_page("train")
    app.number_input(key="train_epochs").set_value(1)
    app.number_input(key="train_size").set_value(32)
    app.form_submit_button[0].click().run()
    assert not app.exception
    assert "queued" in app.success[0].value
    [job] = list_jobs(page_store, kind="train")
    assert job.status == "queued"  # the page only queues; the worker trains
    execute_job(page_store, job.id, RUNNERS)
    app = run_page("train")
    assert any("succeeded" in header.value for header in app.subheader)
    assert "ROC AUC (95% interval)" in [metric.label for metric in app.metric]
    # 6 patients per class are too few for a held-out test part: the page says so in words.
    assert any(warning.value.startswith("No held\\-out test part") for warning in app.warning)
    assert "no held-out test part" in " ".join(caption.value for caption in app.caption)


@pytest.mark.slow
def test_train_page_shows_the_demo_model_with_its_interval_not_a_bare_auc(page_store):
    # The demo: "ROC AUC 1.000" on a handful of validation images, for a model that called
    # every image normal. Now: the held-out test part, its interval, a threshold chosen on validation.
    load_demo_data(page_store, LOCAL_ACTOR, per_class=16, unlabelled=0)
    execute_job(page_store, submit_training(page_store, LOCAL_ACTOR, {"epochs": 2, "input_size": 32}), RUNNERS)
    app = run_page("train")
    metrics = {metric.label: metric.value for metric in app.metric}
    auc = metrics["ROC AUC (95% interval)"]
    assert re.fullmatch(r"\d\.\d\d \(\d\.\d\d–\d\.\d\d\)", auc), auc
    low, high = (float(bound) for bound in auc[6:-1].split("–"))
    assert high - low >= 0.2  # six test images cannot pin an AUC down, and the figure shows it
    assert set(metrics) >= {"Accuracy", "Sensitivity", "Specificity", "ECE"}
    assert any(markdown.value.startswith("**Held-out test part**: 6 images") for markdown in app.markdown)
    assert any(warning.value.startswith("Only 6 test images") for warning in app.warning)
    assert any("Youden" in caption.value for caption in app.caption)
    captions = [caption for element in app.image for caption in element.captions]
    assert captions == ["ROC curve (test)", "Reliability diagram (test)"]
    [parts] = [table.value for table in app.dataframe if "part" in table.value.columns]
    assert list(parts["part"]) == ["validation", "test"] and list(parts["images"]) == [6, 6]


def test_train_page_still_shows_a_run_recorded_before_the_test_part(page_store):
    import numpy as np

    from medreview.jobs import submit_job
    from medreview.ml.training.metrics import classification_metrics
    from medreview.store.models import Job

    earlier = classification_metrics(np.array([0, 1, 1]), np.array([[0.6, 0.4], [0.3, 0.7], [0.8, 0.2]]), ["a", "b"])
    job_id = submit_job(page_store, "train", {})
    with page_store.db.write() as session:
        job = session.get(Job, job_id)
        job.status, job.result = (
            "succeeded",
            {
                "metrics": {
                    key: earlier[key]
                    for key in (
                        "roc_auc",
                        "accuracy",
                        "sensitivity",
                        "specificity",
                        "confusion_matrix",
                        "roc_curve",
                        "class_names",
                        "n",
                    )
                }
            },
        )
    app = run_page("train")
    assert any("before runs had a held-out test part" in warning.value for warning in app.warning)
    assert {metric.label: metric.value for metric in app.metric}["ROC AUC (validation, no interval)"] == "0.500"


def test_train_page_explains_missing_labels(page_store):
    app = run_page("train")
    app.form_submit_button[0].click().run()
    assert not app.exception
    assert "at least two classes" in app.error[0].value


def test_predictions_page_shows_the_map_of_the_frame_and_window_shown(page_store):
    # A two-frame CT and an untrained model: the page is about which view a map belongs to.
    ingest_files(page_store, LOCAL_ACTOR, [InputFile("ct.dcm", two_frame_ct_bytes())])
    save_model_version(page_store, ["normal", "pneumonia"], input_size=32)
    execute_job(page_store, submit_predictions(page_store, LOCAL_ACTOR, scope="all"), RUNNERS)

    def run_latest_explain_job() -> None:
        [job] = list_jobs(page_store, kind="explain", limit=1)
        assert execute_job(page_store, job.id, RUNNERS) == "succeeded"

    def map_captions(app: AppTest) -> list[str]:
        return [caption.value for caption in app.caption if " · O shows or hides it" in caption.value]

    def overlay_keys(app: AppTest) -> list[str]:
        return [row["key"] for row in viewer_data(app, "predict_viewer")["overlays"]]

    app = run_page("predictions")
    image_id = viewer_data(app, "predict_viewer")["position"]
    assert "Model: **" in app.markdown[0].value
    # Frame 1 at the window the viewer opens with: queued, said so, and no map of another view drawn.
    assert "Computing the Grad-CAM map for frame 1 of 2" in app.info[0].value
    assert map_captions(app) == [] and overlay_keys(app) == []
    run_latest_explain_job()
    app.run()
    assert not app.exception
    [class_picker] = [box for box in app.selectbox if (box.key or "").startswith("predict_cam_class_")]
    predicted = class_picker.value
    assert map_captions(app)[0].startswith(f"Grad-CAM for **{predicted}** · frame 1 of 2")
    assert overlay_keys(app) == [f"{image_id}:0"]  # drawn over frame 1 in the viewer
    assert any("high evidence for" in caption.value for caption in app.caption)

    # The reader moves to frame 2 and drags to the bone window in the viewer, and picks HiResCAM:
    # the map follows the view.
    app.radio(key="predict_map_method").set_value("hirescam")
    report(app, "predict_viewer", view={"imageId": image_id, "frame": 1, "window": {"center": 400, "width": 1800}})
    assert "Computing the HiResCAM map for frame 2 of 2 · window 400 / 1800" in app.info[0].value
    assert map_captions(app) == [] and overlay_keys(app) == []
    run_latest_explain_job()
    app.run()
    assert not app.exception
    assert map_captions(app)[0].startswith(f"HiResCAM for **{predicted}** · frame 2 of 2 · window 400 / 1800")
    assert overlay_keys(app) == [f"{image_id}:1"]


def test_settings_page_adds_a_class(page_store):
    app = run_page("settings")
    app.text_input(key="settings_new_class").set_value("Effusion")
    app.form_submit_button[0].click().run()
    assert not app.exception
    assert "effusion" in label_classes(page_store)


def test_pages_show_the_store_named_by_the_environment(page_store):
    # What a service wrote into the fixture's store is what the page shows: the page opens the store
    # of MEDREVIEW_DATA_DIR, not a default one, so the assertions of the other page tests mean something.
    load_demo_data(page_store, LOCAL_ACTOR, per_class=2, unlabelled=1)
    home = run_page("home")
    assert [metric.value for metric in home.metric][:2] == ["5", "4"]
    assert not [button for button in home.button if button.key == "load_demo"]
