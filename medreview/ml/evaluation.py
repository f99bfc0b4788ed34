"""Model versions on the frozen evaluation sets: their figures, the comparison, automatic activation.

Every model version is scored on every evaluation set (:mod:`medreview.reading.evaluation_sets`):
right after its training run, and on demand (a job of kind :data:`EVALUATION_JOB`; a new set queues
one for the versions there are). The figures are those of the held-out test part of a training run
(:func:`~medreview.ml.training.metrics.classification_metrics` of the probabilities calibrated with
the version's own temperature, called at its own threshold: ROC AUC with its 95% interval, accuracy,
sensitivity, specificity, ECE, ROC curve), stored once per (version, set) as a
:class:`~medreview.store.models.ModelEvaluation`. A set is frozen and a version's file is fixed, so
the figures never go stale. Images whose frozen label is not one of the version's classes are left
out and counted; images outside the version's training domain are scored and counted.

**Automatic activation** (:func:`settle_activation`, after each training run):

- no version is active: the new one becomes active (the first model);
- there is no evaluation set: it waits, and an admin promotes it by hand;
- otherwise the new version and the active one are compared on the *default* set. The new version is
  **not worse**, and becomes active, when its ROC AUC there is at most :data:`NOT_WORSE_TOLERANCE`
  (0.02) below the active version's. A set that gives no ROC AUC (a single class among the labels)
  compares accuracy with the same tolerance. Versions with different classes are not compared: the
  new one waits. So does a version that could not be scored.

The decision and its reason, in words, are stored on the new version (``activation_reason``) and shown
on the Train page. An admin may still promote any version by hand (audited, with the decision it
overrides).

Imported by the Streamlit server: TensorFlow enters only inside the functions the worker runs.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError

from medreview.errors import ImagingError, JobCancelled, MedreviewError, NotFoundError, TrainingError
from medreview.jobs import JobContext, submit_job
from medreview.ml.configs import get_config, version_preprocessing
from medreview.ml.domain import domain_facts, outside_domain
from medreview.ml.kinds import EVALUATION_JOB
from medreview.ml.localization import score_localization
from medreview.ml.registry import KEPT_INACTIVE, list_models
from medreview.ml.training.dataset import prepared_array
from medreview.ml.training.metrics import (
    BOOTSTRAP_RESAMPLES,
    calibrated_calls,
    calibrator_of,
    classification_metrics,
    evaluation_notes,
    summary,
    uncalibrated_reliability,
)
from medreview.ml.training.split import split_by_patient
from medreview.reading.evaluation_sets import (
    EvaluationSetSummary,
    create_evaluation_set,
    default_evaluation_set,
    evaluation_patients,
    evaluation_set_images,
    find_evaluation_set,
    list_evaluation_sets,
)
from medreview.reading.reads import current_labels
from medreview.store import Store
from medreview.store.db import upsert
from medreview.store.models import ModelEvaluation, ModelVersion, utcnow
from medreview.team.audit import record, record_now
from medreview.team.roles import SYSTEM, Actor, require

if TYPE_CHECKING:
    import keras

__all__ = [
    "EVALUATION_JOB",
    "NOT_WORSE_TOLERANCE",
    "WAITING_FOR_EVALUATION",
    "activation_decision",
    "comparison_table",
    "evaluate_and_settle",
    "evaluate_version",
    "evaluation_of",
    "freeze_evaluation_set",
    "run_evaluation_job",
    "sample_evaluation_images",
    "save_evaluation",
    "score_on_set",
    "settle_activation",
    "submit_evaluation",
]

# "Not worse": the new version's ROC AUC on the default set may be this much below the active one's.
NOT_WORSE_TOLERANCE = 0.02
# The reason a version carries between its registration and the end of its evaluation.
WAITING_FOR_EVALUATION = "waiting for its evaluation on the evaluation sets"
_BATCH = 256  # images prepared and scored at a time: bounds memory on large sets


# --- figures on a set -----------------------------------------------------------------------------


def score_on_set(
    labels: Sequence[str],
    probabilities: np.ndarray,
    class_names: Sequence[str],
    calibration: dict[str, Any] | float = 1.0,
    threshold: float | None = None,
    seed: int = 0,
    bootstrap_resamples: int = BOOTSTRAP_RESAMPLES,
) -> dict[str, Any]:
    """A version's figures on a set: ``labels`` the frozen class names (N,), ``probabilities`` the
    model's raw output (N, C) in ``class_names`` order, calibrated here with ``calibration`` (the
    version's calibrator, :func:`calibrator_of` its metrics, or a bare temperature) and called at
    ``threshold`` as the version calls new images. The block also holds ``ece_uncalibrated`` and
    ``calibration_uncalibrated``: the raw probabilities' reliability, the diagram before calibration.

    Returns :func:`classification_metrics`' block with its interval, plus ``notes`` (plain words) and
    ``unscored`` (reason -> images) for labels that are not among ``class_names``. With no image left to
    score, ``{"error": reason, "unscored": ...}``.
    """
    probabilities = np.asarray(probabilities, dtype=np.float64)
    if probabilities.shape != (len(labels), len(class_names)):
        raise TrainingError(f"Expected probabilities of shape ({len(labels)}, {len(class_names)}).")
    index = {name: position for position, name in enumerate(class_names)}
    scored = np.array([label in index for label in labels], dtype=bool)
    unscored = Counter(f"label '{label}' is not a class of this model" for label in labels if label not in index)
    if not scored.any():
        return {"error": "none of the set's labels is a class of this model", "unscored": dict(unscored)}
    y_true = np.array([index[label] for label in labels if label in index], dtype=np.int64)
    calibrated, _ = calibrated_calls(probabilities[scored], calibration, threshold)
    block = classification_metrics(
        y_true,
        calibrated,
        class_names,
        threshold=threshold if threshold is not None else 0.5,
        bootstrap_resamples=bootstrap_resamples,
        seed=seed,
    )
    block.update(uncalibrated_reliability(y_true, probabilities[scored]))
    block["notes"] = evaluation_notes("evaluation-set", block)
    block["unscored"] = dict(unscored)
    return block


def evaluate_version(
    store: Store, version: ModelVersion, evaluation_set_id: int, model: keras.Model | None = None
) -> dict[str, Any]:
    """Score ``version`` on an evaluation set, store the figures and return them (:func:`score_on_set`,
    plus ``outside_training_data``: images outside the version's domain, scored all the same; and
    ``localization``: its heat maps against the readers' boxes, :mod:`medreview.ml.localization`). A
    failure (the model file, the images) is stored and returned as ``{"error": reason}``. Worker only:
    loads the model (TensorFlow) unless ``model`` is given."""
    from medreview.ml.prediction import load_version_model
    from medreview.ml.training.fit import predict_probabilities

    images = evaluation_set_images(store, evaluation_set_id)
    metrics: dict[str, Any]
    try:
        model = model if model is not None else load_version_model(store, version)
        config = get_config(version.architecture)
        recipe = version_preprocessing(version.preprocessing, version.input_size)
        labels: list[str] = []
        outputs: list[np.ndarray] = []
        unreadable = 0
        rows = list(images.itertuples(index=False))
        for start in range(0, len(rows), _BATCH):
            arrays = []
            for row in rows[start : start + _BATCH]:
                try:
                    arrays.append(prepared_array(store, row.sha256, row.media_type, config, recipe))
                    labels.append(str(row.label))
                except ImagingError:
                    unreadable += 1
            if arrays:
                outputs.append(predict_probabilities(model, np.stack(arrays)))  # (B, C) float32
        if not labels:
            raise MedreviewError("none of the set's images could be read")
        metrics = score_on_set(
            labels,
            np.concatenate(outputs),
            list(version.class_names),
            calibration=calibrator_of(version.metrics),
            threshold=version.metrics.get("threshold"),
        )
        if unreadable:
            metrics["unscored"]["the image cannot be read"] = unreadable
        facts = domain_facts(store, images["image_id"])
        metrics["outside_training_data"] = sum(
            outside_domain(version.domain, facts[int(image_id)]) is not None for image_id in images["image_id"]
        )
        # Heat maps against the readers' boxes, on the set's images that have boxes (at most 200).
        metrics["localization"] = score_localization(store, version, images, model)
    except MedreviewError as error:
        metrics = {"error": str(error)}
    metrics["set_images"] = len(images)
    save_evaluation(store, version.id, evaluation_set_id, metrics)
    return metrics


def save_evaluation(store: Store, model_version_id: int, evaluation_set_id: int, metrics: dict[str, Any]) -> None:
    """Store a version's figures on a set, replacing earlier ones."""
    values = {"metrics": metrics, "created_at": utcnow()}
    with store.db.write() as session:
        upsert(
            session,
            ModelEvaluation,
            {"model_version_id": model_version_id, "evaluation_set_id": evaluation_set_id, **values},
            conflict_columns=["model_version_id", "evaluation_set_id"],
            update_columns=list(values),
        )


def evaluation_of(store: Store, model_version_id: int, evaluation_set_id: int) -> dict[str, Any] | None:
    """The stored figures of a version on a set (``{"error": ...}`` for a failed evaluation); None
    when it has not been evaluated there."""
    with store.db.read() as session:
        return session.scalar(
            select(ModelEvaluation.metrics).where(
                ModelEvaluation.model_version_id == model_version_id,
                ModelEvaluation.evaluation_set_id == evaluation_set_id,
            )
        )


def comparison_table(store: Store, evaluation_set_id: int) -> pd.DataFrame:
    """Every model version side by side on one set, newest first: version, active, images (scored),
    roc_auc, roc_auc_ci ([low, high] or None), accuracy, sensitivity, specificity, threshold, ece,
    outside_training_data, note (why there are no figures, or what was left out), and ``metrics``
    (the stored block, for the ROC curves)."""
    with store.db.read() as session:
        stored = dict(
            session.execute(
                select(ModelEvaluation.model_version_id, ModelEvaluation.metrics).where(
                    ModelEvaluation.evaluation_set_id == evaluation_set_id
                )
            )
            .tuples()
            .all()
        )
    rows = []
    for version in list_models(store):
        metrics = stored.get(version.id)
        row: dict[str, Any] = {"version": version.id, "active": version.is_active}
        for key in ("n", "roc_auc", "roc_auc_ci", "accuracy", "sensitivity", "specificity", "threshold", "ece"):
            row["images" if key == "n" else key] = None if metrics is None else metrics.get(key)
        row["outside_training_data"] = None if metrics is None else metrics.get("outside_training_data")
        if metrics is None:
            row["note"] = "not evaluated on this set yet"
        elif "error" in metrics:
            row["note"] = f"could not be evaluated: {metrics['error']}"
        else:
            left_out = ", ".join(f"{count} left out: {reason}" for reason, count in metrics["unscored"].items())
            row["note"] = left_out or None
        row["metrics"] = metrics
        rows.append(row)
    columns = [
        "version",
        "active",
        "images",
        "roc_auc",
        "roc_auc_ci",
        "accuracy",
        "sensitivity",
        "specificity",
        "threshold",
        "ece",
        "outside_training_data",
        "note",
        "metrics",
    ]
    return pd.DataFrame(rows, columns=columns)


# --- making sets and asking for evaluations -------------------------------------------------------


def sample_evaluation_images(store: Store, fraction: float, seed: int = 0) -> list[int]:
    """Image ids for a new evaluation set: ``fraction`` of the patients with final labels, drawn per
    class (by each patient's majority label) with ``seed``, all their labelled images; patients
    already in a set are not drawn again. The split is :func:`split_by_patient`'s validation part."""
    if not 0.0 < fraction < 1.0:
        raise MedreviewError(f"the share of patients to hold out must be between 0 and 1, not {fraction}")
    table = current_labels(store, "final")
    table = table[~table["patient_key"].isin(evaluation_patients(store))].reset_index(drop=True)
    names = sorted(set(table["label"]))
    labels = [names.index(label) for label in table["label"]]
    try:
        _, held_out = split_by_patient(
            list(table["patient_key"]),
            labels,
            validation_fraction=fraction,
            seed=seed,
            image_keys=[str(key) for key in table["source_sha256"]],
        )
    except TrainingError as error:
        raise MedreviewError(f"cannot draw an evaluation set from the labelled patients left: {error}") from error
    return sorted(int(table["image_id"][i]) for i in held_out)


def freeze_evaluation_set(
    store: Store, actor: Actor, name: str, image_ids: list[int], description: str = ""
) -> tuple[EvaluationSetSummary, int | None]:
    """Freeze a set (:func:`~medreview.reading.evaluation_sets.create_evaluation_set`) and queue the
    evaluation of every model version on it; returns the set and the job id (None: no versions yet)."""
    made = create_evaluation_set(store, actor, name, image_ids, description)
    job_id = submit_evaluation(store, actor, made.name) if list_models(store) else None
    return made, job_id


def submit_evaluation(
    store: Store,
    actor: Actor,
    set_name: str | None = None,
    model_version_ids: list[int] | None = None,
    only_missing: bool = False,
) -> int:
    """Queue the evaluation of model versions (default: all) on a set (default: the default set);
    ``only_missing`` leaves out versions already scored there (a failed evaluation is tried again).
    Returns the job id; audited."""
    require(actor, "admin", "evaluate models")
    evaluation_set = find_evaluation_set(store, set_name)
    known = [version.id for version in list_models(store)]
    wanted = sorted(set(model_version_ids)) if model_version_ids is not None else sorted(known)
    unknown = [version_id for version_id in wanted if version_id not in known]
    if unknown:
        raise NotFoundError(f"model version {unknown[0]} does not exist")
    if only_missing:
        wanted = [
            version_id for version_id in wanted if not _scored(evaluation_of(store, version_id, evaluation_set.id))
        ]
    if not wanted:
        raise MedreviewError(
            f"every model version is evaluated on '{evaluation_set.name}' already"
            if known
            else "there are no model versions to evaluate yet: train one first"
        )
    params = {"evaluation_set_id": evaluation_set.id, "model_version_ids": wanted}
    job_id = submit_job(store, EVALUATION_JOB, params, created_by=actor.username)
    record_now(
        store,
        actor.username,
        "evaluation.start",
        "job",
        job_id,
        evaluation_set=evaluation_set.name,
        model_versions=wanted,
    )
    return job_id


def _scored(metrics: dict[str, Any] | None) -> bool:
    return metrics is not None and "error" not in metrics


def run_evaluation_job(
    context: JobContext, evaluate: Callable[[Store, ModelVersion, int], dict[str, Any]] | None = None
) -> dict[str, Any]:
    """Score the job's versions on its set; ``evaluate`` scores one (default :func:`evaluate_version`; the
    worker's runner passes one that scores a case model on cases)."""
    evaluate = evaluate or evaluate_version
    params = context.params()
    store = context.store
    set_id = int(params["evaluation_set_id"])
    version_ids = [int(version_id) for version_id in params["model_version_ids"]]
    results: dict[str, Any] = {}
    for done, version_id in enumerate(version_ids):
        if context.should_stop():
            raise JobCancelled("cancelled by the user")
        context.report(stage=f"evaluating model version {version_id}", done=done, total=len(version_ids))
        with store.db.read() as session:
            version = session.get(ModelVersion, version_id)
        if version is None:
            results[str(version_id)] = {"error": "the model version no longer exists"}
            continue
        metrics = evaluate(store, version, set_id)
        results[str(version_id)] = {"error": metrics["error"]} if "error" in metrics else _headline(metrics)
    context.report(stage="done", done=len(version_ids), total=len(version_ids))
    return {"evaluation_set_id": set_id, "model_versions": results}


def _headline(metrics: dict[str, Any]) -> dict[str, Any]:
    return summary(metrics)


# --- automatic activation -------------------------------------------------------------------------


def activation_decision(
    candidate: dict[str, Any] | None,
    incumbent: dict[str, Any] | None,
    candidate_classes: Sequence[str],
    incumbent_classes: Sequence[str],
    set_name: str,
    incumbent_id: int,
    tolerance: float = NOT_WORSE_TOLERANCE,
) -> tuple[bool, str]:
    """Whether a new version is not worse than the active version ``incumbent_id`` on the default set
    ``set_name``, from their figures there; and why, in words (see the module's rule)."""
    if candidate is None or "error" in candidate:
        problem = "it was not evaluated" if candidate is None else f"it could not be evaluated ({candidate['error']})"
        return (
            False,
            f"{KEPT_INACTIVE}: {problem} on the evaluation set '{set_name}'; promote it by hand if you trust it",
        )
    if incumbent is None or "error" in incumbent:
        problem = "was not evaluated" if incumbent is None else f"could not be evaluated ({incumbent['error']})"
        return False, (
            f"{KEPT_INACTIVE}: the active version {incumbent_id} {problem} on the evaluation set '{set_name}', "
            "so the two cannot be compared; promote it by hand if you prefer it"
        )
    if list(candidate_classes) != list(incumbent_classes):
        return False, (
            f"{KEPT_INACTIVE}: its classes ({', '.join(candidate_classes)}) differ from those of the active "
            f"version {incumbent_id} ({', '.join(incumbent_classes)}); compare them on the Train page and "
            "promote it by hand"
        )
    if candidate.get("roc_auc") is not None and incumbent.get("roc_auc") is not None:
        key, title = "roc_auc", "ROC AUC"
    else:
        key, title = "accuracy", "accuracy (the set gives no ROC AUC)"
    new, old = float(candidate[key]), float(incumbent[key])
    figures = f"{title} {new:.3f} on the evaluation set '{set_name}' against {old:.3f} for version {incumbent_id}"
    if new >= old - tolerance:
        return True, f"made active: {figures}, not worse by more than {tolerance:g}"
    return False, (
        f"{KEPT_INACTIVE}: {figures}, {old - new:.3f} lower (more than the {tolerance:g} allowed); "
        "promote it by hand if you prefer it"
    )


def settle_activation(
    store: Store, version_id: int, evaluate: Callable[[int, int], dict[str, Any]]
) -> tuple[bool, str]:
    """Decide whether a newly registered version becomes active (see the module's rule), do it, and
    store the reason on the version. ``evaluate(version id, set id)`` scores a version not yet scored
    on the default set. Returns (made active, reason)."""
    with store.db.read() as session:
        version = session.get(ModelVersion, version_id)
        if version is None:
            raise NotFoundError(f"model version {version_id} does not exist")
        incumbent = session.scalar(select(ModelVersion).where(ModelVersion.is_active.is_(True)))
    if incumbent is None:
        return _settle(store, version_id, None, True, "made active: the first model (no version was active)")
    if incumbent.id == version_id:
        return True, version.activation_reason or "active"
    default = default_evaluation_set(store)
    if default is None:
        reason = (
            f"{KEPT_INACTIVE}: there is no evaluation set to compare it with the active version {incumbent.id} on; "
            "freeze one on the Train page, or promote it by hand"
        )
        return _settle(store, version_id, incumbent.id, False, reason)

    def figures(model_version_id: int) -> dict[str, Any]:
        stored = evaluation_of(store, model_version_id, default.id)
        return stored if _scored(stored) else evaluate(model_version_id, default.id)

    decision, reason = activation_decision(
        figures(version_id),
        figures(incumbent.id),
        list(version.class_names),
        list(incumbent.class_names),
        default.name,
        incumbent.id,
    )
    return _settle(store, version_id, incumbent.id, decision, reason)


def _settle(store: Store, version_id: int, compared_with: int | None, activate: bool, reason: str) -> tuple[bool, str]:
    with store.db.write() as session:
        version = session.get(ModelVersion, version_id, with_for_update=True)
        current = session.scalar(select(ModelVersion).where(ModelVersion.is_active.is_(True)).with_for_update())
        if activate and (current.id if current is not None else None) != compared_with:
            activate = False
            reason = (
                f"{KEPT_INACTIVE}: version {current.id if current else 'none'} became the active one while this "
                "one was evaluated; compare them on the Train page"
            )
        if activate:
            try:
                with session.begin_nested():
                    if current is not None:
                        current.is_active = False
                        session.flush()
                    version.is_active = True
                    session.flush()
            except IntegrityError:
                # Another version was promoted at the same moment (PostgreSQL; SQLite serialises
                # writers): the database keeps one active version, this one waits.
                activate = False
                reason = f"{KEPT_INACTIVE}: another version was made active at the same moment"
        if activate:
            # Made active without anyone choosing it: the trail says why.
            record(
                session,
                SYSTEM.username,
                "model.promote",
                "model_version",
                version_id,
                old=compared_with,
                reason="first model" if compared_with is None else reason,
            )
        version.activation_reason = reason
    return activate, reason


def evaluate_and_settle(store: Store, version_id: int, model: keras.Model, hold: str | None = None) -> dict[str, Any]:
    """After a training run: score the new version (``model``, in memory) on every evaluation set,
    then settle its activation; with ``hold`` (why, in words) it is kept inactive whatever its
    figures, the first model too. Returns ``activated``, ``activation_reason`` and ``evaluations``
    (set name -> headline figures, or the error). Worker only."""
    with store.db.read() as session:
        version = session.get(ModelVersion, version_id)
    evaluations: dict[str, Any] = {}
    for evaluation_set in list_evaluation_sets(store):
        metrics = evaluate_version(store, version, evaluation_set.id, model=model)
        evaluations[evaluation_set.name] = {"error": metrics["error"]} if "error" in metrics else _headline(metrics)

    def evaluate(model_version_id: int, evaluation_set_id: int) -> dict[str, Any]:
        with store.db.read() as session:
            other = session.get(ModelVersion, model_version_id)
        return evaluate_version(
            store, other, evaluation_set_id, model=model if model_version_id == version_id else None
        )

    if hold is not None:
        activated, reason = _settle(store, version_id, None, False, f"{KEPT_INACTIVE}: {hold}")
    else:
        activated, reason = settle_activation(store, version_id, evaluate)
    return {"activated": activated, "activation_reason": reason, "evaluations": evaluations}
