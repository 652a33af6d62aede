"""The LLM deployment: the embedded GGUF chat model on Ray Serve, called through its handle.

Generation is blocking C++ work; it runs on the stream's worker thread so the replica's event
loop keeps answering ``ready``/``info`` and queueing requests while a completion is produced.
Plain completions are generated through the same stream, so cancelling any call (a caller's
timeout) frees the model after the current token.
Streamed completions are generator calls: callers use ``handle.options(stream=True)``.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncGenerator
from pathlib import Path
from typing import Any

from ray import serve
from ray.serve import Application

from sentinel.models.llm_runner import LlamaRunner, completion_from_chunks, iterate_async

DEFAULT_MODEL_ALIAS = "qwen2.5-0.5b-instruct"


@serve.deployment(name="LLM", max_ongoing_requests=16)
class LLM:
    """Serves OpenAI-style chat completions from a GGUF model loaded in the replica.

    Args:
        model_path: The GGUF file (with its ``.sha256`` beside it), as a string.
        threads: llama.cpp CPU threads.
        ctx_size: Context window in tokens.
        model_alias: The ``model`` name reported in responses.
    """

    def __init__(
        self,
        model_path: str,
        threads: int = 2,
        ctx_size: int = 2048,
        model_alias: str = DEFAULT_MODEL_ALIAS,
    ) -> None:
        self.runner = LlamaRunner(
            Path(model_path), threads=threads, ctx_size=ctx_size, model_alias=model_alias
        )
        self.completed = 0
        self.cancelled = 0
        self.generating = 0

    async def chat(self, request: dict[str, Any]) -> dict[str, Any]:
        """One chat completion (see ``LlamaRunner.chat``), generated off the event loop.

        It is generated through the token stream, so a caller that gives up (its call is
        cancelled, e.g. on a timeout) stops generation after the current token instead of
        leaving the model busy with an answer nobody reads while the next requests queue.

        Args:
            request: An OpenAI chat-completions request body (``stream`` false or absent).

        Returns:
            An OpenAI ``chat.completion`` object including ``usage``.

        Raises:
            ValueError: The request is invalid or exceeds the context window.
            RuntimeError: llama.cpp failed.
        """
        if not isinstance(request, dict):
            raise ValueError("the request must be a JSON object")
        if request.get("stream"):
            raise ValueError("chat() answers stream=false requests; use chat_stream()")
        streamed = {**request, "stream": True, "stream_options": {"include_usage": True}}
        stream = self.runner.chat_stream(streamed)
        self.generating += 1
        try:
            chunks = [chunk async for chunk in iterate_async(stream)]
        except asyncio.CancelledError:
            self.cancelled += 1
            raise
        finally:
            self.generating -= 1
        self.completed += 1
        return completion_from_chunks(chunks)

    async def chat_stream(self, request: dict[str, Any]) -> AsyncGenerator[dict[str, Any], None]:
        """One streamed chat completion: its ``chat.completion.chunk`` objects, token by token.

        Call it through ``handle.options(stream=True).chat_stream.remote(request)``. Cancelling
        the call (a client that went away) stops generation after the current token.

        Args:
            request: An OpenAI chat-completions request body with ``stream: true``.

        Yields:
            The chunks (see ``LlamaRunner.chat_stream``).

        Raises:
            ValueError: The request is invalid or exceeds the context window (before any
                chunk).
            RuntimeError: llama.cpp failed.
        """
        async for chunk in iterate_async(self.runner.chat_stream(request)):
            yield chunk

    def models(self) -> list[dict[str, Any]]:
        """The served model(s) as OpenAI ``model`` objects."""
        return [self.runner.model_card()]

    def ready(self) -> bool:
        """True once the model is loaded (the constructor raises otherwise)."""
        return True

    def info(self) -> dict[str, Any]:
        """What this replica serves: model alias, file, sha256 and runtime settings."""
        return {
            "model": self.runner.model_alias,
            "path": str(self.runner.model_path),
            "sha256": self.runner.sha256,
            "threads": self.runner.threads,
            "ctx_size": self.runner.ctx_size,
            "load_s": round(self.runner.load_s, 3),
            "completed": self.completed,
            "cancelled": self.cancelled,
            "generating": self.generating,
        }


def build_llm(
    model_path: Path,
    threads: int,
    num_cpus: float,
    *,
    ctx_size: int = 2048,
    model_alias: str = DEFAULT_MODEL_ALIAS,
) -> Application:
    """The bound LLM deployment, one replica reserving ``num_cpus`` Ray CPUs.

    Args:
        model_path: The verified GGUF file.
        threads: llama.cpp CPU threads in the replica.
        num_cpus: Ray CPUs reserved for the replica.
        ctx_size: Context window in tokens.
        model_alias: The ``model`` name reported in responses.

    Returns:
        The application to pass to ``serve.run`` or to bind into another deployment.
    """
    app: Application = LLM.options(  # type: ignore[attr-defined]
        ray_actor_options={"num_cpus": num_cpus}
    ).bind(str(model_path), threads, ctx_size, model_alias)
    return app
