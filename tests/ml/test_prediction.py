"""Reading predictions without TensorFlow: model versions and predictions are written straight into
the store (as a prediction job would), then the tables the Predict and Review pages show are
checked against the project's labels. Refused prediction requests queue nothing."""

from __future__ import annotations

import io
from dataclasses import dataclass

import numpy as np
import pandas as pd
import pytest
from sqlalchemy import func, select

from medreview.errors import MedreviewError, NotFoundError, PermissionDeniedError
from medreview.ingest import InputFile, ingest_files
from medreview.ml.prediction import (
    PREDICTION_JOB,
    _target_images,
    disagreements,
    load_heatmaps,
    most_uncertain,
    predictions_table,
    shown_calls,
    submit_predictions,
)
from medreview.reading.reads import LOCAL_ACTOR, reads_table, save_read, unlabelled_image_ids
from medreview.reading.review import decide, review_queue
from medreview.store import Store
from medreview.store.models import Job, Prediction
from medreview.team.accounts import create_first_admin, create_user
from medreview.team.roles import Actor
from medreview.team.settings import set_setting
from tests.helpers import add_model_version, png_bytes

CLASS_NAMES = ["normal", "pneumonia"]
ANN = Actor("ann", "annotator")
REVIEWER = Actor("rev", "reviewer")


@dataclass(frozen=True)
class Images:
    right: int  # labelled normal, predicted normal
    wrong_confident: int  # labelled normal, predicted pneumonia at 0.95
    wrong_unsure: int  # labelled pneumonia, predicted normal at 0.60
    disputed: int  # readers disagree: labelled, no final label
    rejected: int  # only read was rejected: unlabelled
    near_tie: int  # unread, 0.55 / 0.45
    fairly_sure: int  # unread, 0.20 / 0.80


# image -> (predicted class, its probability)
PREDICTED = {
    "right": ("normal", 0.90),
    "wrong_confident": ("pneumonia", 0.95),
    "wrong_unsure": ("normal", 0.60),
    "disputed": ("pneumonia", 0.70),
    "rejected": ("pneumonia", 0.65),
    "near_tie": ("normal", 0.55),
    "fairly_sure": ("pneumonia", 0.80),
}


def add_model(store: Store, active: bool) -> int:
    return add_model_version(store, active, class_names=tuple(CLASS_NAMES))


def add_prediction(store: Store, model_id: int, image_id: int, predicted: str, probability: float) -> int:
    other = 1.0 - probability
    probabilities = {predicted: probability, next(n for n in CLASS_NAMES if n != predicted): other}
    with store.db.write() as session:
        prediction = Prediction(
            image_id=image_id,
            model_version_id=model_id,
            predicted_class=predicted,
            probability=probability,
            probabilities=probabilities,
            heatmap_path=f"cache/gradcam/{model_id}-{image_id}.npy",
        )
        session.add(prediction)
        session.flush()
        return prediction.id


def job_count(store: Store) -> int:
    with store.db.read() as session:
        return session.scalar(select(func.count(Job.id))) or 0


@pytest.fixture
def project(store: Store, fast_hashing: None) -> tuple[Store, Images, int]:
    admin = create_first_admin(store, "boss", "boss-password")
    for actor in (ANN, REVIEWER):
        create_user(store, admin, actor.username, f"{actor.username}-password", actor.role)
    names = list(PREDICTED)
    results = ingest_files(
        store, LOCAL_ACTOR, [InputFile(f"{name}.png", png_bytes(400 + n)) for n, name in enumerate(names)]
    )
    images = Images(*(result.image_id for result in results))
    save_read(store, LOCAL_ACTOR, images.right, "normal")
    save_read(store, LOCAL_ACTOR, images.wrong_confident, "normal")
    save_read(store, LOCAL_ACTOR, images.wrong_unsure, "pneumonia")
    save_read(store, LOCAL_ACTOR, images.disputed, "normal")
    save_read(store, ANN, images.disputed, "pneumonia")
    save_read(store, ANN, images.rejected, "normal")
    queue = review_queue(store, REVIEWER)
    [rejected_read] = queue.loc[queue["image_id"] == images.rejected, "annotation_id"]
    decide(store, REVIEWER, int(rejected_read), "reject")
    model_id = add_model(store, active=True)
    for name, (predicted, probability) in PREDICTED.items():
        add_prediction(store, model_id, getattr(images, name), predicted, probability)
    return store, images, model_id


def test_predictions_table_compares_with_the_final_label(project):
    store, images, _ = project
    table = predictions_table(store, LOCAL_ACTOR).set_index("image_id")  # the active model by default
    assert len(table) == len(PREDICTED)
    assert (table.loc[images.right, "label"], table.loc[images.right, "agrees"]) == ("normal", True)
    assert (table.loc[images.wrong_confident, "label"], table.loc[images.wrong_confident, "agrees"]) == (
        "normal",
        False,
    )
    # No final label (disputed, rejected, unread): nothing to agree or disagree with.
    for image_id in (images.disputed, images.rejected, images.near_tie):
        assert pd.isna(table.loc[image_id, "label"])
        assert table.loc[image_id, "agrees"] is None


def test_predictions_table_is_empty_without_an_active_model(store):
    table = predictions_table(store, LOCAL_ACTOR)
    assert table.empty
    assert list(table.columns) == [
        "image_id",
        "file",
        "predicted_class",
        "probability",
        "label",
        "agrees",
        "outside_training_data",
        "outside_reason",
        "prediction_id",
    ]


def test_a_blinded_annotator_sees_predictions_only_for_images_they_read(project):
    store, images, _ = project
    set_setting(store, LOCAL_ACTOR, "blinded", True)
    assert set(predictions_table(store, ANN)["image_id"]) == {images.disputed, images.rejected}
    assert len(predictions_table(store, REVIEWER)) == len(PREDICTED)  # reviewers are never blinded


def test_disagreements_are_labelled_images_whose_label_differs_most_confident_first(project):
    store, images, _ = project
    wrong = disagreements(store, LOCAL_ACTOR)
    assert list(wrong["image_id"]) == [images.wrong_confident, images.wrong_unsure]


def test_most_uncertain_lists_only_unlabelled_images_least_certain_first(project):
    store, images, _ = project
    queue = most_uncertain(store, LOCAL_ACTOR)
    # near tie: 1 - (0.55 - 0.45) = 0.9; rejected: 1 - (0.65 - 0.35) = 0.7; fairly sure: 0.4
    assert list(queue["image_id"]) == [images.near_tie, images.rejected, images.fairly_sure]
    assert queue["uncertainty"].tolist() == pytest.approx([0.9, 0.7, 0.4])
    assert set(queue["image_id"]) == set(unlabelled_image_ids(store))


def test_predictions_of_another_model_version_stay_apart(project):
    store, images, active_id = project
    older = add_model(store, active=False)
    add_prediction(store, older, images.right, "pneumonia", 0.99)
    assert list(predictions_table(store, LOCAL_ACTOR, older)["image_id"]) == [images.right]
    assert list(disagreements(store, LOCAL_ACTOR, older)["image_id"]) == [images.right]
    assert predictions_table(store, LOCAL_ACTOR, active_id).set_index("image_id").loc[images.right, "agrees"]


def test_load_heatmaps_returns_one_float_map_per_class(project):
    store, images, model_id = project
    prediction_id = int(predictions_table(store, LOCAL_ACTOR).set_index("image_id").loc[images.right, "prediction_id"])
    maps = np.linspace(0, 1, 2 * 7 * 7, dtype=np.float16).reshape(2, 7, 7)
    path = store.data_path(f"cache/gradcam/{model_id}-{images.right}.npy")
    path.parent.mkdir(parents=True, exist_ok=True)
    buffer = io.BytesIO()
    np.save(buffer, maps)
    path.write_bytes(buffer.getvalue())
    heatmaps, class_names = load_heatmaps(store, LOCAL_ACTOR, prediction_id)
    assert heatmaps.shape == (2, 7, 7) and heatmaps.dtype == np.float32
    assert np.allclose(heatmaps, maps.astype(np.float32))
    assert class_names == CLASS_NAMES


def test_a_missing_heatmap_or_prediction_is_not_found_in_plain_words(project):
    store, images, _ = project
    prediction_id = int(
        predictions_table(store, LOCAL_ACTOR).set_index("image_id").loc[images.near_tie, "prediction_id"]
    )
    with pytest.raises(NotFoundError, match="Grad-CAM map for this prediction is missing; run the prediction again"):
        load_heatmaps(store, LOCAL_ACTOR, prediction_id)
    with pytest.raises(NotFoundError, match="prediction 98765 does not exist"):
        load_heatmaps(store, LOCAL_ACTOR, 98765)


def test_a_valid_request_queues_one_prediction_job(project):
    store, _, model_id = project
    job_id = submit_predictions(store, REVIEWER, scope="unlabelled")
    with store.db.read() as session:
        job = session.get(Job, job_id)
        assert (job.kind, job.created_by) == (PREDICTION_JOB, "rev")
        assert job.params == {"scope": "unlabelled", "image_ids": [], "model_version_id": model_id}


@pytest.mark.parametrize(
    "actor, scope, image_ids, error, message",
    [
        (ANN, "unlabelled", None, PermissionDeniedError, "may not run the model"),
        (REVIEWER, "everything", None, MedreviewError, "unknown scope 'everything'"),
        (REVIEWER, "selected", [], MedreviewError, "select at least one image"),
        (REVIEWER, "selected", None, MedreviewError, "select at least one image"),
    ],
)
def test_refused_requests_queue_nothing(project, actor, scope, image_ids, error, message):
    store, _, _ = project
    jobs_before = job_count(store)
    with pytest.raises(error, match=message):
        submit_predictions(store, actor, scope=scope, image_ids=image_ids)
    assert job_count(store) == jobs_before


def test_without_an_active_model_nothing_is_queued(store, fast_hashing):
    ingest_files(store, LOCAL_ACTOR, [InputFile("x.png", png_bytes(1))])
    add_model(store, active=False)  # a model that was never promoted does not count
    jobs_before = job_count(store)
    with pytest.raises(MedreviewError, match="no active model yet"):
        submit_predictions(store, LOCAL_ACTOR, scope="all")
    assert job_count(store) == jobs_before


def test_prediction_scopes_target_the_right_images(project):
    store, images, _ = project
    unlabelled = [row[0] for row in _target_images(store, "unlabelled", [])]
    assert unlabelled == unlabelled_image_ids(store) == [images.rejected, images.near_tie, images.fairly_sure]
    assert len(_target_images(store, "all", [])) == len(PREDICTED)
    selected = _target_images(store, "selected", [images.fairly_sure, images.right])
    assert [row[0] for row in selected] == [images.right, images.fairly_sure]
    assert all(media_type == "png" and len(sha256) == 64 for _, sha256, media_type in selected)


def test_a_blinded_annotator_gets_no_map_or_reads_of_an_image_before_reading_it(project):
    # Access is decided by the service, not by what the page happens to offer.
    store, images, model_id = project
    set_setting(store, LOCAL_ACTOR, "blinded", True)
    prediction_id = int(predictions_table(store, LOCAL_ACTOR).set_index("image_id").loc[images.right, "prediction_id"])
    path = store.data_path(f"cache/gradcam/{model_id}-{images.right}.npy")
    path.parent.mkdir(parents=True, exist_ok=True)
    np.save(path, np.zeros((2, 7, 7), dtype=np.float16))
    with pytest.raises(PermissionDeniedError, match="blinded"):
        load_heatmaps(store, ANN, prediction_id)
    assert images.right not in set(reads_table(store, ANN)["image_id"])
    save_read(store, ANN, images.right, "normal")
    assert load_heatmaps(store, ANN, prediction_id)[0].shape == (2, 7, 7)
    assert set(reads_table(store, ANN)[lambda reads: reads["image_id"] == images.right]["reader"]) == {"ann", "local"}


def flag_outside(store: Store, model_id: int, image_id: int, reason: str) -> None:
    with store.db.write() as session:
        prediction = session.scalar(
            select(Prediction).where(Prediction.image_id == image_id, Prediction.model_version_id == model_id)
        )
        prediction.out_of_distribution, prediction.out_of_distribution_reason = True, reason


def test_an_image_outside_the_training_data_is_shown_flagged_not_as_a_confident_class(project):
    store, images, model_id = project
    reason = "modality NM, trained on CR, DX"
    flag_outside(store, model_id, images.wrong_confident, reason)  # labelled normal, called pneumonia 95%
    flag_outside(store, model_id, images.near_tie, reason)  # unlabelled
    table = predictions_table(store, LOCAL_ACTOR).set_index("image_id")
    assert table.loc[images.wrong_confident, "outside_training_data"]
    assert table.loc[images.wrong_confident, "agrees"] is None  # no confident call to disagree with
    assert not table.loc[images.right, "outside_training_data"] and table.loc[images.right, "agrees"]
    shown = shown_calls(table.reset_index()).set_index("image_id")
    assert shown.loc[images.wrong_confident, "predicted_class"] == "outside the training data"
    assert pd.isna(shown.loc[images.wrong_confident, "probability"])
    assert shown.loc[images.wrong_confident, "outside_reason"] == reason
    assert (shown.loc[images.right, "predicted_class"], shown.loc[images.right, "probability"]) == ("normal", 0.90)
    # Not a confident error, and not worth labelling next on the model's say-so.
    assert list(disagreements(store, LOCAL_ACTOR)["image_id"]) == [images.wrong_unsure]
    assert images.near_tie not in set(most_uncertain(store, LOCAL_ACTOR)["image_id"])


@pytest.mark.slow
def test_a_case_model_predicts_once_per_study_with_its_top_slices(store, fast_hashing):
    """A case model trained through the training job predicts each study once, at its key image, with
    each slice's attention, the top three slices and their maps, and the page's table lists studies."""
    from medreview.jobs import execute_job, get_job, submit_job
    from medreview.ml.prediction import case_predictions_table, case_slices, submit_predictions
    from medreview.ml.runners import RUNNERS
    from medreview.reading.cases import case_images
    from tests.ml.case_store import case_store

    cases = case_store(store, studies=20, slices=6)
    job_id = submit_job(store, "train", {"epochs": 1, "input_size": 32, "batch_size": 4})
    assert execute_job(store, job_id, RUNNERS) == "succeeded", get_job(store, job_id).error
    version_id = get_job(store, job_id).result["model_version_id"]
    prediction_job = submit_predictions(store, LOCAL_ACTOR, scope="all", model_version_id=version_id)
    assert execute_job(store, prediction_job, RUNNERS) == "succeeded", get_job(store, prediction_job).error
    assert get_job(store, prediction_job).result["predicted"] == len(cases.study_ids)
    with store.db.read() as session:
        rows = session.execute(
            select(Prediction.scope, Prediction.case_id, Prediction.image_id, Prediction.probabilities).where(
                Prediction.model_version_id == version_id
            )
        ).all()
    # One prediction per study, at its key image (its first slice), calibrated probabilities summing to 1.
    assert sorted(row.case_id for row in rows) == sorted(cases.study_ids)
    assert {row.scope for row in rows} == {"study"}
    for row in rows:
        assert row.image_id == case_images(store, "study", row.case_id)[0]
        assert sum(row.probabilities.values()) == pytest.approx(1.0, abs=1e-4)
    table = case_predictions_table(store, LOCAL_ACTOR, version_id)
    assert len(table) == len(cases.study_ids) and set(table["slices"]) == {6}
    assert table.set_index("case_id")["label"].to_dict() == dict(zip(cases.study_ids, cases.labels, strict=True))
    slices = case_slices(store, LOCAL_ACTOR, int(table["prediction_id"].iloc[0]))
    case_id = int(table["case_id"].iloc[0])
    assert slices["image_ids"] == case_images(store, "study", case_id)
    assert slices["attention"].shape == (6,) and slices["attention"].sum() == pytest.approx(1.0, abs=1e-4)
    top = slices["top"]
    assert len(top) == 3 and [entry["attention"] for entry in top] == sorted(slices["attention"], reverse=True)[:3]
    assert all(slices["image_ids"][entry["slice"] - 1] == entry["image_id"] for entry in top)
    for maps in (slices["maps"]["gradcam"], slices["maps"]["hirescam"]):  # (C, k, h, w): per class, per top slice
        assert maps.shape[:2] == (2, 3) and maps.min() >= 0.0 and maps.max() <= 1.0
