"""Zones, lines and masks in the camera config: what is accepted, and what a mistake says."""

from __future__ import annotations

from collections import Counter, defaultdict
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pydantic
import pytest
import yaml

from sentinel.cli import demo_camera
from sentinel.config import CameraConfig, load_settings
from sentinel.domain.scene import CrossDirection
from sentinel.domain.types import Box
from sentinel.domain.zones import SceneObject, ZoneTracker

SQUARE = [[0.2, 0.2], [0.6, 0.2], [0.6, 0.6], [0.2, 0.6]]
BOW_TIE = [[0.1, 0.1], [0.9, 0.9], [0.9, 0.1], [0.1, 0.9]]


def camera(**fields: Any) -> CameraConfig:
    return CameraConfig(id="cam", source="/tmp/a.mp4", **fields)


def test_scene_config_reaches_the_pipeline() -> None:
    cfg = camera(
        zones=[{"name": "door", "polygon": SQUARE, "inertia": 5, "labels": ["person"]}],
        lines=[{"name": "gate", "a": [0.1, 0.5], "b": [0.9, 0.5], "direction": "in"}],
        motion_masks=[{"polygon": SQUARE}],
        object_masks=[{"polygon": SQUARE, "labels": ["car"]}, {"polygon": SQUARE}],
    )
    pipe = cfg.pipeline_config()
    (zone,) = pipe.zones
    assert (zone.name, zone.inertia, zone.labels) == ("door", 5, frozenset({"person"}))
    assert zone.polygon == ((0.2, 0.2), (0.6, 0.2), (0.6, 0.6), (0.2, 0.6))
    (line,) = pipe.lines
    assert (line.a, line.b, line.direction) == ((0.1, 0.5), (0.9, 0.5), CrossDirection.IN)
    assert pipe.motion.masks == (zone.polygon,)
    assert [m.labels for m in pipe.object_masks] == [frozenset({"car"}), None]
    # The stored form (JSON) reads back the same.
    assert CameraConfig(**cfg.model_dump(mode="json")) == cfg


def test_defaults_are_empty_and_both_ways() -> None:
    cfg = camera(lines=[{"name": "gate", "a": [0.1, 0.5], "b": [0.9, 0.5]}])
    assert cfg.zones == [] and cfg.motion_masks == [] and cfg.object_masks == []
    assert cfg.pipeline_config().lines[0].direction is None
    assert camera(zones=[{"name": "z", "polygon": SQUARE}]).zones[0].inertia == 3


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"zones": [{"name": "z", "polygon": BOW_TIE}]}, "zone 'z': edges 0 and 2 cross"),
        (
            {"zones": [{"name": "z", "polygon": [[0.1, 0.1], [1.5, 0.1], [0.5, 0.9]]}]},
            "less than or equal to 1",
        ),
        ({"zones": [{"name": "z", "polygon": [[0.1, 0.1], [0.5, 0.9]]}]}, "at least 3 items"),
        ({"zones": [{"name": "z", "polygon": [[0.1, 0.1]] * 65}]}, "at most 64 items"),
        (
            {"zones": [{"name": "z", "polygon": [[0.1, 0.1], [0.5, 0.1], [0.9, 0.1]]}]},
            "folds back",
        ),
        ({"zones": [{"name": "Front Door", "polygon": SQUARE}]}, "String should match pattern"),
        ({"zones": [{"name": "z", "polygon": SQUARE, "inertia": 0}]}, "greater than or equal"),
        ({"zones": [{"name": "z", "polygon": SQUARE, "inertia": 101}]}, "less than or equal"),
        (
            {"zones": [{"name": "z", "polygon": SQUARE}, {"name": "z", "polygon": SQUARE}]},
            "zone names must be unique, but 'z' appears twice",
        ),
        ({"zones": [{"name": f"z{i}", "polygon": SQUARE} for i in range(33)]}, "at most 32"),
        (
            {"lines": [{"name": "l", "a": [0.5, 0.5], "b": [0.5, 0.5]}]},
            "line 'l': a and b are the same point",
        ),
        (
            {
                "lines": [
                    {"name": "l", "a": [0.1, 0.5], "b": [0.9, 0.5]},
                    {"name": "l", "a": [0.1, 0.6], "b": [0.9, 0.6]},
                ]
            },
            "line names must be unique",
        ),
        (
            {"lines": [{"name": "l", "a": [0.1, 0.5], "b": [0.9, 0.5], "direction": "up"}]},
            "'both', 'in' or 'out'",
        ),
        ({"lines": [{"name": "l", "a": [0.1, 0.5, 0.2], "b": [0.9, 0.5]}]}, "at most 2 items"),
        ({"motion_masks": [{"polygon": BOW_TIE}]}, "motion mask: edges 0 and 2 cross"),
        ({"object_masks": [{"polygon": BOW_TIE}]}, "object mask: edges 0 and 2 cross"),
        ({"object_masks": [{"polygon": SQUARE, "label": ["car"]}]}, "Extra inputs"),
    ],
)
def test_bad_scene_config_says_what_is_wrong(fields: dict[str, Any], message: str) -> None:
    with pytest.raises(pydantic.ValidationError) as info:
        camera(**fields)
    assert message in str(info.value), str(info.value)


ROOT = Path(__file__).resolve().parents[2]


def test_readme_example_is_valid() -> None:
    text = (ROOT / "README.md").read_text()
    block = text.split("## Zones, lines and masks", 1)[1].split("```yaml", 1)[1].split("```")[0]
    (cam,) = load_settings(None, **yaml.safe_load(block)).cameras
    pipe = cam.pipeline_config()
    assert [z.name for z in pipe.zones] == ["driveway"] and pipe.lines[0].name == "gate"
    assert len(pipe.motion.masks) == len(pipe.object_masks) == 1


def test_demo_zone_and_line_see_the_sample_walkers() -> None:
    """The demo camera's zone and line, fed the sample clip's ground-truth boxes (PETS09
    S2L1, frames 1-400, at 5 of its 10 fps): walkers enter the footpath and cross the walkway
    both ways."""
    pipe = demo_camera(Path("/unused/vtest.avi")).pipeline_config()
    tracker = ZoneTracker("demo", pipe.zones, pipe.lines)
    frames: dict[int, list[SceneObject]] = defaultdict(list)
    gt = ROOT / "benchmarks" / "data" / "pets09-s2l1-gt-0001-0400.txt"
    for row in gt.read_text().splitlines():
        frame, track, x, y, w, h = (float(v) for v in row.split(",")[:6])
        box = Box(x, y, x + w, y + h)
        frames[int(frame)].append(SceneObject(int(track), "person", 0.9, box))
    t0 = datetime(2026, 1, 1, tzinfo=UTC)
    seen: Counter[tuple[str, str | None]] = Counter()
    for frame in sorted(f for f in frames if f % 2 == 0):
        at = t0 + timedelta(seconds=frame / 10)
        for e in tracker.update(frames[frame], 768, 576, at):
            seen[(e.kind.value, e.direction.value if e.direction else e.zone)] += 1
    assert seen[("enter", "footpath")] >= 10
    assert seen[("cross", "in")] >= 1 and seen[("cross", "out")] >= 1
