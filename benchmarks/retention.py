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
"""

from __future__ import annotations

import contextlib
import logging
import os
import shutil
import tempfile
import time
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
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


if __name__ == "__main__":
    run()
