"""The retention sweeper on a real 8 MiB tmpfs filled with real recorded segments.

Segments are recorded by ``SegmentRecorder`` from an H.264 clip and finalized into a
``LocalObjectStore`` on the tmpfs and the segment index, exactly as a camera does. The sweeps
see the disk's real free space. Mounting needs root (CAP_SYS_ADMIN): without it these tests
fail, they are not skipped. Also ``GET /api/v1/storage`` over such an archive.
"""

from __future__ import annotations

import shutil
import subprocess
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import av
import pytest
from fastapi.testclient import TestClient
from sqlalchemy.engine import Engine

from sentinel.actors.retention import AUDIT_ACTOR, RetentionSweeper
from sentinel.config import StorageSettings
from sentinel.gateway.roles import Role
from sentinel.store.audit_repo import AuditRepository
from sentinel.store.objects import LocalObjectStore
from sentinel.store.segment_repo import SegmentInfo, SegmentRecord, SegmentRepository
from sentinel.video.recorder import RecorderState, SegmentRecorder
from sentinel.video.segments import finalize_segment
from tests.utils import media
from tests.utils.api import api_app
from tests.utils.auth import add_user
from tests.utils.services import make_services

CAM = "yard"
BASE = datetime(2026, 5, 1, 8, 0, tzinfo=UTC)
FS_SIZE = 8 << 20


@pytest.fixture(scope="module")
def clip20(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """20 s of the sample as H.264: 200 frames at 10 fps, a keyframe every 2 s."""
    return media.h264_clip(tmp_path_factory.mktemp("media"), 20)


@pytest.fixture
def disk(tmp_path: Path) -> Iterator[Path]:
    """An 8 MiB tmpfs; fails (never skips) when it cannot be mounted."""
    mnt = tmp_path / "disk"
    mnt.mkdir()
    done = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=8m", "tmpfs", str(mnt)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 0, f"cannot mount a tmpfs (root needed): {done.stderr.strip()}"
    try:
        yield mnt
    finally:
        if subprocess.run(["umount", str(mnt)], check=False).returncode != 0:
            subprocess.run(["umount", "--lazy", str(mnt)], check=True)  # a file left open


class Camera:
    """Records a clip in a loop into the store, with a wall clock that keeps moving on."""

    def __init__(
        self, clip: Path, disk: Path, engine: Engine, retry_after_s: float | None = None
    ) -> None:
        self.clip = clip
        self.tmp = disk / "tmp"
        self.tmp.mkdir(exist_ok=True)
        self.store = LocalObjectStore(disk / "objects")
        self.repo = SegmentRepository(engine)
        self.retry_after_s = retry_after_s
        self.recorder: SegmentRecorder | None = None
        self.records: list[SegmentRecord] = []
        self.states: set[RecorderState] = set()
        self.rounds = 0
        self.now = BASE

    def take(self, info: SegmentInfo) -> None:
        self.records.append(
            finalize_segment(
                info, camera_id=CAM, kind="continuous", store=self.store, repo=self.repo
            )
        )

    def run(self, rounds: int = 1) -> SegmentRecorder:
        for _ in range(rounds):
            offset = BASE + timedelta(seconds=30 * self.rounds)
            self.rounds += 1
            with av.open(str(self.clip)) as container:
                stream = container.streams.video[0]
                if self.recorder is None:
                    self.recorder = SegmentRecorder(
                        directory=self.tmp,
                        template_stream=stream,
                        on_segment=self.take,
                        segment_s=2.0,
                        clock=lambda: self.now,
                        retry_after_s=self.retry_after_s,
                    )
                if not self.recorder.recording:
                    self.recorder.start()
                for packet in container.demux(stream):
                    if packet.pts is None or packet.time_base is None:
                        continue
                    self.now = offset + timedelta(seconds=float(packet.pts * packet.time_base))
                    self.recorder.feed(packet, stream)
                    self.states.add(self.recorder.state)
        assert self.recorder is not None
        return self.recorder


def free(disk: Path) -> int:
    return shutil.disk_usage(disk).free


def retention_audit(engine: Engine) -> list[dict[str, object]]:
    return [dict(r.detail) for r in AuditRepository(engine).iter_all() if r.actor == AUDIT_ACTOR]


def test_low_space_sweeps_delete_oldest_first_and_keep_exports(
    clip20: Path, disk: Path, store_engine: Engine
) -> None:
    camera = Camera(clip20, disk, store_engine)
    camera.run(rounds=2).stop()
    records = sorted(camera.records, key=lambda r: r.start_at)
    assert len(records) >= 18 and free(disk) < FS_SIZE - 2_000_000
    exported = records[1]
    assert camera.repo.set_exported(exported.id)
    first_free = free(disk)

    want = first_free + 1_000_000  # ~1 MB more free than now: a few of the oldest must go
    sweeper = RetentionSweeper(
        store_engine, camera.store, StorageSettings(min_free_bytes=want), policies=dict
    )
    report = sweeper.sweep()
    deleted = [d.segment_id for d in report.deleted]
    deletable = [r.id for r in records if r.id != exported.id]
    assert 3 <= len(deleted) < len(deletable)
    assert deleted == deletable[: len(deleted)]  # oldest first, the export skipped
    assert {d.reason for d in report.deleted} == {"low_space"}
    assert free(disk) >= want and report.free_bytes == free(disk)
    assert report.bytes_freed == sum(r.size for r in records if r.id in deleted)
    for r in records:
        gone = r.id in deleted
        assert camera.store.exists(r.object_key) is not gone
        assert (camera.repo.get(r.id) is None) is gone

    # Ask for the whole disk free: everything goes but the export.
    sweeper.settings = StorageSettings(min_free_bytes=FS_SIZE)
    report2 = sweeper.sweep()
    assert [d.segment_id for d in report2.deleted] == deletable[len(deleted) :]
    assert [r.id for r in camera.repo.oldest(include_exported=True)] == [exported.id]
    assert camera.store.exists(exported.object_key)
    with av.open(str(camera.store.path(exported.object_key))) as c:
        assert next(c.decode(video=0)).key_frame  # the kept export still plays

    audit = retention_audit(store_engine)
    by_id = {r.id: r for r in records}
    assert [a["segment"] for a in audit] == deletable
    for entry in audit:
        rec = by_id[str(entry["segment"])]
        assert entry == {"camera": CAM, "segment": rec.id, "reason": "low_space", "bytes": rec.size}


def test_retention_days_and_budget_on_the_real_archive(
    clip20: Path, disk: Path, store_engine: Engine
) -> None:
    camera = Camera(clip20, disk, store_engine)
    for _ in range(2):
        camera.run().stop()  # each round's last segment ends with it
    records = sorted(camera.records, key=lambda r: r.start_at)
    first_round = [r for r in records if r.start_at < BASE + timedelta(seconds=30)]
    # 1 day of continuous retention, swept when only the first round is past it.
    now = BASE + timedelta(days=1, seconds=25)
    sweeper = RetentionSweeper(
        store_engine,
        camera.store,
        StorageSettings(min_free_bytes=0),
        policies=lambda: {CAM: (1.0, None)},
    )
    report = sweeper.sweep(now)
    assert [d.segment_id for d in report.deleted] == [r.id for r in first_round]
    assert {d.reason for d in report.deleted} == {"retention"}

    left = [r for r in records if r not in first_round]
    budget = sum(r.size for r in left) // 2
    sweeper.settings = StorageSettings(min_free_bytes=0, budget_bytes=budget)
    report = sweeper.sweep(now)
    assert {d.reason for d in report.deleted} == {"budget"}
    assert [d.segment_id for d in report.deleted] == [r.id for r in left[: len(report.deleted)]]
    assert report.used_bytes <= budget < report.used_bytes + report.deleted[-1].size


def test_a_full_disk_records_again_after_a_sweep(
    clip20: Path, disk: Path, store_engine: Engine
) -> None:
    camera = Camera(clip20, disk, store_engine, retry_after_s=0.05)
    recorder = camera.run(rounds=3)  # ~5.4 MB of video, stored twice in flight: fills 8 MiB
    for _ in range(5):
        if recorder.state is RecorderState.STORAGE_FULL:
            break
        recorder = camera.run()
    assert recorder.state is RecorderState.STORAGE_FULL
    assert recorder.last_error.startswith("storage_full: ")
    assert not list(camera.tmp.glob(".tmp-*"))
    stored = len(camera.records)
    assert stored > 0

    sweeper = RetentionSweeper(
        store_engine, camera.store, StorageSettings(min_free_bytes=4 << 20), policies=dict
    )
    report = sweeper.sweep()
    assert report.deleted and free(disk) >= 4 << 20
    oldest = sorted(camera.records, key=lambda r: r.start_at)[: len(report.deleted)]
    assert [d.segment_id for d in report.deleted] == [r.id for r in oldest]

    time.sleep(0.1)  # past retry_after_s: the next keyframe opens a segment again
    camera.states.clear()
    recorder = camera.run()
    assert RecorderState.RECORDING in camera.states
    assert len(camera.records) >= stored + 5
    recorder.stop()
    for rec in camera.records[stored:]:
        assert camera.store.exists(rec.object_key)


def test_storage_route(clip20: Path, disk: Path, store_engine: Engine, tmp_path: Path) -> None:
    camera = Camera(clip20, disk, store_engine)
    camera.run().stop()
    repo = camera.repo
    records = sorted(camera.records, key=lambda r: r.start_at)
    repo.set_exported(records[0].id)

    class Probe:
        async def status(self) -> dict[str, object] | None:
            return {"budget_bytes": 123456, "min_free_bytes": 1000, "last_sweep": None}

    services = make_services(
        store_engine, tmp_path, objects=camera.store, segments=repo, storage=Probe()
    )
    for cam in (CAM, "porch"):
        services.cameras.upsert(cam, {"id": cam, "source": f"/videos/{cam}.mp4"})
    porch_info = SegmentInfo(
        tmp_path / "unused.mp4", 0.0, 2.0, BASE, BASE + timedelta(seconds=2), 777, "h264",
        False, 20,
    )  # fmt: skip
    repo.add("porch", porch_info, "recordings/porch/x.mp4", "event")
    app = api_app(services)
    operator = add_user(services.security, "op", Role.OPERATOR)
    limited = add_user(services.security, "op-yard", Role.OPERATOR, [CAM])
    viewer = add_user(services.security, "viewer", Role.VIEWER)
    with TestClient(app) as client:
        assert client.get("/api/v1/storage").status_code == 401
        assert client.get("/api/v1/storage", headers=viewer.headers).status_code == 403
        r = client.get("/api/v1/storage", headers=operator.headers)
        assert r.status_code == 200, r.text
        body = r.json()
        yard_bytes = sum(rec.size for rec in records)
        assert [c["camera_id"] for c in body["cameras"]] == ["porch", CAM]  # by id
        yard = body["cameras"][1]
        assert yard["bytes"] == yard_bytes and yard["segments"] == len(records)
        assert yard["exported_bytes"] == records[0].size
        assert datetime.fromisoformat(yard["oldest_at"]) == records[0].start_at
        assert body["total_bytes"] == yard_bytes + 777
        assert body["total_segments"] == len(records) + 1
        assert body["budget_bytes"] == 123456 and body["min_free_bytes"] == 1000
        assert body["disk"]["total_bytes"] == FS_SIZE
        assert 0 < body["disk"]["free_bytes"] <= FS_SIZE - yard_bytes
        r = client.get("/api/v1/storage", headers=limited.headers)
        assert r.status_code == 200 and "porch" not in r.text
        assert r.json()["total_bytes"] == yard_bytes
