"""Hard-example mining through the API, on this process (``LocalMiningService``), over real
recorded segments of the sample video, a real detector and real stores (SQLite and
PostgreSQL): the job scans the stretch, skips and counts a corrupt segment, boosts the frames
of an operator's false alarm, and queues its frames (JPEG, pre-labels, reasons) in the
annotation queue; a second job queues no near-duplicate of the first's frames. Bad requests
are 422 with the reason, other callers 403/404, and flagged spans come from the verdicts and
the agent's disagreements."""

from __future__ import annotations

import io
import shutil
import time
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from PIL import Image
from sqlalchemy.engine import Engine

from sentinel.api.deps import Services
from sentinel.config import MiningSettings
from sentinel.domain.alerts import AlertDecision, DecidedBy, Severity
from sentinel.domain.boxes import COCO_LABELS
from sentinel.domain.types import Box, EventState
from sentinel.gateway.roles import Role
from sentinel.models.files import write_digest
from sentinel.store.alert_repo import AlertRepository
from sentinel.store.annotation_repo import AnnotationRepo
from sentinel.store.model_repo import ModelServingRepository
from sentinel.store.repo import EventRepository
from sentinel.store.segment_repo import SegmentInfo, SegmentRepository
from sentinel.train.feedback import flagged_spans, queued_hashes
from sentinel.train.mine_service import StoreLoad
from sentinel.video.segments import finalize_segment, segment_key
from tests.integration import test_segments as seg
from tests.integration.conftest import wait_for
from tests.utils.auth import AuthedUser, add_user
from tests.utils.mining import local_mining
from tests.utils.services import make_services

recorded = seg.recorded  # the module-scoped fixture: five real 4 s segments of the sample
CAM = seg.CAM
MINING = MiningSettings(sample_fps=1.0, labels=["person"], calibration_share=0.25)


def seed_alert(engine: Engine, event_id: str, start: float, end: float) -> tuple[str, Any]:
    events, alerts = EventRepository(engine), AlertRepository(engine)
    at = seg.at(start)
    events.upsert(
        EventState(event_id, CAM, "person", 1, at, seg.at(end), 0.4, Box(1, 1, 50, 90), at)
    )
    decision = AlertDecision(True, Severity.LOW, "seen", ("rule",), "look", DecidedBy.RULES)
    return event_id, alerts.record_rule_decision(event_id, CAM, "person", decision)


@pytest.fixture
def services(store_engine: Engine, tmp_path: Path, onnx_model: Path) -> Services:
    services = make_services(store_engine, tmp_path, segments=SegmentRepository(store_engine))
    services.mining = local_mining(services, onnx_model, MINING)
    return services


@pytest.fixture
def client_headers(admin: AuthedUser) -> dict[str, str]:
    return admin.headers


@pytest.fixture
def stored(services: Services, recorded: list[SegmentInfo], tmp_path: Path) -> None:
    """Segments 0 and 1 (0-8 s) of the camera, and a corrupt one indexed at 8-9 s."""
    assert services.segments is not None
    services.cameras.upsert(CAM, {"id": CAM, "source": "/videos/front.mp4"})
    for info in recorded[:2]:
        finalize_segment(
            seg.temp_copy(info, tmp_path / "tmp"),
            camera_id=CAM,
            kind="continuous",
            store=services.objects,
            repo=services.segments,
        )
    junk = tmp_path / "junk.mp4"
    junk.write_bytes(b"\x00\x00\x00\x18ftypmp42" + bytes(4000))
    info = SegmentInfo(junk, 8.0, 9.0, seg.at(8), seg.at(9), 4016, "h264", False, 10)
    finalize_segment(info, camera_id=CAM, kind="continuous", store=services.objects,
                     repo=services.segments)  # fmt: skip
    assert segment_key(CAM, seg.at(8), "x").startswith(f"recordings/{CAM}/")


def body(start: float = 0, end: float = 10, budget: int = 4) -> dict[str, Any]:
    return {
        "camera_id": CAM,
        "start": seg.at(start).isoformat(),
        "end": seg.at(end).isoformat(),
        "budget": budget,
    }


def finished(client: TestClient, job_id: str) -> dict[str, Any]:
    def done() -> dict[str, Any] | None:
        r = client.get(f"/api/v1/annotation/mine/{job_id}")
        assert r.status_code == 200, r.text
        job: dict[str, Any] = r.json()
        return job if job["state"] in ("done", "failed") else None

    result: dict[str, Any] = wait_for(done, timeout=240, interval=0.3, what="mining job done")
    return result


def test_a_job_queues_hard_examples(
    client: TestClient, services: Services, stored: None, store_engine: Engine
) -> None:
    _, alert = seed_alert(store_engine, "fp-1", 2.0, 3.5)
    AlertRepository(store_engine).feedback(alert.id, "false_positive", None, "op", seg.at(20))
    started = time.monotonic()
    r = client.post("/api/v1/annotation/mine", json=body(budget=4))
    assert r.status_code == 202, r.text
    assert time.monotonic() - started < 5  # answered at once; the job runs on
    job = finished(client, r.json()["id"])
    assert job["state"] == "done", job["error"]
    assert job["chunks"] == 3 and job["chunks_skipped"] == 1  # the corrupt one, counted
    assert job["frames_scanned"] == 8  # 8 s at 1 frame/s
    assert job["chosen"] == 4 and job["enqueued"] == 4 and len(job["item_ids"]) == 4
    assert job["reasons"].get("false_positive", 0) >= 1
    assert job["reasons"].get("calibration") == 1  # 25% of 4

    queue = AnnotationRepo(store_engine, services.objects)
    items = [queue.get(i) for i in job["item_ids"]]
    assert all(i is not None for i in items)
    for item in items:
        assert item is not None
        assert item.camera_id == CAM and item.source == "recording"
        assert seg.at(0) <= item.frame_ts <= seg.at(8)
        assert (item.width, item.height) == (768, 576) and item.reasons
        assert all(b.label == "person" and b.score is not None for b in item.prelabels)
        with Image.open(io.BytesIO(services.objects.get(item.image_key))) as image:
            assert image.format == "JPEG" and image.size == (768, 576)
    in_fp = [i for i in items if i is not None and seg.at(2) <= i.frame_ts <= seg.at(3.5)]
    assert in_fp and all("false_positive" in i.reasons for i in in_fp)
    assert sum(i.prelabels != () for i in items if i is not None) >= 2  # people are pre-labelled

    # Mining the same stretch again: the queued frames are not new, so none is queued twice.
    again = finished(
        client, client.post("/api/v1/annotation/mine", json=body(budget=4)).json()["id"]
    )
    assert again["state"] == "done"
    assert not set(again["item_ids"]) & set(job["item_ids"])
    hashes = queued_hashes(store_engine, CAM)
    assert len(hashes) == 4 + again["enqueued"]


def test_a_job_mines_with_the_champion_the_detectors_serve(
    client: TestClient, services: Services, stored: None, onnx_model: Path, tmp_path: Path
) -> None:
    """After a promotion the cameras serve the champion; mining scans with it too (and says
    which version), and a champion file that is not the registered one is refused."""
    job = finished(client, client.post("/api/v1/annotation/mine", json=body(budget=1)).json()["id"])
    assert job["state"] == "done" and job["model_version"] is None  # no registry state: base

    champion = tmp_path / "registry" / "v7.onnx"
    champion.parent.mkdir()
    shutil.copyfile(onnx_model, champion)
    model = {"version": 7, "path": str(champion), "sha256": write_digest(champion)}
    state = {"champion": {**model, "labels": list(COCO_LABELS), "input_size": 640}}
    serving = ModelServingRepository(services.engine)
    revision = serving.put({**state, "previous": [], "canary": None, "route": 0}, None)
    job = finished(client, client.post("/api/v1/annotation/mine", json=body(budget=1)).json()["id"])
    assert job["state"] == "done", job["error"]
    assert job["model_version"] == 7 and job["frames_scanned"] == 8

    state["champion"]["sha256"] = "0" * 64  # the file on disk is not the registered version
    serving.put({**state, "previous": [], "canary": None, "route": 0}, revision)
    job = finished(client, client.post("/api/v1/annotation/mine", json=body(budget=1)).json()["id"])
    assert job["state"] == "failed" and "the registry records" in job["error"], job


@pytest.mark.parametrize(
    ("change", "reason"),
    [
        ({"end": seg.at(-1).isoformat()}, "end must be after start"),
        ({"end": seg.at(3601).isoformat()}, "at most 1 hours"),
        ({"budget": 21}, "budget may be at most 20"),
        ({"budget": 0}, "greater than or equal to 1"),
        ({"start": "2025-03-01T12:00:00"}, "timezone"),
    ],
)
def test_bad_requests_are_422(
    client: TestClient, services: Services, change: dict[str, Any], reason: str
) -> None:
    services.cameras.upsert(CAM, {"id": CAM, "source": "/videos/front.mp4"})
    r = client.post("/api/v1/annotation/mine", json={**body(), **change})
    assert r.status_code == 422 and reason in r.text, r.text


def test_access(client: TestClient, services: Services) -> None:
    services.cameras.upsert(CAM, {"id": CAM, "source": "/videos/front.mp4"})
    services.cameras.upsert("yard", {"id": "yard", "source": "/videos/yard.mp4"})
    assert (
        client.post("/api/v1/annotation/mine", json={**body(), "camera_id": "nope"}).status_code
        == 404
    )
    assert client.get("/api/v1/annotation/mine/unknown").status_code == 404
    operator = add_user(services.security, "op", Role.OPERATOR)
    r = client.post("/api/v1/annotation/mine", json=body(), headers=operator.headers)
    assert r.status_code == 403
    limited = add_user(services.security, "yard-admin", Role.ADMIN, cameras=["yard"])
    r = client.post("/api/v1/annotation/mine", json=body(), headers=limited.headers)
    assert r.status_code == 404  # a hidden camera is not confirmed
    job_id = client.post("/api/v1/annotation/mine", json={**body(), "budget": 1}).json()["id"]
    assert (
        client.get(f"/api/v1/annotation/mine/{job_id}", headers=limited.headers).status_code == 404
    )
    services.mining = None
    assert client.post("/api/v1/annotation/mine", json=body()).status_code == 503


def test_flagged_spans_from_verdicts_and_disagreements(store_engine: Engine) -> None:
    alerts = AlertRepository(store_engine)
    _, fp = seed_alert(store_engine, "e-fp", 1, 2)
    alerts.feedback(fp.id, "false_positive", None, "op", seg.at(20))
    _, tp = seed_alert(store_engine, "e-tp", 3, 4)
    alerts.feedback(tp.id, "true_positive", None, "op", seg.at(20))
    seed_alert(store_engine, "e-withdrawn", 5, 6)
    no = AlertDecision(False, Severity.INFO, "a shadow", ("no one there",), "", DecidedBy.LLM)
    alerts.amend("e-withdrawn", no, withdrawn=True)
    seed_alert(store_engine, "e-advisory", 7, 8)
    note = "rule decision stands; the model only summarises (it said alert=false, info)"
    said = AlertDecision(True, Severity.LOW, "x", (note,), "", DecidedBy.RULES)
    alerts.amend("e-advisory", said)
    seed_alert(store_engine, "e-agreed", 9, 10)
    spans = flagged_spans(store_engine, CAM, seg.at(0), seg.at(30))
    assert [(s.reason, s.start, s.end) for s in spans] == [
        ("false_positive", seg.at(1), seg.at(2)),
        ("disagreement", seg.at(5), seg.at(6)),
        ("disagreement", seg.at(7), seg.at(8)),
    ]
    assert flagged_spans(store_engine, CAM, seg.at(2.5), seg.at(4.5)) == []
    assert flagged_spans(store_engine, "other", seg.at(0), seg.at(30)) == []


def test_store_load_reads_objects_and_files(services: Services, tmp_path: Path) -> None:
    from sentinel.store.s3 import ObjectStoreSettings
    from sentinel.train.mine_job import ScanChunk

    services.objects.put("recordings/x/a.mp4", b"abc", "video/mp4")
    load = StoreLoad(ObjectStoreSettings(), str(tmp_path))
    chunk = ScanChunk("a", CAM, "recording", "recordings/x/a.mp4", seg.at(0), seg.at(0), seg.at(1))
    assert load(chunk) == b"abc"
    video = ScanChunk("v", CAM, "video", str(tmp_path / "v.avi"), seg.at(0), seg.at(0), seg.at(1))
    assert load(video) == tmp_path / "v.avi"


def test_jobs_survive_a_restart_and_are_listed_within_camera_limits(
    client: TestClient, services: Services, onnx_model: Path, store_engine: Engine
) -> None:
    """Statuses come from the database: a new service (the restart) still answers a finished
    job, reports one it interrupted as failed, and lists the newest first; a caller limited
    to one camera lists only its jobs, and an unknown id is 404."""
    from sentinel.train.mine_service import INTERRUPTED, MiningJob, MiningJobs, MiningRequest

    services.cameras.upsert(CAM, {"id": CAM, "source": "/videos/front.mp4"})
    services.cameras.upsert("yard", {"id": "yard", "source": "/videos/yard.mp4"})
    empty = body(start=100, end=110, budget=1)  # a stretch without recordings: quick
    done = finished(client, client.post("/api/v1/annotation/mine", json=empty).json()["id"])
    assert done["state"] == "done" and done["created_by"] is not None
    stranded = MiningJob.of(MiningRequest("yard", seg.at(0), seg.at(10), 3), "someone")
    stranded.mark_running(seg.at(20))
    MiningJobs(store_engine).save(stranded)  # left running by a process that died

    services.mining = local_mining(services, onnx_model, MINING)  # the restart
    r = client.get(f"/api/v1/annotation/mine/{done['id']}")
    assert r.status_code == 200 and r.json() == done
    lost = client.get(f"/api/v1/annotation/mine/{stranded.id}").json()
    assert lost["state"] == "failed" and lost["error"] == INTERRUPTED
    listed = client.get("/api/v1/annotation/mine").json()
    assert [j["id"] for j in listed] == [stranded.id, done["id"]]
    assert [j["id"] for j in client.get("/api/v1/annotation/mine?limit=1").json()] == [stranded.id]
    assert client.get("/api/v1/annotation/mine?limit=0").status_code == 422
    assert client.get("/api/v1/annotation/mine?limit=201").status_code == 422
    assert client.get("/api/v1/annotation/mine/unknown").status_code == 404

    limited = add_user(services.security, "yard-admin", Role.ADMIN, cameras=["yard"])
    mine = client.get("/api/v1/annotation/mine", headers=limited.headers).json()
    assert [j["id"] for j in mine] == [stranded.id]
    r = client.get(f"/api/v1/annotation/mine/{done['id']}", headers=limited.headers)
    assert r.status_code == 404
    operator = add_user(services.security, "op", Role.OPERATOR)
    assert client.get("/api/v1/annotation/mine", headers=operator.headers).status_code == 403
