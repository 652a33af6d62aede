"""The mining job's steps, Ray-free: plan chunks, scan them, choose frames, render them.

A job mines one camera's recordings over ``[start, end]`` (or, for tests and benchmarks, a
plain video file whose frame indices are known):

1. :func:`plan_chunks`: one chunk per stored segment overlapping the window;
2. :func:`scan_chunk` (the parallel step): decode the chunk's frames at ``sample_fps``, run
   the detector at the low threshold, keep each frame's detections and grey thumbnail;
3. :func:`choose` (on one process): the stretch's background and every frame's scene hash,
   then :func:`sentinel.train.mining.select` under the budget;
4. :func:`render_chunk` (parallel again): read the chosen frames back by random access and
   encode them as JPEG, as :class:`~sentinel.domain.annotation.QueueCandidate` s.

A segment that cannot be opened is skipped and counted; so is a frame that does not decode.
``sentinel.actors.mining`` runs steps 2 and 4 as Ray tasks; :func:`mine_locally` runs them
here, one after the other.
"""

from __future__ import annotations

import io
import logging
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Literal

import numpy as np
from numpy.typing import NDArray
from PIL import Image

from sentinel.domain.annotation import LabeledBox, QueueCandidate
from sentinel.domain.types import Detection
from sentinel.store.segment_repo import SegmentRecord
from sentinel.train.framehash import background, scene_hash, thumbnail
from sentinel.train.mining import FlaggedSpan, FrameObservation, MinedFrame, MiningParams, select
from sentinel.video.frames import UnreadableVideo, open_frames

__all__ = [
    "ChunkScan",
    "Detect",
    "Load",
    "MiningOutcome",
    "RenderResult",
    "ScanChunk",
    "ScannedFrame",
    "choose",
    "mine_locally",
    "plan_chunks",
    "render_chunk",
    "scan_chunk",
    "video_chunks",
]

logger = logging.getLogger(__name__)

Detect = Callable[[Sequence[NDArray[np.uint8]]], list[list[Detection]]]
"""The detector at the low threshold: detections per RGB frame (``YoloOnnx.detect``)."""

ChunkSource = Literal["recording", "video"]
_BACKGROUND_FRAMES = 200  # thumbnails the median background is taken over (evenly spaced)
_DETECT_BATCH = 4


@dataclass(frozen=True, slots=True)
class ScanChunk:
    """A piece of video one task scans.

    Attributes:
        key: Unique within the job: the segment's id, or ``video:<first index>``.
        camera_id: The camera it belongs to.
        source: "recording" (an object key) or "video" (a file path, frame indices known).
        location: The segment's object key, or the video file's path.
        start_at: Wall time of the chunk's frame 0.
        window_start: Frames before are not scanned.
        window_end: Frames after are not scanned.
        first_index: For a video: the first frame index of the chunk (the rest of the file is
            another chunk's); 0 for a segment.
        last_index: For a video: one past the chunk's last frame index; None: to the end.
    """

    key: str
    camera_id: str
    source: ChunkSource
    location: str
    start_at: datetime
    window_start: datetime
    window_end: datetime
    first_index: int = 0
    last_index: int | None = None


Load = Callable[[ScanChunk], "Path | bytes"]
"""The chunk's video: the segment's bytes from the object store, or the file's path."""


@dataclass(frozen=True, slots=True)
class ScannedFrame:
    position: int  # index in the chunk's video
    ts: datetime
    detections: tuple[Detection, ...]
    thumb: NDArray[np.uint8]


@dataclass
class ChunkScan:
    """What a task found in its chunk."""

    chunk: ScanChunk
    frames: list[ScannedFrame] = field(default_factory=list)
    width: int = 0
    height: int = 0
    frames_skipped: int = 0
    error: str | None = None  # the chunk could not be read at all


@dataclass
class RenderResult:
    candidates: list[QueueCandidate] = field(default_factory=list)
    frames_skipped: int = 0
    error: str | None = None


@dataclass
class MiningOutcome:
    """A job's result and counts."""

    chunks: int = 0
    chunks_skipped: int = 0
    frames_scanned: int = 0
    frames_skipped: int = 0
    chosen: list[MinedFrame] = field(default_factory=list)
    candidates: list[QueueCandidate] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)


def plan_chunks(
    segments: Sequence[SegmentRecord], camera_id: str, start: datetime, end: datetime
) -> list[ScanChunk]:
    """One chunk per segment of ``camera_id`` overlapping ``[start, end]``, in time order."""
    if end <= start:
        raise ValueError(f"end ({end.isoformat()}) must be after start ({start.isoformat()})")
    return [
        ScanChunk(seg.id, camera_id, "recording", seg.object_key, seg.start_at, start, end)
        for seg in sorted(segments, key=lambda s: s.start_at)
        if seg.camera_id == camera_id and seg.start_at <= end and seg.end_at >= start
    ]


def video_chunks(
    path: Path,
    camera_id: str,
    start_at: datetime,
    *,
    frames: int,
    fps: float,
    first: int = 0,
    last: int | None = None,
    chunk_frames: int = 100,
) -> list[ScanChunk]:
    """Chunks of a plain video file's frames ``first..last-1`` (``chunk_frames`` each); frame
    ``i`` is at ``start_at + i / fps``."""
    stop = frames if last is None else min(last, frames)
    if not 0 <= first < stop:
        raise ValueError(f"need 0 <= first < last <= {frames}, but got {first} and {stop}")
    if fps <= 0 or chunk_frames < 1:
        raise ValueError(f"fps and chunk_frames must be positive, got {fps} and {chunk_frames}")
    window_end = start_at + timedelta(seconds=frames / fps)
    return [
        ScanChunk(
            f"video:{lo}",
            camera_id,
            "video",
            str(path),
            start_at,
            start_at,
            window_end,
            first_index=lo,
            last_index=min(lo + chunk_frames, stop),
        )
        for lo in range(first, stop, chunk_frames)
    ]


def _sampled(
    times: NDArray[np.float64], chunk: ScanChunk, sample_fps: float
) -> Iterator[tuple[int, datetime]]:
    """The chunk's positions to scan: inside the window, at most ``sample_fps`` per second
    (the first frame of each 1/sample_fps step of wall time)."""
    last_slot: int | None = None
    stop = len(times) if chunk.last_index is None else min(chunk.last_index, len(times))
    for position in range(chunk.first_index, stop):
        ts = chunk.start_at + timedelta(seconds=float(times[position]))
        if ts < chunk.window_start or ts > chunk.window_end:
            continue
        # Frame times are microsecond-rounded: 0.3 s may be 0.299999 (a tolerance of 1e-3 slot).
        slot = int((ts - chunk.window_start).total_seconds() * sample_fps + 1e-3)
        if slot != last_slot:
            last_slot = slot
            yield position, ts


def scan_chunk(chunk: ScanChunk, load: Load, detect: Detect, *, sample_fps: float) -> ChunkScan:
    """Decodes and detects the chunk's sampled frames; an unreadable chunk is reported in
    ``error`` (never raised), a frame that does not decode is counted."""
    if sample_fps <= 0:
        raise ValueError(f"sample_fps must be positive, but got {sample_fps}")
    result = ChunkScan(chunk)
    try:
        reader = open_frames(load(chunk), name=chunk.location)
    except (UnreadableVideo, OSError, LookupError) as exc:
        result.error = f"{chunk.location}: {exc}"
        logger.warning("mining: chunk skipped: %s", result.error)
        return result
    wanted = dict(_sampled(reader.times, chunk, sample_fps))
    batch: list[tuple[int, NDArray[np.uint8]]] = []

    def flush() -> None:
        found = detect([f for _, f in batch])
        for (position, frame), dets in zip(batch, found, strict=True):
            result.frames.append(
                ScannedFrame(position, wanted[position], tuple(dets), thumbnail(frame))
            )
        batch.clear()

    for position, frame in reader.read(sorted(wanted)):
        result.height, result.width = int(frame.shape[0]), int(frame.shape[1])
        batch.append((position, frame))
        if len(batch) == _DETECT_BATCH:
            flush()
    if batch:
        flush()
    result.frames_skipped = reader.skipped
    return result


def frame_key(chunk: ScanChunk, position: int) -> str:
    return f"{chunk.key}#{position}"


def _frame_index(chunk: ScanChunk, position: int) -> int | None:
    return position if chunk.source == "video" else None


def choose(
    scans: Sequence[ChunkScan],
    budget: int,
    params: MiningParams,
    *,
    spans: Sequence[FlaggedSpan] = (),
    queued: Sequence[int] = (),
) -> list[MinedFrame]:
    """The stretch's background, every frame's scene hash, then the selection."""
    scanned = sorted(
        ((scan.chunk, f) for scan in scans for f in scan.frames), key=lambda cf: cf[1].ts
    )
    if not scanned:
        return []
    thumbs = [f.thumb for _, f in scanned]
    stride = max(1, len(thumbs) // _BACKGROUND_FRAMES)
    bg = background(thumbs[::stride])
    observations = [
        FrameObservation(
            frame_key(chunk, f.position),
            f.ts,
            f.detections,
            scene_hash(f.thumb, bg),
            _frame_index(chunk, f.position),
        )
        for chunk, f in scanned
    ]
    return select(observations, budget, params, spans=spans, queued=queued)


def render_chunk(
    chunk: ScanChunk,
    chosen: Sequence[MinedFrame],
    load: Load,
    *,
    prelabel_threshold: float,
    labels: frozenset[str] | None = None,
    quality: int = 90,
) -> RenderResult:
    """The chunk's chosen frames as queue candidates (JPEG, pre-labels, reasons)."""
    result = RenderResult()
    by_position = {int(m.frame.key.rsplit("#", 1)[1]): m for m in chosen}
    try:
        reader = open_frames(load(chunk), name=chunk.location)
    except (UnreadableVideo, OSError, LookupError) as exc:
        result.error = f"{chunk.location}: {exc}"
        result.frames_skipped = len(by_position)
        return result
    for position, frame in reader.read(sorted(by_position)):
        mined = by_position[position]
        buf = io.BytesIO()
        Image.fromarray(frame).save(buf, format="JPEG", quality=quality)
        prelabels = tuple(
            LabeledBox(d.label, d.box.x1, d.box.y1, d.box.x2, d.box.y2, score=round(d.score, 4))
            for d in mined.frame.detections
            if d.score >= prelabel_threshold and (labels is None or d.label in labels)
        )
        result.candidates.append(
            QueueCandidate(
                camera_id=chunk.camera_id,
                frame_ts=mined.frame.ts,
                frame_index=mined.frame.frame_index,
                source=chunk.source,
                width=int(frame.shape[1]),
                height=int(frame.shape[0]),
                phash=mined.frame.phash,
                score=round(mined.score, 6),
                reasons=mined.reasons,
                prelabels=prelabels,
                image_jpeg=buf.getvalue(),
            )
        )
    result.frames_skipped = reader.skipped
    return result


def chunks_of(chosen: Sequence[MinedFrame]) -> dict[str, list[MinedFrame]]:
    """The chosen frames grouped by the chunk key they were scanned in."""
    out: dict[str, list[MinedFrame]] = {}
    for mined in chosen:
        out.setdefault(mined.frame.key.rsplit("#", 1)[0], []).append(mined)
    return out


def tally_scans(outcome: MiningOutcome, scans: Sequence[ChunkScan]) -> None:
    outcome.chunks += len(scans)
    for scan in scans:
        outcome.frames_scanned += len(scan.frames)
        outcome.frames_skipped += scan.frames_skipped
        if scan.error is not None:
            outcome.chunks_skipped += 1
            outcome.errors.append(scan.error)


def tally_renders(outcome: MiningOutcome, renders: Sequence[RenderResult]) -> None:
    for render in renders:
        outcome.candidates.extend(render.candidates)
        outcome.frames_skipped += render.frames_skipped
        if render.error is not None:
            outcome.errors.append(render.error)


def mine_locally(
    chunks: Sequence[ScanChunk],
    budget: int,
    *,
    load: Load,
    detect: Detect,
    params: MiningParams,
    sample_fps: float,
    prelabel_threshold: float,
    spans: Sequence[FlaggedSpan] = (),
    queued: Sequence[int] = (),
) -> MiningOutcome:
    """All steps on this process, one after the other (no cluster needed)."""
    outcome = MiningOutcome()
    scans = [scan_chunk(c, load, detect, sample_fps=sample_fps) for c in chunks]
    tally_scans(outcome, scans)
    outcome.chosen = choose(scans, budget, params, spans=spans, queued=queued)
    by_key = {c.key: c for c in chunks}
    renders = [
        render_chunk(
            by_key[key], group, load, prelabel_threshold=prelabel_threshold, labels=params.labels
        )
        for key, group in chunks_of(outcome.chosen).items()
    ]
    tally_renders(outcome, renders)
    return outcome
