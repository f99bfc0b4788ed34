"""Small builders for test inputs (real encoders, no mocks)."""

from __future__ import annotations

import io
import os
from pathlib import Path

import numpy as np
import pytest
from PIL import Image as PILImage
from pydicom.data import get_testdata_file
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import ExplicitVRLittleEndian, generate_uid

# The project root, and the shared data beside it (../shared/data from the root; CI has it there too).
ROOT = Path(__file__).resolve().parent.parent
SHARED_DATA = ROOT.parent / "shared" / "data"
CXR_SAMPLES = SHARED_DATA / "cxr-samples"
PNEUMONIAMNIST = SHARED_DATA / "pneumoniamnist" / "pneumoniamnist_28_trainval.npz"


def missing(message: str) -> None:
    """Skip with the reason; under CI=true fail instead, since CI must have every input."""
    if os.environ.get("CI") == "true":
        pytest.fail(f"{message} (CI=true: missing data fails the run instead of skipping)")
    pytest.skip(message)


def require_shared_data(path: Path) -> Path:
    if not path.exists():
        missing(f"shared data {path} is absent (only a checkout with ../shared/data beside it has it)")
    return path


def cxr_sample_paths() -> list[Path]:
    """The 16 full-size chest X-ray JPEGs of the shared data, sorted by name."""
    paths = sorted(require_shared_data(CXR_SAMPLES).glob("*.jpeg"))
    if not paths:
        missing(f"no chest X-ray samples in {CXR_SAMPLES}")
    return paths


def corpus_file(name: str) -> Path:
    """A file of pydicom's test data (pydicom's own test_files or the pydicom-data package)."""
    path = get_testdata_file(name)
    if path is None:
        missing(f"pydicom test file {name} is not installed (pydicom-data missing; make test installs it)")
    return Path(path)


def png_bytes(seed: int = 0, size: int = 32, mode: str = "L") -> bytes:
    rng = np.random.default_rng(seed)
    shape = (size, size) if mode == "L" else (size, size, 3)
    buffer = io.BytesIO()
    PILImage.fromarray(rng.integers(0, 255, shape, dtype=np.uint8), mode=None).save(buffer, format="PNG")
    return buffer.getvalue()


def jpeg_bytes(seed: int = 0, size: int = 32) -> bytes:
    rng = np.random.default_rng(seed)
    buffer = io.BytesIO()
    PILImage.fromarray(rng.integers(0, 255, (size, size), dtype=np.uint8)).save(buffer, format="JPEG")
    return buffer.getvalue()


def dicom_bytes(
    patient_id: str = "P1",
    sop_instance_uid: str | None = None,
    study_uid: str | None = None,
    series_uid: str | None = None,
    pixels: np.ndarray | None = None,
    modality: str = "CT",
    instance_number: int = 1,
) -> bytes:
    """A valid uncompressed DICOM file; ``pixels`` (H, W) uint16 or int16."""
    if pixels is None:
        pixels = (np.arange(64 * 64, dtype=np.uint16).reshape(64, 64) % 4096).astype(np.uint16)
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = "1.2.840.10008.5.1.4.1.1.2"
    meta.MediaStorageSOPInstanceUID = sop_instance_uid or generate_uid()
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    dataset = Dataset()
    dataset.file_meta = meta
    dataset.SOPClassUID = meta.MediaStorageSOPClassUID
    dataset.SOPInstanceUID = meta.MediaStorageSOPInstanceUID
    dataset.StudyInstanceUID = study_uid or generate_uid()
    dataset.SeriesInstanceUID = series_uid or generate_uid()
    dataset.PatientID = patient_id
    dataset.PatientName = f"Test^{patient_id}"
    dataset.Modality = modality
    dataset.InstanceNumber = instance_number
    dataset.Rows, dataset.Columns = pixels.shape
    dataset.SamplesPerPixel = 1
    dataset.PhotometricInterpretation = "MONOCHROME2"
    dataset.BitsAllocated = 16
    dataset.BitsStored = 16
    dataset.HighBit = 15
    dataset.PixelRepresentation = 1 if pixels.dtype == np.int16 else 0
    dataset.RescaleSlope = 1
    dataset.RescaleIntercept = -1024 if modality == "CT" else 0
    dataset.PixelData = pixels.tobytes()
    buffer = io.BytesIO()
    dataset.save_as(buffer, enforce_file_format=True)
    return buffer.getvalue()


def add_model_version(
    store,
    active: bool = False,
    class_names: tuple[str, ...] = ("normal", "pneumonia"),
    architecture: str = "small_cnn",
    input_size: int = 32,
    preprocessing: dict | None = None,
) -> int:
    """A model version row as a finished training job leaves it (no model file); returns its id.
    ``preprocessing`` is the recipe it records (None: a version from before recipes were kept)."""
    from medreview.store.models import Job, ModelVersion

    with store.db.write() as session:
        job = Job(kind="train", status="succeeded")
        session.add(job)
        session.flush()
        version = ModelVersion(
            job_id=job.id,
            path=f"models/{job.id}.keras",
            sha256="0" * 64,
            architecture=architecture,
            input_size=input_size,
            class_names=list(class_names),
            preprocessing=preprocessing,
            is_active=active,
        )
        session.add(version)
        session.flush()
        return version.id


def add_predictions(
    store, model_id: int, calls: dict[int, dict[str, float]], outside: dict[int, str] | None = None
) -> None:
    """A model version's calls as a finished prediction job stores them (no TensorFlow): for each
    image id its class probabilities (the call is the likeliest class); ``outside``: the images
    outside the version's training data, with the reason."""
    from medreview.store.models import Prediction

    outside = outside or {}
    with store.db.write() as session:
        for image_id, probabilities in calls.items():
            predicted = max(probabilities, key=probabilities.__getitem__)
            session.add(
                Prediction(
                    image_id=image_id,
                    model_version_id=model_id,
                    predicted_class=predicted,
                    probability=probabilities[predicted],
                    probabilities=probabilities,
                    out_of_distribution=image_id in outside,
                    out_of_distribution_reason=outside.get(image_id),
                )
            )
