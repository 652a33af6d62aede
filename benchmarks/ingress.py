"""Ingress throughput: an authenticated read route through the Serve ingress vs plain uvicorn.

The same FastAPI app (``sentinel.api.app.create_app`` with real services over one SQLite
database of ``gateway.EVENTS`` events, the gateway's ``authorize`` as in production) runs

- under **uvicorn** in a process of its own (one worker, uvloop + httptools: what a user would
  run without Ray), and
- as a **Serve deployment** behind the Serve proxy, with the Serve settings Sentinel's own
  cluster gets (``sentinel.platform.serve_env``; ``--serve-env default`` leaves Ray's defaults).

One asyncio ``httpx`` client keeps ``gateway.CONCURRENCY`` requests of ``GET
/api/v1/events?limit=20`` in flight with the same bearer token; the sides alternate in ABBA
order so that load from anything else hits both alike. The figure is the median of per-round
ratios Serve / uvicorn (target ≥ 0.5); the ratio of totals and p50 latencies are printed too.

Run: ``python -m benchmarks ingress`` (or ``python -m benchmarks.ingress --serve-env default``).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

import httpx
from fastapi import FastAPI
from ray import serve

from benchmarks.common import HOST, BenchmarkError, init_ray, median
from benchmarks.gateway import (
    CONCURRENCY,
    PATH,
    GatewayBench,
    _free_port,
    _pass,
    _seed,
    _Side,
    _wait_ready,
    make_app,
    make_services,
)
from sentinel.config import Settings
from sentinel.platform import serve_env

PER_PASS = 400
ROUNDS = 8
MIN_ROUNDS = 4
BUDGET_S = 120.0
TARGET = 0.5
WORKDIR_ENV = "SENTINEL_BENCH_INGRESS_WORKDIR"


def uvicorn_app() -> FastAPI:
    """``uvicorn --factory`` entry: the app over the benchmark's database (in the child)."""
    return make_app(make_services(Path(os.environ[WORKDIR_ENV])), bare=False)


def _start_uvicorn(workdir: Path, port: int) -> subprocess.Popen[bytes]:
    env = {**os.environ, WORKDIR_ENV: str(workdir)}
    command = [
        sys.executable,
        "-m",
        "uvicorn",
        "--factory",
        "benchmarks.ingress:uvicorn_app",
        "--host",
        HOST,
        "--port",
        str(port),
        "--workers",
        "1",
        "--loop",
        "uvloop",
        "--http",
        "httptools",
        "--no-access-log",
        "--log-level",
        "warning",
    ]
    return subprocess.Popen(command, env=env)


async def _compare(urls: dict[str, str], headers: dict[str, str]) -> float:
    limits = httpx.Limits(max_connections=2 * CONCURRENCY, max_keepalive_connections=CONCURRENCY)
    async with httpx.AsyncClient(limits=limits, timeout=30.0) as client:
        for url in urls.values():
            await _wait_ready(client, url, headers)
        for url in urls.values():  # warm-up
            await _pass(client, url, headers, PER_PASS // 4)
        sides = {side: _Side() for side in urls}
        deadline = time.monotonic() + BUDGET_S
        for rnd in range(ROUNDS):
            if rnd >= MIN_ROUNDS and time.monotonic() > deadline:
                print(f"ingress: time budget spent, stopping after {rnd} rounds", flush=True)
                break
            order = ("serve", "uvicorn") if rnd % 2 == 0 else ("uvicorn", "serve")
            for side in order:
                seconds, latencies, errors = await _pass(client, urls[side], headers, PER_PASS)
                sides[side].add(seconds, latencies, errors)
            print(
                f"ingress: round {rnd + 1}: Serve {sides['serve'].per_pass[-1]:.0f} req/s, "
                f"uvicorn {sides['uvicorn'].per_pass[-1]:.0f} req/s",
                flush=True,
            )
    served, bare = sides["serve"], sides["uvicorn"]
    per_round = [s / b for s, b in zip(served.per_pass, bare.per_pass, strict=True)]
    ratio = median(per_round)
    verdict = "met" if ratio >= TARGET else "MISSED"
    print(
        f"ingress: GET {PATH} with auth, {CONCURRENCY} in flight: Serve {served.rate:.0f} req/s, "
        f"uvicorn {bare.rate:.0f} req/s, ratio {ratio:.2f} (median of {len(per_round)} paired "
        f"rounds; ratio of totals {served.rate / bare.rate:.2f}); target >= {TARGET}: {verdict}"
    )
    print(
        f"ingress: p50 latency Serve {median(served.latencies_ms):.1f} ms, uvicorn "
        f"{median(bare.latencies_ms):.1f} ms; non-200 answers: Serve {served.errors}, "
        f"uvicorn {bare.errors}"
    )
    if served.errors or bare.errors:
        raise BenchmarkError("non-200 answers: the comparison is void")
    return ratio


def run(_model_path: Path | None = None, *, env: dict[str, str] | None = None) -> None:
    """Both sides in one run; ``env`` (default: Sentinel's ``serve_env``) set before Ray."""
    with tempfile.TemporaryDirectory(prefix="sentinel-bench-ingress-") as tmp:
        workdir = Path(tmp)
        settings = serve_env(Settings(data_dir=workdir)) if env is None else env
        print(
            "ingress: Serve settings: "
            + (", ".join(f"{k}={v}" for k, v in sorted(settings.items())) or "Ray's defaults"),
            flush=True,
        )
        saved = {key: os.environ.get(key) for key in settings}
        os.environ.update(settings)  # read by the Ray processes init_ray starts
        try:
            _run(workdir)
        finally:
            for key, value in saved.items():
                if value is None:
                    os.environ.pop(key, None)
                else:
                    os.environ[key] = value


def _run(workdir: Path) -> None:
    import ray

    headers = _seed(workdir)
    uvicorn_port = _free_port()
    child = _start_uvicorn(workdir, uvicorn_port)
    try:
        init_ray(f"sentinel-bench-{uuid.uuid4().hex[:8]}")
        try:
            port = _free_port()
            serve.start(http_options={"host": HOST, "port": port})
            serve.run(
                GatewayBench.bind(str(workdir), False),  # type: ignore[attr-defined]
                name="ingress-bench",
                route_prefix="/serve",
            )
            urls = {
                "serve": f"http://{HOST}:{port}/serve{PATH}",
                "uvicorn": f"http://{HOST}:{uvicorn_port}{PATH}",
            }
            asyncio.run(_compare(urls, headers))
        finally:
            ray.shutdown()
    finally:
        child.terminate()
        child.wait(10)


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.ingress")
    parser.add_argument(
        "--serve-env",
        choices=("sentinel", "default"),
        default="sentinel",
        help="Serve settings: Sentinel's default (serve_env) or Ray's defaults",
    )
    args = parser.parse_args(argv)
    run(env=None if args.serve_env == "sentinel" else {})
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
