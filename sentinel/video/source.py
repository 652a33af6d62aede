"""Video input: open a camera source (file, RTSP, HTTP) with PyAV and decode its frames.

Only a plain path, an ``rtsp(s)://`` or an ``http(s)://`` URL reaches FFmpeg, each with its own
``protocol_whitelist``: neither a crafted name (``concat:``, ``pipe:``...) nor a redirect or a
playlist can make FFmpeg read through another protocol. HTTP MJPEG needs no option (FFmpeg finds
``mpjpeg`` by Content-Type or content); it has no timestamps, so frames are stamped on arrival.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Self

import av
import av.error
import numpy as np
from av.codec.context import ThreadType
from av.container import InputContainer
from av.video.stream import VideoStream
from numpy.typing import NDArray

from sentinel.domain.sources import SourceKind, classify_source, redact_source
from sentinel.video.sampling import Backoff as Backoff  # pure timing policy, lives there

_WHITELIST = dict(file="file", rtsp="rtsp,rtp,tcp,udp,tls,crypto", http="http,https,tcp,tls,crypto")
_UNTIMED_FORMATS = {"mpjpeg", "mjpeg"}  # demuxers that invent timestamps (25 fps)
_CORRUPT_WINDOW = 50  # a file is corrupt if over half of its first 50 packets fail to decode
_MAX_NETWORK_ERRORS = 250  # undecodable packets in a row before a live stream is given up
_MAX_LAG_S = 0.5  # a realtime file lagging more than this re-anchors instead of bursting


class SourceError(Exception):
    """A source could not be opened or read; the message says what and where (redacted).

    Attributes:
        retryable: True for trouble that may pass (network, timeouts, end of a live stream);
            False otherwise (missing file, permission, not a video, corrupt, wrong path...).
    """

    def __init__(self, message: str, *, retryable: bool) -> None:
        super().__init__(message)
        self.retryable = retryable


@dataclass(frozen=True)
class StreamInfo:
    """The video stream of an opened source. ``fps`` is 0.0 where the source does not say."""

    width: int
    height: int
    fps: float
    codec: str
    kind: SourceKind


@dataclass
class DecodedFrame:
    """A decoded frame; ``ts`` is stream time in seconds, increasing across loops and reopens."""

    index: int
    ts: float
    frame: av.VideoFrame


class VideoSource:
    """Decodes every frame of one source (inter-frame codecs need them all).

    Counters (across loops and reopens): ``packets_demuxed``, ``frames_decoded`` and
    ``decode_errors`` (packets that failed to decode and were skipped). ``on_packet`` sees each
    compressed packet first (the recorder stores them as they are, without re-encoding).
    """

    def __init__(
        self,
        source: str,
        *,
        realtime: bool = True,
        loop: bool | None = None,
        open_timeout_s: float = 10.0,
        read_timeout_s: float = 10.0,
        thread_count: int = 1,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
        on_packet: Callable[[av.Packet[VideoStream], VideoStream], None] | None = None,
    ) -> None:
        """Validates the source (`classify_source`, ValueError); nothing is opened yet.

        Args:
            source: Path or URL, see `classify_source`.
            realtime: Pace files at their native rate, like a camera. Network sources are read
                as they come, but the end of a realtime one is a retryable `SourceError`.
            loop: Restart a file at its end; defaults to ``realtime``. Files only.
            open_timeout_s: Limit for connecting and probing.
            read_timeout_s: Limit for each read once open; also the socket I/O timeout.
            thread_count: Decoder threads: 1 (least CPU per frame) by default, 0 for auto.
            clock: Monotonic clock for pacing and timeouts (injectable for tests).
            sleep: Sleep for pacing (injectable for tests).
            on_packet: Called with every non-empty demuxed video packet and its stream, before
                it is decoded; it must not alter the packet. Its exceptions propagate.
        """
        self.kind = classify_source(source)
        if open_timeout_s <= 0 or read_timeout_s <= 0 or thread_count < 0:
            raise ValueError("need open_timeout_s > 0, read_timeout_s > 0 and thread_count >= 0")
        if loop and self.kind is not SourceKind.FILE:
            raise ValueError(f"loop is only supported for files, not {self.kind} sources")
        self.source, self.display, self.realtime = source, redact_source(source), realtime
        self._what = f"{self.kind} source {self.display}"  # for messages: what and where
        self.loop = (realtime if loop is None else loop) and self.kind is SourceKind.FILE
        self._timeouts = (open_timeout_s, read_timeout_s)
        self._threads, self._clock, self._sleep = thread_count, clock, sleep
        self._on_packet = on_packet
        self.packets_demuxed = self.frames_decoded = self.decode_errors = 0
        self._container: InputContainer | None = None
        self._stream: VideoStream | None = None
        self._info: StreamInfo | None = None
        self._index, self._offset, self._step, self._opened_at = 0, 0.0, 0.1, 0.0
        self._last_ts: float | None = None
        self._rebase = self._arrival_ts = False
        self._anchor: tuple[float, float] | None = None  # (wall time, ts) pacing is based on

    def open(self) -> StreamInfo:
        """Opens the source (no-op when open) and describes its video stream.

        Raises:
            SourceError: it cannot be opened or has no video stream.
        """
        if self._info is not None:
            return self._info
        url, options = self._ffmpeg_input()
        started = self._clock()
        try:
            container = av.open(url, "r", options=options, timeout=self._timeouts)
        except av.error.FFmpegError as exc:
            raise self._error(exc, "opening", started) from exc
        if not container.streams.video:
            container.close()
            raise SourceError(f"{self._what}: no video stream", retryable=False)
        stream = container.streams.video[0]
        stream.codec_context.thread_count = self._threads
        if self._threads != 1:
            stream.codec_context.thread_type = ThreadType.AUTO
        untimed = container.format.name in _UNTIMED_FORMATS
        self._arrival_ts = untimed and self.kind is not SourceKind.FILE
        rate = None if self._arrival_ts else (stream.average_rate or stream.guessed_rate)
        fps = float(rate) if rate else 0.0
        self._step = 1.0 / fps if fps > 0 else 0.001
        self._container, self._stream = container, stream
        self._rebase = self._last_ts is not None  # a reopen continues the timeline
        self._anchor, self._opened_at = None, self._clock()
        ctx = stream.codec_context
        self._info = StreamInfo(ctx.width, ctx.height, fps, ctx.name, self.kind)
        return self._info

    def frames(self) -> Iterator[DecodedFrame]:
        """Yields every decoded frame, opening the source if needed.

        A realtime file yields each frame when due, a late one at once (never sleeping to catch
        up; after a stall over 0.5 s pacing restarts from there, without a burst). A file ends
        at its end unless it loops; a network source ends there only when not realtime. At the
        end or on an error the source is closed: calling `frames` again reopens it.

        Raises:
            SourceError: the source fails, is corrupt or (realtime network) ended.
        """
        self.open()
        live = self.realtime and self.kind is not SourceKind.FILE
        try:
            while True:
                count = 0
                for raw in self._decode_pass():
                    count += 1
                    item = DecodedFrame(self._index, self._stamp(raw), raw)
                    self._index += 1
                    if self.realtime and not live:
                        self._pace(item.ts)
                    yield item
                if live:
                    raise SourceError(f"{self._what}: stream ended", retryable=True)
                if count == 0:
                    message = f"corrupt video {self._what}: no frame decodes"
                    raise SourceError(message, retryable=False)
                if not self.loop:
                    break
                self._rewind()
        except SourceError:
            self.close()  # so that a retry (calling frames() again) reconnects
            raise
        self.close()  # ended: calling frames() again starts over, the timeline continuing

    def close(self) -> None:
        """Releases the source; `open` may be called again and the timeline continues."""
        container, self._container, self._stream, self._info = self._container, None, None, None
        if container is not None:
            container.close()

    def __enter__(self) -> Self:
        self.open()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def _ffmpeg_input(self) -> tuple[str, dict[str, str]]:
        options = {"protocol_whitelist": _WHITELIST[self.kind.value]}
        if self.kind is SourceKind.FILE:
            path = os.path.abspath(self.source)
            # Regular files only: a directory fails later, a device or a FIFO can block.
            problem = "" if os.access(path, os.R_OK) else "not readable (permission)"
            problem = problem if os.path.isfile(path) else "not a regular file"
            problem = problem if os.path.exists(path) else "not found"
            if problem:
                raise SourceError(f"video file {problem}: {path}", retryable=False)
            return "file:" + path, options  # "file:": no part of the name reads as a protocol
        # Socket I/O timeouts in microseconds: RTSP's "timeout" (called "stimeout" before
        # FFmpeg 5), TCP's "timeout" under HTTP (connect and I/O) and HTTP's "rw_timeout".
        options["timeout"] = str(int(self._timeouts[1] * 1e6))
        if self.kind is SourceKind.HTTP:
            options["rw_timeout"] = options["timeout"]
        else:  # fpsprobesize 0: the rate comes from SDP/SPS; opens in 0.2 s instead of 2.2 s
            options |= {"rtsp_transport": "tcp", "fpsprobesize": "0"}
        return self.source, options

    def _error(self, exc: av.error.FFmpegError, doing: str, started: float) -> SourceError:
        network = self.kind is not SourceKind.FILE
        elapsed = self._clock() - started
        limit = self._timeouts[0 if doing == "opening" else 1]
        detail, retryable, prefix = exc.strerror or type(exc).__name__, network, ""
        timed_out = isinstance(exc, av.error.ExitError | av.error.TimeoutError)
        if timed_out or (network and elapsed >= 0.9 * limit):
            detail, retryable = f"timed out after {elapsed:.1f} s", True
        elif isinstance(exc, av.error.HTTPClientError):  # 4xx, RTSP replies map to them too
            retryable = isinstance(exc, av.error.HTTPTooManyRequestsError)
            if isinstance(exc, av.error.HTTPUnauthorizedError | av.error.HTTPForbiddenError):
                detail += " (check the credentials in the URL)"
        elif isinstance(exc, av.error.InvalidDataError):
            # An RTSP server that answers garbage or hangs up mid-handshake is network trouble.
            retryable = self.kind is SourceKind.RTSP
            if not retryable:
                prefix, detail = "corrupt video or not a video: ", "FFmpeg cannot read its format"
        elif isinstance(exc, av.error.DecoderNotFoundError | av.error.PermissionError):
            retryable = False
        return SourceError(f"{prefix}{self._what}: {detail} while {doing}", retryable=retryable)

    def _decode_pass(self) -> Iterator[av.VideoFrame]:
        """Decodes up to the end of the source, skipping packets that fail to decode."""
        assert self._container is not None and self._stream is not None
        demux, failing = self._container.demux(self._stream), 0
        while True:
            started = self._clock()
            try:
                packet = next(demux)
            except (StopIteration, av.error.EOFError):
                return
            except av.error.FFmpegError as exc:
                if self.kind is SourceKind.FILE and isinstance(exc, av.error.InvalidDataError):
                    self.decode_errors += 1  # unreadable rest of a damaged file: its end
                    return
                raise self._error(exc, "reading", started) from exc
            self.packets_demuxed += 1 if packet.size else 0
            if self._on_packet is not None and packet.size:
                self._on_packet(packet, self._stream)
            try:
                decoded = packet.decode()
            except av.error.FFmpegError:
                self.decode_errors, failing = self.decode_errors + 1, failing + 1
                file = self.kind is SourceKind.FILE
                if file and self.packets_demuxed <= _CORRUPT_WINDOW < 2 * self.decode_errors:
                    bad = f"{self.decode_errors} of the first {self.packets_demuxed} packets"
                    message = f"corrupt video {self._what}: {bad} do not decode"
                    raise SourceError(message, retryable=False) from None
                if not file and failing >= _MAX_NETWORK_ERRORS:
                    message = f"{self._what}: {failing} packets in a row do not decode"
                    raise SourceError(message, retryable=True) from None
                continue
            failing = 0
            for frame in decoded:
                self.frames_decoded += 1
                yield frame

    def _stamp(self, frame: av.VideoFrame) -> float:
        """Returns the frame's stream time, kept increasing across loops and reopens."""
        raw = self._clock() - self._opened_at if self._arrival_ts else frame.time
        last = self._last_ts
        if raw is not None and (self._rebase or last is None):
            self._offset = 0.0 if last is None else last + self._step - raw
            self._rebase = False
        ts = 0.0 if raw is None else raw + self._offset  # no ts: the first RTP frame, say
        if last is not None and ts <= last:
            ts = last + self._step
        self._last_ts = ts
        return ts

    def _pace(self, ts: float) -> None:
        now = self._clock()
        wall, ts0 = self._anchor = self._anchor or (now, ts)
        due = wall + ts - ts0
        if due > now:
            self._sleep(due - now)
        elif now - due > _MAX_LAG_S:
            self._anchor = (now, ts)  # the consumer stalled: go on from here, no burst

    def _rewind(self) -> None:
        """Starts the file again; the next frame's ts follows the last one by one interval."""
        assert self._container is not None and self._stream is not None
        self._rebase = True
        try:
            self._container.seek(0)
            self._stream.codec_context.flush_buffers()
        except av.error.FFmpegError:
            self.close()  # not seekable: reopening is the portable way back to the start
            self.open()


def to_rgb(frame: av.VideoFrame) -> NDArray[np.uint8]:
    """Converts a frame to an (H, W, 3) RGB array; costly, so only for analysed frames.

    ``threads=1``: PyAV otherwise builds a threaded converter per frame, whose thread start-up
    costs more CPU than the conversion itself (measured by benchmarks/ingest.py).
    """
    rgb = frame.reformat(format="rgb24", threads=1)
    return np.asarray(rgb.to_ndarray(), dtype=np.uint8)


def to_gray_small(frame: av.VideoFrame, width: int = 96) -> NDArray[np.uint8]:
    """Scales a frame to ``width`` pixels wide, aspect kept, as an (H, W) 8-bit gray array.

    libswscale scales first: ~0.15 ms from 768x576 to a 7 KB array (to_rgb: 1.3 MB, ~0.25 ms)."""
    if width <= 0:
        raise ValueError(f"width must be > 0, got {width}")
    height = max(1, round(width * frame.height / frame.width))
    small = frame.reformat(
        width=width, height=height, format="gray", interpolation="AREA", threads=1
    )
    return np.asarray(small.to_ndarray(), dtype=np.uint8)
