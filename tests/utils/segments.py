"""Recorded segments for tests: a clip cut into segments by the real recorder, as a camera
records it, with the wall clock following the stream from a chosen start."""

from __future__ import annotations

from dataclasses import replace
from datetime import datetime, timedelta
from pathlib import Path

import av

from sentinel.store.segment_repo import SegmentInfo
from sentinel.video.recorder import SegmentRecorder, packet_time


def record_segments(clip: Path, keep: Path, start: datetime, segment_s: float) -> list[SegmentInfo]:
    """Cuts ``clip`` into ``segment_s`` segments (files kept in ``keep``) whose wall times
    begin at ``start``."""
    keep.mkdir(parents=True, exist_ok=True)
    infos: list[SegmentInfo] = []
    now = [start]

    def take(info: SegmentInfo) -> None:
        dest = keep / f"seg-{len(infos)}.mp4"
        info.path.replace(dest)
        infos.append(replace(info, path=dest))

    with av.open(str(clip)) as container:
        stream = container.streams.video[0]
        recorder = SegmentRecorder(
            directory=keep, template_stream=stream, on_segment=take, segment_s=segment_s,
            clock=lambda: now[0],
        )  # fmt: skip
        recorder.start()
        for packet in container.demux(stream):
            t = packet_time(packet)
            if packet.size and t is not None:
                now[0] = start + timedelta(seconds=t)  # the wall clock follows the stream
                recorder.feed(packet)
        recorder.stop()
    return infos
