"""The annotation queue: items to annotate, their annotations, reviews and gold scores.

An item moves ``queued -> submitted -> accepted | returned``; a returned item goes back to its
annotator, whose next submission makes it ``submitted`` again; ``accepted`` is final. Every
submission is a new annotation version; the caller sends the version it saw (the item's
``version``) and a stale one is refused (:class:`StaleVersion`), so two people never overwrite
each other silently. A gold item holds hidden reference boxes: submissions on it are scored by
the caller (``sentinel.train.quality``) and recorded here; it stays queued for everyone else.

Frames are JPEG objects under ``annotation/frames/<camera_id>/<item_id>.jpg``; ``enqueue``
stores a candidate's bytes there when it brings bytes rather than a key.
"""

from __future__ import annotations

import builtins
import json
import re
import uuid
from collections.abc import Collection, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import sqlalchemy as sa

from sentinel.domain.annotation import (
    NEAR_DUPLICATE_BITS,
    LabeledBox,
    QueueCandidate,
    hamming64,
)
from sentinel.store.annotation_tables import (
    ANNOTATION_GOLD_SCORES,
    ANNOTATION_ITEMS,
    ANNOTATION_REVIEWS,
    ANNOTATIONS,
    ITEM_STATUSES,
)
from sentinel.store.clock import Clock, Repository, utcnow
from sentinel.store.objects import ObjectStore, validate_key
from sentinel.store.sql import as_utc, check_choice, check_page_size

__all__ = [
    "ITEM_STATUSES",
    "NEAR_DUPLICATE_BITS",
    "Annotation",
    "AnnotationItem",
    "AnnotationRepo",
    "AnnotatorCounts",
    "InvalidTransition",
    "ItemNotFound",
    "Review",
    "StaleVersion",
    "frame_key",
]

DECISIONS = frozenset({"accept", "return"})
_SEGMENT = re.compile(r"[A-Za-z0-9._-]+")
_MAX_NOTE = 2000


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


def _boxes_json(boxes: Sequence[LabeledBox]) -> str:
    return json.dumps([b.as_dict() for b in boxes], separators=(",", ":"))


def _boxes(text: str | None) -> tuple[LabeledBox, ...]:
    if not text:
        return ()
    return tuple(LabeledBox.from_dict(d) for d in json.loads(text))


@dataclass(frozen=True, slots=True)
class AnnotationItem:
    """One frame in the queue. ``gold_boxes`` is the hidden reference of a gold item."""

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


def _item(row: sa.RowMapping) -> AnnotationItem:
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
        prelabels=_boxes(row["prelabels"]),
        status=str(row["status"]),
        version=int(row["version"]),
        assignee=row["assignee"],
        is_gold=bool(row["is_gold"]),
        gold_boxes=_boxes(row["gold_boxes"]) if row["is_gold"] else None,
        created_at=as_utc(row["created_at"], "created_at"),
        updated_at=as_utc(row["updated_at"], "updated_at"),
    )


def _annotation(row: sa.RowMapping) -> Annotation:
    return Annotation(
        item_id=str(row["item_id"]),
        version=int(row["version"]),
        annotator=str(row["annotator"]),
        boxes=_boxes(row["boxes"]),
        created_at=as_utc(row["created_at"], "created_at"),
    )


def _review(row: sa.RowMapping) -> Review:
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


class AnnotationRepo(Repository):
    """The annotation queue and its work.

    Args:
        engine: An engine from ``sentinel.store.db.make_engine`` on a migrated database.
        objects: Where ``enqueue`` stores frames that come as bytes; None: candidates must
            name an already stored ``image_key``.
        clock: Returns the current tz-aware time; injectable for tests.
    """

    def __init__(
        self, engine: sa.Engine, objects: ObjectStore | None = None, *, clock: Clock = utcnow
    ) -> None:
        super().__init__(engine, clock=clock)
        self._objects = objects

    # --- the queue --------------------------------------------------------------------------

    def enqueue(self, items: Sequence[QueueCandidate]) -> list[str]:
        """Queue the candidates that are not near-duplicates of a frame already queued.

        A candidate is skipped when its ``phash`` is within ``NEAR_DUPLICATE_BITS`` bits of an
        item of the same camera (any status, gold copies aside) or of an earlier candidate of
        this call. Its JPEG bytes (if any) are stored under :func:`frame_key` first.

        Returns:
            The ids of the items queued, in the order of ``items`` (skipped ones left out).

        Raises:
            ValueError: a candidate brings bytes but the repo has no object store, or a bad key.
        """
        now = self._now()
        stored: list[str] = []
        ids: list[str] = []
        try:
            with self._write() as conn:
                seen: dict[str, list[int]] = {}
                for camera in sorted({c.camera_id for c in items}):
                    rows = conn.execute(
                        sa.select(ANNOTATION_ITEMS.c.phash).where(
                            ANNOTATION_ITEMS.c.camera_id == camera,
                            ANNOTATION_ITEMS.c.is_gold.is_(False),
                        )
                    )
                    seen[camera] = [int(r[0], 16) for r in rows]
                for cand in items:
                    known = seen[cand.camera_id]
                    if any(hamming64(cand.phash, h) <= NEAR_DUPLICATE_BITS for h in known):
                        continue
                    known.append(cand.phash)
                    item_id = str(uuid.uuid4())
                    if cand.image_key is not None:
                        key = validate_key(cand.image_key)
                    else:
                        if self._objects is None:
                            raise ValueError("this repository has no object store for JPEG bytes")
                        key = frame_key(cand.camera_id, item_id)
                        assert cand.image_jpeg is not None  # QueueCandidate checks one is set
                        self._objects.put(key, cand.image_jpeg, "image/jpeg")
                        stored.append(key)
                    conn.execute(
                        sa.insert(ANNOTATION_ITEMS).values(
                            id=item_id,
                            camera_id=cand.camera_id,
                            frame_ts=as_utc(cand.frame_ts, "frame_ts"),
                            frame_index=cand.frame_index,
                            source=cand.source,
                            image_key=key,
                            width=cand.width,
                            height=cand.height,
                            phash=f"{cand.phash:016x}",
                            score=float(cand.score),
                            reasons=json.dumps(list(cand.reasons)),
                            prelabels=_boxes_json(cand.prelabels),
                            status="queued",
                            version=0,
                            assignee=None,
                            is_gold=False,
                            gold_boxes=None,
                            created_at=now,
                            updated_at=now,
                        )
                    )
                    ids.append(item_id)
        except BaseException:
            if self._objects is not None:
                for key in stored:
                    self._objects.delete(key)
            raise
        return ids

    def add_gold(self, source_item_id: str, boxes: Sequence[LabeledBox]) -> AnnotationItem:
        """A gold copy of an item: the same frame, queued again, with hidden reference boxes.

        Raises:
            ItemNotFound: no such source item.
            InvalidTransition: the source item is itself gold.
        """
        now = self._now()
        gold_id = str(uuid.uuid4())
        with self._write() as conn:
            row = (
                conn.execute(
                    sa.select(ANNOTATION_ITEMS).where(ANNOTATION_ITEMS.c.id == source_item_id)
                )
                .mappings()
                .first()
            )
            if row is None:
                raise ItemNotFound(source_item_id)
            if row["is_gold"]:
                raise InvalidTransition("the item is already a gold item")
            values = dict(row)
            values.update(
                id=gold_id,
                status="queued",
                version=0,
                assignee=None,
                is_gold=True,
                gold_boxes=_boxes_json(boxes),
                created_at=now,
                updated_at=now,
            )
            conn.execute(sa.insert(ANNOTATION_ITEMS).values(**values))
        found = self.get(gold_id)
        assert found is not None
        return found

    def get(self, item_id: str) -> AnnotationItem | None:
        """The item with this id, or None."""
        with self._engine.connect() as conn:
            row = (
                conn.execute(sa.select(ANNOTATION_ITEMS).where(ANNOTATION_ITEMS.c.id == item_id))
                .mappings()
                .first()
            )
        return None if row is None else _item(row)

    def list(
        self,
        *,
        cameras: Collection[str] | None = None,
        camera_id: str | None = None,
        status: str | None = None,
        hide_gold_done_by: str | None = None,
        limit: int = 50,
        offset: int = 0,
    ) -> builtins.list[AnnotationItem]:
        """Items ranked by score (highest first; then oldest first).

        Args:
            cameras: Only items of these cameras; None: every camera.
            camera_id: Only this camera's items.
            status: Only items in this status.
            hide_gold_done_by: Leave out the gold items this annotator already submitted.
            limit: At most this many (1..1000).
            offset: Skip this many.
        """
        check_page_size(limit)
        if offset < 0:
            raise ValueError(f"offset must be >= 0, but got {offset}")
        c = ANNOTATION_ITEMS.c
        query = sa.select(ANNOTATION_ITEMS)
        if cameras is not None:
            if not cameras:
                return []
            query = query.where(c.camera_id.in_(sorted(cameras)))
        if camera_id is not None:
            query = query.where(c.camera_id == camera_id)
        if status is not None:
            check_choice(status, ITEM_STATUSES, "status")
            query = query.where(c.status == status)
        if hide_gold_done_by is not None:
            g = ANNOTATION_GOLD_SCORES.c
            done = sa.select(g.item_id).where(g.annotator == hide_gold_done_by)
            query = query.where(sa.or_(c.is_gold.is_(False), c.id.not_in(done)))
        query = query.order_by(c.score.desc(), c.created_at, c.id).limit(limit).offset(offset)
        with self._engine.connect() as conn:
            return [_item(r) for r in conn.execute(query).mappings()]

    # --- annotations ------------------------------------------------------------------------

    def annotations(
        self, item_id: str, *, annotator: str | None = None
    ) -> builtins.list[Annotation]:
        """An item's annotation versions, newest first (``annotator``: only theirs)."""
        a = ANNOTATIONS.c
        query = sa.select(ANNOTATIONS).where(a.item_id == item_id)
        if annotator is not None:
            query = query.where(a.annotator == annotator)
        with self._engine.connect() as conn:
            rows = conn.execute(query.order_by(a.version.desc())).mappings()
            return [_annotation(r) for r in rows]

    def latest(self, item_id: str, *, annotator: str | None = None) -> Annotation | None:
        """The newest annotation of an item (``annotator``: their newest), or None."""
        found = self.annotations(item_id, annotator=annotator)
        return found[0] if found else None

    def submit(
        self,
        item_id: str,
        boxes: Sequence[LabeledBox],
        *,
        version: int,
        annotator: str,
        may_take_over: bool = False,
        gold: tuple[float, int, int, int] | None = None,
    ) -> Annotation:
        """Store a new annotation version of an item (boxes already validated).

        Args:
            item_id: The item.
            boxes: Its boxes.
            version: The item version the annotator saw (its ``version``).
            annotator: Who submits.
            may_take_over: Whether the caller may submit on an item another annotator holds
                (submitted or returned to them): reviewers may.
            gold: For a gold item: the caller's ``(f1, matched, submitted, reference)`` of the
                boxes against the reference; recorded as the annotator's latest gold score.

        Raises:
            ItemNotFound: no such item.
            StaleVersion: ``version`` is not the item's current version.
            InvalidTransition: the item is accepted (final), or is held by another annotator.
        """
        now = self._now()
        c = ANNOTATION_ITEMS.c
        with self._write() as conn:
            row = self._locked(conn, item_id)
            if int(row["version"]) != version:
                raise StaleVersion(item_id, version, int(row["version"]))
            if row["is_gold"]:
                if gold is None:
                    raise ValueError("a submission on a gold item needs its gold score")
                status, assignee = "queued", None
            else:
                if row["status"] == "accepted":
                    raise InvalidTransition("the item was accepted: its annotation is final")
                holder = row["assignee"]
                if (
                    row["status"] in ("submitted", "returned")
                    and holder not in (None, annotator)
                    and not may_take_over
                ):
                    raise InvalidTransition(f"the item is held by annotator {holder}")
                status, assignee = "submitted", annotator
            new_version = version + 1
            done = conn.execute(
                sa.update(ANNOTATION_ITEMS)
                .where(c.id == item_id, c.version == version)
                .values(version=new_version, status=status, assignee=assignee, updated_at=now)
            )
            if done.rowcount != 1:  # pragma: no cover - the row lock makes this unreachable
                raise StaleVersion(item_id, version, version + 1)
            conn.execute(
                sa.insert(ANNOTATIONS).values(
                    id=str(uuid.uuid4()),
                    item_id=item_id,
                    version=new_version,
                    annotator=annotator[:64],
                    boxes=_boxes_json(boxes),
                    created_at=now,
                )
            )
            if row["is_gold"] and gold is not None:
                f1, matched, submitted, reference = gold
                g = ANNOTATION_GOLD_SCORES.c
                conn.execute(
                    sa.delete(ANNOTATION_GOLD_SCORES).where(
                        g.item_id == item_id, g.annotator == annotator
                    )
                )
                conn.execute(
                    sa.insert(ANNOTATION_GOLD_SCORES).values(
                        id=str(uuid.uuid4()),
                        item_id=item_id,
                        annotator=annotator[:64],
                        f1=float(f1),
                        matched=matched,
                        submitted=submitted,
                        reference=reference,
                        created_at=now,
                    )
                )
        return Annotation(item_id, new_version, annotator, tuple(boxes), now)

    def _locked(self, conn: sa.Connection, item_id: str) -> sa.RowMapping:
        query = sa.select(ANNOTATION_ITEMS).where(ANNOTATION_ITEMS.c.id == item_id)
        if conn.dialect.name == "postgresql":
            query = query.with_for_update()
        row = conn.execute(query).mappings().first()
        if row is None:
            raise ItemNotFound(item_id)
        return row

    # --- review -----------------------------------------------------------------------------

    def review(
        self,
        item_id: str,
        *,
        decision: str,
        reviewer: str,
        note: str | None = None,
        version: int | None = None,
    ) -> Review:
        """Accept or return the item's latest annotation.

        Raises:
            ItemNotFound: no such item.
            StaleVersion: ``version`` (when given) is not the item's current version.
            InvalidTransition: the item is not waiting for review (or is a gold item).
        """
        check_choice(decision, DECISIONS, "decision")
        if note is not None and len(note) > _MAX_NOTE:
            raise ValueError(f"note must be at most {_MAX_NOTE} characters")
        now = self._now()
        with self._write() as conn:
            row = self._locked(conn, item_id)
            current = int(row["version"])
            if version is not None and version != current:
                raise StaleVersion(item_id, version, current)
            if row["is_gold"]:
                raise InvalidTransition("gold items are scored, not reviewed")
            if row["status"] != "submitted":
                raise InvalidTransition(
                    f"only a submitted item can be reviewed; this one is {row['status']}"
                )
            annotator = str(row["assignee"])
            status = "accepted" if decision == "accept" else "returned"
            conn.execute(
                sa.update(ANNOTATION_ITEMS)
                .where(ANNOTATION_ITEMS.c.id == item_id)
                .values(status=status, updated_at=now)
            )
            values: dict[str, Any] = {
                "id": str(uuid.uuid4()),
                "item_id": item_id,
                "version": current,
                "annotator": annotator,
                "reviewer": reviewer[:64],
                "decision": decision,
                "note": note,
                "created_at": now,
            }
            conn.execute(sa.insert(ANNOTATION_REVIEWS).values(**values))
        return _review(values)  # type: ignore[arg-type]

    def reviews(self, item_id: str) -> builtins.list[Review]:
        """An item's reviews, newest first."""
        r = ANNOTATION_REVIEWS.c
        query = sa.select(ANNOTATION_REVIEWS).where(r.item_id == item_id)
        with self._engine.connect() as conn:
            rows = conn.execute(query.order_by(r.created_at.desc(), r.id)).mappings()
            return [_review(row) for row in rows]

    # --- what datasets and quality read ----------------------------------------------------

    def accepted(
        self, *, cameras: Collection[str] | None = None
    ) -> builtins.list[tuple[AnnotationItem, Annotation]]:
        """Accepted (non-gold) items with their final annotation, by camera and frame time."""
        c, a = ANNOTATION_ITEMS.c, ANNOTATIONS.c
        query = (
            sa.select(
                ANNOTATION_ITEMS, a.annotator, a.boxes.label("a_boxes"), a.created_at.label("a_at")
            )
            .join(ANNOTATIONS, sa.and_(a.item_id == c.id, a.version == c.version))
            .where(c.status == "accepted", c.is_gold.is_(False))
            .order_by(c.camera_id, c.frame_ts, c.id)
        )
        if cameras is not None:
            if not cameras:
                return []
            query = query.where(c.camera_id.in_(sorted(cameras)))
        out: builtins.list[tuple[AnnotationItem, Annotation]] = []
        with self._engine.connect() as conn:
            for row in conn.execute(query).mappings():
                item = _item(row)
                out.append(
                    (
                        item,
                        Annotation(
                            item.id,
                            item.version,
                            str(row["annotator"]),
                            _boxes(row["a_boxes"]),
                            as_utc(row["a_at"], "created_at"),
                        ),
                    )
                )
        return out

    def annotator_counts(
        self, *, cameras: Collection[str] | None = None
    ) -> builtins.list[AnnotatorCounts]:
        """Per annotator: submissions, accepted/returned reviews by someone else, gold F1s.

        Args:
            cameras: Count only work on these cameras' items; None: every camera.
        """
        c, a, r, g = (
            ANNOTATION_ITEMS.c,
            ANNOTATIONS.c,
            ANNOTATION_REVIEWS.c,
            ANNOTATION_GOLD_SCORES.c,
        )
        if cameras is not None and not cameras:
            return []

        def visible(query: sa.Select[Any], item_col: sa.ColumnElement[Any]) -> sa.Select[Any]:
            if cameras is None:
                return query
            ids = sa.select(c.id).where(c.camera_id.in_(sorted(cameras)))
            return query.where(item_col.in_(ids))

        submitted = visible(
            sa.select(a.annotator, sa.func.count()).group_by(a.annotator), a.item_id
        )
        reviews = visible(
            sa.select(r.annotator, r.decision, sa.func.count())
            .where(r.reviewer != r.annotator)
            .group_by(r.annotator, r.decision),
            r.item_id,
        )
        golds = visible(sa.select(g.annotator, g.f1).order_by(g.annotator, g.item_id), g.item_id)
        subs: dict[str, int] = {}
        decided: dict[str, dict[str, int]] = {}
        f1s: dict[str, builtins.list[float]] = {}
        with self._engine.connect() as conn:
            for who, n in conn.execute(submitted):
                subs[str(who)] = int(n)
            for who, decision, n in conn.execute(reviews):
                decided.setdefault(str(who), {})[str(decision)] = int(n)
            for who, f1 in conn.execute(golds):
                f1s.setdefault(str(who), []).append(float(f1))
        return [
            AnnotatorCounts(
                annotator=who,
                submitted=subs.get(who, 0),
                accepted=decided.get(who, {}).get("accept", 0),
                returned=decided.get(who, {}).get("return", 0),
                gold_f1s=tuple(f1s.get(who, ())),
            )
            for who in sorted(set(subs) | set(decided) | set(f1s))
        ]
