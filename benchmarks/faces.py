"""Faces (issue 16): face search over sealed prints vs brute force over plain vectors.

**Detection.** dlib's HOG detector and the 128-d embedding (``FaceAnalyzer``) on real photos
of Debian's ``opencv-doc`` (the tests' photos): milliseconds per image (HOG) and per face
(landmarks + embedding).

**Search.** ``FACES`` (100,000) face prints: ``FACES / 5`` identities, each a point around
where dlib's embeddings lie (``FACE_CENTRE``, spread 0.05 per dimension: two identities are
about 0.8 apart, as different people are) with 5 prints 0.35 apart (as two photos of one
person), one event per identity; one of them is the real embedding of a tutorial photo. Each
print is sealed (AES-256-GCM) into its keyed bucket and stored in a SQLite database
(``face_prints``, the product's schema, migrated). For ``QUERIES`` queries (a new sample of a
stored identity; the first is the real second photo of the planted person):

* ``sealed``: :meth:`FaceIndex.search` (what the API runs after detection): the probed buckets'
  rows read, every candidate opened and compared;
* ``plain``: the baseline, brute force over the same embeddings as a plain float32 matrix in
  memory (one distance per print, then the threshold) — what a face database would do.

Figures: p50 and p99 of each, their ratio, the share of the store a search reads, and recall
(the identity's event found) of the sealed search; the plain search finds every one by
construction. ``python -m benchmarks faces``; ``SENTINEL_BENCH_FACES`` shrinks the store.
"""

from __future__ import annotations

import os
import tempfile
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import sqlalchemy as sa

from benchmarks.common import BenchmarkError, median, percentile

FACES = int(os.environ.get("SENTINEL_BENCH_FACES", "100000"))
PER_IDENTITY = 5
QUERIES = 50
SPREAD = 0.05  # per dimension between identities (~0.8 apart)
WITHIN = 0.022  # per dimension between prints of one identity (~0.35 apart)
DOC = Path("/usr/share/doc/opencv-doc")
PHOTOS = {
    "same_a": DOC / "opencv4/html/Cascade_Classifier_Tutorial_Result_Haar.jpg",
    "same_b": DOC / "opencv4/html/Cascade_Classifier_Tutorial_Result_LBP.jpg",
    "messi": DOC / "examples/data/messi5.jpg",
    "lena": DOC / "opencv4/html/GCC_CMake_Example_Tutorial.jpg",
}


def _detection() -> dict[str, np.ndarray]:
    from sentinel.models.faces import FaceAnalyzer
    from sentinel.retention.face_index import decode_photo

    missing = [str(p) for p in PHOTOS.values() if not p.is_file()]
    if missing:
        raise BenchmarkError(f"missing {missing}: `apt-get install opencv-doc`")
    analyzer = FaceAnalyzer()
    analyzer.detect(np.zeros((64, 64, 3), np.uint8))  # load the models outside the timing
    hog_ms: list[float] = []
    embed_ms: list[float] = []
    embeddings: dict[str, np.ndarray] = {}
    for _ in range(3):
        for name, path in PHOTOS.items():
            rgb = decode_photo(path.read_bytes(), 1600)
            t0 = time.perf_counter()
            boxes = analyzer.detect(rgb)
            t1 = time.perf_counter()
            faces = analyzer.analyze(rgb)
            t2 = time.perf_counter()
            hog_ms.append((t1 - t0) * 1000)
            # analyze() runs HOG again: the embedding's share is the rest, per face.
            embed_ms.append(max(0.0, (t2 - t1) - (t1 - t0)) * 1000 / max(1, len(boxes)))
            embeddings[name] = faces[0].embedding
    print(
        f"faces detect: HOG p50 {median(hog_ms):.0f} ms/image (photos {len(PHOTOS)}, "
        f"{min(hog_ms):.0f}-{max(hog_ms):.0f} ms), embedding p50 {median(embed_ms):.0f} ms/face",
        flush=True,
    )
    return embeddings


def _store(engine: sa.Engine, vault: object, embeddings: np.ndarray) -> list[str]:
    from sentinel.retention.faces import FaceVault
    from sentinel.store.face_tables import FACE_PRINTS
    from sentinel.store.tables import EVENTS

    assert isinstance(vault, FaceVault)
    identities = len(embeddings) // PER_IDENTITY
    start = datetime(2026, 6, 1, tzinfo=UTC)
    event_ids = [f"ev-{i:06d}" for i in range(identities)]
    events = [
        {
            "id": event_ids[i],
            "camera_id": f"cam-{i % 50}",
            "label": "person",
            "score": 0.9,
            "track_id": i,
            "started_at": start + timedelta(seconds=i),
            "ended_at": start + timedelta(seconds=i + 10),
            "last_seen_at": start + timedelta(seconds=i + 10),
            "box": "[0, 0, 10, 10]",
            "best_at": start + timedelta(seconds=i),
            "hits": 1,
            "path": "[]",
            "updated_at": start,
        }
        for i in range(identities)
    ]
    prints = []
    for n, emb in enumerate(embeddings):
        i = n // PER_IDENTITY
        print_id = str(uuid.uuid4())
        sealed = vault.seal(
            emb, print_id=print_id, event_id=event_ids[i], camera_id=f"cam-{i % 50}"
        )
        prints.append(
            {
                "id": print_id,
                "event_id": event_ids[i],
                "camera_id": f"cam-{i % 50}",
                "bucket": sealed.bucket,
                "nonce": sealed.nonce,
                "sealed": sealed.sealed,
                "key_version": sealed.key_version,
                "created_at": start,
            }
        )
    with engine.begin() as conn:
        conn.execute(sa.insert(EVENTS), events)
        conn.execute(sa.insert(FACE_PRINTS), prints)
    return event_ids


def run(_workdir: Path) -> None:
    from sentinel.config import FaceSettings
    from sentinel.models.faces import FaceAnalyzer
    from sentinel.retention.face_centre import FACE_CENTRE
    from sentinel.retention.face_index import FaceIndex
    from sentinel.retention.faces import FaceVault
    from sentinel.store.db import make_engine, migrate, sqlite_url
    from sentinel.store.face_repo import FaceRepository

    real = _detection()
    rng = np.random.default_rng(16)
    identities = FACES // PER_IDENTITY
    centres = np.asarray(FACE_CENTRE, np.float32) + rng.normal(0, SPREAD, (identities, 128))
    centres[0] = real["same_a"]  # the planted person: her first photo is stored...
    stored = centres[:, None, :] + rng.normal(0, WITHIN, (identities, PER_IDENTITY, 128))
    stored[0, 0] = real["same_a"]
    flat = stored.reshape(-1, 128).astype(np.float32)
    asked = rng.choice(np.arange(1, identities), QUERIES - 1, replace=False)
    queries = [real["same_b"]] + [  # ...and her second photo is the first query
        (centres[i] + rng.normal(0, WITHIN, 128)).astype(np.float32) for i in asked
    ]
    wanted = [0, *asked.tolist()]
    settings = FaceSettings(enabled=True)
    vault = FaceVault(os.urandom(32))
    with tempfile.TemporaryDirectory(prefix="sentinel-bench-faces-") as tmp:
        engine = make_engine(sqlite_url(Path(tmp) / "faces.db"))
        migrate(engine)
        t0 = time.perf_counter()
        event_ids = _store(engine, vault, flat)
        print(
            f"faces store: {len(flat)} prints sealed and stored in "
            f"{time.perf_counter() - t0:.1f} s (SQLite)",
            flush=True,
        )
        index = FaceIndex(FaceRepository(engine), vault, FaceAnalyzer(), None, settings)
        sealed_ms: list[float] = []
        plain_ms: list[float] = []
        read: list[int] = []
        found: list[bool] = []
        plain_found = 0
        for round_, (query, identity) in enumerate(zip(queries, wanted, strict=True)):
            for side in ("sealed", "plain") if round_ % 2 == 0 else ("plain", "sealed"):
                t = time.perf_counter()
                if side == "sealed":
                    matches, candidates, _ = index.search(query)
                    sealed_ms.append((time.perf_counter() - t) * 1000)
                    read.append(candidates)
                    found.append(event_ids[identity] in {m.event_id for m in matches})
                else:
                    distances = np.linalg.norm(flat - query, axis=1)
                    hits = np.flatnonzero(distances <= settings.tolerance)
                    answer = {event_ids[h // PER_IDENTITY] for h in hits}
                    plain_ms.append((time.perf_counter() - t) * 1000)
                    plain_found += event_ids[identity] in answer
        engine.dispose()
    s50, s99 = median(sealed_ms), percentile(sealed_ms, 99)
    p50, p99 = median(plain_ms), percentile(plain_ms, 99)
    print(
        f"faces search over {len(flat)} prints, {QUERIES} queries, radius "
        f"{settings.probe_radius}: sealed p50 {s50:.1f} ms p99 {s99:.1f} ms | plain brute "
        f"force p50 {p50:.1f} ms p99 {p99:.1f} ms | ratio p50 {s50 / p50:.1f}x p99 "
        f"{s99 / p99:.1f}x | reads {100 * np.mean(read) / len(flat):.0f}% of the store | "
        f"recall sealed {sum(found)}/{QUERIES}, plain {plain_found}/{QUERIES} (the real "
        f"second photo found its person: {'yes' if found[0] else 'no'})",
        flush=True,
    )
