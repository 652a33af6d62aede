"""A camera keeps every event change while its store is down (no Ray): a real video, a real
database behind a sink that can be switched off, and the journal on a real disk."""

from __future__ import annotations

import asyncio
import subprocess
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import BinaryIO

import numpy as np
import pytest
from numpy.typing import NDArray
from sqlalchemy.engine import Engine

from sentinel.actors.runner import CameraRunner
from sentinel.actors.sink import StoreSink
from sentinel.api.metrics import render_metrics
from sentinel.config import CameraConfig
from sentinel.domain.stats import CameraState
from sentinel.domain.types import DetectResult, EventChange, EventChangeKind
from sentinel.store.journal import EventJournal, encode_change
from sentinel.store.objects import LocalObjectStore
from sentinel.store.repo import EventRepository
from tests.integration.conftest import wait_for
from tests.utils.factories import det
from tests.utils.media import h264_clip

CAM = "dock"
CAP = 10  # the in-memory cap of these runners: far fewer than the changes they make


@pytest.fixture(scope="module")
def clip(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return h264_clip(tmp_path_factory.mktemp("journal-clip"), seconds=10)


class StoreDown(ConnectionError):
    pass


class SwitchedSink:
    """The real sink behind a switch: while ``down()`` every write fails before touching it."""

    def __init__(self, inner: StoreSink, down: Callable[[], bool]) -> None:
        self.inner = inner
        self.down = down
        self.stored: list[bytes] = []  # every change stored, encoded at the time, in order

    def apply(self, changes: Sequence[EventChange], rgb: NDArray[np.uint8] | None) -> None:
        if self.down():
            raise StoreDown("database is unreachable")
        self.inner.apply(changes, rgb)
        self.stored.extend(encode_change(c) for c in changes)


def record_changes(runner: CameraRunner, out: BinaryIO | None = None) -> list[bytes]:
    """Every change the runner's pipeline makes, encoded when made, in order (also written
    to ``out`` at once, when given)."""
    made: list[bytes] = []
    pipeline = runner.pipeline
    for name in ("on_detections", "on_skipped", "close_all"):
        method = getattr(pipeline, name)

        def spy(*args: object, _method: Callable[..., list[EventChange]] = method) -> object:
            changes = _method(*args)
            lines = [encode_change(c) for c in changes]
            if out is not None:
                out.write(b"".join(lines))
            made.extend(lines)
            return changes

        setattr(pipeline, name, spy)
    return made


def walkers(crash_at: int | None = None) -> Callable[[NDArray[np.uint8]], object]:
    """A detector seeing a new person every 3 calls, each seen for 12 calls with a rising
    score (so events open, improve and close all the time); ``crash_at`` kills the camera
    loop at that call, as a dying actor would (no clean stop)."""
    calls = 0

    async def detect(rgb: NDArray[np.uint8]) -> DetectResult:
        nonlocal calls
        calls += 1
        if calls == crash_at:
            raise asyncio.CancelledError
        found = []
        for k in range(max(0, (calls - 12) // 3), calls // 3 + 1):
            age = calls - 3 * k
            if 0 <= age < 12:
                x, y = 60 + 90 * (k % 8), 150 + 250 * ((k // 8) % 2)
                found.append(det(x, y, score=0.45 + 0.05 * age))
        return DetectResult(found, 1, 1.0)

    return detect


def camera(clip: Path, **kw: object) -> CameraConfig:
    options: dict[str, object] = {
        "id": CAM,
        "source": str(clip),
        "realtime": False,
        "detect_fps": 10,
        "events": {"close_after_s": 1.0},
    }
    return CameraConfig(**{**options, **kw})


def runner_for(
    cam: CameraConfig,
    engine: Engine,
    tmp: Path,
    down: Callable[[], bool],
    journal: EventJournal | None,
    detect: Callable[[NDArray[np.uint8]], object] | None = None,
) -> tuple[CameraRunner, SwitchedSink, list[bytes]]:
    events = EventRepository(engine)
    sink = SwitchedSink(StoreSink(CAM, events, LocalObjectStore(tmp / "objects")), down)
    runner = CameraRunner(
        cam,
        detect=detect if detect is not None else walkers(),  # type: ignore[arg-type]
        sink=sink,
        epoch="e1",
        open_events=lambda: [e.to_state() for e in events.open_events(CAM)],
        journal=journal,
        store_retry_s=0.0,
        max_pending_changes=CAP,
    )
    return runner, sink, record_changes(runner)


def kinds(lines: Sequence[bytes]) -> set[str]:
    return {EventChangeKind(line.split(b'"kind":"')[1].split(b'"')[0].decode()) for line in lines}


def last_states(lines: Sequence[bytes]) -> dict[str, bytes]:
    """Each event's last change, by id."""
    out: dict[str, bytes] = {}
    for line in lines:
        out[line.split(b'"id":"')[1].split(b'"')[0].decode()] = line
    return out


def test_store_down_then_back_loses_nothing_and_keeps_the_order(
    clip: Path, store_engine: Engine, tmp_path: Path
) -> None:
    made: list[bytes] = []
    path = tmp_path / "journal" / f"{CAM}.jsonl"
    journal = EventJournal(path, max_bytes=64 << 20)
    runner, sink, made = runner_for(
        camera(clip), store_engine, tmp_path, lambda: len(made) < 10 * CAP, journal
    )
    assert asyncio.run(runner.run()) is CameraState.FINISHED
    counters = runner.stats.counters
    assert len(made) > 10 * CAP and kinds(made) == set(EventChangeKind)
    assert counters.events_journaled > 5 * CAP and counters.events_dropped == 0
    assert sink.stored == made  # every change, once, in the order it was made
    assert not journal.pending and path.stat().st_size == 0
    stored = {e.id: e for e in EventRepository(store_engine).list(camera_id=CAM, limit=500).items}
    assert set(stored) == set(last_states(made))
    assert all(e.ended_at is not None for e in stored.values())
    assert counters.events_opened == len(stored) == sum(b'"kind":"opened"' in m for m in made)
    assert counters.events_closed == sum(b'"kind":"closed"' in m for m in made)


class _DownSink:
    def apply(self, changes: Sequence[EventChange], rgb: NDArray[np.uint8] | None) -> None:
        raise StoreDown("database is unreachable")


def crashing_camera(clip: str, journal: str, made_file: str) -> None:
    """Runs in a child process the test kills (SIGKILL): a live camera whose store is down,
    noting every change it makes in ``made_file`` as it makes it."""
    cam = camera(Path(clip), realtime=True)  # paced: it is still running when it is killed
    runner = CameraRunner(
        cam,
        detect=walkers(),  # type: ignore[arg-type]
        sink=_DownSink(),
        epoch="e1",
        journal=EventJournal(Path(journal), max_bytes=64 << 20),
        store_retry_s=0.0,
    )
    with open(made_file, "ab", buffering=0) as out:
        record_changes(runner, out)
        asyncio.run(runner.run())


def test_a_new_runner_replays_the_journal_a_crashed_one_left(
    clip: Path, store_engine: Engine, tmp_path: Path
) -> None:
    path = tmp_path / "journal" / f"{CAM}.jsonl"
    made_file = tmp_path / "made.jsonl"
    code = (
        "import sys; from tests.integration.test_runner_journal import crashing_camera; "
        "crashing_camera(*sys.argv[1:])"
    )
    child = subprocess.Popen(
        [sys.executable, "-c", code, str(clip), str(path), str(made_file)],
        cwd=Path(__file__).parents[2],
    )
    try:

        def journalled_enough() -> bool:
            assert child.poll() is None, f"the camera process ended early ({child.returncode})"
            return path.is_file() and path.read_bytes().count(b"\n") >= 4 * CAP

        wait_for(
            journalled_enough,
            timeout=120,
            interval=0.1,
            what="the crashing camera to journal its changes",
        )
    finally:
        child.kill()  # SIGKILL: no clean stop, no close of the open events
        child.wait()
    made = made_file.read_bytes().splitlines(keepends=True)
    with path.open("ab") as f:
        f.write(b'{"v":1,"kind":"upd')  # as if it died in the middle of an append
    left = EventJournal(path, max_bytes=64 << 20).read(100_000).changes
    journalled = [encode_change(c) for c in left]
    # Only the changes of the frame it died on may be missing: made, not yet journalled.
    assert journalled == made[: len(journalled)] and len(journalled) >= 4 * CAP
    assert len(made) - len(journalled) <= 10
    assert EventRepository(store_engine).list(camera_id=CAM).items == []

    # The new runner only decodes (detect off): what it stores comes from the journal.
    fresh, sink, _ = runner_for(
        camera(clip, detect=False),
        store_engine,
        tmp_path,
        lambda: False,
        EventJournal(path, max_bytes=64 << 20),
    )
    assert asyncio.run(fresh.run()) is CameraState.FINISHED
    assert sink.stored[: len(journalled)] == journalled  # replayed first, in order
    assert fresh.stats.counters.events_dropped == 0 and path.stat().st_size == 0
    stored = EventRepository(store_engine).list(camera_id=CAM, limit=500).items
    last = last_states(journalled)
    assert {e.id for e in stored} == set(last)
    for e in stored:  # each event as the crashed camera last knew it ...
        assert f'"hits":{e.hits},'.encode() in last[e.id]
    # ... and the ones it left open were adopted after the replay, and closed at the end.
    assert all(e.ended_at is not None for e in stored)


def test_a_full_journal_counts_every_dropped_change(
    clip: Path, store_engine: Engine, tmp_path: Path
) -> None:
    path = tmp_path / "journal" / f"{CAM}.jsonl"
    journal = EventJournal(path, max_bytes=16 * 1024)
    runner, sink, made = runner_for(camera(clip), store_engine, tmp_path, lambda: True, journal)
    assert asyncio.run(runner.run()) is CameraState.FINISHED
    counters = runner.stats.counters
    kept = EventJournal(path, max_bytes=16 * 1024).read(100_000).changes
    assert sink.stored == [] and 0 < len(kept) < len(made)
    assert counters.events_journaled == len(kept)
    assert counters.events_dropped == len(made) - len(kept) > 0
    assert path.stat().st_size <= 16 * 1024
    # What was kept was made in this order (nothing written twice or out of turn).
    rest = iter(made)
    assert all(any(line == m for m in rest) for line in map(encode_change, kept))
    metrics = render_metrics({CAM: runner.stats.to_dict()}).decode()
    assert f'sentinel_events_dropped_total{{camera="{CAM}"}} {float(len(made) - len(kept))}' in (
        metrics
    )
    assert runner.stats.to_dict()["counters"]["events_dropped"] == len(made) - len(kept)


def test_without_a_journal_the_memory_cap_drops_the_oldest_and_counts_them(
    clip: Path, store_engine: Engine, tmp_path: Path
) -> None:
    made: list[bytes] = []
    runner, sink, made = runner_for(
        camera(clip), store_engine, tmp_path, lambda: len(made) < 5 * CAP, None
    )
    assert asyncio.run(runner.run()) is CameraState.FINISHED
    dropped = runner.stats.counters.events_dropped
    assert dropped > 0 and len(sink.stored) == len(made) - dropped
    assert sink.stored == made[dropped:]  # the oldest went; the rest arrived in order
