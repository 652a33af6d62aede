"""Services for API tests: real repositories over a test database, fakes for Ray parts."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from sqlalchemy.engine import Engine

from sentinel.api.deps import AnnotationServices, NotifyServices, Services
from sentinel.api.gateway import SecurityServices
from sentinel.config import CameraConfig, NotifySettings
from sentinel.domain.boxes import COCO_LABELS
from sentinel.domain.stats import CameraState, CameraStats
from sentinel.notify.webpush import VapidKey
from sentinel.store.annotation_repo import AnnotationRepo
from sentinel.store.dataset_repo import DatasetRepo
from sentinel.store.objects import LocalObjectStore, ObjectStore
from sentinel.store.repo import CameraRepository, EventRepository
from tests.utils.auth import agent_services, make_security


class FakeControl:
    """Records what the API asked for; reports a running status for started cameras."""

    def __init__(self) -> None:
        self.started_ids: list[str] = []
        self.removed_ids: list[str] = []
        self.frames: dict[str, bytes] = {}

    async def started(self, camera: CameraConfig) -> None:
        self.started_ids.append(camera.id)

    async def removed(self, camera_id: str) -> None:
        self.removed_ids.append(camera_id)

    async def status(self, camera_id: str) -> dict[str, Any] | None:
        if camera_id not in self.started_ids:
            return None
        st = CameraStats(camera_id=camera_id, state=CameraState.RUNNING)
        st.counters.frames_decoded = 42
        st.detector_latency_ms.observe(60.0)
        return st.to_dict()

    async def statuses(self) -> dict[str, dict[str, Any]]:
        return {cid: s for cid in self.started_ids if (s := await self.status(cid)) is not None}

    async def latest_jpeg(self, camera_id: str) -> bytes | None:
        return self.frames.get(camera_id)


class RecordingLauncher:
    """The training launcher seam: records the runs the API started (the Ray task itself is
    tested in test_training_ray.py)."""

    def __init__(self) -> None:
        self.started: list[str] = []

    async def start(self, run_id: str) -> None:
        self.started.append(run_id)


class ReadyDetector:
    def __init__(self, ready: bool = True) -> None:
        self.is_ready = ready

    async def ready(self) -> bool:
        return self.is_ready


def _no_dns(host: str, port: int) -> list[str]:
    """Tests never resolve names off this machine: only "localhost" resolves."""
    if host == "localhost":
        return ["127.0.0.1"]
    raise OSError(f"{host}: no DNS in tests")


def make_services(
    engine: Engine,
    tmp_path: Path,
    *,
    objects: ObjectStore | None = None,
    control: Any | None = None,
    auth: dict[str, Any] | None = None,
    security: SecurityServices | None = None,
    **extra: Any,
) -> Services:
    """The API's services over ``engine``: real stores and gateway, fake cameras/detector.

    ``auth`` are AuthSettings fields; ``extra`` sets optional services (segments, exports…).
    The annotation queue and datasets are on, over the same object store, with COCO's labels.
    """
    objects = objects or LocalObjectStore(tmp_path / "objects")
    extra.setdefault(
        "annotation",
        AnnotationServices(AnnotationRepo(engine, objects), DatasetRepo(engine), COCO_LABELS),
    )
    extra.setdefault(
        "notify",
        NotifyServices(
            NotifySettings(),
            "webhook-secret",
            "link-secret",
            lambda: {},
            resolver=_no_dns,
            vapid=VapidKey.generate(),
        ),
    )
    return Services(
        engine=engine,
        events=EventRepository(engine),
        cameras=CameraRepository(engine),
        objects=objects,
        control=control or FakeControl(),
        detector=ReadyDetector(),
        security=security or make_security(engine, tmp_path, **(auth or {})),
        agent=agent_services(engine),
        **extra,
    )
