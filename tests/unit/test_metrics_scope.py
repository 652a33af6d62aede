"""/metrics' camera scoping: every sample labelled with a hidden camera is left out."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import asdict
from typing import Any

import pytest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.parser import text_string_to_metric_families
from prometheus_client.registry import Collector, CollectorRegistry
from prometheus_client.samples import Sample

from sentinel.api.metrics import CAMERA_LABEL, _CameraScoped, render_metrics
from sentinel.domain.stats import LATENCY_BUCKETS_MS, CameraState, CameraStats, Histogram

CAMERAS = ("cam-a", "cam-b", "cam-c")


def _statuses() -> dict[str, dict[str, Any]]:
    out = {}
    for n, cam in enumerate(CAMERAS, start=1):
        st = CameraStats(camera_id=cam, state=CameraState.RUNNING, restarts=n)
        st.counters.frames_decoded = 10 * n
        st.detector_latency_ms.observe(5.0 * n)
        st.batch_sizes.observe(n)
        st.frame_to_event_ms.observe(100.0 * n)
        out[cam] = st.to_dict()
    return out


def _agent() -> dict[str, Any]:
    latency = Histogram(LATENCY_BUCKETS_MS)
    latency.observe(12.0)
    return {
        "backlog": 3,
        "decisions": 4,
        "failures": 0,
        "shed": 1,
        "parse_failures": 0,
        "stale_completions": 0,
        "retries": 0,
        "latency_ms": asdict(latency),
    }


def _samples(text: bytes) -> list[Sample]:
    return [s for fam in text_string_to_metric_families(text.decode()) for s in fam.samples]


def _cameras_seen(samples: list[Sample]) -> set[str]:
    return {s.labels[CAMERA_LABEL] for s in samples if CAMERA_LABEL in s.labels}


def test_every_camera_series_carries_the_camera_label() -> None:
    """A per-camera family that named its camera under another label would escape the filter."""
    samples = _samples(render_metrics(_statuses(), _agent()))
    for s in samples:
        others = {k for k, v in s.labels.items() if v in CAMERAS and k != CAMERA_LABEL}
        assert not others, f"{s.name} names a camera under {others}, not {CAMERA_LABEL!r}"
    assert _cameras_seen(samples) == set(CAMERAS)


@pytest.mark.parametrize(
    "allowed", [set(), {"cam-a"}, {"cam-a", "cam-c"}, {"cam-a", "gone"}, set(CAMERAS)]
)
def test_limited_caller_sees_only_its_cameras_in_every_family(allowed: set[str]) -> None:
    everything = _samples(render_metrics(_statuses(), _agent()))
    scoped = _samples(render_metrics(_statuses(), _agent(), cameras=allowed))
    expected = [
        s for s in everything if CAMERA_LABEL not in s.labels or s.labels[CAMERA_LABEL] in allowed
    ]
    assert scoped == expected
    assert _cameras_seen(scoped) == allowed & set(CAMERAS)
    # the series of no camera (the agent's) stay
    assert any(s.name == "sentinel_agent_backlog" and s.value == 3 for s in scoped)


def test_unrestricted_caller_sees_everything() -> None:
    assert render_metrics(_statuses(), _agent(), cameras=None) == render_metrics(
        _statuses(), _agent()
    )


class _FutureCollector(Collector):
    """A family nobody listed yet: a gauge per camera and zone, and one global counter."""

    def collect(self) -> Iterator[Metric]:
        zones = GaugeMetricFamily("sentinel_zone_occupancy", "x", labels=["zone", CAMERA_LABEL])
        zones.add_metric(["gate", "cam-a"], 1)
        zones.add_metric(["gate", "cam-b"], 2)
        yield zones
        yield CounterMetricFamily("sentinel_outbox_sent", "y", 7)


def test_scoping_is_by_label_not_by_family_name() -> None:
    registry = CollectorRegistry(auto_describe=False)
    registry.register(_CameraScoped(_FutureCollector(), {"cam-a"}))
    families = {f.name: f for f in registry.collect()}
    assert [s.labels for s in families["sentinel_zone_occupancy"].samples] == [
        {"zone": "gate", CAMERA_LABEL: "cam-a"}
    ]
    assert [s.value for s in families["sentinel_outbox_sent"].samples] == [7]
