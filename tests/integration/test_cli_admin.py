"""Admin commands of the real CLI: first admin, audit verification, key rotation."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa
from click.testing import CliRunner
from fastapi.testclient import TestClient

from sentinel.cli import main
from sentinel.gateway.keys import KeyRing
from sentinel.gateway.roles import Role
from sentinel.gateway.tokens import TokenIssuer
from sentinel.store.audit_repo import AuditRepository
from sentinel.store.db import make_engine, migrate, sqlite_url
from tests.utils.api import api_app
from tests.utils.auth import add_user, make_security
from tests.utils.services import make_services


@pytest.fixture
def data_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("SENTINEL_DATA_DIR", str(tmp_path / "data"))
    for key in ("SENTINEL_DATABASE_URL", "SENTINEL_AUTH__JWT_PRIVATE_KEYS"):
        monkeypatch.delenv(key, raising=False)
    return tmp_path / "data"


def _cli(*args: str) -> tuple[int, str]:
    result = CliRunner().invoke(main, list(args))
    return result.exit_code, result.output


def test_create_admin_from_file(data_dir: Path, tmp_path: Path) -> None:
    pw = tmp_path / "pw"
    pw.write_text("short\n")
    code, out = _cli("users", "create-admin", "--username", "root", "--password-file", str(pw))
    assert code != 0 and "at least 12" in out
    pw.write_text("a-perfectly-long-passphrase\n")
    assert _cli("users", "create-admin", "--username", "root", "--password-file", str(pw))[0] == 0
    code, out = _cli("users", "create-admin", "--username", "ROOT", "--password-file", str(pw))
    assert code != 0 and "exists" in out


@pytest.fixture
def audit(data_dir: Path) -> Iterator[tuple[AuditRepository, sa.Engine]]:
    engine = make_engine(sqlite_url(data_dir / "sentinel.db"))
    migrate(engine)
    repo = AuditRepository(engine)
    for i in range(5):
        repo.append(
            actor=f"u{i}",
            action="POST /x",
            target="",
            client="127.0.0.1",
            outcome="success",
            detail={"i": i},
        )
    yield repo, engine
    engine.dispose()


def test_audit_verify_intact(audit: tuple[AuditRepository, sa.Engine]) -> None:
    code, out = _cli("audit", "verify")
    assert code == 0 and "intact: 5 entries" in out


@pytest.mark.parametrize(
    "tamper",
    [
        "UPDATE audit_log SET detail = '{\"i\": 99}' WHERE seq = 3",
        "UPDATE audit_log SET actor = 'someone-else' WHERE seq = 2",
        "DELETE FROM audit_log WHERE seq = 3",
        "DELETE FROM audit_log WHERE seq = 5",
        "UPDATE audit_log SET seq = seq + 100 WHERE seq = 1",
    ],
    ids=["edit-detail", "edit-actor", "delete-middle", "delete-newest", "reorder"],
)
def test_audit_verify_detects_tampering(
    audit: tuple[AuditRepository, sa.Engine], tamper: str
) -> None:
    _, engine = audit
    with engine.begin() as conn:
        conn.exec_driver_sql(tamper)
    code, out = _cli("audit", "verify")
    assert code == 1 and "ALTERED" in out


def test_rotation_keeps_old_tokens_and_reaches_other_replicas(
    data_dir: Path, tmp_path: Path
) -> None:
    engine = make_engine(sqlite_url(data_dir / "sentinel.db"))
    migrate(engine)
    security = make_security(engine, data_dir)  # "replica 1": keys in data_dir/keys/jwt
    security.key_reload_interval_s = 3600  # only the unknown-kid path may reload here
    services = make_services(engine, tmp_path, security=security)
    user = add_user(security, "viewer", Role.VIEWER)
    old_token = user.token
    app = api_app(services)
    code, out = _cli("keys", "rotate")
    assert code == 0 and "new signing key" in out
    # "replica 2" starts after the rotation and signs with the new key
    other = TokenIssuer(
        KeyRing.load_or_create(data_dir / "keys" / "jwt"),
        issuer="sentinel",
        audience="sentinel-api",
    )
    new_token = other.issue_access(user.id, ["events:read"], cameras=None)
    with TestClient(app) as client:
        for token in (old_token, new_token):
            r = client.get("/api/v1/events", headers={"Authorization": f"Bearer {token}"})
            assert r.status_code == 200, r.text
        kids = {k["kid"] for k in client.get("/.well-known/jwks.json").json()["keys"]}
    assert len(kids) == 2
    engine.dispose()
