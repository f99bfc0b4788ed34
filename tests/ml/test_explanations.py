"""Maps of the view shown, on the UI side (no TensorFlow): which input a view gives the model, how a
view is named, and what asking for its maps answers and queues. The jobs themselves run in
tests/test_jobs.py."""

from __future__ import annotations

import io

import numpy as np
import pytest
from sqlalchemy import func, select

from medreview.errors import ImagingError, MedreviewError, NotFoundError, PermissionDeniedError
from medreview.imaging.decoding import DecodedImage, VoiLut, Window, decode_dicom, decode_raster
from medreview.imaging.display import render_frame
from medreview.ingest import InputFile, ingest_files
from medreview.ml.configs import get_config
from medreview.ml.explanations import EXPLAIN_JOB, describe_view, request_view_maps, view_image
from medreview.ml.prediction import network_input
from medreview.reading.reads import LOCAL_ACTOR, save_read
from medreview.store.models import Job, ModelVersion
from medreview.team.accounts import create_first_admin, create_user
from medreview.team.roles import Actor
from medreview.team.settings import set_setting
from tests.helpers import add_model_version, png_bytes
from tests.ml.views import two_frame_ct_bytes

LUNG = Window(-600.0, 1500.0)
BONE = Window(400.0, 1800.0)
ANN = Actor("ann", "annotator")


def decode_file_bytes(data: bytes) -> DecodedImage:
    return decode_dicom(data) if data[128:132] == b"DICM" else decode_raster(data)


# --- the network input of a view -------------------------------------------------------------------


def test_a_view_shows_exactly_what_the_screen_shows():
    image = decode_dicom(two_frame_ct_bytes())
    for frame_index in (0, 1):
        for window in (None, LUNG, BONE):
            view = view_image(image, frame_index, window)
            assert view.frame_count == 1
            np.testing.assert_array_equal(render_frame(view, 0), render_frame(image, frame_index, window))


VERSION = ModelVersion(
    architecture="small_cnn",
    input_size=32,
    preprocessing=get_config("small_cnn").recipe(32),
    class_names=["normal", "pneumonia"],
)
# A version trained before recipes were recorded (it gets the recipe of that time).
LEGACY_VERSION = ModelVersion(architecture="small_cnn", input_size=32, class_names=["normal", "pneumonia"])


@pytest.mark.parametrize("version", [VERSION, LEGACY_VERSION], ids=["recipe", "legacy"])
@pytest.mark.parametrize("image_bytes", [two_frame_ct_bytes(), png_bytes(3, size=48)], ids=["dicom", "png"])
def test_frame_0_at_the_files_display_is_the_prediction_input(version, image_bytes):
    image = decode_file_bytes(image_bytes)
    np.testing.assert_array_equal(network_input(version, view_image(image, 0, None)), network_input(version, image))


def test_the_frame_and_window_shown_change_the_network_input():
    image = decode_dicom(two_frame_ct_bytes())
    inputs = {
        (frame_index, window): network_input(VERSION, view_image(image, frame_index, window))
        for frame_index in (0, 1)
        for window in (LUNG, BONE)
    }
    assert all(array.shape == (32, 32) and array.dtype == np.float32 for array in inputs.values())
    assert np.abs(inputs[1, LUNG] - inputs[1, BONE]).max() > 0.2  # the window
    assert np.abs(inputs[0, BONE] - inputs[1, BONE]).max() > 0.2  # the frame


def test_an_explicit_window_replaces_the_files_voi_lut():
    frames = np.arange(16, dtype=np.float32).reshape(1, 4, 4)
    lut = VoiLut(first_mapped=0, table=np.arange(16, dtype=np.int64)[::-1].copy(), output_max=15)
    image = DecodedImage(frames, False, "MONOCHROME2", "CR", None, lut)
    assert render_frame(view_image(image, 0, None), 0)[0, 0] == 255  # the LUT, inverted here
    assert render_frame(view_image(image, 0, Window(7.5, 16.0)), 0)[0, 0] < 20  # the window


def test_a_colour_view_has_no_window_and_a_missing_frame_is_refused():
    colour = DecodedImage(np.zeros((1, 4, 4, 3), dtype=np.uint8), True, "RGB", "OT", None, None)
    assert view_image(colour, 0, BONE).frames.shape == (1, 4, 4, 3)
    with pytest.raises(ImagingError, match="frame 2 does not exist"):
        view_image(colour, 1, None)


def test_a_view_is_named_by_frame_and_window():
    assert describe_view(2, 40, Window(40.0, 400.0)) == "frame 3 of 40 · window 40 / 400"
    assert describe_view(0, 1, Window(-600.0, 1500.5)) == "frame 1 of 1 · window -600 / 1500.5"
    assert describe_view(0, 1, None) == "frame 1 of 1 · the file's own display"
    assert describe_view(0, 1, None, is_color=True) == "frame 1 of 1 · colour as stored"


# --- asking for a view's maps ------------------------------------------------------------------------


@pytest.fixture
def ct_project(any_store, fast_hashing):
    """A two-frame CT and a registered model version (its file is never loaded here), on SQLite and
    on PostgreSQL (a view's job is found by a key inside its JSON parameters)."""
    store = any_store
    admin = create_first_admin(store, "boss", "boss-password")
    create_user(store, admin, ANN.username, "ann-password", ANN.role)
    [result] = ingest_files(store, LOCAL_ACTOR, [InputFile("ct.dcm", two_frame_ct_bytes())])
    return store, add_model_version(store, active=True), result.image_id


def explain_jobs(store) -> list[Job]:
    with store.db.read() as session:
        return list(session.scalars(select(Job).where(Job.kind == EXPLAIN_JOB).order_by(Job.id)))


def test_asking_for_a_view_queues_one_job_naming_it(ct_project):
    store, version_id, image_id = ct_project
    answer = request_view_maps(store, ANN, version_id, image_id, 1, LUNG, "hirescam")
    assert (answer.status, answer.method, answer.frame_index, answer.window) == ("queued", "hirescam", 1, LUNG)
    assert answer.class_names == ["normal", "pneumonia"] and answer.maps is None
    [job] = explain_jobs(store)
    assert job.id == answer.job_id and job.created_by == "ann"
    assert {key: job.params[key] for key in ("model_version_id", "image_id", "frame_index", "window", "method")} == {
        "model_version_id": version_id,
        "image_id": image_id,
        "frame_index": 1,
        "window": [-600.0, 1500.0],
        "method": "hirescam",
    }
    # Each view has its own cache file.
    other = request_view_maps(store, ANN, version_id, image_id, 1, BONE, "hirescam")
    assert other.job_id != answer.job_id
    assert len({job.params["path"] for job in explain_jobs(store)}) == 2


def test_a_view_whose_maps_are_cached_is_answered_without_a_job(ct_project):
    store, version_id, image_id = ct_project
    pending = request_view_maps(store, LOCAL_ACTOR, version_id, image_id, 0, BONE, "gradcam")
    # What the job leaves behind: its cache file, and the job succeeded.
    [job] = explain_jobs(store)
    maps = np.linspace(0, 1, 2 * 8 * 8).reshape(2, 8, 8).astype(np.float16)
    buffer = io.BytesIO()
    np.savez(buffer, maps=maps, probabilities=np.array([0.25, 0.75], dtype=np.float32))
    path = store.data_path(job.params["path"])
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(buffer.getvalue())
    with store.db.write() as session:
        session.get(Job, job.id).status = "succeeded"
    ready = request_view_maps(store, LOCAL_ACTOR, version_id, image_id, 0, BONE, "gradcam")
    assert ready.ready and ready.job_id is None and pending.job_id == job.id
    assert ready.maps.dtype == np.float32 and np.array_equal(ready.maps, maps.astype(np.float32))
    assert ready.probabilities == {"normal": 0.25, "pneumonia": 0.75}
    assert len(explain_jobs(store)) == 1
    # A damaged or removed cache file is computed again, never shown.
    path.write_bytes(b"not a numpy file")
    again = request_view_maps(store, LOCAL_ACTOR, version_id, image_id, 0, BONE, "gradcam")
    assert again.status == "queued" and again.job_id != job.id and len(explain_jobs(store)) == 2


def test_a_blinded_annotator_gets_no_map_of_an_image_before_reading_it(ct_project):
    store, version_id, image_id = ct_project
    set_setting(store, LOCAL_ACTOR, "blinded", True)
    with pytest.raises(PermissionDeniedError, match="blinded"):
        request_view_maps(store, ANN, version_id, image_id, 0, None, "gradcam")
    assert explain_jobs(store) == []
    save_read(store, ANN, image_id, "normal")
    assert request_view_maps(store, ANN, version_id, image_id, 0, None, "gradcam").status == "queued"


@pytest.mark.parametrize(
    "changes, error, message",
    [
        ({"method": "saliency"}, MedreviewError, "unknown map method 'saliency'"),
        ({"frame_index": -1}, MedreviewError, "frame 0 does not exist"),
        ({"window": Window(40.0, 0.0)}, MedreviewError, "positive width"),
        ({"model_version_id": 999}, NotFoundError, "model version 999 does not exist"),
        ({"image_id": 999}, NotFoundError, "image 999 does not exist"),
    ],
)
def test_a_request_that_names_nothing_queues_nothing(ct_project, changes, error, message):
    store, version_id, image_id = ct_project
    request = {"model_version_id": version_id, "image_id": image_id, "frame_index": 0, "window": None}
    request["method"] = "gradcam"
    with pytest.raises(error, match=message):
        request_view_maps(store, LOCAL_ACTOR, **{**request, **changes})
    with store.db.read() as session:
        assert session.scalar(select(func.count(Job.id)).where(Job.kind == EXPLAIN_JOB)) == 0
