"""The one exception hierarchy of medreview.

Every error a user can cause derives from :class:`MedreviewError`; its message is written for the
person at the screen (no tracebacks, no jargon where a plain word does). Pages and the CLI catch
``MedreviewError`` and show ``str(error)``; anything else is a bug.

- :class:`IngestError`: one uploaded file cannot be stored (unreadable, hostile, unsupported).
- :class:`ImagingError`: a stored image cannot be decoded or displayed.
- :class:`TrainingError`: a training run cannot start or failed (too few labels, bad config).
- :class:`NotFoundError`: an id that names nothing in the store.
- :class:`PermissionDeniedError`: the acting user's role does not allow the action.
"""

from __future__ import annotations

__all__ = [
    "ImagingError",
    "IngestError",
    "MedreviewError",
    "NotFoundError",
    "PermissionDeniedError",
    "TrainingError",
]


class MedreviewError(Exception):
    """Base class: the message is shown to the user as it is."""


class IngestError(MedreviewError):
    """A file was refused at import; the message says why, in plain words."""


class ImagingError(MedreviewError):
    """A stored image could not be decoded for display or training."""


class TrainingError(MedreviewError):
    """A training run could not start or did not finish."""


class NotFoundError(MedreviewError):
    """The requested object does not exist in the store."""


class PermissionDeniedError(MedreviewError):
    """The acting user may not do this."""
