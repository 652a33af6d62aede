"""Exports over real recorded segments (SQLite and PostgreSQL, a local object store).

The segments are those of tests/integration/test_segments.py: five 4 s H.264 segments of
``front_door`` covering BASE to BASE + 20 s, finalized into the store and the database exactly
as the recorder does (the ``records`` fixture of tests/integration/test_recordings_api.py).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from fastapi.testclient import TestClient
from sqlalchemy.engine import Engine
from sqlmodel import SQLModel

from sentinel.api.deps import Services
from sentinel.gateway.roles import Role
from sentinel.store.db import alembic_config, make_engine, migrate
from sentinel.store.export_repo import ExportRepository, export_key
from sentinel.store.segment_repo import SegmentRecord, SegmentRepository
from tests.integration import test_recordings_api as rec
from tests.integration import test_segments as seg
from tests.utils.auth import add_user
from tests.utils.services import make_services

CAM = seg.CAM
at = seg.at
iso = rec.iso
decode = rec.decode
recorded = seg.recorded  # the module-scoped fixture: five real 4 s segments
records = rec.records  # finalized into this module's `services`
client_headers = rec.client_headers  # the shared `client`, signed in as `admin`

EXPORTS = "/api/v1/exports"


@pytest.fixture
def services(store_engine: Engine, tmp_path: Path) -> Services:
    return make_services(
        store_engine,
        tmp_path,
        segments=SegmentRepository(store_engine),
        exports=ExportRepository(store_engine),
    )


def _body(start: float, end: float, camera: str = CAM, name: str = "door 5-11") -> dict[str, Any]:
    return {"camera_id": camera, "start": iso(start), "end": iso(end), "name": name}


def test_export_lifecycle(
    client: TestClient, services: Services, records: list[SegmentRecord]
) -> None:
    r = client.post(EXPORTS, json=_body(5, 11))
    assert r.status_code == 201, r.text
    exp = r.json()
    assert (exp["camera_id"], exp["name"], exp["status"], exp["error"]) == (
        CAM,
        "door 5-11",
        "ready",
        None,
    )
    assert exp["created_by"]  # the admin's subject
    assert at(1) <= rec._parse(exp["start_at"]) <= at(5)
    assert rec._parse(exp["end_at"]) >= at(11)
    key = export_key(CAM, exp["id"])
    assert key.startswith(f"exports/{CAM}/") and services.objects.exists(key)
    assert services.objects.size(key) == exp["size"] > 0

    video = f"{EXPORTS}/{exp['id']}.mp4"
    r = client.get(video)
    assert r.status_code == 200, r.text
    assert r.headers["content-type"] == "video/mp4" and r.headers["accept-ranges"] == "bytes"
    full = r.content
    assert len(full) == exp["size"]
    frames = decode(full)
    assert frames[0][0] and frames[0][1] == pytest.approx(0.0, abs=1e-3)
    assert 6.0 <= frames[-1][1] + 0.1 <= 6.0 + 4.0  # 10 fps, within one segment of 6 s
    r = client.get(video, headers={"Range": "bytes=0-99"})
    assert r.status_code == 206 and r.content == full[:100]
    assert r.headers["content-range"] == f"bytes 0-99/{len(full)}"
    assert client.get(video, headers={"Range": "bytes=999999999-"}).status_code == 416

    # A second export, newer: the list is newest first.
    r = client.post(EXPORTS, json={k: v for k, v in _body(12, 14).items() if k != "name"})
    assert r.status_code == 201, r.text
    second = r.json()
    assert second["name"].startswith(CAM)
    listed = client.get(EXPORTS).json()
    assert [e["id"] for e in listed] == [second["id"], exp["id"]]
    assert [e["id"] for e in client.get(EXPORTS, params={"limit": 1}).json()] == [second["id"]]
    assert client.get(EXPORTS, params={"camera_id": "yard"}).json() == []
    assert client.get(f"{EXPORTS}/{exp['id']}").json() == exp

    # The source segments going away (retention) leaves the export whole.
    assert services.segments is not None
    for record in records[1:3]:
        services.objects.delete(record.object_key)
        assert services.segments.delete(record.id)
    assert client.get(rec.CLIP, params={"start": iso(5), "end": iso(7)}).status_code == 404
    r = client.get(video)
    assert r.status_code == 200 and r.content == full

    r = client.delete(f"{EXPORTS}/{exp['id']}")
    assert r.status_code == 204, r.text
    assert not services.objects.exists(key)
    assert client.get(f"{EXPORTS}/{exp['id']}").status_code == 404
    assert client.get(video).status_code == 404
    assert client.delete(f"{EXPORTS}/{exp['id']}").status_code == 404
    assert [e["id"] for e in client.get(EXPORTS).json()] == [second["id"]]


@pytest.mark.parametrize(
    ("start", "end", "status"),
    [(30.0, 40.0, 404), (10.0, 10.0, 400), (10.0, 5.0, 400), (0.0, 3601.0, 400)],
    ids=["no-footage", "empty", "reversed", "over-1-h"],
)
def test_export_refuses(
    client: TestClient,
    services: Services,
    records: list[SegmentRecord],
    start: float,
    end: float,
    status: int,
) -> None:
    r = client.post(EXPORTS, json=_body(start, end))
    assert r.status_code == status, r.text
    if status == 404:
        assert r.json()["detail"] == "no footage"
    assert client.get(EXPORTS).json() == []
    assert list(services.objects.iter_keys("exports/")) == []


def test_hidden_camera_is_404(
    client: TestClient, services: Services, records: list[SegmentRecord]
) -> None:
    exp = client.post(EXPORTS, json=_body(5, 11)).json()
    yard = add_user(services.security, "yard-op", Role.OPERATOR, ["yard"])
    h = yard.headers
    r = client.post(EXPORTS, json=_body(5, 11), headers=h)
    assert r.status_code == 404 and CAM not in r.text
    assert client.get(EXPORTS, headers=h).json() == []
    assert client.get(EXPORTS, params={"camera_id": CAM}, headers=h).status_code == 404
    for url in (f"{EXPORTS}/{exp['id']}", f"{EXPORTS}/{exp['id']}.mp4"):
        r = client.get(url, headers=h)
        assert r.status_code == 404 and CAM not in r.text, url
    assert client.delete(f"{EXPORTS}/{exp['id']}", headers=h).status_code == 404
    assert services.objects.exists(export_key(CAM, exp["id"]))
    # A viewer of the camera reads the export but may neither create nor delete one.
    viewer = add_user(services.security, "door", Role.VIEWER, [CAM])
    assert [e["id"] for e in client.get(EXPORTS, headers=viewer.headers).json()] == [exp["id"]]
    assert client.get(f"{EXPORTS}/{exp['id']}.mp4", headers=viewer.headers).status_code == 200
    assert client.post(EXPORTS, json=_body(5, 11), headers=viewer.headers).status_code == 403
    assert client.delete(f"{EXPORTS}/{exp['id']}", headers=viewer.headers).status_code == 403


def test_failed_export_is_kept_as_failed(
    client: TestClient,
    services: Services,
    records: list[SegmentRecord],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    def broken(*_: object, **__: object) -> None:
        raise OSError("disk full")

    monkeypatch.setattr(services.objects, "put", broken)
    r = client.post(EXPORTS, json=_body(5, 11))
    assert r.status_code == 500
    (failed,) = client.get(EXPORTS).json()
    assert failed["status"] == "failed" and "disk full" in failed["error"]
    assert failed["size"] == 0
    assert client.get(f"{EXPORTS}/{failed['id']}.mp4").status_code == 409
    assert client.delete(f"{EXPORTS}/{failed['id']}").status_code == 204
    assert client.get(EXPORTS).json() == []


def test_not_enabled(client: TestClient, services: Services) -> None:
    services.exports = None
    assert client.get(EXPORTS).json()["detail"] == "exports are not enabled"
    assert client.post(EXPORTS, json=_body(5, 11)).status_code == 404
    assert client.get(f"{EXPORTS}/x.mp4").status_code == 404


def test_repository_orders_and_filters(store_engine: Engine) -> None:
    clock = iter(at(100 + i) for i in range(10))
    repo = ExportRepository(store_engine, clock=lambda: next(clock))
    a = repo.add("a" * 8, CAM, "a", at(0), at(6), size=10, created_by="u1")
    b = repo.add("b" * 8, "yard", "b", at(0), at(6), size=1 << 40, created_by="u1")
    assert (
        b.size == 1 << 40
        and b.created_at == at(101)
        and b.object_key == "exports/yard/bbbbbbbb.mp4"
    )
    assert [e.id for e in repo.list()] == [b.id, a.id]
    assert [e.id for e in repo.list(cameras={CAM})] == [a.id]
    assert repo.list(cameras=set()) == []
    assert [e.id for e in repo.list(camera_id="yard")] == [b.id]
    assert repo.get(a.id) == a and repo.get("nope") is None
    with pytest.raises(ValueError, match="status"):
        repo.add("c" * 8, CAM, "c", at(0), at(6), size=0, created_by="u", status="odd")
    with pytest.raises(ValueError, match="before"):
        repo.add("c" * 8, CAM, "c", at(6), at(0), size=0, created_by="u")
    with pytest.raises(ValueError, match="camera_id"):
        repo.add("c" * 8, "../x", "c", at(0), at(6), size=0, created_by="u")
    with pytest.raises(sa.exc.IntegrityError):  # the id (and object key) is unique
        repo.add(a.id, CAM, "again", at(0), at(6), size=0, created_by="u")
    assert repo.delete(a.id) and not repo.delete(a.id)


def test_migration_0005_matches_the_model_and_downgrades(db_url: str) -> None:
    engine = make_engine(db_url)
    try:
        with engine.connect() as conn:
            command.upgrade(alembic_config(conn), "0004")
            conn.commit()
        assert not sa.inspect(engine).has_table("exports")
        migrate(engine)
        with engine.connect() as conn:
            ours = {
                "include_object": lambda _o, name, kind, *_: kind != "table" or name == "exports"
            }
            diffs = compare_metadata(MigrationContext.configure(conn, opts=ours), SQLModel.metadata)
        assert diffs == []
        with engine.connect() as conn:
            command.downgrade(alembic_config(conn), "0004")
            conn.commit()
        assert not sa.inspect(engine).has_table("exports")
        assert sa.inspect(engine).has_table("segments")
    finally:
        engine.dispose()


def test_export_key_is_outside_the_recordings() -> None:
    assert export_key("front_door", "x1") == "exports/front_door/x1.mp4"
    with pytest.raises(ValueError):
        export_key("front_door", "..")
