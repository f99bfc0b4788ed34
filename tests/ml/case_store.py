"""A store of generated CT studies labelled at study scope, for the case model's job, prediction and
page tests: one study per patient, ``slices`` 32x32 slices each, the positives with a small bright
lesion in a few slices (medreview.ml.synthetic_volumes), each study read once ("lesion" or "clear")
by the local user, so its read is its final label."""

from __future__ import annotations

import io
from dataclasses import dataclass

import numpy as np
import pydicom
from pydicom.uid import generate_uid

from medreview.ingest import InputFile, ingest_files
from medreview.ml.synthetic_volumes import lesion_volumes
from medreview.reading.cases import case_images, case_of
from medreview.reading.reads import LOCAL_ACTOR, save_read
from medreview.reading.schema import add_label_class
from medreview.store import Store
from tests.helpers import dicom_bytes

CLASSES = ("clear", "lesion")


@dataclass(frozen=True)
class CaseStore:
    store: Store
    study_ids: list[int]  # in generation order
    labels: list[str]
    lesion_slices: list[tuple[int, ...]]  # per study, the slice indices (reading order) with the lesion


def _slice(patient: str, study_uid: str, series_uid: str, instance: int, pixels: np.ndarray) -> bytes:
    dataset = pydicom.dcmread(
        io.BytesIO(
            dicom_bytes(patient, study_uid=study_uid, series_uid=series_uid, pixels=pixels, instance_number=instance)
        )
    )
    dataset.SeriesNumber = 1
    dataset.SliceLocation = float(instance) * 2.5
    buffer = io.BytesIO()
    dataset.save_as(buffer, enforce_file_format=True)
    return buffer.getvalue()


def case_store(store: Store, studies: int = 24, slices: int = 8, seed: int = 0, read: bool = True) -> CaseStore:
    for name in CLASSES:
        add_label_class(store, LOCAL_ACTOR, name, scope="study")
    generated = lesion_volumes(studies, slices=slices, size=32, seed=seed)
    files: list[InputFile] = []
    for index, volume in enumerate(generated.volumes):
        study_uid, series_uid = generate_uid(), generate_uid()
        for k, pixels in enumerate(volume):
            data = _slice(f"P{index:03d}", study_uid, series_uid, k + 1, (pixels * 1000).astype(np.uint16))
            files.append(InputFile(f"s{index:03d}-{k + 1:02d}.dcm", data))
    results = ingest_files(store, LOCAL_ACTOR, files)
    study_ids, labels = [], []
    for index in range(studies):
        first = results[index * slices].image_id
        study_id, key_image = case_of(store, first, "study")
        assert len(case_images(store, "study", study_id)) == slices
        label = CLASSES[int(generated.labels[index])]
        if read:
            save_read(store, LOCAL_ACTOR, key_image, label)
        study_ids.append(study_id)
        labels.append(label)
    return CaseStore(store, study_ids, labels, generated.lesion_slices)
