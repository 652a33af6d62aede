"""CameraActor: one Ray actor per camera, a thin adapter around :class:`CameraRunner`."""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import ray
from numpy.typing import NDArray
from ray import serve
from sqlalchemy.engine import Engine

from sentinel.actors.incidents import IncidentKeeper
from sentinel.actors.recording import CameraRecording
from sentinel.actors.rule_alerts import RuleAlerts
from sentinel.actors.rule_engine import CameraRules
from sentinel.actors.runner import CameraRunner
from sentinel.actors.sink import StoreSink
from sentinel.config import AgentSettings, CameraConfig, DetectorSettings
from sentinel.domain.boxes import ModelInput, letterbox_u8
from sentinel.domain.stats import CameraState
from sentinel.domain.types import DetectResult, EventState
from sentinel.retention.blurring import BlurredSnapshotWriter
from sentinel.store.alert_repo import AgentQueue, AlertRepository
from sentinel.store.db import make_engine
from sentinel.store.incident_repo import IncidentRepository
from sentinel.store.journal import EventJournal
from sentinel.store.model_repo import ModelServingRepository
from sentinel.store.objects import ObjectStore
from sentinel.store.repo import EventRepository
from sentinel.store.rule_repo import RuleRepository
from sentinel.store.s3 import make_object_store
from sentinel.store.segment_repo import SegmentInfo, SegmentRepository
from sentinel.train.canary import ModelTally, serves_challenger
from sentinel.train.serving import route_of
from sentinel.video.recorder import cleanup_orphans
from sentinel.video.segments import finalize_segment, reconcile

logger = logging.getLogger(__name__)

CANARY_DEPLOYMENT = "DetectorCanary"


def camera_actor_name(camera_id: str) -> str:
    return f"sentinel-camera-{camera_id}"


def journal_path(data_dir: Path, camera_id: str) -> Path:
    """Where a camera's event journal lives (camera ids are safe file names)."""
    return data_dir / "journal" / f"{camera_id}.jsonl"


def _stored_route(engine: Engine) -> dict[str, Any] | None:
    """The model route in the store (None: no serving state yet, or the store is down)."""
    try:
        stored = ModelServingRepository(engine).get()
    except Exception as exc:  # the champion serves; the controller pushes the route later
        logger.warning("model route not read: %s", exc)
        return None
    return None if stored is None else route_of(stored.state)


def camera_sink(
    config: CameraConfig, epoch: str, engine: Engine, objects: ObjectStore, agent: AgentSettings
) -> tuple[StoreSink, IncidentKeeper]:
    """A camera's sink: events, then incidents, whose changes raise the rule alerts.

    Alerts are raised per incident (a camera's overlapping events), not per event; an incident
    still open from a previous run is adopted like its events. With ``privacy.blur_faces``,
    snapshots are blurred and written by a ``BlurredSnapshotWriter`` thread.
    """
    events = EventRepository(engine)
    rules = RuleAlerts(
        config.id,
        config.alerts,
        AlertRepository(engine),
        AgentQueue(engine),
        agent_enabled=agent.enabled,
        timezone=agent.timezone,
        rejudge_interval_s=agent.rejudge_interval_s,
        camera_name=config.name,
    )
    incidents = IncidentKeeper(
        config.id,
        epoch,
        config.incidents.incident_config(),
        IncidentRepository(engine),
        events,
        on_incident=rules.on_incident,
    )
    # A camera that blurs faces hands its snapshots to a writer thread: face detection costs
    # hundreds of ms per frame and must not hold up the loop (sentinel.retention.blurring).
    blurred = BlurredSnapshotWriter(objects, events) if config.privacy.blur_faces else None
    sink = StoreSink(config.id, events, objects, incidents=incidents, snapshots=blurred)
    return sink, incidents


@ray.remote(num_cpus=0, max_restarts=0)
class CameraActor:
    """Decodes one camera and turns its frames into events. Started by the supervisor."""

    def __init__(self, camera: dict[str, Any], runtime: dict[str, Any]) -> None:
        self.config = CameraConfig(**camera)
        engine = make_engine(runtime["db_url"])
        self.events = EventRepository(engine)
        objects = make_object_store(runtime["objects"], Path(runtime["data_dir"]))
        self.handle = (
            serve.get_deployment_handle("Detector", app_name=runtime["app_name"])
            if self.config.detect
            else None
        )
        self.input_size = int(runtime.get("detector_input_size", DetectorSettings().input_size))
        # The model route (champion, or a canary for some cameras / frames), pushed by the model
        # controller; read from the store at start so a restarted camera keeps the canary.
        self.canary_app = f"{runtime['app_name']}{runtime.get('canary_app_suffix', '-canary')}"
        self.model_route = _stored_route(engine)
        self.tally = ModelTally()
        self.canary_fallbacks = 0
        self._frame_no = 0
        self._canary: Any | None = None
        # A fresh epoch per actor run keeps track ids of different runs apart; events still
        # open from a previous run are adopted instead of duplicated (see FramePipeline.adopt).
        agent = AgentSettings(**runtime["agent"])
        recording = self._recording(engine, objects, runtime)
        epoch = f"{datetime.now(UTC):%Y%m%dT%H%M%S}-{uuid.uuid4().hex[:8]}"
        sink, incidents = camera_sink(self.config, epoch, engine, objects, agent)
        self.sink = sink
        self.runner = CameraRunner(
            self.config,
            detect=self._detect if self.handle is not None else None,
            sink=sink,
            epoch=epoch,
            open_events=self._open_events,
            recording=recording,
            # Changes the database refuses wait here; the runner replays them on recovery,
            # and a restarted actor replays what a crashed one left.
            journal=EventJournal(
                journal_path(Path(runtime["data_dir"]), self.config.id),
                max_bytes=int(runtime["event_journal_bytes"]),
            ),
            incidents=incidents,
            detect_inputs=self._detect_inputs if self.handle is not None else None,
            detector_input_size=self.input_size,
        )
        # The operators' rules, reloaded while running when they (or the arming mode) change.
        self.runner.rules = CameraRules(
            self.config.id,
            self.runner.stats,
            RuleRepository(engine),
            AlertRepository(engine),
            AgentQueue(engine),
            agent_enabled=agent.enabled,
            incident_of=incidents.incident_of,
        )
        self.task: asyncio.Task[CameraState] | None = None
        self.crashed = False
        context = ray.get_runtime_context()
        self.node = {
            "node_id": context.get_node_id(),
            "ip": ray.util.get_node_ip_address(),  # type: ignore[no-untyped-call]
            "labels": {k: str(v) for k, v in (context.get_node_labels() or {}).items()},
        }

    def _recording(
        self, engine: Any, objects: ObjectStore, runtime: dict[str, Any]
    ) -> CameraRecording | None:
        """The camera's recorder, after reconciling what a crash may have left behind."""
        if self.config.record.mode == "off":
            return None
        segments = SegmentRepository(engine)
        temp = Path(runtime["data_dir"]) / "tmp" / "recordings" / self.config.id
        temp.mkdir(parents=True, exist_ok=True)
        removed = cleanup_orphans(temp)  # segments a crash cut off: never indexed, never play
        report = reconcile(objects, segments, self.config.id)
        if removed or report.rows_deleted or report.objects_deleted:
            logger.warning(
                "camera %s: removed %d partial segment(s), %s", self.config.id, len(removed), report
            )

        def store_segment(info: SegmentInfo, kind: str) -> None:
            finalize_segment(
                info, camera_id=self.config.id, kind=kind, store=objects, repo=segments
            )

        return CameraRecording(
            self.config.record,
            directory=temp,
            on_segment=store_segment,
            clock=lambda: self.runner.wall_now or datetime.now(UTC),
        )

    async def _detect(self, rgb: NDArray[np.uint8]) -> DetectResult:
        # Letterboxed here, on the camera's core: the replica only stacks and runs the model.
        prepared = letterbox_u8(rgb, self.input_size)
        return (await self._detect_inputs([prepared]))[0]

    async def _detect_inputs(self, inputs: Sequence[ModelInput]) -> list[DetectResult]:
        """One frame's inputs to the champion, or to the canary when the route says so; a
        canary that fails (being removed, say) hands the frame to the champion."""
        assert self.handle is not None
        self._frame_no += 1
        to_canary = serves_challenger(self.model_route, self.config.id, self._frame_no)
        started = time.perf_counter()
        results: list[DetectResult]
        if to_canary:
            if self._canary is None:
                self._canary = serve.get_deployment_handle(
                    CANARY_DEPLOYMENT, app_name=self.canary_app
                )
            try:
                results = await self._canary.detect_inputs.remote(list(inputs), self.config.id)
            except Exception as exc:
                self.canary_fallbacks += 1
                self._canary = None  # a redeployed canary gets a fresh handle
                logger.warning("camera %s: canary failed, champion serves: %s", self.config.id, exc)
                to_canary = False
        if not to_canary:
            results = await self.handle.detect_inputs.remote(list(inputs), self.config.id)
        latency_ms = (time.perf_counter() - started) * 1000.0
        found = sum(len(r.detections) for r in results)
        self.tally.observe(results[0].model_version if results else None, found, latency_ms)
        return results

    async def set_model_route(self, route: dict[str, Any]) -> bool:
        """Takes the model controller's route (at once: the next frame follows it)."""
        current = self.model_route or {}
        if int(route.get("revision", 0)) < int(current.get("revision", 0)):
            return True  # an older push arriving late
        if route.get("canary") != current.get("canary"):
            self.tally.reset()  # figures cover one canary period
        self.model_route = route
        return True

    async def model_tally(self) -> dict[str, Any]:
        tally = self.tally.to_dict()
        return tally

    def _model_status(self) -> dict[str, Any]:
        route = self.model_route or {}
        return {
            "route_revision": route.get("revision"),
            "canary": route.get("canary"),
            "tally": self.tally.to_dict(),
            "canary_fallbacks": self.canary_fallbacks,
        }

    def _open_events(self) -> list[EventState]:
        return [e.to_state() for e in self.events.open_events(self.config.id)]

    async def start(self) -> None:
        """Starts the camera loop (idempotent)."""
        if self.task is None:
            self.task = asyncio.get_running_loop().create_task(self.runner.run())
            self.task.add_done_callback(self._on_done)

    def _on_done(self, task: asyncio.Task[CameraState]) -> None:
        if not task.cancelled() and task.exception() is not None:
            exc = task.exception()
            logger.error("camera %s loop crashed: %r", self.config.id, exc)
            self.runner.stats.state = CameraState.FAILED
            self.runner.stats.last_error = f"camera loop crashed: {exc!r}"[:500]
            self.crashed = True  # the supervisor restarts a crashed camera like a dead actor

    async def status(self) -> dict[str, Any]:
        stats = self.runner.stats.to_dict()
        if self.runner.recording is not None:
            stats["recording"] = self.runner.recording.status()
        if self.sink.snapshots is not None:
            stats["blurred_snapshots"] = self.sink.snapshots.stats.as_dict()
        return {**stats, "crashed": self.crashed, "node": self.node, "models": self._model_status()}

    async def camera_config(self) -> dict[str, Any]:
        return self.config.model_dump(mode="json")

    async def latest_jpeg(self) -> bytes | None:
        return await asyncio.to_thread(self.runner.latest_jpeg)

    async def stop(self, timeout_s: float = 10.0) -> dict[str, Any]:
        """Stops reading, closes open events, and returns the final status."""
        self.runner.stop()
        if self.task is not None:
            try:
                await asyncio.wait_for(asyncio.shield(self.task), timeout_s)
            except TimeoutError:
                logger.warning("camera %s did not stop within %.1fs", self.config.id, timeout_s)
        if self.sink.snapshots is not None:  # the last events' blurred snapshots
            await asyncio.to_thread(self.sink.snapshots.close, timeout_s)
        return self.runner.stats.to_dict()
