"""Training-time augmentation of one image and its boxes: flip, colour jitter, scale/translate.

Every geometric change moves the boxes with the pixels: a horizontal flip mirrors ``x``, the
affine zoom/shift maps both corners, and boxes pushed mostly out of the frame are dropped.
Pure numpy + Pillow, so the Ray Data pipeline and the unit tests run the same code.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray
from PIL import Image

from sentinel.domain.boxes import PAD_VALUE

BoxArray = NDArray[np.float32]


@dataclass(frozen=True)
class AugmentConfig:
    """How strong each augmentation is (0 turns it off).

    Attributes:
        flip: Probability of a horizontal flip.
        hue: Largest hue shift as a fraction of the colour wheel.
        saturation: Largest relative change of saturation.
        value: Largest relative change of brightness.
        scale: Largest relative zoom in or out.
        translate: Largest shift as a fraction of the image side.
        min_visible: A box keeps at least this share of its area inside the frame, or goes.
    """

    flip: float = 0.5
    hue: float = 0.015
    saturation: float = 0.4
    value: float = 0.3
    scale: float = 0.1
    translate: float = 0.05
    min_visible: float = 0.3


def check_boxes(boxes: NDArray[np.floating], classes: NDArray[np.integer]) -> None:
    """Raise ValueError unless ``boxes`` is (N, 4) and ``classes`` is (N,)."""
    if boxes.ndim != 2 or boxes.shape[1] != 4:
        raise ValueError(f"boxes must be an (N, 4) array, but got shape {boxes.shape}")
    if classes.shape != (boxes.shape[0],):
        raise ValueError(
            f"classes must be an ({boxes.shape[0]},) array, but got shape {classes.shape}"
        )


def hflip(
    image: NDArray[np.uint8], boxes: NDArray[np.floating]
) -> tuple[NDArray[np.uint8], BoxArray]:
    """Mirror the image left-right; xyxy pixel boxes follow."""
    width = image.shape[1]
    out = boxes.astype(np.float32, copy=True)
    out[:, 0] = width - boxes[:, 2]
    out[:, 2] = width - boxes[:, 0]
    return np.ascontiguousarray(image[:, ::-1]), out


def jitter_hsv(
    image: NDArray[np.uint8], hue: float, saturation: float, value: float
) -> NDArray[np.uint8]:
    """Shift hue by ``hue`` (fraction of the wheel) and scale saturation/value by gains."""
    hsv = np.asarray(Image.fromarray(image).convert("HSV"), dtype=np.float32)
    hsv[..., 0] = (hsv[..., 0] + hue * 255.0) % 256.0
    hsv[..., 1] = np.clip(hsv[..., 1] * saturation, 0, 255)
    hsv[..., 2] = np.clip(hsv[..., 2] * value, 0, 255)
    out = Image.fromarray(hsv.astype(np.uint8), mode="HSV").convert("RGB")
    return np.asarray(out, dtype=np.uint8)


def affine(
    image: NDArray[np.uint8],
    boxes: NDArray[np.floating],
    classes: NDArray[np.integer],
    *,
    scale: float,
    dx: float,
    dy: float,
    min_visible: float = 0.3,
) -> tuple[NDArray[np.uint8], BoxArray, NDArray[np.int64]]:
    """Zoom by ``scale`` about the centre, then shift by (dx, dy) pixels; same image size.

    Boxes are mapped, clipped to the frame, and dropped when less than ``min_visible`` of
    their area (or under 2 px on a side) is left.
    """
    check_boxes(boxes, classes)
    height, width = image.shape[:2]
    cx, cy = width / 2.0, height / 2.0
    # Pillow's AFFINE maps output pixels to input pixels: the inverse of p' = s(p - c) + c + d.
    inv = (
        1.0 / scale,
        0.0,
        cx - (cx + dx) / scale,
        0.0,
        1.0 / scale,
        cy - (cy + dy) / scale,
    )
    fill = (PAD_VALUE, PAD_VALUE, PAD_VALUE)
    out = Image.fromarray(image).transform(
        (width, height), Image.Transform.AFFINE, inv, Image.Resampling.BILINEAR, fillcolor=fill
    )
    mapped = boxes.astype(np.float32, copy=True)
    mapped[:, [0, 2]] = scale * (boxes[:, [0, 2]] - cx) + cx + dx
    mapped[:, [1, 3]] = scale * (boxes[:, [1, 3]] - cy) + cy + dy
    area = (mapped[:, 2] - mapped[:, 0]) * (mapped[:, 3] - mapped[:, 1])
    mapped[:, [0, 2]] = np.clip(mapped[:, [0, 2]], 0, width)
    mapped[:, [1, 3]] = np.clip(mapped[:, [1, 3]], 0, height)
    w = mapped[:, 2] - mapped[:, 0]
    h = mapped[:, 3] - mapped[:, 1]
    keep = (w >= 2) & (h >= 2) & (w * h >= min_visible * np.maximum(area, 1e-6))
    return (
        np.asarray(out, dtype=np.uint8),
        mapped[keep],
        classes[keep].astype(np.int64),
    )


def augment(
    image: NDArray[np.uint8],
    boxes: NDArray[np.floating],
    classes: NDArray[np.integer],
    rng: np.random.Generator,
    config: AugmentConfig | None = None,
) -> tuple[NDArray[np.uint8], BoxArray, NDArray[np.int64]]:
    """One random augmentation of ``image`` (H, W, 3 uint8 RGB) and its xyxy pixel boxes.

    Returns:
        The new image (same size), its boxes (float32, xyxy pixels) and their classes.
    """
    cfg = config or AugmentConfig()
    check_boxes(boxes, classes)
    out_boxes = boxes.astype(np.float32, copy=True)
    out_classes = classes.astype(np.int64, copy=True)
    if cfg.flip > 0 and rng.random() < cfg.flip:
        image, out_boxes = hflip(image, out_boxes)
    if cfg.hue > 0 or cfg.saturation > 0 or cfg.value > 0:
        image = jitter_hsv(
            image,
            float(rng.uniform(-cfg.hue, cfg.hue)),
            float(1.0 + rng.uniform(-cfg.saturation, cfg.saturation)),
            float(1.0 + rng.uniform(-cfg.value, cfg.value)),
        )
    if cfg.scale > 0 or cfg.translate > 0:
        height, width = image.shape[:2]
        image, out_boxes, out_classes = affine(
            image,
            out_boxes,
            out_classes,
            scale=float(1.0 + rng.uniform(-cfg.scale, cfg.scale)),
            dx=float(rng.uniform(-cfg.translate, cfg.translate) * width),
            dy=float(rng.uniform(-cfg.translate, cfg.translate) * height),
            min_visible=cfg.min_visible,
        )
    return image, out_boxes, out_classes
