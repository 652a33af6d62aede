"""Curation of a dataset's items before training: dedupe, split by time, balance classes.

Pure functions over the manifest's items (anything with the fields of :class:`CurationItem`),
so the Ray Data pipeline (``sentinel.actors.training``) and the tests run the same rules.

The split is by **time**, not by item: neighbouring frames of a video are near copies, so a
random split would put the same scene on both sides and make the validation score a memory test.
Each camera's time line is cut into contiguous blocks; some blocks are validation, the rest
training, and frames closer than ``gap_s`` to a block of the other side are dropped.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Protocol, TypeVar


class CurationItem(Protocol):
    """What curation reads from a manifest item."""

    @property
    def id(self) -> str: ...

    @property
    def camera_id(self) -> str: ...

    @property
    def frame_ts(self) -> datetime: ...

    @property
    def image_sha256(self) -> str: ...


T = TypeVar("T", bound=CurationItem)
U = TypeVar("U")


@dataclass(frozen=True)
class CurationCounts:
    """What curation did, for the run's record and MLflow."""

    items: int = 0
    duplicates: int = 0
    unreadable: int = 0
    dropped_at_borders: int = 0
    train: int = 0
    validation: int = 0
    train_after_balance: int = 0
    boxes_per_label: dict[str, int] = field(default_factory=dict)


def dedupe(items: Iterable[T]) -> tuple[list[T], int]:
    """Items with distinct image content (sha256), first kept; and how many were dropped."""
    seen: set[str] = set()
    kept: list[T] = []
    dropped = 0
    for item in items:
        if item.image_sha256 in seen:
            dropped += 1
            continue
        seen.add(item.image_sha256)
        kept.append(item)
    return kept, dropped


def validation_blocks(blocks: int, fraction: float) -> list[int]:
    """Which of ``blocks`` contiguous blocks are validation: spread evenly, about ``fraction``.

    With 5 blocks and 0.2 it is the last one; with 0.4 the 2nd and the 4th (0-based 1 and 3
    rounded up to the block that completes each share).

    Raises:
        ValueError: If ``blocks`` < 2 or ``fraction`` is not in (0, 1).
    """
    if blocks < 2:
        raise ValueError(f"blocks must be >= 2, but got {blocks}")
    if not 0.0 < fraction < 1.0:
        raise ValueError(f"fraction must be in (0, 1), but got {fraction}")
    chosen = [i for i in range(blocks) if math.floor((i + 1) * fraction) > math.floor(i * fraction)]
    if not chosen:
        chosen = [blocks - 1]
    if len(chosen) == blocks:
        chosen = chosen[:-1]
    return chosen


def split_by_time(
    items: Sequence[T],
    *,
    validation_fraction: float = 0.2,
    blocks: int = 5,
    gap_s: float = 2.0,
) -> tuple[list[T], list[T], int]:
    """Split each camera's items into training and validation by contiguous time blocks.

    Each camera's span ``[first, last]`` is cut into ``blocks`` equal blocks; the blocks of
    :func:`validation_blocks` are validation. An item within ``gap_s`` seconds of an item on
    the other side is dropped, so no validation frame has a training neighbour closer than
    ``gap_s``. A camera with a single timestamp goes to training.

    Returns:
        ``(train, validation, dropped)``, each list in time order.

    Raises:
        ValueError: For bad ``blocks``/``validation_fraction`` or a negative ``gap_s``.
    """
    if gap_s < 0:
        raise ValueError(f"gap_s must be >= 0, but got {gap_s}")
    val_blocks = set(validation_blocks(blocks, validation_fraction))
    by_camera: dict[str, list[T]] = {}
    for item in items:
        by_camera.setdefault(item.camera_id, []).append(item)
    train: list[T] = []
    validation: list[T] = []
    dropped = 0
    for camera in sorted(by_camera):
        ordered = sorted(by_camera[camera], key=lambda it: (it.frame_ts, it.id))
        start = ordered[0].frame_ts
        span = (ordered[-1].frame_ts - start).total_seconds()
        if span <= 0:
            train.extend(ordered)
            continue
        sides = []
        for it in ordered:
            block = min(blocks - 1, int((it.frame_ts - start).total_seconds() / span * blocks))
            sides.append(block in val_blocks)
        times = [(it.frame_ts - start).total_seconds() for it in ordered]
        for i, it in enumerate(ordered):
            if _near_other_side(i, times, sides, gap_s):
                dropped += 1
            elif sides[i]:
                validation.append(it)
            else:
                train.append(it)
    return train, validation, dropped


def _near_other_side(i: int, times: list[float], sides: list[bool], gap_s: float) -> bool:
    # Dropping is symmetric, so both sides lose their border frames: a kept pair across the
    # border is always more than gap_s apart.
    for step in (-1, 1):
        j = i + step
        while 0 <= j < len(times) and abs(times[j] - times[i]) <= gap_s:
            if sides[j] != sides[i]:
                return True
            j += step
    return False


def balance(
    items: Sequence[U],
    labels_of: Callable[[U], Iterable[str]],
    *,
    max_repeat: int = 3,
) -> list[U]:
    """Oversample the items of rare classes, so each class's box count nears the commonest's.

    An item is repeated ``min(max_repeat, round(most / count))`` times, where ``count`` is the
    box count of the rarest class it holds and ``most`` the commonest class's; items without
    boxes (backgrounds) appear once. Order is kept: copies follow their item.

    Raises:
        ValueError: If ``max_repeat`` < 1.
    """
    if max_repeat < 1:
        raise ValueError(f"max_repeat must be >= 1, but got {max_repeat}")
    per_item = [list(labels_of(it)) for it in items]
    counts: Counter[str] = Counter(label for labels in per_item for label in labels)
    if not counts:
        return list(items)
    most = max(counts.values())
    out: list[U] = []
    for item, labels in zip(items, per_item, strict=True):
        repeat = 1
        if labels:
            rarest = min(counts[label] for label in labels)
            repeat = max(1, min(max_repeat, round(most / rarest)))
        out.extend([item] * repeat)
    return out
