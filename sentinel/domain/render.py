"""Drawing boxes on frames and encoding JPEGs (snapshots, latest frames)."""

from __future__ import annotations

import io
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray
from PIL import Image, ImageDraw

from sentinel.domain.types import Box

_COLORS = {"person": (0, 200, 255), "car": (255, 170, 0), "truck": (255, 120, 0)}
_DEFAULT_COLOR = (0, 255, 120)


@dataclass(frozen=True, slots=True)
class Overlay:
    """One box to draw, with its caption."""

    box: Box
    label: str
    caption: str


def encode_jpeg(
    rgb: NDArray[np.uint8], overlays: Sequence[Overlay] = (), *, quality: int = 85
) -> bytes:
    """JPEG of ``rgb`` (H, W, 3) with ``overlays`` drawn on a copy."""
    if rgb.ndim != 3 or rgb.shape[2] != 3:
        raise ValueError(f"rgb must be an (H, W, 3) array, but got shape {rgb.shape}")
    image = Image.fromarray(rgb)
    if overlays:
        draw = ImageDraw.Draw(image)
        for ov in overlays:
            color = _COLORS.get(ov.label, _DEFAULT_COLOR)
            draw.rectangle(ov.box.as_list(), outline=color, width=3)
            tx, ty = ov.box.x1, max(0.0, ov.box.y1 - 12)
            text_box = draw.textbbox((tx, ty), ov.caption)
            draw.rectangle(text_box, fill=color)
            draw.text((tx, ty), ov.caption, fill=(0, 0, 0))
    buf = io.BytesIO()
    image.save(buf, format="JPEG", quality=quality)
    return buf.getvalue()
