"""Retention: tiering's archive throughput to an S3-compatible server vs plain boto3.

10 minutes of footage (the sample as H.264, 10 s segments) are recorded through a
:class:`SegmentRecorder` into a :class:`LocalObjectStore` and a SQLite segment index, exactly
as a camera records, and aged past the archive age. Then, in interleaved rounds (order
alternating), each against a fresh bucket on the same server:

* ``archive``: :meth:`Archiver.run` (what the retention sweep runs): per segment, read the local
  copy and hash it, put it with the storage class, read it back and compare sha256, mark the
  row archived, delete the local copy, audit; the local copies and rows are reset between
  rounds;
* ``boto3``: the baseline, ``client.upload_file`` of the same files with the same storage
  class, nothing else.

And the restore side: :func:`restore_segment` of every archived segment (archive read, sha256
check, row marked, local write) vs ``client.download_file`` of the same objects.

The server is moto's (``moto.server.ThreadedMotoServer`` on 127.0.0.1, in this process, so
both sides share its CPU), or any S3-compatible endpoint in ``SENTINEL_BENCH_S3_ENDPOINT`` with
``AWS_ACCESS_KEY_ID`` / ``AWS_SECRET_ACCESS_KEY``. Figures are MB/s (10^6 bytes) of segment
bytes; ``ratio`` is archive / boto3 (the read-back verification alone makes it < 1).

Erasure (:func:`run_erasure`, issue 16): a subject in 1,000 events across 3 cameras (each event
with a snapshot, a sealed face print row, an alert, a search-index entry; half of them alone
in an incident, half sharing one with a bystander's event; the covering 10-minute segments),
beside as many bystander events. ``erasure`` is ``RequestRunner`` on an erasure request by
ids (what ``POST /privacy/requests`` runs: resolve, holds, per-store steps saved and audited,
incidents detached or deleted, search queue rows); ``bare`` the baseline: plain SQL ``DELETE``
of the same rows in one transaction, the same object deletes and the same index delete,
nothing else. Each round seeds a fresh store; rounds alternate their order. Annotation
items, datasets and MLflow runs are not seeded here (their steps run and find nothing).
``SENTINEL_BENCH_ERASURE_EVENTS`` sets the subject's size.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import shutil
import tempfile
import time
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import sqlalchemy as sa

from benchmarks.common import BenchmarkError, median
from benchmarks.recording import _h264_clip, _record_archive
from sentinel.config import ArchiveSettings
from sentinel.retention.archive import Archiver, make_archive_store, restore_segment
from sentinel.store.audit_repo import AuditRepository
from sentinel.store.db import make_engine, migrate, sqlite_url
from sentinel.store.objects import LocalObjectStore
from sentinel.store.recording_tables import SEGMENTS
from sentinel.store.s3 import ObjectStoreSettings, make_s3_client
from sentinel.store.segment_repo import SegmentRepository

ROUNDS = 3
CLIP_S = 60
STORAGE_CLASS = "STANDARD_IA"
ENDPOINT_ENV = "SENTINEL_BENCH_S3_ENDPOINT"
NOW = datetime(2026, 1, 1, tzinfo=UTC)  # the footage is from 2024: past any archive age


@contextlib.contextmanager
def s3_endpoint() -> Iterator[tuple[str, str, str]]:
    """``(endpoint, access key, secret key)``: the env's server, else moto on 127.0.0.1."""
    endpoint = os.environ.get(ENDPOINT_ENV)
    if endpoint:
        key, secret = os.environ.get("AWS_ACCESS_KEY_ID"), os.environ.get("AWS_SECRET_ACCESS_KEY")
        if not key or not secret:
            raise BenchmarkError(f"{ENDPOINT_ENV} needs AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY")
        yield endpoint, key, secret
        return
    try:
        from moto.server import ThreadedMotoServer
    except ImportError as exc:
        raise BenchmarkError(f"moto's server is not installed ({exc}): moto[server]") from exc
    logging.getLogger("werkzeug").setLevel(logging.WARNING)
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    try:
        yield f"http://{host}:{port}", "bench-access", "bench-secret"
    finally:
        server.stop()


def _settings(endpoint: str, key: str, secret: str, bucket: str) -> ArchiveSettings:
    objects = ObjectStoreSettings.model_validate(
        {
            "kind": "s3",
            "bucket": bucket,
            "prefix": "archive",
            "endpoint_url": endpoint,
            "access_key": key,
            "secret_key": secret,
        }
    )
    return ArchiveSettings(
        enabled=True, after_days=30, objects=objects, storage_class=STORAGE_CLASS,
        max_per_sweep=100_000,
    )  # fmt: skip


def _bucket(client: Any) -> str:
    name = f"bench-{uuid.uuid4().hex[:12]}"
    client.create_bucket(Bucket=name)
    return name


def _drop_bucket(client: Any, bucket: str) -> None:
    paginator = client.get_paginator("list_objects_v2")
    for page in paginator.paginate(Bucket=bucket):
        keys = [{"Key": item["Key"]} for item in page.get("Contents", ())]
        if keys:
            client.delete_objects(Bucket=bucket, Delete={"Objects": keys, "Quiet": True})
    client.delete_bucket(Bucket=bucket)


def _reset(engine: sa.Engine, pristine: Path, store: LocalObjectStore) -> None:
    """Back to "recorded, nothing archived": the local copies and the rows."""
    shutil.rmtree(store.root)
    shutil.copytree(pristine, store.root)
    with engine.begin() as conn:
        conn.execute(
            sa.update(SEGMENTS).values(
                archived_at=None, archive_key=None, archive_sha256=None, restored_until=None
            )
        )


def run(model_path: Path | None = None) -> None:
    """Prints the figures; ``model_path`` is unused (no detector here)."""
    del model_path
    with tempfile.TemporaryDirectory(prefix="sentinel-bench-ret-") as name, s3_endpoint() as ep:
        tmp = Path(name)
        endpoint, key, secret = ep
        clip = _h264_clip(tmp, CLIP_S)
        engine = make_engine(sqlite_url(tmp / "bench.db"))
        migrate(engine)
        store = LocalObjectStore(tmp / "objects")
        repo = SegmentRepository(engine)
        (tmp / "rec").mkdir()
        count = _record_archive(clip, tmp / "rec", store, repo)
        files = [(k, store.path(k)) for k, _ in store.iter_keys("recordings/")]
        total = sum(p.stat().st_size for _, p in files)
        if len(files) != count or not files:
            raise BenchmarkError(f"recorded {count} segments, found {len(files)} files")
        pristine = tmp / "pristine"
        shutil.copytree(store.root, pristine)
        client = make_s3_client(endpoint, "us-east-1", key, secret)
        mb = total / 1e6
        print(
            f"retention: {count} segments, {mb:.1f} MB ({total / count / 1e3:.0f} kB each), "
            f"storage class {STORAGE_CLASS}, server {endpoint}",
            flush=True,
        )
        times: dict[str, list[float]] = {"archive": [], "boto3": [], "restore": [], "get": []}
        for round_no in range(ROUNDS):
            for which in ("archive", "boto3") if round_no % 2 == 0 else ("boto3", "archive"):
                bucket = _bucket(client)
                try:
                    if which == "boto3":
                        start = time.perf_counter()
                        for k, path in files:
                            client.upload_file(
                                str(path), bucket, f"archive/{k}",
                                ExtraArgs={"StorageClass": STORAGE_CLASS},
                            )  # fmt: skip
                        times["boto3"].append(time.perf_counter() - start)
                        start = time.perf_counter()
                        for k, _ in files:
                            client.download_file(bucket, f"archive/{k}", str(tmp / "dl.mp4"))
                        times["get"].append(time.perf_counter() - start)
                        continue
                    _reset(engine, pristine, store)
                    settings = _settings(endpoint, key, secret, bucket)
                    archive = make_archive_store(settings, tmp)
                    archiver = Archiver(repo, store, archive, AuditRepository(engine), settings)
                    start = time.perf_counter()
                    report = archiver.run(NOW, ages={}, held={}, policies={}, cameras=["bench"])
                    times["archive"].append(time.perf_counter() - start)
                    if report.archived != count or report.failed:
                        raise BenchmarkError(f"archive pass: {report}")
                    rows = repo.oldest(limit=10_000, archived=True)
                    start = time.perf_counter()
                    for row in rows:
                        restore_segment(
                            row, segments=repo, local=store, archive=archive, ttl_s=3600
                        )
                    times["restore"].append(time.perf_counter() - start)
                finally:
                    _drop_bucket(client, bucket)
        archive_mbs = mb / median(times["archive"])
        boto_mbs = mb / median(times["boto3"])
        restore_mbs = mb / median(times["restore"])
        get_mbs = mb / median(times["get"])
        print(
            f"retention: archive {archive_mbs:.1f} MB/s (put + read-back sha256 + mark + "
            f"delete local) vs plain boto3 upload_file {boto_mbs:.1f} MB/s: "
            f"ratio {archive_mbs / boto_mbs:.2f}x (median of {ROUNDS})",
            flush=True,
        )
        print(
            f"retention: restore {restore_mbs:.1f} MB/s (get + sha256 + mark + local put) vs "
            f"plain boto3 download_file {get_mbs:.1f} MB/s: ratio {restore_mbs / get_mbs:.2f}x",
            flush=True,
        )
        engine.dispose()
    run_erasure()


# -- erasure of a subject ----------------------------------------------------------------------

ERASURE_EVENTS_ENV = "SENTINEL_BENCH_ERASURE_EVENTS"
ERASURE_CAMERAS = ("gate", "dock", "yard")
SNAPSHOT_BYTES = 6_000
SEGMENT_BYTES = 40_000


def _seed_subject(tmp: Path, n_events: int) -> dict[str, Any]:
    """A fresh store with the subject's ``n_events`` events and as many bystanders'."""
    import numpy as np

    from sentinel.domain.alerts import AlertDecision, DecidedBy, Severity
    from sentinel.search.documents import SearchDocument
    from sentinel.search.index import VectorIndex
    from sentinel.store.agent_tables import ALERTS  # noqa: F401 - the tables' metadata
    from sentinel.store.alert_repo import AlertRepository
    from sentinel.store.face_tables import FACE_PRINTS
    from sentinel.store.incident_tables import INCIDENT_MEMBERS, INCIDENTS
    from sentinel.store.segment_repo import SegmentInfo
    from sentinel.store.tables import EVENTS

    engine = make_engine(sqlite_url(tmp / "erase.db"))
    migrate(engine)
    objects = LocalObjectStore(tmp / "objects")
    index = VectorIndex(tmp / "search")
    rng = np.random.default_rng(7)
    per_camera = -(-n_events // len(ERASURE_CAMERAS))
    subject: list[str] = []
    events: list[dict[str, Any]] = []
    prints: list[dict[str, Any]] = []
    incidents: list[dict[str, Any]] = []
    members: list[dict[str, Any]] = []
    docs: list[SearchDocument] = []
    keys: list[str] = []
    segments: dict[str, list[str]] = {}
    for camera in ERASURE_CAMERAS:
        for i in range(per_camera):
            if len(subject) >= n_events:
                break
            base = NOW.replace(year=2025) + timedelta(minutes=2 * i)
            pair = [(f"s-{camera}-{i}", base), (f"b-{camera}-{i}", base + timedelta(seconds=30))]
            for event_id, start in pair:
                key = f"snapshots/{camera}/{event_id}.jpg"
                objects.put(key, os.urandom(SNAPSHOT_BYTES), "image/jpeg")
                end = start + timedelta(seconds=20)
                events.append(
                    {"id": event_id, "camera_id": camera, "label": "person", "score": 0.9,
                     "track_id": i, "started_at": start, "ended_at": end, "last_seen_at": end,
                     "box": "[0, 0, 10, 10]", "best_at": start, "hits": 3, "path": "[]",
                     "zones": None, "snapshot_key": key, "updated_at": end}
                )  # fmt: skip
                prints.append(
                    {"id": f"fp-{event_id}", "event_id": event_id, "camera_id": camera,
                     "bucket": f"{i % 97:032d}", "nonce": os.urandom(12),
                     "sealed": os.urandom(528), "key_version": 1, "created_at": end}
                )  # fmt: skip
                docs.append(SearchDocument(event_id, "event", f"a person at {camera}", camera,
                                           "person", start))  # fmt: skip
            subject.append(pair[0][0])
            shared = i % 2 == 1  # every other incident also holds the bystander's event
            inc_members = [pair[0][0], pair[1][0]] if shared else [pair[0][0]]
            incidents.append(
                {"id": f"inc-{camera}-{i}", "camera_id": camera, "started_at": base,
                 "last_seen_at": base + timedelta(seconds=50), "ended_at": base +
                 timedelta(seconds=50), "status": "closed", "previous_id": None,
                 "members": json.dumps(inc_members), "labels": '["person"]', "zones": "[]",
                 "key_frames": "[]", "revision": 1, "updated_at": base}
            )  # fmt: skip
            members.extend(
                {"incident_id": f"inc-{camera}-{i}", "event_id": m, "label": "person"}
                for m in inc_members
            )
            if i % 5 == 0:  # a 10-minute segment every 5 subject events
                seg_key = f"recordings/{camera}/{i}.mp4"
                objects.put(seg_key, os.urandom(SEGMENT_BYTES), "video/mp4")
                info = SegmentInfo(Path(seg_key), 0.0, 600.0, base, base + timedelta(minutes=10),
                                   SEGMENT_BYTES, "h264", False, 1)  # fmt: skip
                seg = SegmentRepository(engine).add(camera, info, seg_key, "continuous")
                segments.setdefault(camera, []).append(seg.id)
                keys.append(seg_key)
    with engine.begin() as conn:
        conn.execute(sa.insert(EVENTS), events)
        conn.execute(sa.insert(FACE_PRINTS), prints)
        conn.execute(sa.insert(INCIDENTS), incidents)
        conn.execute(sa.insert(INCIDENT_MEMBERS), members)
    alerts = AlertRepository(engine)
    decision = AlertDecision(True, Severity.HIGH, "a person", ("person",), "look", DecidedBy.RULES)
    for event in events:
        alerts.record_rule_decision(event["id"], event["camera_id"], "person", decision)
    index.upsert(docs, rng.standard_normal((len(docs), 16)).astype(np.float32))
    return {"engine": engine, "objects": objects, "index": index, "subject": subject,
            "segments": segments, "segment_keys": keys}  # fmt: skip


def _erase_with_requests(world: dict[str, Any]) -> tuple[float, str]:
    from sentinel.retention.requests import RequestRunner, SubjectStores
    from sentinel.retention.subjects import Subject, new_steps
    from sentinel.store.subject_repo import PrivacyRequestRepository

    engine = world["engine"]
    stores = SubjectStores(
        engine=engine, objects=world["objects"], index=world["index"],
        audit=AuditRepository(engine), max_events=100_000,
    )  # fmt: skip
    rec = PrivacyRequestRepository(engine).create(
        kind="erasure",
        subject=Subject("ids", event_ids=tuple(world["subject"])).to_json(),
        steps=[s.to_json() for s in new_steps("erasure")],
        requested_by="bench",
    )
    start = time.perf_counter()
    done = RequestRunner(stores).run(rec.id)
    elapsed = time.perf_counter() - start
    if done.status != "done":
        raise BenchmarkError(f"erasure ended {done.status}: {done.report}")
    touched = "; ".join(
        f"{s['store']} " + ", ".join(f"{k} {v}" for k, v in sorted(s["counts"].items()) if v)
        for s in done.steps
        if any(s["counts"].values())
    )
    return elapsed, touched


def _erase_bare(world: dict[str, Any]) -> float:
    """The baseline: the same rows, objects and index entries, deleted plainly."""
    from sentinel.store.agent_tables import ALERTS
    from sentinel.store.face_tables import FACE_PRINTS
    from sentinel.store.incident_tables import INCIDENT_MEMBERS, INCIDENTS
    from sentinel.store.tables import EVENTS

    engine, objects = world["engine"], world["objects"]
    ids: list[str] = world["subject"]
    seg_ids = [s for segs in world["segments"].values() for s in segs]
    start = time.perf_counter()
    with engine.begin() as conn:
        for i in range(0, len(ids), 500):
            chunk = ids[i : i + 500]
            incs = [
                str(x)
                for x in conn.execute(
                    sa.select(INCIDENT_MEMBERS.c.incident_id).where(
                        INCIDENT_MEMBERS.c.event_id.in_(chunk)
                    )
                ).scalars()
            ]
            keys = [
                str(k)
                for k in conn.execute(
                    sa.select(EVENTS.c.snapshot_key).where(EVENTS.c.id.in_(chunk))
                ).scalars()
            ]
            conn.execute(sa.delete(FACE_PRINTS).where(FACE_PRINTS.c.event_id.in_(chunk)))
            conn.execute(sa.delete(ALERTS).where(ALERTS.c.event_id.in_(chunk)))
            conn.execute(sa.delete(INCIDENT_MEMBERS).where(INCIDENT_MEMBERS.c.event_id.in_(chunk)))
            conn.execute(sa.delete(INCIDENTS).where(INCIDENTS.c.id.in_(incs)))
            conn.execute(sa.delete(EVENTS).where(EVENTS.c.id.in_(chunk)))
            for key in keys:
                objects.delete(key)
        conn.execute(sa.delete(SEGMENTS).where(SEGMENTS.c.id.in_(seg_ids)))
    for key in world["segment_keys"]:
        objects.delete(key)
    world["index"].delete(ids)
    return time.perf_counter() - start


def run_erasure(n_events: int | None = None, rounds: int = ROUNDS) -> None:
    from sentinel.retention.subjects import ERASURE_STORES

    """Prints the erasure figure against the bare baseline (see the module's doc)."""
    n = n_events or int(os.environ.get(ERASURE_EVENTS_ENV, "1000"))
    times: dict[str, list[float]] = {"erasure": [], "bare": []}
    touched = ""
    with tempfile.TemporaryDirectory(prefix="sentinel-bench-erase-") as name:
        for round_no in range(rounds):
            for which in ("erasure", "bare") if round_no % 2 == 0 else ("bare", "erasure"):
                folder = Path(name) / f"{round_no}-{which}"
                folder.mkdir()
                world = _seed_subject(folder, n)
                try:
                    if which == "erasure":
                        elapsed, touched = _erase_with_requests(world)
                    else:
                        elapsed = _erase_bare(world)
                    left = world["index"].count()
                    if left != n:  # the bystanders' entries only
                        raise BenchmarkError(f"{which}: {left} index entries left, not {n}")
                    times[which].append(elapsed)
                finally:
                    world["engine"].dispose()
    erasure, bare = median(times["erasure"]), median(times["bare"])
    print(
        f"retention: erasure of a subject in {n} events across {len(ERASURE_CAMERAS)} cameras "
        f"{erasure:.2f} s (resolve, holds, {len(ERASURE_STORES)} store steps saved and audited) "
        f"vs bare SQL "
        f"DELETE + object and index deletes {bare:.2f} s: ratio {erasure / bare:.2f}x "
        f"(median of {rounds})",
        flush=True,
    )
    print(f"retention: erasure touched: {touched}", flush=True)


if __name__ == "__main__":
    import sys

    if sys.argv[1:2] == ["erasure"]:
        run_erasure(int(sys.argv[2]) if len(sys.argv) > 2 else None)
    else:
        run()
