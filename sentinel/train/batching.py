"""Samples as the trainer reads them, and their collation into ultralytics' batch dict.

A sample is a letterboxed ``(S, S, 3)`` uint8 image plus a fixed-size ``(M, 5)`` float32 target
table (``class, cx, cy, w, h`` normalised to the square input; unused rows have class -1), so
every row of the Ray Dataset has the same shapes. :func:`collate` turns a batch of them into the
dict ``DetectionModel.loss`` reads: ``img`` (B, 3, S, S) float 0..1, ``batch_idx`` (n,), ``cls``
(n, 1) and ``bboxes`` (n, 4) normalised cx, cy, w, h (FIELD-NOTES, "Fine-tuning YOLOv8n").
"""

from __future__ import annotations

from typing import Any

import numpy as np
from numpy.typing import NDArray

from sentinel.domain.boxes import letterbox_u8
from sentinel.train.augment import check_boxes

TARGET_COLUMNS = 5


def encode_sample(
    image: NDArray[np.uint8],
    boxes: NDArray[np.floating],
    classes: NDArray[np.integer],
    *,
    size: int,
    max_boxes: int,
) -> dict[str, NDArray[np.generic]]:
    """Letterbox ``image`` to ``size`` and pack its xyxy pixel boxes into the target table.

    Raises:
        ValueError: If the shapes are wrong or there are more than ``max_boxes`` boxes.
    """
    check_boxes(boxes, classes)
    if len(boxes) > max_boxes:
        raise ValueError(f"{len(boxes)} boxes, but at most {max_boxes} fit the target table")
    prepared = letterbox_u8(image, size)
    lb = prepared.letterbox
    targets = np.zeros((max_boxes, TARGET_COLUMNS), dtype=np.float32)
    targets[:, 0] = -1.0
    if len(boxes):
        x1 = boxes[:, 0] * lb.scale + lb.pad_x
        y1 = boxes[:, 1] * lb.scale + lb.pad_y
        x2 = boxes[:, 2] * lb.scale + lb.pad_x
        y2 = boxes[:, 3] * lb.scale + lb.pad_y
        n = len(boxes)
        targets[:n, 0] = classes
        targets[:n, 1] = (x1 + x2) / 2 / size
        targets[:n, 2] = (y1 + y2) / 2 / size
        targets[:n, 3] = (x2 - x1) / size
        targets[:n, 4] = (y2 - y1) / size
    return {"image": prepared.image, "targets": targets}


def collate(
    images: NDArray[np.uint8], targets: NDArray[np.floating]
) -> dict[str, NDArray[np.float32]]:
    """Ultralytics' batch dict (as numpy) from ``images`` (B, S, S, 3) and ``targets`` (B, M, 5).

    Raises:
        ValueError: If the shapes do not match.
    """
    if images.ndim != 4 or images.shape[3] != 3 or images.shape[1] != images.shape[2]:
        raise ValueError(f"images must be (B, S, S, 3), but got shape {images.shape}")
    if targets.ndim != 3 or targets.shape[0] != images.shape[0] or targets.shape[2] != 5:
        raise ValueError(
            f"targets must be ({images.shape[0]}, M, 5), but got shape {targets.shape}"
        )
    img = np.ascontiguousarray(images.transpose(0, 3, 1, 2), dtype=np.float32) / 255.0
    valid = targets[:, :, 0] >= 0
    batch_idx, row = np.nonzero(valid)
    picked = targets[batch_idx, row]
    return {
        "img": img.astype(np.float32, copy=False),
        "batch_idx": batch_idx.astype(np.float32),
        "cls": picked[:, 0:1].astype(np.float32),
        "bboxes": picked[:, 1:5].astype(np.float32),
    }


def decode_targets(
    targets: NDArray[Any], size: int
) -> tuple[NDArray[np.float32], NDArray[np.int64]]:
    """The xyxy boxes (input pixels) and classes of one sample's target table."""
    rows = targets[targets[:, 0] >= 0]
    cx, cy, w, h = (rows[:, i] * size for i in range(1, 5))
    boxes = np.stack([cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2], axis=1).astype(np.float32)
    return boxes.reshape(-1, 4), rows[:, 0].astype(np.int64)
