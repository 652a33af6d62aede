"""Ask without Ray, a database or a model: chunking, counting questions, citations, and the
answer's paths (nothing found, LLM, rejected LLM, LLM down) with a scripted fake LLM."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Collection
from datetime import UTC, datetime, timedelta
from typing import Any

import numpy as np
import pytest
from numpy.typing import NDArray

from sentinel.search.ask import (
    MAX_QUESTION_BYTES,
    NOTHING_FOUND,
    Asker,
    AskResult,
    AskTools,
    Citation,
    check_question,
    cited_numbers,
)
from sentinel.search.counts import CountQuery, CountResult, local_time, parse_count_question
from sentinel.search.index import SearchFilter, SearchHit
from sentinel.search.kb import (
    DocumentError,
    KbHit,
    chunk_markdown,
    chunk_text,
    media_type_of,
    parse_document,
    valid_name,
)

NOW = datetime(2026, 12, 7, 12, 0, tzinfo=UTC)
CAMERAS = {"demo": "Demo camera", "gate": "North gate", "dock": None}


# -- chunking ------------------------------------------------------------------------------


def test_markdown_sections_follow_the_heading_path() -> None:
    text = (
        "Site rules for all staff.\n\n# Night shift\nGuards patrol.\n\n## Gate checks\n"
        "Check the north gate every two hours.\n\n```\n# not a heading\n```\n"
        "# Visitors\nVisitors sign in.\n"
    )
    chunks = chunk_markdown(text)
    assert [c.section for c in chunks] == [
        "Introduction",
        "Night shift",
        "Night shift > Gate checks",
        "Visitors",
    ]
    assert "every two hours" in chunks[2].text
    assert "# not a heading" in chunks[2].text  # inside a code fence: text


def test_plain_text_underlined_and_numbered_headings() -> None:
    text = "Post orders\n===========\nIntro text.\n\n2.1 Visitors\nSign in at reception.\n"
    chunks = chunk_text(text)
    assert [c.section for c in chunks] == ["Post orders", "Post orders > 2.1 Visitors"]
    assert chunks[1].text == "Sign in at reception."


def test_long_sections_are_cut_into_parts_on_paragraphs() -> None:
    para = "word " * 150  # ~750 chars
    chunks = chunk_markdown(f"# Long\n{para}\n\n{para}\n\n{para}")
    assert len(chunks) >= 2
    assert all(c.section.startswith("Long (part ") for c in chunks)
    assert all(len(c.text) <= 1200 for c in chunks)


@pytest.mark.parametrize(
    ("data", "media_type", "reason"),
    [
        (b"", "text/plain", "empty"),
        (b"   \n\n  ", "text/markdown", "no text"),
        (b"\xff\xfe\x00bad", "text/plain", "NUL"),
        (b"caf\xe9", "text/plain", "UTF-8"),
        (b"not a pdf at all", "application/pdf", "%PDF-"),
        (b"%PDF-1.4\n garbage garbage", "application/pdf", "PDF"),
        (b"x" * ((1 << 20) + 1), "text/plain", "over"),
    ],
)
def test_documents_that_do_not_parse_are_rejected_with_the_reason(
    data: bytes, media_type: str, reason: str
) -> None:
    with pytest.raises(DocumentError, match=reason):
        parse_document(data, media_type)


def test_media_type_from_header_or_extension() -> None:
    assert media_type_of("a.md", None) == "text/markdown"
    assert media_type_of("a.txt", "application/octet-stream") == "text/plain"
    assert media_type_of("a", "text/markdown; charset=utf-8") == "text/markdown"
    with pytest.raises(DocumentError, match="unsupported"):
        media_type_of("a.docx", "application/vnd.ms-word")
    assert valid_name("post-orders v2.md") and not valid_name("../etc/passwd")
    assert not valid_name("") and not valid_name("x" * 201)


# -- counting questions --------------------------------------------------------------------


@pytest.mark.parametrize(
    ("question", "labels", "cameras", "seconds", "kind"),
    [
        (
            "How many people did the demo camera see in the last ten minutes?",
            ("person",),
            ("demo",),
            600,
            "event",
        ),
        ("how many cars at the north gate in the past 2 hours", ("car",), ("gate",), 7200, "event"),
        (
            "Number of vehicles on dock in the last hour",
            ("car", "truck", "bus", "motorcycle"),
            ("dock",),
            3600,
            "event",
        ),
        ("How many incidents were there?", (), (), None, "incident"),
        (
            "count the persons seen on gate and demo today",
            ("person",),
            ("demo", "gate"),
            43200,
            "event",
        ),
    ],
)
def test_counting_questions_are_read_by_rules(
    question: str,
    labels: tuple[str, ...],
    cameras: tuple[str, ...],
    seconds: int | None,
    kind: str,
) -> None:
    q = parse_count_question(question, CAMERAS, NOW)
    assert q is not None
    assert q.labels == labels and q.camera_ids == cameras and q.kind == kind
    if seconds is None:
        assert q.since is None and q.until is None
    else:
        assert q.until == NOW and q.since == NOW - timedelta(seconds=seconds)


def test_a_question_without_count_intent_is_not_a_count() -> None:
    assert parse_count_question("person in a red jacket near the gate", CAMERAS, NOW) is None
    with pytest.raises(ValueError, match="tz-aware"):
        parse_count_question("how many", CAMERAS, NOW.replace(tzinfo=None))


def test_count_sentence_states_the_database_count() -> None:
    q = CountQuery(
        "event", ("person",), ("demo",), NOW - timedelta(minutes=10), NOW, "in the last 10 minutes"
    )
    r = CountResult(q, 3, {"demo": 3}, NOW - timedelta(minutes=9), NOW - timedelta(minutes=1))
    assert r.sentence().startswith("3 people were seen on camera demo in the last 10 minutes")
    one = CountResult(q, 1, {"demo": 1}, NOW, NOW)
    assert one.sentence().startswith("1 person was seen")


# -- citations and questions ---------------------------------------------------------------


def test_cited_numbers_keep_order_and_drop_unknown() -> None:
    cites = [Citation(n, "event", f"e{n}", "t") for n in (1, 2, 3)]
    assert cited_numbers("A [2] then [1, 3] and [9] and [2].", cites) == [2, 1, 3]


@pytest.mark.parametrize("question", ["", "   ", "x" * MAX_QUESTION_BYTES, "é" * 2048])
def test_bad_questions_are_refused(question: str) -> None:
    with pytest.raises(ValueError):
        check_question(question)
    assert check_question("  what happened?  ") == "what happened?"


# -- the answer's paths --------------------------------------------------------------------


class ScriptedLLM:
    """Answers with scripted texts, in pieces; or fails; records what it was sent."""

    def __init__(self, *answers: str, fail: Exception | None = None) -> None:
        self.answers = list(answers)
        self.fail = fail
        self.sent: list[list[dict[str, str]]] = []

    async def stream_text(self, messages: list[dict[str, str]], key: str) -> AsyncIterator[str]:
        self.sent.append(messages)
        if self.fail is not None:
            raise self.fail
        for word in self.answers.pop(0).split(" "):
            yield word + " "


T1 = datetime(2026, 12, 7, 11, 55, tzinfo=UTC)


def _hit(item_id: str, camera: str, score: float) -> SearchHit:
    text = f"person, wearing red top, walking left, seen by camera {camera}, on Monday at 11:55."
    meta = {"kind": "event", "camera_id": camera, "label": "person", "start": int(T1.timestamp())}
    return SearchHit(item_id, score, text, meta)


def _tools(
    hits: list[SearchHit],
    kb: list[KbHit] | None = None,
    count: int | None = None,
    seen: dict[str, Any] | None = None,
) -> AskTools:
    seen = seen if seen is not None else {}

    async def embed(texts: list[str]) -> NDArray[np.float32]:
        return np.ones((len(texts), 4), np.float32)

    async def search(vector: NDArray[np.float32], flt: SearchFilter, k: int) -> list[SearchHit]:
        seen["filter"] = flt
        return [h for h in hits if flt.cameras is None or h.metadata["camera_id"] in flt.cameras]

    async def counter(q: CountQuery, scope: Collection[str] | None) -> CountResult:
        seen["count"] = (q, scope)
        total = count or 0
        samples = [(f"e{i}", "demo", T1) for i in range(total)]
        return CountResult(q, total, {"demo": total} if total else {}, T1, T1, samples)

    async def kb_search(vector: NDArray[np.float32], k: int) -> list[KbHit]:
        return kb or []

    return AskTools(embed, search, counter, kb_search, dict(CAMERAS))


def _ask(asker: Asker, question: str, scope: frozenset[str] | None = None) -> AskResult:
    return asyncio.run(asker.ask(question, scope))


def test_nothing_relevant_says_so_without_calling_the_llm() -> None:
    llm = ScriptedLLM("invented answer")
    result = _ask(Asker(_tools([_hit("e1", "gate", 0.12)]), llm), "what is the wifi password?")
    assert result.mode == "nothing_found" and result.answer == NOTHING_FOUND
    assert result.citations == [] and llm.sent == []


def test_llm_answer_with_citations_from_retrieval() -> None:
    llm = ScriptedLLM("A person in a red top walked left [1].")
    hits = [_hit("e1", "gate", 0.7), _hit("e2", "gate", 0.2)]
    kb = [KbHit("d:0", "post-orders.md", 2, "Gate checks", "Check the gate.", 0.6)]
    result = _ask(Asker(_tools(hits, kb), llm), "person in red near the gate")
    assert result.mode == "llm"
    assert result.answer == "A person in a red top walked left [1]."
    assert [(c.n, c.kind, c.id) for c in result.citations] == [
        (1, "event", "e1"),
        (2, "document", "d:0"),
    ]
    assert result.citations[1].section == "Gate checks" and result.citations[1].version == 2
    prompt = llm.sent[0][-1]["content"]
    assert "[1] event e1 at 2026-12-07 11:55:00 UTC on camera gate" in prompt
    assert "[2] document 'post-orders.md' v2, section 'Gate checks'" in prompt


def test_scope_reaches_the_vector_filter() -> None:
    seen: dict[str, Any] = {}
    hits = [_hit("g1", "gate", 0.9), _hit("d1", "dock", 0.8)]
    result = _ask(Asker(_tools(hits, seen=seen), None), "red top", frozenset({"dock"}))
    assert seen["filter"].cameras == frozenset({"dock"})
    assert [c.id for c in result.citations] == ["d1"]
    # An empty scope matches nothing: no query at all.
    empty = _ask(Asker(_tools(hits), None), "red top", frozenset())
    assert empty.mode == "nothing_found"


def test_unfaithful_llm_answer_is_replaced_by_the_sources() -> None:
    llm = ScriptedLLM("Five trucks drove in at 03:00 [1].")
    result = _ask(Asker(_tools([_hit("e1", "gate", 0.7)]), llm), "what happened at the gate")
    assert result.mode == "retrieval_only"
    assert result.llm_error is not None and "do not hold" in result.llm_error
    assert result.answer.startswith("Sources found:\n[1] event e1")


def test_count_comes_from_the_database_and_must_be_stated() -> None:
    seen: dict[str, Any] = {}
    question = "How many people did the demo camera see in the last ten minutes?"
    good = ScriptedLLM("The demo camera saw 3 people in the last 10 minutes [1] [2] [3].")
    asker = Asker(_tools([], count=3, seen=seen), good, clock=lambda: NOW)
    result = _ask(asker, question, frozenset({"demo", "gate"}))
    q, scope = seen["count"]
    assert q.camera_ids == ("demo",) and q.labels == ("person",)
    assert scope == frozenset({"demo", "gate"})
    assert result.mode == "llm" and result.count is not None and result.count["total"] == 3
    assert [c.id for c in result.citations] == ["e0", "e1", "e2"]
    assert "3 people were seen on camera demo" in good.sent[0][-1]["content"]
    # A model that states another number: the database's sentence stands.
    bad = ScriptedLLM("The camera saw 7 people.")
    wrong = _ask(Asker(_tools([], count=3), bad, clock=lambda: NOW), question)
    assert wrong.mode == "retrieval_only" and wrong.answer.startswith("3 people were seen")
    assert "count 3" in (wrong.llm_error or "")


def test_zero_is_an_answer_not_nothing_found() -> None:
    asker = Asker(_tools([], count=0), None, clock=lambda: NOW)
    result = _ask(asker, "how many cars on gate in the last 5 minutes")
    assert result.mode == "retrieval_only" and result.answer.startswith("0 cars were seen")


def test_llm_down_gives_the_retrieval_only_answer_marked() -> None:
    llm = ScriptedLLM(fail=RuntimeError("no backend available (breakers or budget)"))
    result = _ask(Asker(_tools([_hit("e1", "gate", 0.7)]), llm), "red top at the gate")
    assert result.mode == "retrieval_only"
    assert result.llm_error == "RuntimeError: no backend available (breakers or budget)"
    assert "[1] event e1" in result.answer


def test_stream_shape_sources_deltas_done() -> None:
    llm = ScriptedLLM("A person walked left [1].")
    asker = Asker(_tools([_hit("e1", "gate", 0.7)]), llm)

    async def collect() -> list[tuple[str, dict[str, Any]]]:
        return [e async for e in asker.run("person walking left", None)]

    events = asyncio.run(collect())
    kinds = [e for e, _ in events]
    assert kinds[0] == "sources" and kinds[-1] == "done"
    assert set(kinds[1:-1]) == {"delta"} and len(kinds) > 3
    assert "".join(d["text"] for e, d in events if e == "delta").strip() == events[-1][1]["answer"]
    assert events[0][1]["citations"][0]["id"] == "e1"


def test_pdf_sections_by_numbered_heading_and_page() -> None:
    from tests.utils.pdf import text_pdf

    data = text_pdf(
        [
            ["1 Night shift", "Guards check the north gate every two hours."],
            ["Visitors sign in at reception."],
        ]
    )
    chunks = parse_document(data, "application/pdf")
    assert [c.section for c in chunks] == ["1 Night shift (page 1)", "page 2"]
    assert "every two hours" in chunks[0].text
    assert chunks[1].text == "Visitors sign in at reception."


def test_how_often_is_not_a_count() -> None:
    # "How often must guards check the gate" asks the documents, not the database.
    assert parse_count_question("How often must guards check the gate?", CAMERAS, NOW) is None


def test_today_and_times_are_the_sites_calendar_and_clock() -> None:
    """ "Today" starts at the site's midnight (not UTC's), a day with a clock change included,
    and the answer reads times in the site's zone."""
    paris = "Europe/Paris"
    # 00:30 in Paris on 7 December is 23:30 UTC on the 6th: "today" began 30 minutes ago.
    now = datetime(2026, 12, 6, 23, 30, tzinfo=UTC)
    q = parse_count_question("how many people today", CAMERAS, now, paris)
    assert q is not None and q.since == datetime(2026, 12, 6, 23, 0, tzinfo=UTC)
    assert q.window == "today (Europe/Paris)"
    y = parse_count_question("how many people yesterday", CAMERAS, now, paris)
    assert y is not None
    assert (y.since, y.until) == (
        datetime(2026, 12, 5, 23, 0, tzinfo=UTC),
        datetime(2026, 12, 6, 23, 0, tzinfo=UTC),
    )
    # The day the clocks went back (25 October 2026) was 25 hours long.
    after = datetime(2026, 10, 26, 6, 0, tzinfo=UTC)
    d = parse_count_question("how many people yesterday", CAMERAS, after, paris)
    assert d is not None and d.since is not None and d.until is not None
    assert d.until - d.since == timedelta(hours=25)
    # UTC stays as it was.
    u = parse_count_question("how many people today", CAMERAS, now)
    assert u is not None and u.since == datetime(2026, 12, 6, tzinfo=UTC)
    assert u.window == "today (UTC)"
    first, last = (
        datetime(2026, 12, 6, 23, 5, tzinfo=UTC),
        datetime(2026, 12, 6, 23, 25, tzinfo=UTC),
    )
    result = CountResult(q, 2, {"gate": 2}, first, last)
    assert "between 2026-12-07 00:05:00 and 2026-12-07 00:25:00 CET (Europe/Paris)" in (
        result.sentence()
    )
    assert local_time(last, paris) == "2026-12-07 00:25:00 CET (Europe/Paris)"
    assert local_time(last) == "2026-12-06 23:25:00 UTC"
