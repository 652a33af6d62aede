"""Tiering I/O (no Ray): the archive pass, the restores' expiry, and on-demand restores.

``Archiver`` runs in the retention sweep. Archiving one segment is crash-safe at every step:

1. read the local copy and hash it (sha256);
2. put it in the archive store (the storage class is the store's);
3. read it back and compare the hash: a mismatch or a failure keeps the local copy and leaves
   the row as it was (the next sweep tries again; a repeated put replaces the same key);
4. mark the row archived (key, hash, time), its local copy "kept until now";
5. delete the local copy, then mark it gone. A crash before 5 leaves a local copy whose
   ``restored_until`` has passed: the restores' expiry removes it.

A restore (``restore_segment``) reads the archive copy, checks its hash, marks the local copy
kept for ``restore_ttl_s`` *before* writing it (so a crash never leaves a copy nobody expires),
then writes it. ``Restorer`` runs restores on worker threads for the playback routes, so a slow
restore continues after the request that started it has answered 202.
"""

from __future__ import annotations

import hashlib
import logging
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import asdict, dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from sentinel.config import ArchiveSettings, RecordSettings
from sentinel.domain.holds import HeldRange
from sentinel.domain.retention import Policies, SegmentView
from sentinel.retention.tiering import ArchiveAges, RestoreProgress, plan_archive, plan_expiry
from sentinel.store.audit_repo import AuditRepository
from sentinel.store.objects import ObjectNotFound, ObjectStore
from sentinel.store.repo import CameraRepository
from sentinel.store.s3 import make_object_store
from sentinel.store.segment_repo import SEGMENT_KINDS, SegmentRecord, SegmentRepository

__all__ = [
    "ARCHIVE_ACTION",
    "RESTORE_ACTION",
    "RESTORE_EXPIRE_ACTION",
    "ArchiveReport",
    "Archiver",
    "RestoreError",
    "RestoreJob",
    "Restorer",
    "camera_archive_ages",
    "make_archive_store",
    "restore_segment",
    "segment_view",
]

log = logging.getLogger(__name__)

ARCHIVE_ACTION = "recording.archive"
RESTORE_ACTION = "recording.restore"
RESTORE_EXPIRE_ACTION = "recording.restore_expire"
AUDIT_ACTOR = "retention"
_PAGE = 1000


class RestoreError(RuntimeError):
    """An archived segment could not be restored (archive copy missing or not matching)."""


def _utcnow() -> datetime:
    return datetime.now(UTC)


def make_archive_store(settings: ArchiveSettings, data_dir: Path) -> ObjectStore:
    """The archive store: ``make_object_store`` over the archive's settings with its storage
    class (a local archive lives in ``<data dir>/archive/objects``)."""
    return make_object_store(settings.store_settings(), settings.archive_dir(data_dir))


def sha256_hex(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def segment_view(seg: SegmentRecord, *, awaiting_archive: bool = False) -> SegmentView:
    """What the planners need of a stored segment."""
    return SegmentView(
        id=seg.id,
        camera_id=seg.camera_id,
        kind=seg.kind,
        start_at=seg.start_at,
        end_at=seg.end_at,
        size=seg.size,
        exported=seg.exported,
        archived=seg.archived,
        awaiting_archive=awaiting_archive,
    )


def camera_archive_ages(cameras: CameraRepository) -> dict[str, float | None]:
    """Each camera's own archive age (``record.archive_after_days``), from the database."""
    ages: dict[str, float | None] = {}
    for cid, cfg in cameras.list():
        try:
            ages[cid] = RecordSettings(**(cfg.get("record") or {})).archive_after_days
        except ValueError:
            log.warning("camera %s: invalid record settings, the default archive age holds", cid)
    return ages


def _audit(
    audit: AuditRepository, action: str, seg: SegmentRecord, detail: Mapping[str, Any], *,
    actor: str = AUDIT_ACTOR, at: datetime | None = None,
) -> None:  # fmt: skip
    try:
        audit.append(
            actor=actor,
            action=action,
            target=seg.object_key,
            client="internal",
            outcome="success",
            detail={"camera": seg.camera_id, "segment": seg.id, "bytes": seg.size, **detail},
            at=at,
        )
    except Exception:  # the operation happened; never undo it for the log
        log.exception("audit append failed for %s of segment %s", action, seg.id)


def restore_segment(
    seg: SegmentRecord,
    *,
    segments: SegmentRepository,
    local: ObjectStore,
    archive: ObjectStore,
    ttl_s: float,
    now: datetime | None = None,
) -> bytes:
    """Copy an archived segment back to the local store, kept ``ttl_s`` from now.

    Returns:
        The segment's bytes (verified against the archived sha256).

    Raises:
        RestoreError: If the segment is not archived, its archive copy is missing or does not
            match its sha256 (nothing is written locally then).
        ObjectStoreError: If a store fails.
    """
    if seg.archive_key is None or seg.archive_sha256 is None:
        raise RestoreError(f"segment {seg.id} is not archived")
    try:
        data = archive.get(seg.archive_key)
    except ObjectNotFound:
        raise RestoreError(f"the archive copy of segment {seg.id} is missing") from None
    if sha256_hex(data) != seg.archive_sha256:
        raise RestoreError(f"the archive copy of segment {seg.id} does not match its sha256")
    until = (now or _utcnow()) + timedelta(seconds=ttl_s)
    segments.keep_restored([seg.id], until)  # first: a crash after the put leaves it expiring
    local.put(seg.object_key, data, "video/mp4")
    return data


@dataclass(frozen=True, slots=True)
class ArchiveReport:
    """What one archive pass and one expiry pass did."""

    archived: int = 0
    archived_bytes: int = 0
    failed: int = 0  # upload or read-back failed, or the copy did not match: local copy kept
    mismatched: int = 0  # of ``failed``: the read-back copy differed from the local one
    restores_expired: int = 0
    seconds: float = 0.0

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


class Archiver:
    """Moves due segments to the archive store and expires restored copies (see the module).

    Args:
        segments: The segment index.
        local: The object store the recorder writes to.
        archive: The archive store (built by ``make_object_store`` from
            ``ArchiveSettings.store_settings``, so its storage class is on every put).
        audit: The audit log (one entry per archived segment and expired restore).
        settings: The archive settings.
    """

    def __init__(
        self,
        segments: SegmentRepository,
        local: ObjectStore,
        archive: ObjectStore,
        audit: AuditRepository,
        settings: ArchiveSettings,
    ) -> None:
        self.segments = segments
        self.local = local
        self.archive = archive
        self.audit = audit
        self.settings = settings

    def run(
        self,
        now: datetime,
        *,
        ages: ArchiveAges,
        held: Mapping[str, Sequence[HeldRange]],
        policies: Policies,
        cameras: Sequence[str],
    ) -> ArchiveReport:
        """Expire restored copies, then archive what is due (at most ``max_per_sweep``)."""
        started = time.monotonic()
        expired = self.expire_restores(now)
        budget = self.settings.max_per_sweep
        archived = nbytes = failed = mismatched = 0
        for camera_id in cameras:
            if budget <= 0:
                break
            rows = self.segments.oldest(
                camera_id,
                kinds=SEGMENT_KINDS,
                limit=min(_PAGE, budget),
                archived=False,
                excluding=[(r.start_at, r.end_at) for r in held.get(camera_id, ())],
                ended_before=now,
            )
            by_id = {r.id: r for r in rows}
            plan = plan_archive(
                (segment_view(r) for r in rows),
                now=now,
                ages=ages,
                default_days=self.settings.after_days,
                held=held,
                policies=policies,
                limit=budget,
            )
            for view in plan:
                outcome = self.archive_segment(by_id[view.id], now)
                budget -= 1
                if outcome == "archived":
                    archived, nbytes = archived + 1, nbytes + view.size
                elif outcome in ("failed", "mismatch"):
                    failed += 1
                    mismatched += outcome == "mismatch"
        report = ArchiveReport(
            archived, nbytes, failed, mismatched, expired, round(time.monotonic() - started, 3)
        )
        if archived or failed or expired:
            log.info("archive pass: %s", report)
        return report

    def archive_segment(self, seg: SegmentRecord, now: datetime) -> str:
        """Archive one segment (the steps in the module docstring).

        Returns:
            ``"archived"``, ``"mismatch"`` (the read-back copy differs: local copy kept),
            ``"failed"`` (a store failed: local copy kept) or ``"gone"`` (no local object).
        """
        key = seg.object_key
        try:
            data = self.local.get(key)
        except ObjectNotFound:
            log.warning("segment %s has no local object %s: not archived", seg.id, key)
            return "gone"
        except Exception:
            log.exception("could not read segment %s (%s) to archive it", seg.id, key)
            return "failed"
        digest = sha256_hex(data)
        try:
            self.archive.put(key, data, "video/mp4")
            copy = self.archive.get(key)
        except Exception:
            log.exception("could not archive segment %s (%s): local copy kept", seg.id, key)
            return "failed"
        if sha256_hex(copy) != digest:
            log.error("archive copy of segment %s (%s) differs: local copy kept", seg.id, key)
            return "mismatch"
        try:
            marked = self.segments.mark_archived(seg.id, key, digest, now)
        except Exception:
            log.exception("could not mark segment %s archived: local copy kept", seg.id)
            return "failed"
        if marked is None:  # deleted meanwhile (the sweep, a reconcile): drop our copy
            self._delete_quietly(self.archive, key)
            return "gone"
        if marked.archive_sha256 != digest:  # archived before, by another pass: theirs holds
            return "gone"
        self._drop_local(marked, expected=now)
        _audit(
            self.audit,
            ARCHIVE_ACTION,
            seg,
            {"archive_key": key, "sha256": digest, "storage_class": self.settings.storage_class},
            at=now,
        )
        return "archived"

    def expire_restores(self, now: datetime) -> int:
        """Delete the restored local copies kept until ``now`` or earlier (never an archive
        copy); a copy played again meanwhile (its ``restored_until`` moved) stays."""
        done = 0
        for _ in range(100):
            due = self.segments.restores_due(now, limit=_PAGE)
            by_id = {s.id: s for s in due}
            for sid in plan_expiry(((s.id, s.restored_until) for s in due), now):
                seg = by_id[sid]
                if self._drop_local(seg, expected=seg.restored_until):
                    done += 1
                    if seg.archived_at != seg.restored_until:  # not the archive pass's own
                        _audit(self.audit, RESTORE_EXPIRE_ACTION, seg, {}, at=now)
            if len(due) < _PAGE:
                break
        return done

    def delete_archived(self, seg: SegmentRecord) -> None:
        """Delete an archived segment's archive copy and any local copy (not the row).

        Raises:
            Exception: If a store fails (the caller keeps the row and retries).
        """
        if seg.archive_key is not None:
            self.archive.delete(seg.archive_key)
        self.local.delete(seg.object_key)

    def _drop_local(self, seg: SegmentRecord, expected: datetime | None) -> bool:
        """Delete the local copy of an archived segment, if its ``restored_until`` is still
        ``expected``; False if a play kept it or the store failed (retried later)."""
        try:
            if not self.segments.clear_restored(seg.id, expected=expected):
                return False
            self.local.delete(seg.object_key)
        except Exception:
            log.exception("could not delete the local copy of archived segment %s", seg.id)
            return False
        return True

    @staticmethod
    def _delete_quietly(store: ObjectStore, key: str) -> None:
        try:
            store.delete(key)
        except Exception:
            log.exception("could not delete %s", key)


@dataclass(frozen=True, slots=True)
class RestoreJob:
    """The restores one playback request waits for: a future per segment, and its size."""

    futures: list[Future[bytes]]
    sizes: list[int]

    def progress(self) -> RestoreProgress:
        ready = [f.done() and f.exception() is None for f in self.futures]
        return RestoreProgress(
            segments=len(self.futures),
            segments_ready=sum(ready),
            bytes=sum(self.sizes),
            bytes_ready=sum(s for s, ok in zip(self.sizes, ready, strict=True) if ok),
            failed=sum(f.done() and f.exception() is not None for f in self.futures),
        )

    def lost_only(self) -> bool:
        """Whether every failed restore failed for good (``RestoreError``: the archive copy
        is missing or does not match), not for a store's failure worth a retry."""
        return all(
            isinstance(f.exception(), RestoreError)
            for f in self.futures
            if f.done() and f.exception() is not None
        )

    def errors(self) -> list[str]:
        """The failed restores' messages."""
        return [str(f.exception()) for f in self.futures if f.done() and f.exception()]


class Restorer:
    """On-demand restores for playback, on worker threads (one restore per segment at once).

    Args:
        segments: The segment index.
        local: The object store playback reads.
        archive: The archive store.
        settings: ``restore_ttl_s`` (how long a restored copy is kept after its last play)
            and ``restore_wait_s`` (how long a request waits before answering 202).
        audit: Where restores are logged; None: not logged.
        workers: Restores running at once.
    """

    def __init__(
        self,
        segments: SegmentRepository,
        local: ObjectStore,
        archive: ObjectStore,
        settings: ArchiveSettings,
        audit: AuditRepository | None = None,
        workers: int = 2,
        clock: Callable[[], datetime] = _utcnow,
    ) -> None:
        self.segments = segments
        self.local = local
        self.archive = archive
        self.settings = settings
        self.audit = audit
        self.clock = clock
        self._pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="restore")
        self._lock = threading.Lock()
        self._running: dict[str, Future[bytes]] = {}

    @property
    def wait_s(self) -> float:
        return self.settings.restore_wait_s

    def ensure(self, records: Sequence[SegmentRecord], actor: str) -> RestoreJob:
        """Start restoring the archived segments among ``records`` that have no local copy;
        keep the local copies of the others for another ``restore_ttl_s``.

        Returns:
            The restores under way (or just finished).
        """
        archived = [r for r in records if r.archived]
        if not archived:
            return RestoreJob([], [])
        present = [r for r in archived if self.local.exists(r.object_key)]
        keep = {r.id for r in present}
        if keep:
            until = self.clock() + timedelta(seconds=self.settings.restore_ttl_s)
            self.segments.keep_restored(keep, until)
        missing = [r for r in archived if r.id not in keep]
        return RestoreJob([self._submit(r, actor) for r in missing], [r.size for r in missing])

    def fetch(self, record: SegmentRecord, actor: str) -> bytes:
        """Restore one archived segment now (blocking) and return its bytes."""
        return self._submit(record, actor).result()

    def close(self) -> None:
        self._pool.shutdown(wait=False, cancel_futures=True)

    def _submit(self, rec: SegmentRecord, actor: str) -> Future[bytes]:
        with self._lock:
            running = self._running.get(rec.id)
            if running is not None:
                return running
            future = self._pool.submit(self._restore, rec, actor)
            self._running[rec.id] = future
        future.add_done_callback(lambda _f: self._forget(rec.id))
        return future

    def _forget(self, segment_id: str) -> None:
        with self._lock:
            self._running.pop(segment_id, None)

    def _restore(self, rec: SegmentRecord, actor: str) -> bytes:
        started = time.monotonic()
        try:  # restored meanwhile (a request checked just before an earlier restore's put)
            data = self.local.get(rec.object_key)
        except ObjectNotFound:
            pass
        else:
            until = self.clock() + timedelta(seconds=self.settings.restore_ttl_s)
            self.segments.keep_restored([rec.id], until)
            return data
        try:
            data = restore_segment(
                rec,
                segments=self.segments,
                local=self.local,
                archive=self.archive,
                ttl_s=self.settings.restore_ttl_s,
                now=self.clock(),
            )
        except Exception:
            log.exception("could not restore archived segment %s", rec.id)
            raise
        if self.audit is not None:
            _audit(
                self.audit,
                RESTORE_ACTION,
                rec,
                {"seconds": round(time.monotonic() - started, 3), "requested_by": actor},
            )
        return data
