"""Face prints end to end on SQLite and PostgreSQL: snapshots of real photos are scanned into
sealed prints, searched by photo through the API, and leave with their events."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import sqlalchemy as sa
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from PIL import Image
from sqlalchemy.engine import Engine
from sqlmodel import SQLModel

from sentinel.api.deps import Services
from sentinel.domain.types import Box, EventState
from sentinel.gateway.roles import Role
from sentinel.models.faces import FaceAnalyzer
from sentinel.retention.face_index import FaceScanLoop, decode_photo
from sentinel.store.audit_repo import AuditRepository
from sentinel.store.db import alembic_config, make_engine, migrate
from sentinel.store.face_repo import FaceRepository
from sentinel.store.face_tables import FACE_PRINTS, FACE_SCANS
from sentinel.store.objects import LocalObjectStore, snapshot_key
from sentinel.store.repo import EventRepository
from tests.utils.api import api_client
from tests.utils.auth import AuthedUser, add_user
from tests.utils.faces import (
    LENA,
    MESSI,
    NO_FACE,
    SAME_A,
    SAME_B,
    TWO_FACES,
    photo,
    sealed_face_index,
)
from tests.utils.services import make_services

URL = "/api/v1/privacy/faces/search"
START = datetime(2026, 6, 1, 12, 0, tzinfo=UTC)
# event id -> (camera, photo on its snapshot)
EVENTS = {
    "ev-woman": ("gate", SAME_A),
    "ev-fruit": ("gate", NO_FACE),
    "ev-pair": ("dock", TWO_FACES),  # Lena, twice
}


@pytest.fixture(scope="module")
def analyzer() -> FaceAnalyzer:
    return FaceAnalyzer()


def add_event(engine: Engine, objects: LocalObjectStore, event_id: str, i: int) -> None:
    camera, path = EVENTS[event_id]
    with Image.open(path) as image:
        width, height = image.size
    key = snapshot_key(camera, event_id)
    objects.put(key, photo(path), "image/jpeg")
    start = START + timedelta(minutes=i)
    EventRepository(engine).upsert(
        EventState(
            id=event_id,
            camera_id=camera,
            label="person",
            track_id=i,
            started_at=start,
            last_seen_at=start + timedelta(seconds=20),
            score=0.9,
            box=Box(0, 0, width - 1, height - 1),
            best_at=start,
            ended_at=start + timedelta(seconds=20),
        ),
        key,
    )


@pytest.fixture
def faces(store_engine: Engine, tmp_path: Path, analyzer: FaceAnalyzer) -> Services:
    objects = LocalObjectStore(tmp_path / "objects")
    for i, event_id in enumerate(EVENTS):
        add_event(store_engine, objects, event_id, i)
    index = sealed_face_index(store_engine, objects, analyzer)
    return make_services(store_engine, tmp_path, objects=objects, faces=index)


def _h(user: AuthedUser) -> dict[str, str]:
    return {"Authorization": f"Bearer {user.token}"}


def test_scanned_snapshots_are_found_by_a_photo_of_the_same_person(
    faces: Services, store_engine: Engine
) -> None:
    index = faces.faces
    assert index is not None
    loop = FaceScanLoop(index)
    report = loop.scan_now()
    assert report == {
        "scanned": 3,
        "faces": 3,
        "failed": 0,
        "skipped_blurring": 0,
        "ms_per_event": report["ms_per_event"],
    }
    assert loop.scan_now()["scanned"] == 0  # each snapshot is scanned once
    repo = FaceRepository(store_engine)
    assert [repo.count(e) for e in EVENTS] == [1, 0, 2]
    assert [repo.scanned(e) for e in EVENTS] == [1, 0, 2]

    # The rows hold no plain embedding: the stored bytes are ciphertexts, and none contains
    # the embedding of its photo (as float32 or float64) nor is it 128 floats long.
    woman = index.analyzer.analyze(decode_photo(photo(SAME_A), 1600))[0].embedding
    with store_engine.connect() as conn:
        rows = conn.execute(sa.select(FACE_PRINTS)).mappings().all()
    assert {c.name for c in FACE_PRINTS.columns} == {
        "id", "event_id", "camera_id", "bucket", "nonce", "sealed", "key_version", "created_at"
    }  # fmt: skip
    for row in rows:
        sealed = bytes(row["sealed"])
        assert len(sealed) == 128 * 4 + 16 and len(bytes(row["nonce"])) == 12
        assert woman.astype("<f4").tobytes()[:16] not in sealed
        assert woman.astype("<f8").tobytes()[:16] not in sealed
        assert len(row["bucket"]) == 32 and row["key_version"] == 1

    admin = add_user(faces.security, "admin", Role.ADMIN)
    docker = add_user(faces.security, "docker", Role.ADMIN, cameras=["dock"])
    operator = add_user(faces.security, "op", Role.OPERATOR)
    with api_client(faces) as client:
        # Another photo of the woman finds her event, and only hers.
        r = client.post(
            URL, content=photo(SAME_B), headers={**_h(admin), "Content-Type": "image/jpeg"}
        )
        assert r.status_code == 200, r.text
        body = r.json()
        assert [m["event_id"] for m in body["matches"]] == ["ev-woman"]
        match = body["matches"][0]
        assert match["camera_id"] == "gate" and 0 < match["distance"] < 0.6
        assert body["candidates"] >= 1 and body["buckets"] == 93
        # The same as a multipart upload.
        r = client.post(
            URL, files={"photo": ("b.jpg", photo(SAME_B), "image/jpeg")}, headers=_h(admin)
        )
        assert [m["event_id"] for m in r.json()["matches"]] == ["ev-woman"]
        # Another photo of Lena finds the snapshot where she is twice, once.
        r = client.post(URL, content=photo(LENA), headers=_h(admin))
        assert [m["event_id"] for m in r.json()["matches"]] == ["ev-pair"]
        # Someone never seen: nothing.
        r = client.post(URL, content=photo(MESSI), headers=_h(admin))
        assert r.status_code == 200 and r.json()["matches"] == []
        # Camera limits: an admin of the dock only does not find the gate's events.
        r = client.post(URL, content=photo(SAME_B), headers=_h(docker))
        assert r.status_code == 200 and r.json()["matches"] == []
        r = client.post(URL, content=photo(LENA), headers=_h(docker))
        assert [m["event_id"] for m in r.json()["matches"]] == ["ev-pair"]
        assert client.post(URL, content=photo(SAME_B), headers=_h(operator)).status_code == 403
        # Bad photos: 422 with the reason.
        for data, reason in (
            (photo(NO_FACE), "no face found"),
            (photo(TWO_FACES), "2 faces found"),
            (b"not an image at all", "not an image"),
            (b"", "no photo"),
        ):
            r = client.post(URL, content=data, headers=_h(admin))
            assert r.status_code == 422 and reason in r.text, (reason, r.text)
        r = client.post(URL, files={"file": ("b.jpg", b"x", "image/jpeg")}, headers=_h(admin))
        assert r.status_code == 422 and "'photo'" in r.text
    searches = [
        e for e in AuditRepository(store_engine).iter_all() if e.action == f"POST {URL[7:]}"
    ]
    done = [e for e in searches if e.outcome == "success"]
    assert len(done) == 6 and done[0].actor == admin.id
    assert done[0].detail["event_ids"] == ["ev-woman"] and done[0].detail["matches"] == 1
    assert any(e.detail.get("reason", "").startswith("no face") for e in searches)
    assert any(e.outcome == "denied:403" for e in searches)

    # The retention sweep deletes events; their face prints and scans go with them.
    deleted = EventRepository(store_engine).expire("gate", START + timedelta(days=1))
    assert {d for d, _ in deleted} == {"ev-woman", "ev-fruit"}
    with store_engine.connect() as conn:
        left = {r.event_id for r in conn.execute(sa.select(FACE_PRINTS.c.event_id))}
        scans = {r.event_id for r in conn.execute(sa.select(FACE_SCANS.c.event_id))}
    assert left == scans == {"ev-pair"}
    with api_client(faces) as client:
        r = client.post(URL, content=photo(SAME_B), headers=_h(admin))
        assert r.status_code == 200 and r.json()["matches"] == []


def test_a_snapshot_gone_or_unreadable_is_marked_and_the_rest_go_on(
    faces: Services, store_engine: Engine
) -> None:
    index = faces.faces
    assert index is not None and index.objects is not None
    index.objects.delete(snapshot_key("gate", "ev-woman"))
    index.objects.put(snapshot_key("gate", "ev-fruit"), b"garbage", "image/jpeg")
    report = index.scan()
    assert (report.scanned, report.failed) == (3, 1)
    repo = FaceRepository(store_engine)
    assert [repo.scanned(e) for e in EVENTS] == [0, 0, 2]
    with store_engine.connect() as conn:
        error = conn.execute(
            sa.select(FACE_SCANS.c.error).where(FACE_SCANS.c.event_id == "ev-fruit")
        ).scalar_one()
    assert "not an image" in error
    assert repo.record_scan("ev-woman", "gate", []) is False  # scanned already
    assert repo.record_scan("no-such-event", "gate", []) is False


def test_search_is_404_when_faces_are_off_and_413_past_the_limit(
    store_engine: Engine, tmp_path: Path, faces: Services
) -> None:
    off = make_services(store_engine, tmp_path)
    admin = add_user(off.security, "admin", Role.ADMIN)
    with api_client(off) as client:
        r = client.post(URL, content=photo(SAME_B), headers=_h(admin))
        assert r.status_code == 404 and "faces.enabled" in r.text
    assert faces.faces is not None
    limit = faces.faces.settings.max_upload_bytes
    big = add_user(faces.security, "big", Role.ADMIN)
    with api_client(faces) as client:
        r = client.post(URL, content=b"\xff" * (limit + 1), headers=_h(big))
        assert r.status_code == 413


def test_migration_0020_matches_the_model_and_downgrades(db_url: str) -> None:
    engine = make_engine(db_url)
    try:
        migrate(engine)
        with engine.connect() as conn:
            ours = {
                "include_object": lambda _o, name, kind, *_: (
                    kind != "table" or name in ("face_prints", "face_scans")
                )
            }
            diffs = compare_metadata(MigrationContext.configure(conn, opts=ours), SQLModel.metadata)
        assert diffs == []
        with engine.connect() as conn:
            command.downgrade(alembic_config(conn), "0019")
            conn.commit()
        assert not sa.inspect(engine).has_table("face_prints")
        assert not sa.inspect(engine).has_table("face_scans")
        assert sa.inspect(engine).has_table("legal_holds")
    finally:
        engine.dispose()
