"""A small, real Sentinel API with seeded history, serving a dashboard build: for the browser
tests and for looking at the pages while building them.

Real stores (SQLite), gateway, recordings (H.264 segments finalized as the recorder does),
alerts and the live hub; cameras are :class:`FrameControl` (frames of the sample video that
change with time; one camera failed). Run it by hand::

    PYTHONPATH=$PWD .venv/bin/python -m tests.utils.dashboard_world --app sentinel/web/app

It prints the URL and the users' passwords, and raises a new alert every ``--tick`` seconds.
"""

from __future__ import annotations

import argparse
import itertools
import tempfile
import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from fastapi import FastAPI
from sqlalchemy.engine import Engine

from sentinel.api.app import create_app
from sentinel.api.deps import Services
from sentinel.domain.alerts import AlertDecision, DecidedBy, Severity
from sentinel.domain.stats import CameraState, CameraStats
from sentinel.domain.types import Box, EventState
from sentinel.gateway.roles import Role
from sentinel.store.db import make_engine, migrate, sqlite_url
from sentinel.store.export_repo import ExportRepository
from sentinel.store.segment_repo import SegmentInfo, SegmentRepository
from sentinel.video.segments import finalize_segment
from tests.utils import media
from tests.utils.auth import AuthedUser, add_user
from tests.utils.http_server import serve_app
from tests.utils.segments import record_segments
from tests.utils.services import FakeControl, make_services

CAMERAS = {
    "front_door": "Front door",
    "yard": "Yard",
    "garage": "Garage",
}
FAILED = "garage"
FAILED_REASON = "RTSP connect failed: connection refused (rtsp://127.0.0.1:8554/garage)"


class FrameControl(FakeControl):
    """Cameras whose latest frame changes ~5 times a second (the sample video's frames) and
    whose status has figures; ``garage`` has failed with a reason."""

    def __init__(self, frames: list[bytes]) -> None:
        super().__init__()
        self._frames = frames
        self._t0 = time.monotonic()

    def frame_index(self) -> int:
        return int((time.monotonic() - self._t0) * 5) % len(self._frames)

    async def latest_jpeg(self, camera_id: str) -> bytes | None:
        if camera_id not in self.started_ids or camera_id == FAILED:
            return None
        return self._frames[self.frame_index()]

    async def status(self, camera_id: str) -> dict[str, Any] | None:
        if camera_id not in self.started_ids:
            return None
        failed = camera_id == FAILED
        st = CameraStats(
            camera_id=camera_id, state=CameraState.FAILED if failed else CameraState.RUNNING
        )
        if failed:
            st.last_error = FAILED_REASON
        else:
            elapsed = time.monotonic() - self._t0
            st.counters.frames_decoded = int(elapsed * 10)
            st.counters.frames_sampled = int(elapsed * 5)
            st.detector_latency_ms.observe(55.0 + self.frame_index() % 10)
        return st.to_dict()


@dataclass
class World:
    url: str
    services: Services
    control: FrameControl
    admin: AuthedUser
    operator: AuthedUser
    limited: AuthedUser  # sees front_door only
    alerts: list[str]
    recorded_at: datetime  # the start of the recordings of front_door (20 s, a gap at 8-12 s)

    def raise_alert(self, camera_id: str = "front_door", label: str = "person") -> str:
        """A new event and alert now (published to the live socket through the outbox)."""
        return _alert(self.services, camera_id, label, datetime.now(UTC))


def _event(services: Services, camera: str, label: str, at: datetime, jpeg: bytes | None) -> str:
    ev = EventState(
        id=str(uuid.uuid4()),
        camera_id=camera,
        label=label,
        track_id=1,
        started_at=at,
        last_seen_at=at + timedelta(seconds=3),
        score=0.87,
        box=Box(120, 80, 260, 400),
        best_at=at,
        ended_at=at + timedelta(seconds=3),
    )
    key = None
    if jpeg is not None:
        key = f"snapshots/{camera}/{ev.id}.jpg"
        services.objects.put(key, jpeg, "image/jpeg")
    services.events.upsert(ev, key)
    return ev.id


_SNAPSHOTS: list[bytes] = []


def _alert(services: Services, camera: str, label: str, at: datetime) -> str:
    jpeg = _SNAPSHOTS[hash(at) % len(_SNAPSHOTS)] if _SNAPSHOTS else None
    eid = _event(services, camera, label, at, jpeg)
    decision = AlertDecision(
        True,
        Severity.HIGH if label == "person" else Severity.MEDIUM,
        f"A {label} near the {CAMERAS.get(camera, camera).lower()} after hours.",
        ("after_hours",),
        f"rule after_hours: a {label} seen outside 07:00-19:00",
        DecidedBy.RULES,
    )
    rec = services.agent.alerts.record_rule_decision(eid, camera, label, decision)
    return rec.id


def _segments(folder: Path, base: datetime) -> list[SegmentInfo]:
    clip = media.h264_clip(folder / "media", 20)
    return record_segments(clip, folder / "segments", base, 4.0)


def seed(services: Services, folder: Path) -> tuple[list[str], datetime]:
    """Cameras, 2 h of events and alerts, and 20 s of front_door recordings (a gap at 8-12 s)
    ending a minute ago; returns the alert ids (newest last) and the recordings' start."""
    for cid, name in CAMERAS.items():
        services.cameras.upsert(cid, {"id": cid, "name": name, "source": f"/videos/{cid}.mp4"})
    now = datetime.now(UTC).replace(microsecond=0)
    recorded_at = now - timedelta(seconds=80)
    assert services.segments is not None
    for k, info in enumerate(_segments(folder, recorded_at)):
        if k == 2:
            continue  # a gap
        finalize_segment(
            info, camera_id="front_door", kind="continuous", store=services.objects,
            repo=services.segments,
        )  # fmt: skip
    alerts = []
    plan = itertools.product(range(12), ("front_door", "yard"))
    for k, cam in plan:
        label = ("person", "car", "dog")[(k + len(cam)) % 3]
        alerts.append(_alert(services, cam, label, now - timedelta(minutes=120 - 10 * k)))
    # The newest alert is during the recording (its clip plays).
    alerts.append(_alert(services, "front_door", "person", recorded_at + timedelta(seconds=5)))
    return alerts, recorded_at


def with_search(services: Services, folder: Path) -> None:
    """Search over the world's history: the real text model and a real chromadb index (the
    events are indexed by :func:`index_all`)."""
    from sentinel.api.deps import SearchServices
    from sentinel.models.embedder import TextEmbedder
    from sentinel.search.index import APPEARANCE, VectorIndex
    from sentinel.search.service import SearchService
    from sentinel.store.alert_repo import AlertRepository
    from sentinel.store.incident_repo import IncidentRepository
    from sentinel.store.search_queue_repo import SearchQueue

    engine = services.engine
    service = SearchService(
        VectorIndex(folder / "search"),
        TextEmbedder(threads=1).embed,
        events=services.events,
        incidents=IncidentRepository(engine),
        cameras=services.cameras,
        queue=SearchQueue(engine),
        alerts=AlertRepository(engine),
        objects=services.objects,
        appearance=VectorIndex(folder / "search", collection=APPEARANCE),
    )
    services.search = SearchServices(service)


def index_all(services: Services) -> int:
    """Indexes every event of the world (the backfill an operator would run)."""
    assert services.search is not None
    report = services.search.service.backfill()
    return report.upserted


def build(
    folder: Path, engine: Engine | None = None, *, search: bool = False
) -> tuple[Services, FrameControl]:
    engine = engine or make_engine(sqlite_url(folder / "world.sqlite"))
    migrate(engine)
    frames = media.jpeg_frames(media.sample_video(), 40, width=768)
    _SNAPSHOTS[:] = frames[::8]
    control = FrameControl(frames)
    services = make_services(
        engine,
        folder,
        control=control,
        segments=SegmentRepository(engine),
        exports=ExportRepository(engine),
    )
    for cid in CAMERAS:
        control.started_ids.append(cid)
    if search:
        with_search(services, folder)
    return services, control


def web_app(services: Services, app_dir: Path | None) -> FastAPI:
    app = create_app()
    app.state.services = services
    if app_dir is not None:
        app.state.web_root = app_dir
    return app


@contextmanager
def world(folder: Path, app_dir: Path | None = None, *, search: bool = False) -> Iterator[World]:
    """The seeded world, served on 127.0.0.1 (the dashboard from ``app_dir``); with ``search``
    its history is indexed for search."""
    services, control = build(folder, search=search)
    alerts, recorded_at = seed(services, folder)
    if search:
        index_all(services)
    sec = services.security
    admin = add_user(sec, "admin", Role.ADMIN)
    operator = add_user(sec, "operator", Role.OPERATOR)
    limited = add_user(sec, "gatekeeper", Role.OPERATOR, cameras=["front_door"])
    with serve_app(web_app(services, app_dir)) as url:
        yield World(url, services, control, admin, operator, limited, alerts, recorded_at)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--app", type=Path, default=None, help="the dashboard build (web/out)")
    parser.add_argument("--tick", type=float, default=30.0, help="seconds between new alerts")
    parser.add_argument("--search", action="store_true", help="index the history for search")
    args = parser.parse_args()
    with (
        tempfile.TemporaryDirectory(prefix="sentinel-world-") as tmp,
        world(Path(tmp), args.app.resolve() if args.app else None) as w,
    ):
        print(f"dashboard: {w.url}/  (build: {args.app or 'sentinel/web/app'})", flush=True)
        for user in (w.admin, w.operator, w.limited):
            print(f"  {user.username} / {user.password}  ({user.role.value})", flush=True)
        stop = threading.Event()
        try:
            while not stop.wait(args.tick):
                w.raise_alert()
        except KeyboardInterrupt:
            pass


if __name__ == "__main__":
    main()
