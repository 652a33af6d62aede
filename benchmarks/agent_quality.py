"""Alert quality on truth: rules alone vs. rules then the agent, on labelled scenarios.

The scenarios (``benchmarks/data/agent_scenarios.yaml``, at least 80: night intrusion, daytime
passers-by, deliveries, loitering, vehicles on footpaths, staff in working hours, crowds,
animals, false detections, guard rounds, vehicles at night, after hours) each give a camera's
context and rule policy, the facts of one incident and what a careful operator expects. The file
is validated strictly: one that does not validate stops the benchmark with the reason.

Sides, scored in one run:
- ``rules``: each camera's own rule policy — the bare baseline every ratio is taken against;
- ``agent:<backend>``: the product's path, rules first and the agent (:class:`AlertAgent` with
  the default prompt) on what the rules alert on: the agent keeps or re-grades the alert, or
  withdraws it; when its answer is unparseable or unfaithful twice, the rule decision stands
  and the fallback's reason is counted;
- ``alone:<backend>``: the same agent answers on every scenario (what the rules hide from it).

Printed per side: precision, recall and F1 of the alert decision, severity accuracy on true
positives (exact and within one level), the faithfulness rate of emitted summaries (every
number, time and label of the summary is in the facts, checked by
:func:`sentinel.domain.faithfulness.unsupported_claims`), fallbacks with their reasons, and for
the model the raw faithfulness of its parsed answers before the guard. Targets: agent F1 ≥ rules
F1 + 0.10 and faithfulness ≥ 0.95.

Backends: the embedded model (the bundled GGUF on an in-process :class:`LlamaRunner`, the same
langchain path as the LLM deployment's handle) unless ``--no-embedded``, plus any
OpenAI-compatible endpoint with ``--backend NAME=URL[@MODEL]``.

Run: ``python -m benchmarks.agent_quality [--limit N] [--every N] [--backend NAME=URL[@MODEL]]``
(``python -m benchmarks agent_quality`` runs it with the defaults).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import sys
import time
from collections import Counter
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from benchmarks.common import median, percentile, verdict
from benchmarks.llm import gguf_model
from sentinel.agent.alert_agent import AlertAgent, BackendConfig
from sentinel.agent.evaluation import (
    Judged,
    Scenario,
    Scores,
    context_of,
    load_scenarios,
    rules_decision,
    score,
)
from sentinel.config import BackendSettings
from sentinel.domain.alerts import AgentOutcome, PromptSpec, Severity
from sentinel.domain.prompts import DEFAULT_SYSTEM_PROMPT, DEFAULT_USER_TEMPLATE, render
from sentinel.models.llm_runner import LlamaRunner

SCENARIOS = Path(__file__).parent / "data" / "agent_scenarios.yaml"
PROMPT = PromptSpec("default", "builtin", DEFAULT_SYSTEM_PROMPT, DEFAULT_USER_TEMPLATE)
F1_MARGIN = 0.10
FAITHFULNESS_TARGET = 0.95


class _InProcessMethod:
    """``handle.chat.remote(request)`` over a runner in this process (no Ray needed)."""

    def __init__(self, runner: LlamaRunner) -> None:
        self._runner = runner

    async def remote(self, request: dict[str, Any]) -> dict[str, Any]:
        return await asyncio.to_thread(self._runner.chat, request)


class _InProcessHandle:
    def __init__(self, runner: LlamaRunner) -> None:
        self.chat = _InProcessMethod(runner)


@dataclass
class _Run:
    """The agent's outcomes for every scenario on one backend."""

    name: str
    decides: bool  # the backend's configured authority: decide, or only summarise
    outcomes: list[AgentOutcome] = field(default_factory=list)
    latencies_s: list[float] = field(default_factory=list)


def _facts(scenario: Scenario) -> str:
    return render(PROMPT.template, context_of(scenario).variables())


def _rules(scenarios: Sequence[Scenario]) -> list[Judged]:
    judged = []
    for s in scenarios:
        d = rules_decision(s)
        judged.append(Judged(s, d is not None, d.severity if d else Severity.INFO))
    return judged


def _with_agent(
    scenarios: Sequence[Scenario], run: _Run, *, gated: bool, decides: bool = True
) -> list[Judged]:
    judged = []
    for s, out in zip(scenarios, run.outcomes, strict=True):
        rule = rules_decision(s)
        if gated and rule is None:
            judged.append(Judged(s, False, Severity.INFO))  # the agent is never asked
        elif out.decision is not None and not decides and rule is not None:
            # A summarising backend: the rule decision stands, in the model's words.
            judged.append(Judged(s, True, rule.severity, out.decision.summary))
        elif out.decision is not None:
            d = out.decision
            judged.append(Judged(s, d.alert, d.severity if d.alert else Severity.INFO, d.summary))
        elif rule is not None:
            judged.append(Judged(s, True, rule.severity, fallback=out.error or "no answer"))
        else:  # alone, no rule alert, no agent answer: nothing is raised
            judged.append(Judged(s, False, Severity.INFO, fallback=out.error or "no answer"))
    return judged


def _fallback_kind(error: str) -> str:
    if "unfaithful summary" in error:
        return "unfaithful"
    if "unparseable" in error:
        return "unparseable"
    return "backend error"


def _raw_faithfulness(run: _Run) -> tuple[int, int]:
    """(faithful, parsed) answers of the model before the guard: each unfaithful attempt is
    named in the outcome's error; each emitted decision passed the guard."""
    unfaithful = sum((o.error or "").count("unfaithful summary") for o in run.outcomes)
    emitted = sum(o.decision is not None for o in run.outcomes)
    return emitted, emitted + unfaithful


async def _decide_all(
    agent: AlertAgent, scenarios: Sequence[Scenario], name: str, *, decides: bool
) -> _Run:
    run = _Run(name, decides)
    for i, s in enumerate(scenarios, 1):
        started = time.perf_counter()
        out = await agent.decide(context_of(s), PROMPT)
        run.latencies_s.append(time.perf_counter() - started)
        run.outcomes.append(out)
        shown = (
            f"alert={out.decision.alert} {out.decision.severity.value}"
            if out.decision
            else f"rules stand ({_fallback_kind(out.error or '')})"
        )
        print(
            f"  {name} {i}/{len(scenarios)} {s.id}: {shown} "
            f"(expected alert={s.expected.alert} {s.expected.severity}, "
            f"{run.latencies_s[-1]:.1f} s)",
            flush=True,
        )
    return run


def _print_side(label: str, scores: Scores, baseline: Scores | None) -> None:
    ratio = f"  F1 ratio to rules {scores.f1 / baseline.f1:.2f}" if baseline else ""
    print(f"{label:<22} {scores.line()}{ratio}", flush=True)


def _report(scenarios: Sequence[Scenario], runs: Sequence[_Run]) -> None:
    facts = [_facts(s) for s in scenarios]
    base = score(_rules(scenarios), facts)
    print(
        f"agent_quality: {len(scenarios)} scenarios, {sum(s.expected.alert for s in scenarios)} "
        "expected alerts",
        flush=True,
    )
    _print_side("rules", base, None)
    for run in runs:
        piped = _with_agent(scenarios, run, gated=True)
        alone = _with_agent(scenarios, run, gated=False)
        s_piped = score(piped, facts)
        _print_side(f"agent:{run.name}", s_piped, base)
        _print_side(f"alone:{run.name}", score(alone, facts), base)
        product = score(_with_agent(scenarios, run, gated=True, decides=run.decides), facts)
        authority = "decide" if run.decides else "summarise"
        _print_side(f"product:{run.name}", product, base)
        print(
            f"  {run.name}: configured authority {authority} — "
            + (
                "its verdicts withdraw or re-grade rule alerts (the agent line)"
                if run.decides
                else "the rule decision stands and the model writes the summary"
            ),
            flush=True,
        )
        faithful, parsed = _raw_faithfulness(run)
        raw = faithful / parsed if parsed else float("nan")
        reasons = Counter(_fallback_kind(j.fallback) for j in piped if j.fallback is not None)
        print(
            f"  {run.name}: raw faithfulness of parsed answers {raw:.3f} ({faithful}/{parsed}); "
            f"fallbacks to the rule decision on the product path: {dict(reasons) or 'none'}; "
            f"latency p50 {median(run.latencies_s):.1f} s p95 "
            f"{percentile(run.latencies_s, 95):.1f} s",
            flush=True,
        )
        f1_ok = s_piped.f1 >= base.f1 + F1_MARGIN
        if not f1_ok and run.decides:
            print(
                f"  {run.name}: WARNING — configured to decide, but its verdicts miss the F1 "
                "target: set authority: summarise for this backend",
                flush=True,
            )
        faith_ok = s_piped.summaries == 0 or s_piped.faithfulness >= FAITHFULNESS_TARGET
        print(
            f"  {run.name}: F1 {s_piped.f1:.3f} vs rules {base.f1:.3f} + {F1_MARGIN} "
            f"{verdict(f1_ok)}; emitted faithfulness {s_piped.faithfulness:.3f} "
            f"{verdict(faith_ok)}; raw model faithfulness {raw:.3f} "
            f"{verdict(raw >= FAITHFULNESS_TARGET)}"
            + ("" if faith_ok and f1_ok else " — the rule decision stands where the model fails"),
            flush=True,
        )


def _parse_backend(text: str) -> BackendConfig:
    name, sep, rest = text.partition("=")
    if not sep or not rest:
        raise argparse.ArgumentTypeError(f"expected NAME=URL[@MODEL], got {text!r}")
    url, _, model = rest.partition("@")
    cfg = BackendSettings(name=name, base_url=url, model=model or "default")
    return BackendConfig(
        name=cfg.name,
        base_url=cfg.base_url,
        model=cfg.model,
        max_tokens=cfg.max_tokens,
        timeout_s=cfg.timeout_s,
    )


@contextlib.contextmanager
def _embedded_agent() -> Iterator[AlertAgent]:
    defaults = BackendSettings(name="embedded", kind="embedded")
    # Measured as a decider whatever its configured authority, so its verdicts are scored.
    with gguf_model() as path:
        runner = LlamaRunner(path, threads=2)
        backend = BackendConfig(
            name="embedded",
            kind="embedded",
            model=runner.model_alias,
            max_tokens=defaults.max_tokens,
            timeout_s=600.0,
        )
        yield AlertAgent([backend], llm_handle=_InProcessHandle(runner))


async def _main_async(args: argparse.Namespace) -> None:
    scenarios = load_scenarios(args.scenarios)[:: max(1, args.every)]
    if args.limit:
        scenarios = scenarios[: args.limit]
    runs: list[_Run] = []
    if not args.no_embedded:
        with _embedded_agent() as agent:
            configured = BackendSettings(name="embedded", kind="embedded").decides
            runs.append(await _decide_all(agent, scenarios, "embedded", decides=configured))
    for backend in args.backend:
        agent = AlertAgent([backend])
        runs.append(await _decide_all(agent, scenarios, backend.name, decides=backend.decides))
    _report(scenarios, runs)


def run(_model: Path | None = None, argv: Sequence[str] = ()) -> None:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.agent_quality")
    parser.add_argument("--scenarios", type=Path, default=SCENARIOS)
    parser.add_argument("--limit", type=int, default=0, help="first N scenarios only")
    parser.add_argument(
        "--every", type=int, default=1, help="every Nth scenario only (a sample of each kind)"
    )
    parser.add_argument("--no-embedded", action="store_true", help="skip the embedded model")
    parser.add_argument("--backend", type=_parse_backend, action="append", default=[])
    asyncio.run(_main_async(parser.parse_args(list(argv))))


if __name__ == "__main__":
    run(argv=sys.argv[1:])
