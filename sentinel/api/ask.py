"""Ask: ``POST /api/v1/ask`` answers a question in words with citations.

The logic is :class:`sentinel.search.ask.Asker` (Ray-free); this module gives it tools bound to
the services — the query embedder, the vector index with the caller's camera scope in its
filter, SQL counts within the same scope, the knowledge base — and the LLM (the alert agent's
backends, breakers and token budget). With ``?stream=true`` or ``Accept: text/event-stream``
the answer comes as server-sent events: ``sources``, then ``delta`` pieces, then ``done``.
"""

from __future__ import annotations

import json
import logging
from collections.abc import AsyncIterator, Collection
from typing import Annotated, Any, Literal

import numpy as np
from fastapi import APIRouter, HTTPException, Query, Request, Security
from fastapi.exceptions import RequestValidationError
from fastapi.responses import StreamingResponse
from numpy.typing import NDArray
from pydantic import BaseModel, Field
from starlette.concurrency import run_in_threadpool

from sentinel.api.deps import SearchServices, Services, ServicesDep
from sentinel.api.search import _embed, _query, _scope
from sentinel.api.security import authorize
from sentinel.gateway.roles import EVENTS_READ, Principal
from sentinel.search.ask import MAX_QUESTION_BYTES, Asker, AskTools, check_question
from sentinel.search.counts import CountQuery, CountResult, count_items
from sentinel.search.index import IndexUnavailableError, SearchFilter, SearchHit
from sentinel.search.kb import KbHit

logger = logging.getLogger(__name__)

router = APIRouter(tags=["ask"])


class AskRequest(BaseModel):
    question: str = Field(
        description=f"The question, in words (1 to {MAX_QUESTION_BYTES - 1} bytes).",
        max_length=MAX_QUESTION_BYTES,
    )


class CitationPublic(BaseModel):
    n: int = Field(description="The number the answer cites it by ([n]).")
    kind: Literal["event", "incident", "document"]
    id: str = Field(description="The event's or incident's id, or the document section's id.")
    text: str
    score: float | None = Field(None, description="Similarity to the question (searched).")
    camera_id: str | None = None
    label: str | None = None
    started_at: str | None = None
    document: str | None = None
    version: int | None = None
    section: str | None = None


class AskAnswer(BaseModel):
    question: str
    answer: str
    mode: Literal["llm", "retrieval_only", "nothing_found"] = Field(
        description="llm: written by the LLM from the sources; retrieval_only: the sources "
        "and facts as found (no LLM, or its answer failed or was rejected: see llm_error); "
        "nothing_found: nothing relevant was retrieved."
    )
    citations: list[CitationPublic]
    count: dict[str, Any] | None = Field(
        None, description="The count computed by SQL, for counting questions."
    )
    llm_error: str | None = None


def _services(services: Services) -> SearchServices:
    found = services.search
    if found is None:
        raise HTTPException(404, "search is not enabled (settings: search.enabled)")
    return found


def _asker(services: Services, search: SearchServices, cameras: dict[str, str | None]) -> Asker:
    async def embed(texts: list[str]) -> NDArray[np.float32]:
        return await _embed(search, texts)

    async def query(vector: NDArray[np.float32], flt: SearchFilter, k: int) -> list[SearchHit]:
        return await _query(search, vector, flt, k)

    async def count(q: CountQuery, scope: Collection[str] | None) -> CountResult:
        return await run_in_threadpool(count_items, services.engine, q, scope)

    kb = search.kb

    async def kb_search(vector: NDArray[np.float32], k: int) -> list[KbHit]:
        assert kb is not None
        try:
            return await run_in_threadpool(kb.search, vector, k)
        except IndexUnavailableError as exc:
            raise HTTPException(503, str(exc)) from exc

    tools = AskTools(
        embed=embed,
        search=query,
        count=count,
        kb_search=kb_search if kb is not None else None,
        cameras=cameras,
    )
    return Asker(tools, search.llm, search.ask, timezone=search.service.timezone)


def _wants_stream(request: Request, stream: bool | None) -> bool:
    if stream is not None:
        return stream
    return "text/event-stream" in request.headers.get("accept", "")


def _sse(event: str, data: dict[str, Any]) -> bytes:
    return f"event: {event}\ndata: {json.dumps(data, separators=(',', ':'))}\n\n".encode()


async def _events(
    asker: Asker, question: str, scope: frozenset[str] | None
) -> AsyncIterator[bytes]:
    try:
        async for event, data in asker.run(question, scope):
            yield _sse(event, data)
    except Exception as exc:  # the status line is sent: the failure is an event
        logger.exception("ask: the stream failed")
        yield _sse("error", {"detail": f"{type(exc).__name__}: {exc}"[:300]})


@router.post(
    "/ask",
    response_model=AskAnswer,
    summary="Ask a question about what happened (stream=true: server-sent events)",
    responses={200: {"content": {"text/event-stream": {}}}},
)
async def ask(
    body: AskRequest,
    request: Request,
    services: ServicesDep,
    principal: Annotated[Principal, Security(authorize, scopes=[EVENTS_READ])],
    stream: Annotated[
        bool | None,
        Query(description="Server-sent events (default: when Accept is text/event-stream)."),
    ] = None,
) -> AskAnswer | StreamingResponse:
    """Answers from the events and incidents of the cameras the caller may see, counts over
    them computed by the database, and the site's documents, with numbered citations. When
    nothing relevant is found it says so; when the LLM is down or its answer is not supported
    by the sources, the sources answer (``mode: retrieval_only``)."""
    try:
        question = check_question(body.question)
    except ValueError as exc:
        raise RequestValidationError(
            [{"loc": ("body", "question"), "msg": str(exc), "type": "value_error"}]
        ) from exc
    asker, scope = await _asker_for(services, principal)
    if _wants_stream(request, stream):
        return StreamingResponse(
            _events(asker, question, scope),
            media_type="text/event-stream",
            headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
        )
    result = await asker.ask(question, scope)
    return AskAnswer.model_validate(result.to_dict())


async def _asker_for(
    services: Services, principal: Principal
) -> tuple[Asker, frozenset[str] | None]:
    """The asker with tools bound to the caller's camera scope, and that scope."""
    search = _services(services)
    scope = await _scope(principal, services)
    rows = await run_in_threadpool(services.cameras.list)
    cameras = {
        cid: (str(cfg["name"]) if cfg.get("name") else None)
        for cid, cfg in rows
        if scope is None or cid in scope
    }
    return _asker(services, search, cameras), scope


async def answer_question(services: Services, question: str, principal: Principal) -> AskAnswer:
    """``POST /ask``'s answer for another route (the spoken question): ``question`` cut to the
    longest the ask service takes; a question with no words left is a ValueError."""
    cut = question.encode()[: MAX_QUESTION_BYTES - 1].decode(errors="ignore")
    asker, scope = await _asker_for(services, principal)
    result = await asker.ask(check_question(cut), scope)
    return AskAnswer.model_validate(result.to_dict())
