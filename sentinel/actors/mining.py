"""Mining jobs on Ray: the scan and render steps as tasks over segments, the rest on an actor.

The logic is Ray-free in :mod:`sentinel.train.mine_job` and :mod:`sentinel.train.mine_service`;
here the chunks are spread over Ray tasks with fractional CPUs (each task builds its detector
once and scans a share of the chunks), a task that fails or whose worker dies counts its chunks
as skipped, and the detached ``MiningJobsActor`` runs the jobs and writes their statuses to
the database (``mining_jobs``); as it starts, it fails the jobs a dead predecessor left
unfinished. ``RayMiningService`` is the API's service: it finds (or starts) that actor and
reads the statuses from the database.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Collection, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import ray
import sqlalchemy as sa
from ray.exceptions import RayActorError, RayError

from sentinel.config import DetectorSettings, MiningSettings
from sentinel.domain.annotation import QueueCandidate
from sentinel.store.annotation_repo import AnnotationRepo
from sentinel.store.db import make_engine
from sentinel.store.s3 import ObjectStoreSettings, make_object_store
from sentinel.store.segment_repo import SegmentRepository
from sentinel.train.feedback import queued_hashes
from sentinel.train.mine_job import ChunkScan, RenderResult, ScanChunk, render_chunk, scan_chunk
from sentinel.train.mine_service import (
    DetectorSpec,
    MiningJob,
    MiningJobs,
    MiningRequest,
    StoreLoad,
    mining_params,
    run_job,
)
from sentinel.train.mining import MinedFrame

__all__ = ["MINING_JOBS_NAME", "MiningJobsActor", "RayMiningService", "ray_maps"]

logger = logging.getLogger(__name__)

MINING_JOBS_NAME = "sentinel-mining-jobs"


def _scan_many(
    chunks: Sequence[ScanChunk], load: StoreLoad, spec: DetectorSpec, sample_fps: float
) -> list[ChunkScan]:
    detect = spec.build()
    return [scan_chunk(c, load, detect, sample_fps=sample_fps) for c in chunks]


def _render_many(
    groups: Sequence[tuple[ScanChunk, list[MinedFrame]]],
    load: StoreLoad,
    prelabel_threshold: float,
    labels: frozenset[str] | None,
) -> list[RenderResult]:
    return [
        render_chunk(c, chosen, load, prelabel_threshold=prelabel_threshold, labels=labels)
        for c, chosen in groups
    ]


def _split(items: Sequence[Any], parts: int) -> list[list[Any]]:
    parts = max(1, min(parts, len(items)))
    return [list(items[i::parts]) for i in range(parts)]


class RayMaps:
    """The scan and render steps as Ray tasks (``tasks`` of them at most, each with
    ``num_cpus``)."""

    def __init__(
        self,
        load: StoreLoad,
        spec: DetectorSpec,
        mining: MiningSettings,
        labels: frozenset[str] | None,
        tasks: int,
    ) -> None:
        self.load, self.spec, self.mining, self.labels = load, spec, mining, labels
        self.tasks = max(1, tasks)
        opts = {"num_cpus": mining.task_num_cpus, "max_retries": 1}
        self._scan = ray.remote(_scan_many).options(**opts)
        self._render = ray.remote(_render_many).options(**opts)

    def using(self, spec: DetectorSpec) -> RayMaps:
        """These maps with another detector (a job scans with the champion of its start)."""
        return RayMaps(self.load, spec, self.mining, self.labels, self.tasks)

    def scan(self, chunks: Sequence[ScanChunk]) -> list[ChunkScan]:
        parts = _split(chunks, self.tasks)
        refs = [
            self._scan.remote(part, self.load, self.spec, self.mining.sample_fps) for part in parts
        ]
        out: list[ChunkScan] = []
        for part, ref in zip(parts, refs, strict=True):
            try:
                scans: list[ChunkScan] = ray.get(ref)
                out.extend(scans)
            except RayError as exc:  # a crashed decoder takes its worker: skip, count
                logger.warning("mining: a scan task failed: %s", exc)
                out.extend(ChunkScan(c, error=f"{c.location}: {type(exc).__name__}") for c in part)
        return out

    def render(self, groups: Sequence[tuple[ScanChunk, list[MinedFrame]]]) -> list[RenderResult]:
        parts = _split(groups, self.tasks)
        refs = [
            self._render.remote(part, self.load, self.mining.prelabel_threshold, self.labels)
            for part in parts
        ]
        out: list[RenderResult] = []
        for part, ref in zip(parts, refs, strict=True):
            try:
                rendered: list[RenderResult] = ray.get(ref)
                out.extend(rendered)
            except RayError as exc:
                logger.warning("mining: a render task failed: %s", exc)
                out.extend(
                    RenderResult(frames_skipped=len(chosen), error=f"{c.location}: {exc}")
                    for c, chosen in part
                )
        return out


def ray_maps(runtime: dict[str, Any], tasks: int = 2) -> RayMaps:
    """The Ray maps of the platform's settings (``runtime_of``)."""
    mining = MiningSettings(**runtime.get("train", {}).get("mining", {}))
    detector = DetectorSettings(**runtime["detector"])
    spec = DetectorSpec.of(detector, Path(runtime["detector_model"]), mining)
    load = StoreLoad(_objects(runtime), runtime["data_dir"])
    return RayMaps(load, spec, mining, mining_params(mining, detector).labels, tasks)


def _objects(runtime: dict[str, Any]) -> ObjectStoreSettings:
    objects = runtime["objects"]
    return objects if isinstance(objects, ObjectStoreSettings) else ObjectStoreSettings(**objects)


@ray.remote(num_cpus=0)
class MiningJobsActor:
    """Runs mining jobs (one at a time, in submission order) and stores their statuses.

    A detached, named singleton: as it starts, no other runs the database's jobs, so the
    queued or running ones it finds were left by a dead predecessor and are failed.
    """

    def __init__(self, runtime: dict[str, Any]) -> None:
        self.runtime = runtime
        self.engine = make_engine(runtime["db_url"])
        self.mining = MiningSettings(**runtime.get("train", {}).get("mining", {}))
        self.params = mining_params(self.mining, DetectorSettings(**runtime["detector"]))
        objects = make_object_store(_objects(runtime), Path(runtime["data_dir"]))
        self.queue = AnnotationRepo(self.engine, objects)
        self.segments = SegmentRepository(self.engine)
        self.maps = ray_maps(runtime, tasks=int(runtime.get("mining_tasks", 2)))
        self.store = MiningJobs(self.engine)
        self.store.recover()
        self.jobs: dict[str, MiningJob] = {}  # the jobs this actor runs, until they end
        self._lock = asyncio.Lock()
        self._tasks: set[asyncio.Task[None]] = set()

    async def ready(self) -> bool:
        """True once constructed (its predecessor's unfinished jobs failed)."""
        return True

    async def submit(self, request: dict[str, Any], created_by: str | None = None) -> str:
        job = MiningJob.of(MiningRequest(**request), created_by)
        await asyncio.to_thread(self.store.save, job)
        self.jobs[job.id] = job
        task = asyncio.create_task(self._run(job))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return job.id

    async def status(self, job_id: str) -> dict[str, Any] | None:
        job = self.jobs.get(job_id) or await asyncio.to_thread(self.store.get, job_id)
        return job.as_dict() if job is not None else None

    async def _run(self, job: MiningJob) -> None:
        try:
            await self._run_one(job)
        finally:
            self.jobs.pop(job.id, None)

    async def _run_one(self, job: MiningJob) -> None:
        async with self._lock:  # one job at a time: jobs share the cluster's CPUs anyway
            try:  # the champion when the job starts, not the model of the actor's start
                spec = await asyncio.to_thread(self.maps.spec.serving, self.engine)
            except Exception as exc:
                job.mark_failed(f"no model to mine with: {exc}", datetime.now(UTC))
                await asyncio.to_thread(self.store.save, job)
                return
            job.model_version = spec.version
            maps = self.maps.using(spec)
            await asyncio.to_thread(
                run_job,
                job,
                engine=self.engine,
                segments=self.segments,
                params=self.params,
                scan_map=maps.scan,
                render_map=maps.render,
                enqueue=self._enqueue,
                queued=lambda camera: queued_hashes(self.engine, camera),
                on_change=self.store.save,
            )

    def _enqueue(self, candidates: list[QueueCandidate]) -> list[str]:
        return self.queue.enqueue(candidates)


class RayMiningService:
    """The API's mining service: the detached jobs actor (started on first use) runs the jobs;
    their statuses are read from the database."""

    def __init__(self, runtime: dict[str, Any], engine: sa.Engine | None = None) -> None:
        self.runtime = runtime
        self.store = MiningJobs(engine if engine is not None else make_engine(runtime["db_url"]))

    def _actor(self) -> Any:
        return MiningJobsActor.options(  # type: ignore[attr-defined]
            name=MINING_JOBS_NAME,
            namespace=self.runtime["namespace"],
            lifetime="detached",
            get_if_exists=True,
        ).remote(self.runtime)

    async def submit(self, request: MiningRequest, created_by: str | None = None) -> str:
        body = {
            "camera_id": request.camera_id,
            "start": request.start,
            "end": request.end,
            "budget": request.budget,
        }
        job_id: str = await self._actor().submit.remote(body, created_by)
        return job_id

    async def _started(self) -> None:
        """Finds (or starts) the actor, so that a dead one's unfinished jobs are failed
        before they are read; the statuses are read from the database even if it cannot."""
        try:
            await self._actor().ready.remote()
        except RayActorError as exc:
            logger.warning("mining: the jobs actor is not answering: %s", exc)

    async def status(self, job_id: str) -> MiningJob | None:
        await self._started()
        return await asyncio.to_thread(self.store.get, job_id)

    async def jobs(self, *, limit: int, camera_ids: Collection[str] | None) -> list[MiningJob]:
        await self._started()
        return await asyncio.to_thread(self.store.list, limit=limit, camera_ids=camera_ids)
