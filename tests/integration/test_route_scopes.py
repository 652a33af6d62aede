"""Every route x {anonymous, six principals limited to camera A, operator, admin}.

The camera-limited principals are a viewer and an operator limited to ``cam-a``, an operator
API key limited to ``cam-a``, an operator limited to ``group:front`` (``cam-a``'s group), an
admin user limited to ``cam-a`` and ``group:front``, and an admin API key limited to ``cam-a``.
Both cameras hold real objects: events with snapshots, alerts, recorded segments (real H.264),
exports and rules, so every ``{…_id}`` route runs with real ids of both cameras (a rule for
every camera exists too); camera B also has a user and an API key limited to it, a mutating
request in the audit log, and a segment in the last storage sweep. The walk asserts the status
each principal gets, that a limited principal gets its own camera's objects, that routes over
every camera refuse it, and that nothing it receives (body or headers, ``/metrics`` included)
names camera B or its objects' ids. The route→scope table in tests/route_scopes.json is
regenerated from the app and must match the committed one: a route that silently lost its guard
fails the build. After an intended change, regenerate it with
`SENTINEL_UPDATE_ROUTE_TABLE=1 pytest <this file>`.
"""

from __future__ import annotations

import json
import os
import uuid
from collections.abc import AsyncGenerator, Iterable, Iterator
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Any, ClassVar

import pytest
from fastapi import FastAPI
from fastapi.routing import APIRoute, APIWebSocketRoute
from fastapi.testclient import TestClient
from starlette.websockets import WebSocketDisconnect

from sentinel.actors.retention import SweepReport
from sentinel.api.app import create_app
from sentinel.api.deps import SearchServices, Services, TrainingServices, VoiceServices
from sentinel.api.security import authorize, authorize_every_camera, require_metrics
from sentinel.config import TrainSettings
from sentinel.domain.alerts import AlertDecision, DecidedBy, Severity
from sentinel.domain.annotation import LabeledBox
from sentinel.domain.experiments import Variant
from sentinel.domain.incidents import Incident
from sentinel.domain.retention import Deletion
from sentinel.domain.rule_model import Rule
from sentinel.domain.types import Box, EventState
from sentinel.gateway.roles import ROLE_SCOPES, Role
from sentinel.gateway.tokens import new_opaque_token
from sentinel.models.embedder import TextEmbedder
from sentinel.models.whisper import SpeechRecognizer
from sentinel.search.index import VectorIndex
from sentinel.search.kb import KB_COLLECTION, KnowledgeBase
from sentinel.search.service import SearchService
from sentinel.search.voice import on_a_thread
from sentinel.store.db import make_engine, migrate, sqlite_url
from sentinel.store.export_repo import ExportRepository
from sentinel.store.hold_tables import LEGAL_HOLDS
from sentinel.store.incident_repo import IncidentRepository
from sentinel.store.kb_repo import KbRepository
from sentinel.store.notify_repo import NotifyRepository
from sentinel.store.notify_tables import (
    NOTIFY_SUBSCRIPTIONS,
    NOTIFY_TEMPLATE_VERSIONS,
    NOTIFY_TEMPLATES,
)
from sentinel.store.objects import snapshot_key
from sentinel.store.rule_repo import RuleRepository, SuggestionRepository
from sentinel.store.search_queue_repo import SearchQueue
from sentinel.store.segment_repo import SegmentInfo, SegmentRepository
from sentinel.store.subject_tables import PRIVACY_REQUESTS
from sentinel.store.training_repo import TrainingRunRepository
from sentinel.train.dataset_store import build_dataset
from sentinel.video.segments import finalize_segment
from tests.integration import test_segments as seg
from tests.utils.annotation import candidate
from tests.utils.api import api_app
from tests.utils.auth import AuthedUser, add_user
from tests.utils.live import live_recv
from tests.utils.mining import local_mining
from tests.utils.services import FakeControl, make_services
from tests.utils.speech import espeak_wav

TABLE = Path(__file__).resolve().parents[1] / "route_scopes.json"
T0 = seg.BASE  # the recorded segments cover T0 to T0 + 20 s
PRINCIPALS = [
    "anonymous",
    "viewer_a",
    "operator_a",
    "key_a",
    "group_a",
    "admin_a",
    "admin_key_a",
    "operator",
    "admin",
]
LIMITED = {"viewer_a", "operator_a", "key_a", "group_a", "admin_a", "admin_key_a"}
API_KEYS = {"key_a", "admin_key_a"}
CAMERA_NAMES = {"cam-a": "Front porch", "cam-b": "Loading dock"}
CAMERA_GROUPS = {"cam-a": ["front"], "cam-b": ["back"]}
# Routes only users may call, whatever an API key's scopes say.
USER_ONLY = {
    "POST /api/v1/apikeys",
    "POST /api/v1/auth/mfa/enroll",
    "POST /api/v1/auth/mfa/confirm",
    # A browser's push subscription belongs to a user.
    "GET /api/v1/push/subscriptions",
    "POST /api/v1/push/subscriptions",
    "DELETE /api/v1/push/subscriptions/{subscription_id}",
}
# Routes over every camera at once (users and their camera lists, the audit log, the prompts
# and experiments that judge every camera's alerts): a camera-limited principal gets 403 there,
# whatever its scopes, so a limited admin can neither read them nor lift its own limit.
EVERY_CAMERA = {
    "GET /api/v1/users",
    "POST /api/v1/users",
    "PATCH /api/v1/users/{user_id}",
    "DELETE /api/v1/users/{user_id}",
    "GET /api/v1/audit",
    "GET /api/v1/audit/verify",
    "GET /api/v1/prompts",
    "GET /api/v1/prompts/{name}",
    "POST /api/v1/prompts/{name}",
    "POST /api/v1/prompts/{name}/{version}/activate",
    "DELETE /api/v1/prompts/{name}/{version}",
    "GET /api/v1/experiments",
    "POST /api/v1/experiments",
    "GET /api/v1/experiments/{experiment_id}",
    "POST /api/v1/experiments/{experiment_id}/promote",
    "POST /api/v1/arming",
    "POST /api/v1/rulegen/run",
    "PUT /api/v1/kb/documents/{name}",
    "DELETE /api/v1/kb/documents/{name}",
    "POST /api/v1/models/{version}/canary",
    "POST /api/v1/models/{version}/promote",
    "POST /api/v1/models/{version}/rollback",
}
# Routes that take a spoken question: every principal allowed to call them gets an answer
# (a 200, so the leak checks below read a real answer, not a refusal).
VOICE_ROUTES = {"POST /api/v1/ask/voice", "POST /api/v1/transcribe"}
# New cameras the walk asks to create (POST /cameras), and the limited principals whose limits
# hold them; the other limited principals must get 403. cam-new joins group "front".
CREATABLE = {"cam-new": {"admin_a"}, "cam-new2": set()}
# What each list route must show a caller allowed to read camera A.
LISTS_SHOW_A = {
    "/api/v1/events": "event",
    "/api/v1/alerts": "alert",
    "/api/v1/incidents": "incident",
    "/api/v1/exports": "export",
    "/api/v1/cameras": "camera",
    "/api/v1/rules": "rule",
    "/api/v1/rules/suggestions": "suggestion",
    "/metrics": "series",
    "/api/v1/search": "event",
    "/api/v1/datasets": "dataset",
}

recorded = seg.recorded  # the module-scoped fixture: five real 4 s H.264 segments


def _api_routes(routes: Iterable[Any], prefix: str = "") -> Iterator[tuple[str, APIRoute]]:
    """Every APIRoute with its full path, through included routers (FastAPI keeps those as
    nested objects rather than copies)."""
    for route in routes:
        if isinstance(route, APIRoute):
            yield prefix + route.path, route
        elif hasattr(route, "original_router"):
            yield from _api_routes(
                route.original_router.routes, prefix + route.include_context.prefix
            )


def _socket_routes(routes: Iterable[Any], prefix: str = "") -> Iterator[str]:
    """The full path of every WebSocket route (they authenticate in their handler)."""
    for route in routes:
        if isinstance(route, APIWebSocketRoute):
            yield prefix + route.path
        elif hasattr(route, "original_router"):
            yield from _socket_routes(
                route.original_router.routes, prefix + route.include_context.prefix
            )


def route_table(app: FastAPI) -> dict[str, str]:
    """``"METHOD /path" -> "public" | "scopes: a b" | "authenticated"`` for every API route;
    ``"WS /path"`` for WebSocket routes, whose guard is declared in ``SOCKET_GUARDS`` (a
    socket route missing there is "public", which the public-route test refuses)."""
    table: dict[str, str] = {
        f"WS {p}": SOCKET_GUARDS.get(p, "public") for p in _socket_routes(app.routes)
    }
    for path, route in _api_routes(app.routes):
        if not route.include_in_schema:
            continue
        guards: list[str] = []
        # Scopes accumulate down the chain, as FastAPI hands them to `authorize`: a guard
        # wrapping it (authorize_every_camera) passes its scopes on.
        stack: list[tuple[Any, frozenset[str]]] = [
            (d, frozenset()) for d in route.dependant.dependencies
        ]
        while stack:
            dep, inherited = stack.pop()
            held = inherited | set(getattr(dep, "oauth_scopes", None) or dep.own_oauth_scopes or [])
            if dep.call is authorize:
                scopes = sorted(held)
                guards.append("scopes: " + " ".join(scopes) if scopes else "authenticated")
            elif dep.call is require_metrics:
                guards.append("scopes: metrics:read (unless auth.metrics_public)")
            stack.extend((d, held) for d in dep.dependencies)
        for method in sorted(route.methods or ()):
            table[f"{method} {path}"] = "; ".join(sorted(set(guards))) or "public"
    return dict(sorted(table.items()))


class SweptStorage:
    """Stands in for the retention actor: its settings and a last sweep over both cameras."""

    def __init__(self, report: SweepReport) -> None:
        self.report = report

    async def status(self) -> dict[str, Any] | None:
        return {
            "budget_bytes": 10**9,
            "min_free_bytes": 512 << 20,
            "sweep_interval_s": 60.0,
            "last_sweep": self.report.to_dict(),
            "last_error": "",
        }


class EchoLlm:
    """Stands in for the LLM deployment: the walk checks guards, not generation."""

    async def chat(self, request: dict[str, Any]) -> dict[str, Any]:
        return {"choices": [{"message": {"role": "assistant", "content": "ok"}}], "usage": {}}

    async def chat_stream(self, request: dict[str, Any]) -> AsyncGenerator[dict[str, Any], None]:
        yield {"object": "chat.completion.chunk", "choices": [{"index": 0, "delta": {}}]}

    async def models(self) -> list[dict[str, Any]]:
        return [{"id": "echo", "object": "model", "created": 0, "owned_by": "sentinel"}]


@dataclass
class Objects:
    """One camera's seeded objects: ids the walk puts in paths and looks for in answers."""

    camera: str
    name: str
    event: str
    alert: str
    export: str
    export_name: str
    segments: list[str]
    incident: str
    rule: str
    suggestion: str
    others: list[str] = field(default_factory=list)  # a user and an API key limited to it
    item: str = ""  # an accepted annotation item of its frames
    dataset: str = ""  # a dataset (version 1) of its accepted frames
    mining_job: str = ""

    @property
    def ids(self) -> list[str]:
        return [
            self.item,
            self.event,
            self.alert,
            self.export,
            self.incident,
            self.rule,
            self.suggestion,
            *([self.mining_job] if self.mining_job else []),
            *self.segments,
            *self.others,
        ]

    @property
    def markers(self) -> list[str]:
        """Strings that name this camera or its objects: none may reach a caller of the other."""
        return [self.camera, self.name, self.export_name, self.dataset, *self.ids]


class _NoLaunch:
    """The training launcher: the walk's POST names no dataset that exists (422), so nothing
    is ever launched."""

    async def start(self, run_id: str) -> None:
        raise AssertionError(f"the walk must not launch training run {run_id}")


@dataclass
class World:
    client: TestClient
    services: Services
    headers: dict[str, dict[str, str]]
    a: Objects
    b: Objects
    victim_user: str
    admin_key: str
    experiment: str
    training_run: str

    @property
    def event_a(self) -> str:
        return self.a.event

    @property
    def event_b(self) -> str:
        return self.b.event


def _event(camera: str, n: int) -> EventState:
    # Inside the recording (T0 to T0 + 20 s), so event clips are real clips.
    start = T0 + timedelta(seconds=2 + 4 * n)
    return EventState(
        id=f"00000000-0000-0000-0000-{n:012d}",
        camera_id=camera,
        label="person",
        track_id=n,
        started_at=start,
        last_seen_at=start + timedelta(seconds=2),
        score=0.9,
        box=Box(1, 2, 30, 60),
        best_at=start,
        ended_at=start + timedelta(seconds=2),
    )


@pytest.fixture(scope="module")
def search_embedder() -> TextEmbedder:
    return TextEmbedder(threads=1)


@pytest.fixture(scope="module")
def recognizer(whisper_model: Path) -> SpeechRecognizer:
    return SpeechRecognizer(whisper_model, pinned=True, threads=2)


class StaticModels:
    """The model controller, reduced to its answer: the walk is about who may call it."""

    OVERVIEW: ClassVar[dict[str, Any]] = {
        "versions": [],
        "champion": 1,
        "previous": [],
        "canary": {
            "version": 2,
            "cameras": ["cam-a", "cam-b"],
            "share": 0.0,
            "started_at": None,
            "promoting": False,
        },
        "guard": {},
    }

    async def overview(self) -> dict[str, Any]:
        return self.OVERVIEW

    async def canary(
        self, version: int, cameras: list[str], share: float, actor: str
    ) -> dict[str, Any]:
        return self.OVERVIEW

    async def promote(self, version: int, actor: str) -> dict[str, Any]:
        return self.OVERVIEW

    async def rollback(self, version: int, actor: str) -> dict[str, Any]:
        return self.OVERVIEW


# A spoken question for the voice routes: its answer cites events, which must be the caller's.
SPOKEN_QUESTION = espeak_wav("show me the person at the camera")


@pytest.fixture
def world(
    tmp_path: Path,
    recorded: list[SegmentInfo],
    search_embedder: TextEmbedder,
    recognizer: SpeechRecognizer,
    onnx_model: Path,
) -> Iterator[World]:
    engine = make_engine(sqlite_url(tmp_path / "db.sqlite"))
    migrate(engine)
    control = FakeControl()
    services = make_services(
        engine,
        tmp_path,
        control=control,
        segments=SegmentRepository(engine),
        exports=ExportRepository(engine),
        models=StaticModels(),
        training=TrainingServices(
            runs=TrainingRunRepository(engine), control=_NoLaunch(), defaults=TrainSettings()
        ),
    )
    assert services.segments is not None
    assert services.training is not None
    run = services.training.runs.create("site", epochs=1, params={}, created_by="walk")
    segments: dict[str, list[str]] = {}
    for cam in ("cam-a", "cam-b"):
        services.cameras.upsert(
            cam,
            {
                "id": cam,
                "name": CAMERA_NAMES[cam],
                "groups": CAMERA_GROUPS[cam],
                "source": f"/videos/{cam}.mp4",
            },
        )
        control.started_ids.append(cam)
        control.frames[cam] = b"\xff\xd8" + cam.encode()
        segments[cam] = [
            finalize_segment(
                seg.temp_copy(info, tmp_path / "tmp"),
                camera_id=cam,
                kind="continuous",
                store=services.objects,
                repo=services.segments,
            ).id
            for info in recorded
        ]
    ids = {}
    for n, cam in enumerate(("cam-a", "cam-b"), start=1):
        ev = _event(cam, n)
        key = snapshot_key(cam, ev.id)
        services.objects.put(key, b"\xff\xd8" + cam.encode(), "image/jpeg")
        services.events.upsert(ev, key)
        ids[cam] = ev.id
    sec = services.security
    users = {
        "viewer_a": add_user(sec, "viewer-a", Role.VIEWER, ["cam-a"]),
        "operator_a": add_user(sec, "operator-a", Role.OPERATOR, ["cam-a"]),
        "group_a": add_user(sec, "group-a", Role.OPERATOR, ["group:front"]),
        "admin_a": add_user(sec, "admin-a", Role.ADMIN, ["cam-a", "group:front"]),
        "operator": add_user(sec, "operator", Role.OPERATOR),
        "admin": add_user(sec, "admin", Role.ADMIN),
    }
    headers = {who: u.headers for who, u in users.items()}
    # Camera B's user and API key: their ids and camera lists are B's, like its events.
    victim = add_user(sec, "victim", Role.VIEWER, ["cam-b"])
    _, digest = new_opaque_token("sk_")
    admin_key = sec.apikeys.create(
        "k", "sk_xxxxx", digest, "viewer", ["events:read"], ["cam-b"], users["admin"].id
    )
    key_a, digest = new_opaque_token("sk_")
    operator_scopes = sorted(ROLE_SCOPES[Role.OPERATOR])
    sec.apikeys.create(
        "key-a", key_a[:8], digest, "operator", operator_scopes, ["cam-a"], users["admin"].id
    )
    headers["key_a"] = {"X-API-Key": key_a}
    admin_key_a, digest = new_opaque_token("sk_")
    admin_scopes = sorted(ROLE_SCOPES[Role.ADMIN])
    sec.apikeys.create(
        "admin-key-a", admin_key_a[:8], digest, "admin", admin_scopes, ["cam-a"], users["admin"].id
    )
    headers["admin_key_a"] = {"X-API-Key": admin_key_a}
    agent = services.agent
    agent.llm = EchoLlm()
    alert_ids = {}
    for cam in ("cam-a", "cam-b"):
        rule = AlertDecision(
            True, Severity.MEDIUM, f"person at {cam}", ("rule",), "look", DecidedBy.RULES
        )
        alert_ids[cam] = agent.alerts.record_rule_decision(ids[cam], cam, "person", rule).id
    agent.prompts.create_version("alert", "system", "Event {label}", users["admin"].id)
    exp = agent.experiments.create("ab", "alert", [Variant("a", "1", 1.0), Variant("b", "1", 1.0)])
    incidents = {}
    for n, cam in enumerate(("cam-a", "cam-b"), start=1):
        ev = _event(cam, n)
        inc = Incident(
            f"00000000-0000-0000-0005-{n:012d}",
            cam,
            ev.started_at,
            ev.last_seen_at,
            ev.ended_at,
            (ev.id,),
            ("person",),
        )
        IncidentRepository(engine).upsert(inc)
        incidents[cam] = inc.id
    # A rule of each camera (named after it), and one for every camera.
    rules = RuleRepository(engine)
    rule_ids = {
        cam: rules.create(Rule(name=f"rule of {CAMERA_NAMES[cam]}", cameras=(cam,)), "walk").id
        for cam in ("cam-a", "cam-b")
    }
    rules.create(Rule(name="everywhere"), "walk")
    # A RuleGen mask suggestion about each camera.
    mask = {"polygon": [[0, 0], [0.5, 0], [0.5, 0.5], [0, 0.5]], "labels": ["car"]}
    suggestion_ids = {
        cam: SuggestionRepository(engine)
        .add("mask", {"camera_id": cam, "object_mask": mask}, camera_id=cam, dedupe_key=cam)
        .id
        for cam in ("cam-a", "cam-b")
    }
    # The last storage sweep deleted one segment of each camera.
    services.storage = SweptStorage(
        SweepReport(
            T0,
            [Deletion(segments[cam][-1], cam, "budget", 1000) for cam in ("cam-a", "cam-b")],
            bytes_freed=2000,
        )
    )
    # Search over both cameras' events (their stored closes queued them for the index).
    services.search = SearchServices(
        SearchService(
            VectorIndex(tmp_path / "search"),
            search_embedder.embed,
            events=services.events,
            incidents=IncidentRepository(engine),
            cameras=services.cameras,
            queue=SearchQueue(engine),
            alerts=services.agent.alerts,
            objects=services.objects,
        ),
        # Ask answers from retrieval here (no LLM): its citations must keep to the caller's
        # cameras like every other answer.
        kb=KnowledgeBase(
            KbRepository(engine),
            VectorIndex(tmp_path / "search", collection=KB_COLLECTION),
            search_embedder.embed,
        ),
    )
    assert services.search.service.drain() >= 2
    services.voice = VoiceServices(on_a_thread(recognizer))
    services.mining = local_mining(services, onnx_model)
    app = api_app(services)
    with TestClient(app, raise_server_exceptions=False) as client:
        # A mutating request naming camera B's alert, so the audit log holds B's ids.
        r = client.post(f"/api/v1/alerts/{alert_ids['cam-b']}/ack", headers=users["admin"].headers)
        assert r.status_code == 200, r.text
        objects = {}
        for n, cam in enumerate(("cam-a", "cam-b"), start=1):
            name = f"walk export {n} of {CAMERA_NAMES[cam]}"
            r = client.post(
                "/api/v1/exports",
                json={
                    "camera_id": cam,
                    "start": (T0 + timedelta(seconds=4 * n)).isoformat(),
                    "end": (T0 + timedelta(seconds=4 * n + 3)).isoformat(),
                    "name": name,
                },
                headers=users["admin"].headers,
            )
            assert r.status_code == 201, r.text
            mined = client.post(
                "/api/v1/annotation/mine", json=_mine_body(cam), headers=users["admin"].headers
            )
            assert mined.status_code == 202, mined.text
            objects[cam] = Objects(
                cam,
                CAMERA_NAMES[cam],
                ids[cam],
                alert_ids[cam],
                r.json()["id"],
                name,
                segments[cam],
                incidents[cam],
                rule_ids[cam],
                suggestion_ids[cam],
                [victim.id, admin_key.id] if cam == "cam-b" else [],
                mining_job=mined.json()["id"],
            )
        for cam, obj in objects.items():
            obj.item, obj.dataset = _annotated(services, cam, users["operator"], users["admin"])
        yield World(
            client,
            services,
            headers,
            objects["cam-a"],
            objects["cam-b"],
            victim.id,
            admin_key.id,
            exp.id,
            run.id,
        )


def _annotated(
    services: Services, camera: str, annotator: AuthedUser, reviewer: AuthedUser
) -> tuple[str, str]:
    """An accepted annotation item of ``camera`` and a dataset of its frames."""
    ann = services.annotation
    assert ann is not None
    [item] = ann.repo.enqueue([candidate(1, camera=camera)])
    ann.repo.submit(item, [LabeledBox("person", 1, 1, 20, 20)], version=0, annotator=annotator.id)
    ann.repo.review(item, decision="accept", reviewer=reviewer.id)
    name = f"ds-{camera}"
    build_dataset(
        name,
        annotations=ann.repo,
        datasets=ann.datasets,
        objects=services.objects,
        labels=ann.labels,
        created_by=reviewer.id,
        cameras={camera},
    )
    return item, name


def _mine_body(camera: str) -> dict[str, Any]:
    """One second of the camera's recording, one frame to queue (the job really runs)."""
    start = T0 + timedelta(seconds=5)
    end = start + timedelta(seconds=1)
    return {"camera_id": camera, "start": start.isoformat(), "end": end.isoformat(), "budget": 1}


def _walk_subscriptions(w: World) -> list[str]:
    """A subscription per camera (its id names the camera), fresh for every request: an
    earlier principal may have edited or deleted it."""
    repo = NotifyRepository(w.services.engine)
    ids = []
    for cam in (w.a.camera, w.b.camera):
        sid = f"sub-{cam}"
        with w.services.engine.begin() as conn:
            conn.execute(NOTIFY_SUBSCRIPTIONS.delete().where(NOTIFY_SUBSCRIPTIONS.c.id == sid))
        body = {"name": sid, "recipient": "r", "channel": "email", "target": "r@x.y"}
        repo.put_subscription(sid, {**body, "cameras": [cam]}, "walk", create=True)
        ids.append(sid)
    return ids


def _walk_template(w: World) -> str:
    repo = NotifyRepository(w.services.engine)
    with w.services.engine.begin() as conn:
        for table in (NOTIFY_TEMPLATE_VERSIONS, NOTIFY_TEMPLATES):
            key = table.c.template_id if table is NOTIFY_TEMPLATE_VERSIONS else table.c.id
            conn.execute(table.delete().where(key == "tpl-walk"))
    repo.create_template("tpl-walk", "walk", None, "{{ alert.label }}", "{{ count }}", "walk")
    return "tpl-walk"


def _walk_holds(w: World) -> list[str]:
    """An active legal hold per camera, fresh for every request (an earlier principal may
    have released it); its id names its camera, so a request for B's is seen as naming B."""
    ids = []
    with w.services.engine.begin() as conn:
        for cam in (w.a.camera, w.b.camera):
            hid = f"hold-{cam}-{uuid.uuid4().hex[:8]}"
            conn.execute(
                LEGAL_HOLDS.insert().values(
                    id=hid,
                    kind="camera_range",
                    camera_id=cam,
                    start_at=T0,
                    reason="walk",
                    created_by="walk",
                    created_at=T0,
                )
            )
            ids.append(hid)
    return ids


def _walk_privacy_requests(w: World) -> list[str]:
    """A finished access request per camera, limited to it, with its zip stored; its id
    names its camera, so a request for B's is seen as naming B."""
    ids = []
    with w.services.engine.begin() as conn:
        for x in (w.a, w.b):
            rid = f"req-{x.camera}-{uuid.uuid4().hex[:8]}"
            key = f"privacy/{rid}/subject.zip"
            w.services.objects.put(key, b"PK\x05\x06" + b"\x00" * 18, "application/zip")
            conn.execute(
                PRIVACY_REQUESTS.insert().values(
                    id=rid,
                    kind="access",
                    subject=json.dumps({"by": "ids", "event_ids": [x.event]}),
                    cameras=json.dumps([x.camera]),
                    status="done",
                    steps="[]",
                    archive_key=key,
                    requested_by="walk",
                    created_at=T0,
                    updated_at=T0,
                )
            )
            ids.append(rid)
    return ids


def _requests(w: World, method: str, path: str) -> list[dict[str, Any]]:
    """Concrete requests for one route: camera/event params once for A and once for B."""
    subs: list[dict[str, str]] = [{}]
    a, b = w.a, w.b
    if "{segment_id}" in path:
        subs = [
            {"camera_id": a.camera, "segment_id": a.segments[0]},
            {"camera_id": b.camera, "segment_id": b.segments[0]},
            {"camera_id": a.camera, "segment_id": b.segments[0]},  # B's segment under A
        ]
    elif "{camera_id}" in path:
        subs = [{"camera_id": a.camera}, {"camera_id": b.camera}]
    elif "{event_id}" in path:
        subs = [{"event_id": a.event}, {"event_id": b.event}]
    elif "{export_id}" in path:
        subs = [{"export_id": a.export}, {"export_id": b.export}]
    elif "{user_id}" in path:
        subs = [{"user_id": w.victim_user}]
    elif "{key_id}" in path:
        subs = [{"key_id": w.admin_key}]
    elif "{incident_id}" in path:
        subs = [{"incident_id": a.incident}, {"incident_id": b.incident}]
    elif "{kind}" in path:
        subs = [{"kind": "snapshot", "alert_id": x.alert} for x in (a, b)]
    elif "{alert_id}" in path:
        subs = [{"alert_id": a.alert}, {"alert_id": b.alert}]
    elif "{subscription_id}" in path:
        subs = [{"subscription_id": sid} for sid in _walk_subscriptions(w)]
    elif "{template_id}" in path:
        subs = [{"template_id": _walk_template(w)}]
    elif "{suggestion_id}" in path:
        subs = [{"suggestion_id": a.suggestion}, {"suggestion_id": b.suggestion}]
    elif "{job_id}" in path:
        subs = [{"job_id": a.mining_job}, {"job_id": b.mining_job}]
    elif "{rule_id}" in path:
        subs = [{"rule_id": a.rule}, {"rule_id": b.rule}]
    elif "{run_id}" in path:
        subs = [{"run_id": w.training_run}]
    elif "{experiment_id}" in path:
        subs = [{"experiment_id": w.experiment}]
    elif "{item_id}" in path:
        subs = [{"item_id": a.item}, {"item_id": b.item}]
    elif path.startswith("/api/v1/datasets/"):
        subs = [{"name": a.dataset, "version": "1"}, {"name": b.dataset, "version": "1"}]
    elif "{hold_id}" in path:
        subs = [{"hold_id": hid} for hid in _walk_holds(w)]
    elif "{request_id}" in path:
        subs = [{"request_id": rid} for rid in _walk_privacy_requests(w)]
    elif "{model_id:path}" in path:
        subs = [{"model_id:path": "echo"}]  # the model EchoLlm serves
    elif path.startswith("/api/v1/models/"):
        subs = [{"version": "2"}]
    elif path.startswith("/api/v1/kb/documents/"):
        subs = [{"name": "orders.md"}]
    elif "{name}" in path:
        subs = [{"name": "alert", "version": "1"}]
    bodies: dict[str, dict[str, Any]] = {
        "POST /api/v1/cameras": {
            "json": {"id": "cam-new", "source": "/videos/new.mp4", "groups": ["front"]}
        },
        "POST /api/v1/users": {
            "json": {"username": "newbie", "password": "correct-horse-battery", "role": "viewer"}
        },
        "PATCH /api/v1/users/{user_id}": {"json": {"role": "viewer"}},
        "POST /api/v1/apikeys": {"json": {"name": "integration", "role": "viewer"}},
        "POST /api/v1/auth/mfa/confirm": {"json": {"code": "000000"}},
        "POST /api/v1/auth/token": {"data": {"username": "admin", "password": "wrong-password"}},
        "POST /api/v1/auth/session": {"data": {"username": "admin", "password": "wrong-password"}},
        "POST /api/v1/auth/refresh": {"data": {"refresh_token": "srt_not-a-real-token"}},
        "POST /api/v1/alerts/{alert_id}/feedback": {"json": {"verdict": "false_positive"}},
        "POST /api/v1/models/{version}/canary": {"json": {"cameras": ["cam-a"]}},
        "POST /api/v1/notifications/subscriptions": {
            "json": {
                "name": "s",
                "recipient": "r",
                "channel": "email",
                "target": "r@x.y",
                "cameras": ["cam-a"],
            }
        },
        "PUT /api/v1/notifications/subscriptions/{subscription_id}": {
            "json": {
                "name": "s",
                "recipient": "r",
                "channel": "email",
                "target": "r@x.y",
                "cameras": ["cam-a"],
            }
        },
        "POST /api/v1/notifications/templates": {
            "json": {"name": "t", "subject": "{{ alert.label }}", "body": "{{ count }}"}
        },
        "PUT /api/v1/notifications/templates/{template_id}": {
            "json": {"name": "t", "subject": "s", "body": "b", "version": 1}
        },
        "POST /api/v1/notifications/test": {"json": {"channel": "email", "target": "r@x.y"}},
        "POST /api/v1/prompts/{name}": {"json": {"system": "s", "template": "A {label}"}},
        "POST /api/v1/experiments": {
            "json": {
                "name": "ab2",
                "variants": [
                    {"name": "a", "prompt_version": 1, "weight": 1},
                    {"name": "b", "prompt_version": 1, "weight": 1},
                ],
            }
        },
        "POST /api/v1/experiments/{experiment_id}/promote": {"json": {"variant": "a"}},
        "POST /api/v1/rules": {"json": {"name": "walk rule", "cameras": ["cam-a"]}},
        "POST /api/v1/holds": {
            "json": {
                "kind": "camera_range",
                "camera_id": "cam-a",
                "start_at": T0.isoformat(),
                "reason": "walk",
            }
        },
        "PUT /api/v1/rules/{rule_id}": {
            "json": {"name": "walk rule", "cameras": ["cam-a"], "version": 1}
        },
        "POST /api/v1/rules/{rule_id}/test": {
            "json": {
                "event": {
                    "kind": "enter",
                    "camera_id": "cam-a",
                    "label": "person",
                    "score": 0.9,
                    "at": T0.isoformat(),
                    "zone": "gate",
                }
            }
        },
        "POST /api/v1/arming": {"json": {"mode": "night"}},
        "PUT /api/v1/cameras/{camera_id}/scene": {
            "json": {"motion_masks": [{"polygon": [[0.0, 0.0], [0.2, 0.0], [0.2, 0.2]]}]}
        },
        "GET /api/v1/cameras/{camera_id}/recordings": {
            "params": {"since": T0.isoformat(), "until": (T0 + timedelta(hours=1)).isoformat()}
        },
        "GET /api/v1/cameras/{camera_id}/clip.mp4": {
            "params": {
                "start": (T0 + timedelta(seconds=5)).isoformat(),
                "end": (T0 + timedelta(seconds=10)).isoformat(),
            }
        },
        "GET /api/v1/cameras/{camera_id}/hls.m3u8": {
            "params": {"start": T0.isoformat(), "end": (T0 + timedelta(hours=1)).isoformat()}
        },
        "POST /api/v1/training/runs": {"json": {"dataset": "walk-missing"}},
        "POST /api/v1/exports": {
            "json": {
                "camera_id": "cam-a",
                "start": (T0 + timedelta(seconds=5)).isoformat(),
                "end": (T0 + timedelta(seconds=10)).isoformat(),
                "name": "walk",
            }
        },
        "POST /api/v1/annotation/mine": {"json": _mine_body("cam-a")},
        "GET /api/v1/search": {"params": {"q": "person"}},
        "PUT /api/v1/annotation/items/{item_id}/annotation": {
            "json": {
                "boxes": [{"label": "person", "x1": 1, "y1": 1, "x2": 9, "y2": 9}],
                "version": 1,
            }
        },
        "POST /api/v1/annotation/items/{item_id}/review": {"json": {"decision": "return"}},
        "POST /api/v1/annotation/items/{item_id}/gold": {"json": {}},
        "POST /api/v1/datasets": {"json": {"name": "walk", "camera_ids": ["cam-a"]}},
        "POST /api/v1/ask/voice": {"content": SPOKEN_QUESTION},
        "POST /api/v1/transcribe": {"content": SPOKEN_QUESTION},
        "POST /api/v1/ask": {"json": {"question": "a person walking"}},
        "PUT /api/v1/kb/documents/{name}": {"content": b"# Gate\nCheck the gate hourly.\n"},
        "POST /v1/chat/completions": {
            "json": {"messages": [{"role": "user", "content": "hi"}], "max_tokens": 8}
        },
    }
    key = f"{method} {path}"
    out = []
    for sub in subs:
        url = path
        for name, value in sub.items():
            url = url.replace("{" + name + "}", value)
        assert "{" not in url, f"the walk has no real id for {url}"
        out.append({"method": method, "url": url, **bodies.get(key, {})})
    if key == "POST /api/v1/privacy/requests":  # an access request about A's event, B's
        out[0] = {**out[0], "json": {"kind": "access", "event_ids": [a.event]}}
        out.append({**out[0], "json": {"kind": "access", "event_ids": [b.event]}})
    if key == "POST /api/v1/datasets":  # a dataset of camera B's frames
        out.append({**out[0], "json": {"name": "walk", "camera_ids": [b.camera]}})
    if key in ("POST /api/v1/exports", "POST /api/v1/annotation/mine"):  # asked of B too
        out.append({**out[0], "json": {**out[0]["json"], "camera_id": b.camera}})
    if key == "POST /api/v1/cameras":  # a camera in nobody's limits; camera B itself
        out.append({**out[0], "json": {"id": "cam-new2", "source": "/videos/new2.mp4"}})
        out.append({**out[0], "json": {**out[0]["json"], "id": b.camera}})
    return out


# Checked by test_walk_the_live_socket: 4401 without credentials, then per message.
SOCKET_GUARDS = {
    "/api/v1/live": "authenticated; per message: alerts:read | events:read | cameras:read"
}


def _order(key: str) -> tuple[int, str]:
    method = key.split(" ", 1)[0]
    return ({"GET": 0, "POST": 1, "PATCH": 2, "DELETE": 3}.get(method, 4), key)


def test_route_table_has_not_drifted() -> None:
    table = route_table(create_app())
    if os.environ.get("SENTINEL_UPDATE_ROUTE_TABLE") == "1":
        TABLE.write_text(json.dumps(table, indent=2) + "\n")
    committed = json.loads(TABLE.read_text())
    assert table == committed, (
        "the route→scope table changed; if intended, regenerate tests/route_scopes.json with "
        "SENTINEL_UPDATE_ROUTE_TABLE=1 and review the diff"
    )


def test_every_guarded_route_has_scopes_or_is_meant_public() -> None:
    public = {k for k, v in route_table(create_app()).items() if v == "public"}
    assert public == {
        "GET /health",
        "GET /health/ready",
        "GET /.well-known/jwks.json",
        "POST /api/v1/auth/token",
        "POST /api/v1/auth/refresh",
        "POST /api/v1/auth/session",
        # authenticated by signatures instead (sentinel/api/notify.py)
        "POST /api/v1/notifications/sms/status",
        "GET /api/v1/notifications/media/{kind}/{alert_id}",
    }


def every_camera_routes(app: FastAPI) -> set[str]:
    """``"METHOD /path"`` of every route guarded by ``authorize_every_camera``."""
    found: set[str] = set()
    for path, route in _api_routes(app.routes):
        stack = list(route.dependant.dependencies)
        while stack:
            dep = stack.pop()
            if dep.call is authorize_every_camera:
                found |= {f"{method} {path}" for method in route.methods or ()}
            stack.extend(dep.dependencies)
    return found


def test_routes_over_every_camera_refuse_limited_principals() -> None:
    """The routes the walk expects to refuse camera-limited principals are exactly those the
    app guards so: a route that loses the guard (or gains it) fails here, not only in a leak."""
    assert every_camera_routes(create_app()) == EVERY_CAMERA


def _targets_other(req: dict[str, Any], hidden: Objects) -> bool:
    """Whether the request names camera B or one of its objects (in its path or body)."""
    asked = req["url"] + json.dumps(req.get("json") or {})
    return any(marker in asked for marker in (hidden.camera, *hidden.ids))


def _shows_own(path: str, body: str, own: Objects) -> bool:
    """Whether a list route's answer holds camera A's object."""
    wanted = {
        "event": own.event,
        "alert": own.alert,
        "incident": own.incident,
        "export": own.export,
        "rule": own.rule,
        "suggestion": own.suggestion,
        "camera": f'"id":"{own.camera}"',
        "series": f'camera="{own.camera}"',
        "dataset": f'"name":"{own.dataset}"',
    }[LISTS_SHOW_A[path]]
    return wanted in body


@pytest.mark.parametrize("who", PRINCIPALS)
def test_walk_every_route(world: World, who: str) -> None:
    table = route_table(world.client.app)  # type: ignore[arg-type]
    headers = world.headers.get(who, {})
    principal_scopes: set[str] = set()
    if who != "anonymous":
        me = world.client.get("/api/v1/auth/me", headers=headers).json()
        principal_scopes = set(me["scopes"])
        assert (me["cameras"] is not None) == (who in LIMITED), me
    own, hidden = world.a, world.b
    for key in sorted(table, key=_order):
        method, path = key.split(" ", 1)
        guard = table[key]
        if method == "WS":
            continue  # test_walk_the_live_socket
        for req in _requests(world, method, path):
            r = world.client.request(headers=headers, **req)
            where = f"{who} {req['method']} {req['url']} -> {r.status_code} {r.text[:200]}"
            assert r.status_code < 500, where
            needed = (
                set(guard.removeprefix("scopes: ").split(" (")[0].split())
                if guard.startswith("scopes:")
                else set()
            )
            allowed = needed <= principal_scopes
            if guard == "public":
                pass
            elif who == "anonymous":
                assert r.status_code == 401, where
            elif (key in USER_ONLY and who in API_KEYS) or (key in EVERY_CAMERA and who in LIMITED):
                assert r.status_code == 403, where
            elif key == "POST /api/v1/cameras" and who in LIMITED and allowed:
                # Outside its limits: 403 for a new id; B (hidden, existing) is checked below.
                new_id = req["json"]["id"]
                if new_id in CREATABLE:
                    assert r.status_code == (201 if who in CREATABLE[new_id] else 403), where
            elif allowed:
                assert r.status_code not in (401, 403), where
            else:
                assert r.status_code == 403, where
            if key in VOICE_ROUTES and allowed and who != "anonymous":
                assert r.status_code == 200, where
            assert "argon2" not in r.text, where  # no password hash ever leaves
            if who == "anonymous" or not allowed or guard == "public":
                continue
            # What a caller may read of camera A, it gets: the walk must not pass by 404ing.
            if method == "GET" and not _targets_other(req, hidden):
                if any(x in req["url"] for x in (own.camera, *own.ids)):
                    assert r.status_code == 200, where
                if req["url"] in LISTS_SHOW_A:
                    assert r.status_code == 200 and _shows_own(req["url"], r.text, own), where
            if who in LIMITED:
                seen = r.text + " " + " ".join(f"{k}: {v}" for k, v in r.headers.items())
                for marker in hidden.markers:
                    assert marker not in seen, f"{where}: leaks {marker!r}"
                if _targets_other(req, hidden):
                    assert r.status_code in (403, 404), where
            elif method == "GET" and req["url"] in LISTS_SHOW_A:
                assert _shows_own(req["url"], r.text, hidden), where  # unrestricted: all


@pytest.mark.parametrize("who", PRINCIPALS)
def test_walk_the_live_socket(world: World, who: str) -> None:
    """The live socket refuses anonymous callers (4401) and hands each principal only its
    cameras' changes: B's alert is written first, so a limited principal that got anything of
    B would see it before A's."""
    assert "WS /api/v1/live" in route_table(world.client.app)  # type: ignore[arg-type]
    headers = world.headers.get(who, {})
    decision = AlertDecision(True, Severity.HIGH, "live walk", ("rule",), "look", DecidedBy.RULES)
    with world.client.websocket_connect("/api/v1/live", headers=headers) as ws:
        if who == "anonymous":
            with pytest.raises(WebSocketDisconnect) as refused:
                live_recv(ws)
            assert refused.value.code == 4401
            return
        assert live_recv(ws)["type"] == "hello"
        written = {
            obj.camera: world.services.agent.alerts.record_rule_decision(
                str(uuid.uuid4()), obj.camera, "person", decision
            ).id
            for obj in (world.b, world.a)
        }
        expected = [written[world.a.camera]] if who in LIMITED else list(written.values())
        got: list[str] = []
        while len(got) < len(expected):
            message = live_recv(ws)
            if who in LIMITED:
                text = json.dumps(message)
                for marker in (*world.b.markers, written[world.b.camera]):
                    assert marker not in text, f"{who}: live message leaks {marker!r}"
            if message["type"] == "alert":
                got.append(message["id"])
        assert got == expected, who
