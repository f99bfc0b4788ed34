"""Project settings export and import (issue 17 item 4): the label schema with scopes, the hanging
protocols and the other settings carried to a fresh store; a bad file refused whole, naming what is
wrong; no secret or account in the document."""

import copy
import json

import pytest
from sqlalchemy import select

from medreview.errors import MedreviewError, PermissionDeniedError
from medreview.ingest import InputFile, ingest_files
from medreview.reading.project_settings import export_project_settings, import_project_settings, project_settings_bytes
from medreview.reading.reads import LOCAL_ACTOR, save_read
from medreview.reading.schema import add_label_class, label_class_scopes, label_schema, set_label_class_active
from medreview.store import Store
from medreview.store.models import AuditEvent
from medreview.team.roles import Actor
from medreview.team.settings import DEFAULTS, project_settings, set_setting
from tests.helpers import dicom_bytes

CT_ONLY = [{"name": "ct one window", "modality": "CT", "layout": "1x1", "viewports": [{"preset": "lung"}]}]


def _configured(store: Store) -> None:
    add_label_class(store, LOCAL_ACTOR, "pe present", scope="study")
    add_label_class(store, LOCAL_ACTOR, "nodule", scope="series")
    set_label_class_active(store, LOCAL_ACTOR, "normal", False)
    set_setting(store, LOCAL_ACTOR, "hanging_protocols", CT_ONLY)
    set_setting(store, LOCAL_ACTOR, "blinded", True)
    set_setting(store, LOCAL_ACTOR, "session_minutes", 60)


def test_settings_round_trip_into_a_fresh_store(store, tmp_path, monkeypatch):
    _configured(store)
    document = json.loads(project_settings_bytes(store, LOCAL_ACTOR))
    # Nothing secret or personal: the pseudonym key is a file, accounts a table; neither is read.
    key_file = store.settings.data_dir / "secrets" / "deid.key"
    secret = key_file.read_bytes().hex() if key_file.exists() else None
    text = json.dumps(document)
    assert set(document) == {"format", "version", "settings", "label_classes"}
    assert set(document["settings"]) == set(DEFAULTS)
    assert '"local"' not in text and "password" not in text and (secret is None or secret not in text)

    monkeypatch.setenv("MEDREVIEW_DATA_DIR", str(tmp_path / "fresh"))
    fresh = Store.open()
    try:
        changed = import_project_settings(fresh, LOCAL_ACTOR, json.dumps(document).encode())
        assert project_settings(fresh) == project_settings(store)
        assert label_schema(fresh) == label_schema(store)
        assert label_class_scopes(fresh) == {"pneumonia": "image", "pe present": "study", "nodule": "series"}
        assert set(changed["settings"]) == {"hanging_protocols", "blinded", "session_minutes"}
        with fresh.db.read() as session:
            events = session.scalars(select(AuditEvent).where(AuditEvent.action == "settings.change")).all()
        assert any(event.object_type == "project" and event.object_id == "import" for event in events)
        assert any(event.object_id == "hanging_protocols" and event.details["new"] == CT_ONLY for event in events)
        # The same file again changes nothing.
        assert import_project_settings(fresh, LOCAL_ACTOR, document)["settings"] == []
    finally:
        fresh.close()


BAD_FILES = [
    (lambda d: d.update(colour="red"), "unknown key 'colour'"),
    (lambda d: d["settings"].update(pseudonym_key="abc"), "unknown setting 'pseudonym_key'"),
    (lambda d: d["settings"].update(session_minutes="60"), "setting 'session_minutes'"),
    (lambda d: d["settings"]["hanging_protocols"][0].update(layout="5x5"), "protocol 'ct one window': 'layout'"),
    (
        lambda d: d["settings"]["hanging_protocols"][0]["viewports"][0].update(description="(unclosed"),
        "protocol 'ct one window' viewport 1",
    ),
    (lambda d: d["label_classes"].append({"name": "x", "scope": "patient"}), "label class 'x': unknown scope"),
    (lambda d: d["label_classes"].append({"name": "Nodule"}), "label class 'nodule' is given twice"),
    (lambda d: d.update(format="labels"), "not a project settings file"),
]


@pytest.mark.parametrize(("spoil", "message"), BAD_FILES)
def test_a_bad_file_is_refused_whole_naming_what_is_wrong(store, spoil, message):
    _configured(store)
    document = export_project_settings(store, LOCAL_ACTOR)
    bad = copy.deepcopy(document)
    bad["settings"]["blinded"] = False  # a good change beside the bad one: it must not land either
    spoil(bad)
    with pytest.raises(MedreviewError, match=message.replace("(", r"\(")):
        import_project_settings(store, LOCAL_ACTOR, bad)
    assert project_settings(store)["blinded"] is True
    assert label_schema(store) == document["label_classes"]


def test_a_scope_change_of_a_read_class_undoes_the_whole_import(store):
    _configured(store)
    image_id = ingest_files(store, LOCAL_ACTOR, [InputFile("a.dcm", dicom_bytes("P1"))])[0].image_id
    save_read(store, LOCAL_ACTOR, image_id, "pneumonia")
    document = export_project_settings(store, LOCAL_ACTOR)
    document["settings"]["blinded"] = False
    next(entry for entry in document["label_classes"] if entry["name"] == "pneumonia")["scope"] = "study"
    with pytest.raises(MedreviewError, match="class 'pneumonia' has reads"):
        import_project_settings(store, LOCAL_ACTOR, document)
    assert project_settings(store)["blinded"] is True
    assert label_class_scopes(store)["pneumonia"] == "image"


def test_only_admins_export_or_import(store):
    reviewer = Actor("rita", "reviewer")
    with pytest.raises(PermissionDeniedError):
        export_project_settings(store, reviewer)
    with pytest.raises(PermissionDeniedError):
        import_project_settings(store, reviewer, export_project_settings(store, LOCAL_ACTOR))
    with pytest.raises(MedreviewError, match="not valid JSON at line 1"):
        import_project_settings(store, LOCAL_ACTOR, b"{not json")
