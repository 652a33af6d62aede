"""The Python client against the running platform (the session stack, over real HTTP):
sign-in and token renewal, cursor pagination, error mapping, the async variant, the CLI."""

from __future__ import annotations

import asyncio
import json
import os
import secrets
import subprocess
import sys
import time
from datetime import timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest

from sentinel.api.search import SearchResults
from sentinel.client import (
    AsyncSentinelClient,
    AuthenticationError,
    ConflictError,
    InvalidRequestError,
    NotFoundError,
    PermissionDeniedError,
    SentinelClient,
    SentinelConnectionError,
    to_pandas,
)
from sentinel.gateway.keys import KeyRing
from sentinel.gateway.tokens import TokenIssuer
from tests.integration.conftest import ClientDemo, Stack, wait_for
from tests.utils.media import free_port


def _user(stack: Stack, role: str = "operator") -> tuple[str, str, str]:
    """A new user: (id, username, password)."""
    name = f"client-{secrets.token_hex(4)}"
    password = secrets.token_urlsafe(18) + "-Aa1"
    r = stack.http.post(
        "/api/v1/users", json={"username": name, "password": password, "role": role}
    )
    assert r.status_code == 201, r.text
    return str(r.json()["id"]), name, password


def _expired_token(stack: Stack, user_id: str) -> str:
    """An access token for ``user_id`` signed with the server's own key, expired an hour ago."""
    auth = stack.settings.auth
    ring = KeyRing.load_or_create(stack.settings.data_dir / "keys" / "jwt")
    issuer = TokenIssuer(
        ring, issuer=auth.issuer, audience=auth.audience, clock=lambda: time.time() - 3600
    )
    return issuer.issue_access(user_id, frozenset({"events:read"}), cameras=None, kind="user")


def _refused(stack: Stack, token: str) -> str:
    r = httpx.get(
        f"{stack.url}/api/v1/events", headers={"Authorization": f"Bearer {token}"}, timeout=30
    )
    assert r.status_code == 401
    return r.text


def test_login_renews_expired_tokens_and_logs_in_again(client_demo: ClientDemo) -> None:
    stack = client_demo.stack
    user_id, name, password = _user(stack)
    with SentinelClient(stack.url, username=name, password=password) as sc:
        me = sc.me()  # the first request signs in
        assert me.subject == user_id and me.role == "operator" and me.kind == "user"
        first_refresh = sc.tokens.refresh_token
        assert first_refresh is not None and sc.tokens.access_token is not None

        # An access token that really expired: the server refuses it, the client refreshes.
        expired = _expired_token(stack, user_id)
        assert "expired" in _refused(stack, expired)
        sc.tokens.access_token = expired
        assert sc.events(camera_id=client_demo.camera_id, limit=1).items
        assert sc.tokens.access_token != expired
        assert sc.tokens.refresh_token not in (None, first_refresh)  # rotated

        # Near its expiry the token is renewed before the request leaves.
        before = sc.tokens.refresh_token
        assert before is not None
        sc.tokens.expires_at = time.time() + 1
        assert sc.me().subject == user_id
        assert sc.tokens.refresh_token not in (None, before)

        # Its refresh token spent elsewhere (say, stolen): the server revokes the family, the
        # client's refresh fails, and it signs in again with the password.
        stolen = sc.tokens.refresh_token
        assert stolen is not None
        r = httpx.post(f"{stack.url}/api/v1/auth/refresh", data={"refresh_token": stolen})
        assert r.status_code == 200
        sc.tokens.access_token = expired
        assert sc.me().subject == user_id
        assert sc.tokens.refresh_token not in (stolen, r.json()["refresh_token"])

        sc.logout()
        assert sc.tokens.access_token is None


def test_bad_credentials_and_unreachable_server(client_demo: ClientDemo) -> None:
    stack = client_demo.stack
    with SentinelClient(stack.url, username="nobody-here", password="wrong-password") as sc:
        with pytest.raises(AuthenticationError) as bad:
            sc.me()
        assert bad.value.status == 401 and "incorrect" in str(bad.value.detail)
    with SentinelClient(stack.url, api_key="sk_not-a-key-at-all") as sc:
        with pytest.raises(AuthenticationError):
            sc.cameras()
        assert sc.health().status == "ok"  # public
    with (
        SentinelClient(f"http://127.0.0.1:{free_port()}", api_key="x", timeout=5) as sc,
        pytest.raises(SentinelConnectionError),
    ):
        sc.health()


def test_pagination_follows_cursors(client_demo: ClientDemo) -> None:
    stack, camera = client_demo.stack, client_demo.camera_id
    expected = [e["id"] for e in stack.events(camera_id=camera)]
    with SentinelClient(stack.url, api_key=client_demo.operator_key) as sc:
        first = sc.events(camera_id=camera, limit=2)
        assert len(first.items) == 2 and first.next_cursor
        second = sc.events(camera_id=camera, limit=2, cursor=first.next_cursor)
        assert [e.id for e in first.items + second.items] == expected[:4]
        got = [e.id for e in sc.iter_events(camera_id=camera, page_size=2)]
        assert got == expected  # every page, newest first, nothing twice
        assert [e.id for e in sc.iter_events(camera_id=camera, page_size=2, max_items=3)] == (
            expected[:3]
        )
        assert list(sc.iter_events(camera_id=camera, max_items=0)) == []
        people = list(sc.iter_events(camera_id=camera, label="person", page_size=1))
        assert people and all(e.label == "person" for e in people)

        incidents = list(sc.iter_incidents(camera_id=camera, page_size=1))
        assert incidents and all(i.camera_id == camera for i in incidents)
        assert {m for i in incidents for m in i.member_ids} <= set(expected)
        assert len({i.id for i in incidents}) == len(incidents)

        frame = sc.events_frame(camera_id=camera)
        assert list(frame["id"]) == expected
        assert str(frame["started_at"].dt.tz) == "UTC"
        assert (frame["duration_s"] >= 0).all()
        inc_frame = sc.incidents_frame(camera_id=camera)
        assert set(inc_frame["id"]) == {i.id for i in incidents}
        assert "n_events" in inc_frame.columns and "member_ids" not in inc_frame.columns
        assert to_pandas([]).empty


def _indexed(sc: SentinelClient, camera: str) -> SearchResults:
    def found() -> SearchResults | None:
        hits = sc.search("a person walking", camera_id=camera, kind="event", limit=5)
        return hits if hits.items and hits.index_backlog == 0 else None

    result: SearchResults = wait_for(found, timeout=120, what="the camera's events indexed")
    return result


def test_resources_health_metrics_search_and_clips(client_demo: ClientDemo, tmp_path: Path) -> None:
    stack, camera = client_demo.stack, client_demo.camera_id
    with SentinelClient(stack.url, api_key=client_demo.operator_key) as sc:
        health = sc.health()
        assert health.status == "ok" and health.cameras.get(camera) == "finished"
        assert camera in {c.id for c in sc.cameras()}
        assert sc.camera(camera).status.state == "finished"
        assert "sentinel_" in sc.metrics()
        event = next(sc.iter_events(camera_id=camera, label="person"))
        assert sc.event(event.id) == event
        assert sc.event_snapshot(event.id)[:2] == b"\xff\xd8"  # JPEG

        found = _indexed(sc, camera)
        assert all(h.camera_id == camera and h.kind == "event" for h in found.items)
        like = sc.similar(found.items[0].id, limit=3)
        assert found.items[0].id not in {h.id for h in like.items}

        ended = event.ended_at or event.last_seen_at
        minute = timedelta(minutes=1)
        timeline = sc.recordings(camera, since=event.started_at - minute, until=ended + minute)
        assert timeline.segments
        clip = sc.download_event_clip(event.id, tmp_path / "event.mp4", pre_s=1, post_s=1)
        assert clip.read_bytes()[4:8] == b"ftyp" and not list(tmp_path.glob(".*.part"))


def test_incident_ack_and_verdict(client_demo: ClientDemo) -> None:
    stack, camera = client_demo.stack, client_demo.camera_id
    with SentinelClient(stack.url, api_key=client_demo.operator_key) as sc:

        def alerted() -> Any:
            for inc in sc.iter_incidents(camera_id=camera):
                detail = sc.incident(inc.id)
                if detail.alert is not None and detail.alert.status == "open":
                    return detail
            return None

        detail = wait_for(alerted, timeout=120, what="an incident with an open alert")
        assert {m.id for m in detail.members} == set(detail.member_ids)
        acked = sc.ack_incident(detail.id)
        assert acked.status == "acknowledged" and acked.incident_id == detail.id
        judged = sc.incident_verdict(detail.id, "false_positive", note="a shadow")
        assert judged.verdict == "false_positive" and judged.verdict_note == "a shadow"
        assert sc.alert(judged.id) == judged
        mine = list(sc.iter_alerts(camera_id=camera, page_size=1))
        assert judged.id in {a.id for a in mine} and all(a.camera_id == camera for a in mine)
        assert sc.alerts_frame(camera_id=camera, status="acknowledged")["id"].tolist()


def test_errors_carry_status_and_detail(client_demo: ClientDemo) -> None:
    stack, camera = client_demo.stack, client_demo.camera_id
    with SentinelClient(stack.url, api_key=client_demo.admin_key) as sc:
        with pytest.raises(NotFoundError) as missing:
            sc.event("no-such-event")
        assert missing.value.status == 404 and missing.value.detail
        assert "/api/v1/events/no-such-event" in missing.value.url
        with pytest.raises(InvalidRequestError) as invalid:
            sc.events(limit=0)
        assert invalid.value.status == 422
        assert invalid.value.detail[0]["loc"] == ["query", "limit"]
        assert "query.limit" in str(invalid.value)
        with pytest.raises(InvalidRequestError) as bad_body:
            sc.add_camera({"id": "evil", "source": "concat:/etc/passwd"})
        assert bad_body.value.status == 422
        with pytest.raises(ConflictError) as taken:
            sc.add_camera({"id": camera, "source": "/x.mp4"})
        assert taken.value.status == 409 and camera in str(taken.value.detail)
        with pytest.raises(ValueError):
            sc.event("../cameras")  # never sent to another route
    with SentinelClient(stack.url, api_key=client_demo.viewer_key) as viewer:
        assert viewer.cameras()  # a viewer reads...
        with pytest.raises(PermissionDeniedError) as denied:
            viewer.remove_camera(camera)  # ...but may not change cameras
        assert denied.value.status == 403
    assert stack.state(camera) == "finished"


def test_async_client_shares_one_refresh(client_demo: ClientDemo, tmp_path: Path) -> None:
    stack, camera = client_demo.stack, client_demo.camera_id
    user_id, name, password = _user(stack, role="viewer")
    refreshes: list[str] = []

    async def count(request: httpx.Request) -> None:
        if request.url.path.endswith("/auth/refresh"):
            refreshes.append(request.url.path)

    async def main() -> None:
        http = httpx.AsyncClient(base_url=stack.url, timeout=30, event_hooks={"request": [count]})
        async with AsyncSentinelClient(http=http, username=name, password=password) as sc:
            me = await sc.login()
            assert me.subject == user_id and me.role == "viewer"
            sc.tokens.access_token = _expired_token(stack, user_id)
            # Five requests meet the expired token together: one refresh serves them all (a
            # second use of the refresh token would revoke the whole family).
            pages = await asyncio.gather(*(sc.events(camera_id=camera, limit=1) for _ in range(5)))
            assert all(p.items for p in pages) and len(refreshes) == 1
            ids = [e.id async for e in sc.iter_events(camera_id=camera, page_size=2)]
            assert ids == [e["id"] for e in stack.events(camera_id=camera)]
            frame = await sc.incidents_frame(camera_id=camera)
            assert len(frame) >= 1
            with pytest.raises(NotFoundError):
                await sc.incident("no-such-incident")
            with pytest.raises(PermissionDeniedError):
                await sc.add_camera({"id": "nope", "source": "/x.mp4"})
            event = ids[0]
            path = await sc.download_event_clip(event, tmp_path / "a.mp4", pre_s=0, post_s=0)
            assert path.read_bytes()[4:8] == b"ftyp"

    asyncio.run(main())


def _cli(*args: str, key: str, url: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "SENTINEL_URL": url, "SENTINEL_API_KEY": key}
    env.pop("SENTINEL_TOKEN", None)
    return subprocess.run(
        [sys.executable, "-m", "sentinel.cli", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def test_cli_lists_events_incidents_and_searches(client_demo: ClientDemo) -> None:
    stack, camera = client_demo.stack, client_demo.camera_id
    key = client_demo.operator_key
    with SentinelClient(stack.url, api_key=key) as sc:
        _indexed(sc, camera)
    out = _cli("events", "--camera", camera, "--limit", "3", "--json", key=key, url=stack.url)
    assert out.returncode == 0, out.stderr
    shown = [json.loads(line)["id"] for line in out.stdout.splitlines()]
    assert shown == [e["id"] for e in stack.events(camera_id=camera)][:3]
    out = _cli("incidents", "--camera", camera, "--status", "closed", key=key, url=stack.url)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() and all(camera in line for line in out.stdout.splitlines())
    out = _cli("search", "query", "a person walking", "--camera", camera, key=key, url=stack.url)
    assert out.returncode == 0, out.stderr
    assert camera in out.stdout
    bad = _cli("events", "--limit", "5", key="sk_wrong", url=stack.url)
    assert bad.returncode != 0 and "401" in bad.stderr
