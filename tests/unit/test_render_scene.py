from __future__ import annotations

import numpy as np
import pytest

from sentinel.domain.masks import ObjectMask
from sentinel.domain.render import decode_jpeg, draw_scene, encode_jpeg
from sentinel.domain.zones import Line, Zone

GREY = np.full((200, 400, 3), 100, dtype=np.uint8)


def test_zones_are_outlined_and_the_frame_is_not_touched() -> None:
    zone = Zone("yard", ((0.25, 0.25), (0.75, 0.25), (0.75, 0.75), (0.25, 0.75)))
    out = draw_scene(GREY, zones=[zone])
    assert (GREY == 100).all()  # a copy
    assert tuple(out[100, 100]) == (255, 215, 0)  # on the left edge (x = 100 px)
    assert tuple(out[100, 200]) == (100, 100, 100)  # inside, untouched


@pytest.mark.parametrize(
    ("a", "b", "in_side", "out_side"),
    [
        # Left to right: "in" is above; the arrow (28 px) points up from the middle.
        ((0.1, 0.5), (0.9, 0.5), (100, 200), (120, 200)),
        # Right to left: "in" is below.
        ((0.9, 0.5), (0.1, 0.5), (120, 200), (80, 200)),
    ],
)
def test_line_arrow_points_to_the_in_side(
    a: tuple[float, float],
    b: tuple[float, float],
    in_side: tuple[int, int],
    out_side: tuple[int, int],
) -> None:
    out = draw_scene(GREY, lines=[Line("gate", a, b)])
    assert tuple(out[100, 200]) == (0, 230, 255)  # the line itself
    assert tuple(out[in_side]) == (0, 230, 255)  # the arrow, 20 px off the line
    assert tuple(out[out_side]) == (100, 100, 100)


def test_masks_are_tinted() -> None:
    square = ((0.0, 0.0), (0.5, 0.0), (0.5, 1.0), (0.0, 1.0))
    motion = draw_scene(GREY, motion_masks=[square])
    objects = draw_scene(GREY, object_masks=[ObjectMask(square)])
    assert (motion[:, :190] != 100).any() and (motion[:, 210:] == 100).all()
    red = objects[:, :190].astype(int)
    assert (red[..., 0] > red[..., 1]).mean() > 0.9  # reddish where masked
    assert (objects[:, 210:] == 100).all()


def test_jpeg_round_trip_and_bad_input() -> None:
    assert decode_jpeg(encode_jpeg(GREY)).shape == GREY.shape
    with pytest.raises(ValueError, match="not a readable image"):
        decode_jpeg(b"\xff\xd8nope")
    with pytest.raises(ValueError, match="must be an"):
        draw_scene(GREY[..., 0])
