"""The job kinds this app runs in its worker, each mapped to its runner.

:mod:`medreview.jobs` knows no kinds; ``python -m medreview worker`` passes :data:`RUNNERS` to
:func:`medreview.jobs.run_worker`. Importing this module loads TensorFlow (through the training
and prediction runners), so only the worker process imports it.
"""

from __future__ import annotations

from medreview.jobs import Runner
from medreview.ml.evaluation import EVALUATION_JOB, run_evaluation_job
from medreview.ml.explanations import EXPLAIN_JOB, run_explanation_job
from medreview.ml.prediction import PREDICTION_JOB, run_prediction_job
from medreview.ml.training.job import run_training_job
from medreview.ml.training.service import TRAINING_JOB

__all__ = ["RUNNERS"]

RUNNERS: dict[str, Runner] = {
    TRAINING_JOB: run_training_job,
    PREDICTION_JOB: run_prediction_job,
    EXPLAIN_JOB: run_explanation_job,
    EVALUATION_JOB: run_evaluation_job,
}
