"""Rule engine cost per analysed frame, against the detector's time per frame.

What runs: :class:`RuleSet.evaluate` over synthetic frames of one camera with ``ZONES`` zones,
``LINES`` lines and ``RULES`` rules (every kind of condition: labels, enter/exit/dwell/cross,
zone, line, direction, dwell, count, score; half of them on a Europe/Berlin night schedule; all
with a cooldown), ``OBJECTS`` tracked objects in view. Each frame carries what the zone
tracker emits for them: one ``SEEN`` per object, one ``DWELL`` per object inside a zone, an
``ENTER`` or ``EXIT`` now and then, and a ``CROSS`` now and then (about 2 x ``OBJECTS``
events). Frames are 0.2 s apart (5 analysed frames/s, the default ``detect_fps``) and start
at 23:00 local time, so scheduled rules are in force.

Two figures: the steady state (cooldowns hold most repeats back, as in production) and the
worst case (cooldown 0: every satisfied rule matches on every frame and builds its
explanation).

Baseline, in the same run: the bare detector (:class:`YoloOnnx`, the product's default
settings, 2 threads) on single real frames of the sample clip, the work every analysed frame
costs anyway. The figure printed is the rule engine's time as a share of that.

Target: the rules cost under 1 % of the detector's time per frame.
"""

from __future__ import annotations

import random
import time
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path

from benchmarks.common import median, percentile, rgb_frames, sample_video, verdict
from sentinel.config import DetectorSettings
from sentinel.domain.rule_model import (
    ArmingMode,
    Conditions,
    HourRange,
    Rule,
    Schedule,
    never_matches,
)
from sentinel.domain.rules import RuleSet
from sentinel.domain.scene import CrossDirection, SceneEvent, SceneEventKind

ZONES = 10
LINES = 4
RULES = 20
OBJECTS = 15
FRAMES = 3000  # 10 minutes of analysed frames at 5 fps
FRAME_S = 0.2
DETECTOR_FRAMES = 20
THREADS = 2
TARGET_SHARE = 0.01
CAMERA = "bench"
LABELS = ("person", "car", "bicycle")
START = datetime(2026, 1, 14, 22, 0, tzinfo=UTC)  # 23:00 in Berlin


def make_rules(cooldown_s: float = 30.0) -> list[Rule]:
    """``RULES`` rules over ``ZONES`` zones and ``LINES`` lines, mixing every condition."""
    night = Schedule(hours=(HourRange(start="22:00", end="06:00"),), timezone="Europe/Berlin")
    kinds = ("enter", "dwell", "exit", "cross", "seen")
    rules = []
    for n in range(RULES):
        kind = kinds[n % len(kinds)]
        conditions: dict[str, object] = {
            "labels": (LABELS[n % 2],) if n % 3 else LABELS[:2],
            "event": kind,
            "min_score": 0.3 + 0.05 * (n % 5),
        }
        if kind in ("enter", "dwell", "exit"):
            conditions["zone"] = f"zone-{n % ZONES}"
        if kind == "dwell":
            conditions["min_dwell_s"] = 5.0 * (n % 4)
        if kind == "cross":
            conditions["line"] = f"line-{n % LINES}"
            conditions["direction"] = "in" if n % 2 else "out"
        if kind == "seen":
            conditions["min_count"] = 1 + n % 3
        rules.append(
            Rule(
                id=f"rule-{n}",
                name=f"rule {n}",
                cameras=(CAMERA,) if n % 4 else (),
                conditions=Conditions.model_validate(conditions),
                schedule=night if n % 2 else None,
                cooldown_s=cooldown_s,
            )
        )
    assert all(never_matches(r) is None for r in rules)
    return rules


def make_frames(count: int = FRAMES, seed: int = 7) -> list[list[SceneEvent]]:
    """``count`` frames of scene events of ``OBJECTS`` objects wandering between zones."""
    rng = random.Random(seed)
    zone_of = [rng.randrange(-1, ZONES) for _ in range(OBJECTS)]  # -1: in no zone
    since = [0.0] * OBJECTS
    label_of = [LABELS[i % len(LABELS)] for i in range(OBJECTS)]
    frames = []
    for f in range(count):
        t = f * FRAME_S
        at = START + timedelta(seconds=t)
        events = []
        counts: dict[str, int] = {}
        for i in range(OBJECTS):
            counts[label_of[i]] = counts.get(label_of[i], 0) + 1
        for i in range(OBJECTS):
            label, score, track = label_of[i], rng.uniform(0.3, 0.95), 100 + i
            events.append(
                SceneEvent(
                    SceneEventKind.SEEN, CAMERA, track, None, label, score, at,
                    count=counts[label],
                )
            )  # fmt: skip
            if rng.random() < 0.02:  # moves to another zone (or out of all)
                old, zone_of[i] = zone_of[i], rng.randrange(-1, ZONES)
                if old >= 0:
                    events.append(
                        SceneEvent(
                            SceneEventKind.EXIT, CAMERA, track, None, label, score, at,
                            zone=f"zone-{old}", dwell_s=t - since[i],
                        )
                    )  # fmt: skip
                if zone_of[i] >= 0:
                    since[i] = t
                    events.append(
                        SceneEvent(
                            SceneEventKind.ENTER, CAMERA, track, None, label, score, at,
                            zone=f"zone-{zone_of[i]}",
                        )
                    )  # fmt: skip
            elif zone_of[i] >= 0:
                events.append(
                    SceneEvent(
                        SceneEventKind.DWELL, CAMERA, track, None, label, score, at,
                        zone=f"zone-{zone_of[i]}", dwell_s=t - since[i], count=2,
                    )
                )  # fmt: skip
            if rng.random() < 0.01:
                direction = CrossDirection.IN if rng.random() < 0.5 else CrossDirection.OUT
                events.append(
                    SceneEvent(
                        SceneEventKind.CROSS, CAMERA, track, None, label, score, at,
                        line=f"line-{rng.randrange(LINES)}", direction=direction,
                    )
                )  # fmt: skip
        frames.append(events)
    return frames


def time_rules(
    rules: Sequence[Rule], frames: Sequence[Sequence[SceneEvent]]
) -> tuple[list[float], int]:
    """Seconds of ``evaluate`` per frame, and the matches made, over one fresh rule set."""
    rule_set = RuleSet(rules, ArmingMode.NIGHT)
    seconds, matched = [], 0
    clock = time.perf_counter
    for events in frames:
        start = clock()
        matched += len(rule_set.evaluate(events))
        seconds.append(clock() - start)
    return seconds, matched


def time_detector(model_path: Path) -> list[float]:
    """Seconds of the bare detector per single real frame."""
    from sentinel.models.yolo import YoloOnnx

    settings = DetectorSettings(model_path=model_path, threads=THREADS)
    model = YoloOnnx(
        model_path,
        labels=settings.labels,
        input_size=settings.input_size,
        threads=settings.threads,
        conf_threshold=settings.conf_threshold,
        iou_threshold=settings.iou_threshold,
    )
    frames = rgb_frames(sample_video(), DETECTOR_FRAMES, every=10)
    model.detect(frames[:1])  # warm-up: the first run allocates
    seconds = []
    for frame in frames:
        start = time.perf_counter()
        model.detect([frame])
        seconds.append(time.perf_counter() - start)
    return seconds


def run(model_path: Path) -> None:
    frames = make_frames()
    events = sum(len(f) for f in frames) / len(frames)
    detector = median(time_detector(model_path))
    steady, steady_matches = time_rules(make_rules(), frames)
    worst, worst_matches = time_rules(make_rules(cooldown_s=0.0), frames)
    detector_again = median(time_detector(model_path))  # the machine's load may have moved
    detector = min(detector, detector_again)
    for what, seconds, matches in (
        ("steady (30 s cooldown)", steady, steady_matches),
        ("worst case (no cooldown)", worst, worst_matches),
    ):
        per_frame = median(seconds)
        share = per_frame / detector
        print(
            f"rules: {what}: {per_frame * 1e6:.1f} µs/frame median, "
            f"p99 {percentile(seconds, 99) * 1e6:.1f} µs; {matches / len(frames):.2f} "
            f"matches/frame; {share * 100:.3f} % of the detector's {detector * 1e3:.1f} "
            f"ms/frame (target < {TARGET_SHARE * 100:g} %) {verdict(share < TARGET_SHARE)}",
            flush=True,
        )
    print(
        f"rules: {RULES} rules, {ZONES} zones, {LINES} lines, {OBJECTS} objects, "
        f"{events:.1f} scene events/frame, {len(frames)} frames; detector: bare YOLOv8n "
        f"ONNX, {THREADS} threads, single frames, median of {DETECTOR_FRAMES} (best of 2 runs)"
    )
