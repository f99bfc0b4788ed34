"""The store on SQLite and on PostgreSQL: same schema, same results."""

from __future__ import annotations

import threading

import pytest
from sqlalchemy import func, select, text

from medreview.errors import MedreviewError, NotFoundError
from medreview.ingest import InputFile, ingest_files
from medreview.ml.registry import activate_model, active_model
from medreview.reading.reads import LOCAL_ACTOR, current_labels, reads_table, save_read
from medreview.reading.schema import label_classes
from medreview.reading.worklists import next_image_id, worklist
from medreview.store.models import Annotation, Image, ModelVersion, Patient, PseudonymEntry, Series, Study
from medreview.team.settings import set_setting
from tests.helpers import add_model_version, dicom_bytes, png_bytes


def test_new_store_has_default_schema_and_local_user(any_store):
    assert label_classes(any_store) == ["normal", "pneumonia"]
    # Opening again does not seed twice.
    type(any_store).open(any_store.settings)
    assert label_classes(any_store) == ["normal", "pneumonia"]


def test_dicom_hierarchy_is_built_and_reused(any_store):
    study, series = "1.2.3.4.1", "1.2.3.4.2"
    files = [
        InputFile(f"slice{i}.dcm", dicom_bytes("PAT-7", study_uid=study, series_uid=series, instance_number=i))
        for i in range(3)
    ]
    results = ingest_files(any_store, LOCAL_ACTOR, files)
    assert [r.status for r in results] == ["stored"] * 3
    with any_store.db.read() as session:
        assert session.scalar(select(func.count(Patient.id))) == 1
        assert session.scalar(select(func.count(Study.id))) == 1
        assert session.scalar(select(func.count(Series.id))) == 1
        assert session.scalar(select(func.count(Image.id))) == 3
        # De-identification is on by default: the patient is stored under a stable pseudonym.
        assert session.scalar(select(Patient.patient_key)).startswith("ANON-")


def test_deidentified_by_default_with_the_map_kept_apart(any_store):
    study = "1.2.3.4.9"
    first = ingest_files(any_store, LOCAL_ACTOR, [InputFile("a.dcm", dicom_bytes("MRN-123", study_uid=study))])[0]
    second = ingest_files(any_store, LOCAL_ACTOR, [InputFile("b.dcm", dicom_bytes("MRN-123", study_uid=study))])[0]
    with any_store.db.read() as session:
        images = [session.get(Image, r.image_id) for r in (first, second)]
        stored = [any_store.blobs.read(image.sha256) for image in images]
        assert images[0].series.study_id == images[1].series.study_id  # same study after UID remapping
        entries = {(e.kind, e.original): e.pseudonym for e in session.scalars(select(PseudonymEntry))}
    for data in stored:
        assert b"MRN-123" not in data and b"Test^MRN-123" not in data and study.encode() not in data
    pseudonym = entries[("patient_id", "MRN-123")]
    assert pseudonym.startswith("ANON-") and pseudonym.encode() in stored[0]
    assert entries[("StudyInstanceUID", study)] != study


def test_originals_are_kept_byte_for_byte_when_deidentification_is_off(any_store):
    set_setting(any_store, LOCAL_ACTOR, "deidentify", False)
    data = dicom_bytes("P2")
    [result] = ingest_files(any_store, LOCAL_ACTOR, [InputFile("a.dcm", data)])
    with any_store.db.read() as session:
        sha = session.get(Image, result.image_id).sha256
    assert any_store.blobs.read(sha) == data


def test_duplicates_by_bytes_and_by_sop_instance_uid_are_not_stored_twice(any_store):
    first = dicom_bytes("P3", sop_instance_uid="1.2.826.0.1.3680043.8.498.1")
    # Different bytes (another patient name) but the same SOPInstanceUID.
    same_uid = dicom_bytes("P3-other", sop_instance_uid="1.2.826.0.1.3680043.8.498.1")
    picture = png_bytes(1)
    results = ingest_files(
        any_store,
        LOCAL_ACTOR,
        [InputFile("a.dcm", first), InputFile("b.png", picture), InputFile("a-copy.dcm", first)],
    )
    assert [r.status for r in results] == ["stored", "stored", "duplicate"]
    again = ingest_files(any_store, LOCAL_ACTOR, [InputFile("b-again.png", picture), InputFile("c.dcm", same_uid)])
    assert [r.status for r in again] == ["duplicate", "duplicate"]
    # The message names the stored image by its display name, never by another upload's file name.
    with any_store.db.read() as session:
        shown = session.get(Image, results[1].image_id).display_name
    assert shown in again[0].reason and "b.png" not in again[0].reason and "SOPInstanceUID" in again[1].reason
    with any_store.db.read() as session:
        assert session.scalar(select(func.count(Image.id))) == 2


def test_a_bad_file_is_rejected_alone_and_leaves_nothing_behind(any_store):
    good = png_bytes(2)
    results = ingest_files(
        any_store,
        LOCAL_ACTOR,
        [
            InputFile("notes.png", b"just some text, not an image"),
            InputFile("empty.dcm", b""),
            InputFile("ok.png", good),
        ],
    )
    assert [r.status for r in results] == ["rejected", "rejected", "stored"]
    assert all(r.reason for r in results[:2])
    blobs = [p for p in any_store.blobs.root.rglob("*") if p.is_file()]
    assert len(blobs) == 1


def test_labels_replace_per_reader_and_drive_the_worklist(any_store):
    results = ingest_files(any_store, LOCAL_ACTOR, [InputFile(f"{i}.png", png_bytes(10 + i)) for i in range(3)])
    first, second, third = (r.image_id for r in results)
    assert next_image_id(any_store, LOCAL_ACTOR) == first
    save_read(any_store, LOCAL_ACTOR, first, "normal")
    save_read(any_store, LOCAL_ACTOR, first, "pneumonia", unsure=True)  # relabel replaces, never duplicates
    save_read(any_store, LOCAL_ACTOR, third, "normal")
    assert next_image_id(any_store, LOCAL_ACTOR, after_image_id=first) == second
    assert next_image_id(any_store, LOCAL_ACTOR, after_image_id=third) == second  # wraps round
    labels = current_labels(any_store).set_index("image_id")
    assert labels.loc[first, "label"] == "pneumonia"
    reads = reads_table(any_store, LOCAL_ACTOR).set_index("image_id")
    assert bool(reads.loc[first, "unsure"]) and reads.loc[first, "status"] == "submitted"
    assert set(worklist(any_store, LOCAL_ACTOR, status="unread")["image_id"]) == {second}
    assert set(worklist(any_store, LOCAL_ACTOR, status="read", label="normal")["image_id"]) == {third}
    with any_store.db.read() as session:
        assert session.scalar(select(func.count(Annotation.id))) == 2


def test_labelling_rejects_unknown_class_and_missing_image(any_store):
    [result] = ingest_files(any_store, LOCAL_ACTOR, [InputFile("x.png", png_bytes(20))])
    with pytest.raises(MedreviewError, match="not a class"):
        save_read(any_store, LOCAL_ACTOR, result.image_id, "fracture")
    with pytest.raises(NotFoundError):
        save_read(any_store, LOCAL_ACTOR, 99999, "normal")


@pytest.mark.slow
def test_concurrent_label_writers_lose_nothing(any_store):
    results = ingest_files(any_store, LOCAL_ACTOR, [InputFile(f"{i}.png", png_bytes(100 + i)) for i in range(40)])
    ids = [r.image_id for r in results]
    errors: list[BaseException] = []

    def writer(offset: int) -> None:
        try:
            for position, image_id in enumerate(ids):
                save_read(any_store, LOCAL_ACTOR, image_id, ("normal", "pneumonia")[(position + offset) % 2])
        except BaseException as error:
            errors.append(error)

    threads = [threading.Thread(target=writer, args=(n,)) for n in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    with any_store.db.read() as session:
        assert session.scalar(select(func.count(Annotation.id))) == len(ids)


def test_exactly_one_model_version_is_active(any_store):
    for number in (1, 2):
        add_model_version(any_store, active=number == 1, class_names=("a", "b"), input_size=28)
    versions = sorted(v.id for v in _all_versions(any_store))
    activate_model(any_store, LOCAL_ACTOR, versions[1])
    assert active_model(any_store).id == versions[1]
    assert sum(v.is_active for v in _all_versions(any_store)) == 1
    with pytest.raises(NotFoundError):
        activate_model(any_store, LOCAL_ACTOR, 12345)


def _all_versions(store):
    with store.db.read() as session:
        return list(session.scalars(select(ModelVersion)))


def test_orphan_blob_from_a_crash_is_collected(store):
    orphan = store.blobs.put(b"written, then the process died before the row was committed")
    [kept] = ingest_files(store, LOCAL_ACTOR, [InputFile("kept.png", png_bytes(5))])
    assert store.collect_orphans(min_age_seconds=0) == 1
    assert not store.blobs.path_for(orphan).exists()
    with store.db.read() as session:
        assert store.blobs.path_for(session.get(Image, kept.image_id).sha256).exists()


def test_sqlite_runs_in_wal_mode_with_busy_timeout(store):
    with store.db.engine.connect() as connection:
        assert connection.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
        assert connection.exec_driver_sql("PRAGMA busy_timeout").scalar() == 30000


def test_every_sqlite_connection_syncs_each_commit_to_disk(store):
    # synchronous=FULL (2) makes a saved read survive a power cut, not only a crash of the app.
    # It is a per-connection setting: check the read and write sessions, several connections held
    # at once (each a new one from the pool), and a second Store on the same file (the worker's).
    full = 2
    with store.db.read() as session:
        assert session.execute(text("PRAGMA synchronous")).scalar() == full
    with store.db.write() as session:
        assert session.execute(text("PRAGMA synchronous")).scalar() == full
    connections = [store.db.engine.connect() for _ in range(4)]
    try:
        assert [c.exec_driver_sql("PRAGMA synchronous").scalar() for c in connections] == [full] * 4
    finally:
        for connection in connections:
            connection.close()
    other = type(store).open(store.settings)
    try:
        with other.db.engine.connect() as connection:
            assert connection.exec_driver_sql("PRAGMA synchronous").scalar() == full
    finally:
        other.close()


def test_deidentification_key_is_created_once_under_a_race(store):
    # Many threads asking for the key at once (first uploads in several sessions) all get the
    # same complete 32-byte key; none sees a half-written file.
    from concurrent.futures import ThreadPoolExecutor

    from medreview.ingest.pseudonyms import project_secret

    key_path = store.settings.data_dir / "secrets" / "deid.key"
    key_path.unlink(missing_ok=True)
    with ThreadPoolExecutor(8) as pool:
        keys = list(pool.map(lambda _: project_secret(store), range(32)))
    assert len(set(keys)) == 1 and len(keys[0]) == 32
    assert oct(key_path.stat().st_mode & 0o777) == "0o600"
    assert not [p for p in key_path.parent.iterdir() if p.name.startswith(".tmp-")]
