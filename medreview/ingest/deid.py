"""De-identification at import: the essentials of the DICOM PS3.15 Basic Application Level
Confidentiality Profile, and metadata stripping for PNG/JPEG.

:func:`deidentify_dicom` rewrites one DICOM object so that what the store keeps carries no patient
identity: names and IDs become a per-project pseudonym, dates are removed (or shifted by a fixed
number of days), free text, private tags, overlays, curves and icon images are removed, and every
instance UID is remapped through :func:`hashed_uid_mapper`. The pixel data is never touched.

Why not the ``deid`` package: its default recipe removes all UIDs, which breaks series grouping and
makes files invalid, so the PS3.15 action table is implemented here (:data:`BASIC_PROFILE_ACTIONS`).

UID remapping is a keyed hash, not a lookup table: the same original UID maps to the same new UID
in every upload, process and worker that shares the project secret, so two slices of one series
imported a week apart still land in the same series, and a ``ReferencedSOPInstanceUID`` inside a
sequence still points at the (renamed) instance it referenced. The original-to-new map of each file
is returned in :class:`DeidResult` for the admin-only pseudonym store; nothing else keeps it.
"""

from __future__ import annotations

import functools
import hashlib
import hmac
import io
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Literal

from pydicom.dataelem import DataElement
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.multival import MultiValue
from pydicom.sequence import Sequence
from pydicom.tag import BaseTag, Tag
from pydicom.uid import (
    UID,
    MultiFrameGrayscaleByteSecondaryCaptureImageStorage,
    MultiFrameGrayscaleWordSecondaryCaptureImageStorage,
    MultiFrameSingleBitSecondaryCaptureImageStorage,
    MultiFrameTrueColorSecondaryCaptureImageStorage,
    SecondaryCaptureImageStorage,
    UltrasoundImageStorage,
    UltrasoundMultiFrameImageStorage,
)

from medreview.errors import IngestError
from medreview.imaging.tags import PIXEL_DATA_TAGS
from medreview.ingest.dicom import open_dataset
from medreview.ingest.raster import strip_metadata

__all__ = [
    "BASIC_PROFILE_ACTIONS",
    "DEIDENTIFICATION_METHOD",
    "DeidResult",
    "deidentify_dicom",
    "hashed_uid_mapper",
    "patient_pseudonym",
    "strip_raster_metadata",
]

Action = Literal["X", "Z", "D", "U", "K"]

# What happens to each attribute, after DICOM PS3.15 (2024) Annex E, Table E.1-1, column "Basic
# Profile". Codes as in the standard: X remove, Z replace with a zero-length value, D replace with a
# dummy value, U replace the UID with the consistent pseudonym UID, K keep (a kept sequence is still
# cleaned item by item). Where the standard allows a choice ("X/Z", "X/Z/D") the strictest choice
# that keeps the object readable is taken. The profile options (Retain Descriptors, Retain Patient
# Characteristics, ...) are not applied: descriptions, age, sex, size and weight are removed.
#
# Attributes not listed fall under the rules by value representation in ``_action_by_vr``: every UI
# is remapped (U) unless it is a registered DICOM UID, every person name (PN), date (DA, DT), time
# (TM), free text (LT, ST, UT) and unknown (UN) element is removed; everything else (acquisition
# physics, geometry, pixel description) is kept.
BASIC_PROFILE_ACTIONS: dict[str, Action] = {
    # --- Patient identity and characteristics (group 0010) --------------------------------------
    "PatientName": "D",  # Z in the profile; replaced by the project pseudonym so that worklists read
    "PatientID": "D",  # Z in the profile; the same pseudonym, stable per patient and project
    "IssuerOfPatientID": "X",
    "IssuerOfPatientIDQualifiersSequence": "X",
    "PatientBirthDate": "Z",  # never shifted: a birth date plus a known shift re-identifies
    "PatientBirthTime": "X",
    "PatientBirthName": "X",
    "PatientSex": "Z",
    "PatientAge": "X",
    "PatientSize": "X",
    "PatientWeight": "X",
    "PatientAddress": "X",
    "PatientTelephoneNumbers": "X",
    "PatientTelecomInformation": "X",
    "OtherPatientIDs": "X",
    "OtherPatientIDsSequence": "X",
    "OtherPatientNames": "X",
    "PatientMotherBirthName": "X",
    "MilitaryRank": "X",
    "BranchOfService": "X",
    "MedicalRecordLocator": "X",
    "MedicalAlerts": "X",
    "Allergies": "X",
    "CountryOfResidence": "X",
    "RegionOfResidence": "X",
    "EthnicGroup": "X",
    "Occupation": "X",
    "SmokingStatus": "X",
    "AdditionalPatientHistory": "X",
    "PregnancyStatus": "X",
    "LastMenstrualDate": "X",
    "PatientReligiousPreference": "X",
    "PatientComments": "X",
    "PatientInsurancePlanCodeSequence": "X",
    "PatientPrimaryLanguageCodeSequence": "X",
    "PatientState": "X",
    "PatientAlternativeCalendar": "X",
    "PatientBirthDateInAlternativeCalendar": "X",
    "PatientDeathDateInAlternativeCalendar": "X",
    "ResponsiblePerson": "X",
    "ResponsibleOrganization": "X",
    "ReferencedPatientSequence": "X",
    "ReferencedPatientPhotoSequence": "X",
    # --- Visit and admission (group 0038) ---------------------------------------------------------
    "AdmissionID": "X",
    "AdmittingDate": "X",
    "AdmittingTime": "X",
    "AdmittingDiagnosesDescription": "X",
    "AdmittingDiagnosesCodeSequence": "X",
    "RouteOfAdmissions": "X",
    "CurrentPatientLocation": "X",
    "PatientInstitutionResidence": "X",
    "ServiceEpisodeID": "X",
    "ServiceEpisodeDescription": "X",
    "VisitComments": "X",
    "SpecialNeeds": "X",
    "DischargeDiagnosisDescription": "X",
    "ReferencedPatientAliasSequence": "X",
    # --- Study, request and procedure step: identifiers and free text ----------------------------
    "AccessionNumber": "Z",
    "IssuerOfAccessionNumberSequence": "X",
    "StudyID": "Z",
    "StudyDescription": "X",  # kept only under the Retain Descriptors option, not applied here
    "SeriesDescription": "X",
    "ProtocolName": "X",
    "ProcedureCodeSequence": "X",
    "ReasonForStudy": "X",
    "RequestedProcedureDescription": "X",
    "RequestedProcedureID": "X",
    "RequestAttributesSequence": "X",
    "ReasonForTheRequestedProcedure": "X",
    "ReasonForRequestedProcedureCodeSequence": "X",
    "RequestedProcedureComments": "X",
    "RequestedProcedureLocation": "X",
    "RequestedContrastAgent": "X",
    "ImagingServiceRequestComments": "X",
    "PlacerOrderNumberImagingServiceRequest": "X",
    "FillerOrderNumberImagingServiceRequest": "X",
    "OrderEnteredBy": "X",
    "OrderEntererLocation": "X",
    "OrderCallbackPhoneNumber": "X",
    "PatientTransportArrangements": "X",
    "ConfidentialityConstraintOnPatientDataDescription": "X",
    "StudyComments": "X",
    "RequestingPhysician": "X",
    "RequestingService": "X",
    "ReferencedStudySequence": "X",
    "ReferencedPerformedProcedureStepSequence": "X",
    "PerformedProcedureStepID": "X",
    "PerformedProcedureStepDescription": "X",
    "PerformedProcedureStepStartDate": "X",
    "PerformedProcedureStepStartTime": "X",
    "PerformedProcedureStepEndDate": "X",
    "PerformedProcedureStepEndTime": "X",
    "PerformedLocation": "X",
    "PerformedStationName": "X",
    "PerformedStationAETitle": "X",
    "ScheduledProcedureStepDescription": "X",
    "ScheduledProcedureStepID": "X",
    "ScheduledPerformingPhysicianName": "X",
    "ScheduledPerformingPhysicianIdentificationSequence": "X",
    "ScheduledStationName": "X",
    "ScheduledStationAETitle": "X",
    "ScheduledStudyLocation": "X",
    "ScheduledStudyLocationAETitle": "X",
    "ScheduledProcedureStepLocation": "X",
    "CommentsOnThePerformedProcedureStep": "X",
    "PerformedStationGeographicLocationCodeSequence": "X",
    "AcquisitionComments": "X",
    "ImageComments": "X",
    "FrameComments": "X",
    "DerivationDescription": "X",
    "ContrastBolusAgent": "Z",
    "ContentSequence": "X",  # structured report content: free text, names, observers
    "TextValue": "X",
    # --- People (physicians, operators, observers) ------------------------------------------------
    "ReferringPhysicianName": "Z",
    "ReferringPhysicianAddress": "X",
    "ReferringPhysicianTelephoneNumbers": "X",
    "ReferringPhysicianIdentificationSequence": "X",
    "ConsultingPhysicianName": "X",
    "PerformingPhysicianName": "X",
    "PerformingPhysicianIdentificationSequence": "X",
    "NameOfPhysiciansReadingStudy": "X",
    "PhysiciansReadingStudyIdentificationSequence": "X",
    "PhysiciansOfRecord": "X",
    "PhysiciansOfRecordIdentificationSequence": "X",
    "OperatorsName": "X",
    "OperatorIdentificationSequence": "X",
    "PersonName": "D",
    "VerifyingObserverName": "D",
    "ContentCreatorName": "Z",
    "PersonAddress": "X",
    "PersonTelephoneNumbers": "X",
    "VerifyingOrganization": "X",
    "AuthorObserverSequence": "X",
    "ParticipantSequence": "X",
    # --- Institution, station and device ----------------------------------------------------------
    "InstitutionName": "X",
    "InstitutionAddress": "X",
    "InstitutionCodeSequence": "X",
    "InstitutionalDepartmentName": "X",
    "InstitutionalDepartmentTypeCodeSequence": "X",
    "StationName": "X",
    "DeviceSerialNumber": "X",
    "DetectorID": "X",
    "GantryID": "X",
    "GeneratorID": "X",
    "PlateID": "X",
    "CassetteID": "X",
    "DeviceLabel": "X",
    "AcquisitionDeviceProcessingDescription": "X",
    "SourceApplicationEntityTitle": "X",
    "TimezoneOffsetFromUTC": "X",
    # --- Dates and times: removed, or shifted when a date shift is given --------------------------
    "StudyDate": "Z",
    "StudyTime": "Z",
    "SeriesDate": "X",
    "SeriesTime": "X",
    "AcquisitionDate": "X",
    "AcquisitionTime": "X",
    "AcquisitionDateTime": "X",
    "ContentDate": "Z",
    "ContentTime": "Z",
    "InstanceCreationDate": "X",
    "InstanceCreationTime": "X",
    "InstanceCoercionDateTime": "X",
    # --- Whole structures that may carry anything --------------------------------------------------
    "IconImageSequence": "X",  # a thumbnail may show burned-in text
    "OriginalAttributesSequence": "X",  # holds the values that were replaced
    "ModifiedAttributesSequence": "X",
    "EncryptedAttributesSequence": "X",
    "DigitalSignaturesSequence": "X",  # signatures over the original values no longer verify
    "MACParametersSequence": "X",
    "DataSetTrailingPadding": "X",
    # --- Instance UIDs: remapped consistently (every other non-registered UI is remapped too) ----
    "StudyInstanceUID": "U",
    "SeriesInstanceUID": "U",
    "SOPInstanceUID": "U",
    "MediaStorageSOPInstanceUID": "U",
    "ReferencedSOPInstanceUID": "U",
    "ReferencedSOPInstanceUIDInFile": "U",
    "FrameOfReferenceUID": "U",
    "ReferencedFrameOfReferenceUID": "U",
    "RelatedFrameOfReferenceUID": "U",
    "SynchronizationFrameOfReferenceUID": "U",
    "InstanceCreatorUID": "U",
    "IrradiationEventUID": "U",
    "ConcatenationUID": "U",
    "DimensionOrganizationUID": "U",
    "StorageMediaFileSetUID": "U",
    "DeviceUID": "U",
    "UID": "U",
    # --- UIDs that name a definition, not a patient or an acquisition: kept -----------------------
    "SOPClassUID": "K",
    "MediaStorageSOPClassUID": "K",
    "ReferencedSOPClassUID": "K",
    "ReferencedSOPClassUIDInFile": "K",
    "RelatedGeneralSOPClassUID": "K",
    "OriginalSpecializedSOPClassUID": "K",
    "TransferSyntaxUID": "K",
    "ReferencedTransferSyntaxUIDInFile": "K",
    "CodingSchemeUID": "K",
    "ContextGroupExtensionCreatorUID": "K",
    "MappingResourceUID": "K",
    # --- Sequences of references: kept, their UIDs remapped item by item --------------------------
    "ReferencedImageSequence": "K",
    "SourceImageSequence": "K",
    "ReferencedSeriesSequence": "K",
    "ReferencedInstanceSequence": "K",
    # --- Set by this module ------------------------------------------------------------------------
    "BurnedInAnnotation": "K",
    "PatientIdentityRemoved": "K",
    "DeidentificationMethod": "K",
    "DeidentificationMethodCodeSequence": "K",
    "LongitudinalTemporalInformationModified": "K",
}

DEIDENTIFICATION_METHOD = "medreview PS3.15 Basic Application Level Confidentiality Profile"

# PS3.16 CID 7050 "De-identification Method": (code value, code meaning), coding scheme DCM.
_BASIC_PROFILE_CODE = ("113100", "Basic Application Confidentiality Profile")

# Dummy values for "D" by value representation (PatientName / PatientID take the pseudonym instead).
_DUMMY_BY_VR = {
    "PN": "ANONYMOUS",
    "LO": "ANONYMIZED",
    "SH": "ANONYMIZED",
    "CS": "ANONYMIZED",
    "DA": "19000101",
    "TM": "000000",
    "DT": "19000101000000",
}

_FREE_TEXT_VRS = frozenset({"LT", "ST", "UT"})
_DATE_TIME_VRS = frozenset({"DA", "DT", "TM"})
_PSEUDONYM_KEYWORDS = frozenset({"PatientName", "PatientID"})

# Secondary capture (scanned films, screenshots) and ultrasound images very often carry the patient
# name in the pixels; without an explicit BurnedInAnnotation = "NO" they are flagged for review.
_SECONDARY_CAPTURE_AND_ULTRASOUND_CLASSES = frozenset(
    {
        SecondaryCaptureImageStorage,
        MultiFrameSingleBitSecondaryCaptureImageStorage,
        MultiFrameGrayscaleByteSecondaryCaptureImageStorage,
        MultiFrameGrayscaleWordSecondaryCaptureImageStorage,
        MultiFrameTrueColorSecondaryCaptureImageStorage,
        UltrasoundImageStorage,
        UltrasoundMultiFrameImageStorage,
        "1.2.840.10008.5.1.4.1.1.6",  # Ultrasound Image Storage (retired)
        "1.2.840.10008.5.1.4.1.1.3",  # Ultrasound Multi-frame Image Storage (retired)
        "1.2.840.10008.5.1.4.1.1.6.2",  # Enhanced US Volume Storage
    }
)
_SECONDARY_CAPTURE_AND_ULTRASOUND_MODALITIES = frozenset({"SC", "US"})

_OVERLAY_GROUPS = 0x6000  # (60xx,eeee), even groups 6000-601E: overlay planes and their data
_CURVE_GROUPS = 0x5000  # (50xx,eeee): retired curves (waveforms drawn next to the image)


def hashed_uid_mapper(secret: bytes) -> Callable[[str], str]:
    """A UID mapper keyed by the project secret: ``"2.25." + int(HMAC-SHA256(secret, uid)[:16])``.

    "2.25." is the ISO/ITU root for UIDs derived from a 128-bit UUID-sized integer (PS3.5 B.2), so
    the result is a valid UID of at most 44 characters, digits and dots only, no leading zeros. It
    is deterministic: the same secret maps the same original UID the same way in every process,
    without a lookup table. Padding (trailing NUL or spaces) is ignored before hashing.
    """
    if not secret:
        raise ValueError("the de-identification secret must not be empty: the pseudonyms would be guessable")
    key = bytes(secret)

    @functools.lru_cache(maxsize=65536)
    def map_uid(original_uid: str) -> str:
        digest = hmac.new(key, original_uid.strip("\x00 ").encode("ascii", "replace"), hashlib.sha256).digest()
        return "2.25." + str(int.from_bytes(digest[:16], "big"))

    return map_uid


def patient_pseudonym(secret: bytes, patient_key: str) -> str:
    """The pseudonym that replaces a patient's name and ID: ``"ANON-"`` + 10 hex digits of an HMAC.

    Stable per patient and project secret, so all studies of one patient stay together.
    """
    if not secret:
        raise ValueError("the de-identification secret must not be empty: the pseudonyms would be guessable")
    digest = hmac.new(bytes(secret), patient_key.encode("utf-8"), hashlib.sha256).hexdigest()
    return "ANON-" + digest[:10].upper()


@dataclass(frozen=True)
class DeidResult:
    """One de-identified DICOM object and what the admin-only pseudonym map needs to record."""

    data: bytes  # the de-identified DICOM Part 10 file (preamble + file meta): what gets stored
    original_patient_id: str  # "" when absent
    original_patient_name: str  # "" when absent
    pseudonym_patient_id: str  # also written as PatientName
    uid_map: dict[str, str]  # every original UID -> the new UID that replaced it in this file
    needs_burned_in_review: bool  # text such as the patient name may be in the pixels
    removed_private_tags: int  # private elements removed, inside sequences included


def deidentify_dicom(data: bytes, secret: bytes) -> DeidResult:
    """Apply the Basic Profile essentials to one DICOM object and return the file to store.

    Dates and times are removed (LongitudinalTemporalInformationModified = "REMOVED").
    The pixel data element is copied byte for byte. Raises ``IngestError`` for unreadable objects
    and ``ValueError`` for an empty secret (a configuration error, not the uploader's).
    """
    if not secret:
        raise ValueError("the de-identification secret must not be empty: the pseudonyms would be guessable")
    dataset = open_dataset(data)  # raises IngestError for anything that is not DICOM
    try:
        return _deidentify(dataset, secret)
    except IngestError:
        raise
    except Exception as error:  # pydicom raises many types for malformed values
        raise IngestError(f"cannot de-identify this DICOM object: {error}") from error


def strip_raster_metadata(data: bytes) -> bytes:
    """PNG/JPEG: remove EXIF, XMP, text chunks and comments; the pixels stay identical.

    The one implementation is :func:`medreview.ingest.raster.strip_metadata`; this name exists so
    that the de-identification step reads as one module. Raises ``IngestError``.
    """
    return strip_metadata(data)


def _text(dataset: Dataset, keyword: str) -> str:
    value = dataset.get(keyword)
    return "" if value is None else str(value).strip("\x00 ")


def _needs_burned_in_review(dataset: Dataset, sop_class_uid: str) -> bool:
    burned_in = _text(dataset, "BurnedInAnnotation").upper()
    if burned_in:
        return burned_in == "YES"
    modality = _text(dataset, "Modality").upper()
    return (
        modality in _SECONDARY_CAPTURE_AND_ULTRASOUND_MODALITIES
        or sop_class_uid in _SECONDARY_CAPTURE_AND_ULTRASOUND_CLASSES
    )


def _deidentify(dataset: Dataset, secret: bytes) -> DeidResult:
    original_meta = getattr(dataset, "file_meta", None) or FileMetaDataset()
    transfer_syntax = str(original_meta.get("TransferSyntaxUID", "")).strip("\x00 ")
    if not transfer_syntax:
        raise IngestError("DICOM object has no transfer syntax: it cannot be rewritten de-identified")
    sop_class_uid = _text(dataset, "SOPClassUID") or _text(original_meta, "MediaStorageSOPClassUID")
    sop_instance_uid = _text(dataset, "SOPInstanceUID") or _text(original_meta, "MediaStorageSOPInstanceUID")
    original_patient_id = _text(dataset, "PatientID")
    original_patient_name = _text(dataset, "PatientName")
    # Without a Patient ID the store files each study as its own patient (each file, without a
    # Study UID either); the pseudonym follows suit.
    patient_key = original_patient_id or f"anonymous-{_text(dataset, 'StudyInstanceUID') or sop_instance_uid}"
    pseudonym = patient_pseudonym(secret, patient_key)
    needs_review = _needs_burned_in_review(dataset, sop_class_uid)

    cleaner = _Cleaner(hashed_uid_mapper(secret), pseudonym)
    cleaner.clean(dataset)
    _mark_deidentified(dataset)

    # The file meta is rebuilt rather than cleaned: AE titles and the implementation of the original
    # writer go, pydicom fills in its own implementation UID, and the instance UID is the new one.
    file_meta = FileMetaDataset()
    file_meta.MediaStorageSOPClassUID = sop_class_uid
    file_meta.MediaStorageSOPInstanceUID = cleaner.map_uid(sop_instance_uid) if sop_instance_uid else ""
    file_meta.TransferSyntaxUID = transfer_syntax
    dataset.file_meta = file_meta
    dataset.preamble = b"\x00" * 128  # a dual-format (TIFF/DICOM) preamble could carry anything

    buffer = io.BytesIO()
    dataset.save_as(buffer, enforce_file_format=True)
    return DeidResult(
        data=buffer.getvalue(),
        original_patient_id=original_patient_id,
        original_patient_name=original_patient_name,
        pseudonym_patient_id=pseudonym,
        uid_map=dict(cleaner.uid_map),
        needs_burned_in_review=needs_review,
        removed_private_tags=cleaner.removed_private_tags,
    )


def _mark_deidentified(dataset: Dataset) -> None:
    dataset.PatientIdentityRemoved = "YES"
    # An object de-identified before keeps the record of that; ours is added, never duplicated.
    methods = [str(method) for method in _as_list(dataset.get("DeidentificationMethod"))]
    if DEIDENTIFICATION_METHOD not in methods:
        methods.append(DEIDENTIFICATION_METHOD)
    dataset.DeidentificationMethod = methods if len(methods) > 1 else methods[0]
    codes = [_BASIC_PROFILE_CODE]
    items = list(dataset.get("DeidentificationMethodCodeSequence", Sequence()))
    present = {str(item.get("CodeValue", "")) for item in items}
    for code_value, code_meaning in codes:
        if code_value in present:
            continue
        item = Dataset()
        item.CodeValue = code_value
        item.CodingSchemeDesignator = "DCM"
        item.CodeMeaning = code_meaning
        items.append(item)
    dataset.DeidentificationMethodCodeSequence = Sequence(items)
    dataset.LongitudinalTemporalInformationModified = "REMOVED"


def _as_list(value: object) -> list[object]:
    if value is None or value == "":
        return []
    if isinstance(value, MultiValue | list | tuple):
        return list(value)
    return [value]


def _is_registered_uid(value: str) -> bool:
    # Only DICOM itself issues UIDs under 1.2.840.10008 (SOP classes, transfer syntaxes, well-known
    # frames of reference and coding schemes): they name definitions, never a patient.
    return not UID(value).is_private


def _action_by_vr(vr: str) -> Action:
    if vr == "UI":
        return "U"
    if vr == "PN" or vr in _DATE_TIME_VRS or vr in _FREE_TEXT_VRS or vr == "UN":
        return "X"
    return "K"


@dataclass
class _Cleaner:
    """Walks a dataset (sequences included) and applies :data:`BASIC_PROFILE_ACTIONS` in place."""

    mapper: Callable[[str], str]
    pseudonym: str
    uid_map: dict[str, str] = field(default_factory=dict)
    removed_private_tags: int = 0

    def map_uid(self, original_uid: str) -> str:
        original = original_uid.strip("\x00 ")
        if not original or _is_registered_uid(original):
            return original
        new_uid = self.mapper(original)
        self.uid_map[original] = new_uid
        return new_uid

    def clean(self, dataset: Dataset) -> None:
        for tag in list(dataset.keys()):
            self._clean_element(dataset, Tag(tag))

    def _clean_element(self, dataset: Dataset, tag: BaseTag) -> None:
        if int(tag) in PIXEL_DATA_TAGS:
            return  # never converted or touched: the stored pixels are the uploaded pixels
        if tag.is_private:
            del dataset[tag]
            self.removed_private_tags += 1
            return
        group_prefix = tag.group & 0xFF00
        if group_prefix in (_OVERLAY_GROUPS, _CURVE_GROUPS) or tag.element == 0x0000:
            del dataset[tag]  # overlays, curves, and group lengths that no longer add up
            return
        element = dataset[tag]  # converts a raw element, giving implicit-VR elements their VR
        action = BASIC_PROFILE_ACTIONS.get(element.keyword) or _action_by_vr(element.VR)
        if element.VR == "SQ":
            if action == "X":
                del dataset[tag]
            elif action == "Z":
                element.value = Sequence()
            else:
                for item in element.value:
                    self.clean(item)
            return
        if action == "X":
            del dataset[tag]
        elif action == "Z":
            element.value = element.empty_value
        elif action == "D":
            if element.keyword in _PSEUDONYM_KEYWORDS:
                element.value = self.pseudonym
            else:
                element.value = _DUMMY_BY_VR.get(element.VR, element.empty_value)
        elif action == "U" and element.VR == "UI":
            self._remap(element)

    def _remap(self, element: DataElement) -> None:
        values = [self.map_uid(str(value)) for value in _as_list(element.value)]
        element.value = values if len(values) > 1 else (values[0] if values else element.empty_value)
