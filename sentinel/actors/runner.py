"""One camera's loop, without Ray: decode → sample → motion gate → detect → track → events.

The CameraActor is a thin Ray adapter around :class:`CameraRunner`; the runner takes its
detector and event sink as plain callables, so tests drive it with a real video and a fake
detector, no cluster needed.
"""

from __future__ import annotations

import asyncio
import logging
import queue
import threading
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Protocol

import av
import numpy as np
from numpy.typing import NDArray

from sentinel.actors.recording import CameraRecording
from sentinel.actors.rule_engine import CameraRules
from sentinel.config import CameraConfig
from sentinel.domain.boxes import ModelInput, letterbox_u8
from sentinel.domain.pipeline import FramePipeline
from sentinel.domain.regions import RegionPlan, RegionPlanner, crops, merge_detections
from sentinel.domain.render import Overlay, encode_jpeg
from sentinel.domain.sources import SourceKind, redact_source
from sentinel.domain.stats import CameraState, CameraStats
from sentinel.domain.types import DetectResult, EventChange, EventChangeKind, EventState
from sentinel.store.journal import EventJournal
from sentinel.video.sampling import FrameSampler
from sentinel.video.source import (
    Backoff,
    SourceError,
    VideoSource,
    to_gray_small,
    to_rgb,
)

logger = logging.getLogger(__name__)

DetectFn = Callable[[NDArray[np.uint8]], Awaitable[DetectResult]]
# Prepared inputs (letterboxed region crops) → one result per input, in its crop's pixels.
DetectInputsFn = Callable[[Sequence[ModelInput]], Awaitable[list[DetectResult]]]
_QUEUE_POLL_S = 0.25
_MAX_PENDING_CHANGES = 10_000  # in memory, only when the runner has no journal
_REPLAY_BATCH = 500  # journalled changes per sink call on recovery
STORE_RETRY_S = 1.0


class EventSink(Protocol):
    """Persists event changes (and their snapshots); must be idempotent."""

    def apply(self, changes: Sequence[EventChange], rgb: NDArray[np.uint8] | None) -> None: ...


class IncidentClock(Protocol):
    """Lets time close or split incidents between event changes (an ``IncidentKeeper``)."""

    def due(self, wall: datetime) -> bool: ...

    def tick(self, wall: datetime) -> None: ...

    def close_all(self, wall: datetime) -> None: ...


@dataclass(slots=True)
class _Sampled:
    """A sampled frame; its RGB array is made only when something needs it (the detector,
    a snapshot, the latest-frame preview), since the conversion dominates ingest CPU."""

    ts: float
    wall: datetime
    frame: av.VideoFrame
    gray: NDArray[np.uint8]
    decoded_at: float
    _rgb: NDArray[np.uint8] | None = None

    @property
    def rgb(self) -> NDArray[np.uint8]:
        if self._rgb is None:
            self._rgb = to_rgb(self.frame)
        return self._rgb


@dataclass(slots=True)
class _InFlight:
    """A sampled frame on its way through the detector (``detection`` None: not sent)."""

    item: _Sampled
    detection: asyncio.Future[DetectResult] | None
    sent_at: float

    def cancel(self) -> None:
        if self.detection is not None:
            self.detection.cancel()


def stamp_model(changes: Sequence[EventChange], version: int) -> None:
    """Records on each event opened in this frame the model version that detected it."""
    for change in changes:
        if change.kind is EventChangeKind.OPENED and change.event.model_version is None:
            change.event.model_version = version


class _EndOfStream:
    """Put on the queue by the reader when the source ends (or fails: ``error``)."""

    def __init__(self, error: BaseException | None = None) -> None:
        self.error = error


class CameraRunner:
    """Runs one camera until it finishes, fails for good, or is stopped.

    Event changes the store refuses are kept, not lost: with a ``journal`` each one is
    appended to it at once (so a crash of the actor loses none either) and the journal is
    replayed, in order, before anything newer once the store answers again, and when a runner
    starts over a journal a crashed one left. Without a journal they wait in memory, up to
    ``max_pending_changes``. Past the journal's disk budget (or the memory cap) changes are
    dropped, and every one is counted in ``events_dropped``. While the store is down it is
    tried again at most every ``store_retry_s`` seconds, not on every frame.
    """

    def __init__(
        self,
        camera: CameraConfig,
        *,
        detect: DetectFn | None,
        sink: EventSink,
        epoch: str,
        open_events: Callable[[], Sequence[EventState]] | None = None,
        source_factory: Callable[..., VideoSource] = VideoSource,
        backoff: Backoff | None = None,
        recording: CameraRecording | None = None,
        journal: EventJournal | None = None,
        store_retry_s: float = STORE_RETRY_S,
        max_pending_changes: int = _MAX_PENDING_CHANGES,
        incidents: IncidentClock | None = None,
        rules: CameraRules | None = None,
        detect_inputs: DetectInputsFn | None = None,
        detector_input_size: int = 640,
    ) -> None:
        self.camera = camera
        self.incidents = incidents
        self.rules = rules
        self.detect = detect if camera.detect else None
        # Motion regions need a detector that takes several crops in one call.
        self.detect_inputs = detect_inputs if self.detect is not None else None
        self.regions = (
            RegionPlanner(camera.regions.region_config(detector_input_size))
            if self.detect_inputs is not None and camera.regions.enabled
            else None
        )
        self.sink = sink
        self.pipeline = FramePipeline(camera.id, epoch, camera.pipeline_config())
        self.open_events = open_events
        self.source_factory = source_factory
        self.backoff = backoff or Backoff()
        self.stats = CameraStats(camera_id=camera.id, source=redact_source(camera.source))
        self.kind = camera.kind
        self._stop = threading.Event()
        self._pending: list[EventChange] = []  # refused changes, when there is no journal
        self.journal = journal
        self.store_retry_s = store_retry_s
        self.max_pending_changes = max_pending_changes
        self._retry_at = 0.0  # monotonic time before which the store is not tried again
        self._latest: tuple[_Sampled, list[Overlay]] | None = None
        self._reader_stop = False
        self.recording = recording
        # Wall time of the newest decoded frame: recordings line up with events by it.
        self.wall_now: datetime | None = None

    # -- control --------------------------------------------------------------------------

    def stop(self) -> None:
        self._stop.set()

    @property
    def stopping(self) -> bool:
        return self._stop.is_set()

    def latest_jpeg(self) -> bytes | None:
        """The newest analysed frame with its tracked boxes drawn, or None before the first."""
        if self._latest is None:
            return None
        item, overlays = self._latest
        return encode_jpeg(item.rgb, overlays)

    # -- main loop ------------------------------------------------------------------------

    async def run(self) -> CameraState:
        """Runs until done; returns the final state (finished, failed or stopped)."""
        if self.has_backlog:  # a journal a crashed runner left: store it before anything new
            await self._persist([], None, force=True)
        if self.open_events is not None:
            adopted = await asyncio.to_thread(self.open_events)
            self.pipeline.adopt(adopted, datetime.now(UTC))
        attempts = 0
        finished = False
        while not self.stopping:
            try:
                ended = await self._stream_once()
            except SourceError as exc:
                self.stats.last_error = str(exc)
                logger.warning("camera %s: %s", self.camera.id, exc)
                if not exc.retryable:
                    self.stats.state = CameraState.FAILED
                    break
                attempts += 1
                limit = self.camera.max_reconnect_attempts
                if limit and attempts >= limit:
                    self.stats.state = CameraState.FAILED
                    self.stats.last_error = f"gave up after {attempts} attempts: {exc}"
                    break
                self.stats.state = CameraState.RECONNECTING
                self.stats.counters.reconnects += 1
                await self._sleep(self.backoff.next())
                continue
            if ended:
                finished = True
                break
            attempts = 0
        # The final state is published only once the events are closed: whoever sees
        # "finished" (an operator, a test) finds every event of the clip ended.
        await self._close_events()
        if finished:
            self.stats.state = CameraState.FINISHED
        if self.stopping and self.stats.state not in (CameraState.FAILED, CameraState.FINISHED):
            self.stats.state = CameraState.STOPPED
        return self.stats.state

    async def _sleep(self, seconds: float) -> None:
        deadline = time.monotonic() + seconds
        # The stop flag is a threading.Event shared with the reader thread, hence the polling.
        while not self.stopping and time.monotonic() < deadline:  # noqa: ASYNC110
            await asyncio.sleep(min(0.2, deadline - time.monotonic()))

    async def _stream_once(self) -> bool:
        """Reads the source until it ends; True when a finite file finished normally."""
        finite = self.kind is SourceKind.FILE and not self.camera.realtime
        # Small either way: a file blocks the reader (back-pressure), a live source drops frames;
        # keeping the reader near the analysis also keeps recording in step with events.
        frames: queue.Queue[_Sampled | _EndOfStream] = queue.Queue(maxsize=4 if finite else 2)
        extra = {"on_packet": self.recording} if self.recording is not None else {}
        source = self.source_factory(self.camera.source, realtime=self.camera.realtime, **extra)
        info = await asyncio.to_thread(source.open)
        self.stats.codec, self.stats.width, self.stats.height = info.codec, info.width, info.height
        self.stats.fps = info.fps
        self._reader_stop = False
        reader = threading.Thread(
            target=self._read,
            args=(source, frames, finite),
            name=f"camera-{self.camera.id}-reader",
            daemon=True,
        )
        reader.start()
        # One frame ahead: the next frame's detection is in flight while this one is tracked
        # and persisted, so the detector always has this camera's next frame queued and
        # batches fill across cameras (one request at a time per camera lets two cameras
        # alternate batch for batch once tracking takes longer than the batch wait).
        ahead: _InFlight | None = None
        try:
            while True:
                try:
                    item = await asyncio.to_thread(frames.get, True, _QUEUE_POLL_S)
                except queue.Empty:
                    if ahead is not None:  # nothing newer: finish it rather than hold it
                        current, ahead = ahead, None
                        await self._finish(current)
                    if self.stopping:
                        return False
                    continue
                if isinstance(item, _EndOfStream):
                    if ahead is not None:
                        current, ahead = ahead, None
                        await self._finish(current)
                    if item.error is not None:
                        raise item.error
                    if finite:
                        return True
                    # A live stream (or a looping file) must not end: reconnect.
                    raise SourceError(f"stream {self.stats.source} ended", retryable=True)
                started = self._begin(item)
                await asyncio.sleep(0)  # let the detection go out before this frame's tracking
                if ahead is not None:
                    current, ahead = ahead, None
                    try:
                        await self._finish(current)
                    except BaseException:
                        started.cancel()
                        raise
                ahead = started
        finally:
            if ahead is not None:
                ahead.cancel()
            self._stop_reader(reader, source)

    def _stop_reader(self, reader: threading.Thread, source: VideoSource) -> None:
        self._reader_stop = True
        source.close()
        reader.join(timeout=2.0)

    def _read(
        self,
        source: VideoSource,
        frames: queue.Queue[_Sampled | _EndOfStream],
        finite: bool,
    ) -> None:
        """Reader thread: decodes every frame, converts only the sampled ones."""
        sampler = FrameSampler(self.camera.detect_fps)
        start_wall = time.time()
        first_ts: float | None = None
        counters = self.stats.counters
        error: BaseException | None = None
        try:
            for decoded in source.frames():
                if self._stop.is_set() or self._reader_stop:
                    return
                counters.frames_decoded += 1
                if self.stats.state in (CameraState.STARTING, CameraState.RECONNECTING):
                    self.stats.state = CameraState.RUNNING
                    self.backoff.reset()
                if first_ts is None:
                    first_ts = decoded.ts
                wall = datetime.fromtimestamp(start_wall, UTC) + timedelta(
                    seconds=decoded.ts - first_ts
                )
                self.wall_now = wall
                if not sampler.take(decoded.ts):
                    continue
                counters.frames_sampled += 1
                item = _Sampled(
                    ts=decoded.ts,
                    wall=wall,
                    frame=decoded.frame,
                    gray=to_gray_small(decoded.frame),
                    decoded_at=time.time(),
                )
                if finite:
                    frames.put(item)  # back-pressure: a file waits for the detector
                    continue
                # Live: never lag behind; drop the oldest waiting frame instead.
                while True:
                    try:
                        frames.put_nowait(item)
                        break
                    except queue.Full:
                        try:
                            frames.get_nowait()
                            counters.frames_dropped += 1
                        except queue.Empty:
                            pass
            counters.decode_errors = getattr(source, "decode_errors", counters.decode_errors)
        except SourceError as exc:
            error = exc
        except Exception as exc:  # a decoder bug must reach the consumer, not vanish
            logger.exception("camera %s reader crashed", self.camera.id)
            error = SourceError(f"reader crashed: {exc!r}", retryable=True)
        if self.recording is not None:
            self.recording.close()  # packets come from this thread: finish the segment here
        if not (self._stop.is_set() or self._reader_stop):
            frames.put(_EndOfStream(error))

    async def _analyse(self, item: _Sampled) -> None:
        """Analyses one frame start to finish (no frame ahead)."""
        await self._finish(self._begin(item))

    def _begin(self, item: _Sampled) -> _InFlight:
        """Feeds the motion gate and, when it says so, sends the frame to the detector."""
        size = (item.frame.width, item.frame.height)
        decision = self.pipeline.wants_detection(item.gray, item.ts, size)
        if self.detect is None or not decision.detect:
            if self.detect is not None:
                self.stats.counters.frames_skipped_motion += 1
            return _InFlight(item, None, 0.0)
        if self.regions is not None and self.detect_inputs is not None:
            plan = self.regions.plan(
                size,
                decision.mask,
                self.pipeline.active_tracks(),
                item.ts,
            )
            if self.regions.fallbacks > self.stats.counters.region_fallbacks:
                self.stats.counters.region_fallbacks = self.regions.fallbacks
                self.stats.last_error = f"region planner: {self.regions.last_error}"[:500]
            if not plan.full_frame:
                detection = self._detect_regions(self.detect_inputs, plan, item.rgb)
                return _InFlight(item, asyncio.ensure_future(detection), time.perf_counter())
        return _InFlight(item, asyncio.ensure_future(self.detect(item.rgb)), time.perf_counter())

    async def _detect_regions(
        self, detect_inputs: DetectInputsFn, plan: RegionPlan, rgb: NDArray[np.uint8]
    ) -> DetectResult:
        """Detections on the plan's crops (one call, one batch per input size), in frame
        pixels; a plan without regions (no motion blob, no track) needs no call."""
        counters = self.stats.counters
        counters.region_frames += 1
        counters.regions += len(plan.regions)
        if not plan.regions:
            return DetectResult([], 0, 0.0)
        inputs = [
            letterbox_u8(crop, region.input_size)
            for crop, region in zip(crops(rgb, plan), plan.regions, strict=True)
        ]
        results = await detect_inputs(inputs)
        merged = merge_detections(plan, [r.detections for r in results])
        first = results[0]
        return DetectResult(merged, first.batch_size, first.infer_ms, first.batch_cameras)

    async def _finish(self, inflight: _InFlight) -> None:
        """Tracks a frame's detections (in frame order) and persists what changed."""
        counters = self.stats.counters
        item = inflight.item
        changes: list[EventChange]
        if inflight.detection is None:
            changes = self.pipeline.on_skipped(item.ts, item.wall)
        else:
            try:
                result = await inflight.detection
            except Exception as exc:  # the detector being down must not stop the camera
                counters.detector_errors += 1
                self.stats.last_error = f"detector: {exc}"[:500]
                changes = self.pipeline.on_skipped(item.ts, item.wall)
            else:
                if result.batch_size:  # 0: regions planned none, so nothing was sent
                    counters.detector_calls += 1
                    if result.batch_cameras > 1:
                        counters.detector_calls_shared += 1
                    latency_ms = (time.perf_counter() - inflight.sent_at) * 1000.0
                    self.stats.detector_latency_ms.observe(latency_ms)
                    self.stats.batch_sizes.observe(result.batch_size)
                changes = self.pipeline.on_detections(
                    result.detections, item.ts, item.wall, item.rgb
                )
                if result.model_version is not None:
                    stamp_model(changes, result.model_version)
        self._latest = (item, self._overlays())
        if self.recording is not None and self.recording.settings.mode == "events":
            self.recording.wanted = self.pipeline.has_open_events
        if changes or (self.has_backlog and time.monotonic() >= self._retry_at):
            await self._persist(changes, item)
        if self.incidents is not None and self.incidents.due(item.wall):
            await self._incidents_at(item.wall, self.incidents.tick)
        if self.rules is not None:
            await self._apply_rules(self.rules)

    async def _apply_rules(self, rules: CameraRules) -> None:
        """The operators' rules on this frame's scene events (after its events are stored,
        so an alert finds its event); a store failure keeps the matches for the next frame."""
        if rules.refresh_due():
            try:
                await asyncio.to_thread(rules.refresh)
            except Exception as exc:  # the rules in force stay; tried again after poll_s
                self.stats.last_error = f"rules: {exc}"[:500]
                logger.warning("camera %s: rules not reloaded: %s", self.camera.id, exc)
        matches = rules.evaluate(self.pipeline.scene_events)
        if matches or rules.has_unstored:
            try:
                await asyncio.to_thread(rules.record, matches)
            except Exception as exc:  # kept by ``rules``; written at a later frame
                logger.warning("camera %s: rule alert write failed: %s", self.camera.id, exc)

    async def _incidents_at(self, wall: datetime, step: Callable[[datetime], None]) -> None:
        try:
            await asyncio.to_thread(step, wall)
        except Exception as exc:  # the keeper keeps its changes and retries at the next frame
            self.stats.last_error = f"store: {exc}"[:500]
            logger.warning("camera %s: incident write failed, will retry: %s", self.camera.id, exc)

    def _overlays(self) -> list[Overlay]:
        return [
            Overlay(t.box, t.label, f"{t.label} #{t.id} {t.score:.2f}")
            for t in self.pipeline.active_tracks()
            if t.confirmed and not t.lost
        ]

    @property
    def has_backlog(self) -> bool:
        """Whether changes the store refused still wait (in the journal or in memory)."""
        return bool(self._pending) or (self.journal is not None and self.journal.pending)

    async def _persist(
        self, changes: Sequence[EventChange], item: _Sampled | None, *, force: bool = False
    ) -> None:
        """Stores the backlog, oldest first, then ``changes``; keeps what the store refuses."""
        if self.has_backlog and not force and time.monotonic() < self._retry_at:
            await self._hold(changes)  # the store failed a moment ago: do not stall each frame
            return
        if not await self._drain():
            await self._hold(changes)
            return
        if not changes:
            return
        try:
            needs_frame = item is not None and any(c.new_best for c in changes)
            rgb = item.rgb if item is not None and needs_frame else None
            await asyncio.to_thread(self.sink.apply, changes, rgb)
        except Exception as exc:  # keep the changes and retry: events are never lost
            self._store_failed(exc)
            await self._hold(changes)
            return
        self._count_stored(changes, item)

    async def _drain(self) -> bool:
        """Stores the journal, then the in-memory backlog, in order; False if the store fails.

        Stored journal runs are committed one by one, so a failure midway resumes where it
        stopped (and a crash midway replays a little twice: idempotent, stale writes ignored).
        """
        counters = self.stats.counters
        journal = self.journal
        while journal is not None and journal.pending:
            run = await asyncio.to_thread(journal.read, _REPLAY_BATCH)
            try:
                if run.changes:
                    await asyncio.to_thread(self.sink.apply, run.changes, None)
            except Exception as exc:
                self._store_failed(exc)
                return False
            await asyncio.to_thread(journal.commit, run.end)
            counters.events_dropped += run.corrupt
            self._count_stored(run.changes, None)
        if self._pending:
            pending = self._pending
            try:
                await asyncio.to_thread(self.sink.apply, pending, None)
            except Exception as exc:
                self._store_failed(exc)
                return False
            self._pending = []
            self._count_stored(pending, None)
        return True

    async def _hold(self, changes: Sequence[EventChange]) -> None:
        """Keeps refused changes for later: in the journal, else in memory; counts drops."""
        if not changes:
            return
        counters = self.stats.counters
        if self.journal is not None:
            try:
                dropped = await asyncio.to_thread(self.journal.append, changes)
            except OSError as exc:
                dropped = len(changes)
                logger.error("camera %s: journal write failed: %s", self.camera.id, exc)
                self.stats.last_error = f"journal: {exc}"[:500]
            counters.events_journaled += len(changes) - dropped
        else:
            self._pending.extend(changes)
            dropped = max(0, len(self._pending) - self.max_pending_changes)
            del self._pending[:dropped]  # the oldest go first: a newer state supersedes them
        if dropped:
            counters.events_dropped += dropped
            logger.error(
                "camera %s: dropped %d event change(s): the store is down and the %s is full",
                self.camera.id,
                dropped,
                "journal" if self.journal is not None else "in-memory backlog",
            )

    def _store_failed(self, exc: Exception) -> None:
        self.stats.last_error = f"store: {exc}"[:500]
        logger.warning("camera %s: event write failed, will retry: %s", self.camera.id, exc)
        self._retry_at = time.monotonic() + self.store_retry_s

    def _count_stored(self, changes: Sequence[EventChange], item: _Sampled | None) -> None:
        counters = self.stats.counters
        now = time.time()
        for change in changes:
            if change.kind is EventChangeKind.OPENED:
                counters.events_opened += 1
                if item is not None:
                    self.stats.frame_to_event_ms.observe((now - item.decoded_at) * 1000.0)
            elif change.kind is EventChangeKind.CLOSED:
                counters.events_closed += 1

    async def _close_events(self) -> None:
        now = datetime.now(UTC)
        changes = self.pipeline.close_all(now)
        if changes or self.has_backlog:
            await self._persist(changes, None, force=True)
        if self.incidents is not None:
            await self._incidents_at(max(now, self.wall_now or now), self.incidents.close_all)
