"""Training, prediction and explanation jobs end to end on a real store (tiny models, run in this process),
plus the queue and liveness rules around them."""

from __future__ import annotations

import datetime as dt
import hashlib
import subprocess
import sys
import threading
import time

import numpy as np
import pytest
from sqlalchemy import select

import medreview
from medreview.errors import JobCancelled, MedreviewError, TrainingError
from medreview.imaging.decoding import Window
from medreview.ingest import InputFile, ingest_files
from medreview.ingest.demo import load_demo_data
from medreview.jobs import cancel_job, execute_job, get_job, reap_orphans, submit_job
from medreview.ml.explanations import request_view_maps, view_image
from medreview.ml.prediction import (
    disagreements,
    load_heatmaps,
    most_uncertain,
    network_input,
    predictions_table,
    submit_predictions,
)
from medreview.ml.registry import active_model
from medreview.ml.runners import RUNNERS
from medreview.ml.training.service import submit_training
from medreview.reading.catalog import decode_image
from medreview.reading.reads import LOCAL_ACTOR, save_read
from medreview.store.models import Job, ModelVersion, Prediction
from tests.helpers import png_bytes
from tests.ml.views import save_model_version, two_frame_ct_bytes

TINY = {"epochs": 2, "input_size": 32, "batch_size": 16}


@pytest.fixture
def demo_store(store):
    load_demo_data(store, LOCAL_ACTOR, per_class=10, unlabelled=4)
    return store


@pytest.mark.slow
def test_training_job_records_metrics_model_and_snapshot(demo_store):
    job_id = submit_training(demo_store, LOCAL_ACTOR, TINY)
    assert execute_job(demo_store, job_id, RUNNERS) == "succeeded"
    job = get_job(demo_store, job_id)
    assert [epoch["epoch"] for epoch in job.progress["epochs"]] == [1, 2]
    metrics = job.result["metrics"]
    for key in ("roc_auc", "accuracy", "sensitivity", "specificity", "confusion_matrix", "roc_curve"):
        assert key in metrics
    assert sum(map(sum, metrics["confusion_matrix"])) == len(job.result["dataset"]["validation_image_ids"])
    assert job.result["config"]["seed"] == 0 and job.result["config"]["input_size"] == 32
    # Labels used are recorded, and train/validation never share an image.
    snapshot = job.result["dataset"]
    assert len(snapshot["labels"]) == 20
    assert not set(snapshot["train_image_ids"]) & set(snapshot["validation_image_ids"])
    # The first model becomes the active one; its file is complete and matches the recorded hash.
    model = active_model(demo_store)
    assert model is not None and model.job_id == job_id
    path = demo_store.data_path(model.path)
    assert hashlib.sha256(path.read_bytes()).hexdigest() == model.sha256
    assert not list(path.parent.glob(".tmp-*"))


@pytest.mark.slow
def test_prediction_job_stores_probabilities_and_gradcam_per_class(demo_store):
    assert execute_job(demo_store, submit_training(demo_store, LOCAL_ACTOR, TINY), RUNNERS) == "succeeded"
    job_id = submit_predictions(demo_store, LOCAL_ACTOR, scope="unlabelled")
    assert execute_job(demo_store, job_id, RUNNERS) == "succeeded"
    table = predictions_table(demo_store, LOCAL_ACTOR)
    assert len(table) == 4 and table["label"].isna().all()
    # The called class follows the model's stored threshold on its calibrated probabilities.
    model = active_model(demo_store)
    threshold = model.metrics["threshold"]
    with demo_store.db.read() as session:
        stored = session.scalars(select(Prediction)).all()
    assert stored and all(
        (prediction.probabilities["pneumonia"] >= threshold) == (prediction.predicted_class == "pneumonia")
        for prediction in stored
    )
    assert table["probability"].between(0.0, 1.0).all()
    heatmaps, class_names = load_heatmaps(demo_store, LOCAL_ACTOR, int(table["prediction_id"].iloc[0]))
    assert class_names == ["normal", "pneumonia"]
    assert heatmaps.ndim == 3 and heatmaps.shape[0] == 2
    assert np.isfinite(heatmaps).all() and heatmaps.min() >= 0 and heatmaps.max() <= 1
    # Predict all: labelled images appear too, and disagreements are exactly the mismatches.
    execute_job(demo_store, submit_predictions(demo_store, LOCAL_ACTOR, scope="all"), RUNNERS)
    table = predictions_table(demo_store, LOCAL_ACTOR)
    assert len(table) == 24
    wrong = disagreements(demo_store, LOCAL_ACTOR)
    labelled = table.dropna(subset=["label"])
    assert len(wrong) == int((labelled["label"] != labelled["predicted_class"]).sum())
    with demo_store.db.read() as session:
        assert {p.model_version_id for p in session.scalars(select(Prediction))} == {active_model(demo_store).id}
    # "Label next": only unlabelled images, least certain first: nearest the operating threshold.
    queue = most_uncertain(demo_store, LOCAL_ACTOR)
    assert len(queue) == 4 and queue["label"].isna().all()
    assert list(queue["uncertainty"]) == sorted(queue["uncertainty"], reverse=True)
    with demo_store.db.read() as session:
        positive = {p.id: p.probabilities["pneumonia"] for p in session.scalars(select(Prediction))}
    distance = [abs(positive[int(i)] - threshold) / max(threshold, 1 - threshold) for i in queue["prediction_id"]]
    assert np.allclose(queue["uncertainty"], 1 - np.array(distance), atol=1e-6)


# --- maps of the view shown (untrained, seeded models: the maps follow the input, not a skill) ----

LUNG = Window(-600.0, 1500.0)
BONE = Window(400.0, 1800.0)


@pytest.fixture
def ct_store(store):
    """A store holding a two-frame CT and an active (untrained) small CNN at 32 px."""
    [result] = ingest_files(store, LOCAL_ACTOR, [InputFile("ct.dcm", two_frame_ct_bytes())])
    version_id = save_model_version(store, ["normal", "pneumonia"], input_size=32)
    return store, version_id, result.image_id


def explained(store, version_id: int, image_id: int, frame_index: int, window, method: str):
    """Ask for a view's maps, run the job that computes them, and ask again."""
    pending = request_view_maps(store, LOCAL_ACTOR, version_id, image_id, frame_index, window, method)
    assert pending.status == "queued" and pending.maps is None
    assert execute_job(store, pending.job_id, RUNNERS) == "succeeded"
    ready = request_view_maps(store, LOCAL_ACTOR, version_id, image_id, frame_index, window, method)
    assert ready.ready and ready.job_id is None
    return ready


@pytest.mark.parametrize("method", ["gradcam", "hirescam"])
def test_explain_job_stores_the_maps_of_the_frame_and_window_shown(ct_store, method):
    store, version_id, image_id = ct_store
    lung = explained(store, version_id, image_id, 1, LUNG, method)
    assert (lung.method, lung.frame_index, lung.window) == (method, 1, LUNG)
    assert lung.class_names == ["normal", "pneumonia"]
    assert lung.maps.shape == (2, 8, 8) and lung.maps.dtype == np.float32  # last_conv at 32 / 4 px
    assert np.all((lung.maps >= 0) & (lung.maps <= 1)) and lung.maps.max() == 1.0
    assert sum(lung.probabilities.values()) == pytest.approx(1.0, abs=1e-5)
    [cached] = store.data_path(f"cache/explain/{version_id}").iterdir()
    assert cached.name.startswith(f"{image_id}-") and cached.suffix == ".npz"

    # Another window of the same frame is another network input, so another answer and another map.
    with store.db.read() as session:
        version = session.get(ModelVersion, version_id)
    image = decode_image(store, image_id)
    lung_input = network_input(version, view_image(image, 1, LUNG))
    bone_input = network_input(version, view_image(image, 1, BONE))
    assert np.abs(lung_input - bone_input).max() > 0.2
    bone = explained(store, version_id, image_id, 1, BONE, method)
    assert bone.probabilities != lung.probabilities
    assert np.abs(bone.maps - lung.maps).max() > 0.05
    # And another frame at the same window, too.
    first_frame = explained(store, version_id, image_id, 0, BONE, method)
    assert np.abs(first_frame.maps - bone.maps).max() > 0.05
    assert len(list(store.data_path(f"cache/explain/{version_id}").iterdir())) == 3


def test_the_default_view_gets_the_prediction_jobs_map(ct_store):
    # Frame 0 at the file's own display is the input the prediction job explains.
    store, version_id, image_id = ct_store
    assert execute_job(store, submit_predictions(store, LOCAL_ACTOR, scope="all"), RUNNERS) == "succeeded"
    [prediction_id] = predictions_table(store, LOCAL_ACTOR)["prediction_id"]
    stored, _ = load_heatmaps(store, LOCAL_ACTOR, int(prediction_id))
    default = explained(store, version_id, image_id, 0, None, "gradcam")
    np.testing.assert_array_equal(default.maps, stored)
    with store.db.read() as session:
        prediction = session.get(Prediction, int(prediction_id))
    assert default.probabilities == pytest.approx(prediction.probabilities, abs=1e-6)


def test_a_view_is_computed_once_and_a_failed_one_is_not_queued_again_until_asked(ct_store):
    store, version_id, image_id = ct_store

    def explain_jobs() -> list[Job]:
        with store.db.read() as session:
            return list(session.scalars(select(Job).where(Job.kind == "explain").order_by(Job.id)))

    # The page polls every two seconds: asking again for a view being computed queues nothing.
    first = request_view_maps(store, LOCAL_ACTOR, version_id, image_id, 1, LUNG, "hirescam")
    again = request_view_maps(store, LOCAL_ACTOR, version_id, image_id, 1, LUNG, "hirescam")
    assert again.job_id == first.job_id and len(explain_jobs()) == 1
    assert execute_job(store, first.job_id, RUNNERS) == "succeeded"
    assert request_view_maps(store, LOCAL_ACTOR, version_id, image_id, 1, LUNG, "hirescam").ready
    assert len(explain_jobs()) == 1

    # A frame the image does not have: the job fails with the reason, which stays until a retry.
    missing = request_view_maps(store, LOCAL_ACTOR, version_id, image_id, 5, LUNG, "hirescam")
    assert execute_job(store, missing.job_id, RUNNERS) == "failed"
    failed = request_view_maps(store, LOCAL_ACTOR, version_id, image_id, 5, LUNG, "hirescam")
    assert failed.status == "failed" and "frame 6 does not exist" in failed.error
    assert len(explain_jobs()) == 2
    retried = request_view_maps(store, LOCAL_ACTOR, version_id, image_id, 5, LUNG, "hirescam", retry=True)
    assert retried.status == "queued" and retried.job_id != missing.job_id and len(explain_jobs()) == 3


def test_too_few_labels_is_explained_before_queueing(store):
    results = ingest_files(store, LOCAL_ACTOR, [InputFile(f"{i}.png", png_bytes(i)) for i in range(4)])
    save_read(store, LOCAL_ACTOR, results[0].image_id, "normal")
    with pytest.raises(TrainingError, match="at least two classes"):
        submit_training(store, LOCAL_ACTOR)
    for result in results[1:3]:
        save_read(store, LOCAL_ACTOR, result.image_id, "normal")
    save_read(store, LOCAL_ACTOR, results[3].image_id, "pneumonia")
    with pytest.raises(TrainingError, match=r"at least 3 labelled images per class; 'pneumonia' has 1"):
        submit_training(store, LOCAL_ACTOR)
    with store.db.read() as session:
        assert session.scalar(select(Job.id)) is None  # nothing was queued


@pytest.mark.slow
def test_a_failing_job_reports_the_reason_instead_of_crashing(demo_store):
    job_id = submit_training(demo_store, LOCAL_ACTOR, {"epochs": 1, "architecture": "mobilenet_v2", "input_size": 16})
    assert execute_job(demo_store, job_id, RUNNERS) == "failed"
    assert "32" in get_job(demo_store, job_id).error  # mobilenet needs >= 32 px: said in plain words


@pytest.mark.slow
def test_cancel_stops_a_running_training(demo_store):
    job_id = submit_training(demo_store, LOCAL_ACTOR, {**TINY, "epochs": 200})
    outcome: list[str] = []
    runner = threading.Thread(target=lambda: outcome.append(execute_job(demo_store, job_id, RUNNERS)))
    runner.start()
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and not get_job(demo_store, job_id).progress.get("epochs"):
        time.sleep(0.2)
    cancel_job(demo_store, LOCAL_ACTOR, job_id)
    runner.join(timeout=120)
    assert outcome == ["cancelled"]
    job = get_job(demo_store, job_id)
    assert job.status == "cancelled" and len(job.progress["epochs"]) < 200
    assert active_model(demo_store) is None  # a cancelled run registers no model


def test_cancelling_a_queued_job_means_it_never_runs(demo_store):
    job_id = submit_training(demo_store, LOCAL_ACTOR, TINY)
    cancel_job(demo_store, LOCAL_ACTOR, job_id)
    assert execute_job(demo_store, job_id, RUNNERS) == "cancelled"
    assert get_job(demo_store, job_id).progress == {}


def test_a_run_whose_worker_died_is_marked_failed(store):
    with store.db.write() as session:
        stale = dt.datetime.now(dt.UTC) - dt.timedelta(minutes=10)
        session.add(Job(kind="train", status="running", started_at=stale, heartbeat_at=stale, params={}))
    assert reap_orphans(store) == 1
    with store.db.read() as session:
        job = session.scalar(select(Job))
    assert job.status == "failed" and "worker process stopped" in job.error


WORKER_ONLY = {
    "medreview.ml.cases",
    "medreview.ml.explain",
    "medreview.ml.layers",
    "medreview.ml.runners",
    "medreview.ml.training.case_job",
    "medreview.ml.training.cases",
    "medreview.ml.training.fit",
    "medreview.ml.training.job",
}


@pytest.mark.slow
def test_ui_side_modules_never_import_tensorflow():
    # The Streamlit server imports medreview; TensorFlow may load only in the worker process.
    code = (
        "import importlib, pkgutil, sys, medreview\n"
        f"worker_only = {sorted(WORKER_ONLY)!r}\n"
        "names = [m.name for m in pkgutil.walk_packages(medreview.__path__, 'medreview.')]\n"
        "names = [n for n in names if n not in worker_only and n != 'medreview.__main__'\n"
        "         and not n.startswith('medreview.store.migrations')]  # Alembic scripts run only under Alembic\n"
        "for name in names: importlib.import_module(name)\n"
        "print(len(names), 'tensorflow' in sys.modules, 'keras' in sys.modules)"
    )
    output = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.split()
    assert int(output[0]) > 20 and output[1:] == ["False", "False"]


@pytest.mark.slow
def test_a_worker_loads_tensorflow_with_its_first_training_not_when_it_starts():
    # `make run` and every `serve` start a worker; one that has run no job must not hold
    # TensorFlow (5 s of start-up, ~580 MB) yet. Its training runner still trains (test above).
    code = "import sys, medreview.ml.runners\nprint('tensorflow' in sys.modules, 'keras' in sys.modules)"
    output = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.split()
    assert output == ["False", "False"]


def test_a_kind_the_worker_has_no_runner_for_fails_with_the_reason(store):
    job_id = submit_job(store, "mine-bitcoin", {})
    assert execute_job(store, job_id, RUNNERS) == "failed"
    assert "unknown job kind 'mine-bitcoin'" in get_job(store, job_id).error
    with pytest.raises(MedreviewError, match="not a job kind name"):
        submit_job(store, "", {})


@pytest.mark.slow
def test_tensorflow_is_imported_only_under_medreview_ml():
    # Static check over the source, lazy imports included: the worker-only list above is the whole
    # of the TensorFlow side, and it lives in medreview/ml/.
    import ast
    from pathlib import Path

    root = Path(medreview.__file__).parent
    importers = set()
    for path in root.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            names = [a.name for a in node.names] if isinstance(node, ast.Import) else []
            if isinstance(node, ast.ImportFrom) and node.module:
                names = [node.module]
            if any(name.split(".")[0] in ("tensorflow", "keras") for name in names):
                importers.add(".".join(("medreview", *path.relative_to(root).with_suffix("").parts)))
    assert importers and all(name.startswith("medreview.ml.") for name in importers), importers


@pytest.mark.slow
def test_a_changed_model_file_is_refused_not_loaded(demo_store):
    assert execute_job(demo_store, submit_training(demo_store, LOCAL_ACTOR, TINY), RUNNERS) == "succeeded"
    path = demo_store.data_path(active_model(demo_store).path)
    path.write_bytes(path.read_bytes() + b"tampered")
    job_id = submit_predictions(demo_store, LOCAL_ACTOR, scope="all")
    assert execute_job(demo_store, job_id, RUNNERS) == "failed"
    assert "was changed" in get_job(demo_store, job_id).error


@pytest.mark.slow
def test_a_model_file_left_by_a_crash_is_collected_and_registered_ones_kept(demo_store):
    assert execute_job(demo_store, submit_training(demo_store, LOCAL_ACTOR, TINY), RUNNERS) == "succeeded"
    models = demo_store.settings.models_dir
    registered = demo_store.data_path(active_model(demo_store).path)
    # A crash after model.save but before the version row committed leaves these behind.
    (models / "model-99.keras").write_bytes(b"orphan")
    (models / ".model-100.abc.keras").write_bytes(b"half written")
    demo_store.collect_orphans(min_age_seconds=0)
    assert sorted(p.name for p in models.iterdir()) == [registered.name]


@pytest.mark.parametrize("train_images, batch", [(12, 4), (26, 4), (200, 25), (3752, 64)])
def test_automatic_batch_gives_small_datasets_enough_steps(train_images, batch):
    from medreview.ml.training.job import automatic_batch_size

    assert automatic_batch_size(train_images) == batch


# --- status changes are atomic and a failure always ends the job (fake runners, no TensorFlow) ---


def _backdate_heartbeat(store, job_id: int) -> None:
    stale = dt.datetime.now(dt.UTC) - dt.timedelta(minutes=10)
    with store.db.write() as session:
        job = session.get(Job, job_id)
        job.heartbeat_at = job.started_at = stale


def test_a_job_the_reaper_failed_stays_failed_when_its_runner_succeeds_late(any_store, caplog):
    job_id = submit_job(any_store, "slow", {})
    reaped: list[int] = []

    def runner(context):
        # The worker stalls past the heartbeat timeout; a page polling meanwhile reaps the job.
        _backdate_heartbeat(context.store, context.job_id)
        reaped.append(reap_orphans(context.store))
        return {"answer": 42}

    assert execute_job(any_store, job_id, {"slow": runner}) == "failed"
    assert reaped == [1]
    job = get_job(any_store, job_id)
    assert job.status == "failed" and "worker process stopped" in job.error
    assert job.result == {}  # the late result is dropped
    assert "late outcome (succeeded) is dropped" in caplog.text


def test_a_job_the_reaper_failed_stays_failed_when_its_runner_fails_late(any_store):
    job_id = submit_job(any_store, "slow", {})

    def runner(context):
        _backdate_heartbeat(context.store, context.job_id)
        reap_orphans(context.store)
        raise MedreviewError("a late failure")

    assert execute_job(any_store, job_id, {"slow": runner}) == "failed"
    assert "worker process stopped" in get_job(any_store, job_id).error


def test_a_runner_whose_module_cannot_be_imported_ends_the_job_failed(store):
    def runner(context):
        raise ModuleNotFoundError("No module named 'tensorflow'", name="tensorflow")

    job_id = submit_job(store, "train", {})
    assert execute_job(store, job_id, {"train": runner}) == "failed"
    job = get_job(store, job_id)
    assert job.status == "failed" and job.finished_at is not None
    assert job.error == "the train job could not start: ModuleNotFoundError: No module named 'tensorflow'"


class _Unprintable(RuntimeError):
    def __str__(self) -> str:
        raise ValueError("cannot describe myself")


class _UnprintableMedreviewError(MedreviewError):
    def __str__(self) -> str:
        raise ValueError("cannot describe myself")


@pytest.mark.parametrize("error_type", [_Unprintable, _UnprintableMedreviewError])
def test_an_error_whose_message_cannot_be_built_still_ends_the_job_with_a_reason(store, error_type):
    def runner(context):
        raise error_type()

    job_id = submit_job(store, "broken", {})
    assert execute_job(store, job_id, {"broken": runner}) == "failed"
    job = get_job(store, job_id)
    assert job.status == "failed"
    assert job.error == f"unexpected error: {error_type.__name__} (its message could not be read)"


def test_a_result_the_database_cannot_store_ends_the_job_failed(store):
    job_id = submit_job(store, "odd", {})
    assert execute_job(store, job_id, {"odd": lambda context: {"not json": object()}}) == "failed"
    job = get_job(store, job_id)
    assert job.status == "failed" and "result could not be saved: TypeError: Object of type object" in job.error


def test_a_worker_stopped_mid_job_marks_it_failed_at_once(store):
    def runner(context):
        raise KeyboardInterrupt

    job_id = submit_job(store, "long", {})
    with pytest.raises(KeyboardInterrupt):
        execute_job(store, job_id, {"long": runner})
    job = get_job(store, job_id)
    assert job.status == "failed" and "worker was stopped" in job.error


def test_a_job_runs_once_even_if_two_workers_take_it(store):
    calls: list[int] = []
    job_id = submit_job(store, "count", {})

    def runner(context):
        calls.append(context.job_id)
        # A second delivery of the same message while the first still runs is refused.
        assert execute_job(context.store, context.job_id, {"count": runner}) == "running"
        return {}

    assert execute_job(store, job_id, {"count": runner}) == "succeeded"
    assert calls == [job_id]


def test_a_cancel_after_the_worker_took_the_job_does_not_overwrite_running(any_store):
    job_id = submit_job(any_store, "wait", {})

    def runner(context):
        cancel_job(context.store, LOCAL_ACTOR, context.job_id)
        assert get_job(context.store, context.job_id).status == "running"
        assert context.should_stop()
        raise JobCancelled("stopped")

    assert execute_job(any_store, job_id, {"wait": runner}) == "cancelled"
    assert get_job(any_store, job_id).error == "cancelled by the user"


_WORKER_SCRIPT = """
import time

import medreview.jobs as jobs
from medreview.errors import JobCancelled

jobs.WORKER_STOP_SECONDS = {stop_seconds}


def attentive(context):
    context.report(stage="waiting")
    while not context.should_stop():
        time.sleep(0.1)
    raise JobCancelled("stopped")


def deaf(context):  # never asks should_stop(): the worker must give up on it
    context.report(stage="waiting")
    time.sleep(300)
    return {{}}


jobs.run_worker({{"attentive": attentive, "deaf": deaf}})
"""


@pytest.mark.slow
@pytest.mark.parametrize("kind", ["attentive", "deaf"])
def test_sigterm_stops_the_worker_and_its_running_job_with_a_reason(store, tmp_path, kind):
    import os
    import signal

    from medreview.jobs import worker_last_seen
    from tests.helpers import ROOT

    job_id = submit_job(store, kind, {})  # queued before the worker starts: it takes it at once
    script = tmp_path / "worker.py"
    script.write_text(_WORKER_SCRIPT.format(stop_seconds=2.0))
    env = {**os.environ, "MEDREVIEW_DATA_DIR": str(store.settings.data_dir), "PYTHONPATH": str(ROOT)}
    env.pop("MEDREVIEW_DATABASE_URL", None)
    env.pop("MEDREVIEW_REDIS_URL", None)
    log = (tmp_path / "worker.log").open("w")
    worker = subprocess.Popen(
        [sys.executable, str(script)], cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
    )
    try:
        deadline = time.monotonic() + 60
        while get_job(store, job_id).progress.get("stage") != "waiting":
            assert worker.poll() is None, (tmp_path / "worker.log").read_text()
            assert time.monotonic() < deadline, "the worker did not start the job"
            time.sleep(0.2)
        assert worker_last_seen(store) is not None

        worker.send_signal(signal.SIGTERM)
        assert worker.wait(timeout=20) == 0, (tmp_path / "worker.log").read_text()

        job = get_job(store, job_id)
        assert job.status == "failed"
        assert job.error == "the worker was stopped while running this job; submit it again"
        assert worker_last_seen(store) is None  # gone at once, not after the liveness timeout
    finally:
        if worker.poll() is None:
            os.killpg(worker.pid, signal.SIGKILL)
            worker.wait()
        log.close()
