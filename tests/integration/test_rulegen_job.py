"""The RuleGen job through Ray Data over a seeded store (SQLite and PostgreSQL): operators'
false alarms clustered in one spot of a camera become a mask suggestion, with the exact count,
and the single-process engine finds the same suggestions."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any, cast

import pytest
from sqlalchemy.engine import Engine

from sentinel.actors.rulegen import DbConnect, run_rulegen
from sentinel.domain.alerts import AlertDecision, DecidedBy, Severity
from sentinel.domain.types import Box, EventState
from sentinel.rules.backtest import MaskFilter
from sentinel.rules.mining import MaskSuggestion
from sentinel.rules.rulegen import RuleGenSettings
from sentinel.store.alert_repo import AlertRepository
from sentinel.store.repo import EventRepository
from tests.integration.conftest import Stack

T0 = datetime(2024, 5, 6, tzinfo=UTC)
SINCE = T0 - timedelta(days=1)
SETTINGS = RuleGenSettings(timezone="UTC", frame_sizes={"gate": (1000, 1000), "yard": (800, 600)})


def seed(engine: Engine) -> None:
    """gate: 10 cars judged false with their bottom centre in the grid-16 cell x 0.25-0.3125,
    y 0.5-0.5625, one more there before ``SINCE``, and 24 people elsewhere (every 3rd judged
    true, every 4th never alerted); yard: 8 false alarms spread out (no cluster)."""
    events, alerts = EventRepository(engine), AlertRepository(engine, clock=lambda: T0)
    decision = AlertDecision(True, Severity.MEDIUM, "seen", ("rule",), "look", DecidedBy.RULES)

    def add(
        n: int, camera: str, label: str, at: datetime, x: float, y: float, verdict: str | None,
        alert: bool = True,
    ) -> None:  # fmt: skip
        event_id = f"{camera}-{n}"
        box = Box(x - 20, y - 90, x + 20, y)
        events.upsert(
            EventState(event_id, camera, label, n, at, at + timedelta(seconds=8), 0.7, box, at)
        )
        if alert:
            record = alerts.record_rule_decision(event_id, camera, label, decision)
            if verdict is not None:
                alerts.feedback(record.id, verdict, None, "operator", T0)

    for i in range(10):
        at = T0 + timedelta(days=i % 5, hours=2 + i)
        add(i, "gate", "car", at, 255 + 5 * i, 505 + 5 * i, "false_positive")
    add(99, "gate", "car", SINCE - timedelta(hours=1), 260, 510, "false_positive")
    for i in range(24):
        at = T0 + timedelta(days=i % 7, hours=i % 24)
        verdict = "true_positive" if i % 3 == 0 else None
        add(100 + i, "gate", "person", at, 600 + 10 * i, 900, verdict, alert=i % 4 != 0)
    for i in range(8):
        at = T0 + timedelta(days=i, hours=12)
        add(200 + i, "yard", "car", at, 50 + 95 * i, 100 + 60 * i, "false_positive")


@pytest.fixture
def seeded_url(store_engine: Engine) -> str:
    seed(store_engine)
    return store_engine.url.render_as_string(hide_password=False)


def test_clustered_false_alarms_become_a_mask(seeded_url: str, sentinel_stack: Stack) -> None:
    found = run_rulegen(seeded_url, since=SINCE, parallelism=2, settings=SETTINGS)

    masks = [s for s in found if s.kind == "mask"]
    assert len(masks) == 1
    mask = masks[0]
    assert mask.suggestion == MaskSuggestion(
        camera_id="gate",
        label="car",
        polygon=((0.25, 0.5), (0.3125, 0.5), (0.3125, 0.5625), (0.25, 0.5625)),
        false_positives=10,  # the one before SINCE is not in the history read
        true_positives_lost=0,
        detections_share=10 / 34,
    )
    assert mask.filter == MaskFilter("gate", frozenset({"car"}), 0.25, 0.5, 0.3125, 0.5625)
    assert mask.backtest.false_positives_removed == 10
    assert mask.backtest.true_positives_lost == 0
    assert mask.backtest.cpu_share == pytest.approx(10 / 34)
    assert mask.backtest.recall == 0.0  # none of gate's 8 real sightings is lost

    assert run_rulegen(seeded_url, since=SINCE, engine="pandas", settings=SETTINGS) == found


def test_connection_factory_from_store_urls() -> None:
    pg = DbConnect.from_url(
        "postgresql+psycopg://postgres@127.0.0.1:5432/test?options=-csearch_path%3Dabc"
    )
    assert dict(pg.params) == {
        "host": "127.0.0.1",
        "port": 5432,
        "user": "postgres",
        "dbname": "test",
        "options": "-csearch_path=abc",
    }
    assert DbConnect.from_url("sqlite:////tmp/x.db").params == (("database", "/tmp/x.db"),)
    with pytest.raises(ValueError, match="SQLite file"):
        DbConnect.from_url("sqlite://")
    with pytest.raises(ValueError, match="PostgreSQL or SQLite"):
        DbConnect.from_url("mysql://u@h/db")


def test_the_platform_runs_rulegen_on_its_schedule(sentinel_stack: Stack) -> None:
    """The platform's RuleGen actor ran once at start (a fresh store has no run in its audit
    log) on the Ray engine, and waits a day for the next."""
    import ray

    from sentinel.actors.rulegen_schedule import RULEGEN_NAME
    from sentinel.rules.schedule import AUDIT_ACTOR
    from sentinel.store.audit_repo import AuditRepository
    from sentinel.store.db import make_engine
    from tests.integration.conftest import wait_for

    settings = sentinel_stack.settings
    engine = make_engine(settings.db_url)
    try:
        audit = AuditRepository(engine)
        [entry] = wait_for(
            lambda: audit.list(actor=AUDIT_ACTOR)[0], timeout=120, what="a RuleGen run"
        )
        assert (entry.outcome, entry.detail["engine"]) == ("success", "ray")
        actor = ray.get_actor(RULEGEN_NAME, namespace=settings.namespace)
        ref: Any = actor.status.remote()
        status = cast("dict[str, Any]", ray.get(ref, timeout=30))
        assert status["last_error"] == "" and status["last"]["found"] == entry.detail["found"]
        last, due = datetime.fromisoformat(status["last_run"]), status["next_run"]
        assert datetime.fromisoformat(due) == last + timedelta(days=1)
    finally:
        engine.dispose()
