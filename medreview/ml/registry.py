"""Model versions: list, read, and switch the one active model."""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError

from medreview.errors import MedreviewError, NotFoundError
from medreview.store import Store
from medreview.store.models import ModelVersion
from medreview.team.audit import record
from medreview.team.roles import Actor, require

__all__ = ["activate_model", "active_model", "list_models"]


def list_models(store: Store) -> list[ModelVersion]:
    with store.db.read() as session:
        return list(session.scalars(select(ModelVersion).order_by(ModelVersion.id.desc())))


def active_model(store: Store) -> ModelVersion | None:
    with store.db.read() as session:
        return session.scalar(select(ModelVersion).where(ModelVersion.is_active.is_(True)))


def activate_model(store: Store, actor: Actor, model_version_id: int) -> None:
    """Make one model version the active one (exactly one is active afterwards)."""
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
        record(session, actor.username, "model.promote", "model_version", model_version_id, old=previous)
