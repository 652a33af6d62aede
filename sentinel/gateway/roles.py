"""Roles, scopes and the authenticated principal.

Authorization checks scopes, never roles: a role is only a named bundle of scopes, so an API
key can carry a subset of its owner's rights and every route states exactly what it needs.

Camera limits hold whatever the scopes, for users and API keys alike: a camera-limited admin
(a user created with role admin and a camera list, or an admin key limited to cameras) is an
admin of its cameras only. The rule, route by route:

- Routes on one camera or its objects (events, alerts, incidents, recordings, exports, frames,
  ``DELETE /cameras/{id}``) answer 404 for a hidden camera, as for a missing one.
- ``POST /cameras`` answers 403 when the new camera would be outside the caller's limits (its
  id, or one of its groups, must be in them); an id taken by a hidden camera is also 403,
  never 409, so the answer does not name it.
- Lists and reports spanning cameras (cameras, events, alerts, incidents, exports, storage and
  its last sweep, /metrics, /health) are filtered to the caller's cameras.
- API keys: a key never sees more cameras than its creator; a limited principal lists and
  revokes only its own keys (only an unlimited admin manages everyone's).
- Routes over every camera at once are refused with 403 to any camera-limited principal
  (``authorize_every_camera`` in the API): users (their camera lists name every camera, and
  whoever manages users can lift their own limit), the audit log (its targets name every
  camera's objects), prompts and experiments (they judge every camera's alerts, and an
  experiment's report counts them all). Refusing is safer than filtering there: an audit entry
  or a user's rights cannot be cut down to some cameras without losing what they mean.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from dataclasses import dataclass
from enum import StrEnum
from types import MappingProxyType

__all__ = [
    "ADMIN",
    "ALERTS_READ",
    "ALERTS_WRITE",
    "ALL_SCOPES",
    "ANNOTATIONS_REVIEW",
    "ANNOTATIONS_WRITE",
    "ANONYMOUS",
    "APIKEYS_WRITE",
    "AUDIT_READ",
    "CAMERAS_READ",
    "CAMERAS_WRITE",
    "EVENTS_READ",
    "GROUP_PREFIX",
    "LLM_USE",
    "METRICS_READ",
    "MODELS_ADMIN",
    "MODELS_READ",
    "PRINCIPAL_KINDS",
    "PRIVACY_ADMIN",
    "PROMPTS_ADMIN",
    "ROLE_SCOPES",
    "USERS_ADMIN",
    "Principal",
    "Role",
    "scopes_for",
]


class Role(StrEnum):
    """A user's role."""

    ADMIN = "admin"
    OPERATOR = "operator"
    VIEWER = "viewer"
    ANNOTATOR = "annotator"


EVENTS_READ = "events:read"
CAMERAS_READ = "cameras:read"
CAMERAS_WRITE = "cameras:write"
METRICS_READ = "metrics:read"
APIKEYS_WRITE = "apikeys:write"
AUDIT_READ = "audit:read"
USERS_ADMIN = "users:admin"
ALERTS_READ = "alerts:read"
ALERTS_WRITE = "alerts:write"
PROMPTS_ADMIN = "prompts:admin"
LLM_USE = "llm:use"
ANNOTATIONS_WRITE = "annotations:write"
ANNOTATIONS_REVIEW = "annotations:review"
MODELS_READ = "models:read"
MODELS_ADMIN = "models:admin"
PRIVACY_ADMIN = "privacy:admin"
ADMIN = "admin"
ALL_SCOPES: frozenset[str] = frozenset(
    {
        EVENTS_READ,
        CAMERAS_READ,
        CAMERAS_WRITE,
        METRICS_READ,
        APIKEYS_WRITE,
        AUDIT_READ,
        USERS_ADMIN,
        ALERTS_READ,
        ALERTS_WRITE,
        PROMPTS_ADMIN,
        LLM_USE,
        ANNOTATIONS_WRITE,
        ANNOTATIONS_REVIEW,
        MODELS_READ,
        MODELS_ADMIN,
        PRIVACY_ADMIN,
        ADMIN,
    }
)
_VIEWER = frozenset({EVENTS_READ, CAMERAS_READ, ALERTS_READ})
_OPERATOR = _VIEWER | {
    METRICS_READ,
    APIKEYS_WRITE,
    ALERTS_WRITE,
    LLM_USE,
    ANNOTATIONS_WRITE,
    ANNOTATIONS_REVIEW,
    MODELS_READ,
}
# Labels frames of the cameras they may see; reviewing, training and serving models are not theirs.
_ANNOTATOR = frozenset({CAMERAS_READ, ANNOTATIONS_WRITE})
# Read-only at runtime: a route that mutated this table would change every user's rights.
ROLE_SCOPES: Mapping[Role, frozenset[str]] = MappingProxyType(
    {
        Role.VIEWER: _VIEWER,
        Role.ANNOTATOR: _ANNOTATOR,
        Role.OPERATOR: _OPERATOR,
        Role.ADMIN: ALL_SCOPES,
    }
)
PRINCIPAL_KINDS = frozenset({"user", "apikey", "anonymous"})
GROUP_PREFIX = "group:"


@dataclass(frozen=True)
class Principal:
    """Who is making a request, and what they may do.

    Attributes:
        subject: User id, API key id, or "anonymous".
        kind: "user", "apikey" or "anonymous".
        role: The user's role (None for anonymous).
        scopes: What the principal may do. Checked by exact membership: holding "admin" does
            not imply other scopes; the admin role simply holds them all.
        cameras: Camera ids and ``group:<name>`` entries the principal may see, or None for
            every camera. An empty set means no camera at all.
    """

    subject: str
    kind: str
    role: Role | None
    scopes: frozenset[str]
    cameras: frozenset[str] | None

    def __post_init__(self) -> None:
        if self.kind not in PRINCIPAL_KINDS:
            raise ValueError(f"kind must be one of {sorted(PRINCIPAL_KINDS)}, got {self.kind!r}")

    def has(self, scope: str) -> bool:
        """Whether the principal holds ``scope``."""
        return scope in self.scopes

    def can_see(self, camera_id: str, groups: Collection[str] = ()) -> bool:
        """Whether the principal may see ``camera_id``, a member of ``groups``.

        Camera restrictions apply whatever the scopes: a restricted admin API key stays
        restricted. An id that itself looks like a group entry is refused, so a camera named
        "group:x" can never be confused with the group x.
        """
        if not camera_id or camera_id.startswith(GROUP_PREFIX):
            return False
        if self.cameras is None:
            return True
        if camera_id in self.cameras:
            return True
        return any(GROUP_PREFIX + g in self.cameras for g in groups if g)


ANONYMOUS = Principal("anonymous", "anonymous", None, frozenset(), frozenset())


def scopes_for(role: Role, requested: Collection[str] | None) -> frozenset[str]:
    """The scopes to grant: what was requested, limited to what ``role`` holds.

    A scope the role lacks (or that does not exist) is dropped, never granted and never an
    error, so a client asking for too much gets a narrower token rather than a wider one.
    None requests everything the role holds.
    """
    allowed = ROLE_SCOPES[role]
    return allowed if requested is None else allowed & frozenset(requested)
