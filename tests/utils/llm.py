"""The embedded LLM for API tests: an in-process LlmControl over the real runner, and the API
served by a real uvicorn on 127.0.0.1 in a thread."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import AsyncGenerator, Iterator
from contextlib import contextmanager
from typing import Any

import httpx
import uvicorn
from fastapi import FastAPI

from sentinel.models.llm_runner import ChatStream, LlamaRunner, iterate_async
from tests.utils.media import free_port


class RunnerLlm:
    """What the LLM deployment does, without Ray: the API's LlmControl over a LlamaRunner."""

    def __init__(self, runner: LlamaRunner) -> None:
        self.runner = runner
        self.streams: list[ChatStream] = []  # every stream started, for tests to inspect

    async def chat(self, request: dict[str, Any]) -> dict[str, Any]:
        return await asyncio.to_thread(self.runner.chat, request)

    async def chat_stream(self, request: dict[str, Any]) -> AsyncGenerator[dict[str, Any], None]:
        stream = self.runner.chat_stream(request)
        self.streams.append(stream)
        async for chunk in iterate_async(stream):
            yield chunk

    async def models(self) -> list[dict[str, Any]]:
        return [self.runner.model_card()]


@contextmanager
def serve_app(app: FastAPI) -> Iterator[str]:
    """Serve ``app`` with uvicorn on 127.0.0.1 at a free port; yields its base URL."""
    port = free_port()
    server = uvicorn.Server(
        uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", lifespan="on")
    )
    thread = threading.Thread(target=server.run, name="uvicorn-test", daemon=True)
    thread.start()
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30.0
        while not server.started:  # polls the condition; uvicorn sets it once it listens
            if not thread.is_alive():
                raise RuntimeError("uvicorn exited before it started")
            if time.monotonic() > deadline:
                raise RuntimeError("uvicorn did not start within 30 s")
            time.sleep(0.05)
        httpx.get(f"{url}/health", timeout=5.0).raise_for_status()
        yield url
    finally:
        server.should_exit = True
        thread.join(timeout=10)
