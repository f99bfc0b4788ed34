"""`python -m medreview ...` as a user runs it: real subprocesses on a real data dir."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pandas as pd
import pytest

from tests.conftest import REDIS_URL, require_server
from tests.helpers import ROOT, dicom_bytes, png_bytes
from tests.orthanc import free_port

# Each test runs `python -m medreview` as processes (a second of start-up each, a worker with
# TensorFlow for training): the whole file is outside the fast loop.
pytestmark = pytest.mark.slow


def run_cli(data_dir: Path, *args: str, extra_env: dict[str, str] | None = None, timeout: int = 300):
    env = {**os.environ, "MEDREVIEW_DATA_DIR": str(data_dir), **(extra_env or {})}
    env.pop("MEDREVIEW_DATABASE_URL", None)
    return subprocess.run(
        [sys.executable, "-m", "medreview", *args], cwd=ROOT, env=env, capture_output=True, text=True, timeout=timeout
    )


def test_ingest_prints_one_json_result_per_file(tmp_path):
    inbox = tmp_path / "inbox"
    inbox.mkdir()
    (inbox / "scan").write_bytes(dicom_bytes("CLI-1"))  # DICOM without an extension
    (inbox / "photo.png").write_bytes(png_bytes(3))
    (inbox / "copy.png").write_bytes(png_bytes(3))
    (inbox / "broken.jpg").write_bytes(b"\xff\xd8\xff\xe0 truncated")
    completed = run_cli(tmp_path / "data", "ingest", "--json", str(inbox))
    lines = [json.loads(line) for line in completed.stdout.splitlines()]
    by_file = {Path(line["file"]).name: line for line in lines}
    assert set(by_file) == {"scan", "photo.png", "copy.png", "broken.jpg"}
    assert all(set(line) == {"file", "status", "reason"} for line in lines)
    assert by_file["scan"]["status"] == "stored"
    assert {by_file["photo.png"]["status"], by_file["copy.png"]["status"]} == {"stored", "duplicate"}
    assert by_file["broken.jpg"]["status"] == "rejected" and by_file["broken.jpg"]["reason"]
    assert completed.returncode == 2  # some files were rejected
    assert "Traceback" not in completed.stderr


def test_import_train_predict_export_then_score_on_an_imported_evaluation_set(tmp_path):
    """The command-line loop, with one training run (each costs a worker's TensorFlow start): class
    folders imported, a model trained (and made active, as the first), every image predicted, labels
    and predictions exported; then a folder imported as an evaluation set queues the existing version
    for scoring on it, and `evaluate --json` gives its figures there."""
    folder = tmp_path / "classes"
    data_dir = tmp_path / "data"
    import numpy as np
    from PIL import Image

    from medreview.ingest.demo import demo_image

    rng = np.random.default_rng(1)
    for part, count in (("classes", 8), ("external", 3)):
        for class_name, opacity in (("normal", False), ("pneumonia", True)):
            (tmp_path / part / class_name).mkdir(parents=True)
            for number in range(count):
                pixels = (demo_image(rng, opacity, size=64) // 16).astype(np.uint8)
                Image.fromarray(pixels).save(tmp_path / part / class_name / f"{class_name}-{number}.png")
    imported = run_cli(data_dir, "import-folder", str(folder))
    assert imported.returncode == 0, imported.stderr
    assert imported.stdout.count("stored") == 16

    trained = run_cli(data_dir, "train", "--wait", "--epochs", "2", "--input-size", "32")
    assert trained.returncode == 0, trained.stderr
    metrics = json.loads(trained.stdout)
    assert 0.0 <= metrics["roc_auc"] <= 1.0 and "confusion_matrix" in metrics
    assert "epoch 2:" in trained.stderr
    [activation] = [line for line in trained.stderr.splitlines() if line.startswith("model version ")]
    assert activation.endswith(": made active: the first model (no version was active)")
    version_id = activation.removeprefix("model version ").split(":")[0]

    predicted = run_cli(data_dir, "predict", "--all")
    assert predicted.returncode == 0, predicted.stderr
    assert "16 images predicted" in predicted.stdout

    for kind in ("labels", "predictions"):
        output = tmp_path / f"{kind}.csv"
        exported = run_cli(data_dir, "export", kind, "--format", "csv", "-o", str(output))
        assert exported.returncode == 0, exported.stderr
        table = pd.read_csv(output)
        assert len(table) == 16
        assert table["display_name"].str.endswith(".png").all()
        assert table["sha256"].str.fullmatch(r"[0-9a-f]{64}").all()

    imported = run_cli(data_dir, "import-folder", str(tmp_path / "external"), "--evaluation-set", "external")
    assert imported.returncode == 0, imported.stderr
    assert "evaluation set 'external' (the default set) frozen: 6 images (3 normal, 3 pneumonia)" in imported.stderr
    assert "evaluation job" in imported.stderr  # the existing version is queued for scoring on it

    evaluated = run_cli(data_dir, "evaluate", "--model", version_id, "--json")
    assert evaluated.returncode == 0, evaluated.stderr
    figures = json.loads(evaluated.stdout)
    assert figures["evaluation_set"] == "external" and set(figures["evaluation"]) == EVALUATION_KEYS
    assert figures["evaluation"]["n"] == 6 and figures["outside_training_data"] == 0
    assert figures["evaluation"]["threshold"] == metrics["threshold"]


def test_errors_are_one_line_not_a_traceback(tmp_path):
    completed = run_cli(tmp_path / "data", "train", "--wait")
    assert completed.returncode == 1
    assert completed.stderr.startswith("error: need labelled images of at least two classes")
    assert "Traceback" not in completed.stderr


@pytest.mark.parametrize("command", [["export", "labels", "-o", "/nonexistent-dir/x.csv"]])
def test_export_to_an_unwritable_place_fails_cleanly(tmp_path, command):
    completed = run_cli(tmp_path / "data", *command)
    assert completed.returncode != 0
    assert "Traceback" not in completed.stderr


def test_pacs_search_and_import_from_a_real_orthanc(tmp_path):
    from pydicom.uid import generate_uid

    from tests.orthanc import run_orthanc

    with run_orthanc(tmp_path / "orthanc") as server:
        study_uid, series_uid = generate_uid(), generate_uid()
        for number in (1, 2):
            server.upload(dicom_bytes("CLI-PACS", study_uid=study_uid, series_uid=series_uid, instance_number=number))
        env = {"MEDREVIEW_PACS_PASSWORD": "pacs-test-password"}  # run_orthanc's default login
        user = ["--user", "reader"]
        found = run_cli(
            tmp_path / "data", "pacs-search", server.dicomweb_url, *user, "--patient-id", "CLI-PACS", extra_env=env
        )
        assert found.returncode == 0, found.stderr
        assert study_uid in found.stdout and "2 images" in found.stdout
        imported = run_cli(
            tmp_path / "data", "pacs-import", server.dicomweb_url, *user, study_uid, "--json", extra_env=env
        )
        assert imported.returncode == 0, imported.stderr
        assert [json.loads(line)["status"] for line in imported.stdout.splitlines()] == ["stored", "stored"]
        assert "pacs-test-password" not in found.stdout + found.stderr + imported.stdout + imported.stderr


# --- SIGTERM stops the command and the processes it started ----------------------------------------


def _children(pid: int) -> set[int]:
    """The live child processes of ``pid`` (from /proc, so no psutil is needed)."""
    found: set[int] = set()
    for path in Path(f"/proc/{pid}/task").glob("*/children"):
        try:
            found.update(int(child) for child in path.read_text().split())
        except OSError:  # the task ended meanwhile
            continue
    return found


def _running(pid: int) -> bool:
    """Whether ``pid`` is a process that has not ended (a zombie has ended, only not reaped)."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return False
    return state not in ("Z", "X")


def _wait_until(condition, seconds: float, what: str, log: Path) -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + seconds
    while not condition():
        if time.monotonic() > deadline:
            pytest.fail(f"{what} within {seconds:g} s; output:\n{log.read_text()[-3000:]}")
        time.sleep(0.2)


def _worker_stamp(data_dir: Path) -> str | None:
    database = data_dir / "medreview.db"
    if not database.exists():
        return None
    with contextlib.closing(sqlite3.connect(database, timeout=30)) as connection:
        try:
            row = connection.execute("SELECT value FROM settings WHERE key = 'worker_seen_at'").fetchone()
        except sqlite3.OperationalError:  # the schema is not there yet
            return None
    return row[0] if row else None


def _job_status(data_dir: Path) -> tuple[str, str | None] | None:
    with contextlib.closing(sqlite3.connect(data_dir / "medreview.db", timeout=30)) as connection:
        return connection.execute("SELECT status, error FROM jobs ORDER BY id DESC LIMIT 1").fetchone()


@contextlib.contextmanager
def _started(data_dir: Path, log_path: Path, *args: str):  # type: ignore[no-untyped-def]
    """``python -m medreview ARGS`` in a session of its own; whatever it and its children left
    running is killed at the end, so a failing test leaves nothing behind."""
    env = {**os.environ, "MEDREVIEW_DATA_DIR": str(data_dir)}
    env.pop("MEDREVIEW_DATABASE_URL", None)
    env.pop("MEDREVIEW_REDIS_URL", None)
    seen: set[int] = set()
    with log_path.open("w") as log:
        process = subprocess.Popen(
            [sys.executable, "-m", "medreview", *args],
            cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
        )  # fmt: skip
    try:
        yield process, seen
    finally:
        seen.update(_children(process.pid))
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)
        for pid in seen:  # the worker runs in a session (and process group) of its own
            if _running(pid):
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(pid, signal.SIGKILL)
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)
        process.wait(timeout=30)


def _assert_all_stop(process: subprocess.Popen, children: set[int], log: Path, seconds: float = 30) -> int:
    """SIGTERM to the command only (not its group); it and every child must be gone in time."""
    assert children, "the command started no child process"
    process.send_signal(signal.SIGTERM)
    try:
        code = process.wait(timeout=seconds)
    except subprocess.TimeoutExpired:
        pytest.fail(f"the command did not exit within {seconds:g} s of SIGTERM:\n{log.read_text()[-3000:]}")
    _wait_until(lambda: not any(_running(pid) for pid in children), 5, "its children did not exit", log)
    return code


def test_sigterm_to_serve_stops_the_app_and_the_worker(tmp_path):
    data_dir, log = tmp_path / "data", tmp_path / "serve.log"
    port = free_port()
    with _started(data_dir, log, "serve", "--headless", "--port", str(port)) as (process, seen):

        def healthy() -> bool:
            assert process.poll() is None, log.read_text()[-3000:]
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/_stcore/health", timeout=2) as answer:
                    return answer.read() == b"ok"
            except OSError:
                return False

        _wait_until(healthy, 120, "streamlit did not answer 'ok'", log)
        # The worker is up once it stamps its liveness (it imports TensorFlow first).
        _wait_until(lambda: _worker_stamp(data_dir) is not None, 120, "the worker did not start", log)
        children = _children(process.pid)
        seen.update(children)
        assert len(children) == 2  # the worker and streamlit

        assert _assert_all_stop(process, children, log) == 128 + signal.SIGTERM
        assert _worker_stamp(data_dir) is None  # the worker ran its own shutdown, it was not killed


def test_sigterm_to_the_worker_stops_it_and_removes_its_stamp(tmp_path):
    data_dir, log = tmp_path / "data", tmp_path / "worker.log"
    with _started(data_dir, log, "worker") as (process, _):
        _wait_until(lambda: _worker_stamp(data_dir) is not None, 120, "the worker did not start", log)
        process.send_signal(signal.SIGTERM)
        # huey takes SIGTERM as "stop now"; a stop asked for is a clean exit (143 only if it came
        # before huey installed its handlers).
        assert process.wait(timeout=30) in (0, 128 + signal.SIGTERM), log.read_text()[-3000:]
        assert _worker_stamp(data_dir) is None


def test_sigterm_to_train_wait_stops_the_worker_it_started(tmp_path):
    data_dir, log = tmp_path / "data", tmp_path / "train.log"
    assert run_cli(data_dir, "demo").returncode == 0
    with _started(data_dir, log, "train", "--wait", "--epochs", "500", "--input-size", "32") as (process, seen):

        def training() -> bool:
            assert process.poll() is None, log.read_text()[-3000:]
            seen.update(_children(process.pid))
            return "epoch 1:" in log.read_text()

        _wait_until(training, 180, "the training did not start", log)
        children = _children(process.pid)
        assert len(children) == 1  # the worker started for this wait

        assert _assert_all_stop(process, children, log) == 128 + signal.SIGTERM
        status, error = _job_status(data_dir)
        assert status == "failed" and error == "the worker was stopped while running this job; submit it again"
        assert _worker_stamp(data_dir) is None


# --- train --wait --json: the honest evaluation -----------------------------------------------------

EVALUATION_KEYS = {
    "roc_auc",
    "roc_auc_ci",
    "accuracy",
    "sensitivity",
    "specificity",
    "threshold",
    "ece",
    "ece_uncalibrated",
    "n",
}


def test_train_wait_json_through_redis_prints_one_object_with_validation_and_test_blocks(tmp_path):
    """Two things a user relies on, in one training run (each run costs a worker's TensorFlow
    start): `train --wait --json` prints one JSON object with a validation and a test block, and with
    MEDREVIEW_REDIS_URL set the job travels through Redis to the worker `train --wait` starts (not
    through the SQLite queue)."""
    require_server("Redis", "127.0.0.1", 6379)
    import redis

    redis.Redis.from_url(REDIS_URL).flushdb()
    data_dir = tmp_path / "data"
    env = {"MEDREVIEW_REDIS_URL": REDIS_URL}
    assert run_cli(data_dir, "demo", extra_env=env).returncode == 0  # 16 patients per class: enough for a test part
    trained = run_cli(data_dir, "train", "--wait", "--json", "--epochs", "1", "--input-size", "32", extra_env=env)
    assert trained.returncode == 0, trained.stderr
    assert not (data_dir / "queue.db").exists()
    [line] = trained.stdout.splitlines()  # one JSON object, on one line
    result = json.loads(line)
    assert set(result["validation"]) == EVALUATION_KEYS and set(result["test"]) == EVALUATION_KEYS
    test = result["test"]
    assert test["n"] == 6 and result["validation"]["n"] == 6
    low, high = test["roc_auc_ci"]
    assert 0.0 <= low <= test["roc_auc"] <= high <= 1.0
    assert test["threshold"] == result["validation"]["threshold"] == result["threshold"]
    assert result["temperature"] > 0 and isinstance(result["model_version_id"], int)
    assert any(note.startswith("Only 6 test images") for note in result["notes"])
    assert "epoch 1:" in trained.stderr


def test_train_json_without_a_test_part_has_a_null_test_block_and_says_why():
    import numpy as np

    from medreview.cli import _evaluation
    from medreview.ml.training.metrics import evaluate_model
    from medreview.ml.training.split import split_train_validation_test

    patient_keys = [f"patient-{number}" for number in range(8)]
    labels = np.array([0, 1] * 4)
    split = split_train_validation_test(patient_keys, labels)
    metrics = evaluate_model(labels, np.full((8, 2), 0.5), None, None, ["normal", "pneumonia"])
    metrics["split"] = split.counts(labels, patient_keys, ["normal", "pneumonia"])
    metrics["notes"].insert(0, split.no_test_reason(["normal", "pneumonia"]))
    result = json.loads(json.dumps(_evaluation(metrics)))
    assert result["test"] is None and set(result["validation"]) == EVALUATION_KEYS
    assert result["notes"][0].startswith("No held-out test part: it needs at least 10 patients of every class")


# --- evaluate: a model version on an evaluation set -------------------------------------------------


def _store_with_a_scored_version(data_dir: Path) -> int:
    """A data dir with an evaluation set 'held out' and a model version scored on it (the figures
    stored as an evaluation job stores them); returns the version id."""
    import numpy as np

    from medreview.ingest import InputFile, ingest_files
    from medreview.ml.evaluation import save_evaluation, score_on_set
    from medreview.reading.evaluation_sets import create_evaluation_set
    from medreview.reading.reads import LOCAL_ACTOR, save_read
    from medreview.store import Store
    from tests.conftest import make_settings
    from tests.helpers import add_model_version

    data_dir.mkdir(parents=True)
    store = Store.open(make_settings(data_dir))
    try:
        results = ingest_files(store, LOCAL_ACTOR, [InputFile(f"{n}.png", png_bytes(700 + n)) for n in range(8)])
        labels = ["normal", "pneumonia"] * 4
        for result, label in zip(results, labels, strict=True):
            save_read(store, LOCAL_ACTOR, result.image_id, label)
        made = create_evaluation_set(store, LOCAL_ACTOR, "held out", [result.image_id for result in results])
        version_id = add_model_version(store, active=True)
        positive = np.array([0.2, 0.7, 0.4, 0.9, 0.1, 0.6, 0.3, 0.8])
        figures = score_on_set(labels, np.stack([1 - positive, positive], axis=1), ["normal", "pneumonia"])
        save_evaluation(store, version_id, made.id, {**figures, "outside_training_data": 1, "set_images": 8})
        return version_id
    finally:
        store.close()


def test_evaluate_json_prints_the_block_train_prints_for_a_part(tmp_path):
    data_dir = tmp_path / "data"
    version_id = _store_with_a_scored_version(data_dir)
    completed = run_cli(data_dir, "evaluate", "--model", str(version_id), "--json")
    assert completed.returncode == 0, completed.stderr
    [line] = completed.stdout.splitlines()
    result = json.loads(line)
    assert (result["model_version_id"], result["evaluation_set"], result["active"]) == (version_id, "held out", True)
    assert set(result["evaluation"]) == EVALUATION_KEYS
    assert result["evaluation"]["n"] == 8 and result["evaluation"]["roc_auc"] == 1.0
    low, high = result["evaluation"]["roc_auc_ci"]
    assert low < 1.0 == high  # eight images cannot pin a perfect AUC down
    assert result["outside_training_data"] == 1
    readable = run_cli(data_dir, "evaluate", "--model", str(version_id), "--set", "held out")
    assert readable.returncode == 0, readable.stderr
    assert readable.stdout.startswith(
        f"model version {version_id} on 'held out' (8 images): ROC AUC 1.000 (95% interval"
    )
    assert "1 images of the set lie outside the version's training data" in readable.stdout


@pytest.mark.parametrize(
    "arguments, message",
    [
        (["--model", "99"], "error: model version 99 does not exist"),
        (["--model", "1", "--set", "other"], "error: there is no evaluation set named 'other' (there are: 'held out')"),
    ],
)
def test_evaluate_errors_are_one_line_not_a_traceback(tmp_path, arguments, message):
    data_dir = tmp_path / "data"
    _store_with_a_scored_version(data_dir)
    completed = run_cli(data_dir, "evaluate", *arguments)
    assert completed.returncode == 1
    assert completed.stderr.startswith(message) and "Traceback" not in completed.stderr


def test_evaluate_without_any_set_says_how_to_make_one(tmp_path):
    from medreview.store import Store
    from tests.conftest import make_settings
    from tests.helpers import add_model_version

    data_dir = tmp_path / "data"
    data_dir.mkdir()
    store = Store.open(make_settings(data_dir))
    version_id = add_model_version(store, active=True)
    store.close()
    completed = run_cli(data_dir, "evaluate", "--model", str(version_id))
    assert completed.returncode == 1 and "Traceback" not in completed.stderr
    assert completed.stderr.startswith("error: there is no evaluation set yet: freeze one on the Train page first")
