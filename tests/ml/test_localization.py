"""Does the model look where readers look: the pointing game and the mass in boxes on hand-made maps,
the map stretched back to a non-square image, which boxes count, and a tiny trained model's scores
through the evaluation job and `evaluate --json`."""

from __future__ import annotations

import io
import json

import numpy as np
import pytest
from PIL import Image as PILImage
from skimage import transform
from sqlalchemy import select

from medreview.ingest import InputFile, ingest_files
from medreview.jobs import execute_job, get_job
from medreview.ml.localization import (
    LOCALIZATION_CAP,
    POINTING_TOLERANCE,
    boxes_mask,
    localization_summary,
    map_to_image,
    mass_in_boxes,
    pointing_game,
    reference_boxes,
)
from medreview.reading.reads import LOCAL_ACTOR, save_read
from medreview.reading.review import decide
from medreview.store import Store
from medreview.store.models import Annotation, FinalLabel, User
from medreview.team.roles import Actor

CLASSES = ["normal", "pneumonia"]
REVIEWER = Actor("rev", "reviewer")


def box(x: float, y: float, width: float, height: float, label: str = "pneumonia", frame: int = 0) -> dict:
    return {"label": label, "x": x, "y": y, "width": width, "height": height, "frame": frame}


# --- one image, by hand ----------------------------------------------------------------------------

# (4, 4): the maximum 8 at row 1, column 2; total mass 16.
HAND_MAP = np.array(
    [
        [0.0, 1.0, 0.0, 0.0],
        [0.0, 2.0, 8.0, 1.0],
        [0.0, 0.0, 2.0, 0.0],
        [1.0, 0.0, 0.0, 1.0],
    ]
)


def test_the_maximum_inside_a_box_is_a_hit_and_outside_a_miss():
    assert pointing_game(HAND_MAP, [box(2, 1, 1, 1)])  # exactly the maximum's pixel
    assert pointing_game(HAND_MAP, [box(0, 3, 1, 1), box(1.5, 0.5, 2, 2)])  # any box of several
    assert not pointing_game(HAND_MAP, [box(0, 3, 1, 1)])  # the bottom-left corner: 1 of 16
    assert not pointing_game(HAND_MAP, [])


def test_the_mass_in_boxes_is_the_share_of_the_map_inside_their_union():
    # Columns 1-2 of rows 0-1: 1 + 0 + 2 + 8 = 11 of 16.
    assert mass_in_boxes(HAND_MAP, [box(1, 0, 2, 2)]) == pytest.approx(11 / 16)
    # Two overlapping boxes count their common pixel (8) once: 11 + 2 (row 2, column 2) = 13 of 16.
    assert mass_in_boxes(HAND_MAP, [box(1, 0, 2, 2), box(2, 1, 1, 2)]) == pytest.approx(13 / 16)
    # Negative values (not from Grad-CAM, which is non-negative) do not count as mass.
    assert mass_in_boxes(HAND_MAP - 1.0, [box(2, 1, 1, 1)]) == pytest.approx(7 / (7 + 1 + 1))
    assert mass_in_boxes(np.zeros((4, 4)), [box(0, 0, 4, 4)]) == 0.0


def test_a_pixel_is_in_a_box_when_its_centre_is():
    mask = boxes_mask((4, 4), [box(0.6, 0.4, 1.0, 1.2)])  # x 0.6-1.6 holds centre 1.5; y 0.4-1.6 holds 0.5, 1.5
    assert np.argwhere(mask).tolist() == [[0, 1], [1, 1]]


def test_a_near_miss_counts_within_the_tolerance_on_each_axis():
    peak = np.zeros((10, 20))
    peak[0, 0] = 1.0  # centre (x 0.5, y 0.5)
    right = [box(3.5, 0, 2, 1)]  # 3 px to the right
    assert not pointing_game(peak, right, tolerance=2.0)
    assert pointing_game(peak, right, tolerance=3.0)
    assert pointing_game(peak, right, tolerance=(0.0, 3.0))  # only horizontal tolerance, none needed down
    below = [box(0, 3.5, 1, 2)]
    assert not pointing_game(peak, below, tolerance=(0.0, 3.0))
    diagonal = [box(2.5, 2.5, 1, 1)]  # 2 px right and 2 px down: sqrt(8) = 2.83 px away
    assert not pointing_game(peak, diagonal, tolerance=2.5) and pointing_game(peak, diagonal, tolerance=2.9)
    assert not pointing_game(np.zeros((4, 4)), [box(0, 0, 4, 4)])  # no evidence points nowhere


def test_a_map_is_stretched_back_to_a_non_square_image_where_its_boxes_are():
    # A 2x2 feature map, hot in its top-right cell, over an image 100 rows by 200 columns.
    heat = map_to_image(np.array([[0.0, 1.0], [0.0, 0.0]]), 100, 200)
    assert heat.shape == (100, 200)
    assert pointing_game(heat, [box(100, 0, 100, 50)]) and not pointing_game(heat, [box(0, 0, 100, 50)])
    # Bilinear, edge-clamped: along x the weight of the right cell is clip((c + 0.5) / 100 - 0.5, 0, 1),
    # 0 for c < 50, rising to 1 at c = 150; its share over c >= 100 is (50 * 0.75 + 50) / (100 * 0.5 + 50)
    # = 0.875, and the same over rows < 50: 0.875 ** 2 inside the top-right quarter.
    assert mass_in_boxes(heat, [box(100, 0, 100, 50)]) == pytest.approx(0.875**2)
    # The values the viewer's overlay draws over the same film (skimage's bilinear resize), also when
    # the image is smaller than the map on one axis.
    feature_map = np.random.default_rng(0).random((7, 5))
    for rows, columns in ((24, 40), (3, 90)):
        overlay = transform.resize(feature_map, (rows, columns), order=1, mode="edge", anti_aliasing=False)
        np.testing.assert_allclose(map_to_image(feature_map, rows, columns), overlay, atol=1e-12)
    with pytest.raises(ValueError, match="non-empty"):
        map_to_image(np.zeros((0, 3)), 10, 10)


# --- which boxes --------------------------------------------------------------------------------


def _png(rows: int, columns: int, spot: tuple[int, int] | None, seed: int) -> bytes:
    """A grey (rows, columns) PNG of noise, with a bright 8x8 square at ``spot`` (row, column)."""
    pixels = np.random.default_rng(seed).integers(0, 60, (rows, columns), dtype=np.uint8)
    if spot is not None:
        pixels[spot[0] : spot[0] + 8, spot[1] : spot[1] + 8] = 255
    buffer = io.BytesIO()
    PILImage.fromarray(pixels).save(buffer, format="PNG")
    return buffer.getvalue()


def _ingest(store: Store, count: int, rows: int = 24, columns: int = 40) -> list[int]:
    files = [
        InputFile(f"film-{n}.png", _png(rows, columns, (4, 4 + 3 * n) if n % 2 else None, n)) for n in range(count)
    ]
    return [result.image_id for result in ingest_files(store, LOCAL_ACTOR, files)]


def test_the_final_labels_boxes_win_else_the_union_of_the_readers_on_frame_zero(store, fast_hashing):
    from medreview.team.accounts import create_first_admin, create_user

    ids = _ingest(store, 3)
    create_first_admin(store, "boss", "boss-password")
    for username in ("ann", "bob"):
        create_user(store, Actor("boss", "admin"), username, f"{username}-password", "annotator")
    ann, bob = Actor("ann", "annotator"), Actor("bob", "annotator")
    save_read(store, ann, ids[0], "pneumonia", boxes=[box(1, 1, 4, 4)])
    save_read(store, bob, ids[0], "pneumonia", boxes=[box(10, 2, 4, 4), box(20, 2, 4, 4, frame=0)])
    save_read(store, ann, ids[1], "pneumonia", boxes=[box(1, 1, 4, 4)])
    save_read(store, bob, ids[1], "pneumonia", boxes=[box(30, 10, 4, 4)])
    create_user(store, Actor("boss", "admin"), "rev", "rev-password", "reviewer")
    with store.db.read() as session:
        rejected = session.scalar(
            select(Annotation.id)
            .join(User, User.id == Annotation.reader_id)
            .where(Annotation.image_id == ids[1], User.username == "bob")
        )
    decide(store, REVIEWER, rejected, "reject", "not there")
    save_read(store, ann, ids[2], "normal")
    # An imported final label carries its own boxes: they replace the readers'.
    with store.db.write() as session:
        session.add(
            FinalLabel(
                image_id=ids[0],
                scope="image",
                case_id=ids[0],
                method="approved",
                decided_by="rev",
                boxes=[box(5, 5, 6, 6)],
            )
        )
    found = reference_boxes(store, ids)
    assert found[ids[0]] == [box(5, 5, 6, 6)]
    assert found[ids[1]] == [box(1, 1, 4, 4)]  # bob's read was rejected
    assert ids[2] not in found  # no boxes at all


# --- a version on an evaluation set, end to end -----------------------------------------------------


def _tiny_trained_version(store: Store, ids: list[int], labels: list[str]) -> tuple[int, object]:
    """small_cnn at 16 px, trained 1 epoch on the set's own images, saved and registered as a
    training job leaves a version; returns (version id, the model)."""
    from medreview.ml.configs import get_config
    from medreview.ml.training.dataset import prepared_array
    from medreview.ml.training.fit import FitConfig, build_and_compile, save_model_atomic, training_targets
    from medreview.store.models import Image, Job, ModelVersion

    config = get_config("small_cnn")
    recipe = config.preprocessing(16)
    with store.db.read() as session:
        stored = {
            image.id: (image.sha256, image.media_type)
            for image in session.scalars(select(Image).where(Image.id.in_(ids)))
        }
    x = np.stack([prepared_array(store, *stored[image_id], config, recipe) for image_id in ids])  # (N, 16, 16)
    y = np.array([CLASSES.index(label) for label in labels])
    fit = FitConfig(architecture="small_cnn", input_size=16, epochs=1, batch_size=8, deterministic=False)
    # The app's model, loss and optimiser, one epoch, without fit_model's per-epoch validation.
    model, fit_kwargs = build_and_compile(x, y, 2, fit)
    model.fit(x, training_targets(y, 2), epochs=1, batch_size=8, verbose=0, **fit_kwargs)
    with store.db.write() as session:
        job = Job(kind="train", status="succeeded")
        session.add(job)
        session.flush()
        relative = f"models/{job.id}.keras"
        digest = save_model_atomic(model, store.data_path(relative))
        version = ModelVersion(
            job_id=job.id,
            path=relative,
            sha256=digest,
            architecture="small_cnn",
            input_size=16,
            preprocessing=recipe.to_dict(),
            class_names=CLASSES,
            is_active=True,
        )
        session.add(version)
        session.flush()
        return version.id, model


def test_a_trained_version_is_scored_against_the_boxes_by_the_evaluation_and_evaluate_json(store, capsys):
    from medreview import cli
    from medreview.imaging.decoding import decode_file
    from medreview.ml.configs import get_config
    from medreview.ml.evaluation import evaluation_of, freeze_evaluation_set
    from medreview.ml.explain import grad_cam
    from medreview.ml.localization import score_localization
    from medreview.ml.runners import RUNNERS
    from medreview.reading.evaluation_sets import evaluation_set_images
    from medreview.store.models import Image, ModelVersion

    ids = _ingest(store, 6)  # 24 x 40 films; odd ones hold a bright square at row 4, column 4 + 3n
    labels = ["pneumonia" if n % 2 else "normal" for n in range(6)]
    boxes = {image_id: box(4 + 3 * n, 4, 8, 8) for n, image_id in enumerate(ids) if n % 2}
    for image_id, label in zip(ids, labels, strict=True):
        save_read(store, LOCAL_ACTOR, image_id, label, boxes=[boxes[image_id]] if image_id in boxes else [])
    version_id, model = _tiny_trained_version(store, ids, labels)
    made, job_id = freeze_evaluation_set(store, LOCAL_ACTOR, "held out", ids)
    assert execute_job(store, job_id, RUNNERS) == "succeeded", get_job(store, job_id).error

    figures = evaluation_of(store, version_id, made.id)
    localization = figures["localization"]
    assert (localization["n"], localization["images_with_boxes"], localization["cap"]) == (3, 3, LOCALIZATION_CAP)
    # The same scores from the maps computed here, image by image, at the films' own 24 x 40 grid.
    config = get_config("small_cnn")
    hits, masses = [], []
    with store.db.read() as session:
        films = {image.id: image for image in session.scalars(select(Image).where(Image.id.in_(list(boxes))))}
    for image_id, image_box in boxes.items():
        film = films[image_id]
        x = config.prepare(decode_file(store.blobs.path_for(film.sha256), film.media_type), 16)[np.newaxis]
        [feature_map] = grad_cam(model, x, class_index=1, layer_name=config.feature_layer)
        heat = map_to_image(feature_map, 24, 40)
        hits.append(pointing_game(heat, [image_box], (POINTING_TOLERANCE * 24, POINTING_TOLERANCE * 40)))
        masses.append(mass_in_boxes(heat, [image_box]))
    assert localization["pointing_game"] == pytest.approx(np.mean(hits))
    assert localization["mass_in_boxes"] == pytest.approx(np.mean(masses))
    assert 0.0 <= localization["mass_in_boxes"] <= 1.0

    assert cli.main(["evaluate", "--model", str(version_id), "--json"]) == 0
    printed = json.loads(capsys.readouterr().out)
    assert printed["localization"] == localization_summary(figures)
    assert set(printed["localization"]) == {"pointing_game", "mass_in_boxes", "n"}

    with store.db.read() as session:
        version = session.get(ModelVersion, version_id)
    capped = score_localization(store, version, evaluation_set_images(store, made.id), model, cap=2)
    assert (capped["n"], capped["images_with_boxes"]) == (2, 3)
