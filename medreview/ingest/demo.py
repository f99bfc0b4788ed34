"""Demo data the project makes itself: synthetic chest-film-like DICOM images in two classes.

"pneumonia" images carry a bright patchy opacity in one lung field, "normal" ones do not, so a
tiny CNN learns the task in seconds and Grad-CAM has something real to point at. Each image is
its own patient (PatientID DEMO-###), so the patient split works as on real data.
"""

from __future__ import annotations

import io

import numpy as np
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import ExplicitVRLittleEndian, generate_uid

from medreview.ingest import IngestResult, InputFile, ingest_files
from medreview.reading.reads import save_read
from medreview.reading.schema import add_label_class, label_classes
from medreview.store import DEFAULT_CLASSES, Store
from medreview.team.roles import Actor, require

__all__ = ["demo_image", "load_demo_data"]
SECONDARY_CAPTURE = "1.2.840.10008.5.1.4.1.1.7"


def demo_image(rng: np.random.Generator, with_opacity: bool, size: int = 128) -> np.ndarray:
    """(size, size) uint16 radiograph-like image: body, two dark lung fields, optional opacity."""
    y, x = np.mgrid[0:size, 0:size].astype(np.float32) / size
    image = 2600.0 + 400.0 * rng.standard_normal((size, size)).astype(np.float32) * 0.05
    for centre_x in (0.32, 0.68):  # lungs are darker (less attenuation)
        lung = ((x - centre_x) / 0.14) ** 2 + ((y - 0.5) / 0.3) ** 2 < 1.0
        image[lung] -= 1500.0
    if with_opacity:
        centre_x = rng.choice([0.32, 0.68]) + rng.uniform(-0.04, 0.04)
        centre_y = rng.uniform(0.4, 0.65)
        radius = rng.uniform(0.07, 0.11)
        blob = np.exp(-(((x - centre_x) ** 2 + (y - centre_y) ** 2) / (2 * radius**2)))
        image += 1300.0 * blob * (0.8 + 0.4 * rng.random((size, size)))
    image += rng.normal(0, 60, (size, size))
    return np.clip(image, 0, 4095).astype(np.uint16)


def _dicom_bytes(pixels: np.ndarray, patient_number: int) -> bytes:
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = SECONDARY_CAPTURE
    meta.MediaStorageSOPInstanceUID = generate_uid()
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    dataset = Dataset()
    dataset.file_meta = meta
    dataset.SOPClassUID = SECONDARY_CAPTURE
    dataset.SOPInstanceUID = meta.MediaStorageSOPInstanceUID
    dataset.StudyInstanceUID = generate_uid()
    dataset.SeriesInstanceUID = generate_uid()
    dataset.PatientID = f"DEMO-{patient_number:03d}"
    dataset.PatientName = f"Demo^Patient{patient_number:03d}"
    dataset.Modality = "DX"
    dataset.StudyDescription = "Demo chest film (synthetic)"
    dataset.SeriesNumber = 1
    dataset.InstanceNumber = 1
    dataset.Rows, dataset.Columns = pixels.shape
    dataset.SamplesPerPixel = 1
    dataset.PhotometricInterpretation = "MONOCHROME2"
    dataset.BitsAllocated = 16
    dataset.BitsStored = 12
    dataset.HighBit = 11
    dataset.PixelRepresentation = 0
    dataset.WindowCenter = 1900
    dataset.WindowWidth = 2600
    dataset.BurnedInAnnotation = "NO"  # generated pixels carry no text
    dataset.PixelData = pixels.tobytes()
    buffer = io.BytesIO()
    dataset.save_as(buffer, enforce_file_format=True)
    return buffer.getvalue()


def load_demo_data(
    store: Store, actor: Actor, per_class: int = 16, unlabelled: int = 8, seed: int = 7
) -> list[IngestResult]:
    """Ingest ``2 * per_class`` demo images labelled by ``actor`` and ``unlabelled`` more (admins)."""
    require(actor, "admin", "load demo data")
    rng = np.random.default_rng(seed)
    for name in DEFAULT_CLASSES:
        if name not in label_classes(store):
            add_label_class(store, actor, name)
    files, labels = [], []
    for number in range(2 * per_class + unlabelled):
        with_opacity = bool(number % 2)
        files.append(InputFile(f"demo-{number:03d}.dcm", _dicom_bytes(demo_image(rng, with_opacity), number)))
        labels.append(DEFAULT_CLASSES[int(with_opacity)] if number < 2 * per_class else None)
    results = ingest_files(store, actor, files)
    for result, label in zip(results, labels, strict=True):
        if label is not None and result.image_id is not None:
            save_read(store, actor, result.image_id, label)
    return results
