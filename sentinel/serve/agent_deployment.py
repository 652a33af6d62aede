"""The Agent deployment: the AlertAgent on Ray Serve, next to the embedded LLM."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

from ray import serve
from ray.serve.handle import DeploymentHandle

from sentinel.agent.alert_agent import AlertAgent, BackendConfig
from sentinel.config import AgentSettings
from sentinel.domain.alerts import AgentOutcome, EventContext, PromptSpec


@serve.deployment(name="Agent", max_ongoing_requests=32, ray_actor_options={"num_cpus": 0})
class AgentDeployment:
    """Decides on events; the breaker and budget state live here (one replica by default)."""

    def __init__(self, agent: dict[str, Any], llm: DeploymentHandle[Any] | None) -> None:
        settings = AgentSettings(**agent)
        self.agent = AlertAgent(
            [BackendConfig.from_settings(b) for b in settings.backends],
            llm_handle=llm,
            daily_token_budget=settings.daily_token_budget,
        )

    async def decide(self, ctx: EventContext, prompt: PromptSpec) -> AgentOutcome:
        return await self.agent.decide(ctx, prompt)

    async def answer_stream(self, messages: list[dict[str, str]], key: str) -> AsyncIterator[str]:
        """Ask's answers: free text through the same breakers and token budget (a generator:
        call through a ``stream=True`` handle)."""
        async for piece in self.agent.stream_text(messages, key):
            yield piece

    def backends(self) -> list[dict[str, Any]]:
        return self.agent.health()
