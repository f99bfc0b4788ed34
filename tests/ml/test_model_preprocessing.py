"""A model version records its preprocessing recipe (migration 0005); versions from before keep none
and are read back as the percentile stretch they were trained with."""

from __future__ import annotations

from sqlalchemy import select

from medreview.ml.configs import Preprocessing, get_config, version_preprocessing
from medreview.store import Store
from medreview.store.models import ModelVersion
from tests.conftest import make_settings
from tests.helpers import add_model_version
from tests.store.test_schema import first_release_store


def test_a_version_stores_its_recipe_as_json(any_store):
    recipe = get_config("bn_cnn").recipe(28)
    add_model_version(any_store, architecture="bn_cnn", input_size=28, preprocessing=recipe)
    with any_store.db.read() as session:
        stored = session.scalar(select(ModelVersion.preprocessing))
    assert stored == recipe
    assert version_preprocessing(stored, 28) == Preprocessing("file-or-stored", 28)


def test_versions_from_before_the_migration_keep_no_recipe(tmp_path):
    store = Store.open(make_settings(first_release_store(tmp_path)))
    try:
        with store.db.read() as session:
            versions = session.scalars(select(ModelVersion)).all()
        assert versions and all(version.preprocessing is None for version in versions)
        recipe = version_preprocessing(versions[0].preprocessing, versions[0].input_size)
        assert recipe.window_policy == "file-or-percentiles" and recipe.input_size == versions[0].input_size
    finally:
        store.close()
