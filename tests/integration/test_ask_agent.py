"""Ask's text through the alert agent's router, over fake OpenAI servers (real HTTP, streamed):
failover, the shared token budget, and no call once it is spent."""

from __future__ import annotations

import asyncio

import pytest

from sentinel.agent.alert_agent import AlertAgent, BackendConfig, NoBackendError
from tests.utils.fake_openai import fake_openai_server

MESSAGES = [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "What now?"}]


def _collect(agent: AlertAgent) -> str:
    async def run() -> str:
        return "".join([p async for p in agent.stream_text(MESSAGES, "question")])

    return asyncio.run(run())


def test_failover_before_the_first_chunk() -> None:
    with (
        fake_openai_server(mode="fail") as primary,
        fake_openai_server(content="All quiet at the gate.") as secondary,
    ):
        agent = AlertAgent(
            [
                BackendConfig("primary", base_url=primary.base_url, priority=0),
                BackendConfig("secondary", base_url=secondary.base_url, priority=1),
            ]
        )
        assert _collect(agent) == "All quiet at the gate."
        health = {h["name"]: h for h in agent.health()}
        assert health["primary"]["failures"] == 1 and health["secondary"]["successes"] == 1
        body = secondary.requests[-1]
        assert body["stream"] is True and "response_format" not in body  # free text


def test_the_token_budget_is_shared_and_stops_calls() -> None:
    with fake_openai_server(content="one two three four five") as fake:
        agent = AlertAgent([BackendConfig("f", base_url=fake.base_url)], daily_token_budget=5)
        assert _collect(agent) == "one two three four five"
        assert agent.router.budget is not None and agent.router.budget.spent >= 5
        with pytest.raises(NoBackendError, match="budget"):
            _collect(agent)
        assert fake.request_count == 1
