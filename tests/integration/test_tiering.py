"""Tiering on real parts: segments recorded by ``SegmentRecorder`` into a local store and the
index (SQLite and PostgreSQL), archived by the retention sweep to a real S3-compatible server
(moto) with a storage class, played back after an on-demand restore (clips decoded with PyAV,
the 202 path while a restore is held back), expired, deleted past retention; a held segment
stays local; a corrupted archive copy, or a crash before the row is marked, keeps the local
copy."""

from __future__ import annotations

import contextlib
import hashlib
import io
import threading
import uuid
from collections.abc import Iterator
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import av
import pytest
import sqlalchemy as sa
from alembic import command
from sqlalchemy.engine import Engine

from sentinel.actors.retention import AUDIT_ACTION, RetentionSweeper
from sentinel.config import ArchiveSettings, Settings, StorageSettings
from sentinel.gateway.roles import Role
from sentinel.retention.archive import (
    ARCHIVE_ACTION,
    RESTORE_ACTION,
    RESTORE_EXPIRE_ACTION,
    Archiver,
    Restorer,
    make_archive_store,
)
from sentinel.store.audit_repo import AuditRepository
from sentinel.store.db import alembic_config, make_engine, migrate
from sentinel.store.envelope import is_encrypted
from sentinel.store.hold_repo import HoldRepository
from sentinel.store.objects import LocalObjectStore, ObjectStore, unwrapped
from sentinel.store.recording_tables import SEGMENTS
from sentinel.store.s3 import ObjectStoreSettings, S3ObjectStore
from sentinel.store.segment_repo import SegmentInfo, SegmentRecord, SegmentRepository
from sentinel.video.segments import finalize_segment, reconcile
from tests.utils import media
from tests.utils.api import api_client
from tests.utils.auth import add_user
from tests.utils.s3 import S3_ACCESS_KEY, S3_SECRET_KEY, empty_and_delete_bucket
from tests.utils.segments import record_segments
from tests.utils.services import make_services

CAM = "gate"
NOW = datetime.now(UTC).replace(microsecond=0)
OLD = NOW - timedelta(days=40)  # past the default archive age (30 days)
SEGMENT_S = 4.0


@pytest.fixture(scope="module")
def recorded(tmp_path_factory: pytest.TempPathFactory) -> list[SegmentInfo]:
    """Four 4 s segments of the sample (H.264) recorded as a camera does, starting at OLD."""
    clip = media.h264_clip(tmp_path_factory.mktemp("media"), 16)
    infos = record_segments(clip, tmp_path_factory.mktemp("segments"), OLD, SEGMENT_S)
    assert len(infos) == 4
    return infos


@pytest.fixture
def bucket(s3_client: Any) -> Iterator[str]:
    name = f"archive-{uuid.uuid4().hex[:12]}"
    yield name
    with contextlib.suppress(Exception):  # never created (a test that failed early)
        empty_and_delete_bucket(s3_client, name)


@pytest.fixture
def settings(s3_server: str, bucket: str) -> ArchiveSettings:
    return ArchiveSettings(
        enabled=True,
        objects=ObjectStoreSettings.model_validate(
            {
                "kind": "s3",
                "bucket": bucket,
                "prefix": "tier",
                "endpoint_url": s3_server,
                "access_key": S3_ACCESS_KEY,
                "secret_key": S3_SECRET_KEY,
            }
        ),
        storage_class="STANDARD_IA",
        restore_ttl_s=3600,
        restore_wait_s=0,
    )


@pytest.fixture
def archive(settings: ArchiveSettings, tmp_path: Path) -> ObjectStore:
    store = make_archive_store(settings, tmp_path)
    inner = unwrapped(store)  # the archive is encrypted at rest, as S3 objects are by default
    assert isinstance(inner, S3ObjectStore)
    inner.ensure_bucket()
    return store


@pytest.fixture
def local(tmp_path: Path) -> LocalObjectStore:
    return LocalObjectStore(tmp_path / "objects")


def store_segments(
    infos: list[SegmentInfo], engine: Engine, store: ObjectStore, tmp: Path, tag: str = "copy"
) -> list[SegmentRecord]:
    """Finalize copies of the recorded segments into ``store`` and the index."""
    repo = SegmentRepository(engine)
    out = []
    for i, info in enumerate(infos):
        copy = tmp / f"{tag}-{i}.mp4"
        copy.write_bytes(info.path.read_bytes())
        out.append(
            finalize_segment(
                replace(info, path=copy), camera_id=CAM, kind="continuous", store=store, repo=repo
            )
        )
    return out


def sweeper_of(
    engine: Engine, local: ObjectStore, archive: ObjectStore, settings: ArchiveSettings,
    policies: dict[str, tuple[float | None, float | None]] | None = None,
) -> RetentionSweeper:  # fmt: skip
    archiver = Archiver(
        SegmentRepository(engine), local, archive, AuditRepository(engine), settings
    )
    return RetentionSweeper(
        engine, local, StorageSettings(min_free_bytes=0), policies=lambda: policies or {},
        archiver=archiver, archive_ages=dict,
    )  # fmt: skip


def audit_of(engine: Engine, action: str) -> list[dict[str, Any]]:
    return [
        dict(r.detail) | {"target": r.target}
        for r in AuditRepository(engine).iter_all()
        if r.action == action
    ]


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def frames_of(data: bytes) -> int:
    with av.open(io.BytesIO(data), "r") as container:
        return len(list(container.decode(video=0)))


def test_archive_pass_moves_old_segments_to_s3_verified_and_is_idempotent(
    recorded: list[SegmentInfo], store_engine: Engine, local: LocalObjectStore,
    archive: ObjectStore, settings: ArchiveSettings, s3_client: Any, bucket: str,
    tmp_path: Path,
) -> None:  # fmt: skip
    segs = store_segments(recorded, store_engine, local, tmp_path)
    originals = {s.id: local.get(s.object_key) for s in segs}
    day_ago = NOW - timedelta(days=1)
    fresh_info = replace(recorded[0], wall_start=day_ago, wall_end=day_ago + timedelta(seconds=4))
    fresh = store_segments([fresh_info], store_engine, local, tmp_path, "fresh")[0]
    sweeper = sweeper_of(store_engine, local, archive, settings)

    report = sweeper.sweep(now=NOW)

    assert report.archive is not None
    assert report.archive.archived == len(segs) and report.archive.failed == 0
    assert report.archive.archived_bytes == sum(s.size for s in segs)
    assert report.deleted == []
    repo = SegmentRepository(store_engine)
    for seg in segs:
        row = repo.get(seg.id)
        assert row is not None and row.archived and row.archive_key == seg.object_key
        assert row.archive_sha256 == sha(originals[seg.id])
        assert row.restored_until is None
        assert not local.exists(seg.object_key)  # the local copy is gone
        head = s3_client.head_object(Bucket=bucket, Key=f"tier/{seg.object_key}")
        assert head["StorageClass"] == "STANDARD_IA"
        raw = s3_client.get_object(Bucket=bucket, Key=f"tier/{seg.object_key}")["Body"].read()
        assert is_encrypted(raw) and originals[seg.id][:64] not in raw  # sealed at rest
        assert archive.get(seg.object_key) == originals[seg.id]
    young = repo.get(fresh.id)
    assert young is not None and not young.archived and local.exists(fresh.object_key)
    # Local usage counts only the young segment now; the startup reconcile keeps archived rows.
    assert [u.bytes for u in repo.usage()] == [fresh.size]
    assert reconcile(local, repo, CAM).rows_deleted == 0
    assert {a["segment"] for a in audit_of(store_engine, ARCHIVE_ACTION)} == {s.id for s in segs}
    assert all(a["storage_class"] == "STANDARD_IA" for a in audit_of(store_engine, ARCHIVE_ACTION))

    again = sweeper.sweep(now=NOW)
    assert again.archive is not None and again.archive.archived == 0
    assert len(audit_of(store_engine, ARCHIVE_ACTION)) == len(segs)


def test_held_exported_and_unreadable_footage_is_not_archived(
    recorded: list[SegmentInfo], store_engine: Engine, local: LocalObjectStore,
    archive: ObjectStore, settings: ArchiveSettings, s3_client: Any, bucket: str,
    tmp_path: Path,
) -> None:  # fmt: skip
    segs = store_segments(recorded, store_engine, local, tmp_path)
    held, exported = segs[1], segs[2]
    HoldRepository(store_engine).create(
        kind="camera_range", camera_id=CAM, reason="case 7", created_by="test",
        start_at=held.start_at + timedelta(seconds=1), end_at=held.start_at + timedelta(seconds=2),
    )  # fmt: skip
    SegmentRepository(store_engine).set_exported(exported.id)

    report = sweeper_of(store_engine, local, archive, settings).sweep(now=NOW)

    assert report.archive is not None and report.archive.archived == len(segs) - 2
    repo = SegmentRepository(store_engine)
    for seg in (held, exported):
        row = repo.get(seg.id)
        assert row is not None and not row.archived and local.exists(seg.object_key)
        listed = s3_client.list_objects_v2(Bucket=bucket, Prefix=f"tier/{seg.object_key}")
        assert listed.get("KeyCount", 0) == 0


class CorruptingArchive:
    """The real archive store, but each uploaded object is then overwritten behind its back
    (a bit flipped), as rot or a faulty gateway would."""

    def __init__(self, inner: ObjectStore, s3_client: Any, bucket: str) -> None:
        self.inner, self.s3, self.bucket = inner, s3_client, bucket

    def put(self, key: str, data: bytes, content_type: str = "application/octet-stream") -> None:
        self.inner.put(key, data, content_type)
        bad = bytes([data[0] ^ 0xFF]) + data[1:]
        self.s3.put_object(Bucket=self.bucket, Key=f"tier/{key}", Body=bad)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)


def test_a_corrupted_archive_copy_keeps_the_local_copy(
    recorded: list[SegmentInfo], store_engine: Engine, local: LocalObjectStore,
    archive: ObjectStore, settings: ArchiveSettings, s3_client: Any, bucket: str,
    tmp_path: Path,
) -> None:  # fmt: skip
    segs = store_segments(recorded[:2], store_engine, local, tmp_path)
    corrupting: Any = CorruptingArchive(archive, s3_client, bucket)

    report = sweeper_of(store_engine, local, corrupting, settings).sweep(now=NOW)

    assert report.archive is not None
    assert report.archive.archived == 0
    assert report.archive.failed == report.archive.mismatched == len(segs)
    repo = SegmentRepository(store_engine)
    for seg in segs:
        row = repo.get(seg.id)
        assert row is not None and not row.archived and local.exists(seg.object_key)
    assert audit_of(store_engine, ARCHIVE_ACTION) == []
    # A healthy store on the next sweep archives them (the bad copies are replaced).
    report = sweeper_of(store_engine, local, archive, settings).sweep(now=NOW)
    assert report.archive is not None and report.archive.archived == len(segs)
    for seg in segs:
        assert not local.exists(seg.object_key)


def test_a_crash_before_the_row_is_marked_keeps_the_local_copy(
    recorded: list[SegmentInfo], store_engine: Engine, local: LocalObjectStore,
    archive: ObjectStore, settings: ArchiveSettings, monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
) -> None:  # fmt: skip
    (seg,) = store_segments(recorded[:1], store_engine, local, tmp_path)

    def crash(*_a: Any, **_k: Any) -> None:
        raise RuntimeError("database went away")

    monkeypatch.setattr(SegmentRepository, "mark_archived", crash)
    report = sweeper_of(store_engine, local, archive, settings).sweep(now=NOW)
    assert report.archive is not None and report.archive.failed == 1
    assert archive.exists(seg.object_key) and local.exists(seg.object_key)
    row = SegmentRepository(store_engine).get(seg.id)
    assert row is not None and not row.archived
    monkeypatch.undo()
    report = sweeper_of(store_engine, local, archive, settings).sweep(now=NOW)
    assert report.archive is not None and report.archive.archived == 1
    assert not local.exists(seg.object_key)


class GatedArchive:
    """The real archive store whose reads wait for ``gate``: a restore as slow as we like."""

    def __init__(self, inner: ObjectStore) -> None:
        self.inner = inner
        self.gate = threading.Event()

    def get(self, key: str) -> bytes:
        assert self.gate.wait(30), "the test never opened the gate"
        return self.inner.get(key)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)


def test_archived_footage_plays_after_a_restore_then_the_copy_expires(
    recorded: list[SegmentInfo], store_engine: Engine, local: LocalObjectStore,
    archive: ObjectStore, settings: ArchiveSettings, tmp_path: Path,
) -> None:  # fmt: skip
    segs = store_segments(recorded, store_engine, local, tmp_path)
    sweeper = sweeper_of(store_engine, local, archive, settings)
    report = sweeper.sweep(now=NOW)
    assert report.archive is not None and report.archive.archived == len(segs)
    repo = SegmentRepository(store_engine)
    gated = GatedArchive(archive)
    restorer = Restorer(repo, local, gated, settings, audit=AuditRepository(store_engine))
    services = make_services(store_engine, tmp_path, objects=local, segments=repo, archive=restorer)
    services.cameras.upsert(CAM, {"id": CAM, "source": "/videos/gate.mp4"})
    op = add_user(services.security, "op", Role.OPERATOR)
    start, end = segs[0].start_at + timedelta(seconds=1), segs[-1].end_at - timedelta(seconds=1)
    params = {"start": start.isoformat(), "end": end.isoformat()}
    url = f"/api/v1/cameras/{CAM}/clip.mp4"
    with api_client(services, headers=op.headers) as client:
        # restore_wait_s is 0 and the archive is held back: 202 with the progress.
        r = client.get(url, params=params)
        assert r.status_code == 202, r.text
        assert int(r.headers["Retry-After"]) >= 1
        progress = r.json()["restore"]
        assert progress["segments"] == len(segs) and progress["segments_ready"] == 0
        assert progress["bytes"] == sum(s.size for s in segs) and progress["progress"] == 0
        r = client.get(f"/api/v1/cameras/{CAM}/hls.m3u8", params=params)
        assert r.status_code == 202  # the same restores, not new ones
        timeline = client.get(
            f"/api/v1/cameras/{CAM}/recordings",
            params={"since": segs[0].start_at.isoformat(), "until": segs[-1].end_at.isoformat()},
        ).json()
        assert [s["archived"] for s in timeline["segments"]] == [True] * len(segs)
        gated.gate.set()
        for _ in range(200):  # the restores go on without the request that started them
            r = client.get(url, params=params)
            if r.status_code == 200:
                break
            assert r.status_code == 202
            threading.Event().wait(0.05)
        assert r.status_code == 200, r.text
        assert r.headers["content-type"] == "video/mp4"
        assert frames_of(r.content) >= 130  # ~14 s at 10 fps, decodable
        for seg in segs:
            row = repo.get(seg.id)
            assert row is not None and row.archived and row.restored_until is not None
            assert row.restored_until > datetime.now(UTC) + timedelta(seconds=3000)
            assert local.exists(seg.object_key)
        r = client.get(f"/api/v1/cameras/{CAM}/hls.m3u8", params=params)
        assert r.status_code == 200 and r.text.count(".ts") == len(segs)
        r = client.get(f"/api/v1/cameras/{CAM}/segments/{segs[1].id}.ts")
        assert r.status_code == 200 and frames_of(r.content) > 0
        storage = client.get("/api/v1/storage").json()
        assert storage["archived_segments"] == len(segs)
        assert storage["archived_bytes"] == sum(s.size for s in segs)
        assert storage["cameras"][0]["restored_bytes"] == sum(s.size for s in segs)
    restored = audit_of(store_engine, RESTORE_ACTION)
    assert sorted(a["segment"] for a in restored) == sorted(s.id for s in segs)
    assert {a["requested_by"] for a in restored} == {op.id}

    later = datetime.now(UTC) + timedelta(seconds=settings.restore_ttl_s + 60)
    report = sweeper.sweep(now=later)
    assert report.archive is not None and report.archive.restores_expired == len(segs)
    for seg in segs:
        row = repo.get(seg.id)
        assert row is not None and row.archived and row.restored_until is None
        assert not local.exists(seg.object_key)
        assert archive.exists(seg.object_key)  # never the archive copy
    assert len(audit_of(store_engine, RESTORE_EXPIRE_ACTION)) == len(segs)
    restorer.close()


def test_retention_deletes_archived_footage_from_the_archive(
    recorded: list[SegmentInfo], store_engine: Engine, local: LocalObjectStore,
    archive: ObjectStore, settings: ArchiveSettings, s3_client: Any, bucket: str,
    tmp_path: Path,
) -> None:  # fmt: skip
    segs = store_segments(recorded, store_engine, local, tmp_path)
    sweeper_of(store_engine, local, archive, settings).sweep(now=NOW)
    later = NOW + timedelta(days=30)  # 70 days old: past a 60-day retention
    report = sweeper_of(store_engine, local, archive, settings, {CAM: (60.0, 60.0)}).sweep(
        now=later
    )
    assert {d.segment_id for d in report.deleted} == {s.id for s in segs}
    assert SegmentRepository(store_engine).get(segs[0].id) is None
    assert s3_client.list_objects_v2(Bucket=bucket, Prefix="tier/").get("KeyCount", 0) == 0
    deleted = audit_of(store_engine, AUDIT_ACTION)
    assert {a["tier"] for a in deleted} == {"archive"} and len(deleted) == len(segs)


def test_settings_refuse_an_archive_in_the_objects_bucket(s3_server: str) -> None:
    store = {"kind": "s3", "bucket": "same-bucket", "endpoint_url": s3_server}
    with pytest.raises(ValueError, match="another bucket or prefix"):
        Settings(objects=store, archive={"enabled": True, "objects": store})
    Settings(objects=store, archive={"enabled": True, "objects": {**store, "prefix": "cold"}})
    with pytest.raises(ValueError, match="storage_class"):
        ArchiveSettings.model_validate({"storage_class": "DEEP_ARCHIVE"})


def test_start_creates_the_encrypted_archive_bucket(
    settings: ArchiveSettings, bucket: str, s3_client: Any, tmp_path: Path
) -> None:
    """The archive is encrypted like the objects store; `sentinel up` still makes its bucket
    (the store it checks is the one under the encryption)."""
    from sentinel import platform as runtime

    assert settings.store_settings().encryption.active("s3")
    full = Settings(data_dir=tmp_path / "data", archive=settings.model_dump())
    runtime.prepare_storage(full)
    s3_client.head_bucket(Bucket=bucket)  # raises when the bucket was not made


def test_migration_0021_downgrades_and_upgrades(db_url: str) -> None:
    engine = make_engine(db_url)
    try:
        migrate(engine)
        columns = {c["name"] for c in sa.inspect(engine).get_columns("segments")}
        assert {"archived_at", "archive_key", "archive_sha256", "restored_until"} <= columns
        with engine.connect() as conn:
            command.downgrade(alembic_config(conn), "0019")
            conn.commit()
        columns = {c["name"] for c in sa.inspect(engine).get_columns("segments")}
        assert "archived_at" not in columns and "restored_until" not in columns
        migrate(engine)
        with engine.begin() as conn:
            conn.execute(
                sa.insert(SEGMENTS).values(
                    id="s1", camera_id=CAM, start_at=OLD, end_at=OLD + timedelta(seconds=4),
                    duration_s=4.0, size=10, codec="h264", transcoded=False, object_key="k",
                    created_at=NOW, kind="event",
                )
            )  # fmt: skip
        (row,) = SegmentRepository(engine).oldest()
        assert not row.archived and row.restored_until is None
    finally:
        engine.dispose()


def test_the_retention_actor_and_the_ingress_wire_a_local_archive(
    recorded: list[SegmentInfo], db_url: str, tmp_path: Path
) -> None:
    """The actor's class without Ray: its runtime dict builds the archiver (a local archive
    under <data dir>/archive/objects), and the ingress builds the restorer only when on."""
    from sentinel.actors.retention import RetentionActor
    from sentinel.serve.ingress import restorer_of

    engine = make_engine(db_url)
    try:
        migrate(engine)
        local = LocalObjectStore(tmp_path / "objects")
        (seg,) = store_segments(recorded[:1], engine, local, tmp_path)
        runtime = {
            "db_url": db_url,
            "objects": ObjectStoreSettings(),
            "data_dir": str(tmp_path),
            "archive": ArchiveSettings(enabled=True, after_days=7),
        }
        actor = RetentionActor.__ray_metadata__.modified_class(runtime)  # type: ignore[attr-defined]
        report = actor.sweep_now()
        assert report["archive"]["archived"] == 1
        assert (tmp_path / "archive" / "objects" / seg.object_key).is_file()
        assert not local.exists(seg.object_key)
        assert actor.status()["archive"]["enabled"] is True
        assert isinstance(restorer_of(runtime, engine, local), Restorer)
        assert restorer_of({**runtime, "archive": ArchiveSettings()}, engine, local) is None
    finally:
        engine.dispose()


def test_an_export_of_archived_footage_restores_it(
    recorded: list[SegmentInfo], store_engine: Engine, local: LocalObjectStore,
    archive: ObjectStore, settings: ArchiveSettings, tmp_path: Path,
) -> None:  # fmt: skip
    from sentinel.store.export_repo import ExportRepository

    segs = store_segments(recorded, store_engine, local, tmp_path)
    sweeper_of(store_engine, local, archive, settings).sweep(now=NOW)
    repo = SegmentRepository(store_engine)
    restorer = Restorer(repo, local, archive, settings)
    services = make_services(
        store_engine, tmp_path, objects=local, segments=repo, archive=restorer,
        exports=ExportRepository(store_engine),
    )  # fmt: skip
    services.cameras.upsert(CAM, {"id": CAM, "source": "/videos/gate.mp4"})
    admin = add_user(services.security, "root", Role.ADMIN)
    body = {
        "camera_id": CAM,
        "start": (segs[1].start_at + timedelta(seconds=1)).isoformat(),
        "end": (segs[2].end_at - timedelta(seconds=1)).isoformat(),
    }
    with api_client(services, headers=admin.headers) as client:
        r = client.post("/api/v1/exports", json=body)
        assert r.status_code == 201, r.text
        assert r.json()["status"] == "ready"
        video = client.get(f"/api/v1/exports/{r.json()['id']}.mp4")
        assert video.status_code == 200 and frames_of(video.content) >= 60
    for seg in segs[1:3]:
        row = repo.get(seg.id)
        assert row is not None and row.archived and row.restored_until is not None
    restorer.close()


def test_a_lost_archive_copy_is_skipped_and_the_rest_plays(
    recorded: list[SegmentInfo], store_engine: Engine, local: LocalObjectStore,
    archive: ObjectStore, settings: ArchiveSettings, tmp_path: Path,
) -> None:  # fmt: skip
    segs = store_segments(recorded, store_engine, local, tmp_path)
    sweeper_of(store_engine, local, archive, settings).sweep(now=NOW)
    archive.delete(segs[1].object_key)  # lost (a bucket policy, an operator)
    repo = SegmentRepository(store_engine)
    restorer = Restorer(repo, local, archive, settings.model_copy(update={"restore_wait_s": 10}))
    services = make_services(store_engine, tmp_path, objects=local, segments=repo, archive=restorer)
    services.cameras.upsert(CAM, {"id": CAM, "source": "/videos/gate.mp4"})
    op = add_user(services.security, "op", Role.OPERATOR)
    params = {"start": segs[0].start_at.isoformat(), "end": segs[2].end_at.isoformat()}
    with api_client(services, headers=op.headers) as client:
        r = client.get(f"/api/v1/cameras/{CAM}/clip.mp4", params=params)
        assert r.status_code == 200, r.text
        assert int(r.headers["X-Clip-Splices"]) >= 1  # the hole is closed up
        assert 60 <= frames_of(r.content) <= 90  # two of three segments, at 10 fps
        r = client.get(f"/api/v1/cameras/{CAM}/segments/{segs[1].id}.ts")
        assert r.status_code == 404
    assert not local.exists(segs[1].object_key)
    restorer.close()
