"""``/api/v1/dashboard/*``: history for the dashboard's charts, within the caller's cameras.

- ``events``: events per UTC hour, in total, per camera, per label (``events:read``);
- ``alerts``: alerts per hour with acknowledgements and verdicts, the mean rate and the
  false-positive share of judged alerts (``alerts:read``);
- ``system``: each camera's frame rates, detector latency and batch size, and the agent's
  backlog and decisions, over the last hour as this API process sampled them
  (``metrics:read``; see ``sentinel.dashboard.samples``).

Windows are ``start``/``end`` (ISO 8601 with a time zone; default: the last 24 hours), in
whole hours, at most 7 days: anything else is a 422.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Any

from fastapi import APIRouter, Query, Security
from fastapi.exceptions import RequestValidationError
from starlette.concurrency import run_in_threadpool

from sentinel.api.deps import Services, ServicesDep
from sentinel.api.security import allowed_cameras, authorize, require_camera
from sentinel.dashboard.history import (
    AlertHour,
    Window,
    WindowError,
    alert_series,
    bucket_time,
    counts_from_rows,
    event_series,
)
from sentinel.dashboard.sampler import SystemSampler
from sentinel.dashboard.samples import system_series
from sentinel.gateway.roles import ALERTS_READ, EVENTS_READ, METRICS_READ, Principal
from sentinel.store.dashboard_repo import DashboardRepo

router = APIRouter(prefix="/dashboard", tags=["dashboard"])

Start = Annotated[datetime | None, Query(description="Window start (ISO 8601, with zone).")]
End = Annotated[datetime | None, Query(description="Window end (ISO 8601, with zone).")]
Camera = Annotated[str | None, Query(max_length=64, description="Only this camera.")]


def sampler_of(services: Services) -> SystemSampler:
    """The services' sampler, made on first use."""
    if services.dashboard is None:
        control = services.agent.control
        services.dashboard = SystemSampler(
            services.control.statuses, control.worker_stats if control is not None else None
        )
    sampler: SystemSampler = services.dashboard
    return sampler


def _window(start: datetime | None, end: datetime | None) -> Window:
    try:
        return Window.of(start, end, datetime.now(UTC))
    except WindowError as exc:
        # Shaped like FastAPI's own 422s (the OpenAPI document declares those).
        loc = ("query", "end" if "end" in str(exc) and "start" not in str(exc) else "start")
        raise RequestValidationError(
            [{"loc": loc, "msg": str(exc), "type": "value_error"}]
        ) from exc


async def _cameras(
    principal: Principal, services: Services, camera_id: str | None
) -> set[str] | None:
    if camera_id is not None:
        await require_camera(principal, services, camera_id)
        return {camera_id}
    return await allowed_cameras(principal, services)


@router.get("/events", summary="Events per hour, by camera and label")
async def events_history(
    services: ServicesDep,
    principal: Annotated[Principal, Security(authorize, scopes=[EVENTS_READ])],
    start: Start = None,
    end: End = None,
    camera_id: Camera = None,
) -> dict[str, Any]:
    window = _window(start, end)
    cameras = await _cameras(principal, services, camera_id)
    repo = DashboardRepo(services.engine)
    rows = await run_in_threadpool(repo.event_counts, window.start, window.end, cameras)
    return event_series(window, counts_from_rows(rows))


@router.get("/alerts", summary="Alerts per hour, acknowledgements and verdicts")
async def alerts_history(
    services: ServicesDep,
    principal: Annotated[Principal, Security(authorize, scopes=[ALERTS_READ])],
    start: Start = None,
    end: End = None,
    camera_id: Camera = None,
) -> dict[str, Any]:
    window = _window(start, end)
    cameras = await _cameras(principal, services, camera_id)
    repo = DashboardRepo(services.engine)
    rows = await run_in_threadpool(repo.alert_counts, window.start, window.end, cameras)
    hours = [
        AlertHour(
            hour=bucket_time(str(r["bucket"])),
            alerts=int(r["n"]),
            true_positive=int(r["true_positive"] or 0),
            false_positive=int(r["false_positive"] or 0),
            acknowledged=int(r["acknowledged"] or 0),
        )
        for r in rows
    ]
    return alert_series(window, hours)


@router.get("/system", summary="Cameras' and agent's figures over the last hour")
async def system_history(
    services: ServicesDep,
    principal: Annotated[Principal, Security(authorize, scopes=[METRICS_READ])],
) -> dict[str, Any]:
    sampler = sampler_of(services)
    await sampler.start()
    if len(sampler.ring.samples) < 2:
        await sampler.sample()  # a first interval at once, rather than an empty chart
    cameras = await allowed_cameras(principal, services)
    series = system_series(list(sampler.ring.samples), cameras)
    return {"interval_s": sampler.interval_s, **series}
