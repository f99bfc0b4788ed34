"""Inputs shared by the tests of maps on a view: a two-frame CT and a saved, registered model."""

from __future__ import annotations

import io

import numpy as np
import pydicom

from medreview.store import Store
from medreview.store.models import Job, ModelVersion
from tests.helpers import dicom_bytes

FRAME_SIZE = 64


def two_frame_ct_bytes(patient_id: str = "P-VIEW") -> bytes:
    """A CT with two different 64x64 frames whose values span -1000..2000 HU: air, soft tissue and a
    bone-bright disc (in another place on each frame), so lung and bone windows give different pictures."""
    rows, columns = np.mgrid[0:FRAME_SIZE, 0:FRAME_SIZE]
    frames = []
    for center in ((20, 20), (44, 40)):
        hounsfield = np.where(columns < FRAME_SIZE // 3, -1000.0, 40.0) + 10.0 * (rows % 7)
        disc = (rows - center[0]) ** 2 + (columns - center[1]) ** 2 < 8**2
        hounsfield = np.where(disc, 1500.0, hounsfield)
        frames.append((hounsfield + 1024).astype(np.uint16))  # stored values: intercept -1024
    dataset = pydicom.dcmread(io.BytesIO(dicom_bytes(patient_id=patient_id, pixels=frames[0])))
    dataset.NumberOfFrames = len(frames)
    dataset.PixelData = np.stack(frames).tobytes()
    dataset.WindowCenter, dataset.WindowWidth = 40, 400
    buffer = io.BytesIO()
    dataset.save_as(buffer, enforce_file_format=True)
    return buffer.getvalue()


def save_model_version(
    store: Store, class_names: list[str], input_size: int = 32, seed: int = 0, active: bool = True
) -> int:
    """Build a small CNN (untrained, seeded), save it as a training job would and register it;
    returns the model version id. Loads TensorFlow."""
    from medreview.ml.configs import get_config
    from medreview.ml.training.fit import save_model_atomic

    config = get_config("small_cnn")
    model = config.build(input_size, len(class_names), seed=seed)
    with store.db.write() as session:
        job = Job(kind="train", status="succeeded")
        session.add(job)
        session.flush()
        relative = f"models/{job.id}.keras"
        digest = save_model_atomic(model, store.data_path(relative))
        version = ModelVersion(
            job_id=job.id,
            path=relative,
            sha256=digest,
            architecture="small_cnn",
            input_size=input_size,
            preprocessing=config.recipe(input_size),
            class_names=class_names,
            is_active=active,
        )
        session.add(version)
        session.flush()
        return version.id
