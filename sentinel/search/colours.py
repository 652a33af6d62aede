"""Named dominant colours of an object's crop (pure numpy, no I/O).

A pixel gets a name from its hue, saturation and value: dark pixels are black, unsaturated
ones white or grey, dark orange-red ones brown, the rest by hue band. A region's dominant
colours are the names that cover enough of its pixels, most common first. People get an upper
and a lower body region, vehicles one body region, each shrunk inside the box so that the drawn
box outline and the background at the edges weigh little.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

__all__ = [
    "COLOUR_NAMES",
    "CropColours",
    "crop_colours",
    "dominant_colours",
    "name_pixels",
]

# Hue bands in degrees [start, end) after the achromatic and brown tests.
_HUE_BANDS: tuple[tuple[float, float, str], ...] = (
    (0.0, 15.0, "red"),
    (15.0, 40.0, "orange"),
    (40.0, 70.0, "yellow"),
    (70.0, 165.0, "green"),
    (165.0, 255.0, "blue"),
    (255.0, 290.0, "purple"),
    (290.0, 345.0, "pink"),
    (345.0, 360.01, "red"),
)
COLOUR_NAMES: tuple[str, ...] = (
    "black",
    "white",
    "grey",
    "brown",
    "red",
    "orange",
    "yellow",
    "green",
    "blue",
    "purple",
    "pink",
)
_BLACK_V = 0.22
_GREY_S = 0.2
_WHITE_V = 0.78
_BROWN_V = 0.6
VEHICLE_LABELS = frozenset({"car", "truck", "bus", "motorcycle", "bicycle", "train", "boat"})


def _hsv(rgb: NDArray[np.uint8]) -> tuple[NDArray[np.float64], ...]:
    x = rgb.reshape(-1, 3).astype(np.float64) / 255.0
    r, g, b = x[:, 0], x[:, 1], x[:, 2]
    v = x.max(axis=1)
    c = v - x.min(axis=1)
    s = np.where(v > 0, c / np.where(v > 0, v, 1), 0.0)
    safe = np.where(c > 0, c, 1.0)
    h = np.where(
        v == r,
        ((g - b) / safe) % 6.0,
        np.where(v == g, (b - r) / safe + 2.0, (r - g) / safe + 4.0),
    )
    return np.where(c > 0, h * 60.0, 0.0), s, v


def name_pixels(rgb: NDArray[np.uint8]) -> NDArray[np.int64]:
    """Index into ``COLOUR_NAMES`` of each pixel of an ``(..., 3)`` RGB uint8 array (flat)."""
    if rgb.ndim < 1 or rgb.shape[-1] != 3:
        raise ValueError(f"expected RGB pixels (..., 3), but got shape {rgb.shape}")
    h, s, v = _hsv(rgb)
    names = np.full(h.shape, COLOUR_NAMES.index("grey"), dtype=np.int64)
    chromatic = (v >= _BLACK_V) & (s >= _GREY_S)
    for start, end, name in _HUE_BANDS:
        names[chromatic & (h >= start) & (h < end)] = COLOUR_NAMES.index(name)
    brown = chromatic & (v < _BROWN_V) & (h < 40.0)
    names[brown] = COLOUR_NAMES.index("brown")
    achromatic = ~chromatic
    names[achromatic & (v >= _WHITE_V)] = COLOUR_NAMES.index("white")
    names[v < _BLACK_V] = COLOUR_NAMES.index("black")
    return names


def dominant_colours(
    rgb: NDArray[np.uint8], *, min_share: float = 0.25, most: int = 2
) -> list[str]:
    """The colour names covering at least ``min_share`` of the pixels, most common first.

    The most common name is always given for a non-empty region, even below ``min_share``.
    """
    if rgb.size == 0:
        return []
    counts = np.bincount(name_pixels(rgb), minlength=len(COLOUR_NAMES))
    order = np.argsort(-counts, kind="stable")
    total = counts.sum()
    picked = [COLOUR_NAMES[int(i)] for i in order[:most] if counts[i] >= min_share * total]
    return picked or [COLOUR_NAMES[int(order[0])]]


@dataclass(frozen=True, slots=True)
class CropColours:
    """Colours of one object's crop: ``upper``/``lower`` body for people, ``body`` otherwise."""

    upper: tuple[str, ...] = ()
    lower: tuple[str, ...] = ()
    body: tuple[str, ...] = ()

    def phrase(self, label: str) -> str:
        """Words for a document: "wearing red top, blue bottom" or "white car"."""
        if self.upper or self.lower:
            parts = []
            if self.upper:
                parts.append(f"{' and '.join(self.upper)} top")
            if self.lower:
                parts.append(f"{' and '.join(self.lower)} bottom (trousers, skirt)")
            return "wearing " + ", ".join(parts)
        if self.body:
            return f"{' and '.join(self.body)} {label}"
        return ""


def _region(
    frame: NDArray[np.uint8],
    box: tuple[float, float, float, float],
    top: float,
    bottom: float,
    side: float,
) -> NDArray[np.uint8]:
    height, width = frame.shape[:2]
    # The part of the box inside the frame (an object at the edge is partly out of view).
    x1, x2 = (float(np.clip(v, 0, width)) for v in (box[0], box[2]))
    y1, y2 = (float(np.clip(v, 0, height)) for v in (box[1], box[3]))
    bw, bh = x2 - x1, y2 - y1
    left = int(np.clip(round(x1 + side * bw), 0, width))
    right = int(np.clip(round(x2 - side * bw), 0, width))
    upper = int(np.clip(round(y1 + top * bh), 0, height))
    lower = int(np.clip(round(y1 + bottom * bh), 0, height))
    return frame[upper:lower, left:right]


def crop_colours(
    frame: NDArray[np.uint8], box: tuple[float, float, float, float], label: str
) -> CropColours:
    """The named colours of the object in ``box`` (pixels ``x1, y1, x2, y2``) of an RGB frame.

    People: the upper body is 15-50 % of the box height (below the head), the lower body
    55-90 %; both the middle 60 % of its width. Vehicles: the middle 60 % both ways. Other
    labels have no colour (an empty ``CropColours``).
    """
    if frame.ndim != 3 or frame.shape[2] != 3:
        raise ValueError(f"expected an RGB frame (h, w, 3), but got shape {frame.shape}")
    if label == "person":
        return CropColours(
            upper=tuple(dominant_colours(_region(frame, box, 0.15, 0.5, 0.2))),
            lower=tuple(dominant_colours(_region(frame, box, 0.55, 0.9, 0.2))),
        )
    if label in VEHICLE_LABELS:
        return CropColours(body=tuple(dominant_colours(_region(frame, box, 0.2, 0.8, 0.2))))
    return CropColours()
