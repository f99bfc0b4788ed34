"""The versioned schema: migrations build the models' schema, and a first-release store upgrades
with nothing lost."""

from __future__ import annotations

import hashlib
import sqlite3
from pathlib import Path

import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import create_engine, func, select, text
from sqlalchemy.exc import DatabaseError, IntegrityError

from medreview.errors import MedreviewError
from medreview.ml.registry import activate_model, active_model
from medreview.reading.reads import LOCAL_ACTOR, current_labels, reads_table
from medreview.store import Store, schema
from medreview.store.models import AuditEvent, Base, Image, Job, ModelVersion, PseudonymEntry, User, utcnow
from tests.conftest import make_settings

FIRST_RELEASE_DUMP = Path(__file__).parent / "data" / "first_release.sql"


def first_release_store(tmp_path: Path) -> Path:
    """A data dir whose SQLite file was written by the first release (commit 862257d): demo images,
    two accounts, reads, a job, an active model version, audit events and its audit triggers."""
    data_dir = tmp_path / "data"
    data_dir.mkdir()
    with sqlite3.connect(data_dir / "medreview.db") as connection:
        connection.executescript(FIRST_RELEASE_DUMP.read_text())
    return data_dir


def counts(store: Store) -> dict[str, int]:
    with store.db.read() as session:
        return {
            model.__tablename__: session.scalar(select(func.count()).select_from(model))
            for model in (Image, User, Job, ModelVersion, AuditEvent, PseudonymEntry)
        }


def test_migrations_build_exactly_the_models_schema(any_store):
    with any_store.db.engine.connect() as connection:
        differences = compare_metadata(MigrationContext.configure(connection), Base.metadata)
    assert differences == []
    assert schema.current_revision(any_store.db.engine) == schema.head_revision()


def test_a_first_release_store_upgrades_at_open_with_nothing_lost(tmp_path):
    data_dir = first_release_store(tmp_path)
    with sqlite3.connect(data_dir / "medreview.db") as connection:
        before = {
            table: connection.execute(f"SELECT count(*) FROM {table}").fetchone()[0]
            for table in ("images", "users", "jobs", "model_versions", "audit_events", "pseudonym_map", "annotations")
        }
    engine = create_engine(f"sqlite:///{data_dir / 'medreview.db'}")
    assert schema.current_revision(engine) is None  # the first release had no version table
    engine.dispose()

    store = Store.open(make_settings(data_dir))
    try:
        assert schema.current_revision(store.db.engine) == schema.head_revision()
        after = counts(store)
        # Nothing lost; the upload names (identifiers) moved to the pseudonym map, one row per image.
        assert {**after, "pseudonym_map": after["pseudonym_map"] - after["images"]} == {
            table: before[table] for table in after
        }
        with store.db.read() as session:
            shown = set(session.scalars(select(Image.display_name)))
            file_names = select(PseudonymEntry.original, PseudonymEntry.pseudonym).where(
                PseudonymEntry.kind == "file_name"
            )
            moved = {original: pseudonym for original, pseudonym in session.execute(file_names)}
        assert len(shown) == before["images"] and not shown & set(moved)
        assert set(moved.values()) == shown and all(name.startswith("demo-") for name in moved)
        # The data still works through the services: reads, labels and the active model.
        assert len(reads_table(store, LOCAL_ACTOR)) == before["annotations"] > 0
        assert len(current_labels(store)) > 0
        assert active_model(store) is not None
        # The audit trail is still append-only.
        with pytest.raises(DatabaseError, match="append-only"), store.db.engine.begin() as connection:
            connection.execute(text("DELETE FROM audit_events"))
        # A backup copy of the first-release file was made before the upgrade, and it is complete.
        [backup] = list(data_dir.glob("medreview.db.before-first-release-*.bak"))
        with sqlite3.connect(backup) as copy:
            assert copy.execute("SELECT count(*) FROM images").fetchone()[0] == before["images"]
            assert copy.execute("SELECT count(*) FROM sqlite_master WHERE name = 'alembic_version'").fetchone()[0] == 0
    finally:
        store.close()

    # Opening again changes nothing and makes no new backup.
    Store.open(make_settings(data_dir)).close()
    assert len(list(data_dir.glob("*.bak"))) == 1


def test_upgrade_demotes_extra_active_models_then_the_database_keeps_one(tmp_path):
    data_dir = first_release_store(tmp_path)
    with sqlite3.connect(data_dir / "medreview.db") as connection:
        # The race the first release allowed: a second active model.
        connection.execute(
            "INSERT INTO jobs (kind, status, params, progress, result, cancel_requested, created_by, created_at) "
            "VALUES ('train', 'succeeded', '{}', '{}', '{}', 0, 'chief', '2026-01-01 00:00:00')"
        )
        connection.execute(
            "INSERT INTO model_versions (job_id, path, sha256, architecture, input_size, class_names, metrics, "
            "is_active, created_at) VALUES ((SELECT max(id) FROM jobs), 'models/model-2.keras', '', 'small_cnn', "
            "28, '[]', '{}', 1, '2026-01-01 00:00:00')"
        )
    store = Store.open(make_settings(data_dir))
    try:
        with store.db.read() as session:
            active = session.scalars(select(ModelVersion.id).where(ModelVersion.is_active.is_(True))).all()
            newest = session.scalar(select(func.max(ModelVersion.id)))
        assert active == [newest]
        with pytest.raises(IntegrityError), store.db.write() as session:
            session.execute(text("UPDATE model_versions SET is_active = true"))
        # Promoting through the service still works: it demotes first.
        activate_model(store, LOCAL_ACTOR, 1)
        assert active_model(store).id == 1
    finally:
        store.close()


def test_db_upgrade_command_reports_the_revision(tmp_path):
    import os
    import subprocess
    import sys

    from tests.helpers import ROOT

    data_dir = first_release_store(tmp_path)
    env = {**os.environ, "MEDREVIEW_DATA_DIR": str(data_dir)}
    env.pop("MEDREVIEW_DATABASE_URL", None)
    completed = subprocess.run(
        [sys.executable, "-m", "medreview", "db", "upgrade"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert completed.returncode == 0, completed.stderr
    assert f"schema revision: {schema.head_revision()}" in completed.stdout
    assert "backup of the database before the upgrade" in completed.stderr


def test_a_0006_store_upgrades_to_evaluation_sets_with_its_predictions_unflagged(tmp_path):
    from alembic import command

    from medreview.ml.prediction import predictions_table
    from medreview.reading.evaluation_sets import list_evaluation_sets

    data_dir = first_release_store(tmp_path)
    engine = create_engine(f"sqlite:///{data_dir / 'medreview.db'}")
    with engine.connect() as connection, connection.begin():
        config = schema._config(connection)
        command.stamp(config, schema.BASELINE)
        command.upgrade(config, "0006_reading_sessions")
        # A prediction of the active model, as the release before 0007 stored it.
        connection.execute(
            text(
                "INSERT INTO predictions (image_id, model_version_id, predicted_class, probability, probabilities, "
                "created_at) SELECT min(images.id), model_versions.id, 'normal', 0.9, '{}', '2026-01-01 00:00:00' "
                "FROM images, model_versions WHERE model_versions.is_active"
            )
        )
    engine.dispose()

    store = Store.open(make_settings(data_dir))
    try:
        assert schema.current_revision(store.db.engine) == schema.head_revision()
        with store.db.read() as session:
            version = session.scalar(select(ModelVersion).where(ModelVersion.is_active.is_(True)))
            assert (version.domain, version.activation_reason) == (None, None)  # nothing is known of its data
        [prediction] = predictions_table(store, LOCAL_ACTOR).to_dict(orient="records")
        assert (prediction["predicted_class"], prediction["outside_training_data"]) == ("normal", False)
        assert prediction["outside_reason"] is None
        assert list_evaluation_sets(store) == []
    finally:
        store.close()


def test_a_0007_store_upgrades_to_safer_sign_in_with_no_password_change_forced(tmp_path):
    from alembic import command

    from medreview.team.accounts import authenticate, list_users, password_change_required, resume_login
    from medreview.team.roles import SYSTEM, Actor

    data_dir = first_release_store(tmp_path)
    engine = create_engine(f"sqlite:///{data_dir / 'medreview.db'}")
    with engine.connect() as connection, connection.begin():
        config = schema._config(connection)
        command.stamp(config, schema.BASELINE)
        command.upgrade(config, "0007_evaluation_sets")
        # A sign-in kept by a browser, as the release before 0008 stored it (its token is "kept-token").
        connection.execute(
            text(
                "INSERT INTO login_tokens (user_id, token_hash, created_at, last_used_at, expires_at) "
                "SELECT id, :digest, '2026-01-01 00:00:00', '2026-01-01 00:00:00', '2999-01-01 00:00:00' "
                "FROM users WHERE username = 'reader1'"
            ),
            {"digest": hashlib.sha256(b"kept-token").hexdigest()},
        )
    engine.dispose()

    store = Store.open(make_settings(data_dir))
    try:
        assert schema.current_revision(store.db.engine) == schema.head_revision()
        # The accounts keep the passwords they have: nobody is asked for a new one.
        users = list_users(store, SYSTEM)
        assert users and not any(user["must_change_password"] for user in users)
        assert not password_change_required(store, Actor("reader1", "annotator"))
        # The kept sign-in still works, and its first resume is recorded once.
        assert resume_login(store, "kept-token") == Actor("reader1", "annotator")
        resume_login(store, "kept-token")
        with store.db.read() as session:
            resumes = session.scalars(select(AuditEvent).where(AuditEvent.action == "login.resume")).all()
        assert [event.actor for event in resumes] == ["reader1"]
        # The back-off has its table: three failures, then the next attempt waits.
        moment = utcnow()
        for _ in range(3):
            with pytest.raises(MedreviewError, match="wrong user name or password"):
                authenticate(store, "chief", "not the password", now=moment)
        with pytest.raises(MedreviewError, match="too many failed sign-ins"):
            authenticate(store, "chief", "not the password", now=moment)
    finally:
        store.close()


def test_a_0008_store_upgrades_to_cases_with_everything_it_had_image_scoped(tmp_path):
    from alembic import command

    from medreview.reading.evaluation_sets import evaluation_set_images
    from medreview.reading.reads import save_read
    from medreview.reading.schema import add_label_class, label_class_scopes
    from medreview.team.roles import Actor

    data_dir = first_release_store(tmp_path)
    engine = create_engine(f"sqlite:///{data_dir / 'medreview.db'}")
    with engine.connect() as connection, connection.begin():
        config = schema._config(connection)
        command.stamp(config, schema.BASELINE)
        command.upgrade(config, "0008_sign_in_safety")
        # A final label, an assignment and an evaluation set, as the release before 0009 stored them.
        for statement in (
            "INSERT INTO final_labels (image_id, label_class_id, labels, boxes, method, decided_by, comment, "
            "decided_at) VALUES (1, 2, '[]', '[]', 'adjudicated', 'chief', '', '2026-01-01 00:00:00')",
            "INSERT INTO assignments (image_id, reader_id, assigned_by, created_at) "
            "SELECT 2, id, 'chief', '2026-01-01 00:00:00' FROM users WHERE username = 'reader1'",
            "INSERT INTO evaluation_sets (name, description, is_default, created_by, created_at) "
            "VALUES ('holdout', '', 1, 'chief', '2026-01-01 00:00:00')",
            "INSERT INTO evaluation_set_images (evaluation_set_id, image_id, label) VALUES (1, 1, 'pneumonia')",
        ):
            connection.execute(text(statement))
        reads_before = connection.execute(
            text("SELECT id, image_id, reader_id, label_class_id FROM annotations ORDER BY id")
        ).all()
    engine.dispose()

    store = Store.open(make_settings(data_dir))
    try:
        assert schema.current_revision(store.db.engine) == schema.head_revision()
        assert set(label_class_scopes(store, include_retired=True).values()) == {"image"}
        with store.db.read() as session:
            for table in ("annotations", "final_labels", "assignments", "evaluation_set_images", "predictions"):
                rows = session.execute(text(f"SELECT scope, case_id, image_id FROM {table}")).all()
                assert all(row.scope == "image" and row.case_id == row.image_id for row in rows), table
            reads_after = session.execute(
                text("SELECT id, image_id, reader_id, label_class_id FROM annotations ORDER BY id")
            ).all()
        assert reads_after == reads_before and len(reads_after) == 8
        final = current_labels(store).set_index("image_id")
        assert (final.loc[1, "label"], final.loc[1, "method"], final.loc[1, "scope"]) == (
            "pneumonia",
            "adjudicated",
            "image",
        )
        [member] = evaluation_set_images(store, 1).to_dict(orient="records")
        assert (member["image_id"], member["scope"], member["case_id"], member["label"]) == (1, "image", 1, "pneumonia")
        # One read per reader per case: a reader's new read of an image still replaces theirs ...
        reader = Actor("reader1", "annotator")
        mine = reads_table(store, LOCAL_ACTOR)
        image_id = int(mine[mine["reader"] == "reader1"]["image_id"].iloc[0])
        save_read(store, reader, image_id, "normal")
        assert len(reads_table(store, LOCAL_ACTOR, include_rejected=True)) == 8
        # ... and a study-scoped class reads the study beside it.
        add_label_class(store, LOCAL_ACTOR, "abnormal study", scope="study")
        save_read(store, reader, image_id, "abnormal study")
        reads = reads_table(store, LOCAL_ACTOR, include_rejected=True)
        assert reads["scope"].value_counts().to_dict() == {"image": 8, "study": 1}
    finally:
        store.close()


def test_a_0010_store_upgrades_to_predictions_found_by_case_with_its_predictions_kept(tmp_path):
    from alembic import command
    from sqlalchemy import inspect

    data_dir = first_release_store(tmp_path)
    engine = create_engine(f"sqlite:///{data_dir / 'medreview.db'}")
    with engine.connect() as connection, connection.begin():
        config = schema._config(connection)
        command.stamp(config, schema.BASELINE)
        command.upgrade(config, "0010_reader_studies")
        connection.execute(
            text(
                "INSERT INTO predictions (image_id, scope, case_id, model_version_id, predicted_class, probability, "
                "probabilities, out_of_distribution, created_at) SELECT id, 'image', id, 1, 'pneumonia', 0.9, '{}', 0, "
                "'2026-01-01 00:00:00' FROM images"
            )
        )
        before = connection.execute(text("SELECT id, image_id, case_id FROM predictions ORDER BY id")).all()
    engine.dispose()

    store = Store.open(make_settings(data_dir))
    try:
        assert schema.current_revision(store.db.engine) == schema.head_revision()
        indexes = {
            index["name"]: index["column_names"] for index in inspect(store.db.engine).get_indexes("predictions")
        }
        assert indexes["ix_predictions_scope_case_model"] == ["scope", "case_id", "model_version_id"]
        with store.db.read() as session:
            assert session.execute(text("SELECT id, image_id, case_id FROM predictions ORDER BY id")).all() == before
            # A read's case finds its call through the index, not by searching all of a version's calls.
            plan = session.execute(
                text(
                    "EXPLAIN QUERY PLAN SELECT id FROM predictions "
                    "WHERE scope = 'image' AND case_id = 1 AND model_version_id = 1"
                )
            ).all()
        assert "ix_predictions_scope_case_model" in " ".join(str(row) for row in plan)
        assert len(before) > 0
    finally:
        store.close()
