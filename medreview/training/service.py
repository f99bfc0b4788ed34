"""Starting training runs (UI and CLI side: no TensorFlow here)."""

from __future__ import annotations

from typing import Any

from medreview.errors import TrainingError
from medreview.jobs import submit_job
from medreview.store import LOCAL_USER, Store
from medreview.training.dataset import training_table

__all__ = ["ALLOWED_PARAMS", "submit_training"]

ALLOWED_PARAMS = ("architecture", "input_size", "epochs", "batch_size", "learning_rate", "seed", "validation_fraction")


def submit_training(store: Store, params: dict[str, Any] | None = None, created_by: str = LOCAL_USER) -> int:
    """Check there is enough to train on, then queue a training run; returns its job id.

    The checks run here as well as in the worker so the user hears "need at least N labelled
    images per class" at once, not after the job was queued.
    """
    params = dict(params or {})
    unknown = sorted(set(params) - set(ALLOWED_PARAMS))
    if unknown:
        raise TrainingError(f"unknown training setting(s): {', '.join(unknown)}")
    if params.get("epochs") is not None and not 1 <= int(params["epochs"]) <= 500:
        raise TrainingError("epochs must be between 1 and 500")
    if params.get("input_size") is not None and not 16 <= int(params["input_size"]) <= 512:
        raise TrainingError("the training resolution must be between 16 and 512 pixels")
    training_table(store)
    return submit_job(store, "train", params, created_by=created_by)
