"""Clips: one browser-playable MP4 cut from stored segments by wall-clock range.

``assemble_clip`` stream-copies packets (no decoding, no quality loss) from the segments that
overlap ``[start, end]``: from the last keyframe at or before ``start`` (so the first frame
decodes on its own) to the first frame at or after ``end``, with timestamps continuing across
segment boundaries. A hole in the recording longer than ``max_gap_s`` is closed up (spliced)
rather than played as a frozen frame; ``ClipInfo.splices`` counts them.
"""

from __future__ import annotations

import contextlib
import io
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from fractions import Fraction
from pathlib import Path
from typing import cast

import av
from av.container import InputContainer, OutputContainer
from av.video.stream import VideoStream

from sentinel.store.objects import ObjectStore
from sentinel.store.segment_repo import SegmentRecord

__all__ = ["DEFAULT_MAX_CLIP_S", "ClipInfo", "NoFootage", "SegmentSource", "assemble_clip"]

DEFAULT_MAX_CLIP_S = 3600.0
_US = timedelta(microseconds=1)
_Wall = Callable[[int], datetime]  # a packet pts of one segment -> its wall-clock time


class NoFootage(LookupError):  # noqa: N818 - a LookupError named for what is missing
    """Raised when no stored segment holds a frame of the asked range."""


@dataclass(frozen=True, slots=True)
class SegmentSource:
    """One stored segment's MP4 bytes and its wall-clock span ``[start_at, end_at)``."""

    data: bytes
    start_at: datetime
    end_at: datetime

    @classmethod
    def load(cls, store: ObjectStore, record: SegmentRecord) -> SegmentSource:
        """Reads an indexed segment's bytes from the object store.

        Raises:
            ObjectNotFound: If the segment's object is missing.
        """
        return cls(store.get(record.object_key), record.start_at, record.end_at)


@dataclass(frozen=True, slots=True)
class ClipInfo:
    """The written clip: its wall-clock span, frame count, size and media duration."""

    path: Path
    actual_start: datetime  # the first frame (a keyframe at or before the asked start)
    actual_end: datetime  # the end of the last frame
    frames: int
    size: int
    duration_s: float  # of the media: shorter than the span when holes were spliced
    splices: int = 0  # holes longer than max_gap_s closed up


@dataclass(frozen=True, slots=True)
class _Packet:
    data: bytes
    pts: int
    dts: int
    duration: int
    key: bool


def _secs(delta: timedelta) -> Fraction:
    return Fraction(delta // _US, 1_000_000)


def _aware(value: datetime, name: str) -> None:
    if value.tzinfo is None or value.utcoffset() is None:
        raise ValueError(f"{name} must be a timezone-aware datetime, but got {value.isoformat()}")


def _params(stream: VideoStream) -> tuple[str, int, int, bytes]:
    ctx = stream.codec_context
    return ctx.name, ctx.width, ctx.height, bytes(ctx.extradata or b"")


def _demux(container: InputContainer, stream: VideoStream) -> list[_Packet]:
    packets: list[_Packet] = []
    for packet in container.demux(stream):
        pts = packet.pts if packet.pts is not None else packet.dts
        dts = packet.dts if packet.dts is not None else pts
        if packet.size == 0 or pts is None or dts is None:
            continue  # the demuxer's flush packet, or one that cannot be placed
        packets.append(_Packet(bytes(packet), pts, dts, packet.duration or 0, packet.is_keyframe))
    return packets


class _Assembler:
    """Writes the selected packets of one segment after another into the output."""

    def __init__(self, dest: Path, start: datetime, end: datetime, max_gap_s: float) -> None:
        self.dest, self.start, self.end = dest, start, end
        self.max_gap = Fraction(max_gap_s)
        self.out: OutputContainer | None = None
        self.stream: VideoStream | None = None
        self.params: tuple[str, int, int, bytes] | None = None
        self.tb = Fraction(1, 90000)
        self.origin = start  # wall time of media time 0 (the first keyframe)
        self.shift = Fraction(0)  # media time lost to splices: media = wall - origin - shift
        self.media_end = Fraction(0)  # end of the last frame written, in media seconds
        self.wall_end = start
        self.last_dts: int | None = None
        self.frames = self.splices = 0
        self.done = False

    def add(self, source: SegmentSource) -> None:
        """Appends the packets of ``source`` that the clip needs (sets ``done`` at ``end``)."""
        with av.open(io.BytesIO(source.data), "r") as container:
            streams = container.streams.video
            if not streams:
                return
            stream = streams[0]
            if self.params is not None and _params(stream) != self.params:
                self.done = True  # the camera changed codec parameters: the clip ends here
                return
            packets = _demux(container, stream)
            if not packets:
                return
            tb = Fraction(stream.time_base or Fraction(1, 90000))
            zero = min(p.pts for p in packets)

            def wall(pts: int) -> datetime:
                return source.start_at + timedelta(seconds=float((pts - zero) * tb))

            chosen = self._keyframe(packets, wall)
            if chosen is None:
                return
            if self.out is None:
                self._open(stream, wall(packets[chosen].pts))
            kpts = packets[chosen].pts
            selected = [p for p in packets[chosen:] if p.pts >= kpts]  # no leading pictures
            after = [p.pts for p in selected if wall(p.pts) >= self.end]
            if after:
                last_pts = min(after)  # the first frame at or after end, and its references
                cut = max(i for i, p in enumerate(selected) if p.pts <= last_pts)
                selected, self.done = selected[: cut + 1], True
            rate = stream.average_rate or stream.guessed_rate or 25
            self._write(selected, tb, zero, source.start_at, wall, Fraction(1) / Fraction(rate))

    def _keyframe(self, packets: list[_Packet], wall: _Wall) -> int | None:
        keys = [i for i, p in enumerate(packets) if p.key]
        if not keys:
            return None
        if self.out is None:  # the clip's first frame: the last keyframe at or before start
            before = [i for i in keys if wall(packets[i].pts) <= self.start]
            return before[-1] if before else keys[0]
        # Later segments: skip what overlaps the footage already written.
        slack = timedelta(milliseconds=50)
        return next((i for i in keys if wall(packets[i].pts) >= self.wall_end - slack), None)

    def _open(self, template: VideoStream, origin: datetime) -> None:
        self.out = out = av.open(
            str(self.dest), "w", format="mp4", options={"movflags": "+faststart"}
        )
        self.stream = out.add_stream_from_template(template)
        self.tb = Fraction(template.time_base or Fraction(1, 90000))
        self.stream.time_base = self.tb
        self.params, self.origin, self.wall_end = _params(template), origin, origin

    def _write(
        self,
        packets: list[_Packet],
        tb: Fraction,
        zero: int,
        start_at: datetime,
        wall: _Wall,
        step: Fraction,
    ) -> None:
        if not packets:
            return
        assert self.out is not None and self.stream is not None
        offset = _secs(start_at - self.origin) - self.shift  # media time of pts == zero
        first = offset + (packets[0].pts - zero) * tb
        if self.frames and not self.media_end <= first <= self.media_end + self.max_gap:
            self.splices += first > self.media_end + self.max_gap
            self.shift += first - self.media_end  # jitter or a hole: continue seamlessly
            offset -= first - self.media_end
        for p in packets:
            pts = round((offset + (p.pts - zero) * tb) / self.tb)
            dts = round((offset + (p.dts - zero) * tb) / self.tb)
            if self.last_dts is not None and dts <= self.last_dts:
                dts = self.last_dts + 1
            out = cast("av.Packet[VideoStream]", av.Packet(p.data))
            out.pts, out.dts = max(pts, dts), dts
            out.duration = round(p.duration * tb / self.tb) if p.duration else None
            out.time_base, out.is_keyframe, out.stream = self.tb, p.key, self.stream
            self.out.mux(out)
            self.last_dts, self.frames = dts, self.frames + 1
            length = p.duration * tb if p.duration else step  # of this frame
            self.media_end = max(self.media_end, max(pts, dts) * self.tb + length)
            frame_end = wall(p.pts) + timedelta(seconds=float(length))
            self.wall_end = max(self.wall_end, frame_end)

    def close(self) -> None:
        """Finishes the file (writes the index, moved to the front)."""
        if self.out is not None:
            out, self.out = self.out, None
            out.close()


def assemble_clip(
    sources: Sequence[SegmentSource],
    start: datetime,
    end: datetime,
    dest: Path,
    *,
    max_clip_s: float = DEFAULT_MAX_CLIP_S,
    max_gap_s: float = 1.0,
) -> ClipInfo:
    """Writes the footage of ``[start, end]`` from ``sources`` as one MP4 at ``dest``.

    Args:
        sources: Stored segments of one camera (any order; those outside the range are
            ignored).
        start: Wall-clock start; the clip starts at the last keyframe at or before it.
        end: Wall-clock end; the clip ends with the first frame at or after it.
        dest: The MP4 file to write (replaced; removed again on failure).
        max_clip_s: The longest range accepted, in seconds.
        max_gap_s: Holes between segments up to this long are kept as they were; longer ones
            are closed up.

    Returns:
        What was written.

    Raises:
        ValueError: If a bound is naive, ``end`` is before ``start`` or the range is longer
            than ``max_clip_s``.
        NoFootage: If no segment holds a frame of the range.
    """
    _aware(start, "start")
    _aware(end, "end")
    if end < start:
        raise ValueError(f"end {end.isoformat()} is before start {start.isoformat()}")
    if (end - start).total_seconds() > max_clip_s:
        raise ValueError(
            f"a clip may last at most {max_clip_s:g} s, but {start.isoformat()} to "
            f"{end.isoformat()} is {(end - start).total_seconds():g} s"
        )
    overlapping = sorted(
        (s for s in sources if s.start_at <= end and s.end_at > start),
        key=lambda s: (s.start_at, s.end_at),
    )
    if not overlapping:
        raise NoFootage(f"no footage between {start.isoformat()} and {end.isoformat()}")
    assembler = _Assembler(dest, start, end, max_gap_s)
    try:
        for source in overlapping:
            assembler.add(source)
            if assembler.done:
                break
        assembler.close()
    except BaseException:
        with contextlib.suppress(Exception):
            assembler.close()
        dest.unlink(missing_ok=True)
        raise
    if assembler.frames == 0:
        dest.unlink(missing_ok=True)
        raise NoFootage(f"no decodable footage between {start.isoformat()} and {end.isoformat()}")
    return ClipInfo(
        path=dest,
        actual_start=assembler.origin,
        actual_end=assembler.wall_end,
        frames=assembler.frames,
        size=dest.stat().st_size,
        duration_s=float(assembler.media_end),
        splices=assembler.splices,
    )
