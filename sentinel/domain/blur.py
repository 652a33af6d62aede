"""Face blurring: pixelate boxes of an image, without I/O (issue 16, per-camera privacy).

A face box from a detector is tight around the eyes, nose and mouth; hair, ears and the chin
edge stay outside it, and a face that moved since the detection sits a little off. So each box
is padded (``pad`` of its size on every side) before it is pixelated, and pixelation is coarse:
the padded box becomes at most ``cells`` blocks across its longer side, each the mean of its
pixels. Six blocks across a padded face leave about four across the face itself: no detector or
person recognises it, and unlike a Gaussian blur of modest radius, block means of that size
cannot be sharpened back.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence

import numpy as np
from numpy.typing import NDArray

__all__ = ["DEFAULT_CELLS", "DEFAULT_PAD", "FaceBox", "blur_faces", "pad_box", "union_boxes"]

FaceBox = tuple[int, int, int, int]  # x1, y1, x2, y2 in pixels (x2, y2 exclusive)
DEFAULT_PAD = 0.3
DEFAULT_CELLS = 6
_MIN_BLOCK = 4


def pad_box(box: FaceBox, pad: float, width: int, height: int) -> FaceBox | None:
    """``box`` grown by ``pad`` of its width and height on each side, clipped to the image.

    Returns:
        The padded box, or None when nothing of it is inside the image.

    Raises:
        ValueError: ``pad`` is negative, or the image size is not positive.
    """
    if pad < 0:
        raise ValueError(f"pad must be >= 0, but got {pad}")
    if width <= 0 or height <= 0:
        raise ValueError(f"the image size must be positive, but got {width}x{height}")
    x1, y1, x2, y2 = box
    dx, dy = (x2 - x1) * pad, (y2 - y1) * pad
    out = (
        max(0, math.floor(x1 - dx)),
        max(0, math.floor(y1 - dy)),
        min(width, math.ceil(x2 + dx)),
        min(height, math.ceil(y2 + dy)),
    )
    if out[2] <= out[0] or out[3] <= out[1]:
        return None
    return out


def _pixelate(region: NDArray[np.uint8], block: int) -> NDArray[np.uint8]:
    h, w = region.shape[:2]
    ys, xs = np.arange(0, h, block), np.arange(0, w, block)
    sums = np.add.reduceat(np.add.reduceat(region.astype(np.uint32), ys, axis=0), xs, axis=1)
    counts = np.outer(np.diff(np.append(ys, h)), np.diff(np.append(xs, w)))
    means = (sums / counts[:, :, None]).round().astype(np.uint8)
    return np.repeat(np.repeat(means, block, axis=0)[:h], block, axis=1)[:, :w]


def blur_faces(
    rgb: NDArray[np.uint8],
    boxes: Iterable[FaceBox],
    *,
    pad: float = DEFAULT_PAD,
    cells: int = DEFAULT_CELLS,
) -> NDArray[np.uint8]:
    """A copy of ``rgb`` with every padded box pixelated (the input is left as it is).

    Args:
        rgb: An ``(H, W, 3)`` uint8 image.
        boxes: Face boxes ``(x1, y1, x2, y2)``; overlapping ones are fine.
        pad: Share of a box's width/height added on each side.
        cells: Blocks across the padded box's longer side (fewer: coarser).

    Raises:
        ValueError: ``rgb`` is not ``(H, W, 3)`` uint8, or ``cells`` is not 1..64.
    """
    if rgb.ndim != 3 or rgb.shape[2] != 3 or rgb.dtype != np.uint8:
        raise ValueError(f"rgb must be a uint8 array (H, W, 3), but got {rgb.dtype} {rgb.shape}")
    if not 1 <= cells <= 64:
        raise ValueError(f"cells must be 1..64, but got {cells}")
    out = rgb.copy()
    h, w = rgb.shape[:2]
    for box in boxes:
        padded = pad_box(box, pad, w, h)
        if padded is None:
            continue
        x1, y1, x2, y2 = padded
        block = max(_MIN_BLOCK, math.ceil(max(x2 - x1, y2 - y1) / cells))
        out[y1:y2, x1:x2] = _pixelate(out[y1:y2, x1:x2], block)
    return out


def union_boxes(*groups: Sequence[FaceBox]) -> list[FaceBox]:
    """The boxes of several detections, each once, in order (a frame between two detections is
    blurred where faces were at both, so a face that moves or appears between them is covered).
    """
    seen: dict[FaceBox, None] = {}
    for group in groups:
        for box in group:
            seen.setdefault(tuple(int(v) for v in box), None)  # type: ignore[arg-type]
    return list(seen)
