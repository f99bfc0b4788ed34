"""Project settings: the defaults a new project starts with, changes by admins only, refusal of
unknown keys and out-of-range values, and every change in the audit trail with old and new."""

from __future__ import annotations

import json

import pytest

from medreview.errors import MedreviewError, PermissionDeniedError
from medreview.reading.protocols import DEFAULT_PROTOCOLS
from medreview.reading.reads import LOCAL_ACTOR
from medreview.team.audit import query
from medreview.team.roles import Actor
from medreview.team.settings import get_setting, project_settings, set_setting

REVIEWER = Actor("rev", "reviewer")


def changes(store) -> list[tuple[str, dict]]:
    """(setting, details) of each settings.change event, oldest first."""
    events = query(store, LOCAL_ACTOR, action="settings.change").iloc[::-1]
    return [(row.object_id, json.loads(row.details)) for row in events.itertuples()]


def test_a_new_project_starts_safe(store):
    # De-identification on, no blinding, final labels for training, 8-hour sessions.
    assert (
        project_settings(store)
        == {
            "deidentify": True,
            "shift_dates": False,  # dates removed, not shifted (PS3.15 Modified Dates option off)
            "blinded": False,
            "training_label_source": "final",
            "session_minutes": 480,
            "label_mode": "single",
            "boxes": False,
            "box_only_reads": False,
            "hanging_protocols": DEFAULT_PROTOCOLS,  # CT, MR brain, chest film with prior, mammography
            "auto_accept": False,  # no final label without a review unless an admin turns the rule on
            "auto_accept_readers": 2,
            "auto_accept_probability": 0.95,
            "class_codes": {},
            "assist_mode": "auto",  # the model on the Label page: unaided under blinded reading, else after the read  # every class in DICOM SR under medreview's private code until an admin gives one
        }
    )


def test_reading_an_unknown_setting_is_refused(store):
    with pytest.raises(MedreviewError, match="unknown setting 'blind'"):
        get_setting(store, "blind")


def test_an_admin_changes_a_setting_and_it_is_audited_with_old_and_new(store):
    set_setting(store, LOCAL_ACTOR, "label_mode", "multi")
    set_setting(store, LOCAL_ACTOR, "label_mode", "single")
    set_setting(store, LOCAL_ACTOR, "session_minutes", 60)
    assert get_setting(store, "session_minutes") == 60
    assert get_setting(store, "label_mode") == "single"
    assert changes(store) == [
        ("label_mode", {"old": "single", "new": "multi"}),
        ("label_mode", {"old": "multi", "new": "single"}),
        ("session_minutes", {"old": 480, "new": 60}),
    ]
    assert set(query(store, LOCAL_ACTOR, action="settings.change")["actor"]) == {"local"}


def test_a_setting_persists_across_store_reopen(store):
    set_setting(store, LOCAL_ACTOR, "blinded", True)
    reopened = type(store).open(store.settings)
    assert get_setting(reopened, "blinded") is True
    reopened.close()


@pytest.mark.parametrize(
    "actor, key, value, error, message",
    [
        (REVIEWER, "blinded", True, PermissionDeniedError, "may not change project settings"),
        (LOCAL_ACTOR, "blind", True, MedreviewError, "unknown setting 'blind'"),
        (LOCAL_ACTOR, "training_label_source", "newest", MedreviewError, "is one of final, all"),
        (LOCAL_ACTOR, "label_mode", "several", MedreviewError, "is one of single, multi"),
        (LOCAL_ACTOR, "blinded", "yes", MedreviewError, "setting 'blinded' takes a bool"),
        (LOCAL_ACTOR, "session_minutes", True, MedreviewError, "setting 'session_minutes' takes an? int"),
        (LOCAL_ACTOR, "session_minutes", 4, MedreviewError, "between 5 minutes and a week"),
        (LOCAL_ACTOR, "session_minutes", 7 * 24 * 60 + 1, MedreviewError, "between 5 minutes and a week"),
    ],
)
def test_refused_changes_leave_the_setting_and_the_audit_trail_alone(store, actor, key, value, error, message):
    before = project_settings(store)
    with pytest.raises(error, match=message):
        set_setting(store, actor, key, value)
    assert project_settings(store) == before
    assert changes(store) == []


@pytest.mark.parametrize("minutes", [5, 7 * 24 * 60])
def test_session_length_limits_are_inclusive(store, minutes):
    set_setting(store, LOCAL_ACTOR, "session_minutes", minutes)
    assert get_setting(store, "session_minutes") == minutes
