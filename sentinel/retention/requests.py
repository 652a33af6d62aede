"""Running data-subject requests over the stores (issue 16; no Ray, no HTTP).

``resolve`` reads what a :class:`~sentinel.retention.subjects.Subject` touches into a
``Resolved`` (stored as the request's plan once, so a resumed request works on the same items
after some are gone). ``RequestRunner.run`` claims a request and runs its unfinished steps in
order, saving each step as it ends and writing an audit entry per step:

- *erasure*: the active legal holds split the plan (``plan_erasure``); each store erases its
  part (search index, face prints, snapshots, clip segments local and archived, exported
  clips sharing time with the events, annotation items, dataset versions, MLflow artifacts,
  then the database rows) and reports what holds kept. The first failing step stops the
  run: it is ``failed`` with the error, the later ones stay ``pending``, and ``run`` again
  (resume) continues from it. A ``held`` step is re-run on resume too, so a released hold
  lets the rest go.
- *access*: one zip with the events', incidents' and alerts' rows (JSON), the snapshots, the
  covering clip segments (archived ones read from the archive store), the exported clips
  sharing time with the events, the search entries and the annotation frames, put in the
  object store under ``privacy/<id>/subject.zip``. Holds do not restrict access. The steps
  are done only once the zip is stored.

Clips: the covering segments are deleted (local copy, archive copy and row), footage of
anyone else in them included; blurring the subject's track in kept footage is not done.
The search index: entries of the erased events and deleted incidents are deleted here and
checked gone; a kept incident's document is rebuilt by the indexer (queued by the database
step). The database step runs last, so a request cut short still finds every row it has yet
to erase.
"""

from __future__ import annotations

import functools
import io
import json
import logging
import zipfile
from collections.abc import Callable, Collection
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Protocol

from sqlalchemy.engine import Engine

from sentinel.retention.holds import load_holds
from sentinel.retention.subjects import (
    AlertRef,
    DatasetRef,
    ErasurePlan,
    EventRef,
    ExportRef,
    IncidentRef,
    ItemRef,
    Resolved,
    RunRef,
    SegmentRef,
    Step,
    Subject,
    event_spans,
    items_in_spans,
    overall_status,
    overlaps_any,
    plan_erasure,
    query_windows,
    report_of,
)
from sentinel.store.audit_repo import AuditRepository
from sentinel.store.export_repo import ExportRepository
from sentinel.store.hold_repo import HoldRepository
from sentinel.store.incident_repo import IncidentRepository
from sentinel.store.objects import ObjectNotFound, ObjectStore
from sentinel.store.segment_repo import SegmentRepository
from sentinel.store.subject_repo import (
    PrivacyRequestRecord,
    PrivacyRequestRepository,
    SubjectData,
)

__all__ = [
    "DatasetItems",
    "RequestBusy",
    "RequestRunner",
    "RunArtifacts",
    "SearchEntries",
    "SubjectStores",
    "SubjectTooLargeError",
    "archive_key_of",
    "resolve",
]

log = logging.getLogger(__name__)


class SubjectTooLargeError(ValueError):
    """The subject touches more events than one request may (``max_events``)."""


class RequestBusy(RuntimeError):  # noqa: N818 - the conflict it reports
    """The request is running (or done): it cannot be run again now."""


class SearchEntries(Protocol):
    """The search index as a request uses it (``VectorIndex``, the indexer's proxy)."""

    def get(self, item_id: str) -> Any | None: ...

    def delete(self, ids: Collection[str]) -> None: ...

    def present(self, ids: Collection[str]) -> list[str]: ...


class DatasetItems(Protocol):
    """Dataset versions as a request uses them (``sentinel.train.erasure.DatasetEraser``)."""

    def items_of(self, name: str, version: int) -> list[str]: ...

    def erase(self, name: str, version: int, item_ids: Collection[str], erased_by: str) -> Any: ...


class RunArtifacts(Protocol):
    """MLflow artifacts (``sentinel.train.erasure.MlflowArtifacts``)."""

    def paths(self, run_id: str) -> list[str]: ...

    def delete(self, run_id: str) -> list[str]: ...


@dataclass
class SubjectStores:
    """Every store a request reads or erases; None: that store is not configured.

    Attributes:
        max_events: The most events one subject may resolve to (a bigger subject is refused:
            split it by time range).
        max_archive_bytes: The most bytes an access archive may hold.
    """

    engine: Engine
    objects: ObjectStore
    archive: ObjectStore | None = None
    index: SearchEntries | None = None
    appearance: SearchEntries | None = None
    datasets: DatasetItems | None = None
    artifacts: RunArtifacts | None = None
    audit: AuditRepository | None = None
    max_events: int = 10_000
    max_archive_bytes: int = 1 << 30


def archive_key_of(request_id: str) -> str:
    return f"privacy/{request_id}/subject.zip"


# -- resolution ---------------------------------------------------------------------------


def _event_ids(
    data: SubjectData, subject: Subject, cameras: Collection[str] | None, cap: int
) -> list[str]:
    if subject.by == "range":
        assert subject.camera_id and subject.start_at and subject.end_at
        if cameras is not None and subject.camera_id not in cameras:
            return []
        return data.events_in_range(subject.camera_id, subject.start_at, subject.end_at, cap + 1)
    ids = set(subject.event_ids)
    if subject.incident_ids:
        ids.update(data.incident_events(subject.incident_ids, cameras))
    return sorted(ids)


def resolve(
    stores: SubjectStores, subject: Subject, cameras: Collection[str] | None = None
) -> Resolved:
    """What ``subject`` touches, on ``cameras`` (None: every camera).

    Raises:
        SubjectTooLargeError: more than ``stores.max_events`` events.
    """
    data = SubjectData(stores.engine)
    ids = _event_ids(data, subject, cameras, stores.max_events)
    rows = data.events(ids, cameras)
    if len(rows) > stores.max_events:
        raise SubjectTooLargeError(
            f"the subject has more than {stores.max_events} events: split it by time range"
        )
    events = [
        EventRef(
            r["id"],
            r["camera_id"],
            r["started_at"],
            r["ended_at"] or r["last_seen_at"],
            r["snapshot_key"],
        )
        for r in rows
    ]
    event_ids = [e.id for e in events]
    incidents = [
        IncidentRef(r["id"], r["camera_id"], r["started_at"], r["ended_at"], tuple(r["members"]))
        for r in data.incidents_of(event_ids)
    ]
    alerts = [
        AlertRef(r["id"], r["camera_id"], r["event_id"], r["incident_id"])
        for r in data.alerts_of(event_ids, [i.id for i in incidents])
    ]
    spans = event_spans(events)
    segment_repo = SegmentRepository(stores.engine)
    segments: dict[str, SegmentRef] = {}
    candidates: list[ItemRef] = []
    exports: dict[str, ExportRef] = {}
    for camera_id, camera_spans in spans.items():
        # One query per window of nearby spans (not per event); what a window returns is
        # kept only if it shares time with a span.
        for lo, hi in query_windows(camera_spans):
            for x in data.exports(camera_id, lo, hi):
                if overlaps_any(x["start_at"], x["end_at"], camera_spans):
                    exports[x["id"]] = ExportRef(
                        x["id"], x["camera_id"], x["start_at"], x["end_at"], x["object_key"]
                    )
            for seg in segment_repo.range(camera_id, lo, hi):
                if any(seg.start_at <= e and seg.end_at > s for s, e in camera_spans):
                    segments[seg.id] = SegmentRef(
                        seg.id, seg.camera_id, seg.start_at, seg.end_at, seg.object_key,
                        seg.archive_key,
                    )  # fmt: skip
            candidates.extend(
                ItemRef(r["id"], r["camera_id"], r["frame_ts"], r["image_key"])
                for r in data.annotation_items(camera_id, lo, hi)
            )
    items = sorted(
        {i.id: i for i in items_in_spans(candidates, spans)}.values(), key=lambda i: i.id
    )
    item_ids = {i.id for i in items}
    datasets: list[DatasetRef] = []
    if item_ids and stores.datasets is not None:
        for row in data.dataset_versions({i.camera_id for i in items}):
            inside = [
                i for i in stores.datasets.items_of(row["name"], row["version"]) if i in item_ids
            ]
            if inside:
                datasets.append(
                    DatasetRef(row["name"], row["version"], tuple(inside), tuple(row["locked_by"]))
                )
    runs = [RunRef(**r) for r in data.runs_of([(d.name, d.version) for d in datasets])]
    return Resolved(
        events=events,
        incidents=incidents,
        alerts=alerts,
        segments=sorted(segments.values(), key=lambda s: (s.camera_id, s.start_at, s.id)),
        items=items,
        datasets=datasets,
        runs=runs,
        face_prints=data.face_prints(event_ids),
        exports=sorted(exports.values(), key=lambda x: x.id),
    )


# -- running ------------------------------------------------------------------------------


class RequestRunner:
    """Runs (and resumes) requests; see the module's doc."""

    def __init__(self, stores: SubjectStores) -> None:
        self.stores = stores
        self.requests = PrivacyRequestRepository(stores.engine)
        self.data = SubjectData(stores.engine)

    def run(self, request_id: str) -> PrivacyRequestRecord:
        """Runs the request's unfinished steps.

        Raises:
            KeyError: no such request.
            RequestBusy: it is running elsewhere, or done.
            SubjectTooLargeError: resolving found too many events (the request is ``failed``).
        """
        rec = self.requests.get(request_id)
        if rec is None:
            raise KeyError(request_id)
        if not self.requests.claim(request_id):
            raise RequestBusy(f"request {request_id} is {rec.status}")
        steps = [Step.from_json(s) for s in rec.steps]
        try:
            resolved = self._plan(rec, steps)
        except Exception as exc:
            self._finish(rec, steps, failed=f"resolving the subject: {exc}")
            raise
        if rec.kind == "erasure":
            self._erase(rec, resolved, steps)
        else:
            self._access(rec, resolved, steps)
        return self._finish(rec, steps)

    def _plan(self, rec: PrivacyRequestRecord, steps: list[Step]) -> Resolved:
        if rec.plan is not None:
            return Resolved.from_json(rec.plan)
        resolved = resolve(self.stores, Subject.from_json(rec.subject), rec.cameras)
        self.requests.save(rec.id, steps=[s.to_json() for s in steps], plan=resolved.to_json())
        self._audit(
            rec,
            "resolve",
            "success",
            {
                "events": len(resolved.events),
                "incidents": len(resolved.incidents),
                "segments": len(resolved.segments),
                "annotation_items": len(resolved.items),
                "datasets": len(resolved.datasets),
                "runs": len(resolved.runs),
            },
        )
        return resolved

    def _finish(
        self, rec: PrivacyRequestRecord, steps: list[Step], failed: str | None = None
    ) -> PrivacyRequestRecord:
        status = "failed" if failed else overall_status(steps)
        if status == "pending":  # nothing failed, yet not everything ran: cut short
            status = "failed"
        report = report_of(rec.kind, steps) if failed is None else f"{rec.kind} failed: {failed}"
        self.requests.save(rec.id, steps=[s.to_json() for s in steps], status=status, report=report)
        self._audit(rec, "finish", status, {"status": status})
        found = self.requests.get(rec.id)
        assert found is not None
        return found

    def _audit(
        self, rec: PrivacyRequestRecord, what: str, outcome: str, detail: dict[str, Any]
    ) -> None:
        if self.stores.audit is None:
            return
        try:
            self.stores.audit.append(
                actor=rec.requested_by,
                action=f"privacy.{rec.kind}.{what}"[:64],
                target=rec.id,
                client="internal",
                outcome=outcome[:32],
                detail={"request": rec.id, **detail},
            )
        except Exception:  # the step happened; never undo it for the log, but say so
            log.exception("audit append failed for privacy request %s (%s)", rec.id, what)

    def _step(
        self, rec: PrivacyRequestRecord, steps: list[Step], step: Step, run: Callable[[], None]
    ) -> bool:
        step.attempts += 1
        try:
            run()
        except Exception as exc:
            log.exception("privacy request %s: %s failed", rec.id, step.store)
            step.fail(f"{type(exc).__name__}: {exc}")
            self.requests.save(rec.id, steps=[s.to_json() for s in steps])
            self._audit(rec, step.store, "error", {"error": step.errors[-1]})
            return False
        self.requests.save(rec.id, steps=[s.to_json() for s in steps])
        self._audit(rec, step.store, step.status, {"counts": step.counts, "held": step.held[:50]})
        return True

    # -- erasure ---------------------------------------------------------------------------

    def _erase(self, rec: PrivacyRequestRecord, resolved: Resolved, steps: list[Step]) -> None:
        holds = load_holds(
            HoldRepository(self.stores.engine), IncidentRepository(self.stores.engine)
        )
        plan = plan_erasure(resolved, holds.ranges, holds.holds)
        eraser = _Eraser(self.stores, self.data, plan, rec.requested_by)
        for step in steps:
            if step.status == "done":
                continue
            run = getattr(eraser, step.store)
            if not self._step(rec, steps, step, functools.partial(run, step)):
                return

    # -- access ----------------------------------------------------------------------------

    def _access(self, rec: PrivacyRequestRecord, resolved: Resolved, steps: list[Step]) -> None:
        """Builds the zip; a step's counts are kept, but only the stored zip makes it done."""
        writer = _ArchiveWriter(self.stores, self.data, resolved)
        by_store = {s.store: s for s in steps}
        for step in steps:
            if step.store == "archive":
                continue
            if not self._step(rec, steps, step, functools.partial(writer.add, step)):
                for other in steps:  # nothing is stored: no step of this run is done
                    if other.status == "done":
                        other.status = "pending"
                self.requests.save(rec.id, steps=[s.to_json() for s in steps])
                return
        key = archive_key_of(rec.id)
        archive = by_store["archive"]

        def store() -> None:
            data = writer.close(rec)
            self.stores.objects.put(key, data, "application/zip")
            archive.finish({"bytes": len(data), "files": writer.files}, [key])

        if self._step(rec, steps, archive, store):
            self.requests.save(rec.id, steps=[s.to_json() for s in steps], archive_key=key)


class _ArchiveWriter:
    """The zip of an access request, in memory (bounded by ``max_archive_bytes``)."""

    def __init__(self, stores: SubjectStores, data: SubjectData, resolved: Resolved) -> None:
        self.stores = stores
        self.data = data
        self.resolved = resolved
        self.buffer = io.BytesIO()
        self.zip = zipfile.ZipFile(self.buffer, "w", zipfile.ZIP_DEFLATED)
        self.files = 0
        self.size = 0

    def _put(self, name: str, data: bytes) -> None:
        self.size += len(data)
        if self.size > self.stores.max_archive_bytes:
            raise SubjectTooLargeError(
                f"the archive is over {self.stores.max_archive_bytes} bytes: narrow the subject"
            )
        self.zip.writestr(name, data)
        self.files += 1

    def _json(self, name: str, value: Any) -> None:
        self._put(name, json.dumps(value, indent=2, default=_default, sort_keys=True).encode())

    def add(self, step: Step) -> None:
        getattr(self, f"_{step.store}")(step)

    def _events(self, step: Step) -> None:
        rows = self.data.rows("events", [e.id for e in self.resolved.events])
        self._json("events.json", rows)
        step.finish({"events": len(rows)}, [str(r["id"]) for r in rows])

    def _incidents(self, step: Step) -> None:
        rows = self.data.rows("incidents", [i.id for i in self.resolved.incidents])
        self._json("incidents.json", rows)
        step.finish({"incidents": len(rows)}, [str(r["id"]) for r in rows])

    def _alerts(self, step: Step) -> None:
        rows = self.data.rows("alerts", [a.id for a in self.resolved.alerts])
        self._json("alerts.json", rows)
        step.finish({"alerts": len(rows)}, [str(r["id"]) for r in rows])

    def _snapshots(self, step: Step) -> None:
        done, missing = [], 0
        for ev in self.resolved.events:
            if not ev.snapshot_key:
                continue
            try:
                data = self.stores.objects.get(ev.snapshot_key)
            except ObjectNotFound:
                missing += 1
                continue
            self._put(f"snapshots/{ev.id}.jpg", data)
            done.append(ev.id)
        step.finish({"snapshots": len(done), "missing": missing}, done)

    def _clips(self, step: Step) -> None:
        done, archived, missing = [], 0, 0
        for seg in self.resolved.segments:
            try:
                data = self.stores.objects.get(seg.object_key)
            except ObjectNotFound:
                if not seg.archive_key:
                    missing += 1
                    continue
                if self.stores.archive is None:
                    raise RuntimeError(
                        f"segment {seg.id} is archived but the archive store is not configured"
                    ) from None
                data = self.stores.archive.get(seg.archive_key)
                archived += 1
            stamp = seg.start_at.strftime("%Y%m%dT%H%M%SZ")
            self._put(f"clips/{seg.camera_id}/{stamp}-{seg.id}.mp4", data)
            done.append(seg.id)
        step.finish({"segments": len(done), "from_archive": archived, "missing": missing}, done)

    def _exports(self, step: Step) -> None:
        done, missing = [], 0
        for exp in self.resolved.exports:
            try:
                data = self.stores.objects.get(exp.object_key)
            except ObjectNotFound:
                missing += 1
                continue
            self._put(f"exports/{exp.camera_id}/{exp.id}.mp4", data)
            done.append(exp.id)
        step.finish({"exports": len(done), "missing": missing}, done)

    def _search_index(self, step: Step) -> None:
        ids = [e.id for e in self.resolved.events] + [i.id for i in self.resolved.incidents]
        index = self.stores.index
        entries = []
        if index is not None:
            for item_id in ids:
                hit = index.get(item_id)
                if hit is not None:
                    entries.append(
                        {"id": item_id, "text": getattr(hit, "text", None),
                         "metadata": getattr(hit, "metadata", None)}
                    )  # fmt: skip
        self._json("search_entries.json", entries)
        step.finish(
            {"entries": len(entries), "index_configured": int(index is not None)},
            [str(e["id"]) for e in entries],
        )

    def _annotations(self, step: Step) -> None:
        done = []
        for item in self.resolved.items:
            try:
                data = self.stores.objects.get(item.image_key)
            except ObjectNotFound:
                continue
            self._put(f"annotations/{item.id}.jpg", data)
            done.append(item.id)
        self._json(
            "annotations.json",
            {
                "items": [
                    {"id": i.id, "camera_id": i.camera_id, "frame_ts": i.frame_ts}
                    for i in self.resolved.items
                ],
                "datasets": [
                    {"name": d.name, "version": d.version, "items": list(d.item_ids)}
                    for d in self.resolved.datasets
                ],
                "training_runs": [r.id for r in self.resolved.runs],
            },
        )
        step.finish({"items": len(done), "datasets": len(self.resolved.datasets)}, done)

    def close(self, rec: PrivacyRequestRecord) -> bytes:
        self._json(
            "request.json",
            {"id": rec.id, "subject": rec.subject, "requested_by": rec.requested_by,
             "created_at": rec.created_at},
        )  # fmt: skip
        self.zip.close()
        return self.buffer.getvalue()


def _default(value: Any) -> Any:
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, bytes):
        return value.hex()
    return str(value)


class _Eraser:
    """One erasure's store steps; each is idempotent (a resumed step redoes its part)."""

    def __init__(
        self, stores: SubjectStores, data: SubjectData, plan: ErasurePlan, by: str
    ) -> None:
        self.stores = stores
        self.data = data
        self.plan = plan
        self.by = by

    def _held(self, store: str) -> list[Any]:
        return self.plan.held.get(store, [])

    def search_index(self, step: Step) -> None:
        ids = self.plan.search_ids
        index = self.stores.index
        if index is None:  # search is off: the database step queues the deletes
            step.finish({"queued": len(ids)}, ids, self._held("search_index"))
            return
        present = index.present(ids)
        index.delete(ids)
        if self.stores.appearance is not None:
            self.stores.appearance.delete([e.id for e in self.plan.events])
        left = index.present(ids)
        if left:
            raise RuntimeError(f"{len(left)} index entries still there after the delete")
        step.finish({"deleted": len(present)}, present, self._held("search_index"))

    def face_prints(self, step: Step) -> None:
        ids = [e.id for e in self.plan.events]
        deleted = self.data.delete_face_prints(ids)
        step.finish({"deleted": deleted, "events": len(ids)}, ids, self._held("face_prints"))

    def snapshots(self, step: Step) -> None:
        keys = [e.snapshot_key for e in self.plan.events if e.snapshot_key]
        deleted = sum(_delete(self.stores.objects, k) for k in keys)
        step.finish({"deleted": deleted}, keys, self._held("snapshots"))

    def clips(self, step: Step) -> None:
        repo = SegmentRepository(self.stores.engine)
        local = archived = rows = 0
        for seg in self.plan.segments:
            local += _delete(self.stores.objects, seg.object_key)
            if seg.archive_key:
                if self.stores.archive is None:
                    raise RuntimeError(
                        f"segment {seg.id} is archived but the archive store is not configured"
                    )
                archived += _delete(self.stores.archive, seg.archive_key)
            rows += int(repo.delete(seg.id))
        step.finish(
            {"segments": rows, "local_objects": local, "archive_objects": archived},
            [s.id for s in self.plan.segments],
            self._held("clips"),
        )

    def exports(self, step: Step) -> None:
        repo = ExportRepository(self.stores.engine)
        objects = rows = 0
        for exp in self.plan.exports:
            objects += _delete(self.stores.objects, exp.object_key)
            rows += int(repo.delete(exp.id))
        step.finish(
            {"exports": rows, "objects": objects},
            [x.id for x in self.plan.exports],
            self._held("exports"),
        )

    def annotations(self, step: Step) -> None:
        items = self.plan.items
        objects = sum(_delete(self.stores.objects, i.image_key) for i in items)
        rows = self.data.delete_annotation_items([i.id for i in items])
        step.finish(
            {"items": rows, "objects": objects}, [i.id for i in items], self._held("annotations")
        )

    def datasets(self, step: Step) -> None:
        if self.plan.datasets and self.stores.datasets is None:
            raise RuntimeError("dataset versions hold the subject but datasets are not configured")
        if self.plan.items and self.stores.datasets is None:
            raise RuntimeError("the subject has annotation items but datasets are not configured")
        removed = objects = replaced = 0
        ids: list[str] = []
        for (name, version), item_ids in sorted(self.plan.datasets.items()):
            assert self.stores.datasets is not None
            done = self.stores.datasets.erase(name, version, item_ids, self.by)
            removed += done.removed_items
            objects += done.deleted_objects
            if done.replaced_by is not None:
                replaced += 1
                ids.append(f"{name}/v{version} -> v{done.replaced_by}")
            else:
                ids.append(f"{name}/v{version} erased")
        step.finish(
            {"versions": len(self.plan.datasets), "items": removed, "objects": objects,
             "replaced": replaced},
            ids,
            self._held("datasets"),
        )  # fmt: skip

    def mlflow(self, step: Step) -> None:
        runs = [r for r in self.plan.runs if r.mlflow_run_id]
        if runs and self.stores.artifacts is None:
            raise RuntimeError(
                "training runs used the subject's frames but MLflow is not configured"
            )
        files = 0
        for run in runs:
            assert self.stores.artifacts is not None and run.mlflow_run_id is not None
            files += len(self.stores.artifacts.delete(run.mlflow_run_id))
        step.finish(
            {
                "runs": len(runs),
                "files": files,
                "runs_without_mlflow": len(self.plan.runs) - len(runs),
            },
            [r.id for r in runs],
        )

    def database(self, step: Step) -> None:
        alerts = self.data.delete_alerts(self.plan.alerts)
        detached = self.data.detach_events(self.plan.incidents_detached)
        incidents = self.data.delete_incidents(self.plan.incidents_deleted)
        events = self.data.delete_events([e.id for e in self.plan.events])
        step.finish(
            {"events": events, "alerts": alerts, "incidents_deleted": incidents,
             "incidents_changed": len(self.plan.incidents_detached), "members_removed": detached},
            [e.id for e in self.plan.events] + self.plan.incidents_deleted,
            self._held("database"),
        )  # fmt: skip


def _delete(store: ObjectStore, key: str) -> int:
    """Deletes ``key``; 1 if it was there."""
    try:
        if not store.exists(key):
            return 0
        store.delete(key)
    except ObjectNotFound:
        return 0
    return 1
