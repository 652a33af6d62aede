"""``python -m benchmarks [NAME ...]``: runs the named benchmarks (all by default: detector,
ingest, pipeline, quiet, tracking, regions, rules, llm, gateway, ingress, agent, agent_quality,
demo, dashboard, recording, rules_backtest, capacity, search, search_serve, voice, notify,
training, mining, learning_loop, faces, blur, retention, encryption) in that order.
Exit status 0 even when a target is missed (the line says MISSED); non-zero when a benchmark
fails to run."""

from __future__ import annotations

import contextlib
import sys
import time
from collections.abc import Callable
from pathlib import Path

from benchmarks import (
    agent,
    agent_quality,
    blur,
    capacity,
    dashboard,
    demo,
    detector,
    encryption,
    faces,
    gateway,
    ingest,
    ingress,
    learning_loop,
    llm,
    mining,
    notify,
    pipeline,
    quiet,
    recording,
    regions,
    retention,
    rules,
    rules_backtest,
    search,
    tracking,
    training,
    voice,
)
from benchmarks.common import onnx_model

BENCHMARKS: dict[str, Callable[[Path], None]] = {
    "detector": detector.run,
    "ingest": ingest.run,
    "pipeline": pipeline.run,
    "quiet": quiet.run,
    "tracking": tracking.run,
    "regions": regions.run,
    "rules": rules.run,
    "llm": llm.run,
    "gateway": gateway.run,
    "ingress": ingress.run,
    "agent": agent.run,
    "agent_quality": agent_quality.run,
    "demo": demo.run,
    "dashboard": dashboard.run,
    "recording": recording.run,
    "rules_backtest": rules_backtest.run,
    "capacity": capacity.run,
    "search": search.run,
    "search_serve": search.run_serve,
    "voice": voice.run,
    "notify": notify.run,
    "training": training.run,
    "mining": mining.run,
    "learning_loop": learning_loop.run,
    "faces": faces.run,
    "blur": blur.run,
    "retention": retention.run,
    "encryption": encryption.run,
}
NEEDS_MODEL = {
    "detector",
    "pipeline",
    "quiet",
    "tracking",
    "regions",
    "rules",
    "mining",
    "learning_loop",
}


def main(argv: list[str]) -> int:
    names = argv or list(BENCHMARKS)
    unknown = [n for n in names if n not in BENCHMARKS]
    if unknown:
        print(
            f"unknown benchmark(s) {', '.join(unknown)}; choose from {', '.join(BENCHMARKS)}",
            file=sys.stderr,
        )
        return 2
    with contextlib.ExitStack() as stack:
        model = stack.enter_context(onnx_model()) if NEEDS_MODEL & set(names) else Path()
        for name in names:
            start = time.monotonic()
            print(f"== {name}", flush=True)
            BENCHMARKS[name](model)
            print(f"== {name} took {time.monotonic() - start:.0f} s", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
