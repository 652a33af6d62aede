"""The store steps of a data-subject erasure (``Eraser``): each erases its store's part of
an :class:`~sentinel.retention.subjects.ErasurePlan` and records what it did and what holds
kept; each is idempotent, so a resumed step redoes its part."""

from __future__ import annotations

from typing import Any

from sentinel.retention.subject_stores import SubjectStores, delete_object
from sentinel.retention.subjects import ErasurePlan, Step
from sentinel.store.export_repo import ExportRepository
from sentinel.store.segment_repo import SegmentRepository
from sentinel.store.subject_repo import SubjectData

__all__ = ["Eraser"]


class Eraser:
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
        deleted = sum(delete_object(self.stores.objects, k) for k in keys)
        step.finish({"deleted": deleted}, keys, self._held("snapshots"))

    def clips(self, step: Step) -> None:
        repo = SegmentRepository(self.stores.engine)
        local = archived = rows = 0
        for seg in self.plan.segments:
            local += delete_object(self.stores.objects, seg.object_key)
            if seg.archive_key:
                if self.stores.archive is None:
                    raise RuntimeError(
                        f"segment {seg.id} is archived but the archive store is not configured"
                    )
                archived += delete_object(self.stores.archive, seg.archive_key)
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
            objects += delete_object(self.stores.objects, exp.object_key)
            rows += int(repo.delete(exp.id))
        step.finish(
            {"exports": rows, "objects": objects},
            [x.id for x in self.plan.exports],
            self._held("exports"),
        )

    def annotations(self, step: Step) -> None:
        items = self.plan.items
        objects = sum(delete_object(self.stores.objects, i.image_key) for i in items)
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
