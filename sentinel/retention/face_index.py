"""Finding a subject by face, without a face database (issue 16): scan snapshots, search.

``FaceIndex.scan`` takes ended person events that have a snapshot and were not scanned,
finds the faces inside each event's box, and stores each face only as a sealed print
(``sentinel.retention.faces``); the event is marked scanned in the same transaction. It runs
in the retention actor, off the cameras' loops. Events of cameras with
``privacy.blur_faces`` are marked scanned with no print and never read: their snapshots are
stored blurred, and such a camera keeps no face prints by design (see
``sentinel.retention.blurring``).

``FaceIndex.search_photo`` answers a subject request: the photo must show exactly one face;
its embedding probes the keyed buckets near its own, the candidates are opened and those
within ``tolerance`` are the matches (best distance per event, nearest first). The query's
embedding is never stored.
"""

from __future__ import annotations

import io
import logging
import time
import uuid
from collections.abc import Callable, Collection
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray
from PIL import Image, JpegImagePlugin, PngImagePlugin
from sqlalchemy.engine import Engine

from sentinel.config import FaceSettings
from sentinel.domain.types import Box
from sentinel.gateway.secretbox import master_key
from sentinel.models.faces import FaceAnalyzer, FoundFace
from sentinel.retention.blurring import blurring_cameras
from sentinel.retention.faces import FaceVault, best_per_event, open_many
from sentinel.retention.loops import PeriodicLoop
from sentinel.store.face_repo import FaceRepository, NewPrint, PendingScan
from sentinel.store.objects import ObjectNotFound, ObjectStore
from sentinel.store.repo import CameraRepository

__all__ = [
    "FaceIndex",
    "FaceMatch",
    "FaceQueryError",
    "FaceScanLoop",
    "ScanReport",
    "SearchResult",
    "decode_photo",
    "open_face_index",
]

logger = logging.getLogger(__name__)

_MAX_PIXELS = 40_000_000  # refuse larger images before decoding them (decompression bombs)
_BOX_MARGIN = 0.15  # the event's box grown by this much on each side: a head at its edge


class FaceQueryError(ValueError):
    """A search photo cannot be used: not an image, no face, or several faces."""


@dataclass(frozen=True, slots=True)
class FaceMatch:
    """An event whose face matched, and how close (Euclidean distance of embeddings)."""

    event_id: str
    camera_id: str
    label: str
    started_at: datetime
    ended_at: datetime | None
    distance: float


@dataclass(frozen=True, slots=True)
class SearchResult:
    """The matches of a search and what it cost."""

    matches: list[FaceMatch]
    candidates: int  # prints opened
    buckets: int  # buckets probed
    detect_ms: float  # finding and embedding the query's face
    search_ms: float  # reading, opening and comparing the candidates


@dataclass(slots=True)
class ScanReport:
    """What one scan round did."""

    scanned: int = 0
    faces: int = 0
    failed: int = 0
    skipped: int = 0  # events of blurring cameras: marked scanned, no print
    ms_per_event: list[float] = field(default_factory=list)


def decode_photo(data: bytes, max_side: int) -> NDArray[np.uint8]:
    """The RGB pixels of a JPEG or PNG, scaled down to ``max_side`` at most.

    Raises:
        FaceQueryError: not a JPEG or PNG that decodes, or too many pixels.
    """
    for plugin in (JpegImagePlugin.JpegImageFile, PngImagePlugin.PngImageFile):
        try:
            image = plugin(io.BytesIO(data))
        except (OSError, SyntaxError, ValueError):
            continue
        with image:
            width, height = image.size
            if width * height > _MAX_PIXELS:
                raise FaceQueryError(
                    f"the image is {width}x{height} pixels; at most {_MAX_PIXELS} are accepted"
                )
            try:
                rgb = image.convert("RGB")
                if max(width, height) > max_side:
                    rgb.thumbnail((max_side, max_side), Image.Resampling.BILINEAR)
                return np.asarray(rgb, dtype=np.uint8)
            except (OSError, SyntaxError, ValueError) as exc:
                raise FaceQueryError(f"the image does not decode: {exc}") from exc
    raise FaceQueryError("not an image: send a JPEG or PNG photo")


def _crop(rgb: NDArray[np.uint8], box: Box) -> NDArray[np.uint8]:
    h, w = rgb.shape[:2]
    mx, my = (box.x2 - box.x1) * _BOX_MARGIN, (box.y2 - box.y1) * _BOX_MARGIN
    x1, y1 = max(0, int(box.x1 - mx)), max(0, int(box.y1 - my))
    x2, y2 = min(w, int(box.x2 + mx) + 1), min(h, int(box.y2 + my) + 1)
    if x2 - x1 < 8 or y2 - y1 < 8:
        return rgb[:0, :0]
    return rgb[y1:y2, x1:x2]


class FaceIndex:
    """Scans event snapshots into sealed face prints and searches them by photo.

    Args:
        repo: The face prints' repository.
        vault: Seals prints and computes buckets.
        analyzer: Finds and embeds faces.
        objects: Where snapshots are (None: nothing to scan).
        settings: Labels, tolerance, probe radius, sizes.
        blurring: Returns the cameras that blur faces (their events get no print); default:
            none.
    """

    def __init__(
        self,
        repo: FaceRepository,
        vault: FaceVault,
        analyzer: FaceAnalyzer,
        objects: ObjectStore | None,
        settings: FaceSettings,
        blurring: Callable[[], Collection[str]] | None = None,
    ) -> None:
        self.blurring = blurring or (lambda: ())
        self.repo = repo
        self.vault = vault
        self.analyzer = analyzer
        self.objects = objects
        self.settings = settings

    # -- scanning --------------------------------------------------------------------------

    def scan(self, limit: int | None = None) -> ScanReport:
        """Scans up to ``limit`` (default ``settings.batch``) pending events."""
        report = ScanReport()
        if self.objects is None:
            return report
        pending = self.repo.pending(limit or self.settings.batch, self.settings.labels)
        blurring = set(self.blurring()) if pending else set()
        for item in pending:
            if item.camera_id in blurring:
                if self.repo.record_scan(item.event_id, item.camera_id, [], error=None):
                    report.skipped += 1
                continue
            started = time.perf_counter()
            try:
                faces, error = self._faces_of(item), None
            except Exception as exc:  # one bad snapshot never stops the others
                logger.warning("faces: event %s not scanned: %s", item.event_id, exc)
                faces, error = [], f"{type(exc).__name__}: {exc}"
                report.failed += 1
            prints = [self._seal(f, item) for f in faces]
            if self.repo.record_scan(item.event_id, item.camera_id, prints, error=error):
                report.scanned += 1
                report.faces += len(prints)
            report.ms_per_event.append((time.perf_counter() - started) * 1000)
        return report

    def _faces_of(self, item: PendingScan) -> list[FoundFace]:
        assert self.objects is not None
        try:
            data = self.objects.get(item.snapshot_key)
        except ObjectNotFound:
            return []  # the snapshot left already (snapshots_days): nothing to scan
        rgb = decode_photo(data, max_side=100_000)  # the box is in the frame's pixels
        crop = _crop(rgb, item.box)
        if crop.size == 0:
            return []
        return self.analyzer.analyze(_shrink(crop, self.settings.max_side))

    def _seal(self, face: FoundFace, item: PendingScan) -> NewPrint:
        print_id = str(uuid.uuid4())
        sealed = self.vault.seal(
            face.embedding, print_id=print_id, event_id=item.event_id, camera_id=item.camera_id
        )
        return NewPrint(print_id, sealed.bucket, sealed.nonce, sealed.sealed, sealed.key_version)

    # -- searching -------------------------------------------------------------------------

    def query_embedding(self, data: bytes) -> NDArray[np.float32]:
        """The embedding of the one face in a photo.

        Raises:
            FaceQueryError: not an image, no face, or more than one face.
        """
        rgb = decode_photo(data, self.settings.max_side)
        faces = self.analyzer.analyze(rgb)
        if not faces:
            raise FaceQueryError("no face found in the photo: send a photo of one face")
        if len(faces) > 1:
            raise FaceQueryError(
                f"{len(faces)} faces found in the photo: send a photo of one face only"
            )
        return faces[0].embedding

    def search(
        self, embedding: NDArray[np.float32], cameras: Collection[str] | None = None
    ) -> tuple[list[FaceMatch], int, int]:
        """The events with a face within ``tolerance`` of ``embedding`` on ``cameras`` (None:
        all), nearest first; also the number of candidates opened and of buckets probed."""
        buckets = self.vault.probe_buckets(embedding, self.settings.probe_radius)
        candidates = self.repo.candidates(buckets, cameras)
        opened, stored = open_many(self.vault, candidates)
        distances = np.linalg.norm(stored - embedding.astype(np.float32), axis=1)
        close = [
            (candidates[opened[j]].event_id, float(distances[j]))
            for j in np.flatnonzero(distances <= self.settings.tolerance)
        ]
        best = best_per_event(close)
        events = self.repo.events(best)
        matches = [
            FaceMatch(
                event_id,
                events[event_id].camera_id,
                events[event_id].label,
                events[event_id].started_at,
                events[event_id].ended_at,
                round(distance, 4),
            )
            for event_id, distance in best.items()
            if event_id in events  # deleted since the candidates were read
        ]
        matches.sort(key=lambda m: (m.distance, m.event_id))
        return matches, len(candidates), len(buckets)

    def search_photo(self, data: bytes, cameras: Collection[str] | None = None) -> SearchResult:
        """:meth:`search` with the one face of a photo (see :meth:`query_embedding`)."""
        started = time.perf_counter()
        embedding = self.query_embedding(data)
        detected = time.perf_counter()
        matches, candidates, buckets = self.search(embedding, cameras)
        done = time.perf_counter()
        return SearchResult(
            matches,
            candidates,
            buckets,
            round((detected - started) * 1000, 1),
            round((done - detected) * 1000, 1),
        )


def _shrink(rgb: NDArray[np.uint8], max_side: int) -> NDArray[np.uint8]:
    h, w = rgb.shape[:2]
    if max(h, w) <= max_side:
        return rgb
    image = Image.fromarray(rgb)
    image.thumbnail((max_side, max_side), Image.Resampling.BILINEAR)
    return np.asarray(image, dtype=np.uint8)


def open_face_index(
    engine: Engine,
    objects: ObjectStore | None,
    settings: FaceSettings,
    *,
    secret_key: str | None,
    data_dir: Path,
) -> FaceIndex | None:
    """The face index of a deployment, keyed by the secret-at-rest master key
    (``auth.secret_key`` or ``keys/secrets.key``); None when ``faces.enabled`` is off."""
    if not settings.enabled:
        return None
    vault = FaceVault(master_key(secret_key, data_dir))
    cameras = CameraRepository(engine)
    return FaceIndex(
        FaceRepository(engine),
        vault,
        FaceAnalyzer(),
        objects,
        settings,
        blurring=lambda: blurring_cameras(cameras),
    )


class FaceScanLoop(PeriodicLoop):
    """Scans every ``settings.interval_s`` in a daemon thread, and on demand (the retention
    actor holds one, off the cameras' loops; Ray-free so it is tested without a cluster)."""

    def __init__(self, index: FaceIndex) -> None:
        super().__init__(index.settings.interval_s, "face-scan")
        self.index = index

    def scan_now(self) -> dict[str, Any]:
        """One scan round (serialised with the loop's): scanned, faces, failed, ms/event."""
        return self.run_now()

    def run_round(self) -> dict[str, Any]:
        try:
            report = self.index.scan()
        except Exception as exc:  # the database is down, say: try again next round
            self.last_error = repr(exc)[:500]
            logger.exception("face scan failed")
            return {"error": self.last_error}
        self.last_error = ""
        times = report.ms_per_event
        self.last = {
            "scanned": report.scanned,
            "faces": report.faces,
            "failed": report.failed,
            "skipped_blurring": report.skipped,
            "ms_per_event": round(sum(times) / len(times), 1) if times else None,
        }
        return dict(self.last)
