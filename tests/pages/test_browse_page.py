"""The Browse page through AppTest: picking a series, stepping through slices and frames, the header."""

from __future__ import annotations

import io

import numpy as np
import pydicom
from pydicom.uid import generate_uid
from streamlit.testing.v1 import AppTest

from medreview.ingest import InputFile, ingest_files
from medreview.reading.browse import patients, series_list, series_slices, studies
from medreview.reading.catalog import get_image
from medreview.reading.reads import LOCAL_ACTOR
from medreview.store.models import Image
from tests.conftest import run_page_as
from tests.helpers import dicom_bytes, png_bytes
from tests.pages.viewer import frame_values, report, viewer_data
from ui.text import plain

TIMEOUT = 60


def run_browse() -> AppTest:
    return run_page_as("browse", timeout=TIMEOUT)


def ingest(store, payloads: list[tuple[str, bytes]]) -> list[int]:
    results = ingest_files(store, LOCAL_ACTOR, [InputFile(name, data) for name, data in payloads])
    assert [result.status for result in results] == ["stored"] * len(payloads), results
    return [result.image_id for result in results]


def multiframe_dicom_bytes(frame_count: int) -> bytes:
    """``dicom_bytes`` turned into a multi-frame object: frame k is filled with the value 100 * k."""
    dataset = pydicom.dcmread(io.BytesIO(dicom_bytes(modality="US")))
    frames = np.stack([np.full((64, 64), 100 * index, dtype=np.uint16) for index in range(frame_count)])
    dataset.NumberOfFrames = frame_count
    dataset.PixelData = frames.tobytes()
    buffer = io.BytesIO()
    dataset.save_as(buffer, enforce_file_format=True)
    return buffer.getvalue()


def caption_text(app: AppTest) -> str:
    return " ".join(caption.value for caption in app.caption)


def test_empty_store_says_so(page_store):
    app = run_browse()
    assert "No images yet" in app.info[0].value
    assert not app.get("bidi_component")


# Four MR series of one session (one frame of reference), axial, each its own slice spacing and
# extent: z of each slice in mm. The browser test scrolls them linked (tests/e2e/test_case_viewer.py).
# The default MR brain protocol hangs them T1, T2, FLAIR, DWI by their acquisition physics
# (de-identification replaces the descriptions): repetition, echo and inversion times, Image Type.
MR_PHYSICS = {
    "T1": {"RepetitionTime": 500, "EchoTime": 10},
    "T2": {"RepetitionTime": 4000, "EchoTime": 100},
    "FLAIR": {"RepetitionTime": 9000, "EchoTime": 120, "InversionTime": 2500},
    "DWI": {"RepetitionTime": 5000, "EchoTime": 80, "ImageType": ["ORIGINAL", "PRIMARY", "DIFFUSION", "TRACEW"]},
}
MR_SERIES = {
    "T1": [0.0, 5.0, 10.0, 15.0, 20.0],
    "T2": [0.0, 2.5, 5.0, 7.5, 10.0, 12.5, 15.0, 17.5, 20.0],
    "FLAIR": [20.0, 16.0, 12.0, 8.0, 4.0, 0.0],  # acquired head to feet: instance order is not position order
    "DWI": [2.0, 9.0, 16.0],
}


def mr_study_files(patient: str = "MR1", size: int = 96) -> list[InputFile]:
    """The four MR_SERIES of one study as DICOM files: a bright disc whose radius follows z (so each
    slice looks different), Image Position/Orientation (Patient) and one FrameOfReferenceUID."""
    study_uid, frame_of_reference = generate_uid(), generate_uid()
    rows, columns = np.mgrid[0:size, 0:size]
    files = []
    # Uploaded DWI first: the protocol, not the series number, puts T1 top left.
    for number, (description, positions) in reversed(list(enumerate(MR_SERIES.items(), start=1))):
        series_uid = generate_uid()
        for instance, z in enumerate(positions, start=1):
            radius = size * (0.15 + 0.012 * z)
            disc = np.hypot(rows - size / 2, columns - size / 2) < radius
            pixels = (disc * (400 + 150 * number) + (rows % 16 < 2) * 60).astype(np.uint16)
            dataset = pydicom.dcmread(io.BytesIO(dicom_bytes(patient, study_uid=study_uid, series_uid=series_uid,
                                                             pixels=pixels, modality="MR", instance_number=instance)))  # fmt: skip
            dataset.SeriesNumber = number
            dataset.SeriesDescription = description
            dataset.FrameOfReferenceUID = frame_of_reference
            dataset.ImageOrientationPatient = [1, 0, 0, 0, 1, 0]
            dataset.ImagePositionPatient = [-120, -120, z]
            dataset.PixelSpacing = [2.5, 2.5]
            for keyword, value in MR_PHYSICS[description].items():
                setattr(dataset, keyword, value)
            buffer = io.BytesIO()
            dataset.save_as(buffer, enforce_file_format=True)
            files.append(InputFile(f"{description}-{instance}.dcm", buffer.getvalue()))
    return files


def series_of_study(store, study_id: int) -> list[int]:
    return [int(series_id) for series_id in series_list(store, study_id)["series_id"]]


def test_pick_a_study_no_protocol_matches_and_it_opens_1x1_with_its_first_series(page_store):
    for patient in ("A", "B"):  # a study of two 3-slice series for each of two patients, uploaded out of order
        study_uid = generate_uid()
        for series_uid in (generate_uid(), generate_uid()):
            ingest(
                page_store,
                [
                    (
                        f"{patient}-{series_uid[-4:]}-slice{number}.dcm",
                        dicom_bytes(patient, study_uid=study_uid, series_uid=series_uid, instance_number=number),
                    )
                    for number in (3, 1, 2)
                ],
            )
    # Pick the patient that is not preselected, so every level of the picker is exercised.
    chosen_patient = int(patients(page_store)["patient_id"].iloc[1])
    [chosen_study] = studies(page_store, chosen_patient)["study_id"]
    first_series, _ = series_of_study(page_store, int(chosen_study))

    app = run_browse()
    app.selectbox(key="browse_patient").set_value(chosen_patient).run()
    assert app.selectbox(key="browse_study").value == chosen_study  # a single study is preselected
    assert not app.exception, app.exception
    data = viewer_data(app, "browse_viewer")
    # CT slices without an orientation: the CT protocol (axial series) fills nothing, so the study
    # opens 1x1 with its first series in reading order, and the page says why.
    assert data["case"]["id"] == f"study:{chosen_study}" and data["case"]["layout"] == "1x1"
    [viewport] = data["case"]["viewports"]
    assert viewport["images"] == slice_ids(page_store, first_series)
    assert "no protocol matched" in caption_text(app)
    # The first slice comes with the data that opens the case, unasked.
    first_slice = viewport["images"][0]
    assert [row["key"] for row in data["pixels"]] == [f"{first_slice}:0"]
    assert plain(get_image(page_store, LOCAL_ACTOR, first_slice).display_name) in caption_text(app)
    assert "Viewport 1" in caption_text(app) and "Slice 1/3 · instance 1" in caption_text(app)

    # The reader scrolled to the second slice: its details and header are shown, and the viewer is
    # sent its own description (its name).
    second_slice = viewport["images"][1]
    data = report(app, "browse_viewer", active=0, view=[{"imageId": second_slice, "index": 1, "frame": 0}])
    assert "Slice 2/3 · instance 2" in caption_text(app)
    assert plain(get_image(page_store, LOCAL_ACTOR, second_slice).display_name) in caption_text(app)
    names = {info["id"]: info["name"] for info in data["images"]}
    assert names[second_slice] == get_image(page_store, LOCAL_ACTOR, second_slice).display_name.rsplit("/", 1)[-1]

    assert app.expander[0].label == "DICOM header"
    header = app.dataframe[0].value
    assert "PatientID" in set(header["keyword"])
    app.text_input(key="browse_header_filter").set_value("0010,0020").run()
    assert app.dataframe[0].value["keyword"].tolist() == ["PatientID"]


def test_an_mr_study_opens_2x2_with_the_positions_and_frame_of_reference_that_link_its_scrolling(page_store):
    results = ingest_files(page_store, LOCAL_ACTOR, mr_study_files())
    assert {result.status for result in results} == {"stored"}
    app = run_browse()
    assert not app.exception, app.exception
    case = viewer_data(app, "browse_viewer")["case"]
    assert case["layout"] == "2x2"
    assert plain("'MR brain: T1, T2, FLAIR, DWI'") in caption_text(app)
    viewports = case["viewports"]
    # Reading order is by position; each viewport carries its slices' positions along the normal.
    assert [viewport["positions"] for viewport in viewports] == [sorted(z) for z in MR_SERIES.values()]
    # One frame of reference (remapped at import like every UID, so not the file's), shared by all four.
    references = {viewport["frameOfReference"] for viewport in viewports}
    assert len(references) == 1 and None not in references


def test_multiframe_image_frames_reach_the_viewer(page_store):
    [image_id] = ingest(page_store, [("clip.dcm", multiframe_dicom_bytes(4))])
    app = run_browse()
    data = viewer_data(app, "browse_viewer")
    assert data["case"]["layout"] == "1x1" and data["case"]["viewports"][0]["images"] == [image_id]
    assert data["images"][0]["frames"] == 4 and data["images"][0]["series"] is None
    assert "4 frames" in caption_text(app)
    data = report(app, "browse_viewer", want=[f"{image_id}:2"])
    [row] = data["pixels"]
    assert (frame_values(row) == 200).all()  # frame 3 of the clip holds 100 * 2


def test_png_header_says_not_dicom(page_store):
    ingest(page_store, [("photo.png", png_bytes(5))])
    app = run_browse()
    header = app.dataframe[0].value
    assert "not a DICOM file" in set(header["value"])


def test_missing_stored_file_is_an_error_message_not_a_traceback(page_store):
    [image_id] = ingest(page_store, [("lost.dcm", dicom_bytes())])
    with page_store.db.read() as session:
        page_store.blobs.path_for(session.get(Image, image_id).sha256).unlink()
    app = run_browse()
    assert app.error, "a missing file should be reported"


def slice_ids(store, series_id):
    """A series' image ids in reading order."""
    return [int(image_id) for image_id in series_slices(store, series_id)["image_id"]]


def test_the_slice_on_screen_keeps_its_file_name_in_the_viewer_after_a_scroll(page_store):
    study_uid, series_uid = generate_uid(), generate_uid()
    ids = ingest(
        page_store,
        [
            (f"slice{number}.dcm", dicom_bytes(study_uid=study_uid, series_uid=series_uid, instance_number=number))
            for number in (1, 2, 3)
        ],
    )
    app = run_browse()
    first, _, third = slice_ids(page_store, series_of(page_store, ids[0]))

    # The reader scrolled to the third slice: the viewer is sent that slice's own description, which
    # names it (the others it knows only through the first slice's), and the case stays as it was.
    data = report(app, "browse_viewer", active=0, view=[{"imageId": third, "index": 2, "frame": 0}])

    names = {info["id"]: info["name"] for info in data["images"]}
    assert names.get(third) == get_image(page_store, LOCAL_ACTOR, third).display_name.rsplit("/", 1)[-1]
    assert names[third].startswith("CT-s0-i3-")  # de-identified: derived from facts, not the upload's name
    assert data["case"]["viewports"][0]["images"][0] == first


def test_a_ct_study_hangs_its_axial_series_in_three_windows(page_store):
    study_uid = generate_uid()
    axial_uid, coronal_uid = generate_uid(), generate_uid()
    uploads = [
        (f"axial{number}.dcm", ct_slice(study_uid, axial_uid, number, AXIAL, "1.25")) for number in (1, 2, 3)
    ] + [(f"coronal{number}.dcm", ct_slice(study_uid, coronal_uid, number, CORONAL, "5")) for number in (1, 2)]
    ingest(page_store, uploads)

    app = run_browse()
    case = viewer_data(app, "browse_viewer")["case"]
    # The default CT protocol: the axial series in soft-tissue, lung and bone windows, side by side.
    assert case["layout"] == "1x3"
    axial = slice_ids(page_store, series_of_study(page_store, int(studies(page_store, 1)["study_id"].iloc[0]))[0])
    assert [viewport["images"] for viewport in case["viewports"]] == [axial] * 3
    assert [viewport["preset"].lower() for viewport in case["viewports"]] == ["mediastinum", "lung", "bone"]
    for active in range(3):
        views = [{"imageId": axial[0], "index": 0, "frame": 0}] * 3
        report(app, "browse_viewer", active=active, view=views)
        assert plain(f"Viewport {active + 1}: #2 · CT chest axial 1.25 mm (3 images)") in caption_text(app)


AXIAL = [1.0, 0.0, 0.0, 0.0, 1.0, 0.0]
CORONAL = [1.0, 0.0, 0.0, 0.0, 0.0, -1.0]


def ct_slice(study_uid: str, series_uid: str, number: int, orientation: list[float], thickness: str) -> bytes:
    """A chest CT slice of series number 2 whose free-text description de-identification removes."""
    dataset = pydicom.dcmread(
        io.BytesIO(dicom_bytes(study_uid=study_uid, series_uid=series_uid, instance_number=number))
    )
    dataset.SeriesNumber = 2
    dataset.SeriesDescription = "Thorax Test^P1"
    dataset.BodyPartExamined = "CHEST"
    dataset.ImageOrientationPatient = orientation
    dataset.SliceThickness = thickness
    buffer = io.BytesIO()
    dataset.save_as(buffer, enforce_file_format=True)
    return buffer.getvalue()


def series_of(store, image_id: int) -> int:
    with store.db.read() as session:
        return session.get(Image, image_id).series_id
