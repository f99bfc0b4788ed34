"""Starting training runs (UI and CLI side: no TensorFlow here)."""

from __future__ import annotations

from typing import Any

from medreview.errors import TrainingError
from medreview.jobs import submit_job
from medreview.ml.kinds import TRAINING_JOB
from medreview.ml.training.case_table import training_scope
from medreview.store import Store
from medreview.team.audit import record_now
from medreview.team.roles import Actor, require

__all__ = ["ALLOWED_PARAMS", "TRAINING_JOB", "submit_training"]

# The job kind of a training run (medreview.ml.runners maps it to its runner).

ALLOWED_PARAMS = (
    "architecture",
    "input_size",
    "epochs",
    "batch_size",
    "learning_rate",
    "seed",
    "validation_fraction",
    "label_source",
    "target_sensitivity",
    "scope",
    "prevalence",
    "confirm_mixed_sizes",
)


def submit_training(store: Store, actor: Actor, params: dict[str, Any] | None = None) -> int:
    """Check there is enough to train on, then queue a training run; returns its job id.

    The checks run here as well as in the worker so the user hears "need at least N labelled
    images per class" at once, not after the job was queued.
    """
    require(actor, "admin", "start training")
    params = dict(params or {})
    unknown = sorted(set(params) - set(ALLOWED_PARAMS))
    if unknown:
        raise TrainingError(f"unknown training setting(s): {', '.join(unknown)}")
    if params.get("epochs") is not None and not 1 <= int(params["epochs"]) <= 500:
        raise TrainingError("epochs must be between 1 and 500")
    if params.get("input_size") is not None and not 16 <= int(params["input_size"]) <= 512:
        raise TrainingError("the training resolution must be between 16 and 512 pixels")
    if params.get("target_sensitivity") is not None and not 0 < float(params["target_sensitivity"]) <= 1:
        raise TrainingError("the target sensitivity must be above 0 and at most 1")
    prevalence = params.get("prevalence")
    if prevalence is not None and prevalence != "estimate":
        try:
            share = float(prevalence)
        except (TypeError, ValueError):
            raise TrainingError(
                f"the prevalence must be a share between 0 and 1 or 'estimate', not {prevalence!r}"
            ) from None
        if not 0 < share < 1:
            raise TrainingError("the prevalence must lie strictly between 0 and 1")
    # Enough labelled images, or studies / series for a case model (which one this run trains).
    training_scope(store, params.get("label_source"), params.get("scope"))
    job_id = submit_job(store, TRAINING_JOB, params, created_by=actor.username)
    record_now(store, actor.username, "training.start", "job", job_id, params=params)
    return job_id
