"""Reading the live socket in tests: the next message, failing (not hanging) after a while."""

from __future__ import annotations

import json
from typing import Any

import anyio
import pytest
from starlette.testclient import WebSocketTestSession
from starlette.websockets import WebSocketDisconnect


def live_recv(ws: WebSocketTestSession, timeout_s: float = 10.0) -> dict[str, Any]:
    """The next JSON message of ``ws``; WebSocketDisconnect (with its code) when it closed."""

    async def receive() -> Any:
        with anyio.fail_after(timeout_s):
            return await ws._send_rx.receive()  # TestClient's stream of server frames

    try:
        message = ws.portal.call(receive)
    except TimeoutError:
        pytest.fail(f"no live message within {timeout_s} s")
    if message["type"] == "websocket.close":
        raise WebSocketDisconnect(message.get("code", 1000), message.get("reason"))
    return dict(json.loads(message["text"]))
