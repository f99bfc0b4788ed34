"""Ingest throughput against a real PACS (Orthanc) and bare pydicom, on real files and a
generated CT series.

    .venv/bin/python bench/ingest.py [--slices 500] [--repeats 2] [--orthanc-only]

First, the PACS comparison the target is set on: Debian's Orthanc is started on a loopback port
(``SyncStorageArea`` on, so it flushes each file before answering, as medreview fsyncs before it
commits) and takes the generated CT series through ``POST /instances``; medreview ingests the same
files with its default settings (de-identification on). The ratio of their files/s is printed
against the target of 1.0.

Inputs (all read from disk in both runs):

- the real corpus: every file of pydicom's test files and of the pydicom-data package, including
  the ones the app refuses (reports, plans, broken files, text);
- a generated CT series: ``--slices`` slices of 512 x 512 int16, written to a temporary folder
  (never into the repository) and deleted afterwards.

Two ways through the same files in the same run:

- app: ``ingest_files`` into a fresh temporary store (``Store.open(Settings(...))``) with the
  project's default settings, as a user gets it: parse, check limits, decode every frame once,
  de-identify (a second parse and a rewrite), hash, write the file to the blob store (fsync of
  the file and its folder), commit the rows;
- app without de-identification: the same, after ``set_setting(store, LOCAL_ACTOR, "deidentify",
  False)`` (originals stored byte for byte), to show what de-identification costs;
- baseline: ``pydicom.dcmread(path).pixel_array`` per file, nothing stored.

The baseline skips the files pydicom cannot read (the time spent trying stays in, the files are
not counted); the app counts every file, refused or stored, so a corpus with many refused files
flatters the files/s ratio: the seconds ratio (baseline seconds / app seconds, same files) is
printed next to it. Each run is repeated and the
fastest repeat is kept, so the page cache and the decoders' first-call costs do not decide the result.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import warnings
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pydicom
import pydicom.data
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import CTImageStorage, ExplicitVRLittleEndian, generate_uid

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from medreview.config import Settings
from medreview.ingest import InputFile, ingest_files
from medreview.reading.reads import LOCAL_ACTOR
from medreview.store import Store
from medreview.team.settings import set_setting

TARGET_RATIO = 0.8


def corpus_folders() -> list[Path]:
    folders = [Path(pydicom.data.__file__).parent / "test_files"]
    spec = importlib.util.find_spec("data_store")  # the pydicom-data package
    if spec is not None and spec.origin is not None:
        folders.append(Path(spec.origin).parent / "data")
    return [folder for folder in folders if folder.is_dir()]


def corpus_files() -> list[Path]:
    return [path for folder in corpus_folders() for path in sorted(folder.rglob("*")) if path.is_file()]


def write_ct_series(folder: Path, slices: int, size: int = 512) -> list[Path]:
    """``slices`` CT slices of (size, size) int16 stored values (HU + 1024), explicit VR little endian."""
    study_uid, series_uid, frame_uid = generate_uid(), generate_uid(), generate_uid()
    yy, xx = np.mgrid[:size, :size]
    radius = np.hypot(yy - size / 2, xx - size / 2)
    body = np.where(radius < size * 0.42, 40, -1000).astype(np.int16)  # soft tissue disc in air
    noise = np.random.default_rng(0).normal(0, 15, (size, size)).astype(np.int16)
    paths = []
    for index in range(slices):
        bone = np.where(np.abs(radius - size * (0.1 + 0.2 * index / slices)) < 6, 700, 0).astype(np.int16)
        stored = (body + bone + np.roll(noise, index, axis=0) + 1024).astype(np.int16)
        meta = FileMetaDataset()
        meta.MediaStorageSOPClassUID = CTImageStorage
        meta.MediaStorageSOPInstanceUID = generate_uid()
        meta.TransferSyntaxUID = ExplicitVRLittleEndian
        dataset = Dataset()
        dataset.file_meta = meta
        dataset.SOPClassUID = CTImageStorage
        dataset.SOPInstanceUID = meta.MediaStorageSOPInstanceUID
        dataset.StudyInstanceUID, dataset.SeriesInstanceUID, dataset.FrameOfReferenceUID = (
            study_uid,
            series_uid,
            frame_uid,
        )
        dataset.PatientID, dataset.PatientName, dataset.Modality = "BENCH-CT", "Bench^Phantom", "CT"
        dataset.StudyDate, dataset.SeriesNumber, dataset.InstanceNumber = "20260101", 1, index + 1
        dataset.ImageOrientationPatient = [1, 0, 0, 0, 1, 0]
        dataset.ImagePositionPatient = [-250, -250, -index * 1.0]
        dataset.PixelSpacing, dataset.SliceThickness = [0.98, 0.98], 1.0
        dataset.Rows = dataset.Columns = size
        dataset.SamplesPerPixel, dataset.PhotometricInterpretation = 1, "MONOCHROME2"
        dataset.BitsAllocated, dataset.BitsStored, dataset.HighBit, dataset.PixelRepresentation = 16, 16, 15, 1
        dataset.RescaleSlope, dataset.RescaleIntercept = 1, -1024
        dataset.WindowCenter, dataset.WindowWidth = 40, 400
        dataset.PixelData = stored.tobytes()
        path = folder / f"CT{index + 1:04d}.dcm"
        dataset.save_as(path, enforce_file_format=True)
        paths.append(path)
    return paths


@dataclass
class Run:
    seconds: float
    counted: int  # files counted in the throughput
    skipped: int  # files attempted but not counted (baseline only)
    statuses: Counter[str]


def run_baseline(paths: list[Path]) -> Run:
    counted = skipped = 0
    start = time.perf_counter()
    for path in paths:
        try:
            pixels = pydicom.dcmread(path).pixel_array
        except Exception:  # not DICOM, no pixels, broken: pydicom cannot read it
            skipped += 1
            continue
        counted += 1 if pixels.size else 0
    return Run(time.perf_counter() - start, counted, skipped, Counter())


def run_app(paths: list[Path], data_dir: Path, deidentify: bool = True) -> Run:
    settings = Settings(data_dir=data_dir, database_url=f"sqlite:///{data_dir / 'medreview.db'}")
    store = Store.open(settings)  # schema creation and seeding happen before the clock starts
    try:
        if not deidentify:
            set_setting(store, LOCAL_ACTOR, "deidentify", False)

        def inputs() -> Iterator[InputFile]:
            for path in paths:
                yield InputFile(str(path), path.read_bytes())

        start = time.perf_counter()
        results = ingest_files(store, LOCAL_ACTOR, inputs())
        seconds = time.perf_counter() - start
    finally:
        store.close()
    return Run(seconds, len(results), 0, Counter(result.status for result in results))


def best_of(repeats: int, run: object, *args: object) -> Run:
    return min((run(*args) for _ in range(repeats)), key=lambda result: result.seconds)  # type: ignore[operator]


@dataclass
class Ratios:
    deidentified: float  # the app as a user gets it (de-identification on, the default)
    originals: float  # de-identification off


def report(label: str, paths: list[Path], repeats: int, scratch: Path) -> Ratios:
    megabytes = sum(path.stat().st_size for path in paths) / 1e6
    baseline = best_of(repeats, run_baseline, paths)
    baseline_rate = baseline.counted / baseline.seconds
    print(f"\n{label}: {len(paths)} files, {megabytes:.1f} MB")
    print(
        f"  baseline pydicom.dcmread + pixel_array: {baseline.counted} files in {baseline.seconds:.2f} s = "
        f"{baseline_rate:.1f} files/s ({baseline.skipped} files pydicom cannot read were skipped, not counted)"
    )
    ratios = {}
    for deidentify, how in ((True, "default settings (de-identify on)"), (False, "de-identify off")):
        app_runs = []
        for repeat in range(repeats):
            data_dir = scratch / f"store-{label.split()[0]}-{'deid' if deidentify else 'orig'}-{repeat}"
            app_runs.append(run_app(paths, data_dir, deidentify))
        app = min(app_runs, key=lambda result: result.seconds)
        app_rate = app.counted / app.seconds
        ratios[deidentify] = app_rate / baseline_rate
        statuses = ", ".join(f"{count} {status}" for status, count in sorted(app.statuses.items()))
        print(
            f"  app, {how}: {app.counted} files in {app.seconds:.2f} s = {app_rate:.1f} files/s "
            f"({statuses}; {app.seconds * 1000 / app.counted:.2f} ms/file)"
        )
        print(
            f"    ratio app / baseline: {ratios[deidentify]:.2f} files/s (target >= {TARGET_RATIO}); "
            f"seconds, same files: {baseline.seconds / app.seconds:.2f}"
        )
    return Ratios(deidentified=ratios[True], originals=ratios[False])


def stage_breakdown(paths: list[Path], scratch: Path) -> None:
    """Milliseconds per file of each stage of the app's ingest, to show where its time goes."""
    from concurrent.futures import ThreadPoolExecutor

    from medreview.config import IngestLimits
    from medreview.ingest.deid import deidentify_dicom
    from medreview.ingest.dicom import read_dicom
    from medreview.ingest.service import _BLOB_WRITERS
    from medreview.store.blobs import BlobStore, sha256_hex

    contents = [path.read_bytes() for path in paths]
    limits = IngestLimits()
    serial_blobs = BlobStore(scratch / "stage-blobs-serial")
    pooled_blobs = BlobStore(scratch / "stage-blobs-pooled")
    digests = [sha256_hex(data) for data in contents]

    def pooled_writes() -> None:
        # As ingest_files does: a few writer threads, then each folder fsynced once.
        with ThreadPoolExecutor(_BLOB_WRITERS) as pool:
            list(pool.map(lambda data, digest: pooled_blobs.put(data, digest, sync_folder=False), contents, digests))
        pooled_blobs.sync_folders(digests)

    stages = {
        "read the file": lambda: [path.read_bytes() for path in paths],
        "read_dicom (parse, check, decode)": lambda: [read_dicom(data, limits) for data in contents],
        "deidentify_dicom (parse, rewrite)": lambda: [deidentify_dicom(data, b"bench-secret") for data in contents],
        "sha256": lambda: [sha256_hex(data) for data in contents],
        "blob write, one at a time": lambda: [serial_blobs.put(data) for data in contents],
        f"blob write, {_BLOB_WRITERS} threads": pooled_writes,
        "baseline dcmread + pixel_array": lambda: [pydicom.dcmread(path).pixel_array for path in paths],
    }
    print(
        "  per file, by stage (de-identify on hashes twice: the upload and the stored copy; the rest of the\n"
        "  app's time is the database rows, less what the blob threads overlap with parsing):"
    )
    for label, stage in stages.items():
        start = time.perf_counter()
        stage()
        print(f"    {label:36s} {(time.perf_counter() - start) * 1000 / len(paths):6.2f} ms")


ORTHANC_BINARIES = ("/usr/sbin/Orthanc", "/usr/bin/Orthanc")
ORTHANC_TARGET_RATIO = 1.0


def find_orthanc() -> str | None:
    return shutil.which("Orthanc") or next((path for path in ORTHANC_BINARIES if os.access(path, os.X_OK)), None)


def run_orthanc_upload(binary: str, paths: list[Path], workdir: Path) -> float:
    """Seconds for Debian's Orthanc to store ``paths`` through ``POST /instances`` on loopback, one
    request after the other on a kept-alive connection, with ``SyncStorageArea`` on (each file is
    flushed to disk before Orthanc answers, as medreview fsyncs before it commits)."""
    import requests

    workdir.mkdir(parents=True)
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    config = {
        "Name": "medreview-bench",
        "StorageDirectory": str(workdir / "storage"),
        "IndexDirectory": str(workdir / "storage"),
        "HttpPort": port,
        "DicomServerEnabled": False,
        "RemoteAccessAllowed": False,
        "AuthenticationEnabled": False,
        "SyncStorageArea": True,
        "SaveJobs": False,
    }
    (workdir / "orthanc.json").write_text(json.dumps(config))
    log = (workdir / "orthanc.log").open("wb")
    process = subprocess.Popen([binary, str(workdir / "orthanc.json")], stdout=log, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        with requests.Session() as session:
            while True:
                try:
                    if session.get(f"{url}/system", timeout=1).status_code == 200:
                        break
                except requests.RequestException:
                    pass
                if time.monotonic() > deadline or process.poll() is not None:
                    raise SystemExit(f"Orthanc did not start; see {workdir / 'orthanc.log'}")
                time.sleep(0.1)
            payloads = [path.read_bytes() for path in paths]
            start = time.perf_counter()
            for payload in payloads:
                session.post(f"{url}/instances", data=payload, timeout=60).raise_for_status()
            seconds = time.perf_counter() - start
            stored = session.get(f"{url}/statistics", timeout=10).json()["CountInstances"]
        if stored != len(paths):
            raise SystemExit(f"Orthanc stored {stored} of {len(paths)} instances")
        return seconds
    finally:
        process.terminate()
        process.wait(timeout=30)
        log.close()


def against_orthanc(series: list[Path], repeats: int, scratch: Path) -> float | None:
    """medreview's files/s (de-identification on, the default) over Orthanc's, same CT series."""
    binary = find_orthanc()
    if binary is None:
        print("\nOrthanc not found (apt-get install orthanc; .ci/run installs it): no PACS comparison")
        return None
    orthanc_seconds = min(run_orthanc_upload(binary, series, scratch / f"orthanc-{n}") for n in range(repeats))
    app = min(
        (run_app(series, scratch / f"store-orthanc-race-{n}", deidentify=True) for n in range(repeats)),
        key=lambda result: result.seconds,
    )
    assert app.statuses["stored"] == len(series), app.statuses
    ratio = (len(series) / app.seconds) / (len(series) / orthanc_seconds)
    print(f"\nCT series ({len(series)} slices) against a real PACS, same files, same run:")
    print(f"  Orthanc POST /instances (SyncStorageArea on): {len(series) / orthanc_seconds:.1f} files/s")
    print(f"  medreview ingest_files (de-identification on): {len(series) / app.seconds:.1f} files/s")
    verdict = "meets" if ratio >= ORTHANC_TARGET_RATIO else "misses"
    print(f"  ratio medreview / Orthanc: {ratio:.2f} ({verdict} the target of {ORTHANC_TARGET_RATIO})")
    return ratio


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--slices", type=int, default=500, help="slices in the generated CT series")
    parser.add_argument("--repeats", type=int, default=2, help="runs of each kind; the fastest is kept")
    parser.add_argument("--orthanc-only", action="store_true", help="only the comparison with Orthanc")
    arguments = parser.parse_args()
    warnings.simplefilter("ignore")  # pydicom warns about the quirks the corpus files exist for
    with tempfile.TemporaryDirectory(prefix="medreview-bench-") as scratch_name:
        scratch = Path(scratch_name)
        series_folder = scratch / "ct-series"
        series_folder.mkdir()
        generation_start = time.perf_counter()
        series = write_ct_series(series_folder, arguments.slices)
        print(f"generated {len(series)} CT slices (512 x 512 int16) in {time.perf_counter() - generation_start:.1f} s")
        corpus = corpus_files()
        if not corpus:
            print("no corpus found: install pydicom (test files) and pydicom-data")
        for path in [*corpus, *series]:  # warm the page cache for both contenders alike
            path.read_bytes()
        against_orthanc(series, arguments.repeats, scratch)
        if arguments.orthanc_only:
            return
        ratios = {}
        if corpus:
            ratios["corpus"] = report(
                "real corpus (pydicom test files + pydicom-data)", corpus, arguments.repeats, scratch
            )
        ratios["series"] = report(f"generated CT series ({len(series)} slices)", series, arguments.repeats, scratch)
        stage_breakdown(series, scratch)
        ratios["all"] = report("everything together", [*corpus, *series], arguments.repeats, scratch)
    print()
    for how, ratio in (
        ("default settings (de-identify on)", ratios["all"].deidentified),
        ("de-identify off", ratios["all"].originals),
    ):
        verdict = "meets" if ratio >= TARGET_RATIO else "misses"
        print(f"overall ratio, {how}: {ratio:.2f} {verdict} the target of {TARGET_RATIO}")


if __name__ == "__main__":
    main()
