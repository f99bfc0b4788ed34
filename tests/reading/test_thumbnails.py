"""Worklist thumbnails: made once per image and cached, shown as the viewer opens the image, read
without decoding, and made in the background so that a missing or unmakeable one never holds up or
breaks a page."""

from __future__ import annotations

import io
import time

import numpy as np
import pytest
from PIL import Image as PILImage

import medreview.reading.thumbnails as thumbnails
from medreview.imaging.decoding import DecodedImage
from medreview.ingest import InputFile, ingest_files
from medreview.reading.reads import LOCAL_ACTOR
from medreview.reading.thumbnails import (
    THUMBNAIL_SIDE,
    ThumbnailMaker,
    make_thumbnail,
    render_thumbnail,
    stored_thumbnails,
    thumbnail_path,
)
from medreview.store import Store
from medreview.store.models import Image
from tests.helpers import dicom_bytes, png_bytes


def _pixels(data: bytes) -> np.ndarray:
    return np.asarray(PILImage.open(io.BytesIO(data)))


@pytest.fixture
def two_images(store: Store, fast_hashing: None) -> list[int]:
    files = [InputFile("film.dcm", dicom_bytes("P1", modality="CR")), InputFile("shot.png", png_bytes(1, size=200))]
    return [result.image_id for result in ingest_files(store, LOCAL_ACTOR, files)]


def test_a_thumbnail_is_made_once_and_then_read_from_the_cache(store: Store, two_images, monkeypatch):
    decodes: list[str] = []
    real_decode = thumbnails.decode_file
    monkeypatch.setattr(thumbnails, "decode_file", lambda path, kind: decodes.append(kind) or real_decode(path, kind))
    assert stored_thumbnails(store, two_images) == {two_images[0]: None, two_images[1]: None}
    assert decodes == []  # looking never decodes
    first = make_thumbnail(store, two_images[1])
    assert first is not None and decodes == ["png"]
    assert make_thumbnail(store, two_images[1]) == first and decodes == ["png"]  # made once
    with store.db.read() as session:
        sha256 = session.get(Image, two_images[1]).sha256
    assert first == thumbnail_path(store, sha256) and first.is_relative_to(store.settings.cache_dir)
    found = stored_thumbnails(store, two_images)
    assert found[two_images[0]] is None
    small = _pixels(found[two_images[1]])
    assert small.shape == (THUMBNAIL_SIDE, THUMBNAIL_SIDE)  # 200 x 200 shrunk, grey kept grey
    assert make_thumbnail(store, 999_999) is None  # no such image: nothing made, no error


def test_a_thumbnail_shows_the_image_as_displayed(store: Store):
    # MONOCHROME1 is inverted as on screen; a tall film keeps its shape; colour stays colour.
    ramp = np.tile(np.linspace(0, 1000, 300, dtype=np.float32), (600, 1))[np.newaxis]  # (1, 600, 300)
    monochrome1 = DecodedImage(ramp, False, "MONOCHROME1", "CR", None, None)
    small = _pixels(render_thumbnail(monochrome1))
    assert small.shape == (THUMBNAIL_SIDE, THUMBNAIL_SIDE // 2)
    assert small[:, 0].mean() > 200 and small[:, -1].mean() < 50  # low values bright
    red = np.broadcast_to(np.array([200, 10, 10], dtype=np.uint8), (3, 40, 40, 3))  # (F, H, W, 3) RGB
    colour = DecodedImage(red, True, "RGB", "US", None, None)
    pixels = _pixels(render_thumbnail(colour))
    assert pixels.shape == (40, 40, 3) and pixels[..., 0].mean() > 150 and pixels[..., 2].mean() < 60


def test_a_large_film_is_thumbnailed_in_milliseconds_not_seconds():
    film = DecodedImage(np.random.default_rng(0).random((1, 3000, 2500), dtype=np.float32), False, "MONOCHROME2", "CR",
                        None, None)  # fmt: skip
    render_thumbnail(film)
    started = time.perf_counter()
    render_thumbnail(film)
    # A few milliseconds here; windowed and shrunk whole, the film took 1.9 s of the background
    # thread's time (and of the GIL the viewer's runs wait on).
    assert time.perf_counter() - started < 0.2


def test_the_maker_works_in_the_background_and_survives_an_image_it_cannot_read(
    store: Store, two_images, caplog: pytest.LogCaptureFixture
):
    film, shot = two_images
    with store.db.read() as session:
        broken = store.blobs.path_for(session.get(Image, film).sha256)
    broken.write_bytes(b"not a DICOM any more")
    maker = ThumbnailMaker(store)
    maker.request([film, shot])
    assert maker.wait(timeout=30)
    found = stored_thumbnails(store, two_images)
    assert found[film] is None and found[shot] is not None
    assert maker.failed == {film}
    assert any(f"no thumbnail for image {film}" in message for message in caplog.messages)
    maker.request([film])  # a failure is not tried again
    assert maker.wait(timeout=5) and maker.failed == {film}
