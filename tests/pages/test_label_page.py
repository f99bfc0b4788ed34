"""The Label page through AppTest: what it sends the viewer and what it does with the viewer's reports
(pending reads saved once and acknowledged, filters that drive "next", blinding, boxes)."""

from __future__ import annotations

import numpy as np
import pytest
from sqlalchemy import func, select

from medreview.imaging.decoding import decode_file
from medreview.ingest import InputFile, ingest_files
from medreview.reading.cases import case_images
from medreview.reading.catalog import get_image
from medreview.reading.reads import LOCAL_ACTOR, save_read
from medreview.reading.review import decide
from medreview.reading.schema import add_label_class, label_classes
from medreview.store.models import Annotation, AuditEvent, Image, Study
from medreview.team.accounts import create_user
from medreview.team.roles import SYSTEM, Actor
from medreview.team.settings import set_setting
from tests.conftest import ADMIN, run_page_as
from tests.helpers import dicom_bytes, png_bytes
from tests.pages.viewer import fragment_id, frame_values, report, rerun_fragment, run_fragment, save, viewer_data

KEY = "label_viewer"
READER = Actor("reader1", "annotator")


@pytest.fixture
def images(page_store) -> dict[str, list[int]]:
    """The store's two classes (normal, pneumonia); three DX films, then two CR films, then one more
    DX, in upload order."""
    assert label_classes(page_store) == ["normal", "pneumonia"]
    create_user(page_store, SYSTEM, READER.username, "reader-password-1", role="annotator")
    modalities = ["DX", "DX", "DX", "CR", "CR", "DX"]
    files = [
        InputFile(f"film-{index}.dcm", dicom_bytes(f"P{index}", modality=modality))
        for index, modality in enumerate(modalities)
    ]
    ids = [result.image_id for result in ingest_files(page_store, LOCAL_ACTOR, files)]
    by_modality: dict[str, list[int]] = {"all": ids}
    for image_id, modality in zip(ids, modalities, strict=True):
        by_modality.setdefault(modality, []).append(image_id)
    return by_modality


def test_opens_the_first_image_to_do_with_the_next_ones_prefetched(page_store, images):
    app = run_page_as("label", READER)
    data = viewer_data(app, KEY)
    assert data["mode"] == "label"
    assert data["position"] == images["all"][0]
    assert data["order"] == images["all"]  # the current one, then the rest of the list in order
    assert data["classes"] == ["normal", "pneumonia"]
    first = data["images"][0]
    assert (first["modality"], first["width"], first["height"], first["label"]) == ("DX", 64, 64, None)


def test_a_pending_read_is_saved_once_with_its_seconds_and_acknowledged(page_store, images):
    app = run_page_as("label", READER)
    first, second = images["all"][:2]
    pending = [save(101, first, "pneumonia", seconds=3.25)]
    data = report(app, KEY, position=second, pending=pending)
    assert data["acked"] == [101] and data["failed"] == {}
    # The browser resends its pending list until it sees the acknowledgement: no second save.
    data = report(app, KEY, position=second, pending=pending)
    assert data["acked"] == [101]
    with page_store.db.read() as session:
        read = session.scalars(select(Annotation).where(Annotation.image_id == first)).one()
        assert (read.label_class.name, read.seconds_on_case) == ("pneumonia", 3.25)
        saves = session.scalar(select(func.count(AuditEvent.id)).where(AuditEvent.action.like("label.%")))
    assert saves == 1
    # The viewer moved on by itself: the page follows it, and the list no longer holds the read image.
    assert data["position"] == second and first not in data["order"]


def test_a_failed_save_is_reported_and_kept_not_acknowledged(page_store, images):
    app = run_page_as("label", READER)
    first, second = images["all"][:2]
    data = report(app, KEY, position=second, pending=[save(7, first, "no-such-class"), save(8, second, "normal")])
    assert data["acked"] == [8]
    assert "no-such-class" in data["failed"]["7"]
    assert get_image(page_store, READER, first).label is None
    assert get_image(page_store, READER, second).label == "normal"


def test_the_modality_filter_drives_next(page_store, images):
    app = run_page_as("label", READER)
    app.selectbox(key="label_modality_filter").set_value("CR").run()
    data = viewer_data(app, KEY)
    assert data["position"] == images["CR"][0]
    assert data["order"] == images["CR"]  # never a DX film as "next" on a CR list
    assert data["listVersion"].endswith("|CR")


def test_the_last_row_of_a_filtered_list_then_a_label_does_not_crash(page_store, images):
    app = run_page_as("label", READER)
    app.selectbox(key="label_modality_filter").set_value("CR").run()
    last = images["CR"][-1]
    table_key = next(element.key for element in app.dataframe if element.key.startswith("label_worklist"))
    app.session_state[table_key] = {"selection": {"rows": [len(images["CR"]) - 1], "columns": []}}
    app.run()
    assert not app.exception, app.exception
    data = viewer_data(app, KEY)
    assert data["position"] == last and data["order"] == [last]
    # The reader presses 1: the viewer saves and finds no next image on this list.
    data = report(app, KEY, position=None, pending=[save(1, last, "normal")])
    assert data["acked"] == [1]
    assert get_image(page_store, READER, last).label == "normal"


def test_other_readers_labels_never_reach_the_viewer(page_store, images):
    set_setting(page_store, LOCAL_ACTOR, "blinded", True)
    first = images["all"][0]
    save_read(page_store, LOCAL_ACTOR, first, "pneumonia")
    data = viewer_data(run_page_as("label", READER), KEY)
    assert data["images"][0]["id"] == first
    assert data["images"][0]["label"] is None and data["images"][0]["labels"] == []


def test_frames_asked_for_arrive_once_at_full_depth(page_store, images):
    first = images["all"][0]
    app = run_page_as("label", READER)
    data = report(app, KEY, position=first, want=[f"{first}:0", "999999:0"])
    rows = {row["key"]: row for row in data["pixels"]}
    with page_store.db.read() as session:
        stored = session.get(Image, first)
        expected = decode_file(page_store.blobs.path_for(stored.sha256), stored.media_type).frames[0]
    values = frame_values(rows[f"{first}:0"])
    assert values.dtype.itemsize == 2  # 16-bit modality values, not an 8-bit rendering
    np.testing.assert_array_equal(values, expected)
    assert "999999:0" in data["missing"]
    # A rerun for another reason (same request) sends the pixels no second time.
    app.run()
    assert viewer_data(app, KEY)["pixels"] == []


def test_boxes_drawn_in_the_viewer_are_stored_in_image_pixels_and_come_back(page_store, images):
    set_setting(page_store, LOCAL_ACTOR, "boxes", True)
    first = images["all"][0]
    box = {"label": "pneumonia", "x": 10.5, "y": 4.0, "width": 20.0, "height": 12.25, "frame": 0}
    app = run_page_as("label", READER)
    assert viewer_data(app, KEY)["boxesEnabled"] is True
    report(app, KEY, position=first, pending=[save(5, first, "pneumonia", boxes=[box])])
    assert list(get_image(page_store, READER, first).boxes) == [box]
    fresh = viewer_data(run_page_as("label", READER), KEY)
    shown = {info["id"]: info for info in fresh["images"]}
    assert fresh["position"] != first  # read: off the to-do list, but its boxes come back when opened
    app = run_page_as("label", READER)
    app.segmented_control(key="label_status").set_value("read").run()
    data = viewer_data(app, KEY)
    assert data["position"] == first
    assert data["images"][0]["boxes"] == [box]
    assert first not in shown


def test_a_png_screenshot_is_shown_with_the_burned_in_text_warning(page_store):
    # A PNG/JPEG is a screenshot or a photographed film: flagged like secondary capture DICOM.
    create_user(page_store, SYSTEM, READER.username, "reader-password-1", role="annotator")
    [film] = ingest_files(page_store, LOCAL_ACTOR, [InputFile("film-photo.png", png_bytes(5))])
    app = run_page_as("label", READER)
    assert viewer_data(app, KEY)["position"] == film.image_id
    assert any("burned-in patient information" in warning.value for warning in app.warning)


def test_a_comment_typed_before_the_label_is_saved_with_it(page_store, images):
    # Issue 16 item 1: typed, "Save comment" refused for want of a class, then 1: the comment was lost.
    first, second = images["all"][:2]
    app = run_page_as("label", READER)
    app.text_input(key=f"label_comment_{first}").input("left lower lobe?").run()
    app.button(key="label_save_comment").click().run()
    assert not app.error, [error.value for error in app.error]
    assert any("saved with your label" in info.value for info in app.info)
    assert any(expander.label == "Comment (not saved yet)" for expander in app.expander)
    data = report(app, KEY, position=second, pending=[save(1, first, "pneumonia")])
    assert data["acked"] == [1]
    record = get_image(page_store, READER, first)
    assert (record.label, record.comment) == ("pneumonia", "left lower lobe?")
    # Typed and never saved by hand: it goes with the class key too.
    app.text_input(key=f"label_comment_{second}").input("artefact at the apex").run()
    report(app, KEY, position=images["all"][2], pending=[save(2, second, "normal")])
    assert get_image(page_store, READER, second).comment == "artefact at the apex"


def test_a_filter_changed_with_a_viewer_report_applies(page_store, images):
    # Issue 16 item 3: Streamlit sends widget changes made in one instant as one rerun, of the fragment
    # of the first: a filter changed as the viewer reported reran only the viewer, with the old filter.
    app = run_page_as("label", READER)
    app.selectbox(key="label_modality_filter").set_value("CR")
    data = rerun_fragment(app, fragment_id(app, "label_viewer_fragment"), KEY, position=images["all"][0])
    assert data["listVersion"].endswith("|CR")
    assert data["position"] == images["CR"][0] and data["order"] == images["CR"]
    caption = next(caption.value for caption in app.caption if "to do" in caption.value)
    assert caption.startswith("2 to do"), caption  # the list counts the CR films, not all six


def test_past_the_last_row_the_viewer_is_told_what_is_left_on_the_list(page_store, images):
    # Issue 16 item 3: the end of a list says so and offers the rows left to do.
    app = run_page_as("label", READER)
    app.selectbox(key="label_modality_filter").set_value("CR").run()
    first, last = images["CR"]
    table_key = next(element.key for element in app.dataframe if element.key.startswith("label_worklist"))
    app.session_state[table_key] = {"selection": {"rows": [1], "columns": []}}
    app.run()
    assert viewer_data(app, KEY)["position"] == last
    data = rerun_fragment(
        app, fragment_id(app, "label_viewer_fragment"), KEY, position=None, pending=[save(1, last, "normal")]
    )
    assert data["acked"] == [1]
    assert data["position"] is None and data["order"] == []
    assert data["left"] == {"count": 1, "first": first}
    # The reader takes the offer: the viewer opens the first and reports it.
    data = rerun_fragment(app, fragment_id(app, "label_viewer_fragment"), KEY, position=first)
    assert data["position"] == first and data["left"] is None


def test_the_worklist_follows_the_viewer_between_page_runs(page_store, images):
    # Issue 16 item 2: after keys the counts, the row on screen and the rows done stayed as drawn.
    first, second, third = images["all"][:3]
    app = run_page_as("label", READER)
    viewer_fragment, list_fragment = (fragment_id(app, key) for key in ("label_viewer_fragment", "label_list"))
    sync = {"position": third, "pending": [save(1, first, "normal"), save(2, second, "pneumonia")]}
    rerun_fragment(app, viewer_fragment, KEY, **sync)
    # The viewer's follower reruns the list, which reads where the viewer is.
    run_fragment(app, list_fragment, KEY, **sync)
    caption = next(caption.value for caption in app.caption if "to do" in caption.value)
    assert caption.startswith("4 to do · 4 not read by me · 2 read by me")
    [table] = [element for element in app.dataframe if element.key.startswith("label_worklist")]
    rows = table.value
    assert first not in set(rows["image_id"]) and second not in set(rows["image_id"])
    assert list(rows.loc[rows["here"] == "▶", "image_id"]) == [third]


def test_boxes_alone_are_a_read_only_where_the_project_allows_it(page_store, images):
    # Issue 16 item 5: S with no class saved a read without a class that the header did not show.
    set_setting(page_store, LOCAL_ACTOR, "boxes", True)
    first = images["all"][0]
    box = {"label": "pneumonia", "x": 1.0, "y": 2.0, "width": 20.0, "height": 10.0, "frame": 0}
    app = run_page_as("label", READER)
    assert viewer_data(app, KEY)["boxOnly"] is False
    data = report(app, KEY, position=first, pending=[save(1, first, None, boxes=[box])])
    assert data["acked"] == [] and "choose a class" in data["failed"]["1"]
    assert get_image(page_store, READER, first).read is False
    set_setting(page_store, LOCAL_ACTOR, "box_only_reads", True)
    app = run_page_as("label", READER)
    data = report(app, KEY, position=first, pending=[save(2, first, None, boxes=[box])])
    assert data["boxOnly"] is True and data["acked"] == [2]
    assert get_image(page_store, READER, first).read is True
    app.segmented_control(key="label_status").set_value("read").run()
    [shown] = [info for info in viewer_data(app, KEY)["images"] if info["id"] == first]
    assert shown["read"] is True and shown["label"] is None  # the viewer shows it as read: boxes only


def test_a_read_made_under_another_sign_in_is_not_saved(page_store, images):
    first = images["all"][0]
    app = run_page_as("label", READER)
    owner = viewer_data(app, KEY)["owner"]
    assert len(owner) == 32 and READER.username not in owner
    data = report(app, KEY, position=first, pending=[save(1, first, "normal", owner="someone-else")])
    assert data["acked"] == [] and "another sign-in" in data["failed"]["1"]
    assert get_image(page_store, READER, first).read is False
    data = report(app, KEY, position=first, pending=[save(2, first, "normal", owner=owner)])
    assert data["acked"] == [2]


def _worklist_table(app):  # type: ignore[no-untyped-def]
    [table] = [element for element in app.dataframe if element.key.startswith("label_worklist")]
    return table.value


def test_the_search_box_narrows_the_list_and_next_keeps_to_it(page_store, images):
    # Issue 16 item 13: a reader searches the worklist; the viewer's "next" stays on what was found.
    app = run_page_as("label", READER)
    app.text_input(key="label_search").input("cr").run()
    rows = _worklist_table(app)
    assert list(rows["image_id"]) == images["CR"] and set(rows["modality"]) == {"CR"}
    data = viewer_data(app, KEY)
    assert data["order"] == images["CR"]
    caption = next(caption.value for caption in app.caption if "to do" in caption.value)
    assert caption.startswith("2 to do")
    patient = rows["patient"].iloc[1]  # a pseudonym: search by it
    app.text_input(key="label_search").input(patient).run()
    assert list(_worklist_table(app)["image_id"]) == [images["CR"][1]]
    app.text_input(key="label_search").input("no such film").run()
    assert _worklist_table(app).empty
    assert any("Nothing on this list matches" in caption.value for caption in app.caption)
    assert not app.exception


def test_the_viewer_moves_through_the_list_in_the_order_the_table_shows(page_store, images):
    app = run_page_as("label", READER)
    app.selectbox(key="label_sort").set_value("patient").run()
    rows = _worklist_table(app)
    assert list(rows["patient"]) == sorted(rows["patient"])
    table_order = [int(image_id) for image_id in rows["image_id"]]
    data = viewer_data(app, KEY)
    # The reader stays on the film on screen, and "next" is the row below it in the table.
    here = table_order.index(images["all"][0])
    assert data["position"] == images["all"][0] and data["order"] == table_order[here:]
    # The reader clicks the table's first row; a key labels it and the viewer moves to the second
    # row, the prefetched images following the table.
    table_key = next(element.key for element in app.dataframe if element.key.startswith("label_worklist"))
    app.session_state[table_key] = {"selection": {"rows": [0], "columns": []}}
    app.run()
    data = viewer_data(app, KEY)
    assert data["position"] == table_order[0] and data["order"] == table_order
    data = report(app, KEY, position=table_order[1], pending=[save(1, table_order[0], "normal")])
    assert data["position"] == table_order[1] and data["order"] == table_order[1:]


def test_thumbnails_are_made_in_the_background_and_shown_on_a_later_run(page_store, images):
    from ui.thumbnails import PLACEHOLDER, thumbnail_maker

    app = run_page_as("label", READER)
    pictures = list(_worklist_table(app)["picture"])
    assert pictures == [PLACEHOLDER] * len(images["all"])  # the page did not wait for pixels
    assert thumbnail_maker().wait(timeout=30)
    app.run()
    pictures = list(_worklist_table(app)["picture"])
    assert all(picture.startswith("data:image/jpeg;base64,") for picture in pictures)


def test_a_thumbnail_that_cannot_be_made_never_fails_the_page(page_store, images):
    from ui.thumbnails import PLACEHOLDER, thumbnail_maker

    first = images["all"][0]
    with page_store.db.read() as session:
        page_store.blobs.path_for(session.get(Image, first).sha256).write_bytes(b"truncated")
    app = run_page_as("label", READER)
    assert thumbnail_maker().wait(timeout=30)
    app.run()
    assert not app.exception
    rows = _worklist_table(app)
    pictures = dict(zip(rows["image_id"], rows["picture"], strict=True))
    assert pictures[first] == PLACEHOLDER
    assert all(picture.startswith("data:image/jpeg") for image_id, picture in pictures.items() if image_id != first)


# --- case mode (issue 17): a study-scoped class, the worklist lists studies ----------------------

CASE_KEY = "label_case_viewer"


@pytest.fixture
def studies(page_store) -> list[int]:
    """Beside the image classes, two study-scoped ones; three CT studies of three slices: patient
    P1's on 2024-01-01 and 2024-06-01, P2's on 2024-03-01 (study ids in upload order)."""
    create_user(page_store, SYSTEM, READER.username, "reader-password-1", role="annotator")
    for name in ("pe present", "no pe"):
        add_label_class(page_store, ADMIN, name, scope="study")
    files = []
    for number, patient in enumerate(("P1", "P1", "P2")):
        study_uid = f"1.2.826.0.1.7700.{number}"
        for slice_number in range(3):
            data = dicom_bytes(
                patient,
                study_uid=study_uid,
                series_uid=f"{study_uid}.1",
                instance_number=slice_number + 1,
                pixels=np.full((16, 16), number * 10 + slice_number, dtype=np.uint16),
            )
            files.append(InputFile(f"ct-{number}-{slice_number}.dcm", data))
    ingest_files(page_store, LOCAL_ACTOR, files)
    with page_store.db.write() as session:
        study_ids = list(session.scalars(select(Study.id).order_by(Study.id)))
        for study_id, study_date in zip(study_ids, ("20240101", "20240601", "20240301"), strict=True):
            session.get(Study, study_id).study_date = study_date
    return study_ids


def case_rows(app):  # type: ignore[no-untyped-def]
    return next(element for element in app.dataframe if element.key.startswith("label_case_worklist")).value


def test_a_study_scoped_class_makes_the_worklist_list_studies(page_store, studies):
    app = run_page_as("label", READER)
    rows = case_rows(app)
    assert rows["case_id"].tolist() == studies  # one row per study, not per slice
    assert rows["images"].tolist() == [3, 3, 3] and rows["prior_studies"].tolist() == [0, 1, 0]
    data = viewer_data(app, CASE_KEY)
    assert data["case"]["id"] == f"study:{studies[0]}"
    assert data["classes"] == ["pe present", "no pe"]  # the study's classes only
    assert [element for element in app.get("bidi_component") if element.key == KEY] == []


def test_a_class_key_saves_one_study_read_and_the_next_study_opens(page_store, studies):
    app = run_page_as("label", READER)
    first, second = studies[:2]
    owner = viewer_data(app, CASE_KEY)["owner"]
    pending = [{"seq": 41, "caseId": f"study:{first}", "label": "pe present", "seconds": 4.5, "viewport": 0,
                "owner": owner}]  # fmt: skip
    data = report(app, CASE_KEY, pending=pending)
    assert data["acked"] == [41] and data["failed"] == {}
    assert data["case"]["id"] == f"study:{second}"  # the next case opened
    # The browser resends its pending list until it sees the acknowledgement: no second save.
    data = report(app, CASE_KEY, pending=pending)
    assert data["acked"] == [41]
    with page_store.db.read() as session:
        [read] = session.scalars(select(Annotation)).all()
        assert (read.scope, read.case_id, read.label_class.name, read.seconds_on_case) == (
            "study", first, "pe present", 4.5
        )  # fmt: skip
    # The worklist follows: the study read left "to do", the study on screen is marked.
    rows = case_rows(app)
    assert rows["case_id"].tolist() == studies[1:]
    assert rows["row"].iloc[0].startswith("▶")


def test_the_next_study_rides_with_the_one_on_screen_so_a_key_opens_it_at_once(page_store, studies):
    app = run_page_as("label", READER)
    first, second, third = studies
    data = viewer_data(app, CASE_KEY)
    # The next case is hung as the current one is, with its first slice sent unasked.
    assert data["case"]["id"] == f"study:{first}" and data["next"]["id"] == f"study:{second}"
    next_first_slices = {f"{spec['images'][0]}:0" for spec in data["next"]["viewports"] if spec["images"]}
    assert next_first_slices and next_first_slices <= {row["key"] for row in data["pixels"]}
    # The browser opened the next study and the reader read it too before the first save came back:
    # the page follows past both, and the study on screen names the one after them.
    owner = data["owner"]
    pending = [
        {"seq": 51, "caseId": f"study:{first}", "label": "pe present", "seconds": 2.0, "viewport": 0, "owner": owner},
        {"seq": 52, "caseId": f"study:{second}", "label": "no pe", "seconds": 2.0, "viewport": 0, "owner": owner},
    ]
    data = report(app, CASE_KEY, pending=pending)
    assert sorted(data["acked"]) == [51, 52]
    assert data["case"]["id"] == f"study:{third}" and data["next"] is None  # nothing after it to do


def test_a_case_read_made_under_another_sign_in_is_refused(page_store, studies):
    app = run_page_as("label", READER)
    pending = [{"seq": 5, "caseId": f"study:{studies[0]}", "label": "no pe", "seconds": 1.0, "viewport": 0,
                "owner": "someone-else"}]  # fmt: skip
    data = report(app, CASE_KEY, pending=pending)
    assert data["acked"] == [] and "another sign-in" in data["failed"]["5"]
    assert data["case"]["id"] == f"study:{studies[0]}"


def test_the_reader_can_switch_a_mixed_project_back_to_images(page_store, studies):
    app = run_page_as("label", READER)
    app.toggle(key="label_case_mode").set_value(False).run()
    assert not app.exception, app.exception
    # The image classes only: a study's class is read on the study list, where the study counts.
    assert viewer_data(app, KEY)["classes"] == ["normal", "pneumonia"]


def test_a_study_read_sent_back_opens_with_the_reviewers_comment(page_store, studies):
    first_slice = case_images(page_store, "study", studies[1])[2]
    save_read(page_store, READER, first_slice, "no pe")
    with page_store.db.read() as session:
        read_id = session.scalar(select(Annotation.id))
    decide(page_store, ADMIN, read_id, "return", "compare with the prior")
    app = run_page_as("label", READER)
    app.segmented_control(key="label_status").set_value("returned").run()
    assert viewer_data(app, CASE_KEY)["case"]["id"] == f"study:{studies[1]}"
    assert [warning.value for warning in app.warning] == ["Sent back by the reviewer: compare with the prior"]


def test_a_series_scoped_class_lists_series_and_opens_one_series(page_store):
    create_user(page_store, SYSTEM, READER.username, "reader-password-1", role="annotator")
    add_label_class(page_store, ADMIN, "motion artefact", scope="series")
    study_uid = "1.2.826.0.1.7701"
    files = [
        InputFile(
            f"s{series}-{slice_number}.dcm",
            dicom_bytes(
                "P1", study_uid=study_uid, series_uid=f"{study_uid}.{series}", instance_number=slice_number + 1
            ),
        )
        for series in (1, 2)
        for slice_number in range(2)
    ]
    ids = [result.image_id for result in ingest_files(page_store, LOCAL_ACTOR, files)]
    app = run_page_as("label", READER)
    rows = case_rows(app)
    assert len(rows) == 2 and rows["images"].tolist() == [2, 2]
    case = viewer_data(app, CASE_KEY)["case"]
    assert case["id"] == f"series:{rows['case_id'].iloc[0]}" and case["layout"] == "1x1"
    assert case["viewports"][0]["images"] == ids[:2]
    assert viewer_data(app, CASE_KEY)["classes"] == ["motion artefact"]
