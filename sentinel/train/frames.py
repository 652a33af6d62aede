"""Reading one dataset item: its image (a JPEG, or a frame of a recorded MP4 segment) and boxes.

An item whose ``image`` is an ``.mp4`` object points at a recorded segment: the frame at
``frame_index`` is read by random access with ``decord`` (decoding only from the nearest key
frame, not the whole clip: FIELD-NOTES "Video"). Every file is checked against the manifest's
sha256 first (:func:`sentinel.train.datasets.verify_item`). Any failure raises
:class:`UnreadableItemError` naming the item, so the curation pipeline can skip and count it.
"""

from __future__ import annotations

import io
import os
import tempfile
from collections.abc import Sequence

import numpy as np
from numpy.typing import NDArray
from PIL import Image, UnidentifiedImageError

from sentinel.train.datasets import DatasetError, ManifestItem, parse_yolo_lines, verify_item

MAX_PIXELS = 40_000_000  # a decompression bomb is unreadable, not an OOM


class UnreadableItemError(ValueError):
    """A dataset item that cannot be used (corrupt, missing, hash mismatch, bad labels)."""


def decode_jpeg(data: bytes) -> NDArray[np.uint8]:
    """RGB pixels of an image file (JPEG/PNG); raises UnreadableItemError for anything else."""
    try:
        with Image.open(io.BytesIO(data)) as img:
            if img.width * img.height > MAX_PIXELS:
                raise UnreadableItemError(
                    f"image is {img.width}x{img.height}, over {MAX_PIXELS} px"
                )
            rgb = img.convert("RGB")
            rgb.load()
    except (UnidentifiedImageError, OSError, Image.DecompressionBombError) as exc:
        raise UnreadableItemError(f"not a readable image: {exc}") from exc
    return np.asarray(rgb, dtype=np.uint8)


def decode_video_frames(data: bytes, indices: Sequence[int]) -> list[NDArray[np.uint8]]:
    """The frames at ``indices`` of a video file's bytes, by random access with decord.

    Raises:
        UnreadableItemError: The video cannot be opened or an index is out of range.
    """
    import decord  # heavy native library; only when an item points at a segment

    fd, path = tempfile.mkstemp(suffix=".mp4")
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
        try:
            reader = decord.VideoReader(path, ctx=decord.cpu(0), num_threads=1)
        except Exception as exc:  # decord raises its own DECORDError / RuntimeError
            raise UnreadableItemError(f"not a readable video: {exc}") from exc
        count = len(reader)
        bad = [i for i in indices if not 0 <= i < count]
        if bad:
            raise UnreadableItemError(f"frame index {bad[0]} outside the video's {count} frames")
        try:
            batch = reader.get_batch(list(indices)).asnumpy()
        except Exception as exc:
            raise UnreadableItemError(f"cannot decode frames {list(indices)}: {exc}") from exc
        return [np.ascontiguousarray(frame, dtype=np.uint8) for frame in batch]
    finally:
        os.unlink(path)


def is_segment(item: ManifestItem) -> bool:
    """Whether the item's image is a frame of a recorded video segment."""
    return item.image.lower().endswith(".mp4")


def read_boxes(
    item: ManifestItem, label_bytes: bytes, labels: Sequence[str]
) -> tuple[NDArray[np.float32], NDArray[np.int64]]:
    """The item's boxes (xyxy source pixels) and class indices."""
    try:
        parsed = parse_yolo_lines(label_bytes.decode(), labels, item.width, item.height)
    except (DatasetError, UnicodeDecodeError) as exc:
        raise UnreadableItemError(f"{item.label}: {exc}") from exc
    index = {label: i for i, label in enumerate(labels)}
    boxes = np.array([[b.x1, b.y1, b.x2, b.y2] for b in parsed], dtype=np.float32).reshape(-1, 4)
    classes = np.array([index[b.label] for b in parsed], dtype=np.int64)
    return boxes, classes


def read_item(
    item: ManifestItem,
    image_bytes: bytes,
    label_bytes: bytes,
    labels: Sequence[str],
    frame: NDArray[np.uint8] | None = None,
) -> tuple[NDArray[np.uint8], NDArray[np.float32], NDArray[np.int64]]:
    """Verify and decode one item: ``(rgb image, boxes, classes)``.

    Args:
        item: The manifest entry.
        image_bytes: The image object (a JPEG, or the MP4 segment).
        label_bytes: The YOLO label file.
        labels: The dataset's labels.
        frame: For a segment item, its frame already decoded (several items of one segment
            share one decode); None: decoded here.

    Raises:
        UnreadableItemError: naming the item and what is wrong.
    """
    try:
        verify_item(item, image_bytes, label_bytes)
    except DatasetError as exc:
        raise UnreadableItemError(f"item {item.id}: {exc}") from exc
    if is_segment(item):
        if item.frame_index is None:
            raise UnreadableItemError(f"item {item.id}: a segment item needs a frame_index")
        if frame is None:
            frame = decode_video_frames(image_bytes, [item.frame_index])[0]
        image = frame
    else:
        image = decode_jpeg(image_bytes)
    if image.shape[:2] != (item.height, item.width):
        raise UnreadableItemError(
            f"item {item.id}: image is {image.shape[1]}x{image.shape[0]}, but the manifest "
            f"says {item.width}x{item.height}"
        )
    boxes, classes = read_boxes(item, label_bytes, labels)
    return image, boxes, classes
