"""Ask: answer a question about what happened, in words, with citations.

A langchain chain: three tools — ``search_history`` (semantic search over the events and
incidents, with the caller's camera scope inside the vector filter), ``count_events``
(structured counts computed by SQL) and ``search_documents`` (the knowledge base) — feed
numbered sources into a prompt, and the LLM writes the answer from them. Which tools run is
decided by code from the question (a counting question is read by rules), not by the model: the
embedded model is 0.5B parameters, too small to be trusted with tool calls or numbers. For the
same reason code decides the rest of what matters:

- *Nothing relevant*: no count asked and no source above the score thresholds → the answer says
  so, and the LLM is not called.
- *Counts* come from the database; the answer must state the count, else the facts stand.
- *Faithfulness*: an LLM answer stating a number, time or object the sources do not hold is
  replaced by the retrieval-only answer (as the alert agent does with its summaries).
- *LLM down* (breakers open, budget spent, every backend failed) → the retrieval-only answer,
  marked ``mode="retrieval_only"`` with the reason.

No Ray here: the LLM is anything with :class:`ChatLLM`'s ``stream_text`` (the alert agent's backends
and breakers in production, a scripted fake in unit tests).
"""

from __future__ import annotations

import logging
import re
from collections.abc import AsyncIterator, Awaitable, Callable, Collection, Mapping
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from typing import Any, Literal, Protocol

import numpy as np
from langchain_core.prompts import ChatPromptTemplate
from langchain_core.tools import StructuredTool
from numpy.typing import NDArray

from sentinel.domain.faithfulness import unsupported_claims
from sentinel.search.counts import CountQuery, CountResult, local_time, parse_count_question
from sentinel.search.index import SearchFilter, SearchHit
from sentinel.search.kb import KbHit
from sentinel.search.service import MAX_QUERY_BYTES

logger = logging.getLogger(__name__)

__all__ = [
    "MAX_QUESTION_BYTES",
    "NOTHING_FOUND",
    "AskResult",
    "AskSettings",
    "AskTools",
    "Asker",
    "ChatLLM",
    "Citation",
    "answer_with_facts",
    "check_question",
    "cited_numbers",
]

MAX_QUESTION_BYTES = MAX_QUERY_BYTES
NOTHING_FOUND = (
    "I found nothing relevant to this question in the events, incidents and site documents "
    "you can see."
)
Mode = Literal["llm", "retrieval_only", "nothing_found"]

SYSTEM = (
    "You answer questions about a video surveillance site. Use only the numbered sources and "
    "facts given; cite the sources you use as [1], [2]. State counts exactly as given. If the "
    "sources do not answer the question, say so. Answer in at most four sentences."
)
PROMPT = ChatPromptTemplate.from_messages(
    [("system", SYSTEM), ("human", "{facts}Sources:\n{sources}\n\nQuestion: {question}")]
)


class ChatLLM(Protocol):
    """The LLM behind ask: streams the answer's text for chat ``messages`` (OpenAI-style
    ``{"role", "content"}`` dicts). ``key`` routes the request (same key, same backend). Any
    exception before the first chunk means no answer (breakers open, budget spent, every
    backend failed): the asker falls back to retrieval."""

    def stream_text(self, messages: list[dict[str, str]], key: str) -> AsyncIterator[str]: ...


@dataclass(frozen=True, slots=True)
class AskSettings:
    """Thresholds and sizes of retrieval.

    Attributes:
        k: Events and incidents retrieved per question.
        kb_k: Knowledge-base sections retrieved per question.
        min_score: The cosine similarity an event or incident must reach to be relevant.
        min_kb_score: The same for a knowledge-base section.
    """

    k: int = 5
    kb_k: int = 3
    min_score: float = 0.35
    min_kb_score: float = 0.35


@dataclass
class AskTools:
    """What the tools read, as async callables (the API gives Ray- or thread-backed ones).

    Attributes:
        embed: Texts to unit vectors.
        search: The vector index's query (vector, filter, k).
        count: Runs a count by SQL within a camera scope (None: every camera).
        kb_search: The knowledge base's query (vector, k); None: no knowledge base.
        cameras: The cameras the caller may see, id to name (for counting questions).
    """

    embed: Callable[[list[str]], Awaitable[NDArray[np.float32]]]
    search: Callable[[NDArray[np.float32], SearchFilter, int], Awaitable[list[SearchHit]]]
    count: Callable[[CountQuery, Collection[str] | None], Awaitable[CountResult]]
    kb_search: Callable[[NDArray[np.float32], int], Awaitable[list[KbHit]]] | None = None
    cameras: Mapping[str, str | None] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class Citation:
    """One source of an answer, numbered as the answer cites it ("[2]")."""

    n: int
    kind: Literal["event", "incident", "document"]
    id: str  # the event's or incident's id, or the section's chunk id
    text: str
    score: float | None = None  # similarity; None for counted items
    camera_id: str | None = None
    label: str | None = None
    started_at: datetime | None = None
    document: str | None = None
    version: int | None = None
    section: str | None = None

    def line(self, timezone: str = "UTC") -> str:
        """The source as the prompt (and the retrieval-only answer) shows it, its time in the
        site's zone."""
        if self.kind == "document":
            return f"[{self.n}] document {self.document!r} v{self.version}, section " + (
                f"{self.section!r}: {self.text}"
            )
        at = local_time(self.started_at, timezone) if self.started_at else "?"
        return f"[{self.n}] {self.kind} {self.id} at {at} on camera {self.camera_id}: {self.text}"


@dataclass
class AskResult:
    """An answer: its text, how it was made, its sources and the count when one was asked."""

    question: str
    answer: str
    mode: Mode
    citations: list[Citation]
    count: dict[str, Any] | None = None
    llm_error: str | None = None

    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out["citations"] = [_citation_dict(c) for c in self.citations]
        return out


def _citation_dict(c: Citation) -> dict[str, Any]:
    d = asdict(c)
    d["started_at"] = c.started_at.isoformat() if c.started_at else None
    return {k: v for k, v in d.items() if v is not None}


def check_question(question: str) -> str:
    """The question, stripped.

    Raises:
        ValueError: For an empty question or one of ``MAX_QUESTION_BYTES`` bytes or more.
    """
    if not isinstance(question, str) or not question.strip():
        raise ValueError("the question is empty")
    if len(question.encode()) >= MAX_QUESTION_BYTES:
        raise ValueError(f"the question must be under {MAX_QUESTION_BYTES} bytes")
    return question.strip()


def cited_numbers(answer: str, citations: Collection[Citation]) -> list[int]:
    """The source numbers ``answer`` cites ("[2]", "[1, 3]") that exist, in order."""
    known = {c.n for c in citations}
    found: list[int] = []
    for group in re.findall(r"\[(\d+(?:\s*,\s*\d+)*)\]", answer):
        for n in (int(x) for x in group.split(",")):
            if n in known and n not in found:
                found.append(n)
    return found


def answer_with_facts(
    count: CountResult | None, citations: list[Citation], timezone: str = "UTC"
) -> str:
    """The retrieval-only answer: the count sentence, then the sources as found."""
    parts: list[str] = []
    if count is not None:
        parts.append(count.sentence())
    if citations:
        parts.append("Sources found:" if count is None else "Newest of them:")
        parts.extend(c.line(timezone) for c in citations)
    return "\n".join(parts) if parts else NOTHING_FOUND


def _count_dict(count: CountResult) -> dict[str, Any]:
    q = count.query
    return {
        "total": count.total,
        "kind": q.kind,
        "labels": list(q.labels),
        "camera_ids": list(q.camera_ids),
        "cameras_counted": list(count.cameras_counted)
        if count.cameras_counted is not None
        else None,
        "since": q.since.isoformat() if q.since else None,
        "until": q.until.isoformat() if q.until else None,
        "by_camera": count.by_camera,
        "first_at": count.first_at.isoformat() if count.first_at else None,
        "last_at": count.last_at.isoformat() if count.last_at else None,
        "sentence": count.sentence(),
    }


def _states_count(answer: str, total: int) -> bool:
    return re.search(rf"(?<![\d.]){total}(?![\d.])", answer) is not None


class Asker:
    """Answers questions with the tools and an LLM (None: retrieval-only answers).

    Args:
        tools: What the tools read.
        llm: The LLM; None when no backend is configured.
        settings: Retrieval sizes and thresholds.
        clock: The current time (counting windows end now).
        timezone: The site's IANA zone: "today" is its calendar day; times are read in it.
    """

    def __init__(
        self,
        tools: AskTools,
        llm: ChatLLM | None,
        settings: AskSettings | None = None,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
        timezone: str = "UTC",
    ) -> None:
        self.tools = tools
        self.llm = llm
        self.settings = settings or AskSettings()
        self.clock = clock
        self.timezone = timezone

    def langchain_tools(self, scope: frozenset[str] | None) -> dict[str, StructuredTool]:
        """The chain's tools, bound to the caller's camera scope (each returns sources)."""
        tools = self.tools
        settings = self.settings

        async def search_history(query: str) -> list[SearchHit]:
            """Events and incidents closest to the query, within the caller's cameras."""
            flt = SearchFilter(cameras=scope)
            if flt.matches_nothing():
                return []
            vector = (await tools.embed([query]))[0]
            hits = await tools.search(vector, flt, settings.k)
            return [h for h in hits if h.score >= settings.min_score]

        async def count_events(question: str) -> CountResult | None:
            """How many events or incidents (label, camera, time window), counted by SQL."""
            visible = {c: n for c, n in tools.cameras.items() if scope is None or c in scope}
            query = parse_count_question(question, visible, self.clock(), self.timezone)
            return None if query is None else await tools.count(query, scope)

        async def search_documents(query: str) -> list[KbHit]:
            """Sections of the site's documents closest to the query."""
            if tools.kb_search is None:
                return []
            vector = (await tools.embed([query]))[0]
            hits = await tools.kb_search(vector, settings.kb_k)
            return [h for h in hits if h.score >= settings.min_kb_score]

        return {
            f.__name__: StructuredTool.from_function(coroutine=f, name=f.__name__)
            for f in (search_history, count_events, search_documents)
        }

    async def retrieve(
        self, question: str, scope: frozenset[str] | None
    ) -> tuple[CountResult | None, list[Citation]]:
        """Run the tools for ``question``: the count (when one is asked) and the sources."""
        tools = self.langchain_tools(scope)
        count: CountResult | None = await tools["count_events"].ainvoke({"question": question})
        citations: list[Citation] = []
        if count is not None:
            for item_id, camera_id, at in count.samples:
                citations.append(
                    Citation(
                        len(citations) + 1,
                        count.query.kind,
                        item_id,
                        f"{count.query.kind} counted",
                        camera_id=camera_id,
                        started_at=at,
                    )
                )
        else:
            hits: list[SearchHit] = await tools["search_history"].ainvoke({"query": question})
            for h in hits:
                meta = h.metadata
                citations.append(
                    Citation(
                        len(citations) + 1,
                        "incident" if meta.get("kind") == "incident" else "event",
                        h.id,
                        h.text,
                        score=round(h.score, 4),
                        camera_id=str(meta.get("camera_id", "")),
                        label=str(meta.get("label", "")),
                        started_at=datetime.fromtimestamp(int(meta.get("start", 0)), UTC),
                    )
                )
        sections: list[KbHit] = await tools["search_documents"].ainvoke({"query": question})
        for s in sections:
            citations.append(
                Citation(
                    len(citations) + 1,
                    "document",
                    s.chunk_id,
                    s.text,
                    score=round(s.score, 4),
                    document=s.document,
                    version=s.version,
                    section=s.section,
                )
            )
        return count, citations

    def messages(
        self, question: str, count: CountResult | None, citations: list[Citation]
    ) -> list[dict[str, str]]:
        """The prompt for the LLM (OpenAI-style messages)."""
        facts = f"Facts (from the database):\n{count.sentence()}\n\n" if count else ""
        sources = "\n".join(c.line(self.timezone) for c in citations) or "(none)"
        role = {"system": "system", "human": "user", "ai": "assistant"}
        return [
            {"role": role[m.type], "content": str(m.content)}
            for m in PROMPT.format_messages(facts=facts, sources=sources, question=question)
        ]

    async def run(
        self, question: str, scope: frozenset[str] | None
    ) -> AsyncIterator[tuple[str, dict[str, Any]]]:
        """The answer as a stream of ``(event, data)``: ``sources`` (citations and count)
        first, then ``delta`` pieces of the LLM's text as it writes, then ``done`` with the
        final :class:`AskResult` (authoritative: it may replace what the deltas said).

        Raises:
            ValueError: For an empty or oversized question.
        """
        question = check_question(question)
        count, citations = await self.retrieve(question, scope)
        yield (
            "sources",
            {
                "citations": [_citation_dict(c) for c in citations],
                "count": _count_dict(count) if count else None,
            },
        )
        result = AskResult(
            question,
            "",
            "retrieval_only",
            citations,
            count=_count_dict(count) if count else None,
        )
        if count is None and not citations:
            result.answer, result.mode = NOTHING_FOUND, "nothing_found"
            yield "done", result.to_dict()
            return
        if self.llm is None:
            result.answer = answer_with_facts(count, citations, self.timezone)
            result.llm_error = "no LLM backend is configured"
            yield "done", result.to_dict()
            return
        messages = self.messages(question, count, citations)
        pieces: list[str] = []
        try:
            async for piece in self.llm.stream_text(messages, question):
                if piece:
                    pieces.append(piece)
                    yield "delta", {"text": piece}
        except Exception as exc:  # any backend failure: the sources still answer
            logger.warning("ask: the LLM failed: %s", exc)
            result.answer = answer_with_facts(count, citations, self.timezone)
            result.llm_error = f"{type(exc).__name__}: {exc}"[:300]
            yield "done", result.to_dict()
            return
        answer = "".join(pieces).strip()
        context = "\n".join(m["content"] for m in messages)
        problem = ""
        if not answer:
            problem = "the LLM answered nothing"
        elif count is not None and not _states_count(answer, count.total):
            problem = f"the LLM's answer does not state the count {count.total}"
        elif unsupported := unsupported_claims(answer, context):
            problem = "the LLM's answer states what the sources do not hold: " + ", ".join(
                str(u) for u in unsupported[:5]
            )
        if problem:
            result.answer = answer_with_facts(count, citations, self.timezone)
            result.llm_error = problem
        else:
            result.answer, result.mode = answer, "llm"
        yield "done", result.to_dict()

    async def ask(self, question: str, scope: frozenset[str] | None) -> AskResult:
        """The whole answer at once (see :meth:`run`)."""
        done: dict[str, Any] | None = None
        async for event, data in self.run(question, scope):
            if event == "done":
                done = data
        if done is None:  # pragma: no cover - run always ends with done
            raise RuntimeError("the answer ended without its result")
        return AskResult(
            question=done["question"],
            answer=done["answer"],
            mode=done["mode"],
            citations=[_citation(c) for c in done["citations"]],
            count=done["count"],
            llm_error=done["llm_error"],
        )


def _citation(d: Mapping[str, Any]) -> Citation:
    data = dict(d)
    if data.get("started_at"):
        data["started_at"] = datetime.fromisoformat(data["started_at"])
    return Citation(**data)
