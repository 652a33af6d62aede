"""The live hub of one process: observes changes, publishes them, serves subscribers.

Changes are observed where they are durably written, whichever process wrote them: alert
changes in the notifier outbox (created, amended, acknowledged, withdrawn; its id is
monotonic), incidents that started in the last ``incident_window_s`` (a new revision is a
change), and the cameras' states (a new state, error or restart count). Each process polls
them every ``interval_s`` while it has had a subscriber; every change goes to the bus under a
key, so replicas that all observe it publish it once (Redis) and a re-read never repeats one.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from starlette.concurrency import run_in_threadpool

from sentinel.live.bus import Batch, LiveBus
from sentinel.live.messages import camera_state_changes
from sentinel.store.live_repo import LiveChangesRepo

logger = logging.getLogger(__name__)

Statuses = Callable[[], Awaitable[Mapping[str, Mapping[str, Any]]]]

# Outbox ids are taken from a sequence before commit: a slower transaction may commit a lower
# id after a higher one was read. Each poll re-reads this many ids below the highest seen (the
# bus's keys drop what was published already).
REREAD_IDS = 200


@dataclass
class LiveSettings:
    """How often the hub polls, how far back incidents are watched, how long reads wait."""

    interval_s: float = 0.25
    camera_interval_s: float = 1.0  # the supervisor is asked less often than the database
    incident_window_s: float = 900.0
    read_timeout_s: float = 15.0


class LiveHub:
    """Polls the changes into ``bus`` (from the first :meth:`start` until :meth:`stop`).

    Args:
        bus: Where messages go and subscribers read.
        repo: The database reads.
        statuses: The cameras' current statuses (the supervisor's, through the API's control).
        settings: Timings.
        clock: The current tz-aware time.
    """

    def __init__(
        self,
        bus: LiveBus,
        repo: LiveChangesRepo,
        statuses: Statuses,
        settings: LiveSettings | None = None,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self.bus = bus
        self.repo = repo
        self.statuses = statuses
        self.settings = settings or LiveSettings()
        self.clock = clock
        self._task: asyncio.Task[None] | None = None
        self._loop_of_task: asyncio.AbstractEventLoop | None = None
        self._primed = False
        self._outbox_seen = 0
        self._outbox_floor = 0  # what existed at the start is never re-read
        self._incidents: dict[str, int] = {}
        self._cameras: dict[str, tuple[str, str | None]] = {}
        self._cameras_at = 0.0

    async def start(self) -> None:
        """Starts polling in this event loop (once; again after :meth:`stop`)."""
        loop = asyncio.get_running_loop()
        if self._task is not None and not self._task.done() and self._loop_of_task is loop:
            return
        if not self._primed:
            await self._prime()
        self._task = loop.create_task(self._loop(), name="live-hub")
        self._loop_of_task = loop

    async def stop(self) -> None:
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task

    async def read(self, cursor: str | None, timeout_s: float | None = None) -> Batch:
        """What a subscriber gets after ``cursor`` (None: from now on)."""
        await self.start()
        wait = self.settings.read_timeout_s if timeout_s is None else timeout_s
        if cursor is None:
            return Batch([], await self.bus.head())
        return await self.bus.read(cursor, wait)

    async def _prime(self) -> None:
        """What exists when the hub starts is the state the client loads; not news."""
        self._outbox_seen = self._outbox_floor = await run_in_threadpool(self.repo.outbox_head)
        since = self.clock() - timedelta(seconds=self.settings.incident_window_s)
        for inc in await run_in_threadpool(self.repo.incidents_since, since):
            self._incidents[str(inc.incident["id"])] = inc.revision
        statuses = await self.statuses()
        self._cameras = camera_state_changes({}, statuses)
        self._primed = True

    async def _loop(self) -> None:
        while True:
            try:
                await self.poll()
            except asyncio.CancelledError:
                raise
            except Exception:
                logger.exception("live: polling the changes failed")
            await asyncio.sleep(self.settings.interval_s)

    async def poll(self) -> int:
        """One round: publishes what changed since the last; how many messages it published."""
        if not self._primed:
            await self._prime()
        published = 0
        after = max(self._outbox_floor, self._outbox_seen - REREAD_IDS)
        for change in await run_in_threadpool(self.repo.alert_changes, after):
            self._outbox_seen = max(self._outbox_seen, change.seq)
            key = f"alert:{change.seq}"
            if await self.bus.publish("alert", change.camera_id, change.alert, key):
                published += 1
        since = self.clock() - timedelta(seconds=self.settings.incident_window_s)
        for inc in await run_in_threadpool(self.repo.incidents_since, since):
            iid = str(inc.incident["id"])
            if self._incidents.get(iid) == inc.revision:
                continue
            self._incidents[iid] = inc.revision
            key = f"incident:{iid}:{inc.revision}"
            if await self.bus.publish("incident", inc.camera_id, inc.incident, key):
                published += 1
        if len(self._incidents) > 50_000:  # only the window's incidents are looked at again
            self._incidents = {
                str(i.incident["id"]): i.revision
                for i in await run_in_threadpool(self.repo.incidents_since, since)
            }
        if time.monotonic() - self._cameras_at < self.settings.camera_interval_s:
            return published
        self._cameras_at = time.monotonic()
        statuses = await self.statuses()
        for cid, (state, error) in camera_state_changes(self._cameras, statuses).items():
            self._cameras[cid] = (state, error)
            restarts = int(statuses.get(cid, {}).get("restarts", 0) or 0)
            data = {"state": state, "last_error": error, "restarts": restarts}
            digest = hashlib.blake2b(str(error).encode(), digest_size=6).hexdigest()
            key = f"camera:{cid}:{state}:{restarts}:{digest}"
            if await self.bus.publish("camera", cid, data, key):
                published += 1
        for cid in [c for c, (s, _) in self._cameras.items() if s == "removed"]:
            del self._cameras[cid]
        return published
