"""Prometheus exposition of the cameras' counters and histograms.

Each camera actor keeps its own counters (its process is its own); the ingress gathers their
statuses through the supervisor and renders them here, so one scrape sees the whole cluster.

A caller limited to some cameras gets only those cameras' series: every sample carrying a
``camera`` label (:data:`CAMERA_LABEL`) is dropped unless its camera is allowed, whatever the
family, so a family added later is scoped without being listed anywhere. A per-camera series
must therefore use that label for the camera id; series without it (the agent's) are kept.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Set
from typing import Any

from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)
from prometheus_client.exposition import generate_latest
from prometheus_client.registry import Collector, CollectorRegistry

from sentinel.domain.stats import CameraState, CameraStats, Histogram

CAMERA_LABEL = "camera"

_COUNTERS = {
    "frames_decoded": "Frames decoded from the source.",
    "frames_sampled": "Frames sampled for analysis at detect_fps.",
    "frames_dropped": "Sampled frames dropped because analysis fell behind.",
    "frames_skipped_motion": "Sampled frames the motion gate kept from the detector.",
    "decode_errors": "Packets that failed to decode.",
    "detector_calls": "Detector calls.",
    "detector_calls_shared": "Detector calls batched with frames of other cameras.",
    "detector_errors": "Detector calls that failed.",
    "region_frames": "Frames detected on motion regions (crops) instead of whole.",
    "regions": "Region crops sent to the detector.",
    "region_fallbacks": "Frames whose region planning failed (sent whole instead).",
    "events_opened": "Events opened.",
    "events_closed": "Events closed.",
    "events_journaled": "Event changes the store refused, kept in the camera's journal.",
    "events_dropped": "Event changes lost because the store was down and the journal full.",
    "reconnects": "Source reconnect attempts.",
    "rule_matches": "Operators' rule matches on analysed frames.",
    "rule_alerts": "Alerts raised by operators' rules.",
    "rule_failures": "Frames on which the rule engine failed (the camera went on).",
}
_HISTOGRAMS = {
    "detector_latency_ms": ("sentinel_detector_latency_ms", "Detector call latency (ms)."),
    "batch_sizes": ("sentinel_detector_batch_size", "Batch size a frame was detected in."),
    "frame_to_event_ms": (
        "sentinel_frame_to_event_ms",
        "From decoding a frame to storing the event it opened (ms).",
    ),
}


class _CamerasCollector(Collector):
    def __init__(self, statuses: Mapping[str, Mapping[str, Any]]) -> None:
        self.stats = [CameraStats.from_dict(dict(s)) for s in statuses.values()]

    def collect(self) -> Iterator[Metric]:
        for name, doc in _COUNTERS.items():
            fam = CounterMetricFamily(f"sentinel_{name}", doc, labels=["camera"])
            for st in self.stats:
                fam.add_metric([st.camera_id], getattr(st.counters, name))
            yield fam
        for attr, (name, doc) in _HISTOGRAMS.items():
            hist = HistogramMetricFamily(name, doc, labels=["camera"])
            for st in self.stats:
                h = getattr(st, attr)
                hist.add_metric([st.camera_id], h.cumulative(), h.total)
            yield hist
        state = GaugeMetricFamily(
            "sentinel_camera_status",
            "1 for the camera's current state.",
            labels=["camera", "state"],
        )
        restarts = GaugeMetricFamily(
            "sentinel_camera_restarts", "Restarts after crashes.", labels=["camera"]
        )
        for st in self.stats:
            for s in CameraState:
                state.add_metric([st.camera_id, s.value], 1.0 if st.state is s else 0.0)
            restarts.add_metric([st.camera_id], st.restarts)
        yield state
        yield restarts


class _AgentCollector(Collector):
    """The agent worker's queue and decisions (see AgentWorkerActor.stats)."""

    def __init__(self, stats: Mapping[str, Any]) -> None:
        self.stats = stats

    def collect(self) -> Iterator[Metric]:
        yield GaugeMetricFamily(
            "sentinel_agent_backlog", "Rule alerts waiting for the LLM.", self.stats["backlog"]
        )
        for name, doc in (
            ("decisions", "LLM verdicts stored."),
            ("failures", "Events the LLM could not decide (the rule decision stands)."),
            ("shed", "Events shed to the rule decision under overload."),
            ("parse_failures", "LLM answers that did not parse."),
            (
                "stale_completions",
                "Late completions refused because the item was leased again meanwhile.",
            ),
            ("retries", "Items held back for a retry because no backend answered."),
        ):
            yield CounterMetricFamily(f"sentinel_agent_{name}", doc, self.stats[name])
        h = Histogram.from_dict(self.stats["latency_ms"])
        hist = HistogramMetricFamily(
            "sentinel_agent_decision_latency_ms", "From dequeue to stored verdict (ms)."
        )
        hist.add_metric([], h.cumulative(), h.total)
        yield hist


class _CameraScoped(Collector):
    """Another collector's families without the samples of cameras outside ``cameras``."""

    def __init__(self, inner: Collector, cameras: Set[str]) -> None:
        self.inner = inner
        self.cameras = cameras

    def collect(self) -> Iterator[Metric]:
        for family in self.inner.collect():
            kept = Metric(family.name, family.documentation, family.type, family.unit)
            kept.samples = [
                s
                for s in family.samples
                if CAMERA_LABEL not in s.labels or s.labels[CAMERA_LABEL] in self.cameras
            ]
            yield kept


class _GatewayCollector(Collector):
    """This replica's rate limiter: how often, and how much, it metered without Redis."""

    def __init__(self, failovers: int, fallback_hits: int) -> None:
        self.failovers = failovers
        self.fallback_hits = fallback_hits

    def collect(self) -> Iterator[Metric]:
        yield CounterMetricFamily(
            "sentinel_ratelimit_failovers",
            "Times the shared rate limiter (Redis) became unavailable to this replica.",
            self.failovers,
        )
        yield CounterMetricFamily(
            "sentinel_ratelimit_fallback_hits",
            "Requests this replica metered in-process because the shared limiter was down.",
            self.fallback_hits,
        )


class _SearchCollector(Collector):
    """The search index's lag: items queued for indexing and the age of the oldest."""

    def __init__(self, lag: Mapping[str, Any]) -> None:
        self.lag = lag

    def collect(self) -> Iterator[Metric]:
        yield GaugeMetricFamily(
            "sentinel_search_backlog",
            "Events and incidents waiting to be indexed for search.",
            self.lag["backlog"],
        )
        yield GaugeMetricFamily(
            "sentinel_search_lag_seconds",
            "Age of the oldest item waiting to be indexed (0 when none waits).",
            self.lag["oldest_pending_age_s"] or 0.0,
        )


def render_metrics(
    statuses: Mapping[str, Mapping[str, Any]],
    agent: Mapping[str, Any] | None = None,
    *,
    cameras: Set[str] | None = None,
    ratelimit: tuple[int, int] | None = None,
    search: Mapping[str, Any] | None = None,
) -> bytes:
    """Prometheus text format for ``statuses`` (camera id -> CameraStats dict) and, when the
    agent runs, its worker's stats.

    Args:
        statuses: Camera id -> ``CameraStats.to_dict()``.
        agent: The agent worker's stats, or None when it does not run.
        cameras: The camera ids the caller may see; None means every camera. Samples labelled
            with another camera are left out of every family.
        ratelimit: This replica's rate-limiter failovers and in-process hits, when known.
        search: The search index's lag (``SearchService.lag()``), when search is on.
    """
    collectors: list[Collector] = [_CamerasCollector(statuses)]
    if agent is not None:
        collectors.append(_AgentCollector(agent))
    if ratelimit is not None:
        collectors.append(_GatewayCollector(*ratelimit))
    if search is not None:
        collectors.append(_SearchCollector(search))
    registry = CollectorRegistry(auto_describe=False)
    for collector in collectors:
        registry.register(collector if cameras is None else _CameraScoped(collector, cameras))
    return generate_latest(registry)
