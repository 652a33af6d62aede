"""Hard-example mining on the shared Ray cluster, through the platform's API: the scan and
render steps run as Ray tasks over a camera's recorded segments of the sample video, the
detached jobs actor runs the job, its frames land in the annotation queue, and its status,
kept in the database, outlives the actor (a job the actor's death interrupted reads failed)."""

from __future__ import annotations

from typing import Any

import pytest
import ray

from sentinel.actors.mining import MINING_JOBS_NAME
from sentinel.store.annotation_repo import AnnotationRepo
from sentinel.store.db import make_engine
from sentinel.store.s3 import make_object_store
from sentinel.store.segment_repo import SegmentInfo, SegmentRepository
from sentinel.train.mine_service import INTERRUPTED, MiningJob, MiningJobs, MiningRequest
from sentinel.video.segments import finalize_segment
from tests.integration import test_segments as seg
from tests.integration.conftest import Stack, wait_for

recorded = seg.recorded  # the module-scoped fixture: five real 4 s segments of the sample
CAM = "mine-cam"


@pytest.fixture(scope="module")
def recorded_camera(
    sentinel_stack: Stack, recorded: list[SegmentInfo], tmp_path_factory: pytest.TempPathFactory
) -> str:
    """A camera (not running) whose first 8 s of recordings are stored and indexed."""
    stack = sentinel_stack
    r = stack.http.post(
        "/api/v1/cameras", json={"id": CAM, "source": "/videos/mine.mp4", "enabled": False}
    )
    assert r.status_code == 201, r.text
    settings = stack.settings
    engine = make_engine(settings.db_url)
    store = make_object_store(settings.objects, settings.data_dir)
    folder = tmp_path_factory.mktemp("mine-tmp")
    for info in recorded[:2]:
        finalize_segment(
            seg.temp_copy(info, folder),
            camera_id=CAM,
            kind="continuous",
            store=store,
            repo=SegmentRepository(engine),
        )
    engine.dispose()
    return CAM


def test_mining_runs_on_ray_and_fills_the_queue(
    sentinel_stack: Stack, recorded_camera: str
) -> None:
    stack = sentinel_stack
    body = {
        "camera_id": recorded_camera,
        "start": seg.at(0).isoformat(),
        "end": seg.at(8).isoformat(),
        "budget": 5,
    }
    r = stack.http.post("/api/v1/annotation/mine", json=body)
    assert r.status_code == 202, r.text
    job_id = r.json()["id"]

    def done() -> dict[str, Any] | None:
        got = stack.http.get(f"/api/v1/annotation/mine/{job_id}")
        assert got.status_code == 200, got.text
        job: dict[str, Any] = got.json()
        return job if job["state"] in ("done", "failed") else None

    job: dict[str, Any] = wait_for(done, timeout=300, interval=1.0, what="mining job on Ray")
    assert job["state"] == "done", job
    assert job["chunks"] == 2 and job["chunks_skipped"] == 0
    assert job["frames_scanned"] == 16  # 8 s at the default 2 frames/s
    assert 1 <= job["enqueued"] <= 5 and job["enqueued"] == len(job["item_ids"])
    # The jobs actor is the platform's detached one, in its namespace.
    actor: Any = ray.get_actor(MINING_JOBS_NAME, namespace=stack.settings.namespace)
    kept: dict[str, Any] = ray.get(actor.status.remote(job_id), timeout=30)
    assert kept["id"] == job_id and kept["state"] == "done"

    engine = make_engine(stack.settings.db_url)
    try:
        queue = AnnotationRepo(
            engine, make_object_store(stack.settings.objects, stack.settings.data_dir)
        )
        items = [queue.get(i) for i in job["item_ids"]]
    finally:
        engine.dispose()
    assert all(i is not None and i.camera_id == CAM and i.reasons for i in items)
    assert {i.source for i in items if i is not None} == {"recording"}
    assert all(seg.at(0) <= i.frame_ts <= seg.at(8) for i in items if i is not None)
    store = make_object_store(stack.settings.objects, stack.settings.data_dir)
    assert all(store.get(i.image_key)[:2] == b"\xff\xd8" for i in items if i is not None)

    # A job the actor was running when it died, as the table keeps it; then the actor dies.
    engine = make_engine(stack.settings.db_url)
    try:
        stranded = MiningJob.of(MiningRequest(CAM, seg.at(0), seg.at(8), 1))
        stranded.mark_running(seg.at(20))
        MiningJobs(engine).save(stranded)
    finally:
        engine.dispose()
    ray.kill(actor)

    def interrupted() -> dict[str, Any] | None:
        got = stack.http.get(f"/api/v1/annotation/mine/{stranded.id}")
        assert got.status_code == 200, got.text
        found: dict[str, Any] = got.json()
        return found if found["state"] == "failed" else None

    lost = wait_for(interrupted, timeout=120, interval=1.0, what="a new jobs actor")
    assert lost["error"] == INTERRUPTED
    again = stack.http.get(f"/api/v1/annotation/mine/{job_id}")
    assert again.status_code == 200 and again.json() == job  # the finished job, as it was
    listed = stack.http.get("/api/v1/annotation/mine", params={"limit": 200}).json()
    assert {stranded.id, job_id} <= {j["id"] for j in listed}
