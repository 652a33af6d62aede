"""The learning loop's pure records: a labelled box and a frame proposed for annotation.

They live in the domain (the bottom layer) because both the store (``AnnotationRepo``) and the
training code (``sentinel.train``) speak them; ``sentinel.train.datasets`` and
``sentinel.train.annotations`` re-export them.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from datetime import datetime
from typing import Literal

QueueSource = Literal["recording", "snapshot", "video"]
QUEUE_SOURCES: tuple[str, ...] = ("recording", "snapshot", "video")
# Frames whose 64-bit dHashes differ in at most this many bits are near-duplicates.
NEAR_DUPLICATE_BITS = 6
QUEUE_REASONS: tuple[str, ...] = (
    "near_threshold",
    "flicker",
    "false_positive",
    "disagreement",
    "calibration",
)


@dataclass(frozen=True)
class LabeledBox:
    """A labelled axis-aligned box in source-image pixels.

    Attributes:
        label: Class name (one of the detector's labels).
        x1: Left edge.
        y1: Top edge.
        x2: Right edge.
        y2: Bottom edge.
        score: Detector confidence for a pre-label; ``None`` for a human box.
    """

    label: str
    x1: float
    y1: float
    x2: float
    y2: float
    score: float | None = None

    def __post_init__(self) -> None:
        coords = (self.x1, self.y1, self.x2, self.y2)
        if not all(isinstance(v, int | float) and math.isfinite(v) for v in coords):
            raise ValueError(f"box coordinates must be finite numbers, but got {list(coords)}")

    @property
    def width(self) -> float:
        return self.x2 - self.x1

    @property
    def height(self) -> float:
        return self.y2 - self.y1

    def as_dict(self) -> dict[str, object]:
        """JSON-friendly form (``score`` only when set)."""
        out: dict[str, object] = {
            "label": self.label,
            "x1": self.x1,
            "y1": self.y1,
            "x2": self.x2,
            "y2": self.y2,
        }
        if self.score is not None:
            out["score"] = self.score
        return out

    @classmethod
    def from_dict(cls, data: dict[str, object]) -> LabeledBox:
        """Inverse of :meth:`as_dict`."""
        score = data.get("score")
        return cls(
            label=str(data["label"]),
            x1=float(data["x1"]),  # type: ignore[arg-type]
            y1=float(data["y1"]),  # type: ignore[arg-type]
            x2=float(data["x2"]),  # type: ignore[arg-type]
            y2=float(data["y2"]),  # type: ignore[arg-type]
            score=None if score is None else float(score),  # type: ignore[arg-type]
        )


def iou(a: LabeledBox, b: LabeledBox) -> float:
    """Intersection over union of two boxes (labels ignored); 0 for empty boxes."""
    ix = max(0.0, min(a.x2, b.x2) - max(a.x1, b.x1))
    iy = max(0.0, min(a.y2, b.y2) - max(a.y1, b.y1))
    inter = ix * iy
    union = max(0.0, a.width) * max(0.0, a.height) + max(0.0, b.width) * max(0.0, b.height) - inter
    return inter / union if union > 0 else 0.0


@dataclass(frozen=True)
class QueueCandidate:
    """A frame the miner proposes for annotation.

    Attributes:
        camera_id: Camera the frame comes from.
        frame_ts: The frame's wall time (UTC).
        frame_index: Position in the source video when known.
        source: Where the frame was read: "recording", "snapshot" or "video".
        width: Image width in pixels.
        height: Image height in pixels.
        phash: 64-bit perceptual hash (dHash) of the frame, for near-duplicate removal.
        score: Expected value of annotating it (higher first).
        reasons: Why it was mined (see ``QUEUE_REASONS``).
        prelabels: The detector's boxes, with scores, to start from.
        image_jpeg: The JPEG bytes; the repo stores them under
            ``annotation/frames/<camera>/<id>.jpg``.
        image_key: Or the object key of an already stored JPEG (one of the two is required).
    """

    camera_id: str
    frame_ts: datetime
    frame_index: int | None
    source: QueueSource
    width: int
    height: int
    phash: int
    score: float
    reasons: tuple[str, ...] = ()
    prelabels: tuple[LabeledBox, ...] = ()
    image_jpeg: bytes | None = field(default=None, repr=False)
    image_key: str | None = None

    def __post_init__(self) -> None:
        if self.source not in QUEUE_SOURCES:
            raise ValueError(f"source must be one of {QUEUE_SOURCES}, but got {self.source!r}")
        if self.width <= 0 or self.height <= 0:
            raise ValueError(
                f"width and height must be positive, but got {self.width}x{self.height}"
            )
        if not 0 <= self.phash < 2**64:
            raise ValueError(f"phash must be an unsigned 64-bit integer, but got {self.phash}")
        if not math.isfinite(self.score):
            raise ValueError(f"score must be finite, but got {self.score}")
        unknown = [r for r in self.reasons if r not in QUEUE_REASONS]
        if unknown:
            raise ValueError(f"reasons must be among {QUEUE_REASONS}, but got {unknown}")
        if (self.image_jpeg is None) == (self.image_key is None):
            raise ValueError("exactly one of image_jpeg and image_key must be given")
        if self.frame_ts.tzinfo is None:
            raise ValueError("frame_ts must be timezone-aware (UTC)")


def hamming64(a: int, b: int) -> int:
    """Number of differing bits between two 64-bit hashes."""
    return ((a ^ b) & 0xFFFFFFFFFFFFFFFF).bit_count()
