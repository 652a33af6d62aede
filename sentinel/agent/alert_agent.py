"""The alert agent: an event in context → a validated decision, through langchain.

Backends are OpenAI-compatible chat models (langchain's ``ChatOpenAI``) or the embedded LLM
deployment (a langchain chat model over its Serve handle). The ``BackendRouter`` orders them
by priority and weight, skips those whose circuit breaker is open, and enforces the daily
token budget; output that does not parse is retried once on the same backend, then the
rule-based decision stands.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator, Mapping, Sequence
from dataclasses import asdict, dataclass, replace
from typing import Any

from langchain_core.language_models.chat_models import BaseChatModel
from langchain_core.messages import (
    AIMessage,
    AIMessageChunk,
    BaseMessage,
    HumanMessage,
    SystemMessage,
)
from langchain_core.outputs import ChatGeneration, ChatGenerationChunk, ChatResult
from pydantic import ConfigDict

from sentinel.config import BackendSettings
from sentinel.domain.alerts import (
    AgentOutcome,
    AlertDecision,
    DecidedBy,
    EventContext,
    PromptSpec,
    Severity,
)
from sentinel.domain.breaker import BackendRouter, BackendSpec, CircuitBreaker, TokenBudget
from sentinel.domain.faithfulness import unsupported_claims
from sentinel.domain.prompts import render
from sentinel.domain.verdicts import RESPONSE_FORMAT, DecisionParseError, parse_decision
from sentinel.models.llm_runner import await_or_cancel

logger = logging.getLogger(__name__)

_ROLE = {"system": "system", "human": "user", "ai": "assistant"}
_MESSAGE = {"system": SystemMessage, "user": HumanMessage, "assistant": AIMessage}


class NoBackendError(RuntimeError):
    """No backend gave an answer: breakers open, token budget spent, or every one failed."""


class ServeChatModel(BaseChatModel):
    """A langchain chat model backed by the embedded LLM deployment's handle."""

    model_config = ConfigDict(arbitrary_types_allowed=True)
    handle: Any
    model_name: str = "embedded"
    max_tokens: int = 256
    structured: bool = True

    @property
    def _llm_type(self) -> str:
        return "sentinel-serve"

    def request_body(self, messages: list[BaseMessage]) -> dict[str, Any]:
        """The OpenAI chat-completions body this model sends the deployment for ``messages``."""
        request: dict[str, Any] = {
            "model": self.model_name,
            "messages": [{"role": _ROLE[m.type], "content": str(m.content)} for m in messages],
            "max_tokens": self.max_tokens,
            "temperature": 0.0,
        }
        if self.structured:
            request["response_format"] = RESPONSE_FORMAT
        return request

    @staticmethod
    def _result(response: Mapping[str, Any]) -> ChatResult:
        content = response["choices"][0]["message"]["content"]
        usage = response.get("usage") or {}
        message = AIMessage(
            content=content,
            usage_metadata={
                "input_tokens": int(usage.get("prompt_tokens", 0)),
                "output_tokens": int(usage.get("completion_tokens", 0)),
                "total_tokens": int(usage.get("total_tokens", 0)),
            },
            response_metadata={"model_name": response.get("model", "embedded")},
        )
        return ChatResult(generations=[ChatGeneration(message=message)])

    def _generate(
        self, messages: list[BaseMessage], stop: Any = None, run_manager: Any = None, **kwargs: Any
    ) -> ChatResult:
        raise NotImplementedError("the embedded model is async-only: use ainvoke")

    async def _agenerate(
        self, messages: list[BaseMessage], stop: Any = None, run_manager: Any = None, **kwargs: Any
    ) -> ChatResult:
        response = await await_or_cancel(self.handle.chat.remote(self.request_body(messages)))
        return self._result(response)

    async def _astream(
        self, messages: list[BaseMessage], stop: Any = None, run_manager: Any = None, **kwargs: Any
    ) -> AsyncIterator[ChatGenerationChunk]:
        """The deployment's ``chat_stream`` (OpenAI chunks) as langchain chunks; the usage
        chunk at the end carries the token counts."""
        body = {**self.request_body(messages), "stream": True}
        body["stream_options"] = {"include_usage": True}
        chunks = self.handle.options(stream=True).chat_stream.remote(body)
        finished = False
        try:
            async for chunk in chunks:
                usage = chunk.get("usage") or {}
                choices = chunk.get("choices") or []
                delta = (choices[0].get("delta") or {}).get("content") if choices else None
                message = AIMessageChunk(content=delta or "")
                if usage:
                    message = AIMessageChunk(
                        content=delta or "",
                        usage_metadata={
                            "input_tokens": int(usage.get("prompt_tokens", 0)),
                            "output_tokens": int(usage.get("completion_tokens", 0)),
                            "total_tokens": int(usage.get("total_tokens", 0)),
                        },
                    )
                yield ChatGenerationChunk(message=message)
            finished = True
        finally:
            if not finished:  # the reader left: stop the replica generating for nobody
                chunks.cancel()


@dataclass(frozen=True)
class BackendConfig:
    """One chat backend: ``kind`` "openai" (any OpenAI-compatible URL) or "embedded"."""

    name: str
    kind: str = "openai"
    base_url: str | None = None
    model: str = "default"
    api_key: str = "not-needed"
    priority: int = 0
    weight: float = 1.0
    timeout_s: float = 30.0
    max_tokens: int = 256
    structured: bool = True
    decides: bool = True  # False: the rule decision stands, the backend writes the summary

    @classmethod
    def from_settings(cls, settings: BackendSettings) -> BackendConfig:
        """The backend as configured (``authority`` resolved to ``decides``)."""
        return cls(**settings.model_dump(exclude={"authority"}), decides=settings.decides)


def make_chat_model(cfg: BackendConfig, llm_handle: Any | None) -> BaseChatModel:
    if cfg.kind == "embedded":
        if llm_handle is None:
            raise ValueError(f"backend {cfg.name}: no embedded LLM deployment is running")
        return ServeChatModel(
            handle=llm_handle,
            model_name=cfg.model,
            max_tokens=cfg.max_tokens,
            structured=cfg.structured,
        )
    if cfg.kind != "openai" or not cfg.base_url:
        raise ValueError(f"backend {cfg.name}: kind must be openai (with base_url) or embedded")
    from langchain_openai import ChatOpenAI

    return ChatOpenAI(
        base_url=cfg.base_url,
        model=cfg.model,
        api_key=cfg.api_key,
        max_retries=0,  # retries and failover are the router's job
        timeout=cfg.timeout_s,
        max_completion_tokens=cfg.max_tokens,
        temperature=0.0,
        stream_usage=True,  # token counts of streamed answers (the budget counts them)
        # Constrained decoding where the server supports it (vLLM, OpenAI, llama.cpp).
        model_kwargs={"response_format": RESPONSE_FORMAT} if cfg.structured else {},
    )


def prompt_messages(ctx: EventContext, prompt: PromptSpec) -> list[BaseMessage]:
    """The messages the agent sends a backend about ``ctx``: the system prompt, then the
    rendered template."""
    return [SystemMessage(prompt.system), HumanMessage(render(prompt.template, ctx.variables()))]


def correction(messages: Sequence[BaseMessage], answer: str, problem: str) -> list[BaseMessage]:
    """The retry after a rejected answer: the same conversation, the answer, and what was
    wrong with it (a deterministic model asked the same question answers the same)."""
    return [
        *messages,
        AIMessage(answer),
        HumanMessage(
            f"Your answer was rejected. {problem} Answer again in the same JSON format; "
            "the summary may state only what the facts above state."
        ),
    ]


class AlertAgent:
    """Decides on events with the configured backends; no Ray here (tests drive it directly)."""

    def __init__(
        self,
        backends: Sequence[BackendConfig],
        *,
        llm_handle: Any | None = None,
        daily_token_budget: int | None = None,
        failure_threshold: int = 3,
        reset_after_s: float = 30.0,
    ) -> None:
        if not backends:
            raise ValueError("the agent needs at least one backend")
        self.configs = {b.name: b for b in backends}
        self.models = {b.name: make_chat_model(b, llm_handle) for b in backends}
        # Free text (ask's answers): the same backends without the decision's JSON format.
        self.text_models = {
            b.name: make_chat_model(replace(b, structured=False), llm_handle) for b in backends
        }
        self.router = BackendRouter(
            [BackendSpec(b.name, b.priority, b.weight, b.timeout_s) for b in backends],
            lambda: CircuitBreaker(
                failure_threshold=failure_threshold, reset_after_s=reset_after_s
            ),
            TokenBudget(daily_token_budget) if daily_token_budget else None,
        )

    async def decide(self, ctx: EventContext, prompt: PromptSpec) -> AgentOutcome:
        messages = prompt_messages(ctx, prompt)
        facts = str(messages[-1].content)
        errors: list[str] = []
        for name in self.router.order(ctx.event_id):
            cfg = self.configs[name]
            parse_failures = 0
            sent = messages
            for _attempt in range(2):  # one retry when the output does not parse
                started = time.perf_counter()
                try:
                    reply = await asyncio.wait_for(self.models[name].ainvoke(sent), cfg.timeout_s)
                except Exception as exc:  # timeouts, HTTP errors, bad JSON bodies
                    reason = f"{type(exc).__name__}: {exc}"[:300]
                    self.router.record(name, False)
                    self.router.record_error(name, reason)
                    errors.append(f"{name}: {reason}")
                    break  # next backend
                latency_ms = (time.perf_counter() - started) * 1000.0
                usage = getattr(reply, "usage_metadata", None) or {}
                prompt_tokens = int(usage.get("input_tokens", 0))
                completion_tokens = int(usage.get("output_tokens", 0))
                self.router.record(name, True, prompt_tokens + completion_tokens)
                try:
                    parsed = parse_decision(str(reply.content))
                except DecisionParseError as exc:
                    parse_failures += 1
                    errors.append(f"{name}: unparseable output ({exc})")
                    sent = correction(messages, str(reply.content), f"It did not parse: {exc}.")
                    continue
                unsupported = unsupported_claims(parsed.summary, facts)
                if unsupported:
                    # A summary stating what the facts do not hold is worse than the rule
                    # decision: retried once like unparseable output, then the rules stand.
                    parse_failures += 1
                    claims = ", ".join(str(u) for u in unsupported[:5])
                    errors.append(f"{name}: unfaithful summary ({claims} not in the facts)")
                    sent = correction(
                        messages,
                        str(reply.content),
                        f"Its summary states what the facts do not hold: {claims}.",
                    )
                    continue
                return AgentOutcome(
                    AlertDecision(
                        alert=parsed.alert,
                        severity=Severity(parsed.severity),
                        summary=parsed.summary,
                        reasons=tuple(parsed.reasons),
                        recommended_action=parsed.recommended_action,
                        decided_by=DecidedBy.LLM,
                        prompt_version=f"{prompt.name}@{prompt.version}",
                        model=cfg.model,
                        backend=name,
                        latency_ms=latency_ms,
                        prompt_tokens=prompt_tokens,
                        completion_tokens=completion_tokens,
                        parse_failures=parse_failures,
                    ),
                    parse_failures=parse_failures,
                    backend=name,
                    advisory=not cfg.decides,
                )
            else:
                # Two unparseable or unfaithful answers: the rule-based decision stands (no
                # failover: the backend works, the prompt or model is the problem; counted).
                return AgentOutcome(None, "; ".join(errors)[-500:], parse_failures, name)
        return AgentOutcome(
            None, "; ".join(errors)[-500:] or "no backend available", transient=True
        )

    async def stream_text(self, messages: list[dict[str, str]], key: str) -> AsyncIterator[str]:
        """Free text for chat ``messages`` (``{"role", "content"}``), streamed as written,
        through the same router: breakers, failover, the daily token budget.

        A backend that fails before its first chunk is recorded and the next one is tried;
        one that fails later ends the stream with its error (the text so far was sent).

        Raises:
            NoBackendError: Before any chunk, when no backend answered.
        """
        sent = [_MESSAGE[m["role"]](m["content"]) for m in messages]
        errors: list[str] = []
        for name in self.router.order(key):
            cfg = self.configs[name]
            model = self.text_models[name]
            chunks = model.astream(sent).__aiter__()
            tokens = 0
            started = False
            try:
                async with asyncio.timeout(cfg.timeout_s):
                    async for chunk in chunks:
                        usage = getattr(chunk, "usage_metadata", None) or {}
                        tokens += int(usage.get("total_tokens", 0))
                        text = chunk.content if isinstance(chunk.content, str) else ""
                        if text:
                            started = True
                            yield text
            except Exception as exc:  # timeouts, HTTP errors, bad bodies
                reason = f"{type(exc).__name__}: {exc}"[:300]
                self.router.record(name, False, tokens)
                self.router.record_error(name, reason)
                if started:
                    raise
                errors.append(f"{name}: {reason}")
                continue
            self.router.record(name, True, tokens)
            return
        raise NoBackendError(
            "; ".join(errors)[-500:] or "no backend available (breakers or budget)"
        )

    def health(self) -> list[dict[str, Any]]:
        return [asdict(h) for h in self.router.health()]
