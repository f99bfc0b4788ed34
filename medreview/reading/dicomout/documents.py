"""Reads, final labels and predictions as DICOM Comprehensive 3D SR; evaluation sets as KOS.

One report per case and source (:data:`SOURCES`): a reader's read, the case's final label, or a
model version's prediction. A report is a TID 1500 measurement report (written with highdicom) in
the study of the images it describes (same Study Instance UID, and the patient module of those
images as stored: de-identified when de-identification is on), in a series of its own per study
("medreview SR"), and it references the case's images by their stored (remapped) Study, Series
and SOP Instance UIDs:

- one measurement group for the case (tracking identifier ``"medreview <source> <scope>"``) with
  the case's images as its source images, the single-choice class as its finding type (DCM 121071
  "Finding") and as a "Class" qualitative evaluation, and each multi-label class as a "Class
  present" evaluation (concept names of the private scheme; class codes: :mod:`.codes`);
- for a prediction, in that group, the calibrated probability of the predicted class as a
  measurement (unit UCUM ``{probability}``), the model's algorithm identification (name
  ``medreview <architecture>``, version ``model version <N>``) and the out-of-distribution flag as
  a qualitative evaluation (Yes/No); an image outside the version's training data gets the flag
  only, no class and no probability, as in every other export;
- one planar ROI group per box: a closed 5-point POLYLINE (SCOORD) in image pixels, (column, row)
  from the top-left corner of the top-left pixel, with the box's class as its "Finding".

Observer: the reader (a person) by a pseudonym (``reader-`` + 10 hex digits of an HMAC of the user
name under the project key) when de-identification is on, else by user name; a device (the model
version, or medreview itself for a final label) otherwise.

UIDs are stable: a report's SOP Instance UID is a hash (``2.25.``) of the project key, the source,
the case and what the report says, so exporting the same read twice gives the same UID (a PACS
that has it says so: nothing is sent twice), and a changed read is a new object. Images uploaded
as PNG/JPEG have no DICOM identity: their cases get "no DICOM references: SR not written".

A Key Object Selection document per study lists an evaluation set's images ("Of Interest"), so
the set can be opened in a PACS.
"""

from __future__ import annotations

import contextlib
import hashlib
import hmac
import io
import json
import warnings
import zipfile
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import highdicom as hd
import numpy as np
import pydicom
from pydicom.dataset import Dataset
from pydicom.sr.codedict import codes
from sqlalchemy import select

from medreview.errors import MedreviewError, NotFoundError
from medreview.ingest.pseudonyms import project_secret
from medreview.reading.cases import images_in_case
from medreview.reading.dicomout.codes import PRIVATE_SCHEME, class_code_parts
from medreview.reading.evaluation_sets import evaluation_set_images, find_evaluation_set
from medreview.reading.reads import current_labels, reads_table
from medreview.store import Store
from medreview.store.blobs import atomic_write
from medreview.store.models import Image, ModelVersion, Prediction, Series, Study
from medreview.team.audit import record_now
from medreview.team.roles import Actor, require
from medreview.team.settings import get_setting

__all__ = [
    "CLASS",
    "CLASS_PRESENT",
    "OUTSIDE_TRAINING_DATA",
    "PROBABILITY",
    "PROBABILITY_UNIT",
    "SOURCES",
    "DicomObject",
    "ObjectResult",
    "kos_objects",
    "reader_pseudonym",
    "sr_objects",
    "write_objects",
    "zip_objects",
]

SOURCES = ("reads", "final", "predictions")
MANUFACTURER = "medreview"
SR_SERIES_NUMBER = 9901
KOS_SERIES_NUMBER = 9902
# Part of every UID's hash: a change of what the objects look like gives new objects.
LAYOUT_VERSION = "1"
NO_DICOM = "no DICOM references: SR not written"

CLASS = hd.sr.CodedConcept("CLASS", PRIVATE_SCHEME, "Class")
CLASS_PRESENT = hd.sr.CodedConcept("CLASSPRESENT", PRIVATE_SCHEME, "Class present")
PROBABILITY = hd.sr.CodedConcept("PROBABILITY", PRIVATE_SCHEME, "Calibrated probability of the finding")
PROBABILITY_UNIT = hd.sr.CodedConcept("{probability}", "UCUM", "probability")
OUTSIDE_TRAINING_DATA = hd.sr.CodedConcept("OUTSIDETRAINING", PRIVATE_SCHEME, "Outside the model's training data")
IMAGING_PROCEDURE = hd.sr.CodedConcept("363679005", "SCT", "Imaging")


@dataclass(frozen=True)
class ObjectResult:
    """What became of one case (or study, for a KOS): ``written`` with its object, or ``skipped``."""

    source: str  # "read", "final", "prediction" or "kos"
    case: str  # e.g. "image 12", "study 3"
    status: str  # "written" | "skipped"
    reason: str = ""
    sop_instance_uid: str = ""


@dataclass(frozen=True)
class DicomObject:
    dataset: Dataset = field(repr=False)
    file_name: str  # SR-<SOP Instance UID>.dcm or KO-<...>.dcm: names nobody

    @property
    def sop_instance_uid(self) -> str:
        return str(self.dataset.SOPInstanceUID)


@dataclass
class _Report:
    """What one SR says, before it is DICOM."""

    source: str  # read | final | prediction
    scope: str
    case_id: int
    observer: str  # reader pseudonym / user name; "" for a device
    label: str | None  # the single-choice class (a prediction: the predicted class)
    labels: list[str] = field(default_factory=list)  # multi-label classes
    boxes: list[dict[str, Any]] = field(default_factory=list)
    probability: float | None = None
    outside_training_data: bool | None = None
    model: ModelVersion | None = None
    method: str = ""  # a final label's method

    def digest(self) -> str:
        model_id = self.model.id if self.model is not None else None
        content = [
            self.label,
            self.labels,
            self.boxes,
            self.probability,
            self.outside_training_data,
            model_id,
            self.method,
        ]
        return hashlib.sha256(json.dumps(content, sort_keys=True, default=str).encode()).hexdigest()


def stable_uid(secret: bytes, *parts: object) -> str:
    """A ``2.25.`` UID hashed from the project key and ``parts``: the same parts, the same UID."""
    # (pydicom's generate_uid(prefix=None) ignores its entropy sources: a random UUID every time.)
    text = "\n".join([LAYOUT_VERSION, *map(str, parts)]).encode("utf-8")
    digest = hmac.new(secret, text, hashlib.sha256).digest()
    return "2.25." + str(int.from_bytes(digest[:16], "big"))


def reader_pseudonym(secret: bytes, username: str) -> str:
    """A reader's name in DICOM objects when de-identification is on: ``reader-`` + 10 hex digits."""
    digest = hmac.new(secret, b"reader\n" + username.encode("utf-8"), hashlib.sha256).hexdigest()
    return "reader-" + digest[:10]


# --- what the reports say ------------------------------------------------------------------------


def _reports(store: Store, actor: Actor, sources: Iterable[str], model_id: int | None, secret: bytes) -> list[_Report]:
    deidentify = bool(get_setting(store, "deidentify"))
    reports: list[_Report] = []
    sources = list(sources)
    unknown = [source for source in sources if source not in SOURCES]
    if unknown:
        raise MedreviewError(f"unknown SR source '{unknown[0]}' (choose from {', '.join(SOURCES)})")
    if "reads" in sources:
        for read in reads_table(store, actor).itertuples(index=False):
            label = read.label if isinstance(read.label, str) else None
            observer = reader_pseudonym(secret, read.reader) if deidentify else read.reader
            reports.append(
                _Report(
                    "read",
                    read.scope,
                    int(read.case_id),
                    observer,
                    label,
                    labels=sorted(read.labels or []),
                    boxes=list(read.boxes or []),
                )
            )
    if "final" in sources:
        for final in current_labels(store, scope=None).itertuples(index=False):
            reports.append(_Report("final", final.scope, int(final.case_id), "", final.label, method=final.method))
    if "predictions" in sources:
        reports.extend(_prediction_reports(store, model_id))
    return reports


def _prediction_reports(store: Store, model_id: int | None) -> list[_Report]:
    with store.db.read() as session:
        if model_id is None:
            model = session.scalar(select(ModelVersion).where(ModelVersion.is_active.is_(True)))
            if model is None:
                raise MedreviewError("no active model: name a model version (--model N) to export its predictions")
        else:
            model = session.get(ModelVersion, model_id)
            if model is None:
                raise NotFoundError(f"model version {model_id} does not exist")
        session.expunge(model)
        rows = session.scalars(
            select(Prediction).where(Prediction.model_version_id == model.id).order_by(Prediction.image_id)
        ).all()
        reports = []
        for row in rows:
            outside = bool(row.out_of_distribution)
            reports.append(
                _Report(
                    "prediction",
                    row.scope,
                    int(row.case_id),
                    "",
                    None if outside else row.predicted_class,
                    probability=None if outside else float(row.probability),
                    outside_training_data=outside,
                    model=model,
                )
            )
    return reports


# --- images and their headers ---------------------------------------------------------------------


@dataclass(frozen=True)
class _CaseImages:
    study_uid: str
    case_uid: str  # the study, series or SOP Instance UID of the case
    headers: list[Dataset]  # (the stored files' headers, pixel data left out) in reading order
    frames: dict[str, int]  # SOP Instance UID -> number of frames


class _Images:
    """The stored DICOM headers of cases, read once per export."""

    def __init__(self, store: Store) -> None:
        self.store = store
        self._headers: dict[int, Dataset] = {}
        self._cases: dict[tuple[str, int], _CaseImages | None] = {}

    def case(self, scope: str, case_id: int) -> _CaseImages | None:
        """The case's images, or None when one of them is not DICOM (or the case is gone)."""
        key = (scope, case_id)
        if key not in self._cases:
            self._cases[key] = self._load(scope, case_id)
        return self._cases[key]

    def _load(self, scope: str, case_id: int) -> _CaseImages | None:
        with self.store.db.read() as session:
            image_ids = images_in_case(session, scope, case_id)
            if not image_ids:
                return None
            rows = session.execute(
                select(Image.id, Image.media_type, Image.sha256, Image.number_of_frames, Series.series_uid)
                .add_columns(Study.study_uid)
                .join(Series, Series.id == Image.series_id)
                .join(Study, Study.id == Series.study_id)
                .where(Image.id.in_(image_ids))
            ).all()
        by_id = {row.id: row for row in rows}
        if any(row.media_type != "dicom" for row in rows):
            return None
        headers = []
        for image_id in image_ids:
            if image_id not in self._headers:
                path = self.store.blobs.path_for(by_id[image_id].sha256)
                self._headers[image_id] = _with_type2(pydicom.dcmread(path, stop_before_pixels=True))
            headers.append(self._headers[image_id])
        first = by_id[image_ids[0]]
        case_uid = {"study": first.study_uid, "series": first.series_uid}.get(scope) or str(headers[0].SOPInstanceUID)
        frames = {
            str(header.SOPInstanceUID): by_id[image_id].number_of_frames
            for image_id, header in zip(image_ids, headers, strict=True)
        }
        return _CaseImages(first.study_uid, case_uid, headers, frames)


# Patient and study attributes an SR or KOS copies from its evidence (Type 2: present, possibly
# empty). De-identification removes several of them from the stored images.
_TYPE2_COPIED = (
    "PatientName",
    "PatientID",
    "PatientBirthDate",
    "PatientSex",
    "StudyDate",
    "StudyTime",
    "ReferringPhysicianName",
    "AccessionNumber",
    "StudyID",
)


def _with_type2(header: Dataset) -> Dataset:
    for keyword in _TYPE2_COPIED:
        if keyword not in header:
            setattr(header, keyword, "")
    return header


# --- SR ---------------------------------------------------------------------------------------------


def _class_concept(name: str, class_codes: dict[str, str]) -> hd.sr.CodedConcept:
    scheme, value = class_code_parts(name, class_codes)
    return hd.sr.CodedConcept(value, scheme, name)


def _observation_context(report: _Report, secret: bytes) -> hd.sr.ObservationContext:
    if report.source == "read":
        # A one-component person name ends with "^" (PS3.5 6.2.1.2): the pseudonym, or user name.
        person = hd.sr.PersonObserverIdentifyingAttributes(name=report.observer + "^", login_name=report.observer)
        return hd.sr.ObservationContext(observer_person_context=hd.sr.ObserverContext(codes.DCM.Person, person))
    if report.model is not None:
        device = hd.sr.DeviceObserverIdentifyingAttributes(
            uid=stable_uid(secret, "model", report.model.id, report.model.sha256),
            name=f"medreview model version {report.model.id}",
            manufacturer_name=MANUFACTURER,
            model_name=report.model.architecture,
            serial_number=report.model.sha256[:16],
        )
    else:
        device = hd.sr.DeviceObserverIdentifyingAttributes(
            uid=stable_uid(secret, "device", "final label"),
            name="medreview final label",
            manufacturer_name=MANUFACTURER,
        )
    return hd.sr.ObservationContext(observer_device_context=hd.sr.ObserverContext(codes.DCM.Device, device))


def _algorithm(model: ModelVersion) -> hd.sr.AlgorithmIdentification:
    return hd.sr.AlgorithmIdentification(name=f"medreview {model.architecture}", version=f"model version {model.id}")


def _source_image(header: Dataset, frames: int, frame: int | None = None) -> dict[str, Any]:
    values: dict[str, Any] = {
        "referenced_sop_class_uid": str(header.SOPClassUID),
        "referenced_sop_instance_uid": str(header.SOPInstanceUID),
    }
    if frame is not None and frames > 1:
        values["referenced_frame_numbers"] = [frame + 1]
    return values


def _groups(
    report: _Report, images: _CaseImages, class_codes: dict[str, str], secret: bytes, sop_uid: str
) -> list[Any]:
    # The single-choice class is the group's finding type and a "Class" evaluation; each
    # multi-label class a "Class present" evaluation (import tells the two apart).
    evaluations = (
        [hd.sr.QualitativeEvaluation(CLASS, _class_concept(report.label, class_codes))] if report.label else []
    )
    evaluations += [
        hd.sr.QualitativeEvaluation(CLASS_PRESENT, _class_concept(name, class_codes)) for name in report.labels
    ]
    measurements = []
    algorithm = _algorithm(report.model) if report.model is not None else None
    if report.model is not None:
        flag = codes.SCT.Yes if report.outside_training_data else codes.SCT.No
        evaluations.append(hd.sr.QualitativeEvaluation(OUTSIDE_TRAINING_DATA, flag))
        if report.probability is not None:
            measurements.append(
                hd.sr.Measurement(
                    name=PROBABILITY, value=report.probability, unit=PROBABILITY_UNIT, algorithm_id=algorithm
                )
            )
    sources = [hd.sr.SourceImageForMeasurementGroup(**_source_image(header, 1)) for header in images.headers]
    groups: list[Any] = [
        hd.sr.MeasurementsAndQualitativeEvaluations(
            tracking_identifier=hd.sr.TrackingIdentifier(
                uid=stable_uid(secret, sop_uid, "case"), identifier=f"medreview {report.source} {report.scope}"
            ),
            finding_type=_class_concept(report.label, class_codes) if report.label else None,
            algorithm_id=algorithm,
            qualitative_evaluations=evaluations or None,
            measurements=measurements or None,
            source_images=sources,
        )
    ]
    header = images.headers[0]
    for number, box in enumerate(report.boxes, start=1):
        left, top = float(box["x"]), float(box["y"])
        right, bottom = left + float(box["width"]), top + float(box["height"])
        # (5, 2) float32 (column, row) image pixels: the closed outline, last point = first.
        outline = np.array([[left, top], [right, top], [right, bottom], [left, bottom], [left, top]], dtype=np.float32)
        region = hd.sr.ImageRegion(
            graphic_type=hd.sr.GraphicTypeValues.POLYLINE,
            graphic_data=outline,
            source_image=hd.sr.SourceImageForRegion(
                **_source_image(header, images.frames[str(header.SOPInstanceUID)], int(box.get("frame", 0)))
            ),
        )
        groups.append(
            hd.sr.PlanarROIMeasurementsAndQualitativeEvaluations(
                tracking_identifier=hd.sr.TrackingIdentifier(
                    uid=stable_uid(secret, sop_uid, "box", number), identifier=f"medreview box {number}"
                ),
                referenced_region=region,
                finding_type=_class_concept(box["label"], class_codes),
            )
        )
    return groups


@contextlib.contextmanager
def _quiet_person_names() -> Iterator[None]:
    """highdicom warns about one-component names; the patient pseudonym ("ANON-...") is one, as stored."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*unlikely to represent the intended person name")
        yield


def _sr(report: _Report, images: _CaseImages, class_codes: dict[str, str], secret: bytes) -> Dataset:
    observer_key = report.observer or (f"model {report.model.id}" if report.model is not None else "final")
    sop_uid = stable_uid(secret, "sr", report.source, observer_key, report.scope, images.case_uid, report.digest())
    content = hd.sr.MeasurementReport(
        observation_context=_observation_context(report, secret),
        procedure_reported=IMAGING_PROCEDURE,
        imaging_measurements=_groups(report, images, class_codes, secret, sop_uid),
        title=codes.DCM.ImagingMeasurementReport,
    )
    document = hd.sr.Comprehensive3DSR(
        evidence=images.headers,
        content=content[0],
        series_instance_uid=stable_uid(secret, "sr series", images.study_uid),
        series_number=SR_SERIES_NUMBER,
        sop_instance_uid=sop_uid,
        instance_number=1 + int(sop_uid.rsplit(".", 1)[-1]) % 99999,
        manufacturer=MANUFACTURER,
        is_complete=True,
        is_final=True,
        series_description="medreview SR",
    )
    return document


def sr_objects(
    store: Store, actor: Actor, sources: Iterable[str] = SOURCES, model_id: int | None = None
) -> tuple[list[DicomObject], list[ObjectResult]]:
    """One Comprehensive 3D SR per case and source, and one result per case (written or skipped
    with the reason). ``sources``: any of :data:`SOURCES`; ``model_id``: the version whose
    predictions are written (default: the active one)."""
    require(actor, "reviewer", "export DICOM structured reports")
    secret = project_secret(store)
    class_codes = dict(get_setting(store, "class_codes"))
    images = _Images(store)
    objects, results = [], []
    for report in _reports(store, actor, sources, model_id, secret):
        case = f"{report.scope} {report.case_id}"
        found = images.case(report.scope, report.case_id)
        if found is None:
            results.append(ObjectResult(report.source, case, "skipped", NO_DICOM))
            continue
        try:
            with _quiet_person_names():
                dataset = _sr(report, found, class_codes, secret)
        except (ValueError, TypeError, AttributeError) as error:
            # A stored header highdicom cannot take (a required attribute missing): this case only.
            results.append(ObjectResult(report.source, case, "skipped", f"SR not written: {error}"))
            continue
        objects.append(DicomObject(dataset, f"SR-{dataset.SOPInstanceUID}.dcm"))
        results.append(ObjectResult(report.source, case, "written", sop_instance_uid=str(dataset.SOPInstanceUID)))
    return objects, results


# --- KOS --------------------------------------------------------------------------------------------


def kos_objects(
    store: Store, actor: Actor, set_name: str | None = None
) -> tuple[list[DicomObject], list[ObjectResult]]:
    """One Key Object Selection document per study of an evaluation set (default: the default
    set), listing the set's images of that study; a study whose cases are not DICOM is skipped."""
    require(actor, "reviewer", "export DICOM key object selections")
    secret = project_secret(store)
    evaluation_set = find_evaluation_set(store, set_name)
    members = evaluation_set_images(store, evaluation_set.id)
    images = _Images(store)
    by_study: dict[str, list[Dataset]] = {}
    results = []
    for member in members.itertuples(index=False):
        found = images.case(member.scope, int(member.case_id))
        if found is None:
            results.append(ObjectResult("kos", f"{member.scope} {member.case_id}", "skipped", NO_DICOM))
            continue
        study = by_study.setdefault(found.study_uid, [])
        known = {str(header.SOPInstanceUID) for header in study}
        study.extend(header for header in found.headers if str(header.SOPInstanceUID) not in known)
    objects = []
    device = hd.sr.DeviceObserverIdentifyingAttributes(
        uid=stable_uid(secret, "device", "evaluation sets"), name="medreview", manufacturer_name=MANUFACTURER
    )
    for study_uid, headers in by_study.items():
        sop_uids = sorted(str(header.SOPInstanceUID) for header in headers)
        sop_uid = stable_uid(secret, "kos", evaluation_set.id, evaluation_set.name, study_uid, *sop_uids)
        content = hd.ko.KeyObjectSelection(
            document_title=codes.DCM.OfInterest,
            referenced_objects=headers,
            observer_device_context=hd.sr.ObserverContext(codes.DCM.Device, device),
            description=f"medreview evaluation set {evaluation_set.name}"[:64],
        )
        with _quiet_person_names():
            document = hd.ko.KeyObjectSelectionDocument(
                evidence=headers,
                content=content,
                series_instance_uid=stable_uid(secret, "kos series", study_uid),
                series_number=KOS_SERIES_NUMBER,
                sop_instance_uid=sop_uid,
                instance_number=1 + int(sop_uid.rsplit(".", 1)[-1]) % 99999,
                manufacturer=MANUFACTURER,
            )
        objects.append(DicomObject(document, f"KO-{sop_uid}.dcm"))
        results.append(ObjectResult("kos", f"study {study_uid}", "written", sop_instance_uid=sop_uid))
    return objects, results


# --- files --------------------------------------------------------------------------------------------


def _bytes(dicom_object: DicomObject) -> bytes:
    buffer = io.BytesIO()
    dicom_object.dataset.save_as(buffer, enforce_file_format=True)
    return buffer.getvalue()


def write_objects(store: Store, actor: Actor, objects: list[DicomObject], folder: Path, kind: str = "sr") -> int:
    """Write the objects as DICOM files into ``folder`` (made if missing); audited. Returns the count."""
    folder = Path(folder)
    try:
        folder.mkdir(parents=True, exist_ok=True)
        for dicom_object in objects:
            atomic_write(folder / dicom_object.file_name, _bytes(dicom_object), sync_folder=False)
    except OSError as error:
        raise MedreviewError(f"cannot write into {folder}: {error.strerror or error}") from error
    record_now(store, actor.username, "export", "export", kind, format="dicom", rows=len(objects))
    return len(objects)


def zip_objects(store: Store, actor: Actor, objects: list[DicomObject], kind: str = "sr") -> bytes:
    """The objects as one zip (a download: nothing touches the disk); audited."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        for dicom_object in objects:
            archive.writestr(dicom_object.file_name, _bytes(dicom_object))
    record_now(store, actor.username, "export", "export", kind, format="dicom-zip", rows=len(objects))
    return buffer.getvalue()
