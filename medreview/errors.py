"""The one exception hierarchy of medreview.

Every error a user can cause derives from :class:`MedreviewError`; its message is written for the
person at the screen (no tracebacks, no jargon where a plain word does). Pages and the CLI catch
``MedreviewError`` and show ``str(error)``; anything else is a bug.

- :class:`IngestError`: one uploaded file cannot be stored (unreadable, hostile, unsupported).
- :class:`ImagingError`: a stored image cannot be decoded or displayed.
- :class:`TrainingError`: a training run cannot start or failed (too few labels, bad config).
- :class:`JobCancelled`: a background job stopped because a user cancelled it.
- :class:`NotFoundError`: an id that names nothing in the store.
- :class:`PermissionDeniedError`: the acting user's role does not allow the action.
"""

from __future__ import annotations

__all__ = [
    "ImagingError",
    "IngestError",
    "JobCancelled",
    "MedreviewError",
    "NotFoundError",
    "PermissionDeniedError",
    "TrainingError",
    "short_reason",
]


class MedreviewError(Exception):
    """Base class: the message is shown to the user as it is."""


class IngestError(MedreviewError):
    """A file was refused at import; the message says why, in plain words."""


class ImagingError(MedreviewError):
    """A stored image could not be decoded for display or training."""


class TrainingError(MedreviewError):
    """A training run could not start or did not finish."""


class JobCancelled(MedreviewError):
    """A user cancelled the background job; it produced nothing."""


class NotFoundError(MedreviewError):
    """The requested object does not exist in the store."""


class PermissionDeniedError(MedreviewError):
    """The acting user may not do this."""


def short_reason(error: BaseException) -> str:
    """First meaningful line of a third-party exception message, trimmed for a human (at most 200
    characters), for messages such as "cannot decode this image: <reason>"."""
    lines = [line.strip(" :-") for line in str(error).splitlines() if line.strip(" :-")]
    if not lines:
        return type(error).__name__
    # pydicom's "all plugins failed" message lists one reason per plug-in on the following lines.
    reason = lines[1] if len(lines) > 1 and lines[0].startswith("Unable to decode") else lines[0]
    return reason if len(reason) <= 200 else reason[:197] + "..."
