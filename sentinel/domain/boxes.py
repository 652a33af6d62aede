"""Detector pre- and post-processing for YOLOv8 ONNX models (Ultralytics export).

The exported model takes a float32 ``(B, 3, S, S)`` RGB tensor scaled to 0..1 and returns
``(B, 4 + nc, N)``: four rows of ``cx, cy, w, h`` in input pixels, then ``nc`` rows of class
scores (no objectness row). :func:`letterbox_u8` builds one input image (where the frame is:
the camera), :func:`input_tensor` batches them, :func:`decode_yolo` turns one image's
prediction into :class:`~sentinel.domain.types.Detection` objects in frame pixels.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.typing import NDArray
from PIL import Image

from sentinel.domain.types import Box, Detection

# Gray used by Ultralytics to pad letterboxed images; the model was trained on it.
PAD_VALUE = 114

FloatArray = NDArray[np.floating[Any]]

COCO_LABELS: tuple[str, ...] = (
    "person", "bicycle", "car", "motorcycle", "airplane", "bus", "train", "truck", "boat",
    "traffic light", "fire hydrant", "stop sign", "parking meter", "bench", "bird", "cat", "dog",
    "horse", "sheep", "cow", "elephant", "bear", "zebra", "giraffe", "backpack", "umbrella",
    "handbag", "tie", "suitcase", "frisbee", "skis", "snowboard", "sports ball", "kite",
    "baseball bat", "baseball glove", "skateboard", "surfboard", "tennis racket", "bottle",
    "wine glass", "cup", "fork", "knife", "spoon", "bowl", "banana", "apple", "sandwich", "orange",
    "broccoli", "carrot", "hot dog", "pizza", "donut", "cake", "chair", "couch", "potted plant",
    "bed", "dining table", "toilet", "tv", "laptop", "mouse", "remote", "keyboard", "cell phone",
    "microwave", "oven", "toaster", "sink", "refrigerator", "book", "clock", "vase", "scissors",
    "teddy bear", "hair drier", "toothbrush",
)  # fmt: skip


@dataclass(frozen=True)
class Letterbox:
    """How a frame was fitted into the square model input, so boxes can be mapped back.

    Attributes:
        scale: Factor from frame pixels to input pixels.
        pad_x: Left padding in input pixels.
        pad_y: Top padding in input pixels.
        size: Side of the square model input.
        frame_width: Width of the original frame in pixels.
        frame_height: Height of the original frame in pixels.
    """

    scale: float
    pad_x: float
    pad_y: float
    size: int
    frame_width: int
    frame_height: int

    def to_frame(self, boxes_xyxy: FloatArray) -> NDArray[np.float64]:
        """Map ``(N, 4)`` xyxy boxes from input pixels to frame pixels, clipped to the frame.

        Args:
            boxes_xyxy: Boxes in model-input pixel coordinates.

        Returns:
            A new ``(N, 4)`` float64 array in frame pixel coordinates.

        Raises:
            ValueError: If ``boxes_xyxy`` is not an ``(N, 4)`` array.
        """
        boxes = _check_boxes(boxes_xyxy, "boxes_xyxy").astype(np.float64, copy=True)
        boxes[:, [0, 2]] = (boxes[:, [0, 2]] - self.pad_x) / self.scale
        boxes[:, [1, 3]] = (boxes[:, [1, 3]] - self.pad_y) / self.scale
        boxes[:, [0, 2]] = np.clip(boxes[:, [0, 2]], 0.0, float(self.frame_width))
        boxes[:, [1, 3]] = np.clip(boxes[:, [1, 3]], 0.0, float(self.frame_height))
        return boxes


@dataclass(frozen=True)
class ModelInput:
    """One letterboxed image, prepared where the frame is (the camera), for the detector.

    The detector only stacks, scales and runs these, so the resize, the padding and the copy
    happen once, next to the decoder, instead of on the detector's replica.

    Attributes:
        image: The ``(S, S, 3)`` uint8 RGB model input (the letterboxed frame or crop).
        letterbox: How it was built, to map the detections back to the source pixels.
    """

    image: NDArray[np.uint8]
    letterbox: Letterbox

    def __post_init__(self) -> None:
        size = self.letterbox.size
        if self.image.shape != (size, size, 3) or self.image.dtype != np.uint8:
            raise ValueError(
                f"image must be a ({size}, {size}, 3) uint8 array, but got "
                f"{self.image.shape} {self.image.dtype}"
            )


def letterbox_u8(image: NDArray[np.uint8], size: int = 640) -> ModelInput:
    """Fit an RGB frame into a square ``size`` x ``size`` uint8 canvas, keeping its aspect ratio.

    The frame is scaled to fit and centred on a gray (114) canvas, like Ultralytics'
    ``LetterBox``; :func:`input_tensor` turns a batch of canvases into the model's input.

    Args:
        image: An ``(H, W, 3)`` uint8 RGB frame.
        size: Side of the square model input in pixels.

    Returns:
        The canvas with the :class:`Letterbox` that maps boxes back.

    Raises:
        ValueError: If ``image`` is not a non-empty ``(H, W, 3)`` uint8 array or ``size`` < 1.
    """
    if not isinstance(image, np.ndarray) or image.ndim != 3 or image.shape[2] != 3:
        shape = getattr(image, "shape", None)
        raise ValueError(f"image must be an (H, W, 3) uint8 array, but got shape {shape}")
    if image.dtype != np.uint8:
        raise ValueError(f"image must be an (H, W, 3) uint8 array, but got dtype {image.dtype}")
    height, width = int(image.shape[0]), int(image.shape[1])
    if height == 0 or width == 0:
        raise ValueError(f"image must be an (H, W, 3) uint8 array, but got shape {image.shape}")
    if size < 1:
        raise ValueError(f"size must be >= 1, but got {size}")

    scale = min(size / height, size / width)
    new_w = min(size, max(1, round(width * scale)))
    new_h = min(size, max(1, round(height * scale)))
    if (new_w, new_h) != (width, height):
        resized = np.asarray(
            Image.fromarray(image).resize((new_w, new_h), Image.Resampling.BILINEAR),
            dtype=np.uint8,
        )
    else:
        resized = image
    # Same rounding as Ultralytics, so boxes land where the model's training pipeline put them.
    left = round((size - new_w) / 2 - 0.1)
    top = round((size - new_h) / 2 - 0.1)
    canvas = np.full((size, size, 3), PAD_VALUE, dtype=np.uint8)
    canvas[top : top + new_h, left : left + new_w] = resized
    lb = Letterbox(
        scale=scale,
        pad_x=float(left),
        pad_y=float(top),
        size=size,
        frame_width=width,
        frame_height=height,
    )
    return ModelInput(canvas, lb)


def input_tensor(images: Sequence[NDArray[np.uint8]]) -> NDArray[np.float32]:
    """Stack ``(S, S, 3)`` uint8 canvases into the model's ``(B, 3, S, S)`` float32 input in 0..1.

    Raises:
        ValueError: If ``images`` is empty or the canvases differ in shape.
    """
    if not images:
        raise ValueError("images must not be empty")
    shapes = {image.shape for image in images}
    if len(shapes) != 1:
        raise ValueError(f"images must share one shape, but got {sorted(shapes)}")
    batch = np.stack(images).transpose(0, 3, 1, 2).astype(np.float32)
    batch *= np.float32(1.0 / 255.0)
    return batch


def letterbox(image: NDArray[np.uint8], size: int = 640) -> tuple[NDArray[np.float32], Letterbox]:
    """Letterbox one frame (see :func:`letterbox_u8`) into a ``(3, size, size)`` float32 input.

    Raises:
        ValueError: If ``image`` is not a non-empty ``(H, W, 3)`` uint8 array or ``size`` < 1.
    """
    prepared = letterbox_u8(image, size)
    return input_tensor([prepared.image])[0], prepared.letterbox


def box_iou(a: FloatArray, b: FloatArray) -> NDArray[np.float64]:
    """Pairwise IoU of two sets of xyxy boxes.

    Args:
        a: ``(N, 4)`` boxes.
        b: ``(M, 4)`` boxes.

    Returns:
        An ``(N, M)`` float64 matrix of intersection over union.

    Raises:
        ValueError: If either input is not an ``(K, 4)`` array.
    """
    a64 = _check_boxes(a, "a").astype(np.float64, copy=False)
    b64 = _check_boxes(b, "b").astype(np.float64, copy=False)
    ix1 = np.maximum(a64[:, None, 0], b64[None, :, 0])
    iy1 = np.maximum(a64[:, None, 1], b64[None, :, 1])
    ix2 = np.minimum(a64[:, None, 2], b64[None, :, 2])
    iy2 = np.minimum(a64[:, None, 3], b64[None, :, 3])
    inter = np.clip(ix2 - ix1, 0.0, None) * np.clip(iy2 - iy1, 0.0, None)
    area_a = (a64[:, 2] - a64[:, 0]) * (a64[:, 3] - a64[:, 1])
    area_b = (b64[:, 2] - b64[:, 0]) * (b64[:, 3] - b64[:, 1])
    union = area_a[:, None] + area_b[None, :] - inter
    out: NDArray[np.float64] = np.divide(inter, union, out=np.zeros_like(inter), where=union > 0.0)
    return out


def nms(boxes: FloatArray, scores: FloatArray, iou_threshold: float) -> NDArray[np.intp]:
    """Greedy non-maximum suppression.

    Args:
        boxes: ``(N, 4)`` xyxy boxes.
        scores: ``(N,)`` scores.
        iou_threshold: A box is suppressed when its IoU with a kept, higher-scoring box is above
            this.

    Returns:
        Indices of the kept boxes, by descending score.

    Raises:
        ValueError: If the shapes do not match.
    """
    boxes64 = _check_boxes(boxes, "boxes").astype(np.float64, copy=False)
    scores = np.asarray(scores)
    if scores.shape != (boxes64.shape[0],):
        raise ValueError(
            f"scores must have shape ({boxes64.shape[0]},) to match boxes, "
            f"but got shape {scores.shape}"
        )
    order = np.argsort(-scores, kind="stable")
    areas = (boxes64[:, 2] - boxes64[:, 0]) * (boxes64[:, 3] - boxes64[:, 1])
    keep: list[int] = []
    while order.size > 0:
        best = int(order[0])
        keep.append(best)
        rest = order[1:]
        ix1 = np.maximum(boxes64[best, 0], boxes64[rest, 0])
        iy1 = np.maximum(boxes64[best, 1], boxes64[rest, 1])
        ix2 = np.minimum(boxes64[best, 2], boxes64[rest, 2])
        iy2 = np.minimum(boxes64[best, 3], boxes64[rest, 3])
        inter = np.clip(ix2 - ix1, 0.0, None) * np.clip(iy2 - iy1, 0.0, None)
        union = areas[best] + areas[rest] - inter
        iou = np.divide(inter, union, out=np.zeros_like(inter), where=union > 0.0)
        order = rest[iou <= iou_threshold]
    return np.asarray(keep, dtype=np.intp)


def decode_yolo(
    pred: FloatArray,
    lb: Letterbox,
    labels: Sequence[str],
    conf_threshold: float = 0.25,
    iou_threshold: float = 0.45,
    max_det: int = 300,
) -> list[Detection]:
    """Turn one image's YOLOv8 output into detections in frame pixels.

    Each candidate takes its best class; candidates under ``conf_threshold`` are dropped and
    the rest go through per-class NMS (boxes of different classes never suppress each other).

    Args:
        pred: The ``(4 + nc, N)`` prediction of one image (batch dimension removed).
        lb: The letterbox the image was built with.
        labels: Class names, indexed by class id (``nc`` of them).
        conf_threshold: Minimum class score kept.
        iou_threshold: IoU above which a same-class box is suppressed.
        max_det: Maximum number of detections returned (highest scores first).

    Returns:
        Detections sorted by descending score.

    Raises:
        ValueError: If ``pred`` is not 2-D or its row count is not ``4 + len(labels)``.
    """
    pred = np.asarray(pred)
    if pred.ndim != 2:
        raise ValueError(
            f"pred must be a (4 + nc, N) array of one image, but got shape {pred.shape}"
        )
    if pred.shape[0] != 4 + len(labels):
        raise ValueError(
            f"pred must have 4 + {len(labels)} rows for {len(labels)} labels, "
            f"but got shape {pred.shape}"
        )
    if pred.shape[1] == 0 or not labels:
        return []
    class_scores = pred[4:].astype(np.float64, copy=False)
    class_ids = np.argmax(class_scores, axis=0)
    confs = class_scores[class_ids, np.arange(pred.shape[1])]
    mask = confs >= conf_threshold
    if not np.any(mask):
        return []
    cxcywh = pred[:4, mask].T.astype(np.float64)
    confs, class_ids = confs[mask], class_ids[mask]
    half_w = np.clip(cxcywh[:, 2], 0.0, None) / 2.0
    half_h = np.clip(cxcywh[:, 3], 0.0, None) / 2.0
    xyxy = np.stack(
        [
            cxcywh[:, 0] - half_w,
            cxcywh[:, 1] - half_h,
            cxcywh[:, 0] + half_w,
            cxcywh[:, 1] + half_h,
        ],
        axis=1,
    )
    # Class-offset trick: shifting each class to its own region lets one NMS run per-class.
    offset = class_ids[:, None].astype(np.float64) * (float(np.abs(xyxy).max()) + 1.0)
    keep = nms(xyxy + offset, confs, iou_threshold)[: max(0, max_det)]
    frame_boxes = lb.to_frame(xyxy[keep])
    return [
        Detection(
            box=Box(*(float(v) for v in frame_boxes[row])),
            label=labels[int(class_ids[idx])],
            score=float(confs[idx]),
            class_id=int(class_ids[idx]),
        )
        for row, idx in enumerate(keep)
    ]


def _check_boxes(boxes: FloatArray, name: str) -> FloatArray:
    arr = np.asarray(boxes)
    if arr.ndim != 2 or arr.shape[1] != 4:
        raise ValueError(f"{name} must be a 2D array with shape (N, 4), but got shape {arr.shape}")
    return arr
