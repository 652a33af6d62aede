"""Curation rules: dedupe by content, split by time with a gap (no neighbouring frames on both
sides), class balancing by oversampling."""

from __future__ import annotations

import itertools
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import pytest

from sentinel.train.curation import balance, dedupe, split_by_time, validation_blocks

T0 = datetime(2026, 1, 1, tzinfo=UTC)


@dataclass(frozen=True)
class Item:
    id: str
    camera_id: str
    frame_ts: datetime
    image_sha256: str


def items(n: int, camera: str = "a", step_s: float = 1.0) -> list[Item]:
    return [
        Item(f"{camera}{i}", camera, T0 + timedelta(seconds=i * step_s), f"{camera}-{i}")
        for i in range(n)
    ]


def test_dedupe_keeps_the_first_of_identical_images() -> None:
    a = items(3)
    dup = Item("copy", "b", T0, a[1].image_sha256)
    kept, dropped = dedupe([*a, dup])
    assert [i.id for i in kept] == ["a0", "a1", "a2"]
    assert dropped == 1


@pytest.mark.parametrize(
    ("blocks", "fraction", "expected"),
    [(5, 0.2, [4]), (5, 0.4, [2, 4]), (10, 0.3, [3, 6, 9]), (2, 0.9, [1])],
)
def test_validation_blocks_are_spread(blocks: int, fraction: float, expected: list[int]) -> None:
    assert validation_blocks(blocks, fraction) == expected


@pytest.mark.parametrize(("blocks", "fraction"), [(1, 0.2), (5, 0.0), (5, 1.0)])
def test_validation_blocks_reject_bad_arguments(blocks: int, fraction: float) -> None:
    with pytest.raises(ValueError, match="must be"):
        validation_blocks(blocks, fraction)


@pytest.mark.parametrize("gap_s", [0.0, 1.0, 3.5])
def test_split_by_time_leaves_no_training_frame_near_a_validation_frame(gap_s: float) -> None:
    data = items(100) + items(40, camera="b", step_s=0.5)
    train, val, dropped = split_by_time(data, validation_fraction=0.4, blocks=5, gap_s=gap_s)
    assert len(train) + len(val) + dropped == len(data)
    assert val and train
    for v in val:
        for t in train:
            if t.camera_id == v.camera_id:
                assert abs((t.frame_ts - v.frame_ts).total_seconds()) > gap_s
    # Validation is made of contiguous runs in time, not scattered frames.
    a_val = sorted(int(v.id[1:]) for v in val if v.camera_id == "a")
    runs = sum(1 for x, y in itertools.pairwise(a_val) if y != x + 1) + 1
    assert runs == 2


def test_split_by_time_drops_border_frames_with_a_gap() -> None:
    train, val, dropped = split_by_time(items(50), validation_fraction=0.2, blocks=5, gap_s=2.0)
    # The last block (40..49) is validation; 38, 39 (train) and 40, 41 (val) lie within 2 s
    # of the other side (and 42 is 3 s from 39... but 39 is dropped too: drops are judged
    # against all frames, so 42 to 39 = 3 s > 2 s keeps it).
    assert dropped == 4
    assert val[0].id == "a42"
    assert [i.id for i in train][-1] == "a37"


def test_a_camera_with_one_instant_goes_to_training() -> None:
    one = [Item("x", "c", T0, "h1"), Item("y", "c", T0, "h2")]
    train, val, dropped = split_by_time(one)
    assert (len(train), len(val), dropped) == (2, 0, 0)


def test_balance_repeats_items_of_rare_classes() -> None:
    labels = {"p1": ["person"], "p2": ["person"], "p3": ["person"], "p4": ["person"],
              "c1": ["car"], "mix": ["person", "car"], "bg": []}  # fmt: skip
    out = balance(list(labels), lambda i: labels[i], max_repeat=3)
    # person 5 boxes, car 2: an item with a car is repeated round(5 / 2) = 2 times
    assert out.count("c1") == 2 and out.count("mix") == 2
    assert out.count("p1") == 1 and out.count("bg") == 1
    assert balance(list(labels), lambda i: labels[i], max_repeat=1) == list(labels)


def test_balance_caps_the_repeats() -> None:
    labels = {**{f"p{i}": ["person"] for i in range(30)}, "rare": ["dog"]}
    out = balance(list(labels), lambda i: labels[i], max_repeat=4)
    assert out.count("rare") == 4
