"""Cameras on a real Ray cluster: detector on Serve, supervisor, actors, HTTP API.

These share one cluster (``sentinel_stack``) and use the real sample video, the real YOLOv8n
and a real RTSP server.
"""

from __future__ import annotations

import io
import os
import subprocess
import sys
import textwrap
from datetime import UTC, datetime, timedelta
from pathlib import Path

import av
import numpy as np
import pytest
import ray
from PIL import Image
from prometheus_client.parser import text_string_to_metric_families
from ray import serve

from sentinel.domain.boxes import letterbox_u8
from tests.integration.conftest import Stack, wait_for
from tests.utils.media import corrupt_file, free_port, h264_clip, rtsp_server, sample_video


@pytest.fixture(scope="module")
def clip(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The first 20 s of the sample, as H.264 MP4 (several people walk through)."""
    return h264_clip(tmp_path_factory.mktemp("clips"), seconds=20)


def _add(stack: Stack, **body: object) -> None:
    r = stack.http.post("/api/v1/cameras", json=body)
    assert r.status_code == 201, r.text


def _remove(stack: Stack, camera_id: str) -> None:
    assert stack.http.delete(f"/api/v1/cameras/{camera_id}").status_code == 204


def _decoded_frames(data: bytes, tmp: Path) -> int:
    path = tmp / "clip.mp4"
    path.write_bytes(data)
    with av.open(str(path)) as container:
        frames = list(container.decode(video=0))
    assert frames and frames[0].key_frame
    return len(frames)


def test_file_camera_finds_people_with_snapshots(stack: Stack, clip: Path, tmp_path: Path) -> None:
    _add(
        stack,
        id="clip",
        source=str(clip),
        realtime=False,
        detect_fps=5,
        record={"mode": "events", "segment_s": 4},
    )
    cam = stack.wait_state("clip", "finished", timeout=180)
    counters = cam["status"]["counters"]
    assert counters["frames_decoded"] >= 195  # 20 s at 10 fps
    assert counters["detector_calls"] > 0 and counters["frames_dropped"] == 0
    people = stack.events(camera_id="clip", label="person")
    assert len(people) >= 4, people
    assert all(e["ended_at"] is not None for e in people)  # the file finished: all closed
    best = max(people, key=lambda e: e["score"])
    snap = stack.http.get(best["snapshot_url"])
    assert snap.status_code == 200 and snap.headers["content-type"] == "image/jpeg"
    image = Image.open(io.BytesIO(snap.content))
    assert image.size == (768, 576)
    latest = stack.http.get("/api/v1/cameras/clip/latest.jpg")
    assert latest.status_code == 200 and latest.content[:2] == b"\xff\xd8"
    # recorded around the events, playable through the API
    recordings = stack.http.get(
        "/api/v1/cameras/clip/recordings", params={"since": best["started_at"]}
    ).json()
    assert recordings["segments"], recordings
    event_clip = stack.http.get(f"/api/v1/events/{best['id']}/clip.mp4")
    assert event_clip.status_code == 200 and event_clip.headers["content-type"] == "video/mp4"
    assert _decoded_frames(event_clip.content, tmp_path) > 0
    metrics = stack.http.get("/metrics").text
    assert 'sentinel_detector_calls_total{camera="clip"}' in metrics
    assert 'sentinel_camera_status{camera="clip",state="finished"} 1.0' in metrics
    # The learning loop's stores are wired into the deployed ingress (404 if they were not).
    for path in ("/api/v1/annotation/queue", "/api/v1/datasets"):
        answer = stack.http.get(path)
        assert answer.status_code == 200 and isinstance(answer.json(), list), answer.text
    _remove(stack, "clip")
    assert stack.http.get("/api/v1/cameras/clip").status_code == 404
    # events outlive their camera
    assert len(stack.events(camera_id="clip", label="person")) == len(people)


def test_bad_sources_fail_alone(stack: Stack, clip: Path, tmp_path: Path) -> None:
    """A corrupt file, a missing file and a dead RTSP URL; a good camera keeps working."""
    _add(stack, id="good", source=str(clip), realtime=True, detect_fps=2)
    _add(stack, id="corrupt", source=str(corrupt_file(tmp_path / "bad.mp4")), realtime=False)
    _add(stack, id="missing", source=str(tmp_path / "nope.mp4"), realtime=False)
    dead = f"rtsp://127.0.0.1:{free_port()}/cam"
    _add(stack, id="dead", source=dead, detect_fps=1)
    try:
        corrupt = stack.wait_state("corrupt", "failed", timeout=60)["status"]
        assert "corrupt" in corrupt["last_error"].lower() or "invalid" in corrupt["last_error"]
        missing = stack.wait_state("missing", "failed", timeout=60)["status"]
        assert "nope.mp4" in missing["last_error"]
        dead_cam = stack.wait_state("dead", "reconnecting", timeout=60)["status"]
        assert dead_cam["last_error"]
        wait_for(
            lambda: stack.events(camera_id="good", label="person"),
            timeout=120,
            what="events from the good camera",
        )
        assert stack.state("good") == "running"
        health = stack.http.get("/health").json()
        assert health["cameras"]["missing"] == "failed" and health["cameras"]["good"] == "running"
    finally:
        for cid in ("good", "corrupt", "missing", "dead"):
            _remove(stack, cid)


def _metric(text: str, name: str, **labels: str) -> float:
    """One sample of the Prometheus text ``text``."""
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == name and all(sample.labels.get(k) == v for k, v in labels.items()):
                return float(sample.value)
    raise AssertionError(f"{name}{labels} is not in /metrics")


def test_two_cameras_share_detector_batches(stack: Stack, clip: Path) -> None:
    """Two live cameras: ``@serve.batch`` puts their frames in the same batches, and both
    cameras report it (status counters and /metrics)."""
    pair = ("pair-a", "pair-b")
    for cid in pair:
        # No motion gate: every sampled frame goes to the detector.
        _add(stack, id=cid, source=str(clip), detect_fps=5, motion={"enabled": False})
    try:

        def both_shared() -> dict[str, dict[str, int]] | None:
            counters = {cid: stack.camera(cid)["status"]["counters"] for cid in pair}
            shared = all(c.get("detector_calls_shared", 0) > 0 for c in counters.values())
            return counters if shared else None

        counters = wait_for(both_shared, timeout=120, what="both cameras in a shared batch")
        # Only these two cameras send frames, so a shared batch held frames of both.
        running = {
            c["id"]
            for c in stack.http.get("/api/v1/cameras").json()
            if c["detect"] and c["status"]["state"] in ("starting", "running")
        }
        assert running == set(pair), running
        metrics = stack.http.get("/metrics").text
        for cid in pair:
            assert counters[cid]["detector_calls_shared"] <= counters[cid]["detector_calls"]
            shared = _metric(metrics, "sentinel_detector_calls_shared_total", camera=cid)
            assert shared >= counters[cid]["detector_calls_shared"]
            count = _metric(metrics, "sentinel_detector_batch_size_count", camera=cid)
            alone = _metric(metrics, "sentinel_detector_batch_size_bucket", camera=cid, le="1.0")
            assert count > alone, (cid, count, alone)  # frames detected in batches of 2 or more
    finally:
        for cid in pair:
            _remove(stack, cid)


def test_detector_counts_distinct_cameras_per_batch(stack: Stack) -> None:
    """Four frames from three sources sent at once: a full batch reports 3 cameras, not 4."""
    handle = serve.get_deployment_handle("Detector", app_name=stack.settings.app_name)
    sources = ["a", "b", "a", "c"]
    assert stack.settings.detector.max_batch_size == len(sources)
    frames = [np.full((96, 128, 3), 40 * i, np.uint8) for i in range(len(sources))]

    def full_batch() -> list[object] | None:
        responses = [handle.detect.remote(f, s) for f, s in zip(frames, sources, strict=True)]
        results = [r.result(timeout_s=60) for r in responses]
        for r in results:
            assert 1 <= r.batch_cameras <= min(r.batch_size, 3), r
        return results if all(r.batch_size == len(sources) for r in results) else None

    results = wait_for(full_batch, timeout=60, interval=0.1, what="one batch of all four")
    assert all(r.batch_cameras == 3 for r in results), results


def test_detector_takes_inputs_prepared_by_the_camera(stack: Stack) -> None:
    """Letterboxed uint8 inputs of two sizes in one call: one result per input, in order, each
    the same as the replica's own letterbox gives; a malformed call is refused, not crashed."""
    handle = serve.get_deployment_handle("Detector", app_name=stack.settings.app_name)
    rng = np.random.default_rng(5)
    frame = rng.integers(0, 256, (96, 128, 3), dtype=np.uint8)
    inputs = [
        letterbox_u8(frame, 640),
        letterbox_u8(frame[:64, :64], 320),
        letterbox_u8(frame, 640),
    ]
    results = handle.detect_inputs.remote(inputs, "cam").result(timeout_s=60)
    assert len(results) == 3
    assert all(r.batch_size >= 3 for r in results), results  # one call rides one batch
    reference = handle.detect.remote(frame, "cam").result(timeout_s=60)
    assert results[0].detections == results[2].detections == reference.detections
    with pytest.raises(Exception, match="non-empty list of ModelInput"):
        handle.detect_inputs.remote([frame], "cam").result(timeout_s=60)
    assert handle.ready.remote().result(timeout_s=30) is True  # still serving


def test_rtsp_camera_records_and_plays_back(stack: Stack, clip: Path, tmp_path: Path) -> None:
    """A real RTSP camera, recorded by stream copy; a time-range clip and an event clip."""
    with rtsp_server(clip) as url:
        _add(
            stack,
            id="rtsp",
            source=url,
            detect_fps=2,
            record={"mode": "continuous", "segment_s": 4},
        )
        try:
            cam = stack.wait_state("rtsp", "running", timeout=60)
            assert cam["status"]["codec"] == "h264"
            people = wait_for(
                lambda: stack.events(camera_id="rtsp", label="person"),
                timeout=120,
                what="person events over RTSP",
            )

            def three_segments() -> list[dict[str, str]] | None:
                found = stack.http.get("/api/v1/cameras/rtsp/recordings").json()["segments"]
                return found if len(found) >= 3 else None

            segments = wait_for(three_segments, timeout=90, what="three recorded segments")
            assert all(s["codec"] == "h264" for s in segments)
            recording = stack.camera("rtsp")["status"]["recording"]
            assert recording["transcoded"] is False  # remuxed, not re-encoded
            start = datetime.fromisoformat(segments[0]["start_at"]) + timedelta(seconds=1)
            end = start + timedelta(seconds=6)
            r = stack.http.get(
                "/api/v1/cameras/rtsp/clip.mp4",
                params={"start": start.isoformat(), "end": end.isoformat()},
            )
            assert r.status_code == 200
            frames = _decoded_frames(r.content, tmp_path)
            # keyframe-exact start: at most one segment (4 s) earlier than asked
            assert 6 * 8 <= frames <= (6 + 4 + 1) * 10
            ev = stack.http.get(f"/api/v1/events/{people[-1]['id']}/clip.mp4")
            assert ev.status_code == 200 and _decoded_frames(ev.content, tmp_path) > 0
            ranged = stack.http.get(
                "/api/v1/cameras/rtsp/clip.mp4",
                params={"start": start.isoformat(), "end": end.isoformat()},
                headers={"Range": "bytes=0-1023"},
            )
            assert ranged.status_code == 206 and len(ranged.content) == 1024
        finally:
            _remove(stack, "rtsp")


def test_crashed_camera_restarts_and_adopts_its_events(
    stack: Stack, clip: Path, tmp_path: Path
) -> None:
    """Killing the actor: the supervisor restarts it and open events continue, not duplicate."""
    _add(
        stack,
        id="crashy",
        source=str(clip),
        realtime=True,
        detect_fps=2,
        record={"mode": "continuous", "segment_s": 3},
    )
    try:
        wait_for(
            lambda: [e for e in stack.events(camera_id="crashy") if e["ended_at"] is None],
            timeout=120,
            what="an open event",
        )
        open_before = {e["id"] for e in stack.events(camera_id="crashy") if e["ended_at"] is None}
        crashed_at = datetime.now(UTC)
        actor = ray.get_actor("sentinel-camera-crashy", namespace=stack.settings.namespace)
        ray.kill(actor, no_restart=True)
        wait_for(
            lambda: (
                stack.camera("crashy")["status"]["restarts"] >= 1
                and stack.state("crashy") == "running"
            ),
            timeout=60,
            what="restart",
        )

        def adopted() -> list[dict[str, object]]:
            return [
                e
                for e in stack.events(camera_id="crashy")
                if e["id"] in open_before
                and datetime.fromisoformat(str(e["last_seen_at"])) > crashed_at
            ]

        # An object still in view after the restart continues the event opened before it.
        assert wait_for(adopted, timeout=60, what="an event continued after the restart")
        # The segment the kill cut off was removed at restart; every indexed one plays.
        temp = stack.settings.data_dir / "tmp" / "recordings" / "crashy"
        assert len(list(temp.glob(".tmp-*"))) <= 1  # only the one being written now
        segments = wait_for(
            lambda: stack.http.get("/api/v1/cameras/crashy/recordings").json()["segments"],
            timeout=60,
            what="a segment recorded after the restart",
        )
        for seg in segments:
            r = stack.http.get(
                "/api/v1/cameras/crashy/clip.mp4",
                params={"start": seg["start_at"], "end": seg["end_at"]},
            )
            assert r.status_code == 200 and _decoded_frames(r.content, tmp_path) > 0
    finally:
        _remove(stack, "crashy")


def test_crash_loop_ends_in_failed(stack: Stack, clip: Path, tmp_path: Path) -> None:
    """At most 5 restarts in 60 s: the 6th crash leaves the camera failed, with the reason."""
    _add(
        stack,
        id="crashloop",
        source=str(clip),
        realtime=True,
        detect_fps=1,
        record={"mode": "continuous", "segment_s": 2},
    )
    try:
        for crash in range(6):
            actor = wait_for(
                lambda: _actor_or_none("crashloop", stack),
                timeout=60,
                what=f"camera actor before crash {crash + 1}",
            )
            ray.kill(actor, no_restart=True)  # the next live actor is a restart
        status = stack.wait_state("crashloop", "failed", timeout=60)["status"]
        assert "crashed 6 times" in status["last_error"] and status["restarts"] == 5
        # killed mid-segment again and again: whatever got indexed plays
        for seg in stack.http.get("/api/v1/cameras/crashloop/recordings").json()["segments"]:
            r = stack.http.get(
                "/api/v1/cameras/crashloop/clip.mp4",
                params={"start": seg["start_at"], "end": seg["end_at"]},
            )
            assert r.status_code == 200 and _decoded_frames(r.content, tmp_path) > 0
    finally:
        _remove(stack, "crashloop")


def _actor_or_none(camera_id: str, stack: Stack) -> object | None:
    """The camera's actor if it is alive and answering."""
    try:
        actor = ray.get_actor(f"sentinel-camera-{camera_id}", namespace=stack.settings.namespace)
        ray.get(actor.status.remote(), timeout=5)
        return actor
    except Exception:
        return None


def test_supervisor_outlives_its_driver(stack: Stack, clip: Path) -> None:
    """A second driver adds a camera through the supervisor and dies; the camera runs on."""
    gcs = ray.get_runtime_context().gcs_address
    script = textwrap.dedent(
        f"""
        import os, ray
        from sentinel.store.db import make_engine
        from sentinel.store.repo import CameraRepository
        ray.init(address={gcs!r}, namespace={stack.settings.namespace!r})
        CameraRepository(make_engine({stack.settings.db_url!r})).upsert(
            "orphan", {{"id": "orphan", "source": {str(clip)!r}, "detect_fps": 1}})
        sup = ray.get_actor("sentinel-supervisor", namespace={stack.settings.namespace!r})
        ray.get(sup.reconcile.remote())
        os.kill(os.getpid(), 9)
        """
    )
    proc = subprocess.run([sys.executable, "-c", script], env=os.environ.copy(), timeout=120)
    assert proc.returncode == -9
    try:
        stack.wait_state("orphan", "running", timeout=60)
        wait_for(
            lambda: stack.camera("orphan")["status"]["counters"]["frames_decoded"] > 20,
            timeout=60,
            what="the orphan camera decoding",
        )
    finally:
        _remove(stack, "orphan")


def test_sample_video_is_real() -> None:
    assert sample_video().stat().st_size > 1_000_000


@pytest.fixture
def stack(sentinel_stack: Stack) -> Stack:
    return sentinel_stack
