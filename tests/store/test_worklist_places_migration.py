"""Migration 0012 (worklist places): a store from before it upgrades with its assignments kept,
placed nowhere, and its readers' worklists in the order they had."""

from __future__ import annotations

from alembic import command
from sqlalchemy import create_engine, inspect, text

from medreview.reading.worklists import worklist
from medreview.store import Store, schema
from medreview.team.roles import Actor
from tests.conftest import make_settings
from tests.store.test_schema import first_release_store


def test_a_0011_store_upgrades_to_worklist_places_with_its_lists_in_the_same_order(tmp_path):
    data_dir = first_release_store(tmp_path)
    engine = create_engine(f"sqlite:///{data_dir / 'medreview.db'}")
    with engine.connect() as connection, connection.begin():
        config = schema._config(connection)
        command.stamp(config, schema.BASELINE)
        command.upgrade(config, "0011_prediction_case_index")
        # Three images assigned to reader1, not in id order.
        for image_id in (3, 1, 2):
            connection.execute(
                text(
                    "INSERT INTO assignments (image_id, scope, case_id, reader_id, assigned_by, created_at) "
                    f"SELECT {image_id}, 'image', {image_id}, id, 'chief', '2026-01-01 00:00:00' FROM users "
                    "WHERE username = 'reader1'"
                )
            )
        before = connection.execute(text("SELECT id, image_id, reader_id FROM assignments ORDER BY id")).all()
    engine.dispose()

    store = Store.open(make_settings(data_dir))
    try:
        assert schema.current_revision(store.db.engine) == schema.head_revision()
        indexes = {
            index["name"]: index["column_names"] for index in inspect(store.db.engine).get_indexes("assignments")
        }
        assert indexes["ix_assignments_reader_place"] == ["reader_id", "list_place"]
        with store.db.read() as session:
            after = session.execute(text("SELECT id, image_id, reader_id, list_place FROM assignments ORDER BY id"))
            rows = after.all()
        assert [tuple(row[:3]) for row in rows] == [tuple(row) for row in before]
        assert all(row.list_place is None for row in rows)
        assert list(worklist(store, Actor("reader1", "annotator"))["image_id"]) == [1, 2, 3]
    finally:
        store.close()
