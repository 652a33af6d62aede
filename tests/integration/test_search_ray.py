"""Search on the real platform: a camera's closed events reach the index through the queue,
the indexer actor and the Embedder deployment, and the API finds them by words."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from typing import Any

import pytest

from tests.integration.conftest import Stack, wait_for
from tests.utils.media import h264_clip


@pytest.fixture(scope="module")
def clip(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return h264_clip(tmp_path_factory.mktemp("search-clips"), seconds=12)


def test_events_are_indexed_and_found_by_words(sentinel_stack: Stack, clip: Path) -> None:
    stack = sentinel_stack
    r = stack.http.post(
        "/api/v1/cameras",
        json={
            "id": "search-cam",
            "name": "Plaza",
            "description": "A paved plaza with people walking past.",
            "source": str(clip),
            "realtime": False,
            "detect_fps": 5,
        },
    )
    assert r.status_code == 201, r.text
    stack.wait_state("search-cam", "finished", timeout=180)
    people = stack.events(camera_id="search-cam", label="person")
    assert people and all(e["ended_at"] is not None for e in people)

    def found() -> dict[str, Any] | None:
        resp = stack.http.get(
            "/api/v1/search",
            params={
                "q": "person walking in the plaza",
                "camera_id": "search-cam",
                "kind": "event",
                "limit": 50,
            },
        )
        assert resp.status_code == 200, resp.text
        body: dict[str, Any] = resp.json()
        return body if body["index_backlog"] == 0 and body["items"] else None

    body = wait_for(found, timeout=120, what="the camera's events indexed")
    ids = {h["id"] for h in body["items"]}
    assert ids == {e["id"] for e in stack.events(camera_id="search-cam")}  # every closed one
    best = body["items"][0]
    assert best["kind"] == "event" and best["camera_id"] == "search-cam"
    assert best["label"] == "person"  # the query asks for a person: people rank first
    assert "seen by camera Plaza" in best["snippet"]
    assert "wearing" in best["snippet"]  # colours read from the snapshot
    assert best["snapshot_url"].endswith("/snapshot.jpg")
    similar = stack.http.get(f"/api/v1/events/{best['id']}/similar", params={"limit": 3})
    assert similar.status_code == 200, similar.text
    assert best["id"] not in {h["id"] for h in similar.json()["items"]}
    looks = stack.http.get(
        f"/api/v1/events/{best['id']}/similar", params={"by": "appearance", "limit": 3}
    )
    assert looks.status_code == 200, looks.text
    looking = looks.json()["items"]
    assert looking and best["id"] not in {h["id"] for h in looking}
    assert all(h["kind"] == "event" for h in looking)

    # Ask and the knowledge base on the platform: the sections live in the indexer actor's
    # "kb" collection; the stack runs no agent, so answers are retrieval-only, marked.
    doc = b"# Plaza\n\n## Patrols\nGuards walk the plaza every thirty minutes after dark.\n"
    put = stack.http.put(
        "/api/v1/kb/documents/plaza.md", content=doc, headers={"Content-Type": "text/markdown"}
    )
    assert put.status_code == 201, put.text
    asked = stack.http.post(
        "/api/v1/ask", json={"question": "How often do guards walk the plaza after dark?"}
    )
    assert asked.status_code == 200, asked.text
    answer = asked.json()
    assert answer["mode"] == "retrieval_only" and answer["llm_error"]
    sections = [c for c in answer["citations"] if c["kind"] == "document"]
    assert sections and sections[0]["section"] == "Plaza > Patrols"
    counted = stack.http.post(
        "/api/v1/ask", json={"question": "How many people did search-cam see today?"}
    ).json()
    window = counted["count"]
    since, until = datetime.fromisoformat(window["since"]), datetime.fromisoformat(window["until"])
    # The database's count, checked against the events API over the same window.
    in_window = [
        e
        for e in stack.events(camera_id="search-cam", label="person")
        if since <= datetime.fromisoformat(e["started_at"]) <= until
    ]
    assert window["total"] == len(in_window) > 0, (window, [e["started_at"] for e in people])
    assert {c["id"] for c in counted["citations"]} <= {e["id"] for e in in_window}
    assert stack.http.delete("/api/v1/kb/documents/plaza.md").status_code == 204

    # A subject's erasure on the platform: the event leaves the indexer actor's index (checked
    # gone through the actor), the database and search.
    gone = best["id"]
    erased = stack.http.post(
        "/api/v1/privacy/requests", json={"kind": "erasure", "event_ids": [gone]}
    )
    assert erased.status_code == 201, erased.text
    report = erased.json()
    assert report["status"] == "done", report
    step = next(s for s in report["steps"] if s["store"] == "search_index")
    assert step["status"] == "done" and gone in step["ids"], step
    after = stack.http.get(
        "/api/v1/search",
        params={"q": "person walking in the plaza", "camera_id": "search-cam", "limit": 50},
    )
    assert after.status_code == 200 and gone not in {h["id"] for h in after.json()["items"]}
    assert stack.http.get(f"/api/v1/events/{gone}").status_code == 404
    assert stack.http.delete("/api/v1/cameras/search-cam").status_code == 204
