"""Child process of the ingest benchmark: ``python -m benchmarks._ingest_child MODE VIDEO``.

MODE ``imports`` only imports what a camera process imports (the interpreter + import baseline);
``camera`` also runs a :class:`CameraRunner` over VIDEO, detector off, as fast as it decodes,
with a sink that discards changes; ``profile`` does the same under cProfile (reader thread and
event loop profiled separately) and prints where the CPU time goes. Prints one JSON line.
"""

from __future__ import annotations

import asyncio
import cProfile
import io
import json
import pstats
import resource
import sys
import threading
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray

# The same modules the camera process needs, imported in every mode so that ``imports``
# measures exactly the start-up part of ``camera``.
from sentinel.actors.runner import CameraRunner
from sentinel.config import CameraConfig
from sentinel.domain.types import EventChange

CAMERA = dict(id="bench", detect=False, realtime=False, detect_fps=5.0)


class _DiscardSink:
    def apply(self, changes: Sequence[EventChange], rgb: NDArray[np.uint8] | None) -> None:
        del changes, rgb


def _cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)  # all threads of this process
    return usage.ru_utime + usage.ru_stime


def _runner(video: Path) -> CameraRunner:
    camera = CameraConfig(source=str(video), **CAMERA)
    return CameraRunner(camera, detect=None, sink=_DiscardSink(), epoch="bench")


def _camera(video: Path) -> dict[str, Any]:
    runner = _runner(video)
    cpu0, wall0 = _cpu(), time.perf_counter()
    state = asyncio.run(runner.run())
    cpu, wall = _cpu() - cpu0, time.perf_counter() - wall0
    counters = runner.stats.counters
    return {
        "state": str(state),
        "run_cpu_s": cpu,
        "run_wall_s": wall,
        "frames_decoded": counters.frames_decoded,
        "frames_sampled": counters.frames_sampled,
        "fps": runner.stats.fps,
    }


def _profile(video: Path, top: int = 25) -> dict[str, Any]:
    runner = _runner(video)
    reader_prof, loop_prof = cProfile.Profile(), cProfile.Profile()
    read = runner._read

    def profiled_read(*args: Any) -> None:
        reader_prof.enable()
        try:
            read(*args)
        finally:
            reader_prof.disable()

    runner._read = profiled_read  # type: ignore[method-assign,assignment]
    cpu0 = _cpu()
    loop_prof.enable()
    asyncio.run(runner.run())
    loop_prof.disable()
    cpu = _cpu() - cpu0
    report: dict[str, Any] = {"run_cpu_s": cpu}
    for name, prof in (("reader thread", reader_prof), ("event loop thread", loop_prof)):
        out = io.StringIO()
        stats = pstats.Stats(prof, stream=out)
        stats.sort_stats("tottime").print_stats(top)
        report[name] = out.getvalue()
    return report


def main(argv: list[str]) -> int:
    mode, video = argv[0], Path(argv[1])
    if mode == "imports":
        result: dict[str, Any] = {"threads": threading.active_count()}
    elif mode == "camera":
        result = _camera(video)
    elif mode == "profile":
        report = _profile(video)
        for key in ("reader thread", "event loop thread"):
            print(f"--- cProfile, {key} (sorted by own time)\n{report.pop(key)}", file=sys.stderr)
        result = report
    else:
        print(f"unknown mode {mode!r}", file=sys.stderr)
        return 2
    print(json.dumps(result), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
