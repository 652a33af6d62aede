"""Camera placement: slot budgets, site pinning and the checks against the cluster's nodes."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from pydantic import ValidationError

from sentinel.config import AutoscalingSettings, CameraConfig, DetectorSettings, Settings
from sentinel.domain.placement import Demand, camera_demand, unschedulable_reason
from sentinel.serve.detector import detector_options

SLOT = "sentinel_camera_slot"


def node(
    resources: dict[str, float], labels: dict[str, str] | None = None, *, alive: bool = True
) -> dict[str, Any]:
    return {"Alive": alive, "NodeID": "n", "Resources": resources, "Labels": labels or {}}


def test_single_node_without_budget_asks_for_nothing() -> None:
    demand = camera_demand({}, {}, SLOT, [node({"CPU": 2.0})])
    assert demand == Demand({}, {})
    assert demand.actor_options() == {}
    assert unschedulable_reason(demand, [node({"CPU": 2.0})]) is None


def test_a_cluster_with_a_camera_budget_gets_a_slot_per_camera() -> None:
    nodes = [node({"CPU": 2.0}), node({"CPU": 8.0, SLOT: 8.0})]
    demand = camera_demand({}, {}, SLOT, nodes)
    assert demand.actor_options() == {"resources": {SLOT: 1.0}}
    # A dead node's budget does not count.
    assert camera_demand({}, {}, SLOT, [node({SLOT: 8.0}, alive=False)]).resources == {}
    assert camera_demand({}, {}, None, nodes).resources == {}


def test_pinning_by_label_and_resource() -> None:
    gate = node({"CPU": 4.0, "site_gate": 1.0}, {"site": "gate"})
    other = node({"CPU": 4.0}, {"site": "yard"})
    by_label = camera_demand({}, {"site": "gate"}, SLOT, [gate, other])
    assert by_label.actor_options() == {"label_selector": {"site": "gate"}}
    assert unschedulable_reason(by_label, [gate, other]) is None
    by_resource = camera_demand({"site_gate": 0.01}, {}, SLOT, [gate, other])
    assert by_resource.actor_options() == {"resources": {"site_gate": 0.01}}
    assert unschedulable_reason(by_resource, [gate, other]) is None


def test_a_gone_site_node_makes_the_camera_unschedulable_with_the_reason() -> None:
    gate_dead = node({"CPU": 4.0, "site_gate": 1.0}, {"site": "gate"}, alive=False)
    other = node({"CPU": 4.0}, {"site": "yard"})
    reason = unschedulable_reason(Demand({}, {"site": "gate"}), [gate_dead, other])
    assert reason is not None and "label site=gate" in reason and "1 alive node" in reason
    reason = unschedulable_reason(Demand({"site_gate": 0.01}, {}), [gate_dead, other])
    assert reason is not None and "site_gate>=0.01" in reason
    # Totals count, not what is free: a node that has too little is no home either.
    assert unschedulable_reason(Demand({"GPU": 2.0}), [node({"GPU": 1.0})]) is not None


def test_camera_placement_is_validated() -> None:
    cam = CameraConfig(id="c1", source="rtsp://cam.local/1", placement={"labels": {"site": "gate"}})
    assert cam.placement.labels == {"site": "gate"}
    with pytest.raises(ValidationError):
        CameraConfig(id="c1", source="rtsp://cam.local/1", placement={"resources": {"x": 0}})
    with pytest.raises(ValidationError):
        CameraConfig(id="c1", source="rtsp://cam.local/1", placement={"nodes": ["a"]})


def test_check_placement_fails_at_start_with_a_clear_message(tmp_path: Path) -> None:
    from sentinel.platform import check_placement

    settings = Settings(
        data_dir=tmp_path,
        agent={"enabled": False},
        detector={"num_gpus": 1},
        cameras=[
            {
                "id": "gate",
                "source": "rtsp://cam.local/1",
                "placement": {"labels": {"site": "gate"}},
            },
            {"id": "yard", "source": "rtsp://cam.local/1"},
        ],
    )
    nodes = [node({"CPU": 4.0}, {"site": "yard"})]
    with pytest.raises(ValueError) as err:
        check_placement(settings, nodes)
    message = str(err.value)
    assert "camera gate" in message and "label site=gate" in message
    assert "detector replica" in message and "GPU>=1" in message
    assert "camera yard" not in message
    check_placement(settings, [*nodes, node({"CPU": 8.0, "GPU": 1.0}, {"site": "gate"})])


def test_detector_is_fixed_by_default_and_autoscaled_when_configured() -> None:
    assert detector_options(DetectorSettings(replicas=3)) == {
        "num_replicas": 3,
        "ray_actor_options": {"num_cpus": 1.0, "num_gpus": 0.0},
    }
    scaled = detector_options(
        DetectorSettings(num_gpus=1, autoscaling={"min_replicas": 1, "max_replicas": 4})
    )
    assert "num_replicas" not in scaled
    assert scaled["autoscaling_config"]["max_replicas"] == 4
    assert scaled["ray_actor_options"]["num_gpus"] == 1
    # Serve accepts what we generate.
    from ray.serve.config import AutoscalingConfig

    AutoscalingConfig(**scaled["autoscaling_config"])
    with pytest.raises(ValidationError):
        AutoscalingSettings(min_replicas=3, max_replicas=2)


def test_a_camera_waits_for_a_free_slot_and_says_so() -> None:
    from sentinel.domain.placement import waiting_reason

    demand = Demand({SLOT: 1.0, "site_gate": 0.01})
    assert waiting_reason(demand, {SLOT: 0.0, "site_gate": 1.0}) == (
        f"waiting for a node with a free {SLOT}>=1 (0 free)"
    )
    assert waiting_reason(demand, {"site_gate": 1.0}) is not None  # none advertised free
    assert waiting_reason(demand, {SLOT: 1.0, "site_gate": 0.99}) is None
    assert waiting_reason(Demand(), {}) is None
