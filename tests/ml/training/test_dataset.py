"""Training data from the store (no TensorFlow): which labelled images train, refusals in plain
words when there are too few, and the rebuildable array cache."""

from __future__ import annotations

import numpy as np
import pytest

from medreview.errors import TrainingError
from medreview.imaging.display import WINDOW_POLICY_FILE_OR_PERCENTILES
from medreview.ingest import InputFile, ingest_files
from medreview.ingest.demo import load_demo_data
from medreview.ml.configs import Preprocessing, SmallCNNConfig, get_config
from medreview.ml.training import dataset as dataset_module
from medreview.ml.training.dataset import MIN_IMAGES_PER_CLASS, load_dataset, training_table
from medreview.reading.reads import LOCAL_ACTOR, current_labels, save_read
from medreview.store import Store
from medreview.team.accounts import create_first_admin, create_user
from medreview.team.roles import Actor
from tests.helpers import png_bytes

SIZE = 32


def label_images(store: Store, labels: list[str]) -> list[int]:
    """Store one PNG per label, read by the local admin with that label; returns the image ids."""
    results = ingest_files(store, LOCAL_ACTOR, [InputFile(f"{n}.png", png_bytes(500 + n)) for n in range(len(labels))])
    for result, label in zip(results, labels, strict=True):
        save_read(store, LOCAL_ACTOR, result.image_id, label)
    return [result.image_id for result in results]


@pytest.fixture
def demo_store(store: Store) -> Store:
    load_demo_data(store, LOCAL_ACTOR, per_class=3, unlabelled=1)
    return store


def cache_files(store: Store) -> list:
    # <sha256>-<size>-<recipe key>.npy (the key: a short hash of the preprocessing recipe)
    return sorted((store.settings.cache_dir / "arrays").glob(f"*-{SIZE}-*.npy"))


def test_one_class_only_is_refused_with_what_is_labelled(store):
    label_images(store, ["normal"] * 4)
    with pytest.raises(TrainingError, match=r"at least two classes to train \(labelled so far: normal: 4\)"):
        training_table(store)


def test_nothing_labelled_is_refused(store):
    ingest_files(store, LOCAL_ACTOR, [InputFile("a.png", png_bytes(1))])
    with pytest.raises(TrainingError, match=r"labelled so far: none"):
        training_table(store)


def test_too_few_images_of_a_class_is_refused_naming_the_class(store):
    label_images(store, ["normal"] * MIN_IMAGES_PER_CLASS + ["pneumonia"] * (MIN_IMAGES_PER_CLASS - 1))
    with pytest.raises(
        TrainingError,
        match=rf"at least {MIN_IMAGES_PER_CLASS} labelled images per class; 'pneumonia' has {MIN_IMAGES_PER_CLASS - 1}",
    ):
        training_table(store)


def test_enough_of_each_class_gives_the_table_and_classes_in_schema_order(store):
    ids = label_images(store, ["pneumonia"] * MIN_IMAGES_PER_CLASS + ["normal"] * MIN_IMAGES_PER_CLASS)
    table, class_names = training_table(store)
    assert class_names == ["normal", "pneumonia"]
    assert sorted(table["image_id"]) == sorted(ids)


def test_label_source_all_also_trains_on_images_whose_readers_disagree(store, fast_hashing):
    ids = label_images(store, ["normal"] * MIN_IMAGES_PER_CLASS + ["pneumonia"] * (MIN_IMAGES_PER_CLASS - 1))
    admin = create_first_admin(store, "boss", "boss-password")
    create_user(store, admin, "ann", "ann-password", "annotator")
    save_read(store, Actor("ann", "annotator"), ids[0], "pneumonia")  # disagrees with the first "normal"
    # Final labels: the disputed image drops out, leaving 2 + 2.
    with pytest.raises(TrainingError, match="'normal' has 2, 'pneumonia' has 2"):
        training_table(store, "final")
    table, _ = training_table(store, "all")
    assert table["label"].value_counts().to_dict() == {"normal": 3, "pneumonia": 3}


def test_load_dataset_gives_inputs_in_range_with_their_final_labels(demo_store):
    data = load_dataset(demo_store, input_size=SIZE)
    assert data.images.shape == (6, SIZE, SIZE) and data.images.dtype == np.float32
    assert data.images.min() >= 0.0 and data.images.max() <= 1.0
    assert data.images.max() > data.images.min()  # real pixels, not a blank array
    assert data.input_size == SIZE and data.class_names == ["normal", "pneumonia"]
    expected = current_labels(demo_store).set_index("image_id")["label"]
    assert [data.class_names[index] for index in data.labels] == [expected[i] for i in data.image_ids]
    assert len(set(data.patient_keys)) == 6  # each demo image is its own patient


def test_a_second_load_reads_the_array_cache_without_decoding(demo_store, monkeypatch):
    first = load_dataset(demo_store, input_size=SIZE)
    assert len(cache_files(demo_store)) == 6

    def no_decoding(*args, **kwargs):
        raise AssertionError("decoded although every array is cached")

    monkeypatch.setattr(dataset_module, "decode_file", no_decoding)
    second = load_dataset(demo_store, input_size=SIZE)
    assert np.array_equal(first.images, second.images)


@pytest.mark.parametrize(
    "damage",
    [
        pytest.param(lambda data: b"not an array at all", id="garbage"),
        pytest.param(lambda data: data[: len(data) // 2], id="truncated"),
        pytest.param(lambda data: b"", id="empty"),  # a crash before the first byte was written
    ],
)
def test_a_damaged_cache_file_is_rebuilt_not_fatal(demo_store, damage):
    first = load_dataset(demo_store, input_size=SIZE)
    damaged = cache_files(demo_store)[0]
    damaged.write_bytes(damage(damaged.read_bytes()))
    again = load_dataset(demo_store, input_size=SIZE)
    assert np.array_equal(first.images, again.images)
    rebuilt = np.load(damaged)  # the file is whole again
    assert rebuilt.shape == (SIZE, SIZE)


def test_a_deleted_cache_is_rebuilt(demo_store):
    first = load_dataset(demo_store, input_size=SIZE)
    for path in cache_files(demo_store):
        path.unlink()
    again = load_dataset(demo_store, input_size=SIZE)
    assert np.array_equal(first.images, again.images)
    assert len(cache_files(demo_store)) == 6


class _PercentileConfig(SmallCNNConfig):
    """The recipe of model versions trained before recipes were recorded."""

    window_policy = WINDOW_POLICY_FILE_OR_PERCENTILES


def test_the_cache_is_keyed_by_the_recipe(demo_store):
    as_stored = load_dataset(demo_store, input_size=SIZE, model_config=get_config("small_cnn"))
    key = Preprocessing("file-or-stored", SIZE).key()
    assert as_stored.preprocessing == get_config("small_cnn").recipe(SIZE)
    assert {path.name.rsplit("-", 1)[1] for path in cache_files(demo_store)} == {f"{key}.npy"}
    # The same recipe reuses the arrays; another recipe gets its own files and its own pixels.
    assert len(cache_files(demo_store)) == 6
    stretched = load_dataset(demo_store, input_size=SIZE, model_config=_PercentileConfig())
    assert len(cache_files(demo_store)) == 12
    assert stretched.preprocessing["window_policy"] == "file-or-percentiles"
    assert not np.array_equal(stretched.images, as_stored.images)
    again = load_dataset(demo_store, input_size=SIZE, model_config=get_config("small_cnn"))
    assert np.array_equal(again.images, as_stored.images)


def test_png_uploads_train_as_stored(store):
    # A PNG holding only the values 60..180 reaches the network as 60/255..180/255, not stretched.
    import io

    from PIL import Image as PILImage

    uploads = []
    for n in range(6):
        pixels = np.full((SIZE, SIZE), 60 + n, dtype=np.uint8)
        pixels[: SIZE // 2] = 180 - n
        buffer = io.BytesIO()
        PILImage.fromarray(pixels).save(buffer, format="PNG")
        uploads.append(InputFile(f"flat-{n}.png", buffer.getvalue()))
    results = ingest_files(store, LOCAL_ACTOR, uploads)
    for result, label in zip(results, ["normal", "pneumonia"] * 3, strict=True):
        save_read(store, LOCAL_ACTOR, result.image_id, label)
    data = load_dataset(store, input_size=SIZE)
    assert data.images.min() == pytest.approx(60 / 255, abs=1e-6)
    assert data.images.max() == pytest.approx(180 / 255, abs=1e-6)
