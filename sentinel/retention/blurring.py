"""Face blurring for cameras with ``privacy.blur_faces`` (issue 16): snapshots and exports.

``FaceBlurrer`` finds faces on a whole frame (dlib's HOG detector, upsampled once so faces from
about 40 px are found) and pixelates them (``sentinel.domain.blur``). It needs no face prints
and no key: it works with ``faces.enabled`` off.

``BlurredSnapshotWriter`` writes a blurring camera's event snapshots in its own thread, because
HOG on a 768x576 frame takes hundreds of milliseconds on a small CPU and the camera's loop
waits for its sink: the sink hands over the best frame and goes on, the writer blurs, encodes,
stores the JPEG, then points the event at it (``EventRepository.set_snapshot_key``). So the
stored snapshot of a blurring camera never shows an unblurred face, even for a moment; what it
costs is that an event's snapshot appears a detection later. Jobs are kept latest-per-event: a
newer best frame of an event replaces the one still waiting.

``redact_export`` re-encodes an export of a blurring camera with faces pixelated in every frame
(``sentinel.video.redact``).

Face prints: a blurring camera gets none. Its stored snapshots have no face left to scan, and
an operator who turns blurring on has said that faces there are not to be kept; scanning the
frame before blurring would keep exactly that (a biometric print of every passer-by). The face
scanner therefore skips blurring cameras (``FaceIndex`` ``skip_cameras``); a subject on them is
found by camera and time range or by event ids, not by photo.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import OrderedDict
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from numpy.typing import NDArray

from sentinel.config import PrivacySettings
from sentinel.domain.blur import FaceBox, blur_faces
from sentinel.domain.render import Overlay, encode_jpeg
from sentinel.models.faces import FaceAnalyzer
from sentinel.store.objects import ObjectStore
from sentinel.store.repo import CameraRepository, EventRepository
from sentinel.video.redact import RedactReport, redact_clip

__all__ = [
    "BlurredSnapshotWriter",
    "FaceBlurrer",
    "WriterStats",
    "blurring_cameras",
    "camera_privacy",
    "redact_export",
    "shared_blurrer",
]

logger = logging.getLogger(__name__)

_MAX_WAITING = 64  # events whose snapshot waits; beyond, the oldest waiting one is dropped
_KEEP_TIMES = 200


class FaceBlurrer:
    """Finds faces on a frame and pixelates them.

    Args:
        analyzer: The face detector (default: dlib HOG, upsampled once).
    """

    def __init__(self, analyzer: FaceAnalyzer | None = None) -> None:
        self.analyzer = analyzer or FaceAnalyzer(upsample=1)

    def detect(self, rgb: NDArray[np.uint8]) -> list[FaceBox]:
        """The face boxes of an RGB frame."""
        return self.analyzer.detect(rgb)

    def blur(self, rgb: NDArray[np.uint8]) -> tuple[NDArray[np.uint8], int]:
        """A copy of ``rgb`` with its faces pixelated, and how many faces there were."""
        boxes = self.detect(rgb)
        return (blur_faces(rgb, boxes) if boxes else rgb), len(boxes)


_shared: FaceBlurrer | None = None
_shared_lock = threading.Lock()


def shared_blurrer() -> FaceBlurrer:
    """This process's blurrer (dlib's models load once, on first use)."""
    global _shared
    with _shared_lock:
        if _shared is None:
            _shared = FaceBlurrer()
        return _shared


def camera_privacy(cameras: CameraRepository, camera_id: str) -> PrivacySettings:
    """A camera's privacy settings from its stored config (defaults for an unknown camera).

    Raises:
        ValueError: The stored ``privacy`` block is invalid (the caller must not guess: an
            export of a camera that may blur is refused rather than made unblurred).
    """
    config = cameras.get_own(camera_id) or {}
    return PrivacySettings(**(config.get("privacy") or {}))


def blurring_cameras(cameras: CameraRepository) -> set[str]:
    """The cameras whose stored config asks for faces to be blurred (an invalid ``privacy``
    block counts as blurring: when in doubt, no face print)."""
    out: set[str] = set()
    for camera_id, config in cameras.list():
        try:
            if PrivacySettings(**(config.get("privacy") or {})).blur_faces:
                out.add(camera_id)
        except (TypeError, ValueError):
            out.add(camera_id)
    return out


def redact_export(
    src: Path, dest: Path, privacy: PrivacySettings, blurrer: FaceBlurrer | None = None
) -> RedactReport:
    """``src`` re-encoded to ``dest`` with faces pixelated in every frame (see module doc)."""
    detector = (blurrer or shared_blurrer()).detect
    return redact_clip(src, dest, detector, every=privacy.export_detect_every)


@dataclass(slots=True)
class _Job:
    key: str
    rgb: NDArray[np.uint8]
    overlay: Overlay


@dataclass(slots=True)
class WriterStats:
    """What the writer did: snapshots written, faces blurred, failures, drops, ms per write."""

    written: int = 0
    faces: int = 0
    failed: int = 0
    dropped: int = 0
    ms: list[float] = field(default_factory=list)

    def as_dict(self) -> dict[str, float | int]:
        times = sorted(self.ms)
        p50 = times[len(times) // 2] if times else 0.0
        return {
            "written": self.written,
            "faces": self.faces,
            "failed": self.failed,
            "dropped": self.dropped,
            "ms_p50": round(p50, 1),
        }


class BlurredSnapshotWriter:
    """Writes a blurring camera's snapshots in a daemon thread (see the module doc).

    Args:
        objects: Where snapshots go.
        events: Whose ``set_snapshot_key`` points each event at its snapshot.
        blurrer: Finds and pixelates faces (default: the process's shared one).
        max_waiting: Events whose snapshot may wait; beyond, the oldest waiting is dropped.
    """

    def __init__(
        self,
        objects: ObjectStore,
        events: EventRepository,
        blurrer: FaceBlurrer | None = None,
        *,
        max_waiting: int = _MAX_WAITING,
    ) -> None:
        self.objects = objects
        self.events = events
        self.blurrer = blurrer
        self.max_waiting = max_waiting
        self.stats = WriterStats()
        self._jobs: OrderedDict[str, _Job] = OrderedDict()
        self._cond = threading.Condition()
        self._busy = False
        self._closed = False
        self._thread: threading.Thread | None = None

    def submit(self, event_id: str, key: str, rgb: NDArray[np.uint8], overlay: Overlay) -> None:
        """Queue the event's best frame (replacing one of the same event still waiting)."""
        with self._cond:
            if self._closed:
                raise RuntimeError("the snapshot writer is closed")
            self._jobs[event_id] = _Job(key, rgb, overlay)
            self._jobs.move_to_end(event_id)
            while len(self._jobs) > self.max_waiting:
                dropped, _ = self._jobs.popitem(last=False)
                self.stats.dropped += 1
                logger.warning("blurred snapshot of event %s dropped: writer behind", dropped)
            if self._thread is None:
                self._thread = threading.Thread(
                    target=self._run, name="blurred-snapshots", daemon=True
                )
                self._thread.start()
            self._cond.notify_all()

    def flush(self, timeout_s: float = 30.0) -> bool:
        """Wait until every queued snapshot is written; False if ``timeout_s`` ran out."""
        deadline = time.monotonic() + timeout_s
        with self._cond:
            while self._jobs or self._busy:
                left = deadline - time.monotonic()
                if left <= 0:
                    return False
                self._cond.wait(left)
        return True

    def close(self, timeout_s: float = 10.0) -> bool:
        """Write what waits (up to ``timeout_s``), then stop the thread."""
        done = self.flush(timeout_s)
        with self._cond:
            self._closed = True
            self._cond.notify_all()
        return done

    def _run(self) -> None:
        while True:
            with self._cond:
                while not self._jobs and not self._closed:
                    self._cond.wait()
                if not self._jobs:
                    return
                event_id, job = self._jobs.popitem(last=False)
                self._busy = True
            try:
                self._write(event_id, job)
            except Exception:  # never stored unblurred: the event keeps no snapshot
                self.stats.failed += 1
                logger.exception("blurred snapshot of event %s not written", event_id)
            finally:
                with self._cond:
                    self._busy = False
                    self._cond.notify_all()

    def _write(self, event_id: str, job: _Job) -> None:
        started = time.perf_counter()
        blurrer = self.blurrer or shared_blurrer()
        blurred, faces = blurrer.blur(job.rgb)
        self.objects.put(job.key, encode_jpeg(blurred, [job.overlay]), "image/jpeg")
        if not self.events.set_snapshot_key(event_id, job.key):
            self.objects.delete(job.key)  # the event is gone (expired, erased): no orphan
            return
        self.stats.written += 1
        self.stats.faces += faces
        self.stats.ms.append((time.perf_counter() - started) * 1000)
        del self.stats.ms[:-_KEEP_TIMES]
