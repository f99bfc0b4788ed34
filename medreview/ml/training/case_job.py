"""The training job's case-model branch (worker only: imports TensorFlow): a project's labelled
studies or series -> :func:`~medreview.ml.training.cases.train_case_model` -> a model version.

:func:`medreview.ml.training.job.run_training_job` comes here when the run trains at study or series
scope (:func:`~medreview.ml.training.case_table.training_scope`). What it shares with the image run
(the crash-safe save before the row, the report stages, the result's keys) is the same; what differs:

- the data are cases: each labelled case's slices in reading order
  (:func:`~medreview.reading.cases.case_images`), every slice through the case config's slice recipe
  (:func:`~medreview.ml.training.dataset.prepared_array`, cached like image arrays);
- the split is by patient over cases, ordered by the store's study or series UIDs;
- the version records its scope and case-model arguments in ``metrics`` (``scope``, ``case_model``:
  no schema change) and its architecture is the case config's name;
- evaluation sets are scored on their cases of this scope (:func:`evaluate_case_version`);
- activation: the first model of a store is made active; a case model replaces an active case model
  of its scope by :func:`~medreview.ml.evaluation.settle_activation`'s rule; beside an active image
  model it stays inactive (one version is active per store) and the Predictions page offers it by
  name.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import keras
import numpy as np
from sqlalchemy import select

from medreview.errors import ImagingError, MedreviewError, TrainingError
from medreview.jobs import JobContext
from medreview.ml.cases import case_probabilities, case_volumes, version_case_config
from medreview.ml.configs import AttentionMILConfig, version_preprocessing
from medreview.ml.domain import domain_facts
from medreview.ml.evaluation import (
    WAITING_FOR_EVALUATION,
    evaluate_version,
    save_evaluation,
    score_on_set,
    settle_activation,
)
from medreview.ml.prediction import case_scope
from medreview.ml.registry import KEPT_INACTIVE
from medreview.ml.training.case_table import DEFAULT_ENCODER, case_training_table
from medreview.ml.training.cases import CaseFitConfig, train_case_model
from medreview.ml.training.fit import EpochLog, save_model_atomic
from medreview.ml.training.metrics import calibrator_of
from medreview.ml.training.resolution import default_resolution
from medreview.reading.evaluation_sets import evaluation_set_images, list_evaluation_sets
from medreview.store import Store
from medreview.store.models import ModelVersion, Series, Study

__all__ = [
    "CASE_INPUT_CAP",
    "case_scope",
    "evaluate_case_version",
    "evaluate_version_of_its_kind",
    "run_case_training",
]

# The slice side a case model trains at by default: the data's own resolution, at most this (a
# case holds up to max_slices slices of it in every batch).
CASE_INPUT_CAP = 128


def _case_uids(store: Store, scope: str, case_ids: list[int]) -> dict[int, str]:
    column, model = (Study.study_uid, Study) if scope == "study" else (Series.series_uid, Series)
    with store.db.read() as session:
        return dict(session.execute(select(model.id, column).where(model.id.in_(case_ids))).tuples().all())


def run_case_training(context: JobContext, params: dict[str, Any], scope: str) -> dict[str, Any]:
    store = context.store
    context.report(stage=f"loading {scope} cases")
    table, class_names = case_training_table(store, scope, params["label_source"])
    case_ids = [int(case_id) for case_id in table["case_id"]]
    # The run's architecture: a case model's name ("attention_mil", "attention_mil_25d"), or a slice
    # encoder's ("small_cnn", "bn_cnn": attention_mil over it). Not given: the case default
    # (CaseFitConfig: small_cnn, the encoder the functional test and bench/case_model.py measure),
    # not the image default.
    architecture = context.params().get("architecture") or CaseFitConfig.architecture
    encoder = DEFAULT_ENCODER
    if architecture in AttentionMILConfig.encoders:
        architecture, encoder = CaseFitConfig.architecture, architecture
    size = int(
        params["input_size"]
        or min(CASE_INPUT_CAP, default_resolution(list(zip(table["rows"], table["columns"], strict=True))))
    )
    config = CaseFitConfig(
        architecture=architecture,
        encoder=encoder,
        input_size=size,
        epochs=int(params["epochs"]),
        batch_size=int(params["batch_size"] or max(2, min(8, len(case_ids) // 8))),
        learning_rate=float(params["learning_rate"]),
        seed=int(params["seed"]),
    )
    case_config = config.case_config()
    recipe = case_config.preprocessing(size)
    try:
        volumes, image_ids = case_volumes(store, scope, case_ids, case_config, recipe)
    except ImagingError as error:
        raise TrainingError(f"cannot read a slice of a labelled {scope}: {error}") from error
    facts = domain_facts(store, [image_id for members in image_ids for image_id in members])
    uids = _case_uids(store, scope, case_ids)
    index = {name: i for i, name in enumerate(class_names)}
    labels = np.array([index[name] for name in table["label"]], dtype=np.int64)
    epochs: list[dict[str, Any]] = []
    context.report(
        stage=f"training a {scope}-level case model",
        scope=scope,
        total_epochs=config.epochs,
        input_size=size,
        train_images=None,
        epochs=epochs,
    )

    def on_epoch(log: EpochLog) -> None:
        epochs.append(dataclasses.asdict(log))
        context.report(epochs=epochs)

    target_sensitivity = params["target_sensitivity"]
    result = train_case_model(
        volumes,
        labels,
        list(table["patient_key"]),
        class_names,
        config,
        case_keys=[uids[case_id] for case_id in case_ids],
        slice_facts=[[facts[image_id] for image_id in members] for members in image_ids],
        validation_fraction=float(params["validation_fraction"]),
        test_fraction=float(params["test_fraction"]),
        target_sensitivity=None if target_sensitivity is None else float(target_sensitivity),
        on_epoch=on_epoch,
        should_stop=context.should_stop,
    )
    context.report(stage="evaluating")
    metrics = result.metrics
    metrics["scope"] = scope
    slice_count = sum(len(volume) for volume in volumes)
    metrics["train_cases_per_second"] = round(
        len(result.split.train) * len(result.logs) / max(metrics["train_seconds"], 1e-9), 1
    )
    relative_path = f"models/model-{context.job_id}.keras"
    sha256 = save_model_atomic(result.model, store.data_path(relative_path))
    with store.db.write() as session:
        version = ModelVersion(
            job_id=context.job_id,
            path=relative_path,
            sha256=sha256,
            architecture=config.architecture,
            input_size=size,
            class_names=class_names,
            metrics=metrics,
            preprocessing=result.recipe,
            domain=result.domain,
            is_active=False,
            activation_reason=WAITING_FOR_EVALUATION,
        )
        session.add(version)
        session.flush()
        version_id = version.id
    context.report(stage="evaluating on the evaluation sets")
    activation = _evaluate_and_settle(store, version_id, result.model)
    context.report(stage="done")
    return {
        "model_version_id": version_id,
        "scope": scope,
        "trained": f"a {scope}-level case model ({config.architecture}, slices by {config.encoder})",
        "config": dataclasses.asdict(config),
        "metrics": metrics,
        "dataset": {
            "scope": scope,
            "slices": slice_count,
            "train_case_ids": [case_ids[i] for i in result.split.train],
            "validation_case_ids": [case_ids[i] for i in result.split.validation],
            "test_case_ids": [case_ids[i] for i in result.split.test],
            "labels": {str(case_id): label for case_id, label in zip(case_ids, table["label"], strict=True)},
        },
        "domain": result.domain,
        **activation,
    }


def evaluate_case_version(
    store: Store, version: ModelVersion, evaluation_set_id: int, model: keras.Model | None = None
) -> dict[str, Any]:
    """Score a case model version on the cases of its scope in an evaluation set, store the figures
    and return them (as :func:`medreview.ml.evaluation.evaluate_version` does for images)."""
    from medreview.ml.prediction import load_version_model

    scope = case_scope(version)
    members = evaluation_set_images(store, evaluation_set_id)
    members = members[members["scope"] == scope]
    metrics: dict[str, Any]
    try:
        if members.empty:
            raise MedreviewError(f"the set holds no {scope} cases")
        model = model if model is not None else load_version_model(store, version)
        config = version_case_config(version)
        recipe = version_preprocessing(version.preprocessing, version.input_size)
        try:
            volumes, image_ids = case_volumes(store, scope, [int(c) for c in members["case_id"]], config, recipe)
        except ImagingError as error:
            raise MedreviewError(f"a slice of the set's cases cannot be read: {error}") from error
        probabilities, _ = case_probabilities(model, config, volumes)
        metrics = score_on_set(
            [str(label) for label in members["label"]],
            probabilities,
            list(version.class_names),
            calibration=calibrator_of(version.metrics),
            threshold=version.metrics.get("threshold"),
        )
        facts = domain_facts(store, [image_id for case in image_ids for image_id in case])
        from medreview.ml.cases import case_outside_domain

        metrics["outside_training_data"] = sum(
            case_outside_domain(version.domain, [facts[i] for i in case]) is not None for case in image_ids
        )
    except MedreviewError as error:
        metrics = {"error": str(error)}
    metrics["set_images"] = len(members)
    metrics["scope"] = scope
    save_evaluation(store, version.id, evaluation_set_id, metrics)
    return metrics


def evaluate_version_of_its_kind(
    store: Store, version: ModelVersion, evaluation_set_id: int, model: keras.Model | None = None
) -> dict[str, Any]:
    """Score any model version on an evaluation set as what it is: a case model on the set's cases of
    its scope (:func:`evaluate_case_version`), an image model on its images
    (:func:`~medreview.ml.evaluation.evaluate_version`). The evaluation job scores every version so."""
    if case_scope(version) is not None:
        return evaluate_case_version(store, version, evaluation_set_id, model)
    return evaluate_version(store, version, evaluation_set_id, model)


def _evaluate_and_settle(store: Store, version_id: int, model: keras.Model) -> dict[str, Any]:
    with store.db.read() as session:
        version = session.get(ModelVersion, version_id)
        incumbent = session.scalar(select(ModelVersion).where(ModelVersion.is_active.is_(True)))
    evaluations: dict[str, Any] = {}
    for evaluation_set in list_evaluation_sets(store):
        metrics = evaluate_case_version(store, version, evaluation_set.id, model=model)
        evaluations[evaluation_set.name] = (
            {"error": metrics["error"]}
            if "error" in metrics
            else {key: metrics.get(key) for key in ("n", "roc_auc", "accuracy", "sensitivity", "specificity")}
        )
    if incumbent is not None and case_scope(incumbent) != case_scope(version):
        reason = (
            f"{KEPT_INACTIVE}: a {case_scope(version)}-level case model beside the active "
            f"{case_scope(incumbent) or 'image'}-level model (version {incumbent.id}); "
            "choose it on the Predictions page"
        )
        with store.db.write() as session:
            session.get(ModelVersion, version_id).activation_reason = reason
        return {"activated": False, "activation_reason": reason, "evaluations": evaluations}

    def evaluate(model_version_id: int, evaluation_set_id: int) -> dict[str, Any]:
        with store.db.read() as session:
            other = session.get(ModelVersion, model_version_id)
        return evaluate_case_version(
            store, other, evaluation_set_id, model=model if model_version_id == version_id else None
        )

    activated, reason = settle_activation(store, version_id, evaluate)
    return {"activated": activated, "activation_reason": reason, "evaluations": evaluations}
