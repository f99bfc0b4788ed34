"""Consensus auto-accept: a case's final label set without a review when readers and the model agree.

The rule is a project setting (admins, on Settings): when at least ``auto_accept_readers`` readers
named one single-choice class for a case, none named another and all their reads still wait for
review, the active model version calls that class at a calibrated probability of at least
``auto_accept_probability``, and the case lies inside the version's training data (its prediction
is not flagged out of distribution), the class becomes the case's final label with the method
"auto_accepted" and the reads are approved, in one transaction with a "review.auto_accept" audit
event that records the rule's values, the model's call and the reads approved.

A reviewer may revert it (medreview.reading.review.revert_auto_accept): the final label goes, the
reads wait for review again, and the rule leaves that case alone from then on (the revert is on the
audit trail, which is what the rule checks: no column of the schema is needed for it).

When it runs: when a read is saved (for that case: medreview.reading.reads.save_read), when a
prediction job has stored its calls (for the whole project), and when an admin applies it now.
Each is one set-based query over the reads, grouped by case.

This module imports nothing of the reading package, so the module that saves reads can call it.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy import String, and_, case, cast, distinct, false, func, or_, select
from sqlalchemy.orm import Session

from medreview.store import Store
from medreview.store.db import upsert
from medreview.store.models import Annotation, AuditEvent, FinalLabel, LabelClass, ModelVersion, Prediction, utcnow
from medreview.team.audit import record
from medreview.team.roles import Actor, require
from medreview.team.settings import get_setting

__all__ = [
    "AUTO_ACCEPTED",
    "RULE_ACTOR",
    "accept_by_consensus",
    "apply_consensus_rule",
    "consensus_rule",
    "set_final_label",
]

# FinalLabel.method of a label the rule set (the others: "approved", "adjudicated").
AUTO_ACCEPTED = "auto_accepted"
# Who the audit trail names for the rule's decisions: no person decided them.
RULE_ACTOR = "auto-accept"


def set_final_label(
    session: Session, case_key: tuple[str, int, int], label_class_id: int, method: str, by: str, comment: str
) -> None:
    """Record the final label of ``case_key`` (scope, case id, key image id): one per case."""
    scope, case_id, image_id = case_key
    values = {"label_class_id": label_class_id, "method": method, "decided_by": by, "comment": comment}
    upsert(
        session,
        FinalLabel,
        {
            "image_id": image_id,
            "scope": scope,
            "case_id": case_id,
            "decided_at": utcnow(),
            "labels": [],
            "boxes": [],
            **values,
        },
        conflict_columns=["scope", "case_id"],
        update_columns=[*values, "decided_at"],
    )


def consensus_rule(store: Store) -> dict[str, Any] | None:
    """The rule's values ({"readers", "probability"}), or None when the project has it off."""
    if not get_setting(store, "auto_accept"):
        return None
    return {
        "readers": int(get_setting(store, "auto_accept_readers")),
        "probability": float(get_setting(store, "auto_accept_probability")),
    }


def accept_by_consensus(
    store: Store, session: Session, triggered_by: str, cases: Sequence[tuple[str, int]] | None = None
) -> list[tuple[str, int]]:
    """Apply the rule, in the caller's write ``session``, to ``cases`` ((scope, case id) pairs;
    None: every case of the project). Returns the cases it accepted (none when the rule is off or
    no model version is active). ``triggered_by``: the user whose action ran it, for the audit."""
    rule = consensus_rule(store)
    if rule is None or cases == []:
        return []
    version_id = session.scalar(select(ModelVersion.id).where(ModelVersion.is_active.is_(True)))
    if version_id is None:
        return []
    named = (
        select(
            Annotation.scope,
            Annotation.case_id,
            func.min(Annotation.label_class_id).label("label_class_id"),
            func.min(Annotation.image_id).label("image_id"),
            func.count(Annotation.id).label("readers"),
        )
        .where(Annotation.status != "rejected", Annotation.label_class_id.is_not(None))
        .group_by(Annotation.scope, Annotation.case_id)
        .having(
            func.count(distinct(Annotation.label_class_id)) == 1,
            func.count(Annotation.id) >= rule["readers"],
            # Every read still waits: a read sent back (or decided) is a reviewer's business.
            func.sum(case((Annotation.status != "submitted", 1), else_=0)) == 0,
        )
    )
    if cases is not None:
        named = named.where(
            or_(*(and_(Annotation.scope == scope, Annotation.case_id == case_id) for scope, case_id in cases))
        )
    named_cases = named.subquery()
    decided = select(FinalLabel.id).where(
        FinalLabel.scope == named_cases.c.scope, FinalLabel.case_id == named_cases.c.case_id
    )
    reverted = select(AuditEvent.id).where(
        AuditEvent.action == "review.auto_accept_revert",
        AuditEvent.object_type == named_cases.c.scope,
        AuditEvent.object_id == cast(named_cases.c.case_id, String),
    )
    accepted_query = (
        select(named_cases, LabelClass.name.label("label"), Prediction.probability)
        .join(LabelClass, LabelClass.id == named_cases.c.label_class_id)
        .join(
            Prediction,
            and_(
                Prediction.scope == named_cases.c.scope,
                Prediction.case_id == named_cases.c.case_id,
                Prediction.model_version_id == version_id,
            ),
        )
        .where(
            Prediction.out_of_distribution.is_(false()),
            Prediction.predicted_class == LabelClass.name,
            Prediction.probability >= rule["probability"],
            ~decided.exists(),
            ~reverted.exists(),
        )
        .order_by(named_cases.c.scope, named_cases.c.case_id)
    )
    accepted = []
    for row in session.execute(accepted_query).all():
        set_final_label(
            session, (row.scope, row.case_id, row.image_id), row.label_class_id, AUTO_ACCEPTED, RULE_ACTOR, ""
        )
        reads = list(
            session.scalars(
                select(Annotation)
                .where(
                    Annotation.scope == row.scope, Annotation.case_id == row.case_id, Annotation.status == "submitted"
                )
                .order_by(Annotation.id)
            )
        )
        now = utcnow()
        for read in reads:
            read.status = "approved"
            read.reviewed_by_id = None  # no reviewer: the audit event says it was the rule
            read.reviewed_at = now
        record(
            session,
            RULE_ACTOR,
            "review.auto_accept",
            row.scope,
            row.case_id,
            image_id=row.image_id,
            label=row.label,
            readers=int(row.readers),
            model_version=version_id,
            probability=round(float(row.probability), 4),
            rule=rule,
            approved=[read.id for read in reads],
            triggered_by=triggered_by,
        )
        accepted.append((row.scope, int(row.case_id)))
    return accepted


def apply_consensus_rule(store: Store, actor: Actor) -> int:
    """Apply the rule to every case of the project now (admins); returns how many it accepted."""
    require(actor, "admin", "apply the auto-accept rule")
    with store.db.write() as session:
        return len(accept_by_consensus(store, session, actor.username))
