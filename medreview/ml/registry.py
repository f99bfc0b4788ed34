"""Model versions: list, read, and switch the one active model."""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError

from medreview.errors import MedreviewError, NotFoundError
from medreview.store import Store
from medreview.store.models import ModelVersion
from medreview.team.audit import record
from medreview.team.roles import Actor, require

__all__ = ["KEPT_INACTIVE", "activate_model", "active_model", "get_model", "list_models"]

# How an automatic decision to keep a new version inactive begins (ModelVersion.activation_reason,
# written by medreview.ml.evaluation): a promotion by hand overrides it, and the trail says so.
KEPT_INACTIVE = "not made active"


def list_models(store: Store) -> list[ModelVersion]:
    with store.db.read() as session:
        return list(session.scalars(select(ModelVersion).order_by(ModelVersion.id.desc())))


def get_model(store: Store, model_version_id: int) -> ModelVersion:
    with store.db.read() as session:
        version = session.get(ModelVersion, model_version_id)
    if version is None:
        raise NotFoundError(f"model version {model_version_id} does not exist")
    return version


def active_model(store: Store) -> ModelVersion | None:
    with store.db.read() as session:
        return session.scalar(select(ModelVersion).where(ModelVersion.is_active.is_(True)))


def activate_model(store: Store, actor: Actor, model_version_id: int) -> None:
    """Make one model version the active one (exactly one is active afterwards). Audited, with the
    automatic decision it overrides when the version was kept inactive after its training run."""
    require(actor, "admin", "promote a model")
    with store.db.write() as session:
        target = session.get(ModelVersion, model_version_id, with_for_update=True)
        if target is None:
            raise NotFoundError(f"model version {model_version_id} does not exist")
        previous = None
        for version in session.scalars(select(ModelVersion).where(ModelVersion.is_active.is_(True))):
            version.is_active = False
            previous = version.id
        session.flush()
        target.is_active = True
        try:
            session.flush()
        except IntegrityError as error:  # the partial unique index: another promotion won the race
            raise MedreviewError("another model was made active at the same moment; look again and retry") from error
        overrides = {}
        if target.activation_reason and target.activation_reason.startswith(KEPT_INACTIVE):
            overrides["overrides"] = target.activation_reason
        record(session, actor.username, "model.promote", "model_version", model_version_id, old=previous, **overrides)
