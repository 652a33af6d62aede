"""Recording: a camera's own packets stored as short, keyframe-aligned MP4 segments.

H.264/HEVC is remuxed as it comes (stream copy: almost no CPU); other codecs (MJPEG, MPEG-4
part 2...) do not play from MP4 in browsers and are transcoded once to H.264. Segments are
plain MP4 with ``movflags=+faststart`` (index written on finalising, then moved to the front:
a finished segment streams and seeks in a browser and the probe knows its duration; one cut
short by a crash has no index, is never handed over, and `cleanup_orphans` removes it).
"""

from __future__ import annotations

import contextlib
import errno
import itertools
import math
import time
import uuid
from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum
from fractions import Fraction
from pathlib import Path
from typing import cast

import av
import av.error
from av.codec.context import CodecContext
from av.container import OutputContainer
from av.video.codeccontext import VideoCodecContext
from av.video.stream import VideoStream

from sentinel.store.clock import Clock, utcnow
from sentinel.store.segment_repo import SegmentInfo

COPY_CODECS = frozenset({"h264", "hevc"})  # stored as they come; anything else is transcoded
_MAX_JUMP_S = 5.0  # a timestamp step beyond this (either way) is a discontinuity, not jitter
_TMP_PREFIX = ".tmp-"


def packet_time(packet: av.Packet[VideoStream]) -> float | None:
    """Returns the packet's presentation time in seconds (decode time if it has no pts)."""
    ts = packet.pts if packet.pts is not None else packet.dts
    return None if ts is None or packet.time_base is None else float(ts * packet.time_base)


def _copy(packet: av.Packet[VideoStream]) -> av.Packet[VideoStream]:
    """Returns a copy the muxer or decoder may alter (the source still decodes the original)."""
    out = cast("av.Packet[VideoStream]", av.Packet(bytes(packet)))
    out.pts, out.dts, out.duration = packet.pts, packet.dts, packet.duration
    out.time_base, out.is_keyframe = packet.time_base, packet.is_keyframe
    return out


class PacketBuffer:
    """At least the last ``max_seconds`` of packets, always starting at a keyframe.

    Whole GOPs leave from the front, so up to one GOP more is held; ``max_bytes`` caps it.
    """

    def __init__(self, max_seconds: float, max_bytes: int = 64 << 20) -> None:
        """Creates an empty buffer (both limits > 0)."""
        if max_seconds <= 0 or max_bytes <= 0:
            raise ValueError("need max_seconds > 0 and max_bytes > 0")
        self.max_seconds, self.max_bytes = max_seconds, max_bytes
        self._gops: deque[tuple[float, list[av.Packet[VideoStream]]]] = deque()  # (key t, GOP)
        self._bytes, self._last_t = 0, 0.0

    def add(self, packet: av.Packet[VideoStream]) -> None:
        """Appends a packet; one before the first keyframe is dropped (it cannot be decoded)."""
        t = packet_time(packet)
        if t is not None and abs(t - self._last_t) > _MAX_JUMP_S:
            self.clear()  # the timeline restarted (loop, reconnect): old packets do not fit
        if t is None or not (packet.is_keyframe or self._gops):
            return
        self._last_t = t
        if packet.is_keyframe:
            self._gops.append((t, []))
        self._gops[-1][1].append(packet)
        self._bytes += packet.size
        while len(self._gops) > 1 and (
            self._gops[1][0] <= t - self.max_seconds or self._bytes > self.max_bytes
        ):
            self._bytes -= sum(p.size for p in self._gops.popleft()[1])
        if self._bytes > self.max_bytes:
            self.clear()  # one GOP bigger than the cap: start again at the next keyframe

    def packets_since(self, t: float) -> list[av.Packet[VideoStream]]:
        """Returns the packets from the last keyframe at or before ``t`` (else the first)."""
        start = max((i for i, (key_t, _) in enumerate(self._gops) if key_t <= t), default=0)
        return [p for _, gop in itertools.islice(self._gops, start, None) for p in gop]

    def clear(self) -> None:
        """Drops everything."""
        self._gops.clear()
        self._bytes = 0

    def __len__(self) -> int:
        return sum(len(gop) for _, gop in self._gops)


class RecorderState(StrEnum):
    """What the recorder is doing."""

    IDLE = "idle"
    RECORDING = "recording"
    STORAGE_FULL = "storage_full"  # ENOSPC / EDQUOT: dropping packets until resumed
    STORAGE_ERROR = "storage_error"  # any other OSError writing a segment


@dataclass
class _Segment:
    container: OutputContainer
    stream: VideoStream
    path: Path
    offset: int  # input pts subtracted, so that the segment starts at 0
    start: float
    wall_start: datetime
    end: float  # of the last frame so far
    frames: int = 0
    last: int | None = None  # last dts muxed (copy) or pts encoded (transcode)


class SegmentRecorder:
    """Writes fed packets into ~``segment_s`` segments while recording. Continuous: `start`
    once; events: ``start(buffer.packets_since(t - pre))``, then `stop_after`. A storage error
    never raises from `feed`: ``state`` says ``storage_full``, packets drop until `resume`.
    Counters: ``segments``, ``bad_segments`` (failed the probe, deleted), ``dropped``."""

    def __init__(
        self,
        *,
        directory: Path,
        template_stream: VideoStream,
        on_segment: Callable[[SegmentInfo], None],
        segment_s: float = 10.0,
        transcode: bool | None = None,
        clock: Clock = utcnow,
        retry_after_s: float | None = None,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        """Creates an idle recorder.

        Args:
            directory: Where temp segments are written (same filesystem as the store).
            template_stream: The source's video stream (codec parameters, time base).
            on_segment: Moves a finished segment into the store and indexes it (else deleted).
            segment_s: Target length; copied segments are cut at the first keyframe after it.
            transcode: Force (True) or forbid (False) transcoding; None: by codec.
            clock: Wall clock (stream times map to it from the latest packet).
            retry_after_s: After a storage failure, retry this long later (None: on `resume`).
            monotonic: Clock for the retry delay.
        """
        if segment_s <= 0:
            raise ValueError(f"segment_s must be > 0, got {segment_s}")
        self.directory, self.segment_s, self.on_segment = directory, segment_s, on_segment
        self._clock, self._monotonic, self.retry_after_s = clock, monotonic, retry_after_s
        self._template, name = template_stream, template_stream.codec_context.name
        self.transcoded = name not in COPY_CODECS if transcode is None else transcode
        self.codec = "h264" if self.transcoded else name
        self.state, self.last_error = RecorderState.IDLE, ""
        self.segments = self.bad_segments = self.dropped = 0
        self._segment: _Segment | None = None
        self._decoder: VideoCodecContext | None = None
        self._anchor: tuple[float, datetime] | None = None  # (stream time, wall time)
        self._stop_at, self._last_t, self._failed_at = math.inf, 0.0, 0.0
        self._recent_pts: deque[int] = deque(maxlen=64)  # to drop packets fed twice

    @property
    def recording(self) -> bool:
        """True from `start` until `stop` (also while storage is failing)."""
        return self.state is not RecorderState.IDLE

    def start(self, pre_roll: Iterable[av.Packet[VideoStream]] = ()) -> None:
        """Starts with ``pre_roll`` (from a keyframe); while recording cancels `stop_after`."""
        self._stop_at = math.inf
        if not self.recording:
            self.state = RecorderState.RECORDING
            for packet in pre_roll:
                self._guarded(packet)

    def stop_after(self, post_roll_s: float) -> None:
        """Stops ``post_roll_s`` after the latest packet (copy: at a keyframe, <= 5 s later)."""
        self._stop_at = self._last_t + post_roll_s

    def stop(self) -> None:
        """Stops recording, finishing (and handing over) the open segment."""
        self._stop_at = math.inf
        with contextlib.suppress(OSError):
            self.close_segment()  # a failure is recorded in state; stopping goes on
        self.state = RecorderState.IDLE

    def resume(self) -> None:
        """Records again after a storage failure (from the next keyframe)."""
        if self.recording:
            self.state = RecorderState.RECORDING

    def feed(self, packet: av.Packet[VideoStream], stream: VideoStream | None = None) -> None:
        """Takes one packet of the source (every packet, recording or not); never raises on a
        storage failure. A new ``stream`` (a reopened source) restarts at a keyframe."""
        t = packet_time(packet)
        if t is None:
            return  # cannot be placed in time (demuxers stamp packets: hardly ever happens)
        self._anchor, self._last_t = (t, self._clock()), t
        if stream is not None and stream is not self._template:
            with contextlib.suppress(OSError):
                self.close_segment()
            self._template, self._decoder = stream, None
        stop_at = self._stop_at  # copied: stop at a keyframe, so the last GOP decodes
        if t >= stop_at and (packet.is_keyframe or self.transcoded or t >= stop_at + _MAX_JUMP_S):
            self.stop()
        if self.state is not RecorderState.RECORDING:
            retry = self.retry_after_s
            if not self.recording or retry is None or self._monotonic() - self._failed_at < retry:
                self.dropped += self.recording  # storage failed: dropped until resumed
                return
            self.resume()
        self._guarded(packet)

    def close_segment(self) -> SegmentInfo | None:
        """Finishes the open segment now: probes it and hands it over; None if none or bad.

        Raises:
            OSError: the storage failed (also recorded in ``state`` and ``last_error``).
        """
        seg, self._segment = self._segment, None
        if seg is None:
            return None
        try:
            seg.container.mux(seg.stream.encode(None) if self.transcoded else [])  # flush
            seg.container.close()
        except OSError as exc:
            self._storage_failed(exc, seg)
            raise
        problem = _probe(seg.path, seg.end - seg.start) if seg.frames else "no frames"
        if problem:
            seg.path.unlink(missing_ok=True)
            self.bad_segments, self.last_error = self.bad_segments + 1, f"bad_segment: {problem}"
            return None
        info = SegmentInfo(
            seg.path, seg.start, seg.end, seg.wall_start, self._wall(seg.end),
            seg.path.stat().st_size, self.codec, self.transcoded, seg.frames,
        )  # fmt: skip
        try:
            self.on_segment(info)
        except BaseException:
            seg.path.unlink(missing_ok=True)  # not taken over: it must not linger
            raise
        self.segments += 1
        return info

    def _guarded(self, packet: av.Packet[VideoStream]) -> None:
        try:
            self._write(packet)
        except OSError as exc:
            self._storage_failed(exc)
        except av.error.FFmpegError as exc:  # a packet the muxer or encoder refuses: skipped
            self.dropped, self.last_error = self.dropped + 1, f"packet: {exc}"

    def _write(self, packet: av.Packet[VideoStream]) -> None:
        t = packet_time(packet)
        assert t is not None  # feed() keeps only timed packets; so does PacketBuffer
        if (seg := self._segment) is not None and (
            abs(t - seg.end) > _MAX_JUMP_S  # a gap or a restarted timeline: start afresh
            or (packet.is_keyframe and not self.transcoded and t - seg.start >= self.segment_s)
        ):
            self.close_segment()
        if self.transcoded:
            self._transcode(packet)
        elif self._segment is None and not packet.is_keyframe:
            self.dropped += 1  # a copied segment must start decodable
        else:
            pts0 = packet.pts if packet.pts is not None else packet.dts or 0
            self._mux_copy(self._segment or self._open(t, pts0), packet, t)

    def _mux_copy(self, seg: _Segment, packet: av.Packet[VideoStream], t: float) -> None:
        out = _copy(packet)
        pts = packet.pts if packet.pts is not None else packet.dts
        dts = packet.dts if packet.dts is not None else pts
        assert pts is not None and dts is not None  # packet_time(packet) was not None
        if seg.last is not None and dts - seg.offset <= seg.last:
            if pts in self._recent_pts:
                return  # the same packet again (pre-roll overlapping what was fed)
            dts = seg.last + 1 + seg.offset  # camera jitter: keep dts increasing
        out.pts, out.dts = max(pts, dts) - seg.offset, dts - seg.offset
        out.stream = seg.stream
        seg.container.mux(out)
        self._recent_pts.append(pts)
        seg.last, seg.frames = out.dts, seg.frames + 1
        step = float((packet.duration or 0) * packet.time_base) or float(1 / self._rate())
        seg.end = max(seg.end, t + step)

    def _transcode(self, packet: av.Packet[VideoStream]) -> None:
        if self._decoder is None:
            if not packet.is_keyframe:
                self.dropped += 1
                return
            src = self._template.codec_context
            self._decoder = decoder = cast(VideoCodecContext, CodecContext.create(src.name, "r"))
            decoder.width, decoder.height, decoder.thread_count = src.width, src.height, 1
            decoder.extradata = src.extradata
        frames = self._decoder.decode(_copy(packet))  # a damaged packet: dropped by _guarded
        base = self._template.time_base or Fraction(1, 90000)
        for frame in frames:
            raw = frame.pts if frame.pts is not None else round(self._last_t / base)
            t = float(raw * base)
            if self._segment is not None and t - self._segment.start >= self.segment_s:
                self.close_segment()
            seg = self._segment or self._open(t, raw)
            seg.last = pts = max(raw - seg.offset, -1 if seg.last is None else seg.last + 1)
            if frame.format.name != "yuv420p":
                frame = frame.reformat(format="yuv420p", threads=1)
            frame.pts, frame.time_base = pts, base
            seg.container.mux(seg.stream.encode(frame))
            seg.frames, seg.end = seg.frames + 1, max(seg.end, t + float(1 / self._rate()))

    def _encoder(self, container: OutputContainer) -> VideoStream:
        src, fps = self._template.codec_context, self._rate()
        options = {"preset": "ultrafast", "crf": "28"}
        stream = container.add_stream("libx264", rate=fps, options=options)
        stream.width, stream.height, stream.pix_fmt = src.width, src.height, "yuv420p"
        ctx = stream.codec_context
        ctx.time_base = self._template.time_base or Fraction(1, 90000)  # as _transcode's pts
        ctx.thread_count, ctx.gop_size = 1, max(1, round(2 * float(fps)))
        return stream

    def _rate(self) -> Fraction:
        return Fraction(self._template.average_rate or self._template.guessed_rate or 25)

    def _open(self, t: float, offset: int) -> _Segment:
        path = self.directory / f"{_TMP_PREFIX}{uuid.uuid4().hex}.mp4"
        container = av.open(str(path), "w", format="mp4", options={"movflags": "+faststart"})
        if self.transcoded:
            stream = self._encoder(container)
        else:
            stream = container.add_stream_from_template(self._template)
            if self.codec == "hevc":
                stream.codec_context.codec_tag = "hvc1"  # Safari plays HEVC in MP4 only so
        seg = _Segment(container, stream, path, offset, t, self._wall(t), t)
        self._segment = seg
        self._recent_pts.clear()
        return seg

    def _wall(self, t: float) -> datetime:
        anchor_t, anchor_wall = self._anchor or (t, self._clock())
        return anchor_wall + timedelta(seconds=t - anchor_t)

    def _storage_failed(self, exc: OSError, seg: _Segment | None = None) -> None:
        seg, self._segment = seg or self._segment, None
        if seg is not None:
            with contextlib.suppress(Exception):
                seg.container.close()
            with contextlib.suppress(OSError):
                seg.path.unlink(missing_ok=True)
        full = exc.errno in (errno.ENOSPC, errno.EDQUOT)
        self.state = RecorderState.STORAGE_FULL if full else RecorderState.STORAGE_ERROR
        self.last_error = f"{self.state.value}: {exc.strerror or exc}"
        self._decoder, self._failed_at = None, self._monotonic()  # resync at a keyframe


def _probe(path: Path, expected_s: float) -> str:
    """Returns why a segment is unfit ('' if it opens, decodes and lasts ~``expected_s``)."""
    try:
        with av.open(str(path)) as container:
            stream = container.streams.video[0]  # IndexError: no video stream
            duration = float((stream.duration or 0) * (stream.time_base or 0))
            if not 0.5 * expected_s <= duration <= 3 * expected_s + 0.1:
                return f"lasts {duration:.2f} s, expected {expected_s:.2f} s"
            next(container.decode(stream))
    except (av.error.FFmpegError, StopIteration, IndexError) as exc:
        return f"does not decode ({type(exc).__name__}: {exc})"
    return ""


def cleanup_orphans(directory: Path, min_age_s: float = 0.0) -> list[Path]:
    """Deletes temp segments left by a crash (``.tmp-*.mp4`` not modified for ``min_age_s``:
    a recorder may be writing newer ones); returns those removed."""
    removed: list[Path] = []
    for path in directory.glob(f"{_TMP_PREFIX}*.mp4"):
        with contextlib.suppress(FileNotFoundError):
            if time.time() - path.stat().st_mtime >= min_age_s:
                path.unlink()
                removed.append(path)
    return removed
