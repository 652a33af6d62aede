"""``sentinel search backfill``: queue every closed event for the running indexer, or index
them here (``--direct``) into ``<data dir>/search``, pruning what is gone."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import sqlalchemy as sa
from click.testing import CliRunner

from sentinel.cli import main
from sentinel.config import load_settings
from sentinel.domain.types import Box, EventState
from sentinel.search.index import VectorIndex
from sentinel.store.db import make_engine, migrate
from sentinel.store.repo import EventRepository
from sentinel.store.search_queue_repo import SearchQueue
from sentinel.store.tables import EVENTS

T0 = datetime(2026, 12, 1, 9, 0, tzinfo=UTC)


@pytest.fixture
def data_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("SENTINEL_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.delenv("SENTINEL_DATABASE_URL", raising=False)
    return tmp_path / "data"


def _state(n: int, ended: bool) -> EventState:
    at = T0 + timedelta(minutes=n)
    return EventState(
        id=f"ev-{n}",
        camera_id="gate",
        label="person" if n % 2 else "car",
        track_id=n,
        started_at=at,
        last_seen_at=at + timedelta(seconds=20),
        score=0.8,
        box=Box(10, 10, 50, 120),
        best_at=at,
        ended_at=at + timedelta(seconds=20) if ended else None,
        path=[(10.0, 10.0), (200.0, 15.0)],
    )


def test_backfill_queues_then_indexes_directly_and_prunes(data_dir: Path) -> None:
    settings = load_settings(None)
    data_dir.mkdir(parents=True)
    engine = make_engine(settings.db_url)
    migrate(engine)
    events = EventRepository(engine)
    for n in range(5):
        events.upsert(_state(n, ended=n != 4))  # ev-4 is still open
    queue = SearchQueue(engine)
    for lease in queue.lease(100, 60.0):  # as if an old indexer had taken them, then lost
        queue.complete(lease)
    assert queue.backlog() == 0

    result = CliRunner().invoke(main, ["search", "backfill"])
    assert result.exit_code == 0, result.output
    assert "queued 4 event(s) and 0 incident(s)" in result.output
    assert queue.backlog() == 4

    result = CliRunner().invoke(main, ["search", "backfill", "--direct"])
    assert result.exit_code == 0, result.output
    assert "indexed 4 item(s), removed 0 gone item(s), 4 queued item(s) handled" in result.output
    assert queue.backlog() == 0

    with engine.begin() as conn:
        conn.execute(sa.delete(EVENTS).where(EVENTS.c.id == "ev-0"))
    result = CliRunner().invoke(main, ["search", "backfill", "--direct"])
    assert result.exit_code == 0, result.output
    assert "indexed 3 item(s), removed 1 gone item(s)" in result.output
    engine.dispose()
    index = VectorIndex(settings.search_index_path())
    assert sorted(index.ids()) == ["ev-1", "ev-2", "ev-3"]
    hit = index.get("ev-1")
    assert hit is not None and hit.text.startswith("person, walking right")
