"""``AsyncSentinelClient``: the asyncio client of Sentinel's HTTP API (same surface as the
blocking ``SentinelClient``, with ``await`` and ``async for``)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping, Sequence
from datetime import datetime
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING, Any, Literal, TypeVar

import httpx

from sentinel.api.alerts import AlertPage, AlertPublic
from sentinel.api.annotation import ItemPublic
from sentinel.api.auth import MeResponse
from sentinel.api.datasets import DatasetDetail, DatasetPublic
from sentinel.api.incidents import IncidentDetail, IncidentPage, IncidentPublic
from sentinel.api.models import ModelsPublic
from sentinel.api.privacy import HoldPublic
from sentinel.api.recordings import RecordingTimeline
from sentinel.api.schemas import CameraPublic, EventPage, EventPublic, HealthReport
from sentinel.api.search import SearchResults
from sentinel.client import _calls as api
from sentinel.client._auth import Credentials, TokenState, url_from_env
from sentinel.client._calls import AlertStatus, Call, Page, Severity, Verdict
from sentinel.client.errors import NotFoundError, SentinelConnectionError, error_for
from sentinel.client.frames import to_pandas
from sentinel.config import CameraConfig

if TYPE_CHECKING:
    import pandas as pd

T = TypeVar("T")
I = TypeVar("I")  # noqa: E741 - an item type

DEFAULT_PAGE = 100
CHUNK = 1 << 16


class AsyncSentinelClient:
    """A typed asyncio client of one Sentinel server; see ``SentinelClient`` for the
    arguments. Concurrent requests share one token renewal (a refresh token is used once:
    the server revokes the whole family when one comes back).

    Example:
        >>> async with AsyncSentinelClient(url, username="ana", password="...") as sc:
        ...     async for inc in sc.iter_incidents(status="open"):
        ...         print(inc.id, inc.labels)
    """

    def __init__(
        self,
        url: str | None = None,
        *,
        username: str | None = None,
        password: str | None = None,
        otp: str | None = None,
        api_key: str | None = None,
        token: str | None = None,
        timeout: float = 30.0,
        http: httpx.AsyncClient | None = None,
    ) -> None:
        creds = Credentials(username, password, otp, api_key, token)
        self._auth = TokenState(creds)
        self._lock = asyncio.Lock()
        self._http = http or httpx.AsyncClient(base_url=url or url_from_env(), timeout=timeout)

    @classmethod
    def from_env(cls, url: str | None = None, **kwargs: Any) -> AsyncSentinelClient:
        """Like ``SentinelClient.from_env``."""
        creds = Credentials.from_env()
        return cls(
            url or url_from_env(),
            username=creds.username,
            password=creds.password,
            api_key=creds.api_key,
            token=creds.token,
            **kwargs,
        )

    @property
    def url(self) -> str:
        return str(self._http.base_url)

    @property
    def tokens(self) -> TokenState:
        return self._auth

    async def aclose(self) -> None:
        await self._http.aclose()

    async def __aenter__(self) -> AsyncSentinelClient:
        return self

    async def __aexit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.aclose()

    # -- transport --------------------------------------------------------------------------

    async def _raw(self, call: Call[Any], *, stream: bool = False) -> httpx.Response:
        headers = self._auth.headers() if call.authed else {}
        request = self._http.build_request(
            call.method,
            call.path,
            params=call.query(),
            json=call.json,
            data=call.data,
            headers=headers,
        )
        try:
            return await self._http.send(request, stream=stream)
        except httpx.TransportError as exc:
            raise SentinelConnectionError(f"cannot reach Sentinel at {self.url}: {exc}") from exc

    async def _renew(self, refused: str | None) -> None:
        async with self._lock:
            auth = self._auth
            if auth.access_token != refused and auth.access_token is not None:
                return  # another task renewed them while this one waited
            if auth.refresh_token is not None:
                call = api.refresh(auth.refresh_token)
                response = await self._raw(call)
                if response.status_code == 200:
                    auth.accept(call.parse(response))
                    return
                if response.status_code != 401 or not auth.can_login:
                    raise error_for(response)
            await self._login_locked()

    async def _login_locked(self) -> None:
        creds = self._auth.credentials
        assert creds.username is not None and creds.password is not None
        call = api.login(creds.username, creds.password, creds.otp)
        response = await self._raw(call)
        if response.status_code != 200:
            raise error_for(response)
        self._auth.accept(call.parse(response))

    async def _send(self, call: Call[Any], *, stream: bool = False) -> httpx.Response:
        if call.authed:
            if self._auth.needs_login():
                async with self._lock:
                    if self._auth.needs_login():
                        await self._login_locked()
            elif self._auth.needs_refresh():
                await self._renew(self._auth.access_token)
        used = self._auth.access_token
        response = await self._raw(call, stream=stream)
        if response.status_code == 401 and call.authed and self._auth.renewable:
            await response.aclose()
            await self._renew(used)
            response = await self._raw(call, stream=stream)
        if response.is_error:
            if stream:
                await response.aread()
            await response.aclose()
            raise error_for(response)
        return response

    async def _run(self, call: Call[T]) -> T:
        return call.parse(await self._send(call))

    async def _download(self, call: Call[None], dest: str | Path) -> Path:
        path = Path(dest)
        partial = path.with_name(f".{path.name}.part")
        response = await self._send(call, stream=True)
        try:
            with partial.open("wb") as out:
                async for chunk in response.aiter_bytes(CHUNK):
                    out.write(chunk)
        except BaseException:
            partial.unlink(missing_ok=True)
            raise
        finally:
            await response.aclose()
        partial.replace(path)
        return path

    @staticmethod
    async def _pages(
        fetch: Callable[[str | None], Awaitable[Page[I]]], max_items: int | None
    ) -> AsyncIterator[I]:
        if max_items is not None and max_items < 0:
            raise ValueError(f"max_items must be >= 0, got {max_items}")
        cursor: str | None = None
        seen = 0
        while max_items is None or seen < max_items:
            page = await fetch(cursor)
            for item in page.items:
                if max_items is not None and seen >= max_items:
                    return
                seen += 1
                yield item
            cursor = page.next_cursor
            if not cursor:
                return

    # -- sign-in ----------------------------------------------------------------------------

    async def login(self) -> MeResponse:
        if not self._auth.can_login:
            raise ValueError("login needs a username and password")
        async with self._lock:
            await self._login_locked()
        return await self.me()

    async def logout(self) -> None:
        await self._run(api.logout())
        self._auth.forget()

    async def me(self) -> MeResponse:
        return await self._run(api.me())

    # -- system -----------------------------------------------------------------------------

    async def health(self) -> HealthReport:
        return await self._run(api.health())

    async def metrics(self) -> str:
        return await self._run(api.metrics())

    # -- cameras ----------------------------------------------------------------------------

    async def cameras(self) -> list[CameraPublic]:
        return await self._run(api.cameras())

    async def camera(self, camera_id: str) -> CameraPublic:
        return await self._run(api.camera(camera_id))

    async def add_camera(self, config: CameraConfig | Mapping[str, Any]) -> CameraPublic:
        return await self._run(api.add_camera(config))

    async def remove_camera(self, camera_id: str) -> None:
        await self._run(api.remove_camera(camera_id))

    async def holds(self, *, active: bool = True) -> list[HoldPublic]:
        return (await self._run(api.holds(active=active))).items

    async def place_hold(self, body: Mapping[str, Any]) -> HoldPublic:
        return await self._run(api.place_hold(body))

    async def release_hold(self, hold_id: str) -> HoldPublic:
        return await self._run(api.release_hold(hold_id))

    async def latest_frame(self, camera_id: str) -> bytes:
        return await self._run(api.latest_frame(camera_id))

    async def recordings(
        self, camera_id: str, since: datetime | None = None, until: datetime | None = None
    ) -> RecordingTimeline:
        return await self._run(api.recordings(camera_id, since, until))

    # -- events -----------------------------------------------------------------------------

    async def events(
        self,
        *,
        camera_id: str | None = None,
        label: str | None = None,
        since: datetime | None = None,
        until: datetime | None = None,
        cursor: str | None = None,
        limit: int = DEFAULT_PAGE,
    ) -> EventPage:
        return await self._run(
            api.events(
                camera_id=camera_id,
                label=label,
                since=since,
                until=until,
                cursor=cursor,
                limit=limit,
            )
        )

    def iter_events(
        self,
        *,
        camera_id: str | None = None,
        label: str | None = None,
        since: datetime | None = None,
        until: datetime | None = None,
        page_size: int = DEFAULT_PAGE,
        max_items: int | None = None,
    ) -> AsyncIterator[EventPublic]:
        return self._pages(
            lambda cursor: self.events(
                camera_id=camera_id,
                label=label,
                since=since,
                until=until,
                cursor=cursor,
                limit=page_size,
            ),
            max_items,
        )

    async def events_frame(self, **filters: Any) -> pd.DataFrame:
        return to_pandas([e async for e in self.iter_events(**filters)])

    async def event(self, event_id: str) -> EventPublic:
        return await self._run(api.event(event_id))

    async def event_snapshot(self, event_id: str) -> bytes:
        return await self._run(api.event_snapshot(event_id))

    # -- incidents --------------------------------------------------------------------------

    async def incidents(
        self,
        *,
        camera_id: str | None = None,
        label: str | None = None,
        status: Literal["open", "closed"] | None = None,
        since: datetime | None = None,
        until: datetime | None = None,
        cursor: str | None = None,
        limit: int = DEFAULT_PAGE,
    ) -> IncidentPage:
        return await self._run(
            api.incidents(
                camera_id=camera_id,
                label=label,
                status=status,
                since=since,
                until=until,
                cursor=cursor,
                limit=limit,
            )
        )

    def iter_incidents(
        self,
        *,
        camera_id: str | None = None,
        label: str | None = None,
        status: Literal["open", "closed"] | None = None,
        since: datetime | None = None,
        until: datetime | None = None,
        page_size: int = DEFAULT_PAGE,
        max_items: int | None = None,
    ) -> AsyncIterator[IncidentPublic]:
        return self._pages(
            lambda cursor: self.incidents(
                camera_id=camera_id,
                label=label,
                status=status,
                since=since,
                until=until,
                cursor=cursor,
                limit=page_size,
            ),
            max_items,
        )

    async def incidents_frame(self, **filters: Any) -> pd.DataFrame:
        return to_pandas([i async for i in self.iter_incidents(**filters)])

    async def incident(self, incident_id: str) -> IncidentDetail:
        return await self._run(api.incident(incident_id))

    async def _incident_alert(self, incident_id: str) -> str:
        found = (await self.incident(incident_id)).alert
        if found is None:
            url = f"{self.url.rstrip('/')}/api/v1/incidents/{incident_id}"
            raise NotFoundError(404, "the incident has no alert", "GET", url)
        return found.id

    async def ack_incident(self, incident_id: str) -> AlertPublic:
        return await self.ack_alert(await self._incident_alert(incident_id))

    async def incident_verdict(
        self, incident_id: str, verdict: Verdict, note: str = ""
    ) -> AlertPublic:
        return await self.alert_verdict(await self._incident_alert(incident_id), verdict, note)

    # -- alerts -----------------------------------------------------------------------------

    async def alerts(
        self,
        *,
        camera_id: str | None = None,
        status: AlertStatus | None = None,
        severity: Severity | None = None,
        alert: bool | None = None,
        since: datetime | None = None,
        until: datetime | None = None,
        cursor: str | None = None,
        limit: int = DEFAULT_PAGE,
    ) -> AlertPage:
        return await self._run(
            api.alerts(
                camera_id=camera_id,
                status=status,
                severity=severity,
                alert=alert,
                since=since,
                until=until,
                cursor=cursor,
                limit=limit,
            )
        )

    def iter_alerts(
        self,
        *,
        camera_id: str | None = None,
        status: AlertStatus | None = None,
        severity: Severity | None = None,
        alert: bool | None = None,
        since: datetime | None = None,
        until: datetime | None = None,
        page_size: int = DEFAULT_PAGE,
        max_items: int | None = None,
    ) -> AsyncIterator[AlertPublic]:
        return self._pages(
            lambda cursor: self.alerts(
                camera_id=camera_id,
                status=status,
                severity=severity,
                alert=alert,
                since=since,
                until=until,
                cursor=cursor,
                limit=page_size,
            ),
            max_items,
        )

    async def alert(self, alert_id: str) -> AlertPublic:
        return await self._run(api.alert(alert_id))

    async def ack_alert(self, alert_id: str) -> AlertPublic:
        return await self._run(api.ack_alert(alert_id))

    async def alert_verdict(self, alert_id: str, verdict: Verdict, note: str = "") -> AlertPublic:
        return await self._run(api.alert_verdict(alert_id, verdict, note))

    # -- annotation queue and datasets ------------------------------------------------------

    async def annotation_queue(
        self,
        *,
        camera_id: str | None = None,
        status: Literal["queued", "submitted", "accepted", "returned"] = "queued",
        limit: int = 50,
        offset: int = 0,
    ) -> list[ItemPublic]:
        """The annotation queue (``annotations:write``), best first: each frame's score
        (expected value of labelling it), the miner's reasons and the detector's pre-labels."""
        call = api.annotation_queue(camera_id=camera_id, status=status, limit=limit, offset=offset)
        return await self._run(call)

    async def annotation_frame(self, item_id: str) -> bytes:
        """The JPEG frame of a queue item."""
        return await self._run(api.annotation_frame(item_id))

    async def datasets(self, *, name: str | None = None) -> list[DatasetPublic]:
        """Dataset versions (``models:read``), by name, newest first."""
        return await self._run(api.datasets(name=name))

    async def dataset(self, name: str, version: int) -> DatasetDetail:
        """One dataset version with its manifest (items, labels, sha256 of every file)."""
        return await self._run(api.dataset(name, version))

    # -- models -----------------------------------------------------------------------------

    async def models(self) -> ModelsPublic:
        """The detector's registry versions, the serving state and the live canary figures."""
        return await self._run(api.models())

    async def model_canary(
        self, version: int, cameras: Sequence[str] = (), share: float = 0.0
    ) -> ModelsPublic:
        """Serves ``version`` to ``cameras`` and/or a ``share`` of the other cameras' frames."""
        return await self._run(api.model_canary(version, cameras, share))

    async def model_promote(self, version: int) -> ModelsPublic:
        """Makes ``version`` the champion on every camera."""
        return await self._run(api.model_promote(version))

    async def model_rollback(self, version: int) -> ModelsPublic:
        """Rolls the canary (or champion) ``version`` back: every camera on the last champion."""
        return await self._run(api.model_rollback(version))

    # -- search -----------------------------------------------------------------------------

    async def search(
        self,
        q: str,
        *,
        camera_id: str | None = None,
        label: str | None = None,
        kind: Literal["event", "incident"] | None = None,
        since: datetime | None = None,
        until: datetime | None = None,
        limit: int = 10,
    ) -> SearchResults:
        return await self._run(
            api.search(
                q=q,
                camera_id=camera_id,
                label=label,
                kind=kind,
                since=since,
                until=until,
                limit=limit,
            )
        )

    async def similar(
        self,
        event_id: str,
        *,
        by: Literal["description", "appearance"] = "description",
        camera_id: str | None = None,
        label: str | None = None,
        kind: Literal["event", "incident"] | None = None,
        limit: int = 10,
    ) -> SearchResults:
        return await self._run(
            api.similar(event_id, by=by, camera_id=camera_id, label=label, kind=kind, limit=limit)
        )

    # -- clips ------------------------------------------------------------------------------

    async def download_event_clip(
        self, event_id: str, dest: str | Path, *, pre_s: float = 5.0, post_s: float = 5.0
    ) -> Path:
        return await self._download(api.event_clip(event_id, pre_s, post_s), dest)

    async def download_incident_clip(
        self, incident_id: str, dest: str | Path, *, pre_s: float = 5.0, post_s: float = 5.0
    ) -> Path:
        return await self._download(api.incident_clip(incident_id, pre_s, post_s), dest)

    async def download_camera_clip(
        self, camera_id: str, start: datetime, end: datetime, dest: str | Path
    ) -> Path:
        return await self._download(api.camera_clip(camera_id, start, end), dest)


__all__ = ["AsyncSentinelClient"]
