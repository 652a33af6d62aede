"""HLS playback of the recordings: a VOD playlist over the stored segments, and each segment
remuxed (stream copy, no re-encoding) from MP4 to MPEG-TS.

Every TS segment's timestamps are its wall-clock time (90 kHz ticks since the Unix epoch,
modulo the 33-bit PTS range), so consecutive segments continue each other's timeline and a
player needs an ``#EXT-X-DISCONTINUITY`` only where the recording has a hole (or an overlap).
"""

from __future__ import annotations

import io
import math
from collections.abc import Callable, Sequence
from datetime import UTC, datetime, timedelta
from fractions import Fraction
from pathlib import Path

import av

from sentinel.store.segment_repo import SegmentRecord

__all__ = ["PTS_HZ", "build_playlist", "remux_to_ts", "wall_ticks"]

PTS_HZ = 90_000
_PTS_WRAP = 1 << 33  # MPEG-TS timestamps are 33-bit
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def wall_ticks(when: datetime) -> int:
    """90 kHz ticks of ``when`` since the epoch, modulo 2**33 (its MPEG-TS timestamp)."""
    delta = when - _EPOCH
    micros = (delta.days * 86_400 + delta.seconds) * 1_000_000 + delta.microseconds
    return (micros * PTS_HZ // 1_000_000) % _PTS_WRAP


def build_playlist(
    segments: Sequence[SegmentRecord],
    uri: Callable[[SegmentRecord], str],
    *,
    max_gap_s: float = 1.0,
) -> str:
    """An HLS VOD playlist (version 3) of ``segments`` (ascending by ``start_at``).

    A segment wholly inside the footage already listed (an event segment over a continuous
    one, say) is left out; ``#EXT-X-DISCONTINUITY`` precedes a segment that does not start
    within ``max_gap_s`` of where the previous one ended (a hole, or an overlap).

    Args:
        segments: The segments to list, by ``start_at`` ascending.
        uri: The URI (relative to the playlist) of a segment's TS file.
        max_gap_s: The largest jump between segments played as continuous.

    Raises:
        ValueError: If there is no segment to list.
    """
    tolerance = timedelta(seconds=max_gap_s)
    body: list[str] = []
    longest = 0.0
    covered: datetime | None = None  # the end of the footage listed so far
    for seg in segments:
        if covered is not None and seg.end_at <= covered:
            continue
        if covered is not None and abs(seg.start_at - covered) > tolerance:
            body.append("#EXT-X-DISCONTINUITY")
        duration = max(seg.duration_s, 0.001)
        longest = max(longest, duration)
        body.append(f"#EXTINF:{duration:.3f},")
        body.append(uri(seg))
        covered = seg.end_at if covered is None else max(covered, seg.end_at)
    if covered is None:
        raise ValueError("no segment to list")
    head = [
        "#EXTM3U",
        "#EXT-X-VERSION:3",
        f"#EXT-X-TARGETDURATION:{max(1, math.ceil(longest))}",
        "#EXT-X-MEDIA-SEQUENCE:0",
        "#EXT-X-PLAYLIST-TYPE:VOD",
    ]
    return "\n".join([*head, *body, "#EXT-X-ENDLIST", ""])


def remux_to_ts(data: bytes, start_at: datetime, dest: Path) -> int:
    """Writes the video of an MP4 segment to ``dest`` as MPEG-TS, without re-encoding.

    The first frame is stamped with ``start_at``'s wall-clock ticks (see ``wall_ticks``).
    H.264 is converted to Annex B by the muxer's automatic ``h264_mp4toannexb`` filter.

    Args:
        data: The stored MP4 segment.
        start_at: The wall-clock time of the segment's first frame.
        dest: The file to write.

    Returns:
        The number of frames written.

    Raises:
        ValueError: If the segment holds no video frame.
    """
    base = Fraction(wall_ticks(start_at), PTS_HZ)
    frames = 0
    with av.open(io.BytesIO(data), "r") as src:
        if not src.streams.video:
            raise ValueError("the segment has no video stream")
        stream = src.streams.video[0]
        tb = Fraction(stream.time_base or Fraction(1, PTS_HZ))
        packets = [p for p in src.demux(stream) if p.size and p.dts is not None]
        if not packets:
            raise ValueError("the segment has no video frame")
        zero = min(p.pts if p.pts is not None else p.dts or 0 for p in packets)
        out_tb = Fraction(1, PTS_HZ)
        with av.open(str(dest), "w", format="mpegts") as out:
            ostream = out.add_stream_from_template(stream)
            ostream.time_base = out_tb
            last_dts: int | None = None
            for packet in packets:
                dts_in = packet.dts if packet.dts is not None else 0
                pts_in = packet.pts if packet.pts is not None else dts_in
                pts = round((base + (pts_in - zero) * tb) / out_tb)
                dts = round((base + (dts_in - zero) * tb) / out_tb)
                if last_dts is not None and dts <= last_dts:
                    dts = last_dts + 1
                if packet.duration:
                    packet.duration = round(packet.duration * tb / out_tb)
                packet.pts, packet.dts = max(pts, dts), dts
                packet.time_base = out_tb
                packet.stream = ostream
                out.mux(packet)
                last_dts, frames = dts, frames + 1
    return frames
