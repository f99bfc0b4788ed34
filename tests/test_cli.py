"""`python -m medreview ...` as a user runs it: real subprocesses on a real data dir."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

from tests.conftest import REDIS_URL, require_server
from tests.helpers import ROOT, dicom_bytes, png_bytes


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


@pytest.mark.slow
def test_import_train_predict_export_loop(tmp_path):
    folder = tmp_path / "classes"
    data_dir = tmp_path / "data"
    import numpy as np
    from PIL import Image

    from medreview.ingest.demo import demo_image

    rng = np.random.default_rng(1)
    for class_name, opacity in (("normal", False), ("pneumonia", True)):
        (folder / class_name).mkdir(parents=True)
        for number in range(8):
            pixels = (demo_image(rng, opacity, size=64) // 16).astype(np.uint8)
            Image.fromarray(pixels).save(folder / class_name / f"{class_name}-{number}.png")
    imported = run_cli(data_dir, "import-folder", str(folder))
    assert imported.returncode == 0, imported.stderr
    assert imported.stdout.count("stored") == 16

    trained = run_cli(data_dir, "train", "--wait", "--epochs", "2", "--input-size", "32")
    assert trained.returncode == 0, trained.stderr
    metrics = json.loads(trained.stdout)
    assert 0.0 <= metrics["roc_auc"] <= 1.0 and "confusion_matrix" in metrics
    assert "epoch 2:" in trained.stderr

    predicted = run_cli(data_dir, "predict", "--all")
    assert predicted.returncode == 0, predicted.stderr
    assert "16 images predicted" in predicted.stdout

    for kind in ("labels", "predictions"):
        output = tmp_path / f"{kind}.csv"
        exported = run_cli(data_dir, "export", kind, "--format", "csv", "-o", str(output))
        assert exported.returncode == 0, exported.stderr
        table = pd.read_csv(output)
        assert len(table) == 16
        assert table["original_filename"].str.endswith(".png").all()
        assert table["sha256"].str.fullmatch(r"[0-9a-f]{64}").all()


def test_errors_are_one_line_not_a_traceback(tmp_path):
    completed = run_cli(tmp_path / "data", "train", "--wait")
    assert completed.returncode == 1
    assert completed.stderr.startswith("error: need labelled images of at least two classes")
    assert "Traceback" not in completed.stderr


@pytest.mark.slow
def test_redis_queue_carries_a_job_to_a_worker_process(tmp_path):
    require_server("Redis", "127.0.0.1", 6379)
    import redis

    redis.Redis.from_url(REDIS_URL).flushdb()
    data_dir = tmp_path / "data"
    env = {"MEDREVIEW_REDIS_URL": REDIS_URL}
    assert run_cli(data_dir, "demo", extra_env=env).returncode == 0
    # `train --wait` starts a worker that takes the job from Redis (not from the SQLite queue).
    trained = run_cli(data_dir, "train", "--wait", "--epochs", "1", "--input-size", "32", extra_env=env)
    assert trained.returncode == 0, trained.stderr
    assert not (data_dir / "queue.db").exists()


@pytest.mark.parametrize("command", [["export", "labels", "-o", "/nonexistent-dir/x.csv"]])
def test_export_to_an_unwritable_place_fails_cleanly(tmp_path, command):
    completed = run_cli(tmp_path / "data", *command)
    assert completed.returncode != 0
    assert "Traceback" not in completed.stderr


@pytest.mark.slow
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
