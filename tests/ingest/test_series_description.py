"""Series told apart without their free text: de-identification removes Series Description and
Protocol Name, and the series is described from coded values and geometry instead (body part,
view, plane, kind of image, slice thickness, contrast)."""

from __future__ import annotations

import pytest
from pydicom.dataset import Dataset
from pydicom.sequence import Sequence

from medreview.ingest import InputFile, ingest_files
from medreview.ingest.deid import deidentify_dicom, series_description
from medreview.reading.browse import series_list
from medreview.reading.reads import LOCAL_ACTOR
from medreview.store.models import Study
from tests.ingest.test_deid import SECRET, build_identified_ct, parse, to_bytes

AXIAL = [1.0, 0.0, 0.0, 0.0, 1.0, 0.0]
CORONAL = [1.0, 0.0, 0.0, 0.0, 0.0, -1.0]
SAGITTAL = [0.0, 1.0, 0.0, 0.0, 0.0, -1.0]
OBLIQUE = [1.0, 0.0, 0.0, 0.0, 0.7071, -0.7071]


def ct_series(series_uid: str, instance: int, **values: object) -> Dataset:
    """A CT slice of study 99.1 whose free text names the patient ("Doe", "Johnathan")."""
    dataset = build_identified_ct(sop_instance_uid=f"{series_uid}.{instance}")
    dataset.SeriesInstanceUID = series_uid
    dataset.SeriesNumber = 2
    dataset.SeriesDescription = "Thorax Doe 1.25 B31f"
    dataset.ProtocolName = "Johnathan chest protocol"
    dataset.BodyPartExamined = "CHEST"
    for keyword, value in values.items():
        setattr(dataset, keyword, value)
    return dataset


@pytest.mark.parametrize(
    ("values", "described"),
    [
        ({"ImageOrientationPatient": AXIAL, "SliceThickness": "1.25", "ContrastBolusAgent": "Omnipaque 350 Doe"},
         "chest axial 1.25 mm with contrast"),
        ({"ImageOrientationPatient": CORONAL, "SliceThickness": "3.000", "ContrastBolusAgent": "NONE"},
         "chest coronal 3 mm"),
        ({"ImageOrientationPatient": SAGITTAL, "SliceThickness": "2", "ImageType": ["DERIVED", "SECONDARY", "MPR"]},
         "chest sagittal MPR 2 mm"),
        ({"ImageOrientationPatient": OBLIQUE}, "chest oblique"),
        ({"ImageType": ["ORIGINAL", "PRIMARY", "LOCALIZER"], "ViewPosition": "AP"}, "chest AP localizer"),
        ({"BodyPartExamined": "Doe chest", "ViewPosition": "Johnathan"}, ""),  # not defined terms: nothing
    ],
)  # fmt: skip
def test_a_series_is_described_by_coded_values_and_geometry_never_its_free_text(
    values: dict[str, object], described: str
) -> None:
    result = deidentify_dicom(to_bytes(ct_series("1.2.826.0.1.3680043.99.1.1.2", 1, **values)), SECRET)

    assert result.series_description == described
    output = parse(result.data)
    assert "SeriesDescription" not in output and "ProtocolName" not in output
    assert "Doe" not in result.series_description and "Johnathan" not in result.series_description


def test_an_enhanced_object_is_described_from_its_shared_functional_groups() -> None:
    dataset = Dataset()
    dataset.BodyPartExamined = "HEAD"
    orientation, measures, shared = Dataset(), Dataset(), Dataset()
    orientation.ImageOrientationPatient = SAGITTAL
    measures.SliceThickness = "0.9"
    shared.PlaneOrientationSequence = Sequence([orientation])
    shared.PixelMeasuresSequence = Sequence([measures])
    dataset.SharedFunctionalGroupsSequence = Sequence([shared])

    assert series_description(dataset) == "head sagittal 0.9 mm"


def test_two_series_with_one_number_are_filed_with_descriptions_that_tell_them_apart(store) -> None:
    thin = [
        ct_series("1.2.826.0.1.3680043.99.1.1.2", number, ImageOrientationPatient=AXIAL, SliceThickness="1.25")
        for number in (1, 2, 3)
    ]
    thick = [
        ct_series("1.2.826.0.1.3680043.99.1.1.3", number, ImageOrientationPatient=CORONAL, SliceThickness="5")
        for number in (1, 2)
    ]
    uploads = [InputFile(f"slice{index}.dcm", to_bytes(dataset)) for index, dataset in enumerate(thin + thick)]
    assert {result.status for result in ingest_files(store, LOCAL_ACTOR, uploads)} == {"stored"}

    with store.db.read() as session:
        [study_id] = [study.id for study in session.query(Study)]
    listed = series_list(store, study_id)
    assert listed["series_number"].tolist() == [2, 2]
    assert sorted(zip(listed["description"], listed["images"], strict=True)) == [
        ("chest axial 1.25 mm", 3),
        ("chest coronal 5 mm", 2),
    ]
