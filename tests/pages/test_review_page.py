"""The Review page through AppTest: adjudication without bias, a queue that survives its own
decisions, sections computed only when shown, and a study read reviewed and adjudicated as one case."""

from __future__ import annotations

import numpy as np
import pytest
from sqlalchemy import select

from medreview.ingest import InputFile, ingest_files
from medreview.reading import review
from medreview.reading.cases import case_images
from medreview.reading.catalog import get_image
from medreview.reading.protocols import DEFAULT_PROTOCOLS
from medreview.reading.reads import LOCAL_ACTOR, current_labels, save_read
from medreview.reading.review import disagreements, review_queue
from medreview.reading.schema import add_label_class
from medreview.store import Store
from medreview.store.models import Study
from medreview.team.accounts import create_user
from medreview.team.roles import Actor
from medreview.team.settings import set_setting
from tests.conftest import ADMIN, run_page_as
from tests.helpers import add_model_version, add_predictions, dicom_bytes, png_bytes
from ui.text import plain

ANN = Actor("ann", "annotator")
BOB = Actor("bob", "annotator")
CY = Actor("cyd", "annotator")


def readers_and_images(store: Store, count: int) -> list[int]:
    for reader in (ANN, BOB, CY):
        create_user(store, ADMIN, reader.username, f"{reader.username}-password", reader.role)
    files = [InputFile(f"film{n}.png", png_bytes(700 + n)) for n in range(count)]
    return [result.image_id for result in ingest_files(store, LOCAL_ACTOR, files)]


def test_adjudication_starts_with_no_class_shows_each_read_and_refuses_without_a_class(page_store):
    [image_id] = readers_and_images(page_store, 1)
    save_read(page_store, ANN, image_id, "normal")
    save_read(page_store, BOB, image_id, "pneumonia")
    save_read(page_store, CY, image_id, "pneumonia")
    app = run_page_as("review")
    app.button_group(key="review_section").set_value("disagreements").run()
    assert not app.exception
    final = app.radio(key=f"review_adjudicate_label_{image_id}")
    # Most readers said pneumonia, the schema's second class: nothing is chosen for the reviewer.
    assert final.value is None
    tally = plain("pneumonia: 2 (bob, cyd) · normal: 1 (ann)")
    assert any(tally in markdown.value for markdown in app.markdown)
    reads = app.dataframe[1].value
    assert dict(zip(reads["reader"], reads["label"], strict=True)) == {
        "ann": "normal",
        "bob": "pneumonia",
        "cyd": "pneumonia",
    }

    app.button(key="review_adjudicate").click().run()
    assert not app.exception
    assert "choose the final class" in app.error[0].value
    assert list(disagreements(page_store, ADMIN)["image_id"]) == [image_id]  # nothing decided

    app.radio(key=f"review_adjudicate_label_{image_id}").set_value("normal").run()
    app.button(key="review_adjudicate").click().run()
    assert not app.exception
    assert disagreements(page_store, ADMIN).empty
    labels = current_labels(page_store).set_index("image_id")
    assert (labels.loc[image_id, "label"], labels.loc[image_id, "method"]) == ("normal", "adjudicated")
    assert "No open disagreements." in [info.value for info in app.info]  # the decision shows at once


def test_deciding_the_last_row_of_the_queue_moves_on_without_failing(page_store):
    image_ids = readers_and_images(page_store, 3)
    for image_id in image_ids:
        save_read(page_store, ANN, image_id, "normal")
    app = run_page_as("review")
    # The reviewer picks the last row of the queue and approves it: the row leaves the queue and
    # the pick points past its end.
    app.session_state["review_queue_table_0"] = {"selection": {"rows": [2], "columns": [], "cells": []}}
    app.run()
    assert [m.value for m in app.markdown if m.value.startswith("**ann** read")] == ["**ann** read **normal**"]
    app.button(key="review_approve").click().run()
    assert not app.exception, app.exception
    assert list(review_queue(page_store, ADMIN)["image_id"]) == image_ids[:2]
    assert len(app.dataframe[0].value) == 2
    # The page shows the new last row's read, ready for the next decision.
    assert [m.value for m in app.markdown if m.value.startswith("**ann** read")] == ["**ann** read **normal**"]
    app.button(key="review_approve").click().run()
    assert not app.exception
    assert list(review_queue(page_store, ADMIN)["image_id"]) == image_ids[:1]


def test_a_page_of_the_queue_that_empties_falls_back_to_the_last_page(page_store):
    image_ids = readers_and_images(page_store, 51)  # one page of 50 reads, and one more
    for image_id in image_ids:
        save_read(page_store, BOB, image_id, "pneumonia")
    app = run_page_as("review")
    assert "Reads 1–50 of 51" in [caption.value for caption in app.caption]
    app.number_input(key="review_queue_page").set_value(2).run()
    assert len(app.dataframe[0].value) == 1
    assert "Reads 51–51 of 51" in [caption.value for caption in app.caption]
    app.button(key="review_approve").click().run()
    assert not app.exception, app.exception
    assert "Reads 1–50 of 50" in [caption.value for caption in app.caption]
    assert len(app.dataframe[0].value) == 50


def test_only_the_section_shown_is_computed(page_store, monkeypatch: pytest.MonkeyPatch):
    [image_id] = readers_and_images(page_store, 1)
    save_read(page_store, ANN, image_id, "normal")
    computed: list[str] = []
    for name in ("agreement", "disagreements_page", "review_queue_page"):
        service = getattr(review, name)
        monkeypatch.setattr(
            review,
            name,
            lambda *args, _service=service, _name=name, **kwargs: computed.append(_name) or _service(*args, **kwargs),
        )
    app = run_page_as("review")
    assert computed == ["review_queue_page"]
    computed.clear()
    app.button_group(key="review_section").set_value("agreement").run()
    assert not app.exception
    assert computed == ["agreement"]


def test_a_missing_class_or_blind_label_shows_a_dash_not_none(page_store):
    [image_id] = readers_and_images(page_store, 1)
    save_read(page_store, ANN, image_id, "normal")  # not blinded: no blind label
    box = {"label": "pneumonia", "x": 2, "y": 2, "width": 8, "height": 8}
    save_read(page_store, BOB, image_id, boxes=[box])  # a box only: no class
    app = run_page_as("review")
    queue, reads = (table.value for table in app.dataframe[:2])
    # Streamlit draws a missing cell as "None": every column of both tables has a value.
    assert not queue.isna().any().any() and not reads.isna().any().any()
    assert dict(zip(queue["reader"], queue["label"], strict=True)) == {"ann": "normal", "bob": "—"}
    assert list(reads["blind_label"]) == ["—", "—"]
    assert dict(zip(reads["reader"], reads["label"], strict=True)) == {"ann": "normal", "bob": "—"}


def test_approving_a_read_of_a_disagreement_says_it_settles_it_and_does(page_store):
    [image_id] = readers_and_images(page_store, 1)
    save_read(page_store, ANN, image_id, "normal")
    save_read(page_store, BOB, image_id, "pneumonia")
    app = run_page_as("review")
    assert app.button_group(key="review_section").options[1] == "Disagreements (1)"
    assert any(
        "Readers disagree on this image: approving this read makes **normal** its final label" in warning.value
        for warning in app.warning
    )
    app.button(key="review_approve").click().run()
    assert not app.exception
    assert disagreements(page_store, ADMIN).empty and review_queue(page_store, ADMIN).empty
    assert app.button_group(key="review_section").options[1] == "Disagreements (0)"
    assert "No submitted reads are waiting for review." in [info.value for info in app.info]


def test_a_reviewer_downloads_the_label_exports_but_not_the_original_names(page_store):
    from tests.pages.test_team_page import downloads_sent

    [image_id] = readers_and_images(page_store, 1)
    save_read(page_store, ANN, image_id, "normal")
    create_user(page_store, ADMIN, "rev", "rev-password-1", "reviewer")
    app = run_page_as("review", Actor("rev", "reviewer"))
    app.button_group(key="review_section").set_value("export").run()
    assert not app.exception, app.exception
    # The label exports, as the README promises reviewers; the original file names are for admins.
    assert app.selectbox(key="review_export_kind").options == ["labels", "reads", "predictions", "coco"]
    assert [box for box in app.checkbox if box.key == "review_export_original_names"] == []
    app.selectbox(key="review_export_kind").set_value("reads").run()
    app.button(key="review_export").click().run()
    assert not app.exception, app.exception
    [reads] = downloads_sent(app)
    assert reads["name"] == "reads.csv" and reads["mime"] == "text/csv"
    assert reads["content"].decode().splitlines()[1].count(",normal,") == 1
    assert "reads.csv: 1 rows." in [success.value for success in app.success]


def test_with_an_active_model_the_map_is_beside_the_image_and_an_outside_image_has_no_probability(page_store):
    from tests.pages.test_predictions_page import store_view_maps
    from tests.pages.viewer import viewer_data

    film, scan = readers_and_images(page_store, 2)
    save_read(page_store, ANN, film, "pneumonia")
    save_read(page_store, BOB, scan, "normal")
    model_id = add_model_version(page_store, active=True)
    calls = {key: {"normal": 0.416, "pneumonia": 0.584} for key in (film, scan)}
    add_predictions(page_store, model_id, calls, {scan: "modality NM, trained on CR, DX"})
    for image_id in (film, scan):
        store_view_maps(page_store, model_id, image_id, (0.416, 0.584))
    app = run_page_as("review")
    assert not app.exception
    data = viewer_data(app, "review_viewer")
    assert data["split"] is True and [overlay["label"] for overlay in data["overlays"]] == ["Grad-CAM: pneumonia"]
    assert any("pneumonia** (58.4%)" in caption.value for caption in app.caption)
    # The second read of the queue is of the image outside the training data: a map, no figure.
    app.session_state["review_queue_table_0"] = {"selection": {"rows": [1], "columns": [], "cells": []}}
    app.run()
    assert viewer_data(app, "review_viewer")["position"] == scan
    captions = " ".join(caption.value for caption in app.caption)
    assert "outside what the model was trained on" in captions and "58.4%" not in captions


# --- cases (issue 17): a study-scoped class is reviewed and adjudicated as one case ---------------


@pytest.fixture
def study_read_twice(page_store) -> tuple[int, list[int]]:
    """A CT study of patient P1 dated 2024-03-01, one series of three slices, and a study-scoped
    pair of classes; ann read the study "pe present" (from its last slice), bob "no pe".
    Returns (study id, slice ids in reading order)."""
    for reader in (ANN, BOB, CY):
        create_user(page_store, ADMIN, reader.username, f"{reader.username}-password", reader.role)
    for name in ("pe present", "no pe"):
        add_label_class(page_store, ADMIN, name, scope="study")
    files = [
        InputFile(
            f"ct-{number}.dcm",
            dicom_bytes(
                "P1",
                study_uid="1.2.826.0.1.7701",
                series_uid="1.2.826.0.1.7701.1",
                instance_number=number + 1,
                pixels=np.full((16, 16), 10 * number, dtype=np.uint16),
            ),
        )
        for number in range(3)
    ]
    ingest_files(page_store, LOCAL_ACTOR, files)
    with page_store.db.write() as session:
        study = session.scalars(select(Study)).one()
        study.study_date = "20240301"
        study_id = study.id
    slices = case_images(page_store, "study", study_id)
    save_read(page_store, ANN, slices[2], "pe present")
    save_read(page_store, BOB, slices[0], "no pe")
    return study_id, slices


def test_a_study_disagreement_is_one_row_opens_the_study_and_one_adjudication_settles_it(page_store, study_read_twice):
    from tests.pages.viewer import viewer_data

    study_id, slices = study_read_twice
    # The generated slices carry no orientation: a site's rule hangs any CT in three windows.
    three_windows = {
        "name": "CT: three windows",
        "modality": ["CT"],
        "layout": "1x3",
        "viewports": [{"modality": "CT", "preset": preset} for preset in ("mediastinum", "lung", "bone")],
    }
    set_setting(page_store, ADMIN, "hanging_protocols", [three_windows, *DEFAULT_PROTOCOLS])
    app = run_page_as("review")
    assert app.button_group(key="review_section").options[1] == "Disagreements (1)"
    app.button_group(key="review_section").set_value("disagreements").run()
    assert not app.exception, app.exception
    [row] = app.dataframe[0].value.to_dict(orient="records")  # one row for the study, not one per slice
    # The patient's pseudonym, never the PatientID "P1" the files carried.
    assert row["case"] == f"Study · {pseudonym(page_store, slices[0])} · 2024-03-01 · CT" and row["scope"] == "study"
    # The whole study in the case viewer's grid, hung by the project's protocols: every slice of its
    # series in each window, not just its key image.
    data = viewer_data(app, "review_case_viewer")
    assert (data["case"]["id"], data["case"]["layout"]) == (f"study:{study_id}", "1x3")
    assert [(viewport["preset"], viewport["images"]) for viewport in data["case"]["viewports"]] == [
        ("Mediastinum", slices),
        ("Lung", slices),
        ("Bone", slices),
    ]
    assert "Hung by" in " ".join(caption.value for caption in app.caption)
    reads = app.dataframe[1].value
    assert dict(zip(reads["reader"], reads["label"], strict=True)) == {"ann": "pe present", "bob": "no pe"}
    # The final label is one of the study's classes, chosen for the study.
    final = app.radio(key=f"review_adjudicate_label_study_{study_id}")
    assert final.options == ["pe present", "no pe"] and final.value is None
    final.set_value("pe present").run()
    app.button(key="review_adjudicate").click().run()
    assert not app.exception, app.exception
    assert disagreements(page_store, ADMIN).empty
    [final_label] = current_labels(page_store, scope="study").to_dict(orient="records")
    assert (final_label["label"], final_label["method"]) == ("pe present", "adjudicated")
    assert {read["reader"]: read["status"] for read in case_reads_of(page_store, study_id)} == {
        "ann": "approved",
        "bob": "overruled",
    }
    assert "No open disagreements." in [info.value for info in app.info]


def pseudonym(store: Store, image_id: int) -> str:
    return get_image(store, ADMIN, image_id).patient_key


def case_reads_of(store: Store, study_id: int) -> list[dict]:
    return review.case_reads(store, ADMIN, "study", study_id).to_dict(orient="records")


def test_the_queue_row_of_a_study_read_names_the_study_and_approving_acts_on_its_read(page_store, study_read_twice):
    from tests.pages.viewer import viewer_data

    study_id, slices = study_read_twice
    app = run_page_as("review")
    assert not app.exception, app.exception
    queue = app.dataframe[0].value
    assert list(queue["case"]) == [f"Study · {pseudonym(page_store, slices[0])} · 2024-03-01 · CT"] * 2
    assert "P1" not in " ".join(queue.astype(str).to_numpy().ravel())
    assert viewer_data(app, "review_case_viewer")["case"]["id"] == f"study:{study_id}"
    assert any("Readers disagree on this study" in warning.value for warning in app.warning)
    app.button(key="review_approve").click().run()  # ann's read: pe present
    assert not app.exception, app.exception
    assert {read["reader"]: read["status"] for read in case_reads_of(page_store, study_id)} == {
        "ann": "approved",
        "bob": "overruled",
    }
    assert review_queue(page_store, ADMIN).empty


def test_agreement_counts_a_study_read_by_two_readers_once(page_store, study_read_twice):
    app = run_page_as("review")
    app.button_group(key="review_section").set_value("agreement").run()
    assert not app.exception, app.exception
    # Three slices, two study reads: one item.
    assert "Cases read by several readers: 1" in [caption.value for caption in app.caption]
    fleiss = app.dataframe[-1].value  # Fleiss' kappa per class
    counted = fleiss.set_index("class").loc["pe present"]
    assert (counted["n_cases"], counted["scope"]) == (1, "study")


def test_a_series_read_in_the_queue_opens_its_series_and_sending_it_back_returns_that_read(
    page_store, study_read_twice
):
    from tests.pages.viewer import viewer_data

    _study_id, slices = study_read_twice
    add_label_class(page_store, ADMIN, "motion artefact", scope="series")
    save_read(page_store, CY, slices[1], "motion artefact")  # the third read of the queue
    [series_read] = review_queue(page_store, ADMIN).query("scope == 'series'").to_dict(orient="records")
    app = run_page_as("review")
    app.session_state["review_queue_table_0"] = {"selection": {"rows": [2], "columns": [], "cells": []}}
    app.run()
    assert not app.exception, app.exception
    assert app.dataframe[0].value["case"].iloc[2] == f"Series · {pseudonym(page_store, slices[0])} · CT"
    # The series alone, every slice of it.
    data = viewer_data(app, "review_case_viewer")
    assert data["case"]["id"] == f"series:{series_read['case_id']}"
    assert [viewport["images"] for viewport in data["case"]["viewports"]] == [slices]
    app.text_input(key=f"review_comment_{series_read['annotation_id']}").set_value("look again").run()
    app.button(key="review_return").click().run()
    assert not app.exception, app.exception
    [read] = review.case_reads(page_store, ADMIN, "series", series_read["case_id"]).to_dict(orient="records")
    assert (read["reader"], read["status"], read["review_comment"]) == ("cyd", "returned", "look again")


# --- review at speed (issue 18): filters, batch approval, the keyboard, auto-accepted labels -----


def queue_with_model_calls(store: Store) -> tuple[list[int], list[int]]:
    """ann's reads of three films the active model calls: the first as ann did (90%), the second
    otherwise (70%), the third outside its training data. Returns (image ids, read ids)."""
    images = readers_and_images(store, 3)
    for image_id, label in zip(images, ("pneumonia", "normal", "normal"), strict=True):
        save_read(store, ANN, image_id, label)
    model_id = add_model_version(store, active=True)
    calls = {images[0]: {"normal": 0.1, "pneumonia": 0.9}, images[1]: {"normal": 0.3, "pneumonia": 0.7}}
    calls[images[2]] = {"normal": 0.2, "pneumonia": 0.8}
    add_predictions(store, model_id, calls, {images[2]: "modality NM, trained on CR, DX"})
    return images, [int(read) for read in review_queue(store, ADMIN)["annotation_id"]]


def queue_table(app):  # type: ignore[no-untyped-def]
    return next(frame.value for frame in app.dataframe if "model" in frame.value.columns)


def test_the_queue_filters_by_what_readers_and_model_say_and_approves_selected_rows_at_once(page_store):
    images, reads = queue_with_model_calls(page_store)
    app = run_page_as("review")
    assert app.selectbox(key="review_filter").options == [
        "All reads (3)",
        "Readers and model agree (1)",
        "Readers disagree (0)",
        "Model disagrees with readers (1)",
        "Outside the training data (1)",
    ]
    assert queue_table(app)["model"].tolist() == ["pneumonia 90%", "pneumonia 70%", "outside the training data"]
    app.selectbox(key="review_filter").set_value("model_disagrees").run()
    assert queue_table(app)["image_id"].tolist() == [images[1]]
    app.selectbox(key="review_filter").set_value("all").run()
    app.slider(key="review_band").set_value((0.85, 1.0)).run()
    assert queue_table(app)["image_id"].tolist() == [images[0]]
    app.slider(key="review_band").set_value((0.0, 1.0)).run()
    # Two rows picked, approved in one action: one audited decision per read.
    table_key = f"review_queue_table_{app.session_state['review_queue_drawn']['version']}"
    app.session_state[table_key] = {"selection": {"rows": [0, 2], "columns": [], "cells": []}}
    app.run()
    app.button(key="review_approve_selected").click().run()
    assert not app.exception
    assert "Approved 2 reads." in [message.value for message in app.success]
    remaining = review_queue(page_store, ADMIN)
    assert remaining["annotation_id"].tolist() == [reads[1]]
    actions = audit_events(page_store, "review.approve")
    assert sorted(int(event.object_id) for event in actions) == sorted([reads[0], reads[2]])


def test_a_key_reported_by_the_keyboard_decides_the_read_on_screen_once_and_the_next_opens(page_store):
    from tests.pages.viewer import viewer_data

    images, reads = queue_with_model_calls(page_store)
    app = run_page_as("review")
    assert viewer_data(app, "review_viewer")["position"] == images[0]
    # The next images of the queue are in the viewer's list, fetched ahead of the decision.
    assert viewer_data(app, "review_viewer")["order"] == images
    press = {"mount": "m1", "seq": 1, "action": "approve", "annotation": reads[0], "comment": ""}
    app.session_state["review_keys"] = {"pressed": press}
    app.run()
    assert not app.exception
    assert viewer_data(app, "review_viewer")["position"] == images[1]
    app.run()  # the same press again (not yet replaced in the browser): handled once
    assert review_queue(page_store, ADMIN)["annotation_id"].tolist() == reads[1:]
    assert len(audit_events(page_store, "review.approve")) == 1
    # A key for a read no longer on screen decides nothing.
    app.session_state["review_keys"] = {"pressed": {**press, "seq": 2, "annotation": reads[0]}}
    app.run()
    assert any("nothing was decided" in message.value for message in app.warning)
    assert len(review_queue(page_store, ADMIN)) == 2
    # J moves the highlighted row (the viewer stays on the open read), Enter opens it.
    app.session_state["review_keys"] = {"pressed": {**press, "seq": 3, "action": "next"}}
    app.run()
    assert queue_table(app)[" "].tolist() == ["▶", "›"]
    assert viewer_data(app, "review_viewer")["position"] == images[1]
    app.session_state["review_keys"] = {"pressed": {**press, "seq": 4, "action": "open"}}
    app.run()
    assert queue_table(app)[" "].tolist() == ["", "▶"]
    assert viewer_data(app, "review_viewer")["position"] == images[2]


def test_the_auto_accepted_labels_are_counted_and_a_reviewer_reverts_one(page_store):
    images = readers_and_images(page_store, 1)
    model_id = add_model_version(page_store, active=True)
    add_predictions(page_store, model_id, {images[0]: {"normal": 0.02, "pneumonia": 0.98}})
    for key, value in (("auto_accept", True), ("auto_accept_readers", 2), ("auto_accept_probability", 0.9)):
        set_setting(page_store, ADMIN, key, value)
    save_read(page_store, ANN, images[0], "pneumonia")
    save_read(page_store, BOB, images[0], "pneumonia")
    app = run_page_as("review")
    assert "Auto-accepted (1)" in app.segmented_control(key="review_section").options  # counted on the page
    app.segmented_control(key="review_section").set_value("auto_accepted").run()
    assert any("at least 2 readers agree" in caption.value for caption in app.caption)
    app.text_input(key="review_revert_note").input("left base needs a second look").run()
    app.button(key="review_revert").click().run()
    assert not app.exception
    assert "Reverted: 2 reads are back in the queue." in [message.value for message in app.success]
    assert len(review_queue(page_store, ADMIN)) == 2
    (event,) = audit_events(page_store, "review.auto_accept_revert")
    assert event.details["comment"] == "left base needs a second look"


def audit_events(store: Store, action: str) -> list:  # type: ignore[type-arg]
    from medreview.store.models import AuditEvent

    with store.db.read() as session:
        return list(session.scalars(select(AuditEvent).where(AuditEvent.action == action)))
