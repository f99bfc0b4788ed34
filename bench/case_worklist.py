"""The Label page's case worklist on a CT project of 2,000 studies x 100 slices (200,000 images).

    .venv/bin/python bench/case_worklist.py [--data-dir /tmp/case-store] [--studies 2000] [--slices 100]
                                            [--runs 5] [--json PATH|-]

Builds (or reuses, when the marker file says it was built with the same parameters) a SQLite store
whose rows are written in bulk (patients, studies, series and image rows, no pixels: the worklist
never reads them): one CT series of ``--slices`` slices per study, a quarter of the patients with
a second, later study (a prior for the first), two study-scoped classes, a reader who has read a
third of the studies (some sent back) and an assignment-free worklist, so the reader's list is the
whole project. Then it times, for that reader, what one run of the Label page's case worklist
asks of the database for a page of 50 rows in the middle of the list, under each order and status,
with and without a search:

- ``list_ms``: the counts of the caption, the position of the case on screen and the page of 50 rows;
- ``next_ms``: the viewer's next case after a class key.

``case_worklist_ms`` is the slowest ``list_ms``. Target (issue 17): <= 300 ms.
"""

from __future__ import annotations

import argparse
import io
import json
import statistics
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import ExplicitVRLittleEndian, MRImageStorage, generate_uid
from sqlalchemy import func, insert, select

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from medreview.config import Settings
from medreview.ingest import InputFile, ingest_files
from medreview.reading.reads import user_id
from medreview.reading.schema import add_label_class
from medreview.reading.worklists import (
    WORKLIST_SORTS,
    CaseWorklist,
    WorklistFilter,
    case_list_position,
    case_worklist_counts,
    case_worklist_page,
    next_case_id,
)
from medreview.store import Store
from medreview.store.models import Annotation, Image, LabelClass, Patient, Series, Study, utcnow
from medreview.team.accounts import create_first_admin, create_user
from medreview.team.roles import Actor

MARKER = "case-store.json"
VIEWPORT_MARKER = "viewport-studies.json"
PAGE_ROWS = 50
ADMIN = Actor("admin", "admin")
READER = Actor("reader1", "annotator")
CLASSES = ("pe present", "no pe")
PRIOR_SHARE = 0.25  # of the patients: a second, later study
READ_SHARE, RETURNED_SHARE = 1 / 3, 0.05
SEARCHES = ("", "anon 2024")  # a word in every pseudonym and a year: both must be found
STATUSES = ("todo", "read", "all")


def _open(data_dir: Path) -> Store:
    return Store.open(Settings(data_dir=data_dir, database_url=f"sqlite:///{data_dir / 'medreview.db'}"))


def build_case_store(data_dir: Path, studies: int, slices: int, seed: int = 7) -> Store:
    """The store (see the module docstring); rebuilt unless its marker names the same parameters."""
    parameters = {"studies": studies, "slices": slices, "seed": seed}
    marker = data_dir / MARKER
    if marker.exists() and json.loads(marker.read_text()) == parameters:
        return _open(data_dir)
    data_dir.mkdir(parents=True, exist_ok=True)
    for leftover in [*data_dir.glob("medreview.db*"), data_dir / VIEWPORT_MARKER]:
        leftover.unlink(missing_ok=True)
    store = _open(data_dir)
    create_first_admin(store, ADMIN.username, "bench-admin-password")
    create_user(store, ADMIN, READER.username, "bench-reader-password", READER.role)
    for name in CLASSES:
        add_label_class(store, ADMIN, name, scope="study")
    rng = np.random.default_rng(seed)
    started = time.perf_counter()
    now = utcnow()
    # Patients: enough that a quarter of them hold two studies and the studies number ``studies``.
    patients = round(studies / (1 + PRIOR_SHARE))
    with store.db.write() as session:
        session.execute(
            insert(Patient),
            [{"patient_key": f"ANON-{index:010X}", "patient_name": "", "created_at": now} for index in range(patients)],
        )
        patient_ids = list(session.scalars(select(Patient.id).order_by(Patient.id)))
        owners = patient_ids + [int(p) for p in rng.choice(patient_ids, size=studies - patients, replace=False)]
        study_rows = []
        for index, patient_id in enumerate(owners[:studies]):
            later = index >= patients  # the patient's second study, a year after the first
            day = int(rng.integers(1, 28))
            study_rows.append(
                {
                    "study_uid": f"2.25.{seed}.{index}",
                    "patient_id": patient_id,
                    "study_date": f"{2024 + later}{int(rng.integers(1, 13)):02d}{day:02d}",
                    "description": "CT chest",
                    "created_at": now,
                }
            )
        session.execute(insert(Study), study_rows)
        study_ids = list(session.scalars(select(Study.id).order_by(Study.id)))
        session.execute(
            insert(Series),
            [
                {
                    "series_uid": f"2.25.{seed}.{study_id}.1",
                    "study_id": study_id,
                    "modality": "CT" if study_id % 10 else "PT",
                    "description": "CT axial 1.25 mm",
                    "series_number": 1,
                    "created_at": now,
                }
                for study_id in study_ids
            ],
        )
        series_ids = list(session.scalars(select(Series.id).order_by(Series.id)))
        images = []
        for series_id in series_ids:
            for slice_number in range(slices):
                name = f"{series_id}-{slice_number}"
                images.append(
                    {
                        "series_id": series_id,
                        "sha256": f"{name:0>64}",
                        "source_sha256": "",
                        "sop_instance_uid": f"2.25.{seed}.{name.replace('-', '.')}",
                        "media_type": "dicom",
                        "display_name": f"slice{slice_number:03d}.dcm",
                        "size_bytes": 8192,
                        "rows": 64,
                        "columns": 64,
                        "number_of_frames": 1,
                        "photometric_interpretation": "MONOCHROME2",
                        "instance_number": slice_number + 1,
                        "slice_location": float(slice_number) * 1.25,
                        "created_at": now,
                    }
                )
            if len(images) >= 20000:
                session.execute(insert(Image), images)
                images = []
        if images:
            session.execute(insert(Image), images)
        # The reader's study reads, at each study's key image (its first slice), some sent back.
        class_ids = list(session.scalars(select(LabelClass.id).where(LabelClass.name.in_(CLASSES))))
        reader_id = user_id(session, READER.username)
        # (the first slice is the lowest image id: the slices were inserted in reading order)
        first_slices = (
            select(Series.study_id, func.min(Image.id))
            .join(Image, Image.series_id == Series.id)
            .group_by(Series.study_id)
        )
        key_images = {study_id: image_id for study_id, image_id in session.execute(first_slices)}
        reads = []
        for study_id in study_ids:
            if rng.random() >= READ_SHARE:
                continue
            returned = rng.random() < RETURNED_SHARE
            reads.append(
                {
                    "image_id": key_images[study_id],
                    "scope": "study",
                    "case_id": study_id,
                    "reader_id": reader_id,
                    "label_class_id": int(rng.choice(class_ids)),
                    "labels": [],
                    "boxes": [],
                    "unsure": False,
                    "comment": "",
                    "status": "returned" if returned else "submitted",
                    "review_comment": "look again" if returned else "",
                    "changed_after_unblinding": False,
                    "created_at": now,
                    "updated_at": now,
                }
            )
        session.execute(insert(Annotation), reads)
    print(f"built {studies} studies x {slices} slices in {time.perf_counter() - started:.1f} s", file=sys.stderr)
    marker.write_text(json.dumps(parameters))
    return store


# The MR brain protocol hangs a study 2x2 by its series' acquisition physics (de-identification drops
# the descriptions): T1, T2, FLAIR, DWI.
MR_PHYSICS: dict[str, dict[str, Any]] = {
    "T1": {"RepetitionTime": 500, "EchoTime": 10},
    "T2": {"RepetitionTime": 4000, "EchoTime": 100},
    "FLAIR": {"RepetitionTime": 9000, "EchoTime": 120, "InversionTime": 2500},
    "DWI": {"RepetitionTime": 5000, "EchoTime": 80, "ImageType": ["ORIGINAL", "PRIMARY", "DIFFUSION", "TRACEW"]},
}


def viewport_study_files(number: int, slices: int, size: int) -> Iterator[InputFile]:
    """One MR study of four series (MR_PHYSICS) of ``slices`` (size, size) uint16 slices, 1.5 mm apart
    along one frame of reference (so the viewports scroll linked), patient BENCH-MR-<number>."""
    study_uid, frame_of_reference = generate_uid(), generate_uid()
    yy, xx = np.mgrid[:size, :size]
    radius = np.hypot(yy - size / 2, xx - size / 2)
    noise = np.random.default_rng(number).integers(0, 40, (size, size), dtype=np.uint16)
    for series_number, (weighting, physics) in enumerate(MR_PHYSICS.items(), start=1):
        series_uid = generate_uid()
        for index in range(slices):
            # (size, size) uint16: a head-sized disc with a ring whose radius follows the slice
            ring = np.abs(radius - size * (0.08 + 0.3 * index / slices)) < 5
            pixels = (radius < size * 0.4) * (300 + 120 * series_number) + ring * 500 + np.roll(noise, index, 0)
            meta = FileMetaDataset()
            meta.MediaStorageSOPClassUID = MRImageStorage
            meta.MediaStorageSOPInstanceUID = generate_uid()
            meta.TransferSyntaxUID = ExplicitVRLittleEndian
            dataset = Dataset()
            dataset.file_meta = meta
            dataset.SOPClassUID, dataset.SOPInstanceUID = MRImageStorage, meta.MediaStorageSOPInstanceUID
            dataset.StudyInstanceUID, dataset.SeriesInstanceUID = study_uid, series_uid
            dataset.FrameOfReferenceUID = frame_of_reference
            dataset.PatientID, dataset.PatientName, dataset.Modality = f"BENCH-MR-{number}", "Bench^MR", "MR"
            dataset.StudyDate, dataset.SeriesNumber, dataset.InstanceNumber = "20260101", series_number, index + 1
            dataset.SeriesDescription = weighting
            dataset.ImageOrientationPatient = [1, 0, 0, 0, 1, 0]
            dataset.ImagePositionPatient = [-120, -120, index * 1.5]
            dataset.PixelSpacing, dataset.SliceThickness = [0.47, 0.47], 1.5
            for keyword, value in physics.items():
                setattr(dataset, keyword, value)
            dataset.Rows = dataset.Columns = size
            dataset.SamplesPerPixel, dataset.PhotometricInterpretation = 1, "MONOCHROME2"
            dataset.BitsAllocated, dataset.BitsStored, dataset.HighBit, dataset.PixelRepresentation = 16, 16, 15, 0
            dataset.PixelData = pixels.astype(np.uint16).tobytes()
            buffer = io.BytesIO()
            dataset.save_as(buffer, enforce_file_format=True)
            yield InputFile(f"mr{number:02d}-{weighting}-{index + 1:03d}.dcm", buffer.getvalue())


def add_viewport_studies(store: Store, data_dir: Path, studies: int, slices: int, size: int = 512) -> list[int]:
    """``studies`` MR studies of four series of ``slices`` real (size, size) slices, written with the
    real ingest path (de-identification, pixel storage), for the viewer's timings; their study ids.
    Skipped when the marker says they were added with the same parameters."""
    parameters = {"studies": studies, "slices": slices, "size": size}
    marker = data_dir / VIEWPORT_MARKER
    if marker.exists() and json.loads(marker.read_text()).get("parameters") == parameters:
        return [int(study_id) for study_id in json.loads(marker.read_text())["study_ids"]]
    started = time.perf_counter()
    study_ids = []
    for number in range(studies):
        results = ingest_files(store, ADMIN, viewport_study_files(number, slices, size), chunk_size=100)
        refused = [result for result in results if result.image_id is None]
        if refused:
            raise RuntimeError(f"{len(refused)} slices refused, first: {refused[0].file}: {refused[0].reason}")
        with store.db.read() as session:
            first_slice = select(Series.study_id).join(Image, Image.series_id == Series.id)
            study_ids.append(int(session.scalar(first_slice.where(Image.id == results[0].image_id))))
        print(
            f"  MR study {number + 1}/{studies}: 4 x {slices} slices of {size}x{size} ingested "
            f"({time.perf_counter() - started:.0f} s so far)",
            file=sys.stderr,
            flush=True,
        )
    marker.write_text(json.dumps({"parameters": parameters, "study_ids": study_ids}))
    return study_ids


def median_ms(action: Callable[[], Any], runs: int) -> float:
    action()  # warm the caches as a reader's second look does
    times = []
    for _ in range(runs):
        started = time.perf_counter()
        action()
        times.append((time.perf_counter() - started) * 1000)
    return round(statistics.median(times), 1)


def time_case_worklist(store: Store, runs: int) -> dict[str, Any]:
    """Times the reader's case worklist (see the module docstring) under each order, status and
    search, printing a table; {images, runs: {name: {rows, list_ms, next_ms}}, case_worklist_ms,
    case_next_ms}."""
    with store.db.read() as session:
        images = session.scalar(select(func.count(Image.id))) or 0
    studies = case_worklist_counts(store, READER, CaseWorklist("study", WorklistFilter("all")))["all"]
    figures: dict[str, Any] = {"images": images, "runs": {}}
    print(f"{studies} studies, {images} images; median of {runs} runs, ms")
    print(f"{'order':<12} {'status':<7} {'search':<10} {'rows':>6} {'list_ms':>8} {'next_ms':>8}")
    for sort in WORKLIST_SORTS:
        for status in STATUSES:
            for search in SEARCHES:
                cases = CaseWorklist("study", WorklistFilter(status, search=search, sort=sort))
                counts = case_worklist_counts(store, READER, cases)
                total = counts[status]
                middle = max(0, total // 2 - PAGE_ROWS // 2)
                page, _ = case_worklist_page(store, READER, cases, offset=middle, limit=PAGE_ROWS, total=total)
                on_screen = int(page["case_id"].iloc[0]) if len(page) else None

                def list_run(cases: CaseWorklist = cases, on_screen: int | None = on_screen) -> None:
                    listed = case_worklist_counts(store, READER, cases)[cases.filter.status]
                    where = case_list_position(store, READER, cases, on_screen) if on_screen else None
                    offset = ((where or 0) // PAGE_ROWS) * PAGE_ROWS
                    case_worklist_page(store, READER, cases, offset=offset, limit=PAGE_ROWS, total=listed)

                list_ms = median_ms(list_run, runs)
                next_ms = median_ms(lambda: next_case_id(store, READER, cases, on_screen), runs)  # noqa: B023
                name = f"{sort}|{status}|{search}"
                figures["runs"][name] = {"rows": total, "list_ms": list_ms, "next_ms": next_ms}
                print(f"{sort:<12} {status:<7} {search or '-':<10} {total:>6} {list_ms:>8} {next_ms:>8}")
    figures["case_worklist_ms"] = max(run["list_ms"] for run in figures["runs"].values())
    figures["case_next_ms"] = max(run["next_ms"] for run in figures["runs"].values())
    print(f"case_worklist_ms {figures['case_worklist_ms']} (target <= 300), case_next_ms {figures['case_next_ms']}")
    return figures


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data-dir", type=Path, default=Path("/tmp/case-store"))
    parser.add_argument("--studies", type=int, default=2000)
    parser.add_argument("--slices", type=int, default=100)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--json", metavar="PATH", help="write the figures as one JSON object ('-': stdout)")
    args = parser.parse_args()
    store = build_case_store(args.data_dir, args.studies, args.slices)
    figures = time_case_worklist(store, args.runs)
    figures["studies"] = args.studies
    if args.json:
        text = json.dumps(figures, indent=2)
        if args.json == "-":
            print(text)
        else:
            Path(args.json).write_text(text)


if __name__ == "__main__":
    main()
