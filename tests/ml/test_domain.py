"""The training domain of a model version and the images outside it (no TensorFlow)."""

from __future__ import annotations

import pytest

from medreview.errors import TrainingError
from medreview.ingest import InputFile, ingest_files
from medreview.ml.domain import ImageFacts, describe_domain, domain_facts, domain_summary, outside_domain
from medreview.reading.reads import LOCAL_ACTOR
from tests.helpers import dicom_bytes, png_bytes

# Chest films as a chest X-ray model sees them: DX and CR, greyscale MONOCHROME2, 2000-3000 px.
CHEST = [
    ImageFacts("DX", "MONOCHROME2", 2500, 2048),
    ImageFacts("CR", "MONOCHROME2", 3000, 2500),
    ImageFacts("DX", "MONOCHROME2", 2000, 2000),
]


def test_the_domain_records_modalities_photometry_colour_and_size_range():
    assert describe_domain(CHEST) == {
        "modalities": ["CR", "DX"],
        "photometric_interpretations": ["MONOCHROME2"],
        "colour": ["greyscale"],
        "rows": [2000, 3000],
        "columns": [2000, 2500],
        "size_factor": 2.0,
        "images": 3,
    }
    assert domain_summary(describe_domain(CHEST)) == "CR, DX · greyscale (MONOCHROME2) · 2000-2500 x 2000-3000 px"


def test_another_chest_film_is_inside():
    domain = describe_domain(CHEST)
    assert outside_domain(domain, ImageFacts("CR", "MONOCHROME2", 2200, 1800)) is None
    # Within a factor of two of the training sizes is still inside.
    assert outside_domain(domain, ImageFacts("DX", "MONOCHROME2", 1000, 5000)) is None


@pytest.mark.parametrize(
    "image, reason",
    [
        (ImageFacts("NM", "MONOCHROME2", 2048, 2048), "modality NM, trained on CR, DX"),
        (ImageFacts("DX", "RGB", 2048, 2048), "a colour image, trained on greyscale images"),
        (ImageFacts("DX", "MONOCHROME1", 2048, 2048), "photometric interpretation MONOCHROME1, trained on MONOCHROME2"),
        (
            ImageFacts("DX", "MONOCHROME2", 512, 2048),
            "2048 x 512 px, trained on 2000-2500 x 2000-3000 px (a factor 2 either way is allowed)",
        ),
        (
            ImageFacts("DX", "MONOCHROME2", 2048, 5001),
            "5001 x 2048 px, trained on 2000-2500 x 2000-3000 px (a factor 2 either way is allowed)",
        ),
    ],
)
def test_an_image_outside_is_flagged_with_the_reason(image, reason):
    assert outside_domain(describe_domain(CHEST), image) == reason


def test_an_nm_bone_scan_gives_every_reason_at_once():
    # The example: a whole-body bone scan, 256 x 1024, shown to the chest X-ray model.
    reason = outside_domain(describe_domain(CHEST), ImageFacts("NM", "MONOCHROME2", 1024, 256))
    assert reason == (
        "modality NM, trained on CR, DX; 256 x 1024 px, trained on 2000-2500 x 2000-3000 px "
        "(a factor 2 either way is allowed)"
    )


def test_colour_images_differ_by_colour_not_by_their_photometric_interpretation():
    # Colour images all reach the network as RGB: YBR or palette is no difference it sees.
    domain = describe_domain([ImageFacts("OT", "RGB", 512, 512)])
    assert outside_domain(domain, ImageFacts("OT", "YBR_FULL_422", 512, 512)) is None
    assert outside_domain(domain, ImageFacts("OT", "MONOCHROME2", 512, 512)) == (
        "a greyscale image, trained on colour images"
    )


def test_a_version_without_a_recorded_domain_flags_nothing():
    assert outside_domain(None, ImageFacts("NM", "RGB", 1, 1)) is None
    assert domain_summary(None) == "not recorded"


def test_an_empty_training_set_has_no_domain():
    with pytest.raises(TrainingError):
        describe_domain([])


def test_facts_come_from_the_store(store):
    results = ingest_files(
        store,
        LOCAL_ACTOR,
        [InputFile("scan.dcm", dicom_bytes(patient_id="P1", modality="NM")), InputFile("photo.png", png_bytes(1))],
    )
    facts = domain_facts(store, [result.image_id for result in results] + [9999])
    assert facts == {
        results[0].image_id: ImageFacts("NM", "MONOCHROME2", 64, 64),
        results[1].image_id: ImageFacts("OT", "MONOCHROME2", 32, 32),  # PNG/JPEG: "OT", as stored
    }


@pytest.mark.slow
def test_a_chest_xray_model_flags_an_nm_bone_scan_instead_of_calling_it_normal(store):
    # The done-when: a model trained on DX/CR MONOCHROME2 chest films, shown an NM scan,
    # a colour photograph and a film four times the training size, flags them; a film like its own
    # training images gets a class.
    import numpy as np

    from medreview.ingest.demo import demo_image, load_demo_data
    from medreview.jobs import execute_job, get_job, submit_job
    from medreview.ml.prediction import predictions_table, shown_calls, submit_predictions
    from medreview.ml.registry import active_model
    from medreview.ml.runners import RUNNERS
    from medreview.ml.training.service import TRAINING_JOB
    from medreview.reading.reads import save_read

    load_demo_data(store, LOCAL_ACTOR, per_class=6, unlabelled=0)  # DX, MONOCHROME2, 128 x 128
    rng = np.random.default_rng(5)
    computed = ingest_files(
        store,
        LOCAL_ACTOR,
        [
            InputFile(f"cr-{n}.dcm", dicom_bytes(f"CR-{n}", pixels=demo_image(rng, bool(n % 2)), modality="CR"))
            for n in range(4)
        ],
    )
    for n, result in enumerate(computed):
        save_read(store, LOCAL_ACTOR, result.image_id, "pneumonia" if n % 2 else "normal")
    job_id = submit_job(store, TRAINING_JOB, {"epochs": 1, "input_size": 32, "batch_size": 8})
    assert execute_job(store, job_id, RUNNERS) == "succeeded", get_job(store, job_id).error
    assert active_model(store).domain["modalities"] == ["CR", "DX"]

    new = ingest_files(
        store,
        LOCAL_ACTOR,
        [
            InputFile("bone-scan.dcm", dicom_bytes("NM-1", pixels=demo_image(rng, False), modality="NM")),
            InputFile("photo.png", png_bytes(9, size=128, mode="RGB")),
            InputFile("large.dcm", dicom_bytes("DX-L", pixels=demo_image(rng, False, size=512), modality="DX")),
            InputFile("film.dcm", dicom_bytes("DX-F", pixels=demo_image(rng, True), modality="DX")),
        ],
    )
    ids = {result.file: result.image_id for result in new}
    assert execute_job(store, submit_predictions(store, LOCAL_ACTOR, scope="unlabelled"), RUNNERS) == "succeeded"
    table = predictions_table(store, LOCAL_ACTOR).set_index("image_id")
    assert table.loc[ids["bone-scan.dcm"], "outside_reason"] == "modality NM, trained on CR, DX"
    assert table.loc[ids["photo.png"], "outside_reason"].startswith("modality OT, trained on CR, DX; a colour image")
    assert table.loc[ids["large.dcm"], "outside_reason"] == (
        "512 x 512 px, trained on 128 x 128 px (a factor 2 either way is allowed)"
    )
    assert not table.loc[ids["film.dcm"], "outside_training_data"]
    shown = shown_calls(table.reset_index()).set_index("image_id")
    assert shown.loc[ids["bone-scan.dcm"], "predicted_class"] == "outside the training data"
    assert shown.loc[ids["film.dcm"], "predicted_class"] in ("normal", "pneumonia")
