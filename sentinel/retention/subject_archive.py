"""The zip of a data-subject access request (``ArchiveWriter``): the subject's rows as JSON,
snapshots, clip segments (archived ones read from the archive store), exports, search entries
and annotation frames, in memory and bounded by ``SubjectStores.max_archive_bytes``."""

from __future__ import annotations

import io
import json
import zipfile
from datetime import datetime
from typing import Any

from sentinel.retention.subject_stores import SubjectStores, SubjectTooLargeError
from sentinel.retention.subjects import Resolved, Step
from sentinel.store.objects import ObjectNotFound
from sentinel.store.subject_repo import PrivacyRequestRecord, SubjectData

__all__ = ["ArchiveWriter"]


class ArchiveWriter:
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
