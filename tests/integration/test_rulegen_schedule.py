"""A scheduled RuleGen run over a seeded store (SQLite and PostgreSQL), on the pandas engine
(the Ray engine's equality with it is ``test_rulegen_job``'s): suggestions stored, a second
run refreshes them, each run audited; and the settings that drive it."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from pydantic import ValidationError
from sqlalchemy.engine import Engine

from sentinel.actors.rulegen_schedule import ScheduledRuleGen
from sentinel.config import RuleGenConfig, Settings
from sentinel.rules.job import StoreCounts
from sentinel.rules.schedule import AUDIT_ACTION, AUDIT_ACTOR
from sentinel.store.audit_repo import AuditRepository
from sentinel.store.rule_repo import SuggestionRepository
from tests.integration.test_rulegen_job import seed

NOW = datetime(2024, 5, 20, tzinfo=UTC)


def test_scheduled_runs_store_and_refresh(store_engine: Engine) -> None:
    seed(store_engine)
    url = store_engine.url.render_as_string(hide_password=False)
    job = ScheduledRuleGen(
        url,
        RuleGenConfig(engine="pandas", history_days=None),
        lambda: {"gate": {"width": 1000, "height": 1000}, "yard": {"width": 800}},
        clock=lambda: NOW,
    )
    assert job.last_run() is None
    first = job.run()
    assert job.last_run() == NOW
    assert first.created == first.found and first.found >= 1
    masks = [s for s in SuggestionRepository(store_engine).list() if s.kind == "mask"]
    assert [(m.camera_id, m.body["label"], m.body["false_positives"]) for m in masks] == [
        ("gate", "car", 11)  # all of gate's clustered false alarms: no history window
    ]
    assert job.run() == StoreCounts(found=first.found, created=0, updated=first.found, kept=0)
    entries, _ = AuditRepository(store_engine).list(actor=AUDIT_ACTOR)
    assert [(e.action, e.detail["created"], e.detail["engine"]) for e in entries] == [
        (AUDIT_ACTION, 0, "pandas"),
        (AUDIT_ACTION, first.found, "pandas"),
    ]


def test_a_failed_run_is_audited(store_engine: Engine) -> None:
    def broken() -> dict[str, dict[str, object]]:
        raise RuntimeError("supervisor gone")

    url = store_engine.url.render_as_string(hide_password=False)
    job = ScheduledRuleGen(url, RuleGenConfig(engine="pandas"), broken, clock=lambda: NOW)
    with pytest.raises(RuntimeError, match="supervisor gone"):
        job.run()
    [entry], _ = AuditRepository(store_engine).list(actor=AUDIT_ACTOR)
    assert (entry.outcome, entry.detail["error"]) == ("error", "RuntimeError('supervisor gone')")
    assert job.last_run() == NOW  # a failed run counts: the next is one interval later


def test_rulegen_settings() -> None:
    settings = Settings(
        rulegen={"interval_s": 3600, "engine": "pandas", "timezone": "Europe/Berlin"}
    )
    assert (settings.rulegen.enabled, settings.rulegen.history_days) == (True, 28.0)
    for bad in ({"timezone": "Mars/Olympus"}, {"interval_s": 1}, {"engine": "spark"}):
        with pytest.raises(ValidationError):
            Settings(rulegen=bad)
