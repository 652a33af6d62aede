"""The canary on the shared Ray cluster: a challenger (the bundled ONNX registered again as
version 2, gate passed) serves one camera in a second Serve application, its live figures come
back per model, a promotion swaps the champion's replicas and a rollback returns every camera
to the last champion in one request, while frames keep flowing on both cameras. A challenger
that finds nothing where the champion finds people trips the guard, which rolls it back by
itself, audited."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import pytest
import ray
from click.testing import CliRunner
from ray import serve
from ray.exceptions import RayError

from sentinel.actors.camera import camera_actor_name
from sentinel.cli import main
from sentinel.serve.detector import MODEL_CONTROLLER
from sentinel.train.registry import ModelRegistry
from tests.integration.conftest import Stack, wait_for
from tests.utils.media import h264_clip
from tests.utils.model import blind_detector

CANARY_CAM, CHAMPION_CAM = "canary-a", "canary-b"
DETECT_FPS = 3
SLOW = 120.0  # starting a canary replica: seconds when idle, far more on 2 busy cores


def _models(stack: Stack) -> dict[str, Any]:
    r = stack.http.get("/api/v1/models")
    assert r.status_code == 200, r.text
    body: dict[str, Any] = r.json()
    return body


def _figures(stack: Stack) -> dict[int, dict[str, Any]]:
    return {v["version"]: v["figures"] for v in _models(stack)["versions"] if v["figures"]}


def _calls(stack: Stack, camera: str) -> int:
    return int(stack.camera(camera)["status"]["counters"]["detector_calls"])


def _route(stack: Stack, camera: str) -> Any:
    actor = ray.get_actor(camera_actor_name(camera), namespace=stack.settings.namespace)
    ref: Any = actor.status.remote()
    status: dict[str, Any] = ray.get(ref, timeout=10)
    return status["models"]


def _answers(actor: Any) -> bool:
    try:
        ray.get(actor.route.remote(), timeout=5)
    except RayError:  # restarting: its calls fail, or time out, meanwhile
        return False
    return True


def _flowing(stack: Stack, *cameras: str) -> None:
    """Each camera's detector calls go up (frames keep being served)."""
    before = {c: _calls(stack, c) for c in cameras}
    wait_for(
        lambda: all(_calls(stack, c) >= before[c] + 3 for c in cameras),
        timeout=60,
        what=f"detector calls on {cameras}",
    )


@pytest.fixture
def cameras(sentinel_stack: Stack, tmp_path: Path) -> Any:
    stack = sentinel_stack
    clip = h264_clip(tmp_path, seconds=8)
    for camera in (CANARY_CAM, CHAMPION_CAM):
        body = {"id": camera, "source": str(clip), "realtime": True, "detect_fps": DETECT_FPS}
        r = stack.http.post("/api/v1/cameras", json=body)
        assert r.status_code == 201, r.text
    yield stack
    for camera in (CANARY_CAM, CHAMPION_CAM):
        stack.http.delete(f"/api/v1/cameras/{camera}")


def test_canary_figures_promote_and_rollback_keep_frames_flowing(
    cameras: Stack, onnx_model: Path
) -> None:
    stack = cameras
    registry = ModelRegistry.embedded(stack.settings.data_dir)
    champion = registry.alias("champion")
    assert champion is not None
    challenger = registry.register(
        onnx_model, labels=champion.labels, input_size=champion.input_size, tags={"gate": "passed"}
    )
    v1, v2 = champion.version, challenger.version
    _flowing(stack, CANARY_CAM, CHAMPION_CAM)

    r = stack.http.post(f"/api/v1/models/{v2}/canary", json={"cameras": [CANARY_CAM]}, timeout=SLOW)
    assert r.status_code == 200, r.text
    assert r.json()["canary"]["cameras"] == [CANARY_CAM]
    canary_app = f"{stack.settings.app_name}{stack.settings.train.canary_app_suffix}"
    assert canary_app in serve.status().applications
    # Live figures per model: the canary camera's frames on v2, the other's on v1.
    figures = wait_for(
        lambda: (
            (f := _figures(stack)).get(v2, {}).get("frames", 0) >= 3
            and f.get(v1, {}).get("frames", 0) >= 3
            and f
        ),
        timeout=60,
        what="figures of both models",
    )
    assert figures[v2]["mean_latency_ms"] > 0 and figures[v2]["detections_per_frame"] is not None
    tally = _route(stack, CANARY_CAM)["tally"]
    # The champion's share there: at most the frames already in flight when the route changed.
    assert tally[str(v2)]["frames"] >= 3 and tally.get(str(v1), {"frames": 0})["frames"] <= 2

    # Promote: the champion's replicas load v2 (fetched and verified) while every camera is on
    # the canary; afterwards the champion deployment serves v2 to both cameras.
    r = stack.http.post(f"/api/v1/models/{v2}/promote", timeout=SLOW)
    assert r.status_code == 200, r.text
    assert r.json()["champion"] == v2 and r.json()["canary"] is None
    _flowing(stack, CANARY_CAM, CHAMPION_CAM)
    assert set(_route(stack, CHAMPION_CAM)["tally"]) <= {str(v1), str(v2)}

    # Rollback in one request: when it answers, the champion's replicas serve v1 again.
    r = stack.http.post(f"/api/v1/models/{v2}/rollback", timeout=SLOW)
    assert r.status_code == 200, r.text
    assert r.json()["champion"] == v1
    _flowing(stack, CANARY_CAM, CHAMPION_CAM)
    # A canary rolled back: the route changes inside the request, the app goes after it.
    r = stack.http.post(f"/api/v1/models/{v2}/canary", json={"share": 1.0}, timeout=SLOW)
    assert r.status_code == 200, r.text
    wait_for(lambda: _route(stack, CHAMPION_CAM)["tally"].get(str(v2)), timeout=60, what="canary")
    # The CLI, as an operator would: list shows the canary, rollback ends it.
    env = {
        "SENTINEL_URL": stack.url,
        "SENTINEL_TOKEN": stack.http.headers["Authorization"].removeprefix("Bearer "),
    }
    listed = CliRunner().invoke(main, ["models", "list"], env=env)
    assert listed.exit_code == 0, listed.output
    lines = listed.output.splitlines()
    assert f"canary: v{v2} cameras=- share=1" in lines and any("champion" in x for x in lines)
    rolled = CliRunner().invoke(main, ["models", "rollback", str(v2)], env=env)
    assert rolled.exit_code == 0, rolled.output
    # (the output also holds the cluster's log lines, which Ray forwards to this driver)
    assert not [line for line in rolled.output.splitlines() if line.startswith("canary:")]
    for camera in (CANARY_CAM, CHAMPION_CAM):
        assert _route(stack, camera)["canary"] is None  # already, not eventually
    _flowing(stack, CANARY_CAM, CHAMPION_CAM)
    for camera in (CANARY_CAM, CHAMPION_CAM):
        counters = stack.camera(camera)["status"]["counters"]
        assert counters["detector_errors"] == 0, counters  # no frame lost to a swap
    wait_for(lambda: canary_app not in serve.status().applications, timeout=30, what="canary gone")
    entries = stack.http.get("/api/v1/audit", params={"limit": 50}).json()
    actions = {e["action"] for e in entries["items"]}
    assert {"models.canary", "models.promote", "models.rollback"} <= actions


def test_a_tripped_guard_rolls_the_canary_back_by_itself(
    cameras: Stack, onnx_model: Path, tmp_path: Path
) -> None:
    stack = cameras
    guard = stack.settings.train.guard
    assert guard.enabled and guard.detections_ratio_min > 0
    registry = ModelRegistry.embedded(stack.settings.data_dir)
    champion = registry.alias("champion")
    assert champion is not None
    blind = blind_detector(onnx_model, tmp_path / "blind.onnx")
    challenger = registry.register(
        blind, labels=champion.labels, input_size=champion.input_size, tags={"gate": "passed"}
    )
    v1, v2 = champion.version, challenger.version
    _flowing(stack, CANARY_CAM, CHAMPION_CAM)
    # Ray restarts a crashed controller (max_restarts=-1) without the platform's start call:
    # the guard must run in the restarted one too.
    controller = ray.get_actor(MODEL_CONTROLLER, namespace=stack.settings.namespace)
    ray.kill(controller, no_restart=False)
    wait_for(lambda: _answers(controller), timeout=SLOW, what="the controller restarted")

    r = stack.http.post(f"/api/v1/models/{v2}/canary", json={"cameras": [CANARY_CAM]}, timeout=SLOW)
    assert r.status_code == 200, r.text
    assert r.json()["canary"]["version"] == v2
    started = time.monotonic()
    # No rollback call: once both models served guard.min_frames frames, the next check sees
    # the challenger find nothing where the champion finds people. Bounded by that time (at
    # the cameras' rate) and a check interval, with room for 2 busy cores.
    bound = 3 * (guard.min_frames / DETECT_FPS + guard.interval_s)
    body = wait_for(
        lambda: (b := _models(stack))["canary"] is None and b, timeout=bound, what="auto rollback"
    )
    took = time.monotonic() - started
    assert body["champion"] == v1
    last = body["guard"]["last"]
    assert last["version"] == v2 and last["reasons"], last
    assert last["reasons"][0].startswith("detections per frame 0.000 outside"), last
    print(f"guard rolled v{v2} back {took:.1f}s after its canary started: {last['reasons']}")
    for camera in (CANARY_CAM, CHAMPION_CAM):
        assert _route(stack, camera)["canary"] is None  # the route changed before the answer
    _flowing(stack, CANARY_CAM, CHAMPION_CAM)
    # The canary camera is served by the champion again: on the challenger, at most the two
    # frames a camera keeps in flight (one ahead) when its route changed.
    tally = _route(stack, CANARY_CAM)["tally"]
    assert tally[str(v1)]["frames"] >= 3 and tally.get(str(v2), {"frames": 0})["frames"] <= 2
    for camera in (CANARY_CAM, CHAMPION_CAM):
        counters = stack.camera(camera)["status"]["counters"]
        assert counters["detector_errors"] == 0, counters
    canary_app = f"{stack.settings.app_name}{stack.settings.train.canary_app_suffix}"
    wait_for(lambda: canary_app not in serve.status().applications, timeout=30, what="canary gone")
    assert registry.get(v2).tags.get("canary") == "rolled_back"

    # Audited: the trip with both models' figures, then the rollback it caused, by the guard.
    entries = stack.http.get("/api/v1/audit", params={"actor": "guard", "limit": 50}).json()
    mine = [e for e in entries["items"] if e["target"] == f"version {v2}"]
    by_action = {e["action"]: e for e in mine}
    assert set(by_action) == {"models.guard_trip", "models.rollback"}, mine
    trip, rollback = by_action["models.guard_trip"], by_action["models.rollback"]
    assert trip["outcome"] == "tripped" and trip["detail"]["reasons"] == last["reasons"]
    figures = trip["detail"]["challenger"], trip["detail"]["champion"]
    assert figures[0]["detections"] == 0 and figures[0]["frames"] >= guard.min_frames
    assert figures[1]["detections_per_frame"] > 0 and figures[1]["frames"] >= guard.min_frames
    assert rollback["outcome"] == "success" and rollback["detail"]["to"] == v1
    assert rollback["detail"]["reason"] == "; ".join(last["reasons"])
    assert rollback["seq"] > trip["seq"]
