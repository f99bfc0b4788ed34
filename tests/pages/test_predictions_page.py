"""The Predictions page (AppTest; predictions written as a prediction job writes them, no TensorFlow):
an image outside the model's training data is flagged instead of given a class, the last row clicked
in any tab is the one shown, and an annotator is offered only what the role and blinding allow."""

from __future__ import annotations

import io
import re

import numpy as np
from sqlalchemy import update

from medreview.ingest import InputFile, ingest_files
from medreview.reading.reads import LOCAL_ACTOR, save_read
from medreview.store.models import Prediction
from medreview.team.accounts import create_user
from medreview.team.roles import Actor
from medreview.team.settings import set_setting
from tests.conftest import ADMIN, run_page_as
from tests.helpers import add_model_version, add_predictions, dicom_bytes, png_bytes
from tests.ml.case_store import CaseStore
from tests.pages.viewer import viewer_data

REASON = "modality NM, trained on CR, DX"


def test_an_image_outside_the_training_data_is_flagged_not_called_normal(page_store):
    bone_scan, film = ingest_files(
        page_store,
        LOCAL_ACTOR,
        [InputFile("bone-scan.dcm", dicom_bytes("NM-1", modality="NM")), InputFile("film.png", png_bytes(3))],
    )
    save_read(page_store, LOCAL_ACTOR, bone_scan.image_id, "pneumonia")  # the label the model "disagrees" with
    model_id = add_model_version(page_store, active=True)
    add_predictions(
        page_store,
        model_id,
        {key: {"normal": 1.0, "pneumonia": 0.0} for key in (bone_scan.image_id, film.image_id)},
        {bone_scan.image_id: REASON},
    )

    app = run_page_as("predictions")
    table = app.dataframe[0].value.set_index("file")
    [flagged] = [name for name in table.index if name.endswith(".dcm")]
    [inside] = [name for name in table.index if name.endswith(".png")]
    assert table.loc[flagged, "predicted_class"] == "outside the training data"
    assert table.loc[flagged, "outside_reason"] == REASON
    assert table.loc[inside, ["predicted_class", "probability"]].tolist() == ["normal", 1.0]
    assert "1 of these images lie outside the data this model was trained on" in " ".join(
        caption.value for caption in app.caption
    )
    # Not "normal 100%", and not a confident disagreement with its label either.
    verdict = re.sub(r"\\(.)", r"\1", app.markdown[0].value)
    assert verdict == f"Model: **outside the training data** ({REASON}): no class is given · label: **pneumonia**"
    assert "Model and label disagree (0)" in [tab.label for tab in app.tabs]


def predicted_films(store, count: int) -> tuple[list[int], int]:
    """``count`` films with a prediction each from an active model version (no TensorFlow): the
    first is labelled "normal" and called "pneumonia", so it is also a model/label disagreement."""
    results = ingest_files(store, LOCAL_ACTOR, [InputFile(f"film{n}.png", png_bytes(40 + n)) for n in range(count)])
    image_ids = [result.image_id for result in results]
    save_read(store, LOCAL_ACTOR, image_ids[0], "normal")
    model_id = add_model_version(store, active=True)
    add_predictions(store, model_id, {key: {"normal": 0.1, "pneumonia": 0.9} for key in image_ids})
    return image_ids, model_id


def viewed_image(app) -> int:  # type: ignore[no-untyped-def]
    return viewer_data(app, "predict_viewer")["position"]


def test_the_most_recent_click_wins_whichever_tab_it_was_in(page_store):
    image_ids, _ = predicted_films(page_store, 3)
    app = run_page_as("predictions")
    assert viewed_image(app) == image_ids[0]
    # The reader picks the one disagreement, then goes back to "All" and picks the third film.
    app.session_state["predict_disagree"] = {"selection": {"rows": [0], "columns": [], "cells": []}}
    app.run()
    assert viewed_image(app) == image_ids[0]
    app.session_state["predict_table"] = {"selection": {"rows": [2], "columns": [], "cells": []}}
    app.run()
    assert not app.exception
    assert viewed_image(app) == image_ids[2]
    app.session_state["predict_table"] = {"selection": {"rows": [1], "columns": [], "cells": []}}
    app.run()
    assert viewed_image(app) == image_ids[1]
    # A rerun with nothing clicked (a map arriving, another widget) keeps the image on screen.
    app.run()
    assert viewed_image(app) == image_ids[1]
    # And the disagreement tab's row, picked again, wins again.
    app.session_state["predict_disagree"] = {"selection": {"rows": [], "columns": [], "cells": []}}
    app.run()
    app.session_state["predict_disagree"] = {"selection": {"rows": [0], "columns": [], "cells": []}}
    app.run()
    assert viewed_image(app) == image_ids[0]


def test_an_annotator_is_not_offered_the_run_and_hears_what_blinding_hides(page_store):
    image_ids, _ = predicted_films(page_store, 3)
    create_user(page_store, ADMIN, "ann", "annotator-password", "annotator")
    set_setting(page_store, ADMIN, "blinded", True)
    annotator = Actor("ann", "annotator")

    app = run_page_as("predictions", annotator)
    assert [button for button in app.button if button.key == "predict_run"] == []
    assert [expander for expander in app.expander if expander.label == "Run the model"] == []
    notes = " ".join(info.value for info in app.info)
    assert "No predictions from this model yet" not in notes
    assert "Blinded reading" in notes and "3 images" in notes and "Label page" in notes

    # Once the annotator has read a film, its prediction shows, and the rest are said to be hidden.
    save_read(page_store, annotator, image_ids[1], "normal")
    app = run_page_as("predictions", annotator)
    assert len(app.dataframe[0].value) == 1 and viewed_image(app) == image_ids[1]
    assert any("2 more images" in caption.value for caption in app.caption)

    # Without blinding the annotator sees every prediction, and is told who runs the model.
    set_setting(page_store, ADMIN, "blinded", False)
    app = run_page_as("predictions", annotator)
    assert len(app.dataframe[0].value) == 3
    assert [button for button in app.button if button.key == "predict_run"] == []


def test_an_annotator_without_predictions_hears_who_runs_the_model(page_store):
    add_model_version(page_store, active=True)
    create_user(page_store, ADMIN, "ann", "annotator-password", "annotator")
    app = run_page_as("predictions", Actor("ann", "annotator"))
    assert [button for button in app.button if button.key == "predict_run"] == []
    assert [info.value for info in app.info] == [
        "No predictions from this model yet: a reviewer or an admin runs the model on the images."
    ]
    # A reviewer is offered the run, and told to use it.
    app = run_page_as("predictions")
    assert [button.key for button in app.button if button.key == "predict_run"] == ["predict_run"]
    assert [info.value for info in app.info] == ["No predictions from this model yet: run it above."]


def store_view_maps(store, model_id: int, image_id: int, probabilities: tuple[float, float]) -> None:
    """The maps of an image's first view as the explanation job leaves them (no TensorFlow): one
    map per class, and the model's probabilities on that view."""
    from medreview.ml.explanations import _job_params

    path = store.data_path(_job_params(model_id, image_id, 0, None, "gradcam")["path"])
    path.parent.mkdir(parents=True, exist_ok=True)
    maps = np.stack([np.full((8, 8), 0.25), np.eye(8)]).astype(np.float16)  # (2, 8, 8): normal, pneumonia
    np.savez(path, maps=maps, probabilities=np.asarray(probabilities, dtype=np.float32))


def test_the_map_opens_beside_the_image_on_the_class_each_image_was_given(page_store):
    image_ids, model_id = predicted_films(page_store, 2)
    with page_store.db.write() as session:
        session.execute(
            update(Prediction)
            .where(Prediction.image_id == image_ids[1])
            .values(predicted_class="normal", probability=0.7, probabilities={"normal": 0.7, "pneumonia": 0.3})
        )
    for image_id in image_ids:
        store_view_maps(page_store, model_id, image_id, (0.3, 0.7))
    app = run_page_as("predictions")
    [cam_class] = [box for box in app.selectbox if box.label == "Map for class"]
    assert cam_class.value == "pneumonia"
    data = viewer_data(app, "predict_viewer")
    # Two viewports, the second with the map of that class over the image.
    assert data["split"] is True
    assert [overlay["label"] for overlay in data["overlays"]] == ["Grad-CAM: pneumonia"]
    # The next image was called "normal": its map opens on "normal", not on the class picked before.
    app.session_state["predict_table"] = {"selection": {"rows": [1], "columns": [], "cells": []}}
    app.run()
    assert viewed_image(app) == image_ids[1]
    [cam_class] = [box for box in app.selectbox if box.label == "Map for class"]
    assert cam_class.value == "normal"
    assert [overlay["label"] for overlay in viewer_data(app, "predict_viewer")["overlays"]] == ["Grad-CAM: normal"]


def test_an_image_outside_the_training_data_gets_a_map_but_no_probability(page_store):
    [scan] = ingest_files(page_store, LOCAL_ACTOR, [InputFile("scan.dcm", dicom_bytes("NM-2", modality="NM"))])
    model_id = add_model_version(page_store, active=True)
    add_predictions(
        page_store, model_id, {scan.image_id: {"normal": 0.584, "pneumonia": 0.416}}, {scan.image_id: REASON}
    )
    store_view_maps(page_store, model_id, scan.image_id, (0.584, 0.416))
    app = run_page_as("predictions")
    assert not app.exception
    shown = " ".join([caption.value for caption in app.caption] + [markdown.value for markdown in app.markdown])
    assert "Grad-CAM for" in shown  # the map is there
    assert "%" not in shown and "the model gives" not in shown  # not "the model gives normal 58.4%"
    assert "outside what the model was trained on" in shown


def predicted_studies(store) -> tuple[CaseStore, list[list[int]], int]:  # type: ignore[no-untyped-def]
    """Two generated CT studies of 6 slices, each predicted by a study-level case model version kept
    beside an active image model, written as the prediction job writes them (no TensorFlow): the
    top slices of study 0 are its slices 5, 2, 3 (attention 0.5, 0.2, 0.1)."""
    from medreview.reading.cases import case_images
    from medreview.store.blobs import atomic_write
    from medreview.store.models import ModelVersion
    from tests.ml.case_store import case_store

    cases = case_store(store, studies=2, slices=6)
    add_model_version(store, active=True)  # the image model stays active
    version_id = add_model_version(store, class_names=("clear", "lesion"))
    with store.db.write() as session:
        session.get(ModelVersion, version_id).metrics = {"scope": "study", "threshold": 0.5}
    members = [case_images(store, "study", study_id) for study_id in cases.study_ids]
    attention = np.array([0.05, 0.2, 0.1, 0.05, 0.5, 0.1], dtype=np.float32)
    with store.db.write() as session:
        for study_id, images in zip(cases.study_ids, members, strict=True):
            relative = f"cache/cases/{version_id}-study-{study_id}.npz"
            buffer = io.BytesIO()
            np.savez(
                buffer,
                image_ids=np.array(images),
                attention=attention,
                top=np.array([4, 1, 2]),
                maps_gradcam=np.zeros((2, 3, 8, 8), dtype=np.float16),  # empty, as it can come out
                maps_hirescam=np.random.default_rng(0).random((2, 3, 8, 8)).astype(np.float16),
            )
            atomic_write(store.data_path(relative), buffer.getvalue())
            session.add(
                Prediction(
                    image_id=images[0],
                    scope="study",
                    case_id=study_id,
                    model_version_id=version_id,
                    predicted_class="lesion",
                    probability=0.8,
                    probabilities={"clear": 0.2, "lesion": 0.8},
                    heatmap_path=relative,
                )
            )
    return cases, members, version_id


def test_a_case_model_lists_studies_and_their_top_slices_and_a_click_opens_one(page_store):
    cases, members, version_id = predicted_studies(page_store)
    study_ids = cases.study_ids
    app = run_page_as("predictions")
    app.selectbox(key="predict_model").set_value(version_id).run()
    assert not app.exception, app.exception
    # One row per study, not per slice, with the study's label.
    table = app.dataframe[0].value
    assert list(table["case"]) == [f"Study {study_id} · CT" for study_id in study_ids]
    assert list(table["slices"]) == [6, 6] and set(table["predicted_class"]) == {"lesion"}
    assert list(table["label"]) == cases.labels
    # Beside the viewer: the top slices by attention, highest first; the viewer opens on the first
    # with the Grad-CAM maps of the top slices in its map layer.
    buttons = [button.label for button in app.button if button.key and button.key.startswith("predict_top_")]
    assert buttons == ["Slice 5 · attention 0.50", "Slice 2 · attention 0.20", "Slice 3 · attention 0.10"]
    data = viewer_data(app, "predict_viewer")
    assert data["position"] == members[0][4] and data["split"] is True
    assert {overlay["key"] for overlay in data["overlays"]} == {f"{members[0][i]}:0" for i in (4, 1, 2)}
    # Grad-CAM's maps, empty here, say so; HiResCAM's are the other choice.
    assert all(overlay["label"].startswith("Grad-CAM: lesion") for overlay in data["overlays"])
    assert any("the Grad-CAM map is empty" in caption.value for caption in app.caption)
    app.radio(key="predict_case_method").set_value("hirescam").run()
    data = viewer_data(app, "predict_viewer")
    assert all(overlay["label"].startswith("HiResCAM: lesion") for overlay in data["overlays"])
    assert not any("map is empty" in caption.value for caption in app.caption)
    # A click on "Slice 2" moves the viewer there.
    [second] = [button for button in app.button if button.label.startswith("Slice 2 ")]
    second.click().run()
    data = viewer_data(app, "predict_viewer")
    assert data["position"] == members[0][1]
    # Picking the second study shows its slices.
    app.session_state["predict_cases"] = {"selection": {"rows": [1], "columns": [], "cells": []}}
    app.run()
    assert viewer_data(app, "predict_viewer")["position"] == members[1][4]
