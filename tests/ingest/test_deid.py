"""deidentify_dicom / deidentify_dataset / strip_raster_metadata: what leaves the import must not
identify the patient.

Every PHI check searches the bytes that would be stored, not a parsed view of them, so a value that
survives anywhere (a nested sequence, the file meta, a private block) fails the test. The two
"every attribute" tests build one file carrying every row of PS3.15 Table E.1-1, and one carrying
every attribute of the data dictionary, and check that only the keep list survives unchanged.
"""

from __future__ import annotations

import datetime
import hashlib
import hmac
import io
import re
import struct
import warnings

import numpy as np
import pydicom
import pytest
from dicomanonymizer.dicom_anonymization_databases import dicomfields_2026c as table_e11
from dicomanonymizer.dicomfields_selector import ANONYMIZATION_CATEGORIES
from PIL import Image, PngImagePlugin
from pydicom.datadict import DicomDictionary, dictionary_VR, keyword_for_tag, tag_for_keyword
from pydicom.dataelem import RawDataElement
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.sequence import Sequence
from pydicom.tag import Tag
from pydicom.uid import (
    CTImageStorage,
    ExplicitVRLittleEndian,
    ImplicitVRLittleEndian,
    SecondaryCaptureImageStorage,
    UltrasoundImageStorage,
)

from medreview.config import IngestLimits
from medreview.errors import IngestError
from medreview.imaging.decoding import decode_dicom
from medreview.ingest.deid import (
    BASIC_PROFILE_ACTIONS,
    DEIDENTIFICATION_METHOD,
    KEEP_ATTRIBUTES,
    DeidResult,
    deidentify_dataset,
    deidentify_dicom,
    hashed_uid_mapper,
    strip_raster_metadata,
)
from medreview.ingest.dicom import open_dataset, read_dicom
from tests.helpers import corpus_file

SECRET = b"project-secret-for-tests"
LIMITS = IngestLimits()
VALID_UID = re.compile(r"^(0|[1-9]\d*)(\.(0|[1-9]\d*))*$")
PIXEL_TAGS = (0x7FE00008, 0x7FE00009, 0x7FE00010)

STUDY_UID = "1.2.826.0.1.3680043.99.1.1"
SERIES_UID = "1.2.826.0.1.3680043.99.1.1.2"
FRAME_OF_REFERENCE_UID = "1.2.826.0.1.3680043.99.1.1.3"
FIRST_SLICE_UID = "1.2.826.0.1.3680043.99.1.1.2.1"
SECOND_SLICE_UID = "1.2.826.0.1.3680043.99.1.1.2.2"

# Every identifying value the built dataset carries (each long enough not to occur by chance).
PHI_VALUES = [
    "Doe^Johnathan",
    "MRN-5551234",
    "19610314",  # birth date
    "20240131",  # study date
    "20240201",  # series / acquisition / content date
    "101530",  # study time
    "221B Baker Street",
    "+44-20-7946-0000",
    "ALT-ID-998877",
    "Smith^Janet",  # mother's birth name
    "Captain",
    "Plumber",
    "Chest pain after a fall at home",
    "Lives alone, daughter is the contact",
    "House^Gregory",  # referring physician
    "Cuddy^Lisa",  # performing physician
    "Wilson^James",  # reading physician
    "Foreman^Eric",  # operator
    "Chase^Robert",  # physician of record
    "Cameron^Allison",  # requesting physician
    "Princeton Plainsboro Hospital",
    "Prospect Avenue 1, Princeton",
    "Diagnostic Radiology East",
    "CTSTATION07",
    "ACC-20240131-42",
    "STUDY-4242",
    "SN-00987654",
    "CT chest for Johnathan",  # study description naming the patient
    "Series for Doe",
    "Comment: patient Doe moved",
    "REQ-PROC-777",
    "SR text naming Doe",
    "ACME_PRIVATE_CREATOR",
    "private note about Doe",
    "overlay label",
    "nested private secret",
    "icon of Doe",
    "Reason: rule out Doe fracture",
    # Not named in the action table: removed by the rules for their value representation.
    "Kutner^Lawrence",  # PN
    "20231224",  # DA
    "free text comment on Doe",  # LT
    "Order placed for Doe",  # LO, named in the table
]


def corpus_bytes(name: str) -> bytes:
    return corpus_file(name).read_bytes()


def code_item(value: str, meaning: str) -> Dataset:
    item = Dataset()
    item.CodeValue = value
    item.CodingSchemeDesignator = "99LOCAL"
    item.CodeMeaning = meaning
    return item


def build_identified_ct(
    sop_instance_uid: str = FIRST_SLICE_UID,
    referenced_instance_uid: str | None = None,
    transfer_syntax: str = ExplicitVRLittleEndian,
) -> Dataset:
    """A CT slice carrying every kind of PHI the profile handles; (4, 4) int16 pixels."""
    pixels = np.arange(16, dtype=np.int16).reshape(4, 4) * 37
    file_meta = FileMetaDataset()
    file_meta.MediaStorageSOPClassUID = CTImageStorage
    file_meta.MediaStorageSOPInstanceUID = sop_instance_uid
    file_meta.TransferSyntaxUID = transfer_syntax
    file_meta.SourceApplicationEntityTitle = "CTSTATION07"
    dataset = Dataset()
    dataset.file_meta = file_meta
    dataset.SpecificCharacterSet = "ISO_IR 100"
    dataset.SOPClassUID = CTImageStorage
    dataset.SOPInstanceUID = sop_instance_uid
    dataset.StudyInstanceUID = STUDY_UID
    dataset.SeriesInstanceUID = SERIES_UID
    dataset.FrameOfReferenceUID = FRAME_OF_REFERENCE_UID
    dataset.Modality = "CT"
    dataset.Manufacturer = "ACME"
    # Patient
    dataset.PatientName = "Doe^Johnathan"
    dataset.PatientID = "MRN-5551234"
    dataset.PatientBirthDate = "19610314"
    dataset.PatientSex = "M"
    dataset.PatientAge = "062Y"
    dataset.PatientAddress = "221B Baker Street"
    dataset.PatientTelephoneNumbers = "+44-20-7946-0000"
    dataset.OtherPatientIDs = "ALT-ID-998877"
    other_id = Dataset()
    other_id.PatientID = "ALT-ID-998877"
    other_id.TypeOfPatientID = "TEXT"
    dataset.OtherPatientIDsSequence = Sequence([other_id])
    dataset.PatientMotherBirthName = "Smith^Janet"
    dataset.MilitaryRank = "Captain"
    dataset.Occupation = "Plumber"
    dataset.AdditionalPatientHistory = "Chest pain after a fall at home"
    dataset.PatientComments = "Lives alone, daughter is the contact"
    # People and institution
    dataset.ReferringPhysicianName = "House^Gregory"
    dataset.PerformingPhysicianName = "Cuddy^Lisa"
    dataset.NameOfPhysiciansReadingStudy = "Wilson^James"
    dataset.OperatorsName = "Foreman^Eric"
    dataset.PhysiciansOfRecord = "Chase^Robert"
    dataset.RequestingPhysician = "Cameron^Allison"
    dataset.InstitutionName = "Princeton Plainsboro Hospital"
    dataset.InstitutionAddress = "Prospect Avenue 1, Princeton"
    dataset.InstitutionalDepartmentName = "Diagnostic Radiology East"
    dataset.StationName = "CTSTATION07"
    dataset.DeviceSerialNumber = "SN-00987654"
    # Study identifiers, dates and free text
    dataset.AccessionNumber = "ACC-20240131-42"
    dataset.StudyID = "STUDY-4242"
    dataset.StudyDate = "20240131"
    dataset.StudyTime = "101530"
    dataset.SeriesDate = "20240201"
    dataset.AcquisitionDate = "20240201"
    dataset.ContentDate = "20240201"
    dataset.AcquisitionDateTime = "20240201101612.250000+0100"
    dataset.StudyDescription = "CT chest for Johnathan"
    dataset.SeriesDescription = "Series for Doe"
    dataset.ImageComments = "Comment: patient Doe moved"
    dataset.ReasonForStudy = "Reason: rule out Doe fracture"
    dataset.ReasonForTheRequestedProcedure = "Order placed for Doe"
    dataset.NamesOfIntendedRecipientsOfResults = "Kutner^Lawrence"
    dataset.DateOfLastCalibration = "20231224"
    dataset.add_new(0x40004000, "LT", "free text comment on Doe")  # Text Comments (retired)
    request = Dataset()
    request.RequestedProcedureID = "REQ-PROC-777"
    request.ScheduledProcedureStepID = "REQ-PROC-777"
    dataset.RequestAttributesSequence = Sequence([request])
    content = Dataset()
    content.ValueType = "TEXT"
    content.TextValue = "SR text naming Doe"
    dataset.ContentSequence = Sequence([content])
    dataset.ProcedureCodeSequence = Sequence([code_item("CTCHEST", "CT chest for Johnathan")])
    # Private tags, at the top level and inside a kept sequence
    block = dataset.private_block(0x0009, "ACME_PRIVATE_CREATOR", create=True)
    block.add_new(0x01, "LO", "private note about Doe")
    block.add_new(0x02, "UI", "1.2.826.0.1.3680043.99.7.7")
    reference = Dataset()
    reference.ReferencedSOPClassUID = CTImageStorage
    reference.ReferencedSOPInstanceUID = referenced_instance_uid or "1.2.826.0.1.3680043.99.1.1.2.9"
    nested_block = reference.private_block(0x0011, "ACME_NESTED", create=True)
    nested_block.add_new(0x01, "LO", "nested private secret")
    dataset.ReferencedImageSequence = Sequence([reference])
    # Overlay plane and a (retired) curve
    dataset.add_new(0x60000010, "US", 4)  # OverlayRows
    dataset.add_new(0x60000011, "US", 4)  # OverlayColumns
    dataset.add_new(0x60000040, "CS", "G")  # OverlayType
    dataset.add_new(0x60000050, "SS", [1, 1])  # OverlayOrigin
    dataset.add_new(0x60000100, "US", 1)  # OverlayBitsAllocated
    dataset.add_new(0x60000102, "US", 0)  # OverlayBitPosition
    dataset.add_new(0x60001500, "LO", "overlay label")  # OverlayLabel
    dataset.add_new(0x60003000, "OW", b"\xff\xff")  # OverlayData
    dataset.add_new(0x50000005, "US", 1)  # CurveDimensions (retired)
    # Icon image: a thumbnail that may show burned-in text
    icon = Dataset()
    icon.Rows = 1
    icon.Columns = 1
    icon.SamplesPerPixel = 1
    icon.PhotometricInterpretation = "MONOCHROME2"
    icon.BitsAllocated = 8
    icon.BitsStored = 8
    icon.HighBit = 7
    icon.PixelRepresentation = 0
    icon.PixelData = b"\x00\x00"
    icon.ImageComments = "icon of Doe"
    dataset.IconImageSequence = Sequence([icon])
    # Image
    dataset.Rows, dataset.Columns = pixels.shape
    dataset.SamplesPerPixel = 1
    dataset.PhotometricInterpretation = "MONOCHROME2"
    dataset.BitsAllocated = 16
    dataset.BitsStored = 16
    dataset.HighBit = 15
    dataset.PixelRepresentation = 1
    dataset.RescaleSlope = 1
    dataset.RescaleIntercept = -1024
    dataset.PixelData = pixels.tobytes()
    return dataset


def to_bytes(dataset: Dataset) -> bytes:
    buffer = io.BytesIO()
    dataset.save_as(buffer, enforce_file_format=True)
    return buffer.getvalue()


def identified_ct_bytes(**options: str) -> bytes:
    return to_bytes(build_identified_ct(**options))


def parse(data: bytes) -> Dataset:
    return pydicom.dcmread(io.BytesIO(data))


def all_elements(dataset: Dataset) -> list[pydicom.DataElement]:
    """Every element of the dataset and of its file meta, sequences included."""
    elements = list(dataset.iterall())
    file_meta = getattr(dataset, "file_meta", None)
    return elements + (list(file_meta.iterall()) if file_meta is not None else [])


def instance_uids(dataset: Dataset) -> set[str]:
    """Non-registered UIDs (those naming a patient's objects), file meta included."""
    values: set[str] = set()
    for element in all_elements(dataset):
        if element.VR != "UI" or element.keyword == "ImplementationClassUID" or not element.value:
            continue
        for value in element.value if element.VM > 1 else [element.value]:
            if not str(value).startswith("1.2.840.10008."):
                values.add(str(value))
    return values


def pixel_values(dataset: Dataset) -> dict[int, bytes]:
    return {tag: bytes(dataset[tag].value) for tag in PIXEL_TAGS if tag in dataset}


def expected_uid(secret: bytes, original_uid: str) -> str:
    digest = hmac.new(secret, original_uid.encode(), hashlib.sha256).digest()
    return "2.25." + str(int.from_bytes(digest[:16], "big"))


# --- the action table and the keep list -------------------------------------------------------

PSEUDONYM_KEYWORDS = ("PatientName", "PatientID")
PHI_UID_ROOT = "1.2.826.0.1.3680043.99.50"  # not registered: every UID under it must be remapped
NESTED_UID_ROOT = "1.2.826.0.1.3680043.99.60"
TEXT_VRS = frozenset({"AE", "CS", "LO", "LT", "SH", "ST", "UC", "UT"})
BINARY_VRS = frozenset({"OB", "OD", "OF", "OL", "OV", "OW", "UN"})

# The survivors the issue reproduced on the keep-by-default code, by keyword.
ISSUE_SURVIVORS = [
    "RetrieveAETitle",
    "StationAETitle",
    "InsurancePlanIdentification",
    "IssuerOfAdmissionID",
    "ClinicalTrialSponsorName",
    "ClinicalTrialProtocolID",
    "ClinicalTrialSiteID",
    "ClinicalTrialSubjectID",
    "ClinicalTrialSubjectReadingID",
    "ClinicalTrialTimePointID",
    "ClinicalTrialSeriesID",
    "DeviceID",
    "ModifyingDeviceID",
    "ModifyingDeviceManufacturer",
    "ModifiedImageDescription",
    "StorageMediaFileSetID",
    "TopicTitle",
    "TopicAuthor",
    "TopicKeywords",
]

# Kept attributes the "every attribute" files carry, with realistic values that must come out unchanged.
KEPT_VALUES: dict[str, object] = {
    "PixelSpacing": [0.703125, 0.703125],
    "SliceThickness": 1.25,
    "ImagePositionPatient": [-180.0, -180.0, 42.5],
    "ImageOrientationPatient": [1, 0, 0, 0, 1, 0],
    "SliceLocation": 42.5,
    "KVP": 120,
    "XRayTubeCurrent": 250,
    "ConvolutionKernel": "STANDARD",
    "BodyPartExamined": "CHEST",
    "ImageType": ["ORIGINAL", "PRIMARY", "AXIAL"],
    "WindowCenter": 40,
    "WindowWidth": 400,
    "SeriesNumber": 3,
    "InstanceNumber": 17,
}
PIXEL_DESCRIPTION = ("Rows", "Columns", "SamplesPerPixel", "PhotometricInterpretation", "BitsAllocated")
PIXEL_DESCRIPTION += ("BitsStored", "HighBit", "PixelRepresentation", "RescaleSlope", "RescaleIntercept", "Modality")


def profile_rows() -> dict[int, str]:
    """Table E.1-1 as dicom-anonymizer lists it: tag -> category ("X_Z_D_TAGS", ...), single tags only.

    The rows for repeating groups (curves, overlay data and comments) are masks; the overlay tests
    cover them.
    """
    rows: dict[int, str] = {}
    for category in ANONYMIZATION_CATEGORIES:
        if category == "ALL_TAGS":
            continue
        for entry in getattr(table_e11, category):
            if len(entry) == 2:
                rows[entry[0] << 16 | entry[1]] = category
    return rows


PROFILE_ROWS = profile_rows()
KEEP_TAGS = frozenset(tag_for_keyword(keyword) for keyword in KEEP_ATTRIBUTES)


def allowed_actions(category: str) -> set[str]:
    """The actions the standard allows for a row: "X_Z_U_STAR_TAGS" -> {"X", "Z", "U"}."""
    return set(category.removesuffix("_TAGS").replace("_STAR", "").split("_"))


def test_every_row_of_the_maintained_table_has_an_action_the_standard_allows() -> None:
    # The table is taken whole from the package: a row lost on the way would fall to "remove", safe
    # for most rows but fatal for the UIDs that must be remapped to keep series together.
    assert len(PROFILE_ROWS) >= 600  # the 2026c table: about 650 single-tag rows
    assert set(PROFILE_ROWS) <= set(BASIC_PROFILE_ACTIONS)
    pseudonym_tags = {tag_for_keyword(keyword) for keyword in PSEUDONYM_KEYWORDS}
    wrong = {
        hex(tag): (category, BASIC_PROFILE_ACTIONS[tag])
        for tag, category in PROFILE_ROWS.items()
        if tag not in pseudonym_tags and BASIC_PROFILE_ACTIONS[tag] not in allowed_actions(category)
    }
    assert wrong == {}
    # The documented deviation: name (Z) and ID (Z/D) become the pseudonym, a dummy value.
    assert {BASIC_PROFILE_ACTIONS[tag] for tag in pseudonym_tags} == {"D"}


def test_keep_list_names_real_attributes_and_overrides_no_removal_of_the_standard() -> None:
    unknown = [keyword for keyword in KEEP_ATTRIBUTES if tag_for_keyword(keyword) is None]
    assert unknown == []
    # Where the standard has a row for a kept attribute, that row must remap it (a UID, or the
    # references of X/Z/U*): the keep list never undoes a removal, an emptying or a dummy.
    overriding = {
        keyword: PROFILE_ROWS[tag_for_keyword(keyword)]
        for keyword in KEEP_ATTRIBUTES
        if tag_for_keyword(keyword) in PROFILE_ROWS
        and "U" not in allowed_actions(PROFILE_ROWS[tag_for_keyword(keyword)])
    }
    assert overriding == {}
    # Nothing kept can hold a name, a date, a time or open free text.
    risky_vrs = {"PN", "DA", "DT", "TM", "LT", "ST", "UT", "UC", "UR", "UN"}
    assert [keyword for keyword in KEEP_ATTRIBUTES if dictionary_VR(keyword) in risky_vrs] == []


# --- every attribute ---------------------------------------------------------------------------


def value_representation(tag: int) -> str:
    # Rows added to the standard after pydicom's dictionary was built have no VR here: LO carries a
    # searchable marker as well as any.
    vr = dictionary_VR(tag) if keyword_for_tag(tag) else "LO"
    return vr.split(" or ")[0]  # "US or SS", "OB or OW": any valid choice will do


def identifying_value(vr: str, index: int) -> object:
    """A value valid for ``vr`` and unique to ``index``, so that a survivor names its attribute."""
    if vr == "PN":
        return f"Doe{index:04d}^Marker"
    if vr in TEXT_VRS:
        return f"PHI{index:04d}X"
    if vr == "UR":
        return f"https://phi.example/PHI{index:04d}X"
    if vr in BINARY_VRS:
        return f"PHI{index:04d}X".encode()
    if vr == "UI":
        return f"{PHI_UID_ROOT}.{index}"
    day = (datetime.date(1950, 1, 1) + datetime.timedelta(days=index)).strftime("%Y%m%d")
    time = f"{index // 3600 % 24:02d}{index // 60 % 60:02d}{index % 60:02d}"
    numbers: dict[str, object] = {
        "DA": day,
        "TM": time,
        "DT": day + time,
        "AS": f"{index % 1000:03d}Y",
        "DS": f"{index}.25",
        "IS": str(100000 + index),
        "US": 1 + index % 30000,
        "SS": 1 + index % 30000,
        "UL": 100000 + index,
        "SL": 100000 + index,
        "UV": 100000 + index,
        "SV": 100000 + index,
        "FL": index + 0.5,
        "FD": index + 0.5,
        "AT": 0x00100010,
    }
    return numbers[vr]


def searchable(vr: str, value: object) -> bytes | None:
    """The bytes of a value distinctive enough to search the stored file for; None for numbers and dates."""
    if vr in BINARY_VRS:
        return bytes(value)  # type: ignore[arg-type]
    if vr in TEXT_VRS or vr in ("PN", "UR", "UI"):
        return str(value).encode()
    return None


def identifying_item(index: int, markers: list[bytes]) -> Dataset:
    """A sequence item with identifiers, a UID, a private element, pixel data and a nested sequence."""
    item = Dataset()
    item.PatientName = f"Doe{index:04d}^Nested"
    item.PatientID = f"NESTED{index:04d}X"
    item.AccessionNumber = f"ACC{index:04d}X"
    item.ReferencedSOPClassUID = CTImageStorage
    item.ReferencedSOPInstanceUID = f"{NESTED_UID_ROOT}.{index}"
    block = item.private_block(0x0029, "NESTED_CREATOR", create=True)
    block.add_new(0x01, "LO", f"PRIV{index:04d}X")
    item.add_new(0x7FE00010, "OB", f"PIXL{index:04d}X".encode())  # a nested image, like an icon: may show a name
    request = Dataset()
    request.AccessionNumber = f"REQ{index:04d}X"
    request.ReasonForTheRequestedProcedure = f"WHY{index:04d}X"
    item.RequestAttributesSequence = Sequence([request])
    markers.extend(
        value.encode()
        for value in (
            str(item.PatientName),
            item.PatientID,
            item.AccessionNumber,
            item.ReferencedSOPInstanceUID,
            f"PRIV{index:04d}X",
            f"PIXL{index:04d}X",
            request.AccessionNumber,
            request.ReasonForTheRequestedProcedure,
        )
    )
    return item


def build_every_attribute(tags: list[int]) -> tuple[Dataset, dict[int, object], list[bytes]]:
    """The identified CT slice plus every tag of ``tags`` with an identifying value.

    Returns the dataset, the original value of each added tag (sequences: the Sequence), and the
    searchable bytes that must not reach the stored file. A kept functional group sequence carries
    identifiers next to a kept pixel spacing, so the walk into kept sequences is checked as well.
    """
    dataset = build_identified_ct()
    for keyword, value in KEPT_VALUES.items():
        setattr(dataset, keyword, value)
    originals: dict[int, object] = {}
    markers: list[bytes] = []
    for index, tag in enumerate(sorted(tags), start=1):
        vr = value_representation(tag)
        value = Sequence([identifying_item(index, markers)]) if vr == "SQ" else identifying_value(vr, index)
        marker = None if vr == "SQ" else searchable(vr, value)
        if marker is not None:
            markers.append(marker)
        dataset.add_new(tag, vr, value)
        originals[tag] = value
    measures = identifying_item(99999, markers)
    measures.PixelSpacing = [0.5, 0.5]
    frame_group = Dataset()
    frame_group.PixelMeasuresSequence = Sequence([measures])
    dataset.SharedFunctionalGroupsSequence = Sequence([frame_group])
    return dataset, originals, markers


def outcome(output: Dataset, tag: int, original: object, pseudonym: str) -> str:
    """What de-identification did to one attribute: X, Z, D, U, PSEUDONYM, SEQUENCE KEPT or KEPT."""
    if tag not in output:
        return "X"
    element = output[tag]
    if element.VR == "SQ":
        return "Z" if len(element.value) == 0 else "SEQUENCE KEPT"
    if element.is_empty:
        return "Z"
    if element.value == pseudonym:
        return "PSEUDONYM"
    if element.VR == "UI" and element.value == expected_uid(SECRET, str(original)):
        return "U"
    if element.value != original and str(original) not in str(element.value):
        return "D"
    return "KEPT"


def allowed_outcomes(tag: int, vr: str) -> set[str]:
    if keyword_for_tag(tag) in PSEUDONYM_KEYWORDS:
        return {"PSEUDONYM"}
    allowed = allowed_actions(PROFILE_ROWS.get(tag, "X_TAGS"))  # not in E.1-1: not kept, so removed
    if "D" in allowed:
        # In place of a dummy: an empty value (sequences, binary and URL values have no dummy) or,
        # for a UID, the consistent pseudonym UID.
        allowed |= {"Z", "U"} if vr == "UI" else {"Z"}
    if "U" in allowed and vr == "SQ":
        allowed.add("SEQUENCE KEPT")  # X/Z/U*: references kept with their UIDs remapped
    return allowed


def check_every_attribute(tags: list[int]) -> tuple[Dataset, Dataset, DeidResult]:
    """De-identify a file carrying every tag of ``tags`` and check each against the standard."""
    dataset, originals, markers = build_every_attribute(tags)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # pydicom warns about a few values of retired attributes
        original = to_bytes(dataset)
    assert all(marker in original for marker in markers)  # the test file really carries each value

    result = deidentify_dicom(original, SECRET)

    output = parse(result.data)
    wrong = {}
    for tag, value in originals.items():
        vr = value_representation(tag)
        found = outcome(output, tag, value, result.pseudonym_patient_id)
        if found not in allowed_outcomes(tag, vr):
            wrong[keyword_for_tag(tag) or hex(tag)] = found
    assert wrong == {}
    assert [marker for marker in markers if marker in result.data] == []
    assert [element.tag for element in all_elements(output) if element.tag.is_private] == []
    return parse(original), output, result


def test_every_attribute_of_table_e1_1_is_removed_or_replaced_as_the_standard_says() -> None:
    # Command (0000) and file meta (0002) rows are not data set attributes; the file meta is rebuilt
    # (see test_file_meta_matches_the_new_instance_and_registered_uids_are_kept).
    tags = [tag for tag in PROFILE_ROWS if tag >> 16 not in (0x0000, 0x0002)]
    original, output, result = check_every_attribute(tags)

    for keyword in (*KEPT_VALUES, *PIXEL_DESCRIPTION):
        assert output[keyword].value == original[keyword].value, keyword
    assert pixel_values(output) == pixel_values(original)
    assert output.SharedFunctionalGroupsSequence[0].PixelMeasuresSequence[0].PixelSpacing == [0.5, 0.5]
    # X/Z/U*: the reference survives, pointing at the remapped instance.
    reference = output.ReferencedImageSequence[0]
    assert reference.ReferencedSOPClassUID == CTImageStorage
    assert reference.ReferencedSOPInstanceUID == expected_uid(
        SECRET, original.ReferencedImageSequence[0].ReferencedSOPInstanceUID
    )
    assert set(reference.keys()) <= KEEP_TAGS | set(BASIC_PROFILE_ACTIONS)
    info = read_dicom(result.data, LIMITS)  # still a valid image for the import gate
    assert (info.rows, info.columns) == (original.Rows, original.Columns)


def test_the_survivors_named_in_the_issue_are_gone() -> None:
    tags = [tag_for_keyword(keyword) for keyword in ISSUE_SURVIVORS]
    original, output, _ = check_every_attribute(tags)

    survivors = [
        keyword for keyword in ISSUE_SURVIVORS if keyword in output and output[keyword].value == original[keyword].value
    ]
    assert survivors == []


def test_every_dictionary_attribute_off_the_keep_list_is_removed_or_replaced() -> None:
    # Complete by construction: whatever a scanner writes, only the keep list survives unchanged.
    # Skipped: command and file meta groups, pixel data, item delimiters, and the kept attributes
    # (they carry the realistic values of build_identified_ct instead).
    tags = [
        tag
        for tag, (vr, *_rest) in DicomDictionary.items()
        if tag >> 16 not in (0x0000, 0x0002, 0x7FE0, 0xFFFE) and tag not in KEEP_TAGS and vr != "NONE"
    ]
    assert len(tags) > 4000
    original, output, _ = check_every_attribute(tags)

    unlisted = [
        element.keyword
        for element in output
        if element.tag not in KEEP_TAGS and element.tag not in BASIC_PROFILE_ACTIONS and element.tag not in PIXEL_TAGS
    ]
    assert unlisted == []
    for keyword in (*KEPT_VALUES, *PIXEL_DESCRIPTION):
        assert output[keyword].value == original[keyword].value, keyword


# --- deidentify_dataset: the caller parsed the file --------------------------------------------


@pytest.mark.parametrize("name", ["CT_small.dcm", "MR_small_bigendian.dcm", "emri_small.dcm", "SC_rgb_rle.dcm"])
def test_deidentify_dataset_stores_the_file_deidentify_dicom_stores(name: str) -> None:
    data = corpus_bytes(name)

    from_dataset = deidentify_dataset(open_dataset(data), SECRET)

    assert from_dataset == deidentify_dicom(data, SECRET)


def test_pixels_the_caller_already_decoded_are_stored_as_uploaded() -> None:
    # The ingest gate decodes every image once before de-identification; RLE would not survive a
    # re-encode byte for byte.
    data = corpus_bytes("SC_rgb_rle.dcm")
    dataset = pydicom.dcmread(io.BytesIO(data))
    assert dataset.pixel_array.size > 0

    result = deidentify_dataset(dataset, SECRET)

    assert pixel_values(parse(result.data)) == pixel_values(parse(data))


def test_large_native_pixels_read_as_a_zero_copy_view_are_stored_byte_for_byte() -> None:
    pixels = np.random.default_rng(2).integers(-1024, 3000, (1024, 1024), dtype=np.int16)  # 2 MiB
    dataset = build_identified_ct()
    dataset.Rows, dataset.Columns = pixels.shape
    dataset.PixelData = pixels.tobytes()
    parsed = open_dataset(to_bytes(dataset))
    assert isinstance(parsed["PixelData"].value, memoryview)  # open_dataset's view, not a copy

    result = deidentify_dataset(parsed, SECRET)

    assert parse(result.data).PixelData == pixels.tobytes()


def test_deidentify_dataset_refuses_an_object_it_cannot_rewrite_and_an_empty_secret() -> None:
    dataset = build_identified_ct()
    dataset.file_meta = FileMetaDataset()  # no transfer syntax: the pixel data could not be written
    with pytest.raises(IngestError, match="no transfer syntax"):
        deidentify_dataset(dataset, SECRET)
    with pytest.raises(ValueError, match="secret must not be empty"):
        deidentify_dataset(build_identified_ct(), b"")


@pytest.mark.parametrize(
    "name",
    [
        "CT_small.dcm",  # rescale
        "MR-SIEMENS-DICOM-WithOverlays.dcm",  # windows with explanations
        "emri_small.dcm",  # enhanced multi-frame
        "eCT_Supplemental.dcm",  # functional groups, supplemental palette
        "liver_1frame.dcm",  # segmentation, functional groups
        "examples_palette.dcm",  # palette colour
        "gdcm-US-ALOKA-16.dcm",  # segmented palette
        "mlut_18.dcm",  # modality LUT
        "vlut_04.dcm",  # VOI LUT
        "SC_rgb_rle.dcm",  # colour, RLE
        "SC_rgb_jpeg.dcm",  # the file meta says explicit VR, the data set is implicit VR
    ],
)
def test_the_keep_list_is_enough_to_display_the_image_as_uploaded(name: str) -> None:
    # The allow-list must not drop what the display needs: frames, windows and LUTs stay identical.
    original = corpus_bytes(name)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        before = decode_dicom(original)
        after = decode_dicom(deidentify_dicom(original, SECRET).data)

    assert np.array_equal(after.frames, before.frames, equal_nan=True)
    assert (after.is_color, after.photometric_interpretation, after.modality) == (
        before.is_color,
        before.photometric_interpretation,
        before.modality,
    )
    assert after.default_window == before.default_window
    assert repr(after.voi_lut) == repr(before.voi_lut)
    # Window names are free text and go (KEEP_ATTRIBUTES); the windows themselves stay.
    assert [window for _, window in after.file_windows] == [window for _, window in before.file_windows]


# --- PHI removal -----------------------------------------------------------------------------


def test_built_dataset_leaves_no_identifying_value_in_the_stored_bytes() -> None:
    original = identified_ct_bytes()
    for value in PHI_VALUES:  # the test data really carries each value
        assert value.encode() in original, value

    result = deidentify_dicom(original, SECRET)

    leaked = [value for value in PHI_VALUES if value.encode() in result.data]
    assert leaked == []
    output = parse(result.data)
    assert output.PatientIdentityRemoved == "YES"
    assert DEIDENTIFICATION_METHOD in output.DeidentificationMethod
    assert [item.CodeValue for item in output.DeidentificationMethodCodeSequence] == ["113100"]
    assert output.DeidentificationMethodCodeSequence[0].CodingSchemeDesignator == "DCM"
    assert output.LongitudinalTemporalInformationModified == "REMOVED"


def test_private_tags_overlays_curves_and_icons_are_gone_at_every_depth() -> None:
    result = deidentify_dicom(identified_ct_bytes(), SECRET)

    output = parse(result.data)
    elements = all_elements(output)
    assert [element.tag for element in elements if element.tag.is_private] == []
    assert [element.tag for element in elements if element.tag.group & 0xFF00 in (0x5000, 0x6000)] == []
    assert "IconImageSequence" not in output
    # Top level: creator + 2 elements; inside ReferencedImageSequence: creator + 1 element.
    assert result.removed_private_tags == 5
    assert "ReferencedImageSequence" in output  # kept: it points at other images of the study


def test_names_and_ids_become_a_stable_pseudonym_and_dates_are_emptied() -> None:
    result = deidentify_dicom(identified_ct_bytes(), SECRET)

    output = parse(result.data)
    assert result.original_patient_id == "MRN-5551234"
    assert result.original_patient_name == "Doe^Johnathan"
    assert re.fullmatch(r"ANON-[0-9A-F]{10}", result.pseudonym_patient_id)
    assert output.PatientID == result.pseudonym_patient_id
    assert str(output.PatientName) == result.pseudonym_patient_id
    # Type 2 attributes stay, empty; the others are removed.
    assert output.PatientBirthDate == "" and output.StudyDate == "" and output.StudyTime == ""
    assert output.AccessionNumber == "" and output.StudyID == "" and output.ReferringPhysicianName == ""
    for keyword in ("SeriesDate", "AcquisitionDate", "AcquisitionDateTime", "StudyDescription", "ImageComments"):
        assert keyword not in output, keyword
    # Another study of the same patient gets the same pseudonym; another patient does not.
    other_study = build_identified_ct()
    other_study.StudyInstanceUID = "1.2.826.0.1.3680043.99.2"
    assert deidentify_dicom(to_bytes(other_study), SECRET).pseudonym_patient_id == result.pseudonym_patient_id
    other_patient = build_identified_ct()
    other_patient.PatientID = "MRN-0000001"
    assert deidentify_dicom(to_bytes(other_patient), SECRET).pseudonym_patient_id != result.pseudonym_patient_id


def test_objects_without_patient_id_get_one_pseudonym_per_study() -> None:
    # Mirrors the store: without a Patient ID each study is filed as its own patient.
    first = build_identified_ct()
    del first.PatientID
    second = build_identified_ct(sop_instance_uid=SECOND_SLICE_UID)
    del second.PatientID
    other_study = build_identified_ct()
    del other_study.PatientID
    other_study.StudyInstanceUID = "1.2.826.0.1.3680043.99.2"

    pseudonyms = [deidentify_dicom(to_bytes(dataset), SECRET).pseudonym_patient_id for dataset in (first, second)]
    assert pseudonyms[0] == pseudonyms[1]
    assert deidentify_dicom(to_bytes(other_study), SECRET).pseudonym_patient_id != pseudonyms[0]
    assert deidentify_dicom(to_bytes(first), SECRET).original_patient_id == ""


@pytest.mark.parametrize(
    ("name", "identifying_values"),
    [
        (
            "CT_small.dcm",
            [
                "CompressedSamples^CT1",
                "1CT1",  # Patient ID and Study ID
                "ABCD1234",  # other patient IDs, in a sequence
                "1234ABCD",
                "JFK IMAGING CENTER",
                "CT01_OC0",  # station name
                "20040119",
                "19970430",
                "GEMS_IDEN_01",  # private creators
                "GE_GENESIS_FF",
                "Uncompressed",  # image comments
                "1.3.6.1.4.1.5962",  # the UID root of the original site
            ],
        ),
        (
            "MR_small.dcm",
            ["CompressedSamples^MR1", "4MR1", "-0000200", "20040826", "185059", "1.3.6.1.4.1.5962", "CLUNIE1"],
        ),
    ],
)
def test_real_files_leave_no_identifying_value(name: str, identifying_values: list[str]) -> None:
    original = corpus_bytes(name)
    for value in identifying_values:
        assert value.encode() in original, value

    result = deidentify_dicom(original, SECRET)

    assert [value for value in identifying_values if value.encode() in result.data] == []
    output = parse(result.data)
    for keyword in ("InstitutionName", "StationName", "DeviceSerialNumber", "OperatorsName"):
        assert keyword not in output, keyword
    assert [element.tag for element in all_elements(output) if element.tag.is_private] == []
    assert output.PatientIdentityRemoved == "YES"


# --- UID remapping ---------------------------------------------------------------------------


def test_slices_of_one_series_deidentified_separately_stay_in_one_series() -> None:
    first = parse(deidentify_dicom(identified_ct_bytes(sop_instance_uid=FIRST_SLICE_UID), SECRET).data)
    second = parse(deidentify_dicom(identified_ct_bytes(sop_instance_uid=SECOND_SLICE_UID), SECRET).data)

    assert first.StudyInstanceUID == second.StudyInstanceUID != STUDY_UID
    assert first.SeriesInstanceUID == second.SeriesInstanceUID != SERIES_UID
    assert first.FrameOfReferenceUID == second.FrameOfReferenceUID != FRAME_OF_REFERENCE_UID
    assert first.SOPInstanceUID != second.SOPInstanceUID


def test_a_reference_in_a_sequence_follows_the_instance_it_points_at() -> None:
    first = deidentify_dicom(identified_ct_bytes(sop_instance_uid=FIRST_SLICE_UID), SECRET)
    second = deidentify_dicom(
        identified_ct_bytes(sop_instance_uid=SECOND_SLICE_UID, referenced_instance_uid=FIRST_SLICE_UID), SECRET
    )

    reference = parse(second.data).ReferencedImageSequence[0]
    assert reference.ReferencedSOPInstanceUID == parse(first.data).SOPInstanceUID
    assert reference.ReferencedSOPClassUID == CTImageStorage
    assert second.uid_map[FIRST_SLICE_UID] == first.uid_map[FIRST_SLICE_UID]


@pytest.mark.parametrize("transfer_syntax", [ExplicitVRLittleEndian, ImplicitVRLittleEndian])
def test_file_meta_matches_the_new_instance_and_registered_uids_are_kept(transfer_syntax: str) -> None:
    result = deidentify_dicom(identified_ct_bytes(transfer_syntax=transfer_syntax), SECRET)

    output = parse(result.data)
    assert result.data[128:132] == b"DICM"
    assert output.file_meta.MediaStorageSOPInstanceUID == output.SOPInstanceUID == result.uid_map[FIRST_SLICE_UID]
    assert output.file_meta.MediaStorageSOPClassUID == output.SOPClassUID == CTImageStorage
    assert output.file_meta.TransferSyntaxUID == transfer_syntax
    assert "SourceApplicationEntityTitle" not in output.file_meta


def test_registered_dicom_uids_are_kept_wherever_they_appear() -> None:
    # 1.2.840.10008.1.4.1.1 is a well-known frame of reference (Talairach): it names no patient.
    dataset = build_identified_ct()
    dataset.FrameOfReferenceUID = "1.2.840.10008.1.4.1.1"

    result = deidentify_dicom(to_bytes(dataset), SECRET)

    assert parse(result.data).FrameOfReferenceUID == "1.2.840.10008.1.4.1.1"
    assert "1.2.840.10008.1.4.1.1" not in result.uid_map


def test_instance_uid_only_in_the_file_meta_is_remapped_too() -> None:
    dataset = build_identified_ct()
    del dataset.SOPInstanceUID

    result = deidentify_dicom(to_bytes(dataset), SECRET)

    assert parse(result.data).file_meta.MediaStorageSOPInstanceUID == result.uid_map[FIRST_SLICE_UID]
    assert FIRST_SLICE_UID.encode() not in result.data


def test_uid_map_records_every_replaced_uid_and_no_original_uid_survives() -> None:
    original = identified_ct_bytes(referenced_instance_uid=SECOND_SLICE_UID)
    original_uids = instance_uids(parse(original))
    original_uids.discard("1.2.826.0.1.3680043.99.7.7")  # inside the private block: removed, not remapped

    result = deidentify_dicom(original, SECRET)

    assert set(result.uid_map) == original_uids
    assert [uid for uid in original_uids if uid.encode() in result.data] == []
    assert instance_uids(parse(result.data)) == set(result.uid_map.values())


@pytest.mark.parametrize("name", ["CT_small.dcm", "emri_small.dcm", "MR-SIEMENS-DICOM-WithOverlays.dcm"])
def test_every_new_uid_is_a_valid_dicom_uid(name: str) -> None:
    original = corpus_bytes(name)
    result = deidentify_dicom(original, SECRET)

    new_uids = instance_uids(parse(result.data))
    assert new_uids, "the file has instance UIDs to check"
    assert new_uids == set(result.uid_map.values())
    for uid in new_uids:
        assert len(uid) <= 64 and VALID_UID.match(uid), uid
    assert [uid for uid in instance_uids(parse(original)) if uid.encode() in result.data] == []


def test_a_different_secret_gives_different_uids_and_pseudonyms() -> None:
    data = identified_ct_bytes()
    ours = deidentify_dicom(data, SECRET)
    theirs = deidentify_dicom(data, b"another project")

    assert ours.uid_map.keys() == theirs.uid_map.keys()
    assert all(ours.uid_map[uid] != theirs.uid_map[uid] for uid in ours.uid_map)
    assert ours.pseudonym_patient_id != theirs.pseudonym_patient_id


def test_hashed_uid_mapper_follows_the_documented_formula_in_any_process() -> None:
    # Another worker only shares the secret, not a table: the formula itself must hold.
    mapper = hashed_uid_mapper(SECRET)
    assert mapper(STUDY_UID) == expected_uid(SECRET, STUDY_UID)
    assert hashed_uid_mapper(SECRET)(STUDY_UID) == mapper(STUDY_UID)
    assert mapper(STUDY_UID + "\x00") == mapper(STUDY_UID)  # UI padding is not part of the UID
    with pytest.raises(ValueError, match="secret must not be empty"):
        hashed_uid_mapper(b"")


# --- the stored file -------------------------------------------------------------------------


@pytest.mark.parametrize(
    "name",
    [
        "CT_small.dcm",
        "MR_small.dcm",
        "emri_small.dcm",  # enhanced multi-frame, functional group sequences
        "MR_small_bigendian.dcm",
        "image_dfl.dcm",  # deflated
        "SC_rgb_rle.dcm",  # RLE, encapsulated
        "MR-SIEMENS-DICOM-WithOverlays.dcm",
    ],
)
def test_pixel_data_is_byte_identical_and_the_output_passes_the_import_gate(name: str) -> None:
    original = corpus_bytes(name)
    result = deidentify_dicom(original, SECRET)

    assert pixel_values(parse(result.data)) == pixel_values(parse(original))
    info = read_dicom(result.data, LIMITS)
    assert info.patient_id == result.pseudonym_patient_id
    assert info.sop_instance_uid == parse(result.data).SOPInstanceUID


def test_a_jpeg2000_frame_loses_its_comment_and_nothing_else() -> None:
    # JPEG 2000 over 1 MiB (its pixel data is read as a zero-copy view first), written by Kakadu,
    # which leaves a comment naming itself: a comment segment could name anyone.
    from pydicom.encaps import generate_frames

    original = corpus_bytes("RG1_J2KR.dcm")
    comment = b"\xff\x64\x00\x0e\x00\x01Kakadu-2.2"  # COM, length 14, Rcom 1 (Latin text)
    [frame] = generate_frames(parse(original).PixelData, number_of_frames=1)
    assert frame.count(comment) == 1

    result = deidentify_dicom(original, SECRET)

    [stored] = generate_frames(parse(result.data).PixelData, number_of_frames=1)
    assert stored == frame.replace(comment, b"")  # the coded data as uploaded: not re-encoded
    info = read_dicom(result.data, LIMITS)
    assert info.patient_id == result.pseudonym_patient_id


def test_overlay_corpus_file_loses_its_overlay_planes() -> None:
    original = parse(corpus_bytes("MR-SIEMENS-DICOM-WithOverlays.dcm"))
    assert any(element.tag.group == 0x6000 for element in original)

    output = parse(deidentify_dicom(corpus_bytes("MR-SIEMENS-DICOM-WithOverlays.dcm"), SECRET).data)
    assert [element.tag for element in output if element.tag.group & 0xFF00 == 0x6000] == []


def test_deidentifying_twice_does_not_repeat_the_method_record() -> None:
    once = deidentify_dicom(identified_ct_bytes(), SECRET)
    twice = parse(deidentify_dicom(once.data, SECRET).data)

    assert twice.DeidentificationMethod == DEIDENTIFICATION_METHOD
    assert [item.CodeValue for item in twice.DeidentificationMethodCodeSequence] == ["113100"]


def test_legacy_object_without_preamble_comes_out_as_a_part_10_file() -> None:
    dataset = build_identified_ct(transfer_syntax=ImplicitVRLittleEndian)
    buffer = io.BytesIO()
    dataset.save_as(buffer, implicit_vr=True, little_endian=True)  # no preamble, no file meta
    legacy = buffer.getvalue()
    assert legacy[128:132] != b"DICM"

    result = deidentify_dicom(legacy, SECRET)

    assert result.data[:128] == b"\x00" * 128 and result.data[128:132] == b"DICM"
    assert parse(result.data).file_meta.MediaStorageSOPInstanceUID == result.uid_map[FIRST_SLICE_UID]
    assert b"Doe^Johnathan" not in result.data
    read_dicom(result.data, LIMITS)


def test_preamble_is_zeroed() -> None:
    # The 128-byte preamble is free for applications (TIFF dual-format files use it): anything may be there.
    dataset = build_identified_ct()
    dataset.preamble = b"Doe^Johnathan MRN-5551234".ljust(128, b"\x00")
    original = to_bytes(dataset)
    assert original.startswith(b"Doe^Johnathan")

    result = deidentify_dicom(original, SECRET)

    assert result.data[:128] == b"\x00" * 128


@pytest.mark.parametrize("data", [b"", b"not a dicom file at all", b"\x00" * 128 + b"DICM" + b"\xff" * 10])
def test_unreadable_input_raises_ingest_error(data: bytes) -> None:
    with pytest.raises(IngestError):
        deidentify_dicom(data, SECRET)


def test_an_empty_secret_is_refused_before_anything_is_written() -> None:
    with pytest.raises(ValueError, match="secret must not be empty"):
        deidentify_dicom(identified_ct_bytes(), b"")


# --- burned-in annotation --------------------------------------------------------------------


def build_image(sop_class_uid: str, modality: str, burned_in: str | None) -> bytes:
    dataset = build_identified_ct()
    dataset.SOPClassUID = sop_class_uid
    dataset.file_meta.MediaStorageSOPClassUID = sop_class_uid
    dataset.Modality = modality
    if burned_in is not None:
        dataset.BurnedInAnnotation = burned_in
    return to_bytes(dataset)


@pytest.mark.parametrize(
    ("sop_class_uid", "modality", "burned_in", "flagged"),
    [
        (CTImageStorage, "CT", "YES", True),
        (CTImageStorage, "CT", None, False),
        (CTImageStorage, "CT", "NO", False),
        (SecondaryCaptureImageStorage, "OT", None, True),  # SC by SOP class
        (CTImageStorage, "SC", None, True),  # SC by modality
        (UltrasoundImageStorage, "US", None, True),
        (UltrasoundImageStorage, "US", "NO", False),  # the device says the pixels are clean
    ],
)
def test_burned_in_annotation_flags_images_for_review(
    sop_class_uid: str, modality: str, burned_in: str | None, flagged: bool
) -> None:
    result = deidentify_dicom(build_image(sop_class_uid, modality, burned_in), SECRET)

    assert result.needs_burned_in_review is flagged
    if burned_in is not None:  # kept, so the reader sees it too
        assert parse(result.data).BurnedInAnnotation == burned_in


@pytest.mark.parametrize("deidentify", [True, False])
def test_png_and_jpeg_uploads_are_flagged_like_secondary_capture(store, deidentify: bool) -> None:
    # A PNG or JPEG is a screenshot or a photographed film: secondary capture, which very often shows
    # the patient's name in its pixels. Flagged as SC DICOM without BurnedInAnnotation is, that is
    # when de-identification is on (off, the store keeps originals and flags only what says "YES").
    from medreview.ingest import InputFile, ingest_files
    from medreview.reading.catalog import get_image
    from medreview.reading.reads import LOCAL_ACTOR
    from medreview.team.settings import set_setting
    from tests.helpers import jpeg_bytes, png_bytes

    set_setting(store, LOCAL_ACTOR, "deidentify", deidentify)
    files = [
        InputFile("screenshot.png", png_bytes(seed=11)),
        InputFile("film-photo.jpg", jpeg_bytes(seed=12)),
        InputFile("capture.dcm", build_image(SecondaryCaptureImageStorage, "OT", None)),
        InputFile("scan.dcm", identified_ct_bytes(sop_instance_uid=SECOND_SLICE_UID)),
    ]

    results = ingest_files(store, LOCAL_ACTOR, files)

    assert [result.status for result in results] == ["stored"] * 4
    flags = [get_image(store, LOCAL_ACTOR, result.image_id).burned_in_annotation for result in results]
    assert flags == [deidentify, deidentify, deidentify, False]


# --- PNG / JPEG ------------------------------------------------------------------------------


def test_jpeg_exif_with_a_patient_name_is_stripped() -> None:
    pixels = np.random.default_rng(0).integers(0, 255, (32, 32), dtype=np.uint8)
    exif = Image.Exif()
    exif[0x010E] = "Doe^Johnathan chest PA"  # ImageDescription
    exif[0x013B] = "Dr Gregory House"  # Artist
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, format="JPEG", exif=exif.tobytes(), quality=95)
    original = buffer.getvalue()
    assert b"Doe^Johnathan" in original and b"Gregory House" in original

    stripped = strip_raster_metadata(original)

    assert b"Doe^Johnathan" not in stripped and b"Gregory House" not in stripped
    with Image.open(io.BytesIO(stripped)) as image, Image.open(io.BytesIO(original)) as before:
        assert np.array_equal(np.asarray(image), np.asarray(before))


def test_png_text_chunk_with_a_patient_name_is_stripped() -> None:
    pixels = np.random.default_rng(1).integers(0, 255, (32, 32), dtype=np.uint8)
    text = PngImagePlugin.PngInfo()
    text.add_text("Patient", "Doe^Johnathan")
    text.add_text("Comment", "MRN-5551234", zip=True)  # zTXt: compressed, invisible to a byte search
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, format="PNG", pnginfo=text)
    original = buffer.getvalue()
    assert b"Doe^Johnathan" in original
    with Image.open(io.BytesIO(original)) as before:
        assert before.text == {"Patient": "Doe^Johnathan", "Comment": "MRN-5551234"}

    stripped = strip_raster_metadata(original)

    assert b"Doe^Johnathan" not in stripped
    assert b"tEXt" not in stripped and b"zTXt" not in stripped and b"iTXt" not in stripped
    with Image.open(io.BytesIO(stripped)) as image:
        assert image.text == {}
        assert np.array_equal(np.asarray(image), pixels)


def test_raster_that_is_not_an_image_is_refused() -> None:
    with pytest.raises(IngestError):
        strip_raster_metadata(b"<svg></svg>")


# --- kept values: a kept attribute keeps its value only when that value cannot name anyone -----


def deidentified(dataset: Dataset) -> tuple[DeidResult, Dataset]:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # pydicom warns about the invalid values these tests write
        result = deidentify_dicom(to_bytes(dataset), SECRET)
    return result, parse(result.data)


@pytest.mark.parametrize(
    ("modality", "stored"),
    [("CT", "CT"), ("DX", "DX"), ("SC", "SC"), ("ZZ...SMITH", "OT"), ("DOE", "OT"), ("CT\\DOE", "OT")],
)
def test_a_modality_outside_the_defined_terms_becomes_ot(modality: str, stored: str) -> None:
    # "ZZ...SMITH" once reached the series table, the display name, the worklist filter and exports.
    dataset = build_identified_ct()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # pydicom warns about the invalid code string
        dataset.Modality = modality

    result, output = deidentified(dataset)

    assert output.Modality == stored
    assert result.modality == stored  # what the store files the series under


def test_the_modality_terms_cover_pydicoms_code_dictionary() -> None:
    from pydicom.sr.codedict import codes

    from medreview.ingest.defined_terms import MODALITY_TERMS

    for collection in (codes.cid29, codes.cid33):
        assert {getattr(collection, name).value for name in collection.dir()} <= MODALITY_TERMS


@pytest.mark.parametrize(
    ("vr", "value", "kept"),
    [
        ("CS", "CHEST", True),
        ("CS", "LSPINE", True),
        ("CS", "CHEST DOE", False),
        ("CS", "19610314", False),  # the birth date
        ("UN", b"19610314", False),  # as raw bytes, the way the review found it
        ("CS", "PHANTOM OF DOE", False),
    ],
)
def test_body_part_examined_outside_the_defined_terms_is_removed(vr: str, value: object, kept: bool) -> None:
    dataset = build_identified_ct()
    dataset.add_new(0x00180015, vr, value)

    result, output = deidentified(dataset)

    assert ("BodyPartExamined" in output) is kept
    if kept:
        assert output.BodyPartExamined == value
    else:
        assert b"19610314" not in result.data and b"DOE" not in result.data


@pytest.mark.parametrize(
    ("image_type", "stored"),
    [
        (["ORIGINAL", "PRIMARY", "AXIAL"], ["ORIGINAL", "PRIMARY", "AXIAL"]),
        (["DERIVED", "SECONDARY", "MPR", "CT_SOM5 SPI"], ["DERIVED", "SECONDARY", "MPR", "CT_SOM5 SPI"]),
        (["DOE", "JOHNATHAN", "AXIAL"], ["DERIVED", "SECONDARY", "AXIAL"]),
        (["ORIGINAL", "PRIMARY", "AXIAL", "MRN5551234", "JOHNATHAN"], ["ORIGINAL", "PRIMARY", "AXIAL"]),
    ],
)
def test_image_type_keeps_defined_terms_and_loses_values_naming_the_patient(
    image_type: list[str], stored: list[str]
) -> None:
    # Values 1 and 2 are enumerated; a value beyond them that names the patient goes.
    dataset = build_identified_ct()
    dataset.ImageType = image_type

    result, output = deidentified(dataset)

    assert list(output.ImageType) == stored
    assert b"JOHNATHAN" not in result.data and b"5551234" not in result.data


@pytest.mark.parametrize(
    ("keyword", "value"),
    [
        ("ConvolutionKernel", "B30f DOE"),  # a name part
        ("ConvolutionKernel", "KJOHNATHAN"),  # inside a word
        ("FilterType", "MRN-5551234"),  # the patient ID
        ("FilterType", "F 5551234"),  # part of the ID
        ("RescaleType", "HU 1961-03-14"),  # the birth date, written another way
        ("RescaleType", "ACC-20240131-42"),  # the accession number
        ("ScanOptions", "HOUSE"),  # the referring physician
        ("PatientPosition", "HFS 20240131"),  # the study date
        ("ImagedNucleus", "JANET"),  # the mother's birth name
    ],
)
def test_a_kept_descriptor_holding_an_identifying_token_is_dropped(keyword: str, value: str) -> None:
    dataset = build_identified_ct()
    setattr(dataset, keyword, value)

    result, output = deidentified(dataset)

    assert keyword not in output
    assert value.encode() not in result.data


@pytest.mark.parametrize(
    ("keyword", "value"),
    [
        ("ConvolutionKernel", "B30f"),
        ("ConvolutionKernel", "STANDARD"),
        ("FilterType", "BODY FILTER"),
        ("RescaleType", "HU"),
        ("PatientPosition", "HFS"),
    ],
)
def test_a_kept_descriptor_without_an_identifying_token_is_kept(keyword: str, value: str) -> None:
    dataset = build_identified_ct()
    setattr(dataset, keyword, value)

    _, output = deidentified(dataset)

    assert output[keyword].value == value


def test_a_kept_number_that_is_not_a_number_is_dropped() -> None:
    dataset = build_identified_ct()
    dataset.KVP = 120
    # pydicom refuses to build such a value: write the element's bytes as a scanner would.
    text = b"5551234 Doe "
    dataset[0x00181151] = RawDataElement(Tag(0x00181151), "IS", len(text), text, 0, False, True)  # XRayTubeCurrent
    dataset.SliceThickness = "1.25"

    result, output = deidentified(dataset)

    assert "XRayTubeCurrent" not in output and b"Doe" not in result.data
    assert output.KVP == 120 and output.SliceThickness == 1.25


def test_a_kept_attribute_written_with_another_value_representation_is_dropped() -> None:
    # AcquisitionMatrix is four unsigned shorts; as text it could say anything.
    dataset = build_identified_ct()
    dataset.add_new(0x00181310, "LO", "Doe^Johnathan")

    result, output = deidentified(dataset)

    assert "AcquisitionMatrix" not in output
    assert b"Doe^Johnathan" not in result.data


def test_an_earlier_deidentification_record_is_replaced_by_a_fresh_one() -> None:
    dataset = build_identified_ct()
    dataset.DeidentificationMethod = ["Anonymised by Dr Smith", "for the Doe study"]
    earlier = code_item("SMITH-1", "De-identified by Dr Smith")
    dataset.DeidentificationMethodCodeSequence = Sequence([earlier])
    dataset.PatientIdentityRemoved = "NO DOE"
    dataset.LongitudinalTemporalInformationModified = "DOE"

    result, output = deidentified(dataset)

    assert b"Smith" not in result.data and b"SMITH" not in result.data and b"DOE" not in result.data
    assert output.DeidentificationMethod == DEIDENTIFICATION_METHOD
    [code] = output.DeidentificationMethodCodeSequence
    assert (code.CodeValue, code.CodingSchemeDesignator, code.CodeMeaning) == (
        "113100",
        "DCM",
        "Basic Application Confidentiality Profile",
    )
    assert output.PatientIdentityRemoved == "YES"
    assert output.LongitudinalTemporalInformationModified == "REMOVED"


def test_code_values_outside_the_deidentification_record_are_removed() -> None:
    dataset = build_identified_ct()
    dataset.CodeValue = "DOE-TOP"
    dataset.CodingSchemeDesignator = "99DOE"
    dataset.CodeMeaning = "Top level meaning naming Doe"
    reference = dataset.ReferencedImageSequence[0]
    reference.CodeValue = "DOE-REF"
    reference.CodeMeaning = "Reference meaning naming Doe"
    source = Dataset()
    source.ReferencedSOPClassUID = CTImageStorage
    source.ReferencedSOPInstanceUID = SECOND_SLICE_UID
    source.CodeValue = "DOE-SRC"
    source.CodeMeaning = "Source meaning naming Doe"
    dataset.SourceImageSequence = Sequence([source])

    result, output = deidentified(dataset)

    assert b"naming Doe" not in result.data and b"DOE-" not in result.data
    assert "CodeValue" not in output and "CodeMeaning" not in output
    for item in (output.ReferencedImageSequence[0], output.SourceImageSequence[0]):
        assert "CodeValue" not in item and "CodeMeaning" not in item
        assert item.ReferencedSOPClassUID == CTImageStorage  # the references themselves stay


@pytest.mark.parametrize(
    ("keyword", "uid", "registered"),
    [
        ("FrameOfReferenceUID", "1.2.840.10008.1.4.1.1", True),  # Talairach: a well-known frame
        ("FrameOfReferenceUID", "1.2.840.10008.19610314.5551234", False),  # under the root, not issued
        ("SOPClassUID", "1.2.840.10008.5.1.4.1.1.2.5551234", False),
    ],
)
def test_only_uids_in_pydicoms_dictionary_count_as_registered(keyword: str, uid: str, registered: bool) -> None:
    dataset = build_identified_ct()
    setattr(dataset, keyword, uid)
    if keyword == "SOPClassUID":
        dataset.file_meta.MediaStorageSOPClassUID = uid

    result, output = deidentified(dataset)

    assert (output[keyword].value == uid) is registered
    assert (uid.encode() in result.data) is registered
    if not registered:
        assert output[keyword].value == result.uid_map[uid] == expected_uid(SECRET, uid)
    # The file meta names the class the data set names.
    assert output.file_meta.MediaStorageSOPClassUID == output.SOPClassUID


@pytest.mark.parametrize(
    ("pixels", "stored_length"),
    [
        (np.arange(16, dtype=np.int16).reshape(4, 4), 32),
        (np.arange(9, dtype=np.uint8).reshape(3, 3), 10),  # 9 bytes and one of padding
    ],
)
def test_pixel_bytes_beyond_what_the_header_implies_are_cut(pixels: np.ndarray, stored_length: int) -> None:
    dataset = build_identified_ct()
    dataset.Rows, dataset.Columns = pixels.shape
    bits = pixels.dtype.itemsize * 8
    dataset.BitsAllocated = dataset.BitsStored = bits
    dataset.HighBit = bits - 1
    dataset.PixelRepresentation = int(pixels.dtype.kind == "i")
    dataset.PixelData = pixels.tobytes() + b"Doe^Johnathan 19610314 "

    result, output = deidentified(dataset)

    assert b"19610314" not in result.data
    assert len(output.PixelData) == stored_length
    assert output.PixelData == pixels.tobytes().ljust(stored_length, b"\x00")
    assert np.array_equal(output.pixel_array, pixels)


def jpeg_segment(marker: int, payload: bytes) -> bytes:
    return bytes((0xFF, marker)) + struct.pack(">H", len(payload) + 2) + payload


def identified_jpeg(pixels: np.ndarray, index: int = 0) -> bytes:
    """A baseline JPEG with identifiers in a COM segment, EXIF (Artist), text appended to the JFIF
    APP0 segment's fields, and an Adobe APP14 segment with text after its fields."""
    exif = Image.Exif()
    exif[0x013B] = f"Dr Gregory House {index}"  # Artist
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, format="JPEG", exif=exif.tobytes(), comment=b"COM Doe^Johnathan", quality=90)
    data = buffer.getvalue()
    assert data[2:4] == b"\xff\xe0"  # Pillow writes JFIF first
    (length,) = struct.unpack(">H", data[4:6])
    jfif = data[6 : 4 + length]
    adobe = b"Adobe" + struct.pack(">HHHB", 100, 0, 0, 0) + b" Adobe text MRN-5551234"
    return data[:2] + jpeg_segment(0xE0, jfif + b" JFIF text 19610314") + jpeg_segment(0xEE, adobe) + data[4 + length :]


JPEG_MARKERS = [b"COM Doe^Johnathan", b"Gregory House", b"MRN-5551234", b"19610314", b"JFIF text", b"Adobe text"]


def jpeg_dicom(frames: list[bytes], shape: tuple[int, int], offsets: str = "basic") -> bytes:
    """The identified CT header over 8-bit JPEG baseline frames, with a basic offset table, none,
    or an extended offset table."""
    from pydicom.encaps import encapsulate, encapsulate_extended
    from pydicom.uid import JPEGBaseline8Bit

    dataset = build_identified_ct(transfer_syntax=JPEGBaseline8Bit)
    dataset.Rows, dataset.Columns = shape
    dataset.BitsAllocated = dataset.BitsStored = 8
    dataset.HighBit = 7
    dataset.PixelRepresentation = 0
    dataset.NumberOfFrames = len(frames)
    if offsets == "extended":
        pixel_data, table, lengths = encapsulate_extended(frames)
        dataset.ExtendedOffsetTable = table
        dataset.ExtendedOffsetTableLengths = lengths
    else:
        pixel_data = encapsulate(frames, has_bot=offsets == "basic")
    dataset.PixelData = pixel_data
    dataset["PixelData"].VR = "OB"
    dataset["PixelData"].is_undefined_length = True
    return to_bytes(dataset)


@pytest.mark.parametrize("offsets", ["basic", "none", "extended"])
def test_jpeg_frames_inside_dicom_lose_comments_and_application_segments(offsets: str) -> None:
    rng = np.random.default_rng(3)
    frames = [rng.integers(0, 255, (16, 24), dtype=np.uint8) for _ in range(3)]
    original = jpeg_dicom([identified_jpeg(frame, index) for index, frame in enumerate(frames)], (16, 24), offsets)
    assert all(marker in original for marker in JPEG_MARKERS)

    result = deidentify_dicom(original, SECRET)

    assert [marker for marker in JPEG_MARKERS if marker in result.data] == []
    # Not re-encoded: the same entropy-coded data, so the same pixels.
    assert np.array_equal(decode_dicom(result.data).frames, decode_dicom(original).frames)
    output = parse(result.data)
    assert output.file_meta.TransferSyntaxUID == original_syntax(original)
    if offsets == "extended":
        assert "ExtendedOffsetTable" in output
    read_dicom(result.data, LIMITS)


def original_syntax(data: bytes) -> str:
    return parse(data).file_meta.TransferSyntaxUID


def test_a_jfif_frame_without_extra_segments_is_stored_byte_for_byte() -> None:
    # Nothing to strip: the pixel data element is the upload's.
    rng = np.random.default_rng(4)
    buffer = io.BytesIO()
    Image.fromarray(rng.integers(0, 255, (16, 16), dtype=np.uint8)).save(buffer, format="JPEG")
    original = jpeg_dicom([buffer.getvalue()], (16, 16))

    result = deidentify_dicom(original, SECRET)

    assert pixel_values(parse(result.data)) == pixel_values(parse(original))


def test_jpeg_ls_frames_inside_dicom_lose_their_comments() -> None:
    import jpeg_ls
    from pydicom.encaps import encapsulate
    from pydicom.uid import JPEGLSLossless

    pixels = (np.arange(16 * 16, dtype=np.uint16).reshape(16, 16) * 13) % 4096
    codestream = bytes(jpeg_ls.encode_array(pixels))
    assert codestream[:2] == b"\xff\xd8"
    codestream = codestream[:2] + jpeg_segment(0xFE, b"COM Doe^Johnathan") + codestream[2:]
    dataset = build_identified_ct(transfer_syntax=JPEGLSLossless)
    dataset.PixelRepresentation = 0
    dataset.BitsStored = 12
    dataset.HighBit = 11
    dataset.Rows = dataset.Columns = 16
    dataset.PixelData = encapsulate([codestream])
    dataset["PixelData"].VR = "OB"
    dataset["PixelData"].is_undefined_length = True
    original = to_bytes(dataset)

    result = deidentify_dicom(original, SECRET)

    assert b"Doe^Johnathan" not in result.data
    assert np.array_equal(parse(result.data).pixel_array, pixels)


def with_jpeg2000_comments(codestream: bytes) -> bytes:
    """Comments with identifiers in the main header (after SIZ) and in the first tile-part's header
    (its length, Psot, grown to match), and text after the end-of-codestream marker."""
    assert codestream[:4] == b"\xff\x4f\xff\x51"
    (siz_length,) = struct.unpack_from(">H", codestream, 4)
    after_siz = 4 + siz_length
    main_comment = jpeg_segment(0x64, b"\x00\x01COM Doe^Johnathan")  # Rcom 1: Latin text
    codestream = codestream[:after_siz] + main_comment + codestream[after_siz:]
    sot = codestream.index(b"\xff\x90")
    tile_comment = jpeg_segment(0x64, b"\x00\x01tile COM MRN-5551234")
    (tile_part_length,) = struct.unpack_from(">I", codestream, sot + 6)
    sot_segment = bytearray(codestream[sot : sot + 12])
    struct.pack_into(">I", sot_segment, 6, tile_part_length + len(tile_comment))
    codestream = codestream[:sot] + bytes(sot_segment) + tile_comment + codestream[sot + 12 :]
    return codestream + b"after EOC 19610314"


JPEG2000_MARKERS = [b"COM Doe^Johnathan", b"tile COM MRN-5551234", b"after EOC 19610314", b"OpenJPEG"]


@pytest.mark.parametrize(("codec_format", "add_tlm"), [(0, False), (0, True), (1, False)], ids=["j2k", "tlm", "jp2"])
def test_jpeg2000_frames_inside_dicom_lose_their_comments(codec_format: int, add_tlm: bool) -> None:
    import openjpeg
    from pydicom.encaps import encapsulate
    from pydicom.uid import JPEG2000Lossless

    pixels = (np.arange(64 * 80, dtype=np.uint16).reshape(64, 80) * 5) % 4096
    encoded = bytes(openjpeg.encode(pixels, bits_stored=12, codec_format=codec_format, add_tlm=add_tlm))
    if codec_format == 0:
        frame = with_jpeg2000_comments(encoded)
    else:  # a JP2 file around the codestream (DICOM forbids the wrapper; some writers add it)
        start = encoded.index(b"jp2c") + 4
        frame = encoded[: start - 8] + struct.pack(">I", 0) + b"jp2c" + with_jpeg2000_comments(encoded[start:])
    dataset = build_identified_ct(transfer_syntax=JPEG2000Lossless)
    dataset.Rows, dataset.Columns = pixels.shape
    dataset.PixelRepresentation = 0
    dataset.BitsStored = 12
    dataset.HighBit = 11
    dataset.PixelData = encapsulate([frame])
    dataset["PixelData"].VR = "OB"
    dataset["PixelData"].is_undefined_length = True
    original = to_bytes(dataset)
    assert all(marker in original for marker in JPEG2000_MARKERS)
    hounsfield = pixels.astype(np.float32) - 1024  # the header's rescale
    assert np.array_equal(decode_dicom(original).frames[0], hounsfield)  # the comments decode as they are

    result = deidentify_dicom(original, SECRET)

    assert [marker for marker in JPEG2000_MARKERS if marker in result.data] == []
    assert np.array_equal(decode_dicom(result.data).frames[0], hounsfield)
    read_dicom(result.data, LIMITS)
