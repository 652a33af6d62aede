"""Serve autoscaling of the detector on one machine: 1 → 2 replicas under load, back to 1."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import numpy as np
from ray import serve

from sentinel.config import DetectorSettings
from sentinel.serve.detector import build_detector
from tests.integration.conftest import Stack, wait_for

APP = "autoscale-probe"


def _running_replicas() -> int:
    app = serve.status().applications.get(APP)
    if app is None or "Detector" not in app.deployments:
        return 0
    states = app.deployments["Detector"].replica_states
    return sum(n for state, n in states.items() if state == "RUNNING")


def test_detector_scales_up_under_load_and_back_down(
    sentinel_stack: Stack, onnx_model: Path
) -> None:
    settings = DetectorSettings(
        model_path=onnx_model,
        threads=1,
        num_cpus=0,  # the session's 2 CPUs are the stack's; this app must fit beside it
        autoscaling={
            "min_replicas": 1,
            "max_replicas": 2,
            "target_ongoing_requests": 1,
            "upscale_delay_s": 0,
            "downscale_delay_s": 20,
            "metrics_interval_s": 0.5,
            "look_back_period_s": 5,
        },
    )
    handle = serve.run(build_detector(settings, onnx_model), name=APP, route_prefix=None)
    stop = threading.Event()
    done = [0]
    errors: list[BaseException] = []

    def load() -> None:
        frame = np.zeros((240, 320, 3), np.uint8)
        try:
            while not stop.is_set():
                handle.detect.remote(frame, "load").result(timeout_s=60)
                done[0] += 1
        except BaseException as exc:  # surfaced by the assertion below
            errors.append(exc)

    try:
        assert wait_for(lambda: _running_replicas() == 1, timeout=60, what="one replica")
        t0 = time.monotonic()
        workers = [threading.Thread(target=load, daemon=True) for _ in range(8)]
        for w in workers:
            w.start()
        wait_for(lambda: _running_replicas() == 2, timeout=120, what="a second replica")
        up_s = time.monotonic() - t0
        stop.set()
        for w in workers:
            w.join(60)
        t1 = time.monotonic()
        wait_for(lambda: _running_replicas() == 1, timeout=120, what="back to one replica")
        down_s = time.monotonic() - t1
        assert done[0] > 0 and not errors, errors
        print(f"autoscaling: 1->2 in {up_s:.1f}s under 8 clients, 2->1 in {down_s:.1f}s idle")
    finally:
        stop.set()
        serve.delete(APP)
