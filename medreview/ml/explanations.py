"""Maps of the view a reader is looking at: Grad-CAM or HiResCAM on one frame at one window.

The prediction job stores one Grad-CAM map per class computed on frame 0 at the model's own
preprocessing. A reader who moves to another frame, or sets another window on a DICOM image, looks
at other pixels than the ones that map explains, and the model itself would be given other pixels
for that view. So the map drawn over a view is computed on that view: the frame shown, displayed at
the window shown, through the model's preprocessing (:meth:`~medreview.ml.configs.ModelConfig.prepare`
of :func:`view_image`). On frame 0 at the file's own display this is the prediction job's input.

A view's maps are computed on demand by a job of kind :data:`EXPLAIN_JOB` in the worker and kept as
a rebuildable cache file, ``<data dir>/cache/explain/<model version>/<image>-<digest>.npz`` (the
digest names the frame, window and method). :func:`request_view_maps` returns the maps when that
file is there and queues the job when it is not, so the page can show "computing" and poll.

This module is imported by the Streamlit server: TensorFlow enters only inside
:func:`run_explanation_job`, in the worker.
"""

from __future__ import annotations

import dataclasses
import hashlib
import io
import json
import zipfile
from dataclasses import dataclass
from typing import Any

import numpy as np
from sqlalchemy import select

from medreview.errors import ImagingError, MedreviewError, NotFoundError, PermissionDeniedError
from medreview.imaging.decoding import DecodedImage, Window
from medreview.jobs import JobContext, get_job, submit_job
from medreview.ml.configs import get_config
from medreview.ml.kinds import EXPLAIN_JOB
from medreview.ml.prediction import load_version_model, network_input
from medreview.reading.catalog import decode_image
from medreview.reading.reads import can_see_others
from medreview.store import Store
from medreview.store.blobs import atomic_write
from medreview.store.models import Image, Job, ModelVersion
from medreview.team.roles import Actor, require

__all__ = [
    "EXPLAIN_JOB",
    "METHOD_TITLES",
    "ViewMaps",
    "describe_view",
    "request_view_maps",
    "run_explanation_job",
    "stored_view_maps",
    "view_image",
]

# The job kind of an on-demand map (medreview.ml.runners maps it to run_explanation_job).
# Map method (medreview.ml.explain.METHODS) -> its name on screen.
METHOD_TITLES = {"gradcam": "Grad-CAM", "hirescam": "HiResCAM"}
_PENDING = ("queued", "running")


@dataclass(frozen=True)
class ViewMaps:
    """The answer to a request for the maps of one view.

    ``status`` is "ready" (``maps`` and ``probabilities`` are set), "queued" or "running" (the job
    ``job_id`` computes them) or "failed" (``error`` says why; nothing is retried until asked).
    """

    status: str
    method: str
    frame_index: int
    window: Window | None
    class_names: list[str]
    maps: np.ndarray | None = None  # (C, h, w) float32 in [0, 1], one map per class, each scaled to its maximum
    probabilities: dict[str, float] | None = None  # the model's output on this view: class name -> probability
    job_id: int | None = None
    error: str | None = None

    @property
    def ready(self) -> bool:
        return self.status == "ready"


def view_image(image: DecodedImage, frame_index: int, window: Window | None) -> DecodedImage:
    """The image as the reader sees it: only frame ``frame_index``, with ``window`` as its display.

    A model's preprocessing turns frame 0 at the image's default display into the network input
    (:meth:`~medreview.ml.configs.ModelConfig.prepare`); given this image it turns the view into the
    input instead. ``window`` None keeps the image's default display (its VOI LUT or window, as
    :func:`~medreview.imaging.display.render_frame` shows it without one); colour images have no
    window, so theirs is ignored.
    """
    if not 0 <= frame_index < image.frame_count:
        raise ImagingError(f"frame {frame_index + 1} does not exist: the image has {image.frame_count} frame(s)")
    frames = image.frames[frame_index : frame_index + 1]  # (1, H, W) or (1, H, W, 3), a view: no copy
    if window is None or image.is_color:
        return dataclasses.replace(image, frames=frames)
    if not window.width > 0:
        raise ImagingError(f"a window needs a positive width, not {window.width:g}")
    # An explicit window replaces the file's VOI LUT as well, as it does on screen (render_frame).
    return dataclasses.replace(image, frames=frames, default_window=window, voi_lut=None)


def describe_view(frame_index: int, frame_count: int, window: Window | None, is_color: bool = False) -> str:
    """What a map was computed on, e.g. "frame 3 of 40 · window 40 / 400" (center / width, in
    modality units)."""
    if is_color:
        display = "colour as stored"
    elif window is None:
        display = "the file's own display"
    else:
        display = f"window {window.center:g} / {window.width:g}"
    return f"frame {frame_index + 1} of {frame_count} · {display}"


# --- the UI side: ask for a view's maps ----------------------------------------------------------


def request_view_maps(
    store: Store,
    actor: Actor,
    model_version_id: int,
    image_id: int,
    frame_index: int = 0,
    window: Window | None = None,
    method: str = "gradcam",
    retry: bool = False,
) -> ViewMaps:
    """The maps of one view, or the job computing them.

    Returns the cached maps when they are there. Otherwise the latest job for the same view answers
    while it is queued or running; when it failed its error is returned and nothing is queued again
    unless ``retry`` (a page polling every few seconds must not queue a failing job for ever); when
    there is none, or its file has gone, a new job is queued. Blinded reading applies as to every
    model output: an annotator gets maps only of images they have read.
    """
    require(actor, "annotator", "see the model's maps")
    if method not in METHOD_TITLES:
        raise MedreviewError(f"unknown map method '{method}' (choose one of {', '.join(METHOD_TITLES)})")
    if frame_index < 0:
        raise MedreviewError(f"frame {frame_index + 1} does not exist")
    if window is not None and not window.width > 0:
        raise MedreviewError(f"a window needs a positive width, not {window.width:g}")
    if not can_see_others(store, actor, image_id):
        raise PermissionDeniedError("blinded reading: submit your own read of this image first")
    with store.db.read() as session:
        version = session.get(ModelVersion, model_version_id)
        if version is None:
            raise NotFoundError(f"model version {model_version_id} does not exist")
        if session.get(Image, image_id) is None:
            raise NotFoundError(f"image {image_id} does not exist")
        class_names = list(version.class_names)
    params = _job_params(model_version_id, image_id, frame_index, window, method)
    answer = ViewMaps("queued", method, frame_index, window, class_names)

    stored = _read_maps(store, params["path"], len(class_names))
    if stored is not None:
        maps, probabilities = stored
        return dataclasses.replace(
            answer,
            status="ready",
            maps=maps,
            probabilities={name: float(p) for name, p in zip(class_names, probabilities, strict=True)},
        )
    with store.db.read() as session:
        latest = session.scalar(
            select(Job.id)
            .where(Job.kind == EXPLAIN_JOB, Job.params["key"].as_string() == params["key"])
            .order_by(Job.id.desc())
            .limit(1)
        )
    if latest is not None:
        job = get_job(store, latest)  # reaps a job whose worker died, so it cannot stay "running"
        if job.status in _PENDING:
            return dataclasses.replace(answer, status=job.status, job_id=job.id)
        if job.status == "failed" and not retry:
            return dataclasses.replace(answer, status="failed", job_id=job.id, error=job.error)
    job_id = submit_job(store, EXPLAIN_JOB, params, created_by=actor.username)
    return dataclasses.replace(answer, job_id=job_id)


def stored_view_maps(
    store: Store,
    model_version_id: int,
    image_id: int,
    frame_index: int = 0,
    window: Window | None = None,
    method: str = "gradcam",
) -> np.ndarray | None:
    """The maps of one view as :func:`request_view_maps` gives them to the Predictions page, (C, h, w)
    float32 in [0, 1], when its cache file is there; None when it is not (nothing is queued). No
    blinding check: for a service that decides itself who may see the model's output (a reader
    study's aided arm, :func:`medreview.reading.studies.study_heatmap`)."""
    with store.db.read() as session:
        version = session.get(ModelVersion, model_version_id)
        if version is None:
            return None
        class_count = len(version.class_names)
    relative = _job_params(model_version_id, image_id, frame_index, window, method)["path"]
    stored = _read_maps(store, relative, class_count)
    return None if stored is None else stored[0]


def _job_params(
    model_version_id: int, image_id: int, frame_index: int, window: Window | None, method: str
) -> dict[str, Any]:
    view = {
        "model_version_id": int(model_version_id),
        "image_id": int(image_id),
        "frame_index": int(frame_index),
        "window": None if window is None else [float(window.center), float(window.width)],
        "method": method,
    }
    key = hashlib.sha256(json.dumps(view, sort_keys=True).encode()).hexdigest()[:24]
    return {**view, "key": key, "path": f"cache/explain/{model_version_id}/{image_id}-{key}.npz"}


def _read_maps(store: Store, relative: str, class_count: int) -> tuple[np.ndarray, np.ndarray] | None:
    """(maps (C, h, w) float32, probabilities (C,) float32) from a cache file; None when it is
    missing or unreadable (a cache: the job writes it again)."""
    path = store.data_path(relative)
    if not path.exists():
        return None
    try:
        with np.load(path, allow_pickle=False) as stored:
            maps = stored["maps"].astype(np.float32)
            probabilities = stored["probabilities"].astype(np.float32)
    except (OSError, ValueError, KeyError, zipfile.BadZipFile):
        return None
    if maps.ndim != 3 or maps.shape[0] != class_count or probabilities.shape != (class_count,):
        return None
    return maps, probabilities


# --- the worker side: compute them ---------------------------------------------------------------


def run_explanation_job(context: JobContext) -> dict[str, Any]:
    """Compute one view's maps, one per class, and the model's probabilities on that view."""
    # TensorFlow enters here, in the worker process only.
    from medreview.ml.explain import grad_cam
    from medreview.ml.training.fit import predict_probabilities
    from medreview.ml.training.metrics import calibrated_calls, calibrator_of

    params = context.params()
    store = context.store
    with store.db.read() as session:
        version = session.get(ModelVersion, params["model_version_id"])
        if version is None:
            raise NotFoundError("the model version for this map no longer exists")
    window = None if params["window"] is None else Window(*params["window"])
    # The cache path is derived again from the view, never taken from the stored parameters.
    relative = _job_params(version.id, params["image_id"], params["frame_index"], window, params["method"])["path"]
    context.report(stage="computing the map")
    model = load_version_model(store, version)
    config = get_config(version.architecture)
    image = view_image(decode_image(store, params["image_id"]), params["frame_index"], window)
    view_input = network_input(version, image)[np.newaxis]  # (1, S, S) float32 in [0, 1]
    # Calibrated as the prediction job stores them, so the view's figure and the list's agree.
    probabilities = calibrated_calls(
        predict_probabilities(model, view_input),
        calibrator_of(version.metrics),
        version.metrics.get("threshold"),
    )[0][0]  # (C,)
    maps = np.concatenate(
        [
            grad_cam(
                model,
                view_input,
                class_index=class_index,
                layer_name=config.feature_layer,
                logits_layer=config.logits_layer,
                method=params["method"],
            )
            for class_index in range(len(version.class_names))
        ]
    )  # (C, h, w) float32 in [0, 1]
    buffer = io.BytesIO()
    np.savez(buffer, maps=maps.astype(np.float16), probabilities=probabilities.astype(np.float32))
    atomic_write(store.data_path(relative), buffer.getvalue())
    return {
        "path": relative,
        "probabilities": {name: float(p) for name, p in zip(version.class_names, probabilities, strict=True)},
    }
