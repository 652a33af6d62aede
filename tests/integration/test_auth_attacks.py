"""The gateway as an attacker sees it: each attack must be rejected, through the real API."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time
from collections.abc import Iterator
from pathlib import Path

import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from fastapi.testclient import TestClient
from sqlalchemy.engine import Engine

from sentinel.api.deps import Services
from sentinel.gateway.roles import Role, scopes_for
from sentinel.gateway.tokens import TokenIssuer
from sentinel.gateway.totp import current_code
from tests.utils.api import api_client
from tests.utils.auth import AuthedUser, add_user, make_security
from tests.utils.services import make_services


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


@pytest.fixture
def services(store_engine: Engine, tmp_path: Path) -> Services:
    return make_services(store_engine, tmp_path, auth={"max_body_bytes": 4096})


@pytest.fixture
def viewer(services: Services) -> AuthedUser:
    return add_user(services.security, "watcher", Role.VIEWER)


def _claims(services: Services, user: AuthedUser, **changes: object) -> dict[str, object]:
    now = int(time.time())
    claims: dict[str, object] = {
        "iss": "sentinel",
        "aud": "sentinel-api",
        "sub": user.id,
        "iat": now,
        "nbf": now,
        "exp": now + 300,
        "jti": "j1",
        "scope": " ".join(sorted(scopes_for(user.role, None))),
        "kind": "user",
    }
    claims.update(changes)
    return {k: v for k, v in claims.items() if v is not None}


def _signed(services: Services, claims: dict[str, object]) -> str:
    active = services.security.keyring.active
    return jwt.encode(
        claims, active.private_key, algorithm="RS256", headers={"kid": active.kid, "typ": "at+jwt"}
    )


def _events(client: TestClient, token: str) -> int:
    return client.get("/api/v1/events", headers={"Authorization": f"Bearer {token}"}).status_code


def test_valid_token_is_accepted(
    client: TestClient, services: Services, viewer: AuthedUser
) -> None:
    assert _events(client, _signed(services, _claims(services, viewer))) == 200


def test_alg_none_rejected(client: TestClient, services: Services, viewer: AuthedUser) -> None:
    header = _b64(json.dumps({"alg": "none", "typ": "JWT"}).encode())
    payload = _b64(json.dumps(_claims(services, viewer)).encode())
    assert _events(client, f"{header}.{payload}.") == 401


def test_hs256_with_public_key_rejected(
    client: TestClient, services: Services, viewer: AuthedUser
) -> None:
    active = services.security.keyring.active
    public_pem = active.private_key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    header = _b64(json.dumps({"alg": "HS256", "typ": "JWT", "kid": active.kid}).encode())
    payload = _b64(json.dumps(_claims(services, viewer)).encode())
    sig = _b64(hmac.new(public_pem, f"{header}.{payload}".encode(), hashlib.sha256).digest())
    assert _events(client, f"{header}.{payload}.{sig}") == 401


@pytest.mark.parametrize(
    "changes",
    [
        {"exp": int(time.time()) - 120},  # expired
        {"exp": None},  # missing exp
        {"aud": "someone-else"},
        {"iss": "evil"},
        {"sub": "no-such-user"},
    ],
    ids=["expired", "missing-exp", "wrong-aud", "wrong-iss", "unknown-sub"],
)
def test_bad_claims_rejected(
    client: TestClient, services: Services, viewer: AuthedUser, changes: dict[str, object]
) -> None:
    assert _events(client, _signed(services, _claims(services, viewer, **changes))) == 401


def test_tampered_payload_rejected(
    client: TestClient, services: Services, viewer: AuthedUser
) -> None:
    header, _, sig = _signed(services, _claims(services, viewer)).split(".")
    forged = _b64(json.dumps(_claims(services, viewer, scope="admin users:admin")).encode())
    assert _events(client, f"{header}.{forged}.{sig}") == 401


def test_token_of_disabled_user_rejected(
    client: TestClient, services: Services, viewer: AuthedUser
) -> None:
    assert _events(client, viewer.token) == 200
    services.security.users.update(viewer.id, disabled=True)
    assert _events(client, viewer.token) == 401


def test_token_from_another_issuer_key_rejected(
    client: TestClient, services: Services, viewer: AuthedUser, tmp_path: Path
) -> None:
    from sentinel.gateway.keys import KeyRing

    other = TokenIssuer(
        KeyRing.load_or_create(tmp_path / "other-keys"), issuer="sentinel", audience="sentinel-api"
    )
    token = other.issue_access(viewer.id, ["events:read"], cameras=None)
    assert _events(client, token) == 401


def _login(client: TestClient, user: AuthedUser, **extra: str) -> tuple[int, dict[str, object]]:
    r = client.post(
        "/api/v1/auth/token",
        data={"username": user.username, "password": user.password, **extra},
    )
    return r.status_code, r.json()


def test_refresh_token_used_twice_revokes_family(client: TestClient, viewer: AuthedUser) -> None:
    status, body = _login(client, viewer)
    assert status == 200
    first = str(body["refresh_token"])
    r1 = client.post("/api/v1/auth/refresh", data={"refresh_token": first})
    assert r1.status_code == 200
    second = r1.json()["refresh_token"]
    replay = client.post("/api/v1/auth/refresh", data={"refresh_token": first})
    assert replay.status_code == 401
    # the replay revoked the whole family, including the legitimately rotated token
    assert client.post("/api/v1/auth/refresh", data={"refresh_token": second}).status_code == 401


def test_totp_code_cannot_be_reused(
    client: TestClient, services: Services, viewer: AuthedUser
) -> None:
    headers = viewer.headers
    enrol = client.post("/api/v1/auth/mfa/enroll", headers=headers).json()
    secret = enrol["secret"]
    assert enrol["provisioning_uri"].startswith("otpauth://totp/")
    now = time.time()
    confirm_code = current_code(secret, now - 30)  # one step back is still accepted
    assert (
        client.post(
            "/api/v1/auth/mfa/confirm", json={"code": confirm_code}, headers=headers
        ).status_code
        == 204
    )
    assert _login(client, viewer)[0] == 401  # MFA now required
    code = current_code(secret, time.time())
    assert _login(client, viewer, otp=code)[0] == 200
    assert _login(client, viewer, otp=code)[0] == 401  # the same code twice


def test_brute_force_login_is_throttled(client: TestClient, viewer: AuthedUser) -> None:
    statuses = []
    for _ in range(8):
        r = client.post(
            "/api/v1/auth/token", data={"username": viewer.username, "password": "wrong-guess"}
        )
        statuses.append(r.status_code)
    assert statuses[:5] == [401] * 5
    assert statuses[5:] == [429] * 3
    assert int(r.headers["Retry-After"]) >= 1
    # even the right password waits now
    assert _login(client, viewer)[0] == 429


def test_spoofed_forwarded_for_does_not_evade_throttle(
    client: TestClient, services: Services
) -> None:
    users = [add_user(services.security, f"user{i}", Role.VIEWER) for i in range(25)]
    statuses = [
        client.post(
            "/api/v1/auth/token",
            data={"username": u.username, "password": "wrong-guess"},
            headers={"X-Forwarded-For": f"203.0.113.{i}"},
        ).status_code
        for i, u in enumerate(users)
    ]
    # 20 failures per client address: the spoofed header from an untrusted peer is ignored
    assert statuses.count(429) == 5


def test_oversized_body_rejected(client: TestClient, viewer: AuthedUser) -> None:
    big = {"id": "x", "source": "/a.mp4", "name": "n" * 10_000}
    r = client.post("/api/v1/cameras", json=big, headers=viewer.headers)
    assert r.status_code == 413

    def chunks() -> Iterator[bytes]:
        yield b'{"id": "x", "source": "/a.mp4", "name": "'
        for _ in range(10):
            yield b"n" * 1000
        yield b'"}'

    r = client.post(
        "/api/v1/cameras",
        content=chunks(),
        headers={**viewer.headers, "content-type": "application/json"},
    )
    assert r.status_code == 413
    assert (
        client.get("/api/v1/events?label=" + "x" * 5000, headers=viewer.headers).status_code == 413
    )


def test_session_cookie_requires_csrf_token(client: TestClient, services: Services) -> None:
    admin = add_user(services.security, "boss", Role.ADMIN)
    r = client.post("/api/v1/auth/session", data={"username": "boss", "password": admin.password})
    assert r.status_code == 200
    csrf = r.json()["csrf_token"]
    assert "httponly" in r.headers["set-cookie"].lower()
    assert client.get("/api/v1/events").status_code == 200  # cookie alone reads
    body = {"id": "cam-x", "source": "/a.mp4"}
    assert client.post("/api/v1/cameras", json=body).status_code == 403  # no CSRF header
    forged = client.post("/api/v1/cameras", json=body, headers={"X-CSRF-Token": "guess"})
    assert forged.status_code == 403
    ok = client.post("/api/v1/cameras", json=body, headers={"X-CSRF-Token": csrf})
    assert ok.status_code == 201


def test_api_key_scoped_shown_once_and_revocable(client: TestClient, services: Services) -> None:
    admin = add_user(services.security, "boss", Role.ADMIN)
    r = client.post(
        "/api/v1/apikeys", json={"name": "nvr", "role": "viewer"}, headers=admin.headers
    )
    assert r.status_code == 201
    key = r.json()["key"]
    listed = client.get("/api/v1/apikeys", headers=admin.headers).text
    assert key not in listed  # shown once, stored hashed
    h = {"X-API-Key": key}
    assert client.get("/api/v1/events", headers=h).status_code == 200
    assert (
        client.post("/api/v1/cameras", json={"id": "c", "source": "/a.mp4"}, headers=h).status_code
        == 403
    )
    assert (
        client.delete(f"/api/v1/apikeys/{r.json()['id']}", headers=admin.headers).status_code == 204
    )
    assert client.get("/api/v1/events", headers=h).status_code == 401


def test_viewer_cannot_mint_an_admin_key(client: TestClient, services: Services) -> None:
    op = add_user(services.security, "op", Role.OPERATOR)
    r = client.post("/api/v1/apikeys", json={"name": "x", "role": "admin"}, headers=op.headers)
    assert r.status_code == 403


def test_key_roles_are_capped_by_scopes_not_rank(client: TestClient, services: Services) -> None:
    """An annotator's scopes lie inside an operator's: an operator may mint an annotator key."""
    op = add_user(services.security, "op", Role.OPERATOR)
    r = client.post(
        "/api/v1/apikeys", json={"name": "labeller", "role": "annotator"}, headers=op.headers
    )
    assert r.status_code == 201
    assert set(r.json()["scopes"]) == {"cameras:read", "annotations:write"}


def test_route_rate_limit_answers_429(
    services: Services, viewer: AuthedUser, tmp_path: Path
) -> None:
    services.security = make_security(services.engine, tmp_path, rate_per_s=0.01, rate_burst=3)
    user = add_user(services.security, "busy", Role.VIEWER)
    with api_client(services) as c:
        codes = [c.get("/api/v1/events", headers=user.headers).status_code for _ in range(5)]
        assert codes == [200, 200, 200, 429, 429]
        r = c.get("/api/v1/events", headers=user.headers)
        assert int(r.headers["Retry-After"]) >= 1
        # another route family has its own bucket
        assert c.get("/api/v1/cameras", headers=user.headers).status_code == 200


def test_every_login_is_audited(client: TestClient, services: Services, viewer: AuthedUser) -> None:
    _login(client, viewer)
    client.post("/api/v1/auth/token", data={"username": viewer.username, "password": "nope"})
    records, _ = services.security.audit.list(action="login", limit=10)
    assert [r.outcome for r in records] == ["failure", "success"]
    assert records[0].actor == viewer.username
