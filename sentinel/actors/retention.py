"""The storage sweeper: deletes expired footage, and the oldest when storage runs short.

``RetentionSweeper`` does one sweep (no Ray): it reads the segment index, asks
``sentinel.domain.retention.plan_sweep`` what to delete, deletes each object then its row, and
writes an audit entry (actor ``retention``) per deletion. ``RetentionActor`` is the detached
Ray actor that runs a sweep every ``storage.sweep_interval_s`` in a thread and, when
``audit_anchors`` is enabled, anchors the audit chain's head every ``audit_anchors.interval_s``
in another (``sentinel.retention.anchoring``), and, when ``faces.enabled``, scans new person
events' snapshots for faces every ``faces.interval_s`` in a third
(``sentinel.retention.face_index``).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import shutil
import threading
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import ray
from sqlalchemy.engine import Engine

from sentinel.config import (
    ArchiveSettings,
    AuthSettings,
    FaceSettings,
    RecordSettings,
    StorageSettings,
    TrainSettings,
)
from sentinel.domain.holds import HeldRange, holding, kept_by_holds
from sentinel.domain.retention import (
    Deletion,
    DerivedCutoffs,
    Policies,
    SegmentView,
    derived_cutoffs,
    plan_sweep,
)
from sentinel.retention.anchoring import AnchorLoop, AuditAnchorer
from sentinel.retention.archive import (
    Archiver,
    ArchiveReport,
    camera_archive_ages,
    make_archive_store,
    segment_view,
)
from sentinel.retention.face_index import FaceScanLoop, open_face_index
from sentinel.retention.holds import load_holds
from sentinel.retention.tiering import ArchiveAges, awaiting_archive
from sentinel.store.alert_repo import AlertRepository
from sentinel.store.audit_anchors import AuditAnchorSettings, make_anchor_store
from sentinel.store.audit_repo import AuditRepository
from sentinel.store.db import make_engine
from sentinel.store.hold_repo import HoldRepository
from sentinel.store.incident_repo import IncidentRepository
from sentinel.store.objects import LocalObjectStore, ObjectStore, unwrapped
from sentinel.store.repo import CameraRepository, EventRepository
from sentinel.store.s3 import make_object_store
from sentinel.store.segment_repo import SEGMENT_KINDS, SegmentRecord, SegmentRepository
from sentinel.train.expiry import ArtifactReport, ArtifactSweeper, artifact_sweeper

logger = logging.getLogger(__name__)

RETENTION_NAME = "sentinel-retention"
AUDIT_ACTOR = "retention"
AUDIT_ACTION = "recording.delete"
_BATCH = 1000  # oldest segments read per camera and kind per round
_MAX_ROUNDS = 100


def _utcnow() -> datetime:
    return datetime.now(UTC)


def free_bytes_of(store: ObjectStore) -> int | None:
    """Free bytes on the disk of a local store (encrypted or not); None for S3."""
    store = unwrapped(store)
    if isinstance(store, LocalObjectStore):
        return shutil.disk_usage(store.root).free
    return None


def camera_policies(cameras: CameraRepository) -> Policies:
    """Retention days per camera, from the cameras' configs in the database."""
    policies: dict[str, tuple[float | None, float | None]] = {}
    for cid, cfg in cameras.list():
        try:
            record = RecordSettings(**(cfg.get("record") or {}))
        except ValueError:
            logger.warning("camera %s: invalid record settings, its footage is not expired", cid)
            continue
        policies[cid] = (record.retention_days, record.event_retention_days)
    return policies


def _spans(
    ranges: dict[str, list[HeldRange]], camera_id: str
) -> list[tuple[datetime, datetime | None]]:
    return [(r.start_at, r.end_at) for r in ranges.get(camera_id, ())]


@dataclass(frozen=True, slots=True)
class SweepReport:
    """What one sweep did, and the storage afterwards."""

    at: datetime
    deleted: list[Deletion] = field(default_factory=list)
    failed: int = 0
    bytes_freed: int = 0
    used_bytes: int = 0
    free_bytes: int | None = None
    events_expired: int = 0
    incidents_expired: int = 0
    snapshots_expired: int = 0  # snapshots removed from events kept longer
    alerts_expired: int = 0
    holds_active: int = 0
    held_segments: int = 0  # past retention, kept because a legal hold covers them
    held_bytes: int = 0
    held_events: int = 0
    held_incidents: int = 0
    archive: ArchiveReport | None = None  # None: tiering is off
    artifacts: ArtifactReport | None = None  # None: datasets_days and training_days are off

    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out["at"] = self.at.isoformat()
        return out


def _view(seg: SegmentRecord) -> SegmentView:
    return segment_view(seg)


class RetentionSweeper:
    """Deletes footage past retention, then the oldest while over budget or low on space.

    Args:
        engine: An engine on a migrated database (segments, cameras, audit log).
        store: The object store holding the segments.
        settings: The budget and the free space to keep.
        policies: Returns the retention days per camera; default: the cameras' configs.
        archiver: Moves due footage to the archive each sweep; None: tiering is off.
        archive_ages: Returns each camera's own archive age; default: the cameras' configs.
        artifacts: Expires dataset versions and training artifacts; None: both kept.
    """

    def __init__(
        self,
        engine: Engine,
        store: ObjectStore,
        settings: StorageSettings,
        *,
        policies: Callable[[], Policies] | None = None,
        archiver: Archiver | None = None,
        archive_ages: Callable[[], ArchiveAges] | None = None,
        artifacts: ArtifactSweeper | None = None,
    ) -> None:
        self.artifacts = artifacts
        self.segments = SegmentRepository(engine)
        self.archiver = archiver
        self.audit = AuditRepository(engine)
        self.store = store
        self.settings = settings
        self.events = EventRepository(engine)
        self.incidents = IncidentRepository(engine)
        self.holds = HoldRepository(engine)
        self.alerts = AlertRepository(engine)
        cameras = CameraRepository(engine)
        self.policies = policies or (lambda: camera_policies(cameras))
        self.archive_ages = archive_ages or (lambda: camera_archive_ages(cameras))

    def used_bytes(self) -> int:
        return sum(u.bytes for u in self.segments.usage())

    def sweep(self, now: datetime | None = None) -> SweepReport:
        """One sweep; deletions that fail are logged, counted and retried next sweep.

        Footage, events and incidents a legal hold covers are never deleted; the report counts
        what was past retention and kept only because of a hold.
        """
        now = now or _utcnow()
        policies = self.policies()
        holds, ranges = self._held()
        ages = self.archive_ages() if self.archiver is not None else {}
        archived = None
        if self.archiver is not None:  # first: archiving frees local space the plan counts
            cameras = [u.camera_id for u in self.segments.usage()]
            archived = self.archiver.run(
                now, ages=ages, held=ranges, policies=policies, cameras=cameras
            )
        deleted: list[Deletion] = []
        failed = 0
        for _ in range(_MAX_ROUNDS):
            batch, complete = self._candidates(ranges)
            views = [
                self._view(s, now, ages)
                for s in batch.values()
                if holding(ranges, s.camera_id, s.start_at, s.end_at) is None  # belt and braces
            ]
            plan = plan_sweep(
                views,
                now=now,
                policies=policies,
                used_bytes=self.used_bytes(),
                budget_bytes=self.settings.budget_bytes,
                free_bytes=free_bytes_of(self.store),
                min_free_bytes=self.settings.min_free_bytes,
            )
            done = [d for d in plan if self._delete(batch[d.segment_id], d, now)]
            deleted.extend(done)
            failed += len(plan) - len(done)
            if not done or complete:
                break
        cutoffs = self._cutoffs(policies, now)
        expired = self._expire_rows(cutoffs, ranges)
        artifacts = None if self.artifacts is None else self.artifacts.sweep(now, ranges)
        events_expired, incidents_expired = expired["events"], expired["incidents"]
        held = self._kept_segments(ranges, policies, now)
        held_events, held_incidents = self._kept_rows(cutoffs, ranges)
        report = SweepReport(
            at=now,
            deleted=deleted,
            failed=failed,
            bytes_freed=sum(d.size for d in deleted),
            used_bytes=self.used_bytes(),
            free_bytes=free_bytes_of(self.store),
            events_expired=events_expired,
            incidents_expired=incidents_expired,
            snapshots_expired=expired["snapshots"],
            alerts_expired=expired["alerts"],
            holds_active=holds,
            held_segments=len(held),
            held_bytes=sum(seg.size for seg in held),
            held_events=held_events,
            held_incidents=held_incidents,
            archive=archived,
            artifacts=artifacts,
        )
        if any(expired.values()):
            logger.info(
                "retention sweep: deleted %d events, %d incidents, %d snapshots, %d alerts "
                "past retention",
                events_expired,
                incidents_expired,
                expired["snapshots"],
                expired["alerts"],
            )
        if deleted or failed:
            logger.info(
                "retention sweep: deleted %d segments (%d bytes), %d failed",
                len(deleted),
                report.bytes_freed,
                failed,
            )
        if held or held_events or held_incidents:
            logger.info(
                "retention sweep: kept %d segments, %d events, %d incidents under legal hold",
                len(held),
                held_events,
                held_incidents,
            )
        return report

    def _view(self, seg: SegmentRecord, now: datetime, ages: ArchiveAges) -> SegmentView:
        view = _view(seg)
        if self.archiver is None:
            return view
        due = awaiting_archive(
            view, now=now, ages=ages, default_days=self.archiver.settings.after_days
        )
        return segment_view(seg, awaiting_archive=due)

    def _held(self) -> tuple[int, dict[str, list[HeldRange]]]:
        """The number of active holds and the footage time they keep, per camera."""
        active = load_holds(self.holds, self.incidents)
        return len(active.holds), active.ranges

    def _kept_segments(
        self, ranges: dict[str, list[HeldRange]], policies: Policies, now: datetime
    ) -> list[SegmentView]:
        """The held segments past retention (what the sweep kept because of holds)."""
        seen: dict[str, SegmentView] = {}
        for camera_id, held in ranges.items():
            for r in held:
                end = r.end_at if r.end_at is not None else max(now, r.start_at)
                for seg in self.segments.range(camera_id, r.start_at, end):
                    seen[seg.id] = _view(seg)
        kept = kept_by_holds(seen.values(), ranges, now=now, policies=policies)
        return [seg for seg, _ in kept]

    def _cutoffs(self, policies: Policies, now: datetime) -> dict[str, DerivedCutoffs]:
        """Per camera with derived data, when its events, incidents, snapshots and alerts
        expire (``storage.*_days``, else the camera's event footage retention)."""
        cameras = {*self.events.camera_ids(), *self.alerts.camera_ids()}
        st = self.settings
        return derived_cutoffs(
            policies,
            sorted(cameras),
            now=now,
            events_days=st.events_days,
            incidents_days=st.incidents_days,
            snapshots_days=st.snapshots_days,
            alerts_days=st.alerts_days,
        )

    def _kept_rows(
        self, cutoffs: dict[str, DerivedCutoffs], ranges: dict[str, list[HeldRange]]
    ) -> tuple[int, int]:
        events = incidents = 0
        for camera_id, cut in cutoffs.items():
            keep = _spans(ranges, camera_id)
            if keep and cut.events is not None:
                events += self.events.count_held(camera_id, cut.events, keep)
            if keep and cut.incidents is not None:
                incidents += self.incidents.count_held(camera_id, cut.incidents, keep)
        return events, incidents

    def _expire_rows(
        self, cutoffs: dict[str, DerivedCutoffs], ranges: dict[str, list[HeldRange]]
    ) -> dict[str, int]:
        """Delete the derived data past its retention, except what a legal hold covers:
        events (with their snapshots), incidents, snapshots of events kept longer, alerts.
        Removing a row queues its removal (or re-indexing) in the search index in the same
        transaction. Failures are logged and retried next sweep.

        Returns:
            How many of each were removed (``events``, ``incidents``, ``snapshots``,
            ``alerts``).
        """
        done = {"events": 0, "incidents": 0, "snapshots": 0, "alerts": 0}
        for camera_id, cut in sorted(cutoffs.items()):
            keep = _spans(ranges, camera_id)
            try:
                if cut.events is not None:
                    for _ in range(_MAX_ROUNDS):
                        rows = self.events.expire(camera_id, cut.events, limit=_BATCH, keep=keep)
                        done["events"] += len(rows)
                        for event_id, key in rows:
                            if key is not None:
                                self._delete_snapshot(event_id, key)
                        if len(rows) < _BATCH:
                            break
                if cut.incidents is not None:
                    for _ in range(_MAX_ROUNDS):
                        ids = self.incidents.expire(
                            camera_id, cut.incidents, limit=_BATCH, keep=keep
                        )
                        done["incidents"] += len(ids)
                        if len(ids) < _BATCH:
                            break
                if cut.snapshots is not None:
                    for _ in range(_MAX_ROUNDS):
                        snaps = self.events.expire_snapshots(
                            camera_id, cut.snapshots, limit=_BATCH, keep=keep
                        )
                        done["snapshots"] += len(snaps)
                        for event_id, snap in snaps:
                            self._delete_snapshot(event_id, snap)
                        if len(snaps) < _BATCH:
                            break
                if cut.alerts is not None:
                    for _ in range(_MAX_ROUNDS):
                        ids = self.alerts.expire(camera_id, cut.alerts, limit=_BATCH, keep=keep)
                        done["alerts"] += len(ids)
                        if len(ids) < _BATCH:
                            break
            except Exception:
                logger.exception("could not expire the derived data of camera %s", camera_id)
        return done

    def _delete_snapshot(self, event_id: str, key: str) -> None:
        try:
            self.store.delete(key)
        except Exception:  # the row is gone; an orphan snapshot is only wasted space
            logger.exception("could not delete the snapshot of event %s (%s)", event_id, key)

    def _candidates(
        self, ranges: dict[str, list[HeldRange]]
    ) -> tuple[dict[str, SegmentRecord], bool]:
        """The oldest unexported, unheld segments of each camera and kind, local and archived
        apart (a long archive never hides the local footage from the plan); True if that is
        all (held footage is left out in the query, so it never fills a page)."""
        found: dict[str, SegmentRecord] = {}
        complete = True
        tiers: list[bool | None] = [None] if self.archiver is None else [False, True]
        for usage in self.segments.usage():
            keep = _spans(ranges, usage.camera_id)
            for kind in sorted(SEGMENT_KINDS):
                for tier in tiers:
                    rows = self.segments.oldest(
                        usage.camera_id, kinds=[kind], limit=_BATCH, excluding=keep, archived=tier
                    )
                    complete = complete and len(rows) < _BATCH
                    found.update((row.id, row) for row in rows)
        return found, complete

    def _delete(self, seg: SegmentRecord, deletion: Deletion, now: datetime) -> bool:
        """Deletes the object, then the row (a crash in between leaves an orphan row, which
        the startup reconciliation removes), then audits it. An archived segment's archive
        copy goes first (without an archive store it is kept, and the deletion fails)."""
        try:
            if seg.archived:
                if self.archiver is None:
                    raise RuntimeError("archived segment, but tiering (archive) is off")
                self.archiver.delete_archived(seg)
            else:
                self.store.delete(seg.object_key)
            self.segments.delete(seg.id)
        except Exception:
            logger.exception("could not delete segment %s (%s)", seg.id, seg.object_key)
            return False
        try:
            self.audit.append(
                actor=AUDIT_ACTOR,
                action=AUDIT_ACTION,
                target=seg.object_key,
                client="internal",
                outcome="success",
                detail={
                    "camera": seg.camera_id,
                    "segment": seg.id,
                    "reason": deletion.reason,
                    "bytes": seg.size,
                }
                | ({"tier": "archive"} if seg.archived else {}),
                at=now,
            )
        except Exception:  # the deletion happened; never undo it for the log
            logger.exception("audit append failed for segment %s", seg.id)
        return True


@ray.remote(num_cpus=0, max_restarts=-1, max_concurrency=4)  # type: ignore[call-overload]
class RetentionActor:
    """Runs ``RetentionSweeper.sweep`` every ``storage.sweep_interval_s`` in a thread."""

    def __init__(self, runtime: dict[str, Any]) -> None:
        self.settings = StorageSettings(**runtime.get("storage", {}))
        data_dir = Path(runtime["data_dir"])
        store = make_object_store(runtime["objects"], data_dir)
        engine = make_engine(runtime["db_url"])
        archiving = runtime.get("archive") or ArchiveSettings()
        if isinstance(archiving, dict):
            archiving = ArchiveSettings(**archiving)
        self.archiving = archiving
        archiver = None
        if archiving.enabled:
            archive_store = make_archive_store(archiving, data_dir)
            archiver = Archiver(
                SegmentRepository(engine),
                store,
                archive_store,
                AuditRepository(engine),
                archiving,
            )
        artifacts = artifact_sweeper(
            engine, store, self.settings, TrainSettings(**runtime.get("train", {})), data_dir
        )
        self.sweeper = RetentionSweeper(
            engine, store, self.settings, archiver=archiver, artifacts=artifacts
        )
        faces = open_face_index(
            engine,
            store,
            FaceSettings(**runtime.get("faces", {})),
            secret_key=AuthSettings(**runtime.get("auth", {})).secret_key,
            data_dir=data_dir,
        )
        self.faces = None if faces is None else FaceScanLoop(faces)  # None: faces are off
        self.lock = threading.Lock()
        self.stopped = threading.Event()
        self.wake = threading.Event()
        self.last: SweepReport | None = None
        self.last_error = ""
        self.thread: threading.Thread | None = None
        anchoring = runtime.get("audit_anchors") or AuditAnchorSettings()
        if isinstance(anchoring, dict):
            anchoring = AuditAnchorSettings(**anchoring)
        anchor_store = make_anchor_store(anchoring)  # None: anchoring is off
        self.anchors = (
            None
            if anchor_store is None
            else AnchorLoop(
                AuditAnchorer(
                    self.sweeper.audit, anchor_store, create_bucket=anchoring.create_bucket
                ),
                anchoring.interval_s,
            )
        )

    def start(self) -> bool:
        """Starts the sweep loop and, if configured, the anchoring loop (idempotent)."""
        with self.lock:
            if self.thread is None:
                self.thread = threading.Thread(target=self._loop, name="retention", daemon=True)
                self.thread.start()
        if self.anchors is not None:
            self.anchors.start()
        if self.faces is not None:
            self.faces.start()
        return True

    def sweep_now(self) -> dict[str, Any]:
        """Sweeps now (serialised with the loop's sweeps); returns the report."""
        return self._sweep().to_dict()

    def anchor_now(self) -> dict[str, Any]:
        """Anchors the audit chain's head now; returns what was done (or the error)."""
        if self.anchors is None:
            return {"anchored": None, "skipped": "audit anchoring is not enabled", "error": ""}
        return self.anchors.anchor_now()

    def scan_faces_now(self) -> dict[str, Any]:
        """Scans pending events' snapshots for faces now; returns the round's report."""
        if self.faces is None:
            return {"skipped": "faces are not enabled"}
        return self.faces.scan_now()

    def status(self) -> dict[str, Any]:
        return {
            "budget_bytes": self.settings.budget_bytes,
            "min_free_bytes": self.settings.min_free_bytes,
            "sweep_interval_s": self.settings.sweep_interval_s,
            "last_sweep": None if self.last is None else self.last.to_dict(),
            "archive": {
                "enabled": self.archiving.enabled,
                "after_days": self.archiving.after_days,
                "storage_class": self.archiving.storage_class,
                "restore_ttl_s": self.archiving.restore_ttl_s,
            },
            "last_error": self.last_error,
            "audit_anchors": {"enabled": False} if self.anchors is None else self.anchors.status(),
            "faces": {"enabled": False} if self.faces is None else self.faces.status(),
        }

    def stop(self) -> None:
        self.stopped.set()
        self.wake.set()
        if self.anchors is not None:
            self.anchors.stop()
        if self.faces is not None:
            self.faces.stop()

    def _sweep(self) -> SweepReport:
        with self.lock:
            report = self.sweeper.sweep()
            self.last, self.last_error = report, ""
            return report

    def _loop(self) -> None:
        while not self.stopped.is_set():
            started = time.monotonic()
            try:
                self._sweep()
            except Exception as exc:
                self.last_error = repr(exc)[:500]
                logger.exception("retention sweep failed")
            wait = self.settings.sweep_interval_s - (time.monotonic() - started)
            self.wake.wait(max(wait, 0.0))
            self.wake.clear()


class RetentionProbe:
    """The API's view of the retention actor (``Services.storage``): its settings and last
    sweep, or None while it is not running."""

    def __init__(self, namespace: str, timeout_s: float = 3.0) -> None:
        self.namespace = namespace
        self.timeout_s = timeout_s

    async def status(self) -> dict[str, Any] | None:
        try:
            actor = ray.get_actor(RETENTION_NAME, namespace=self.namespace)
        except ValueError:
            return None
        with contextlib.suppress(Exception):
            result: dict[str, Any] = await asyncio.wait_for(actor.status.remote(), self.timeout_s)
            return result
        return None
