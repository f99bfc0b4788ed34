"""Project settings: typed defaults over the ``settings`` table.

Unknown keys are refused, so a typo cannot silently create a setting nobody reads.
"""

from __future__ import annotations

import copy
from typing import Any

from sqlalchemy.orm import Session

from medreview.errors import MedreviewError
from medreview.reading.dicomout.codes import check_class_codes
from medreview.reading.protocols import DEFAULT_PROTOCOLS, validate_protocols
from medreview.store import Store
from medreview.store.models import Setting
from medreview.team.audit import record
from medreview.team.roles import Actor, require

__all__ = ["CHOICES", "DEFAULTS", "check_setting", "get_setting", "project_settings", "set_setting", "write_setting"]

DEFAULTS: dict[str, Any] = {
    # De-identify DICOM and strip PNG/JPEG metadata at import (PS3.15 Basic Profile essentials).
    "deidentify": True,
    # With de-identification: keep the dates of each patient's studies shifted by a per-patient offset
    # (PS3.15 Retain Longitudinal Temporal Information with Modified Dates Option), and age (capped
    # at 90) and sex, instead of removing them. Applies to files imported from then on.
    "shift_dates": False,
    # Hide other readers' labels and the model's predictions from a reader until they submit.
    "blinded": False,
    # What a reader sees of the active model on the Label page (medreview.reading.assist): "unaided"
    # (nothing before the read is saved), "aided_after" (its call, probability and map once the
    # reader's first read of the image is saved), "aided" (its call as a suggestion Enter accepts);
    # "auto": unaided when blinded reading is on, else aided_after.
    "assist_mode": "auto",
    # Which labels training uses: "final" (adjudicated, approved, or unanimous reads) or "all"
    # (every submitted, non-rejected read).
    "training_label_source": "final",
    # Minutes of inactivity after which a login expires.
    "session_minutes": 480,
    # "single": one class per image (buttons, keys 1-9); "multi": any number of classes per image.
    "label_mode": "single",
    # Let readers draw bounding boxes (in image pixel coordinates) on the Label page.
    "boxes": False,
    # With boxes: whether a reader may save boxes without a class for the image (detection work).
    # Off, the Label page's boxes go with a class (a class key, or S once the image has one).
    "box_only_reads": False,
    # The rules that fill the viewer's grid from a study, tried in order (medreview.reading.protocols):
    # a JSON list of protocols, validated on save.
    "hanging_protocols": DEFAULT_PROTOCOLS,
    # Label class name -> its code in DICOM objects ("SCT:233604007", "RADLEX:RID5350"); a class
    # without one gets medreview's private code (medreview.reading.dicomout.codes).
    "class_codes": {},
    # Consensus auto-accept (medreview.reading.consensus): a case's final label is set without a
    # review when at least this many readers named one class, the active model calls it at a
    # calibrated probability >= this, and the case is inside the model's training data.
    "auto_accept": False,
    "auto_accept_readers": 2,
    "auto_accept_probability": 0.95,
}
CHOICES: dict[str, tuple[str, ...]] = {
    "training_label_source": ("final", "all"),
    "label_mode": ("single", "multi"),
    "assist_mode": ("auto", "unaided", "aided_after", "aided"),
}


def get_setting(store: Store, key: str) -> Any:
    if key not in DEFAULTS:
        raise MedreviewError(f"unknown setting '{key}'")
    with store.db.read() as session:
        row = session.get(Setting, key)
        # A copy of a default: a caller that edits a list in place must not change the shipped one.
        return copy.deepcopy(DEFAULTS[key]) if row is None else row.value


def project_settings(store: Store) -> dict[str, Any]:
    return {key: get_setting(store, key) for key in DEFAULTS}


def set_setting(store: Store, actor: Actor, key: str, value: Any) -> None:
    """Change a project setting (admins only; audited with the old and new value)."""
    require(actor, "admin", "change project settings")
    value = check_setting(key, value)
    with store.db.write() as session:
        write_setting(session, actor, key, value)


def check_setting(key: str, value: Any) -> Any:
    """``value`` as setting ``key`` stores it, or a MedreviewError naming the setting and what it takes
    (a project-settings import checks every value with this before writing any)."""
    if key not in DEFAULTS:
        raise MedreviewError(f"unknown setting '{key}'")
    if type(value) is not type(DEFAULTS[key]):
        raise MedreviewError(f"setting '{key}' takes a {type(DEFAULTS[key]).__name__}")
    if key in CHOICES and value not in CHOICES[key]:
        raise MedreviewError(f"setting '{key}' is one of {', '.join(CHOICES[key])}")
    if key == "session_minutes" and not 5 <= value <= 7 * 24 * 60:
        raise MedreviewError("sessions must last between 5 minutes and a week")
    if key == "hanging_protocols":
        value = validate_protocols(value)
    if key == "class_codes":
        value = check_class_codes(value)
    if key == "auto_accept_readers" and not 1 <= value <= 20:
        raise MedreviewError("the auto-accept rule needs between 1 and 20 agreeing readers")
    if key == "auto_accept_probability" and not 0.5 <= value <= 1.0:
        raise MedreviewError("the auto-accept probability must be between 0.5 and 1")
    return value


def write_setting(session: Session, actor: Actor, key: str, value: Any) -> None:
    """Store a value :func:`check_setting` returned, in the caller's write session, with its audit event."""
    row = session.get(Setting, key, with_for_update=True)
    old = DEFAULTS[key] if row is None else row.value
    if row is None:
        session.add(Setting(key=key, value=value))
    else:
        row.value = value
    record(session, actor.username, "settings.change", "setting", key, old=old, new=value)
