"""The embedded LLM for API tests: an in-process LlmControl over the real runner, and the API
served by a real uvicorn on 127.0.0.1 in a thread."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncGenerator
from typing import Any

from sentinel.models.llm_runner import ChatStream, LlamaRunner, iterate_async
from tests.utils.http_server import serve_app

__all__ = ["RunnerLlm", "serve_app"]


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
