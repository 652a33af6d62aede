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
import logging
from collections.abc import Callable, Collection
from typing import Any

from sentinel.retention.holds import load_holds
from sentinel.retention.subject_archive import ArchiveWriter
from sentinel.retention.subject_erasure import Eraser
from sentinel.retention.subject_stores import (
    DatasetItems,
    RunArtifacts,
    SearchEntries,
    SubjectStores,
    SubjectTooLargeError,
    archive_key_of,
)
from sentinel.retention.subjects import (
    AlertRef,
    DatasetRef,
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
from sentinel.store.hold_repo import HoldRepository
from sentinel.store.incident_repo import IncidentRepository
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


class RequestBusy(RuntimeError):  # noqa: N818 - the conflict it reports
    """The request is running (or done): it cannot be run again now."""


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
        eraser = Eraser(self.stores, self.data, plan, rec.requested_by)
        for step in steps:
            if step.status == "done":
                continue
            run = getattr(eraser, step.store)
            if not self._step(rec, steps, step, functools.partial(run, step)):
                return

    # -- access ----------------------------------------------------------------------------

    def _access(self, rec: PrivacyRequestRecord, resolved: Resolved, steps: list[Step]) -> None:
        """Builds the zip; a step's counts are kept, but only the stored zip makes it done."""
        writer = ArchiveWriter(self.stores, self.data, resolved)
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
