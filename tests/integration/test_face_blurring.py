"""Face blurring per camera (``privacy.blur_faces``) with real faces, on SQLite and PostgreSQL.

A snapshot or an export of a blurring camera, run through dlib's face detector, shows no face
where the original had one; a camera that does not blur is untouched. The snapshot is blurred
off the camera's loop (the sink returns before the detector has run), and the face scanner
gives a blurring camera's events no print. ``faces.enabled`` is off in all of this: blurring
needs no face prints.
"""

from __future__ import annotations

import asyncio
import io
import os
import time
from collections.abc import Callable
from dataclasses import replace
from datetime import timedelta
from pathlib import Path

import av
import numpy as np
import pytest
from fastapi.testclient import TestClient
from numpy.typing import NDArray
from PIL import Image
from sqlalchemy.engine import Engine

from sentinel.actors.camera import camera_sink
from sentinel.actors.runner import CameraRunner
from sentinel.actors.sink import StoreSink
from sentinel.api.deps import Services
from sentinel.config import AgentSettings, CameraConfig, FaceSettings
from sentinel.domain.render import Overlay
from sentinel.domain.stats import CameraState
from sentinel.domain.types import (
    Box,
    Detection,
    DetectResult,
    EventChange,
    EventChangeKind,
    EventState,
)
from sentinel.models.faces import FaceAnalyzer
from sentinel.retention.blurring import BlurredSnapshotWriter, FaceBlurrer, blurring_cameras
from sentinel.retention.face_index import FaceIndex
from sentinel.retention.faces import FaceVault
from sentinel.store.export_repo import ExportRepository
from sentinel.store.face_repo import FaceRepository
from sentinel.store.objects import LocalObjectStore, snapshot_key
from sentinel.store.repo import CameraRepository, EventRepository
from sentinel.store.segment_repo import SegmentInfo, SegmentRecord, SegmentRepository
from sentinel.video.segments import finalize_segment
from tests.integration import test_recordings_api as rec
from tests.integration import test_segments as seg
from tests.utils.faces import MESSI, face_clip, photo
from tests.utils.segments import record_segments
from tests.utils.services import make_services

BLUR, PLAIN = "lobby", "yard"
client_headers = rec.client_headers  # the shared `client`, signed in as `admin`


@pytest.fixture(scope="module")
def blurrer() -> FaceBlurrer:
    return FaceBlurrer()


def _messi() -> NDArray[np.uint8]:
    return np.asarray(Image.open(io.BytesIO(photo(MESSI))).convert("RGB"), dtype=np.uint8)


def _jpeg_rgb(data: bytes) -> NDArray[np.uint8]:
    return np.asarray(Image.open(io.BytesIO(data)).convert("RGB"), dtype=np.uint8)


def _event(camera: str, n: int, *, ended: bool = False) -> EventState:
    start = seg.BASE + timedelta(minutes=n)
    return EventState(
        id=f"ev-{camera}-{n}",
        camera_id=camera,
        label="person",
        track_id=n,
        started_at=start,
        last_seen_at=start + timedelta(seconds=5),
        score=0.9,
        box=Box(180, 60, 320, 340),
        best_at=start,
        ended_at=start + timedelta(seconds=5) if ended else None,
    )


def test_the_blurrer_hides_a_real_face(blurrer: FaceBlurrer) -> None:
    rgb = _messi()
    assert len(blurrer.detect(rgb)) == 1
    times = []
    for _ in range(3):
        started = time.perf_counter()
        blurred, faces = blurrer.blur(rgb)
        times.append((time.perf_counter() - started) * 1000)
    assert faces == 1 and blurrer.detect(blurred) == []
    # Up to 4 detector upsamplings: still nothing (a stronger search than the blurrer's own).
    assert FaceAnalyzer(upsample=2).detect(blurred) == []
    changed = np.any(blurred != rgb, axis=2)
    assert 0 < changed.mean() < 0.05  # the face, not the picture
    print(f"blur of a {rgb.shape[1]}x{rgb.shape[0]} frame: {min(times):.0f} ms")


def test_a_blurring_camera_stores_blurred_snapshots_off_the_loop(
    store_engine: Engine, tmp_path: Path, blurrer: FaceBlurrer
) -> None:
    objects = LocalObjectStore(tmp_path / "objects")
    events = EventRepository(store_engine)
    writer = BlurredSnapshotWriter(objects, events, blurrer)
    blurring = StoreSink(BLUR, events, objects, snapshots=writer)
    plain = StoreSink(PLAIN, events, objects)
    rgb = _messi()

    opened = EventChange(EventChangeKind.OPENED, _event(BLUR, 1), new_best=True)
    started = time.perf_counter()
    blurring.apply([opened], rgb)
    apply_ms = (time.perf_counter() - started) * 1000
    stored = events.get(opened.event.id)
    assert stored is not None  # the event is written at once, its snapshot follows
    assert writer.flush(60)
    stored = events.get(opened.event.id)
    assert stored is not None and stored.snapshot_key == snapshot_key(BLUR, opened.event.id)
    assert writer.stats.written == 1 and writer.stats.faces == 1 and writer.stats.failed == 0
    blur_ms = writer.stats.ms[0]
    assert apply_ms < blur_ms  # the detector ran in the writer's thread, not in apply
    assert blurrer.detect(_jpeg_rgb(objects.get(stored.snapshot_key))) == []
    print(f"snapshot: sink.apply {apply_ms:.1f} ms; blur+encode+store {blur_ms:.0f} ms")

    # A later best frame replaces the snapshot, blurred too; a closed event keeps its key.
    closed = EventChange(EventChangeKind.CLOSED, _event(BLUR, 1, ended=True), new_best=True)
    blurring.apply([closed], rgb)
    assert writer.flush(60) and writer.stats.written == 2
    again = events.get(closed.event.id)
    assert again is not None and again.snapshot_key == stored.snapshot_key
    assert blurrer.detect(_jpeg_rgb(objects.get(again.snapshot_key))) == []

    # The camera that does not blur keeps the face.
    other = EventChange(EventChangeKind.OPENED, _event(PLAIN, 2), new_best=True)
    plain.apply([other], rgb)
    kept = events.get(other.event.id)
    assert kept is not None and kept.snapshot_key is not None
    assert len(blurrer.detect(_jpeg_rgb(objects.get(kept.snapshot_key)))) == 1

    # An event gone before its snapshot is written leaves no orphan object.
    writer.events = _Gone(events)  # type: ignore[assignment]
    gone = EventChange(EventChangeKind.OPENED, _event(BLUR, 3), new_best=True)
    blurring.apply([gone], rgb)
    assert writer.close(60)
    assert not objects.exists(snapshot_key(BLUR, gone.event.id))
    with pytest.raises(RuntimeError, match="closed"):
        writer.submit("x", snapshot_key(BLUR, "x"), rgb, Overlay(Box(0, 0, 9, 9), "person", "x"))


class _Gone:
    """The event repository after the event was deleted (erased or expired meanwhile)."""

    def __init__(self, events: EventRepository) -> None:
        self.events = events

    def set_snapshot_key(self, event_id: str, key: str) -> bool:
        return False


def test_the_face_scanner_gives_blurring_cameras_no_prints(
    store_engine: Engine, tmp_path: Path, blurrer: FaceBlurrer
) -> None:
    cameras = CameraRepository(store_engine)
    for camera, blur in ((BLUR, True), (PLAIN, False)):
        config = {"id": camera, "source": f"/videos/{camera}.mp4"}
        cameras.upsert(camera, {**config, "privacy": {"blur_faces": blur}})
        assert CameraConfig(**cameras.get_own(camera) or {}).privacy.blur_faces is blur
    assert blurring_cameras(cameras) == {BLUR}
    objects = LocalObjectStore(tmp_path / "objects")
    events = EventRepository(store_engine)
    # Both snapshots stored unblurred (as a camera switched to blurring later would have).
    for n, camera in enumerate((BLUR, PLAIN)):
        state = replace(_event(camera, n, ended=True), box=Box(0, 0, 547, 341))
        key = snapshot_key(camera, state.id)
        objects.put(key, photo(MESSI), "image/jpeg")
        events.upsert(state, key)
    index = FaceIndex(
        FaceRepository(store_engine),
        FaceVault(os.urandom(32)),
        blurrer.analyzer,
        objects,
        FaceSettings(enabled=True),
        blurring=lambda: blurring_cameras(cameras),
    )
    report = index.scan()
    assert (report.scanned, report.faces, report.skipped) == (1, 1, 1)
    assert index.scan().skipped == 0  # marked scanned: never read again
    matches = index.search_photo(photo(MESSI)).matches
    assert [m.camera_id for m in matches] == [PLAIN]


# -- exports -------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def face_segments(tmp_path_factory: pytest.TempPathFactory) -> list[SegmentInfo]:
    """4 s of a moving real face (10 fps), recorded into one segment from BASE."""
    clip = face_clip(tmp_path_factory.mktemp("faces") / "messi.mp4", seconds=4.0)
    infos = record_segments(clip, tmp_path_factory.mktemp("face-segments"), seg.BASE, 60.0)
    assert infos
    return infos


@pytest.fixture
def services(store_engine: Engine, tmp_path: Path) -> Services:
    return make_services(
        store_engine,
        tmp_path,
        segments=SegmentRepository(store_engine),
        exports=ExportRepository(store_engine),
    )


@pytest.fixture
def face_records(
    services: Services, face_segments: list[SegmentInfo], tmp_path: Path
) -> list[SegmentRecord]:
    assert services.segments is not None
    out = []
    for camera, blur in ((BLUR, True), (PLAIN, False)):
        services.cameras.upsert(
            camera,
            {"id": camera, "source": f"/videos/{camera}.mp4", "privacy": {"blur_faces": blur}},
        )
        for info in face_segments:
            out.append(
                finalize_segment(
                    seg.temp_copy(info, tmp_path / "tmp"),
                    camera_id=camera,
                    kind="continuous",
                    store=services.objects,
                    repo=services.segments,
                )
            )
    return out


def _frames(data: bytes) -> list[NDArray[np.uint8]]:
    with av.open(io.BytesIO(data), "r") as container:
        return [
            np.asarray(f.to_ndarray(format="rgb24"), dtype=np.uint8)
            for f in container.decode(video=0)
        ]


def test_exports_of_a_blurring_camera_have_no_face_in_any_frame(
    client: TestClient,
    services: Services,
    face_records: list[SegmentRecord],
    blurrer: FaceBlurrer,
) -> None:
    took: dict[str, float] = {}
    frames: dict[str, list[NDArray[np.uint8]]] = {}
    times: dict[str, tuple[str, str]] = {}
    for camera in (PLAIN, BLUR):
        body = {"camera_id": camera, "start": rec.iso(0), "end": rec.iso(4), "name": camera}
        started = time.perf_counter()
        r = client.post("/api/v1/exports", json=body)
        took[camera] = time.perf_counter() - started
        assert r.status_code == 201, r.text
        export = r.json()
        times[camera] = (export["start_at"], export["end_at"])
        video = client.get(f"/api/v1/exports/{export['id']}.mp4")
        assert video.status_code == 200
        frames[camera] = _frames(video.content)
    assert len(frames[BLUR]) == len(frames[PLAIN]) == 40
    assert times[BLUR] == times[PLAIN]  # the same span, timestamps kept
    with_faces = {
        camera: sum(1 for f in found if blurrer.detect(f)) for camera, found in frames.items()
    }
    assert with_faces[PLAIN] >= 36  # HOG finds the moving face in (nearly) every frame
    assert with_faces[BLUR] == 0
    ratio = took[BLUR] / took[PLAIN]
    print(
        f"export of 4 s (40 frames, 588x342): plain {took[PLAIN]:.2f} s, blurred "
        f"{took[BLUR]:.2f} s ({ratio:.1f}x)"
    )


# -- the camera's own wiring -----------------------------------------------------------------


def _person_every_frame() -> Callable[[NDArray[np.uint8]], object]:
    async def detect(rgb: NDArray[np.uint8]) -> DetectResult:
        return DetectResult([Detection(Box(200, 60, 340, 340), "person", 0.9, 0)], 1, 1.0)

    return detect


@pytest.mark.parametrize("blur", [True, False])
def test_a_camera_runs_with_the_production_sink(
    store_engine: Engine, tmp_path: Path, blurrer: FaceBlurrer, blur: bool
) -> None:
    """``camera_sink`` wires the writer for a blurring camera: a real video of a face through
    the runner gives events whose snapshots show no face (and do show it without blurring)."""
    video = face_clip(tmp_path / "cam.mp4", seconds=3.0)
    camera = CameraConfig(
        id=BLUR if blur else PLAIN,
        source=str(video),
        realtime=False,
        detect_fps=10,
        motion={"enabled": False},
        privacy={"blur_faces": blur},
    )
    objects = LocalObjectStore(tmp_path / "objects")
    sink, incidents = camera_sink(camera, "e1", store_engine, objects, AgentSettings())
    assert (sink.snapshots is not None) is blur
    events = EventRepository(store_engine)
    run = CameraRunner(
        camera,
        detect=_person_every_frame(),  # type: ignore[arg-type]
        sink=sink,
        epoch="e1",
        open_events=lambda: [e.to_state() for e in events.open_events(camera.id)],
        incidents=incidents,
    )
    assert asyncio.run(run.run()) is CameraState.FINISHED
    if sink.snapshots is not None:
        assert sink.snapshots.close(60)
        assert sink.snapshots.stats.failed == 0 and sink.snapshots.stats.written >= 1
    stored = events.list(camera_id=camera.id).items
    assert stored and all(e.snapshot_key for e in stored)
    for ev in stored:
        assert ev.snapshot_key is not None
        faces = blurrer.detect(_jpeg_rgb(objects.get(ev.snapshot_key)))
        assert len(faces) == (0 if blur else 1)
