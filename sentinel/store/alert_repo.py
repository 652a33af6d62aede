"""Repositories of the alert agent: alerts, the agent's queue, prompts and experiments.

An alert is recorded once per event, from the rules' decision (``record_rule_decision`` is an
``INSERT ... ON CONFLICT DO NOTHING``, so a replayed event never duplicates or changes it), then
amended by the LLM agent's decision. Operators acknowledge alerts and give verdicts; both are
single conditional ``UPDATE`` statements. Every change of an alert that is an alert (created,
amended, acknowledged or withdrawn) writes a ``notify_outbox`` row in the same transaction, so
the notifier hears of each change exactly when it is committed. The queue, prompt and
experiment repositories live in ``agent_queue_repo`` and ``prompt_repo`` and are re-exported
here.
"""

from __future__ import annotations

import builtins
import dataclasses
import json
import uuid
from collections.abc import Collection, Mapping
from datetime import datetime
from typing import Any

import sqlalchemy as sa

from sentinel.domain.alerts import AlertDecision, DecidedBy, Severity
from sentinel.store.agent_queue_repo import AgentQueue
from sentinel.store.agent_tables import ALERTS, LLM_STATUSES, VERDICTS
from sentinel.store.clock import Repository
from sentinel.store.notify_tables import NOTIFY_OUTBOX
from sentinel.store.prompt_repo import (
    ExperimentRecord,
    ExperimentRepository,
    PromptRecord,
    PromptRepository,
    Variant,
)
from sentinel.store.search_tables import enqueue_in
from sentinel.store.sql import (
    InvalidCursor,
    TimeRanges,
    as_utc,
    check_choice,
    check_page_size,
    decode_cursor,
    encode_cursor,
    overlapping,
    upsert_insert,
)

__all__ = [
    "AgentQueue",
    "AlertRecord",
    "AlertRepository",
    "ExperimentRecord",
    "ExperimentRepository",
    "InvalidCursor",
    "PromptRecord",
    "PromptRepository",
    "Variant",
]

_COUNTS = ("prompt_tokens", "completion_tokens", "parse_failures")


@dataclasses.dataclass(frozen=True, slots=True)
class AlertRecord:
    """A stored alert: the latest decision about one event plus the operator's actions."""

    id: str
    event_id: str
    camera_id: str
    label: str
    created_at: datetime
    updated_at: datetime
    status: str
    alert: bool
    severity: Severity
    summary: str
    reasons: tuple[str, ...]
    recommended_action: str
    decided_by: DecidedBy
    prompt_version: str | None
    model: str | None
    backend: str | None
    latency_ms: float | None
    prompt_tokens: int
    completion_tokens: int
    parse_failures: int
    experiment_id: str | None
    variant: str | None
    llm_status: str
    llm_error: str | None
    acknowledged_by: str | None
    acknowledged_at: datetime | None
    verdict: str | None
    verdict_note: str | None
    verdict_by: str | None
    verdict_at: datetime | None
    incident_id: str | None = None
    rule_id: str | None = None
    rule_version: int | None = None
    rule_explanation: str | None = None

    def decision(self) -> AlertDecision:
        """The stored decision, as the decider produced it."""
        return AlertDecision(
            alert=self.alert,
            severity=self.severity,
            summary=self.summary,
            reasons=self.reasons,
            recommended_action=self.recommended_action,
            decided_by=self.decided_by,
            prompt_version=self.prompt_version,
            model=self.model,
            backend=self.backend,
            latency_ms=self.latency_ms,
            prompt_tokens=self.prompt_tokens,
            completion_tokens=self.completion_tokens,
            parse_failures=self.parse_failures,
        )


def _to_alert(row: Mapping[Any, Any]) -> AlertRecord:
    values = dict(row)
    latency = values["latency_ms"]
    values.update(
        alert=bool(values["alert"]),
        severity=Severity(values["severity"]),
        reasons=tuple(str(r) for r in json.loads(values["reasons"])),
        decided_by=DecidedBy(values["decided_by"]),
        latency_ms=None if latency is None else float(latency),
        **{name: int(values[name]) for name in _COUNTS},
    )
    return AlertRecord(**values)


def alert_json(record: AlertRecord) -> str:
    """The alert as JSON (the notifier's ``before`` of a change)."""
    return json.dumps(dataclasses.asdict(record), default=str)


def _decision_values(decision: AlertDecision) -> dict[str, Any]:
    values = dataclasses.asdict(decision)
    reasons, latency = values["reasons"], values["latency_ms"]
    if isinstance(reasons, str) or not all(isinstance(r, str) for r in reasons):
        raise TypeError(f"decision.reasons must be a sequence of strings, got {reasons!r}")
    values.update(
        alert=bool(values["alert"]),
        severity=Severity(values["severity"]).value,
        reasons=json.dumps(list(reasons)),
        decided_by=DecidedBy(values["decided_by"]).value,
        latency_ms=None if latency is None else float(latency),
        **{name: int(values[name]) for name in _COUNTS},
    )
    return values


class AlertRepository(Repository):
    """Records, amends, lists, acknowledges and judges alerts.

    Args:
        engine: An engine from ``sentinel.store.db.make_engine`` on a migrated database.
        clock: Returns the current tz-aware time; injectable for tests.
    """

    def record_rule_decision(
        self,
        event_id: str,
        camera_id: str,
        label: str,
        decision: AlertDecision,
        *,
        llm_status: str = "pending",
        incident_id: str | None = None,
    ) -> AlertRecord:
        """Record the first decision about an event, once: a replay returns the stored alert.

        With ``incident_id`` the alert is the incident's (at most one per incident): a second
        decision about the same incident, for whichever member, returns the stored alert.

        Args:
            event_id: The event's id (one alert per event).
            camera_id: The event's camera.
            label: The event's object label.
            decision: The rules' decision.
            llm_status: The LLM agent's status for this alert ("skipped" if it will not run).
            incident_id: The incident the alert is about, if any.

        Returns:
            The stored alert: the new one, or the existing one unchanged.

        Raises:
            ValueError: If ``llm_status`` or the decision's severity is unknown.
        """
        check_choice(llm_status, LLM_STATUSES, "llm_status")
        now = as_utc(self._clock(), "clock()")
        values: dict[str, Any] = {
            "id": str(uuid.uuid4()),
            "event_id": event_id,
            "camera_id": camera_id,
            "label": label,
            "created_at": now,
            "updated_at": now,
            "status": "open",
            **_decision_values(decision),
            "llm_status": llm_status,
            "incident_id": incident_id,
        }
        stmt = upsert_insert(self._engine, ALERTS).values(**values)
        if incident_id is None:
            stmt = stmt.on_conflict_do_nothing(index_elements=[ALERTS.c.event_id])
            where = ALERTS.c.event_id == event_id
        else:  # a conflict on either unique key (event or incident) keeps the stored alert
            stmt = stmt.on_conflict_do_nothing()
            where = ALERTS.c.incident_id == incident_id
        with self._engine.begin() as conn:
            # RETURNING says whether this call inserted (rowcount is -1 on some drivers).
            inserted = conn.execute(stmt.returning(ALERTS.c.id)).first() is not None
            row = conn.execute(sa.select(ALERTS).where(where)).mappings().first()
            if inserted and row is not None and row["id"] == values["id"] and values["alert"]:
                self._outbox(conn, values["id"], "new", None)
        if row is None:  # the event already has an alert of another incident (or none)
            raise ValueError(f"event {event_id} already has an alert that is not {incident_id}'s")
        return _to_alert(row)

    def amend(
        self,
        event_id: str,
        decision: AlertDecision,
        *,
        withdrawn: bool = False,
        experiment_id: str | None = None,
        variant: str | None = None,
    ) -> AlertRecord | None:
        """Replace an alert's decision by the LLM agent's (``llm_status`` becomes "done").

        Args:
            event_id: The event whose alert to amend.
            decision: The new decision.
            withdrawn: Whether the agent withdrew the alert (status "withdrawn"); otherwise
                a withdrawn alert is open again (a later judgement, on a material change,
                found it alert-worthy after all) and any other status is kept.
            experiment_id: The experiment that chose the prompt, if any.
            variant: The experiment's variant that was used, if any.

        Returns:
            The amended alert, or None if the event has none.
        """
        values: dict[str, Any] = {
            **_decision_values(decision),
            "experiment_id": experiment_id,
            "variant": variant,
            "llm_status": "done",
            "llm_error": None,
            "updated_at": as_utc(self._clock(), "clock()"),
        }
        if withdrawn:
            values["status"] = "withdrawn"
        else:
            status = ALERTS.c.status
            values["status"] = sa.case((status == "withdrawn", "open"), else_=status)
        return self._update(
            ALERTS.c.event_id == event_id,
            values,
            reindex=True,
            outbox="end" if withdrawn else "update",
        )

    def attach_rule(
        self, alert_id: str, rule_id: str, rule_version: int, explanation: str
    ) -> AlertRecord | None:
        """Record which operator's rule matched an alert and why; the first rule to match
        keeps it (a later match of another rule does not overwrite the explanation).

        Args:
            alert_id: The alert the rule matched.
            rule_id: The rule's id.
            rule_version: The rule's version that matched.
            explanation: The readable explanation of the match.

        Returns:
            The alert (changed or not), or None if there is no such alert.
        """
        values = {
            "rule_id": rule_id,
            "rule_version": rule_version,
            "rule_explanation": explanation[:4000],
            "updated_at": as_utc(self._clock(), "clock()"),
        }
        where = ALERTS.c.id == alert_id
        with self._engine.begin() as conn:
            conn.execute(ALERTS.update().where(where, ALERTS.c.rule_id.is_(None)).values(values))
        return self._one(where)

    def set_llm_status(self, event_id: str, status: str, error: str | None = None) -> bool:
        """Set the LLM agent's status of an event's alert (and its error, or None).

        A re-judgement that fails or is shed leaves an alert the agent judged before "done":
        its last judgement stands (the error is still recorded).

        Returns:
            Whether the event has an alert.

        Raises:
            ValueError: If ``status`` is unknown.
        """
        check_choice(status, LLM_STATUSES, "status")
        now = as_utc(self._clock(), "clock()")
        values: dict[str, Any] = {"llm_status": status, "llm_error": error, "updated_at": now}
        if status in ("failed", "shed"):
            judged = ALERTS.c.model.is_not(None)  # only the agent's amend sets a model
            values["llm_status"] = sa.case((judged, "done"), else_=status)
        return self._update(ALERTS.c.event_id == event_id, values) is not None

    outbox: bool = True
    """Whether alert changes write notifier outbox rows (off only to measure their cost)."""

    def _outbox(self, conn: sa.Connection, alert_id: str, kind: str, before: str | None) -> None:
        if not self.outbox:
            return
        conn.execute(
            NOTIFY_OUTBOX.insert().values(
                alert_id=alert_id,
                kind=kind,
                before=before,
                status="pending",
                attempts=0,
                created_at=as_utc(self._clock(), "clock()"),
            )
        )

    def _update(
        self,
        where: sa.ColumnElement[bool],
        values: dict[str, Any],
        *,
        outbox: str | None = None,
        reindex: bool = False,
    ) -> AlertRecord | None:
        with self._engine.begin() as conn:
            before = None
            if outbox is not None and self.outbox:
                old = conn.execute(sa.select(ALERTS).where(where)).mappings().first()
                before = None if old is None else alert_json(_to_alert(old))
            if conn.execute(sa.update(ALERTS).where(where).values(**values)).rowcount == 0:
                return None
            record = _to_alert(conn.execute(sa.select(ALERTS).where(where)).mappings().one())
            if reindex:
                # The agent's summary is part of the search document: index it anew, queued
                # in this transaction.
                kind = "incident" if record.incident_id else "event"
                item = record.incident_id or record.event_id
                enqueue_in(conn, item, kind, "upsert", as_utc(self._clock(), "clock()"))
            if outbox is not None and (record.alert or outbox == "end"):
                self._outbox(conn, record.id, outbox, before)
            return record

    def expire(
        self, camera_id: str, created_before: datetime, limit: int = 500, keep: TimeRanges = ()
    ) -> builtins.list[str]:
        """Delete up to ``limit`` of the camera's alerts created before ``created_before``
        (oldest first), except those created within a ``keep`` range (legal holds); their
        event or incident is queued for indexing again in the same transaction (the alert's
        summary leaves its search document).

        Returns:
            The ids of the deleted alerts.

        Raises:
            ValueError: If ``created_before`` is naive or ``limit`` is below 1.
        """
        created_before = as_utc(created_before, "created_before")
        if limit < 1:
            raise ValueError(f"limit must be >= 1, but got {limit}")
        c = ALERTS.c
        query = (
            sa.select(c.id, c.event_id, c.incident_id)
            .where(c.camera_id == camera_id, c.created_at < created_before)
            .order_by(c.created_at, c.id)
            .limit(limit)
        )
        if keep:
            query = query.where(sa.not_(overlapping(c.created_at, c.created_at, keep)))
        now = as_utc(self._clock(), "clock()")
        with self._engine.begin() as conn:
            rows = conn.execute(query).all()
            if rows:
                conn.execute(sa.delete(ALERTS).where(c.id.in_([r.id for r in rows])))
                for row in rows:
                    kind = "incident" if row.incident_id else "event"
                    enqueue_in(conn, row.incident_id or row.event_id, kind, "upsert", now)
        return [str(r.id) for r in rows]

    def camera_ids(self) -> builtins.list[str]:
        """Every camera id with alerts, sorted."""
        query = sa.select(ALERTS.c.camera_id).distinct().order_by(ALERTS.c.camera_id)
        with self._engine.connect() as conn:
            return [str(x) for x in conn.execute(query).scalars()]

    def get(self, alert_id: str) -> AlertRecord | None:
        """The alert with this id, or None."""
        return self._one(ALERTS.c.id == alert_id)

    def by_event(self, event_id: str) -> AlertRecord | None:
        """The alert of this event, or None."""
        return self._one(ALERTS.c.event_id == event_id)

    def by_incident(self, incident_id: str) -> AlertRecord | None:
        """The alert of this incident, or None."""
        return self._one(ALERTS.c.incident_id == incident_id)

    def _one(self, where: sa.ColumnElement[bool]) -> AlertRecord | None:
        with self._engine.connect() as conn:
            row = conn.execute(sa.select(ALERTS).where(where)).mappings().first()
        return None if row is None else _to_alert(row)

    def list(
        self,
        *,
        camera_ids: Collection[str] | None = None,
        camera_id: str | None = None,
        status: str | None = None,
        severity: str | None = None,
        alert: bool | None = None,
        since: datetime | None = None,
        until: datetime | None = None,
        cursor: str | None = None,
        limit: int = 100,
    ) -> tuple[builtins.list[AlertRecord], str | None]:
        """One page of alerts, newest first by ``(created_at, id)`` descending.

        Args:
            camera_ids: Only alerts of these cameras (an access scope); empty matches nothing.
            camera_id: Only this camera's alerts (combined with ``camera_ids`` both must hold).
            status: Only alerts with this status.
            severity: Only alerts with this severity.
            alert: Only alerts (True) or only non-alerts (False).
            since: Only alerts created at or after this time (tz-aware).
            until: Only alerts created at or before this time (tz-aware).
            cursor: The next cursor of the previous page, to continue after it.
            limit: Page size, 1 to ``MAX_PAGE_SIZE``.

        Returns:
            The alerts and the cursor of the next page (None on the last page).

        Raises:
            InvalidCursor: If ``cursor`` is malformed.
            ValueError: If ``limit`` is out of bounds or a datetime is naive.
        """
        check_page_size(limit)
        c = ALERTS.c
        query = sa.select(ALERTS)
        if camera_ids is not None:
            query = query.where(c.camera_id.in_(sorted(set(camera_ids))))
        for column, value in (
            (c.camera_id, camera_id),
            (c.status, status),
            (c.severity, severity),
            (c.alert, alert),
        ):
            if value is not None:
                query = query.where(column == value)
        if since is not None:
            query = query.where(c.created_at >= as_utc(since, "since"))
        if until is not None:
            query = query.where(c.created_at <= as_utc(until, "until"))
        if cursor is not None:
            after_at, after_id = decode_cursor(cursor)
            query = query.where(
                sa.or_(c.created_at < after_at, sa.and_(c.created_at == after_at, c.id < after_id))
            )
        query = query.order_by(c.created_at.desc(), c.id.desc()).limit(limit + 1)
        with self._engine.connect() as conn:
            rows = conn.execute(query).mappings().all()
        items = [_to_alert(row) for row in rows[:limit]]
        if len(rows) <= limit:
            return items, None
        return items, encode_cursor(items[-1].created_at, items[-1].id)

    def acknowledge(self, alert_id: str, user_id: str, now: datetime) -> AlertRecord | None:
        """Acknowledge an open alert; acknowledging it again changes nothing (the first wins).

        Returns:
            The alert, or None if there is no such alert.

        Raises:
            ValueError: If the alert was withdrawn, or ``now`` is naive.
        """
        when = as_utc(now, "now")
        c = ALERTS.c
        stmt = (
            sa.update(ALERTS)
            .where(c.id == alert_id, c.status == "open")
            .values(status="acknowledged", acknowledged_by=user_id, acknowledged_at=when)
            .values(updated_at=when)
        )
        with self._engine.begin() as conn:
            old = conn.execute(sa.select(ALERTS).where(c.id == alert_id)).mappings().first()
            changed = conn.execute(stmt).rowcount == 1
            row = conn.execute(sa.select(ALERTS).where(c.id == alert_id)).mappings().first()
            if changed and old is not None and row is not None and row["alert"]:
                self._outbox(conn, alert_id, "end", alert_json(_to_alert(old)))
        if row is None:
            return None
        record = _to_alert(row)
        if record.status == "withdrawn":
            raise ValueError(f"alert {alert_id} was withdrawn and cannot be acknowledged")
        return record

    def feedback(
        self, alert_id: str, verdict: str, note: str | None, user_id: str, now: datetime
    ) -> AlertRecord | None:
        """Record ``user_id``'s verdict and note; a later verdict replaces an earlier one.

        ``verdict`` is "true_positive" or "false_positive"; ``now`` (tz-aware) is when.

        Returns:
            The alert, or None if there is no such alert.

        Raises:
            ValueError: If ``verdict`` is unknown or ``now`` is naive.
        """
        check_choice(verdict, VERDICTS, "verdict")
        when = as_utc(now, "now")
        values = {
            "verdict": verdict,
            "verdict_note": note,
            "verdict_by": user_id,
            "verdict_at": when,
        }
        return self._update(ALERTS.c.id == alert_id, {**values, "updated_at": when})

    def experiment_rows(self, experiment_id: str) -> builtins.list[AlertRecord]:
        """The alerts decided within an experiment, oldest first."""
        c = ALERTS.c
        query = sa.select(ALERTS).where(c.experiment_id == experiment_id)
        query = query.order_by(c.created_at, c.id)
        with self._engine.connect() as conn:
            return [_to_alert(row) for row in conn.execute(query).mappings()]
