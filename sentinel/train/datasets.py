"""The dataset format of the learning loop: YOLO labels + a manifest with hashes (pure).

Object-store layout of one dataset version::

    datasets/<name>/v<version>/manifest.json
    datasets/<name>/v<version>/images/<item_id>.jpg
    datasets/<name>/v<version>/labels/<item_id>.txt

A label file holds one line per box, ``class_index cx cy w h``, normalised to 0..1 by the image
size; the class index is the label's position in the manifest's ``labels``. The manifest records
the sha256 of every image and label file, so a reader can prove it trains on what was annotated
(:func:`verify_item`). A version is never rewritten: building again makes a new version, and
once a training run used a version it is locked (``DatasetRepo.lock``).
"""

from __future__ import annotations

import hashlib
import math
import re
from collections.abc import Sequence
from datetime import datetime
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from sentinel.domain.annotation import LabeledBox

__all__ = [
    "DATASET_NAME_PATTERN",
    "DatasetError",
    "DatasetManifest",
    "LabeledBox",
    "ManifestItem",
    "image_key",
    "label_key",
    "manifest_key",
    "parse_yolo_lines",
    "sha256_hex",
    "verify_item",
    "version_prefix",
    "yolo_lines",
]

# A dataset name is one object-key segment (sentinel.store.objects): no "/" and no "..".
DATASET_NAME_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$"
_NAME = re.compile(DATASET_NAME_PATTERN)
_DECIMALS = 6


class DatasetError(ValueError):
    """A dataset file is malformed or does not match its manifest."""


def sha256_hex(data: bytes) -> str:
    """Hex sha256 of ``data``."""
    return hashlib.sha256(data).hexdigest()


def _check_name(name: str) -> str:
    if not _NAME.fullmatch(name):
        raise DatasetError(
            f"dataset name must match {DATASET_NAME_PATTERN} (letters, digits, '.', '_', '-'), "
            f"but got {name!r}"
        )
    return name


def version_prefix(name: str, version: int) -> str:
    """``datasets/<name>/v<version>/``."""
    if version < 1:
        raise DatasetError(f"dataset version must be >= 1, but got {version}")
    return f"datasets/{_check_name(name)}/v{version}/"


def manifest_key(name: str, version: int) -> str:
    """Object key of a version's manifest."""
    return version_prefix(name, version) + "manifest.json"


def image_key(name: str, version: int, item_id: str) -> str:
    """Object key of an item's JPEG."""
    return version_prefix(name, version) + f"images/{item_id}.jpg"


def label_key(name: str, version: int, item_id: str) -> str:
    """Object key of an item's YOLO label file."""
    return version_prefix(name, version) + f"labels/{item_id}.txt"


def _fmt(value: float) -> str:
    return f"{value:.{_DECIMALS}f}"


def yolo_lines(boxes: Sequence[LabeledBox], labels: Sequence[str], width: int, height: int) -> str:
    """Encode boxes (source pixels) as a YOLO label file.

    Args:
        boxes: Boxes inside the ``width`` x ``height`` image, labels among ``labels``.
        labels: The dataset's class names; a box's class index is its label's position.
        width: Image width in pixels.
        height: Image height in pixels.

    Returns:
        One ``class_index cx cy w h`` line per box (normalised), each ending in a newline;
        ``""`` for an image without boxes (a negative example).

    Raises:
        DatasetError: a label not in ``labels``, a box outside the image or a degenerate box.
    """
    if width <= 0 or height <= 0:
        raise DatasetError(f"image size must be positive, but got {width}x{height}")
    index = {label: i for i, label in enumerate(labels)}
    lines: list[str] = []
    for i, box in enumerate(boxes):
        if box.label not in index:
            raise DatasetError(f"box {i}: label {box.label!r} is not among the dataset's labels")
        if not (0 <= box.x1 < box.x2 <= width and 0 <= box.y1 < box.y2 <= height):
            raise DatasetError(
                f"box {i}: ({box.x1}, {box.y1}, {box.x2}, {box.y2}) is not a non-empty box "
                f"inside the {width}x{height} image"
            )
        cx = (box.x1 + box.x2) / 2 / width
        cy = (box.y1 + box.y2) / 2 / height
        w = (box.x2 - box.x1) / width
        h = (box.y2 - box.y1) / height
        lines.append(f"{index[box.label]} {_fmt(cx)} {_fmt(cy)} {_fmt(w)} {_fmt(h)}\n")
    return "".join(lines)


def parse_yolo_lines(
    text: str, labels: Sequence[str], width: int = 1, height: int = 1
) -> list[LabeledBox]:
    """Decode a YOLO label file into boxes.

    Args:
        text: The label file's text (blank lines are ignored).
        labels: The dataset's class names (class index = position).
        width: Image width: the boxes come back in source pixels. Left at 1, they stay normalised.
        height: Image height, as ``width``.

    Raises:
        DatasetError: naming the line for a wrong field count, a non-number, a class index out of
            range or a box not inside 0..1.
    """
    boxes: list[LabeledBox] = []
    for number, raw in enumerate(text.splitlines(), start=1):
        line = raw.strip()
        if not line:
            continue
        fields = line.split()
        if len(fields) != 5:
            raise DatasetError(
                f"line {number}: expected 5 fields 'class cx cy w h', got {len(fields)}"
            )
        try:
            cls = int(fields[0])
            cx, cy, w, h = (float(f) for f in fields[1:])
        except ValueError:
            raise DatasetError(f"line {number}: not numbers: {line!r}") from None
        if not 0 <= cls < len(labels):
            raise DatasetError(f"line {number}: class index {cls} outside 0..{len(labels) - 1}")
        values = (cx, cy, w, h)
        if not all(math.isfinite(v) for v in values) or w <= 0 or h <= 0:
            raise DatasetError(f"line {number}: box must have finite values and w, h > 0: {line!r}")
        x1, x2 = cx - w / 2, cx + w / 2
        y1, y2 = cy - h / 2, cy + h / 2
        tol = 10.0 ** -(_DECIMALS - 1)
        if x1 < -tol or y1 < -tol or x2 > 1 + tol or y2 > 1 + tol:
            raise DatasetError(f"line {number}: box is not inside the image (0..1): {line!r}")
        boxes.append(
            LabeledBox(
                label=labels[cls],
                x1=max(0.0, x1) * width,
                y1=max(0.0, y1) * height,
                x2=min(1.0, x2) * width,
                y2=min(1.0, y2) * height,
            )
        )
    return boxes


class ManifestItem(BaseModel):
    """One image of a dataset version."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    id: str = Field(description="Annotation item id; also the file stem of image and label.")
    image: str = Field(description="Path of the JPEG relative to the version folder.")
    label: str = Field(description="Path of the YOLO label file relative to the version folder.")
    image_sha256: str = Field(pattern=r"^[0-9a-f]{64}$")
    label_sha256: str = Field(pattern=r"^[0-9a-f]{64}$")
    camera_id: str
    frame_ts: datetime = Field(description="The frame's wall time (UTC); splits are by time.")
    frame_index: int | None = Field(default=None, description="Position in the source video.")
    width: int = Field(gt=0)
    height: int = Field(gt=0)
    boxes: int = Field(ge=0, description="Number of boxes in the label file.")


class DatasetManifest(BaseModel):
    """``manifest.json`` of one dataset version."""

    model_config = ConfigDict(extra="forbid")

    name: str = Field(pattern=DATASET_NAME_PATTERN)
    version: int = Field(ge=1)
    format: Literal["yolo"] = "yolo"
    created_at: datetime
    labels: list[str] = Field(description="Class names; a class index is a position here.")
    items: list[ManifestItem]
    locked_by: list[str] = Field(default_factory=list, description="Training runs that used it.")

    @field_validator("created_at")
    @classmethod
    def _aware(cls, value: datetime) -> datetime:
        if value.tzinfo is None:
            raise ValueError("created_at must be timezone-aware (UTC)")
        return value

    def to_json(self) -> bytes:
        """The manifest file's bytes."""
        return self.model_dump_json(indent=2).encode()

    @classmethod
    def from_json(cls, data: bytes | str) -> DatasetManifest:
        """Parse a manifest file; raises :class:`DatasetError` when it is not one."""
        try:
            return cls.model_validate_json(data)
        except ValueError as exc:
            raise DatasetError(f"manifest.json is not a valid dataset manifest: {exc}") from exc


def verify_item(item: ManifestItem, image_bytes: bytes, label_bytes: bytes) -> None:
    """Check an item's files against the manifest's hashes.

    Raises:
        DatasetError: naming the file whose sha256 differs from the manifest.
    """
    got = sha256_hex(image_bytes)
    if got != item.image_sha256:
        raise DatasetError(
            f"{item.image}: sha256 {got} does not match the manifest's {item.image_sha256}"
        )
    got = sha256_hex(label_bytes)
    if got != item.label_sha256:
        raise DatasetError(
            f"{item.label}: sha256 {got} does not match the manifest's {item.label_sha256}"
        )
