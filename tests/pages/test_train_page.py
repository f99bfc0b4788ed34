"""The Train page's evaluation sets (AppTest): freezing a set, the versions side by side on it with
their intervals and overlaid ROC curves, the default set, and a version waiting with its reason."""

from __future__ import annotations

import re

import numpy as np
import pandas as pd
import pytest

from medreview.ingest.demo import load_demo_data
from medreview.jobs import list_jobs, submit_job
from medreview.ml.evaluation import EVALUATION_JOB, save_evaluation, score_on_set
from medreview.ml.prediction import PREDICTION_JOB
from medreview.ml.registry import activate_model, active_model
from medreview.ml.training.dataset import training_table
from medreview.ml.training.service import TRAINING_JOB
from medreview.reading.evaluation_sets import create_evaluation_set, evaluation_set_images, list_evaluation_sets
from medreview.reading.reads import LOCAL_ACTOR, current_labels
from medreview.store.models import Job, ModelVersion
from tests.conftest import run_page_as
from tests.helpers import add_model_version

CLASSES = ["normal", "pneumonia"]


def shown(element) -> str:  # type: ignore[no-untyped-def]
    """An element's text as the reader sees it (ui.text.plain escapes markdown characters)."""
    return re.sub(r"\\(.)", r"\1", element.value)


def freeze_button(app):  # type: ignore[no-untyped-def]
    return next(button for button in app.button if button.label == "Freeze the set")


def figures(seed: int, separation: float, labels: list[str]) -> dict:
    """A version's stored figures on a set: probabilities that separate the classes by ``separation``."""
    rng = np.random.default_rng(seed)
    truth = np.array([label == "pneumonia" for label in labels])
    positive = np.clip(0.5 + separation * (truth - 0.5) + rng.normal(0, 0.2, len(labels)), 0, 1)
    return score_on_set(labels, np.stack([1 - positive, positive], axis=1), CLASSES, bootstrap_resamples=50)


@pytest.fixture
def demo(page_store):  # type: ignore[no-untyped-def]
    load_demo_data(page_store, LOCAL_ACTOR, per_class=6, unlabelled=0)  # each image its own patient
    return page_store


def test_an_admin_freezes_a_set_of_drawn_patients_and_training_leaves_them_out(demo):
    app = run_page_as("train")
    assert app.expander[0].label == "Freeze a new evaluation set"
    app.text_input(key="train_eval_name").set_value("held out")
    app.number_input(key="train_eval_share").set_value(0.5)
    freeze_button(app).click().run()
    assert not app.exception
    assert shown(app.success[0]).startswith("Evaluation set 'held out' frozen: 6 images of 6 patients.")
    [made] = list_evaluation_sets(demo)
    assert made.class_counts == {"normal": 3, "pneumonia": 3} and made.is_default
    trained_on = set(training_table(demo)[0]["image_id"])
    assert len(trained_on) == 6 and not trained_on & set(evaluation_set_images(demo, made.id)["image_id"])
    [sets] = [table.value for table in app.dataframe if "set" in table.value.columns]
    assert list(sets["set"]) == ["held out"] and list(sets["classes"]) == ["3 normal, 3 pneumonia"]
    assert list_jobs(demo, kind=EVALUATION_JOB) == []  # no model version to score yet


def test_an_admin_freezes_the_images_chosen(demo):
    app = run_page_as("train")
    labelled = current_labels(demo)
    chosen = [int(image_id) for image_id in labelled["image_id"][:2]]
    app.text_input(key="train_eval_name").set_value("chosen")
    app.multiselect(key="train_eval_images").set_value(chosen)
    freeze_button(app).click().run()
    assert not app.exception
    [made] = list_evaluation_sets(demo)
    assert sorted(evaluation_set_images(demo, made.id)["image_id"]) == sorted(chosen)


def test_a_taken_name_is_refused_in_words(demo):
    create_evaluation_set(demo, LOCAL_ACTOR, "held out", [int(current_labels(demo)["image_id"][0])])
    app = run_page_as("train")
    app.text_input(key="train_eval_name").set_value("held out")
    freeze_button(app).click().run()
    assert not app.exception
    assert "named 'held out' already" in shown(app.error[0])
    assert len(list_evaluation_sets(demo)) == 1


def test_versions_are_compared_side_by_side_and_a_waiting_version_shows_why(demo):
    labelled = current_labels(demo)
    image_ids = [int(image_id) for image_id in labelled["image_id"][:8]]
    labels = list(labelled["label"][:8])
    held_out = create_evaluation_set(demo, LOCAL_ACTOR, "held out", image_ids)
    other = create_evaluation_set(demo, LOCAL_ACTOR, "other", image_ids[:4])
    active_id = add_model_version(demo, active=True)
    waiting_id = add_model_version(demo)
    unscored_id = add_model_version(demo)
    # The active version's heat maps were also scored against reader boxes (medreview.ml.localization).
    where = {"pointing_game": 0.75, "mass_in_boxes": 0.4, "n": 4, "images_with_boxes": 4, "cap": 200}
    save_evaluation(demo, active_id, held_out.id, {**figures(0, 0.6, labels), "localization": where})
    save_evaluation(demo, waiting_id, held_out.id, figures(1, 0.2, labels))
    reason = "not made active: ROC AUC 0.600 on the evaluation set 'held out' against 0.900 for version 1"
    with demo.db.write() as session:
        session.get(ModelVersion, waiting_id).activation_reason = reason

    app = run_page_as("train")
    [versions] = [table.value for table in app.dataframe if "activation" in table.value.columns]
    assert versions.set_index("version").loc[waiting_id, "activation"] == reason
    [compared] = [table.value for table in app.dataframe if "note" in table.value.columns]
    compared = compared.set_index("version")
    assert list(compared.index) == [unscored_id, waiting_id, active_id]
    for version_id in (active_id, waiting_id):
        assert compared.loc[version_id, "ROC AUC (95% interval)"].count("–") == 1  # AUC with its interval
    assert compared.loc[unscored_id, "note"] == "not evaluated on this set yet"
    shown_where = compared.loc[active_id, ["pointing game", "mass in boxes", "images with boxes"]].tolist()
    assert shown_where == [0.75, 0.4, 4] and pd.isna(compared.loc[waiting_id, "pointing game"])
    captions = [caption for element in app.image for caption in element.captions]
    assert captions == ["ROC curves of 2 model versions on the same 8 images"]

    # The missing version is scored on demand; the other set can become the default one.
    next(button for button in app.button if button.key == "train_eval_run").click().run()
    assert not app.exception
    [job] = list_jobs(demo, kind=EVALUATION_JOB)
    assert job.params == {"evaluation_set_id": held_out.id, "model_version_ids": [unscored_id]}
    app.selectbox(key="train_eval_set").set_value("other").run()
    app.button(key="train_eval_default").click().run()
    assert not app.exception
    assert [evaluation_set.id for evaluation_set in list_evaluation_sets(demo) if evaluation_set.is_default] == [
        other.id
    ]


def version_selector(app):  # type: ignore[no-untyped-def]
    [selector] = [box for box in app.selectbox if box.key.startswith("train_active")]
    return selector


def test_the_version_selector_follows_the_active_version_and_names_what_it_would_do(page_store):
    first = add_model_version(page_store, active=True)
    app = run_page_as("train")
    assert version_selector(app).value == first
    # A live run ends and its version becomes active by itself (ml.evaluation), while the page is open.
    second = add_model_version(page_store)
    activate_model(page_store, LOCAL_ACTOR, second)
    app.run()
    assert not app.exception
    selector = version_selector(app)
    assert selector.value == second
    assert selector.format_func(second) == f"version {second} (active)"
    assert app.button(key="train_activate").disabled  # the version chosen is already the active one
    # Going back to version 1 is an explicit choice, and the button says so.
    selector.set_value(first).run()
    assert app.button(key="train_activate").label == f"Make version {first} active"
    app.button(key="train_activate").click().run()
    assert not app.exception
    assert active_model(page_store).id == first


def test_runs_are_numbered_one_two_three_whatever_other_jobs_ran_between(page_store):
    first_run = submit_job(page_store, TRAINING_JOB, {})
    submit_job(page_store, PREDICTION_JOB, {})  # a prediction job takes the job id between the runs
    second_run = submit_job(page_store, TRAINING_JOB, {})
    assert second_run == first_run + 2
    with page_store.db.write() as session:
        session.get(Job, first_run).status = "succeeded"
        version = ModelVersion(
            job_id=second_run,
            path="models/x.keras",
            sha256="0" * 64,
            architecture="small_cnn",
            input_size=32,
            class_names=CLASSES,
            is_active=True,
        )
        session.add(version)
    app = run_page_as("train")
    assert app.subheader[0].value == "Run 2: queued"
    [versions] = [table.value for table in app.dataframe if "activation" in table.value.columns]
    assert list(versions["run"]) == [2]
    [runs] = [table.value for table in app.dataframe if "epochs" in table.value.columns]
    assert list(runs["run"]) == [2, 1]


def test_the_class_counts_leave_out_the_evaluation_sets(demo):
    labelled = current_labels(demo)
    normal = [int(i) for i in labelled[labelled["label"] == "normal"]["image_id"][:2]]
    create_evaluation_set(demo, LOCAL_ACTOR, "held out", normal)
    app = run_page_as("train")
    counts = [shown(markdown) for markdown in app.markdown if "per class" in markdown.value]
    assert counts == [
        "Labelled images per class that training uses: **normal** 4, **pneumonia** 6 (2 more are in "
        "evaluation sets, which training never uses)"
    ]


def test_one_version_on_a_set_is_one_roc_curve(demo):
    labelled = current_labels(demo)
    held_out = create_evaluation_set(demo, LOCAL_ACTOR, "held out", [int(i) for i in labelled["image_id"][:8]])
    version_id = add_model_version(demo, active=True)
    save_evaluation(demo, version_id, held_out.id, figures(0, 0.6, list(labelled["label"][:8])))
    app = run_page_as("train")
    captions = [caption for element in app.image for caption in element.captions]
    assert captions == ["ROC curve of 1 model version on the same 8 images"]


def test_a_study_scoped_project_is_told_a_run_trains_a_study_level_case_model(page_store):
    from tests.ml.case_store import case_store

    case_store(page_store, studies=8, slices=4)  # 4 studies per class (at least 3 to train)
    app = run_page_as("train")
    text = " ".join(shown(element).replace("**", "") for element in [*app.markdown, *app.caption])
    assert "Labelled study cases per class that a case model trains on: clear 4, lesion 4" in text
    assert "A run now trains a study-level case model." in text
    # No "label some images first" while its studies can train a case model.
    assert not [info for info in app.info if "No labelled images" in info.value]
    app.radio(key="train_level").set_value("study")
    app.get("form_submit_button")[0].click().run()
    assert not app.exception, app.exception
    [job] = list_jobs(page_store, kind=TRAINING_JOB)
    # The form offers the case model's slice encoders, the measured one first, not the image architectures.
    assert job.params["scope"] == "study" and job.params["architecture"] == "small_cnn"
    assert app.selectbox(key="train_encoder").options == ["small cnn", "bn cnn"]
    # Image level, which this project has no labels for, says so instead of queueing a run.
    app.radio(key="train_level").set_value("image").run()
    text = " ".join(shown(c) for c in app.caption)
    assert "Nothing to train at that level yet: need labelled images of at least two classes" in text
