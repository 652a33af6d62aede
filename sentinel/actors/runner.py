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
from sentinel.config import CameraConfig
from sentinel.domain.pipeline import FramePipeline
from sentinel.domain.render import Overlay, encode_jpeg
from sentinel.domain.stats import CameraState, CameraStats
from sentinel.domain.types import EventChange, EventChangeKind, EventState
from sentinel.serve.detector import DetectResult
from sentinel.video.sampling import FrameSampler
from sentinel.video.source import (
    Backoff,
    SourceError,
    SourceKind,
    VideoSource,
    redact_source,
    to_gray_small,
    to_rgb,
)

logger = logging.getLogger(__name__)

DetectFn = Callable[[NDArray[np.uint8]], Awaitable[DetectResult]]
_QUEUE_POLL_S = 0.25
_MAX_PENDING_CHANGES = 10_000


class EventSink(Protocol):
    """Persists event changes (and their snapshots); must be idempotent."""

    def apply(self, changes: Sequence[EventChange], rgb: NDArray[np.uint8] | None) -> None: ...


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


class _EndOfStream:
    """Put on the queue by the reader when the source ends (or fails: ``error``)."""

    def __init__(self, error: BaseException | None = None) -> None:
        self.error = error


class CameraRunner:
    """Runs one camera until it finishes, fails for good, or is stopped."""

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
    ) -> None:
        self.camera = camera
        self.detect = detect if camera.detect else None
        self.sink = sink
        self.pipeline = FramePipeline(camera.id, epoch, camera.pipeline_config())
        self.open_events = open_events
        self.source_factory = source_factory
        self.backoff = backoff or Backoff()
        self.stats = CameraStats(camera_id=camera.id, source=redact_source(camera.source))
        self.kind = camera.kind
        self._stop = threading.Event()
        self._pending: list[EventChange] = []
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
        if self.open_events is not None:
            adopted = await asyncio.to_thread(self.open_events)
            self.pipeline.adopt(adopted, datetime.now(UTC))
        attempts = 0
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
                self.stats.state = CameraState.FINISHED
                break
            attempts = 0
        await self._close_events()
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
        try:
            while True:
                try:
                    item = await asyncio.to_thread(frames.get, True, _QUEUE_POLL_S)
                except queue.Empty:
                    if self.stopping:
                        return False
                    continue
                if isinstance(item, _EndOfStream):
                    if item.error is not None:
                        raise item.error
                    if finite:
                        return True
                    # A live stream (or a looping file) must not end: reconnect.
                    raise SourceError(f"stream {self.stats.source} ended", retryable=True)
                await self._analyse(item)
        finally:
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
        counters = self.stats.counters
        decision = self.pipeline.wants_detection(item.gray, item.ts)
        changes: list[EventChange]
        if self.detect is None or not decision.detect:
            if self.detect is not None:
                counters.frames_skipped_motion += 1
            changes = self.pipeline.on_skipped(item.ts, item.wall)
        else:
            t0 = time.perf_counter()
            try:
                result = await self.detect(item.rgb)
            except Exception as exc:  # the detector being down must not stop the camera
                counters.detector_errors += 1
                self.stats.last_error = f"detector: {exc}"[:500]
                changes = self.pipeline.on_skipped(item.ts, item.wall)
            else:
                counters.detector_calls += 1
                self.stats.detector_latency_ms.observe((time.perf_counter() - t0) * 1000.0)
                self.stats.batch_sizes.observe(result.batch_size)
                changes = self.pipeline.on_detections(result.detections, item.ts, item.wall)
        self._latest = (item, self._overlays())
        if self.recording is not None and self.recording.settings.mode == "events":
            self.recording.wanted = self.pipeline.has_open_events
        if changes:
            await self._persist(changes, item)

    def _overlays(self) -> list[Overlay]:
        return [
            Overlay(t.box, t.label, f"{t.label} #{t.id} {t.score:.2f}")
            for t in self.pipeline.active_tracks()
            if t.confirmed and not t.lost
        ]

    async def _persist(self, changes: Sequence[EventChange], item: _Sampled | None) -> None:
        counters = self.stats.counters
        batch = [*self._pending, *changes]
        try:
            needs_frame = item is not None and any(c.new_best for c in changes)
            rgb = item.rgb if item is not None and needs_frame else None
            await asyncio.to_thread(self.sink.apply, batch, rgb)
        except Exception as exc:  # keep the changes and retry: events are never lost
            self.stats.last_error = f"store: {exc}"[:500]
            logger.warning("camera %s: event write failed, will retry: %s", self.camera.id, exc)
            self._pending = batch[-_MAX_PENDING_CHANGES:]
            return
        self._pending = []
        now = time.time()
        for change in changes:
            if change.kind is EventChangeKind.OPENED:
                counters.events_opened += 1
                if item is not None:
                    self.stats.frame_to_event_ms.observe((now - item.decoded_at) * 1000.0)
            elif change.kind is EventChangeKind.CLOSED:
                counters.events_closed += 1

    async def _close_events(self) -> None:
        changes = self.pipeline.close_all(datetime.now(UTC))
        if changes or self._pending:
            await self._persist(changes, None)
