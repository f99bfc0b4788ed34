"""De-identification at import: DICOM PS3.15 Basic Application Level Confidentiality Profile as an
allow-list, and metadata stripping for PNG/JPEG.

:func:`deidentify_dataset` rewrites one parsed DICOM object so that what the store keeps carries no
patient identity, complete by construction: an attribute survives only when it is on
:data:`KEEP_ATTRIBUTES` (pixel description, geometry, acquisition physics, the de-identification
record) or when the Basic Profile (:data:`BASIC_PROFILE_ACTIONS`) replaces it (a dummy value, an
empty value, or a remapped UID). Everything else is removed, including attributes that the standard
or this module has never heard of, private tags, overlays, curves and icon images. A new scanner
attribute therefore costs a missing value, never a leak. :func:`deidentify_dicom` does the same
for DICOM bytes.

A kept attribute is kept for what it says about the pixels, but its value is whatever a console or
an earlier anonymiser wrote, so kept values are checked too: code strings with defined terms
(Modality, Body Part Examined, Image Type values 1 and 2) must be one of them, and every other kept
text is dropped when it holds a token of the same file's identifying values (name parts, IDs,
dates, accession number), which is how identifiers leak into descriptors in practice. The
de-identification record is written afresh, never copied; only UIDs that DICOM registered (those in
pydicom's UID dictionary) survive unmapped.

The pixels are never decoded or re-encoded: uncompressed pixel data loses only bytes beyond what the
header implies, JPEG / JPEG-LS frames lose their application and comment segments (EXIF,
comments, text after the JFIF and Adobe fields) and JPEG 2000 frames their comment segments, with
the coded data copied as it is.

Where the table comes from: PS3.15 Annex E Table E.1-1 as maintained in the ``dicom-anonymizer``
package (``dicomanonymizer``, pinned in requirements.txt), whose tag lists are regenerated from the
standard's own table at each DICOM release. Only its lists are used, not its ``anonymize()``: that
one replaces UIDs with random ones, which breaks series grouping across uploads.

UID remapping is a keyed hash, not a lookup table: the same original UID maps to the same new UID
in every upload, process and worker that shares the project secret, so two slices of one series
imported a week apart still land in the same series, and a ``ReferencedSOPInstanceUID`` inside a
sequence still points at the (renamed) instance it referenced. The original-to-new map of each file
is returned in :class:`DeidResult` for the admin-only pseudonym store; nothing else keeps it.

Dates are removed unless the project chose PS3.15's Retain Longitudinal Temporal Information with
Modified Dates Option (``shift_dates``): then the study, series, acquisition and content dates are
kept shifted by one offset per patient (:func:`date_shift_days`, a keyed hash like the pseudonym),
so a patient's studies keep their order and the intervals between them while no date is the real
one; their times are kept as they are. With it goes the Retain Patient Characteristics Option for
two attributes only: Patient's Sex (M, F or O) and Patient's Age, capped at "090Y" (HIPAA Safe
Harbor: ages over 89 are "90 or older"); size, weight, ethnic group and the rest stay removed, and
so does the birth date (it and a shifted study date would give the age to the day anyway).

Series Description and Protocol Name are free text and always go; :func:`series_description`
describes a series from what the de-identified object still says in coded values and geometry
("chest axial 1.25 mm with contrast"), so that two series of a study can be told apart.
"""

from __future__ import annotations

import datetime as dt
import functools
import hashlib
import hmac
import io
import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Literal

from dicomanonymizer.dicom_anonymization_databases import dicomfields_2026c as _table_e11
from pydicom.charset import python_encoding
from pydicom.datadict import DicomDictionary, dictionary_VR, tag_for_keyword
from pydicom.dataelem import DataElement, RawDataElement
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.encaps import encapsulate, encapsulate_extended, generate_frames
from pydicom.multival import MultiValue
from pydicom.sequence import Sequence
from pydicom.uid import (
    UID,
    JPEG2000TransferSyntaxes,
    JPEGLSTransferSyntaxes,
    JPEGTransferSyntaxes,
    MultiFrameGrayscaleByteSecondaryCaptureImageStorage,
    MultiFrameGrayscaleWordSecondaryCaptureImageStorage,
    MultiFrameSingleBitSecondaryCaptureImageStorage,
    MultiFrameTrueColorSecondaryCaptureImageStorage,
    SecondaryCaptureImageStorage,
    UID_dictionary,
    UltrasoundImageStorage,
    UltrasoundMultiFrameImageStorage,
)

from medreview.errors import IngestError
from medreview.imaging.geometry import image_plane
from medreview.imaging.tags import PIXEL_DATA_TAGS
from medreview.ingest.defined_terms import (
    BODY_PART_EXAMINED_TERMS,
    IMAGE_TYPE_PATIENT_EXAMINATION_CHARACTERISTICS,
    IMAGE_TYPE_PIXEL_DATA_CHARACTERISTICS,
    MODALITY_TERMS,
    PHOTOMETRIC_INTERPRETATIONS,
    VIEW_POSITION_TERMS,
)
from medreview.ingest.dicom import open_dataset
from medreview.ingest.jpeg2000 import strip_jpeg2000_comments
from medreview.ingest.raster import strip_jpeg_codestream, strip_metadata

__all__ = [
    "BASIC_PROFILE_ACTIONS",
    "BASIC_PROFILE_SOURCE",
    "DEIDENTIFICATION_METHOD",
    "KEEP_ATTRIBUTES",
    "MODIFIED_DATES_ATTRIBUTES",
    "DeidResult",
    "date_shift_days",
    "deidentify_dataset",
    "deidentify_dicom",
    "hashed_uid_mapper",
    "patient_pseudonym",
    "series_description",
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
# here is a privacy decision: it must be one that no scanner fills with text about the patient. Its
# value is still checked (_Cleaner._check_kept_value): a console can type anything anywhere.
KEEP_ATTRIBUTES: frozenset[str] = frozenset(
    {
        # --- What the object is; the instance UIDs are remapped, registered class UIDs are kept ---
        "SpecificCharacterSet",  # needed to read every kept text value
        "SOPClassUID",
        "SOPInstanceUID",
        "StudyInstanceUID",
        "SeriesInstanceUID",
        "FrameOfReferenceUID",
        "Modality",  # one of its defined terms, else "OT"
        "ImageType",  # values 1 and 2 from their enumerated terms
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
        # --- The de-identification record: always this module's, written afresh (_RECORD_TAGS) ------
        # An earlier record is not kept: "... by Dr Smith" names its author. Code values and meanings
        # exist only inside the fresh code sequence, never elsewhere.
        "PatientIdentityRemoved",
        "DeidentificationMethod",
        "DeidentificationMethodCodeSequence",
        "LongitudinalTemporalInformationModified",
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
# The others are checked (_Cleaner._check_kept_value) and, when they pass, written back as they came.
_KEEP_TAGS_TO_VISIT = frozenset(tag for tag in _KEEP_TAGS if dictionary_VR(tag) in ("SQ", "UI"))
# The value representations a kept attribute may arrive in ("US or SS" allows either). Any other
# (Acquisition Matrix as text, say) could carry anything and is not kept.
_ALLOWED_VRS = MappingProxyType({tag: frozenset(dictionary_VR(tag).split(" or ")) for tag in _KEEP_TAGS})
# The de-identification record: removed wherever found, then written afresh by _mark_deidentified.
_RECORD_TAGS = _tags_of(
    (
        "PatientIdentityRemoved",
        "DeidentificationMethod",
        "DeidentificationMethodCodeSequence",
        "LongitudinalTemporalInformationModified",
    )
)

# --- Retain Longitudinal Temporal Information with Modified Dates (PS3.15 E.3.6), on request --------
#
# The dates that order a patient's imaging (and the times of day that go with them) and the two
# patient characteristics kept with them. Only at the top level of the object: a date inside a
# sequence (a frame's acquisition time, a referenced request) still goes.
MODIFIED_DATES_ATTRIBUTES: frozenset[str] = frozenset(
    {
        "StudyDate",
        "SeriesDate",
        "AcquisitionDate",
        "ContentDate",
        "AcquisitionDateTime",
        "StudyTime",
        "SeriesTime",
        "AcquisitionTime",
        "ContentTime",
        "PatientAge",  # Retain Patient Characteristics Option: capped at 090Y
        "PatientSex",  # Retain Patient Characteristics Option: M, F or O
    }
)
_MODIFIED_DATES_TAGS = _tags_of(MODIFIED_DATES_ATTRIBUTES)
_DATE = re.compile(r"(\d{4})\.?(\d{2})\.?(\d{2})")  # YYYYMMDD, or ACR-NEMA's YYYY.MM.DD
# A date-time: the date, then hours [minutes [seconds [fraction]]] and an offset from UTC.
_DATE_TIME = re.compile(r"(\d{8})((?:\d{2}(?:\d{2}(?:\d{2}(?:\.\d{1,6})?)?)?)?(?:[+-]\d{4})?)")
_TIME = re.compile(r"\d{2}(?:\d{2}(?:\d{2}(?:\.\d{1,6})?)?)?")
_AGE = re.compile(r"(\d{3})([DWMY])")
_DAYS_PER_AGE_UNIT = {"D": 1.0, "W": 7.0, "M": 365.25 / 12, "Y": 365.25}
_OLDEST_AGE = "090Y"  # HIPAA Safe Harbor: "ages over 89 ... aggregated into a single category of age 90 or older"
_PATIENT_SEXES = frozenset({"M", "F", "O"})
# How far back a patient's dates move: at least a year, at most ten, in whole days.
_SHIFT_DAYS_MIN, _SHIFT_DAYS_MAX = 365, 3652

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
_MODIFIED_DATES_CODE = ("113107", "Retain Longitudinal Temporal Information Modified Dates Option")
_PATIENT_CHARACTERISTICS_CODE = ("113108", "Retain Patient Characteristics Option")
# DeidentificationMethod is LO (64 characters a value): each option is a value of its own.
_MODIFIED_DATES_METHOD = ("Retain Longitudinal Modified Dates Option", "Retain Patient Characteristics: age, sex")

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

# --- kept values ------------------------------------------------------------------------------------
#
# What makes a file identifiable, in tokens: every person name (patient, physicians, operators) and
# date, and these identifiers (with the same attributes inside the two sequences that carry them).
_IDENTIFIER_TAGS = _tags_of(
    (
        "PatientID",
        "OtherPatientIDs",
        "AccessionNumber",
        "StudyID",
        "AdmissionID",
        "RequestedProcedureID",
        "ScheduledProcedureStepID",
        "PerformedProcedureStepID",
        "MedicalRecordLocator",
    )
)
_IDENTIFIER_SEQUENCE_TAGS = _tags_of(("OtherPatientIDsSequence", "RequestAttributesSequence"))
_WORD = re.compile(r"[^\W_]+")  # letters and digits of any script
_NUMBER_VALUE = MappingProxyType(
    {"DS": re.compile(r"[0-9+\-.eE ]*"), "IS": re.compile(r"[0-9+\- ]*")}  # what a number may be written with
)
_TEXT_VRS = frozenset({"AE", "CS", "SH", "LO"})  # the kept text value representations
_MODALITY_TAG = int(tag_for_keyword("Modality"))  # type: ignore[arg-type]
_OTHER_MODALITY = "OT"


@dataclass(frozen=True)
class _IdentifyingTokens:
    """The tokens of one file's identifying values that a kept value must not contain."""

    # Three characters or more: found anywhere among a value's letters and digits ("ZZ...SMITH").
    long: frozenset[str]
    # Two characters (a short surname, a two-digit ID): found only as a word of their own.
    short: frozenset[str]

    def found_in(self, text: str) -> bool:
        words = _WORD.findall(text.upper())
        if not words:
            return False
        if not self.short.isdisjoint(words):
            return True
        letters_and_digits = "".join(words)
        return any(token in letters_and_digits for token in self.long)


@functools.lru_cache(maxsize=4096)
def _dictionary_vr(tag: int) -> str:
    entry = DicomDictionary.get(tag)
    return entry[0] if entry is not None else ""


def _identifying_tokens(dataset: Dataset) -> _IdentifyingTokens:
    """The tokens of the file's names, dates and identifiers, read before anything is removed.

    Names give every part; a date gives its eight digits in the orders people write them
    (19610314, 14031961, 03141961); an identifier gives its parts that hold a digit (5551234 of
    MRN-5551234: "MRN" names no one) and itself without punctuation.
    """
    tokens: set[str] = set()

    def collect(item: Dataset, nested: bool) -> None:
        for tag in map(int, list(item.keys())):  # tags: iterating a Dataset would convert every element
            if (tag >> 16) & 1:
                continue  # private: removed whatever it says
            if tag in _IDENTIFIER_SEQUENCE_TAGS and not nested:
                element = item[tag]
                if element.VR == "SQ":
                    for inner in element.value:
                        collect(inner, True)
                continue
            vr = _dictionary_vr(tag)
            if tag not in _IDENTIFIER_TAGS and vr not in ("PN", "DA", "DT"):
                continue
            for value in _string_values(item, tag):
                words = _WORD.findall(value.upper())
                if tag in _IDENTIFIER_TAGS:
                    tokens.update(word for word in words if any(character.isdigit() for character in word))
                    tokens.add("".join(words))
                elif vr == "PN":
                    tokens.update(words)
                else:  # DA, DT: YYYYMMDD...
                    digits = "".join(character for character in value if character.isdigit())[:8]
                    if len(digits) == 8:
                        year, month, day = digits[:4], digits[4:6], digits[6:]
                        tokens.update((digits, day + month + year, month + day + year))

    collect(dataset, False)
    return _IdentifyingTokens(
        long=frozenset(token for token in tokens if len(token) >= 3),
        short=frozenset(token for token in tokens if len(token) == 2),
    )


def _string_values(dataset: Dataset, tag: int) -> list[str]:
    """The values of a text element, stripped; [] when absent or empty.

    ASCII values are split straight from the raw bytes (pydicom's conversion costs ~15 us an element);
    anything else goes through pydicom so that the Specific Character Set is honoured.
    """
    element = dataset.get_item(tag)
    value = element.value if element is not None else None
    if isinstance(value, bytes | bytearray | memoryview):
        raw = bytes(value)
        if raw.isascii():
            return [part.strip(" \x00") for part in raw.decode("ascii").split("\\")]
        value = dataset[tag].value
        if isinstance(value, bytes | bytearray | memoryview):  # a binary value representation
            return [bytes(value).decode("latin-1").strip(" \x00")]
    return [str(item).strip(" \x00") for item in _as_list(value)]


def _checked_modality(values: list[str], tokens: _IdentifyingTokens) -> list[str] | None:
    if len(values) == 1 and values[0].upper() in MODALITY_TERMS:
        return values
    return [_OTHER_MODALITY]  # Type 1: replaced, not removed


def _checked_body_part(values: list[str], tokens: _IdentifyingTokens) -> list[str] | None:
    return values if len(values) == 1 and values[0].upper() in BODY_PART_EXAMINED_TERMS else None


def _checked_image_type(values: list[str], tokens: _IdentifyingTokens) -> list[str] | None:
    # Values 1 and 2 are enumerated; a value that is not one of them says nothing we can trust, and
    # DERIVED / SECONDARY is the claim that promises least. The values after them are defined terms
    # per modality or the manufacturer's own: kept unless they name the patient.
    checked = list(values)
    if checked and checked[0].upper() not in IMAGE_TYPE_PIXEL_DATA_CHARACTERISTICS:
        checked[0] = "DERIVED"
    if len(checked) > 1 and checked[1].upper() not in IMAGE_TYPE_PATIENT_EXAMINATION_CHARACTERISTICS:
        checked[1] = "SECONDARY"
    return checked[:2] + [value for value in checked[2:] if not tokens.found_in(value)]


def _checked_photometric_interpretation(values: list[str], tokens: _IdentifyingTokens) -> list[str] | None:
    if len(values) == 1 and values[0].upper() in PHOTOMETRIC_INTERPRETATIONS:
        return values
    # The pixels cannot be read without it: the object is refused (the value itself is not repeated).
    raise IngestError("the photometric interpretation is not one DICOM defines: the pixels cannot be read")


def _checked_character_set(values: list[str], tokens: _IdentifyingTokens) -> list[str] | None:
    return values if all(value in python_encoding for value in values) else None


# Kept code strings with defined terms: (values, tokens) -> the values to write, or None to remove.
_KEPT_VALUE_CHECKS: Mapping[int, Callable[[list[str], _IdentifyingTokens], list[str] | None]] = MappingProxyType(
    {
        _MODALITY_TAG: _checked_modality,
        int(tag_for_keyword("BodyPartExamined")): _checked_body_part,  # type: ignore[arg-type]
        int(tag_for_keyword("ImageType")): _checked_image_type,  # type: ignore[arg-type]
        int(tag_for_keyword("PhotometricInterpretation")): _checked_photometric_interpretation,  # type: ignore[arg-type]
        int(tag_for_keyword("SpecificCharacterSet")): _checked_character_set,  # type: ignore[arg-type]
    }
)


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


def date_shift_days(secret: bytes, patient_key: str) -> int:
    """How many days a patient's dates move under the Modified Dates option: between -3652 and
    -365 (one to ten years back), the same for every file of the patient (``patient_key`` as for
    :func:`patient_pseudonym`) and project secret, so intervals between studies are kept.

    A keyed hash of its own (the message is prefixed): the pseudonym, which readers see, says
    nothing about the offset.
    """
    if not secret:
        raise ValueError("the de-identification secret must not be empty: the date shift would be guessable")
    digest = hmac.new(bytes(secret), b"date shift\n" + patient_key.encode("utf-8"), hashlib.sha256).digest()
    span = _SHIFT_DAYS_MAX - _SHIFT_DAYS_MIN + 1
    return -(_SHIFT_DAYS_MIN + int.from_bytes(digest[:8], "big") % span)


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
    modality: str  # the stored Modality, upper case ("OT" when the upload's was no defined term; "" when absent)
    # The stored StudyDate "YYYYMMDD": shifted under the Modified Dates option, else None (removed).
    study_date: str | None = None
    # What the series is, from coded values and geometry only (:func:`series_description`).
    series_description: str = ""


def deidentify_dicom(data: bytes, secret: bytes, *, shift_dates: bool = False) -> DeidResult:
    """Parse DICOM bytes and de-identify them with :func:`deidentify_dataset`.

    Raises ``IngestError`` for unreadable objects and ``ValueError`` for an empty secret (a
    configuration error, not the uploader's).
    """
    if not secret:
        raise ValueError("the de-identification secret must not be empty: the pseudonyms would be guessable")
    # open_dataset raises IngestError for non-DICOM
    return deidentify_dataset(open_dataset(data), secret, shift_dates=shift_dates)


def deidentify_dataset(dataset: Dataset, secret: bytes, *, shift_dates: bool = False) -> DeidResult:
    """De-identify a DICOM object the caller has already parsed, and return the file to store.

    The dataset is modified in place and is the de-identified object afterwards (new file meta,
    zeroed preamble): a caller that still needs an original value must read it first. Only
    attributes on :data:`KEEP_ATTRIBUTES` survive unchanged; the Basic Profile decides the rest
    (:data:`BASIC_PROFILE_ACTIONS`), and anything on neither list is removed; a kept value that is
    not one of its defined terms or holds a token of the file's identifying values is replaced or
    removed. Dates and times are removed (LongitudinalTemporalInformationModified = "REMOVED"), or
    with ``shift_dates`` kept shifted by the patient's offset ("MODIFIED"; the module docstring says
    what else that keeps). The pixels are never decoded: uncompressed pixel data loses bytes beyond
    what the header implies, JPEG and JPEG-LS frames their application and comment segments.
    Raises ``IngestError`` for objects that cannot be rewritten and ``ValueError`` for an empty
    secret.
    """
    if not secret:
        raise ValueError("the de-identification secret must not be empty: the pseudonyms would be guessable")
    try:
        return _deidentify(dataset, bytes(secret), shift_dates)
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


def _shifted_date(value: str, shift: dt.timedelta | None) -> str | None:
    match = _DATE.fullmatch(value)
    if match is None or shift is None:
        return None
    try:
        shifted = dt.date(*map(int, match.groups())) + shift
    except (ValueError, OverflowError):  # 20240231, or a year the shift takes out of range
        return None
    return shifted.strftime("%Y%m%d") if shifted.year >= 1000 else None


def _capped_age(value: str) -> str | None:
    match = _AGE.fullmatch(value.upper())
    if match is None:
        return None
    years = int(match.group(1)) * _DAYS_PER_AGE_UNIT[match.group(2)] / 365.25
    return _OLDEST_AGE if years >= 90 else value.upper()


# Contrast/Bolus Agent values that say none was given.
_NO_CONTRAST_WORDS = frozenset({"NONE", "NO", "NON", "NIL", "WITHOUT", "N"})


def _contrast_given(dataset: Dataset) -> bool:
    """Whether the original says a contrast agent was given (read before the agent's name goes)."""
    sequence = dataset.get("ContrastBolusAgentSequence")
    if isinstance(sequence, Sequence) and len(sequence) > 0:
        return True
    words = _WORD.findall(_text(dataset, "ContrastBolusAgent").upper())
    return bool(words) and _NO_CONTRAST_WORDS.isdisjoint(words)


# Image Type value 3 (and on) terms that say what kind of image a series holds (PS3.3 C.8.2.1.1.1,
# C.8.3.1.1.1, C.8.16.1): named in the description; any other value is not.
_IMAGE_KINDS = MappingProxyType(
    {
        "LOCALIZER": "localizer",
        "MPR": "MPR",
        "MIP": "MIP",
        "PROJECTION IMAGE": "projection",
        "REFORMATTED": "reformatted",
        "DIFFUSION MAP": "diffusion map",
        "ADC": "ADC map",
        "T1 MAP": "T1 map",
        "T2 MAP": "T2 map",
        "VELOCITY MAP": "velocity map",
        "SUBTRACTION": "subtraction",
    }
)


def series_description(dataset: Dataset, *, contrast: bool = False) -> str:
    """What a series is, in words built from a de-identified object's coded values and geometry only,
    never its free text: body part, view or plane, kind of image, slice thickness, contrast, e.g.
    "chest axial 1.25 mm with contrast", "chest PA", "abdomen coronal MPR 3 mm"; "" when it says
    none of these. ``contrast``: the original named a contrast agent.

    Only values that de-identification checks, or that are numbers, are read: Body Part Examined
    and View Position (each only as one of its defined terms), Image Type, the orientation and
    thickness (at the top level, or in an enhanced object's shared functional groups).
    """
    parts: list[str] = []
    body_part = _text(dataset, "BodyPartExamined").upper()
    if body_part in BODY_PART_EXAMINED_TERMS:
        parts.append(body_part.lower())
    view = _text(dataset, "ViewPosition").upper()
    if view in VIEW_POSITION_TERMS:
        parts.append(view)
    plane = image_plane(_geometry_value(dataset, "PlaneOrientationSequence", "ImageOrientationPatient"))
    if plane:
        parts.append(plane)
    image_type = [str(value).strip().upper() for value in _as_list(dataset.get("ImageType"))]
    kinds = [_IMAGE_KINDS[value] for value in image_type[2:] if value in _IMAGE_KINDS]
    if kinds:
        parts.append(kinds[0])
    elif image_type[:1] == ["DERIVED"]:
        parts.append("derived")
    thickness = _number(_geometry_value(dataset, "PixelMeasuresSequence", "SliceThickness"))
    if thickness is not None and 0 < thickness < 1000:
        parts.append(f"{thickness:.2f}".rstrip("0").rstrip(".") + " mm")
    if contrast:
        parts.append("with contrast")
    return " ".join(parts)


def _geometry_value(dataset: Dataset, group: str, keyword: str) -> object:
    """A value at the top level, else in the first item of the shared functional group ``group``."""
    if keyword in dataset:
        return dataset.get(keyword)
    try:
        return dataset.SharedFunctionalGroupsSequence[0][group][0].get(keyword)
    except (AttributeError, IndexError, KeyError, TypeError):
        return None


def _number(value: object) -> float | None:
    try:
        number = float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return None
    return number if number == number else None  # not NaN


def _needs_burned_in_review(dataset: Dataset, sop_class_uid: str) -> bool:
    burned_in = _text(dataset, "BurnedInAnnotation").upper()
    if burned_in:
        return burned_in == "YES"
    modality = _text(dataset, "Modality").upper()
    return (
        modality in _SECONDARY_CAPTURE_AND_ULTRASOUND_MODALITIES
        or sop_class_uid in _SECONDARY_CAPTURE_AND_ULTRASOUND_CLASSES
    )


def _deidentify(dataset: Dataset, secret: bytes, shift_dates: bool) -> DeidResult:
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
    tokens = _identifying_tokens(dataset)  # before anything that holds them is removed
    contrast = _contrast_given(dataset)  # the agent's name is free text and goes; that one was given stays

    date_shift = dt.timedelta(days=date_shift_days(secret, patient_key)) if shift_dates else None
    cleaner = _Cleaner(_cached_uid_mapper(secret), pseudonym, _encoding_of(transfer_syntax), tokens, date_shift)
    cleaner.clean(dataset)
    _clean_pixel_data(dataset, transfer_syntax)
    _mark_deidentified(dataset, modified_dates=shift_dates)
    study_date = _text(dataset, "StudyDate")

    # The file meta is rebuilt rather than cleaned: AE titles and the implementation of the original
    # writer go, pydicom fills in its own implementation UID, and the instance UID is the new one.
    file_meta = FileMetaDataset()
    file_meta.MediaStorageSOPClassUID = cleaner.map_uid(sop_class_uid) if sop_class_uid else ""
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
        modality=_text(dataset, "Modality").upper(),
        study_date=study_date if len(study_date) == 8 and study_date.isdigit() else None,
        series_description=series_description(dataset, contrast=contrast),
    )


def _mark_deidentified(dataset: Dataset, modified_dates: bool) -> None:
    """Write the de-identification record afresh (the cleaner removed any earlier one, which may
    name who made it: "anonymised by Dr Smith"): the Basic Profile, and the options applied."""
    dataset.PatientIdentityRemoved = "YES"
    codes = [_BASIC_PROFILE_CODE]
    if modified_dates:
        dataset.DeidentificationMethod = [DEIDENTIFICATION_METHOD, *_MODIFIED_DATES_METHOD]
        codes += [_MODIFIED_DATES_CODE, _PATIENT_CHARACTERISTICS_CODE]
    else:
        dataset.DeidentificationMethod = DEIDENTIFICATION_METHOD
    items = []
    for code_value, code_meaning in codes:
        item = Dataset()
        item.CodeValue = code_value
        item.CodingSchemeDesignator = "DCM"
        item.CodeMeaning = code_meaning
        items.append(item)
    dataset.DeidentificationMethodCodeSequence = Sequence(items)
    dataset.LongitudinalTemporalInformationModified = "MODIFIED" if modified_dates else "REMOVED"


_PIXEL_DATA_TAG = 0x7FE00010
_EXTENDED_OFFSET_TABLE_TAGS = _tags_of(("ExtendedOffsetTable", "ExtendedOffsetTableLengths"))


def _clean_pixel_data(dataset: Dataset, transfer_syntax: str) -> None:
    """Remove from the pixel data what is not the image, without decoding it.

    Uncompressed: bytes beyond what Rows x Columns x frames x samples x bits imply (and its one
    byte of padding) go; a text trailer was found there. JPEG and JPEG-LS: each frame loses its
    APPn and COM segments (EXIF with the operator's name, comments); the JFIF and Adobe segments
    keep their defined fields. JPEG 2000: each frame loses its COM segments (and a JP2 wrapper's
    boxes). RLE is copied as uploaded: its segments hold nothing but run-length coded pixels.
    """
    syntax = UID(transfer_syntax)
    if not syntax.is_transfer_syntax:
        return  # a private syntax: nothing known about its layout (the import gate refuses these)
    if syntax in JPEGTransferSyntaxes:
        _rewrite_frames(dataset, strip_jpeg_codestream)
    elif syntax in JPEGLSTransferSyntaxes:
        _rewrite_frames(dataset, functools.partial(strip_jpeg_codestream, jpeg_ls=True))
    elif syntax in JPEG2000TransferSyntaxes:
        _rewrite_frames(dataset, strip_jpeg2000_comments)
    elif not syntax.is_encapsulated:
        _cut_trailing_pixel_bytes(dataset)


def _rewrite_frames(dataset: Dataset, strip: Callable[[bytes], bytes]) -> None:
    """Replace each compressed frame with ``strip(frame)``, re-encapsulated only if one changed."""
    element = dataset.get_item(_PIXEL_DATA_TAG)
    value = element.value if element is not None else None
    if not isinstance(value, bytes | bytearray | memoryview) or len(value) < 8:
        return
    value = bytes(value)
    extended = None
    if all(tag in dataset for tag in _EXTENDED_OFFSET_TABLE_TAGS):
        extended = (bytes(dataset.ExtendedOffsetTable), bytes(dataset.ExtendedOffsetTableLengths))
    try:
        number_of_frames = int(dataset.get("NumberOfFrames") or 1)
        frames = list(generate_frames(value, number_of_frames=number_of_frames, extended_offsets=extended))
    except Exception as error:  # pydicom raises ValueError, struct.error, ... for broken item structures
        raise IngestError("cannot split the compressed pixel data into its frames to de-identify them") from error
    stripped = [strip(frame) for frame in frames]
    if all(
        new == frame[: len(new)] and not frame[len(new) :].strip(b"\x00")
        for new, frame in zip(stripped, frames, strict=True)
    ):
        return  # nothing but padding after each end-of-image marker: the upload's bytes stay
    if extended is not None:
        pixel_data, offsets, lengths = encapsulate_extended(stripped)
        dataset.ExtendedOffsetTable = offsets
        dataset.ExtendedOffsetTableLengths = lengths
    else:
        # The basic offset table is the item that starts the value: (FFFE,E000), then its length.
        has_offset_table = int.from_bytes(value[4:8], "little") > 0
        pixel_data = encapsulate(stripped, has_bot=has_offset_table)
    dataset[_PIXEL_DATA_TAG] = DataElement(_PIXEL_DATA_TAG, "OB", pixel_data, is_undefined_length=True)


def _cut_trailing_pixel_bytes(dataset: Dataset) -> None:
    expected = _native_pixel_bytes(dataset)
    if expected is None:
        return
    padded = expected + expected % 2  # values have an even length: one byte of padding at most
    for tag in PIXEL_DATA_TAGS:
        element = dataset.get_item(tag)
        value = element.value if element is not None else None
        if not isinstance(value, bytes | bytearray | memoryview) or len(value) <= expected:
            continue  # shorter: the import gate refuses it as truncated
        if len(value) == padded and value[expected] == 0:
            continue
        dataset[tag].value = bytes(value[:expected]) + b"\x00" * (padded - expected)


def _native_pixel_bytes(dataset: Dataset) -> int | None:
    """How many bytes the header says uncompressed pixel data takes; None when it cannot say."""
    try:
        rows = int(dataset.Rows)
        columns = int(dataset.Columns)
        frames = int(dataset.get("NumberOfFrames") or 1)
        samples = int(dataset.get("SamplesPerPixel") or 1)
        bits = int(dataset.BitsAllocated)
        photometric = str(dataset.get("PhotometricInterpretation", "")).strip(" \x00").upper()
    except (AttributeError, TypeError, ValueError):
        return None
    if min(rows, columns, frames, samples, bits) <= 0:
        return None
    # Uncompressed YBR_FULL_422 stores two pixels as Y1 Y2 Cb Cr: two samples a pixel, not three.
    stored_samples = 2 if photometric == "YBR_FULL_422" and samples == 3 else samples
    return -(-rows * columns * frames * stored_samples * bits // 8)  # bit-packed frames follow each other


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
    # The UIDs DICOM registered (SOP classes, transfer syntaxes, well-known frames of reference and
    # coding schemes) name definitions, never a patient. Being under 1.2.840.10008 is not enough:
    # anyone can write "1.2.840.10008." followed by a birth date.
    return value in UID_dictionary


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
    tokens: _IdentifyingTokens  # what no kept value may contain
    # The patient's offset under the Modified Dates option; None: dates go as the Basic Profile says.
    date_shift: dt.timedelta | None = None
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
        if tag in _RECORD_TAGS:
            del dataset[tag]  # an earlier record may name its author; _mark_deidentified writes ours
            return
        if tag in _KEEP_TAGS:
            if not self._has_allowed_vr(dataset, tag):
                del dataset[tag]
                return
            if tag not in _KEEP_TAGS_TO_VISIT:
                self._check_kept_value(dataset, tag)
                return
        if self.date_shift is not None and not nested and tag in _MODIFIED_DATES_TAGS and self._modify(dataset, tag):
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

    def _modify(self, dataset: Dataset, tag: int) -> bool:
        """Keep a date shifted, a time, an age (capped) or a sex under the Modified Dates option;
        False when the value is not one that can be kept so (the Basic Profile's action follows).
        The value written is built from the parsed one, never copied as text."""
        vr = _dictionary_vr(tag)
        if dataset.get_item(tag).VR not in (None, "UN", vr):
            return False
        values = _string_values(dataset, tag)
        if len(values) != 1 or not values[0]:
            return False
        value = values[0]
        new_value: str | None = None
        if vr == "DA":
            new_value = _shifted_date(value, self.date_shift)
        elif vr == "DT":
            match = _DATE_TIME.fullmatch(value)
            date = _shifted_date(match.group(1), self.date_shift) if match else None
            new_value = date + match.group(2) if match and date else None
        elif vr == "TM":
            new_value = value if _TIME.fullmatch(value) else None
        elif vr == "AS":
            new_value = _capped_age(value)
        elif vr == "CS":  # Patient's Sex
            new_value = value.upper() if value.upper() in _PATIENT_SEXES else None
        if new_value is None:
            return False
        dataset[tag] = DataElement(tag, vr, new_value)
        return True

    def _has_allowed_vr(self, dataset: Dataset, tag: int) -> bool:
        vr = dataset.get_item(tag).VR
        if vr is None:  # implicit VR: pydicom will give it the dictionary's
            return True
        if vr == "UN":  # written by someone who did not know the attribute: pydicom reads it as it is
            vr = dataset[tag].VR
        return vr in _ALLOWED_VRS[tag] or vr == dictionary_VR(tag)

    def _check_kept_value(self, dataset: Dataset, tag: int) -> None:
        """Keep a kept attribute's value only if it cannot name anyone: a code string with defined
        terms must be one of them (_KEPT_VALUE_CHECKS), a number must look like one, and any other
        text must hold no token of the file's identifying values."""
        vr = _dictionary_vr(tag)
        check = _KEPT_VALUE_CHECKS.get(tag)
        values = _string_values(dataset, tag) if check is not None or vr in _TEXT_VRS or vr in _NUMBER_VALUE else []
        if not any(values):  # binary values (pixel description, LUTs, geometry), or empty
            checked: list[str] | None = values
        elif check is not None:
            checked = check(values, self.tokens)
        elif vr in _NUMBER_VALUE:
            checked = values if all(_NUMBER_VALUE[vr].fullmatch(value) for value in values) else None
        else:
            checked = None if any(self.tokens.found_in(value) for value in values) else values
        if checked is None:
            del dataset[tag]
        elif checked != values:
            dataset[tag] = DataElement(tag, vr, checked if len(checked) > 1 else checked[0])
        elif not self._written_as_read(dataset.get_item(tag)):
            dataset[tag]  # converted, so that pydicom writes it in the output encoding

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
