"""Repository of face prints (``face_prints``) and face scans (``face_scans``).

It stores what ``sentinel.retention.faces.FaceVault`` produced (bucket, nonce, sealed bytes,
key version) and reads candidates by bucket; it never sees a plain embedding. Prints and scans
are deleted with their event (foreign keys ``ON DELETE CASCADE``).
"""

from __future__ import annotations

import builtins
import json
from collections.abc import Collection, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import NamedTuple

import sqlalchemy as sa

from sentinel.domain.types import Box
from sentinel.store.clock import Repository
from sentinel.store.face_tables import FACE_PRINTS, FACE_SCANS
from sentinel.store.tables import EVENTS

__all__ = ["FaceCandidate", "FaceEvent", "FaceRepository", "NewPrint", "PendingScan"]

_MAX_ERROR = 200


@dataclass(frozen=True, slots=True)
class PendingScan:
    """An ended event with a snapshot whose faces were not looked for yet."""

    event_id: str
    camera_id: str
    snapshot_key: str
    box: Box


@dataclass(frozen=True, slots=True)
class NewPrint:
    """A sealed print to store (its id is part of the sealing's associated data)."""

    id: str
    bucket: str
    nonce: bytes
    sealed: bytes
    key_version: int


class FaceCandidate(NamedTuple):
    """A stored print in a probed bucket, still sealed (a tuple: a search reads thousands)."""

    id: str
    event_id: str
    camera_id: str
    nonce: bytes
    sealed: bytes
    key_version: int


@dataclass(frozen=True, slots=True)
class FaceEvent:
    """The event of a matching print, as a search answers it."""

    camera_id: str
    label: str
    started_at: datetime
    ended_at: datetime | None


class FaceRepository(Repository):
    """Stores sealed face prints and the face scans of events."""

    def pending(
        self, limit: int = 20, labels: Collection[str] = ("person",)
    ) -> builtins.list[PendingScan]:
        """Up to ``limit`` ended events of ``labels`` that have a snapshot and no face scan,
        oldest first."""
        if limit < 1:
            raise ValueError(f"limit must be >= 1, but got {limit}")
        e = EVENTS.c
        query = (
            sa.select(e.id, e.camera_id, e.snapshot_key, e.box)
            .where(
                e.ended_at.is_not(None),
                e.snapshot_key.is_not(None),
                e.label.in_(list(labels)),
                ~sa.exists().where(FACE_SCANS.c.event_id == e.id),
            )
            .order_by(e.ended_at, e.id)
            .limit(limit)
        )
        with self._engine.connect() as conn:
            rows = conn.execute(query).all()
        return [
            PendingScan(str(r.id), str(r.camera_id), str(r.snapshot_key), _box(str(r.box)))
            for r in rows
        ]

    def record_scan(
        self,
        event_id: str,
        camera_id: str,
        prints: Sequence[NewPrint],
        *,
        error: str | None = None,
    ) -> bool:
        """Stores an event's prints and marks it scanned, in one transaction.

        Returns:
            False when the event was scanned already or is gone (deleted by the sweep while
            it was being scanned): nothing is stored then.
        """
        now = self._now()
        with self._write() as conn:
            event = conn.execute(sa.select(EVENTS.c.id).where(EVENTS.c.id == event_id)).first()
            scanned = conn.execute(
                sa.select(FACE_SCANS.c.event_id).where(FACE_SCANS.c.event_id == event_id)
            ).first()
            if event is None or scanned is not None:
                return False
            if prints:
                conn.execute(
                    sa.insert(FACE_PRINTS),
                    [
                        {
                            "id": p.id,
                            "event_id": event_id,
                            "camera_id": camera_id,
                            "bucket": p.bucket,
                            "nonce": p.nonce,
                            "sealed": p.sealed,
                            "key_version": p.key_version,
                            "created_at": now,
                        }
                        for p in prints
                    ],
                )
            conn.execute(
                sa.insert(FACE_SCANS).values(
                    event_id=event_id,
                    scanned_at=now,
                    faces=len(prints),
                    error=None if error is None else error[:_MAX_ERROR],
                )
            )
        return True

    def candidates(
        self, buckets: Collection[str], cameras: Collection[str] | None = None
    ) -> builtins.list[FaceCandidate]:
        """The prints in ``buckets`` (on ``cameras``; None: every camera)."""
        if not buckets or (cameras is not None and not cameras):
            return []
        p = FACE_PRINTS.c
        query = sa.select(p.id, p.event_id, p.camera_id, p.nonce, p.sealed, p.key_version).where(
            p.bucket.in_(list(buckets))
        )
        if cameras is not None:
            query = query.where(p.camera_id.in_(list(cameras)))
        with self._engine.connect() as conn:
            rows = conn.execute(query).tuples().all()
        return [FaceCandidate(*row) for row in rows]

    def events(self, event_ids: Collection[str]) -> dict[str, FaceEvent]:
        """The camera, label and times of each of ``event_ids`` that still exists."""
        if not event_ids:
            return {}
        e = EVENTS.c
        query = sa.select(e.id, e.camera_id, e.label, e.started_at, e.ended_at).where(
            e.id.in_(list(event_ids))
        )
        with self._engine.connect() as conn:
            rows = conn.execute(query).all()
        return {
            str(r.id): FaceEvent(str(r.camera_id), str(r.label), r.started_at, r.ended_at)
            for r in rows
        }

    def count(self, event_id: str | None = None) -> int:
        """How many prints are stored (of one event)."""
        query = sa.select(sa.func.count()).select_from(FACE_PRINTS)
        if event_id is not None:
            query = query.where(FACE_PRINTS.c.event_id == event_id)
        with self._engine.connect() as conn:
            return int(conn.execute(query).scalar_one())

    def scanned(self, event_id: str) -> int | None:
        """How many faces the event's scan found; None: not scanned."""
        query = sa.select(FACE_SCANS.c.faces).where(FACE_SCANS.c.event_id == event_id)
        with self._engine.connect() as conn:
            found = conn.execute(query).scalar_one_or_none()
        return None if found is None else int(found)


def _box(text: str) -> Box:
    x1, y1, x2, y2 = (float(v) for v in json.loads(text))
    return Box(x1, y1, x2, y2)
