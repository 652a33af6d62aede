"""A camera's incidents through the real runner and sink (no Ray): the real sample video, a
scripted detector, the production wiring (``camera_sink``) on a real database.

Overlapping person events make one incident and one rule alert; a camera that dies with an
incident open adopts it when it comes back instead of opening another.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
from numpy.typing import NDArray
from sqlalchemy.engine import Engine

from sentinel.actors.camera import camera_sink
from sentinel.actors.runner import CameraRunner
from sentinel.config import AgentSettings, CameraConfig
from sentinel.domain.stats import CameraState
from sentinel.domain.types import Box, Detection, DetectResult
from sentinel.store.alert_repo import AgentQueue, AlertRepository
from sentinel.store.incident_repo import IncidentRepository
from sentinel.store.objects import LocalObjectStore
from sentinel.store.repo import EventRepository
from tests.utils.media import sample_video

A = Box(100, 100, 160, 260)
B = Box(400, 100, 460, 260)
C = Box(600, 300, 660, 460)


def scripted(plan: Callable[[int], list[Box]]) -> Callable[[NDArray[np.uint8]], object]:
    calls = 0

    async def detect(rgb: NDArray[np.uint8]) -> DetectResult:
        nonlocal calls
        boxes = plan(calls)
        calls += 1
        return DetectResult([Detection(b, "person", 0.9, 0) for b in boxes], 1, 1.0)

    return detect


def runner(
    engine: Engine, tmp: Path, epoch: str, plan: Callable[[int], list[Box]], realtime: bool
) -> CameraRunner:
    camera = CameraConfig(
        id="yard",
        source=str(sample_video()),
        realtime=realtime,
        detect_fps=5,
        motion={"enabled": False},
    )
    events = EventRepository(engine)
    sink, incidents = camera_sink(
        camera, epoch, engine, LocalObjectStore(tmp / "objects"), AgentSettings()
    )
    return CameraRunner(
        camera,
        detect=scripted(plan),  # type: ignore[arg-type]
        sink=sink,
        epoch=epoch,
        open_events=lambda: [e.to_state() for e in events.open_events("yard")],
        incidents=incidents,
    )


async def wait_for(check: Callable[[], bool]) -> None:
    deadline = time.monotonic() + 60.0
    while not await asyncio.to_thread(check):
        if time.monotonic() > deadline:
            raise AssertionError("condition not met in time")
        await asyncio.sleep(0.1)


def test_overlapping_events_make_one_incident_and_one_alert(
    store_engine: Engine, tmp_path: Path
) -> None:
    # Three people overlap in time (B joins while A is there, C while B is), then all leave.
    def plan(n: int) -> list[Box]:
        return [
            box
            for box, (start, end) in ((A, (0, 40)), (B, (20, 70)), (C, (60, 110)))
            if start <= n < end
        ]

    run = runner(store_engine, tmp_path, "e1", plan, realtime=False)
    assert asyncio.run(run.run()) is CameraState.FINISHED
    events = EventRepository(store_engine).list(camera_id="yard").items
    assert len(events) == 3
    incidents = IncidentRepository(store_engine).list().items
    assert len(incidents) == 1
    incident = incidents[0]
    assert set(incident.members) == {e.id for e in events}
    assert incident.labels == ("person",) and incident.ended_at is not None
    alerts, _ = AlertRepository(store_engine).list()
    assert len(alerts) == 1, [a.event_id for a in alerts]
    assert alerts[0].incident_id == incident.id
    assert AgentQueue(store_engine).backlog() == 1


def test_a_restarted_camera_adopts_its_open_incident(store_engine: Engine, tmp_path: Path) -> None:
    incidents = IncidentRepository(store_engine)
    alerts = AlertRepository(store_engine)

    async def crash_then_restart() -> None:
        first = runner(store_engine, tmp_path, "run-1", lambda n: [A, B] if n >= 2 else [A], True)
        task = asyncio.create_task(first.run())
        await wait_for(lambda: any(len(i.members) == 2 for i in incidents.list().items))
        await wait_for(lambda: len(alerts.list()[0]) == 1)
        task.cancel()  # dies without closing anything, like a killed actor
        with pytest.raises(asyncio.CancelledError):
            await task
        [stored] = incidents.open_incidents("yard")
        # The next run sees A again, where it was: its event continues, in the same incident.
        second = runner(store_engine, tmp_path, "run-2", lambda n: [A], True)
        task = asyncio.create_task(second.run())
        a_event = stored.members[0]
        before = EventRepository(store_engine).get(a_event)
        assert before is not None

        def a_continued() -> bool:
            now = EventRepository(store_engine).get(a_event)
            return now is not None and now.last_seen_at > before.last_seen_at

        await wait_for(a_continued)
        await wait_for(
            lambda: (i := incidents.get(stored.id)) is not None and i.revision > stored.revision
        )
        second.stop()
        assert await task is CameraState.STOPPED

    asyncio.run(crash_then_restart())
    [incident] = incidents.list().items
    assert incident.ended_at is not None  # closed at the clean stop
    assert len(incident.members) == 2
    [alert] = alerts.list()[0]
    assert alert.incident_id == incident.id
    assert EventRepository(store_engine).count() == 2  # A continued, not duplicated
