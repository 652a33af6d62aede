"""Gateway cost: requests/s of an authenticated read route with and without auth + rate limit.

Two copies of the real API app (``sentinel.api.app.create_app``) run over the same SQLite
database (``EVENTS`` stored events) with real services (repositories, gateway security with an
in-memory rate limiter). The "auth" copy runs the ``authorize`` dependency as in production:
bearer JWT decode, user lookup, scope check, token-bucket hit. The "bare" copy overrides
``authorize`` with a function that returns an admin principal, so it skips all of that and
does the same route work otherwise. The rate limit is set as high as the settings allow
(``RATE_PER_S``, ``RATE_BURST``) so no request is refused: the layer's cost is measured, not
rejections.

Each copy is a Serve deployment (``serve.ingress`` with a builder function evaluated in the
replica, like the product's ``Ingress``) on its own route prefix of one Serve instance, behind
the Serve HTTP proxy on 127.0.0.1. One asyncio ``httpx`` client keeps ``CONCURRENCY``
requests in flight (``GET /api/v1/events?limit=20``, the same headers on both sides) and the
sides alternate in ABBA order, so load from anything else on the machine hits both alike. The
verdict-free ratio is the median of per-round ratios; the ratio of totals is printed too.

The same comparison in-process (``httpx.ASGITransport`` straight into each app, no Serve, no
sockets) shows how much of a request's time the layer takes when nothing else is around it.

Run: ``python -m benchmarks gateway``.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
from fastapi import FastAPI
from ray import serve

from benchmarks.common import HOST, BenchmarkError, init_ray, median
from sentinel.api.app import create_app
from sentinel.api.deps import AgentServices, Services
from sentinel.api.security import authorize
from sentinel.api.setup import build_security
from sentinel.config import AuthSettings, CameraConfig
from sentinel.domain.types import Box, EventState
from sentinel.gateway.passwords import Passwords
from sentinel.gateway.roles import ALL_SCOPES, Principal, Role, scopes_for
from sentinel.store.alert_repo import AlertRepository, ExperimentRepository, PromptRepository
from sentinel.store.db import make_engine, migrate
from sentinel.store.objects import LocalObjectStore
from sentinel.store.repo import CameraRepository, EventRepository

EVENTS = 200
LIMIT = 20
PATH = f"/api/v1/events?limit={LIMIT}"
CONCURRENCY = 8
PER_PASS = 300  # requests per pass through Serve: ~1-3 s on 2 cores
INPROC_PER_PASS = 300
ROUNDS = 8  # ABBA: auth,bare / bare,auth / ...
MIN_ROUNDS = 4
INPROC_ROUNDS = 4
PARTS_CALLS = 200
BUDGET_S = 90.0  # no new round after this (a loaded machine)
RATE_PER_S = 10000.0  # the highest AuthSettings allow
RATE_BURST = 100000  # more than the requests of the whole run: never refused
PREFIXES = {"auth": "/auth", "bare": "/bare"}
# Token verification of users only; the benchmark never checks a password.
CHEAP_PASSWORDS = Passwords(time_cost=1, memory_cost=1024, parallelism=1)
ADMIN = Principal(
    subject="bench-admin", kind="user", role=Role.ADMIN, scopes=ALL_SCOPES, cameras=None
)
T0 = datetime(2026, 11, 26, 12, 0, tzinfo=UTC)


class _NoCameras:
    """Camera control with no camera running (the events route never asks)."""

    async def started(self, camera: CameraConfig) -> None:
        return None

    async def removed(self, camera_id: str) -> None:
        return None

    async def status(self, camera_id: str) -> dict[str, Any] | None:
        return None

    async def statuses(self) -> dict[str, dict[str, Any]]:
        return {}

    async def latest_jpeg(self, camera_id: str) -> bytes | None:
        return None


class _ReadyDetector:
    async def ready(self) -> bool:
        return True


def _db_url(workdir: Path) -> str:
    return f"sqlite:///{workdir / 'sentinel.db'}"


def make_services(workdir: Path) -> Services:
    """Real services over the benchmark's database; keys are shared through ``workdir``."""
    engine = make_engine(_db_url(workdir))
    return Services(
        engine=engine,
        events=EventRepository(engine),
        cameras=CameraRepository(engine),
        objects=LocalObjectStore(workdir / "objects"),
        control=_NoCameras(),
        detector=_ReadyDetector(),
        security=build_security(
            AuthSettings(rate_per_s=RATE_PER_S, rate_burst=RATE_BURST),
            engine,
            workdir,
            passwords=CHEAP_PASSWORDS,
        ),
        agent=AgentServices(
            alerts=AlertRepository(engine),
            prompts=PromptRepository(engine),
            experiments=ExperimentRepository(engine),
        ),
    )


async def _admin_principal() -> Principal:
    return ADMIN


def make_app(services: Services, *, bare: bool) -> FastAPI:
    """The API app over ``services``; ``bare`` replaces ``authorize`` by a fixed admin."""
    app = create_app()
    app.state.services = services
    if bare:
        app.dependency_overrides[authorize] = _admin_principal
    return app


# What the replica's constructor leaves for the builder (one replica per process).
_REPLICA: dict[str, Any] = {}


def _configure_replica(workdir: str, bare: bool) -> None:
    # A module-level function: pickled by reference, so it fills this module's `_REPLICA`
    # (the deployment class is pickled by value, with its own copy of the globals it uses).
    _REPLICA["services"] = make_services(Path(workdir))
    _REPLICA["bare"] = bare


def _build_replica_app() -> FastAPI:
    """``serve.ingress`` builder: runs in the replica, after the deployment's constructor."""
    app = make_app(_REPLICA["services"], bare=bool(_REPLICA["bare"]))
    return app


@serve.deployment(name="GatewayBench", max_ongoing_requests=256, ray_actor_options={"num_cpus": 0})
@serve.ingress(_build_replica_app)
class GatewayBench:
    def __init__(self, workdir: str, bare: bool) -> None:
        _configure_replica(workdir, bare)


def _seed(workdir: Path) -> dict[str, str]:
    """Schema, ``EVENTS`` events and an admin user; returns the user's request headers."""
    migrate(_db_url(workdir))
    services = make_services(workdir)
    for i in range(EVENTS):
        start = T0 + timedelta(seconds=10 * i)
        services.events.upsert(
            EventState(
                id=f"00000000-0000-0000-0000-{i:012d}",
                camera_id=f"cam-{i % 4}",
                label="person" if i % 3 else "car",
                track_id=i,
                started_at=start,
                last_seen_at=start + timedelta(seconds=5),
                score=0.5 + (i % 5) / 10,
                box=Box(10, 20, 50, 120),
                best_at=start + timedelta(seconds=1),
                ended_at=start + timedelta(seconds=5),
                hits=5,
            )
        )
    security = services.security
    user = security.users.create("bench-admin", security.passwords.hash("x" * 16), "admin", None)
    token = security.issuer.issue_access(
        user.id, scopes_for(Role.ADMIN, None), cameras=None, kind="user"
    )
    services.engine.dispose()
    return {"Authorization": f"Bearer {token}"}


@dataclass
class _Side:
    requests: int = 0
    seconds: float = 0.0
    errors: int = 0
    per_pass: list[float] = field(default_factory=list)
    latencies_ms: list[float] = field(default_factory=list)

    def add(self, seconds: float, latencies_ms: list[float], errors: int) -> None:
        self.requests += len(latencies_ms)
        self.seconds += seconds
        self.errors += errors
        self.per_pass.append(len(latencies_ms) / seconds)
        self.latencies_ms += latencies_ms

    @property
    def rate(self) -> float:
        return self.requests / self.seconds


async def _pass(
    client: httpx.AsyncClient, url: str, headers: dict[str, str], count: int
) -> tuple[float, list[float], int]:
    """``count`` GETs of ``url`` with ``CONCURRENCY`` in flight: wall s, latencies, errors."""
    todo = iter(range(count))
    latencies: list[float] = []
    errors = 0

    async def worker() -> None:
        nonlocal errors
        for _ in todo:
            start = time.perf_counter()
            response = await client.get(url, headers=headers)
            latencies.append((time.perf_counter() - start) * 1000.0)
            if response.status_code != 200:
                errors += 1

    start = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(CONCURRENCY)))
    return time.perf_counter() - start, latencies, errors


async def _check(client: httpx.AsyncClient, url: str, headers: dict[str, str]) -> None:
    response = await client.get(url, headers=headers)
    if response.status_code != 200 or len(response.json()["items"]) != LIMIT:
        raise BenchmarkError(f"GET {url}: {response.status_code} {response.text[:200]}")


async def _compare(
    what: str,
    clients: dict[str, httpx.AsyncClient],
    urls: dict[str, str],
    headers: dict[str, str],
    *,
    rounds: int,
    per_pass: int,
) -> None:
    for side in ("auth", "bare"):
        await _check(clients[side], urls[side], headers)
        await _pass(clients[side], urls[side], headers, per_pass // 4)  # warm-up
    sides = {"auth": _Side(), "bare": _Side()}
    deadline = time.monotonic() + BUDGET_S
    for rnd in range(rounds):
        if rnd >= MIN_ROUNDS and time.monotonic() > deadline:
            print(f"gateway: {what}: time budget spent, stopping after {rnd} rounds", flush=True)
            break
        order = ("auth", "bare") if rnd % 2 == 0 else ("bare", "auth")
        for side in order:
            sides[side].add(*await _pass(clients[side], urls[side], headers, per_pass))
        print(
            f"gateway: {what}: round {rnd + 1}: with auth+rate limit "
            f"{sides['auth'].per_pass[-1]:.0f} req/s, without {sides['bare'].per_pass[-1]:.0f} "
            "req/s",
            flush=True,
        )
    auth, bare = sides["auth"], sides["bare"]
    per_round = [a / b for a, b in zip(auth.per_pass, bare.per_pass, strict=True)]
    print(
        f"gateway: {what}: with auth+rate limit {auth.rate:.0f} req/s, without {bare.rate:.0f} "
        f"req/s, ratio {median(per_round):.2f} (median of paired rounds; ratio of totals "
        f"{auth.rate / bare.rate:.2f})"
    )
    auth_p50, bare_p50 = median(auth.latencies_ms), median(bare.latencies_ms)
    print(
        f"gateway: {what}: p50 latency with auth+rate limit {auth_p50:.1f} ms, without "
        f"{bare_p50:.1f} ms (+{auth_p50 - bare_p50:.1f} ms); {per_pass} requests x "
        f"{len(per_round)} passes per side, {CONCURRENCY} in flight; non-200 answers: "
        f"{auth.errors} with, {bare.errors} without"
    )


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind((HOST, 0))
        port: int = sock.getsockname()[1]
        return port


async def _wait_ready(client: httpx.AsyncClient, url: str, headers: dict[str, str]) -> None:
    deadline = time.monotonic() + 60.0
    while True:
        try:
            if (await client.get(url, headers=headers)).status_code == 200:
                return
        except httpx.TransportError:
            pass
        if time.monotonic() > deadline:
            raise BenchmarkError(f"the Serve proxy never answered {url}")
        await asyncio.sleep(0.5)


async def _through_serve(port: int, headers: dict[str, str]) -> None:
    limits = httpx.Limits(max_connections=CONCURRENCY, max_keepalive_connections=CONCURRENCY)
    base = f"http://{HOST}:{port}"
    urls = {side: f"{prefix}{PATH}" for side, prefix in PREFIXES.items()}
    async with httpx.AsyncClient(base_url=base, limits=limits, timeout=30.0) as client:
        for url in urls.values():
            await _wait_ready(client, url, headers)
        await _compare(
            "through Serve",
            {"auth": client, "bare": client},
            urls,
            headers,
            rounds=ROUNDS,
            per_pass=PER_PASS,
        )


async def _parts(workdir: Path, headers: dict[str, str]) -> None:
    """Mean cost of each piece of ``authorize``, called alone, one at a time."""
    security = make_services(workdir).security
    token = headers["Authorization"].removeprefix("Bearer ")
    subject = security.issuer.decode_access(token).subject
    spec = security.limits.per_route
    costs: dict[str, float] = {}
    for name, call in (
        ("JWT decode+verify", lambda: security.issuer.decode_access(token)),
        ("user lookup (SQLite)", lambda: security.users.get(subject)),
    ):
        call()
        start = time.perf_counter()
        for _ in range(PARTS_CALLS):
            call()
        costs[name] = (time.perf_counter() - start) / PARTS_CALLS
    start = time.perf_counter()
    for _ in range(PARTS_CALLS):
        await security.limiter.hit(f"{subject}:events", spec)
    costs["rate-limit hit (memory)"] = (time.perf_counter() - start) / PARTS_CALLS
    print(
        "gateway: auth layer parts, mean per call: "
        + ", ".join(f"{name} {seconds * 1e6:.0f} us" for name, seconds in costs.items())
        + " (the route runs the user lookup in the thread pool)",
        flush=True,
    )


async def _in_process(workdir: Path, headers: dict[str, str]) -> None:
    await _parts(workdir, headers)
    apps = {side: make_app(make_services(workdir), bare=side == "bare") for side in PREFIXES}
    async with contextlib.AsyncExitStack() as stack:
        clients = {
            side: await stack.enter_async_context(
                httpx.AsyncClient(
                    transport=httpx.ASGITransport(app=app), base_url="http://bench", timeout=30.0
                )
            )
            for side, app in apps.items()
        }
        await _compare(
            "in-process",
            clients,
            {side: PATH for side in PREFIXES},
            headers,
            rounds=INPROC_ROUNDS,
            per_pass=INPROC_PER_PASS,
        )


@contextlib.contextmanager
def _workdir() -> Iterator[Path]:
    with tempfile.TemporaryDirectory(prefix="sentinel-bench-gateway-") as tmp:
        yield Path(tmp)


def run(_model_path: Path | None = None) -> None:
    """Runs both comparisons (the ONNX path ``benchmarks.__main__`` passes is not used)."""
    import ray

    with _workdir() as workdir:
        headers = _seed(workdir)
        asyncio.run(_in_process(workdir, headers))
        init_ray(f"sentinel-bench-{uuid.uuid4().hex[:8]}")
        try:
            port = _free_port()
            serve.start(http_options={"host": HOST, "port": port})
            for side, prefix in PREFIXES.items():
                serve.run(
                    GatewayBench.bind(str(workdir), side == "bare"),  # type: ignore[attr-defined]
                    name=f"gateway-{side}",
                    route_prefix=prefix,
                )
            asyncio.run(_through_serve(port, headers))
        finally:  # the cluster is private to this run: shutting Ray down removes Serve with it
            ray.shutdown()


def main() -> int:
    start = time.monotonic()
    run()
    print(f"gateway: took {time.monotonic() - start:.0f} s", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
