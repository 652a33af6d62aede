"""Capacity: how many 720p cameras at 5 fps this machine carries, and how it sheds past that.

Runs the real stack (``sentinel up``: a Ray cluster, the Serve detector and ingress, one camera
actor per camera, each recording continuously) in a fresh data dir, and adds cameras through
the API step by step, each a looping real-time 1280x720 5 fps H.264 clip:

- *busy*: the sample scene (PETS09 pedestrians, people always in view), scaled to 720p;
- *quiet*: the same scene without people (:mod:`sentinel.video.synth`: the temporal median
  keeps the parked vehicles; sensor noise and lighting drift), scaled to 720p.

For each mix, with the agent off and then on (the embedded LLM judging the alerts of a rule
that fires on every person), it measures every step for ``--step-s`` seconds and prints the
frames sampled and dropped per camera. A step "carries" its cameras when under 1% of the
sampled frames are dropped; the sweep of a mix stops at the first step past 5% (overload),
where it prints how the drops spread over the cameras (fair shedding: the share of the
camera that dropped most vs. the least; no camera may starve: every camera still analyses).

The verdict: at least 8 quiet or 3 busy cameras carried per 2 cores.

Run: ``python -m benchmarks capacity`` (all of it: ~25 min) or
``python -m benchmarks.capacity --mixes busy --agent off --step-s 30``.
"""

from __future__ import annotations

import argparse
import os
import secrets
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import yaml

from benchmarks.common import BenchmarkError, sample_video, verdict
from benchmarks.demo import SENTINEL, _copy_models, _free_port, _wait

WIDTH, HEIGHT, FPS = 1280, 720, 5
CARRIED = 0.01  # dropped share under which a step carries its cameras
OVERLOAD = 0.05  # the sweep of a mix stops past this
STEPS = {"quiet": (4, 8, 16, 24, 32), "busy": (1, 2, 3, 4, 6)}
TARGETS = {"quiet": 8, "busy": 3}


@dataclass(frozen=True)
class Step:
    mix: str
    agent: bool
    cameras: int
    sampled: dict[str, int]
    dropped: dict[str, int]
    detector_calls: dict[str, int]

    @property
    def drop_share(self) -> float:
        total = sum(self.sampled.values())
        return sum(self.dropped.values()) / total if total else float("nan")

    def per_camera(self) -> list[float]:
        return [self.dropped[c] / s if s else 1.0 for c, s in sorted(self.sampled.items())]


def _ffmpeg_720p(src: Path, dest: Path, seconds: float | None = None) -> Path:
    cmd = [
        "ffmpeg", "-hide_banner", "-loglevel", "error", "-nostdin", "-y", "-i", str(src),
        *(["-t", f"{seconds:g}"] if seconds else []),
        "-vf", f"scale={WIDTH}:{HEIGHT},fps={FPS}", "-an", "-c:v", "libx264",
        "-preset", "veryfast", "-g", str(2 * FPS), "-pix_fmt", "yuv420p", str(dest),
    ]  # fmt: skip
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=600, check=False)
    if done.returncode != 0:
        raise BenchmarkError(f"ffmpeg failed: {done.stderr.strip()[-500:]}")
    return dest


def make_clips(folder: Path, mixes: Sequence[str]) -> dict[str, Path]:
    """The 720p clips of ``mixes`` (about a minute each)."""
    if shutil.which("ffmpeg") is None:
        raise BenchmarkError("ffmpeg is missing: run `make system-deps`")
    folder.mkdir(parents=True, exist_ok=True)
    clips: dict[str, Path] = {}
    if "busy" in mixes:
        clips["busy"] = _ffmpeg_720p(sample_video(), folder / "busy-720p.mp4")
    if "quiet" in mixes:
        from sentinel.video.synth import write_quiet_clip

        write_quiet_clip(sample_video(), folder / "quiet-src.mp4", quiet_s=60.0, fps=FPS)
        quiet_src = folder / "quiet-src.mp4"
        clips["quiet"] = _ffmpeg_720p(quiet_src, folder / "quiet-720p.mp4")
    return clips


@contextmanager
def _stack(data: Path, agent: bool) -> Iterator[httpx.Client]:
    """``sentinel up`` with no cameras, and an admin's client for its API."""
    env = {k: v for k, v in os.environ.items() if k != "RAY_ADDRESS"}
    env["SENTINEL_DATA_DIR"] = str(data)
    config = data / "capacity.yaml"
    config.write_text(yaml.safe_dump({"agent": {"enabled": agent}, "cameras": []}))
    password = "bench-" + secrets.token_urlsafe(16)
    (data / "admin.pw").write_text(password + "\n")
    subprocess.run(
        [SENTINEL, "users", "create-admin", "--password-file", str(data / "admin.pw")],
        env=env,
        check=True,
        capture_output=True,
        timeout=120,
    )
    port = _free_port()
    log_path = data / f"up-agent-{'on' if agent else 'off'}.log"
    with log_path.open("w") as log:
        proc = subprocess.Popen(
            [SENTINEL, "up", "--config", str(config), "--port", str(port)],
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        try:
            with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=60.0) as http:
                _wait("sentinel up", lambda: http.get("/health").status_code == 200, 300)
                token = http.post(
                    "/api/v1/auth/token", data={"username": "admin", "password": password}
                ).json()["access_token"]
                http.headers["Authorization"] = f"Bearer {token}"
                yield http
        finally:
            os.killpg(proc.pid, signal.SIGTERM)
            try:
                proc.wait(timeout=60)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
            if proc.returncode not in (0, -signal.SIGTERM):
                print(log_path.read_text()[-3000:], file=sys.stderr)


def _counters(http: httpx.Client, ids: Sequence[str]) -> dict[str, dict[str, Any]]:
    out: dict[str, dict[str, Any]] = {}
    for cid in ids:
        body = http.get(f"/api/v1/cameras/{cid}").json()
        out[cid] = (body.get("status") or {}).get("counters") or {}
    return out


def _delta(
    before: dict[str, dict[str, Any]], after: dict[str, dict[str, Any]], key: str
) -> dict[str, int]:
    return {c: int(after[c].get(key, 0)) - int(before[c].get(key, 0)) for c in after}


def _add(http: httpx.Client, cid: str, clip: Path) -> None:
    body = {
        "id": cid,
        "source": str(clip),
        "realtime": True,
        "detect_fps": FPS,
        "record": {"mode": "continuous", "segment_s": 10},
    }
    response = http.post("/api/v1/cameras", json=body)
    if response.status_code != 201:
        raise BenchmarkError(f"adding camera {cid}: {response.status_code} {response.text}")


def _running(http: httpx.Client, ids: Sequence[str]) -> bool:
    cams = {c["id"]: c for c in http.get("/api/v1/cameras").json()}
    return all(
        cams.get(cid, {}).get("status", {}).get("state") == "running"
        and int(cams[cid]["status"]["counters"].get("frames_sampled", 0)) > 0
        for cid in ids
    )


def _sweep(http: httpx.Client, mix: str, clip: Path, agent: bool, step_s: float) -> list[Step]:
    steps: list[Step] = []
    ids: list[str] = []
    try:
        for target in STEPS[mix]:
            while len(ids) < target:
                cid = f"{mix}{len(ids) + 1}"
                _add(http, cid, clip)
                ids.append(cid)
            _wait(f"{target} {mix} cameras running", lambda: _running(http, ids), 180)
            time.sleep(5.0)  # past the start: the first frames wait for a cold detector
            before = _counters(http, ids)
            time.sleep(step_s)
            after = _counters(http, ids)
            step = Step(
                mix, agent, target, _delta(before, after, "frames_sampled"),
                _delta(before, after, "frames_dropped"), _delta(before, after, "detector_calls"),
            )  # fmt: skip
            steps.append(step)
            shares = step.per_camera()
            calls = sum(step.detector_calls.values()) / step_s
            print(
                f"capacity: agent {'on' if agent else 'off'}, {target} {mix} camera(s): "
                f"dropped {sum(step.dropped.values())} of {sum(step.sampled.values())} sampled "
                f"= {step.drop_share:.3f}; per camera {min(shares):.3f}..{max(shares):.3f}; "
                f"detector calls {calls:.1f}/s",
                flush=True,
            )
            if step.drop_share > OVERLOAD:
                starving = [c for c, s in step.sampled.items() if s == 0]
                print(
                    f"capacity: overload at {target} {mix} cameras: drops spread "
                    f"{min(shares):.3f}..{max(shares):.3f} over the cameras; "
                    f"cameras analysing nothing: {len(starving)} "
                    f"{verdict(not starving)}",
                    flush=True,
                )
                break
    finally:
        for cid in ids:
            http.delete(f"/api/v1/cameras/{cid}")
    return steps


def carried(steps: Sequence[Step]) -> int:
    """The most cameras of a sweep whose step dropped under 1% (0: none)."""
    ok = [s.cameras for s in steps if s.drop_share < CARRIED]
    return max(ok, default=0)


def run(_model: Path | None = None, argv: Sequence[str] = ()) -> None:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.capacity")
    parser.add_argument("--step-s", type=float, default=60.0)
    parser.add_argument("--mixes", nargs="+", choices=sorted(STEPS), default=["quiet", "busy"])
    parser.add_argument("--agent", choices=("off", "on", "both"), default="both")
    args = parser.parse_args(list(argv))
    agents = {"off": [False], "on": [True], "both": [False, True]}[args.agent]
    cores = os.cpu_count() or 1
    results: dict[tuple[str, bool], int] = {}
    with tempfile.TemporaryDirectory(prefix="sentinel-bench-capacity-") as tmp:
        folder = Path(tmp)
        clips = make_clips(folder / "clips", args.mixes)
        for agent in agents:
            data = folder / f"data-agent-{'on' if agent else 'off'}"
            _copy_models(data / "models")
            with _stack(data, agent) as http:
                if agent:  # every person alerts: the agent has work whenever people are seen
                    http.post(
                        "/api/v1/rules",
                        json={
                            "name": "Any person",
                            "severity": "low",
                            "conditions": {"labels": ["person"], "event": "seen"},
                            "cooldown_s": 30,
                        },
                    ).raise_for_status()
                for mix in args.mixes:
                    results[(mix, agent)] = carried(
                        _sweep(http, mix, clips[mix], agent, args.step_s)
                    )
    for (mix, agent), count in results.items():
        target = TARGETS[mix] * cores / 2
        print(
            f"capacity: agent {'on' if agent else 'off'}: {count} {mix} 720p/{FPS} fps cameras "
            f"carried (< {CARRIED:.0%} dropped) on {cores} cores "
            f"(target ≥ {target:g}) {verdict(count >= target)}",
            flush=True,
        )


if __name__ == "__main__":
    run(argv=sys.argv[1:])
