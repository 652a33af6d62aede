"""Finished segments into the archive: stored as objects and indexed, in one step.

``finalize_segment`` is the recorder's ``on_segment``: it puts the segment's bytes in the object
store, then indexes it (``SegmentRepository.add``). Either both happen or neither does: a put
that fails leaves no row, an insert that fails deletes the object again, and the temp file is
always removed. A crash between the put and the insert can still leave an object without a row;
``reconcile`` (run at startup, before the camera records) deletes those, and the rows whose
object is gone.
"""

from __future__ import annotations

import contextlib
import logging
import re
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime

from sentinel.store.objects import ObjectStore, validate_key
from sentinel.store.segment_repo import SEGMENT_KINDS, SegmentInfo, SegmentRecord, SegmentRepository

__all__ = [
    "RECORDINGS_PREFIX",
    "ReconcileReport",
    "camera_prefix",
    "finalize_segment",
    "reconcile",
    "segment_key",
]

log = logging.getLogger(__name__)

RECORDINGS_PREFIX = "recordings/"
MP4_CONTENT_TYPE = "video/mp4"
_CAMERA_ID = re.compile(r"[A-Za-z0-9._-]+")


def camera_prefix(camera_id: str) -> str:
    """``"recordings/<camera_id>/"``: the prefix of every segment object of the camera.

    Raises:
        ValueError: If ``camera_id`` is not a valid single key segment.
    """
    if camera_id in (".", "..") or not _CAMERA_ID.fullmatch(camera_id):
        raise ValueError(f"camera_id must match [A-Za-z0-9._-]+, but got {camera_id!r}")
    return f"{RECORDINGS_PREFIX}{camera_id}/"


def segment_key(camera_id: str, start_at: datetime, unique: str | None = None) -> str:
    """The object key of a segment starting at ``start_at`` (UTC).

    ``recordings/<camera_id>/<YYYY>/<MM>/<DD>/<YYYYMMDDTHHMMSS.mmmZ>-<uuid8>.mp4``: keys sort in
    time order per camera and day, and the random suffix keeps two segments apart.

    Args:
        camera_id: The camera's id (one key segment).
        start_at: The segment's wall-clock start (tz-aware).
        unique: The 8-character suffix; random if None.

    Raises:
        ValueError: If ``camera_id`` or ``unique`` is not a valid key segment or
            ``start_at`` is naive.
    """
    if start_at.tzinfo is None or start_at.utcoffset() is None:
        raise ValueError(f"start_at must be timezone-aware, but got {start_at.isoformat()}")
    utc = start_at.astimezone(UTC)
    stamp = f"{utc:%Y%m%dT%H%M%S}.{utc.microsecond // 1000:03d}Z"
    suffix = unique if unique is not None else uuid.uuid4().hex[:8]
    key = f"{camera_prefix(camera_id)}{utc:%Y/%m/%d}/{stamp}-{suffix}.mp4"
    return validate_key(key)


def finalize_segment(
    info: SegmentInfo,
    *,
    camera_id: str,
    kind: str,
    store: ObjectStore,
    repo: SegmentRepository,
) -> SegmentRecord:
    """Moves a finished temp segment into the object store and indexes it.

    The bytes are put under `segment_key`, then the row is inserted. If the put fails no row
    is written; if the insert fails the object is deleted again (no orphan either way). The
    temp file ``info.path`` is removed in every case.

    Args:
        info: The recorder's finished segment.
        camera_id: The camera that recorded it.
        kind: ``"continuous"`` or ``"event"``.
        store: Where the segment's bytes go.
        repo: Where the segment is indexed.

    Returns:
        The indexed segment.

    Raises:
        ValueError: If ``camera_id`` or ``kind`` is invalid (nothing stored).
        OSError: If the temp file cannot be read (nothing stored).
        Exception: Whatever the store or the database raised (nothing kept).
    """
    try:
        key = segment_key(camera_id, info.wall_start)
        if kind not in SEGMENT_KINDS:
            raise ValueError(f"unknown segment kind {kind!r}")
        store.put(key, info.path.read_bytes(), MP4_CONTENT_TYPE)
        try:
            return repo.add(camera_id, info, key, kind)
        except BaseException:
            try:
                store.delete(key)
            except Exception:  # reconcile removes it at the next start
                log.exception("could not delete %s after its index insert failed", key)
            raise
    finally:
        with contextlib.suppress(OSError):
            info.path.unlink(missing_ok=True)


@dataclass(frozen=True, slots=True)
class ReconcileReport:
    """What `reconcile` removed: rows without an object, objects without a row."""

    camera_id: str
    rows_deleted: int
    objects_deleted: int
    bytes_deleted: int


def reconcile(store: ObjectStore, repo: SegmentRepository, camera_id: str) -> ReconcileReport:
    """Makes the camera's index and objects agree again (at startup, before it records).

    Rows whose object is missing are deleted (nothing to play); objects under
    ``recordings/<camera_id>/`` without a row are deleted (a crash between put and insert
    left them; no one can find them). Run it while the camera is not recording: a segment
    being finalized meanwhile would look like an orphan object.

    Args:
        store: The object store holding the segments.
        repo: The index of the segments.
        camera_id: The camera to reconcile.

    Returns:
        The counts of what was removed.

    Raises:
        ValueError: If ``camera_id`` is not a valid key segment.
    """
    prefix = camera_prefix(camera_id)
    objects = dict(store.iter_keys(prefix))
    rows_deleted = 0
    for row in repo.orphans(objects.keys(), camera_id=camera_id):
        rows_deleted += repo.delete(row.id)
        log.warning("segment %s had no object %s: row deleted", row.id, row.object_key)
    indexed = repo.keys(camera_id)
    objects_deleted = bytes_deleted = 0
    for key, size in objects.items():
        if key not in indexed:
            store.delete(key)
            objects_deleted, bytes_deleted = objects_deleted + 1, bytes_deleted + size
            log.warning("object %s of %s had no index row: deleted", key, camera_id)
    return ReconcileReport(camera_id, rows_deleted, objects_deleted, bytes_deleted)
