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

import re

__all__ = [
    "OUT_OF_MEMORY_REASON",
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


# An absolute path (POSIX or Windows) of two parts or more; not the path part of a URL.
_ABSOLUTE_PATH = re.compile(r"(?<![\w:/.\\])(?:[A-Za-z]:)?(?:[\\/][^\s\\/'\"]+){2,}")

# What a user sees for an exception that means the machine ran out of memory, not that the file is bad.
OUT_OF_MEMORY_REASON = "not enough memory (its data may be far larger than its header says)"


def short_reason(error: BaseException) -> str:
    """First meaningful line of a third-party exception message, trimmed for a human (at most 200
    characters), for messages such as "cannot decode this image: <reason>".

    The server's paths never reach the user: an absolute path in the message reads "<path>". A
    ``MemoryError`` gives :data:`OUT_OF_MEMORY_REASON` whatever its text (numpy's names shapes, zlib's
    a buffer).
    """
    if isinstance(error, MemoryError):
        return OUT_OF_MEMORY_REASON
    lines = [line.strip(" :-") for line in str(error).splitlines() if line.strip(" :-")]
    if not lines:
        return type(error).__name__
    # pydicom's "all plugins failed" message lists one reason per plug-in on the following lines.
    reason = lines[1] if len(lines) > 1 and lines[0].startswith("Unable to decode") else lines[0]
    reason = _ABSOLUTE_PATH.sub("<path>", reason)
    return reason if len(reason) <= 200 else reason[:197] + "..."
