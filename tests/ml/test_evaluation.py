"""Model versions on frozen evaluation sets: the figures, the side-by-side comparison, and the rule
that makes a new version active only if it is not worse than the active one (no training here:
figures are stored as an evaluation would store them; one test scores a real, untrained model)."""

from __future__ import annotations

import json

import numpy as np
import pytest

from medreview.errors import MedreviewError, NotFoundError, PermissionDeniedError
from medreview.ingest import InputFile, ingest_files
from medreview.jobs import execute_job, get_job, list_jobs
from medreview.ml.evaluation import (
    EVALUATION_JOB,
    NOT_WORSE_TOLERANCE,
    activation_decision,
    comparison_table,
    evaluation_of,
    freeze_evaluation_set,
    sample_evaluation_images,
    save_evaluation,
    score_on_set,
    settle_activation,
    submit_evaluation,
)
from medreview.ml.registry import activate_model, active_model
from medreview.ml.training.metrics import SUMMARY_KEYS, roc_curves_png
from medreview.reading.evaluation_sets import create_evaluation_set, evaluation_set_images
from medreview.reading.reads import LOCAL_ACTOR, save_read
from medreview.store import Store
from medreview.store.models import ModelVersion
from medreview.team.audit import query
from medreview.team.roles import Actor
from tests.helpers import add_model_version, dicom_bytes

CLASSES = ["normal", "pneumonia"]
REVIEWER = Actor("rev", "reviewer")


def block(auc: float | None, accuracy: float = 0.8, n: int = 40) -> dict:
    """Figures as score_on_set stores them, reduced to what the comparison reads."""
    return {"roc_auc": auc, "roc_auc_ci": None if auc is None else [auc - 0.1, min(auc + 0.1, 1.0)],
            "accuracy": accuracy, "sensitivity": 0.8, "specificity": 0.8, "threshold": 0.5, "ece": 0.05,
            "n": n, "unscored": {}, "outside_training_data": 0}  # fmt: skip


def activation_reason(store: Store, version_id: int) -> str | None:
    with store.db.read() as session:
        return session.get(ModelVersion, version_id).activation_reason


def never_evaluate(version_id: int, set_id: int) -> dict:
    raise AssertionError(f"version {version_id} was scored again on set {set_id}; its figures were stored")


@pytest.fixture
def project(store: Store):  # type: ignore[no-untyped-def]
    """Four patients of each class (N0-N3 normal, P0-P3 pneumonia) with two labelled DX images each."""
    patients = [f"{prefix}{number}" for prefix in "NP" for number in range(4)]
    files = [
        InputFile(f"{patient}-{n}.dcm", dicom_bytes(patient_id=patient, modality="DX", instance_number=n + 1))
        for patient in patients
        for n in range(2)
    ]
    results = ingest_files(store, LOCAL_ACTOR, files)
    images: dict[str, list[int]] = {patient: [] for patient in patients}
    for input_file, result in zip(files, results, strict=True):
        patient = input_file.name.split("-")[0]
        save_read(store, LOCAL_ACTOR, result.image_id, "normal" if patient.startswith("N") else "pneumonia")
        images[patient].append(result.image_id)
    return store, images


# --- figures -------------------------------------------------------------------------------------


def test_a_version_is_scored_on_a_set_as_its_test_part_with_an_interval():
    rng = np.random.default_rng(0)
    labels = ["normal"] * 20 + ["pneumonia"] * 20
    positive = np.concatenate([rng.uniform(0.0, 0.6, 20), rng.uniform(0.4, 1.0, 20)])
    probabilities = np.stack([1 - positive, positive], axis=1)
    figures = score_on_set(labels, probabilities, CLASSES, calibration=1.0, threshold=0.5)
    assert set(SUMMARY_KEYS) <= set(figures) and figures["n"] == 40
    low, high = figures["roc_auc_ci"]
    assert low <= figures["roc_auc"] <= high and figures["threshold"] == 0.5
    assert figures["roc_curve"] and figures["unscored"] == {}


def test_labels_the_model_does_not_know_are_left_out_and_counted():
    labels = ["normal", "pneumonia", "covid", "covid"]
    probabilities = np.array([[0.9, 0.1], [0.2, 0.8], [0.5, 0.5], [0.4, 0.6]])
    figures = score_on_set(labels, probabilities, CLASSES, bootstrap_resamples=10)
    assert figures["n"] == 2 and figures["unscored"] == {"label 'covid' is not a class of this model": 2}
    nothing = score_on_set(["covid"], np.array([[0.5, 0.5]]), CLASSES)
    assert nothing["error"] == "none of the set's labels is a class of this model"


def test_an_untrained_model_is_scored_on_a_set_by_the_evaluation_job(project):
    from tests.ml.views import save_model_version

    store, images = project
    version_id = save_model_version(store, CLASSES, input_size=32)
    made, job_id = freeze_evaluation_set(store, LOCAL_ACTOR, "held out", images["N0"] + images["P0"] + images["P1"])
    assert job_id is not None and get_job(store, job_id).kind == EVALUATION_JOB
    assert execute_job(store, job_id, _runners()) == "succeeded", get_job(store, job_id).error
    figures = evaluation_of(store, version_id, made.id)
    assert figures["n"] == 6 and figures["set_images"] == 6 and set(SUMMARY_KEYS) <= set(figures)
    assert figures["outside_training_data"] == 0  # no domain recorded: nothing is flagged
    headline = get_job(store, job_id).result["model_versions"][str(version_id)]
    assert set(headline) == set(SUMMARY_KEYS)


def _runners():  # type: ignore[no-untyped-def]
    from medreview.ml.runners import RUNNERS

    return RUNNERS


# --- the rule ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "new_auc, active_auc, made_active",
    [(0.85, 0.80, True), (0.80, 0.80, True), (0.79, 0.80, True), (0.77, 0.80, False)],
)
def test_not_worse_means_an_auc_at_most_the_tolerance_below_the_active_one(new_auc, active_auc, made_active):
    assert NOT_WORSE_TOLERANCE == 0.02
    decision, reason = activation_decision(block(new_auc), block(active_auc), CLASSES, CLASSES, "held out", 3)
    assert decision is made_active
    figures = f"ROC AUC {new_auc:.3f} on the evaluation set 'held out' against {active_auc:.3f} for version 3"
    assert figures in reason
    assert reason.startswith("made active" if made_active else "not made active")


def test_a_set_without_an_auc_compares_accuracy():
    decision, reason = activation_decision(
        block(None, accuracy=0.70), block(None, accuracy=0.75), CLASSES, CLASSES, "one class", 3
    )
    assert not decision
    assert "accuracy (the set gives no ROC AUC) 0.700" in reason and "0.050 lower" in reason


def test_versions_with_other_classes_or_without_figures_are_not_compared():
    other, reason = activation_decision(block(0.99), block(0.5), [*CLASSES, "covid"], CLASSES, "held out", 3)
    assert not other and "its classes (normal, pneumonia, covid) differ" in reason
    failed, reason = activation_decision({"error": "the file is missing"}, block(0.5), CLASSES, CLASSES, "s", 3)
    assert not failed and "could not be evaluated (the file is missing)" in reason
    unknown, reason = activation_decision(block(0.9), None, CLASSES, CLASSES, "s", 3)
    assert not unknown and "the active version 3 was not evaluated" in reason


# --- activation after a training run -------------------------------------------------------------


def test_the_first_model_is_made_active_as_before(store):
    version_id = add_model_version(store)
    assert settle_activation(store, version_id, never_evaluate) == (
        True,
        "made active: the first model (no version was active)",
    )
    assert active_model(store).id == version_id
    [event] = query(store, LOCAL_ACTOR, action="model.promote").to_dict(orient="records")
    assert event["actor"] == "system" and json.loads(event["details"]) == {"old": None, "reason": "first model"}


def test_without_an_evaluation_set_a_new_version_waits_for_an_admin(store):
    active_id = add_model_version(store, active=True)
    new_id = add_model_version(store)
    made_active, reason = settle_activation(store, new_id, never_evaluate)
    assert not made_active and active_model(store).id == active_id
    assert reason.startswith(
        f"not made active: there is no evaluation set to compare it with the active version {active_id}"
    )
    assert activation_reason(store, new_id) == reason


def test_a_version_not_worse_on_the_default_set_becomes_active_and_the_trail_says_why(project):
    store, images = project
    held_out = create_evaluation_set(store, LOCAL_ACTOR, "held out", images["N0"] + images["P0"])
    active_id, new_id = add_model_version(store, active=True), add_model_version(store)
    save_evaluation(store, active_id, held_out.id, block(0.80))
    save_evaluation(store, new_id, held_out.id, block(0.79))
    made_active, reason = settle_activation(store, new_id, never_evaluate)
    assert made_active and active_model(store).id == new_id
    assert reason == (
        f"made active: ROC AUC 0.790 on the evaluation set 'held out' against 0.800 for version {active_id}, "
        "not worse by more than 0.02"
    )
    [event] = query(store, LOCAL_ACTOR, action="model.promote").to_dict(orient="records")
    assert event["actor"] == "system" and json.loads(event["details"]) == {"old": active_id, "reason": reason}


def test_a_worse_version_waits_with_the_reason_and_an_admin_can_still_promote_it(project):
    store, images = project
    held_out = create_evaluation_set(store, LOCAL_ACTOR, "held out", images["N0"] + images["P0"])
    active_id, new_id = add_model_version(store, active=True), add_model_version(store)
    save_evaluation(store, active_id, held_out.id, block(0.90))
    # The new version was not scored yet: the decision scores it (the training job passes the model).
    scored = []

    def evaluate(version_id: int, set_id: int) -> dict:
        scored.append((version_id, set_id))
        return block(0.70)

    made_active, reason = settle_activation(store, new_id, evaluate)
    assert scored == [(new_id, held_out.id)]
    assert not made_active and active_model(store).id == active_id
    assert reason == (
        f"not made active: ROC AUC 0.700 on the evaluation set 'held out' against 0.900 for version {active_id}, "
        "0.200 lower (more than the 0.02 allowed); promote it by hand if you prefer it"
    )
    assert activation_reason(store, new_id) == reason
    activate_model(store, LOCAL_ACTOR, new_id)
    [event] = query(store, LOCAL_ACTOR, action="model.promote").to_dict(orient="records")
    assert event["actor"] == "local" and json.loads(event["details"]) == {"old": active_id, "overrides": reason}


def test_the_default_set_decides_not_another(project):
    store, images = project
    default = create_evaluation_set(store, LOCAL_ACTOR, "default", images["N0"] + images["P0"])
    other = create_evaluation_set(store, LOCAL_ACTOR, "other", images["N1"] + images["P1"])
    active_id, new_id = add_model_version(store, active=True), add_model_version(store)
    save_evaluation(store, active_id, default.id, block(0.80))
    save_evaluation(store, new_id, default.id, block(0.60))
    save_evaluation(store, active_id, other.id, block(0.50))
    save_evaluation(store, new_id, other.id, block(0.99))
    assert not settle_activation(store, new_id, never_evaluate)[0]


# --- comparison, requests, sets ------------------------------------------------------------------


def test_versions_are_compared_side_by_side_with_their_intervals(project):
    store, images = project
    held_out = create_evaluation_set(store, LOCAL_ACTOR, "held out", images["N0"] + images["P0"])
    first, second, third = (add_model_version(store, active=n == 0) for n in range(3))
    save_evaluation(store, first, held_out.id, block(0.80))
    save_evaluation(store, second, held_out.id, {"error": "the file of model version 2 is missing"})
    table = comparison_table(store, held_out.id).set_index("version")
    assert list(table.index) == [third, second, first]  # newest first
    assert table.loc[first, "roc_auc"] == 0.80 and table.loc[first, "roc_auc_ci"] == pytest.approx([0.7, 0.9])
    assert table.loc[first, "active"] and table.loc[first, "images"] == 40
    assert table.loc[second, "note"] == "could not be evaluated: the file of model version 2 is missing"
    assert table.loc[third, "note"] == "not evaluated on this set yet"


def test_roc_curves_of_several_versions_are_drawn_on_one_plot():
    rng = np.random.default_rng(1)
    labels = ["normal"] * 15 + ["pneumonia"] * 15
    curves = []
    for version, spread in ((1, 0.3), (2, 0.6)):
        positive = np.clip(
            np.concatenate([rng.normal(0.5 - spread / 2, 0.2, 15), rng.normal(0.5 + spread / 2, 0.2, 15)]), 0, 1
        )
        curves.append(
            (
                f"version {version}",
                score_on_set(labels, np.stack([1 - positive, positive], 1), CLASSES, bootstrap_resamples=20),
            )
        )
    assert roc_curves_png(curves).startswith(b"\x89PNG")
    with pytest.raises(MedreviewError, match="no ROC curves to compare"):
        roc_curves_png([("version 1", {"roc_curve": None})])


def test_evaluations_are_asked_for_by_admins_and_audited(project):
    store, images = project
    first, second = add_model_version(store, active=True), add_model_version(store)
    held_out = create_evaluation_set(store, LOCAL_ACTOR, "held out", images["N0"] + images["P0"])
    with pytest.raises(PermissionDeniedError, match="may not evaluate models"):
        submit_evaluation(store, REVIEWER)
    with pytest.raises(NotFoundError, match="model version 999 does not exist"):
        submit_evaluation(store, LOCAL_ACTOR, model_version_ids=[999])
    save_evaluation(store, first, held_out.id, block(0.8))
    job_id = submit_evaluation(store, LOCAL_ACTOR, only_missing=True)  # the default set
    assert get_job(store, job_id).params == {"evaluation_set_id": held_out.id, "model_version_ids": [second]}
    [event] = query(store, LOCAL_ACTOR, action="evaluation.start").to_dict(orient="records")
    assert json.loads(event["details"]) == {"evaluation_set": "held out", "model_versions": [second]}
    save_evaluation(store, second, held_out.id, block(0.8))
    with pytest.raises(MedreviewError, match="every model version is evaluated on 'held out' already"):
        submit_evaluation(store, LOCAL_ACTOR, only_missing=True)


def test_freezing_a_set_without_any_model_queues_nothing(project):
    store, images = project
    made, job_id = freeze_evaluation_set(store, LOCAL_ACTOR, "held out", images["N0"])
    assert job_id is None and made.images == 2 and list_jobs(store, kind=EVALUATION_JOB) == []


def test_a_drawn_set_holds_whole_patients_of_every_class_and_not_those_of_another_set(project):
    store, images = project
    patient_of = {image_id: patient for patient, ids in images.items() for image_id in ids}
    drawn = sample_evaluation_images(store, 0.5, seed=3)
    patients = {patient_of[image_id] for image_id in drawn}
    assert len(patients) == 4 and {patient[0] for patient in patients} == {"N", "P"}  # 2 of 4 per class
    assert sorted(drawn) == sorted(image_id for patient in patients for image_id in images[patient])
    assert sample_evaluation_images(store, 0.5, seed=3) == drawn  # seeded
    made = create_evaluation_set(store, LOCAL_ACTOR, "first", drawn)
    again = sample_evaluation_images(store, 0.5, seed=3)
    assert not {patient_of[image_id] for image_id in again} & patients
    assert set(evaluation_set_images(store, made.id)["image_id"]) == set(drawn)
    with pytest.raises(MedreviewError, match="between 0 and 1"):
        sample_evaluation_images(store, 1.5)


def test_sets_figures_and_activation_work_alike_on_postgresql(any_store):
    from medreview.reading.evaluation_sets import list_evaluation_sets, set_default_evaluation_set

    results = ingest_files(
        any_store, LOCAL_ACTOR, [InputFile(f"{n}.dcm", dicom_bytes(patient_id=f"P{n}")) for n in range(2)]
    )
    for result, label in zip(results, CLASSES, strict=True):
        save_read(any_store, LOCAL_ACTOR, result.image_id, label)
    first = create_evaluation_set(any_store, LOCAL_ACTOR, "first", [results[0].image_id])
    second = create_evaluation_set(any_store, LOCAL_ACTOR, "second", [result.image_id for result in results])
    set_default_evaluation_set(any_store, LOCAL_ACTOR, "second")  # the partial unique index keeps one default
    assert [evaluation_set.name for evaluation_set in list_evaluation_sets(any_store)] == ["second", "first"]
    active_id, new_id = add_model_version(any_store, active=True), add_model_version(any_store)
    save_evaluation(any_store, active_id, second.id, {"error": "the file is missing"})
    save_evaluation(any_store, active_id, second.id, block(0.70))  # scored again: the row is replaced
    save_evaluation(any_store, new_id, second.id, block(0.75))
    assert evaluation_of(any_store, active_id, second.id)["roc_auc"] == 0.70
    assert evaluation_of(any_store, new_id, first.id) is None
    assert settle_activation(any_store, new_id, never_evaluate)[0]
    assert active_model(any_store).id == new_id
