"""The training job, run by the worker: store -> dataset -> split -> fit -> evaluation -> model version.

The labelled images are split by patient into train, validation and, when every class has enough
patients, a held-out test part (:func:`~medreview.ml.training.split.split_train_validation_test`).
Training chooses its best epoch on validation; the temperature and the operating threshold are fitted
on validation too (:func:`~medreview.ml.training.metrics.evaluate_model`); the test part is scored
once, at the end, and takes part in no choice. The model version's ``metrics`` hold both parts, the
temperature and threshold the model is to be used with, the split's counts and plain-words notes.

Order matters for crash safety: the ``.keras`` file is written atomically *before* the model
version row is committed, so a registered model always has its complete file.

The version records the domain of the images the run used (:mod:`medreview.ml.domain`), is scored on
every evaluation set, and becomes active only if it is not worse than the active version on the
default set (:func:`medreview.ml.evaluation.settle_activation`; the first model is made active).
Evaluation-set images, and their patients, never reach the dataset (see ``training_table``).
"""

from __future__ import annotations

import dataclasses
import time
from typing import Any

from medreview.errors import TrainingError
from medreview.jobs import JobContext
from medreview.ml.configs import get_config
from medreview.ml.domain import describe_domain, domain_facts
from medreview.ml.evaluation import WAITING_FOR_EVALUATION, evaluate_and_settle
from medreview.ml.training.case_table import training_scope
from medreview.ml.training.dataset import load_dataset
from medreview.ml.training.fit import EpochLog, FitConfig, fit_model, predict_probabilities, save_model_atomic
from medreview.ml.training.metrics import evaluate_model
from medreview.ml.training.resolution import SIZE_SPREAD_LIMIT, resampling_report
from medreview.ml.training.split import split_train_validation_test
from medreview.store.models import ModelVersion

__all__ = ["ESTIMATE_PREVALENCE_IMAGES", "TRAINING_DEFAULTS", "automatic_batch_size", "run_training_job"]

# At most this many unlabelled images (evenly spread over their ids) estimate a prevalence by EM.
ESTIMATE_PREVALENCE_IMAGES = 2000

TRAINING_DEFAULTS: dict[str, Any] = {
    "architecture": FitConfig.architecture,
    "input_size": None,  # None: chosen from the data (never upsample; cap large images)
    "epochs": FitConfig.epochs,
    "batch_size": None,  # None: automatic (see automatic_batch_size)
    "learning_rate": FitConfig.learning_rate,
    "seed": FitConfig.seed,
    "validation_fraction": 0.2,
    "test_fraction": 0.2,  # held out only when every class has enough patients (see split.py)
    "target_sensitivity": None,  # None: the threshold maximises Youden's J on validation
    # The expected share of the second class where the model will read (a number in (0, 1)), or
    # "estimate": by EM from the project's unlabelled images. The calibrated posterior is moved to it
    # and called at 0.5 (see evaluate_model). None: the threshold rule above.
    "prevalence": None,
    # True: a run on images whose sizes differ by more than SIZE_SPREAD_LIMIT may still be made active.
    "confirm_mixed_sizes": False,
    "label_source": None,  # None: the project's training_label_source setting
    "scope": None,  # None: study or series when their classes have enough labelled cases, else image
}


def automatic_batch_size(train_images: int, largest: int = FitConfig.batch_size, steps: int = 8) -> int:
    """The default batch: ``largest`` for real datasets, smaller for a few dozen images so an
    epoch still takes about ``steps`` gradient steps (26 images in one batch of 64 would give the
    model 10 steps in 10 epochs, and it would learn nothing)."""
    return max(4, min(largest, train_images // steps))


def run_training_job(context: JobContext) -> dict[str, Any]:
    params = {**TRAINING_DEFAULTS, **context.params()}
    store = context.store
    # A project with enough labelled studies or series trains a case model at that scope (see
    # medreview.ml.training.case_table); ``scope`` in the run's settings picks one.
    scope = training_scope(store, params["label_source"], params.get("scope"))
    if scope != "image":
        from medreview.ml.training.case_job import run_case_training

        return run_case_training(context, params, scope)
    context.report(stage="loading images")
    dataset = load_dataset(
        store,
        input_size=params["input_size"],
        progress=lambda done, total: context.report(stage=f"loading images ({done}/{total})"),
        label_source=params["label_source"],
        model_config=get_config(params["architecture"]),
    )
    target_sensitivity = params["target_sensitivity"]
    if target_sensitivity is not None:
        target_sensitivity = float(target_sensitivity)
        if not 0.0 < target_sensitivity <= 1.0:
            raise TrainingError(f"The target sensitivity must be above 0 and at most 1, not {target_sensitivity}.")
        if len(dataset.class_names) != 2:
            raise TrainingError(
                f"A target sensitivity needs two classes; this run has {len(dataset.class_names)}, and each "
                "image is called its most probable class."
            )
    split = split_train_validation_test(
        dataset.patient_keys,
        dataset.labels,
        validation_fraction=float(params["validation_fraction"]),
        test_fraction=float(params["test_fraction"]),
        seed=int(params["seed"]),
        image_keys=dataset.source_sha256s,  # the same files split alike in every store
    )
    train_index, validation_index, test_index = split.train, split.validation, split.test
    config = FitConfig(
        architecture=params["architecture"],
        input_size=dataset.input_size,
        epochs=int(params["epochs"]),
        batch_size=int(params["batch_size"] or automatic_batch_size(len(train_index))),
        learning_rate=float(params["learning_rate"]),
        seed=int(params["seed"]),
    )
    epochs: list[dict[str, Any]] = []
    context.report(
        stage="training",
        total_epochs=config.epochs,
        input_size=dataset.input_size,
        train_images=len(train_index),
        validation_images=len(validation_index),
        test_images=len(test_index),
        epochs=epochs,
    )

    def on_epoch(log: EpochLog) -> None:
        epochs.append(dataclasses.asdict(log))
        context.report(epochs=epochs)

    started = time.monotonic()
    model, _ = fit_model(
        dataset.images[train_index],
        dataset.labels[train_index],
        dataset.images[validation_index],
        dataset.labels[validation_index],
        num_classes=len(dataset.class_names),
        config=config,
        on_epoch=on_epoch,
        should_stop=context.should_stop,
    )
    train_seconds = time.monotonic() - started
    context.report(stage="evaluating")
    validation_probabilities = predict_probabilities(model, dataset.images[validation_index])  # (N_val, C)
    test_probabilities = predict_probabilities(model, dataset.images[test_index]) if split.has_test else None
    prevalence = params["prevalence"]
    unlabelled_probabilities = None
    if prevalence == "estimate":
        context.report(stage="estimating the prevalence from the unlabelled images")
        unlabelled_probabilities = _unlabelled_probabilities(store, model, dataset, params["architecture"])
    metrics = evaluate_model(
        dataset.labels[validation_index],
        validation_probabilities,
        dataset.labels[test_index] if split.has_test else None,
        test_probabilities,
        dataset.class_names,
        target_sensitivity=target_sensitivity,
        seed=config.seed,
        prevalence=prevalence,
        unlabelled_probabilities=unlabelled_probabilities,
    )
    # Which images training resized, and by how much; very different sizes hold the activation back.
    resampling = resampling_report(dataset.image_ids, dataset.source_shapes, dataset.input_size)
    metrics["resampling"] = resampling
    hold = None
    if resampling["mixed_sizes"]:
        if params["confirm_mixed_sizes"]:
            metrics["notes"].append(
                f"The training images' sizes differ by {resampling['size_spread']:.1f}x; the admin confirmed "
                "mixed sizes, so the run may be made active."
            )
        else:
            hold = (
                f"the training images' short sides differ by {resampling['size_spread']:.1f}x (more than "
                f"{SIZE_SPREAD_LIMIT:g}x) and it trained at {dataset.input_size} px; check the resampling on "
                "the Train page, then promote it by hand, or train again confirming mixed sizes"
            )
            metrics["notes"].append(f"Not made active by itself: {hold}.")
    metrics["split"] = split.counts(dataset.labels, dataset.patient_keys, dataset.class_names)
    if not split.has_test:
        metrics["notes"].insert(0, split.no_test_reason(dataset.class_names))
    metrics["train_seconds"] = round(train_seconds, 2)
    metrics["train_images_per_second"] = round(len(train_index) * len(epochs) / max(train_seconds, 1e-9), 1)

    relative_path = f"models/model-{context.job_id}.keras"
    sha256 = save_model_atomic(model, store.data_path(relative_path))
    snapshot = {
        "train_image_ids": [dataset.image_ids[i] for i in train_index],
        "validation_image_ids": [dataset.image_ids[i] for i in validation_index],
        "test_image_ids": [dataset.image_ids[i] for i in test_index],
        "labels": {
            str(image_id): dataset.class_names[label]
            for image_id, label in zip(dataset.image_ids, dataset.labels, strict=True)
        },
    }
    # What the model knows of its inputs: prediction flags an image outside it.
    domain = describe_domain(list(domain_facts(store, dataset.image_ids).values()))
    with store.db.write() as session:
        version = ModelVersion(
            job_id=context.job_id,
            path=relative_path,
            sha256=sha256,
            architecture=config.architecture,
            input_size=dataset.input_size,
            class_names=dataset.class_names,
            metrics=metrics,
            # How a stored image became this model's input: prediction and explanation apply it.
            preprocessing=dataset.preprocessing,
            domain=domain,
            is_active=False,
            activation_reason=WAITING_FOR_EVALUATION,
        )
        session.add(version)
        session.flush()
        version_id = version.id
    context.report(stage="evaluating on the evaluation sets")
    activation = evaluate_and_settle(store, version_id, model, hold=hold)
    context.report(stage="done")
    return {
        "model_version_id": version_id,
        "scope": "image",
        "trained": f"an image model ({config.architecture})",
        "config": dataclasses.asdict(config),
        "metrics": metrics,
        "dataset": snapshot,
        "domain": domain,
        **activation,
    }


def _unlabelled_probabilities(store, model, dataset, architecture: str):  # type: ignore[no-untyped-def]
    """The model's raw outputs (N, C) on up to ESTIMATE_PREVALENCE_IMAGES of the project's unlabelled
    images, prepared as the training images were; unreadable images are left out. None: there are none."""
    import numpy as np

    from medreview.errors import ImagingError
    from medreview.ml.configs import version_preprocessing
    from medreview.ml.training.dataset import prepared_array
    from medreview.reading.reads import unlabelled_image_ids
    from medreview.store.models import Image

    ids = unlabelled_image_ids(store)
    if not ids:
        return None
    if len(ids) > ESTIMATE_PREVALENCE_IMAGES:
        ids = [ids[int(i)] for i in np.linspace(0, len(ids) - 1, ESTIMATE_PREVALENCE_IMAGES)]
    model_config = get_config(architecture)
    recipe = version_preprocessing(dataset.preprocessing, dataset.input_size)
    with store.db.read() as session:
        rows = [(image.sha256, image.media_type) for image in session.query(Image).filter(Image.id.in_(ids))]
    arrays = []
    for sha256, media_type in rows:
        try:
            arrays.append(prepared_array(store, sha256, media_type, model_config, recipe))
        except ImagingError:
            continue
    return predict_probabilities(model, np.stack(arrays)) if arrays else None
