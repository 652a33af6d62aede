"""The annotation queue's records, errors and row conversions (see ``annotation_repo``)."""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

import sqlalchemy as sa

from sentinel.domain.annotation import LabeledBox
from sentinel.store.sql import as_utc

__all__ = [
    "DECISIONS",
    "MAX_NOTE",
    "Annotation",
    "AnnotationItem",
    "AnnotatorCounts",
    "InvalidTransition",
    "ItemNotFound",
    "Review",
    "StaleVersion",
    "annotation_of_row",
    "boxes_from_json",
    "boxes_json",
    "frame_key",
    "item_of_row",
    "review_of_row",
]

DECISIONS = frozenset({"accept", "return"})
_SEGMENT = re.compile(r"[A-Za-z0-9._-]+")
MAX_NOTE = 2000


class ItemNotFound(KeyError):  # noqa: N818 - a KeyError named for what is missing
    """No annotation item has this id."""


class StaleVersion(Exception):  # noqa: N818 - the conflict it reports
    """The caller's version is not the item's current one (someone else saved first)."""

    def __init__(self, item_id: str, sent: int, current: int) -> None:
        self.current = current
        super().__init__(
            f"item {item_id} is at version {current}, not {sent}: reload it and submit again"
        )


class InvalidTransition(Exception):  # noqa: N818 - the conflict it reports
    """The item's state does not allow this step."""


def frame_key(camera_id: str, item_id: str) -> str:
    """``annotation/frames/<camera_id>/<item_id>.jpg``.

    Raises:
        ValueError: If an id is not a single key segment.
    """
    for name, value in (("camera_id", camera_id), ("item_id", item_id)):
        if value in (".", "..") or not _SEGMENT.fullmatch(value):
            raise ValueError(f"{name} must match [A-Za-z0-9._-]+, but got {value!r}")
    return f"annotation/frames/{camera_id}/{item_id}.jpg"


def boxes_json(boxes: Sequence[LabeledBox]) -> str:
    return json.dumps([b.as_dict() for b in boxes], separators=(",", ":"))


def boxes_from_json(text: str | None) -> tuple[LabeledBox, ...]:
    if not text:
        return ()
    return tuple(LabeledBox.from_dict(d) for d in json.loads(text))


@dataclass(frozen=True, slots=True)
class AnnotationItem:
    """One frame in the queue. ``gold_boxes`` is the hidden reference of a gold item, drawn by
    ``gold_author`` (who is not scored on it)."""

    id: str
    camera_id: str
    frame_ts: datetime
    frame_index: int | None
    source: str
    image_key: str
    width: int
    height: int
    phash: int
    score: float
    reasons: tuple[str, ...]
    prelabels: tuple[LabeledBox, ...]
    status: str
    version: int
    assignee: str | None
    is_gold: bool
    gold_boxes: tuple[LabeledBox, ...] | None
    gold_author: str | None
    created_at: datetime
    updated_at: datetime


@dataclass(frozen=True, slots=True)
class Annotation:
    """One submitted version of an item's boxes."""

    item_id: str
    version: int
    annotator: str
    boxes: tuple[LabeledBox, ...]
    created_at: datetime


@dataclass(frozen=True, slots=True)
class Review:
    """A reviewer's decision on one annotation version."""

    id: str
    item_id: str
    version: int
    annotator: str
    reviewer: str
    decision: str
    note: str | None
    created_at: datetime


@dataclass(frozen=True, slots=True)
class AnnotatorCounts:
    """What an annotator did: submissions, reviews of their work (others' reviews only), gold."""

    annotator: str
    submitted: int
    accepted: int
    returned: int
    gold_f1s: tuple[float, ...]


def item_of_row(row: sa.RowMapping) -> AnnotationItem:
    return AnnotationItem(
        id=str(row["id"]),
        camera_id=str(row["camera_id"]),
        frame_ts=as_utc(row["frame_ts"], "frame_ts"),
        frame_index=None if row["frame_index"] is None else int(row["frame_index"]),
        source=str(row["source"]),
        image_key=str(row["image_key"]),
        width=int(row["width"]),
        height=int(row["height"]),
        phash=int(row["phash"], 16),
        score=float(row["score"]),
        reasons=tuple(json.loads(row["reasons"])),
        prelabels=boxes_from_json(row["prelabels"]),
        status=str(row["status"]),
        version=int(row["version"]),
        assignee=row["assignee"],
        is_gold=bool(row["is_gold"]),
        gold_boxes=boxes_from_json(row["gold_boxes"]) if row["is_gold"] else None,
        gold_author=row["gold_author"],
        created_at=as_utc(row["created_at"], "created_at"),
        updated_at=as_utc(row["updated_at"], "updated_at"),
    )


def annotation_of_row(row: sa.RowMapping) -> Annotation:
    return Annotation(
        item_id=str(row["item_id"]),
        version=int(row["version"]),
        annotator=str(row["annotator"]),
        boxes=boxes_from_json(row["boxes"]),
        created_at=as_utc(row["created_at"], "created_at"),
    )


def review_of_row(row: sa.RowMapping) -> Review:
    return Review(
        id=str(row["id"]),
        item_id=str(row["item_id"]),
        version=int(row["version"]),
        annotator=str(row["annotator"]),
        reviewer=str(row["reviewer"]),
        decision=str(row["decision"]),
        note=row["note"],
        created_at=as_utc(row["created_at"], "created_at"),
    )
