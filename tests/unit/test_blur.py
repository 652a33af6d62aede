"""Face blurring's pure part: padded boxes, pixelation, the union of detections."""

from __future__ import annotations

import numpy as np
import pytest

from sentinel.domain.blur import FaceBox, blur_faces, pad_box, union_boxes


@pytest.mark.parametrize(
    ("box", "pad", "size", "expected"),
    [
        ((10, 10, 20, 20), 0.0, (100, 100), (10, 10, 20, 20)),
        ((10, 10, 20, 30), 0.5, (100, 100), (5, 0, 25, 40)),  # 10 wide, 20 tall
        ((0, 0, 10, 10), 0.3, (100, 100), (0, 0, 13, 13)),  # clipped at the top left
        ((95, 90, 100, 100), 1.0, (100, 100), (90, 80, 100, 100)),  # and the bottom right
        ((120, 10, 130, 20), 0.1, (100, 100), None),  # outside the image
    ],
)
def test_pad_box(box: FaceBox, pad: float, size: tuple[int, int], expected: FaceBox | None) -> None:
    assert pad_box(box, pad, *size) == expected


@pytest.mark.parametrize(
    ("pad", "size", "message"),
    [(-0.1, (10, 10), "pad must be >= 0"), (0.1, (0, 10), "must be positive")],
)
def test_pad_box_refuses(pad: float, size: tuple[int, int], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        pad_box((1, 1, 2, 2), pad, *size)


def _noise(h: int = 120, w: int = 160) -> np.ndarray:
    return np.random.default_rng(7).integers(0, 256, (h, w, 3), dtype=np.uint8)


def test_blur_pixelates_the_padded_box_only() -> None:
    rgb = _noise()
    out = blur_faces(rgb, [(40, 30, 80, 70)], pad=0.25, cells=4)
    assert out is not rgb and np.array_equal(rgb, _noise())  # the input is untouched
    x1, y1, x2, y2 = 30, 20, 90, 80  # 40 px padded by 10 px on each side
    outside = np.ones(rgb.shape[:2], dtype=bool)
    outside[y1:y2, x1:x2] = False
    assert np.array_equal(out[outside], rgb[outside])
    region = out[y1:y2, x1:x2].astype(int)
    block = 15  # ceil(60 / 4)
    for by in range(0, 60, block):
        for bx in range(0, 60, block):
            cell = region[by : by + block, bx : bx + block]
            assert (cell == cell[0, 0]).all()  # one colour per block
            source = rgb[y1 + by : y1 + by + block, x1 + bx : x1 + bx + block]
            assert np.abs(cell[0, 0] - source.reshape(-1, 3).mean(axis=0)).max() <= 0.5
    # The detail is gone: 16 colours left of 3600 pixels.
    assert len({tuple(p) for p in region.reshape(-1, 3)}) <= 16


def test_blur_handles_edges_overlaps_and_nothing() -> None:
    rgb = _noise(50, 70)
    assert np.array_equal(blur_faces(rgb, []), rgb)
    out = blur_faces(rgb, [(60, 40, 70, 50), (55, 35, 70, 50), (200, 200, 210, 210)])
    assert out.shape == rgb.shape and not np.array_equal(out[35:, 55:], rgb[35:, 55:])
    assert np.array_equal(out[:30, :50], rgb[:30, :50])
    tiny = blur_faces(rgb, [(3, 3, 4, 4)], pad=0)  # one pixel: a block of one
    assert np.array_equal(tiny, rgb)


@pytest.mark.parametrize(
    ("rgb", "cells", "message"),
    [
        (np.zeros((4, 4), dtype=np.uint8), 6, "uint8 array"),
        (np.zeros((4, 4, 3), dtype=np.float32), 6, "uint8 array"),
        (np.zeros((4, 4, 3), dtype=np.uint8), 0, "cells must be"),
    ],
)
def test_blur_refuses(rgb: np.ndarray, cells: int, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        blur_faces(rgb, [(0, 0, 2, 2)], cells=cells)


def test_union_keeps_each_box_once_in_order() -> None:
    a, b, c = (1, 1, 5, 5), (2, 2, 6, 6), (9, 9, 12, 12)
    assert union_boxes([a, b], [], [b, c]) == [a, b, c]
    assert union_boxes() == []
