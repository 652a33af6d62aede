"""The annotation queue, review, quality and datasets through the HTTP API (SQLite and
PostgreSQL, a local object store): real users, real JPEG frames, real dataset files."""

from __future__ import annotations

import json
from typing import Any

import pytest
from fastapi.testclient import TestClient

from sentinel.api.deps import AnnotationServices, Services
from sentinel.gateway.roles import Role
from sentinel.train.dataset_store import iter_items, read_dataset
from sentinel.train.datasets import DatasetError, parse_yolo_lines, sha256_hex
from tests.utils.annotation import HEIGHT, WIDTH, candidate, jpeg
from tests.utils.api import api_client
from tests.utils.auth import AuthedUser, add_user

API = "/api/v1"
PERSON: dict[str, Any] = {"label": "person", "x1": 4.0, "y1": 6.0, "x2": 30.0, "y2": 40.0}


@pytest.fixture
def ann(services: Services) -> AnnotationServices:
    assert services.annotation is not None
    return services.annotation


@pytest.fixture
def users(services: Services) -> dict[str, AuthedUser]:
    sec = services.security
    return {
        "ann": add_user(sec, "ann", Role.ANNOTATOR),
        "bob": add_user(sec, "bob", Role.ANNOTATOR),
        "rev": add_user(sec, "rev", Role.OPERATOR),
        "admin": add_user(sec, "boss", Role.ADMIN),
        "gate_ann": add_user(sec, "gate-ann", Role.ANNOTATOR, ["gate"]),
        "gate_rev": add_user(sec, "gate-rev", Role.OPERATOR, ["gate"]),
        "gate_admin": add_user(sec, "gate-admin", Role.ADMIN, ["gate"]),
    }


class As:
    """Requests as one user."""

    def __init__(self, client: TestClient, user: AuthedUser) -> None:
        self.client, self.headers = client, user.headers

    def __call__(self, method: str, path: str, **kw: Any) -> Any:
        return self.client.request(method, API + path, headers=self.headers, **kw)


def put(who: As, item_id: str, boxes: list[dict[str, Any]], version: int) -> Any:
    return who(
        "PUT", f"/annotation/items/{item_id}/annotation", json={"boxes": boxes, "version": version}
    )


def accept(who: As, reviewer: As, item_id: str, boxes: list[dict[str, Any]]) -> None:
    r = put(who, item_id, boxes, 0)
    assert r.status_code == 200, r.text
    r = reviewer("POST", f"/annotation/items/{item_id}/review", json={"decision": "accept"})
    assert r.status_code == 200, r.text


def test_annotate_validation_and_stale_versions(
    client: TestClient, ann: AnnotationServices, users: dict[str, AuthedUser]
) -> None:
    low, high = ann.repo.enqueue([candidate(1, score=0.2), candidate(2, score=0.9)])
    a = As(client, users["ann"])
    r = a("GET", "/annotation/queue")
    assert r.status_code == 200, r.text
    assert [i["id"] for i in r.json()] == [high, low]
    assert r.json()[0]["gold"] is None and r.json()[0]["prelabels"][0]["score"] == pytest.approx(
        0.3
    )
    detail = a("GET", f"/annotation/items/{low}").json()
    assert (detail["width"], detail["height"], detail["version"]) == (WIDTH, HEIGHT, 0)
    assert detail["annotation"] is None and "person" in detail["labels"]
    frame = a("GET", f"/annotation/items/{low}/frame")
    assert frame.headers["content-type"] == "image/jpeg" and frame.content == jpeg(1)

    bad = [
        PERSON,
        {**PERSON, "x2": WIDTH + 5.0},
        {**PERSON, "label": "unicorn"},
        {**PERSON, "x2": PERSON["x1"]},
        {**PERSON, "y2": PERSON["y1"] + 1.0},
    ]
    r = put(a, low, bad, 0)
    assert r.status_code == 422, r.text
    errors = r.json()["detail"]
    assert [e["loc"] for e in errors] == [["body", "boxes", i] for i in (1, 2, 3, 4)]
    assert f"outside the {WIDTH}x{HEIGHT} image" in errors[0]["msg"]
    assert "label 'unicorn' is not one the model knows" in errors[1]["msg"]
    assert "x1 < x2" in errors[2]["msg"] and "minimum 2 px" in errors[3]["msg"]
    assert a("GET", f"/annotation/items/{low}").json()["version"] == 0  # nothing stored
    r = a(
        "PUT",
        f"/annotation/items/{low}/annotation",
        json={"boxes": [{**PERSON, "x1": "a"}], "version": 0},
    )
    assert r.status_code == 422

    r = put(a, low, [PERSON], 0)
    assert r.status_code == 200, r.text
    assert (r.json()["version"], r.json()["status"], r.json()["boxes"][0]["label"]) == (
        1,
        "submitted",
        "person",
    )
    r = put(a, low, [], 0)
    assert r.status_code == 409 and "at version 1, not 0" in r.json()["detail"]
    assert put(a, low, [], 1).status_code == 200  # an edit before review
    detail = a("GET", f"/annotation/items/{low}").json()
    assert detail["status"] == "submitted" and detail["annotation"]["version"] == 2
    assert detail["annotation"]["boxes"] == []
    assert a("GET", "/annotation/items/nope").status_code == 404
    assert a("GET", "/annotation/queue?status=submitted&mine=true").json()[0]["id"] == low


def test_review_returns_to_the_annotator_then_accepts(
    client: TestClient, services: Services, ann: AnnotationServices, users: dict[str, AuthedUser]
) -> None:
    [item] = ann.repo.enqueue([candidate(1)])
    a, b, rev = As(client, users["ann"]), As(client, users["bob"]), As(client, users["rev"])
    assert put(a, item, [PERSON], 0).status_code == 200
    r = a("POST", f"/annotation/items/{item}/review", json={"decision": "accept"})
    assert r.status_code == 403  # annotators do not review
    r = rev(
        "POST",
        f"/annotation/items/{item}/review",
        json={"decision": "return", "note": "add the bag"},
    )
    assert r.status_code == 200, r.text
    assert (r.json()["status"], r.json()["annotator"], r.json()["version"]) == (
        "returned",
        users["ann"].id,
        1,
    )
    mine = a("GET", "/annotation/queue?status=returned&mine=true").json()
    assert [i["id"] for i in mine] == [item]
    assert a("GET", f"/annotation/items/{item}").json()["reviews"][0]["note"] == "add the bag"
    r = put(b, item, [PERSON], 1)
    assert r.status_code == 409 and "held by annotator" in r.json()["detail"]
    r = rev("POST", f"/annotation/items/{item}/review", json={"decision": "accept"})
    assert r.status_code == 409 and "only a submitted item" in r.json()["detail"]
    bag = {**PERSON, "label": "handbag", "x1": 20.0, "x2": 28.0}
    assert put(a, item, [PERSON, bag], 1).status_code == 200
    r = rev("POST", f"/annotation/items/{item}/review", json={"decision": "accept", "version": 1})
    assert r.status_code == 409  # reviewing a version that is no longer the latest
    r = rev("POST", f"/annotation/items/{item}/review", json={"decision": "accept", "version": 2})
    assert r.status_code == 200 and r.json()["status"] == "accepted"
    r = put(a, item, [], 2)
    assert r.status_code == 409 and "final" in r.json()["detail"]
    r = rev("POST", f"/annotation/items/{item}/review", json={"decision": "maybe"})
    assert r.status_code == 422

    entries, _ = services.security.audit.list(limit=50)
    changes = [
        (e.action, e.detail.get("version"), e.detail.get("decision"))
        for e in reversed(entries)
        if e.outcome == "success" and "annotation" in e.action
    ]
    assert changes == [
        ("PUT /annotation/items/{item_id}/annotation", 1, None),
        ("POST /annotation/items/{item_id}/review", 1, "return"),
        ("PUT /annotation/items/{item_id}/annotation", 2, None),
        ("POST /annotation/items/{item_id}/review", 2, "accept"),
    ]
    assert all(
        json.loads(e.target) == {"item_id": item} for e in entries if "annotation/" in e.action
    )


def test_quality_score_with_a_hidden_gold_item(
    client: TestClient, ann: AnnotationServices, users: dict[str, AuthedUser]
) -> None:
    src, other = ann.repo.enqueue([candidate(1), candidate(2)])
    a, b, rev = As(client, users["ann"]), As(client, users["bob"]), As(client, users["rev"])
    accept(a, rev, src, [PERSON])
    r = rev("POST", f"/annotation/items/{src}/gold", json={})
    assert r.status_code == 201, r.text
    gold = r.json()["id"]
    assert r.json()["gold"] is True and r.json()["status"] == "queued"
    no_reference = rev("POST", f"/annotation/items/{other}/gold", json={})
    assert no_reference.status_code == 409
    assert a("POST", f"/annotation/items/{src}/gold", json={}).status_code == 403

    queue = b("GET", "/annotation/queue").json()
    shown = next(i for i in queue if i["id"] == gold)
    assert shown["gold"] is None and shown["status"] == "queued"
    detail = b("GET", f"/annotation/items/{gold}")
    assert detail.json()["annotation"] is None  # not ann's accepted boxes: that is the reference
    shown_boxes = [{k: p[k] for k in PERSON} for p in detail.json()["prelabels"]]
    assert PERSON not in shown_boxes and "reference" not in detail.text
    far = {**PERSON, "x1": 40.0, "x2": 60.0}
    r = put(b, gold, [PERSON, far], 0)  # one match, one extra: F1 = 2 * 1 / (2 + 1)
    assert r.status_code == 200 and r.json()["status"] == "submitted"
    assert set(r.json()) == {"item_id", "version", "annotator", "boxes", "created_at", "status"}
    assert gold not in [i["id"] for i in b("GET", "/annotation/queue").json()]
    assert gold in [i["id"] for i in a("GET", "/annotation/queue").json()]
    assert put(b, other, [PERSON], 0).status_code == 200
    rev("POST", f"/annotation/items/{other}/review", json={"decision": "return"})

    assert a("GET", "/annotation/annotators").status_code == 403
    r = rev("GET", "/annotation/annotators")
    assert r.status_code == 200, r.text
    q = {row["username"]: row for row in r.json()}
    assert q["ann"]["review_agreement"] == 1.0 and q["ann"]["gold_f1"] is None
    assert (q["ann"]["reviewed"], q["ann"]["accepted"], q["ann"]["score"]) == (1, 1, 1.0)
    bob = q["bob"]
    assert (bob["submitted"], bob["reviewed"], bob["returned"], bob["gold_items"]) == (2, 1, 1, 1)
    assert bob["review_agreement"] == 0.0 and bob["gold_f1"] == pytest.approx(2 / 3)
    assert bob["score"] == pytest.approx(1 / 3)


def _build(who: As, **body: Any) -> Any:
    return who("POST", "/datasets", json={"name": "site", **body})


def test_dataset_build_manifest_hashes_and_immutable_versions(
    client: TestClient, services: Services, ann: AnnotationServices, users: dict[str, AuthedUser]
) -> None:
    a, rev, admin = As(client, users["ann"]), As(client, users["rev"]), As(client, users["admin"])
    assert _build(admin).status_code == 409  # nothing accepted yet
    items = ann.repo.enqueue([candidate(1), candidate(2, camera="yard"), candidate(3)])
    bag = {"label": "handbag", "x1": 0.0, "y1": 0.0, "x2": float(WIDTH), "y2": float(HEIGHT)}
    accept(a, rev, items[0], [PERSON, bag])
    accept(a, rev, items[1], [])  # a negative example
    accept(a, rev, items[2], [PERSON])
    first = ann.repo.get(items[2])
    assert first is not None
    services.objects.delete(first.image_key)  # a lost frame is skipped, not fatal

    assert rev("POST", "/datasets", json={"name": "site"}).status_code == 403  # models:admin
    r = _build(admin)
    assert r.status_code == 201, r.text
    v1 = r.json()
    assert (v1["version"], v1["items"], v1["boxes"], v1["skipped"]) == (
        1,
        2,
        2,
        {"missing_frame": 1},
    )
    assert v1["camera_ids"] == ["gate", "yard"] and v1["labels"][0] == "person"
    assert v1["manifest_key"] == "datasets/site/v1/manifest.json" and v1["locked"] is False

    version = ann.datasets.get("site", 1)
    assert version is not None and version.manifest_sha256 == sha256_hex(
        services.objects.get(version.manifest_key)
    )
    manifest = read_dataset(services.objects, version)
    read = {
        item.id: (item, image, label)
        for item, image, label in iter_items(services.objects, manifest)
    }
    assert set(read) == {items[0], items[1]}
    item, image, label = read[items[0]]
    assert image == jpeg(1) and (item.camera_id, item.frame_index, item.boxes) == ("gate", 1, 2)
    boxes = parse_yolo_lines(label.decode(), manifest.labels, item.width, item.height)
    assert [b.label for b in boxes] == ["person", "handbag"]
    assert boxes[0].x1 == pytest.approx(PERSON["x1"], abs=1e-3) and boxes[1].x2 == pytest.approx(
        WIDTH, abs=1e-3
    )
    assert read[items[1]][2] == b""

    r = rev("GET", "/datasets/site/1")
    assert r.status_code == 200 and r.json()["manifest"]["items"][0]["image_sha256"] in {
        sha256_hex(jpeg(1)),
        sha256_hex(jpeg(2)),
    }
    v1_manifest = services.objects.get(version.manifest_key)
    r = _build(admin, camera_ids=["yard"])
    assert r.status_code == 201 and (r.json()["version"], r.json()["items"]) == (2, 1)
    assert services.objects.get(version.manifest_key) == v1_manifest  # v1 never rewritten
    assert [d["version"] for d in rev("GET", "/datasets?name=site").json()] == [2, 1]

    ann.datasets.lock("site", 1, "run-7")
    r = rev("GET", "/datasets/site/1")
    assert r.json()["locked_by"] == ["run-7"] and r.json()["manifest"]["locked_by"] == ["run-7"]
    r = admin("DELETE", "/datasets/site/1")
    assert r.status_code == 409 and "run-7" in r.json()["detail"]
    assert services.objects.get(version.manifest_key) == v1_manifest
    assert admin("DELETE", "/datasets/site/2").status_code == 204
    assert rev("GET", "/datasets/site/2").status_code == 404
    assert list(services.objects.iter_keys("datasets/site/v2/")) == []
    assert _build(admin).json()["version"] == 3  # numbers are never reused

    # A changed byte is caught on reading, naming the file.
    key = f"datasets/site/v1/images/{items[0]}.jpg"
    data = bytearray(services.objects.get(key))
    data[-3] ^= 0xFF
    services.objects.put(key, bytes(data))
    with pytest.raises(DatasetError, match=rf"images/{items[0]}\.jpg: sha256"):
        list(iter_items(services.objects, manifest))


def test_hidden_cameras_are_404(
    client: TestClient, ann: AnnotationServices, users: dict[str, AuthedUser]
) -> None:
    gate, yard = ann.repo.enqueue([candidate(1), candidate(2, camera="yard")])
    a, rev, admin = As(client, users["ann"]), As(client, users["rev"]), As(client, users["admin"])
    accept(a, rev, gate, [PERSON])
    accept(a, rev, yard, [PERSON])
    ga, gr, gadmin = (As(client, users[k]) for k in ("gate_ann", "gate_rev", "gate_admin"))
    assert [i["id"] for i in ga("GET", "/annotation/queue?status=accepted").json()] == [gate]
    assert ga("GET", "/annotation/queue?camera_id=yard").status_code == 404
    for path in (f"/annotation/items/{yard}", f"/annotation/items/{yard}/frame"):
        assert ga("GET", path).status_code == 404
    assert put(ga, yard, [PERSON], 1).status_code == 404
    assert (
        gr("POST", f"/annotation/items/{yard}/review", json={"decision": "return"}).status_code
        == 404
    )
    assert gr("POST", f"/annotation/items/{yard}/gold", json={}).status_code == 404
    assert [row["username"] for row in gr("GET", "/annotation/annotators").json()] == ["ann"]
    assert [row["accepted"] for row in gr("GET", "/annotation/annotators").json()] == [1]

    assert _build(admin).json()["camera_ids"] == ["gate", "yard"]
    assert gadmin("GET", "/datasets").json() == []
    assert gadmin("GET", "/datasets/site/1").status_code == 404
    assert gadmin("DELETE", "/datasets/site/1").status_code == 404
    assert _build(gadmin, camera_ids=["yard"]).status_code == 404
    r = _build(gadmin)  # a camera-limited admin builds from their cameras only
    assert r.status_code == 201 and r.json()["camera_ids"] == ["gate"]
    assert [d["version"] for d in gadmin("GET", "/datasets").json()] == [2]


def test_annotation_off_answers_404(services: Services, users: dict[str, AuthedUser]) -> None:
    services.annotation = None
    with api_client(services) as c:
        admin = As(c, users["admin"])
        assert admin("GET", "/annotation/queue").status_code == 404
        assert admin("GET", "/datasets").status_code == 404
