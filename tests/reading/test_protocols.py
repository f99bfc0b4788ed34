"""Hanging protocols: the shipped defaults hang CT, MR brain, a chest film with its prior and a
4-view mammogram from the facts a de-identified store keeps; a study no rule matches opens 1x1; a
bad rule is refused with a message that names the protocol, the viewport and the field."""

from __future__ import annotations

import io

import numpy as np
import pydicom
import pytest
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import ExplicitVRLittleEndian, generate_uid

from medreview.ingest import InputFile, ingest_files
from medreview.reading.protocols import (
    DEFAULT_PROTOCOLS,
    ProtocolError,
    SeriesFacts,
    StudyFacts,
    hang,
    hanging_for_study,
    mr_weighting,
    series_facts,
    study_facts,
    validate_protocols,
)
from medreview.reading.reads import LOCAL_ACTOR
from medreview.store.models import Image, Series
from medreview.team.settings import get_setting, set_setting
from tests.helpers import corpus_file

AXIAL = [1, 0, 0, 0, 1, 0]
SAGITTAL = [0, 1, 0, 0, 0, -1]


def header_dicom(
    *,
    patient_id: str,
    study_uid: str,
    series_uid: str,
    modality: str,
    series_number: int,
    instance_number: int = 1,
    study_date: str = "20240105",
    **attributes: object,
) -> bytes:
    """A small valid DICOM file with the header attributes a protocol looks at."""
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = "1.2.840.10008.5.1.4.1.1.7"
    meta.MediaStorageSOPInstanceUID = generate_uid()
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    dataset = Dataset()
    dataset.file_meta = meta
    dataset.SOPClassUID = meta.MediaStorageSOPClassUID
    dataset.SOPInstanceUID = meta.MediaStorageSOPInstanceUID
    dataset.StudyInstanceUID, dataset.SeriesInstanceUID = study_uid, series_uid
    dataset.PatientID, dataset.PatientName = patient_id, f"Test^{patient_id}"
    dataset.StudyDate = study_date
    dataset.Modality = modality
    dataset.SeriesNumber, dataset.InstanceNumber = series_number, instance_number
    for keyword, value in attributes.items():
        setattr(dataset, keyword, value)
    pixels = np.full((8, 8), instance_number * 7 + series_number, dtype=np.uint16)
    dataset.Rows, dataset.Columns = pixels.shape
    dataset.SamplesPerPixel, dataset.PhotometricInterpretation = 1, "MONOCHROME2"
    dataset.BitsAllocated, dataset.BitsStored, dataset.HighBit, dataset.PixelRepresentation = 16, 16, 15, 0
    dataset.PixelData = pixels.tobytes()
    buffer = io.BytesIO()
    dataset.save_as(buffer, enforce_file_format=True)
    return buffer.getvalue()


def ingest(store, payloads: list[bytes]) -> list[int]:
    results = ingest_files(
        store, LOCAL_ACTOR, [InputFile(f"f{index}.dcm", data) for index, data in enumerate(payloads)]
    )
    assert [result.status for result in results] == ["stored"] * len(payloads), results
    return [result.image_id for result in results]


def study_of(store, image_id: int) -> int:
    with store.db.read() as session:
        return session.get(Series, session.get(Image, image_id).series_id).study_id


def series_of(store, image_id: int) -> int:
    with store.db.read() as session:
        return session.get(Image, image_id).series_id


# --- real headers (pydicom's test files) ----------------------------------------------------------------


def test_a_real_ct_hangs_in_three_windows_of_its_axial_series(store):
    [image_id] = ingest(store, [corpus_file("CT_small.dcm").read_bytes()])
    study_id = study_of(store, image_id)

    [facts] = series_facts(store, study_id)
    assert (facts.modality, facts.orientation, facts.image_ids) == ("CT", "axial", (image_id,))

    hanging = hanging_for_study(store, study_id, get_setting(store, "hanging_protocols"))
    assert (hanging.layout, hanging.protocol) == ("1x3", "CT: soft tissue, lung, bone")
    assert [viewport.preset for viewport in hanging.viewports] == ["Mediastinum", "Lung", "Bone"]
    assert {viewport.series_id for viewport in hanging.viewports} == {facts.series_id}
    assert "axial" in hanging.viewports[1].reason and "modality CT" in hanging.viewports[1].reason


def test_a_real_mr_weighting_comes_from_its_physics_after_de_identification(store):
    # MR_small.dcm: spin echo, TR 4000 ms, TE 240 ms: T2. De-identification drops free-text
    # descriptions, so the T2 viewport matches on the weighting read from the kept physics.
    [image_id] = ingest(store, [corpus_file("MR_small.dcm").read_bytes()])
    study_id = study_of(store, image_id)
    assert mr_weighting(pydicom.dcmread(corpus_file("MR_small.dcm"), stop_before_pixels=True)) == "T2"

    hanging = hanging_for_study(store, study_id, DEFAULT_PROTOCOLS)

    assert (hanging.layout, hanging.protocol) == ("2x2", "MR brain: T1, T2, FLAIR, DWI")
    t1, t2, flair, dwi = hanging.viewports
    assert t2.series_id == series_of(store, image_id) and "MR weighting T2" in t2.reason
    assert (t1.series_id, flair.series_id, dwi.series_id) == (None, None, None)
    assert flair.reason.startswith("no series with modality MR, description /flair")


def test_a_real_radiograph_without_a_prior_says_so(store):
    [image_id] = ingest(store, [corpus_file("RG1_UNCI.dcm").read_bytes()])  # CR, PA

    hanging = hanging_for_study(store, study_of(store, image_id), DEFAULT_PROTOCOLS)

    assert (hanging.layout, hanging.protocol) == ("1x2", "Chest film: current and prior")
    current, prior = hanging.viewports
    assert (current.series_id, current.image_ids, current.prior) == (series_of(store, image_id), (image_id,), False)
    assert (prior.series_id, prior.prior) == (None, True)
    assert prior.reason.startswith("no prior")


# --- generated studies ----------------------------------------------------------------------------------


def test_an_mr_brain_study_of_four_sequences_hangs_each_in_its_place(store):
    study_uid = generate_uid()
    physics = {  # as scanned: what de-identification keeps of each series
        "FLAIR": {"ScanningSequence": "IR", "RepetitionTime": 9000, "EchoTime": 120, "InversionTime": 2500},
        "T1": {"ScanningSequence": "SE", "RepetitionTime": 500, "EchoTime": 12},
        "DWI": {"ScanningSequence": "EP", "RepetitionTime": 5000, "EchoTime": 90, "DiffusionBValue": 1000},
        "T2": {"ScanningSequence": "SE", "RepetitionTime": 4500, "EchoTime": 100},
    }
    first_images = {}
    for number, (sequence, attributes) in enumerate(physics.items(), start=1):
        first_images[sequence] = ingest(
            store,
            [
                header_dicom(
                    patient_id="MRB",
                    study_uid=study_uid,
                    series_uid=(series_uid := generate_uid()) if slice_index == 0 else series_uid,
                    modality="MR",
                    series_number=number,
                    instance_number=slice_index + 1,
                    SeriesDescription=f"AX {sequence} brain",
                    ImageOrientationPatient=AXIAL,
                    ImagePositionPatient=[0, 0, 5.0 * slice_index],
                    **attributes,
                )
                for slice_index in range(2)
            ],
        )[0]
    study_id = study_of(store, first_images["T1"])

    hanging = hanging_for_study(store, study_id, DEFAULT_PROTOCOLS)

    assert hanging.layout == "2x2"
    assert [viewport.series_id for viewport in hanging.viewports] == [
        series_of(store, first_images[sequence]) for sequence in ("T1", "T2", "FLAIR", "DWI")
    ]
    assert all(len(viewport.image_ids) == 2 for viewport in hanging.viewports)
    assert "MR weighting FLAIR" in hanging.viewports[2].reason


def test_mr_descriptions_hang_the_study_when_the_physics_say_nothing():
    # De-identification off: the descriptions survive; no TR/TE in the header.
    series = tuple(
        SeriesFacts(
            series_id=number, image_ids=(number * 10,), modality="MR", description=description, series_number=number
        )
        for number, description in enumerate(["Ax T2 FLAIR", "sag T1 MPRAGE", "DWI trace b1000", "ADC", "AX T2 TSE"], 1)
    )
    hanging = hang(DEFAULT_PROTOCOLS, StudyFacts(1, 1, "20240101", series))

    # T1 is the MPRAGE (not the FLAIR), T2 the TSE (not the T2 FLAIR), DWI the trace (not the ADC map).
    assert [viewport.series_id for viewport in hanging.viewports] == [2, 5, 1, 3]
    assert "description 'sag T1 MPRAGE' matches" in hanging.viewports[0].reason


def test_a_four_view_mammogram_in_one_series_hangs_by_laterality_and_view_with_left_views_mirrored(store):
    study_uid, series_uid = generate_uid(), generate_uid()
    views = [("L", "MLO"), ("R", "CC"), ("R", "MLO"), ("L", "CC")]  # scanner order, not hanging order
    image_ids = ingest(
        store,
        [
            header_dicom(
                patient_id="MG1",
                study_uid=study_uid,
                series_uid=series_uid,
                modality="MG",
                series_number=1,
                instance_number=number,
                ImageLaterality=laterality,
                ViewPosition=view,
            )
            for number, (laterality, view) in enumerate(views, start=1)
        ],
    )
    by_view = dict(zip(views, image_ids, strict=True))

    hanging = hanging_for_study(store, study_of(store, image_ids[0]), DEFAULT_PROTOCOLS)

    assert (hanging.layout, hanging.protocol) == ("2x2", "Mammography: 4 views")
    assert [viewport.image_ids for viewport in hanging.viewports] == [
        (by_view["R", "CC"],),
        (by_view["L", "CC"],),
        (by_view["R", "MLO"],),
        (by_view["L", "MLO"],),
    ]
    assert [viewport.mirror for viewport in hanging.viewports] == [False, True, False, True]
    assert "laterality L, view MLO" in hanging.viewports[3].reason


def test_a_chest_film_hangs_beside_the_most_recent_earlier_film_of_the_patient(store):
    def film(study_date: str, modality: str = "DX") -> int:
        [image_id] = ingest(
            store,
            [
                header_dicom(
                    patient_id="CXR",
                    study_uid=generate_uid(),
                    series_uid=generate_uid(),
                    modality=modality,
                    series_number=1,
                    study_date=study_date,
                    ViewPosition="PA",
                )
            ],
        )
        return image_id

    set_setting(store, LOCAL_ACTOR, "shift_dates", True)  # keep the dates' order (shifted per patient)
    oldest, previous, current, later = film("20200301"), film("20230610"), film("20240105"), film("20250101")
    ct_between = ingest(
        store,
        [
            header_dicom(
                patient_id="CXR",
                study_uid=generate_uid(),
                series_uid=generate_uid(),
                modality="CT",
                series_number=1,
                study_date="20231201",
                ImageOrientationPatient=AXIAL,
            )
        ],
    )[0]

    hanging = hanging_for_study(store, study_of(store, current), DEFAULT_PROTOCOLS)

    now, prior = hanging.viewports
    assert (now.image_ids, now.prior) == ((current,), False)
    # Not the later film, not the more recent CT, not the older film: the previous film.
    assert (prior.image_ids, prior.prior, prior.study_id) == ((previous,), True, study_of(store, previous))
    assert prior.study_date is not None and prior.study_date < now.study_date
    assert prior.reason.startswith("prior of ")
    assert prior.prior_label == f"Prior · {prior.study_date[:4]}-{prior.study_date[4:6]}-{prior.study_date[6:]}"
    assert now.prior_label is None
    assert (
        study_of(store, ct_between) != prior.study_id and oldest not in prior.image_ids and later not in prior.image_ids
    )


def test_a_study_no_rule_matches_opens_one_by_one_with_its_first_series(store):
    study_uid = generate_uid()
    ids = ingest(
        store,
        [
            header_dicom(
                patient_id="US1", study_uid=study_uid, series_uid=generate_uid(), modality="US", series_number=n
            )
            for n in (2, 1)
        ],
    )

    hanging = hanging_for_study(store, study_of(store, ids[0]), DEFAULT_PROTOCOLS)

    assert (hanging.layout, hanging.protocol) == ("1x1", None)
    [viewport] = hanging.viewports
    assert viewport.image_ids == (ids[1],)  # series number 1 comes first
    assert "no protocol matched this US study" in hanging.reason
    assert hang(DEFAULT_PROTOCOLS, StudyFacts(9, 1, None, ())).viewports[0].series_id is None


def test_a_protocol_that_fills_nothing_gives_way_to_the_next():
    sagittal_only = {
        "name": "sagittal CT",
        "modality": "CT",
        "layout": "1x1",
        "viewports": [{"orientation": "sagittal"}],
    }
    study = StudyFacts(1, 1, None, (SeriesFacts(7, (70, 71), "CT", orientation="axial"),))

    hanging = hang([sagittal_only, *DEFAULT_PROTOCOLS], study)

    assert hanging.protocol == "CT: soft tissue, lung, bone"
    assert hanging.to_dict()["viewports"][0]["image_ids"] == [70, 71]


def test_the_axial_stack_with_most_slices_wins_over_a_localizer_and_a_thick_series(store):
    study_uid = generate_uid()

    def series(number: int, orientation: list[int], slices: int) -> list[bytes]:
        series_uid = generate_uid()
        return [
            header_dicom(
                patient_id="CT2",
                study_uid=study_uid,
                series_uid=series_uid,
                modality="CT",
                series_number=number,
                instance_number=n,
                ImageOrientationPatient=orientation,
                ImagePositionPatient=[0, 0, float(n)],
            )
            for n in range(1, slices + 1)
        ]

    ids = ingest(store, [*series(1, SAGITTAL, 1), *series(2, AXIAL, 2), *series(3, AXIAL, 3)])
    study = study_facts(store, study_of(store, ids[0]))
    assert [(facts.orientation, len(facts.image_ids)) for facts in study.series] == [
        ("sagittal", 1),
        ("axial", 2),
        ("axial", 3),
    ]

    hanging = hang(DEFAULT_PROTOCOLS, study)

    assert {viewport.series_id for viewport in hanging.viewports} == {series_of(store, ids[-1])}
    assert "series 3 (CT 'axial', 3 images)" in hanging.viewports[0].reason


# --- validation -----------------------------------------------------------------------------------------


def protocol(**changes: object) -> list[dict]:
    base = {"name": "Knee", "modality": ["MR"], "layout": "1x2", "viewports": [{"description": "PD"}, {}]}
    return [base | changes]


@pytest.mark.parametrize(
    ("protocols", "message"),
    [
        (protocol(sequence="x"), "protocol 'Knee': unknown field 'sequence'"),
        (protocol(layout="3x3"), "protocol 'Knee': 'layout' is '3x3'; it is one of 1x1, 1x2, 1x3, 2x2"),
        (protocol(viewports=[{}, {}, {}]), "protocol 'Knee': 3 viewports do not fit layout 1x2 (2 viewports)"),
        (
            protocol(viewports=[{"description": "T1("}]),
            "protocol 'Knee' viewport 1: 'description' is not a valid regular expression",
        ),
        (protocol(viewports=[{}, {"plane": "axial"}]), "protocol 'Knee' viewport 2: unknown field 'plane'"),
        (protocol(viewports=[{"orientation": "axail"}]), "protocol 'Knee' viewport 1: 'orientation' is 'axail'"),
        (protocol(viewports=[{"laterality": "left"}]), "protocol 'Knee' viewport 1: 'laterality' is 'left'"),
        (protocol(viewports=[{"preset": "liver"}]), "protocol 'Knee' viewport 1: 'preset' is 'liver'; it is one of"),
        (protocol(viewports=[{"mirror": "yes"}]), "protocol 'Knee' viewport 1: 'mirror' is true or false"),
        (protocol(viewports=[{"prior": True}]), "protocol 'Knee': every viewport shows the prior"),
        (protocol(modality=[]), "protocol 'Knee': 'modality' is a text or a list of texts"),
        ([{"layout": "1x1"}], "protocol 1: 'name' is required"),
        (protocol() * 2, "protocol 'Knee': two protocols have this name"),
        ({"name": "Knee"}, "hanging protocols are a list"),
    ],
)
def test_a_bad_rule_is_refused_naming_the_protocol_and_the_field(protocols, message):
    with pytest.raises(ProtocolError, match="^" + message.replace("(", r"\(").replace(")", r"\)").replace("[", r"\[")):
        validate_protocols(protocols)


def test_the_project_setting_validates_on_save_and_keeps_the_last_good_rules(store):
    assert get_setting(store, "hanging_protocols") == DEFAULT_PROTOCOLS
    with pytest.raises(ProtocolError, match="protocol 'Knee' viewport 1: 'description'"):
        set_setting(store, LOCAL_ACTOR, "hanging_protocols", protocol(viewports=[{"description": "(("}]))
    assert get_setting(store, "hanging_protocols") == DEFAULT_PROTOCOLS

    set_setting(store, LOCAL_ACTOR, "hanging_protocols", protocol())
    assert get_setting(store, "hanging_protocols") == protocol()


def test_rules_that_no_longer_validate_open_the_study_one_by_one_with_the_reason(store):
    [image_id] = ingest(store, [corpus_file("CT_small.dcm").read_bytes()])
    stale = [{"name": "Old", "modality": "CT", "layout": "1x1", "viewports": [{"window": "lung"}]}]

    hanging = hanging_for_study(store, study_of(store, image_id), stale)

    assert (hanging.layout, hanging.protocol, hanging.viewports[0].image_ids) == ("1x1", None, (image_id,))
    assert hanging.reason == (
        "the project's hanging protocols are not valid (protocol 'Old' viewport 1: unknown field 'window' "
        "(fields: description, laterality, mirror, modality, orientation, preset, prior, view_position))"
    )
