"""Ingest cost: CPU-seconds per video-second of a camera (detector off) vs. ffmpeg decoding.

The camera side runs the CameraActor's loop (:class:`CameraRunner`, the whole of the actor but
the Ray adapter) in a child process on the sample clip with ``detect=False, realtime=False,
detect_fps=5`` and a sink that discards changes. The baseline is
``ffmpeg -threads 1 -i clip -f null -`` (one decoder thread, as the camera's decoder).

CPU time of each child comes from ``wait4`` (user + system, all threads). A camera process also
pays for starting Python and importing Sentinel, Ray, PyAV and numpy, which a long-running actor
pays once: a third child that only does those imports is measured too and subtracted. The child
also reports the CPU it spent inside ``runner.run()`` alone (``getrusage`` around the call).
The three children run interleaved, ``ROUNDS`` times, in rotating order; medians are reported.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

from benchmarks.common import BenchmarkError, median, sample_video, verdict

TARGET_RATIO = 1.2
ROUNDS = 5
_BENCH_LINE = re.compile(r"bench: utime=([\d.]+)s stime=([\d.]+)s rtime=([\d.]+)s")


@dataclass(frozen=True)
class ChildRun:
    cpu_s: float
    wall_s: float
    stdout: str
    stderr: str


def run_child(cmd: list[str], *, timeout_s: float = 300.0) -> ChildRun:
    """Runs ``cmd`` and returns its own CPU time (``wait4`` rusage), wall time and output."""
    start = time.perf_counter()
    proc = subprocess.Popen(
        cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, stdin=subprocess.DEVNULL
    )
    chunks: dict[str, str] = {}

    def drain(name: str, stream: IO[str]) -> None:
        chunks[name] = stream.read()

    assert proc.stdout is not None and proc.stderr is not None
    readers = [
        threading.Thread(target=drain, args=("out", proc.stdout), daemon=True),
        threading.Thread(target=drain, args=("err", proc.stderr), daemon=True),
    ]
    for t in readers:
        t.start()
    timer = threading.Timer(timeout_s, proc.kill)
    timer.start()
    try:
        _, status, usage = os.wait4(proc.pid, 0)
    finally:
        timer.cancel()
    wall = time.perf_counter() - start
    proc.returncode = os.waitstatus_to_exitcode(status)
    for t in readers:
        t.join()
    proc.stdout.close()
    proc.stderr.close()
    out, err = chunks.get("out", ""), chunks.get("err", "")
    if proc.returncode != 0:
        raise BenchmarkError(f"{cmd[0]} failed with exit code {proc.returncode}: {err[-2000:]}")
    return ChildRun(usage.ru_utime + usage.ru_stime, wall, out, err)


def _child_cmd(mode: str, video: Path) -> list[str]:
    return [sys.executable, "-m", "benchmarks._ingest_child", mode, str(video)]


def _ffmpeg_cmd(video: Path) -> list[str]:
    ffmpeg = shutil.which("ffmpeg")
    if ffmpeg is None:
        raise BenchmarkError("ffmpeg not found: `apt-get install ffmpeg`")
    return [ffmpeg, "-hide_banner", "-nostdin", "-benchmark", "-threads", "1", "-i", str(video),
            "-f", "null", "-"]  # fmt: skip


def _last_json(text: str) -> dict[str, Any]:
    data: dict[str, Any] = json.loads(text.strip().splitlines()[-1])
    return data


def run(model_path: Path | None = None) -> None:
    """Prints the figures; ``model_path`` is unused (the detector is off here)."""
    del model_path
    video = sample_video()
    cmds = {
        "ffmpeg": _ffmpeg_cmd(video),
        "imports": _child_cmd("imports", video),
        "camera": _child_cmd("camera", video),
    }
    cpu: dict[str, list[float]] = {name: [] for name in cmds}
    ffmpeg_utime: list[float] = []
    run_cpu: list[float] = []
    info: dict[str, Any] = {}
    names = list(cmds)
    for rnd in range(ROUNDS):
        for name in names[rnd % 3 :] + names[: rnd % 3]:
            child = run_child(cmds[name])
            cpu[name].append(child.cpu_s)
            if name == "ffmpeg":
                match = _BENCH_LINE.search(child.stderr)
                if match:
                    ffmpeg_utime.append(float(match.group(1)) + float(match.group(2)))
            elif name == "camera":
                info = _last_json(child.stdout)
                if info["state"] != "finished":
                    raise BenchmarkError(f"camera ended {info['state']}, not finished")
                run_cpu.append(float(info["run_cpu_s"]))
        print(
            f"ingest: round {rnd + 1}/{ROUNDS}: ffmpeg {cpu['ffmpeg'][-1]:.2f} CPU-s, "
            f"camera {cpu['camera'][-1]:.2f} CPU-s, imports-only {cpu['imports'][-1]:.2f} CPU-s",
            flush=True,
        )

    video_s = info["frames_decoded"] / info["fps"]
    ff = median(cpu["ffmpeg"]) / video_s
    raw = median(cpu["camera"]) / video_s
    imports = median(cpu["imports"])
    corrected = median([c - i for c, i in zip(cpu["camera"], cpu["imports"], strict=True)])
    corrected /= video_s
    in_run = median(run_cpu) / video_s
    ratio = corrected / ff
    print(
        f"ingest: clip {video.name}: {info['frames_decoded']} frames, {video_s:.1f} video-s, "
        f"{info['frames_sampled']} sampled at 5 fps; medians of {ROUNDS} interleaved rounds"
    )
    print(
        f"ingest: ffmpeg -threads 1 decode {ff * 1000:.1f} CPU-ms per video-s "
        f"(its own -benchmark utime+stime: {median(ffmpeg_utime) / video_s * 1000:.1f})"
    )
    print(
        f"ingest: camera raw {raw * 1000:.1f} CPU-ms per video-s, including "
        f"{imports:.2f} CPU-s of interpreter start + imports"
    )
    print(
        f"ingest: camera import-corrected {corrected * 1000:.1f} CPU-ms per video-s "
        f"(inside runner.run() alone: {in_run * 1000:.1f})"
    )
    print(
        f"ingest: ratio camera/ffmpeg {ratio:.2f} import-corrected (target <= {TARGET_RATIO}) "
        f"{verdict(ratio <= TARGET_RATIO)}; raw {raw / ff:.2f}, in-run {in_run / ff:.2f}"
    )
    if ffmpeg_utime:
        ff_loop = median(ffmpeg_utime) / video_s
        print(
            f"ingest: steady state (both without process start-up): runner.run() vs ffmpeg's "
            f"-benchmark decode loop {in_run / ff_loop:.2f}"
        )


def profile() -> None:
    """Prints cProfile tables of a camera run (``python -m benchmarks.ingest``)."""
    child = run_child(_child_cmd("profile", sample_video()))
    print(child.stderr)
    print(child.stdout)


if __name__ == "__main__":
    profile()
