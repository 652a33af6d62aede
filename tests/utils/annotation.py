"""Factories for the annotation tests: queue candidates with real JPEG frames."""

from __future__ import annotations

import io
from datetime import UTC, datetime, timedelta

import numpy as np
from PIL import Image

from sentinel.domain.annotation import LabeledBox, QueueCandidate

T0 = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
WIDTH, HEIGHT = 64, 48


def jpeg(seed: int, width: int = WIDTH, height: int = HEIGHT) -> bytes:
    """A small random JPEG (different bytes per seed)."""
    rng = np.random.default_rng(seed)
    pixels = rng.integers(0, 255, size=(height, width, 3), dtype=np.uint8)
    out = io.BytesIO()
    Image.fromarray(pixels).save(out, format="JPEG", quality=80)
    return out.getvalue()


def candidate(
    n: int,
    *,
    camera: str = "gate",
    phash: int | None = None,
    score: float = 0.5,
    prelabels: tuple[LabeledBox, ...] = (LabeledBox("person", 5, 5, 20, 30, score=0.3),),
) -> QueueCandidate:
    """Candidate ``n``: its own frame, a phash far from other ``n`` unless given."""
    return QueueCandidate(
        camera_id=camera,
        frame_ts=T0 + timedelta(seconds=n),
        frame_index=n,
        source="video",
        width=WIDTH,
        height=HEIGHT,
        # Distinct 16-bit blocks per n: any two differ in many bits.
        phash=phash if phash is not None else (0xFFFF << (16 * (n % 4))) ^ (n * 0x0101010101),
        score=score,
        reasons=("near_threshold",),
        prelabels=prelabels,
        image_jpeg=jpeg(n),
    )
