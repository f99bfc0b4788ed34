"""The pseudonym map and the de-identification key: a real de-identified DICOM upload fills the
map, only admins may look at it, each look is audited without what was searched for, and the
key is one private 32-byte file."""

from __future__ import annotations

import json

import pytest
from sqlalchemy import select

from medreview.errors import IngestError, PermissionDeniedError
from medreview.ingest import InputFile, ingest_files
from medreview.ingest.pseudonyms import project_secret, pseudonym_table
from medreview.reading.reads import LOCAL_ACTOR
from medreview.store import Store
from medreview.store.models import Patient
from medreview.team.audit import query
from medreview.team.roles import Actor
from tests.helpers import dicom_bytes

REVIEWER = Actor("rev", "reviewer")
PATIENT_ID = "MRN-4711"
STUDY_UID = "1.2.826.0.1.3680043.8.498.4711"


@pytest.fixture
def uploaded(store: Store) -> Store:
    [result] = ingest_files(store, LOCAL_ACTOR, [InputFile("scan.dcm", dicom_bytes(PATIENT_ID, study_uid=STUDY_UID))])
    assert result.status == "stored"
    return store


def views(store: Store) -> list[dict]:
    return [json.loads(details) for details in query(store, LOCAL_ACTOR, action="pseudonyms.view")["details"]]


def test_the_map_holds_the_original_and_its_pseudonym(uploaded):
    table = pseudonym_table(uploaded, LOCAL_ACTOR)
    entries = {(row.kind, row.original): row.pseudonym for row in table.itertuples()}
    with uploaded.db.read() as session:
        stored_key = session.scalar(select(Patient.patient_key))
    # The database keeps only the pseudonym; the map says whose it is.
    assert entries[("patient_id", PATIENT_ID)] == stored_key and stored_key.startswith("ANON-")
    assert entries[("patient_name", f"Test^{PATIENT_ID}")] == stored_key
    assert entries[("StudyInstanceUID", STUDY_UID)] not in ("", STUDY_UID)


def test_a_search_finds_the_patient(uploaded):
    ingest_files(uploaded, LOCAL_ACTOR, [InputFile("other.dcm", dicom_bytes("MRN-9999"))])
    found = pseudonym_table(uploaded, LOCAL_ACTOR, search="RN-47")  # part of the ID is enough
    assert set(found["kind"]) == {"patient_id", "patient_name"}
    assert set(found["original"]) == {PATIENT_ID, f"Test^{PATIENT_ID}"}
    # Searching by the pseudonym finds the same patient (from a name seen in the app).
    pseudonym = found["pseudonym"].iloc[0]
    assert PATIENT_ID in set(pseudonym_table(uploaded, LOCAL_ACTOR, search=pseudonym)["original"])


def test_only_admins_see_the_map(uploaded):
    with pytest.raises(PermissionDeniedError, match="may not see the pseudonym map"):
        pseudonym_table(uploaded, REVIEWER, search=PATIENT_ID)
    assert views(uploaded) == []  # a refused look leaves no trace of a view


def test_each_look_is_audited_without_the_search_text(uploaded):
    pseudonym_table(uploaded, LOCAL_ACTOR)
    pseudonym_table(uploaded, LOCAL_ACTOR, search=PATIENT_ID)
    events = query(uploaded, LOCAL_ACTOR, action="pseudonyms.view")
    assert len(events) == 2 and set(events["actor"]) == {"local"}
    assert PATIENT_ID not in events.to_csv()
    assert sorted(views(uploaded), key=lambda details: details["searched"]) == [
        {"searched": False, "rows": 6},  # patient id and name, study, series and instance UIDs, file name
        {"searched": True, "rows": 2},
    ]


def test_the_key_is_the_same_32_bytes_every_time_and_private(store):
    first = project_secret(store)
    assert len(first) == 32 and project_secret(store) == first
    key_path = store.settings.data_dir / "secrets" / "deid.key"
    assert key_path.read_bytes() == first
    assert oct(key_path.stat().st_mode & 0o777) == "0o600"


def test_the_same_key_gives_the_same_pseudonym_across_uploads(uploaded):
    first = pseudonym_table(uploaded, LOCAL_ACTOR, search=PATIENT_ID)
    ingest_files(uploaded, LOCAL_ACTOR, [InputFile("again.dcm", dicom_bytes(PATIENT_ID))])
    with uploaded.db.read() as session:
        assert list(session.scalars(select(Patient.patient_key))) == [first["pseudonym"].iloc[0]]


def test_a_damaged_key_is_refused_not_replaced(store):
    key_path = store.settings.data_dir / "secrets" / "deid.key"
    project_secret(store)
    key_path.write_bytes(b"half a key")
    with pytest.raises(IngestError, match="is damaged"):
        project_secret(store)
    assert key_path.read_bytes() == b"half a key"  # left for the admin to restore
