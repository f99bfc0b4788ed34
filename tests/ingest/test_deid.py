"""deidentify_dicom / strip_raster_metadata: what leaves the import must not identify the patient.

Every PHI check searches the bytes that would be stored, not a parsed view of them, so a value that
survives anywhere (a nested sequence, the file meta, a private block) fails the test.
"""

from __future__ import annotations

import hashlib
import hmac
import io
import re

import numpy as np
import pydicom
import pytest
from PIL import Image, PngImagePlugin
from pydicom.datadict import tag_for_keyword
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.sequence import Sequence
from pydicom.uid import (
    CTImageStorage,
    ExplicitVRLittleEndian,
    ImplicitVRLittleEndian,
    SecondaryCaptureImageStorage,
    UltrasoundImageStorage,
)

from medreview.config import IngestLimits
from medreview.errors import IngestError
from medreview.ingest.deid import (
    BASIC_PROFILE_ACTIONS,
    DEIDENTIFICATION_METHOD,
    deidentify_dicom,
    hashed_uid_mapper,
    strip_raster_metadata,
)
from medreview.ingest.dicom import read_dicom
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


# --- the action table ------------------------------------------------------------------------


def test_action_table_names_real_attributes_with_known_actions() -> None:
    # A misspelt keyword would silently leave its attribute in every stored file.
    unknown = [keyword for keyword in BASIC_PROFILE_ACTIONS if tag_for_keyword(keyword) is None]
    assert unknown == []
    assert set(BASIC_PROFILE_ACTIONS.values()) <= {"X", "Z", "D", "U", "K"}


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
        "RG1_J2KR.dcm",  # JPEG 2000, over 1 MiB: pixel data is read as a zero-copy view
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
