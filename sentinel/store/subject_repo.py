"""Data-subject requests in the database (issue 16): the requests' rows, and the reads and
deletes an access or erasure request makes across the tables.

``PrivacyRequestRepository`` stores a request (``privacy_requests``) with its plan and its
per-store steps; ``claim`` moves it to ``running`` with one conditional ``UPDATE``, so two
resumes never run one request at once. ``SubjectData`` reads what a subject touches (events,
incidents, alerts, face prints, exports, annotation items, dataset versions, training runs) and
deletes it, in batches, each batch one transaction; every deleted or changed event and
incident is queued for the search index in the same transaction, like the retention sweep.
The decisions (what to erase, what holds keep) are ``sentinel.retention.subjects``.
"""

from __future__ import annotations

import builtins
import json
import uuid
from collections.abc import Collection, Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import sqlalchemy as sa

from sentinel.store.agent_tables import AGENT_QUEUE, ALERTS
from sentinel.store.annotation_tables import (
    ANNOTATION_GOLD_SCORES,
    ANNOTATION_ITEMS,
    ANNOTATION_REVIEWS,
    ANNOTATIONS,
    DATASET_LOCKS,
    DATASETS,
)
from sentinel.store.clock import Repository
from sentinel.store.export_tables import EXPORTS
from sentinel.store.face_tables import FACE_PRINTS
from sentinel.store.incident_tables import INCIDENT_MEMBERS, INCIDENTS
from sentinel.store.notify_tables import NOTIFY_DELIVERIES, NOTIFY_OUTBOX
from sentinel.store.search_tables import enqueue_in
from sentinel.store.subject_tables import PRIVACY_REQUESTS
from sentinel.store.tables import EVENTS
from sentinel.store.training_tables import TRAINING_RUNS

__all__ = [
    "REQUEST_KINDS",
    "REQUEST_STATUSES",
    "PrivacyRequestRecord",
    "PrivacyRequestRepository",
    "SubjectData",
]

REQUEST_KINDS = frozenset({"access", "erasure"})
REQUEST_STATUSES = frozenset({"pending", "running", "done", "partial", "failed"})
_BATCH = 500  # ids per IN (...) list: well under SQLite's and PostgreSQL's parameter limits


def _chunks(ids: Sequence[str], size: int = _BATCH) -> Iterator[list[str]]:
    for i in range(0, len(ids), size):
        yield list(ids[i : i + size])


@dataclass(frozen=True, slots=True)
class PrivacyRequestRecord:
    """A stored request; ``subject``, ``plan`` and ``steps`` are parsed JSON."""

    id: str
    kind: str
    subject: dict[str, Any]
    cameras: list[str] | None
    status: str
    plan: dict[str, Any] | None
    steps: list[dict[str, Any]]
    report: str | None
    archive_key: str | None
    requested_by: str
    created_at: datetime
    updated_at: datetime


def _record(row: sa.RowMapping) -> PrivacyRequestRecord:
    return PrivacyRequestRecord(
        id=str(row["id"]),
        kind=str(row["kind"]),
        subject=json.loads(row["subject"]),
        cameras=None if row["cameras"] is None else json.loads(row["cameras"]),
        status=str(row["status"]),
        plan=None if row["plan"] is None else json.loads(row["plan"]),
        steps=json.loads(row["steps"]),
        report=row["report"],
        archive_key=row["archive_key"],
        requested_by=str(row["requested_by"]),
        created_at=row["created_at"],
        updated_at=row["updated_at"],
    )


class PrivacyRequestRepository(Repository):
    """Stores data-subject requests and their progress."""

    def create(
        self,
        *,
        kind: str,
        subject: dict[str, Any],
        steps: list[dict[str, Any]],
        requested_by: str,
        cameras: Collection[str] | None = None,
    ) -> PrivacyRequestRecord:
        """Stores a new pending request.

        Raises:
            ValueError: an unknown ``kind``.
        """
        if kind not in REQUEST_KINDS:
            raise ValueError(f"kind must be one of {sorted(REQUEST_KINDS)}, but got {kind!r}")
        now = self._now()
        values = {
            "id": str(uuid.uuid4()),
            "kind": kind,
            "subject": json.dumps(subject, sort_keys=True),
            "cameras": None if cameras is None else json.dumps(sorted(cameras)),
            "status": "pending",
            "plan": None,
            "steps": json.dumps(steps),
            "report": None,
            "archive_key": None,
            "requested_by": requested_by[:255],
            "created_at": now,
            "updated_at": now,
        }
        with self._write() as conn:
            conn.execute(sa.insert(PRIVACY_REQUESTS).values(**values))
        found = self.get(str(values["id"]))
        assert found is not None
        return found

    def get(self, request_id: str) -> PrivacyRequestRecord | None:
        query = sa.select(PRIVACY_REQUESTS).where(PRIVACY_REQUESTS.c.id == request_id)
        with self._engine.connect() as conn:
            row = conn.execute(query).mappings().first()
        return None if row is None else _record(row)

    def list(self, *, limit: int = 50, offset: int = 0) -> builtins.list[PrivacyRequestRecord]:
        """Requests, newest first."""
        c = PRIVACY_REQUESTS.c
        query = (
            sa.select(PRIVACY_REQUESTS)
            .order_by(c.created_at.desc(), c.id)
            .limit(max(1, min(limit, 500)))
            .offset(max(0, offset))
        )
        with self._engine.connect() as conn:
            return [_record(r) for r in conn.execute(query).mappings()]

    def claim(self, request_id: str, stale_after_s: float = 900.0) -> bool:
        """Moves the request to ``running`` unless it is finished (done) or already running
        (a ``running`` row not updated for ``stale_after_s``, left by a crash, is taken)."""
        c = PRIVACY_REQUESTS.c
        now = self._now()
        stale = now - timedelta(seconds=stale_after_s)
        with self._write() as conn:
            done = conn.execute(
                sa.update(PRIVACY_REQUESTS)
                .where(
                    c.id == request_id,
                    c.status != "done",
                    sa.or_(c.status != "running", c.updated_at < stale),
                )
                .values(status="running", updated_at=now)
            )
        return done.rowcount == 1

    def save(
        self,
        request_id: str,
        *,
        steps: builtins.list[dict[str, Any]],
        status: str | None = None,
        plan: dict[str, Any] | None = None,
        report: str | None = None,
        archive_key: str | None = None,
    ) -> None:
        """Writes the steps (and what else is given) and touches ``updated_at``."""
        if status is not None and status not in REQUEST_STATUSES:
            raise ValueError(f"status must be one of {sorted(REQUEST_STATUSES)}")
        values: dict[str, Any] = {"steps": json.dumps(steps), "updated_at": self._now()}
        if status is not None:
            values["status"] = status
        if plan is not None:
            values["plan"] = json.dumps(plan, sort_keys=True)
        if report is not None:
            values["report"] = report
        if archive_key is not None:
            values["archive_key"] = archive_key
        with self._write() as conn:
            conn.execute(
                sa.update(PRIVACY_REQUESTS)
                .where(PRIVACY_REQUESTS.c.id == request_id)
                .values(**values)
            )


class SubjectData(Repository):
    """Reads and deletes a subject's rows across the tables (see the module's doc)."""

    # -- reads ----------------------------------------------------------------------------

    def events(
        self, ids: Collection[str], cameras: Collection[str] | None = None
    ) -> builtins.list[dict[str, Any]]:
        """The events among ``ids`` (on ``cameras``; None: any)."""
        e = EVENTS.c
        cols = (e.id, e.camera_id, e.started_at, e.ended_at, e.last_seen_at, e.snapshot_key)
        out: builtins.list[dict[str, Any]] = []
        with self._engine.connect() as conn:
            for chunk in _chunks(sorted(set(ids))):
                query = sa.select(*cols).where(e.id.in_(chunk))
                if cameras is not None:
                    query = query.where(e.camera_id.in_(sorted(cameras)))
                out.extend(dict(r) for r in conn.execute(query).mappings())
        return sorted(out, key=lambda r: (r["started_at"], r["id"]))

    def events_in_range(
        self, camera_id: str, start: datetime, end: datetime, limit: int
    ) -> builtins.list[str]:
        """Ids of the camera's events sharing time with ``[start, end]`` (up to ``limit``)."""
        e = EVENTS.c
        query = (
            sa.select(e.id)
            .where(
                e.camera_id == camera_id,
                e.started_at <= end,
                sa.func.coalesce(e.ended_at, e.last_seen_at) >= start,
            )
            .order_by(e.started_at, e.id)
            .limit(limit)
        )
        with self._engine.connect() as conn:
            return [str(i) for i in conn.execute(query).scalars()]

    def incident_events(
        self, incident_ids: Collection[str], cameras: Collection[str] | None = None
    ) -> builtins.list[str]:
        """The member events of the incidents (on ``cameras``)."""
        m, i = INCIDENT_MEMBERS.c, INCIDENTS.c
        out: builtins.list[str] = []
        with self._engine.connect() as conn:
            for chunk in _chunks(sorted(set(incident_ids))):
                query = (
                    sa.select(m.event_id)
                    .join(INCIDENTS, i.id == m.incident_id)
                    .where(m.incident_id.in_(chunk))
                )
                if cameras is not None:
                    query = query.where(i.camera_id.in_(sorted(cameras)))
                out.extend(str(x) for x in conn.execute(query).scalars())
        return sorted(set(out))

    def incidents_of(self, event_ids: Collection[str]) -> builtins.list[dict[str, Any]]:
        """The incidents having one of the events as a member, with all their members."""
        m, i = INCIDENT_MEMBERS.c, INCIDENTS.c
        found: set[str] = set()
        with self._engine.connect() as conn:
            for chunk in _chunks(sorted(set(event_ids))):
                query = sa.select(m.incident_id).where(m.event_id.in_(chunk))
                found.update(str(x) for x in conn.execute(query).scalars())
            rows: builtins.list[dict[str, Any]] = []
            for chunk in _chunks(sorted(found)):
                query = sa.select(i.id, i.camera_id, i.started_at, i.ended_at, i.members).where(
                    i.id.in_(chunk)
                )
                for r in conn.execute(query).mappings():
                    row = dict(r)
                    row["members"] = [str(x) for x in json.loads(row["members"])]
                    rows.append(row)
        return sorted(rows, key=lambda r: r["id"])

    def alerts_of(
        self, event_ids: Collection[str], incident_ids: Collection[str]
    ) -> builtins.list[dict[str, Any]]:
        """The alerts of the events or of the incidents."""
        a = ALERTS.c
        cols = (a.id, a.camera_id, a.event_id, a.incident_id)
        out: dict[str, dict[str, Any]] = {}
        with self._engine.connect() as conn:
            for col, ids in ((a.event_id, event_ids), (a.incident_id, incident_ids)):
                for chunk in _chunks(sorted(set(ids))):
                    for r in conn.execute(sa.select(*cols).where(col.in_(chunk))).mappings():
                        out[str(r["id"])] = dict(r)
        return [out[k] for k in sorted(out)]

    def rows(self, table: str, ids: Collection[str]) -> builtins.list[dict[str, Any]]:
        """Whole rows of ``events``, ``incidents`` or ``alerts`` by id (for an access archive)."""
        tables = {"events": EVENTS, "incidents": INCIDENTS, "alerts": ALERTS}
        t = tables[table]
        out: builtins.list[dict[str, Any]] = []
        with self._engine.connect() as conn:
            for chunk in _chunks(sorted(set(ids))):
                out.extend(
                    dict(r) for r in conn.execute(sa.select(t).where(t.c.id.in_(chunk))).mappings()
                )
        return out

    def exports(
        self, camera_id: str, start: datetime, end: datetime
    ) -> builtins.list[dict[str, Any]]:
        """The camera's exported clips sharing time with ``[start, end]``."""
        x = EXPORTS.c
        query = sa.select(x.id, x.camera_id, x.start_at, x.end_at, x.object_key).where(
            x.camera_id == camera_id, x.start_at <= end, x.end_at >= start
        )
        with self._engine.connect() as conn:
            return [dict(r) for r in conn.execute(query).mappings()]

    def face_prints(self, event_ids: Collection[str]) -> int:
        """How many face prints the events have."""
        total = 0
        with self._engine.connect() as conn:
            for chunk in _chunks(sorted(set(event_ids))):
                query = (
                    sa.select(sa.func.count())
                    .select_from(FACE_PRINTS)
                    .where(FACE_PRINTS.c.event_id.in_(chunk))
                )
                total += int(conn.execute(query).scalar_one())
        return total

    def annotation_items(
        self, camera_id: str, start: datetime, end: datetime
    ) -> builtins.list[dict[str, Any]]:
        """The camera's annotation items with a frame taken in ``[start, end]``."""
        c = ANNOTATION_ITEMS.c
        query = sa.select(c.id, c.camera_id, c.frame_ts, c.image_key).where(
            c.camera_id == camera_id, c.frame_ts >= start, c.frame_ts <= end
        )
        with self._engine.connect() as conn:
            return [dict(r) for r in conn.execute(query).mappings()]

    def dataset_versions(self, cameras: Collection[str]) -> builtins.list[dict[str, Any]]:
        """The ready dataset versions holding frames of ``cameras``, with the runs that
        locked them (``locked_by``)."""
        d, k = DATASETS.c, DATASET_LOCKS.c
        wanted = set(cameras)
        with self._engine.connect() as conn:
            rows = conn.execute(
                sa.select(d.name, d.version, d.camera_ids).where(d.status == "ready")
            ).all()
            out = []
            for name, version, camera_ids in rows:
                if camera_ids is not None and not wanted & set(json.loads(camera_ids)):
                    continue
                runs = conn.execute(
                    sa.select(k.run_id)
                    .where(k.name == name, k.version == version)
                    .order_by(k.locked_at, k.run_id)
                ).scalars()
                out.append(
                    {
                        "name": str(name),
                        "version": int(version),
                        "locked_by": [str(r) for r in runs],
                    }
                )
        return out

    def runs_of(self, versions: Collection[tuple[str, int]]) -> builtins.list[dict[str, Any]]:
        """The training runs that used (locked, or were started on) the dataset versions."""
        t, k = TRAINING_RUNS.c, DATASET_LOCKS.c
        out: dict[str, dict[str, Any]] = {}
        with self._engine.connect() as conn:
            for name, version in sorted(set(versions)):
                locked = [
                    str(r)
                    for r in conn.execute(
                        sa.select(k.run_id).where(k.name == name, k.version == version)
                    ).scalars()
                ]
                query = sa.select(t.id, t.mlflow_run_id).where(
                    sa.or_(
                        t.id.in_(locked), sa.and_(t.dataset == name, t.dataset_version == version)
                    )
                )
                for run_id, mlflow_run_id in conn.execute(query):
                    out[str(run_id)] = {
                        "id": str(run_id),
                        "mlflow_run_id": mlflow_run_id,
                        "dataset": name,
                        "dataset_version": version,
                    }
        return [out[k] for k in sorted(out)]

    # -- deletes --------------------------------------------------------------------------

    def delete_face_prints(self, event_ids: Sequence[str]) -> int:
        """Deletes the events' face prints (their scans stay: a scanned event is not scanned
        again, and the scan goes with the event)."""
        total = 0
        for chunk in _chunks(event_ids):
            with self._write() as conn:
                done = conn.execute(sa.delete(FACE_PRINTS).where(FACE_PRINTS.c.event_id.in_(chunk)))
                total += done.rowcount
        return total

    def delete_annotation_items(self, item_ids: Sequence[str]) -> int:
        """Deletes annotation items with their annotations, reviews and gold scores."""
        total = 0
        for chunk in _chunks(item_ids):
            with self._write() as conn:
                for table in (ANNOTATIONS, ANNOTATION_REVIEWS, ANNOTATION_GOLD_SCORES):
                    conn.execute(sa.delete(table).where(table.c.item_id.in_(chunk)))
                done = conn.execute(
                    sa.delete(ANNOTATION_ITEMS).where(ANNOTATION_ITEMS.c.id.in_(chunk))
                )
                total += done.rowcount
        return total

    def delete_alerts(self, alert_ids: Sequence[str]) -> int:
        """Deletes alerts with their notification outbox rows and deliveries (which copy the
        alert)."""
        total = 0
        for chunk in _chunks(alert_ids):
            with self._write() as conn:
                conn.execute(sa.delete(NOTIFY_OUTBOX).where(NOTIFY_OUTBOX.c.alert_id.in_(chunk)))
                conn.execute(
                    sa.delete(NOTIFY_DELIVERIES).where(NOTIFY_DELIVERIES.c.alert_id.in_(chunk))
                )
                total += conn.execute(sa.delete(ALERTS).where(ALERTS.c.id.in_(chunk))).rowcount
        return total

    def delete_incidents(self, incident_ids: Sequence[str]) -> int:
        """Deletes incidents with their member rows; each leaves the search index (queued)."""
        total = 0
        now = self._now()
        for chunk in _chunks(incident_ids):
            with self._write() as conn:
                m = INCIDENT_MEMBERS.c
                conn.execute(sa.delete(INCIDENT_MEMBERS).where(m.incident_id.in_(chunk)))
                total += conn.execute(
                    sa.delete(INCIDENTS).where(INCIDENTS.c.id.in_(chunk))
                ).rowcount
                for incident_id in chunk:
                    enqueue_in(conn, incident_id, "incident", "delete", now)
        return total

    def detach_events(self, leaving: Mapping[str, Collection[str]]) -> int:
        """Removes events from kept incidents (``incident id -> event ids``): members, key
        frames, member rows; labels are recomputed from the members left; each incident is
        queued for indexing again. A batch of incidents per transaction.

        Returns:
            How many member rows left.
        """
        i, m = INCIDENTS.c, INCIDENT_MEMBERS.c
        now = self._now()
        total = 0
        for chunk in _chunks(sorted(leaving), 200):
            with self._write() as conn:
                rows = conn.execute(sa.select(INCIDENTS).where(i.id.in_(chunk))).mappings().all()
                labels: dict[str, set[str]] = {}
                for incident_id, event_id, label in conn.execute(
                    sa.select(m.incident_id, m.event_id, m.label).where(m.incident_id.in_(chunk))
                ):
                    if event_id not in leaving[incident_id]:
                        labels.setdefault(incident_id, set()).add(str(label))
                for row in rows:
                    gone = set(leaving[row["id"]])
                    members = [x for x in json.loads(row["members"]) if x not in gone]
                    frames = [f for f in json.loads(row["key_frames"]) if f["event_id"] not in gone]
                    total += conn.execute(
                        sa.delete(INCIDENT_MEMBERS).where(
                            m.incident_id == row["id"], m.event_id.in_(sorted(gone))
                        )
                    ).rowcount
                    conn.execute(
                        sa.update(INCIDENTS)
                        .where(i.id == row["id"])
                        .values(
                            members=json.dumps(members),
                            key_frames=json.dumps(frames),
                            labels=json.dumps(sorted(labels.get(row["id"], ()))),
                            revision=i.revision + 1,
                            updated_at=now,
                        )
                    )
                    enqueue_in(conn, row["id"], "incident", "upsert", now)
        return total

    def delete_events(self, event_ids: Sequence[str]) -> int:
        """Deletes events (their face prints and scans cascade) and their agent-queue rows;
        each leaves the search index through the queue, queued in the same transaction."""
        total = 0
        now = self._now()
        for chunk in _chunks(event_ids):
            with self._write() as conn:
                conn.execute(sa.delete(AGENT_QUEUE).where(AGENT_QUEUE.c.event_id.in_(chunk)))
                total += conn.execute(sa.delete(EVENTS).where(EVENTS.c.id.in_(chunk))).rowcount
                for event_id in chunk:
                    enqueue_in(conn, event_id, "event", "delete", now)
        return total

    def mark_dataset_erased(self, name: str, version: int) -> bool:
        """Marks a ready version ``erased`` (even a locked one: its locks stay as the record
        of which runs used it); the caller deleted its objects."""
        d = DATASETS.c
        with self._write() as conn:
            done = conn.execute(
                sa.update(DATASETS)
                .where(d.name == name, d.version == version, d.status == "ready")
                .values(status="erased")
            )
        return done.rowcount == 1
