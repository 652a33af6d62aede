"""The agent worker: drains the durable queue of rule alerts through the LLM agent.

Events reach the agent only through the database queue, never by a call from a camera actor,
so a slow or dead LLM never holds video back. Under overload the worker sheds the oldest
items: their rule-based alert stands, marked ``shed``.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any
from zoneinfo import ZoneInfo

import numpy as np
import ray
from numpy.typing import NDArray
from sqlalchemy.engine import Engine

from sentinel.config import AgentSettings, CameraConfig, SearchSettings
from sentinel.domain.alerts import AgentOutcome, EventContext, PromptSpec, advisory_decision
from sentinel.domain.experiments import assign
from sentinel.domain.incident_context import incident_context
from sentinel.domain.incidents import Incident
from sentinel.domain.prompts import DEFAULT_SYSTEM_PROMPT, DEFAULT_USER_TEMPLATE
from sentinel.domain.stats import LATENCY_BUCKETS_MS, Histogram
from sentinel.search.kb import KbHit
from sentinel.search.site_docs import SiteLookup, alert_query, cite, kb_lookup, with_sections
from sentinel.store.agent_queue_repo import LeasedItem
from sentinel.store.alert_repo import (
    AgentQueue,
    AlertRepository,
    ExperimentRepository,
    PromptRepository,
)
from sentinel.store.camera_secrets import public_camera
from sentinel.store.incident_repo import IncidentRepository
from sentinel.store.repo import CameraRepository, EventRepository, StoredEvent

logger = logging.getLogger(__name__)

ALERT_PROMPT = "alert"
AGENT_WORKER_NAME = "sentinel-agent-worker"
DecideFn = Callable[[EventContext, PromptSpec], Awaitable[AgentOutcome]]
_DECISION_BUCKETS_MS = (*LATENCY_BUCKETS_MS, 10_000.0, 30_000.0, 60_000.0)


@dataclass
class WorkerStats:
    decisions: int = 0
    failures: int = 0
    shed: int = 0
    parse_failures: int = 0
    # Completions refused because the item was leased again meanwhile (this worker stalled
    # past its lease); the other worker's result stands.
    stale_completions: int = 0
    retries: int = 0
    backlog: int = 0
    latency_ms: Histogram = field(default_factory=lambda: Histogram(_DECISION_BUCKETS_MS))
    started_at: float = field(default_factory=time.time)


class AgentWorker:
    """One pass at a time: shed what is too old or too much, then decide the oldest item."""

    def __init__(
        self,
        settings: AgentSettings,
        *,
        decide: DecideFn,
        events: EventRepository,
        cameras: CameraRepository,
        alerts: AlertRepository,
        queue: AgentQueue,
        prompts: PromptRepository,
        experiments: ExperimentRepository,
        incidents: IncidentRepository | None = None,
        site_docs: SiteLookup | None = None,
    ) -> None:
        self.settings = settings
        self.site_docs = site_docs
        self.incidents = incidents
        self.decide = decide
        self.events = events
        self.cameras = cameras
        self.alerts = alerts
        self.queue = queue
        self.prompts = prompts
        self.experiments = experiments
        self.tz = ZoneInfo(settings.timezone)
        self.stats = WorkerStats()

    def shed(self) -> list[str]:
        """Marks items beyond the age or backlog limits as shed; their rule alert stands."""
        shed = self.queue.shed_older_than(self.settings.max_age_s)
        excess = self.queue.backlog() - self.settings.max_backlog
        if excess > 0:
            for item in self.queue.lease(excess, lease_s=60.0):
                if self.queue.complete(item, "shed", "backlog over max_backlog", token=item.token):
                    shed.append(str(item))
        for event_id in shed:
            self.alerts.set_llm_status(event_id, "shed")
        self.stats.shed += len(shed)
        self.stats.backlog = self.queue.backlog()
        return shed

    async def run_once(self) -> bool:
        """Decides one queued event; False when the queue was empty."""
        await asyncio.to_thread(self.shed)
        leased = await asyncio.to_thread(self.queue.lease, 1, 300.0)
        if not leased:
            return False
        item = leased[0]
        try:
            await self._process(item)
        except Exception as exc:  # one bad item must not stop the worker
            logger.exception("agent failed on event %s", item)
            if await self._complete(item, "failed", repr(exc)[:300]):
                await asyncio.to_thread(self.alerts.set_llm_status, item, "failed", repr(exc))
            self.stats.failures += 1
        return True

    async def _complete(self, item: LeasedItem, status: str, error: str | None = None) -> bool:
        """Finishes the item under its lease; False (and counted) if it was leased again."""
        done = await asyncio.to_thread(
            lambda: self.queue.complete(item, status, error, token=item.token)
        )
        if not done:
            self.stats.stale_completions += 1
            logger.warning(
                "agent: event %s was leased again while this worker held it; its %r is dropped",
                item,
                status,
            )
        return done

    async def _retry_later(self, item: LeasedItem, error: str | None) -> bool:
        """Holds a transiently failed item back for a while (``retry_delay_s`` times its
        attempts), up to ``max_attempts`` tries; items older than ``max_age_s`` are shed
        meanwhile, so the rule decision stands in time. False when out of attempts."""
        state = await asyncio.to_thread(self.queue.status, str(item))
        attempts = state[1] if state is not None else self.settings.max_attempts
        if attempts >= self.settings.max_attempts:
            return False
        delay = self.settings.retry_delay_s * attempts
        held = await asyncio.to_thread(
            lambda: self.queue.retry_later(
                str(item), delay, (error or "no backend answered")[:500], token=item.token
            )
        )
        if held:
            self.stats.retries += 1
        else:
            self.stats.stale_completions += 1
        return True

    async def _process(self, item: LeasedItem) -> None:
        event_id = str(item)
        event = await asyncio.to_thread(self.events.get, event_id)
        if event is None:
            await self._complete(item, "failed", "event is gone")
            return
        ctx = await asyncio.to_thread(self.context_of_alert, event)
        sections = await asyncio.to_thread(self.sections_for, ctx, event)
        ctx = with_sections(ctx, sections)
        prompt, experiment_id, variant = await asyncio.to_thread(self.prompt_for, event_id)
        started = time.perf_counter()
        outcome = await self.decide(ctx, prompt)
        self.stats.latency_ms.observe((time.perf_counter() - started) * 1000.0)
        self.stats.parse_failures += outcome.parse_failures
        if outcome.decision is None:
            if outcome.transient and await self._retry_later(item, outcome.error):
                return  # no backend answered (timeouts, outages): tried again later
            self.stats.failures += 1
            # Complete first: a worker that lost its lease must not mark the alert failed
            # over the decision of the worker that took the item over.
            if await self._complete(item, "failed", outcome.error):
                await asyncio.to_thread(
                    self.alerts.set_llm_status, event_id, "failed", outcome.error
                )
            return
        decision = outcome.decision
        if outcome.advisory:
            current = await asyncio.to_thread(self.alerts.by_event, event_id)
            if current is None:
                await self._complete(item, "failed", "alert is gone")
                return
            decision = advisory_decision(decision, current.severity)
        decision = cite(decision, sections)
        await asyncio.to_thread(
            lambda: self.alerts.amend(
                event_id,
                decision,
                withdrawn=not decision.alert,
                experiment_id=experiment_id,
                variant=variant,
            )
        )
        if await self._complete(item, "done"):
            self.stats.decisions += 1

    def sections_for(self, ctx: EventContext, event: StoredEvent) -> list[KbHit]:
        """The site documents' sections about the alert's context (camera, label, zones, the
        rules' reasons), for the prompt and the alert's sources; none without a knowledge
        base or when it cannot be searched (the alert is judged without them)."""
        if self.site_docs is None:
            return []
        alert = self.alerts.by_event(event.id)
        rule = alert.reasons if alert is not None else ()
        try:
            return self.site_docs(alert_query(ctx, event.zones, rule))
        except Exception as exc:
            logger.warning("agent: site documents unavailable for %s: %s", event.id, exc)
            return []

    def prompt_for(self, event_id: str) -> tuple[PromptSpec, str | None, str | None]:
        """The running experiment's variant for this event, else the active prompt."""
        experiment = self.experiments.running_for(ALERT_PROMPT)
        if experiment is not None:
            variants = list(experiment.variants)
            chosen = assign(experiment.id, event_id, variants)
            record = self.prompts.get(ALERT_PROMPT, int(chosen.prompt_version))
            if record is not None:
                spec = PromptSpec(ALERT_PROMPT, str(record.version), record.system, record.template)
                return spec, experiment.id, chosen.name
        active = self.prompts.active(ALERT_PROMPT)
        if active is not None:
            spec = PromptSpec(ALERT_PROMPT, str(active.version), active.system, active.template)
        else:
            spec = PromptSpec(ALERT_PROMPT, "builtin", DEFAULT_SYSTEM_PROMPT, DEFAULT_USER_TEMPLATE)
        return spec, None, None

    def context_of_alert(self, event: StoredEvent) -> EventContext:
        """The incident's context when the event's alert is an incident's, else the event's."""
        if self.incidents is not None:
            alert = self.alerts.by_event(event.id)
            if alert is not None and alert.incident_id is not None:
                incident = self.incidents.get(alert.incident_id)
                if incident is not None:
                    return self.incident_context_for(incident, event.id)
        return self.context_for(event)

    def incident_context_for(self, incident: Incident, event_id: str) -> EventContext:
        """The grounded facts about an incident: members with paths and dwell, labels, time,
        camera, site notes and the camera's recent incidents."""
        assert self.incidents is not None
        raw = self.cameras.get(incident.camera_id)
        camera = CameraConfig(**public_camera(raw)) if raw else None
        members = [
            stored.to_state()
            for stored in (self.events.get(member) for member in incident.members)
            if stored is not None
        ]
        recent = self.incidents.recent(incident.camera_id, incident.started_at, limit=5)
        return incident_context(
            incident,
            members,
            event_id=event_id,
            camera_name=(camera.name if camera and camera.name else incident.camera_id),
            camera_description=camera.description if camera else "",
            tz=self.tz,
            site_notes=self.settings.site_notes,
            recent=recent,
        )

    def context_for(self, event: StoredEvent) -> EventContext:
        """The grounded facts the agent may use: camera, time, track, recent events, notes."""
        raw = self.cameras.get(event.camera_id)
        camera = CameraConfig(**public_camera(raw)) if raw else None
        recent = [
            e
            for e in self.events.list(
                camera_id=event.camera_id, until=event.started_at, limit=6
            ).items
            if e.id != event.id
        ][:5]
        local = event.started_at.astimezone(self.tz)
        dwell = ((event.ended_at or event.last_seen_at) - event.started_at).total_seconds()
        return EventContext(
            event_id=event.id,
            camera_id=event.camera_id,
            camera_name=(camera.name if camera and camera.name else event.camera_id),
            camera_description=camera.description if camera else "",
            label=event.label,
            score=event.score,
            started_at=event.started_at,
            last_seen_at=event.last_seen_at,
            ended_at=event.ended_at,
            local_time=local.strftime("%A %H:%M %Z"),
            dwell_s=max(0.0, dwell),
            path_summary=_path_summary(event),
            recent_events=tuple(
                f"{e.started_at.astimezone(self.tz):%H:%M:%S} {e.label} "
                f"({(e.last_seen_at - e.started_at).total_seconds():.0f} s in view)"
                for e in recent
            ),
            site_notes=self.settings.site_notes,
        )


def _path_summary(event: StoredEvent) -> str:
    path = list(event.path)
    if len(path) < 2:
        return "stayed in one place"
    (x0, y0), (x1, y1) = path[0], path[-1]
    moved = ((x1 - x0) ** 2 + (y1 - y0) ** 2) ** 0.5
    box = event.box
    return (
        f"first seen around pixel ({x0:.0f}, {y0:.0f}), last seen around ({x1:.0f}, {y1:.0f}), "
        f"moved {moved:.0f} px; size about {box.width:.0f}x{box.height:.0f} px"
    )


def _site_docs(runtime: dict[str, Any], engine: Engine) -> SiteLookup | None:
    """The knowledge base as the agent's site documents when search runs: sections embedded
    by the Embedder deployment, searched in the indexer's knowledge-base collection."""
    from ray import serve

    from sentinel.actors.indexer import ActorIndex
    from sentinel.search.kb import KnowledgeBase
    from sentinel.store.kb_repo import KbRepository

    if not SearchSettings(**runtime.get("search", {})).enabled:
        return None
    embedder = serve.get_deployment_handle("Embedder", app_name=runtime["app_name"])

    def embed(texts: list[str]) -> NDArray[np.float32]:  # called off the event loop
        result: NDArray[np.float32] = embedder.embed.remote(texts).result(timeout_s=10.0)
        return result

    kb = KnowledgeBase(KbRepository(engine), ActorIndex(runtime["namespace"], "kb"), embed)
    return kb_lookup(kb)


@ray.remote(num_cpus=0, max_restarts=-1)
class AgentWorkerActor:
    """Ray adapter: polls the queue and calls the Agent deployment through its handle."""

    def __init__(self, runtime: dict[str, Any]) -> None:
        from ray import serve

        from sentinel.store.db import make_engine

        settings = AgentSettings(**runtime["agent"])
        engine = make_engine(runtime["db_url"])
        handle = serve.get_deployment_handle("Agent", app_name=runtime["app_name"])

        async def decide(ctx: EventContext, prompt: PromptSpec) -> AgentOutcome:
            result: AgentOutcome = await handle.decide.remote(ctx, prompt)
            return result

        self.worker = AgentWorker(
            settings,
            decide=decide,
            events=EventRepository(engine),
            cameras=CameraRepository(engine),
            alerts=AlertRepository(engine),
            queue=AgentQueue(engine),
            prompts=PromptRepository(engine),
            experiments=ExperimentRepository(engine),
            incidents=IncidentRepository(engine),
            site_docs=_site_docs(runtime, engine),
        )
        self.interval = settings.poll_interval_s
        self.task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        if self.task is None:
            self.task = asyncio.get_running_loop().create_task(self._loop())

    async def _loop(self) -> None:
        while True:
            try:
                busy = await self.worker.run_once()
            except Exception:
                logger.exception("agent worker pass failed")
                busy = False
            if not busy:
                await asyncio.sleep(self.interval)

    async def stats(self) -> dict[str, Any]:
        s = self.worker.stats
        return {
            "decisions": s.decisions,
            "failures": s.failures,
            "shed": s.shed,
            "parse_failures": s.parse_failures,
            "stale_completions": s.stale_completions,
            "retries": s.retries,
            "backlog": s.backlog,
            "latency_ms": {
                "bounds": list(s.latency_ms.bounds),
                "counts": s.latency_ms.counts,
                "total": s.latency_ms.total,
                "count": s.latency_ms.count,
            },
            "uptime_s": time.time() - s.started_at,
        }
