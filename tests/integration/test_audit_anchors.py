"""Audit anchors in an Object Lock bucket on moto's S3 server, against the real audit log.

A locked anchor cannot be deleted or replaced; a chain rewritten in the database with every
hash recomputed, or cut at the end with its head row fixed, passes the hash chain check but not
the anchors, and verification names the first entry that disagrees.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from botocore.exceptions import ClientError
from click.testing import CliRunner
from sqlalchemy.engine import Engine

from sentinel.cli import main
from sentinel.gateway.audit import chain_hash, verify_chain
from sentinel.gateway.audit_anchor import AnchorClaim, encode_anchor
from sentinel.gateway.roles import Role
from sentinel.retention.anchoring import AnchorLoop, AnchorRefusedError, AuditAnchorer, verify_audit
from sentinel.store.audit_anchors import (
    AnchorExistsError,
    AnchorStoreError,
    AuditAnchorSettings,
    S3AnchorStore,
)
from sentinel.store.audit_repo import AuditRepository
from sentinel.store.db import make_engine, migrate, sqlite_url
from sentinel.store.security_tables import AUDIT_HEAD, AUDIT_LOG
from tests.integration.conftest import wait_for
from tests.utils.api import api_client
from tests.utils.auth import AuthedUser, add_user
from tests.utils.s3 import S3_ACCESS_KEY, S3_SECRET_KEY
from tests.utils.services import make_services


def new_bucket() -> str:
    return f"sentinel-anchors-{uuid.uuid4().hex[:16]}"


@pytest.fixture
def anchors(s3_client: Any) -> S3AnchorStore:
    """A fresh Object Lock bucket (its locked objects outlive the test: that is the point)."""
    store = S3AnchorStore(s3_client, new_bucket(), retention_days=1)
    store.ensure_bucket()
    return store


def append(repo: AuditRepository, n: int) -> None:
    for i in range(n):
        repo.append(
            actor=f"user-{i % 3}",
            action="DELETE /api/v1/holds/{hold_id}",
            target=f"hold:{i}",
            client="198.51.100.7",
            outcome="success",
            detail={"i": i},
        )


def rewrite(engine: Engine, seq: int, actor: str) -> None:
    """What an attacker with write access to the database does: edit one entry and recompute
    every hash after it, the head row included."""
    records = list(AuditRepository(engine).iter_all())
    prev = records[seq - 2].hash if seq > 1 else "0" * 64
    with engine.begin() as conn:
        for rec in records[seq - 1 :]:
            who = actor if rec.seq == seq else rec.actor
            digest = chain_hash(
                prev,
                seq=rec.seq,
                at=rec.at,
                actor=who,
                action=rec.action,
                target=rec.target,
                client=rec.client,
                outcome=rec.outcome,
                detail=rec.detail,
            )
            conn.execute(
                sa.update(AUDIT_LOG)
                .where(AUDIT_LOG.c.seq == rec.seq)
                .values(actor=who, prev_hash=prev, hash=digest)
            )
            prev = digest
        conn.execute(sa.update(AUDIT_HEAD).values(hash=prev))


def truncate(engine: Engine, keep: int) -> None:
    """Drops the entries after ``keep`` and sets the head row to match."""
    last = list(AuditRepository(engine).iter_all())[keep - 1]
    with engine.begin() as conn:
        conn.execute(sa.delete(AUDIT_LOG).where(AUDIT_LOG.c.seq > keep))
        conn.execute(sa.update(AUDIT_HEAD).values(seq=keep, hash=last.hash))


def test_a_locked_anchor_cannot_be_deleted_or_overwritten(
    store_engine: Engine, anchors: S3AnchorStore, s3_client: Any
) -> None:
    repo = AuditRepository(store_engine)
    append(repo, 3)
    anchor = AuditAnchorer(repo, anchors).anchor().anchor
    assert anchor is not None and (anchor.seq, anchor.hash) == repo.head()
    key, bucket = anchors.key_of(3), anchors.bucket
    head = s3_client.head_object(Bucket=bucket, Key=key)
    assert head["ObjectLockMode"] == "COMPLIANCE"
    assert head["ObjectLockRetainUntilDate"] > datetime.now(UTC) + timedelta(hours=23)
    version = head["VersionId"]
    original = s3_client.get_object(Bucket=bucket, Key=key, VersionId=version)["Body"].read()

    with pytest.raises(ClientError, match="AccessDenied"):
        s3_client.delete_object(Bucket=bucket, Key=key, VersionId=version)
    with pytest.raises(ClientError, match="AccessDenied"):
        s3_client.delete_object(
            Bucket=bucket, Key=key, VersionId=version, BypassGovernanceRetention=True
        )
    denied = s3_client.delete_objects(
        Bucket=bucket, Delete={"Objects": [{"Key": key, "VersionId": version}]}
    )
    assert [e["Code"] for e in denied["Errors"]] == ["AccessDenied"]
    with pytest.raises(AnchorExistsError):  # our writes are conditional: never a replacement
        anchors.put(AnchorClaim(seq=3, hash="e" * 64, at=datetime.now(UTC)))
    with pytest.raises(ClientError, match="PreconditionFailed"):
        s3_client.put_object(Bucket=bucket, Key=key, Body=b"{}", IfNoneMatch="*")

    # A writer who skips the condition only adds a version, and a plain DELETE only a delete
    # marker: the locked version stays, byte for byte, and verification still reads it.
    forged = AnchorClaim(seq=3, hash="f" * 64, at=datetime.now(UTC))
    s3_client.put_object(Bucket=bucket, Key=key, Body=encode_anchor(forged))
    s3_client.delete_object(Bucket=bucket, Key=key)
    assert s3_client.get_object(Bucket=bucket, Key=key, VersionId=version)["Body"].read() == (
        original
    )
    read = anchors.read_all()
    assert sorted(a.hash for a in read.anchors) == sorted([anchor.hash, "f" * 64])
    report = verify_audit(repo, anchors)
    assert not report.ok and report.first_bad_seq == 3  # the forgery is a false alarm, loud


def test_a_rewritten_chain_is_caught_at_the_first_disagreeing_anchor(
    store_engine: Engine, anchors: S3AnchorStore
) -> None:
    repo = AuditRepository(store_engine)
    anchorer = AuditAnchorer(repo, anchors)
    append(repo, 4)
    assert anchorer.anchor().anchor is not None  # entry 4
    append(repo, 4)
    assert anchorer.anchor().anchor is not None  # entry 8
    append(repo, 2)
    report = verify_audit(repo, anchors)
    assert report.ok and report.anchors_agreeing == 2 and report.unanchored == 2

    rewrite(store_engine, 6, "someone-else")
    # The chain and its head row are consistent again: only the anchors can tell.
    assert verify_chain(repo.iter_all(), expected_head=repo.head()[1]).ok
    report = verify_audit(repo, anchors)
    assert not report.ok
    assert (report.first_bad_seq, report.altered_after, report.checked) == (8, 4, 4)
    assert report.reason is not None and "entry 8 differs from its anchor" in report.reason
    with pytest.raises(AnchorRefusedError, match="entry 8 differs"):
        anchorer.anchor()  # never anchors over an alteration


def test_a_rewrite_is_named_exactly_when_every_entry_was_anchored(
    store_engine: Engine, anchors: S3AnchorStore
) -> None:
    repo = AuditRepository(store_engine)
    anchorer = AuditAnchorer(repo, anchors)
    for _ in range(5):
        append(repo, 1)
        anchorer.anchor()
    rewrite(store_engine, 3, "someone-else")
    report = verify_audit(repo, anchors)
    assert (report.ok, report.first_bad_seq, report.altered_after) == (False, 3, 2)


def test_dropped_newest_entries_are_caught(store_engine: Engine, anchors: S3AnchorStore) -> None:
    repo = AuditRepository(store_engine)
    anchorer = AuditAnchorer(repo, anchors)
    append(repo, 10)
    anchorer.anchor()
    truncate(store_engine, 8)
    assert verify_chain(repo.iter_all(), expected_head=repo.head()[1]).ok
    report = verify_audit(repo, anchors)
    assert (report.ok, report.first_bad_seq) == (False, 9)
    assert report.reason is not None and "entries were removed" in report.reason
    with pytest.raises(AnchorRefusedError, match="names entry 10"):
        anchorer.anchor()


def test_anchoring_only_when_the_head_moved(store_engine: Engine, anchors: S3AnchorStore) -> None:
    repo = AuditRepository(store_engine)
    anchorer = AuditAnchorer(repo, anchors)
    assert anchorer.anchor().skipped == "the audit log is empty"
    append(repo, 2)
    first = anchorer.anchor().anchor
    assert first is not None and first.seq == 2
    assert anchorer.anchor().skipped == "entry 2 is anchored already"
    append(repo, 1)
    assert anchorer.anchor().anchor is not None
    latest = anchors.latest()
    assert latest is not None and latest.seq == 3 and latest.lock_mode == "COMPLIANCE"
    assert len(anchors.read_all().anchors) == 2


def test_the_loop_anchors_every_interval(store_engine: Engine, anchors: S3AnchorStore) -> None:
    repo = AuditRepository(store_engine)
    append(repo, 1)
    loop = AnchorLoop(AuditAnchorer(repo, anchors), interval_s=0.2)
    loop.start()
    try:
        wait_for(lambda: loop.last is not None and loop.last["seq"] == 1, interval=0.05, what="1")
        append(repo, 2)
        wait_for(lambda: loop.last is not None and loop.last["seq"] == 3, what="anchor 3")
        assert loop.status()["last_error"] == ""
        rewrite(store_engine, 2, "someone-else")
        append(repo, 1)
        wait_for(lambda: "differs" in loop.last_error, what="refusal")
    finally:
        loop.stop()
    assert loop.anchor_now()["error"].startswith("entry 3 differs")


def test_a_bucket_without_object_lock_is_refused(s3_client: Any) -> None:
    plain = new_bucket()
    s3_client.create_bucket(Bucket=plain)
    with pytest.raises(AnchorStoreError, match="no Object Lock"):
        S3AnchorStore(s3_client, plain).ensure_bucket()
    with pytest.raises(AnchorStoreError, match="does not exist"):
        S3AnchorStore(s3_client, new_bucket()).ensure_bucket(create=False)
    made = S3AnchorStore(s3_client, new_bucket(), retention_days=3)
    made.ensure_bucket()
    rule = s3_client.get_object_lock_configuration(Bucket=made.bucket)["ObjectLockConfiguration"]
    default = rule["Rule"]["DefaultRetention"]
    assert (default["Mode"], default["Days"]) == ("COMPLIANCE", 3)


@pytest.mark.parametrize(
    ("settings", "error"),
    [
        ({"enabled": True}, "bucket is required"),
        ({"bucket": "abc", "access_key": "k"}, "or neither"),
        ({"bucket": "abc", "prefix": "../x"}, "'..' segments"),
        ({"bucket": "abc", "retention_days": 0}, "greater than or equal to 1"),
        ({"bucket": "abc", "interval_s": 1}, "greater than or equal to 5"),
        ({"bucket": "abc", "mode": "GOVERNANCE"}, "Extra inputs"),
    ],
    ids=["no-bucket", "half-credentials", "bad-prefix", "zero-days", "too-often", "extra"],
)
def test_settings_are_validated(settings: dict[str, Any], error: str) -> None:
    with pytest.raises(ValueError, match=error):
        AuditAnchorSettings(**settings)


@pytest.fixture
def cli_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, s3_server: str) -> Iterator[Engine]:
    data = tmp_path / "data"
    monkeypatch.setenv("SENTINEL_DATA_DIR", str(data))
    monkeypatch.delenv("SENTINEL_DATABASE_URL", raising=False)
    for name, value in {
        "ENABLED": "true",
        "BUCKET": new_bucket(),
        "ENDPOINT_URL": s3_server,
        "ACCESS_KEY": S3_ACCESS_KEY,
        "SECRET_KEY": S3_SECRET_KEY,
        "RETENTION_DAYS": "1",
    }.items():
        monkeypatch.setenv(f"SENTINEL_AUDIT_ANCHORS__{name}", value)
    data.mkdir()
    engine = make_engine(sqlite_url(data / "sentinel.db"))
    migrate(engine)
    yield engine
    engine.dispose()


def _cli(*args: str) -> tuple[int, str]:
    result = CliRunner().invoke(main, list(args))
    return result.exit_code, result.output


def test_cli_anchor_and_verify(cli_env: Engine) -> None:
    repo = AuditRepository(cli_env)
    append(repo, 5)
    code, out = _cli("audit", "verify")
    assert code == 0 and "no anchor written yet" in out
    code, out = _cli("audit", "anchor")
    assert code == 0 and "anchored entry 5" in out and "COMPLIANCE until" in out
    assert _cli("audit", "anchor") == (0, "nothing to anchor: entry 5 is anchored already\n")
    append(repo, 2)
    code, out = _cli("audit", "verify")
    assert code == 0 and "intact: 7 entries" in out and "agrees with 1 anchor(s)" in out
    assert "2 entries after it" in out

    rewrite(cli_env, 2, "someone-else")
    code, out = _cli("audit", "verify")
    assert code == 1 and "ALTERED at entry 5" in out and "1..5 was rewritten" in out
    code, out = _cli("audit", "verify", "--json")
    assert code == 1 and '"first_bad_seq": 5' in out
    code, out = _cli("audit", "anchor")
    assert code == 1 and "not anchored: entry 5 differs" in out


def test_cli_anchor_needs_it_enabled(cli_env: Engine, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SENTINEL_AUDIT_ANCHORS__ENABLED", "false")
    code, out = _cli("audit", "anchor")
    assert code == 1 and "not enabled" in out
    code, out = _cli("audit", "verify")
    assert code == 0 and "no audit anchors configured" in out


def test_verify_route(store_engine: Engine, anchors: S3AnchorStore, tmp_path: Path) -> None:
    services = make_services(store_engine, tmp_path, audit_anchors=anchors)
    admin = add_user(services.security, "admin", Role.ADMIN)
    limited = add_user(services.security, "limited", Role.ADMIN, cameras=["cam1"])
    viewer = add_user(services.security, "viewer", Role.VIEWER)
    repo = services.security.audit
    append(repo, 3)
    AuditAnchorer(repo, anchors).anchor()
    with api_client(services) as client:

        def verify(user: AuthedUser) -> Any:
            return client.get(
                "/api/v1/audit/verify", headers={"Authorization": f"Bearer {user.token}"}
            )

        assert verify(viewer).status_code == 403
        assert verify(limited).status_code == 403  # the audit log names every camera's objects
        r = verify(admin)
        assert r.status_code == 200, r.text
        body = r.json()
        assert body["ok"] and body["anchoring"] and body["anchors_agreeing"] == 1
        assert body["last_anchor"]["seq"] == 3 and body["last_anchor"]["lock_mode"] == "COMPLIANCE"
        rewrite(store_engine, 1, "someone-else")
        body = verify(admin).json()
        assert (body["ok"], body["first_bad_seq"], body["altered_after"]) == (False, 3, 0)
        services.audit_anchors = None
        body = verify(admin).json()
        assert body["ok"] and not body["anchoring"]  # the chain alone cannot tell
