"""Rules, versions, arming and RuleGen suggestions in the store (SQLite and PostgreSQL)."""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import sqlalchemy as sa
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy.engine import Engine
from sqlmodel import SQLModel

from sentinel.domain.rule_model import ArmingMode, Conditions, Rule
from sentinel.store.db import alembic_config, make_engine, migrate
from sentinel.store.repo import CameraRepository
from sentinel.store.rule_repo import (
    AlreadyDecided,
    RuleConflict,
    RuleExists,
    RuleRepository,
    SuggestionExists,
    SuggestionRepository,
)
from sentinel.store.rule_tables import RULES

T0 = datetime(2026, 3, 1, 12, tzinfo=UTC)
OURS = {"rules", "rule_versions", "arming", "rulegen_suggestions"}


def _clock() -> Iterator[datetime]:
    return (T0 + timedelta(seconds=n) for n in itertools.count())


@pytest.fixture
def repo(store_engine: Engine) -> RuleRepository:
    ticks = _clock()
    return RuleRepository(store_engine, clock=lambda: next(ticks))


def gate(**kw: Any) -> Rule:
    values: dict[str, Any] = {"id": "gate", "name": "Gate", "conditions": Conditions(zone="gate")}
    return Rule(**{**values, **kw})


def test_migration_matches_the_tables(store_engine: Engine) -> None:
    opts = {"include_object": lambda _o, name, kind, *_: kind != "table" or name in OURS}
    with store_engine.connect() as conn:
        diffs = compare_metadata(MigrationContext.configure(conn, opts=opts), SQLModel.metadata)
    assert diffs == []


def test_create_update_versions_and_revision(repo: RuleRepository) -> None:
    assert repo.arming().mode is ArmingMode.AWAY
    assert repo.revision() == 0
    created = repo.create(gate(version=7), "alice")
    assert created.version == 1
    assert repo.revision() == 1
    with pytest.raises(RuleExists):
        repo.create(gate(), "alice")
    updated = repo.update(gate(name="Gate at night"), 1, "bob")
    assert updated.version == 2
    assert repo.revision() == 2
    stored = repo.get("gate")
    assert stored is not None and stored.rule == updated
    assert stored.created_at == T0 and stored.updated_at > T0
    with pytest.raises(RuleConflict) as conflict:
        repo.update(gate(name="stale"), 1, "carol")
    assert (conflict.value.expected, conflict.value.current) == (1, 2)
    with pytest.raises(LookupError):
        repo.update(Rule(id="nope", name="x"), 1, "carol")
    assert repo.revision() == 2  # refused writes change nothing
    versions = repo.versions("gate")
    assert [(v.rule.version, v.rule.name, v.changed_by) for v in versions] == [
        (1, "Gate", "alice"),
        (2, "Gate at night", "bob"),
    ]


def test_soft_delete(repo: RuleRepository, store_engine: Engine) -> None:
    repo.create(gate(), "alice")
    with pytest.raises(RuleConflict):
        repo.delete("gate", 5)
    repo.delete("gate", 1)
    assert repo.get("gate") is None
    deleted = repo.get("gate", include_deleted=True)
    assert deleted is not None and deleted.deleted_at is not None
    assert repo.list() == []
    assert len(repo.versions("gate")) == 1
    with pytest.raises(LookupError):
        repo.delete("gate")
    with store_engine.connect() as conn:
        assert conn.execute(sa.select(sa.func.count()).select_from(RULES)).scalar_one() == 1
    assert repo.revision() == 2


def test_list_and_snapshot_by_camera(repo: RuleRepository) -> None:
    repo.create(Rule(id="all", name="a all"), "x")
    repo.create(Rule(id="front", name="b front", cameras=("front",)), "x")
    repo.create(Rule(id="back", name="c back", cameras=("back", "side")), "x")
    repo.create(Rule(id="off", name="d off", cameras=("front",), enabled=False), "x")
    assert [s.rule.id for s in repo.list()] == ["all", "front", "back", "off"]
    assert [s.rule.id for s in repo.list(camera_ids=["front"])] == ["all", "front", "off"]
    assert [s.rule.id for s in repo.list(camera_ids=[])] == ["all"]
    assert [s.rule.id for s in repo.list(enabled_only=True)] == ["all", "front", "back"]
    snap = repo.snapshot("front")
    assert snap.revision == 4 and snap.mode is ArmingMode.AWAY
    assert [r.id for r in snap.rules] == ["all", "front"]
    state = repo.set_arming(ArmingMode.NIGHT, "alice")
    assert (state.mode, state.revision, state.changed_by) == (ArmingMode.NIGHT, 5, "alice")
    assert state.at is not None and state.at.tzinfo is not None
    assert repo.snapshot("side").mode is ArmingMode.NIGHT
    assert [r.id for r in repo.snapshot("side").rules] == ["all", "back"]


def test_suggestions(store_engine: Engine) -> None:
    ticks = _clock()
    repo = SuggestionRepository(store_engine, clock=lambda: next(ticks))
    first = repo.add("rule", {"zone": "gate"}, camera_id="front", backtest={"fired": 3})
    second = repo.add("mask", {"polygon": [[0, 0], [1, 1]]})
    assert first.status == "suggested" and first.backtest == {"fired": 3}
    assert [s.id for s in repo.list()] == [second.id, first.id]
    assert [s.id for s in repo.list(camera_id="front")] == [first.id]
    decided = repo.decide(first.id, "accepted", "alice")
    assert (decided.status, decided.decided_by) == ("accepted", "alice")
    assert decided.decided_at is not None
    assert [s.id for s in repo.list(status="suggested")] == [second.id]
    with pytest.raises(AlreadyDecided):
        repo.decide(first.id, "rejected", "bob")
    with pytest.raises(LookupError):
        repo.decide("missing", "rejected", "bob")
    with pytest.raises(ValueError, match="kind must be one of"):
        repo.add("wish", {})
    with pytest.raises(ValueError, match="status must be one of"):
        repo.decide(second.id, "maybe", "bob")


def test_suggestion_dedupe_refresh_and_reopen(store_engine: Engine) -> None:
    ticks = _clock()
    repo = SuggestionRepository(store_engine, clock=lambda: next(ticks))
    mask = repo.add(
        "mask", {"label": "car"}, camera_id="gate", backtest={"matched": 3}, reason="why",
        dedupe_key="k-mask",
    )  # fmt: skip
    tight = repo.add("tightening", {"rule_id": "r1"}, dedupe_key="k-tight")
    assert (mask.dedupe_key, mask.reason, mask.updated_at, mask.rule_id) == (
        "k-mask", "why", None, None,
    )  # fmt: skip
    assert repo.by_key("k-mask") == mask and repo.by_key("nope") is None
    with pytest.raises(SuggestionExists):
        repo.add("mask", {"label": "car"}, camera_id="gate", dedupe_key="k-mask")
    repo.add("mask", {}, camera_id="yard")  # rows without a key do not collide
    repo.add("mask", {}, camera_id="yard")

    assert repo.refresh(mask.id, {"label": "car", "n": 2}, {"matched": 5}, "more")
    fresh = repo.get(mask.id)
    assert fresh is not None
    assert (fresh.body, fresh.backtest, fresh.reason) == (
        {"label": "car", "n": 2},
        {"matched": 5},
        "more",
    )
    assert fresh.updated_at is not None and fresh.updated_at > fresh.created_at

    assert [s.id for s in repo.list(camera_ids=["gate"])] == [mask.id]  # no tightening
    assert repo.list(camera_ids=[]) == []

    decided = repo.decide(tight.id, "accepted", "alice", rule_id="r1")
    assert decided.rule_id == "r1"
    assert not repo.refresh(tight.id, {}, None, None)  # decided: left as it is
    assert not repo.reopen(tight.id, "bob")
    assert repo.reopen(tight.id, "alice")
    again = repo.get(tight.id)
    assert again is not None
    assert (again.status, again.decided_by, again.rule_id) == ("suggested", None, None)


def test_migration_0010_keeps_old_suggestions_and_downgrades(db_url: str) -> None:
    engine = make_engine(db_url)
    try:
        with engine.connect() as conn:
            command.upgrade(alembic_config(conn), "0009")
            conn.commit()
        with engine.begin() as conn:  # a row in 0008's shape
            conn.execute(
                sa.text(
                    "INSERT INTO rulegen_suggestions (id, kind, body, status, created_at) "
                    "VALUES ('old', 'mask', '{}', 'suggested', :at)"
                ),
                {"at": T0},
            )
        migrate(engine)
        old = SuggestionRepository(engine).get("old")
        assert old is not None
        assert (old.dedupe_key, old.reason, old.updated_at, old.rule_id) == (None, None, None, None)
        with engine.connect() as conn:
            command.downgrade(alembic_config(conn), "0009")
            conn.commit()
        columns = {c["name"] for c in sa.inspect(engine).get_columns("rulegen_suggestions")}
        assert not columns & {"dedupe_key", "reason", "updated_at", "rule_id"}
        with engine.connect() as conn:
            assert conn.execute(sa.text("SELECT id FROM rulegen_suggestions")).scalars().all() == [
                "old"
            ]
    finally:
        engine.dispose()


def test_migration_0011_adds_and_drops_the_camera_scene(db_url: str) -> None:
    engine = make_engine(db_url)
    try:
        with engine.connect() as conn:
            command.upgrade(alembic_config(conn), "0010")
            conn.commit()
        with engine.begin() as conn:  # a camera in 0010's shape
            conn.execute(
                sa.text(
                    "INSERT INTO cameras (id, config, created_at, updated_at) "
                    "VALUES ('gate', '{\"id\": \"gate\"}', :at, :at)"
                ),
                {"at": T0},
            )
        migrate(engine)
        cameras = CameraRepository(engine)
        assert cameras.get("gate") == {"id": "gate"} and not cameras.scene_edited("gate")
        assert cameras.set_scene("gate", {"zones": []})
        with engine.connect() as conn:
            command.downgrade(alembic_config(conn), "0010")
            conn.commit()
        assert "scene" not in {c["name"] for c in sa.inspect(engine).get_columns("cameras")}
        with engine.connect() as conn:
            assert conn.execute(sa.text("SELECT id FROM cameras")).scalars().all() == ["gate"]
    finally:
        engine.dispose()
