"""Authentication and audit storage on real databases (every test on SQLite and PostgreSQL)."""

from __future__ import annotations

import json
import multiprocessing
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta, timezone
from multiprocessing.synchronize import Barrier
from typing import TypeVar

import pytest
import sqlalchemy as sa
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy.engine import Engine
from sqlmodel import SQLModel

from sentinel.gateway.audit import GENESIS_HASH, AuditRecord, verify_chain
from sentinel.store.db import alembic_config, make_engine, migrate
from sentinel.store.repo import CameraRepository
from sentinel.store.security_repo import (
    ApiKeyRecord,
    ApiKeyRepository,
    AuditRepository,
    RefreshStatus,
    RefreshTokenRepository,
    RefreshUse,
    UserExists,
    UserRepository,
)
from sentinel.store.security_tables import AUDIT_LOG, REFRESH_TOKENS

T0 = datetime(2025, 3, 1, 12, 0, 0, 123456, tzinfo=UTC)
T = TypeVar("T")
SECURITY_TABLES = {"users", "refresh_tokens", "api_keys", "audit_log", "audit_head"}


def at(seconds: float) -> datetime:
    return T0 + timedelta(seconds=seconds)


def append(
    audit: AuditRepository,
    n: int,
    *,
    actor: str = "alice",
    outcome: str = "ok",
    when: datetime | None = None,
) -> AuditRecord:
    return audit.append(
        actor=actor,
        action="login",
        target=f"user:{actor}",
        client="10.0.0.1",
        outcome=outcome,
        detail={"n": n, "pair": (1, "é"), "ratio": 0.1},
        at=at(n) if when is None else when,
    )


def parallel(count: int, fn: Callable[[int], T]) -> list[T]:
    with ThreadPoolExecutor(count) as pool:
        return list(pool.map(fn, range(count)))


# --- users ------------------------------------------------------------------------------------


def test_user_crud_and_case_insensitive_usernames(store_engine: Engine) -> None:
    users = UserRepository(store_engine, clock=lambda: T0.astimezone(timezone(timedelta(hours=2))))
    alice = users.create("Alice", "hash-1", "viewer", ["front", "back"])
    assert (alice.username, alice.cameras, alice.role) == ("alice", ("front", "back"), "viewer")
    assert not alice.disabled and not alice.totp_enabled and alice.totp_secret is None
    assert alice.totp_last_step is None and alice.created_at == T0 == alice.updated_at
    assert alice.created_at.tzinfo is UTC
    assert users.get(alice.id) == alice == users.by_username("ALICE")
    with pytest.raises(UserExists):
        users.create("aLICE", "hash-2", "admin", None)
    bob = users.create("bob", "hash-3", "admin", None)
    assert bob.cameras is None
    assert [u.username for u in users.list()] == ["alice", "bob"]

    changed = users.update(alice.id, role="operator", cameras=None)
    assert changed is not None
    assert (changed.role, changed.cameras, changed.password_hash) == ("operator", None, "hash-1")
    changed = users.update(alice.id, cameras=[], disabled=True, password_hash="hash-4")
    assert changed is not None and changed.cameras == () and changed.disabled
    assert changed.password_hash == "hash-4" and changed.role == "operator"
    assert users.update(alice.id) == changed == users.get(alice.id)
    assert users.update("missing", role="admin") is None
    with pytest.raises(TypeError):
        users.create("carol", "h", "viewer", "front")  # a string is not a list of cameras
    with pytest.raises(ValueError):
        users.create("", "h", "viewer", None)

    assert users.count_admins() == 1
    users.update(alice.id, role="admin")  # disabled: does not count
    assert users.count_admins() == 1
    users.update(bob.id, disabled=True)
    assert users.count_admins() == 0
    assert users.delete(alice.id) and not users.delete(alice.id)
    assert users.get(alice.id) is None and users.by_username("alice") is None


def test_totp_steps_are_consumed_once_and_monotonically(store_engine: Engine) -> None:
    users = UserRepository(store_engine)
    user = users.create("alice", "h", "viewer", None)
    assert users.set_totp(user.id, "enc:secret", True)
    stored = users.get(user.id)
    assert stored is not None and stored.totp_secret == "enc:secret" and stored.totp_enabled
    with pytest.raises(ValueError):
        users.set_totp(user.id, None, True)
    assert not users.set_totp("missing", None, False)

    assert users.consume_totp_step(user.id, 100)
    assert not users.consume_totp_step(user.id, 100)  # the same code again
    assert not users.consume_totp_step(user.id, 99)  # an older code
    assert users.consume_totp_step(user.id, 101)
    assert not users.consume_totp_step("missing", 500)
    results = parallel(8, lambda _: users.consume_totp_step(user.id, 200))
    assert results.count(True) == 1
    stored = users.get(user.id)
    assert stored is not None and stored.totp_last_step == 200


# --- refresh tokens ---------------------------------------------------------------------------


def test_refresh_tokens_rotate_detect_reuse_and_revoke(store_engine: Engine) -> None:
    users = UserRepository(store_engine)
    tokens = RefreshTokenRepository(store_engine, clock=lambda: T0)
    uid = users.create("alice", "h", "viewer", None).id
    tokens.create(uid, "h1", "fam-1", at(3600), "browser")
    assert tokens.use("h1", at(1)) == RefreshUse(RefreshStatus.OK, uid, "fam-1")
    assert tokens.use("h1", at(2)) == RefreshUse(RefreshStatus.REUSED, uid, "fam-1")
    assert tokens.use("h1", at(7200)).status is RefreshStatus.REUSED  # used, then expired
    assert tokens.use("unknown", at(1)) == RefreshUse(RefreshStatus.INVALID)

    tokens.create(uid, "h2", "fam-2", at(60), "cli")
    assert tokens.use("h2", at(60)).status is RefreshStatus.INVALID  # expired
    tokens.create(uid, "h3", "fam-1", at(3600), "browser")
    assert tokens.revoke_family("fam-1", at(5)) == 2
    assert tokens.revoke_family("fam-1", at(6)) == 0
    assert tokens.use("h3", at(7)).status is RefreshStatus.INVALID  # revoked
    assert tokens.use("h1", at(7)).status is RefreshStatus.INVALID  # used and revoked

    tokens.create(uid, "h4", "fam-3", at(3600), "cli")
    assert tokens.revoke_user(uid, at(8)) == 2  # h4 and the expired h2
    assert tokens.use("h4", at(9)).status is RefreshStatus.INVALID
    assert tokens.purge_expired(at(61)) == 1
    with pytest.raises(ValueError):
        tokens.use("h4", datetime(2025, 1, 1))  # naive on purpose

    users.delete(uid)  # cascades to the user's tokens
    with store_engine.connect() as conn:
        count = conn.execute(sa.select(sa.func.count()).select_from(REFRESH_TOKENS)).scalar()
    assert count == 0


def test_concurrent_refresh_uses_let_exactly_one_win(store_engine: Engine) -> None:
    uid = UserRepository(store_engine).create("alice", "h", "viewer", None).id
    tokens = RefreshTokenRepository(store_engine)
    tokens.create(uid, "h1", "fam", at(3600), "cli")
    statuses = [r.status for r in parallel(8, lambda _: tokens.use("h1", at(1)))]
    assert statuses.count(RefreshStatus.OK) == 1
    assert statuses.count(RefreshStatus.REUSED) == 7


# --- API keys ---------------------------------------------------------------------------------


def test_api_keys(store_engine: Engine) -> None:
    admin = UserRepository(store_engine).create("root", "h", "admin", None)
    keys = ApiKeyRepository(store_engine, clock=lambda: T0)
    key = keys.create("ci", "sk_abcd1", "hash-1", "operator", ["events:read"], ["front"], admin.id)
    assert (key.scopes, key.cameras, key.created_by) == (("events:read",), ("front",), admin.id)
    assert key.revoked_at is None and key.last_used_at is None and key.created_at == T0
    other = keys.create("all", "sk_zzzz9", "hash-2", "viewer", [], None, None)
    assert other.cameras is None and other.scopes == ()
    assert keys.by_hash("hash-1") == key and keys.by_hash("nope") is None
    assert {k.id for k in keys.list()} == {key.id, other.id}
    assert keys.list(created_by=admin.id) == [key]
    with pytest.raises(sa.exc.IntegrityError):
        keys.create("dup", "sk_abcd1", "hash-1", "viewer", [], None, None)

    def stored() -> ApiKeyRecord:
        record = keys.get(key.id)
        assert record is not None
        return record

    keys.touch(key.id, at(1))
    keys.touch(key.id, at(30))  # within touch_interval: not written
    assert stored().last_used_at == at(1)
    keys.touch(key.id, at(61))
    assert stored().last_used_at == at(61)
    keys.touch("missing", at(1))

    assert keys.revoke(key.id, at(100)) and keys.revoke(key.id, at(200))
    assert stored().revoked_at == at(100) and keys.by_hash("hash-1") == stored()
    assert not keys.revoke("missing", at(1))
    UserRepository(store_engine).delete(admin.id)
    assert stored().created_by is None


# --- audit log --------------------------------------------------------------------------------


def test_audit_append_builds_a_verifiable_chain(store_engine: Engine) -> None:
    audit = AuditRepository(store_engine)
    assert audit.head() == (0, GENESIS_HASH)
    records = [append(audit, n) for n in range(1, 6)]
    assert [r.seq for r in records] == [1, 2, 3, 4, 5]
    assert [r.prev_hash for r in records] == [GENESIS_HASH] + [r.hash for r in records[:-1]]
    assert records[0].detail == {"n": 1, "pair": [1, "é"], "ratio": 0.1}
    assert list(audit.iter_all(batch=2)) == records
    report = verify_chain(audit.iter_all(), expected_head=audit.head()[1])
    assert report.ok and report.checked == 5
    assert audit.head() == (5, records[-1].hash)

    paris = append(audit, 6, when=T0.astimezone(timezone(timedelta(hours=1))))
    assert paris.at.tzinfo is UTC and verify_chain(audit.iter_all()).ok
    with pytest.raises(ValueError):
        append(audit, 7, when=datetime(2025, 1, 1))  # naive on purpose
    with pytest.raises(ValueError):
        audit.append(actor="a", action="x", target="", client="", outcome="ok", detail={"x": {1}})
    with pytest.raises(ValueError):
        append(audit, 7, actor="a" * 256)
    assert audit.head()[0] == 6  # refused appends leave no trace


def test_audit_list_filters_and_pages_newest_first(store_engine: Engine) -> None:
    audit = AuditRepository(store_engine)
    for n in range(1, 8):
        append(audit, n, actor="bob" if n % 2 else "alice", outcome="denied" if n > 5 else "ok")
    seen: list[int] = []
    cursor: int | None = None
    while True:
        page, cursor = audit.list(cursor=cursor, limit=3)
        seen += [r.seq for r in page]
        if cursor is None:
            break
    assert seen == [7, 6, 5, 4, 3, 2, 1]
    assert [r.seq for r in audit.list(actor="bob")[0]] == [7, 5, 3, 1]
    assert [r.seq for r in audit.list(outcome="denied")[0]] == [7, 6]
    assert [r.seq for r in audit.list(since=at(2), until=at(4))[0]] == [4, 3, 2]
    assert audit.list(action="logout") == ([], None)
    with pytest.raises(ValueError):
        audit.list(limit=0)


def test_concurrent_appends_from_threads_form_one_chain(store_engine: Engine) -> None:
    audit = AuditRepository(store_engine)
    parallel(8, lambda t: [append(audit, i, actor=f"t{t}") for i in range(10)])
    records = list(audit.iter_all())
    assert [r.seq for r in records] == list(range(1, 81))
    assert verify_chain(records, expected_head=audit.head()[1]).ok
    assert audit.head() == (80, records[-1].hash)


def _append_in_process(url: str, worker: int, start: Barrier) -> None:
    engine = make_engine(url)
    try:
        audit = AuditRepository(engine)
        start.wait(timeout=120)  # all processes imported and connected: now contend
        for i in range(30):
            append(audit, i, actor=f"p{worker}")
    finally:
        engine.dispose()


def test_concurrent_appends_from_processes_form_one_chain(db_url: str) -> None:
    migrate(db_url)
    ctx = multiprocessing.get_context("spawn")
    start = ctx.Barrier(3)
    procs = [ctx.Process(target=_append_in_process, args=(db_url, w, start)) for w in range(3)]
    for proc in procs:
        proc.start()
    for proc in procs:
        proc.join(timeout=180)
    assert [proc.exitcode for proc in procs] == [0, 0, 0]
    engine = make_engine(db_url)
    try:
        audit = AuditRepository(engine)
        records = list(audit.iter_all(batch=7))
        assert [r.seq for r in records] == list(range(1, 91))
        assert sorted(r.actor for r in records) == sorted(
            f"p{w}" for w in range(3) for _ in range(30)
        )
        assert verify_chain(records, expected_head=audit.head()[1]).ok
    finally:
        engine.dispose()


def _tamper(engine: Engine, stmt: sa.Executable) -> None:
    with engine.begin() as conn:
        conn.execute(stmt)


def test_tampering_and_deletion_are_detected(store_engine: Engine) -> None:
    audit = AuditRepository(store_engine)
    for n in range(1, 7):
        append(audit, n)
    seq = AUDIT_LOG.c.seq
    _tamper(store_engine, sa.update(AUDIT_LOG).where(seq == 3).values(detail='{"n": 99}'))
    report = verify_chain(audit.iter_all())
    assert not report.ok and report.first_bad_seq == 3 and report.checked == 2
    _tamper(store_engine, sa.update(AUDIT_LOG).where(seq == 2).values(detail="not json"))
    assert verify_chain(audit.iter_all()).first_bad_seq == 2  # reported, not a crash

    _tamper(store_engine, sa.delete(AUDIT_LOG).where(seq.in_([2, 3])))
    report = verify_chain(audit.iter_all())
    assert not report.ok and report.first_bad_seq == 4 and "jumps" in str(report.reason)
    _tamper(store_engine, sa.delete(AUDIT_LOG).where(seq == 1))
    assert verify_chain(audit.iter_all()).first_bad_seq == 4  # no longer starts at genesis

    _tamper(store_engine, sa.delete(AUDIT_LOG).where(seq < 6))
    tail = list(audit.iter_all())
    assert verify_chain(tail, start=(5, tail[0].prev_hash)).ok  # a window verifies alone...
    _tamper(store_engine, sa.delete(AUDIT_LOG).where(seq == 6))
    head_seq, head_hash = audit.head()
    assert head_seq == 6  # ...and the head row still shows what the newest entry was
    assert not verify_chain(audit.iter_all(), expected_head=head_hash).ok


# --- migration --------------------------------------------------------------------------------


def test_migration_0002_upgrades_a_populated_0001_database(db_url: str) -> None:
    engine = make_engine(db_url)
    try:
        with engine.connect() as conn:
            command.upgrade(alembic_config(conn), "0001")
            conn.commit()
        CameraRepository(engine).upsert("front", {"url": "rtsp://cam/1"})
        assert not sa.inspect(engine).has_table("users")

        migrate(engine)
        with engine.connect() as conn:
            assert MigrationContext.configure(conn).get_current_heads() == (
                ScriptDirectory.from_config(alembic_config()).get_current_head(),
            )
            context = MigrationContext.configure(
                conn,
                opts={
                    "include_object": lambda _o, name, type_, *_: (
                        type_ != "table" or name in SECURITY_TABLES
                    )
                },
            )
            assert compare_metadata(context, SQLModel.metadata) == []
        assert CameraRepository(engine).get("front") == {"url": "rtsp://cam/1"}
        assert AuditRepository(engine).head() == (0, GENESIS_HASH)
        assert UserRepository(engine).create("alice", "h", "admin", None).username == "alice"
        append(AuditRepository(engine), 1)

        with engine.connect() as conn:
            command.downgrade(alembic_config(conn), "0001")
            conn.commit()
        assert not sa.inspect(engine).has_table("audit_log")
        with engine.connect() as conn:  # 0001's shape: read it as such (no later columns)
            raw = conn.execute(sa.text("SELECT config FROM cameras WHERE id = 'front'")).scalar()
        assert json.loads(str(raw)) == {"url": "rtsp://cam/1"}
        migrate(engine)
        assert CameraRepository(engine).get("front") == {"url": "rtsp://cam/1"}
        assert AuditRepository(engine).head() == (0, GENESIS_HASH)
    finally:
        engine.dispose()
