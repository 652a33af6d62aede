"""The agent benchmark compares like with like: its baseline sends the very request body the
agent sends through the LLM handle (messages, max_tokens, temperature, response_format)."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import pytest

from benchmarks import agent as bench
from sentinel.agent.alert_agent import AlertAgent, BackendConfig
from sentinel.config import BackendSettings
from sentinel.domain.verdicts import RESPONSE_FORMAT

DECISION = {
    "alert": True,
    "severity": "high",
    "summary": "a person at the locked gate at night",
    "reasons": ["after hours"],
    "recommended_action": "check the gate camera",
}


class AnsweringHandle:
    """Stands in for the LLM deployment's handle (unit tests start no Ray): one decision."""

    def __init__(self) -> None:
        self.chat = self

    async def _answer(self) -> dict[str, Any]:
        return {
            "choices": [{"message": {"role": "assistant", "content": json.dumps(DECISION)}}],
            "usage": {"prompt_tokens": 100, "completion_tokens": 40, "total_tokens": 140},
            "model": "qwen2.5-0.5b-instruct",
        }

    def remote(self, request: dict[str, Any]) -> Any:
        return self._answer()


@pytest.mark.parametrize("structured", [True, False])
def test_baseline_request_is_what_the_agent_sends(structured: bool) -> None:
    backend = BackendConfig.from_settings(
        BackendSettings(name="embedded", kind="embedded", structured=structured)
    )
    recorded = bench.RecordingHandle(AnsweringHandle())
    agent = AlertAgent([backend], llm_handle=recorded)
    for ctx in bench.contexts()[:3]:
        recorded.requests.clear()
        outcome = asyncio.run(agent.decide(ctx, bench.PROMPT))
        assert outcome.decision is not None and outcome.decision.alert is True
        baseline = bench._request(agent, backend, ctx)
        assert recorded.requests == [baseline]
        assert baseline["max_tokens"] == backend.max_tokens and baseline["temperature"] == 0.0
        assert [m["role"] for m in baseline["messages"]] == ["system", "user"]
        assert ctx.camera_name in baseline["messages"][1]["content"]
        if structured:
            assert baseline["response_format"] == RESPONSE_FORMAT
        else:
            assert "response_format" not in baseline
    assert bench.request_format(agent, backend) == ("json_schema" if structured else "none")
