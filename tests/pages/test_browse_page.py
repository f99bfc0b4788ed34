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


def test_pick_a_series_and_step_through_its_slices(page_store):
    for patient in ("A", "B"):  # two 3-slice series of two patients, uploaded out of order
        study_uid, series_uid = generate_uid(), generate_uid()
        ingest(
            page_store,
            [
                (
                    f"{patient}-slice{number}.dcm",
                    dicom_bytes(patient, study_uid=study_uid, series_uid=series_uid, instance_number=number),
                )
                for number in (3, 1, 2)
            ],
        )
    # Pick the patient that is not preselected, so every level of the picker is exercised.
    chosen_patient = int(patients(page_store)["patient_id"].iloc[1])
    [chosen_study] = studies(page_store, chosen_patient)["study_id"]
    [chosen_series] = series_list(page_store, int(chosen_study))["series_id"]
    first_slice, second_slice, _ = slice_ids(page_store, int(chosen_series))

    app = run_browse()
    app.selectbox(key="browse_patient").set_value(chosen_patient).run()
    assert app.selectbox(key="browse_study").value == chosen_study  # a single study is preselected
    app.selectbox(key="browse_series").set_value(int(chosen_series)).run()
    assert not app.exception, app.exception
    data = viewer_data(app, "browse_viewer")
    assert data["position"] == first_slice and data["jump"] == int(chosen_series)
    # The viewer scrolls the stack in the browser: it knows the series' slices in reading order.
    assert data["images"][0]["series"] == slice_ids(page_store, int(chosen_series))
    assert plain(get_image(page_store, LOCAL_ACTOR, first_slice).display_name) in caption_text(app)
    assert "Slice 1/3 · instance 1" in caption_text(app)

    # The reader scrolled to the second slice: its details and header are shown.
    report(app, "browse_viewer", view={"imageId": second_slice, "frame": 0, "window": None})
    assert "Slice 2/3 · instance 2" in caption_text(app)
    assert plain(get_image(page_store, LOCAL_ACTOR, second_slice).display_name) in caption_text(app)

    assert app.expander[0].label == "DICOM header"
    header = app.dataframe[0].value
    assert "PatientID" in set(header["keyword"])
    app.text_input(key="browse_header_filter").set_value("0010,0020").run()
    assert app.dataframe[0].value["keyword"].tolist() == ["PatientID"]


def test_multiframe_image_frames_reach_the_viewer(page_store):
    [image_id] = ingest(page_store, [("clip.dcm", multiframe_dicom_bytes(4))])
    app = run_browse()
    data = viewer_data(app, "browse_viewer")
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
    # names it (the others it knows only through the first slice's, without a name), and stays put.
    data = report(app, "browse_viewer", view={"imageId": third, "frame": 0, "window": None})

    names = {info["id"]: info["name"] for info in data["images"]}
    assert names.get(third) == get_image(page_store, LOCAL_ACTOR, third).display_name.rsplit("/", 1)[-1]
    assert names[third].startswith("CT-s0-i3-")  # de-identified: derived from facts, not the upload's name
    assert data["position"] == first and data["jump"] == series_of(page_store, ids[0])


def test_two_series_with_one_number_read_differently_in_the_series_picker(page_store):
    study_uid = generate_uid()
    axial_uid, coronal_uid, copy_uid = generate_uid(), generate_uid(), generate_uid()
    uploads = [
        (f"axial{number}.dcm", ct_slice(study_uid, axial_uid, number, AXIAL, "1.25")) for number in (1, 2, 3)
    ] + [(f"coronal{number}.dcm", ct_slice(study_uid, coronal_uid, number, CORONAL, "5")) for number in (1, 2)]
    uploads += [(f"copy{number}.dcm", ct_slice(study_uid, copy_uid, number, CORONAL, "5")) for number in (1, 2)]
    ingest(page_store, uploads)

    app = run_browse()

    labels = app.selectbox(key="browse_series").options
    assert len(set(labels)) == 3, labels
    assert "#2 · CT chest axial 1.25 mm (3 images)" in labels
    # Two series that say the same (number, description, count) are told apart by their UIDs' ends.
    same = [label for label in labels if label.startswith("#2 · CT chest coronal 5 mm (2 images) · UID …")]
    assert len(same) == 2


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
