"""Zones, lines and masks in the camera config: what is accepted, and what a mistake says."""

from __future__ import annotations

from typing import Any

import pydantic
import pytest

from sentinel.config import CameraConfig
from sentinel.domain.scene import CrossDirection

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
