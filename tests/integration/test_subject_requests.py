"""GDPR subject requests end to end, on SQLite and PostgreSQL (issue 16).

A subject (a woman, two photos of her) is seeded into every store: events with snapshots of
her face (scanned into sealed face prints), their incidents and alerts, recorded segments (one
archived), search-index entries, an annotation item built from one of her frames in a dataset
version a training run used, and that run's MLflow artifact. A bystander (Messi) shares an
incident with her. Erasure by her other photo must empty every store of her and keep the
bystander; after it the same photo finds nothing. Holds keep what they cover (reported,
request partial); a failing store leaves the request failed and resumable; access builds a zip.
"""

from __future__ import annotations

import dataclasses
import io
import json
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from PIL import Image
from sqlalchemy.engine import Engine

from sentinel.api.deps import SearchServices, Services, TrainingServices
from sentinel.config import ArchiveSettings, TrainSettings
from sentinel.domain.alerts import AlertDecision, DecidedBy, Severity
from sentinel.domain.annotation import LabeledBox
from sentinel.domain.incidents import Incident
from sentinel.domain.types import Box, EventState
from sentinel.gateway.roles import Role
from sentinel.models.embedder import TextEmbedder
from sentinel.models.faces import FaceAnalyzer
from sentinel.retention.archive import Restorer
from sentinel.retention.face_index import FaceScanLoop
from sentinel.search.index import VectorIndex
from sentinel.search.service import SearchService
from sentinel.store.alert_repo import AlertRepository
from sentinel.store.annotation_tables import ANNOTATION_ITEMS
from sentinel.store.audit_repo import AuditRepository
from sentinel.store.dataset_repo import DatasetRepo
from sentinel.store.export_repo import ExportRepository, export_key
from sentinel.store.hold_repo import HoldRepository
from sentinel.store.incident_repo import IncidentRepository
from sentinel.store.objects import LocalObjectStore, snapshot_key
from sentinel.store.repo import CameraRepository, EventRepository
from sentinel.store.search_queue_repo import SearchQueue
from sentinel.store.segment_repo import SegmentInfo, SegmentRepository
from sentinel.store.training_repo import TrainingRunRepository
from sentinel.train.dataset_store import build_dataset, read_dataset
from sentinel.train.erasure import MlflowArtifacts
from sentinel.train.tracking import Tracker
from tests.utils.annotation import candidate
from tests.utils.api import api_client
from tests.utils.auth import AuthedUser, add_user
from tests.utils.faces import MESSI, NO_FACE, SAME_A, SAME_B, TWO_FACES, photo, sealed_face_index
from tests.utils.services import RecordingLauncher, make_services

URL = "/api/v1/privacy/requests"
T0 = datetime(2026, 6, 1, 12, 0, tzinfo=UTC)
# event id -> (camera, photo, start s, end s)
EVENTS = {
    "ev-w1": ("gate", SAME_A, 0, 20),
    "ev-m": ("gate", MESSI, 5, 30),
    "ev-w2": ("dock", SAME_A, 60, 80),
}
SUBJECT = ("ev-w1", "ev-w2")


def at(seconds: float) -> datetime:
    return T0 + timedelta(seconds=seconds)


@pytest.fixture(scope="module")
def analyzer() -> FaceAnalyzer:
    return FaceAnalyzer()


@pytest.fixture(scope="module")
def embedder() -> TextEmbedder:
    return TextEmbedder(threads=1)


@dataclass
class World:
    services: Services
    engine: Engine
    objects: LocalObjectStore
    archive: LocalObjectStore
    restorer: Restorer
    index: VectorIndex
    mlflow: MlflowArtifacts
    mlflow_run: str
    items: dict[str, str]  # "subject" / "bystander" -> annotation item id
    segments: dict[str, str]  # name -> segment id
    admin: AuthedUser

    def h(self, user: AuthedUser | None = None) -> dict[str, str]:
        return {"Authorization": f"Bearer {(user or self.admin).token}"}


def _add_event(engine: Engine, objects: LocalObjectStore, event_id: str, i: int) -> None:
    camera, path, start, end = EVENTS[event_id]
    with Image.open(path) as image:
        width, height = image.size
    key = snapshot_key(camera, event_id)
    objects.put(key, photo(path), "image/jpeg")
    EventRepository(engine).upsert(
        EventState(
            id=event_id,
            camera_id=camera,
            label="person",
            track_id=i,
            started_at=at(start),
            last_seen_at=at(end),
            score=0.9,
            box=Box(0, 0, width - 1, height - 1),
            best_at=at(start),
            ended_at=at(end),
        ),
        key,
    )


def _segment(
    engine: Engine, objects: LocalObjectStore, camera: str, start: float, end: float
) -> str:
    key = f"recordings/{camera}/{int(start)}.mp4"
    data = f"mp4 of {camera} {start}..{end}".encode()
    objects.put(key, data, "video/mp4")
    info = SegmentInfo(Path(key), 0.0, end - start, at(start), at(end), len(data), "h264", False, 1)
    return SegmentRepository(engine).add(camera, info, key, "continuous").id


def _decision(summary: str) -> AlertDecision:
    return AlertDecision(True, Severity.HIGH, summary, ("person",), "look", DecidedBy.RULES)


@pytest.fixture
def world(
    store_engine: Engine, tmp_path: Path, analyzer: FaceAnalyzer, embedder: TextEmbedder
) -> Iterator[World]:
    engine = store_engine
    objects = LocalObjectStore(tmp_path / "objects")
    archive = LocalObjectStore(tmp_path / "archive")
    cameras = CameraRepository(engine)
    cameras.upsert("gate", {"name": "Front gate"})
    cameras.upsert("dock", {"name": "Loading dock"})
    for i, event_id in enumerate(EVENTS):
        _add_event(engine, objects, event_id, i)
    faces = sealed_face_index(engine, objects, analyzer)
    assert FaceScanLoop(faces).scan_now()["faces"] == 3

    incidents = IncidentRepository(engine)
    incidents.upsert(
        Incident("inc-gate", "gate", at(0), at(30), at(30), ("ev-w1", "ev-m"), ("person",)),
        {"ev-w1": "person", "ev-m": "person"},
    )
    incidents.upsert(
        Incident("inc-dock", "dock", at(60), at(80), at(80), ("ev-w2",), ("person",)),
        {"ev-w2": "person"},
    )
    alerts = AlertRepository(engine)
    alerts.record_rule_decision("ev-w1", "gate", "person", _decision("a woman at the gate"))
    alerts.record_rule_decision("ev-m", "gate", "person", _decision("a man at the gate"))
    alerts.record_rule_decision(
        "ev-w2", "dock", "person", _decision("a woman at the dock"), incident_id="inc-dock"
    )

    # Recordings: the gate's first segment local, its second archived; the dock's local.
    segments = {
        "gate-local": _segment(engine, objects, "gate", -10, 10),
        "gate-archived": _segment(engine, objects, "gate", 10, 40),
        "dock": _segment(engine, objects, "dock", 50, 90),
        "gate-later": _segment(engine, objects, "gate", 200, 260),  # nobody there
    }
    repo = SegmentRepository(engine)
    rec = repo.get(segments["gate-archived"])
    assert rec is not None
    archive.put(f"tier/{rec.object_key}", objects.get(rec.object_key))
    repo.mark_archived(rec.id, f"tier/{rec.object_key}", "0" * 64, at(1000))
    objects.delete(rec.object_key)
    repo.clear_restored(rec.id)

    # Exports: a clip of her at the gate, and one of the gate later (nobody).
    exports = ExportRepository(engine)
    for export_id, start, end in (("exp-her", 5, 15), ("exp-later", 200, 230)):
        data = f"export {export_id}".encode()
        objects.put(export_key("gate", export_id), data, "video/mp4")
        exports.add(
            export_id, "gate", export_id, at(start), at(end), size=len(data), created_by="op"
        )

    # Search: the events and incidents indexed with real embeddings.
    index = VectorIndex(tmp_path / "search")
    service = SearchService(
        index,
        embedder.embed,
        events=EventRepository(engine),
        incidents=incidents,
        cameras=cameras,
        queue=SearchQueue(engine),
        alerts=alerts,
        objects=objects,
    )
    service.backfill()
    assert index.get("ev-w1") is not None and index.get("inc-dock") is not None

    services = make_services(
        engine,
        tmp_path,
        objects=objects,
        faces=faces,
        search=SearchServices(service),
        training=None,
    )
    admin = add_user(services.security, "root", Role.ADMIN)

    # Annotation: a frame of hers (inside ev-w1) and a later empty gate frame, accepted,
    # built into dataset "people" v1, which a training run used (locked) and logged to MLflow.
    ann = services.annotation
    assert ann is not None
    items = {}
    for name, n, ts in (("subject", 1, at(10)), ("bystander", 2, at(300))):
        cand = dataclasses.replace(candidate(n, camera="gate"), frame_ts=ts)
        [item] = ann.repo.enqueue([cand])
        ann.repo.submit(item, [LabeledBox("person", 1, 1, 20, 20)], version=0, annotator=admin.id)
        ann.repo.review(item, decision="accept", reviewer=admin.id)
        items[name] = item
    built = build_dataset(
        "people",
        annotations=ann.repo,
        datasets=ann.datasets,
        objects=objects,
        labels=ann.labels,
        created_by=admin.id,
    )
    assert built.version.version == 1 and built.version.items == 2
    uri = f"sqlite:///{tmp_path / 'mlflow' / 'mlflow.db'}"
    tracker = Tracker(uri, tmp_path / "mlflow" / "artifacts")
    mlflow_run = tracker.start("people-run", {"dataset": "people"}, {})
    weights = tmp_path / "model.onnx"
    weights.write_bytes(b"weights learnt from her frames")
    tracker.artifact(mlflow_run, weights, "weights")
    runs = TrainingRunRepository(engine)
    run = runs.create("people", epochs=1, params={}, created_by=admin.id, dataset_version=1)
    runs.set_status(run.id, "training", mlflow_run_id=mlflow_run)
    DatasetRepo(engine).lock("people", 1, run.id)
    mlflow = MlflowArtifacts(uri)
    assert mlflow.paths(mlflow_run) == ["weights/model.onnx"]
    services.training = TrainingServices(runs, RecordingLauncher(), TrainSettings(), mlflow_uri=uri)
    restorer = Restorer(repo, objects, archive, ArchiveSettings(enabled=True))
    services.archive = restorer
    yield World(
        services, engine, objects, archive, restorer, index, mlflow, mlflow_run, items,
        segments, admin,
    )  # fmt: skip
    restorer.close()


def _photo_request(kind: str, path: Path) -> dict[str, Any]:
    return {
        "files": {"photo": ("subject.jpg", photo(path), "image/jpeg")},
        "data": {"request": json.dumps({"kind": kind})},
    }


def _steps(body: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {s["store"]: s for s in body["steps"]}


def _event_ids(engine: Engine) -> set[str]:
    return {e.id for e in EventRepository(engine).list(limit=100).items}


def test_erasure_by_photo_empties_every_store_and_the_photo_then_finds_nothing(
    world: World,
) -> None:
    engine, objects = world.engine, world.objects
    with api_client(world.services) as client:
        r = client.post(URL, headers=world.h(), **_photo_request("erasure", SAME_B))
        assert r.status_code == 201, r.text
        body = r.json()
        assert body["status"] == "done", body["report"]
        assert body["subject"]["by"] == "face"
        assert sorted(body["subject"]["event_ids"]) == sorted(SUBJECT)
        steps = _steps(body)
        assert all(s["status"] == "done" for s in steps.values()), body["report"]
        assert steps["search_index"]["counts"]["deleted"] == 3  # 2 events + inc-dock
        assert steps["face_prints"]["counts"]["deleted"] == 2
        assert steps["snapshots"]["counts"]["deleted"] == 2
        assert steps["clips"]["counts"] == {
            "segments": 3, "local_objects": 2, "archive_objects": 1, "held": 0
        }  # fmt: skip
        assert steps["exports"]["ids"] == ["exp-her"]
        assert steps["annotations"]["counts"]["items"] == 1
        assert steps["datasets"]["ids"] == ["people/v1 -> v2"]
        assert steps["mlflow"]["counts"]["files"] == 1
        db = steps["database"]["counts"]
        assert (db["events"], db["alerts"], db["incidents_deleted"], db["incidents_changed"]) == (
            2, 2, 1, 1,
        )  # fmt: skip

        # Database rows: hers gone, the bystander's kept, the shared incident without her.
        assert _event_ids(engine) == {"ev-m"}
        incidents = IncidentRepository(engine)
        assert incidents.get("inc-dock") is None
        gate = incidents.get("inc-gate")
        assert gate is not None and gate.members == ("ev-m",)
        assert incidents.of_event("ev-w1") == []
        alerts = AlertRepository(engine)
        assert alerts.by_event("ev-w1") is None and alerts.by_incident("inc-dock") is None
        assert alerts.by_event("ev-m") is not None
        # Snapshots.
        assert not objects.exists(snapshot_key("gate", "ev-w1"))
        assert not objects.exists(snapshot_key("dock", "ev-w2"))
        assert objects.exists(snapshot_key("gate", "ev-m"))
        # Clips: the covering segments, local and archived; the later one stays.
        segments = SegmentRepository(engine)
        for name in ("gate-local", "gate-archived", "dock"):
            assert segments.get(world.segments[name]) is None
        assert not any(k.startswith("tier/") for k, _ in world.archive.iter_keys())
        assert segments.get(world.segments["gate-later"]) is not None
        # Exports: the clip of her gone (row and object), the later one kept.
        exports = ExportRepository(engine)
        assert exports.get("exp-her") is None and not objects.exists(export_key("gate", "exp-her"))
        assert exports.get("exp-later") is not None
        # Search index.
        for item_id in ("ev-w1", "ev-w2", "inc-dock"):
            assert world.index.get(item_id) is None
        assert world.index.get("ev-m") is not None
        # Face prints: only the bystander's.
        with engine.connect() as conn:
            prints = conn.execute(sa.text("SELECT event_id FROM face_prints")).scalars().all()
        assert prints == ["ev-m"]
        # Annotation: her frame gone (row and JPEG), the other frame kept.
        with engine.connect() as conn:
            items = set(conn.execute(sa.select(ANNOTATION_ITEMS.c.id)).scalars())
        assert items == {world.items["bystander"]}
        # Datasets: v1 erased with its files; v2 holds only the other frame.
        datasets = DatasetRepo(engine)
        v1, v2 = datasets.get("people", 1), datasets.get("people", 2)
        assert v1 is not None and v1.status == "erased" and v1.locked_by  # history kept
        assert not list(objects.iter_keys("datasets/people/v1/"))
        assert v2 is not None and v2.status == "ready" and v2.created_by == "erasure of v1"
        assert [i.id for i in read_dataset(objects, v2).items] == [world.items["bystander"]]
        # MLflow: the run's artifacts are gone.
        assert world.mlflow.paths(world.mlflow_run) == []

        # Every step is audited.
        actions = {a.action for a in AuditRepository(engine).list(limit=200)[0]}
        for store in (*steps, "resolve", "finish"):
            assert f"privacy.erasure.{store}" in actions
        assert "POST /privacy/requests" in actions  # the HTTP call (AuditMutations)

        # Re-identify with the same photo: nothing.
        r = client.post(
            "/api/v1/privacy/faces/search",
            content=photo(SAME_B),
            headers={**world.h(), "Content-Type": "image/jpeg"},
        )
        assert r.status_code == 200 and r.json()["matches"] == []
        r = client.post(URL, headers=world.h(), **_photo_request("access", SAME_A))
        assert r.status_code == 201 and r.json()["subject"]["event_ids"] == []

        # Listed and readable.
        r = client.get(URL, headers=world.h())
        assert [x["id"] for x in r.json()["items"]][1] == body["id"]
        r = client.get(f"{URL}/{body['id']}", headers=world.h())
        assert r.json()["status"] == "done" and r.json()["report"].startswith("erasure done.")


def test_a_hold_keeps_what_it_covers_reports_it_and_the_request_ends_partial(
    world: World,
) -> None:
    engine = world.engine
    hold = HoldRepository(engine).create(
        kind="camera_range", camera_id="dock", reason="case 42", created_by="legal",
        start_at=at(50), end_at=at(100),
    )  # fmt: skip
    with api_client(world.services) as client:
        r = client.post(
            URL, json={"kind": "erasure", "event_ids": list(SUBJECT)}, headers=world.h()
        )
        assert r.status_code == 201, r.text
        body = r.json()
        assert body["status"] == "partial"
        steps = _steps(body)
        held = {store: s["held"] for store, s in steps.items() if s["held"]}
        assert held["snapshots"] == [{"id": "ev-w2", "hold_id": hold.id}]
        assert held["clips"] == [{"id": world.segments["dock"], "hold_id": hold.id}]
        assert {"id": "ev-w2", "hold_id": hold.id} in held["database"]
        assert {"id": "inc-dock", "hold_id": hold.id} in held["database"]
        assert steps["database"]["status"] == "held" and steps["database"]["counts"]["held"] >= 2
        assert "done except held items" in body["report"]
        # Kept: the dock's event, snapshot, segment, incident and index entry; gate's gone.
        assert _event_ids(engine) == {"ev-m", "ev-w2"}
        assert world.objects.exists(snapshot_key("dock", "ev-w2"))
        assert SegmentRepository(engine).get(world.segments["dock"]) is not None
        assert IncidentRepository(engine).get("inc-dock") is not None
        assert world.index.get("ev-w2") is not None and world.index.get("ev-w1") is None

        # Released, the same request resumes and erases the rest.
        HoldRepository(engine).release(hold.id, "legal")
        r = client.post(f"{URL}/{body['id']}/resume", headers=world.h())
        assert r.status_code == 200, r.text
        assert r.json()["status"] == "done", r.json()["report"]
        assert _event_ids(engine) == {"ev-m"}
        assert IncidentRepository(engine).get("inc-dock") is None
        assert client.post(f"{URL}/{body['id']}/resume", headers=world.h()).status_code == 409


def test_an_erasure_failing_halfway_reports_it_and_resumes_to_the_end(world: World) -> None:
    engine = world.engine
    world.services.archive = None  # the archive store is unreachable: clips cannot finish
    with api_client(world.services) as client:
        r = client.post(URL, json={"kind": "erasure", "event_ids": ["ev-w1"]}, headers=world.h())
        assert r.status_code == 201, r.text
        body = r.json()
        assert body["status"] == "failed"
        status = {s: v["status"] for s, v in _steps(body).items()}
        assert status == {
            "search_index": "done", "face_prints": "done", "snapshots": "done",
            "clips": "failed", "exports": "pending", "annotations": "pending",
            "datasets": "pending", "mlflow": "pending", "database": "pending",
        }  # fmt: skip
        assert "archive store is not configured" in _steps(body)["clips"]["errors"][0]
        assert "clips: FAILED" in body["report"] and "database: NOT DONE" in body["report"]
        assert "ev-w1" in _event_ids(engine)  # the rows were not touched
        r = client.get(f"{URL}/{body['id']}", headers=world.h())
        assert r.json()["status"] == "failed"

        world.services.archive = world.restorer
        r = client.post(f"{URL}/{body['id']}/resume", headers=world.h())
        assert r.status_code == 200, r.text
        resumed = r.json()
        assert resumed["status"] == "done", resumed["report"]
        steps = _steps(resumed)
        assert steps["clips"]["attempts"] == 2 and steps["search_index"]["attempts"] == 1
        assert steps["clips"]["counts"]["archive_objects"] == 1
        assert "ev-w1" not in _event_ids(engine) and "ev-w2" in _event_ids(engine)


def test_access_builds_a_zip_of_everything_about_the_subject(world: World) -> None:
    with api_client(world.services) as client:
        r = client.post(URL, headers=world.h(), **_photo_request("access", SAME_B))
        assert r.status_code == 201, r.text
        body = r.json()
        assert body["status"] == "done", body["report"]
        r = client.get(body["archive_url"], headers=world.h())
        assert r.status_code == 200 and r.headers["content-type"] == "application/zip"
        with zipfile.ZipFile(io.BytesIO(r.content)) as zf:
            names = set(zf.namelist())
            events = json.loads(zf.read("events.json"))
            incidents = json.loads(zf.read("incidents.json"))
            alerts = json.loads(zf.read("alerts.json"))
            entries = json.loads(zf.read("search_entries.json"))
            assert zf.read("snapshots/ev-w1.jpg") == photo(SAME_A)
            clips = sorted(n for n in names if n.startswith("clips/"))
            archived = [n for n in clips if world.segments["gate-archived"] in n]
            assert zf.read(archived[0]).startswith(b"mp4 of gate 10")  # read from the archive
        assert sorted(e["id"] for e in events) == sorted(SUBJECT)
        assert sorted(i["id"] for i in incidents) == ["inc-dock", "inc-gate"]
        assert {a["event_id"] for a in alerts} == set(SUBJECT)
        assert len(clips) == 3
        assert {"ev-w1", "ev-w2", "inc-dock", "inc-gate"} <= {e["id"] for e in entries}
        assert f"annotations/{world.items['subject']}.jpg" in names
        assert "exports/gate/exp-her.mp4" in names and "exports/gate/exp-later.mp4" not in names
        assert "snapshots/ev-m.jpg" not in names
        # Nothing was deleted.
        assert _event_ids(world.engine) == {"ev-m", *SUBJECT}
        # An erasure has no archive.
        r = client.post(URL, json={"kind": "erasure", "event_ids": ["nope"]}, headers=world.h())
        assert client.get(f"{URL}/{r.json()['id']}/archive", headers=world.h()).status_code == 404


def test_refusals_roles_cameras_and_malformed_bodies(world: World) -> None:
    services = world.services
    operator = add_user(services.security, "op", Role.OPERATOR)
    docker = add_user(services.security, "docker", Role.ADMIN, cameras=["dock"])
    ranged = {"kind": "erasure", "camera_id": "gate", "start_at": at(0).isoformat(),
              "end_at": at(30).isoformat()}  # fmt: skip
    with api_client(services) as client:
        assert client.post(URL, json=ranged, headers=world.h(operator)).status_code == 403
        assert client.get(URL, headers=world.h(operator)).status_code == 403
        # A dock-only admin cannot reach the gate.
        assert client.post(URL, json=ranged, headers=world.h(docker)).status_code == 404
        for ids in (["ev-w1"], ["ev-w2", "ev-w1"], ["no-such-event"]):
            r = client.post(
                URL, json={"kind": "erasure", "event_ids": ids}, headers=world.h(docker)
            )
            assert r.status_code == 404, r.text
        r = client.post(
            URL, json={"kind": "erasure", "incident_ids": ["inc-gate"]}, headers=world.h(docker)
        )
        assert r.status_code == 404
        assert "ev-w1" in _event_ids(world.engine)
        r = client.post(
            URL, json={"kind": "access", "event_ids": ["ev-w2"]}, headers=world.h(docker)
        )
        assert r.status_code == 201 and r.json()["cameras"] == ["dock"]
        assert _steps(r.json())["events"]["ids"] == ["ev-w2"]
        mine = r.json()["id"]
        # ... and does not see an unlimited admin's request.
        r = client.post(URL, json={"kind": "access", "event_ids": ["x"]}, headers=world.h())
        theirs = r.json()["id"]
        assert client.get(f"{URL}/{theirs}", headers=world.h(docker)).status_code == 404
        listed = [x["id"] for x in client.get(URL, headers=world.h(docker)).json()["items"]]
        assert listed == [mine]

        for path, reason in ((NO_FACE, "no face"), (TWO_FACES, "2 faces")):
            r = client.post(URL, headers=world.h(), **_photo_request("erasure", path))
            assert r.status_code == 422 and reason in r.text, r.text
        bad_bodies: list[Any] = [
            {"kind": "erasure"},  # no subject
            {"kind": "forget", "event_ids": ["a"]},
            {"kind": "erasure", "event_ids": ["a"], "extra": 1},
            {**ranged, "event_ids": ["a"]},
            {**ranged, "end_at": at(-1).isoformat()},
            {**ranged, "start_at": "2026-06-01T12:00:00"},  # naive
            {"kind": "erasure", "camera_id": "gate"},
            {"kind": "erasure", "event_ids": ["x" * 65]},
            {"kind": "erasure", "event_ids": ["a"] * 1001},
        ]
        for bad in bad_bodies:
            r = client.post(URL, json=bad, headers=world.h())
            assert r.status_code == 422, (bad, r.text)
        r = client.post(
            URL, content=b"{not json", headers={**world.h(), "Content-Type": "application/json"}
        )
        assert r.status_code == 422
        r = client.post(URL, headers=world.h(), files={"photo": ("a.jpg", b"x", "image/jpeg")})
        assert r.status_code == 422 and "request" in r.text
        both = _photo_request("erasure", SAME_B)
        both["data"] = {"request": json.dumps({"kind": "erasure", "event_ids": ["ev-w1"]})}
        r = client.post(URL, headers=world.h(), **both)
        assert r.status_code == 422 and "one subject only" in r.text
        assert "ev-w1" in _event_ids(world.engine)
        assert client.get(f"{URL}/nope", headers=world.h()).status_code == 404
        assert client.post(f"{URL}/nope/resume", headers=world.h()).status_code == 404


def test_cli_erases_directly_on_the_data_dir(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`sentinel privacy erase` by camera range and by ids, holds reported (exit 3)."""
    from click.testing import CliRunner

    from sentinel.cli import main
    from sentinel.config import load_settings
    from sentinel.store.db import make_engine, migrate
    from sentinel.store.s3 import make_object_store

    data_dir = tmp_path / "data"
    monkeypatch.setenv("SENTINEL_DATA_DIR", str(data_dir))
    monkeypatch.delenv("SENTINEL_DATABASE_URL", raising=False)
    settings = load_settings(None)
    data_dir.mkdir(parents=True)
    engine = make_engine(settings.db_url)
    migrate(engine)
    objects = make_object_store(settings.objects, settings.data_dir)
    assert isinstance(objects, LocalObjectStore)
    for i, event_id in enumerate(EVENTS):
        _add_event(engine, objects, event_id, i)
    seg = _segment(engine, objects, "gate", -10, 10)
    hold = HoldRepository(engine).create(
        kind="camera_range", camera_id="gate", reason="case 7", created_by="legal",
        start_at=at(25), end_at=at(26),
    )  # fmt: skip
    runner = CliRunner()
    start, end = at(-5).isoformat(), at(40).isoformat()
    result = runner.invoke(
        main, ["privacy", "erase", "--camera", "gate", "--start", start, "--end", end]
    )
    # ev-m (5..30 s) shares time with the hold: kept and listed; ev-w1 erased.
    assert result.exit_code == 3, result.output
    assert ": partial" in result.output and f"held: ev-m (hold {hold.id})" in result.output
    assert _event_ids(engine) == {"ev-m", "ev-w2"}
    assert SegmentRepository(engine).get(seg) is None
    assert not objects.exists(snapshot_key("gate", "ev-w1"))
    result = runner.invoke(main, ["privacy", "erase", "--event", "ev-w2", "--json"])
    assert result.exit_code == 0, result.output
    assert json.loads(result.output)["status"] == "done"
    assert _event_ids(engine) == {"ev-m"}
    result = runner.invoke(main, ["privacy", "erase", "--camera", "gate", "--start", "noon"])
    assert result.exit_code == 2 and "ISO 8601" in result.output
    actions = {a.action for a in AuditRepository(engine).list(limit=100)[0]}
    assert "privacy.erasure.database" in actions
    engine.dispose()


def test_migration_0022_matches_the_model_and_downgrades(db_url: str) -> None:
    from alembic import command
    from alembic.autogenerate import compare_metadata
    from alembic.migration import MigrationContext
    from sqlmodel import SQLModel

    from sentinel.store.db import alembic_config, make_engine, migrate
    from sentinel.store.subject_tables import PRIVACY_REQUESTS

    engine = make_engine(db_url)
    try:
        with engine.connect() as conn:
            command.upgrade(alembic_config(conn), "0021")
            conn.commit()
        assert not sa.inspect(engine).has_table("privacy_requests")
        migrate(engine)
        with engine.connect() as conn:
            ours = {
                "include_object": lambda _o, name, kind, *_: (
                    kind != "table" or name == PRIVACY_REQUESTS.name
                )
            }
            diffs = compare_metadata(MigrationContext.configure(conn, opts=ours), SQLModel.metadata)
        assert diffs == []
        with engine.connect() as conn:
            command.downgrade(alembic_config(conn), "0021")
            conn.commit()
        assert not sa.inspect(engine).has_table("privacy_requests")
        assert sa.inspect(engine).has_table("segments")
    finally:
        engine.dispose()


def test_a_request_runs_once_at_a_time_and_a_crashed_run_is_taken_over(
    store_engine: Engine,
) -> None:
    from sentinel.store.subject_repo import PrivacyRequestRepository

    now = [T0]
    repo = PrivacyRequestRepository(store_engine, clock=lambda: now[0])
    rec = repo.create(kind="erasure", subject={"by": "ids"}, steps=[], requested_by="a")
    assert repo.claim(rec.id)  # pending -> running
    now[0] = T0 + timedelta(minutes=5)
    assert not repo.claim(rec.id)  # running, and alive
    now[0] = T0 + timedelta(minutes=20)
    assert repo.claim(rec.id)  # running but silent for 15 min: a crash, taken over
    repo.save(rec.id, steps=[], status="done", report="erasure done.")
    now[0] = T0 + timedelta(days=1)
    assert not repo.claim(rec.id)  # done stays done
    found = repo.get(rec.id)
    assert found is not None and found.status == "done" and found.report == "erasure done."
    with pytest.raises(ValueError, match="kind"):
        repo.create(kind="forget", subject={}, steps=[], requested_by="a")
