"""Migration 0013 (assisted reads): a store from before it upgrades with its reads kept, none of them
claiming a model suggestion or a change made after seeing the model."""

from __future__ import annotations

from alembic import command
from sqlalchemy import create_engine, text

from medreview.reading.assist import assist_monitor
from medreview.store import Store, schema
from tests.conftest import ADMIN, make_settings
from tests.store.test_schema import first_release_store


def test_a_0012_store_upgrades_to_assisted_reads_with_its_reads_unassisted(tmp_path):
    data_dir = first_release_store(tmp_path)
    engine = create_engine(f"sqlite:///{data_dir / 'medreview.db'}")
    with engine.connect() as connection, connection.begin():
        config = schema._config(connection)
        command.stamp(config, schema.BASELINE)
        command.upgrade(config, "0012_worklist_places")
        before = connection.execute(text("SELECT id, image_id, reader_id, label_class_id FROM annotations")).all()
    engine.dispose()
    assert before  # the first-release store has reads to keep

    store = Store.open(make_settings(data_dir))
    try:
        assert schema.current_revision(store.db.engine) == schema.head_revision()
        with store.db.read() as session:
            rows = session.execute(
                text(
                    "SELECT id, image_id, reader_id, label_class_id, assist_mode, model_version_id, "
                    "model_suggestion, suggestion_accepted, changed_after_model FROM annotations"
                )
            ).all()
        assert [tuple(row[:4]) for row in rows] == [tuple(row) for row in before]
        assert all(row[4:8] == (None, None, None, None) and not row.changed_after_model for row in rows)
        assert assist_monitor(store, ADMIN).empty
    finally:
        store.close()
