"""The training job's evaluation on a real store: held-out test part, threshold, temperature, notes.

Tiny models on the generated demo data (each image its own patient), run in this process."""

from __future__ import annotations

import pytest

from medreview.ingest.demo import load_demo_data
from medreview.jobs import execute_job, get_job, submit_job
from medreview.ml.registry import active_model
from medreview.ml.runners import RUNNERS
from medreview.ml.training.metrics import SUMMARY_KEYS, WIDE_INTERVAL
from medreview.ml.training.service import TRAINING_JOB
from medreview.ml.training.split import MIN_TEST_PATIENTS_PER_CLASS
from medreview.reading.reads import LOCAL_ACTOR

TINY = {"epochs": 2, "input_size": 32, "batch_size": 16}


def _train(store, **params):  # type: ignore[no-untyped-def]
    # submit_job, not submit_training: the job's own checks are under test, not the form's.
    job_id = submit_job(store, TRAINING_JOB, {**TINY, **params})
    assert execute_job(store, job_id, RUNNERS) == "succeeded", get_job(store, job_id).error
    return get_job(store, job_id)


@pytest.mark.slow
def test_demo_data_are_scored_on_a_held_out_test_part_with_a_wide_interval(store):
    load_demo_data(store, LOCAL_ACTOR, per_class=16, unlabelled=0)
    job = _train(store)
    metrics = job.result["metrics"]
    snapshot = job.result["dataset"]
    # 16 patients per class: 3 validate, 3 test, 10 train, each image its own patient.
    assert metrics["split"]["test"]["images_per_class"] == {"normal": 3, "pneumonia": 3}
    assert len(snapshot["test_image_ids"]) == 6 and len(snapshot["validation_image_ids"]) == 6
    parts = [set(snapshot[key]) for key in ("train_image_ids", "validation_image_ids", "test_image_ids")]
    assert not (parts[0] & parts[1]) and not (parts[0] & parts[2]) and not (parts[1] & parts[2])
    test = metrics["test"]
    assert test["n"] == 6 and sum(map(sum, test["confusion_matrix"])) == 6
    assert set(SUMMARY_KEYS) <= set(test) and set(SUMMARY_KEYS) <= set(metrics["validation"])
    # Six images cannot pin an AUC down, whatever it is: the interval says so, and so do the notes.
    low, high = test["roc_auc_ci"]
    assert low <= test["roc_auc"] <= high and high - low >= WIDE_INTERVAL
    assert metrics["headline"] == "test"
    assert any(note.startswith("Only 6 test images (3 normal, 3 pneumonia)") for note in metrics["notes"])
    # One threshold and one temperature, chosen on validation, used on both parts and stored with the model.
    assert test["threshold"] == metrics["validation"]["threshold"] == metrics["threshold"]
    assert 0.0 < metrics["threshold"] < 1.0 and metrics["temperature"] > 0
    assert metrics["threshold_rule"] == "youden"
    assert active_model(store).metrics == metrics


@pytest.mark.slow
def test_too_few_patients_for_a_test_part_is_said_plainly(store):
    load_demo_data(store, LOCAL_ACTOR, per_class=MIN_TEST_PATIENTS_PER_CLASS - 1, unlabelled=0)
    metrics = _train(store, epochs=1).result["metrics"]
    assert metrics["test"] is None and metrics["split"]["test"] is None
    assert metrics["headline"] == "validation"
    assert metrics["notes"][0].startswith(f"No held-out test part: it needs at least {MIN_TEST_PATIENTS_PER_CLASS}")
    assert f"'normal' has {MIN_TEST_PATIENTS_PER_CLASS - 1}" in metrics["notes"][0]


@pytest.mark.slow
def test_a_target_sensitivity_sets_the_threshold_on_validation(store):
    load_demo_data(store, LOCAL_ACTOR, per_class=12, unlabelled=0)
    metrics = _train(store, epochs=1, target_sensitivity=1.0).result["metrics"]
    assert metrics["threshold_rule"] == "target sensitivity" and metrics["target_sensitivity"] == 1.0
    assert metrics["validation"]["sensitivity"] == 1.0


@pytest.mark.slow
def test_a_target_sensitivity_out_of_range_fails_in_plain_words(store):
    load_demo_data(store, LOCAL_ACTOR, per_class=4, unlabelled=0)
    job_id = submit_job(store, TRAINING_JOB, {**TINY, "target_sensitivity": 1.5})
    assert execute_job(store, job_id, RUNNERS) == "failed"
    assert get_job(store, job_id).error.startswith("The target sensitivity must be above 0 and at most 1")


@pytest.mark.slow
def test_a_run_never_trains_on_the_evaluation_set_and_is_activated_only_if_not_worse_there(store):
    from medreview.ml.evaluation import (
        NOT_WORSE_TOLERANCE,
        evaluation_of,
        freeze_evaluation_set,
        sample_evaluation_images,
    )
    from medreview.reading.evaluation_sets import evaluation_set_images
    from medreview.store.models import ModelVersion

    load_demo_data(store, LOCAL_ACTOR, per_class=10, unlabelled=0)
    held_out, _ = freeze_evaluation_set(store, LOCAL_ACTOR, "held out", sample_evaluation_images(store, 0.3, seed=1))
    first = _train(store, epochs=1).result
    trained_on = {key: set(first["dataset"][key]) for key in ("train_image_ids", "validation_image_ids")}
    set_images = set(evaluation_set_images(store, held_out.id)["image_id"])
    assert len(set_images) == 6 and all(not ids & set_images for ids in trained_on.values())
    assert first["activated"] and first["activation_reason"].startswith("made active: the first model")
    assert set(first["evaluations"]["held out"]) == set(SUMMARY_KEYS)
    assert first["evaluations"]["held out"]["n"] == 6

    second = _train(store, epochs=2, seed=3).result
    new, old = (evaluation_of(store, result["model_version_id"], held_out.id) for result in (second, first))
    assert new["n"] == old["n"] == 6
    not_worse = new["roc_auc"] >= old["roc_auc"] - NOT_WORSE_TOLERANCE
    assert second["activated"] is not_worse
    assert active_model(store).id == (second if not_worse else first)["model_version_id"]
    assert f"on the evaluation set 'held out' against {old['roc_auc']:.3f} for version" in second["activation_reason"]
    with store.db.read() as session:
        assert session.get(ModelVersion, second["model_version_id"]).activation_reason == second["activation_reason"]


@pytest.mark.slow
def test_a_study_scoped_project_trains_a_case_model_split_by_patient(store):
    from medreview.ml.training.case_job import case_scope
    from medreview.reading.cases import case_images
    from medreview.reading.evaluation_sets import create_evaluation_set
    from tests.ml.case_store import CLASSES as CASES
    from tests.ml.case_store import case_store

    cases = case_store(store, studies=28, slices=8)
    # An evaluation set of four studies (two per class): training never sees them, the version is scored on them.
    held = [next(i for i, label in enumerate(cases.labels) if label == name) for name in ("clear", "lesion")]
    held += [next(i for i, label in enumerate(cases.labels) if label == name and i not in held) for name in CASES]
    held_studies = {cases.study_ids[i] for i in held}
    key_images = [case_images(store, "study", study_id)[3] for study_id in held_studies]  # any slice names its study
    create_evaluation_set(store, LOCAL_ACTOR, "held-out studies", key_images, scope="study")
    job = _train(store, epochs=2, input_size=32, batch_size=4)
    result = job.result
    # The run says which model it trained: a study-level case model, not the image model.
    assert result["scope"] == "study" and result["trained"].startswith("a study-level case model")
    assert result["config"]["encoder"] == "small_cnn"  # the case default, not the image default (bn_cnn)
    metrics = result["metrics"]
    assert metrics["scope"] == "study" and metrics["case_model"]["architecture"] == "attention_mil"
    # 12 patients per class: a held-out test part of cases, by patient (one study each here).
    test = metrics["split"]["test"]
    assert test is not None and test["cases"] == test["patients"] > 0
    assert sum(test["cases_per_class"].values()) == test["cases"]
    parts = [set(result["dataset"][key]) for key in ("train_case_ids", "validation_case_ids", "test_case_ids")]
    assert set().union(*parts) == set(cases.study_ids) - held_studies and sum(map(len, parts)) == 24
    # Scored on the set's four studies, one item each.
    assert result["evaluations"]["held-out studies"]["n"] == 4
    assert metrics["test"]["n"] == len(parts[2]) and 0 < metrics["threshold"] < 1 and metrics["temperature"] > 0
    version = active_model(store)  # the store's first model
    assert version.id == result["model_version_id"] and case_scope(version) == "study"
    assert version.domain is not None and version.input_size == 32
