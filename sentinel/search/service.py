"""Search over events and incidents: build documents, embed them, index them, query them.

No Ray here: the indexer actor, the ``sentinel search backfill`` command and the API all use
:class:`SearchService` with an ``embed`` function (the Serve deployment's handle in the
platform, the in-process model elsewhere).
"""

from __future__ import annotations

import io
import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray
from PIL import Image
from sqlalchemy.engine import Engine

from sentinel.config import SearchSettings
from sentinel.search.appearance import appearance_vector
from sentinel.search.colours import CropColours, crop_colours
from sentinel.search.documents import (
    CameraFacts,
    SearchDocument,
    event_document,
    incident_document,
)
from sentinel.search.index import APPEARANCE, Index, SearchFilter, SearchHit, VectorIndex
from sentinel.store.alert_repo import AlertRepository
from sentinel.store.incident_repo import IncidentRepository
from sentinel.store.objects import ObjectNotFound, ObjectStore
from sentinel.store.repo import CameraRepository, EventRepository, StoredEvent
from sentinel.store.search_queue_repo import SearchLease, SearchQueue

logger = logging.getLogger(__name__)

__all__ = [
    "MAX_QUERY_BYTES",
    "Embed",
    "IndexReport",
    "PreparedBatch",
    "SearchService",
    "closed_event_ids",
    "closed_incident_ids",
    "open_search",
    "queue_backfill",
    "snapshot_colours",
]

Embed = Callable[[list[str]], NDArray[np.float32]]
"""Texts in, ``(n, 384)`` unit vectors out."""

MAX_QUERY_BYTES = 4096


def _decode(jpeg: bytes) -> NDArray[np.uint8]:
    """The snapshot's pixels.

    Raises:
        ValueError: The bytes are not an image PIL reads. (Ultralytics, when imported in the
            process, wraps ``Image.open`` and turns an unreadable file into an ImportError of
            its optional HEIF plugin; that is reported as unreadable too.)
    """
    try:
        with Image.open(io.BytesIO(jpeg)) as image:
            return np.asarray(image.convert("RGB"), dtype=np.uint8)
    except (OSError, ImportError) as exc:
        raise ValueError(f"unreadable image: {exc}") from exc


def snapshot_colours(jpeg: bytes, ev: StoredEvent) -> CropColours:
    """The named colours of the event's object, read from its best-frame snapshot."""
    return crop_colours(_decode(jpeg), (ev.box.x1, ev.box.y1, ev.box.x2, ev.box.y2), ev.label)


@dataclass(frozen=True, slots=True)
class IndexReport:
    """What one indexing pass did."""

    upserted: int = 0
    deleted: int = 0
    failed: int = 0


@dataclass
class PreparedBatch:
    """Leased items with their documents, waiting for their vectors."""

    items: list[tuple[SearchLease, SearchDocument]] = field(default_factory=list)
    looks: list[tuple[SearchDocument, Any]] = field(default_factory=list)  # appearance vectors
    deleted: int = 0
    failed: int = 0

    @property
    def texts(self) -> list[str]:
        return [doc.text for _, doc in self.items]


class SearchService:
    """Builds, indexes and queries the documents of events and incidents.

    Args:
        index: The vector index.
        embed: The text embedder.
        events, incidents, cameras, alerts: The stores the documents are built from (alerts
            give the agent's summary; None: no summaries).
        objects: The object store holding the snapshots (None: no crop colours).
        queue: The indexing queue.
        timezone: The site's IANA zone, for time phrases.
        appearance: The index of the events' appearance vectors (search by example), kept
            beside the text index; None: not kept.
    """

    def __init__(
        self,
        index: Index,
        embed: Embed,
        *,
        events: EventRepository,
        incidents: IncidentRepository,
        cameras: CameraRepository,
        queue: SearchQueue,
        alerts: AlertRepository | None = None,
        objects: ObjectStore | None = None,
        timezone: str = "UTC",
        appearance: Index | None = None,
    ) -> None:
        self.index = index
        self.appearance = appearance
        self.embed = embed
        self.events = events
        self.incidents = incidents
        self.cameras = cameras
        self.queue = queue
        self.alerts = alerts
        self.objects = objects
        self.timezone = timezone

    # -- documents -------------------------------------------------------------------------

    def _camera(self, camera_id: str) -> CameraFacts:
        cfg = self.cameras.get(camera_id) or {}
        return CameraFacts(camera_id, cfg.get("name"), str(cfg.get("description") or ""))

    def _snapshot(self, ev: StoredEvent) -> NDArray[np.uint8] | None:
        if self.objects is None or ev.snapshot_key is None:
            return None
        try:
            return _decode(self.objects.get(ev.snapshot_key))
        except ObjectNotFound:
            return None
        except (OSError, ValueError) as exc:  # a corrupt snapshot: index the rest
            logger.warning("search: snapshot of event %s unreadable: %s", ev.id, exc)
            return None

    def _colours(self, ev: StoredEvent) -> CropColours | None:
        rgb = self._snapshot(ev)
        if rgb is None:
            return None
        return crop_colours(rgb, (ev.box.x1, ev.box.y1, ev.box.x2, ev.box.y2), ev.label)

    def appearance_of(self, event_id: str) -> NDArray[np.float32] | None:
        """The appearance vector of an event's object from its snapshot (None: no event, no
        readable snapshot, or a box too small)."""
        ev = self.events.get(event_id)
        if ev is None:
            return None
        rgb = self._snapshot(ev)
        return None if rgb is None else appearance_vector(rgb, ev.box)

    def _looks(self, docs: Sequence[SearchDocument]) -> list[tuple[SearchDocument, Any]]:
        if self.appearance is None:
            return []
        out = []
        for doc in docs:
            if doc.kind == "event" and (vector := self.appearance_of(doc.id)) is not None:
                out.append((doc, vector))
        return out

    def _upsert_looks(self, looks: list[tuple[SearchDocument, Any]]) -> None:
        if self.appearance is not None and looks:
            self.appearance.upsert([d for d, _ in looks], np.stack([v for _, v in looks]))

    def _delete(self, ids: list[str]) -> None:
        self.index.delete(ids)
        if self.appearance is not None:
            self.appearance.delete(ids)

    def document(self, kind: str, item_id: str) -> SearchDocument | None:
        """The document of an event or incident, or None if it is gone."""
        if kind == "event":
            ev = self.events.get(item_id)
            if ev is None:
                return None
            alert = self.alerts.by_event(item_id) if self.alerts is not None else None
            return event_document(
                ev,
                self._camera(ev.camera_id),
                colours=self._colours(ev),
                summary=alert.summary if alert is not None and alert.summary else None,
                timezone=self.timezone,
            )
        if kind == "incident":
            incident = self.incidents.get(item_id)
            if incident is None:
                return None
            alert = self.alerts.by_incident(item_id) if self.alerts is not None else None
            return incident_document(
                incident,
                self._camera(incident.camera_id),
                summary=alert.summary if alert is not None and alert.summary else None,
                timezone=self.timezone,
            )
        raise ValueError(f"unknown kind {kind!r}")

    # -- indexing --------------------------------------------------------------------------

    def index_documents(self, docs: Sequence[SearchDocument]) -> None:
        """Embed and upsert ``docs`` (idempotent by id)."""
        if docs:
            self.index.upsert(docs, self.embed([d.text for d in docs]))
            self._upsert_looks(self._looks(docs))

    def prepare(self, leases: Sequence[SearchLease]) -> PreparedBatch:
        """First half of indexing leased items: build their documents; items that are gone
        (or queued for deletion) leave the index now and complete.

        An item whose document fails is handed back (retried after its lease)."""
        batch = PreparedBatch()
        gone: list[SearchLease] = []
        for lease in leases:
            try:
                doc = None if lease.op == "delete" else self.document(lease.kind, lease.item_id)
            except Exception as exc:  # one bad item must not stall the queue
                logger.exception("search: building the document of %s failed", lease.item_id)
                self.queue.complete(lease, f"{type(exc).__name__}: {exc}")
                batch.failed += 1
                continue
            if doc is None:
                gone.append(lease)
            else:
                batch.items.append((lease, doc))
        batch.looks = self._looks([doc for _, doc in batch.items])
        if gone:
            self._delete([lease.item_id for lease in gone])
            for lease in gone:
                self.queue.complete(lease)
        batch.deleted = len(gone)
        return batch

    def commit(
        self, batch: PreparedBatch, vectors: NDArray[np.float32] | BaseException
    ) -> IndexReport:
        """Second half: upsert the batch's documents with their vectors and complete them, or
        hand them all back when embedding failed (``vectors`` is the exception)."""
        docs = [doc for _, doc in batch.items]
        error: BaseException | None = vectors if isinstance(vectors, BaseException) else None
        if error is None and docs:
            try:
                self.index.upsert(docs, vectors)  # type: ignore[arg-type]
                self._upsert_looks(batch.looks)
            except Exception as exc:
                logger.exception("search: upserting %d documents failed", len(docs))
                error = exc
        if error is not None:
            for lease, _ in batch.items:
                self.queue.complete(lease, f"{type(error).__name__}: {error}")
            return IndexReport(0, batch.deleted, batch.failed + len(docs))
        for lease, _ in batch.items:
            self.queue.complete(lease)
        return IndexReport(len(docs), batch.deleted, batch.failed)

    def process(self, leases: Sequence[SearchLease]) -> IndexReport:
        """Carry out leased queue items with this service's own ``embed``."""
        batch = self.prepare(leases)
        vectors: NDArray[np.float32] | BaseException
        try:
            vectors = self.embed(batch.texts) if batch.items else np.zeros((0, 0), np.float32)
        except Exception as exc:
            logger.exception("search: embedding %d documents failed", len(batch.items))
            vectors = exc
        return self.commit(batch, vectors)

    def drain(self, batch: int = 32, lease_s: float = 60.0, max_batches: int | None = None) -> int:
        """Process queue items until none is claimable; returns how many were handled."""
        handled = 0
        batches = 0
        while max_batches is None or batches < max_batches:
            leases = self.queue.lease(batch, lease_s)
            if not leases:
                break
            self.process(leases)
            handled += len(leases)
            batches += 1
        return handled

    def backfill(self, batch: int = 64, prune: bool = True) -> IndexReport:
        """Index every closed event and incident now in the store, and (with ``prune``) remove
        index entries whose event or incident is gone (retention, deletion)."""
        upserted = 0
        for kind, ids in (("event", self._closed_event_ids()), ("incident", self._incident_ids())):
            for start in range(0, len(ids), batch):
                docs = [d for i in ids[start : start + batch] if (d := self.document(kind, i))]
                self.index_documents(docs)
                upserted += len(docs)
        deleted = 0
        if prune:
            stale = [
                i
                for i in self.index.ids()
                if self.events.get(i) is None and self.incidents.get(i) is None
            ]
            self._delete(stale)
            deleted = len(stale)
        return IndexReport(upserted, deleted, 0)

    def _closed_event_ids(self) -> list[str]:
        return closed_event_ids(self.events)

    def _incident_ids(self) -> list[str]:
        return closed_incident_ids(self.incidents)

    # -- queries ---------------------------------------------------------------------------

    def search(self, query: str, flt: SearchFilter, k: int) -> list[SearchHit]:
        """The ``k`` items closest to ``query`` among those ``flt`` lets through.

        Raises:
            ValueError: For an empty query or one over ``MAX_QUERY_BYTES``.
        """
        if not query.strip():
            raise ValueError("the query is empty")
        if len(query.encode()) > MAX_QUERY_BYTES:
            raise ValueError(f"the query is over {MAX_QUERY_BYTES} bytes")
        if flt.matches_nothing():
            return []
        vector = self.embed([query])[0]
        return self.index.query(vector, flt, k)

    def similar(
        self, item_id: str, flt: SearchFilter, k: int, kind: str = "event"
    ) -> list[SearchHit] | None:
        """The ``k`` items closest to an item (itself left out): its indexed vector, or for
        one not indexed yet (still open, or queued) its document embedded now. None if the
        item does not exist."""
        vector = self.index.vector(item_id)
        if vector is None:
            doc = self.document(kind, item_id)
            if doc is None:
                return None
            vector = self.embed([doc.text])[0]
        return self.index.query(vector, flt, k, exclude=item_id)

    def similar_looking(self, event_id: str, flt: SearchFilter, k: int) -> list[SearchHit] | None:
        """The ``k`` events whose object looks most like this event's (colours of the upper
        and lower body), itself left out; None without an appearance index or a readable
        snapshot of the event."""
        if self.appearance is None:
            return None
        vector = self.appearance.vector(event_id)
        if vector is None:
            vector = self.appearance_of(event_id)
        if vector is None:
            return None
        return self.appearance.query(vector, flt, k, exclude=event_id)

    def lag(self) -> dict[str, Any]:
        """The index's lag: queued items and the age of the oldest."""
        return {
            "backlog": self.queue.backlog(),
            "oldest_pending_age_s": self.queue.oldest_pending_age_s(),
        }


def closed_event_ids(events: EventRepository) -> list[str]:
    """The ids of every closed event, newest first."""
    ids: list[str] = []
    cursor = None
    while True:
        page = events.list(cursor=cursor, limit=500)
        ids.extend(e.id for e in page.items if e.ended_at is not None)
        if page.next_cursor is None:
            return ids
        cursor = page.next_cursor


def closed_incident_ids(incidents: IncidentRepository) -> list[str]:
    """The ids of every closed incident, newest first."""
    ids: list[str] = []
    cursor = None
    while True:
        page = incidents.list(cursor=cursor, limit=500)
        ids.extend(i.id for i in page.items if i.ended_at is not None)
        if page.next_cursor is None:
            return ids
        cursor = page.next_cursor


def queue_backfill(engine: Engine) -> tuple[int, int]:
    """Queue every closed event and incident for (re)indexing; the running indexer takes
    them from the durable queue. Returns ``(events, incidents)`` queued."""
    queue = SearchQueue(engine)
    events = closed_event_ids(EventRepository(engine))
    incidents = closed_incident_ids(IncidentRepository(engine))
    for event_id in events:
        queue.enqueue(event_id, "event")
    for incident_id in incidents:
        queue.enqueue(incident_id, "incident")
    return len(events), len(incidents)


def open_search(
    engine: Engine,
    settings: SearchSettings,
    index_path: Path,
    embed: Embed,
    *,
    objects: ObjectStore | None = None,
    index: Index | None = None,
    appearance: Index | None = None,
) -> SearchService:
    """The search service over a store: ``index``, or by default the embedded index in
    ``index_path`` or the Chroma server of ``settings.chroma_url``."""
    shard_max, most = settings.exact_shard_max_items, settings.exact_max_items
    if index is None:
        index = VectorIndex(
            index_path,
            url=settings.chroma_url,
            exact_shard_max_items=shard_max,
            exact_max_items=most,
        )
    if appearance is None:
        appearance = VectorIndex(
            index_path,
            url=settings.chroma_url,
            collection=APPEARANCE,
            exact_shard_max_items=shard_max,
            exact_max_items=most,
        )
    return SearchService(
        index,
        embed,
        events=EventRepository(engine),
        incidents=IncidentRepository(engine),
        cameras=CameraRepository(engine),
        queue=SearchQueue(engine),
        alerts=AlertRepository(engine),
        objects=objects,
        timezone=settings.timezone,
        appearance=appearance,
    )
