"""The live updates' pure parts: visibility, camera-state changes, the ring, the memory bus."""

from __future__ import annotations

import asyncio

import pytest

from sentinel.live.bus import MemoryBus
from sentinel.live.messages import LiveMessage, SeenKeys, camera_state_changes, visible
from sentinel.live.ring import Ring

EVERY = {"alerts:read", "events:read", "cameras:read"}


@pytest.mark.parametrize(
    ("kind", "camera", "scopes", "cameras", "seen"),
    [
        ("alert", "cam-a", EVERY, None, True),
        ("alert", "cam-a", EVERY, {"cam-a"}, True),
        ("alert", "cam-b", EVERY, {"cam-a"}, False),
        ("alert", "cam-a", {"events:read", "cameras:read"}, None, False),
        ("incident", "cam-a", {"events:read"}, {"cam-a"}, True),
        ("incident", "cam-a", {"alerts:read"}, None, False),
        ("camera", "cam-b", {"cameras:read"}, set(), False),
        ("camera", "cam-b", {"cameras:read"}, None, True),
        ("unknown", "cam-a", EVERY, None, False),
    ],
)
def test_visible(
    kind: str, camera: str, scopes: set[str], cameras: set[str] | None, seen: bool
) -> None:
    assert visible(LiveMessage("c", kind, camera), scopes, cameras) is seen


def test_camera_state_changes() -> None:
    before = {"a": ("running", None), "b": ("running", None), "gone": ("failed", "x")}
    now = {
        "a": {"state": "running"},
        "b": {"state": "failed", "last_error": "decoder died"},
        "new": {"state": "starting"},
    }
    assert camera_state_changes(before, now) == {
        "b": ("failed", "decoder died"),
        "new": ("starting", None),
        "gone": ("removed", None),
    }
    assert camera_state_changes({"x": ("removed", None)}, {}) == {}


def test_seen_keys_are_bounded() -> None:
    seen = SeenKeys(2)
    assert seen.add("a") and seen.add("b") and not seen.add("b")
    assert seen.add("c") and len(seen) == 2
    assert seen.add("a")  # the oldest was forgotten
    with pytest.raises(ValueError, match="capacity"):
        SeenKeys(0)


def test_ring_since_and_reset() -> None:
    ring = Ring(3)
    for n in range(5):
        ring.append("alert", "cam", {"n": n})
    assert ring.last_id == 5
    since = ring.since(3)
    assert [e.id for e in since.entries] == [4, 5] and not since.reset
    assert ring.since(2).reset is False and [e.id for e in ring.since(2).entries] == [3, 4, 5]
    assert ring.since(1).reset  # 2 was dropped
    assert ring.since(6).reset  # not a cursor it gave
    assert ring.since(5).entries == []


def test_memory_bus_publishes_once_per_key_and_resumes() -> None:
    async def scenario() -> None:
        bus = MemoryBus(capacity=2)
        start = await bus.head()
        assert await bus.publish("alert", "cam", {"n": 1}, "k1")
        assert await bus.publish("alert", "cam", {"n": 1}, "k1") is None  # same change
        batch = await bus.read(start, 0.01)
        assert [m.data["n"] for m in batch.messages] == [1] and not batch.reset
        # A reader waiting for the next message wakes when it is published.
        waiting = asyncio.ensure_future(bus.read(batch.cursor, 5.0))
        await asyncio.sleep(0.01)
        await bus.publish("camera", "cam", {"n": 2}, "k2")
        woke = await asyncio.wait_for(waiting, 1.0)
        assert [m.kind for m in woke.messages] == ["camera"]
        empty = await bus.read(woke.cursor, 0.01)
        assert empty.messages == [] and empty.cursor == woke.cursor and not empty.reset
        await bus.publish("alert", "cam", {"n": 3}, "k3")
        stale = await bus.read(start, 0.01)  # 1 fell out of the ring
        assert stale.reset and stale.cursor == await bus.head()
        assert (await bus.read("other-1", 0.01)).reset
        assert (await bus.read("garbage", 0.01)).reset

    asyncio.run(scenario())
