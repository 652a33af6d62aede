"""Media encrypted at rest, end to end: real recorded segments, exports and snapshots stored
through the envelope on the local folder and on S3 (a moto server), served by the API routes
with Range, while the stored bytes are ciphertext.

The export lifecycle and clip tests of tests/integration/test_exports.py and
test_recordings_api.py run here again, unchanged, over an encrypted store.
"""

from __future__ import annotations

import io
import os
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import av
import pytest
from fastapi.testclient import TestClient
from sqlalchemy.engine import Engine

from sentinel.api.deps import Services
from sentinel.domain.types import Box, EventState
from sentinel.store.db import make_engine, migrate, sqlite_url
from sentinel.store.envelope import (
    HEADER_SIZE,
    EncryptedObjectStore,
    MasterKeys,
    ObjectIntegrityError,
    is_encrypted,
)
from sentinel.store.export_repo import ExportRepository
from sentinel.store.objects import ObjectStore, snapshot_key
from sentinel.store.s3 import S3ObjectStore
from sentinel.store.segment_repo import SegmentRecord, SegmentRepository
from tests.integration import test_exports as exports
from tests.integration import test_recordings_api as rec

# Collected here again, over this module's encrypted `services`.
from tests.integration.test_exports import test_export_lifecycle  # noqa: F401
from tests.integration.test_recordings_api import (  # noqa: F401
    test_clip_decodes_and_covers_the_range,
    test_clip_serves_byte_ranges,
)
from tests.utils.s3 import empty_and_delete_bucket, s3_test_client
from tests.utils.services import make_services

recorded = exports.recorded
records = exports.records
client_headers = exports.client_headers
CHUNK = 4096  # small chunks: every segment and clip spans many


@pytest.fixture
def store_engine(tmp_path: Path) -> Iterator[Engine]:
    """SQLite only: the object store is what these tests are about."""
    engine = make_engine(sqlite_url(tmp_path / "db" / "sentinel.db"))
    migrate(engine)
    yield engine
    engine.dispose()


@pytest.fixture
def encrypted(object_store: ObjectStore) -> EncryptedObjectStore:
    """``object_store`` ([local] and [s3]) behind the envelope."""
    return EncryptedObjectStore(object_store, MasterKeys([os.urandom(32)]), chunk_size=CHUNK)


@pytest.fixture
def services(store_engine: Engine, tmp_path: Path, encrypted: EncryptedObjectStore) -> Services:
    return make_services(
        store_engine,
        tmp_path,
        objects=encrypted,
        segments=SegmentRepository(store_engine),
        exports=ExportRepository(store_engine),
    )


def _raw(store: ObjectStore, key: str, s3_client: Any | None) -> bytes:
    """The stored bytes of ``key``, read past Sentinel for S3 (boto3 directly)."""
    if isinstance(store, S3ObjectStore):
        assert s3_client is not None
        name = f"sentinel/{key}"
        return bytes(s3_client.get_object(Bucket=store.bucket, Key=name)["Body"].read())
    return store.get(key)


def test_stored_segments_are_ciphertext_and_play(
    services: Services, encrypted: EncryptedObjectStore, records: list[SegmentRecord]
) -> None:
    inner = encrypted.inner
    client = inner.client if isinstance(inner, S3ObjectStore) else None
    for record in records:
        raw = _raw(inner, record.object_key, client)
        plain = encrypted.get(record.object_key)
        assert is_encrypted(raw) and b"ftyp" not in raw and plain[4:8] == b"ftyp"
        assert plain[100:400] not in raw
        assert len(plain) == record.size == encrypted.size(record.object_key)
        assert len(raw) > len(plain)
        with av.open(io.BytesIO(plain)) as container:  # the decrypted segment plays
            assert container.streams.video[0].codec_context.name == "h264"
    sizes = dict(encrypted.iter_keys("recordings/"))
    assert sizes[records[0].object_key] == len(_raw(inner, records[0].object_key, client))


def test_snapshot_range_requests(
    client: TestClient, services: Services, encrypted: EncryptedObjectStore
) -> None:
    services.cameras.upsert(rec.CAM, {"id": rec.CAM, "source": "/videos/door.mp4"})
    ev = EventState(
        id="00000000-0000-0000-0000-000000000001",
        camera_id=rec.CAM,
        label="person",
        track_id=1,
        started_at=rec.at(0),
        last_seen_at=rec.at(2),
        score=0.9,
        box=Box(1, 2, 30, 40),
        best_at=rec.at(1),
        ended_at=rec.at(2),
    )
    key = snapshot_key(rec.CAM, ev.id)
    jpeg = b"\xff\xd8" + os.urandom(3 * CHUNK + 500) + b"\xff\xd9"
    services.objects.put(key, jpeg, "image/jpeg")
    services.events.upsert(ev, key)
    inner = encrypted.inner
    raw = _raw(inner, key, inner.client if isinstance(inner, S3ObjectStore) else None)
    assert is_encrypted(raw) and jpeg[:64] not in raw

    url = f"/api/v1/events/{ev.id}/snapshot.jpg"
    whole = client.get(url)
    assert whole.status_code == 200 and whole.content == jpeg
    size = len(jpeg)
    for header, start, end in (
        ("bytes=0-99", 0, 99),
        (f"bytes={CHUNK - 3}-{2 * CHUNK + 5}", CHUNK - 3, 2 * CHUNK + 5),  # across chunks
        ("bytes=-10", size - 10, size - 1),
        (f"bytes={3 * CHUNK}-", 3 * CHUNK, size - 1),
        (f"bytes=5-{10 * size}", 5, size - 1),
    ):
        part = client.get(url, headers={"Range": header})
        assert part.status_code == 206, (header, part.text)
        assert part.content == jpeg[start : end + 1], header
        assert part.headers["content-range"] == f"bytes {start}-{end}/{size}"
    beyond = client.get(url, headers={"Range": f"bytes={size}-"})
    assert beyond.status_code == 416 and beyond.headers["content-range"] == f"bytes */{size}"
    several = client.get(url, headers={"Range": "bytes=0-1,5-6"})
    assert several.status_code == 200 and several.content == jpeg


def test_turning_encryption_on_keeps_old_objects_readable(
    client: TestClient, services: Services, encrypted: EncryptedObjectStore
) -> None:
    services.cameras.upsert(rec.CAM, {"id": rec.CAM, "source": "/videos/door.mp4"})
    ev = EventState(
        id="00000000-0000-0000-0000-000000000002",
        camera_id=rec.CAM,
        label="car",
        track_id=2,
        started_at=rec.at(0),
        last_seen_at=rec.at(2),
        score=0.8,
        box=Box(1, 2, 30, 40),
        best_at=rec.at(1),
        ended_at=rec.at(2),
    )
    key = snapshot_key(rec.CAM, ev.id)
    encrypted.inner.put(key, b"\xff\xd8old plain jpeg", "image/jpeg")  # before encryption
    services.events.upsert(ev, key)
    url = f"/api/v1/events/{ev.id}/snapshot.jpg"
    assert client.get(url).content == b"\xff\xd8old plain jpeg"
    part = client.get(url, headers={"Range": "bytes=2-4"})
    assert part.status_code == 206 and part.content == b"old"


def test_tampered_object_is_an_integrity_error_not_garbage(
    encrypted: EncryptedObjectStore,
) -> None:
    key = "exports/front_door/x.mp4"
    data = os.urandom(5 * CHUNK)
    encrypted.put(key, data, "video/mp4")
    raw = encrypted.inner.get(key)
    at = HEADER_SIZE + 2 * CHUNK + 100  # inside the third chunk
    encrypted.inner.put(key, raw[:at] + bytes([raw[at] ^ 0x80]) + raw[at + 1 :])
    with pytest.raises(ObjectIntegrityError, match="chunk 2"):
        encrypted.get(key)
    with pytest.raises(ObjectIntegrityError, match="chunk 2"):
        encrypted.get_range(key, 2 * CHUNK, 2 * CHUNK + 10)
    assert encrypted.get_range(key, 0, CHUNK) == data[:CHUNK]  # other chunks still read


def test_s3_range_reads_fetch_only_the_chunks(s3_server: str, s3_client: Any) -> None:
    """Against the real S3 server: a range of a large encrypted object is two ranged GETs (the
    header, then its chunks), never a download of the object."""
    client = s3_test_client(s3_server)  # its own client: the session's takes no event hooks
    fetched: list[int] = []
    client.meta.events.register(
        "after-call.s3.GetObject",
        lambda parsed, **_: fetched.append(int(parsed["ContentLength"])),
    )
    bucket = f"sentinel-range-{uuid.uuid4().hex[:12]}"
    inner = S3ObjectStore(bucket, prefix="sentinel", client=client)
    inner.ensure_bucket()
    try:
        store = EncryptedObjectStore(inner, MasterKeys([os.urandom(32)]))  # 64 KiB chunks
        data = os.urandom(8 << 20)
        store.put("exports/gate/long.mp4", data, "video/mp4")
        start = (5 << 20) + 100
        assert (
            store.get_range("exports/gate/long.mp4", start, start + 1000)
            == (data[start : start + 1000])
        )
        assert fetched == [HEADER_SIZE, 64 * 1024 + 16]  # the header, then one chunk
        fetched.clear()
        assert store.size("exports/gate/long.mp4") == len(data)
        assert fetched == [HEADER_SIZE]
    finally:
        empty_and_delete_bucket(client, bucket)
