"""Project settings: typed defaults over the ``settings`` table.

Unknown keys are refused, so a typo cannot silently create a setting nobody reads.
"""

from __future__ import annotations

from typing import Any

from medreview.errors import MedreviewError
from medreview.models import Setting
from medreview.store import Store

__all__ = ["DEFAULTS", "get_setting", "project_settings", "set_setting"]

DEFAULTS: dict[str, Any] = {
    # De-identify DICOM and strip PNG/JPEG metadata at import (PS3.15 Basic Profile essentials).
    "deidentify": True,
    # Hide other readers' labels and the model's predictions from a reader until they submit.
    "blinded": False,
    # Which labels training uses: "final" (adjudicated, approved, or unanimous reads) or "all"
    # (every submitted, non-rejected read).
    "training_label_source": "final",
    # Minutes of inactivity after which a login expires.
    "session_minutes": 480,
}


def get_setting(store: Store, key: str) -> Any:
    if key not in DEFAULTS:
        raise MedreviewError(f"unknown setting '{key}'")
    with store.db.read() as session:
        row = session.get(Setting, key)
        return DEFAULTS[key] if row is None else row.value


def project_settings(store: Store) -> dict[str, Any]:
    return {key: get_setting(store, key) for key in DEFAULTS}


def set_setting(store: Store, key: str, value: Any) -> None:
    if key not in DEFAULTS:
        raise MedreviewError(f"unknown setting '{key}'")
    if type(value) is not type(DEFAULTS[key]):
        raise MedreviewError(f"setting '{key}' takes a {type(DEFAULTS[key]).__name__}")
    with store.db.write() as session:
        row = session.get(Setting, key, with_for_update=True)
        if row is None:
            session.add(Setting(key=key, value=value))
        else:
            row.value = value
