"""Starting a training run (no TensorFlow, no run): every refusal is said at once and queues
nothing; an accepted request queues one job and is audited."""

from __future__ import annotations

import json

import pytest
from sqlalchemy import func, select

from medreview.errors import MedreviewError, PermissionDeniedError, TrainingError
from medreview.ingest import InputFile, ingest_files
from medreview.ml.training.dataset import MIN_IMAGES_PER_CLASS
from medreview.ml.training.service import TRAINING_JOB, submit_training
from medreview.reading.reads import LOCAL_ACTOR, save_read
from medreview.store import Store
from medreview.store.models import Job
from medreview.team.audit import query
from medreview.team.roles import Actor
from tests.helpers import png_bytes


def job_count(store: Store) -> int:
    with store.db.read() as session:
        return session.scalar(select(func.count(Job.id))) or 0


@pytest.fixture
def labelled_store(store: Store) -> Store:
    """Just enough labels to train: MIN_IMAGES_PER_CLASS of each class."""
    labels = ["normal", "pneumonia"] * MIN_IMAGES_PER_CLASS
    results = ingest_files(store, LOCAL_ACTOR, [InputFile(f"{n}.png", png_bytes(600 + n)) for n in range(len(labels))])
    for result, label in zip(results, labels, strict=True):
        save_read(store, LOCAL_ACTOR, result.image_id, label)
    return store


def test_an_accepted_request_queues_one_job_and_is_audited(labelled_store):
    params = {"epochs": 3, "input_size": 32, "seed": 1}
    job_id = submit_training(labelled_store, LOCAL_ACTOR, params)
    with labelled_store.db.read() as session:
        job = session.get(Job, job_id)
        assert (job.kind, job.params, job.created_by) == (TRAINING_JOB, params, "local")
    [event] = query(labelled_store, LOCAL_ACTOR, action="training.start").itertuples()
    assert event.object_id == str(job_id) and json.loads(event.details) == {"params": params}


@pytest.mark.parametrize("epochs", [1, 500])
def test_epoch_limits_are_inclusive(labelled_store, epochs):
    submit_training(labelled_store, LOCAL_ACTOR, {"epochs": epochs})
    assert job_count(labelled_store) == 1


@pytest.mark.parametrize(
    "actor, params, error, message",
    [
        (Actor("rev", "reviewer"), {}, PermissionDeniedError, "may not start training"),
        (
            LOCAL_ACTOR,
            {"epochs": 2, "learning_rat": 0.1},
            TrainingError,
            r"unknown training setting\(s\): learning_rat",
        ),
        (LOCAL_ACTOR, {"epochs": 0}, TrainingError, "epochs must be between 1 and 500"),
        (LOCAL_ACTOR, {"epochs": 501}, TrainingError, "epochs must be between 1 and 500"),
        (LOCAL_ACTOR, {"input_size": 15}, TrainingError, "resolution must be between 16 and 512"),
        (LOCAL_ACTOR, {"input_size": 513}, TrainingError, "resolution must be between 16 and 512"),
        (LOCAL_ACTOR, {"label_source": "newest"}, MedreviewError, "unknown label source 'newest'"),
    ],
)
def test_refused_requests_queue_nothing(labelled_store, actor, params, error, message):
    with pytest.raises(error, match=message):
        submit_training(labelled_store, actor, params)
    assert job_count(labelled_store) == 0
    assert query(labelled_store, LOCAL_ACTOR, action="training.start").empty


def test_too_few_labels_are_refused_before_queueing(store):
    results = ingest_files(store, LOCAL_ACTOR, [InputFile(f"{n}.png", png_bytes(700 + n)) for n in range(3)])
    for result, label in zip(results, ["normal", "normal", "pneumonia"], strict=True):
        save_read(store, LOCAL_ACTOR, result.image_id, label)
    with pytest.raises(TrainingError, match="per class; 'normal' has 2, 'pneumonia' has 1"):
        submit_training(store, LOCAL_ACTOR, {"epochs": 2})
    assert job_count(store) == 0
