"""The FastAPI application: API routers under /api/v1, health and metrics at the root."""

from __future__ import annotations

import asyncio
import logging
from typing import Annotated, Any

from fastapi import APIRouter, Depends, FastAPI, Request, Response
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from prometheus_client.exposition import CONTENT_TYPE_LATEST
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException as StarletteHTTPException

from sentinel import __version__
from sentinel.api import (
    admin,
    alerts,
    annotate_pages,
    annotation,
    ask,
    auth,
    cameras,
    capabilities,
    dashboard,
    datasets,
    events,
    exports,
    faces,
    incidents,
    kb,
    live,
    llm,
    mining,
    models,
    notify,
    notify_delivery,
    privacy,
    prompts,
    push,
    recordings,
    rulegen,
    rules,
    search,
    storage,
    subjects,
    training,
    voice,
    webapp,
)
from sentinel.api.deps import ServicesDep, current_services
from sentinel.api.metrics import render_metrics
from sentinel.api.middleware import (
    AuditMutations,
    LimitRequestSize,
    SecurityHeaders,
    security_headers,
)
from sentinel.api.schemas import HealthReport
from sentinel.api.security import OptionalPrincipal, allowed_cameras, require_metrics
from sentinel.gateway.roles import CAMERAS_READ, Principal
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
        description="AI video surveillance on Ray: cameras, detections, events. Sign in with "
        "`POST /api/v1/auth/token` (OAuth2 password flow) and send `Authorization: Bearer`.",
        swagger_ui_init_oauth={"usePkceWithAuthorizationCodeGrant": False},
    )
    # Outermost first: security headers on every answer (the 413s included), size limits
    # before anything reads the body, then the audit.
    app.add_middleware(AuditMutations)
    app.add_middleware(LimitRequestSize)
    app.add_middleware(SecurityHeaders)

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
        # Answered by Starlette's outermost error middleware, outside SecurityHeaders.
        return JSONResponse(
            {"detail": "internal error"}, status_code=500, headers=security_headers()
        )

    api = APIRouter(prefix="/api/v1")
    api.include_router(events.router)
    api.include_router(incidents.router)
    api.include_router(cameras.router)
    api.include_router(auth.router)
    api.include_router(capabilities.router)
    api.include_router(admin.router)
    api.include_router(alerts.router)
    api.include_router(prompts.router)
    api.include_router(recordings.router)
    api.include_router(storage.router)
    api.include_router(exports.router)
    # Before rules: /rules/suggestions must not be taken for GET /rules/{rule_id}.
    api.include_router(rulegen.router)
    api.include_router(rules.router)
    api.include_router(search.router)
    api.include_router(voice.router)
    api.include_router(ask.router)
    api.include_router(kb.router)
    api.include_router(notify.router)
    api.include_router(notify_delivery.router)
    api.include_router(push.router)
    api.include_router(annotation.router)
    api.include_router(datasets.router)
    api.include_router(privacy.router)
    api.include_router(faces.router)
    api.include_router(subjects.router)
    api.include_router(models.router)
    api.include_router(training.router)
    api.include_router(mining.router)
    api.include_router(live.router)
    api.include_router(dashboard.router)
    app.include_router(api)
    app.include_router(llm.router)
    # The annotation pages (HTML over the JSON API; see sentinel/api/annotate_pages.py).
    app.include_router(annotate_pages.router)
    app.mount(annotate_pages.STATIC_PATH, annotate_pages.static_files(), name="annotate-static")

    @app.get("/.well-known/jwks.json", tags=["auth"], summary="Public keys of access tokens")
    async def jwks(services: ServicesDep) -> dict[str, Any]:
        return services.security.keyring.jwks()

    @app.get("/health", response_model=HealthReport, tags=["system"])
    async def health(
        services: ServicesDep, response: Response, principal: OptionalPrincipal
    ) -> HealthReport:
        """Liveness (this answer) plus readiness of the database, detector and cameras.

        Public; camera states are listed only to callers allowed to read those cameras.
        """
        database, detector, statuses = await asyncio.gather(
            _probe_database(services),
            _probe_detector(services),
            services.control.statuses(),
        )
        cams: dict[str, str] = {}
        if principal.has(CAMERAS_READ):
            allowed = await allowed_cameras(principal, services)
            cams = {
                cid: str(s.get("state", "unknown"))
                for cid, s in statuses.items()
                if allowed is None or cid in allowed
            }
        ready = database == "ok" and detector == "ok"
        # An index that is behind does not make the API unready: search answers from what is
        # indexed; the lag is reported.
        search_backlog = None
        if services.search is not None and database == "ok":
            search_backlog = await run_in_threadpool(services.search.service.queue.backlog)
        return HealthReport(
            status="ok",
            ready=ready,
            database=database,
            detector=detector,
            cameras=cams,
            search_backlog=search_backlog,
        )

    @app.get("/health/ready", response_model=HealthReport, tags=["system"])
    async def ready(
        services: ServicesDep, response: Response, principal: OptionalPrincipal
    ) -> HealthReport:
        """Like /health, with status 503 while not ready (for load balancers)."""
        report = await health(services, response, principal)
        if not report.ready:
            response.status_code = 503
        return report

    @app.get(
        "/metrics",
        response_class=Response,
        tags=["system"],
        responses={200: {"content": {CONTENT_TYPE_LATEST: {}}}},
    )
    async def metrics(
        services: ServicesDep, principal: Annotated[Principal | None, Depends(require_metrics)]
    ) -> Response:
        """Prometheus text: frames, drops, detector calls, batch sizes, latency, events.

        Needs `metrics:read` unless the deployment made it public (``metrics_public``: then
        every camera's series, to anyone). A caller limited to some cameras gets only their
        series (and the series of no camera).
        """
        statuses = await services.control.statuses()
        control = services.agent.control
        agent = await control.worker_stats() if control is not None else None
        cameras = None if principal is None else await allowed_cameras(principal, services)
        limiter = services.security.route_limiter
        search = (
            await run_in_threadpool(services.search.service.lag)
            if services.search is not None
            else None
        )
        body = render_metrics(
            statuses,
            agent,
            cameras=cameras,
            ratelimit=(limiter.failovers, limiter.fallback_hits),
            search=search,
        )
        return Response(body, media_type=CONTENT_TYPE_LATEST)

    async def _start_sampling() -> None:
        # The system history starts with the process, not with the first chart's request.
        services = current_services({"app": app})
        if services is not None:
            await dashboard.sampler_of(services).start()

    async def _stop_background() -> None:
        services = current_services({"app": app})
        if services is not None:
            for task in (services.live, services.dashboard):
                if task is not None:
                    await task.stop()

    app.router.on_startup.append(_start_sampling)
    app.router.on_shutdown.append(_stop_background)
    # The dashboard's pages and assets answer every path no route takes.
    webapp.install(app)
    return app
