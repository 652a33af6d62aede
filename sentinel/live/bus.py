"""Where live messages travel: a Redis Stream shared by every ingress replica, or a bounded
ring in this process.

Both give every message an id that grows with each message (the subscriber's cursor), keep
the last ``capacity`` messages for subscribers that reconnect, answer ``reset`` to a cursor
whose successors were already dropped (or that is not theirs), and publish a message once per
``key``: several replicas may observe the same change, and only the first publishes it.
"""

from __future__ import annotations

import asyncio
import json
import re
import secrets
from dataclasses import dataclass
from typing import Any, Protocol

from sentinel.live.messages import LiveMessage, SeenKeys
from sentinel.live.ring import Ring


@dataclass(frozen=True, slots=True)
class Batch:
    """The messages after a cursor (possibly none), the cursor to read on from, and whether
    the old cursor was too old or foreign (``reset``: reload state, then follow ``cursor``)."""

    messages: list[LiveMessage]
    cursor: str
    reset: bool = False


class LiveBus(Protocol):
    async def publish(
        self, kind: str, camera_id: str, data: dict[str, Any], key: str
    ) -> str | None:
        """Publishes a message unless ``key`` was published already; its cursor, or None."""

    async def head(self) -> str:
        """The cursor of the newest message (reading from it gets only later ones)."""

    async def read(self, cursor: str, timeout_s: float) -> Batch:
        """The messages after ``cursor``; waits up to ``timeout_s`` for one to come."""

    async def close(self) -> None: ...


class MemoryBus:
    """The bus of one process: a :class:`Ring`; cursors are ``<epoch>-<id>``, so a cursor of
    another process (or of this one before a restart) is answered with ``reset``."""

    def __init__(self, capacity: int = 1000, seen: int = 10_000) -> None:
        self.ring = Ring(capacity)
        self.epoch = secrets.token_hex(4)
        self.seen = SeenKeys(seen)
        self._changed = asyncio.Event()

    def _cursor(self, n: int) -> str:
        return f"{self.epoch}-{n}"

    async def publish(
        self, kind: str, camera_id: str, data: dict[str, Any], key: str
    ) -> str | None:
        if not self.seen.add(key):
            return None
        entry = self.ring.append(kind, camera_id, data)
        # Wake every waiting reader, then arm the event again for the next message.
        changed, self._changed = self._changed, asyncio.Event()
        changed.set()
        return self._cursor(entry.id)

    async def head(self) -> str:
        return self._cursor(self.ring.last_id)

    async def read(self, cursor: str, timeout_s: float) -> Batch:
        epoch, _, number = cursor.partition("-")
        if epoch != self.epoch or not number.isdigit():
            return Batch([], await self.head(), reset=True)
        n = int(number)
        since = self.ring.since(n)
        if not since.entries and not since.reset:
            waiting = self._changed
            try:
                await asyncio.wait_for(waiting.wait(), timeout_s)
            except TimeoutError:
                return Batch([], cursor)
            since = self.ring.since(n)
        if since.reset:
            return Batch([], await self.head(), reset=True)
        messages = [
            LiveMessage(self._cursor(e.id), e.kind, e.camera_id, e.data) for e in since.entries
        ]
        return Batch(messages, messages[-1].cursor if messages else cursor)

    async def close(self) -> None:
        return None


_STREAM_ID = re.compile(r"^\d{1,20}-\d{1,20}$")
_CLAIM_AND_APPEND = """
if redis.call('SET', KEYS[2], '1', 'NX', 'EX', ARGV[1]) then
  return redis.call('XADD', KEYS[1], 'MAXLEN', '~', ARGV[2], '*',
                    'kind', ARGV[3], 'camera', ARGV[4], 'data', ARGV[5])
end
return false
"""


def _sid(value: str | bytes) -> tuple[int, int]:
    text = value.decode() if isinstance(value, bytes) else value
    ms, _, seq = text.partition("-")
    return int(ms), int(seq or 0)


class RedisBus:
    """The bus of every replica: one Redis Stream (``XADD`` with an approximate ``MAXLEN``),
    read with blocking ``XREAD`` from the subscriber's cursor (the stream entry's id). A
    key claimed with ``SET NX`` (kept an hour) in the same script as the ``XADD`` lets one
    replica publish a change that all observed.

    Args:
        client: A ``redis.asyncio.Redis`` client (decode_responses off).
        stream: The stream's key.
        capacity: About how many messages the stream keeps.
    """

    def __init__(self, client: Any, stream: str = "sentinel:live", capacity: int = 10_000) -> None:
        self.client = client
        self.stream = stream
        self.capacity = capacity

    async def publish(
        self, kind: str, camera_id: str, data: dict[str, Any], key: str
    ) -> str | None:
        # Claim and append in one step: a replica that finds a key claimed knows its message
        # is already in the stream, so each replica's changes enter the stream in the order
        # it read them, whichever replica appends each one.
        sid = await self.client.eval(
            _CLAIM_AND_APPEND,
            2,
            self.stream,
            f"{self.stream}:seen:{key}",
            3600,
            self.capacity,
            kind,
            camera_id,
            json.dumps(data),
        )
        if sid is None:
            return None
        return str(sid.decode() if isinstance(sid, bytes) else sid)

    async def head(self) -> str:
        last = await self.client.xrevrange(self.stream, count=1)
        if not last:
            return "0-0"
        sid = last[0][0]
        return str(sid.decode() if isinstance(sid, bytes) else sid)

    async def _too_old(self, cursor: str) -> bool:
        """Whether entries after ``cursor`` were trimmed away, or it is not of this stream."""
        try:
            info = await self.client.xinfo_stream(self.stream)
        except Exception:  # no stream yet: only "0-0" is a cursor of it
            return cursor != "0-0"
        last = info.get("last-generated-id") or info.get(b"last-generated-id") or "0-0"
        deleted = info.get("max-deleted-entry-id") or info.get(b"max-deleted-entry-id") or "0-0"
        return _sid(cursor) > _sid(last) or _sid(cursor) < _sid(deleted)

    async def read(self, cursor: str, timeout_s: float) -> Batch:
        if not _STREAM_ID.match(cursor) or await self._too_old(cursor):
            return Batch([], await self.head(), reset=True)
        answer = await self.client.xread(
            {self.stream: cursor}, count=500, block=max(1, int(timeout_s * 1000))
        )
        messages: list[LiveMessage] = []
        for _, entries in answer or []:
            for sid, fields in entries:
                f = {
                    (k.decode() if isinstance(k, bytes) else k): (
                        v.decode() if isinstance(v, bytes) else v
                    )
                    for k, v in fields.items()
                }
                messages.append(
                    LiveMessage(
                        str(sid.decode() if isinstance(sid, bytes) else sid),
                        f["kind"],
                        f["camera"],
                        json.loads(f["data"]),
                    )
                )
        return Batch(messages, messages[-1].cursor if messages else cursor)

    async def close(self) -> None:
        await self.client.aclose()


def make_bus(redis_url: str | None) -> LiveBus:
    """A Redis Stream bus when ``redis_url`` is set (every replica shares it), else this
    process's ring."""
    if not redis_url:
        return MemoryBus()
    import redis.asyncio as aioredis

    client = aioredis.Redis.from_url(redis_url, socket_connect_timeout=1.0)
    return RedisBus(client)
