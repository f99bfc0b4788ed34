"""The model registry: versions listed newest first, one active model, promotion by admins only
and always audited."""

from __future__ import annotations

import json

import pytest

from medreview.errors import NotFoundError, PermissionDeniedError
from medreview.ml.registry import activate_model, active_model, list_models
from medreview.reading.reads import LOCAL_ACTOR
from medreview.store import Store
from medreview.team.audit import query
from medreview.team.roles import Actor
from tests.helpers import add_model_version

REVIEWER = Actor("rev", "reviewer")


def add_model(store: Store, active: bool = False) -> int:
    return add_model_version(store, active, class_names=("normal", "pneumonia"))


def active_ids(store: Store) -> list[int]:
    return [version.id for version in list_models(store) if version.is_active]


def test_models_are_listed_newest_first(store):
    ids = [add_model(store) for _ in range(3)]
    assert [version.id for version in list_models(store)] == sorted(ids, reverse=True)


def test_no_active_model_until_one_is_promoted(store):
    add_model(store)
    assert active_model(store) is None


def test_promoting_another_model_leaves_exactly_one_active(store):
    first = add_model(store, active=True)
    second = add_model(store)
    activate_model(store, LOCAL_ACTOR, second)
    assert active_model(store).id == second
    assert active_ids(store) == [second]
    activate_model(store, LOCAL_ACTOR, first)  # and back again
    assert active_ids(store) == [first]


def test_promotion_is_audited_with_the_previous_model(store):
    first = add_model(store, active=True)
    second = add_model(store)
    activate_model(store, LOCAL_ACTOR, second)
    events = query(store, LOCAL_ACTOR, action="model.promote")
    assert len(events) == 1
    event = events.iloc[0]
    assert (event["actor"], event["object_type"], event["object_id"]) == ("local", "model_version", str(second))
    assert json.loads(event["details"]) == {"old": first}


def test_only_admins_promote_models(store):
    first = add_model(store, active=True)
    second = add_model(store)
    with pytest.raises(PermissionDeniedError, match="may not promote a model"):
        activate_model(store, REVIEWER, second)
    assert active_ids(store) == [first]
    assert query(store, LOCAL_ACTOR, action="model.promote").empty


def test_an_unknown_model_is_not_found_and_the_active_one_stays(store):
    first = add_model(store, active=True)
    with pytest.raises(NotFoundError, match="model version 4242 does not exist"):
        activate_model(store, LOCAL_ACTOR, 4242)
    assert active_ids(store) == [first]
    assert query(store, LOCAL_ACTOR, action="model.promote").empty
