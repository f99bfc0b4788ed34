"""Model-assisted reading without automation bias (issue 18 item 4).

The project's ``assist_mode`` setting decides what a reader sees of the active model on the Label
page, and this module decides it for the page and for the record alike (the same rule both ways, so
what is recorded is what was sent):

- ``unaided``: nothing of the model reaches the browser for an image the reader has not read (nor
  after: the reads stay independent of the model);
- ``aided_after``: the model's call, its calibrated probability and its map once the reader's first
  read of the image is saved; a change of class made after that is recorded (``changed_after_model``),
  as blinded reading records a change made after seeing the others' reads;
- ``aided``: the model's call as a suggestion before the first read (never pre-selected: Enter
  accepts it, a class key overrides it); an image outside the model's training data gets no
  suggestion, and the reason instead.

``auto`` (the default) is ``unaided`` when blinded reading is on, else ``aided_after``.

Each read records the mode at its first save, the model version shown, the class it suggested and
whether the first save named it (accepted unchanged) or not (overridden); :func:`assist_monitor`
gives, per reader and model version, how often each happened and the reader's accuracy against the
final label in either case.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import pandas as pd
from sqlalchemy import select
from sqlalchemy.orm import Session

from medreview.store import Store
from medreview.store.models import Annotation, FinalLabel, ModelVersion, Prediction, User
from medreview.team.roles import Actor, require
from medreview.team.settings import get_setting

__all__ = [
    "ASSIST_MODES",
    "MONITOR_COLUMNS",
    "ModelCall",
    "assist_mode",
    "assist_monitor",
    "model_call",
    "shown_call",
]

ASSIST_MODES = ("unaided", "aided_after", "aided")
MONITOR_COLUMNS = [
    "reader",
    "model_version",
    "suggestions",
    "accepted",
    "overridden",
    "accepted_share",
    "accuracy_accepted",
    "accuracy_overridden",
    "final_accepted",
    "final_overridden",
    "changed_after_model",
]


@dataclass(frozen=True)
class ModelCall:
    """The active model version's call on one image. ``label``/``probability`` None when the image
    lies outside the version's training data (``reason`` says why)."""

    version_id: int
    label: str | None
    probability: float | None
    outside: bool
    reason: str | None
    class_names: tuple[str, ...]
    heatmap_path: str | None


def assist_mode(store: Store) -> str:
    """The mode in force: the setting, ``auto`` resolved by the blinded-reading setting."""
    mode = str(get_setting(store, "assist_mode"))
    if mode not in ASSIST_MODES:
        return "unaided" if get_setting(store, "blinded") else "aided_after"
    return mode


def model_call(session: Session, image_id: int) -> ModelCall | None:
    """The active version's prediction of ``image_id`` (None without an active version or a prediction)."""
    row = session.execute(
        select(Prediction, ModelVersion.class_names)
        .join(ModelVersion, ModelVersion.id == Prediction.model_version_id)
        .where(ModelVersion.is_active.is_(True), Prediction.image_id == image_id)
    ).first()
    if row is None:
        return None
    prediction, class_names = row
    outside = bool(prediction.out_of_distribution)
    return ModelCall(
        version_id=prediction.model_version_id,
        label=None if outside else prediction.predicted_class,
        probability=None if outside else float(prediction.probability),
        outside=outside,
        reason=(prediction.out_of_distribution_reason or "outside the model's training data") if outside else None,
        class_names=tuple(class_names or ()),
        heatmap_path=prediction.heatmap_path if prediction.scope == "image" else None,
    )


def _visible(mode: str, call: ModelCall | None, read: bool) -> bool:
    """Whether the reader may see ``call`` (the one rule for the page and the record)."""
    if call is None or mode == "unaided":
        return False
    return read if mode == "aided_after" else True


def shown_call(store: Store, image_id: int, read: bool, mode: str | None = None) -> dict[str, Any] | None:
    """What the viewer may show of the model for one image the reader has (``read``) or has not
    read: None when nothing, else {"mode", "version", "label", "probability", "outside", "reason",
    "suggest"} (``suggest``: a suggestion Enter accepts, aided mode before the first read only)."""
    mode = mode or assist_mode(store)
    if mode == "unaided":
        return None
    with store.db.read() as session:
        call = model_call(session, image_id)
    if call is None or not _visible(mode, call, read):
        return None
    return {
        "mode": mode,
        "version": call.version_id,
        "label": call.label,
        "probability": call.probability,
        "outside": call.outside,
        "reason": call.reason,
        "suggest": mode == "aided" and not read and not call.outside,
    }


def assist_values(
    store: Store, session: Session, image_id: int, previous: Annotation | None, label_class: str | None
) -> dict[str, Any]:
    """The assist columns of a read about to be saved (``previous``: the reader's read of the case so
    far). First save: the mode, and in aided mode the suggestion shown and whether this read names
    it. Later saves keep those; a change of class made while the model's call was on screen sets
    ``changed_after_model`` (aided_after: the call appears once the first read is saved)."""
    if previous is not None:
        values = {
            "assist_mode": previous.assist_mode,
            "model_version_id": previous.model_version_id,
            "model_suggestion": previous.model_suggestion,
            "suggestion_accepted": previous.suggestion_accepted,
            "changed_after_model": bool(previous.changed_after_model),
        }
        mode = assist_mode(store)
        call = model_call(session, image_id)
        previous_class = previous.label_class.name if previous.label_class is not None else None
        if _visible(mode, call, read=True) and previous_class != label_class:
            values["changed_after_model"] = True
            values["model_version_id"] = values["model_version_id"] or call.version_id  # type: ignore[union-attr]
        return values
    mode = assist_mode(store)
    call = model_call(session, image_id)
    suggested = mode == "aided" and call is not None and not call.outside
    return {
        "assist_mode": mode,
        "model_version_id": call.version_id if suggested and call is not None else None,
        "model_suggestion": call.label if suggested and call is not None else None,
        "suggestion_accepted": (label_class == call.label) if suggested and call is not None else None,
        "changed_after_model": False,
    }


def assist_monitor(store: Store, actor: Actor) -> pd.DataFrame:
    """(Reviewers and admins.) Per reader and model version, the reads made with a suggestion on
    screen: how many, how many accepted it unchanged and how many overrode it, and the reader's
    accuracy against the final label in each case (over the reads whose case has a final label:
    ``final_accepted`` and ``final_overridden`` of them); ``changed_after_model``: reads changed
    once the call was seen."""
    require(actor, "reviewer", "see how readers use the model's suggestions")
    final_class = select(FinalLabel.label_class_id).where(
        FinalLabel.scope == Annotation.scope, FinalLabel.case_id == Annotation.case_id
    )
    query = (
        select(
            User.username.label("reader"),
            Annotation.model_version_id,
            Annotation.suggestion_accepted,
            Annotation.changed_after_model,
            Annotation.label_class_id,
            final_class.scalar_subquery().label("final_class_id"),
            final_class.exists().label("has_final"),
        )
        .join(User, User.id == Annotation.reader_id)
        .where(Annotation.model_version_id.is_not(None))
    )
    with store.db.read() as session:
        reads = pd.DataFrame(session.execute(query).mappings().all())
    if reads.empty:
        return pd.DataFrame(columns=MONITOR_COLUMNS)
    rows = []
    for (reader, version), group in reads.groupby(["reader", "model_version_id"], sort=True):
        shown = group[group["suggestion_accepted"].notna()]
        accepted = shown[shown["suggestion_accepted"].astype(bool)]
        overridden = shown[~shown["suggestion_accepted"].astype(bool)]
        rows.append(
            {
                "reader": reader,
                "model_version": int(version),
                "suggestions": len(shown),
                "accepted": len(accepted),
                "overridden": len(overridden),
                "accepted_share": len(accepted) / len(shown) if len(shown) else None,
                "accuracy_accepted": _accuracy(accepted),
                "accuracy_overridden": _accuracy(overridden),
                "final_accepted": int(accepted["has_final"].astype(bool).sum()),
                "final_overridden": int(overridden["has_final"].astype(bool).sum()),
                "changed_after_model": int(group["changed_after_model"].astype(bool).sum()),
            }
        )
    return pd.DataFrame(rows, columns=MONITOR_COLUMNS)


def _accuracy(reads: pd.DataFrame) -> float | None:
    """Share of ``reads`` whose class is their case's final class, over those with a final label."""
    decided = reads[reads["has_final"].astype(bool)]
    if decided.empty:
        return None
    return float((decided["label_class_id"] == decided["final_class_id"]).mean())
