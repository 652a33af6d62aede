"""The cameras' and the agent's figures over the last hour, from samples of their counters.

Nothing keeps these figures' history (the actors keep running totals; /metrics shows the
current ones): each API process samples them every ``interval_s`` into a bounded ring in its
memory (an hour by default), and the series are the differences between consecutive samples.
A replica that just started has a short history; the history is lost with the process.
"""

from __future__ import annotations

import itertools
from collections import deque
from collections.abc import Collection, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any


@dataclass(frozen=True, slots=True)
class CameraSample:
    state: str
    frames_decoded: int
    frames_dropped: int
    detector_calls: int
    events_opened: int
    latency_total_ms: float
    latency_count: int
    batch_total: float
    batch_count: int


@dataclass(frozen=True, slots=True)
class Sample:
    at: datetime
    cameras: dict[str, CameraSample]
    agent: dict[str, float] | None = None  # backlog, decisions, failures, latency totals


def sample_of(
    at: datetime, statuses: Mapping[str, Mapping[str, Any]], agent: Mapping[str, Any] | None
) -> Sample:
    """A sample from the cameras' statuses (CameraStats dicts) and the agent worker's stats."""
    cameras: dict[str, CameraSample] = {}
    for cid, s in statuses.items():
        counters = s.get("counters") or {}
        latency = s.get("detector_latency_ms") or {}
        batches = s.get("batch_sizes") or {}
        cameras[cid] = CameraSample(
            state=str(s.get("state", "unknown")),
            frames_decoded=int(counters.get("frames_decoded", 0)),
            frames_dropped=int(counters.get("frames_dropped", 0)),
            detector_calls=int(counters.get("detector_calls", 0)),
            events_opened=int(counters.get("events_opened", 0)),
            latency_total_ms=float(latency.get("total", 0.0)),
            latency_count=int(latency.get("count", 0)),
            batch_total=float(batches.get("total", 0.0)),
            batch_count=int(batches.get("count", 0)),
        )
    summary = None
    if agent is not None:
        lat = agent.get("latency_ms") or {}
        summary = {
            "backlog": float(agent.get("backlog", 0)),
            "decisions": float(agent.get("decisions", 0)),
            "failures": float(agent.get("failures", 0)),
            "shed": float(agent.get("shed", 0)),
            "latency_total_ms": float(lat.get("total", 0.0)),
            "latency_count": float(lat.get("count", 0)),
        }
    return Sample(at, cameras, summary)


@dataclass
class SampleRing:
    """The last ``capacity`` samples, oldest first."""

    capacity: int = 360
    samples: deque[Sample] = field(default_factory=deque)

    def __post_init__(self) -> None:
        if self.capacity < 2:
            raise ValueError(f"capacity must be >= 2, got {self.capacity}")

    def add(self, sample: Sample) -> None:
        self.samples.append(sample)
        while len(self.samples) > self.capacity:
            self.samples.popleft()


def _ratio(num: float, den: float) -> float | None:
    return round(num / den, 3) if den > 0 else None


def system_series(samples: Collection[Sample], cameras: Collection[str] | None) -> dict[str, Any]:
    """Per interval between consecutive samples: each camera's decoded and dropped frames per
    second, detector calls per second, mean detector latency and batch size; the agent's
    backlog, decisions per minute and mean decision latency. Only ``cameras`` (None: all).

    A counter that went down (the camera actor restarted) starts over: that interval counts
    from zero.
    """
    ordered = sorted(samples, key=lambda s: s.at)
    times = [s.at.isoformat() for s in ordered[1:]]
    per_camera: dict[str, dict[str, list[Any]]] = {}
    agent: dict[str, list[Any]] = {"backlog": [], "decisions_per_min": [], "latency_ms": []}
    for i, (prev, cur) in enumerate(itertools.pairwise(ordered)):
        dt = (cur.at - prev.at).total_seconds()
        for cid, now in cur.cameras.items():
            if cameras is not None and cid not in cameras:
                continue
            series = per_camera.setdefault(
                cid,
                {
                    k: [None] * len(times)
                    for k in (
                        "state",
                        "fps_decoded",
                        "fps_dropped",
                        "detector_calls_per_s",
                        "detector_latency_ms",
                        "batch_size",
                    )
                },
            )
            before = prev.cameras.get(cid)

            def delta(a: float, b: float) -> float:
                return a - b if a >= b else a

            zero = CameraSample(now.state, 0, 0, 0, 0, 0.0, 0, 0.0, 0)
            b = before if before is not None else zero
            if now.frames_decoded < b.frames_decoded:
                b = zero  # restarted: its counters began again
            series["state"][i] = now.state
            series["fps_decoded"][i] = _ratio(delta(now.frames_decoded, b.frames_decoded), dt)
            series["fps_dropped"][i] = _ratio(delta(now.frames_dropped, b.frames_dropped), dt)
            series["detector_calls_per_s"][i] = _ratio(
                delta(now.detector_calls, b.detector_calls), dt
            )
            series["detector_latency_ms"][i] = _ratio(
                delta(now.latency_total_ms, b.latency_total_ms),
                delta(now.latency_count, b.latency_count),
            )
            series["batch_size"][i] = _ratio(
                delta(now.batch_total, b.batch_total), delta(now.batch_count, b.batch_count)
            )
        a0, a1 = prev.agent, cur.agent
        if a1 is None:
            for k in agent:
                agent[k].append(None)
            continue
        base = a0 if a0 is not None and a1["decisions"] >= a0["decisions"] else None
        decisions = a1["decisions"] - (base["decisions"] if base else 0.0)
        lat_n = a1["latency_count"] - (base["latency_count"] if base else 0.0)
        lat_t = a1["latency_total_ms"] - (base["latency_total_ms"] if base else 0.0)
        agent["backlog"].append(a1["backlog"])
        agent["decisions_per_min"].append(_ratio(decisions * 60.0, dt))
        agent["latency_ms"].append(_ratio(lat_t, lat_n))
    return {
        "times": times,
        "cameras": dict(sorted(per_camera.items())),
        "agent": agent if any(v is not None for vs in agent.values() for v in vs) else None,
    }
