from __future__ import annotations

import numpy as np
import pytest
from numpy.typing import NDArray

from sentinel.domain.appearance import FEATURE_SIZE, appearance, similarity
from sentinel.domain.types import Box

RED, BLUE, GREEN, DARK, GREY = (200, 30, 30), (30, 40, 190), (40, 170, 50), (30, 30, 35), (128,) * 3


def person(
    top: tuple[int, ...], bottom: tuple[int, ...], background: tuple[int, ...] = GREY
) -> tuple[NDArray[np.uint8], Box]:
    """A 576x768 frame with a 40x100 'person' (``top`` over ``bottom``) at (300, 200)."""
    frame = np.empty((576, 768, 3), dtype=np.uint8)
    frame[:] = background
    frame[200:250, 300:340] = top
    frame[250:300, 300:340] = bottom
    return frame, Box(300, 200, 340, 300)


def desc(
    top: tuple[int, ...], bottom: tuple[int, ...], background: tuple[int, ...] = GREY
) -> NDArray[np.float32]:
    frame, box = person(top, bottom, background)
    feature = appearance(frame, box)
    assert feature is not None
    return feature


def test_descriptor_shape_and_normalisation() -> None:
    feature = desc(RED, BLUE)
    assert feature.shape == (FEATURE_SIZE,) and feature.dtype == np.float32
    assert feature.sum() == pytest.approx(2.0)  # two L1-normalised bands
    assert similarity(feature, feature) == pytest.approx(1.0)


@pytest.mark.parametrize(
    ("a", "b", "low", "high"),
    [
        ((RED, BLUE, GREY), (RED, BLUE, GREY), 0.99, 1.0),
        ((RED, BLUE, GREY), (RED, BLUE, GREEN), 0.9, 1.0),  # the background is mostly cut off
        ((RED, BLUE, GREY), (GREEN, BLUE, GREY), 0.4, 0.6),  # same trousers, other shirt
        ((RED, BLUE, GREY), (BLUE, RED, GREY), 0.0, 0.1),  # the same colours, swapped
        ((DARK, DARK, GREY), (RED, BLUE, GREY), 0.0, 0.1),
        ((DARK, DARK, GREY), (GREY, GREY, GREEN), 0.0, 0.1),  # grey levels tell them apart
    ],
)
def test_similarity(
    a: tuple[tuple[int, ...], ...], b: tuple[tuple[int, ...], ...], low: float, high: float
) -> None:
    assert low <= similarity(desc(*a), desc(*b)) <= high


@pytest.mark.parametrize(
    ("box", "described"),
    [
        (Box(300, 200, 340, 300), True),
        (Box(-20, -50, 20, 50), True),  # partly outside: clipped
        (Box(300, 200, 301, 300), False),  # too thin once the sides are dropped
        (Box(800, 600, 900, 700), False),  # outside the frame
    ],
)
def test_boxes_at_the_edge(box: Box, described: bool) -> None:
    frame, _ = person(RED, BLUE)
    assert (appearance(frame, box) is not None) is described
