"""The Predictions page flags an image outside the model's training data instead of giving it a class
(AppTest; predictions written as a prediction job writes them, no TensorFlow)."""

from __future__ import annotations

import re

from medreview.ingest import InputFile, ingest_files
from medreview.reading.reads import LOCAL_ACTOR, save_read
from medreview.store.models import Prediction
from tests.conftest import run_page_as
from tests.helpers import add_model_version, dicom_bytes, png_bytes

REASON = "modality NM, trained on CR, DX"


def test_an_image_outside_the_training_data_is_flagged_not_called_normal(page_store):
    bone_scan, film = ingest_files(
        page_store,
        LOCAL_ACTOR,
        [InputFile("bone-scan.dcm", dicom_bytes("NM-1", modality="NM")), InputFile("film.png", png_bytes(3))],
    )
    save_read(page_store, LOCAL_ACTOR, bone_scan.image_id, "pneumonia")  # the label the model "disagrees" with
    model_id = add_model_version(page_store, active=True)
    with page_store.db.write() as session:
        for image_id, outside in ((bone_scan.image_id, True), (film.image_id, False)):
            session.add(
                Prediction(
                    image_id=image_id,
                    model_version_id=model_id,
                    predicted_class="normal",
                    probability=1.0,
                    probabilities={"normal": 1.0, "pneumonia": 0.0},
                    out_of_distribution=outside,
                    out_of_distribution_reason=REASON if outside else None,
                )
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
