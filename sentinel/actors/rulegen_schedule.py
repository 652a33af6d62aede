"""RuleGen on a schedule: a detached Ray actor that runs the job every ``rulegen.interval_s``.

``ScheduledRuleGen`` is one run (no Ray of its own unless the engine is "ray"): the cameras'
frame sizes from the supervisor, the history window, :func:`sentinel.actors.rulegen.run_rulegen`
with the configured engine, the suggestions stored deduplicated, and an audit entry (actor
``rulegen``, a failed run too). ``RuleGenActor`` runs it in a thread when
:func:`sentinel.rules.schedule.next_run` says so, counting from the last run in the audit log,
so a restart neither skips nor repeats a run.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Mapping
from dataclasses import asdict
from datetime import UTC, datetime, timedelta
from typing import Any, cast

import ray

from sentinel.actors.rulegen import run_rulegen
from sentinel.actors.supervisor import SUPERVISOR_NAME
from sentinel.config import RuleGenConfig
from sentinel.rules.job import StoreCounts, frame_sizes, history_since, store_suggestions
from sentinel.rules.rulegen import RuleGenSettings
from sentinel.rules.schedule import AUDIT_ACTION, AUDIT_ACTOR, next_run
from sentinel.store.audit_repo import AuditRepository
from sentinel.store.db import make_engine
from sentinel.store.rule_repo import SuggestionRepository

logger = logging.getLogger(__name__)

RULEGEN_NAME = "sentinel-rulegen"

Statuses = Callable[[], Mapping[str, Mapping[str, Any]]]


def _utcnow() -> datetime:
    return datetime.now(UTC)


class ScheduledRuleGen:
    """One RuleGen run over the store, its suggestions stored and the run audited.

    Args:
        db_url: The store's URL (migrated).
        config: Engine, history window, time zone.
        statuses: Returns the running cameras' statuses (their frame sizes).
        clock: Returns the tz-aware time; injectable for tests.
    """

    def __init__(
        self,
        db_url: str,
        config: RuleGenConfig,
        statuses: Statuses,
        *,
        clock: Callable[[], datetime] = _utcnow,
    ) -> None:
        self.db_url = db_url
        self.config = config
        self.statuses = statuses
        self.clock = clock
        engine = make_engine(db_url)
        self.suggestions = SuggestionRepository(engine, clock=clock)
        self.audit = AuditRepository(engine)

    def last_run(self) -> datetime | None:
        """When the last run (of any process: the audit log says) started, or None. A restarted
        platform goes on with the schedule instead of running at every start."""
        entries, _ = self.audit.list(actor=AUDIT_ACTOR, action=AUDIT_ACTION, limit=1)
        return entries[0].at if entries else None

    def run(self) -> StoreCounts:
        """Mines, backtests and stores; returns what storing did. The run is audited, a failed
        one too (outcome "error", then the error is raised)."""
        now = self.clock()
        try:
            since = history_since(now, self.config.history_days)
            settings = RuleGenSettings(
                timezone=self.config.timezone, frame_sizes=frame_sizes(self.statuses())
            )
            found = run_rulegen(
                self.db_url,
                since=since,
                parallelism=self.config.parallelism,
                engine=self.config.engine,
                settings=settings,
            )
            counts = store_suggestions(self.suggestions, found, timezone=self.config.timezone)
        except Exception as exc:
            self._audit(now, "error", {"error": repr(exc)[:500]})
            raise
        self._audit(now, "success", asdict(counts))
        return counts

    def _audit(self, at: datetime, outcome: str, detail: dict[str, Any]) -> None:
        try:
            self.audit.append(
                actor=AUDIT_ACTOR,
                action=AUDIT_ACTION,
                target="",
                client="internal",
                outcome=outcome,
                detail={**detail, "engine": self.config.engine},
                at=at,
            )
        except Exception:  # the suggestions are stored; never undo a run for the log
            logger.exception("audit append failed for a RuleGen run")


def _supervisor_statuses(namespace: str) -> Statuses:
    def statuses() -> Mapping[str, Mapping[str, Any]]:
        try:
            supervisor = ray.get_actor(SUPERVISOR_NAME, namespace=namespace)
            ref: Any = supervisor.statuses.remote()
            found = cast("dict[str, dict[str, Any]] | None", ray.get(ref, timeout=30))
        except Exception as exc:  # no sizes: no mask suggestions this run, the rest runs
            logger.warning("camera statuses unavailable for RuleGen: %s", exc)
            return {}
        return found or {}

    return statuses


@ray.remote(num_cpus=0, max_restarts=-1, max_concurrency=4)  # type: ignore[call-overload]
class RuleGenActor:
    """Runs ``ScheduledRuleGen.run`` when ``next_run`` says so, in a thread."""

    def __init__(self, runtime: dict[str, Any]) -> None:
        self.config = RuleGenConfig(**runtime.get("rulegen", {}))
        self.job = ScheduledRuleGen(
            runtime["db_url"], self.config, _supervisor_statuses(runtime["namespace"])
        )
        self.lock = threading.Lock()
        self.stopped = threading.Event()
        self.last_run: datetime | None = self.job.last_run()
        self.first_at = _utcnow() + timedelta(seconds=self.config.first_run_after_s)
        self.last: dict[str, Any] | None = None
        self.last_error = ""
        self.thread: threading.Thread | None = None

    def start(self) -> bool:
        """Starts the schedule (idempotent); False when RuleGen's schedule is disabled."""
        if not self.config.enabled:
            return False
        with self.lock:
            if self.thread is None:
                self.thread = threading.Thread(target=self._loop, name="rulegen", daemon=True)
                self.thread.start()
        return True

    def status(self) -> dict[str, Any]:
        due = (
            next_run(self.last_run, _utcnow(), self.config.interval_s, first_at=self.first_at)
            if self.config.enabled
            else None
        )
        return {
            "enabled": self.config.enabled,
            "engine": self.config.engine,
            "interval_s": self.config.interval_s,
            "last_run": None if self.last_run is None else self.last_run.isoformat(),
            "next_run": None if due is None else due.isoformat(),
            "last": self.last,
            "last_error": self.last_error,
        }

    def stop(self) -> None:
        self.stopped.set()

    def _loop(self) -> None:
        while not self.stopped.is_set():
            now = _utcnow()
            due = next_run(self.last_run, now, self.config.interval_s, first_at=self.first_at)
            if self.stopped.wait(max((due - now).total_seconds(), 0.0)):
                return
            self.last_run = _utcnow()
            try:
                self.last, self.last_error = asdict(self.job.run()), ""
            except Exception as exc:
                self.last_error = repr(exc)[:500]
                logger.exception("RuleGen run failed")
