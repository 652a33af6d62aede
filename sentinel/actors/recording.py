"""A camera's recording: packets from the reader thread into segments, by mode.

``continuous`` records all the time; ``events`` records while an event is open, starting
from a bounded in-memory pre-roll buffer and stopping ``post_roll_s`` after the last event
closed. Packets are remuxed (no re-encode) unless the codec cannot be stored as-is, in which
case the recorder transcodes to H.264 and says so.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path

import av
from av.video.stream import VideoStream

from sentinel.config import RecordSettings
from sentinel.store.clock import Clock, utcnow
from sentinel.store.segment_repo import SegmentInfo
from sentinel.video.recorder import PacketBuffer, SegmentRecorder, packet_time

logger = logging.getLogger(__name__)

SegmentSink = Callable[[SegmentInfo, str], None]


class CameraRecording:
    """Called from the reader thread with every packet; ``wanted`` is set by the analysis."""

    def __init__(
        self,
        settings: RecordSettings,
        *,
        directory: Path,
        on_segment: SegmentSink,
        clock: Clock = utcnow,
    ) -> None:
        self.settings = settings
        self.directory = directory
        self.on_segment = on_segment
        self.clock = clock
        self.kind = "continuous" if settings.mode == "continuous" else "event"
        self.buffer = PacketBuffer(settings.pre_roll_s + 2.0)
        self.recorder: SegmentRecorder | None = None
        self._stream: VideoStream | None = None
        self.wanted = settings.mode == "continuous"
        self.handover_errors = 0
        directory.mkdir(parents=True, exist_ok=True)

    def _handover(self, info: SegmentInfo) -> None:
        try:
            self.on_segment(info, self.kind)
        except Exception:
            self.handover_errors += 1
            logger.exception("segment %s could not be stored", info.path)
            raise  # the recorder deletes the temp file: nothing half-indexed remains

    def __call__(self, packet: av.Packet[VideoStream], stream: VideoStream) -> None:
        if self.recorder is None or stream is not self._stream:
            if self.recorder is not None:
                self.recorder.stop()
            self._stream = stream
            self.recorder = SegmentRecorder(
                directory=self.directory,
                template_stream=stream,
                on_segment=self._handover,
                segment_s=self.settings.segment_s,
                clock=self.clock,
                retry_after_s=30.0,
            )
        recorder = self.recorder
        if self.settings.mode == "events":
            self.buffer.add(packet)
            t = packet_time(packet)
            if self.wanted and t is not None:
                if not recorder.recording:
                    recorder.start(self.buffer.packets_since(t - self.settings.pre_roll_s))
                else:
                    recorder.start()  # cancels a pending stop: the event goes on
            elif not self.wanted and recorder.recording:
                recorder.stop_after(self.settings.post_roll_s)
        elif not recorder.recording:
            recorder.start()
        recorder.feed(packet, stream)

    def close(self) -> None:
        """Finishes the open segment (a clean stop)."""
        if self.recorder is not None:
            self.recorder.stop()

    def status(self) -> dict[str, object]:
        r = self.recorder
        return {
            "mode": self.settings.mode,
            "state": str(r.state) if r else "idle",
            "transcoded": r.transcoded if r else None,
            "codec": r.codec if r else None,
            "segments": r.segments if r else 0,
            "bad_segments": r.bad_segments if r else 0,
            "last_error": (r.last_error if r else "") or None,
        }
