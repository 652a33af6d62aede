"""Camera state and counters: what a camera reports about itself (status API and metrics)."""

from __future__ import annotations

from bisect import bisect_left
from dataclasses import asdict, dataclass, field
from enum import StrEnum
from typing import Any

LATENCY_BUCKETS_MS: tuple[float, ...] = (5, 10, 25, 50, 75, 100, 150, 250, 500, 1000, 2500, 5000)
BATCH_BUCKETS: tuple[float, ...] = (1, 2, 4, 8, 16, 32, 64)


class CameraState(StrEnum):
    STARTING = "starting"
    RUNNING = "running"
    RECONNECTING = "reconnecting"
    FINISHED = "finished"
    FAILED = "failed"
    STOPPED = "stopped"
    UNSCHEDULABLE = "unschedulable"  # no alive node meets its placement; waits for one


@dataclass(slots=True)
class Histogram:
    """A cumulative-bucket histogram in the Prometheus sense (``le`` upper bounds, plus +Inf)."""

    bounds: tuple[float, ...]
    counts: list[int] = field(default_factory=list)
    total: float = 0.0
    count: int = 0

    def __post_init__(self) -> None:
        if not self.counts:
            self.counts = [0] * (len(self.bounds) + 1)

    def observe(self, value: float) -> None:
        self.counts[bisect_left(self.bounds, value)] += 1
        self.total += value
        self.count += 1

    def merge(self, other: Histogram) -> None:
        if other.bounds != self.bounds:
            raise ValueError(
                f"cannot merge histograms with bounds {other.bounds} into {self.bounds}"
            )
        self.counts = [a + b for a, b in zip(self.counts, other.counts, strict=True)]
        self.total += other.total
        self.count += other.count

    def cumulative(self) -> list[tuple[str, int]]:
        """``(le, cumulative count)`` pairs ending with ``+Inf``."""
        out: list[tuple[str, int]] = []
        running = 0
        for bound, n in zip(
            [*(str(float(b)) for b in self.bounds), "+Inf"], self.counts, strict=True
        ):
            running += n
            out.append((bound, running))
        return out

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Histogram:
        return cls(tuple(data["bounds"]), list(data["counts"]), data["total"], data["count"])


@dataclass(slots=True)
class CameraCounters:
    frames_decoded: int = 0
    frames_sampled: int = 0
    frames_dropped: int = 0
    frames_skipped_motion: int = 0
    decode_errors: int = 0
    detector_calls: int = 0
    detector_calls_shared: int = 0
    detector_errors: int = 0
    # Motion regions: frames detected on crops instead of whole, the crops sent, and frames
    # whose region planning failed (sent whole instead).
    region_frames: int = 0
    regions: int = 0
    region_fallbacks: int = 0
    events_opened: int = 0
    events_closed: int = 0
    # Event changes the store refused, written to the camera's journal for replay.
    events_journaled: int = 0
    # Event changes lost: past the journal's disk budget (or the in-memory cap without a
    # journal), a failed journal write, or a damaged journal line.
    events_dropped: int = 0
    reconnects: int = 0
    # Operators' rules: matches on analysed frames, alerts they raised, frames on which the
    # rule engine failed (the camera goes on; the error is in ``last_error``).
    rule_matches: int = 0
    rule_alerts: int = 0
    rule_failures: int = 0


@dataclass(slots=True)
class CameraStats:
    """Everything a camera reports: state, last error, counters and histograms."""

    camera_id: str
    state: CameraState = CameraState.STARTING
    last_error: str | None = None
    source: str = ""
    codec: str | None = None
    width: int | None = None
    height: int | None = None
    fps: float | None = None
    restarts: int = 0
    counters: CameraCounters = field(default_factory=CameraCounters)
    detector_latency_ms: Histogram = field(default_factory=lambda: Histogram(LATENCY_BUCKETS_MS))
    batch_sizes: Histogram = field(default_factory=lambda: Histogram(BATCH_BUCKETS))
    frame_to_event_ms: Histogram = field(default_factory=lambda: Histogram(LATENCY_BUCKETS_MS))
    recording: dict[str, Any] | None = None

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["state"] = str(self.state)
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> CameraStats:
        return cls(
            camera_id=data["camera_id"],
            state=CameraState(data["state"]),
            last_error=data.get("last_error"),
            source=data.get("source", ""),
            codec=data.get("codec"),
            width=data.get("width"),
            height=data.get("height"),
            fps=data.get("fps"),
            restarts=data.get("restarts", 0),
            counters=CameraCounters(**data.get("counters", {})),
            detector_latency_ms=Histogram.from_dict(data["detector_latency_ms"]),
            batch_sizes=Histogram.from_dict(data["batch_sizes"]),
            frame_to_event_ms=Histogram.from_dict(data["frame_to_event_ms"]),
            recording=data.get("recording"),
        )
