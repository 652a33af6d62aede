"""Search by example: an object's appearance as a unit vector for a cosine index.

The descriptor is the tracker's own (:func:`sentinel.domain.appearance.appearance`: HSV
histograms of the upper and lower body), compared there with the Bhattacharyya coefficient. The
element-wise square root of L1-normalised histograms turns that coefficient into a dot product,
so ``appearance_vector`` of two crops has a cosine similarity equal to the mean Bhattacharyya
coefficient of their bands: the same ranking, usable in any cosine vector index.
"""

from __future__ import annotations

import numpy as np
from numpy.typing import NDArray

from sentinel.domain.appearance import PARTS, appearance
from sentinel.domain.types import Box

__all__ = ["appearance_vector"]


def appearance_vector(frame: NDArray[np.uint8], box: Box) -> NDArray[np.float32] | None:
    """The unit-length appearance vector of ``box`` in an RGB ``frame``, or None for a box
    too small to describe."""
    hist = appearance(frame, box)
    if hist is None:
        return None
    vector: NDArray[np.float32] = (np.sqrt(np.clip(hist, 0.0, None)) / np.sqrt(PARTS)).astype(
        np.float32
    )
    return vector
