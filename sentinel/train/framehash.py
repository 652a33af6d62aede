"""A 64-bit perceptual hash of what moves in a frame, for near-duplicate removal and novelty.

A plain dHash of the whole frame cannot tell the frames of a fixed camera apart: the scene is
the same, only small people move (measured on the sample video: among 400 frames, only 5 are
more than 6 bits apart from each other). The hash here is taken of the frame's *foreground*
instead: a small grey thumbnail minus the stretch's background (the median thumbnail), and
SimHash'ed (64 fixed random hyperplanes; Hamming distance tracks the angle between foreground
maps). Consecutive frames at 10 fps differ by ~2 bits, frames half a second apart by ~8, and
an empty scene hashes to 0 (all empty frames are duplicates of each other).

The hyperplanes come from sha256, not from a random generator, so a hash stored today
compares with one computed by any later version.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence

import numpy as np
from numpy.typing import NDArray
from PIL import Image

__all__ = [
    "THUMB_SIZE",
    "background",
    "hamming",
    "hamming_to",
    "scene_hash",
    "thumbnail",
]

THUMB_SIZE = (48, 36)  # width, height of the grey thumbnail the hash is computed from
_GRID = (24, 18)  # the foreground map the hyperplanes see
_FG_MIN = 6.0  # grey levels: smaller differences from the background are noise
_BLUR_PASSES = 2
_BITS = 64
_MASK = (1 << _BITS) - 1


def _hyperplanes() -> NDArray[np.float32]:
    cells = _GRID[0] * _GRID[1]
    need = _BITS * cells
    stream = bytearray()
    counter = 0
    while len(stream) * 8 < need:
        stream += hashlib.sha256(b"sentinel-scene-hash-%d" % counter).digest()
        counter += 1
    bits = np.unpackbits(np.frombuffer(bytes(stream), dtype=np.uint8))[:need]
    return (bits.astype(np.float32) * 2.0 - 1.0).reshape(_BITS, cells)


_PLANES = _hyperplanes()
_WEIGHTS = (np.uint64(1) << np.arange(_BITS - 1, -1, -1, dtype=np.uint64)).astype(np.uint64)


def thumbnail(frame: NDArray[np.uint8]) -> NDArray[np.uint8]:
    """The grey ``THUMB_SIZE`` thumbnail of an RGB (H, W, 3) uint8 frame (area average)."""
    if frame.ndim != 3 or frame.shape[2] != 3 or frame.dtype != np.uint8:
        raise ValueError(
            f"frame must be an (H, W, 3) uint8 array, but got {frame.shape} {frame.dtype}"
        )
    grey = Image.fromarray(frame).convert("L").resize(THUMB_SIZE, Image.Resampling.BOX)
    return np.asarray(grey, dtype=np.uint8)


def background(thumbs: Sequence[NDArray[np.uint8]]) -> NDArray[np.float32]:
    """The median of the thumbnails: the scene without what moves through it.

    Raises:
        ValueError: If ``thumbs`` is empty or the thumbnails differ in shape.
    """
    if not thumbs:
        raise ValueError("background needs at least one thumbnail")
    shapes = {t.shape for t in thumbs}
    if len(shapes) != 1:
        raise ValueError(f"thumbnails must share one shape, but got {sorted(shapes)}")
    return np.median(np.stack(thumbs).astype(np.float32), axis=0).astype(np.float32)


def scene_hash(thumb: NDArray[np.uint8], bg: NDArray[np.float32]) -> int:
    """The 64-bit hash of ``thumb``'s foreground against the background ``bg``."""
    if thumb.shape != bg.shape:
        raise ValueError(f"thumbnail {thumb.shape} and background {bg.shape} differ in shape")
    fg = np.abs(thumb.astype(np.float32) - bg)
    fg[fg < _FG_MIN] = 0.0
    grid = np.asarray(
        Image.fromarray(fg, mode="F").resize(_GRID, Image.Resampling.BOX), dtype=np.float32
    )
    for _ in range(_BLUR_PASSES):  # small moves stay close: spread each blob to its neighbours
        p = np.pad(grid, 1, mode="edge")
        grid = (p[:-2, 1:-1] + p[2:, 1:-1] + p[1:-1, :-2] + p[1:-1, 2:] + p[1:-1, 1:-1]) / 5.0
    bits = (_PLANES @ grid.reshape(-1)) > 0.0
    return int(np.sum(_WEIGHTS[bits], dtype=np.uint64))


def hamming(a: int, b: int) -> int:
    """Differing bits of two 64-bit hashes."""
    return ((a ^ b) & _MASK).bit_count()


def hamming_to(hashes: NDArray[np.uint64], h: int) -> NDArray[np.int64]:
    """Hamming distance of every hash in ``hashes`` to ``h``."""
    counts: NDArray[np.int64] = np.bitwise_count(hashes ^ np.uint64(h & _MASK)).astype(np.int64)
    return counts
