"""Samples the cameras' and the agent's figures every ``interval_s`` into a :class:`SampleRing`."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable, Mapping
from datetime import UTC, datetime
from typing import Any

from sentinel.dashboard.samples import SampleRing, sample_of

logger = logging.getLogger(__name__)

Statuses = Callable[[], Awaitable[Mapping[str, Mapping[str, Any]]]]
AgentStats = Callable[[], Awaitable[Mapping[str, Any] | None]]


class SystemSampler:
    """Keeps an hour (``capacity`` times ``interval_s``) of samples of this process's view."""

    def __init__(
        self,
        statuses: Statuses,
        agent: AgentStats | None,
        *,
        interval_s: float = 10.0,
        capacity: int = 360,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self.statuses = statuses
        self.agent = agent
        self.interval_s = interval_s
        self.ring = SampleRing(capacity)
        self.clock = clock
        self._task: asyncio.Task[None] | None = None
        self._loop_of_task: asyncio.AbstractEventLoop | None = None

    async def sample(self) -> None:
        """Takes one sample now."""
        statuses, agent = await asyncio.gather(
            self.statuses(), self.agent() if self.agent is not None else _none()
        )
        self.ring.add(sample_of(self.clock(), statuses, agent))

    async def start(self) -> None:
        """Samples every ``interval_s`` from now on; the first sample is taken before this
        returns, so the first caller already has one."""
        loop = asyncio.get_running_loop()
        if self._task is not None and not self._task.done() and self._loop_of_task is loop:
            return
        first = not self.ring.samples
        if first:
            try:
                await self.sample()
            except Exception:
                logger.exception("dashboard: sampling the system failed")
        self._task = loop.create_task(self._run(wait_first=first), name="dashboard-sampler")
        self._loop_of_task = loop

    async def stop(self) -> None:
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task

    async def _run(self, *, wait_first: bool = False) -> None:
        if wait_first:
            await asyncio.sleep(self.interval_s)
        while True:
            try:
                await self.sample()
            except asyncio.CancelledError:
                raise
            except Exception:
                logger.exception("dashboard: sampling the system failed")
            await asyncio.sleep(self.interval_s)


async def _none() -> None:
    return None
