"""Page logic through Streamlit's AppTest: each page against a real store in a temp data dir."""

from __future__ import annotations

import pytest
import streamlit as st
from streamlit.testing.v1 import AppTest

from medreview.annotation import current_labels, label_classes
from medreview.demo import load_demo_data
from medreview.jobs import execute_job, list_jobs
from medreview.prediction import submit_predictions
from medreview.store import Store
from medreview.training.service import submit_training
from tests.helpers import png_bytes

TIMEOUT = 60


@pytest.fixture
def page_store(store):
    st.cache_resource.clear()  # the pages' cached Store must be this test's store
    yield store
    st.cache_resource.clear()


def run_page(name: str) -> AppTest:
    app = AppTest.from_file(f"../pages/{name}.py", default_timeout=TIMEOUT)
    app.run()
    assert not app.exception, app.exception
    return app


def test_every_page_renders_on_an_empty_store(page_store):
    for name in ("home", "upload", "label", "train", "predictions", "settings"):
        run_page(name)


def test_app_navigation_lists_every_page(page_store):
    app = AppTest.from_file("../app.py", default_timeout=TIMEOUT)
    app.run()
    assert not app.exception
    app.switch_page("pages/settings.py").run()
    assert app.title[0].value == "Settings"


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


def test_label_button_saves_and_moves_to_next_unlabelled(page_store):
    load_demo_data(page_store, per_class=3, unlabelled=3)
    app = run_page("label")
    first = app.session_state["label_image_id"]
    assert first not in set(current_labels(page_store)["image_id"])
    app.button(key="label_button_pneumonia").click().run()
    assert not app.exception
    labels = current_labels(page_store).set_index("image_id")["label"]
    assert labels[first] == "pneumonia"
    assert app.session_state["label_image_id"] != first
    assert app.session_state["label_image_id"] not in labels.index


def test_train_page_queues_a_run_and_shows_its_metrics(page_store):
    load_demo_data(page_store, per_class=6, unlabelled=2)
    app = run_page("train")
    app.number_input(key="train_epochs").set_value(1)
    app.number_input(key="train_size").set_value(32)
    app.form_submit_button[0].click().run()
    assert not app.exception
    assert "queued" in app.success[0].value
    [job] = list_jobs(page_store, kind="train")
    assert job.status == "queued"  # the page only queues; the worker trains
    execute_job(page_store, job.id)
    app = run_page("train")
    assert any("succeeded" in header.value for header in app.subheader)
    assert "ROC AUC" in [metric.label for metric in app.metric]


def test_train_page_explains_missing_labels(page_store):
    app = run_page("train")
    app.form_submit_button[0].click().run()
    assert not app.exception
    assert "at least two classes" in app.error[0].value


def test_predictions_page_shows_image_beside_gradcam(page_store):
    load_demo_data(page_store, per_class=6, unlabelled=2)
    execute_job(page_store, submit_training(page_store, {"epochs": 1, "input_size": 32}))
    execute_job(page_store, submit_predictions(page_store, scope="all"))
    app = run_page("predictions")
    captions = [caption for element in app.image for caption in element.captions]
    assert "Image" in captions and any(caption.startswith("Grad-CAM") for caption in captions)
    assert "Model: **" in app.markdown[0].value


def test_settings_page_adds_a_class(page_store):
    app = run_page("settings")
    app.text_input(key="settings_new_class").set_value("Effusion")
    app.form_submit_button[0].click().run()
    assert not app.exception
    assert "effusion" in label_classes(page_store)


def test_pages_use_the_store_from_the_environment(page_store, tmp_path):
    # Sanity: the page's store is the fixture's (same data dir), so assertions above are meaningful.
    assert Store.open().settings.data_dir == page_store.settings.data_dir
