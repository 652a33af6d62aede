"""The OpenAI-compatible LLM routes: chat completions (plain and streamed) and the model list.

They follow the OpenAI API so its clients (the official SDKs, LangChain, Open WebUI) work
unchanged: a streamed completion is a ``text/event-stream`` of ``chat.completion.chunk``
objects ending with ``data: [DONE]``, and the model list has the ``{"object": "list", "data":
[...]}`` shape. Every route needs the ``llm:use`` scope.
"""

from __future__ import annotations

import json
import logging
from collections.abc import AsyncGenerator, AsyncIterator
from typing import Annotated, Any, Literal

from fastapi import APIRouter, HTTPException, Security
from fastapi.responses import StreamingResponse
from pydantic import BaseModel

from sentinel.api.deps import LlmControl, Services, ServicesDep
from sentinel.api.security import authorize
from sentinel.gateway.roles import LLM_USE, Principal

logger = logging.getLogger(__name__)

router = APIRouter(prefix="/v1", tags=["llm"])

LlmUser = Annotated[Principal, Security(authorize, scopes=[LLM_USE])]


class ModelCard(BaseModel):
    """One served model, as OpenAI's ``model`` object."""

    id: str
    object: Literal["model"] = "model"
    created: int
    owned_by: str


class ModelList(BaseModel):
    object: Literal["list"] = "list"
    data: list[ModelCard]


def _llm(services: Services) -> LlmControl:
    if services.agent.llm is None:
        raise HTTPException(404, "this deployment runs no embedded LLM")
    return services.agent.llm


def _event(data: dict[str, Any] | str) -> bytes:
    text = data if isinstance(data, str) else json.dumps(data, separators=(",", ":"))
    return f"data: {text}\n\n".encode()


async def _server_sent_events(
    first: dict[str, Any], chunks: AsyncGenerator[dict[str, Any], None]
) -> AsyncIterator[bytes]:
    """The chunks as SSE, then ``[DONE]``; a failure after the first chunk (the status line is
    sent by then) becomes an OpenAI error event, which the SDKs raise as an APIError."""
    try:
        yield _event(first)
        async for chunk in chunks:
            yield _event(chunk)
    except (ValueError, RuntimeError) as exc:
        logger.warning("LLM stream failed: %s", exc)
        yield _event({"error": {"message": str(exc), "type": "server_error", "code": 500}})
        return
    finally:
        await chunks.aclose()  # a client that left stops generation
    yield _event("[DONE]")


@router.post(
    "/chat/completions",
    response_model=None,
    summary="OpenAI-compatible chat with the embedded LLM (stream=true: server-sent events)",
)
async def chat_completions(
    body: dict[str, Any], services: ServicesDep, _: LlmUser
) -> dict[str, Any] | StreamingResponse:
    llm = _llm(services)
    if body.get("stream") is not True:  # stream false, absent or malformed: the runner decides
        try:
            return await llm.chat(body)
        except ValueError as exc:
            raise HTTPException(400, str(exc)) from exc
    chunks = llm.chat_stream(body)
    # The first chunk before the status line: a bad request is still a plain 400.
    try:
        first = await anext(chunks)
    except ValueError as exc:
        await chunks.aclose()
        raise HTTPException(400, str(exc)) from exc
    except StopAsyncIteration as exc:
        raise HTTPException(502, "the LLM ended the stream without a chunk") from exc
    return StreamingResponse(
        _server_sent_events(first, chunks),
        media_type="text/event-stream",
        headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
    )


@router.get("/models", response_model=ModelList, summary="The models the LLM serves")
async def list_models(services: ServicesDep, _: LlmUser) -> ModelList:
    cards = await _llm(services).models()
    return ModelList(data=[ModelCard.model_validate(card) for card in cards])


@router.get("/models/{model_id:path}", response_model=ModelCard, summary="One served model")
async def get_model(model_id: str, services: ServicesDep, _: LlmUser) -> ModelCard:
    for card in await _llm(services).models():
        if card.get("id") == model_id:
            return ModelCard.model_validate(card)
    raise HTTPException(404, f"no model {model_id!r} is served here")
