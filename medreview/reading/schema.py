"""The label schema: the project's classes, in display order, added, renamed and retired by admins.

Multi-label classes and box labels are stored by name, so a rename rewrites them in the same
transaction; retiring a class keeps existing labels and only stops new ones.

Each class has a scope (study, series or image: see medreview.reading.cases): a read of it is about
that case. A class's scope is chosen when it is added and can change only while nobody has read
with it (a study read cannot become a read of one slice after the fact).
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from medreview.errors import MedreviewError, NotFoundError
from medreview.reading.cases import check_scope
from medreview.store import Store
from medreview.store.models import Annotation, FinalLabel, LabelClass
from medreview.team.audit import record
from medreview.team.roles import Actor, require

__all__ = [
    "add_label_class",
    "check_label_schema",
    "label_class_scopes",
    "label_classes",
    "label_schema",
    "rename_label_class",
    "replace_label_schema",
    "set_label_class_active",
    "set_label_class_scope",
]


def label_classes(store: Store, include_retired: bool = False) -> list[str]:
    """Class names in display order."""
    with store.db.read() as session:
        query = select(LabelClass.name).order_by(LabelClass.position, LabelClass.id)
        if not include_retired:
            query = query.where(LabelClass.active.is_(True))
        return list(session.scalars(query))


def label_class_scopes(store: Store, include_retired: bool = False) -> dict[str, str]:
    """Class name -> scope ("study", "series" or "image"), in display order."""
    with store.db.read() as session:
        query = select(LabelClass.name, LabelClass.scope).order_by(LabelClass.position, LabelClass.id)
        if not include_retired:
            query = query.where(LabelClass.active.is_(True))
        return dict(session.execute(query).tuples().all())


def _clean_name(name: str) -> str:
    cleaned = " ".join(name.strip().split()).lower()
    if not cleaned:
        raise MedreviewError("a class name cannot be empty")
    if len(cleaned) > 64:
        raise MedreviewError("a class name can have at most 64 characters")
    return cleaned


def add_label_class(store: Store, actor: Actor, name: str, scope: str = "image") -> str:
    """Add a class whose reads are about a ``scope`` ("study", "series" or "image"); a retired
    class of that name comes back (with the scope it had: see :func:`set_label_class_scope`)."""
    require(actor, "admin", "change the label schema")
    cleaned = _clean_name(name)
    check_scope(scope)
    with store.db.write() as session:
        existing = session.scalar(select(LabelClass).where(LabelClass.name == cleaned))
        if existing is not None:
            if existing.active:
                raise MedreviewError(f"class '{cleaned}' already exists")
            existing.active = True
        else:
            position = (session.scalar(select(func.max(LabelClass.position))) or 0) + 1
            session.add(LabelClass(name=cleaned, position=position, scope=scope))
        record(session, actor.username, "settings.change", "label_class", cleaned, change="add", scope=scope)
    return cleaned


def set_label_class_scope(store: Store, actor: Actor, name: str, scope: str) -> None:
    """Change what a class's reads are about; refused once a read names the class."""
    require(actor, "admin", "change the label schema")
    check_scope(scope)
    with store.db.write() as session:
        row = session.scalar(select(LabelClass).where(LabelClass.name == name))
        if row is None:
            raise NotFoundError(f"no class named '{name}'")
        if row.scope == scope:
            return
        _change_scope(session, actor, row, scope)


def _change_scope(session: Session, actor: Actor, row: LabelClass, scope: str) -> None:
    name = row.name
    reads = session.scalar(select(func.count(Annotation.id)).where(Annotation.label_class_id == row.id)) or 0
    named = sum(
        name in (labels or []) or any(box.get("label") == name for box in boxes or [])
        for labels, boxes in session.execute(select(Annotation.labels, Annotation.boxes))
    )
    if reads or named:
        raise MedreviewError(
            f"class '{name}' has reads at {row.scope} level: its scope can change only before anyone reads with it"
        )
    old = row.scope
    row.scope = scope
    record(session, actor.username, "settings.change", "label_class", name, old_scope=old, scope=scope)


_SCHEMA_FIELDS = ("name", "scope", "active")


def label_schema(store: Store) -> list[dict[str, Any]]:
    """Every class, retired ones too, in display order: ``{"name", "scope", "active"}`` (what a
    project-settings export carries)."""
    with store.db.read() as session:
        rows = session.scalars(select(LabelClass).order_by(LabelClass.position, LabelClass.id))
        return [{"name": row.name, "scope": row.scope, "active": bool(row.active)} for row in rows]


def check_label_schema(value: object) -> list[dict[str, Any]]:
    """A class list as :func:`label_schema` gives it, checked: a MedreviewError names the class and the
    field that is wrong (an unknown field, a bad name or scope, a name given twice)."""
    if not isinstance(value, list):
        raise MedreviewError("the label classes are a list ([{'name': ..., 'scope': ..., 'active': ...}, ...])")
    checked: list[dict[str, Any]] = []
    for index, entry in enumerate(value, start=1):
        if not isinstance(entry, dict):
            raise MedreviewError(f"label class {index} is not an object ({{'name': ..., 'scope': ...}})")
        unknown = sorted(set(entry) - set(_SCHEMA_FIELDS))
        if unknown:
            raise MedreviewError(
                f"label class {index}: unknown field '{unknown[0]}' (fields: {', '.join(_SCHEMA_FIELDS)})"
            )
        if not isinstance(entry.get("name"), str):
            raise MedreviewError(f"label class {index}: 'name' is required (a text)")
        name = _clean_name(entry["name"])
        scope, active = entry.get("scope", "image"), entry.get("active", True)
        if not isinstance(scope, str):
            raise MedreviewError(f"label class '{name}': 'scope' is a text")
        try:
            check_scope(scope)
        except MedreviewError as error:
            raise MedreviewError(f"label class '{name}': {error}") from None
        if not isinstance(active, bool):
            raise MedreviewError(f"label class '{name}': 'active' is true or false")
        if any(done["name"] == name for done in checked):
            raise MedreviewError(f"label class '{name}' is given twice")
        checked.append({"name": name, "scope": scope, "active": active})
    return checked


def replace_label_schema(session: Session, actor: Actor, classes: list[dict[str, Any]]) -> None:
    """Make the classes those of ``classes`` (checked by :func:`check_label_schema`), in its order, in
    the caller's write session: new ones added, existing ones given the scope and state the list says
    (a scope change is refused once a class has reads), and classes the list does not name retired
    (their labels kept). Audited per change."""
    require(actor, "admin", "change the label schema")
    rows = {row.name: row for row in session.scalars(select(LabelClass))}
    for position, entry in enumerate(classes, start=1):
        row = rows.pop(entry["name"], None)
        if row is None:
            session.add(LabelClass(name=entry["name"], position=position, scope=entry["scope"], active=entry["active"]))
            record(
                session,
                actor.username,
                "settings.change",
                "label_class",
                entry["name"],
                change="add",
                scope=entry["scope"],
            )
            continue
        row.position = position
        if row.scope != entry["scope"]:
            _change_scope(session, actor, row, entry["scope"])
        if bool(row.active) != entry["active"]:
            row.active = entry["active"]
            record(session, actor.username, "settings.change", "label_class", row.name, active=entry["active"])
    for position, row in enumerate(sorted(rows.values(), key=lambda r: (r.position, r.id)), start=len(classes) + 1):
        row.position = position
        if row.active:
            row.active = False
            record(session, actor.username, "settings.change", "label_class", row.name, active=False)


def rename_label_class(store: Store, actor: Actor, old_name: str, new_name: str) -> str:
    require(actor, "admin", "change the label schema")
    cleaned = _clean_name(new_name)
    with store.db.write() as session:
        row = session.scalar(select(LabelClass).where(LabelClass.name == old_name))
        if row is None:
            raise NotFoundError(f"no class named '{old_name}'")
        if cleaned != old_name and session.scalar(select(LabelClass).where(LabelClass.name == cleaned)):
            raise MedreviewError(f"class '{cleaned}' already exists")
        row.name = cleaned
        # Multi-label classes and box labels are stored by name: rename them in the same transaction.
        for read in session.scalars(select(Annotation)):
            _rename_in_read(read, old_name, cleaned)
        for final in session.scalars(select(FinalLabel)):
            _rename_in_read(final, old_name, cleaned)
        record(session, actor.username, "settings.change", "label_class", cleaned, old=old_name, new=cleaned)
    return cleaned


def _rename_in_read(read: Annotation | FinalLabel, old_name: str, new_name: str) -> None:
    if old_name in (read.labels or []):
        read.labels = sorted(new_name if name == old_name else name for name in read.labels)
    if any(box.get("label") == old_name for box in read.boxes or []):
        read.boxes = [{**box, "label": new_name} if box.get("label") == old_name else box for box in read.boxes]


def set_label_class_active(store: Store, actor: Actor, name: str, active: bool) -> None:
    """Retire (or restore) a class. Retiring keeps existing labels; it only stops new ones."""
    require(actor, "admin", "change the label schema")
    with store.db.write() as session:
        row = session.scalar(select(LabelClass).where(LabelClass.name == name))
        if row is None:
            raise NotFoundError(f"no class named '{name}'")
        row.active = active
        record(session, actor.username, "settings.change", "label_class", name, active=active)
