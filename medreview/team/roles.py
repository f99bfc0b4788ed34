"""Roles: who may do what. A leaf module: every service imports it, it imports nothing of medreview
but the errors.

Roles form a ladder, each including the ones below it: an annotator labels, a reviewer also
reviews, an admin also manages users, training, models, exports and the audit log. Services check
the role themselves with :func:`require`, so a forbidden call fails even when a page would not
have offered it.
"""

from __future__ import annotations

from dataclasses import dataclass

from medreview.errors import PermissionDeniedError

__all__ = ["ROLES", "SYSTEM", "Actor", "require"]

ROLES = ("annotator", "reviewer", "admin")  # each role includes the ones before it


@dataclass(frozen=True)
class Actor:
    """Who is acting: passed into every service that checks a role or writes the audit log."""

    username: str
    role: str

    def __post_init__(self) -> None:
        if self.role not in ROLES:
            raise ValueError(f"unknown role '{self.role}'; roles are {', '.join(ROLES)}")

    def can(self, role: str) -> bool:
        """True when this actor's role is ``role`` or above it (admin >= reviewer >= annotator)."""
        if role not in ROLES:
            raise ValueError(f"unknown role '{role}'; roles are {', '.join(ROLES)}")
        return ROLES.index(self.role) >= ROLES.index(role)


# The actor for the CLI, the worker and internal calls (see medreview.team.accounts).
SYSTEM = Actor("system", "admin")


def require(actor: Actor, role: str, action: str) -> None:
    """Raise :class:`PermissionDeniedError` unless ``actor`` has ``role`` (or above).

    ``action`` completes the message: "may not <action>", e.g. "promote a model".
    """
    if not actor.can(role):
        raise PermissionDeniedError(f"{actor.username} ({actor.role}) may not {action}; needs {role}")
