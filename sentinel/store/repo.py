"""Repositories: idempotent event writes, event queries with keyset pagination, camera configs.

Event writes are idempotent and order-tolerant: the pipeline may replay a frame, an actor may
restart and resend a state, two writes may race. ``EventRepository.upsert`` uses the database's
native ``INSERT ... ON CONFLICT DO UPDATE ... WHERE`` so a replay never duplicates an event and a
stale state never overwrites a newer one, in a single statement (no read-modify-write race).
"""

from __future__ import annotations

import builtins
import json
from collections.abc import Collection
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import sqlalchemy as sa

from sentinel.domain.types import Box, EventState
from sentinel.store.clock import Repository
from sentinel.store.search_tables import enqueue_in
from sentinel.store.sql import (
    MAX_PAGE_SIZE,
    InvalidCursor,
    TimeRanges,
    check_page_size,
    decode_cursor,
    encode_cursor,
    overlapping,
    require_aware,
    upsert_insert,
)
from sentinel.store.sql import count_held as sql_count_held
from sentinel.store.tables import CAMERAS, EVENTS

__all__ = [
    "MAX_PAGE_SIZE",
    "CameraRepository",
    "EventPage",
    "EventRepository",
    "InvalidCursor",
    "StoredEvent",
]


@dataclass(frozen=True, slots=True)
class StoredEvent:
    """An event as stored: the pipeline's ``EventState`` plus storage fields."""

    id: str
    camera_id: str
    label: str
    score: float
    track_id: int
    started_at: datetime
    ended_at: datetime | None
    last_seen_at: datetime
    box: Box
    best_at: datetime
    hits: int
    path: tuple[tuple[float, float], ...]
    snapshot_key: str | None
    updated_at: datetime
    zones: tuple[str, ...] = ()
    model_version: int | None = None

    def to_state(self) -> EventState:
        """The pipeline's view of this event (drops ``snapshot_key`` and ``updated_at``)."""
        return EventState(
            id=self.id,
            camera_id=self.camera_id,
            label=self.label,
            track_id=self.track_id,
            started_at=self.started_at,
            last_seen_at=self.last_seen_at,
            score=self.score,
            box=self.box,
            best_at=self.best_at,
            ended_at=self.ended_at,
            hits=self.hits,
            path=list(self.path),
            zones=list(self.zones),
            model_version=self.model_version,
        )


@dataclass(frozen=True, slots=True)
class EventPage:
    """One page of events, newest first; ``next_cursor`` is None on the last page."""

    items: list[StoredEvent]
    next_cursor: str | None


def _to_event(row: sa.RowMapping) -> StoredEvent:
    box = json.loads(row["box"])
    path = json.loads(row["path"])
    return StoredEvent(
        id=row["id"],
        camera_id=row["camera_id"],
        label=row["label"],
        score=float(row["score"]),
        track_id=int(row["track_id"]),
        started_at=row["started_at"],
        ended_at=row["ended_at"],
        last_seen_at=row["last_seen_at"],
        box=Box(*(float(v) for v in box)),
        best_at=row["best_at"],
        hits=int(row["hits"]),
        path=tuple((float(x), float(y)) for x, y in path),
        snapshot_key=row["snapshot_key"],
        updated_at=row["updated_at"],
        zones=tuple(str(z) for z in json.loads(row["zones"] or "[]")),
        model_version=row.get("model_version"),
    )


class EventRepository(Repository):
    """Reads and idempotently writes events.

    Args:
        engine: An engine from ``sentinel.store.db.make_engine`` on a migrated database.
        clock: Returns the current tz-aware time (for ``updated_at``); injectable for tests.
    """

    def upsert(self, state: EventState, snapshot_key: str | None = None) -> None:
        """Insert the event, or update it if the incoming state is not stale.

        The stored row is replaced when ``state.last_seen_at`` is later than the stored one, or
        equal to it unless that would reopen a closed event. So replays are no-ops, an
        out-of-order older state is ignored, and closing an event at its last-seen time wins,
        while a replayed pre-close state cannot reopen it (a real reopen comes with a newer
        sighting, hence a later ``last_seen_at``). A non-null stored ``snapshot_key`` is never
        replaced by None. A write that closes the event (or changes a closed one) queues it for
        the search index in the same transaction (``search_queue``).

        Args:
            state: The event's current state from the pipeline.
            snapshot_key: The object key of the event's best-frame snapshot, if written.

        Raises:
            ValueError: If a datetime of ``state`` is naive.
        """
        for name in ("started_at", "last_seen_at", "best_at", "ended_at"):
            require_aware(getattr(state, name), f"state.{name}")
        values: dict[str, Any] = {
            "id": state.id,
            "camera_id": state.camera_id,
            "label": state.label,
            "score": float(state.score),
            "track_id": int(state.track_id),
            "started_at": state.started_at,
            "ended_at": state.ended_at,
            "last_seen_at": state.last_seen_at,
            "box": json.dumps(state.box.as_list()),
            "best_at": state.best_at,
            "hits": int(state.hits),
            "path": json.dumps([[float(x), float(y)] for x, y in state.path]),
            "zones": json.dumps(list(state.zones)),
            "snapshot_key": snapshot_key,
            "updated_at": self._clock(),
            "model_version": state.model_version,
        }
        stmt = upsert_insert(self._engine, EVENTS).values(**values)
        new = stmt.excluded
        updates: dict[str, Any] = {name: new[name] for name in values if name != "id"}
        updates["snapshot_key"] = sa.func.coalesce(new.snapshot_key, EVENTS.c.snapshot_key)
        # The model that opened the event stays its model (a later frame may be another's).
        updates["model_version"] = sa.func.coalesce(EVENTS.c.model_version, new.model_version)
        not_stale = sa.or_(
            new.last_seen_at > EVENTS.c.last_seen_at,
            sa.and_(
                new.last_seen_at == EVENTS.c.last_seen_at,
                sa.or_(EVENTS.c.ended_at.is_(None), new.ended_at.is_not(None)),
            ),
        )
        stmt = stmt.on_conflict_do_update(
            index_elements=[EVENTS.c.id], set_=updates, where=not_stale
        ).returning(EVENTS.c.id)
        with self._engine.begin() as conn:
            written = conn.execute(stmt).first() is not None
            if written and state.ended_at is not None:
                # A closed event is (re)indexed for search: queued in the same transaction,
                # so no stored close is ever missing from the index's queue.
                enqueue_in(conn, state.id, "event", "upsert", values["updated_at"])

    def get(self, event_id: str) -> StoredEvent | None:
        """The event with this id, or None."""
        with self._engine.connect() as conn:
            row = conn.execute(sa.select(EVENTS).where(EVENTS.c.id == event_id)).mappings().first()
        return None if row is None else _to_event(row)

    def list(
        self,
        *,
        camera_id: str | None = None,
        camera_ids: Collection[str] | None = None,
        label: str | None = None,
        since: datetime | None = None,
        until: datetime | None = None,
        cursor: str | None = None,
        limit: int = 100,
    ) -> EventPage:
        """One page of events, newest first by ``(started_at, id)`` descending.

        ``since``/``until`` select the events whose lifetime ``[started_at, ended_at]``
        overlaps ``[since, until]``: ``started_at <= until`` and ``ended_at >= since``, where an
        open event (``ended_at`` None) is ongoing and so matches any ``since``.

        Args:
            camera_id: Only this camera's events.
            camera_ids: Only events of these cameras (an access scope); empty matches nothing.
                Combined with ``camera_id`` both must hold.
            label: Only events with this label.
            since: Lower bound of the time window (tz-aware).
            until: Upper bound of the time window (tz-aware).
            cursor: ``next_cursor`` of the previous page, to continue after it.
            limit: Page size, 1 to ``MAX_PAGE_SIZE``.

        Returns:
            The page; pass its ``next_cursor`` to get the next one.

        Raises:
            InvalidCursor: If ``cursor`` is malformed.
            ValueError: If ``limit`` is out of bounds or a datetime is naive.
        """
        check_page_size(limit)
        require_aware(since, "since")
        require_aware(until, "until")
        query = sa.select(EVENTS)
        if camera_id is not None:
            query = query.where(EVENTS.c.camera_id == camera_id)
        if camera_ids is not None:
            query = query.where(EVENTS.c.camera_id.in_(sorted(set(camera_ids))))
        if label is not None:
            query = query.where(EVENTS.c.label == label)
        if since is not None:
            query = query.where(sa.or_(EVENTS.c.ended_at.is_(None), EVENTS.c.ended_at >= since))
        if until is not None:
            query = query.where(EVENTS.c.started_at <= until)
        if cursor is not None:
            after_started, after_id = decode_cursor(cursor)
            query = query.where(
                sa.or_(
                    EVENTS.c.started_at < after_started,
                    sa.and_(EVENTS.c.started_at == after_started, EVENTS.c.id < after_id),
                )
            )
        query = query.order_by(EVENTS.c.started_at.desc(), EVENTS.c.id.desc()).limit(limit + 1)
        with self._engine.connect() as conn:
            rows = conn.execute(query).mappings().all()
        items = [_to_event(row) for row in rows[:limit]]
        next_cursor = None
        if len(rows) > limit:
            last = items[-1]
            next_cursor = encode_cursor(last.started_at, last.id)
        return EventPage(items=items, next_cursor=next_cursor)

    def camera_ids(self) -> builtins.list[str]:
        """Every camera id with stored events (deleted cameras' too), sorted."""
        query = sa.select(EVENTS.c.camera_id).distinct().order_by(EVENTS.c.camera_id)
        with self._engine.connect() as conn:
            return [str(c) for c in conn.execute(query).scalars()]

    def set_snapshot_key(self, event_id: str, snapshot_key: str) -> bool:
        """Point an existing event at its snapshot (written after the event, off the camera's
        loop, by a blurring camera's snapshot writer); False if there is no such event."""
        with self._engine.begin() as conn:
            result = conn.execute(
                sa.update(EVENTS).where(EVENTS.c.id == event_id).values(snapshot_key=snapshot_key)
            )
        return result.rowcount > 0

    def expire_snapshots(
        self, camera_id: str, ended_before: datetime, limit: int = 500, keep: TimeRanges = ()
    ) -> builtins.list[tuple[str, str]]:
        """Forget the snapshots of up to ``limit`` of the camera's events that ended before
        ``ended_before`` (the events stay, ``snapshot_key`` becomes null), except events
        sharing time with a ``keep`` range (legal holds); each event is queued for indexing
        again in the same transaction (its document no longer has a snapshot).

        Returns:
            ``(event id, snapshot key)`` of each: the caller deletes the objects.

        Raises:
            ValueError: If ``ended_before`` is naive or ``limit`` is below 1.
        """
        require_aware(ended_before, "ended_before")
        if limit < 1:
            raise ValueError(f"limit must be >= 1, but got {limit}")
        c = EVENTS.c
        query = (
            sa.select(c.id, c.snapshot_key)
            .where(c.camera_id == camera_id, c.ended_at.is_not(None), c.ended_at < ended_before)
            .where(c.snapshot_key.is_not(None))
            .order_by(c.ended_at, c.id)
            .limit(limit)
        )
        if keep:
            query = query.where(sa.not_(overlapping(c.started_at, c.ended_at, keep)))
        now = self._clock()
        with self._engine.begin() as conn:
            rows = [(str(r.id), str(r.snapshot_key)) for r in conn.execute(query)]
            if rows:
                ids = [i for i, _ in rows]
                conn.execute(sa.update(EVENTS).where(c.id.in_(ids)).values(snapshot_key=None))
                for event_id in ids:
                    enqueue_in(conn, event_id, "event", "upsert", now)
        return rows

    def count_held(self, camera_id: str, ended_before: datetime, keep: TimeRanges) -> int:
        """How many of the camera's events that ended before ``ended_before`` share time with
        ``keep`` (what ``expire`` keeps because of legal holds)."""
        return sql_count_held(self._engine, EVENTS, camera_id, ended_before, keep)

    def expire(
        self, camera_id: str, ended_before: datetime, limit: int = 500, keep: TimeRanges = ()
    ) -> builtins.list[tuple[str, str | None]]:
        """Delete up to ``limit`` of the camera's events that ended before ``ended_before``
        (oldest first); each leaves the search index through the queue (op "delete"), queued in
        the same transaction, so a crash never leaves a stale index entry. Events sharing time
        with a ``keep`` range (legal holds) are not deleted.

        Returns:
            ``(event id, snapshot key)`` of each deleted event (the caller deletes the objects).

        Raises:
            ValueError: If ``ended_before`` is naive or ``limit`` is below 1.
        """
        require_aware(ended_before, "ended_before")
        if limit < 1:
            raise ValueError(f"limit must be >= 1, but got {limit}")
        c = EVENTS.c
        query = (
            sa.select(c.id, c.snapshot_key)
            .where(c.camera_id == camera_id, c.ended_at.is_not(None), c.ended_at < ended_before)
            .order_by(c.ended_at, c.id)
            .limit(limit)
        )
        if keep:  # legal holds: rows sharing time with a held range stay
            query = query.where(sa.not_(overlapping(c.started_at, c.ended_at, keep)))
        now = self._clock()
        with self._engine.begin() as conn:
            rows = [(str(r.id), r.snapshot_key) for r in conn.execute(query)]
            if rows:
                conn.execute(sa.delete(EVENTS).where(c.id.in_([i for i, _ in rows])))
                for event_id, _ in rows:
                    enqueue_in(conn, event_id, "event", "delete", now)
        return rows

    def open_events(self, camera_id: str) -> builtins.list[StoredEvent]:
        """The camera's events that have not ended, oldest first."""
        query = (
            sa.select(EVENTS)
            .where(EVENTS.c.camera_id == camera_id, EVENTS.c.ended_at.is_(None))
            .order_by(EVENTS.c.started_at, EVENTS.c.id)
        )
        with self._engine.connect() as conn:
            return [_to_event(row) for row in conn.execute(query).mappings()]

    def count(self, camera_id: str | None = None, label: str | None = None) -> int:
        """How many events are stored, optionally for one camera and/or label."""
        query = sa.select(sa.func.count()).select_from(EVENTS)
        if camera_id is not None:
            query = query.where(EVENTS.c.camera_id == camera_id)
        if label is not None:
            query = query.where(EVENTS.c.label == label)
        with self._engine.connect() as conn:
            return int(conn.execute(query).scalar_one())


class CameraRepository(Repository):
    """Stores camera configs (JSON) by camera id, and each camera's scene as edited through
    the API: :meth:`get` and :meth:`list` give the config with that scene's keys (zones,
    lines, masks) in place of the config's own, while :meth:`upsert` (the config file's
    cameras, written at every start) leaves the edited scene alone.

    Args:
        engine: An engine from ``sentinel.store.db.make_engine`` on a migrated database.
        clock: Returns the current tz-aware time; injectable for tests.
    """

    def upsert(self, camera_id: str, config: dict[str, Any]) -> None:
        """Create or replace a camera's config (``created_at`` is kept on replace).

        Raises:
            ValueError: If ``camera_id`` is empty or longer than 64 characters.
            TypeError: If ``config`` is not a dict or not JSON-serialisable.
        """
        if not camera_id or len(camera_id) > 64:
            raise ValueError(f"camera_id must have 1 to 64 characters, but got {camera_id!r}")
        if not isinstance(config, dict):
            raise TypeError(f"config must be a dict, but got {type(config).__name__}")
        encoded = json.dumps(config, sort_keys=True)
        now = self._clock()
        stmt = upsert_insert(self._engine, CAMERAS).values(
            id=camera_id,
            config=encoded,
            created_at=now,
            updated_at=now,
        )
        stmt = stmt.on_conflict_do_update(
            index_elements=[CAMERAS.c.id],
            set_={"config": stmt.excluded.config, "updated_at": stmt.excluded.updated_at},
        )
        with self._engine.begin() as conn:
            conn.execute(stmt)

    def set_scene(self, camera_id: str, scene: dict[str, Any] | None) -> bool:
        """Replace the camera's edited scene (its keys win over the config's), or with None
        go back to the config's own. Returns whether the camera exists.

        Raises:
            TypeError: If ``scene`` is not a dict (or None) or not JSON-serialisable.
        """
        if scene is not None and not isinstance(scene, dict):
            raise TypeError(f"scene must be a dict or None, but got {type(scene).__name__}")
        encoded = None if scene is None else json.dumps(scene, sort_keys=True)
        stmt = (
            sa.update(CAMERAS)
            .where(CAMERAS.c.id == camera_id)
            .values(scene=encoded, updated_at=self._clock())
        )
        with self._engine.begin() as conn:
            return conn.execute(stmt).rowcount > 0

    def get_own(self, camera_id: str) -> dict[str, Any] | None:
        """A camera's config as written (its edited scene left out), or None."""
        with self._engine.connect() as conn:
            raw = conn.execute(
                sa.select(CAMERAS.c.config).where(CAMERAS.c.id == camera_id)
            ).scalar_one_or_none()
        return None if raw is None else _load_config(raw)

    def scene_edited(self, camera_id: str) -> bool:
        """Whether the camera's scene was edited through the API (False: the config's own, or
        no such camera)."""
        with self._engine.connect() as conn:
            scene = conn.execute(
                sa.select(CAMERAS.c.scene).where(CAMERAS.c.id == camera_id)
            ).scalar_one_or_none()
        return scene is not None

    def delete(self, camera_id: str) -> bool:
        """Delete a camera's config; returns whether there was one. Its events are kept."""
        with self._engine.begin() as conn:
            result = conn.execute(sa.delete(CAMERAS).where(CAMERAS.c.id == camera_id))
        return result.rowcount > 0

    def get(self, camera_id: str) -> dict[str, Any] | None:
        """A camera's config, or None if there is no such camera."""
        with self._engine.connect() as conn:
            row = conn.execute(
                sa.select(CAMERAS.c.config, CAMERAS.c.scene).where(CAMERAS.c.id == camera_id)
            ).first()
        return None if row is None else _load_config(row.config, row.scene)

    def list(self) -> builtins.list[tuple[str, dict[str, Any]]]:
        """All cameras as ``(camera_id, config)``, sorted by id."""
        with self._engine.connect() as conn:
            rows = conn.execute(
                sa.select(CAMERAS.c.id, CAMERAS.c.config, CAMERAS.c.scene).order_by(CAMERAS.c.id)
            )
            return [(row.id, _load_config(row.config, row.scene)) for row in rows]


def _load_config(raw: str, scene: str | None = None) -> dict[str, Any]:
    config = json.loads(raw)
    if not isinstance(config, dict):
        raise ValueError(f"stored camera config is not a JSON object: {raw[:80]!r}")
    if scene is not None:
        edited = json.loads(scene)
        if not isinstance(edited, dict):
            raise ValueError(f"stored camera scene is not a JSON object: {scene[:80]!r}")
        config.update(edited)
    return config
