"""Predictions: run the active model (in the worker) and read the results (in the UI).

The prediction job stores, per image, the class probabilities and a Grad-CAM map per class
(``(C, h, w)`` float16 in [0, 1], a rebuildable cache file under ``<data dir>/cache/gradcam``),
computed on frame 0 at the model's preprocessing. The maps drawn over the frame and window a reader
has chosen are computed for that view, on demand (:mod:`medreview.ml.explanations`).

Each image is also compared with the domain the version was trained on (:mod:`medreview.ml.domain`):
one outside it is stored flagged, with the reason, and is no confident call: the tables say
"outside the training data" instead of its class (:func:`shown_calls`), it neither agrees nor
disagrees with its label, and it is not offered as the next image to label.
"""

from __future__ import annotations

import io
from collections import OrderedDict
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd
from sqlalchemy import func, select

from medreview.errors import ImagingError, JobCancelled, MedreviewError, NotFoundError, PermissionDeniedError
from medreview.jobs import JobContext, submit_job
from medreview.ml.configs import get_config, version_preprocessing
from medreview.ml.domain import OUTSIDE_TRAINING_DATA, domain_facts, outside_domain
from medreview.ml.kinds import PREDICTION_JOB
from medreview.ml.registry import active_model
from medreview.reading.cases import case_of
from medreview.reading.consensus import accept_by_consensus
from medreview.reading.reads import can_see_others, current_labels, unlabelled_image_ids, visible_image_ids
from medreview.store import Store
from medreview.store.blobs import atomic_write, sha256_hex
from medreview.store.db import upsert
from medreview.store.models import Image, ModelVersion, Prediction, Series, Study, utcnow
from medreview.team.roles import Actor, require

if TYPE_CHECKING:
    import keras

    from medreview.imaging.decoding import DecodedImage

__all__ = [
    "PREDICTION_JOB",
    "SCOPES",
    "case_predictions_table",
    "case_scope",
    "case_slices",
    "disagreements",
    "hidden_predictions",
    "image_call",
    "load_heatmaps",
    "load_version_model",
    "most_uncertain",
    "network_input",
    "predictions_table",
    "run_prediction_job",
    "shown_calls",
    "submit_predictions",
]

SCOPES = ("unlabelled", "all", "selected")
# The job kind of a prediction run (medreview.ml.runners maps it to run_prediction_job).
BATCH = 64
# Models loaded in this (worker) process, by (model version id, file SHA-256), most recent last: an
# on-demand map per view a reader opens must not reload the model each time.
_loaded_models: OrderedDict[tuple[int, str], keras.Model] = OrderedDict()
_LOADED_MODELS_KEPT = 2


def submit_predictions(
    store: Store,
    actor: Actor,
    scope: str = "unlabelled",
    image_ids: list[int] | None = None,
    model_version_id: int | None = None,
) -> int:
    """Queue a prediction job with the active model (or ``model_version_id``: a case model kept
    beside it); returns the job id. A case model predicts the cases (studies or series) of the
    images: all, the unlabelled ones, or those holding the selected images."""
    require(actor, "reviewer", "run the model")
    if scope not in SCOPES:
        raise MedreviewError(f"unknown scope '{scope}' (choose one of {', '.join(SCOPES)})")
    if scope == "selected" and not image_ids:
        raise MedreviewError("select at least one image to predict")
    model = active_model(store) if model_version_id is None else _version(store, model_version_id)
    if model is None:
        raise MedreviewError(
            "no active model yet: train one on the Train page first"
            if model_version_id is None
            else f"model version {model_version_id} does not exist"
        )
    params = {"scope": scope, "image_ids": list(image_ids or []), "model_version_id": model.id}
    return submit_job(store, PREDICTION_JOB, params, created_by=actor.username)


def _target_images(store: Store, scope: str, image_ids: list[int]) -> list[tuple[int, str, str]]:
    with store.db.read() as session:
        query = select(Image.id, Image.sha256, Image.media_type).order_by(Image.id)
        if scope == "selected":
            query = query.where(Image.id.in_(image_ids))
        rows = [tuple(row) for row in session.execute(query)]
    if scope == "unlabelled":
        unlabelled = set(unlabelled_image_ids(store))
        rows = [row for row in rows if row[0] in unlabelled]
    return rows  # type: ignore[return-value]


def run_prediction_job(context: JobContext) -> dict[str, Any]:
    # TensorFlow enters here, in the worker process only.
    from medreview.imaging.decoding import decode_file
    from medreview.ml.explain import grad_cam
    from medreview.ml.training.fit import predict_probabilities
    from medreview.ml.training.metrics import calibrated_calls, calibrator_of

    params = context.params()
    store = context.store
    with store.db.read() as session:
        version = session.get(ModelVersion, params["model_version_id"])
        if version is None:
            raise NotFoundError("the model version for this job no longer exists")
    model = load_version_model(store, version)
    if case_scope(version) is not None:
        result = _run_case_prediction(context, version, model)
        _accept_by_consensus(context, version)
        return result
    config = get_config(version.architecture)
    targets = _target_images(store, params["scope"], params.get("image_ids", []))
    total = len(targets)
    context.report(stage="predicting", done=0, total=total)
    skipped: list[str] = []
    done = 0
    for start in range(0, total, BATCH):
        if context.should_stop():
            raise JobCancelled("cancelled by the user")
        batch = targets[start : start + BATCH]
        arrays, kept = [], []
        for image_id, sha256, media_type in batch:
            try:
                arrays.append(network_input(version, decode_file(store.blobs.path_for(sha256), media_type)))
                kept.append(image_id)
            except ImagingError as error:
                skipped.append(f"image {image_id}: {error}")
        if kept:
            x = np.stack(arrays)  # (B, S, S) float32 in [0, 1]
            # The version's calibration and operating threshold, chosen on validation at training.
            probabilities, called = calibrated_calls(
                predict_probabilities(model, x),
                calibrator_of(version.metrics),
                version.metrics.get("threshold"),
            )  # (B, C) calibrated, (B,) class index
            # One Grad-CAM map per class: (C, B, h, w) -> per image (C, h, w)
            maps = np.stack(
                [
                    grad_cam(model, x, class_index=c, layer_name=config.feature_layer, logits_layer=config.logits_layer)
                    for c in range(len(version.class_names))
                ],
                axis=1,
            )
            facts = domain_facts(store, kept)
            outside = [outside_domain(version.domain, facts[image_id]) for image_id in kept]
            _store_batch(store, version, kept, probabilities, called, maps, outside)
        done += len(batch)
        context.report(done=done, total=total)
    _accept_by_consensus(context, version)
    return {"model_version_id": version.id, "predicted": done - len(skipped), "skipped": skipped}


def _accept_by_consensus(context: JobContext, version: ModelVersion) -> None:
    """The active version's calls are stored: the consensus auto-accept rule (when the project has
    it on) may now settle cases whose readers already agreed (medreview.reading.consensus)."""
    if version.is_active:
        with context.store.db.write() as session:
            accept_by_consensus(context.store, session, f"prediction job {context.job_id}")


def case_scope(version: ModelVersion) -> str | None:
    """The scope a model version predicts at: "study" or "series" for a case model, None for an
    image model (its metrics' ``scope``, written by the training job)."""
    scope = (version.metrics or {}).get("scope")
    return scope if scope in ("study", "series") else None


def _target_cases(store: Store, case_level: str, scope: str, image_ids: list[int]) -> list[int]:
    """The case ids a case-model prediction run covers: every case of ``case_level`` in the store
    ("all"), those nobody has read yet ("unlabelled"), or those holding the selected images."""
    if scope == "selected":
        return sorted({case_of(store, int(image_id), case_level)[0] for image_id in image_ids})
    with store.db.read() as session:
        if case_level == "study":
            query = select(Study.id).where(select(Series.id).where(Series.study_id == Study.id).exists())
        else:
            query = select(Series.id).where(select(Image.id).where(Image.series_id == Series.id).exists())
        case_ids = [int(case_id) for case_id in session.scalars(query)]
    if scope == "unlabelled":
        read = set(current_labels(store, "all", scope=case_level)["case_id"])
        case_ids = [case_id for case_id in case_ids if case_id not in read]
    return sorted(case_ids)


# Cases predicted per step of a case-model prediction run (a step's slices go to the model together).
CASE_BATCH = 8
# Top slices named (and mapped) per case.
TOP_SLICES = 3
# The maps stored for each top slice (medreview.ml.explanations.METHOD_TITLES names them).
CASE_MAP_METHODS = ("gradcam", "hirescam")


def _run_case_prediction(context: JobContext, version: ModelVersion, model: keras.Model) -> dict[str, Any]:
    """A case model's run: per case, the calibrated call at its key image, each slice's attention,
    the top slices and their Grad-CAM maps (one per class), stored as
    ``cache/cases/<version>-<scope>-<case>.npz`` (``image_ids`` (K,), ``attention`` (K,), ``top``
    (k,) slice indices, ``maps_gradcam`` and ``maps_hirescam`` (C, k, h, w) float16)."""
    from medreview.ml.cases import case_volumes, predict_cases, top_slice_maps, version_case_config
    from medreview.ml.training.metrics import calibrator_of

    params = context.params()
    store = context.store
    level = case_scope(version)
    assert level is not None
    config = version_case_config(version)
    recipe = version_preprocessing(version.preprocessing, version.input_size)
    targets = _target_cases(store, level, params["scope"], params.get("image_ids", []))
    total = len(targets)
    context.report(stage=f"predicting {level} cases", done=0, total=total)
    skipped: list[str] = []
    done = 0
    for start in range(0, total, CASE_BATCH):
        if context.should_stop():
            raise JobCancelled("cancelled by the user")
        volumes, members, kept = [], [], []
        for case_id in targets[start : start + CASE_BATCH]:
            try:
                [volume], [image_ids] = case_volumes(store, level, [case_id], config, recipe)
            except (ImagingError, NotFoundError) as error:
                skipped.append(f"{level} {case_id}: {error}")
                continue
            volumes.append(volume)
            members.append(image_ids)
            kept.append(case_id)
        if kept:
            facts = domain_facts(store, [image_id for image_ids in members for image_id in image_ids])
            calls = predict_cases(
                model,
                config,
                volumes,
                temperature=calibrator_of(version.metrics),
                threshold=version.metrics.get("threshold"),
                top=TOP_SLICES,
                domain=version.domain,
                slice_facts=[[facts[image_id] for image_id in image_ids] for image_ids in members],
            )
            with store.db.write() as session:
                for case_id, volume, image_ids, call in zip(kept, volumes, members, calls, strict=True):
                    # (C, k, h, w) per method: Grad-CAM, and HiResCAM beside it (a model trained through
                    # the job on 60 generated studies gave empty Grad-CAM maps of the positive class on
                    # the top slices of all 30 positives; HiResCAM's were not empty but peaked on the
                    # lesion in 4 of 30).
                    maps = {
                        method: np.stack(
                            [
                                top_slice_maps(model, config, volume, call.top_slices, class_index=c, method=method)
                                for c in range(len(version.class_names))
                            ]
                        )
                        for method in CASE_MAP_METHODS
                    }
                    relative = f"cache/cases/{version.id}-{level}-{case_id}.npz"
                    buffer = io.BytesIO()
                    np.savez(
                        buffer,
                        image_ids=np.asarray(image_ids, dtype=np.int64),
                        attention=call.attention.astype(np.float32),
                        top=np.asarray(call.top_slices, dtype=np.int64),
                        **{f"maps_{method}": maps[method].astype(np.float16) for method in CASE_MAP_METHODS},
                    )
                    atomic_write(store.data_path(relative), buffer.getvalue())
                    best = call.called
                    values = {
                        "scope": level,
                        "case_id": case_id,
                        "predicted_class": version.class_names[best],
                        "probability": float(call.probabilities[best]),
                        "probabilities": {
                            name: float(p) for name, p in zip(version.class_names, call.probabilities, strict=True)
                        },
                        "heatmap_path": relative,
                        "out_of_distribution": call.outside_reason is not None,
                        "out_of_distribution_reason": call.outside_reason,
                        "created_at": utcnow(),
                    }
                    upsert(
                        session,
                        Prediction,
                        {"image_id": image_ids[0], "model_version_id": version.id, **values},
                        conflict_columns=["image_id", "model_version_id"],
                        update_columns=list(values),
                    )
        done += len(targets[start : start + CASE_BATCH])
        context.report(done=done, total=total)
    return {"model_version_id": version.id, "scope": level, "predicted": done - len(skipped), "skipped": skipped}


def network_input(version: ModelVersion, image: DecodedImage) -> np.ndarray:
    """The input a model version is given for a decoded image: frame 0 at the image's default
    display through the recipe the version was trained with, (S, S) float32 in [0, 1]. The
    prediction job and the maps of a view (medreview.ml.explanations.view_image) both come here."""
    recipe = version_preprocessing(version.preprocessing, version.input_size)
    return get_config(version.architecture).prepare(image, recipe)


def load_version_model(store: Store, version: ModelVersion) -> keras.Model:
    """The Keras model of a model version, checked against the SHA-256 recorded when it was saved.
    Worker only (loads TensorFlow). Kept loaded for the next job while its file is unchanged."""
    from medreview.ml.training.fit import load_model

    model_path = store.data_path(version.path)
    # Load only the file this app wrote: a .keras file can carry code, and a swapped or damaged
    # file must not run (or predict) silently.
    digest = sha256_hex(model_path.read_bytes()) if model_path.exists() else None
    if digest != version.sha256:
        raise MedreviewError(f"the file of model version {version.id} is missing or was changed; retrain it")
    key = (version.id, version.sha256)
    if key in _loaded_models:
        _loaded_models.move_to_end(key)
        return _loaded_models[key]
    model = load_model(model_path)
    _loaded_models[key] = model
    while len(_loaded_models) > _LOADED_MODELS_KEPT:
        _loaded_models.popitem(last=False)
    return model


def _store_batch(
    store: Store,
    version: ModelVersion,
    image_ids: list[int],
    probabilities: np.ndarray,
    called: np.ndarray,
    maps: np.ndarray,
    outside: list[str | None],
) -> None:
    """Store one batch: ``outside`` holds, per image, why it lies outside the version's training
    data (None: inside)."""
    paths = []
    for image_id, heatmaps in zip(image_ids, maps, strict=True):
        relative = f"cache/gradcam/{version.id}-{image_id}.npy"
        buffer = io.BytesIO()
        np.save(buffer, heatmaps.astype(np.float16))  # (C, h, w) float16 in [0, 1]
        atomic_write(store.data_path(relative), buffer.getvalue())
        paths.append(relative)
    with store.db.write() as session:
        for image_id, row, best, relative, reason in zip(image_ids, probabilities, called, paths, outside, strict=True):
            best = int(best)
            values = {
                "predicted_class": version.class_names[best],
                "probability": float(row[best]),
                "probabilities": {name: float(p) for name, p in zip(version.class_names, row, strict=True)},
                "heatmap_path": relative,
                "out_of_distribution": reason is not None,
                "out_of_distribution_reason": reason,
                "created_at": utcnow(),
            }
            upsert(
                session,
                Prediction,
                {"image_id": image_id, "model_version_id": version.id, **values},
                conflict_columns=["image_id", "model_version_id"],
                update_columns=list(values),
            )


PREDICTION_COLUMNS = [
    "image_id",
    "file",
    "predicted_class",
    "probability",
    "label",
    "agrees",
    "outside_training_data",
    "outside_reason",
    "prediction_id",
]


def predictions_table(store: Store, actor: Actor, model_version_id: int | None = None) -> pd.DataFrame:
    """Predictions of one model version (default: the active one) with the image's current label.

    ``predicted_class`` and ``probability`` are the model's output as computed; for an image
    ``outside_training_data`` (``outside_reason`` says why) that is no confident call, and
    ``agrees`` is None. Show the table through :func:`shown_calls`.

    In blinded mode an annotator sees only images they have already read."""
    require(actor, "annotator", "see predictions")
    if model_version_id is None:
        model = active_model(store)
        if model is None:
            return pd.DataFrame(columns=PREDICTION_COLUMNS)
        model_version_id = model.id
    query = (
        select(
            Prediction.image_id,
            Image.display_name.label("file"),
            Prediction.predicted_class,
            Prediction.probability,
            Prediction.out_of_distribution.label("outside_training_data"),
            Prediction.out_of_distribution_reason.label("outside_reason"),
            Prediction.id.label("prediction_id"),
        )
        .join(Image, Image.id == Prediction.image_id)
        .where(Prediction.model_version_id == model_version_id)
        .order_by(Prediction.image_id)
    )
    with store.db.read() as session:
        table = pd.DataFrame(session.execute(query).mappings().all(), columns=list(query.selected_columns.keys()))
    visible = visible_image_ids(store, actor)
    if visible is not None:
        table = table[table["image_id"].isin(visible)]
    labels = current_labels(store).set_index("image_id")["label"]
    table["label"] = table["image_id"].map(labels)
    table["outside_training_data"] = table["outside_training_data"].astype(bool)
    table["agrees"] = _agrees(table)
    return table[PREDICTION_COLUMNS]


def _agrees(table: pd.DataFrame) -> pd.Series:
    """Whether each call agrees with the label: None where there is no label, or the model made no
    confident call (outside its training data), so there is nothing to agree or disagree with."""
    return pd.Series(
        [
            None if pd.isna(label) or outside else label == predicted
            for label, predicted, outside in zip(
                table["label"], table["predicted_class"], table["outside_training_data"], strict=True
            )
        ],
        index=table.index,
        dtype=object,
    )


CASE_PREDICTION_COLUMNS = [
    "case",
    "slices",
    "predicted_class",
    "probability",
    "label",
    "agrees",
    "outside_training_data",
    "outside_reason",
    "scope",
    "case_id",
    "image_id",
    "prediction_id",
]


def case_predictions_table(store: Store, actor: Actor, model_version_id: int) -> pd.DataFrame:
    """A case model version's predictions, one row per case (study or series), with the case's
    current label at that scope: ``case`` says which (scope, id, modality; no identifier), ``slices``
    how many it has, ``image_id`` is its key image; the other columns as :func:`predictions_table`'s.
    Blinded reading: an annotator sees only the cases they have read."""
    require(actor, "annotator", "see predictions")
    with store.db.read() as session:
        version = session.get(ModelVersion, model_version_id)
    level = case_scope(version) if version is not None else None
    if level is None:
        return pd.DataFrame(columns=CASE_PREDICTION_COLUMNS)
    query = (
        select(
            Prediction.image_id,
            Prediction.scope,
            Prediction.case_id,
            Prediction.predicted_class,
            Prediction.probability,
            Prediction.out_of_distribution.label("outside_training_data"),
            Prediction.out_of_distribution_reason.label("outside_reason"),
            Prediction.id.label("prediction_id"),
            Series.modality,
        )
        .join(Image, Image.id == Prediction.image_id)
        .join(Series, Series.id == Image.series_id)
        .where(Prediction.model_version_id == model_version_id, Prediction.scope == level)
        .order_by(Prediction.case_id)
    )
    with store.db.read() as session:
        table = pd.DataFrame(session.execute(query).mappings().all(), columns=list(query.selected_columns.keys()))
        case_column = Series.study_id if level == "study" else Series.id
        sizes = dict(
            session.execute(
                select(case_column, func.count(Image.id))
                .join(Image, Image.series_id == Series.id)
                .where(case_column.in_([int(c) for c in table["case_id"]]))
                .group_by(case_column)
            )
            .tuples()
            .all()
        )
    visible = visible_image_ids(store, actor)
    if visible is not None:
        table = table[table["image_id"].isin(visible)]
    labels = current_labels(store, scope=level).set_index("case_id")["label"]
    table["label"] = table["case_id"].map(labels)
    table["slices"] = table["case_id"].map(sizes).fillna(0).astype(int)
    table["case"] = [
        f"{level.capitalize()} {int(case_id)}" + (f" · {modality}" if modality else "")
        for case_id, modality in zip(table["case_id"], table["modality"], strict=True)
    ]
    table["outside_training_data"] = table["outside_training_data"].astype(bool)
    table["agrees"] = _agrees(table)
    return table[CASE_PREDICTION_COLUMNS].reset_index(drop=True)


def case_slices(store: Store, actor: Actor, prediction_id: int) -> dict[str, Any]:
    """What a case prediction says about the case's slices: ``image_ids`` (K,) in reading order,
    ``attention`` (K,) float32 summing to 1, ``top``: the top slices by attention, highest first, each
    {"slice": 1-based number in reading order, "image_id", "attention"}, ``maps``: per method
    ("gradcam", "hirescam") (C, k, h, w) float32 in [0, 1], the map of each top slice per class, and
    ``class_names``. Refused in blinded
    reading for a case the annotator has not read."""
    class_names, path = _maps_of(store, actor, prediction_id, "case")
    if not path or not path.endswith(".npz") or not store.data_path(path).exists():
        raise NotFoundError("the slices of this case prediction are missing; run the prediction again")
    with np.load(store.data_path(path)) as stored:
        if not all(f"maps_{method}" in stored.files for method in CASE_MAP_METHODS):
            raise NotFoundError("the maps of this case prediction are missing; run the prediction again")
        image_ids = [int(i) for i in stored["image_ids"]]
        attention = stored["attention"].astype(np.float32)
        top = [int(i) for i in stored["top"]]
        maps = {method: stored[f"maps_{method}"].astype(np.float32) for method in CASE_MAP_METHODS}
    return {
        "image_ids": image_ids,
        "attention": attention,
        "top": [{"slice": i + 1, "image_id": image_ids[i], "attention": float(attention[i])} for i in top],
        "maps": maps,
        "class_names": class_names,
    }


def image_call(store: Store, actor: Actor, model_version_id: int, image_id: int) -> dict[str, Any] | None:
    """One image's prediction by one model version as :func:`predictions_table` gives it
    (``predicted_class``, ``probability``, ``outside_training_data``, ``outside_reason``); None when
    the version has not called the image, or blinded reading keeps its output from ``actor``."""
    require(actor, "annotator", "see predictions")
    if not can_see_others(store, actor, image_id):
        return None
    with store.db.read() as session:
        prediction = session.scalar(
            select(Prediction).where(Prediction.model_version_id == model_version_id, Prediction.image_id == image_id)
        )
        if prediction is None:
            return None
        return {
            "predicted_class": prediction.predicted_class,
            "probability": float(prediction.probability),
            "outside_training_data": bool(prediction.out_of_distribution),
            "outside_reason": prediction.out_of_distribution_reason,
        }


def hidden_predictions(store: Store, actor: Actor, model_version_id: int) -> int:
    """How many of a version's predictions blinded reading keeps from ``actor`` (those of images
    they have not read yet; 0 for reviewers, or without blinding): what a page says instead of
    "no predictions" when :func:`predictions_table` shows fewer than there are."""
    require(actor, "annotator", "see predictions")
    visible = visible_image_ids(store, actor)
    if visible is None:
        return 0
    with store.db.read() as session:
        image_ids = session.scalars(select(Prediction.image_id).where(Prediction.model_version_id == model_version_id))
        return sum(1 for image_id in image_ids if image_id not in visible)


def shown_calls(table: pd.DataFrame) -> pd.DataFrame:
    """:func:`predictions_table` as a page shows it: for an image outside the training data,
    "outside the training data" instead of a class and no probability (the reason stays in
    ``outside_reason``); the flag column itself is dropped."""
    shown = table.copy()
    outside = shown["outside_training_data"].astype(bool)
    shown["predicted_class"] = shown["predicted_class"].where(~outside, OUTSIDE_TRAINING_DATA)
    shown["probability"] = shown["probability"].where(~outside, np.nan)
    return shown.drop(columns=["outside_training_data"])


def _version(store: Store, model_version_id: int | None) -> ModelVersion | None:
    if model_version_id is None:
        return active_model(store)
    with store.db.read() as session:
        return session.get(ModelVersion, model_version_id)


def disagreements(store: Store, actor: Actor, model_version_id: int | None = None) -> pd.DataFrame:
    """Labelled images where the model's class differs from the label, most confident first."""
    table = predictions_table(store, actor, model_version_id)
    wrong = table[table["agrees"] == False]  # noqa: E712  (None means unlabelled, not a disagreement)
    return wrong.sort_values("probability", ascending=False)


def most_uncertain(store: Store, actor: Actor, model_version_id: int | None = None) -> pd.DataFrame:
    """Unlabelled images the model is least sure about, first: the ones worth labelling next.
    Uncertainty is the distance from the operating threshold for a two-class model (1 at the
    threshold), else 1 minus the margin between the two most probable classes. Images outside
    the training data are left out: the model's figures say nothing about them."""
    table = predictions_table(store, actor, model_version_id)
    unlabelled = table[table["image_id"].isin(unlabelled_image_ids(store)) & ~table["outside_training_data"]].copy()
    if unlabelled.empty:
        return unlabelled.assign(uncertainty=pd.Series(dtype=float))
    with store.db.read() as session:
        probabilities = dict(
            session.execute(
                select(Prediction.id, Prediction.probabilities).where(
                    Prediction.id.in_([int(i) for i in unlabelled["prediction_id"]])
                )
            )
            .tuples()
            .all()
        )

    version = _version(store, model_version_id)
    threshold = version.metrics.get("threshold") if version is not None else None
    classes = list(version.class_names) if version is not None else []

    def uncertainty(prediction_id: int) -> float:
        scores = probabilities[prediction_id]
        if threshold is not None and len(classes) == 2:
            # Two classes with an operating threshold: 1 at the threshold, 0 at certainty either way.
            positive = float(scores[classes[1]])
            return 1.0 - abs(positive - threshold) / max(threshold, 1.0 - threshold)
        top = sorted(scores.values(), reverse=True)
        return 1.0 - (top[0] - (top[1] if len(top) > 1 else 0.0))

    unlabelled["uncertainty"] = [uncertainty(int(i)) for i in unlabelled["prediction_id"]]
    return unlabelled.sort_values("uncertainty", ascending=False, kind="stable")


def load_heatmaps(store: Store, actor: Actor, prediction_id: int) -> tuple[np.ndarray, list[str]]:
    """Grad-CAM maps ``(C, h, w)`` float32 in [0, 1] and the class names they belong to, for an
    image the actor may see the model's output of (blinded mode: one they have read)."""
    class_names, path = _maps_of(store, actor, prediction_id, "image")
    if not path or not store.data_path(path).exists():
        raise NotFoundError("the Grad-CAM map for this prediction is missing; run the prediction again")
    return np.load(store.data_path(path)).astype(np.float32), class_names


def _maps_of(store: Store, actor: Actor, prediction_id: int, what: str) -> tuple[list[str], str | None]:
    """The class names and stored map path of a prediction whose maps ``actor`` may see (blinded
    mode: a ``what``, case or image, they have read)."""
    require(actor, "annotator", "see the model's maps")
    with store.db.read() as session:
        prediction = session.get(Prediction, prediction_id)
        if prediction is None:
            raise NotFoundError(f"prediction {prediction_id} does not exist")
        if not can_see_others(store, actor, prediction.image_id):
            raise PermissionDeniedError(f"blinded reading: submit your own read of this {what} first")
        return list(prediction.model_version.class_names), prediction.heatmap_path
