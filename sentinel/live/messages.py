"""Live messages and the pure rules about them: who may see one, what changed."""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Collection, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

Kind = Literal["alert", "incident", "camera"]
KINDS: tuple[Kind, ...] = ("alert", "incident", "camera")

# The scope a principal needs to receive each kind (the scope of the kind's REST routes).
KIND_SCOPES: Mapping[str, str] = {
    "alert": "alerts:read",
    "incident": "events:read",
    "camera": "cameras:read",
}


@dataclass(frozen=True, slots=True)
class LiveMessage:
    """One change, as a subscriber receives it.

    Attributes:
        cursor: The bus's id of the message; a subscriber resumes after it.
        kind: "alert", "incident" or "camera".
        camera_id: The camera the change is about (the unit of camera limits).
        data: The change's public fields.
    """

    cursor: str
    kind: str
    camera_id: str
    data: dict[str, Any] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        return {"type": self.kind, "cursor": self.cursor, "camera_id": self.camera_id, **self.data}


def visible(message: LiveMessage, scopes: Collection[str], cameras: Collection[str] | None) -> bool:
    """Whether a principal with ``scopes``, limited to ``cameras`` (None: every camera), may
    receive ``message``: it needs the kind's read scope and the message's camera."""
    needed = KIND_SCOPES.get(message.kind)
    if needed is None or needed not in scopes:
        return False
    return cameras is None or message.camera_id in cameras


def camera_state_changes(
    before: Mapping[str, tuple[str, str | None]],
    now: Mapping[str, Mapping[str, Any]],
) -> dict[str, tuple[str, str | None]]:
    """The cameras whose (state, last error) differs from ``before``, from their statuses
    ``now``; a camera that disappeared becomes ("removed", None)."""
    changed: dict[str, tuple[str, str | None]] = {}
    for cid, status in now.items():
        err = status.get("last_error")
        state = (str(status.get("state", "unknown")), None if err is None else str(err)[:500])
        if before.get(cid) != state:
            changed[cid] = state
    for cid in before:
        if cid not in now and before[cid][0] != "removed":
            changed[cid] = ("removed", None)
    return changed


class SeenKeys:
    """A bounded set of recently published keys (a re-read window must not publish twice)."""

    def __init__(self, capacity: int = 10_000) -> None:
        if capacity < 1:
            raise ValueError(f"capacity must be >= 1, got {capacity}")
        self.capacity = capacity
        self._keys: OrderedDict[str, None] = OrderedDict()

    def add(self, key: str) -> bool:
        """Adds ``key``; False if it was already there."""
        if key in self._keys:
            return False
        self._keys[key] = None
        if len(self._keys) > self.capacity:
            self._keys.popitem(last=False)
        return True

    def __len__(self) -> int:
        return len(self._keys)
