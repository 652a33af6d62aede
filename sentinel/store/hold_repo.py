"""Repository of the legal holds (``legal_holds``): create, list, release; never delete.

The decisions (what a hold keeps) are ``sentinel.domain.holds``; this stores the holds.
"""

from __future__ import annotations

import builtins
import uuid
from collections.abc import Collection
from dataclasses import dataclass
from datetime import datetime

import sqlalchemy as sa

from sentinel.domain.holds import HoldView, validate_hold
from sentinel.store.clock import Repository
from sentinel.store.hold_tables import LEGAL_HOLDS
from sentinel.store.sql import as_utc

__all__ = ["HoldRecord", "HoldRepository"]

_MAX_REASON = 2000


@dataclass(frozen=True, slots=True)
class HoldRecord:
    """A stored legal hold; active while ``released_at`` is None."""

    id: str
    kind: str
    camera_id: str
    target_id: str | None
    start_at: datetime | None
    end_at: datetime | None
    reason: str
    created_by: str
    created_at: datetime
    released_at: datetime | None
    released_by: str | None

    @property
    def active(self) -> bool:
        return self.released_at is None

    def view(self) -> HoldView:
        return HoldView(
            self.id, self.kind, self.camera_id, self.start_at, self.end_at, self.target_id
        )


def _to_record(row: sa.RowMapping) -> HoldRecord:
    return HoldRecord(**{name: row[name] for name in HoldRecord.__slots__})


class HoldRepository(Repository):
    """Stores legal holds."""

    def create(
        self,
        *,
        kind: str,
        camera_id: str,
        reason: str,
        created_by: str,
        start_at: datetime | None = None,
        end_at: datetime | None = None,
        target_id: str | None = None,
    ) -> HoldRecord:
        """Stores a new active hold.

        Raises:
            ValueError: The fields do not fit the kind (``validate_hold``), or ``reason`` is
                empty or longer than 2000 characters.
        """
        validate_hold(kind, start_at=start_at, end_at=end_at, target_id=target_id)
        if not 1 <= len(reason.strip()) <= _MAX_REASON:
            raise ValueError(f"reason must have 1 to {_MAX_REASON} characters")
        values = {
            "id": str(uuid.uuid4()),
            "kind": kind,
            "camera_id": camera_id,
            "target_id": target_id,
            "start_at": None if start_at is None else as_utc(start_at, "start_at"),
            "end_at": None if end_at is None else as_utc(end_at, "end_at"),
            "reason": reason.strip(),
            "created_by": created_by,
            "created_at": self._now(),
            "released_at": None,
            "released_by": None,
        }
        with self._engine.begin() as conn:
            conn.execute(sa.insert(LEGAL_HOLDS).values(**values))
        return HoldRecord(**values)  # type: ignore[arg-type]

    def get(self, hold_id: str) -> HoldRecord | None:
        query = sa.select(LEGAL_HOLDS).where(LEGAL_HOLDS.c.id == hold_id)
        with self._engine.connect() as conn:
            row = conn.execute(query).mappings().first()
        return None if row is None else _to_record(row)

    def list(
        self, *, active_only: bool = True, cameras: Collection[str] | None = None
    ) -> builtins.list[HoldRecord]:
        """Holds, newest first.

        Args:
            active_only: Only the holds not released.
            cameras: Only the holds on these cameras; None: every camera's.
        """
        c = LEGAL_HOLDS.c
        query = sa.select(LEGAL_HOLDS).order_by(c.created_at.desc(), c.id)
        if active_only:
            query = query.where(c.released_at.is_(None))
        if cameras is not None:
            query = query.where(c.camera_id.in_(sorted(cameras)))
        with self._engine.connect() as conn:
            return [_to_record(row) for row in conn.execute(query).mappings()]

    def active(self) -> builtins.list[HoldView]:
        """The active holds, as the decisions take them."""
        return [h.view() for h in self.list(active_only=True)]

    def release(self, hold_id: str, released_by: str) -> HoldRecord | None:
        """Releases an active hold; None if there is no such active hold."""
        c = LEGAL_HOLDS.c
        with self._engine.begin() as conn:
            done = conn.execute(
                sa.update(LEGAL_HOLDS)
                .where(c.id == hold_id, c.released_at.is_(None))
                .values(released_at=self._now(), released_by=released_by)
            )
        return self.get(hold_id) if done.rowcount == 1 else None
