"""The names of the job kinds the worker runs, in a module of their own: the worker maps them to
runners (:mod:`medreview.ml.runners`) without importing what the runners need (scikit-learn,
SciPy, matplotlib, TensorFlow) until a job of that kind arrives."""

from __future__ import annotations

__all__ = ["EVALUATION_JOB", "EXPLAIN_JOB", "PREDICTION_JOB", "TRAINING_JOB"]

TRAINING_JOB = "train"
PREDICTION_JOB = "predict"
EXPLAIN_JOB = "explain"
EVALUATION_JOB = "evaluate"
