"""The LLM deployment on the session's Ray cluster, through the ingress's LlmHandleControl:
plain and streamed (``handle.options(stream=True)``) completions and the model list."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from sentinel.serve.ingress import LlmHandleControl
from sentinel.serve.llm import build_llm
from tests.integration.conftest import Stack

APP = "llm-stream-test"
REQUEST: dict[str, Any] = {
    "model": "qwen2.5-0.5b-instruct",
    "messages": [{"role": "user", "content": "Count from one to twenty in words."}],
    "max_tokens": 12,
    "temperature": 0,
    "seed": 7,
}


@pytest.fixture(scope="module")
def control(sentinel_stack: Stack, qwen_gguf: Path) -> Iterator[LlmHandleControl]:
    from ray import serve

    handle = serve.run(
        build_llm(qwen_gguf, threads=1, num_cpus=0, ctx_size=1024), name=APP, route_prefix=None
    )
    try:
        yield LlmHandleControl(handle)
    finally:
        serve.delete(APP)


async def _plain_and_streamed(control: LlmHandleControl) -> tuple[Any, list[Any], Any]:
    plain = await control.chat(dict(REQUEST))
    streamed = [c async for c in control.chat_stream({**REQUEST, "stream": True})]
    return plain, streamed, await control.models()


def test_streams_through_the_handle_like_the_plain_completion(
    control: LlmHandleControl,
) -> None:
    plain, chunks, models = asyncio.run(_plain_and_streamed(control))
    assert [m["id"] for m in models] == ["qwen2.5-0.5b-instruct"]
    assert chunks[0]["choices"][0]["delta"]["role"] == "assistant"
    content = [c["choices"][0]["delta"].get("content") for c in chunks if c["choices"]]
    pieces = [p for p in content if p]
    assert len(pieces) > 1  # one chunk per token, not the whole answer at once
    assert "".join(pieces) == plain["choices"][0]["message"]["content"]
    assert chunks[-1]["choices"][0]["finish_reason"] == plain["choices"][0]["finish_reason"]
    assert all(c["object"] == "chat.completion.chunk" for c in chunks)


def test_bad_streamed_request_raises_value_error(control: LlmHandleControl) -> None:
    async def first() -> Any:
        return await anext(control.chat_stream({**REQUEST, "stream": True, "max_tokens": 0}))

    with pytest.raises(ValueError, match="max_tokens"):
        asyncio.run(first())


async def _abandon_then_ask(control: LlmHandleControl) -> tuple[dict[str, Any], dict[str, Any]]:
    story = "Write a long story about a lighthouse keeper, chapter by chapter."
    long = {**REQUEST, "max_tokens": 1024, "messages": [{"role": "user", "content": story}]}
    call = asyncio.create_task(control.chat(long))
    deadline = time.monotonic() + 120.0
    while (await control.info())["generating"] == 0:  # the replica has started on it
        assert time.monotonic() < deadline, "the long completion never started"
        await asyncio.sleep(0.05)
    call.cancel()  # what a caller's timeout does
    with pytest.raises(asyncio.CancelledError):
        await call
    answer = await control.chat(dict(REQUEST))
    return answer, await control.info()


def test_an_abandoned_completion_stops_and_the_next_one_is_answered(
    control: LlmHandleControl,
) -> None:
    # Cancelling a call cancels it in the replica: generation of the long answer stops (counted
    # as cancelled) instead of holding the model while the next request waits behind it.
    before = asyncio.run(control.info())
    answer, after = asyncio.run(_abandon_then_ask(control))
    assert answer["choices"][0]["message"]["content"]
    assert after["cancelled"] == before["cancelled"] + 1
    assert after["completed"] == before["completed"] + 1
    assert after["generating"] == 0
