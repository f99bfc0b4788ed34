"""Which model a training run trains, and the labelled cases a case model learns from (no TensorFlow
here: the Train page and ``submit_training`` check these before queueing a run).

A project whose study- or series-scoped classes have at least :data:`MIN_IMAGES_PER_CLASS` labelled
cases in each of two classes trains a case model (:mod:`medreview.ml.training.cases`) for that scope;
otherwise the image model, as before. A run trains one model: ``scope`` in the run's settings picks
one when a project could train both.
"""

from __future__ import annotations

import pandas as pd

from medreview.errors import TrainingError
from medreview.ml.training.dataset import MIN_IMAGES_PER_CLASS, training_table
from medreview.reading.evaluation_sets import evaluation_patients
from medreview.reading.reads import current_labels
from medreview.reading.schema import label_class_scopes
from medreview.store import Store
from medreview.team.settings import get_setting

__all__ = ["CASE_SCOPES", "DEFAULT_ENCODER", "case_training_table", "training_scope"]

CASE_SCOPES = ("study", "series")
# The slice encoder a case model trains with unless the run names one: the one its functional test
# and bench/case_model.py measure (medreview.ml.training.cases.CaseFitConfig.encoder).
DEFAULT_ENCODER = "small_cnn"


def case_training_table(store: Store, scope: str, label_source: str | None = None) -> tuple[pd.DataFrame, list[str]]:
    """The labelled ``scope`` cases training may use (:func:`~medreview.reading.reads.current_labels`
    rows: image_id is the case's key image, case_id the study or series) and the class names in schema
    order. Cases of patients in evaluation sets are left out. TrainingError in plain words when there
    are not enough."""
    if scope not in CASE_SCOPES:
        raise TrainingError(f"a case model is trained on study or series labels, not '{scope}'")
    table = current_labels(store, label_source or get_setting(store, "training_label_source"), scope=scope)
    held_out = table["patient_key"].isin(evaluation_patients(store))
    held_out_note = (
        f"; {int(held_out.sum())} more are of patients in evaluation sets, which training never uses"
        if held_out.any()
        else ""
    )
    table = table[~held_out].reset_index(drop=True)
    scopes = label_class_scopes(store, include_retired=True)
    counts = table["label"].value_counts() if len(table) else pd.Series(dtype=int)
    class_names = [name for name, class_scope in scopes.items() if class_scope == scope and counts.get(name, 0) > 0]
    if len(class_names) < 2:
        raise TrainingError(
            f"need labelled {scope} cases of at least two classes to train a case model "
            f"(labelled so far: {', '.join(f'{k}: {v}' for k, v in counts.items()) or 'none'}{held_out_note})"
        )
    short = [f"'{name}' has {counts[name]}" for name in class_names if counts[name] < MIN_IMAGES_PER_CLASS]
    if short:
        raise TrainingError(
            f"need at least {MIN_IMAGES_PER_CLASS} labelled {scope} cases per class; "
            + ", ".join(short)
            + held_out_note
        )
    table = table[table["label"].isin(class_names)].reset_index(drop=True)
    return table, class_names


def training_scope(store: Store, label_source: str | None = None, scope: str | None = None) -> str:
    """The scope a run trains at: ``scope`` when given (checked: TrainingError if there is not enough
    to train on), else the first of study, series with enough labelled cases, else image."""
    if scope is not None:
        scopes = label_class_scopes(store, include_retired=True)
        if scope not in scopes.values():
            classes = ", ".join(f"{name} ({level})" for name, level in scopes.items()) or "none"
            raise TrainingError(
                f"no class of this project is {scope}-scoped, so nothing trains at {scope} level (classes: {classes})"
            )
        if scope == "image":
            training_table(store, label_source)
        else:
            case_training_table(store, scope, label_source)
        return scope
    scopes = set(label_class_scopes(store, include_retired=True).values())
    case_error: TrainingError | None = None
    for candidate in CASE_SCOPES:
        if candidate in scopes:
            try:
                case_training_table(store, candidate, label_source)
            except TrainingError as error:
                case_error = case_error or error
                continue
            return candidate
    try:
        training_table(store, label_source)
    except TrainingError:
        # A project of study classes only hears what its cases lack, not what its images do.
        if case_error is not None and "image" not in scopes:
            raise case_error from None
        raise
    return "image"
