"""One local Ray cluster (with Serve and Sentinel deployed) shared by the whole session.

Tests that need Ray ask for ``sentinel_stack``; it starts on first use, so the store and API
tests in this folder run without a cluster.

The API tests share ``services`` (real stores over ``store_engine``, fakes for the Ray parts),
``admin`` and ``client``; a module overrides ``services`` to add or replace a service, and
``client_headers`` to make ``client`` send them (an admin's token, say) on every request.
"""

from __future__ import annotations

import os
import secrets
import time
from collections.abc import Callable, Generator, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi.testclient import TestClient
from sqlalchemy.engine import Engine

from sentinel.api.deps import Services
from sentinel.cli import create_admin
from sentinel.config import Settings
from sentinel.gateway.roles import Role
from tests.utils.api import api_client
from tests.utils.auth import AuthedUser, add_user
from tests.utils.media import free_port
from tests.utils.services import make_services


@pytest.fixture
def services(store_engine: Engine, tmp_path: Path) -> Services:
    return make_services(store_engine, tmp_path)


@pytest.fixture
def admin(services: Services) -> AuthedUser:
    return add_user(services.security, "root", Role.ADMIN)


@pytest.fixture
def client_headers() -> dict[str, str]:
    """Headers ``client`` sends on every request: none, unless a module overrides this."""
    return {}


@pytest.fixture
def client(services: Services, client_headers: dict[str, str]) -> Iterator[TestClient]:
    with api_client(services, headers=client_headers) as c:
        yield c


def wait_for(
    condition: Callable[[], Any], *, timeout: float = 60.0, interval: float = 0.5, what: str = ""
) -> Any:
    """Polls ``condition`` until it returns something truthy (never sleeps for a guess)."""
    deadline = time.monotonic() + timeout
    last: Any = None
    while time.monotonic() < deadline:
        last = condition()
        if last:
            return last
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout}s waiting for {what or condition}: {last!r}")


@dataclass
class Stack:
    settings: Settings
    url: str
    supervisor: Any
    http: httpx.Client

    def camera(self, camera_id: str) -> dict[str, Any]:
        r = self.http.get(f"/api/v1/cameras/{camera_id}")
        r.raise_for_status()
        data: dict[str, Any] = r.json()
        return data

    def state(self, camera_id: str) -> str:
        return str(self.camera(camera_id)["status"]["state"])

    def wait_state(self, camera_id: str, *states: str, timeout: float = 120.0) -> dict[str, Any]:
        def check() -> dict[str, Any] | None:
            cam = self.camera(camera_id)
            return cam if cam["status"]["state"] in states else None

        result: dict[str, Any] = wait_for(
            check, timeout=timeout, what=f"camera {camera_id} in {states}"
        )
        return result

    def events(self, **params: Any) -> list[dict[str, Any]]:
        items: list[dict[str, Any]] = []
        cursor = None
        while True:
            query = {**params, "limit": 500, **({"cursor": cursor} if cursor else {})}
            page = self.http.get("/api/v1/events", params=query).json()
            items += page["items"]
            cursor = page["next_cursor"]
            if not cursor:
                return items


class _AdminRelogin(httpx.Auth):
    """Logs the session's admin in again when its access token expires (the suite outlives
    the 15-minute token); requests carrying another user's token are left alone."""

    requires_response_body = True

    def __init__(self, http: httpx.Client, password: str) -> None:
        self.http = http
        self.password = password

    def auth_flow(self, request: httpx.Request) -> Generator[httpx.Request, httpx.Response, None]:
        mine = request.headers.get("Authorization") == self.http.headers.get("Authorization")
        response = yield request
        if not (mine and response.status_code == 401 and "expired" in response.text):
            return
        login = yield httpx.Request(
            "POST",
            self.http.base_url.join("/api/v1/auth/token"),
            data={"username": "admin", "password": self.password},
        )
        if login.status_code != 200:
            return
        bearer = f"Bearer {login.json()['access_token']}"
        self.http.headers["Authorization"] = bearer
        request.headers["Authorization"] = bearer
        yield request


@pytest.fixture(scope="session")
def sentinel_stack(
    tmp_path_factory: pytest.TempPathFactory, onnx_model: Path, whisper_model: Path
) -> Iterator[Stack]:
    import ray
    from ray import serve

    from sentinel import platform as runtime

    data_dir = tmp_path_factory.mktemp("sentinel-data")
    port = free_port()
    settings = Settings(
        data_dir=data_dir,
        port=port,
        namespace="sentinel-test",
        # HAProxy's own ports, free ones: another stack on this machine may hold the defaults.
        cluster={"haproxy_stats_port": free_port(), "haproxy_metrics_port": free_port()},
        reconcile_interval_s=0.5,
        detector={"model_path": onnx_model, "threads": 2, "num_cpus": 0.5},
        # The agent's own path is covered in test_agent.py (fake servers) and by the e2e
        # test with the real model; here it would only compete for the 2 cores.
        agent={"enabled": False},
        rulegen={"first_run_after_s": 0},
        # A challenger trained in seconds can at best tie the champion: with no margin the gate
        # still refuses one that is worse on either split or errs more, and lets such a tie be
        # canaried (test_learning_loop_walkthrough.py). `sentinel demo` keeps the default.
        train={"gate_margin": 0.0},
        # The Transcriber deployment (test_voice_ray.py); one thread: it idles otherwise.
        voice={"model_path": whisper_model, "threads": 1},
        # The notifier's tests send to receivers on 127.0.0.1 (test_notify_actor.py).
        notify={
            "allow_http": True,
            "allow_hosts": ["127.0.0.1"],
            "lease_s": 3.0,
            "poll_interval_s": 0.1,
            "backoff_base_s": 0.2,
            "backoff_cap_s": 2.0,
            "max_attempts": 100,
            "mqtt": {"prefix": "sentinel-test"},
        },
    )
    # The workers' nice value and Serve's HTTP proxy, as `sentinel up` sets them for the head
    # it starts (HAProxy by default).
    os.environ.update(runtime.head_env(settings))
    # A private cluster on loopback: never join one that `ray start` left on this machine.
    ray.init(
        address="local",
        num_cpus=2,
        include_dashboard=False,
        namespace=settings.namespace,
        _node_ip_address="127.0.0.1",
        # A lost node is declared dead after 5 missed health checks: 1 s apart here (Ray's
        # default is 3 s), as README's "Run on a cluster" suggests for camera failover
        # (test_failover.py). A live but slow raylet still needs 5 checks to time out (10 s).
        _system_config={"health_check_period_ms": 1000},
    )
    try:
        supervisor = runtime.start(settings)
        url = f"http://127.0.0.1:{port}"
        password = secrets.token_urlsafe(16)
        create_admin(settings, "admin", password)
        with httpx.Client(base_url=url, timeout=30.0) as http:
            wait_for(lambda: http.get("/health").status_code == 200, what="HTTP up")
            login = http.post(
                "/api/v1/auth/token", data={"username": "admin", "password": password}
            )
            login.raise_for_status()
            http.headers["Authorization"] = f"Bearer {login.json()['access_token']}"
            http.auth = _AdminRelogin(http, password)
            yield Stack(settings, url, supervisor, http)
        runtime.stop(settings, supervisor)
        serve.shutdown()  # type: ignore[no-untyped-call]
    finally:
        ray.shutdown()


def run_camera_with_rules(
    stack: Stack, body: dict[str, Any], rules: list[dict[str, Any]], *, timeout: float = 240
) -> None:
    """Adds camera ``body`` with ``rules`` on it and waits until its (file) source is finished.

    A rule may name only a known camera, and must be in place before the clip runs (it would
    end before the rule reached it): the camera is named while disabled, the rules are
    created, then it is replaced with the running one (removing a camera keeps its rules).
    """
    camera = body["id"]
    r = stack.http.post("/api/v1/cameras", json={**body, "enabled": False})
    assert r.status_code == 201, r.text
    for rule in rules:
        created = stack.http.post("/api/v1/rules", json=rule)
        assert created.status_code == 201, created.text
    assert stack.http.delete(f"/api/v1/cameras/{camera}").status_code == 204
    r = stack.http.post("/api/v1/cameras", json=body)
    assert r.status_code == 201, r.text
    stack.wait_state(camera, "finished", timeout=timeout)


@dataclass(frozen=True)
class ClientDemo:
    """A recorded camera with closed events, incidents and alerts on the session stack, and
    API keys for the Python client and the notebooks."""

    stack: Stack
    camera_id: str
    admin_key: str
    operator_key: str
    viewer_key: str


def _api_key(stack: Stack, name: str, role: str) -> str:
    r = stack.http.post("/api/v1/apikeys", json={"name": name, "role": role})
    assert r.status_code == 201, r.text
    return str(r.json()["key"])


@pytest.fixture(scope="session")
def client_demo(sentinel_stack: Stack, tmp_path_factory: pytest.TempPathFactory) -> ClientDemo:
    """The first 12 s of the sample on camera ``client-cam`` (recorded, not paced), run to the
    end, with a rule that alerts on every person it sees there."""
    from tests.utils.media import h264_clip

    stack = sentinel_stack
    camera = "client-cam"
    body: dict[str, Any] = {
        "id": camera,
        "name": "Plaza",
        "description": "A paved plaza with people walking past and cars parked.",
        "source": str(h264_clip(tmp_path_factory.mktemp("client-clips"), seconds=12)),
        "realtime": False,
        "detect_fps": 5,
        "record": {"mode": "continuous"},
    }
    rule = {
        "name": "client: person seen",
        "cameras": [camera],
        "severity": "low",
        "conditions": {"labels": ["person"], "event": "seen"},
    }
    run_camera_with_rules(stack, body, [rule])
    events = stack.events(camera_id=camera)
    assert len(events) >= 3 and all(e["ended_at"] for e in events), events
    return ClientDemo(
        stack,
        camera,
        admin_key=_api_key(stack, "client-admin", "admin"),
        operator_key=_api_key(stack, "client-operator", "operator"),
        viewer_key=_api_key(stack, "client-viewer", "viewer"),
    )
