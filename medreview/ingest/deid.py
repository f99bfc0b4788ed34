"""De-identification at import: DICOM PS3.15 Basic Application Level Confidentiality Profile as an
allow-list, and metadata stripping for PNG/JPEG.

:func:`deidentify_dataset` rewrites one parsed DICOM object so that what the store keeps carries no
patient identity, complete by construction: an attribute survives only when it is on
:data:`KEEP_ATTRIBUTES` (pixel description, geometry, acquisition physics, the de-identification
record) or when the Basic Profile (:data:`BASIC_PROFILE_ACTIONS`) replaces it (a dummy value, an
empty value, or a remapped UID). Everything else is removed, including attributes that the standard
or this module has never heard of, private tags, overlays, curves and icon images. A new scanner
attribute therefore costs a missing value, never a leak. :func:`deidentify_dicom` does the same
for DICOM bytes. The pixel data element is copied byte for byte, never decoded.

Where the table comes from: PS3.15 Annex E Table E.1-1 as maintained in the ``dicom-anonymizer``
package (``dicomanonymizer``, pinned in requirements.txt), whose tag lists are regenerated from the
standard's own table at each DICOM release. Only its lists are used, not its ``anonymize()``: that
one replaces UIDs with random ones, which breaks series grouping across uploads.

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
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Literal

from dicomanonymizer.dicom_anonymization_databases import dicomfields_2026c as _table_e11
from pydicom.datadict import dictionary_VR, tag_for_keyword
from pydicom.dataelem import DataElement, RawDataElement
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.multival import MultiValue
from pydicom.sequence import Sequence
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
    "BASIC_PROFILE_SOURCE",
    "DEIDENTIFICATION_METHOD",
    "KEEP_ATTRIBUTES",
    "DeidResult",
    "deidentify_dataset",
    "deidentify_dicom",
    "hashed_uid_mapper",
    "patient_pseudonym",
    "strip_raster_metadata",
]

Action = Literal["X", "Z", "D", "U", "K"]

BASIC_PROFILE_SOURCE = "dicom-anonymizer 2.1.0, dicomfields_2026c: DICOM PS3.15 (2026c) Annex E Table E.1-1"

# --- the allow-list ---------------------------------------------------------------------------------
#
# The only attributes that survive as they are (a UID among them is still remapped, a sequence among
# them is still cleaned item by item under the same rules). Each one describes the pixels, where
# they lie in the patient, or how they were acquired; none can hold a name, an identifier, a date or
# free text. Deliberately absent, although the Basic Profile would keep them: Manufacturer, model
# and software version (they narrow down the site), Position Reference Indicator and Window Center &
# Width Explanation (free text that a technologist can type at the console: the windows themselves
# are kept, only their names go), LUT Explanation, Sequence Name, ICC profiles. Adding an attribute
# here is a privacy decision: it must be one that no scanner fills with text about the patient.
KEEP_ATTRIBUTES: frozenset[str] = frozenset(
    {
        # --- What the object is; the instance UIDs are remapped, registered class UIDs are kept ---
        "SpecificCharacterSet",  # needed to read every kept text value
        "SOPClassUID",
        "SOPInstanceUID",
        "StudyInstanceUID",
        "SeriesInstanceUID",
        "FrameOfReferenceUID",
        "Modality",
        "ImageType",
        "SeriesNumber",
        "InstanceNumber",
        "AcquisitionNumber",
        # References to other images of the study (E.1-1: X/Z/U*, the UIDs remapped)
        "ReferencedImageSequence",
        "SourceImageSequence",
        "ReferencedSOPClassUID",
        "ReferencedSOPInstanceUID",
        "ReferencedFrameNumber",
        # --- Pixel description: without these the pixel data cannot be decoded ------------------------
        "SamplesPerPixel",
        "PhotometricInterpretation",
        "Rows",
        "Columns",
        "BitsAllocated",
        "BitsStored",
        "HighBit",
        "PixelRepresentation",
        "PlanarConfiguration",
        "PixelAspectRatio",
        "NumberOfFrames",
        "FrameIncrementPointer",
        "FrameTime",
        "FrameTimeVector",
        "SmallestImagePixelValue",
        "LargestImagePixelValue",
        "PixelPaddingValue",
        "PixelPaddingRangeLimit",
        "FloatPixelPaddingValue",
        "DoubleFloatPixelPaddingValue",
        "FloatPixelPaddingRangeLimit",
        "DoubleFloatPixelPaddingRangeLimit",
        "ExtendedOffsetTable",  # frame offsets into the encapsulated pixel data, which is unchanged
        "ExtendedOffsetTableLengths",
        "PixelIntensityRelationship",
        "PixelIntensityRelationshipSign",
        "PixelPresentation",
        "PresentationIntentType",
        "LossyImageCompression",
        "LossyImageCompressionRatio",
        "LossyImageCompressionMethod",
        "BurnedInAnnotation",  # the reader must see that the pixels may show a name
        "RecognizableVisualFeatures",
        # --- Grey-level and colour transforms the display applies -----------------------------------
        "RescaleIntercept",
        "RescaleSlope",
        "RescaleType",
        "WindowCenter",
        "WindowWidth",
        "VOILUTFunction",
        "PresentationLUTShape",
        "ModalityLUTSequence",
        "ModalityLUTType",
        "VOILUTSequence",
        "LUTDescriptor",
        "LUTData",
        "RedPaletteColorLookupTableDescriptor",
        "GreenPaletteColorLookupTableDescriptor",
        "BluePaletteColorLookupTableDescriptor",
        "AlphaPaletteColorLookupTableDescriptor",
        "RedPaletteColorLookupTableData",
        "GreenPaletteColorLookupTableData",
        "BluePaletteColorLookupTableData",
        "AlphaPaletteColorLookupTableData",
        "SegmentedRedPaletteColorLookupTableData",
        "SegmentedGreenPaletteColorLookupTableData",
        "SegmentedBluePaletteColorLookupTableData",
        "SegmentedAlphaPaletteColorLookupTableData",
        "PaletteColorLookupTableUID",  # E.1-1: U
        # --- Geometry: pixel size, position and orientation in the patient ---------------------------
        "PixelSpacing",
        "ImagerPixelSpacing",
        "NominalScannedPixelSpacing",
        "PixelSpacingCalibrationType",
        "EstimatedRadiographicMagnificationFactor",
        "SliceThickness",
        "SpacingBetweenSlices",
        "ImagePositionPatient",
        "ImageOrientationPatient",
        "SliceLocation",
        "PatientPosition",
        "PatientOrientation",
        "ViewPosition",
        "Laterality",
        "ImageLaterality",
        "BodyPartExamined",  # a coded string (defined terms): what a training set is filtered by
        "DistanceSourceToDetector",
        "DistanceSourceToPatient",
        "GantryDetectorTilt",
        "TableHeight",
        "DataCollectionDiameter",
        "ReconstructionDiameter",
        "ReconstructionTargetCenterPatient",
        # Enhanced multi-frame objects carry the geometry and transforms per frame, in functional groups.
        "SharedFunctionalGroupsSequence",
        "PerFrameFunctionalGroupsSequence",
        "PixelMeasuresSequence",
        "PlanePositionSequence",
        "PlaneOrientationSequence",
        "PixelValueTransformationSequence",
        "FrameVOILUTSequence",
        "FrameContentSequence",
        "FrameAcquisitionNumber",
        "StackID",
        "InStackPositionNumber",
        "TemporalPositionIndex",
        "DimensionIndexValues",
        "DimensionOrganizationSequence",
        "DimensionOrganizationUID",  # E.1-1: U
        "DimensionOrganizationType",
        "DimensionIndexSequence",
        "DimensionIndexPointer",
        "FunctionalGroupPointer",
        # --- Acquisition physics: CT and projection X-ray ---------------------------------------------
        "KVP",
        "XRayTubeCurrent",
        "XRayTubeCurrentInmA",
        "XRayTubeCurrentInuA",
        "ExposureTime",
        "ExposureTimeInms",
        "ExposureTimeInuS",
        "Exposure",
        "ExposureInmAs",
        "ExposureInuAs",
        "ExposureIndex",
        "TargetExposureIndex",
        "DeviationIndex",
        "ConvolutionKernel",
        "FilterType",
        "FilterMaterial",
        "AnodeTargetMaterial",
        "FocalSpots",
        "GeneratorPower",
        "RotationDirection",
        "RevolutionTime",
        "SingleCollimationWidth",
        "TotalCollimationWidth",
        "TableSpeed",
        "TableFeedPerRotation",
        "SpiralPitchFactor",
        "CTDIvol",
        "ScanOptions",
        # --- Acquisition physics: MR --------------------------------------------------------------------
        "ScanningSequence",
        "SequenceVariant",
        "MRAcquisitionType",
        "RepetitionTime",
        "EchoTime",
        "InversionTime",
        "EchoTrainLength",
        "EchoNumbers",
        "NumberOfAverages",
        "ImagingFrequency",
        "ImagedNucleus",
        "MagneticFieldStrength",
        "FlipAngle",
        "PixelBandwidth",
        "AcquisitionMatrix",
        "InPlanePhaseEncodingDirection",
        "PercentSampling",
        "PercentPhaseFieldOfView",
        "DiffusionBValue",
        # --- The de-identification record, written by this module (an earlier one is kept) ------------
        "PatientIdentityRemoved",
        "DeidentificationMethod",
        "DeidentificationMethodCodeSequence",
        "LongitudinalTemporalInformationModified",
        "CodeValue",
        "CodingSchemeDesignator",
        "CodingSchemeVersion",
        "CodeMeaning",
    }
)


def _tags_of(keywords: Iterable[str]) -> frozenset[int]:
    tags = set()
    for keyword in keywords:
        tag = tag_for_keyword(keyword)
        if tag is None:  # a typo would silently drop an attribute the display needs
            raise RuntimeError(f"{keyword!r} on the de-identification keep list is not a DICOM keyword")
        tags.add(int(tag))
    return frozenset(tags)


_KEEP_TAGS = _tags_of(KEEP_ATTRIBUTES)
# Kept attributes whose value needs work: sequences (their items are cleaned) and UIDs (remapped).
# The others are left exactly as read, not even decoded, and pydicom writes them back as they came.
_KEEP_TAGS_TO_VISIT = frozenset(tag for tag in _KEEP_TAGS if dictionary_VR(tag) in ("SQ", "UI"))

# --- the Basic Profile ------------------------------------------------------------------------------
#
# dicom-anonymizer groups the E.1-1 rows by their Basic Profile action. Where the standard leaves a
# choice, the one taken here is the strictest that keeps the object readable: any choice with X
# removes (an attribute that is gone cannot leak), Z/D empties (an empty value invents nothing), and
# X/Z/U* (references to other images) keeps the sequence with its UIDs remapped.
_ACTION_OF_CATEGORY: dict[str, Action] = {
    "D_TAGS": "D",
    "Z_TAGS": "Z",
    "X_TAGS": "X",
    "U_TAGS": "U",
    "Z_D_TAGS": "Z",
    "X_Z_TAGS": "X",
    "X_D_TAGS": "X",
    "X_Z_D_TAGS": "X",
    "X_Z_U_STAR_TAGS": "U",
}

# The one deviation from the table: the patient's name (Z) and ID (Z/D) become the per-project
# pseudonym (a dummy value: a keyed hash, not the ID), so that worklists still group a patient's
# studies. Wherever they occur, nested items included.
_PSEUDONYM_TAGS = _tags_of(("PatientName", "PatientID"))


def _load_basic_profile() -> tuple[Mapping[int, Action], tuple[tuple[int, int, Action], ...]]:
    """(tag -> action, (value, mask, action) for the repeating groups such as (60xx,3000))."""
    actions: dict[int, Action] = {}
    masked: list[tuple[int, int, Action]] = []
    for category, action in _ACTION_OF_CATEGORY.items():
        for entry in getattr(_table_e11, category):
            if len(entry) == 2:
                group, element = entry
                actions[group << 16 | element] = action
            else:
                group, element, group_mask, element_mask = entry
                masked.append((group << 16 | element, group_mask << 16 | element_mask, action))
    for tag in _PSEUDONYM_TAGS:
        actions[tag] = "D"
    return MappingProxyType(actions), tuple(masked)


# Tag -> action for every attribute of Table E.1-1, Basic Profile column, as applied here. Codes as
# in the standard: X remove, Z replace with a zero-length value, D replace with a dummy value, U
# replace the UID with the consistent pseudonym UID. An attribute on neither this table nor
# KEEP_ATTRIBUTES is removed.
BASIC_PROFILE_ACTIONS, _MASKED_PROFILE_ACTIONS = _load_basic_profile()

DEIDENTIFICATION_METHOD = "medreview PS3.15 Basic Application Level Confidentiality Profile"

# PS3.16 CID 7050 "De-identification Method": (code value, code meaning), coding scheme DCM.
_BASIC_PROFILE_CODE = ("113100", "Basic Application Confidentiality Profile")

# Dummy values for "D" by value representation (PatientName / PatientID take the pseudonym, UIDs the
# HMAC, sequences become empty); a value representation without one gets a zero-length value.
_DUMMY_BY_VR = {
    "PN": "ANONYMOUS",
    "LO": "ANONYMIZED",
    "SH": "ANONYMIZED",
    "CS": "ANONYMIZED",
    "AE": "ANONYMIZED",
    "ST": "ANONYMIZED",
    "LT": "ANONYMIZED",
    "UT": "ANONYMIZED",
    "UC": "ANONYMIZED",
    "AS": "000Y",
    "DA": "19000101",
    "TM": "000000",
    "DT": "19000101000000",
    "DS": "0",
    "IS": "0",
}

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


@functools.lru_cache(maxsize=16)
def _cached_uid_mapper(secret: bytes) -> Callable[[str], str]:
    # One mapper (and its cache) per project secret: the slices of a series share their study,
    # series and frame of reference UIDs, so most HMACs of an upload are computed once.
    return hashed_uid_mapper(secret)


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
    """Parse DICOM bytes and de-identify them with :func:`deidentify_dataset`.

    Raises ``IngestError`` for unreadable objects and ``ValueError`` for an empty secret (a
    configuration error, not the uploader's).
    """
    if not secret:
        raise ValueError("the de-identification secret must not be empty: the pseudonyms would be guessable")
    return deidentify_dataset(open_dataset(data), secret)  # open_dataset raises IngestError for non-DICOM


def deidentify_dataset(dataset: Dataset, secret: bytes) -> DeidResult:
    """De-identify a DICOM object the caller has already parsed, and return the file to store.

    The dataset is modified in place and is the de-identified object afterwards (new file meta,
    zeroed preamble): a caller that still needs an original value must read it first. Only
    attributes on :data:`KEEP_ATTRIBUTES` survive unchanged; the Basic Profile decides the rest
    (:data:`BASIC_PROFILE_ACTIONS`), and anything on neither list is removed. Dates and times are
    removed (LongitudinalTemporalInformationModified = "REMOVED"). The pixel data element is copied
    byte for byte, never decoded. Raises ``IngestError`` for objects that cannot be rewritten and
    ``ValueError`` for an empty secret.
    """
    if not secret:
        raise ValueError("the de-identification secret must not be empty: the pseudonyms would be guessable")
    try:
        return _deidentify(dataset, bytes(secret))
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

    cleaner = _Cleaner(_cached_uid_mapper(secret), pseudonym, _encoding_of(transfer_syntax))
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


def _encoding_of(transfer_syntax: str) -> tuple[bool, bool] | None:
    syntax = UID(transfer_syntax)
    if not syntax.is_transfer_syntax:
        return None  # a private syntax: every kept element is decoded and re-encoded by pydicom
    return syntax.is_implicit_VR, syntax.is_little_endian


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


@functools.lru_cache(maxsize=4096)
def _action_of(tag: int) -> Action:
    """What happens to a public, non-repeating-group attribute: the allow-list first, then E.1-1."""
    if tag in _KEEP_TAGS:
        return "K"
    action = BASIC_PROFILE_ACTIONS.get(tag)
    if action is not None:
        return action
    for value, mask, masked_action in _MASKED_PROFILE_ACTIONS:
        if tag & mask == value & mask:
            return masked_action
    return "X"  # not on the keep list: whatever it is, it goes


@dataclass
class _Cleaner:
    """Walks a dataset (sequences included) and applies the allow-list and E.1-1 in place."""

    mapper: Callable[[str], str]
    pseudonym: str
    # (implicit VR, little endian) of the file to write; None when the transfer syntax is unknown.
    encoding: tuple[bool, bool] | None
    uid_map: dict[str, str] = field(default_factory=dict)
    removed_private_tags: int = 0

    def map_uid(self, original_uid: str) -> str:
        original = original_uid.strip("\x00 ")
        if not original or _is_registered_uid(original):
            return original
        new_uid = self.mapper(original)
        self.uid_map[original] = new_uid
        return new_uid

    def clean(self, dataset: Dataset, nested: bool = False) -> None:
        for tag in list(dataset.keys()):
            self._clean_element(dataset, int(tag), nested)

    def _clean_element(self, dataset: Dataset, tag: int, nested: bool) -> None:
        if tag in PIXEL_DATA_TAGS and not nested:
            return  # never converted or touched: the stored pixels are the uploaded pixels
        group = tag >> 16
        if group & 1:
            del dataset[tag]
            self.removed_private_tags += 1
            return
        if group & 0xFF00 in (_OVERLAY_GROUPS, _CURVE_GROUPS) or tag & 0xFFFF == 0:
            del dataset[tag]  # overlays, curves, and group lengths that no longer add up
            return
        if tag in _KEEP_TAGS and tag not in _KEEP_TAGS_TO_VISIT:
            if not self._written_as_read(dataset.get_item(tag)):
                dataset[tag]  # converted, so that pydicom writes it in the output encoding
            return
        action = _action_of(tag)
        if action == "X":
            del dataset[tag]  # before reading the value: a removed element is never even decoded
            return
        element = dataset[tag]  # converts a raw element, giving implicit-VR elements their VR
        if element.VR == "SQ":
            self._clean_sequence(element, action)
        elif element.VR == "UI":
            if action == "Z":
                element.value = element.empty_value
            else:  # K, U, and D (the consistent pseudonym UID is the dummy that keeps references valid)
                self._remap(element)
        elif action == "Z":
            element.value = element.empty_value
        elif action == "D":
            if tag in _PSEUDONYM_TAGS:
                element.value = self.pseudonym
            else:
                element.value = _DUMMY_BY_VR.get(element.VR, element.empty_value)
        elif action == "U":
            del dataset[tag]  # a UID action on a value that is not a UID: nothing to remap, so it goes

    def _written_as_read(self, element: DataElement | RawDataElement) -> bool:
        # pydicom copies a raw element's bytes as they are when it believes the encoding unchanged,
        # and it judges by the file meta: an object whose meta says explicit VR but whose data set
        # is implicit (such files exist) would be written with VR-less elements. A raw element is
        # left alone only when its own encoding is the one the file is written in.
        if not isinstance(element, RawDataElement):
            return True
        return self.encoding == (element.is_implicit_VR, element.is_little_endian)

    def _clean_sequence(self, element: DataElement, action: Action) -> None:
        if action in ("K", "U"):
            for item in element.value:
                self.clean(item, nested=True)  # pixel data in an item (a thumbnail, say) is not kept
        else:  # Z, and D: a dummy item would have to invent content, an empty sequence invents none
            element.value = Sequence()

    def _remap(self, element: DataElement) -> None:
        values = [self.map_uid(str(value)) for value in _as_list(element.value)]
        element.value = values if len(values) > 1 else (values[0] if values else element.empty_value)
