"""Train a classifier on in-memory arrays, save and load it, and predict with it.

The job orchestration loads the labelled images from the store, splits them by patient
(:mod:`medreview.training.split`), resizes them, and calls :func:`fit_model`; this module knows nothing
about the database. Progress goes out through ``on_epoch``; cancellation comes in through
``should_stop``.
"""

from __future__ import annotations

import hashlib
import os
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import keras
import numpy as np
import tensorflow as tf

from medreview.errors import TrainingError
from medreview.training import architectures
from medreview.training.metrics import classification_metrics

__all__ = [
    "EpochLog",
    "FitConfig",
    "TrainingCancelled",
    "fit_model",
    "load_model",
    "predict_probabilities",
    "save_model_atomic",
]


@dataclass(frozen=True)
class FitConfig:
    """Everything that decides a training run besides the data; stored with the run."""

    architecture: str = "small_cnn"
    input_size: int = 28
    epochs: int = 10
    batch_size: int = 64
    learning_rate: float = 1e-3
    seed: int = 0
    # Weight each class by n / (classes * count) so the minority class counts as much as the majority.
    class_weighting: bool = True
    # Light augmentation: small shifts, zoom and contrast. Never flips: a flipped chest film swaps the
    # patient's left and right (situs, the heart's side), which is a different finding.
    augment: bool = False
    # Seeded and op-deterministic: the same data and config give the same weights (about 15% slower).
    deterministic: bool = True


@dataclass
class EpochLog:
    """What one finished epoch reports to the UI."""

    epoch: int  # 1-based
    loss: float  # mean training loss (class-weighted when class_weighting is on)
    val_loss: float  # mean cross-entropy on the validation set, unweighted
    val_auc: float  # ROC AUC (scikit-learn, exact) on the validation set; NaN when it has one class
    val_accuracy: float
    seconds: float  # wall time of the epoch, validation included


class TrainingCancelled(TrainingError):
    """The user cancelled the run; no model was produced."""


def fit_model(
    x_train: np.ndarray,
    y_train: np.ndarray,
    x_val: np.ndarray,
    y_val: np.ndarray,
    num_classes: int,
    config: FitConfig,
    on_epoch: Callable[[EpochLog], None] | None = None,
    should_stop: Callable[[], bool] | None = None,
) -> tuple[keras.Model, list[EpochLog]]:
    """Train ``config.architecture`` and return the model with the best validation AUC, and the logs.

    ``x_*``: (N, S, S) or (N, S, S, 1) float32 in [0, 1] with ``S == config.input_size``; ``y_*``: (N,)
    int class indices. ``on_epoch`` is called after every epoch; ``should_stop`` is polled after every
    batch and, once it returns True, training stops and :class:`TrainingCancelled` is raised.

    Seeding is process-wide: ``keras.utils.set_random_seed(config.seed)`` and, with
    ``config.deterministic``, ``tf.config.experimental.enable_op_determinism()`` (which cannot be turned
    off again in this process).
    """
    x_train = _as_model_input(x_train, config.input_size, "training")
    x_val = _as_model_input(x_val, config.input_size, "validation")
    y_train = _as_labels(y_train, x_train.shape[0], num_classes, "training")
    y_val = _as_labels(y_val, x_val.shape[0], num_classes, "validation")
    if config.epochs < 1 or config.batch_size < 1 or config.learning_rate <= 0:
        raise TrainingError("Epochs, batch size and learning rate must be positive.")

    keras.utils.set_random_seed(config.seed)
    if config.deterministic:
        tf.config.experimental.enable_op_determinism()

    model = architectures.build_model(config.architecture, config.input_size, num_classes, seed=config.seed)
    train_model = _with_augmentation(model, config) if config.augment else model
    train_model.compile(
        optimizer=keras.optimizers.Adam(learning_rate=config.learning_rate),
        loss=keras.losses.SparseCategoricalCrossentropy(),
    )
    class_weight = _balanced_class_weight(y_train, num_classes) if config.class_weighting else None

    cancel = _CancelCheck(should_stop) if should_stop is not None else None
    monitor = _EpochMonitor(model, x_val, y_val, num_classes, on_epoch, cancel)
    callbacks: list[keras.callbacks.Callback] = [monitor]
    if cancel is not None:
        if should_stop():
            raise TrainingCancelled("Training was cancelled before it started.")
        # Before the monitor, so that a cancel in the last batch skips that epoch's validation.
        callbacks.insert(0, cancel)

    train_model.fit(
        x_train,
        y_train,
        batch_size=config.batch_size,
        epochs=config.epochs,
        shuffle=True,
        class_weight=class_weight,
        callbacks=callbacks,
        verbose=0,
    )
    if cancel is not None and cancel.cancelled:
        raise TrainingCancelled(f"Training was cancelled during epoch {len(monitor.logs) + 1}.")
    if monitor.best_weights is not None:
        model.set_weights(monitor.best_weights)
    return model, monitor.logs


def save_model_atomic(model: keras.Model, path: Path) -> str:
    """Write ``model`` to ``path`` (a ``.keras`` file) so that no reader ever sees half a file.

    The model is saved to a temporary file in the same folder, flushed to disk and renamed over
    ``path`` in one step. Returns the SHA-256 hex digest of the final file.
    """
    path = Path(path)
    if path.suffix != ".keras":
        raise TrainingError(f"A model file must end in .keras, not {path.name}.")
    path.parent.mkdir(parents=True, exist_ok=True)
    descriptor, temporary_name = tempfile.mkstemp(prefix=f".{path.stem}.", suffix=".keras", dir=path.parent)
    os.close(descriptor)
    temporary = Path(temporary_name)
    try:
        model.save(temporary)
        digest = hashlib.sha256()
        with open(temporary, "rb+") as file:
            for chunk in iter(lambda: file.read(1 << 20), b""):
                digest.update(chunk)
            os.fsync(file.fileno())
        os.replace(temporary, path)
    except BaseException:
        temporary.unlink(missing_ok=True)
        raise
    _fsync_directory(path.parent)
    return digest.hexdigest()


def load_model(path: Path) -> keras.Model:
    """Load a ``.keras`` file that this app wrote, in Keras' safe mode, without its optimizer."""
    path = Path(path)
    if not path.is_file():
        raise TrainingError(f"The model file {path} does not exist.")
    try:
        return keras.models.load_model(path, safe_mode=True, compile=False)
    except (ValueError, TypeError, OSError) as error:
        raise TrainingError(f"The model file {path.name} could not be loaded: {error}") from error


def predict_probabilities(model: keras.Model, x: np.ndarray, batch_size: int = 64) -> np.ndarray:
    """Class probabilities (N, num_classes) float32 for images (N, S, S) or (N, S, S, 1) in [0, 1]."""
    input_size = int(model.inputs[0].shape[1])
    x = _as_model_input(x, input_size, "input")
    if x.shape[0] == 0:
        return np.zeros((0, int(model.outputs[0].shape[-1])), dtype=np.float32)
    return np.asarray(model.predict(x, batch_size=batch_size, verbose=0), dtype=np.float32)


def _as_model_input(x: np.ndarray, input_size: int, name: str) -> np.ndarray:
    """(N, S, S) or (N, S, S, 1) -> (N, S, S, 1) float32, checking the size."""
    x = np.asarray(x, dtype=np.float32)
    if x.ndim == 3:
        x = x[..., np.newaxis]
    if x.ndim != 4 or x.shape[-1] != 1 or x.shape[1:3] != (input_size, input_size):
        raise TrainingError(
            f"The {name} images have shape {x.shape[1:]}; expected {input_size}x{input_size} grey images."
        )
    return x


def _as_labels(y: np.ndarray, count: int, num_classes: int, name: str) -> np.ndarray:
    y = np.asarray(y).reshape(-1)
    if y.shape[0] != count:
        raise TrainingError(f"Got {count} {name} images but {y.shape[0]} labels.")
    if count == 0:
        raise TrainingError(f"The {name} set is empty.")
    y = y.astype(np.int64)
    if y.min() < 0 or y.max() >= num_classes:
        raise TrainingError(f"The {name} labels must be class indices between 0 and {num_classes - 1}.")
    return y


def _balanced_class_weight(y: np.ndarray, num_classes: int) -> dict[int, float]:
    counts = np.bincount(y, minlength=num_classes)
    return {c: float(len(y) / (num_classes * counts[c])) if counts[c] else 0.0 for c in range(num_classes)}


def _with_augmentation(model: keras.Model, config: FitConfig) -> keras.Model:
    """Wrap ``model`` behind random layers that act only in training; the saved model stays plain."""
    inputs = keras.Input(shape=(config.input_size, config.input_size, 1))
    x = keras.layers.RandomTranslation(0.05, 0.05, fill_mode="constant", seed=config.seed)(inputs)
    x = keras.layers.RandomZoom(0.05, fill_mode="constant", seed=config.seed + 1)(x)
    x = keras.layers.RandomContrast(0.1, seed=config.seed + 2)(x)
    return keras.Model(inputs, model(x), name="augmented_training_model")


def _fsync_directory(directory: Path) -> None:
    # Makes the rename itself durable; not possible on every platform (Windows), which is fine.
    try:
        descriptor = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(descriptor)
    except OSError:
        pass
    finally:
        os.close(descriptor)


class _EpochMonitor(keras.callbacks.Callback):
    """Validates once per epoch (one predict pass), reports an EpochLog and keeps the best weights."""

    def __init__(
        self,
        model: keras.Model,
        x_val: np.ndarray,
        y_val: np.ndarray,
        num_classes: int,
        on_epoch: Callable[[EpochLog], None] | None,
        cancel: _CancelCheck | None,
    ) -> None:
        super().__init__()
        self.cancel = cancel
        # The plain model, not the augmentation wrapper that fit() sets as self.model.
        self.plain_model = model
        self.x_val = x_val
        self.y_val = y_val
        self.class_names = [str(c) for c in range(num_classes)]
        self.on_epoch = on_epoch
        # Validation is inference only: larger batches than training cost little memory and save steps.
        pixels = x_val.shape[1] * x_val.shape[2]
        self.predict_batch_size = max(64, min(1024, (1 << 20) // pixels))
        self.logs: list[EpochLog] = []
        self.best_score = -np.inf
        self.best_weights: list[np.ndarray] | None = None
        self.epoch_started = 0.0

    def on_epoch_begin(self, epoch, logs=None):
        self.epoch_started = time.perf_counter()

    def on_epoch_end(self, epoch, logs=None):
        if self.cancel is not None and self.cancel.cancelled:
            return  # a partial epoch: fit_model raises TrainingCancelled right after
        probabilities = self.plain_model.predict(self.x_val, batch_size=self.predict_batch_size, verbose=0)
        probabilities = np.asarray(probabilities, dtype=np.float64)  # (N_val, C)
        true_class_probability = probabilities[np.arange(len(self.y_val)), self.y_val]
        val_loss = float(-np.mean(np.log(np.clip(true_class_probability, 1e-7, 1.0))))
        metrics = classification_metrics(self.y_val, probabilities, self.class_names)
        val_auc = metrics["roc_auc"] if metrics["roc_auc"] is not None else float("nan")
        entry = EpochLog(
            epoch=epoch + 1,
            loss=float((logs or {}).get("loss", float("nan"))),
            val_loss=val_loss,
            val_auc=float(val_auc),
            val_accuracy=float(metrics["accuracy"]),
            seconds=time.perf_counter() - self.epoch_started,
        )
        self.logs.append(entry)
        # Best by AUC; with a single-class validation set AUC is undefined, so fall back to the loss.
        score = entry.val_auc if not np.isnan(entry.val_auc) else -entry.val_loss
        if score > self.best_score:
            self.best_score = score
            self.best_weights = [np.array(w) for w in self.plain_model.get_weights()]
        if self.on_epoch is not None:
            self.on_epoch(entry)


class _CancelCheck(keras.callbacks.Callback):
    """Polls ``should_stop`` after every batch; fit() ends after the current batch once it is True."""

    def __init__(self, should_stop: Callable[[], bool]) -> None:
        super().__init__()
        self.should_stop = should_stop
        self.cancelled = False

    def on_train_batch_end(self, batch, logs=None):
        if self.should_stop():
            self.cancelled = True
            self.model.stop_training = True
