"""Camera placement on the session's Ray cluster: pinned cameras, unschedulable ones, nodes."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
import ray

from sentinel.actors.camera import camera_actor_name
from tests.integration.conftest import Stack, wait_for
from tests.utils.media import h264_clip


@pytest.fixture(scope="module")
def clip(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return h264_clip(tmp_path_factory.mktemp("clips"), seconds=20)


def _add(stack: Stack, **body: object) -> None:
    r = stack.http.post("/api/v1/cameras", json=body)
    assert r.status_code == 201, r.text


def _remove(stack: Stack, camera_id: str) -> None:
    assert stack.http.delete(f"/api/v1/cameras/{camera_id}").status_code == 204


def test_camera_pinned_to_a_missing_site_is_unschedulable(
    sentinel_stack: Stack, clip: Path
) -> None:
    stack = sentinel_stack
    for cid, placement, wanted in [
        ("pin-label", {"labels": {"site": "nowhere"}}, "label site=nowhere"),
        ("pin-res", {"resources": {"site_nowhere": 0.01}}, "site_nowhere>=0.01"),
    ]:
        _add(stack, id=cid, source=str(clip), detect=False, placement=placement)
        try:
            cam = stack.wait_state(cid, "unschedulable", timeout=60)
            assert wanted in cam["status"]["last_error"], cam["status"]
            assert cam["status"]["node"] is None
            # Not started anywhere else.
            with pytest.raises(ValueError):
                ray.get_actor(camera_actor_name(cid), namespace=stack.settings.namespace)
        finally:
            _remove(stack, cid)


def test_camera_reports_its_node_and_runs_where_pinned(sentinel_stack: Stack, clip: Path) -> None:
    stack = sentinel_stack
    alive = [n for n in ray.nodes() if n["Alive"]]  # type: ignore[no-untyped-call]
    assert len(alive) == 1
    node_id = alive[0]["NodeID"]
    _add(
        stack,
        id="pin-node",
        source=str(clip),
        detect=False,
        realtime=True,
        placement={"labels": {"ray.io/node-id": node_id}},
    )
    try:
        cam = stack.wait_state("pin-node", "running", "finished", timeout=90)
        node = cam["status"]["node"]
        assert node["node_id"] == node_id, node
        assert node["labels"]["ray.io/node-id"] == node_id
        assert node["ip"]
        listed = {c["id"]: c for c in stack.http.get("/api/v1/cameras").json()}
        assert listed["pin-node"]["status"]["node"]["node_id"] == node_id
    finally:
        _remove(stack, "pin-node")


def test_start_refuses_a_config_no_node_can_run(
    sentinel_stack: Stack, onnx_model: Path, tmp_path: Path
) -> None:
    from ray import serve

    from sentinel import platform as runtime
    from sentinel.config import Settings

    settings = Settings(
        data_dir=tmp_path,
        app_name="refused",
        namespace=sentinel_stack.settings.namespace,
        detector={"model_path": onnx_model, "num_gpus": 1},
        agent={"enabled": False},
        rulegen={"enabled": False},
        voice={"enabled": False},
        cameras=[
            {
                "id": "gate",
                "source": "rtsp://127.0.0.1:9/gate",
                "placement": {"labels": {"site": "gate"}},
            }
        ],
    )
    with pytest.raises(ValueError) as err:
        runtime.start(settings)
    message = str(err.value)
    assert "camera gate: no alive node offers label site=gate" in message
    assert "detector replica: no alive node offers CPU>=1, GPU>=1" in message
    assert "refused" not in serve.status().applications  # nothing was deployed


def test_app_builder_builds_the_app_from_a_config_file(onnx_model: Path, tmp_path: Path) -> None:
    """What `serve run`/`serve deploy`/KubeRay import: storage ready, cameras seeded, an app."""
    import yaml
    from ray.serve import Application

    from sentinel.config import Settings
    from sentinel.platform import app_builder
    from sentinel.store.db import make_engine
    from sentinel.store.repo import CameraRepository

    config = tmp_path / "sentinel.yaml"
    config.write_text(
        yaml.safe_dump(
            {
                "data_dir": str(tmp_path / "data"),
                "detector": {"model_path": str(onnx_model)},
                "agent": {"enabled": False},
                "voice": {"enabled": False},
                "cameras": [{"id": "gate", "source": "rtsp://127.0.0.1:9/gate"}],
            }
        )
    )
    app = app_builder({"config": str(config)})
    assert isinstance(app, Application)
    settings = Settings(data_dir=tmp_path / "data")
    assert [cid for cid, _ in CameraRepository(make_engine(settings.db_url)).list()] == ["gate"]
    with pytest.raises(ValueError):  # a bad path fails the build, with the file named
        app_builder({"config": str(tmp_path / "missing.yaml")})


@pytest.fixture
def gate_node(sentinel_stack: Stack, tmp_path: Path) -> Iterator[subprocess.Popen[bytes]]:
    """A second Ray node on this machine, labelled site=gate with a budget of one camera,
    joined to the session's cluster."""
    gcs = ray.get_runtime_context().gcs_address
    before = {n["NodeID"] for n in ray.nodes()}  # type: ignore[no-untyped-call]
    with (tmp_path / "gate-node.log").open("wb") as log:
        process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "ray.scripts.scripts",
                "start",
                f"--address={gcs}",
                "--block",
                "--num-cpus=1",
                "--labels=site=gate",
                '--resources={"sentinel_camera_slot": 1}',
                "--node-ip-address=127.0.0.1",
                "--disable-usage-stats",
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    try:
        wait_for(
            lambda: [
                n
                for n in ray.nodes()  # type: ignore[no-untyped-call]
                if n["Alive"] and n["NodeID"] not in before
            ],
            timeout=90,
            what="the gate node to join",
        )
        yield process
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGTERM)
            try:
                process.wait(30)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait()


def test_pinned_camera_runs_on_its_site_node_and_is_not_moved_when_it_is_gone(
    sentinel_stack: Stack, clip: Path, gate_node: subprocess.Popen[bytes]
) -> None:
    stack = sentinel_stack
    gate_id = next(
        n["NodeID"]
        for n in ray.nodes()  # type: ignore[no-untyped-call]
        if n["Alive"] and (n.get("Labels") or {}).get("site") == "gate"
    )
    _add(
        stack,
        id="gate-cam",
        source=str(clip),
        detect=False,
        realtime=True,
        placement={"labels": {"site": "gate"}},
    )
    try:
        cam = stack.wait_state("gate-cam", "running", timeout=90)
        assert cam["status"]["node"]["node_id"] == gate_id
        assert cam["status"]["node"]["labels"]["site"] == "gate"
        # The node advertises a camera budget of 1: the camera holds that slot.
        assert ray.cluster_resources()["sentinel_camera_slot"] == 1  # type: ignore[no-untyped-call]
        wait_for(
            lambda: ray.available_resources().get("sentinel_camera_slot", 0) == 0,  # type: ignore[no-untyped-call]
            timeout=10,
            what="the camera to hold the gate node's slot",
        )
        # The site node goes away: the camera waits for it, reported, and is not moved.
        os.killpg(gate_node.pid, signal.SIGTERM)
        gate_node.wait(60)
        cam = stack.wait_state("gate-cam", "unschedulable", timeout=90)
        assert "label site=gate" in cam["status"]["last_error"], cam["status"]
        assert cam["status"]["node"] is None
        with pytest.raises(ValueError):
            ray.get_actor(camera_actor_name("gate-cam"), namespace=stack.settings.namespace)
    finally:
        _remove(stack, "gate-cam")
