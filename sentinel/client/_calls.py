"""The HTTP API as data: one ``Call`` per route, shared by the sync and the async client.

A ``Call`` says how to send a request and how to read its answer into the API's own response
models (``sentinel.api``), so the clients cannot drift from the routes they call.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Generic, Literal, Protocol, TypeVar

import httpx
from pydantic import BaseModel, TypeAdapter

from sentinel.api.alerts import AlertPage, AlertPublic
from sentinel.api.annotation import ItemPublic
from sentinel.api.auth import MeResponse, TokenResponse
from sentinel.api.datasets import DatasetDetail, DatasetPublic
from sentinel.api.incidents import IncidentDetail, IncidentPage
from sentinel.api.models import ModelsPublic
from sentinel.api.privacy import HoldList, HoldPublic
from sentinel.api.recordings import RecordingTimeline
from sentinel.api.schemas import CameraPublic, EventPage, EventPublic, HealthReport
from sentinel.api.search import SearchResults
from sentinel.api.training import TrainingRunPublic
from sentinel.config import CameraConfig

T = TypeVar("T")
M = TypeVar("M", bound=BaseModel)
T_co = TypeVar("T_co", covariant=True)

API = "/api/v1"
Verdict = Literal["true_positive", "false_positive"]
AlertStatus = Literal["open", "acknowledged", "withdrawn"]
Severity = Literal["info", "low", "medium", "high", "critical"]


class Page(Protocol[T_co]):
    """A page of a cursor-paginated list: its items and the cursor of the next page."""

    @property
    def items(self) -> Sequence[T_co]: ...

    @property
    def next_cursor(self) -> str | None: ...


@dataclass(frozen=True)
class Call(Generic[T]):
    """One request and how its answer is read.

    Attributes:
        method: The HTTP method.
        path: The path under the server's root.
        parse: Reads a successful response.
        params: Query parameters (``None`` values are left out).
        json: A JSON body.
        data: A form body.
        authed: Whether credentials go with it (the token routes carry their own).
    """

    method: str
    path: str
    parse: Callable[[httpx.Response], T]
    params: Mapping[str, Any] = field(default_factory=dict)
    json: Any = None
    data: Mapping[str, str] | None = None
    authed: bool = True

    def query(self) -> dict[str, str | int | float | bool]:
        """The query parameters as httpx takes them: ``None`` dropped, datetimes in ISO 8601."""
        out: dict[str, str | int | float | bool] = {}
        for key, value in self.params.items():
            if value is None:
                continue
            out[key] = value.isoformat() if isinstance(value, datetime) else value
        return out


def _model(cls: type[M]) -> Callable[[httpx.Response], M]:
    return lambda r: cls.model_validate_json(r.content)


def _models(cls: type[M]) -> Callable[[httpx.Response], list[M]]:
    adapter = TypeAdapter(list[cls])  # type: ignore[valid-type]
    return lambda r: list(adapter.validate_json(r.content))


def _nothing(_: httpx.Response) -> None:
    return None


def _text(r: httpx.Response) -> str:
    return r.text


def _bytes(r: httpx.Response) -> bytes:
    return r.content


def _seg(value: str) -> str:
    """One path segment: ids never carry '/', but a caller's typo must not reach another route."""
    if not value or "/" in value or value in {".", ".."}:
        raise ValueError(f"not a valid id: {value!r}")
    return value


# Sign-in ----------------------------------------------------------------------------------


def login(username: str, password: str, otp: str | None = None) -> Call[TokenResponse]:
    form = {"username": username, "password": password}
    if otp:
        form["otp"] = otp
    return Call("POST", f"{API}/auth/token", _model(TokenResponse), data=form, authed=False)


def refresh(refresh_token: str) -> Call[TokenResponse]:
    form = {"refresh_token": refresh_token}
    return Call("POST", f"{API}/auth/refresh", _model(TokenResponse), data=form, authed=False)


def logout() -> Call[None]:
    return Call("POST", f"{API}/auth/logout", _nothing)


def me() -> Call[MeResponse]:
    return Call("GET", f"{API}/auth/me", _model(MeResponse))


# System -----------------------------------------------------------------------------------


def health() -> Call[HealthReport]:
    return Call("GET", "/health", _model(HealthReport))


def metrics() -> Call[str]:
    return Call("GET", "/metrics", _text)


# Cameras ----------------------------------------------------------------------------------


def cameras() -> Call[list[CameraPublic]]:
    return Call("GET", f"{API}/cameras", _models(CameraPublic))


def camera(camera_id: str) -> Call[CameraPublic]:
    return Call("GET", f"{API}/cameras/{_seg(camera_id)}", _model(CameraPublic))


def add_camera(config: CameraConfig | Mapping[str, Any]) -> Call[CameraPublic]:
    body = (
        config.model_dump(mode="json", exclude_unset=True)
        if isinstance(config, CameraConfig)
        else dict(config)
    )
    return Call("POST", f"{API}/cameras", _model(CameraPublic), json=body)


def remove_camera(camera_id: str) -> Call[None]:
    return Call("DELETE", f"{API}/cameras/{_seg(camera_id)}", _nothing)


def holds(*, active: bool = True) -> Call[HoldList]:
    return Call("GET", f"{API}/holds", _model(HoldList), params={"active": active})


def place_hold(body: Mapping[str, Any]) -> Call[HoldPublic]:
    return Call("POST", f"{API}/holds", _model(HoldPublic), json=dict(body))


def release_hold(hold_id: str) -> Call[HoldPublic]:
    return Call("DELETE", f"{API}/holds/{_seg(hold_id)}", _model(HoldPublic))


def latest_frame(camera_id: str) -> Call[bytes]:
    return Call("GET", f"{API}/cameras/{_seg(camera_id)}/latest.jpg", _bytes)


def recordings(
    camera_id: str, since: datetime | None, until: datetime | None
) -> Call[RecordingTimeline]:
    return Call(
        "GET",
        f"{API}/cameras/{_seg(camera_id)}/recordings",
        _model(RecordingTimeline),
        params={"since": since, "until": until},
    )


# Events and incidents ---------------------------------------------------------------------


def events(**params: Any) -> Call[EventPage]:
    return Call("GET", f"{API}/events", _model(EventPage), params=params)


def event(event_id: str) -> Call[EventPublic]:
    return Call("GET", f"{API}/events/{_seg(event_id)}", _model(EventPublic))


def event_snapshot(event_id: str) -> Call[bytes]:
    return Call("GET", f"{API}/events/{_seg(event_id)}/snapshot.jpg", _bytes)


def incidents(**params: Any) -> Call[IncidentPage]:
    return Call("GET", f"{API}/incidents", _model(IncidentPage), params=params)


def incident(incident_id: str) -> Call[IncidentDetail]:
    return Call("GET", f"{API}/incidents/{_seg(incident_id)}", _model(IncidentDetail))


# Alerts -----------------------------------------------------------------------------------


def alerts(**params: Any) -> Call[AlertPage]:
    return Call("GET", f"{API}/alerts", _model(AlertPage), params=params)


def alert(alert_id: str) -> Call[AlertPublic]:
    return Call("GET", f"{API}/alerts/{_seg(alert_id)}", _model(AlertPublic))


def ack_alert(alert_id: str) -> Call[AlertPublic]:
    return Call("POST", f"{API}/alerts/{_seg(alert_id)}/ack", _model(AlertPublic))


def alert_verdict(alert_id: str, verdict: Verdict, note: str) -> Call[AlertPublic]:
    body = {"verdict": verdict, "note": note}
    return Call("POST", f"{API}/alerts/{_seg(alert_id)}/feedback", _model(AlertPublic), json=body)


# Models -----------------------------------------------------------------------------------


def models() -> Call[ModelsPublic]:
    return Call("GET", f"{API}/models", _model(ModelsPublic))


def model_canary(version: int, cameras: Sequence[str], share: float) -> Call[ModelsPublic]:
    body = {"cameras": list(cameras), "share": share}
    return Call("POST", f"{API}/models/{int(version)}/canary", _model(ModelsPublic), json=body)


def model_promote(version: int) -> Call[ModelsPublic]:
    return Call("POST", f"{API}/models/{int(version)}/promote", _model(ModelsPublic))


def model_rollback(version: int) -> Call[ModelsPublic]:
    return Call("POST", f"{API}/models/{int(version)}/rollback", _model(ModelsPublic))


# Search -----------------------------------------------------------------------------------


def search(**params: Any) -> Call[SearchResults]:
    return Call("GET", f"{API}/search", _model(SearchResults), params=params)


def similar(event_id: str, **params: Any) -> Call[SearchResults]:
    path = f"{API}/events/{_seg(event_id)}/similar"
    return Call("GET", path, _model(SearchResults), params=params)


# Annotation queue and datasets ------------------------------------------------------------


def annotation_queue(**params: Any) -> Call[list[ItemPublic]]:
    return Call("GET", f"{API}/annotation/queue", _models(ItemPublic), params=params)


def annotation_frame(item_id: str) -> Call[bytes]:
    return Call("GET", f"{API}/annotation/items/{_seg(item_id)}/frame", _bytes)


def datasets(**params: Any) -> Call[list[DatasetPublic]]:
    return Call("GET", f"{API}/datasets", _models(DatasetPublic), params=params)


def dataset(name: str, version: int) -> Call[DatasetDetail]:
    path = f"{API}/datasets/{_seg(name)}/{int(version)}"
    return Call("GET", path, _model(DatasetDetail))


# Training runs --------------------------------------------------------------------------------


def start_training(body: dict[str, Any]) -> Call[TrainingRunPublic]:
    return Call("POST", f"{API}/training/runs", _model(TrainingRunPublic), json=body)


def training_runs(**params: Any) -> Call[list[TrainingRunPublic]]:
    return Call("GET", f"{API}/training/runs", _models(TrainingRunPublic), params=params)


def training_run(run_id: str) -> Call[TrainingRunPublic]:
    return Call("GET", f"{API}/training/runs/{_seg(run_id)}", _model(TrainingRunPublic))


# Clips (downloaded as streams: the parse reads nothing) ------------------------------------


def event_clip(event_id: str, pre_s: float, post_s: float) -> Call[None]:
    params = {"pre_s": pre_s, "post_s": post_s}
    return Call("GET", f"{API}/events/{_seg(event_id)}/clip.mp4", _nothing, params=params)


def incident_clip(incident_id: str, pre_s: float, post_s: float) -> Call[None]:
    params = {"pre_s": pre_s, "post_s": post_s}
    return Call("GET", f"{API}/incidents/{_seg(incident_id)}/clip.mp4", _nothing, params=params)


def camera_clip(camera_id: str, start: datetime, end: datetime) -> Call[None]:
    params = {"start": start, "end": end}
    return Call("GET", f"{API}/cameras/{_seg(camera_id)}/clip.mp4", _nothing, params=params)
