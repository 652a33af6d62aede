"""``SentinelClient``: the blocking client of Sentinel's HTTP API."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator, Mapping, Sequence
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
from sentinel.api.training import TrainingRunPublic
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


class SentinelClient:
    """A typed, blocking client of one Sentinel server.

    Sign in with ``username``/``password`` (tokens are renewed as they expire), an
    ``api_key`` or a ready access ``token``; with none, credentials come from the environment
    (see ``from_env``). Errors raise ``SentinelAPIError`` subclasses carrying the status and
    the server's ``detail``; an unreachable server raises ``SentinelConnectionError``.

    Example:
        >>> with SentinelClient("http://127.0.0.1:8000", api_key="sk_...") as sc:
        ...     for ev in sc.iter_events(label="person", max_items=50):
        ...         print(ev.id, ev.camera_id, ev.score)

    Args:
        url: The server's root URL (``/api/v1`` is added per route).
        username: Sign in with this user...
        password: ...and this password.
        otp: The one-time code, for a user with MFA (used at the first login only).
        api_key: Or an API key (``X-API-Key``).
        token: Or an access token as it is (not renewed).
        timeout: Seconds per request.
        http: An ``httpx.Client`` to use instead of a new one (its base URL is kept).
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
        http: httpx.Client | None = None,
    ) -> None:
        creds = Credentials(username, password, otp, api_key, token)
        self._auth = TokenState(creds)
        self._lock = threading.Lock()
        self._http = http or httpx.Client(base_url=url or url_from_env(), timeout=timeout)

    @classmethod
    def from_env(cls, url: str | None = None, **kwargs: Any) -> SentinelClient:
        """A client of ``SENTINEL_URL`` (default ``http://127.0.0.1:8000``) signed in with
        ``SENTINEL_API_KEY``, ``SENTINEL_TOKEN`` or ``SENTINEL_USERNAME``/``SENTINEL_PASSWORD``."""
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
        """The current tokens (read-only use: to inspect or persist them)."""
        return self._auth

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> SentinelClient:
        return self

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    # -- transport --------------------------------------------------------------------------

    def _raw(self, call: Call[Any], *, stream: bool = False) -> httpx.Response:
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
            return self._http.send(request, stream=stream)
        except httpx.TransportError as exc:
            raise SentinelConnectionError(f"cannot reach Sentinel at {self.url}: {exc}") from exc

    def _renew(self, refused: str | None) -> None:
        """New tokens, unless another thread already replaced ``refused``."""
        with self._lock:
            auth = self._auth
            if auth.access_token != refused and auth.access_token is not None:
                return
            if auth.refresh_token is not None:
                response = self._raw(api.refresh(auth.refresh_token))
                if response.status_code == 200:
                    auth.accept(api.refresh(auth.refresh_token).parse(response))
                    return
                if response.status_code != 401 or not auth.can_login:
                    raise error_for(response)
            self._login_locked()

    def _login_locked(self) -> None:
        creds = self._auth.credentials
        assert creds.username is not None and creds.password is not None
        call = api.login(creds.username, creds.password, creds.otp)
        response = self._raw(call)
        if response.status_code != 200:
            raise error_for(response)
        self._auth.accept(call.parse(response))

    def _send(self, call: Call[Any], *, stream: bool = False) -> httpx.Response:
        """Sends ``call`` with fresh credentials; one retry after a 401 if they can be
        renewed. Raises the error for a failed status (the response is closed then)."""
        if call.authed:
            if self._auth.needs_login():
                with self._lock:
                    if self._auth.needs_login():
                        self._login_locked()
            elif self._auth.needs_refresh():
                self._renew(self._auth.access_token)
        used = self._auth.access_token
        response = self._raw(call, stream=stream)
        if response.status_code == 401 and call.authed and self._auth.renewable:
            response.close()
            self._renew(used)
            response = self._raw(call, stream=stream)
        if response.is_error:
            if stream:
                response.read()
            response.close()
            raise error_for(response)
        return response

    def _run(self, call: Call[T]) -> T:
        return call.parse(self._send(call))

    def _download(self, call: Call[None], dest: str | Path) -> Path:
        """Streams the answer of ``call`` into ``dest`` (written whole or not at all)."""
        path = Path(dest)
        partial = path.with_name(f".{path.name}.part")
        response = self._send(call, stream=True)
        try:
            with partial.open("wb") as out:
                for chunk in response.iter_bytes(CHUNK):
                    out.write(chunk)
        except BaseException:
            partial.unlink(missing_ok=True)
            raise
        finally:
            response.close()
        partial.replace(path)
        return path

    @staticmethod
    def _pages(fetch: Callable[[str | None], Page[I]], max_items: int | None) -> Iterator[I]:
        if max_items is not None and max_items < 0:
            raise ValueError(f"max_items must be >= 0, got {max_items}")
        cursor: str | None = None
        seen = 0
        while max_items is None or seen < max_items:
            page = fetch(cursor)
            for item in page.items:
                if max_items is not None and seen >= max_items:
                    return
                seen += 1
                yield item
            cursor = page.next_cursor
            if not cursor:
                return

    # -- sign-in ----------------------------------------------------------------------------

    def login(self) -> MeResponse:
        """Signs in now with the username and password (otherwise done on first use)."""
        if not self._auth.can_login:
            raise ValueError("login needs a username and password")
        with self._lock:
            self._login_locked()
        return self.me()

    def logout(self) -> None:
        """Revokes this user's refresh tokens on the server and forgets the tokens here."""
        self._run(api.logout())
        self._auth.forget()

    def me(self) -> MeResponse:
        """Who the credentials are: subject, role, scopes, cameras."""
        return self._run(api.me())

    # -- system -----------------------------------------------------------------------------

    def health(self) -> HealthReport:
        """Liveness and readiness; camera states if the credentials may read cameras."""
        return self._run(api.health())

    def metrics(self) -> str:
        """The Prometheus text of ``/metrics``."""
        return self._run(api.metrics())

    # -- cameras ----------------------------------------------------------------------------

    def cameras(self) -> list[CameraPublic]:
        """The cameras the credentials may see, with their status."""
        return self._run(api.cameras())

    def camera(self, camera_id: str) -> CameraPublic:
        return self._run(api.camera(camera_id))

    def add_camera(self, config: CameraConfig | Mapping[str, Any]) -> CameraPublic:
        """Adds and starts a camera (a ``CameraConfig`` or its keys as a mapping)."""
        return self._run(api.add_camera(config))

    def remove_camera(self, camera_id: str) -> None:
        """Stops and removes a camera; its events are kept."""
        self._run(api.remove_camera(camera_id))

    def holds(self, *, active: bool = True) -> list[HoldPublic]:
        """Legal holds, newest first (``active=False``: released ones too)."""
        return self._run(api.holds(active=active)).items

    def place_hold(self, body: Mapping[str, Any]) -> HoldPublic:
        """Places a legal hold (``kind``: camera_range, incident or export; see the API)."""
        return self._run(api.place_hold(body))

    def release_hold(self, hold_id: str) -> HoldPublic:
        """Releases a legal hold; what it kept is swept again once past retention."""
        return self._run(api.release_hold(hold_id))

    def latest_frame(self, camera_id: str) -> bytes:
        """The camera's latest frame as JPEG."""
        return self._run(api.latest_frame(camera_id))

    def recordings(
        self, camera_id: str, since: datetime | None = None, until: datetime | None = None
    ) -> RecordingTimeline:
        """Recorded segments and gaps (default: the last 24 h)."""
        return self._run(api.recordings(camera_id, since, until))

    # -- events -----------------------------------------------------------------------------

    def events(
        self,
        *,
        camera_id: str | None = None,
        label: str | None = None,
        since: datetime | None = None,
        until: datetime | None = None,
        cursor: str | None = None,
        limit: int = DEFAULT_PAGE,
    ) -> EventPage:
        """One page of events, newest first; pass ``next_cursor`` back for the next page."""
        return self._run(
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
    ) -> Iterator[EventPublic]:
        """Every matching event, newest first, fetched page by page as you iterate."""
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

    def events_frame(self, **filters: Any) -> pd.DataFrame:
        """``iter_events(**filters)`` as a pandas DataFrame (see ``to_pandas``)."""
        return to_pandas(list(self.iter_events(**filters)))

    def event(self, event_id: str) -> EventPublic:
        return self._run(api.event(event_id))

    def event_snapshot(self, event_id: str) -> bytes:
        """The event's best frame with its box drawn, as JPEG."""
        return self._run(api.event_snapshot(event_id))

    # -- incidents --------------------------------------------------------------------------

    def incidents(
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
        """One page of incidents, newest first."""
        return self._run(
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
    ) -> Iterator[IncidentPublic]:
        """Every matching incident, newest first, page by page."""
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

    def incidents_frame(self, **filters: Any) -> pd.DataFrame:
        """``iter_incidents(**filters)`` as a pandas DataFrame (see ``to_pandas``)."""
        return to_pandas(list(self.iter_incidents(**filters)))

    def incident(self, incident_id: str) -> IncidentDetail:
        """An incident with its member events and its alert (if the caller may read alerts)."""
        return self._run(api.incident(incident_id))

    def _incident_alert(self, incident_id: str) -> str:
        found = self.incident(incident_id).alert
        if found is None:
            url = f"{self.url.rstrip('/')}/api/v1/incidents/{incident_id}"
            raise NotFoundError(404, "the incident has no alert", "GET", url)
        return found.id

    def ack_incident(self, incident_id: str) -> AlertPublic:
        """Acknowledges the incident's alert (``NotFoundError`` if it has none)."""
        return self.ack_alert(self._incident_alert(incident_id))

    def incident_verdict(self, incident_id: str, verdict: Verdict, note: str = "") -> AlertPublic:
        """Records an operator's verdict on the incident's alert."""
        return self.alert_verdict(self._incident_alert(incident_id), verdict, note)

    # -- alerts -----------------------------------------------------------------------------

    def alerts(
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
        """One page of alerts, newest first (``alert``: only those that alert, or not)."""
        return self._run(
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
    ) -> Iterator[AlertPublic]:
        """Every matching alert, newest first, page by page."""
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

    def alerts_frame(self, **filters: Any) -> pd.DataFrame:
        """``iter_alerts(**filters)`` as a pandas DataFrame."""
        return to_pandas(list(self.iter_alerts(**filters)))

    def alert(self, alert_id: str) -> AlertPublic:
        return self._run(api.alert(alert_id))

    def ack_alert(self, alert_id: str) -> AlertPublic:
        return self._run(api.ack_alert(alert_id))

    def alert_verdict(self, alert_id: str, verdict: Verdict, note: str = "") -> AlertPublic:
        """``true_positive`` or ``false_positive``, with an optional note."""
        return self._run(api.alert_verdict(alert_id, verdict, note))

    # -- annotation queue and datasets ------------------------------------------------------

    def annotation_queue(
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
        return self._run(call)

    def annotation_frame(self, item_id: str) -> bytes:
        """The JPEG frame of a queue item."""
        return self._run(api.annotation_frame(item_id))

    def datasets(self, *, name: str | None = None) -> list[DatasetPublic]:
        """Dataset versions (``models:read``), by name, newest first."""
        return self._run(api.datasets(name=name))

    def dataset(self, name: str, version: int) -> DatasetDetail:
        """One dataset version with its manifest (items, labels, sha256 of every file)."""
        return self._run(api.dataset(name, version))

    # -- models -----------------------------------------------------------------------------

    def models(self) -> ModelsPublic:
        """The detector's registry versions, the serving state and the live canary figures."""
        return self._run(api.models())

    def model_canary(
        self, version: int, cameras: Sequence[str] = (), share: float = 0.0
    ) -> ModelsPublic:
        """Serves ``version`` to ``cameras`` and/or a ``share`` of the other cameras' frames."""
        return self._run(api.model_canary(version, cameras, share))

    def model_promote(self, version: int) -> ModelsPublic:
        """Makes ``version`` the champion on every camera."""
        return self._run(api.model_promote(version))

    def model_rollback(self, version: int) -> ModelsPublic:
        """Rolls the canary (or champion) ``version`` back: every camera on the last champion."""
        return self._run(api.model_rollback(version))

    # -- search -----------------------------------------------------------------------------

    def search(
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
        """Events and incidents closest to ``q`` in meaning, best first."""
        return self._run(
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

    def start_training(
        self,
        dataset: str,
        *,
        version: int | None = None,
        epochs: int | None = None,
        batch_size: int | None = None,
        input_size: int | None = None,
        lr: float | None = None,
    ) -> TrainingRunPublic:
        """Start a training run of a dataset version (``models:admin``); it runs on the
        cluster: follow it with :meth:`training_run`."""
        body = {
            "dataset": dataset,
            "version": version,
            "epochs": epochs,
            "batch_size": batch_size,
            "input_size": input_size,
            "lr": lr,
        }
        return self._run(api.start_training({k: v for k, v in body.items() if v is not None}))

    def training_runs(self, *, limit: int = 50, offset: int = 0) -> list[TrainingRunPublic]:
        """Training runs, newest first."""
        return self._run(api.training_runs(limit=limit, offset=offset))

    def training_run(self, run_id: str) -> TrainingRunPublic:
        """One training run with its progress, MLflow run id and gate report."""
        return self._run(api.training_run(run_id))

    def similar(
        self,
        event_id: str,
        *,
        by: Literal["description", "appearance"] = "description",
        camera_id: str | None = None,
        label: str | None = None,
        kind: Literal["event", "incident"] | None = None,
        limit: int = 10,
    ) -> SearchResults:
        """Events and incidents like ``event_id`` (itself left out)."""
        return self._run(
            api.similar(event_id, by=by, camera_id=camera_id, label=label, kind=kind, limit=limit)
        )

    # -- clips ------------------------------------------------------------------------------

    def download_event_clip(
        self, event_id: str, dest: str | Path, *, pre_s: float = 5.0, post_s: float = 5.0
    ) -> Path:
        """Saves the event's MP4 (from ``pre_s`` before to ``post_s`` after) to ``dest``."""
        return self._download(api.event_clip(event_id, pre_s, post_s), dest)

    def download_incident_clip(
        self, incident_id: str, dest: str | Path, *, pre_s: float = 5.0, post_s: float = 5.0
    ) -> Path:
        return self._download(api.incident_clip(incident_id, pre_s, post_s), dest)

    def download_camera_clip(
        self, camera_id: str, start: datetime, end: datetime, dest: str | Path
    ) -> Path:
        """Saves the camera's recording from ``start`` to ``end`` (at most 1 h) as MP4."""
        return self._download(api.camera_clip(camera_id, start, end), dest)


__all__ = ["SentinelClient"]
