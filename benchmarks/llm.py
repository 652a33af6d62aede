"""Embedded LLM throughput: the Serve ``LLM`` deployment through its handle vs. in-process.

Both sides run the same GGUF (the bundled Qwen2.5-Coder-0.5B-Instruct Q4_K_M) with the same
runner (:class:`LlamaRunner`), 2 threads, the same prompt, ``max_tokens`` and temperature 0,
so they generate the same tokens. Calls are sequential on each side (the model generates one
completion at a time) and the sides alternate in ABBA order in one process and one Ray cluster,
so load from anything else on the machine hits both alike.

Throughput is completion tokens over the wall time of the call (prompt evaluation included);
llama.cpp's own decode rate (``timings.predicted_per_second``) is printed beside it.

Run: ``python -m benchmarks.llm``.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from benchmarks.common import init_ray, median
from sentinel.models.gguf import QWEN_FILENAME, assemble_qwen_gguf
from sentinel.models.llm_runner import LlamaRunner
from sentinel.serve.llm import build_llm

THREADS = 2
CTX_SIZE = 2048
MAX_TOKENS = 64
ROUNDS = 4  # ABBA: in-process,serve / serve,in-process / ...
MIN_ROUNDS = 2
BUDGET_S = 180.0  # no new round after this (a loaded machine)
GGUF_NAME = QWEN_FILENAME
REQUEST: dict[str, Any] = {
    "model": "bench",
    "messages": [
        {"role": "system", "content": "You are a security operator. Be factual and brief."},
        {
            "role": "user",
            "content": "Camera 3 saw a person walk along the fence of the parking lot at "
            "02:14 and stay near a parked van for four minutes. Write a short incident note.",
        },
    ],
    "max_tokens": MAX_TOKENS,
    "temperature": 0,
}


@dataclass
class _Side:
    tokens: int = 0
    seconds: float = 0.0
    per_call: list[float] = field(default_factory=list)
    decode: list[float] = field(default_factory=list)
    contents: set[str] = field(default_factory=set)

    def add(self, result: dict[str, Any], seconds: float) -> None:
        tokens = int(result["usage"]["completion_tokens"])
        self.tokens += tokens
        self.seconds += seconds
        self.per_call.append(tokens / seconds)
        timings = result.get("timings") or {}
        if "predicted_per_second" in timings:
            self.decode.append(float(timings["predicted_per_second"]))
        self.contents.add(str(result["choices"][0]["message"]["content"]))

    @property
    def rate(self) -> float:
        return self.tokens / self.seconds


@contextlib.contextmanager
def gguf_model() -> Iterator[Path]:
    """``$SENTINEL_DATA_DIR/models/<gguf>`` when it exists with its ``.sha256``, else the
    bundled parts assembled into a temporary folder (~2 s)."""
    data_dir = os.environ.get("SENTINEL_DATA_DIR")
    if data_dir:
        path = Path(data_dir) / "models" / GGUF_NAME
        if path.is_file() and path.with_name(path.name + ".sha256").is_file():
            print(f"llm: reusing {path}", flush=True)
            yield path
            return
    with tempfile.TemporaryDirectory(prefix="sentinel-bench-llm-") as tmp:
        path = assemble_qwen_gguf(Path(tmp) / GGUF_NAME)
        print(f"llm: assembled bundled GGUF at {path}", flush=True)
        yield path


def _local_call(runner: LlamaRunner) -> tuple[dict[str, Any], float]:
    start = time.perf_counter()
    result = runner.chat(dict(REQUEST))
    return result, time.perf_counter() - start


async def _serve_call(handle: Any) -> tuple[dict[str, Any], float]:
    start = time.perf_counter()
    result: dict[str, Any] = await handle.chat.remote(dict(REQUEST))
    return result, time.perf_counter() - start


async def _compare(handle: Any, runner: LlamaRunner) -> None:
    # Warm-up: first calls fill caches and build the router.
    _local_call(runner)
    await _serve_call(handle)

    local, served = _Side(), _Side()
    deadline = time.monotonic() + BUDGET_S
    for rnd in range(ROUNDS):
        if rnd >= MIN_ROUNDS and time.monotonic() > deadline:
            print(f"llm: time budget spent, stopping after {rnd} rounds", flush=True)
            break
        order = ("local", "serve") if rnd % 2 == 0 else ("serve", "local")
        for side in order:
            if side == "local":
                local.add(*_local_call(runner))
            else:
                served.add(*await _serve_call(handle))
        print(
            f"llm: round {rnd + 1}: serve {served.per_call[-1]:.1f} tok/s, "
            f"in-process {local.per_call[-1]:.1f} tok/s",
            flush=True,
        )

    ratio = served.rate / local.rate
    paired = median([s / b for s, b in zip(served.per_call, local.per_call, strict=True)])
    print(
        f"llm: serve {served.rate:.1f} tok/s, in-process {local.rate:.1f} tok/s, ratio {ratio:.2f}"
    )
    print(
        f"llm: median paired ratio {paired:.2f}; llama.cpp decode rate (median) serve "
        f"{median(served.decode or [0.0]):.1f}, in-process {median(local.decode or [0.0]):.1f} "
        f"tok/s; {len(local.per_call)} calls per side, max_tokens {MAX_TOKENS}, "
        f"{THREADS} threads, load average {os.getloadavg()[0]:.1f}"
    )
    same = served.contents == local.contents and len(local.contents) == 1
    print(f"llm: identical output on both sides: {'yes' if same else 'NO'}")


def run(_model_path: Path | None = None) -> None:
    """Runs the comparison (the ONNX path ``benchmarks.__main__`` passes is not used)."""
    import ray
    from ray import serve

    with gguf_model() as path:
        runner = LlamaRunner(path, threads=THREADS, ctx_size=CTX_SIZE)
        print(f"llm: in-process load {runner.load_s:.2f} s", flush=True)
        init_ray(f"sentinel-bench-{uuid.uuid4().hex[:8]}")
        try:
            serve.start(proxy_location="Disabled")
            start = time.perf_counter()
            handle = serve.run(
                build_llm(path, threads=THREADS, num_cpus=0, ctx_size=CTX_SIZE),
                name="llm-bench",
                route_prefix=None,
            )
            print(f"llm: serve.run {time.perf_counter() - start:.2f} s", flush=True)
            asyncio.run(_compare(handle, runner))
        finally:  # the cluster is private to this run: shutting Ray down removes Serve with it
            ray.shutdown()


def main() -> int:
    start = time.monotonic()
    run()
    print(f"llm: took {time.monotonic() - start:.0f} s", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
