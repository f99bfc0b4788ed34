"""A case model from the command line and its later evaluation (issue 17 item 7b, 7c): ``train --scope
study --wait --json`` trains and prints the case model's figures, a scope no class has is refused, and
the evaluation job (what the Train page's "Evaluate the versions not scored on this set" and
``evaluate`` queue) scores a case version on the set's studies, not as an image model."""

import json
import threading

import pytest

from medreview import cli
from medreview.jobs import execute_job, get_job
from medreview.ml.evaluation import evaluation_of, submit_evaluation
from medreview.ml.runners import RUNNERS
from medreview.reading.cases import case_images
from medreview.reading.evaluation_sets import create_evaluation_set
from medreview.reading.reads import LOCAL_ACTOR
from medreview.store.models import Job
from tests.ml.case_store import case_store

pytestmark = pytest.mark.slow  # trains a model


def _run_queued_job(store, done: threading.Event) -> None:
    """The worker's part, in this process: run the first queued job once the command has queued it."""
    from sqlalchemy import select

    while not done.is_set():
        with store.db.read() as session:
            job_id = session.scalar(select(Job.id).where(Job.status == "queued").order_by(Job.id))
        if job_id is not None:
            execute_job(store, job_id, RUNNERS)
            return
        done.wait(0.05)


def test_train_scope_study_prints_case_figures_and_evaluation_scores_cases(store, monkeypatch, capsys):
    stored = case_store(store, studies=12, slices=4)
    monkeypatch.setattr("medreview.jobs.worker_alive", lambda _store: True)  # the thread below is the worker

    assert cli.main(["train", "--scope", "series", "--epochs", "1"]) == 1
    assert "no class of this project is series-scoped" in capsys.readouterr().err

    done = threading.Event()
    worker = threading.Thread(target=_run_queued_job, args=(store, done))
    worker.start()
    try:
        code = cli.main(
            [
                "train",
                "--scope",
                "study",
                "--epochs",
                "1",
                "--input-size",
                "32",
                "--batch-size",
                "4",
                "--wait",
                "--json",
            ]
        )
    finally:
        done.set()
        worker.join()
    assert code == 0
    printed = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert printed["scope"] == "study" and printed["trained"].startswith("a study-level case model")
    assert printed["split"]["train"]["cases"] + printed["split"]["validation"]["cases"] + (
        printed["split"]["test"]["cases"] if printed["split"].get("test") else 0
    ) == len(stored.study_ids)
    assert printed["validation"]["n"] == printed["split"]["validation"]["cases"]

    # Evaluated later on a set of four studies: one item a study, at the version's scope.
    version_id = printed["model_version_id"]
    held = [case_images(store, "study", study_id)[1] for study_id in stored.study_ids[:4]]
    evaluation_set = create_evaluation_set(store, LOCAL_ACTOR, "four studies", held, scope="study")
    job_id = submit_evaluation(store, LOCAL_ACTOR, "four studies", [version_id])
    assert execute_job(store, job_id, RUNNERS) == "succeeded", get_job(store, job_id).error
    figures = evaluation_of(store, version_id, evaluation_set.id)
    assert "error" not in figures, figures
    assert figures["scope"] == "study" and figures["n"] == 4 and figures["set_images"] == 4
