"""Drawing boxes and a camera's zones, lines and masks on frames; encoding JPEGs (snapshots,
latest frames)."""

from __future__ import annotations

import io
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray
from PIL import Image, ImageDraw, JpegImagePlugin

from sentinel.domain.masks import ObjectMask, Polygon
from sentinel.domain.scene import CrossDirection, Point
from sentinel.domain.types import Box
from sentinel.domain.zones import Line, Zone

_COLORS = {"person": (0, 200, 255), "car": (255, 170, 0), "truck": (255, 120, 0)}
_DEFAULT_COLOR = (0, 255, 120)
_ZONE_COLOR = (255, 215, 0)
_LINE_COLOR = (0, 230, 255)
_MOTION_MASK_TINT = (90, 90, 90, 140)
_OBJECT_MASK_TINT = (220, 40, 40, 110)
_HATCH_PX = 12  # spacing of the hatching over masks
_ARROW_PX = 28  # length of a line's arrow towards its "in" side


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


def decode_jpeg(data: bytes) -> NDArray[np.uint8]:
    """The ``(H, W, 3)`` RGB array of a JPEG.

    Only the JPEG decoder is tried (not ``Image.open``, which would try every format Pillow
    knows, and which other libraries in the process may patch, e.g. ultralytics).

    Raises:
        ValueError: If ``data`` is not a JPEG PIL can read.
    """
    try:
        with JpegImagePlugin.JpegImageFile(io.BytesIO(data)) as image:
            return np.asarray(image.convert("RGB"), dtype=np.uint8)
    except (OSError, SyntaxError) as exc:  # "not a JPEG file" is a SyntaxError
        raise ValueError(f"not a readable image: {exc}") from exc


def draw_scene(
    rgb: NDArray[np.uint8],
    *,
    zones: Sequence[Zone] = (),
    lines: Sequence[Line] = (),
    motion_masks: Sequence[Polygon] = (),
    object_masks: Sequence[ObjectMask] = (),
) -> NDArray[np.uint8]:
    """A copy of ``rgb`` (H, W, 3) with a camera's scene drawn on it.

    Masks are tinted and hatched (motion masks grey, object masks red), zones outlined with
    their name, lines drawn with their name and an arrow pointing to their "in" side (its
    left as drawn); a one-way line's caption says which crossings it reports.
    """
    if rgb.ndim != 3 or rgb.shape[2] != 3:
        raise ValueError(f"rgb must be an (H, W, 3) array, but got shape {rgb.shape}")
    height, width = rgb.shape[:2]

    def px(p: Point) -> tuple[float, float]:
        return (p[0] * width, p[1] * height)

    image = Image.fromarray(rgb).convert("RGBA")
    shade = Image.new("RGBA", image.size, (0, 0, 0, 0))
    draw = ImageDraw.Draw(shade)
    masks = [(m, _MOTION_MASK_TINT) for m in motion_masks]
    masks += [(m.polygon, _OBJECT_MASK_TINT) for m in object_masks]
    if masks:
        hatch = Image.new("L", image.size, 0)
        hatch_draw = ImageDraw.Draw(hatch)
        for offset in range(-height, width, _HATCH_PX):
            hatch_draw.line([(offset, height), (offset + height, 0)], fill=255, width=2)
        blank = Image.new("L", image.size, 0)
    for polygon, tint in masks:
        points = [px(p) for p in polygon]
        draw.polygon(points, fill=tint)
        inside = Image.new("L", image.size, 0)
        ImageDraw.Draw(inside).polygon(points, fill=255)
        shade.paste((*tint[:3], 220), None, Image.composite(hatch, blank, inside))
        draw.polygon(points, outline=(*tint[:3], 255), width=2)
    image = Image.alpha_composite(image, shade).convert("RGB")

    draw_rgb = ImageDraw.Draw(image)
    for zone in zones:
        points = [px(p) for p in zone.polygon]
        draw_rgb.polygon(points, outline=_ZONE_COLOR, width=3)
        top = min(points, key=lambda q: (q[1], q[0]))
        _caption(draw_rgb, (top[0], max(0.0, top[1] - 12)), zone.name, _ZONE_COLOR)
    for line in lines:
        (ax, ay), (bx, by) = px(line.a), px(line.b)
        draw_rgb.line([(ax, ay), (bx, by)], fill=_LINE_COLOR, width=3)
        length = max(((bx - ax) ** 2 + (by - ay) ** 2) ** 0.5, 1e-9)
        # The left normal of a → b on screen (y down) is (dy, -dx).
        nx, ny = (by - ay) / length, -(bx - ax) / length
        mx, my = (ax + bx) / 2, (ay + by) / 2
        tip = (mx + nx * _ARROW_PX, my + ny * _ARROW_PX)
        draw_rgb.line([(mx, my), tip], fill=_LINE_COLOR, width=3)
        back = (tip[0] - nx * 10, tip[1] - ny * 10)
        side = (ny * 6, -nx * 6)  # along the line, for the arrowhead's width
        draw_rgb.polygon(
            [tip, (back[0] + side[0], back[1] + side[1]), (back[0] - side[0], back[1] - side[1])],
            fill=_LINE_COLOR,
        )
        caption = line.name
        if line.direction is CrossDirection.IN:
            caption += " (in only)"
        elif line.direction is CrossDirection.OUT:
            caption += " (out only)"
        _caption(draw_rgb, (min(ax, bx), max(0.0, min(ay, by) - 12)), caption, _LINE_COLOR)
    return np.asarray(image, dtype=np.uint8)


def _caption(
    draw: ImageDraw.ImageDraw, at: tuple[float, float], text: str, color: tuple[int, int, int]
) -> None:
    box = draw.textbbox(at, text)
    draw.rectangle(box, fill=color)
    draw.text(at, text, fill=(0, 0, 0))
