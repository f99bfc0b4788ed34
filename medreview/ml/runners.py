"""The job kinds this app runs in its worker, each mapped to its runner.

:mod:`medreview.jobs` knows no kinds; ``python -m medreview worker`` passes :data:`RUNNERS` to
:func:`medreview.jobs.run_worker`. Only the worker process imports this module.

The training runner imports TensorFlow (through :mod:`medreview.ml.training.job`) when the first
training runs, not when the worker starts: a worker that has run no job yet starts in about a
second instead of five and holds about 580 MB less (``make run`` and every `serve` start one,
most of which train nothing for a while). The other runners import Keras inside their own code.
"""

from __future__ import annotations

from typing import Any

from medreview.jobs import JobContext, Runner
from medreview.ml.evaluation import EVALUATION_JOB, run_evaluation_job
from medreview.ml.explanations import EXPLAIN_JOB, run_explanation_job
from medreview.ml.prediction import PREDICTION_JOB, run_prediction_job
from medreview.ml.training.service import TRAINING_JOB

__all__ = ["RUNNERS"]


def run_training(context: JobContext) -> dict[str, Any]:
    from medreview.ml.training.job import run_training_job

    return run_training_job(context)


RUNNERS: dict[str, Runner] = {
    TRAINING_JOB: run_training,
    PREDICTION_JOB: run_prediction_job,
    EXPLAIN_JOB: run_explanation_job,
    EVALUATION_JOB: run_evaluation_job,
}
