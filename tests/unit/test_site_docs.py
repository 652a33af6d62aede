"""The alert agent's site documents: the query, the prompt's notes and the citations."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from sentinel.domain.alerts import AlertDecision, DecidedBy, EventContext, Severity
from sentinel.search.kb import KbHit
from sentinel.search.site_docs import SECTION_CHARS, alert_query, cite, with_sections

T0 = datetime(2026, 11, 26, 23, 30, tzinfo=UTC)
CTX = EventContext(
    event_id="e1",
    camera_id="yard",
    camera_name="Yard",
    camera_description="back yard by the shed",
    label="person",
    score=0.9,
    started_at=T0,
    last_seen_at=T0,
    ended_at=None,
    local_time="Thursday 23:30 UTC",
    dwell_s=40.0,
    path_summary="walked",
    site_notes="Night shift: two guards.",
)
HIT = KbHit("c1", "orders.md", 2, "Night", "Report anyone. " * 100, 0.6)


def test_the_query_names_what_where_when_and_why() -> None:
    q = alert_query(CTX, ("shed",), ("rule 'night person' matched", ""))
    assert q == (
        "person seen by camera Yard; back yard by the shed; zones shed; Thursday 23:30 UTC; "
        "rule 'night person' matched"
    )


def test_sections_join_the_notes_under_their_citation() -> None:
    assert with_sections(CTX, []) is CTX
    notes = with_sections(CTX, [HIT]).site_notes
    assert notes.startswith("Night shift: two guards.\n\nFrom the site documents:\n")
    assert "[site document 'orders.md' v2, section 'Night']\nReport anyone." in notes
    assert len(notes) < len(CTX.site_notes) + SECTION_CHARS + 120  # long sections are cut


@pytest.mark.parametrize("hits", [[], [HIT]])
def test_citations_are_added_to_the_reasons(hits: list[KbHit]) -> None:
    decision = AlertDecision(True, Severity.HIGH, "s", ("night",), "call", DecidedBy.LLM)
    cited = cite(decision, hits)
    expected = ("night",) + (("source: site document 'orders.md' v2, section 'Night'",) * len(hits))
    assert cited.reasons == expected
