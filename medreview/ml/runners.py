"""The job kinds this app runs in its worker, each mapped to its runner.

:mod:`medreview.jobs` knows no kinds; ``python -m medreview worker`` passes :data:`RUNNERS` to
:func:`medreview.jobs.run_worker`. Only the worker process imports this module.

Each runner imports its module when the first job of its kind runs, not when the worker starts:
training brings TensorFlow, evaluation scikit-learn, SciPy and matplotlib. A worker that has run
no job yet starts on about 1.3 s of CPU instead of about 7 and without TensorFlow's ~580 MB
(``make run`` and every ``serve`` start one, and most of them train nothing for a while).
"""

from __future__ import annotations

from typing import Any

from medreview.jobs import JobContext, Runner
from medreview.ml.kinds import EVALUATION_JOB, EXPLAIN_JOB, PREDICTION_JOB, TRAINING_JOB

__all__ = ["RUNNERS"]


def run_training(context: JobContext) -> dict[str, Any]:
    from medreview.ml.training.job import run_training_job

    return run_training_job(context)


def run_prediction(context: JobContext) -> dict[str, Any]:
    from medreview.ml.prediction import run_prediction_job

    return run_prediction_job(context)


def run_explanation(context: JobContext) -> dict[str, Any]:
    from medreview.ml.explanations import run_explanation_job

    return run_explanation_job(context)


def run_evaluation(context: JobContext) -> dict[str, Any]:
    from medreview.ml.evaluation import run_evaluation_job
    from medreview.ml.training.case_job import evaluate_version_of_its_kind

    # A case model version is scored on the set's cases of its scope, not as an image model.
    return run_evaluation_job(context, evaluate=evaluate_version_of_its_kind)


RUNNERS: dict[str, Runner] = {
    TRAINING_JOB: run_training,
    PREDICTION_JOB: run_prediction,
    EXPLAIN_JOB: run_explanation,
    EVALUATION_JOB: run_evaluation,
}
