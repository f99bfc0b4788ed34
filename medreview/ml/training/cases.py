"""Train a case-level model (:class:`~medreview.ml.configs.AttentionMILConfig`) on cases and their labels.

A case is a study or series labelled as a whole ("PE present"): its slices, in order, each prepared
with the slice recipe of the model (:meth:`~medreview.ml.configs.ModelConfig.prepare`), and one label.
:func:`train_case_model` does what the image training job does, per case:

1. splits the cases by patient into train / validation / test
   (:func:`~medreview.ml.training.split.split_train_validation_test`, the image training's split:
   the test part only when every class has enough patients), ordering patients by ``case_keys`` (the
   job passes the store's study or series UIDs) so the same cases split alike;
2. trains with class weights, BatchNorm priming (as :func:`~medreview.ml.training.fit._prime_batchnorm`
   does for images, on the first training cases) and cancellation (``should_stop``), keeping the epoch with the best
   validation AUC (ties: the lower validation loss), as :func:`~medreview.ml.training.fit.fit_model`;
3. calibrates and scores as images are (:func:`~medreview.ml.training.metrics.evaluate_model`: the
   temperature and threshold fitted on validation, the test part scored once with bootstrap
   intervals), the probabilities taken on every slice of each case, as prediction takes them;
4. records the training domain (:func:`~medreview.ml.domain.describe_domain` over the training
   cases' slices) when the caller gives the slices' store facts: prediction flags a case outside it.

Training batches hold whole cases, padded to the longest (a mask keeps padding out of the
attention), and a case longer than the config's ``max_slices`` is thinned to that many slices evenly
spread over it, so a batch's memory is bounded. Thinning may drop a lesion's slices from a training
case; prediction sees every slice.

What the quality test checks (tests/ml/test_case_model.py, bench/case_model.py) is on generated volumes
(:mod:`medreview.ml.synthetic_volumes`): a functional test that the model finds a small lesion in a
few slices and names those slices, not clinical evidence.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import keras
import numpy as np
import tensorflow as tf

from medreview.errors import TrainingError
from medreview.ml.cases import case_inputs, case_probabilities
from medreview.ml.configs import AttentionMILConfig, get_case_config
from medreview.ml.domain import ImageFacts, describe_domain
from medreview.ml.training.fit import (
    EpochLog,
    TrainingCancelled,
    _all_layers,
    _balanced_class_weight,
    _CancelCheck,
    training_targets,
)
from medreview.ml.training.metrics import classification_metrics, evaluate_model
from medreview.ml.training.split import MIN_TEST_PATIENTS_PER_CLASS, PatientSplit, split_train_validation_test

__all__ = ["CaseFitConfig", "CaseTrainingResult", "fit_case_model", "train_case_model"]


@dataclass(frozen=True)
class CaseFitConfig:
    """Everything that decides a case-model training run besides the data; stored with the run."""

    architecture: str = "attention_mil"  # a name in medreview.ml.configs.CASE_CONFIGS
    encoder: str = "small_cnn"  # the slice CNN (AttentionMILConfig.encoders)
    input_size: int = 32  # slice side in pixels
    max_slices: int = 64  # a longer training case is thinned to this many slices
    epochs: int = 10
    batch_size: int = 8  # cases per step
    learning_rate: float = 1e-3
    seed: int = 0
    class_weighting: bool = True
    deterministic: bool = True

    def case_config(self) -> AttentionMILConfig:
        return get_case_config(self.architecture, self.encoder, self.max_slices)


@dataclass
class CaseTrainingResult:
    """A trained case model and what the training job stores with it.

    ``metrics``: :func:`~medreview.ml.training.metrics.evaluate_model`'s dict (``temperature`` and
    ``threshold`` are what prediction applies), plus ``split`` (cases and patients per part),
    ``train_seconds`` and ``case_model`` (architecture, encoder, max_slices, stack: the arguments of
    :func:`~medreview.ml.configs.get_case_config` for the saved model); ``domain``: the training
    slices' domain, None when no facts were given; ``recipe``: the slice preprocessing to store on
    the model version.
    """

    model: keras.Model
    config: CaseFitConfig
    split: PatientSplit
    logs: list[EpochLog]
    metrics: dict[str, Any]
    domain: dict[str, Any] | None
    recipe: dict[str, Any]


def train_case_model(
    cases: Sequence[np.ndarray],
    labels: Sequence[int],
    patient_keys: Sequence[str],
    class_names: Sequence[str],
    config: CaseFitConfig,
    case_keys: Sequence[str] | None = None,
    slice_facts: Sequence[Sequence[ImageFacts]] | None = None,
    validation_fraction: float = 0.2,
    test_fraction: float = 0.2,
    target_sensitivity: float | None = None,
    min_test_patients_per_class: int = MIN_TEST_PATIENTS_PER_CLASS,
    on_epoch: Callable[[EpochLog], None] | None = None,
    should_stop: Callable[[], bool] | None = None,
) -> CaseTrainingResult:
    """Split, train, calibrate and score a case model (see the module docstring).

    ``cases``: one (K_i, S, S) float32 array in [0, 1] per case, ``S == config.input_size``, slices in
    order; ``labels``: (N,) class indices into ``class_names``; ``patient_keys``: the case's patient
    (pseudonym); ``case_keys``: a stable key per case for the split order; ``slice_facts``: per case,
    the store's facts of each slice, for the training domain.
    """
    labels_array = np.asarray(labels, dtype=np.int64).reshape(-1)
    if len(cases) != len(labels_array) or len(patient_keys) != len(labels_array):
        raise TrainingError(
            f"Got {len(cases)} cases, {len(labels_array)} labels and {len(patient_keys)} patients; "
            "they must match one to one."
        )
    if slice_facts is not None and len(slice_facts) != len(cases):
        raise TrainingError(f"Got slice facts for {len(slice_facts)} cases but {len(cases)} cases.")
    split = split_train_validation_test(
        patient_keys,
        labels_array,
        validation_fraction=validation_fraction,
        test_fraction=test_fraction,
        seed=config.seed,
        image_keys=case_keys,
        min_test_patients_per_class=min_test_patients_per_class,
    )
    case_config = config.case_config()
    started = time.monotonic()
    model, logs = fit_case_model(
        [cases[i] for i in split.train],
        labels_array[split.train],
        [cases[i] for i in split.validation],
        labels_array[split.validation],
        num_classes=len(class_names),
        config=config,
        on_epoch=on_epoch,
        should_stop=should_stop,
    )
    train_seconds = time.monotonic() - started
    validation_probabilities, _ = case_probabilities(model, case_config, [cases[i] for i in split.validation])
    test_probabilities = (
        case_probabilities(model, case_config, [cases[i] for i in split.test])[0] if split.has_test else None
    )
    metrics = evaluate_model(
        labels_array[split.validation],
        validation_probabilities,
        labels_array[split.test] if split.has_test else None,
        test_probabilities,
        class_names,
        target_sensitivity=target_sensitivity,
        seed=config.seed,
    )
    metrics["split"] = _case_counts(split.counts(labels_array, patient_keys, class_names))
    if not split.has_test:
        metrics["notes"].insert(0, split.no_test_reason(class_names).replace("images", "cases"))
    metrics["train_seconds"] = round(train_seconds, 2)
    # What get_case_config needs to rebuild the config of the saved model (no schema change needed:
    # the model version's metrics carry it).
    metrics["case_model"] = {
        "architecture": config.architecture,
        "encoder": config.encoder,
        "max_slices": config.max_slices,
        "stack": case_config.stack,
    }
    domain = None
    if slice_facts is not None:
        domain = describe_domain([facts for i in split.train for facts in slice_facts[i]])
    return CaseTrainingResult(
        model=model,
        config=config,
        split=split,
        logs=logs,
        metrics=metrics,
        domain=domain,
        recipe=case_config.recipe(config.input_size),
    )


def fit_case_model(
    train_cases: Sequence[np.ndarray],
    y_train: np.ndarray,
    validation_cases: Sequence[np.ndarray],
    y_val: np.ndarray,
    num_classes: int,
    config: CaseFitConfig,
    on_epoch: Callable[[EpochLog], None] | None = None,
    should_stop: Callable[[], bool] | None = None,
) -> tuple[keras.Model, list[EpochLog]]:
    """Train ``config``'s case model; return the model of the epoch with the best validation AUC and
    the epoch logs. Cases as in :func:`train_case_model`; ``y_*``: (N,) int class indices."""
    if config.epochs < 1 or config.batch_size < 1 or config.learning_rate <= 0:
        raise TrainingError("Epochs, batch size and learning rate must be positive.")
    y_train = _checked_labels(y_train, len(train_cases), num_classes, "training")
    y_val = _checked_labels(y_val, len(validation_cases), num_classes, "validation")
    case_config = config.case_config()
    train_slices, train_mask, _ = case_inputs(train_cases, case_config, config.input_size, thin=True)

    keras.utils.set_random_seed(config.seed)
    if config.deterministic:
        tf.config.experimental.enable_op_determinism()
    model = case_config.build(config.input_size, num_classes, seed=config.seed)
    _prime_batchnorm(model, train_slices, train_mask, config.batch_size)
    train_model = case_config.training_model(model)
    train_model.compile(optimizer=keras.optimizers.Adam(config.learning_rate), loss="categorical_crossentropy")

    def settle_batchnorm() -> None:
        _prime_batchnorm(model, train_slices, train_mask, config.batch_size)

    monitor = _CaseEpochMonitor(model, case_config, validation_cases, y_val, num_classes, on_epoch, settle_batchnorm)
    callbacks: list[keras.callbacks.Callback] = [monitor]
    cancel = _CancelCheck(should_stop) if should_stop is not None else None
    if cancel is not None:
        if should_stop():
            raise TrainingCancelled("Training was cancelled before it started.")
        callbacks.insert(0, cancel)
    try:
        train_model.fit(
            [train_slices, train_mask],
            training_targets(y_train, num_classes),
            batch_size=config.batch_size,
            epochs=config.epochs,
            class_weight=_balanced_class_weight(y_train, num_classes) if config.class_weighting else None,
            shuffle=True,
            callbacks=callbacks,
            verbose=0,
        )
    finally:
        if cancel is not None:
            cancel.stop()
    if cancel is not None and cancel.cancelled:
        raise TrainingCancelled(f"Training was cancelled during epoch {len(monitor.logs) + 1}.")
    monitor.restore_best()
    return model, monitor.logs


def _prime_batchnorm(model: keras.Model, slices: np.ndarray, mask: np.ndarray, batch_size: int) -> None:
    """Start every BatchNormalization layer's moving statistics at those of the first training cases
    under the initial weights, as :func:`medreview.ml.training.fit._prime_batchnorm` does for images
    (why: see there and BatchNormCNNConfig): one forward pass in training mode with momentum 0.
    ``slices`` (N, K, S, S, stack) and ``mask`` (N, K): the padded training inputs."""
    norms = [layer for layer in _all_layers(model) if isinstance(layer, keras.layers.BatchNormalization)]
    if not norms:
        return
    per_case = int(np.prod(slices.shape[1:4]))
    count = max(batch_size, min(len(slices), (1 << 20) // max(per_case, 1)))  # about 4 MB of input at most
    momenta = [layer.momentum for layer in norms]
    try:
        for layer in norms:
            layer.momentum = 0.0
        model([tf.constant(slices[:count]), tf.constant(mask[:count])], training=True)
    finally:
        for layer, momentum in zip(norms, momenta, strict=True):
            layer.momentum = momentum


def _checked_labels(y: np.ndarray, count: int, num_classes: int, name: str) -> np.ndarray:
    y = np.asarray(y, dtype=np.int64).reshape(-1)
    if count == 0:
        raise TrainingError(f"The {name} set has no cases.")
    if len(y) != count:
        raise TrainingError(f"Got {count} {name} cases but {len(y)} labels.")
    if y.min() < 0 or y.max() >= num_classes:
        raise TrainingError(f"The {name} labels must be class indices between 0 and {num_classes - 1}.")
    return y


def _case_counts(counts: dict[str, Any]) -> dict[str, Any]:
    """:meth:`PatientSplit.counts` speaks of images; here each entry is a case."""
    renamed: dict[str, Any] = {}
    for part, value in counts.items():
        if isinstance(value, dict) and "images" in value:
            value = {
                "cases": value["images"],
                "patients": value["patients"],
                "cases_per_class": value["images_per_class"],
            }
        renamed[part] = value
    return renamed


class _CaseEpochMonitor(keras.callbacks.Callback):
    """Scores the validation cases after every epoch (all their slices, as prediction does), reports
    an :class:`EpochLog` and keeps the best epoch's weights: best validation AUC, ties broken by the
    lower validation loss (see fit._EpochMonitor for why). Validation runs in the training thread:
    case batches are few and large, unlike the image training's.

    Before scoring, the BatchNorm layers' moving statistics are set to those of the training cases
    under the epoch's final weights (``settle_batchnorm``, "precise BN"). A moving average at momentum
    0.9 over 15 steps an epoch lagged the weights: on the generated lesion volumes the validation
    loss jumped between 0.8 and 4.5 from epoch to epoch and every validation case got the same call,
    while the ranking (AUC) was already good. The best epoch keeps its statistics for inference."""

    def __init__(self, model, case_config, validation_cases, y_val, num_classes, on_epoch, settle_batchnorm) -> None:
        super().__init__()
        self.settle_batchnorm = settle_batchnorm
        self.case_model = model
        self.case_config = case_config
        self.validation_cases = validation_cases
        self.y_val = y_val
        self.class_names = [str(c) for c in range(num_classes)]
        self.on_epoch = on_epoch
        self.logs: list[EpochLog] = []
        self.best_score: tuple[float, float] = (-math.inf, -math.inf)
        self.best_weights: list[np.ndarray] | None = None
        self.epoch_started = 0.0

    def on_epoch_begin(self, epoch, logs=None):
        self.epoch_started = time.perf_counter()

    def on_epoch_end(self, epoch, logs=None):
        self.settle_batchnorm()
        probabilities, _ = case_probabilities(self.case_model, self.case_config, self.validation_cases)
        probabilities = probabilities.astype(np.float64)  # (N_val, C)
        true_class = probabilities[np.arange(len(self.y_val)), self.y_val]
        val_loss = float(-np.mean(np.log(np.clip(true_class, 1e-7, 1.0))))
        metrics = classification_metrics(self.y_val, probabilities, self.class_names)
        entry = EpochLog(
            epoch=epoch + 1,
            loss=float((logs or {}).get("loss", float("nan"))),
            val_loss=val_loss,
            val_auc=float(metrics["roc_auc"]) if metrics["roc_auc"] is not None else float("nan"),
            val_accuracy=float(metrics["accuracy"]),
            seconds=time.perf_counter() - self.epoch_started,
        )
        self.logs.append(entry)
        auc = entry.val_auc if not math.isnan(entry.val_auc) else -math.inf
        score = (auc, -entry.val_loss)
        if score > self.best_score:
            self.best_score = score
            self.best_weights = [np.array(w) for w in self.case_model.get_weights()]
        if self.on_epoch is not None:
            self.on_epoch(entry)

    def restore_best(self) -> None:
        if self.best_weights is not None:
            self.case_model.set_weights(self.best_weights)
