"""The cluster configs under cluster/, each checked with Ray's (or Prometheus') own loader."""

from __future__ import annotations

import copy
import json
import re
from dataclasses import asdict
from pathlib import Path
from typing import Any

import jsonschema  # type: ignore[import-untyped]
import pytest
import yaml
from click.testing import CliRunner
from prometheus_client.parser import text_string_to_metric_families
from ray.autoscaler._private.util import prepare_config, validate_config
from ray.serve.schema import ServeDeploySchema

from sentinel.api.metrics import render_metrics
from sentinel.cli import main
from sentinel.config import load_settings
from sentinel.domain.stats import LATENCY_BUCKETS_MS, CameraState, CameraStats, Histogram
from sentinel.platform import APP_IMPORT_PATH, serve_config

ROOT = Path(__file__).resolve().parents[2]
CLUSTER = ROOT / "cluster"
CONFIG_ON_NODES = "/etc/sentinel/sentinel.yaml"


def _cluster_yaml() -> dict[str, Any]:
    data: dict[str, Any] = yaml.safe_load((CLUSTER / "ray-cluster.yaml").read_text())
    return data


def test_cluster_launcher_config_validates() -> None:
    config = _cluster_yaml()
    # What `ray up` does before it talks to the provider: fill the defaults, then validate.
    validate_config(prepare_config(config))
    types = config["available_node_types"]
    assert types["cpu"]["resources"]["sentinel_camera_slot"] > 0
    assert types["gpu"]["resources"]["GPU"] == 1
    assert types["site-gate"]["labels"] == {"site": "gate"}
    assert types[config["head_node_type"]]["resources"]["sentinel_camera_slot"] == 0
    assert "Dockerfile" in (CLUSTER / "ray-cluster.yaml").read_text()
    # The validation can fail: a worker type without resources is refused.
    broken = copy.deepcopy(config)
    del broken["available_node_types"]["cpu"]["resources"]
    with pytest.raises(jsonschema.ValidationError):
        validate_config(prepare_config(broken))


def test_cluster_launcher_and_rayservice_use_the_dockerfile_image() -> None:
    image = _cluster_yaml()["docker"]["image"]
    assert (ROOT / "Dockerfile").is_file()
    service = (CLUSTER / "kuberay" / "rayservice.yaml").read_text()
    assert f"image: {image}" in service


def _rayservice() -> dict[str, Any]:
    docs = list(yaml.safe_load_all((CLUSTER / "kuberay" / "rayservice.yaml").read_text()))
    (service,) = [d for d in docs if d["kind"] == "RayService"]
    return dict(service)


def test_rayservice_embeds_the_serve_config_sentinel_generates() -> None:
    service = _rayservice()
    embedded = yaml.safe_load(service["spec"]["serveConfigV2"])
    ServeDeploySchema.model_validate(embedded)  # Serve's own schema
    settings = load_settings(CLUSTER / "sentinel.yaml")
    assert embedded == serve_config(settings, CONFIG_ON_NODES)
    app = embedded["applications"][0]
    assert app["import_path"] == APP_IMPORT_PATH
    detector = {d["name"]: d for d in app["deployments"]}["Detector"]
    assert detector["ray_actor_options"]["num_gpus"] == 1
    assert detector["autoscaling_config"]["max_replicas"] == 4
    cluster = service["spec"]["rayClusterConfig"]
    assert cluster["enableInTreeAutoscaling"] is True
    groups = {g["groupName"]: g for g in cluster["workerGroupSpecs"]}
    assert set(groups) == {"cpu", "gpu", "site-gate"}
    assert all(g["minReplicas"] <= g["maxReplicas"] for g in groups.values())


def test_serve_config_command_prints_a_valid_config(tmp_path: Path) -> None:
    config = tmp_path / "sentinel.yaml"
    config.write_text(yaml.safe_dump({"detector": {"replicas": 2}, "agent": {"enabled": False}}))
    result = CliRunner().invoke(main, ["serve-config", "--config", str(config)])
    assert result.exit_code == 0, result.output
    printed = yaml.safe_load(result.output)
    schema = ServeDeploySchema.model_validate(printed)
    app = schema.applications[0]
    assert app.args == {"config": str(config)}
    detector = {d.name: d for d in app.deployments}["Detector"]
    assert detector.num_replicas == 2
    # Broken on purpose: Serve's schema refuses both a fixed count and autoscaling.
    printed["applications"][0]["deployments"][1]["autoscaling_config"] = {"max_replicas": 3}
    with pytest.raises(ValueError):
        ServeDeploySchema.model_validate(printed)


def _exported_sample_names() -> set[str]:
    statuses = {}
    for cam in ("a", "b"):
        st = CameraStats(camera_id=cam, state=CameraState.RUNNING)
        st.detector_latency_ms.observe(5.0)
        statuses[cam] = st.to_dict()
    latency = Histogram(LATENCY_BUCKETS_MS)
    agent = {
        "backlog": 0,
        "decisions": 0,
        "failures": 0,
        "shed": 0,
        "parse_failures": 0,
        "stale_completions": 0,
        "retries": 0,
        "latency_ms": asdict(latency),
    }
    text = render_metrics(statuses, agent, ratelimit=(0, 0)).decode()
    return {s.name for fam in text_string_to_metric_families(text) for s in fam.samples}


def test_grafana_dashboard_uses_only_metrics_sentinel_exports() -> None:
    dashboard = json.loads((CLUSTER / "grafana-dashboard.json").read_text())
    exported = _exported_sample_names()
    rows = [p["title"] for p in dashboard["panels"] if p["type"] == "row"]
    assert rows == ["Cameras", "Detector", "Agent", "Alerts", "Storage"]
    used: set[str] = set()
    for panel in dashboard["panels"]:
        if panel["type"] == "row":
            continue
        names = {n for t in panel["targets"] for n in re.findall(r"sentinel_\w+", t["expr"])}
        assert names, panel["title"]
        assert names <= exported, (panel["title"], names - exported)
        used |= names
    assert len(used) >= 15


def test_prometheus_config_scrapes_sentinel_and_ray() -> None:
    config = yaml.safe_load((CLUSTER / "prometheus.yml").read_text())
    jobs = {job["job_name"]: job for job in config["scrape_configs"]}
    assert jobs["sentinel"]["metrics_path"] == "/metrics"
    assert "X-API-Key" in jobs["sentinel"]["http_headers"]
    assert jobs["ray"]["file_sd_configs"][0]["files"] == [
        "/tmp/ray/prom_metrics_service_discovery.json"
    ]
