"""The alert agent against real OpenAI-compatible HTTP servers the tests make slow, failing or
malformed; and the worker over the real durable queue (SQLite and PostgreSQL)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy.engine import Engine

from sentinel.actors.agent_worker import AgentWorker
from sentinel.actors.rule_alerts import RuleAlerts
from sentinel.agent.alert_agent import AlertAgent, BackendConfig
from sentinel.config import AgentSettings, AlertPolicySettings
from sentinel.domain.alerts import AgentOutcome, DecidedBy, EventContext, PromptSpec
from sentinel.domain.prompts import DEFAULT_SYSTEM_PROMPT, DEFAULT_USER_TEMPLATE
from sentinel.domain.types import Box, EventState
from sentinel.models.embedder import TextEmbedder
from sentinel.search.index import IndexUnavailableError, VectorIndex
from sentinel.search.kb import KB_COLLECTION, KbHit, KnowledgeBase
from sentinel.search.site_docs import kb_lookup
from sentinel.store.alert_repo import (
    AgentQueue,
    AlertRepository,
    ExperimentRepository,
    PromptRepository,
)
from sentinel.store.kb_repo import KbRepository
from sentinel.store.repo import CameraRepository, EventRepository
from tests.utils.fake_openai import FakeOpenAI, fake_openai_server

T0 = datetime(2026, 11, 26, 23, 30, tzinfo=UTC)
PROMPT = PromptSpec("alert", "builtin", DEFAULT_SYSTEM_PROMPT, DEFAULT_USER_TEMPLATE)


def _ctx(event_id: str = "ev-1") -> EventContext:
    return EventContext(
        event_id=event_id,
        camera_id="yard",
        camera_name="Yard",
        camera_description="back yard",
        label="person",
        score=0.9,
        started_at=T0,
        last_seen_at=T0 + timedelta(seconds=40),
        ended_at=None,
        local_time="Thursday 23:30 UTC",
        dwell_s=40.0,
        path_summary="walked from the gate to the shed",
    )


def _backend(fake: FakeOpenAI, name: str, priority: int = 0, **kw: Any) -> BackendConfig:
    return BackendConfig(name=name, base_url=fake.base_url, model="fake", priority=priority, **kw)


@pytest.fixture
def primary() -> Iterator[FakeOpenAI]:
    with fake_openai_server() as fake:
        yield fake


@pytest.fixture
def secondary() -> Iterator[FakeOpenAI]:
    with fake_openai_server() as fake:
        yield fake


_LOOP: asyncio.AbstractEventLoop | None = None


@pytest.fixture(autouse=True)
def _one_loop_per_test() -> Iterator[None]:
    """langchain's async HTTP clients bind to the loop they first ran on, as in a replica."""
    global _LOOP
    _LOOP = asyncio.new_event_loop()
    yield
    _LOOP.close()
    _LOOP = None


def run(coro: Any) -> Any:
    assert _LOOP is not None
    return _LOOP.run_until_complete(coro)


def _decide(agent: AlertAgent, event_id: str = "ev-1") -> AgentOutcome:
    result: AgentOutcome = run(agent.decide(_ctx(event_id), PROMPT))
    return result


def test_decision_from_a_working_backend(primary: FakeOpenAI) -> None:
    out = _decide(AlertAgent([_backend(primary, "a")]))
    assert out.decision is not None and out.decision.decided_by is DecidedBy.LLM
    assert out.decision.summary and out.decision.backend == "a"
    assert out.decision.prompt_tokens > 0 and out.decision.prompt_version == "alert@builtin"
    assert primary.requests[0]["response_format"]["type"] == "json_schema"
    sent = primary.requests[0]["messages"]
    assert "Yard" in sent[1]["content"] and "walked from the gate" in sent[1]["content"]


def test_unparseable_output_is_retried_once_then_rules_stand(primary: FakeOpenAI) -> None:
    primary.set_mode("garbage_json")
    out = _decide(AlertAgent([_backend(primary, "a")]))
    assert out.decision is None and out.parse_failures == 2
    assert primary.request_count == 2


def test_retry_succeeds_after_one_bad_answer(primary: FakeOpenAI) -> None:
    primary.set_script(["garbage_json", "ok"])
    out = _decide(AlertAgent([_backend(primary, "a")]))
    assert out.decision is not None and out.decision.parse_failures == 1
    assert primary.request_count == 2


def test_unfaithful_summary_is_retried_once_then_rules_stand_with_the_reason(
    primary: FakeOpenAI,
) -> None:
    # The context has a person at 23:30 for 40 s: a truck, 03:10 and "ten minutes" are invented.
    primary.set_content(
        {
            "alert": True,
            "severity": "high",
            "summary": "A truck stopped at the shed at 03:10 for ten minutes.",
            "reasons": ["vehicle after hours"],
            "recommended_action": "Check the yard.",
        }
    )
    out = _decide(AlertAgent([_backend(primary, "a")]))
    assert out.decision is None and out.parse_failures == 2
    assert primary.request_count == 2
    assert out.error is not None and "unfaithful summary" in out.error
    assert "label 'truck'" in out.error and "time '03:10'" in out.error
    assert "number 'ten'" in out.error
    # The retry is not the same question again: it carries the answer and what was wrong.
    retry = primary.requests[1]["messages"]
    assert len(retry) == len(primary.requests[0]["messages"]) + 2
    assert retry[-2]["role"] == "assistant" and "A truck stopped" in retry[-2]["content"]
    assert retry[-1]["role"] == "user" and "label 'truck'" in retry[-1]["content"]


def test_faithful_summary_stands(primary: FakeOpenAI) -> None:
    primary.set_content(
        {
            "alert": True,
            "severity": "medium",
            "summary": "A person walked from the gate to the shed at 23:30 and stayed 40 s.",
            "reasons": ["after hours"],
            "recommended_action": "Check the yard.",
        }
    )
    out = _decide(AlertAgent([_backend(primary, "a")]))
    assert out.decision is not None and out.decision.parse_failures == 0


@pytest.mark.parametrize("failure", ["fail", "malformed", "slow"])
def test_failover_to_next_backend(primary: FakeOpenAI, secondary: FakeOpenAI, failure: str) -> None:
    primary.set_mode(failure)
    primary.set_delay(3.0)
    agent = AlertAgent([_backend(primary, "a", 0, timeout_s=1.0), _backend(secondary, "b", 1)])
    out = _decide(agent)
    assert out.decision is not None and out.decision.backend == "b"
    health = {h["name"]: h for h in agent.health()}
    assert health["a"]["failures"] == 1 and health["a"]["last_error"]


def test_circuit_breaker_opens_then_probes(primary: FakeOpenAI, secondary: FakeOpenAI) -> None:
    primary.set_mode("fail")
    agent = AlertAgent(
        [_backend(primary, "a", 0), _backend(secondary, "b", 1)],
        failure_threshold=3,
        reset_after_s=1.0,
    )
    for i in range(3):
        assert _decide(agent, f"e{i}").decision is not None
    assert primary.request_count == 3
    assert {h["name"]: h["state"] for h in agent.health()}["a"] == "open"
    for i in range(3):  # open: a is skipped entirely
        assert _decide(agent, f"f{i}").decision is not None
    assert primary.request_count == 3
    primary.set_mode("ok")
    time.sleep(1.1)  # reset_after_s: one half-open probe goes to a, succeeds, closes it
    out = _decide(agent, "g")
    assert out.decision is not None and out.decision.backend == "a"
    assert {h["name"]: h["state"] for h in agent.health()}["a"] == "closed"


def test_all_backends_down_leaves_rules(primary: FakeOpenAI, secondary: FakeOpenAI) -> None:
    primary.set_mode("fail")
    secondary.set_mode("malformed")
    out = _decide(AlertAgent([_backend(primary, "a", 0), _backend(secondary, "b", 1)]))
    assert out.decision is None and "a:" in (out.error or "") and "b:" in (out.error or "")


def test_daily_token_budget_stops_calls(primary: FakeOpenAI) -> None:
    agent = AlertAgent([_backend(primary, "a")], daily_token_budget=10)
    assert _decide(agent, "x1").decision is not None  # spends more than 10 tokens
    assert _decide(agent, "x2").decision is None
    assert primary.request_count == 1


# -- the worker over the durable queue -----------------------------------------------------


def _event(i: int, camera: str = "yard") -> EventState:
    start = T0 + timedelta(seconds=30 * i)
    return EventState(
        id=f"00000000-0000-0000-0001-{i:012d}",
        camera_id=camera,
        label="person",
        track_id=i,
        started_at=start,
        last_seen_at=start + timedelta(seconds=20),
        score=0.8,
        box=Box(10, 10, 40, 100),
        best_at=start,
        path=[(20, 50), (120, 60)],
    )


class Stores:
    def __init__(self, engine: Engine) -> None:
        self.events = EventRepository(engine)
        self.cameras = CameraRepository(engine)
        self.alerts = AlertRepository(engine)
        self.queue = AgentQueue(engine)
        self.prompts = PromptRepository(engine)
        self.experiments = ExperimentRepository(engine)

    def worker(self, agent: AlertAgent, **settings: Any) -> AgentWorker:
        return AgentWorker(
            AgentSettings(**settings),
            decide=agent.decide,
            events=self.events,
            cameras=self.cameras,
            alerts=self.alerts,
            queue=self.queue,
            prompts=self.prompts,
            experiments=self.experiments,
        )


@pytest.fixture
def stores(store_engine: Engine) -> Stores:
    s = Stores(store_engine)
    s.cameras.upsert("yard", {"id": "yard", "source": "/v.mp4", "name": "Back yard"})
    return s


def _rules(stores: Stores, **policy: Any) -> RuleAlerts:
    return RuleAlerts(
        "yard", AlertPolicySettings(**policy), stores.alerts, stores.queue, agent_enabled=True
    )


def test_rule_alert_then_llm_amends(stores: Stores, primary: FakeOpenAI) -> None:
    ev = _event(1)
    stores.events.upsert(ev)
    rules = _rules(stores)
    rules(ev)
    rules(ev)  # a replayed change: still one alert, one queue item
    rule_alert = stores.alerts.by_event(ev.id)
    assert rule_alert is not None and rule_alert.decided_by == DecidedBy.RULES
    assert stores.queue.backlog() == 1
    worker = stores.worker(AlertAgent([_backend(primary, "a")]))
    assert run(worker.run_once()) is True
    amended = stores.alerts.by_event(ev.id)
    assert amended is not None and amended.decided_by == DecidedBy.LLM
    assert amended.summary and amended.llm_status == "done" and amended.status == "open"
    assert amended.prompt_version == "alert@builtin" and amended.backend == "a"
    assert stores.queue.backlog() == 0
    assert run(worker.run_once()) is False


def test_llm_withdraws_a_rule_alert(stores: Stores, primary: FakeOpenAI) -> None:
    primary.set_content(
        {
            "alert": False,
            "severity": "info",
            "summary": "A known gardener.",
            "reasons": ["expected"],
            "recommended_action": "None.",
        }
    )
    ev = _event(2)
    stores.events.upsert(ev)
    _rules(stores)(ev)
    run(stores.worker(AlertAgent([_backend(primary, "a")])).run_once())
    alert = stores.alerts.by_event(ev.id)
    assert alert is not None and alert.status == "withdrawn" and not alert.alert


def test_failed_llm_keeps_the_rule_decision(stores: Stores, primary: FakeOpenAI) -> None:
    primary.set_mode("fail")
    ev = _event(3)
    stores.events.upsert(ev)
    _rules(stores)(ev)
    run(stores.worker(AlertAgent([_backend(primary, "a")]), max_attempts=1).run_once())
    alert = stores.alerts.by_event(ev.id)
    assert alert is not None and alert.decided_by == DecidedBy.RULES
    assert alert.alert and alert.llm_status == "failed"


def test_backend_outage_is_retried_later_then_decided(stores: Stores, primary: FakeOpenAI) -> None:
    """Timeouts and outages are transient: the item is held back and tried again."""
    primary.set_mode("fail")
    ev = _event(4)
    stores.events.upsert(ev)
    _rules(stores)(ev)
    worker = stores.worker(AlertAgent([_backend(primary, "a")]), retry_delay_s=0.0)
    assert run(worker.run_once()) is True
    assert stores.queue.status(ev.id) == ("leased", 1) and worker.stats.retries == 1
    alert = stores.alerts.by_event(ev.id)
    assert alert is not None and alert.llm_status == "pending"
    primary.set_mode("ok")
    assert run(worker.run_once()) is True
    decided = stores.alerts.by_event(ev.id)
    assert decided is not None and decided.decided_by == DecidedBy.LLM
    assert decided.llm_status == "done" and stores.queue.status(ev.id) == ("done", 2)


def test_a_held_back_item_waits_for_its_delay(stores: Stores, primary: FakeOpenAI) -> None:
    primary.set_mode("fail")
    ev = _event(6)
    stores.events.upsert(ev)
    _rules(stores)(ev)
    worker = stores.worker(AlertAgent([_backend(primary, "a")]), retry_delay_s=3600.0)
    assert run(worker.run_once()) is True
    assert run(worker.run_once()) is False  # not leasable before the delay ends
    assert stores.queue.status(ev.id) == ("leased", 1) and primary.request_count == 1


def test_backend_outage_fails_after_max_attempts(stores: Stores, primary: FakeOpenAI) -> None:
    primary.set_mode("fail")
    ev = _event(5)
    stores.events.upsert(ev)
    _rules(stores)(ev)
    worker = stores.worker(AlertAgent([_backend(primary, "a")]), retry_delay_s=0.0)
    for _ in range(3):
        assert run(worker.run_once()) is True
    alert = stores.alerts.by_event(ev.id)
    assert alert is not None and alert.decided_by == DecidedBy.RULES
    assert alert.llm_status == "failed" and stores.queue.status(ev.id) == ("failed", 3)
    assert worker.stats.retries == 2 and worker.stats.failures == 1


# -- site documents: the knowledge base in the agent's prompt, cited in the alert -----------

POST_ORDERS = b"""# Post orders

## Back yard at night
A person in the back yard after 23:00 is reported to the duty manager at once.
The gardener never works at night; the shed must stay locked.

## Lunch
The canteen serves lunch from noon to two; deliveries use the front gate.
"""


@pytest.fixture(scope="module")
def embedder() -> TextEmbedder:
    return TextEmbedder(threads=1)


def _kb(engine: Engine, path: Path, embedder: TextEmbedder) -> KnowledgeBase:
    kb = KnowledgeBase(
        KbRepository(engine), VectorIndex(path, collection=KB_COLLECTION), embedder.embed
    )
    kb.add("post-orders.md", POST_ORDERS, "text/markdown", "admin")
    return kb


def _prompt_text(fake: FakeOpenAI) -> str:
    return "\n".join(str(m["content"]) for m in fake.requests[-1]["messages"])


def test_the_agent_cites_the_site_documents(
    stores: Stores,
    primary: FakeOpenAI,
    store_engine: Engine,
    tmp_path: Path,
    embedder: TextEmbedder,
) -> None:
    kb = _kb(store_engine, tmp_path / "search", embedder)
    ev = replace(_event(5), zones=["shed"])
    stores.events.upsert(ev)
    _rules(stores)(ev)
    worker = stores.worker(AlertAgent([_backend(primary, "a")]))
    worker.site_docs = kb_lookup(kb, k=1)
    assert run(worker.run_once()) is True
    prompt = _prompt_text(primary)
    assert "reported to the duty manager at once" in prompt  # the section reaches the prompt
    assert "site document 'post-orders.md' v1, section 'Post orders > Back yard at night'" in prompt
    assert "canteen" not in prompt  # only the closest section (k=1)
    alert = stores.alerts.by_event(ev.id)
    assert alert is not None and alert.decided_by == DecidedBy.LLM
    sources = [r for r in alert.reasons if r.startswith("source: ")]
    assert sources == [
        "source: site document 'post-orders.md' v1, section 'Post orders > Back yard at night'"
    ]


def test_no_relevant_section_or_no_knowledge_base_cites_nothing(
    stores: Stores,
    primary: FakeOpenAI,
    store_engine: Engine,
    tmp_path: Path,
    embedder: TextEmbedder,
) -> None:
    kb = _kb(store_engine, tmp_path / "search", embedder)
    worker = stores.worker(AlertAgent([_backend(primary, "a")]))
    worker.site_docs = kb_lookup(kb, k=2, min_score=0.99)  # nothing is that close
    ev = _event(6)
    stores.events.upsert(ev)
    _rules(stores)(ev)
    assert run(worker.run_once()) is True
    assert "site document" not in _prompt_text(primary)
    alert = stores.alerts.by_event(ev.id)
    assert alert is not None and alert.decided_by == DecidedBy.LLM
    assert not [r for r in alert.reasons if r.startswith("source: ")]

    def broken(query: str) -> list[KbHit]:
        raise IndexUnavailableError("the search indexer is not running")

    worker.site_docs = broken  # an unavailable knowledge base does not fail the alert
    ev = _event(7)
    stores.events.upsert(ev)
    _rules(stores)(ev)
    assert run(worker.run_once()) is True
    alert = stores.alerts.by_event(ev.id)
    assert alert is not None and alert.decided_by == DecidedBy.LLM and alert.llm_status == "done"
