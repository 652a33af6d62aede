"""The FastAPI application: API routers under /api/v1, health and metrics at the root."""

from __future__ import annotations

import asyncio
import logging

from fastapi import APIRouter, FastAPI, Request, Response
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from prometheus_client.exposition import CONTENT_TYPE_LATEST
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException as StarletteHTTPException

from sentinel import __version__
from sentinel.api import cameras, events
from sentinel.api.deps import ServicesDep
from sentinel.api.metrics import render_metrics
from sentinel.api.schemas import HealthReport
from sentinel.store.db import ping

logger = logging.getLogger(__name__)

_PROBE_TIMEOUT_S = 3.0


async def _probe_database(services: ServicesDep) -> str:
    try:
        await asyncio.wait_for(run_in_threadpool(ping, services.engine), _PROBE_TIMEOUT_S)
    except Exception as exc:
        return f"error: {type(exc).__name__}"
    return "ok"


async def _probe_detector(services: ServicesDep) -> str:
    try:
        ok = await asyncio.wait_for(services.detector.ready(), _PROBE_TIMEOUT_S)
    except Exception as exc:
        return f"error: {type(exc).__name__}"
    return "ok" if ok else "not ready"


def create_app() -> FastAPI:
    """The application; ``app.state.services`` must be set before it serves a request."""
    app = FastAPI(
        title="Sentinel",
        version=__version__,
        description="AI video surveillance on Ray: cameras, detections, events.",
    )

    @app.exception_handler(StarletteHTTPException)
    async def _http_error(_: Request, exc: StarletteHTTPException) -> JSONResponse:
        return JSONResponse(
            {"detail": exc.detail}, status_code=exc.status_code, headers=exc.headers
        )

    @app.exception_handler(RequestValidationError)
    async def _validation_error(_: Request, exc: RequestValidationError) -> JSONResponse:
        errors = [
            {"loc": list(e.get("loc", ())), "msg": e.get("msg"), "type": e.get("type")}
            for e in exc.errors()
        ]
        return JSONResponse({"detail": errors}, status_code=422)

    @app.exception_handler(Exception)
    async def _unexpected(_: Request, exc: Exception) -> JSONResponse:
        logger.exception("unhandled error")
        return JSONResponse({"detail": "internal error"}, status_code=500)

    api = APIRouter(prefix="/api/v1")
    api.include_router(events.router)
    api.include_router(cameras.router)
    app.include_router(api)

    @app.get("/health", response_model=HealthReport, tags=["system"])
    async def health(services: ServicesDep, response: Response) -> HealthReport:
        """Liveness (this answer) plus readiness of the database, detector and cameras."""
        database, detector, statuses = await asyncio.gather(
            _probe_database(services),
            _probe_detector(services),
            services.control.statuses(),
        )
        cams = {cid: str(s.get("state", "unknown")) for cid, s in statuses.items()}
        ready = database == "ok" and detector == "ok"
        return HealthReport(
            status="ok", ready=ready, database=database, detector=detector, cameras=cams
        )

    @app.get("/health/ready", response_model=HealthReport, tags=["system"])
    async def ready(services: ServicesDep, response: Response) -> HealthReport:
        """Like /health, with status 503 while not ready (for load balancers)."""
        report = await health(services, response)
        if not report.ready:
            response.status_code = 503
        return report

    @app.get(
        "/metrics",
        response_class=Response,
        tags=["system"],
        responses={200: {"content": {CONTENT_TYPE_LATEST: {}}}},
    )
    async def metrics(services: ServicesDep) -> Response:
        """Prometheus text: frames, drops, detector calls, batch sizes, latency, events."""
        statuses = await services.control.statuses()
        return Response(render_metrics(statuses), media_type=CONTENT_TYPE_LATEST)

    return app
