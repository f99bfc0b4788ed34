"""A project's settings as one JSON document, to carry them to another store (issue 17 item 4: the
hanging protocols go "with the project").

The document holds the label schema (every class with its scope, retired ones too, in display order)
and every project setting of :data:`medreview.team.settings.DEFAULTS`: de-identification and dates,
blinding, label mode, boxes, training labels, session length, hanging protocols and the rest. Nothing
secret or personal is among them, and nothing else goes in: the pseudonym key is a file under the
data folder (``secrets/deid.key``), accounts and passwords live in the users table, and neither is
ever read here.

An import is checked whole before anything is written (an unknown key or setting, a bad value, a bad
hanging-protocol rule or class gives one message naming it), then applied in one transaction: a class
whose scope the file changes but which has reads refuses the whole import. Every change is audited.
"""

from __future__ import annotations

import json
from typing import Any

from medreview.errors import MedreviewError
from medreview.reading.schema import check_label_schema, label_schema, replace_label_schema
from medreview.store import Store
from medreview.team.audit import record, record_now
from medreview.team.roles import Actor, require
from medreview.team.settings import DEFAULTS, check_setting, project_settings, write_setting

__all__ = ["FORMAT", "export_project_settings", "import_project_settings", "project_settings_bytes"]

FORMAT = "medreview project settings"
VERSION = 1
_TOP_LEVEL = ("format", "version", "settings", "label_classes")


def export_project_settings(store: Store, actor: Actor) -> dict[str, Any]:
    """The project's settings document (admins only; audited as an export)."""
    require(actor, "admin", "export the project settings")
    document = {
        "format": FORMAT,
        "version": VERSION,
        "settings": project_settings(store),
        "label_classes": label_schema(store),
    }
    record_now(store, actor.username, "export", "export", "settings", kind="settings")
    return document


def project_settings_bytes(store: Store, actor: Actor) -> bytes:
    """:func:`export_project_settings` as indented UTF-8 JSON (the file a download or ``export settings`` writes)."""
    return (json.dumps(export_project_settings(store, actor), indent=2, ensure_ascii=False) + "\n").encode()


def import_project_settings(store: Store, actor: Actor, document: dict[str, Any] | bytes | str) -> dict[str, Any]:
    """Apply a settings document (a dict, or its JSON) to this store; returns what changed:
    ``{"settings": [changed keys], "label_classes": [class names in the file]}``. Settings the file
    leaves out keep their values; classes it does not name are retired (their labels kept)."""
    require(actor, "admin", "import project settings")
    settings, classes = _checked_document(_parsed(document))
    current = project_settings(store)
    changed = {key: value for key, value in settings.items() if value != current[key]}
    with store.db.write() as session:
        for key, value in changed.items():
            write_setting(session, actor, key, value)
        if classes is not None:
            replace_label_schema(session, actor, classes)
        record(
            session,
            actor.username,
            "settings.change",
            "project",
            "import",
            settings=sorted(changed),
            label_classes=None if classes is None else [entry["name"] for entry in classes],
        )
    return {"settings": sorted(changed), "label_classes": [entry["name"] for entry in classes or []]}


def _parsed(document: dict[str, Any] | bytes | str) -> Any:
    if isinstance(document, dict):
        return document
    try:
        return json.loads(document)
    except (json.JSONDecodeError, UnicodeDecodeError) as error:
        where = f" at line {error.lineno}, column {error.colno}" if isinstance(error, json.JSONDecodeError) else ""
        raise MedreviewError(f"the settings file is not valid JSON{where}") from None


def _checked_document(document: Any) -> tuple[dict[str, Any], list[dict[str, Any]] | None]:
    """(settings to apply, checked classes or None when the file has none), or a MedreviewError that
    names the first key, setting or class that is wrong."""
    if not isinstance(document, dict) or document.get("format") != FORMAT:
        raise MedreviewError(f"not a project settings file (its 'format' must be '{FORMAT}')")
    if document.get("version") != VERSION:
        raise MedreviewError(
            f"settings file version {document.get('version')!r}: this medreview reads version {VERSION}"
        )
    unknown = sorted(set(document) - set(_TOP_LEVEL))
    if unknown:
        raise MedreviewError(f"unknown key '{unknown[0]}' in the settings file (keys: {', '.join(_TOP_LEVEL)})")
    raw = document.get("settings", {})
    if not isinstance(raw, dict):
        raise MedreviewError("'settings' is an object of setting names and values")
    unknown = sorted(set(raw) - set(DEFAULTS))
    if unknown:
        raise MedreviewError(f"unknown setting '{unknown[0]}' (settings: {', '.join(DEFAULTS)})")
    settings = {}
    for key, value in raw.items():
        try:
            settings[key] = check_setting(key, value)
        except MedreviewError as error:
            raise MedreviewError(f"setting '{key}': {error}") from None
    classes = check_label_schema(document["label_classes"]) if "label_classes" in document else None
    return settings, classes
