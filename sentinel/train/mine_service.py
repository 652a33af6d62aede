"""Mining jobs: the request, the status, the service the API calls, and the job's run.

``run_job`` runs one job from the camera's recordings to the annotation queue; where its two
parallel steps run is injected (:data:`ScanMap`, :data:`RenderMap`): here, one chunk after
the other (:class:`LocalMiningService`, and deployments without a cluster), or as Ray tasks
(``sentinel.actors.mining``). Job statuses are kept in the database (:class:`MiningJobs`,
the ``mining_jobs`` table): the service writes each change of state, the API reads them back,
and a restarted service fails the jobs its dead predecessor left unfinished
(:data:`INTERRUPTED`).
"""

from __future__ import annotations

import asyncio
import builtins
import logging
import uuid
from collections import Counter
from collections.abc import Callable, Collection, Sequence
from dataclasses import asdict, dataclass, field, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal, Protocol

import sqlalchemy as sa

from sentinel.config import DetectorSettings, MiningSettings
from sentinel.domain.annotation import QueueCandidate
from sentinel.models.files import ModelFileError, verify_recorded_digest
from sentinel.models.yolo import YoloOnnx
from sentinel.store.mining_repo import MiningJobRecord, MiningJobRepository
from sentinel.store.model_repo import ModelServingRepository
from sentinel.store.objects import ObjectStore
from sentinel.store.s3 import ObjectStoreSettings, make_object_store
from sentinel.store.segment_repo import SegmentRepository
from sentinel.train.feedback import flagged_spans
from sentinel.train.mine_job import (
    ChunkScan,
    Detect,
    MiningOutcome,
    RenderResult,
    ScanChunk,
    choose,
    chunks_of,
    plan_chunks,
    render_chunk,
    scan_chunk,
    tally_renders,
    tally_scans,
)
from sentinel.train.mining import MinedFrame, MiningParams

__all__ = [
    "INTERRUPTED",
    "DetectorSpec",
    "JobState",
    "LocalMiningService",
    "MiningJob",
    "MiningJobs",
    "MiningRequest",
    "MiningService",
    "RenderMap",
    "ScanMap",
    "StoreLoad",
    "mining_params",
    "run_job",
]

logger = logging.getLogger(__name__)

JobState = Literal["queued", "running", "done", "failed"]
ScanMap = Callable[[Sequence[ScanChunk]], list[ChunkScan]]
RenderMap = Callable[[Sequence[tuple[ScanChunk, list[MinedFrame]]]], list[RenderResult]]
Enqueue = Callable[[list[QueueCandidate]], list[str]]
QueuedHashes = Callable[[str], list[int]]
OnChange = Callable[["MiningJob"], None]

INTERRUPTED = "interrupted: the mining service restarted"
"""The error of a job its service's process left queued or running (it died, or restarted)."""


@dataclass(frozen=True)
class MiningRequest:
    """Mine ``camera_id``'s recordings over ``[start, end]`` for up to ``budget`` frames."""

    camera_id: str
    start: datetime
    end: datetime
    budget: int


@dataclass
class MiningJob:
    """A job's status and counts (what ``GET /annotation/mine/{id}`` answers)."""

    id: str
    camera_id: str
    start: datetime
    end: datetime
    budget: int
    state: JobState = "queued"
    created_at: datetime = field(default_factory=lambda: datetime.now(UTC))
    finished_at: datetime | None = None
    chunks: int = 0
    chunks_skipped: int = 0
    frames_scanned: int = 0
    frames_skipped: int = 0
    chosen: int = 0
    enqueued: int = 0
    duplicates: int = 0  # chosen but already queued (the queue's own near-duplicate check)
    item_ids: list[str] = field(default_factory=list)
    reasons: dict[str, int] = field(default_factory=dict)
    errors: list[str] = field(default_factory=list)
    error: str | None = None
    model_version: int | None = None  # the registry version that scanned (None: no registry)
    started_at: datetime | None = None
    created_by: str | None = None  # the API's principal that submitted it, when known

    @classmethod
    def of(cls, request: MiningRequest, created_by: str | None = None) -> MiningJob:
        return cls(
            str(uuid.uuid4()),
            request.camera_id,
            request.start,
            request.end,
            request.budget,
            created_by=created_by,
        )

    @property
    def finished(self) -> bool:
        return self.state in ("done", "failed")

    def mark_running(self, now: datetime) -> None:
        """queued -> running.

        Raises:
            ValueError: The job is not queued.
        """
        if self.state != "queued":
            raise ValueError(f"only a queued job starts, but job {self.id} is {self.state}")
        self.state, self.started_at = "running", now

    def mark_failed(self, error: str, now: datetime) -> None:
        """A queued or running job -> failed, saying why (a finished one stays as it is)."""
        if not self.finished:
            self.state, self.error, self.finished_at = "failed", error[:1000], now

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> MiningJob:
        return cls(**data)


class MiningJobs:
    """The jobs' statuses in the database (``mining_jobs``), for the service that runs them
    and for the API that reads them."""

    def __init__(self, engine: sa.Engine) -> None:
        self.repo = MiningJobRepository(engine)

    def save(self, job: MiningJob) -> None:
        self.repo.save(MiningJobRecord(**job.as_dict()))

    def get(self, job_id: str) -> MiningJob | None:
        record = self.repo.get(job_id)
        return None if record is None else MiningJob.from_dict(asdict(record))

    def list(
        self, *, limit: int = 50, camera_ids: Collection[str] | None = None
    ) -> builtins.list[MiningJob]:
        """The newest first, of ``camera_ids`` only (None: every camera)."""
        records = self.repo.list(limit=limit, camera_ids=camera_ids)
        return [MiningJob.from_dict(asdict(r)) for r in records]

    def recover(self) -> builtins.list[str]:
        """Fails the jobs a dead service left queued or running (:data:`INTERRUPTED`): their
        runner is gone, and re-running them unasked could crash the new one the same way.
        Call it once, as the (only) service of the database starts."""
        ids = self.repo.fail_unfinished(INTERRUPTED)
        if ids:
            logger.warning("mining: %d interrupted job(s) marked failed: %s", len(ids), ids)
        return ids


class MiningService(Protocol):
    """Starts mining jobs and reports on them (the API's view; Ray-backed in the platform)."""

    async def submit(self, request: MiningRequest, created_by: str | None = None) -> str:
        """Starts a job; returns its id at once."""

    async def status(self, job_id: str) -> MiningJob | None:
        """The job, or None if there is none by that id."""

    async def jobs(self, *, limit: int, camera_ids: Collection[str] | None) -> list[MiningJob]:
        """The newest ``limit`` jobs first, of ``camera_ids`` only (None: every camera)."""


@dataclass(frozen=True)
class DetectorSpec:
    """How a scan task builds its detector (picklable: it travels to Ray workers)."""

    model_path: str
    labels: tuple[str, ...] | None
    input_size: int
    conf_threshold: float
    iou_threshold: float
    threads: int
    sha256: str | None = None  # a registry version's registered digest, checked on build
    version: int | None = None  # that registry version

    @classmethod
    def of(
        cls, detector: DetectorSettings, model_path: Path, mining: MiningSettings
    ) -> DetectorSpec:
        return cls(
            str(model_path),
            tuple(detector.labels) if detector.labels else None,
            detector.input_size,
            mining.low_threshold,
            detector.iou_threshold,
            mining.threads,
        )

    def serving(self, engine: sa.Engine) -> DetectorSpec:
        """This spec on the model the cameras' detectors serve: the registry's champion (its
        file, labels, input size and registered sha256) when the serving state records one,
        else this spec unchanged (the registry is off: ``detector.model_path``). Mining with
        the base model after a promotion would queue the frames the champion already gets
        right."""
        stored = ModelServingRepository(engine).get()
        if stored is None:
            return self
        champion: dict[str, Any] = stored.state["champion"]
        return replace(
            self,
            model_path=str(champion["path"]),
            labels=tuple(champion.get("labels") or ()) or self.labels,
            input_size=int(champion.get("input_size") or self.input_size),
            sha256=str(champion["sha256"]),
            version=int(champion["version"]),
        )

    def build(self) -> Detect:
        """The detector; refused (``ModelFileError``) unless the file's sha256 is the recorded
        one and, for a registry version, the registered one."""
        path = Path(self.model_path)
        if self.sha256 is not None:
            if not path.is_file():
                raise ModelFileError(f"registry model {path} does not exist on this node")
            digest = verify_recorded_digest(path)
            if digest != self.sha256:
                raise ModelFileError(
                    f"refusing {path}: its sha256 is {digest}, the registry records {self.sha256}"
                )
        model = YoloOnnx(
            path,
            labels=self.labels,
            input_size=self.input_size,
            threads=self.threads,
            conf_threshold=self.conf_threshold,
            iou_threshold=self.iou_threshold,
            verify=self.sha256 is None,  # a registry version was checked above
        )
        return model.detect


@dataclass(frozen=True)
class StoreLoad:
    """A chunk's video: a segment's bytes from the object store (built on first use, in the
    process that loads), or a plain file's path."""

    objects: ObjectStoreSettings
    data_dir: str

    def __call__(self, chunk: ScanChunk) -> Path | bytes:
        if chunk.source == "video":
            return Path(chunk.location)
        return self.store().get(chunk.location)

    def store(self) -> ObjectStore:
        return make_object_store(self.objects, Path(self.data_dir))


def mining_params(mining: MiningSettings, detector: DetectorSettings) -> MiningParams:
    return MiningParams(
        threshold=mining.threshold or detector.conf_threshold,
        band=mining.near_band,
        labels=frozenset(mining.labels) if mining.labels is not None else None,
        duplicate_bits=mining.duplicate_bits,
        calibration_share=mining.calibration_share,
        seed=mining.seed,
    )


def run_job(
    job: MiningJob,
    *,
    engine: sa.Engine,
    segments: SegmentRepository,
    params: MiningParams,
    scan_map: ScanMap,
    render_map: RenderMap,
    enqueue: Enqueue,
    queued: QueuedHashes,
    on_change: OnChange = lambda job: None,
) -> MiningJob:
    """Runs ``job`` to the end, updating it as it goes; a failure is recorded in it (state
    "failed", ``error``), never raised. ``on_change`` gets the job as it starts, once its
    chunks are scanned (the counts so far) and as it ends (it stores the job)."""
    if job.state == "queued":
        job.mark_running(datetime.now(UTC))
    try:
        on_change(job)
        chunks = plan_chunks(
            segments.range(job.camera_id, job.start, job.end), job.camera_id, job.start, job.end
        )
        outcome = MiningOutcome()
        scans = scan_map(chunks)
        tally_scans(outcome, scans)
        _progress(job, outcome)
        on_change(job)
        spans = flagged_spans(engine, job.camera_id, job.start, job.end)
        outcome.chosen = choose(
            scans, job.budget, params, spans=spans, queued=queued(job.camera_id)
        )
        by_key = {c.key: c for c in chunks}
        groups = [(by_key[k], g) for k, g in chunks_of(outcome.chosen).items()]
        tally_renders(outcome, render_map(groups))
        ids = enqueue(outcome.candidates) if outcome.candidates else []
        _finish(job, outcome, ids)
    except Exception as exc:
        logger.exception("mining job %s failed", job.id)
        job.state, job.error = "failed", f"{type(exc).__name__}: {exc}"[:1000]
    job.finished_at = datetime.now(UTC)
    try:
        on_change(job)
    except Exception:  # the database is away: nothing left to tell; the next start fails it
        logger.exception("mining job %s: its final state could not be stored", job.id)
    return job


def _progress(job: MiningJob, outcome: MiningOutcome) -> None:
    job.chunks, job.chunks_skipped = outcome.chunks, outcome.chunks_skipped
    job.frames_scanned, job.frames_skipped = outcome.frames_scanned, outcome.frames_skipped


def _finish(job: MiningJob, outcome: MiningOutcome, ids: list[str]) -> None:
    _progress(job, outcome)
    job.chosen, job.enqueued = len(outcome.chosen), len(ids)
    job.duplicates = len(outcome.candidates) - len(ids)
    job.item_ids = ids
    job.reasons = dict(Counter(r for m in outcome.chosen for r in m.reasons))
    job.errors = outcome.errors[:20]
    job.state = "done"


class LocalMiningService:
    """Runs jobs on this process (a worker thread each), the steps one after the other; their
    statuses are in the database. On construction it fails the jobs left unfinished there (by
    a process that died): one mining service per database."""

    def __init__(
        self,
        *,
        engine: sa.Engine,
        segments: SegmentRepository,
        load: Callable[[ScanChunk], Path | bytes],
        detector: DetectorSpec,
        params: MiningParams,
        mining: MiningSettings,
        enqueue: Enqueue,
        queued: QueuedHashes,
    ) -> None:
        self.engine = engine
        self.segments = segments
        self.load = load
        self.detector = detector
        self.params = params
        self.mining = mining
        self.enqueue = enqueue
        self.queued = queued
        self.store = MiningJobs(engine)
        self.store.recover()
        self._tasks: set[asyncio.Task[MiningJob]] = set()

    async def submit(self, request: MiningRequest, created_by: str | None = None) -> str:
        job = MiningJob.of(request, created_by)
        await asyncio.to_thread(self.store.save, job)
        task = asyncio.create_task(asyncio.to_thread(self.run, job))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return job.id

    async def status(self, job_id: str) -> MiningJob | None:
        return await asyncio.to_thread(self.store.get, job_id)

    async def jobs(self, *, limit: int, camera_ids: Collection[str] | None) -> list[MiningJob]:
        return await asyncio.to_thread(self.store.list, limit=limit, camera_ids=camera_ids)

    def run(self, job: MiningJob) -> MiningJob:
        detect: list[Detect] = []
        try:
            spec = self.detector.serving(self.engine)  # the champion when the job starts
        except Exception as exc:  # an unreadable serving state: the job fails, saying why
            job.mark_failed(f"no model to mine with: {exc}", datetime.now(UTC))
            self.store.save(job)
            return job
        job.model_version = spec.version

        def scan(chunks: Sequence[ScanChunk]) -> list[ChunkScan]:
            if not detect and chunks:
                detect.append(spec.build())
            return [
                scan_chunk(c, self.load, detect[0], sample_fps=self.mining.sample_fps)
                for c in chunks
            ]

        def render(groups: Sequence[tuple[ScanChunk, list[MinedFrame]]]) -> list[RenderResult]:
            return [
                render_chunk(
                    chunk,
                    chosen,
                    self.load,
                    prelabel_threshold=self.mining.prelabel_threshold,
                    labels=self.params.labels,
                )
                for chunk, chosen in groups
            ]

        return run_job(
            job,
            engine=self.engine,
            segments=self.segments,
            params=self.params,
            scan_map=scan,
            render_map=render,
            enqueue=self.enqueue,
            queued=self.queued,
            on_change=self.store.save,
        )
