"""What operators and the alert agent said about a camera's stretch, as flagged time spans.

- ``false_positive``: an alert whose operator's verdict is "false_positive";
- ``disagreement``: an alert where the LLM agent and the rules disagreed. Every stored alert
  begins as the rules' alert (``record_rule_decision`` only records alert-worthy events), so
  a disagreement is the agent saying "no alert": the alert was withdrawn (``status`` is
  "withdrawn"), or a summarising backend said ``alert=false`` while the rule decision stood
  (its first reason records that, see :func:`sentinel.domain.alerts.advisory_decision`).
  The reverse (the agent alerting where no rule did) is never stored: the agent only judges
  the rules' alerts.

A span is the alert's event (start to end, or last seen while open); an incident's alert
covers the whole incident.
"""

from __future__ import annotations

import json
from datetime import datetime

import sqlalchemy as sa

from sentinel.store.agent_tables import ALERTS
from sentinel.store.annotation_tables import ANNOTATION_ITEMS
from sentinel.store.incident_tables import INCIDENTS
from sentinel.store.sql import as_utc
from sentinel.store.tables import EVENTS
from sentinel.train.mining import FALSE_POSITIVE, FlaggedSpan

__all__ = ["flagged_spans", "queued_hashes"]

_ADVISORY = "rule decision stands"


def _disagreed(status: str, reasons: str) -> bool:
    if status == "withdrawn":
        return True
    try:
        first = next(iter(json.loads(reasons) or []), "")
    except (ValueError, TypeError):
        return False
    return isinstance(first, str) and first.startswith(_ADVISORY) and "alert=false" in first


def flagged_spans(
    engine: sa.Engine, camera_id: str, start: datetime, end: datetime
) -> list[FlaggedSpan]:
    """The flagged spans of ``camera_id`` overlapping ``[start, end]``, oldest first."""
    start, end = as_utc(start, "start"), as_utc(end, "end")
    e_end = sa.func.coalesce(EVENTS.c.ended_at, EVENTS.c.last_seen_at)
    i_end = sa.func.coalesce(INCIDENTS.c.ended_at, INCIDENTS.c.last_seen_at)
    query = (
        sa.select(
            ALERTS.c.verdict,
            ALERTS.c.status,
            ALERTS.c.reasons,
            sa.func.coalesce(INCIDENTS.c.started_at, EVENTS.c.started_at).label("span_start"),
            sa.func.coalesce(i_end, e_end).label("span_end"),
        )
        .select_from(
            ALERTS.join(EVENTS, EVENTS.c.id == ALERTS.c.event_id).outerjoin(
                INCIDENTS, INCIDENTS.c.id == ALERTS.c.incident_id
            )
        )
        .where(
            ALERTS.c.camera_id == camera_id,
            sa.func.coalesce(INCIDENTS.c.started_at, EVENTS.c.started_at) <= end,
            sa.func.coalesce(i_end, e_end) >= start,
        )
        .order_by(sa.text("span_start"))
    )
    spans: list[FlaggedSpan] = []
    with engine.connect() as conn:
        for row in conn.execute(query).mappings():
            lo, hi = as_utc(row["span_start"], "span_start"), as_utc(row["span_end"], "span_end")
            hi = max(lo, hi)
            if row["verdict"] == FALSE_POSITIVE:
                spans.append(FlaggedSpan(lo, hi, "false_positive"))
            if _disagreed(str(row["status"]), str(row["reasons"])):
                spans.append(FlaggedSpan(lo, hi, "disagreement"))
    return spans


def queued_hashes(engine: sa.Engine, camera_id: str) -> list[int]:
    """The scene hashes of the camera's frames in the annotation queue (any status, gold
    copies aside): the frames a new job's choices must be novel against."""
    c = ANNOTATION_ITEMS.c
    query = sa.select(c.phash).where(c.camera_id == camera_id, c.is_gold.is_(False))
    with engine.connect() as conn:
        return [int(str(h), 16) for (h,) in conn.execute(query)]
