"""Ask and the knowledge base through the HTTP API: the real embedder and index, SQLite and
PostgreSQL, and the alert agent's backend router over the fake OpenAI server (streaming).

A limited user never gets citations of other cameras; counts come from the database; nothing
relevant is said so without the LLM; the LLM down gives a marked retrieval-only answer.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy.engine import Engine

from sentinel.agent.alert_agent import AlertAgent, BackendConfig
from sentinel.api.deps import SearchServices, Services
from sentinel.domain.breaker import BreakerState
from sentinel.domain.types import Box, EventState
from sentinel.gateway.roles import Role
from sentinel.models.embedder import TextEmbedder
from sentinel.search.index import VectorIndex
from sentinel.search.kb import KB_COLLECTION, KnowledgeBase
from sentinel.search.service import SearchService
from sentinel.store.alert_repo import AlertRepository
from sentinel.store.incident_repo import IncidentRepository
from sentinel.store.kb_repo import KbRepository
from sentinel.store.search_queue_repo import SearchQueue
from tests.utils.auth import AuthedUser, add_user
from tests.utils.fake_openai import FakeOpenAI, fake_openai_server
from tests.utils.pdf import text_pdf
from tests.utils.services import make_services

COUNT_Q = "How many people did the demo camera see in the last ten minutes?"
POST_ORDERS = b"""# Post orders

General rules for the guards of the site.

## Night shift

### Gate checks
Guards check the north gate every two hours between 22:00 and 06:00 and log each round.

## Visitors
Visitors sign in at reception and wear a visitor badge at all times.
"""


@pytest.fixture(scope="module")
def embedder() -> TextEmbedder:
    return TextEmbedder(threads=1)


@pytest.fixture
def fake() -> Iterator[FakeOpenAI]:
    # One per test: langchain-openai caches its async HTTP client per base URL, and a kept-alive
    # connection of an earlier test's event loop (TestClient runs one per test) fails later.
    with fake_openai_server(content="unused") as server:
        yield server


@pytest.fixture
def agent(fake: FakeOpenAI) -> AlertAgent:
    return AlertAgent(
        [BackendConfig("fake", base_url=fake.base_url, model="fake-gpt", timeout_s=10)],
        daily_token_budget=100_000,
    )


@pytest.fixture
def services(
    store_engine: Engine, tmp_path: Path, embedder: TextEmbedder, agent: AlertAgent
) -> Services:
    services = make_services(store_engine, tmp_path)
    service = SearchService(
        VectorIndex(tmp_path / "search"),
        embedder.embed,
        events=services.events,
        incidents=IncidentRepository(store_engine),
        cameras=services.cameras,
        queue=SearchQueue(store_engine),
        alerts=AlertRepository(store_engine),
    )
    kb = KnowledgeBase(
        KbRepository(store_engine),
        VectorIndex(tmp_path / "search", collection=KB_COLLECTION),
        embedder.embed,
    )
    services.search = SearchServices(service, kb=kb, llm=agent)
    return services


def _event(services: Services, event_id: str, camera: str, label: str, ago_min: float) -> None:
    at = datetime.now(UTC) - timedelta(minutes=ago_min)
    services.events.upsert(
        EventState(
            id=event_id,
            camera_id=camera,
            label=label,
            track_id=abs(hash(event_id)) % 10_000,
            started_at=at,
            last_seen_at=at + timedelta(seconds=20),
            score=0.9,
            box=Box(100, 50, 160, 250),
            best_at=at,
            ended_at=at + timedelta(seconds=20),
            path=[(400.0, 200.0), (60.0, 200.0)],
            zones=["car_park"],
        ),
        None,
    )


@pytest.fixture
def seeded(services: Services) -> Services:
    services.cameras.upsert("demo", {"id": "demo", "source": "/v/a.mp4", "groups": ["front"]})
    services.cameras.upsert("gate", {"id": "gate", "source": "/v/b.mp4", "groups": ["front"]})
    services.cameras.upsert("dock", {"id": "dock", "source": "/v/c.mp4", "groups": ["back"]})
    for i, ago in enumerate((1, 3, 7)):  # three people on demo in the last ten minutes
        _event(services, f"demo-recent-{i}", "demo", "person", ago)
    _event(services, "demo-old", "demo", "person", 45)  # outside the window
    _event(services, "demo-car", "demo", "car", 2)  # not a person
    for i in range(3):
        _event(services, f"gate-{i}", "gate", "person", 2 + i)
    for i in range(2):
        _event(services, f"dock-{i}", "dock", "person", 4 + i)
    assert services.search is not None
    assert services.search.service.drain() == 10
    return services


def _ask(client: TestClient, user: AuthedUser, question: str, **params: Any) -> dict[str, Any]:
    resp = client.post(
        "/api/v1/ask", json={"question": question}, params=params, headers=user.headers
    )
    assert resp.status_code == 200, resp.text
    body: dict[str, Any] = resp.json()
    return body


def _sse(text: str) -> list[tuple[str, dict[str, Any]]]:
    events = []
    for block in text.strip().split("\n\n"):
        lines = dict(line.split(": ", 1) for line in block.splitlines())
        events.append((lines["event"], json.loads(lines["data"])))
    return events


def test_count_question_is_answered_from_the_database_with_citations(
    seeded: Services, client: TestClient, fake: FakeOpenAI
) -> None:
    admin = add_user(seeded.security, "root", Role.ADMIN)
    fake.set_content("The demo camera saw 3 people in the last 10 minutes [1] [2] [3].")
    body = _ask(client, admin, COUNT_Q)
    assert body["mode"] == "llm", body
    assert body["answer"].startswith("The demo camera saw 3 people")
    count = body["count"]
    assert count["total"] == 3 and count["camera_ids"] == ["demo"] and count["labels"] == ["person"]
    assert count["by_camera"] == {"demo": 3}
    assert [c["id"] for c in body["citations"]] == [f"demo-recent-{i}" for i in range(3)]
    assert all(c["kind"] == "event" and c["started_at"] for c in body["citations"])
    # The LLM saw the database's count and the sources it cites.
    prompt = fake.requests[-1]["messages"][-1]["content"]
    assert "3 people were seen on camera demo in the last 10 minutes" in prompt
    # A model that miscounts: the database's sentence stands, marked.
    fake.set_content("The demo camera saw 12 people.")
    wrong = _ask(client, admin, COUNT_Q)
    assert wrong["mode"] == "retrieval_only"
    assert wrong["answer"].startswith("3 people were seen on camera demo in the last 10 minutes")


def test_ask_with_and_without_relevant_history(
    seeded: Services, client: TestClient, fake: FakeOpenAI
) -> None:
    admin = add_user(seeded.security, "root", Role.ADMIN)
    fake.set_content("A person walked left in the car park [1].")
    found = _ask(client, admin, "person walking left in the car park")
    assert found["mode"] == "llm" and found["count"] is None
    assert found["citations"] and all(c["score"] >= 0.35 for c in found["citations"])
    assert {c["kind"] for c in found["citations"]} == {"event"}
    before = fake.request_count
    nothing = _ask(client, admin, "What is the capital of France?")
    assert nothing["mode"] == "nothing_found" and nothing["citations"] == []
    assert "found nothing relevant" in nothing["answer"]
    assert fake.request_count == before  # the LLM was not asked to invent


def test_a_limited_user_never_gets_other_cameras(
    seeded: Services, client: TestClient, fake: FakeOpenAI
) -> None:
    docker = add_user(seeded.security, "docker", Role.VIEWER, ["group:back"])
    fake.set_content("A person walked left [1].")
    body = _ask(client, docker, "person walking left in the car park")
    assert body["citations"] and {c["camera_id"] for c in body["citations"]} == {"dock"}
    prompt = fake.requests[-1]["messages"][-1]["content"]
    assert "gate" not in prompt and "demo" not in prompt
    # Counting: only the cameras it may see, even when it names another one.
    fake.set_content("I counted 2 people [1] [2].")
    counted = _ask(client, docker, "how many people in the last hour on the demo camera?")
    assert counted["count"]["cameras_counted"] == ["dock"]
    assert counted["count"]["total"] == 2
    assert {c["camera_id"] for c in counted["citations"]} == {"dock"}


def test_stream_is_server_sent_events(
    seeded: Services, client: TestClient, fake: FakeOpenAI
) -> None:
    admin = add_user(seeded.security, "root", Role.ADMIN)
    fake.set_content("The demo camera saw 3 people in the last 10 minutes [1].")
    for kwargs in ({"params": {"stream": "true"}}, {"headers": {"Accept": "text/event-stream"}}):
        headers = {**admin.headers, **kwargs.get("headers", {})}
        resp = client.post(
            "/api/v1/ask",
            json={"question": COUNT_Q},
            params=kwargs.get("params", {}),
            headers=headers,
        )
        assert resp.status_code == 200
        assert resp.headers["content-type"].startswith("text/event-stream")
        events = _sse(resp.text)
        kinds = [e for e, _ in events]
        assert kinds[0] == "sources" and kinds[-1] == "done" and "delta" in kinds
        assert events[0][1]["count"]["total"] == 3
        deltas = "".join(d["text"] for e, d in events if e == "delta")
        assert deltas == events[-1][1]["answer"] and events[-1][1]["mode"] == "llm"


def test_llm_down_gives_a_marked_retrieval_answer_and_opens_the_breaker(
    seeded: Services, client: TestClient, fake: FakeOpenAI, agent: AlertAgent
) -> None:
    admin = add_user(seeded.security, "root", Role.ADMIN)
    fake.set_mode("fail")
    for _ in range(3):
        body = _ask(client, admin, COUNT_Q)
        assert body["mode"] == "retrieval_only" and "500" in body["llm_error"]
        assert body["answer"].startswith("3 people were seen on camera demo")
    assert agent.health()[0]["state"] == BreakerState.OPEN
    calls = fake.request_count
    body = _ask(client, admin, COUNT_Q)  # the breaker is open: no call goes out
    assert body["mode"] == "retrieval_only" and "no backend" in body["llm_error"]
    assert fake.request_count == calls


@pytest.mark.parametrize(
    ("body", "where"),
    [
        ({"question": ""}, "question"),
        ({"question": "   "}, "question"),
        ({"question": "x" * 4096}, "question"),
        ({"question": "é" * 2048}, "question"),
        ({}, "question"),
        ({"question": 5}, "question"),
    ],
)
def test_bad_questions_get_422(
    seeded: Services, client: TestClient, body: dict[str, Any], where: str
) -> None:
    admin = add_user(seeded.security, "root", Role.ADMIN)
    resp = client.post("/api/v1/ask", json=body, headers=admin.headers)
    assert resp.status_code == 422, resp.text
    detail = resp.json()["detail"]
    assert isinstance(detail, list) and detail[0]["loc"][-1] == where


def _put(client: TestClient, user: AuthedUser, name: str, data: bytes, media_type: str) -> Any:
    return client.put(
        f"/api/v1/kb/documents/{name}",
        content=data,
        headers={**user.headers, "Content-Type": media_type},
    )


def test_knowledge_base_upload_version_cite_delete(
    seeded: Services, client: TestClient, fake: FakeOpenAI
) -> None:
    admin = add_user(seeded.security, "root", Role.ADMIN)
    viewer = add_user(seeded.security, "eve", Role.VIEWER)
    gate_admin = add_user(seeded.security, "gadmin", Role.ADMIN, ["gate"])
    assert _put(client, viewer, "post-orders.md", POST_ORDERS, "text/markdown").status_code == 403
    assert (
        _put(client, gate_admin, "post-orders.md", POST_ORDERS, "text/markdown").status_code == 403
    )
    resp = _put(client, admin, "post-orders.md", POST_ORDERS, "text/markdown")
    assert resp.status_code == 201, resp.text
    v1 = resp.json()
    assert v1["version"] == 1 and v1["sections"] == 3 and v1["replaced_sections"] == 0

    fake.set_content("Guards check the north gate every two hours [1].")
    body = _ask(client, viewer, "How often must guards check the north gate at night?")
    assert body["mode"] == "llm", body
    docs = [c for c in body["citations"] if c["kind"] == "document"]
    assert docs[0]["document"] == "post-orders.md" and docs[0]["version"] == 1
    assert docs[0]["section"] == "Post orders > Night shift > Gate checks"

    # Version 2 replaces the sections of version 1 in the index.
    v2_text = POST_ORDERS.replace(b"every two hours", b"every hour")
    v2 = _put(client, admin, "post-orders.md", v2_text, "text/markdown").json()
    assert v2["version"] == 2 and v2["replaced_sections"] == 3
    fake.set_content("Guards check the north gate every hour [1].")
    body = _ask(client, viewer, "How often must guards check the north gate at night?")
    docs = [c for c in body["citations"] if c["kind"] == "document"]
    assert {d["version"] for d in docs} == {2}
    assert all("every two hours" not in d["text"] for d in docs)
    detail = client.get("/api/v1/kb/documents/post-orders.md", headers=viewer.headers).json()
    assert [v["version"] for v in detail["versions"]] == [2, 1]
    assert [v["current"] for v in detail["versions"]] == [True, False]
    assert "every hour" in detail["section_list"][1]["text"]

    # A PDF, then a broken one: rejected whole, nothing stored.
    pdf = text_pdf([["1 Fire alarm", "Evacuate through the east exit and call 112."]])
    assert _put(client, admin, "fire.pdf", pdf, "application/pdf").status_code == 201
    broken = _put(client, admin, "broken.pdf", pdf[: len(pdf) // 2], "application/pdf")
    assert broken.status_code == 422 and isinstance(broken.json()["detail"], list)
    not_text = _put(client, admin, "notes.txt", b"\x00\x01binary", "text/plain")
    assert not_text.status_code == 422
    listing = client.get("/api/v1/kb/documents", headers=viewer.headers).json()["items"]
    assert [(d["name"], d["version"]) for d in listing] == [("fire.pdf", 1), ("post-orders.md", 2)]

    # Deleting removes its sections from what ask cites.
    assert (
        client.delete("/api/v1/kb/documents/post-orders.md", headers=viewer.headers).status_code
        == 403
    )
    assert (
        client.delete("/api/v1/kb/documents/post-orders.md", headers=admin.headers).status_code
        == 204
    )
    assert (
        client.get("/api/v1/kb/documents/post-orders.md", headers=admin.headers).status_code == 404
    )
    assert (
        client.delete("/api/v1/kb/documents/post-orders.md", headers=admin.headers).status_code
        == 404
    )
    body = _ask(client, viewer, "How often must guards check the north gate at night?")
    assert all(c.get("document") != "post-orders.md" for c in body["citations"])
    assert seeded.search is not None and seeded.search.kb is not None
    assert seeded.search.kb.index.count() == 1  # the fire PDF's one section
