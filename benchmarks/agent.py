"""Alert agent throughput: decisions per minute with the embedded model, agent vs. bare runner.

The agent side is the real pipeline: :class:`AlertAgent` with the default "embedded" backend
(``BackendSettings`` defaults: ``max_tokens`` 256, temperature 0) over the Serve ``LLM``
deployment's handle, deciding realistic synthetic :class:`EventContext` s with the default prompt
(``DEFAULT_SYSTEM_PROMPT`` / ``DEFAULT_USER_TEMPLATE``): langchain messages, the handle call,
the backend router, ``parse_decision`` and its one retry when the output does not parse.

The baseline sends the same requests straight to a :class:`LlamaRunner` in this process (same
GGUF, threads and context size) and parses with the same rule (one retry): the body is built by
the agent's own chat model (``ServeChatModel.request_body`` over ``prompt_messages``), so both
sides send the same messages, ``max_tokens``, temperature and ``response_format`` (the decision
JSON schema, which constrains decoding). Every request the agent sends through the handle is
recorded and checked equal to the baseline's, so the ratio measures Serve + langchain overhead
and nothing else. Each event is decided on both sides back to back, in
ABBA order across events, in one process and one Ray cluster, so load from anything else on
the machine hits both alike. Latency is the wall time of a whole decision (retries included).

Run: ``python -m benchmarks agent``.
"""

from __future__ import annotations

import asyncio
import os
import sys
import time
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from benchmarks.common import init_ray, median, percentile
from benchmarks.llm import gguf_model
from sentinel.agent.alert_agent import (
    AlertAgent,
    BackendConfig,
    ServeChatModel,
    prompt_messages,
)
from sentinel.config import BackendSettings, LlmSettings
from sentinel.domain.alerts import EventContext, PromptSpec
from sentinel.domain.prompts import DEFAULT_SYSTEM_PROMPT, DEFAULT_USER_TEMPLATE
from sentinel.domain.verdicts import DecisionParseError, parse_decision
from sentinel.models.llm_runner import LlamaRunner
from sentinel.serve.llm import build_llm

DECISIONS = 8  # per side
MIN_DECISIONS = 4
WARMUP_TOKENS = 4
BUDGET_S = 200.0  # no new event after this (a loaded machine): keeps the run under ~5 min
PROMPT = PromptSpec("default", "1", DEFAULT_SYSTEM_PROMPT, DEFAULT_USER_TEMPLATE)
SITE_NOTES = (
    "Warehouse and yard of a logistics company. Staff work 06:00-22:00 on weekdays; the gate "
    "is locked at night. Deliveries arrive at the loading dock 07:00-18:00. A security guard "
    "walks the perimeter around 23:00 and 03:00."
)
_T0 = datetime(2026, 11, 26, 0, 0, tzinfo=UTC)

# (camera id, name, description, label, score, start offset (min), dwell s, path, recent)
_SCENES: list[tuple[str, str, str, str, float, int, float, str, tuple[str, ...]]] = [
    (
        "cam-gate",
        "Main gate",
        "the locked vehicle gate and the fence beside it, from inside",
        "person",
        0.87,
        2 * 60 + 14,
        240.0,
        "entered at the right edge by the fence, walked along the fence, stopped at the gate",
        (),
    ),
    (
        "cam-dock",
        "Loading dock",
        "the loading dock with two roll-up doors and a ramp",
        "truck",
        0.93,
        9 * 60 + 5,
        610.0,
        "drove in from the left and parked at door 2; still parked when last seen",
        ("08:20 truck at door 1 for 14 minutes", "08:41 person at door 1 for 3 minutes"),
    ),
    (
        "cam-yard",
        "Yard north",
        "the north yard with stacked pallets and the staff car park",
        "person",
        0.64,
        3 * 60 + 2,
        35.0,
        "crossed the yard from the pallets to the fence, left at the top edge",
        ("03:01 person for 20 seconds (guard round)",),
    ),
    (
        "cam-office",
        "Office entrance",
        "the glass door of the office building and its steps",
        "person",
        0.91,
        12 * 60 + 30,
        12.0,
        "came up the steps and went in through the door",
        ("12:10 person for 8 seconds", "12:22 person for 6 seconds"),
    ),
    (
        "cam-carpark",
        "Staff car park",
        "twelve parking bays next to the office",
        "car",
        0.88,
        23 * 60 + 48,
        900.0,
        "entered from the road, parked in bay 7, engine off; nobody got out",
        (),
    ),
    (
        "cam-fence",
        "East fence",
        "the east perimeter fence and the field beyond it",
        "person",
        0.72,
        1 * 60 + 37,
        95.0,
        "appeared on the field side, stood at the fence, moved along it slowly to the corner",
        ("01:12 person for 40 seconds on the field side",),
    ),
    (
        "cam-dock",
        "Loading dock",
        "the loading dock with two roll-up doors and a ramp",
        "person",
        0.81,
        22 * 60 + 55,
        180.0,
        "walked up the ramp to door 1 and stayed there, then walked back down",
        ("22:30 person for 2 minutes at door 2",),
    ),
    (
        "cam-yard",
        "Yard north",
        "the north yard with stacked pallets and the staff car park",
        "bicycle",
        0.58,
        15 * 60 + 3,
        20.0,
        "rode along the car park lane and left at the bottom edge",
        (),
    ),
    (  # warm-up only
        "cam-gate",
        "Main gate",
        "the locked vehicle gate and the fence beside it, from inside",
        "car",
        0.9,
        7 * 60 + 50,
        45.0,
        "drove up to the gate, waited, drove through when it opened",
        (),
    ),
]


def contexts() -> list[EventContext]:
    """The events to decide (the last is the warm-up)."""
    out: list[EventContext] = []
    for i, (cam, name, desc, label, score, minute, dwell, path, recent) in enumerate(_SCENES):
        start = _T0 + timedelta(minutes=minute)
        out.append(
            EventContext(
                event_id=str(uuid.UUID(int=i + 1)),
                camera_id=cam,
                camera_name=name,
                camera_description=desc,
                label=label,
                score=score,
                started_at=start,
                last_seen_at=start + timedelta(seconds=dwell),
                ended_at=start + timedelta(seconds=dwell + 5),
                local_time=start.strftime("%A %H:%M"),
                dwell_s=dwell,
                path_summary=path,
                recent_events=recent,
                site_notes=SITE_NOTES,
            )
        )
    return out


@dataclass(frozen=True)
class _Decision:
    seconds: float
    ok: bool
    alert: bool | None
    severity: str | None
    parse_failures: int
    completion_tokens: int | None


@dataclass
class _Side:
    decisions: list[_Decision] = field(default_factory=list)

    @property
    def seconds(self) -> float:
        return sum(d.seconds for d in self.decisions)

    @property
    def per_minute(self) -> float:
        return 60.0 * len(self.decisions) / self.seconds

    def summary(self) -> str:
        latencies = [d.seconds for d in self.decisions]
        tokens = [d.completion_tokens for d in self.decisions if d.completion_tokens is not None]
        mean_tokens = sum(tokens) / len(tokens) if tokens else 0.0
        return (
            f"{self.per_minute:.1f} decisions/min, latency p50 {median(latencies):.2f} s, "
            f"p95 {percentile(latencies, 95):.2f} s, parse failures "
            f"{sum(d.parse_failures for d in self.decisions)}, decided "
            f"{sum(d.ok for d in self.decisions)}/{len(self.decisions)}, mean completion "
            f"tokens {mean_tokens:.0f}"
        )


async def _agent_decision(agent: AlertAgent, ctx: EventContext) -> _Decision:
    start = time.perf_counter()
    outcome = await agent.decide(ctx, PROMPT)
    seconds = time.perf_counter() - start
    d = outcome.decision
    if d is None:
        print(f"agent: agent side: no decision for {ctx.event_id}: {outcome.error}", flush=True)
    return _Decision(
        seconds,
        d is not None,
        d.alert if d else None,
        d.severity.value if d else None,
        outcome.parse_failures,
        d.completion_tokens if d else None,
    )


class RecordingHandle:
    """The LLM deployment's handle, recording each request body the agent sends through it."""

    def __init__(self, handle: Any) -> None:
        self.handle = handle
        self.requests: list[dict[str, Any]] = []
        self.chat = self  # the agent calls ``handle.chat.remote(body)``

    def remote(self, request: dict[str, Any]) -> Any:
        self.requests.append(dict(request))
        return self.handle.chat.remote(request)


def _request(agent: AlertAgent, backend: BackendConfig, ctx: EventContext) -> dict[str, Any]:
    """The body the agent's embedded backend sends for ``ctx``, built by that backend."""
    model = agent.models[backend.name]
    if not isinstance(model, ServeChatModel):
        raise TypeError(f"backend {backend.name} is not the embedded model: {type(model)}")
    return model.request_body(prompt_messages(ctx, PROMPT))


def _runner_decision(runner: LlamaRunner, request: dict[str, Any]) -> _Decision:
    """What the agent does for one event, straight on the runner (same request, same retry)."""
    start = time.perf_counter()
    failures = 0
    for _attempt in range(2):
        result = runner.chat(dict(request))
        tokens = int(result["usage"]["completion_tokens"])
        try:
            parsed = parse_decision(str(result["choices"][0]["message"]["content"]))
        except DecisionParseError:
            failures += 1
            continue
        seconds = time.perf_counter() - start
        return _Decision(seconds, True, parsed.alert, parsed.severity.value, failures, tokens)
    return _Decision(time.perf_counter() - start, False, None, None, failures, None)


async def _compare(
    agent: AlertAgent,
    handle: Any,
    recorded: RecordingHandle,
    runner: LlamaRunner,
    backend: BackendConfig,
) -> None:
    *events, warmup = contexts()
    # Warm-up: short completions of a full prompt load the weights, fill llama.cpp's prompt
    # cache with the shared system prompt on both sides and build the handle's router.
    request = _request(agent, backend, warmup)
    request["max_tokens"] = WARMUP_TOKENS
    runner.chat(dict(request))
    await handle.chat.remote(dict(request))

    served, bare = _Side(), _Side()
    deadline = time.monotonic() + BUDGET_S
    for i, ctx in enumerate(events[:DECISIONS]):
        if i >= MIN_DECISIONS and time.monotonic() > deadline:
            print(f"agent: time budget spent, stopping after {i} events", flush=True)
            break
        order = ("bare", "agent") if i % 2 == 0 else ("agent", "bare")
        request = _request(agent, backend, ctx)
        recorded.requests.clear()
        for side in order:
            if side == "bare":
                bare.decisions.append(_runner_decision(runner, request))
            else:
                served.decisions.append(await _agent_decision(agent, ctx))
        if not recorded.requests or any(r != request for r in recorded.requests):
            raise AssertionError(
                f"the agent sent {recorded.requests!r}, the baseline {request!r}: unlike work"
            )
        a, b = served.decisions[-1], bare.decisions[-1]
        print(
            f"agent: event {i + 1} ({ctx.label} on {ctx.camera_name}): agent {a.seconds:.2f} s "
            f"-> alert={a.alert} {a.severity}, runner {b.seconds:.2f} s -> alert={b.alert} "
            f"{b.severity}",
            flush=True,
        )

    paired = median(
        [b.seconds / a.seconds for a, b in zip(served.decisions, bare.decisions, strict=True)]
    )
    same = sum(
        (a.alert, a.severity) == (b.alert, b.severity)
        for a, b in zip(served.decisions, bare.decisions, strict=True)
    )
    print(f"agent: agent via Serve: {served.summary()}")
    print(f"agent: bare runner:     {bare.summary()}")
    print(
        f"agent: decisions/min agent via Serve {served.per_minute:.1f}, bare runner "
        f"{bare.per_minute:.1f}, ratio {served.per_minute / bare.per_minute:.2f} "
        f"(median paired ratio {paired:.2f}); same alert+severity on both sides "
        f"{same}/{len(served.decisions)}; max_tokens {backend.max_tokens}, response_format "
        f"{request_format(agent, backend)} on both sides, load average "
        f"{os.getloadavg()[0]:.1f}"
    )


def request_format(agent: AlertAgent, backend: BackendConfig) -> str:
    fmt = _request(agent, backend, contexts()[0]).get("response_format")
    return str(fmt["type"]) if isinstance(fmt, dict) else "none"


def run(_model_path: Path | None = None) -> None:
    """Runs the comparison (the ONNX path ``benchmarks.__main__`` passes is not used)."""
    import ray
    from ray import serve

    llm = LlmSettings()
    backend = BackendConfig.from_settings(BackendSettings(name="embedded", kind="embedded"))
    with gguf_model() as path:
        runner = LlamaRunner(path, threads=llm.threads, ctx_size=llm.ctx_size)
        init_ray(f"sentinel-bench-{uuid.uuid4().hex[:8]}")
        try:
            serve.start(proxy_location="Disabled")
            handle = serve.run(
                build_llm(path, threads=llm.threads, num_cpus=0, ctx_size=llm.ctx_size),
                name="agent-bench-llm",
                route_prefix=None,
            )
            recorded = RecordingHandle(handle)
            agent = AlertAgent([backend], llm_handle=recorded)
            asyncio.run(_compare(agent, handle, recorded, runner, backend))
        finally:  # the cluster is private to this run: shutting Ray down removes Serve with it
            ray.shutdown()


def main() -> int:
    start = time.monotonic()
    run()
    print(f"agent: took {time.monotonic() - start:.0f} s", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
