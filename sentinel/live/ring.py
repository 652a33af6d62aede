"""A bounded ring of messages with monotonically increasing ids (the in-process bus's store)."""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True, slots=True)
class Entry:
    id: int
    kind: str
    camera_id: str
    data: dict[str, Any]


@dataclass(frozen=True, slots=True)
class Since:
    """What a ring holds after a cursor: its entries, or ``reset`` when entries after the
    cursor were already dropped (the subscriber must reload its state)."""

    entries: list[Entry]
    reset: bool


class Ring:
    """Keeps the last ``capacity`` entries; ids start at 1 and never repeat."""

    def __init__(self, capacity: int = 1000) -> None:
        if capacity < 1:
            raise ValueError(f"capacity must be >= 1, got {capacity}")
        self._entries: deque[Entry] = deque(maxlen=capacity)
        self.last_id = 0

    def append(self, kind: str, camera_id: str, data: dict[str, Any]) -> Entry:
        self.last_id += 1
        entry = Entry(self.last_id, kind, camera_id, data)
        self._entries.append(entry)
        return entry

    def since(self, cursor: int) -> Since:
        """The entries after ``cursor`` (an id this ring gave, or 0 for its start)."""
        if cursor > self.last_id or cursor < 0:
            return Since([], reset=True)  # not a cursor of this ring (another process's)
        oldest = self._entries[0].id if self._entries else self.last_id + 1
        if cursor < oldest - 1:
            return Since([e for e in self._entries], reset=True)
        return Since([e for e in self._entries if e.id > cursor], reset=False)
