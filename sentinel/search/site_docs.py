"""Site documents for the alert agent: the knowledge-base sections about an alert's context
(camera, label, zones, the rule that fired), put in the agent's prompt and cited in the alert.

No Ray here: the agent worker gets a ``lookup`` (query text to sections) built by
:func:`kb_lookup` over a :class:`~sentinel.search.kb.KnowledgeBase`.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import replace

from sentinel.domain.alerts import AlertDecision, EventContext
from sentinel.search.kb import KbHit, KnowledgeBase

__all__ = [
    "SECTION_CHARS",
    "SiteLookup",
    "alert_query",
    "citation",
    "cite",
    "kb_lookup",
    "with_sections",
]

SiteLookup = Callable[[str], list[KbHit]]
"""A query in words to the knowledge-base sections closest to it, best first."""

SECTION_CHARS = 600  # of a section's text in the prompt


def alert_query(ctx: EventContext, zones: Sequence[str] = (), rule: Sequence[str] = ()) -> str:
    """The words the site documents are searched with for an alert: what was seen, where
    (camera name and description, zones), when (local time) and why the rules alerted."""
    parts = [f"{ctx.label} seen by camera {ctx.camera_name}"]
    if ctx.camera_description:
        parts.append(ctx.camera_description)
    if zones:
        parts.append("zones " + ", ".join(zones))
    parts.append(ctx.local_time)
    parts.extend(r for r in rule if r)
    return "; ".join(parts)


def citation(hit: KbHit) -> str:
    """How an alert cites a section: its document, version and section."""
    return f"site document {hit.document!r} v{hit.version}, section {hit.section!r}"


def with_sections(ctx: EventContext, hits: Sequence[KbHit]) -> EventContext:
    """``ctx`` with the sections added to its site notes, each under its citation."""
    if not hits:
        return ctx
    blocks = []
    for hit in hits:
        text = hit.text if len(hit.text) <= SECTION_CHARS else hit.text[: SECTION_CHARS - 1] + "…"
        blocks.append(f"[{citation(hit)}]\n{text}")
    notes = ctx.site_notes.strip()
    joined = "From the site documents:\n" + "\n\n".join(blocks)
    return replace(ctx, site_notes=f"{notes}\n\n{joined}" if notes else joined)


def cite(decision: AlertDecision, hits: Sequence[KbHit]) -> AlertDecision:
    """The decision with the sections it was given cited among its reasons (``source: …``)."""
    if not hits:
        return decision
    sources = tuple(f"source: {citation(h)}" for h in hits)
    return replace(decision, reasons=tuple(decision.reasons) + sources)


def kb_lookup(kb: KnowledgeBase, k: int = 2, min_score: float = 0.35) -> SiteLookup:
    """A lookup over ``kb``: the ``k`` closest current sections scoring ``min_score`` or more.

    Raises:
        ValueError: If ``k`` is below 1.
    """
    if k < 1:
        raise ValueError(f"k must be >= 1, but got {k}")

    def lookup(query: str) -> list[KbHit]:
        vector = kb.embed([query])[0]
        return [h for h in kb.search(vector, k) if h.score >= min_score]

    return lookup
