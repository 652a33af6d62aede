"""The learning loop as an operator of ``make demo`` walks it, on the shared Ray stack, through
the HTTP API only (what the dashboard and the annotation pages call):

camera with recorded footage and alerts -> an alert marked false positive -> a mining job ->
the annotation queue (the marked stretch's frames among the items) -> corrected boxes submitted
with a browser session and its CSRF token, as /annotate posts them -> accepted on review ->
datasets built -> a tiny training run followed until done -> the run in MLflow (read with
mlflow's client) -> the version in GET /models -> canary on the camera -> promote -> roll back.

Each step exists and is tested on its own (test_mining_ray.py, test_annotation_api.py,
test_training_ray.py, test_models_ray.py, ...); this one proves they chain: every id a step
needs comes from the previous step's answer, on the demo's camera configuration and rules
(``sentinel.cli.demo_camera`` / ``demo_rules``) and the demo's learning-loop settings.

The run trains one epoch at a learning rate so small that the challenger keeps the champion's
person weights: only such a twin passes the gate in seconds (equal mAP, no more errors) under
the stack's ``train.gate_margin: 0``; a real run is judged against the default margin.
"""

from __future__ import annotations

import time
from datetime import datetime, timedelta
from typing import Any

import httpx
import pytest

from sentinel.cli import demo_camera, demo_rules
from tests.integration.conftest import Stack, run_camera_with_rules, wait_for
from tests.utils.media import h264_clip

CAM = "loop-demo"
ANNOTATOR = ("loop-annotator", "annotate-the-loop-42")
REVIEWER = ("loop-reviewer", "review-the-loop-42")
SLOW = 180.0  # a canary replica or a promotion's swap on 2 busy cores


def _ok(r: httpx.Response, status: int = 200) -> Any:
    assert r.status_code == status, f"{r.request.method} {r.request.url.path}: {r.text}"
    return r.json()


def _session(stack: Stack, username: str, password: str, role: str) -> httpx.Client:
    """A browser-like client: the user made by the admin, signed in on /api/v1/auth/session
    (httponly session cookie + CSRF cookie), echoing the CSRF token as the pages do."""
    _ok(
        stack.http.post(
            "/api/v1/users", json={"username": username, "password": password, "role": role}
        ),
        201,
    )
    browser = httpx.Client(base_url=stack.url, timeout=30.0)
    signed = _ok(
        browser.post("/api/v1/auth/session", data={"username": username, "password": password})
    )
    assert browser.cookies.get("sentinel_csrf") == signed["csrf_token"]
    browser.headers["X-CSRF-Token"] = signed["csrf_token"]
    return browser


def _corrected(item: dict[str, Any]) -> list[dict[str, Any]]:
    """What an annotator leaves on the canvas: the pre-labels, the first one's box tightened
    by 2 px on each side, and the page's wire format (label and corners, 2 decimals)."""
    boxes = [
        {
            k: (round(float(b[k]), 2) if k != "label" else b[k])
            for k in ("label", "x1", "y1", "x2", "y2")
        }
        for b in item["prelabels"]
    ]
    if boxes and boxes[0]["x2"] - boxes[0]["x1"] > 8 and boxes[0]["y2"] - boxes[0]["y1"] > 8:
        first = boxes[0]
        first.update(x1=first["x1"] + 2, y1=first["y1"] + 2, x2=first["x2"] - 2, y2=first["y2"] - 2)
    return boxes


@pytest.fixture(scope="module")
def demo_cam(sentinel_stack: Stack, tmp_path_factory: pytest.TempPathFactory) -> Stack:
    """The demo's camera (its zone, line, event recording) and rules, on the first 12 s of the
    sample as H.264, run to its end as fast as the detector goes."""
    stack = sentinel_stack
    clip = h264_clip(tmp_path_factory.mktemp("loop-clip"), seconds=12)
    camera = demo_camera(clip).model_copy(update={"id": CAM, "realtime": False, "detect_fps": 5})
    body = camera.model_dump(mode="json", exclude_none=True)
    rules = [
        {k: v for k, v in rule.items() if k != "id"} | {"cameras": [CAM]} for rule in demo_rules()
    ]
    run_camera_with_rules(stack, body, rules)
    return stack


@pytest.mark.timeout(900)
def test_the_learning_loop_chains_end_to_end(demo_cam: Stack) -> None:
    stack = demo_cam
    http = stack.http
    began = time.monotonic()
    laps: dict[str, float] = {}

    def lap(name: str) -> None:
        laps[name] = round(time.monotonic() - began, 1)

    # 1. An operator marks an alert of the camera a false positive.
    alerts = _ok(http.get("/api/v1/alerts", params={"camera_id": CAM}))["items"]
    assert alerts, "the demo's rules raised no alert on the clip"
    marked = alerts[-1]
    judged = _ok(
        http.post(f"/api/v1/alerts/{marked['id']}/feedback", json={"verdict": "false_positive"})
    )
    assert judged["verdict"] == "false_positive"
    # The stretch the verdict flags: the alert's incident (an incident's alert covers it all),
    # else its event.
    flagged_by = (
        f"/api/v1/incidents/{marked['incident_id']}"
        if marked["incident_id"]
        else f"/api/v1/events/{marked['event_id']}"
    )
    span = _ok(http.get(flagged_by))
    events = stack.events(camera_id=CAM)
    first = min(datetime.fromisoformat(e["started_at"]) for e in events)
    last = max(datetime.fromisoformat(e["ended_at"]) for e in events)
    lap("verdict")

    # 2. Mining over the camera's recorded stretch; the job's answer names its items.
    start, end = first - timedelta(seconds=10), last + timedelta(seconds=10)
    job_id = _ok(
        http.post(
            "/api/v1/annotation/mine",
            json={
                "camera_id": CAM,
                "start": start.isoformat(),
                "end": end.isoformat(),
                "budget": 8,
            },
        ),
        202,
    )["id"]
    job = wait_for(
        lambda: (
            (j := _ok(http.get(f"/api/v1/annotation/mine/{job_id}")))["state"] in ("done", "failed")
            and j
        ),
        timeout=300,
        interval=1.0,
        what="the mining job",
    )
    assert job["state"] == "done", job
    assert job["chunks"] >= 1 and job["frames_scanned"] > 0 and job["enqueued"] >= 4, job
    assert job["reasons"].get("false_positive", 0) >= 1, job
    lap("mining")

    # 3. The annotator's queue (the /annotate page's call) holds the job's items, the frames
    #    of the stretch marked false positive among them.
    annotator = _session(stack, *ANNOTATOR, "annotator")
    reviewer = _session(stack, *REVIEWER, "operator")
    queue = _ok(annotator.get("/api/v1/annotation/queue", params={"camera_id": CAM}))
    assert set(job["item_ids"]) <= {i["id"] for i in queue}
    span_start = datetime.fromisoformat(span["started_at"])
    span_end = datetime.fromisoformat(span["ended_at"])
    flagged = [i for i in queue if "false_positive" in i["reasons"]]
    assert flagged and all(
        span_start <= datetime.fromisoformat(i["frame_ts"]) <= span_end for i in flagged
    ), ([(i["frame_ts"], i["reasons"]) for i in queue], marked, span)

    # 4. Corrected boxes, as the canvas page submits them (session cookie + X-CSRF-Token),
    #    then a reviewer accepts each (the /annotate/review page).
    chosen = [flagged[0]["id"], *[i["id"] for i in queue if i["id"] != flagged[0]["id"]][:5]]
    for item_id in chosen:
        item = _ok(annotator.get(f"/api/v1/annotation/items/{item_id}"))
        frame = annotator.get(f"/api/v1/annotation/items/{item_id}/frame")  # the canvas's image
        assert frame.status_code == 200 and frame.content[:2] == b"\xff\xd8", frame.text[:200]
        boxes = _corrected(item)
        saved = _ok(
            annotator.put(
                f"/api/v1/annotation/items/{item_id}/annotation",
                json={"boxes": boxes, "version": item["version"]},
            )
        )
        assert saved["status"] == "submitted" and len(saved["boxes"]) == len(boxes)
        reviewed = _ok(
            reviewer.post(
                f"/api/v1/annotation/items/{item_id}/review",
                json={"decision": "accept", "version": saved["version"]},
            )
        )
        assert reviewed["status"] == "accepted"
    lap("annotation")

    # 5. Datasets: the site's, and the regression set the gate compares every model on.
    site = _ok(http.post("/api/v1/datasets", json={"name": "loop-site", "camera_ids": [CAM]}), 201)
    assert site["items"] == len(chosen) and site["status"] == "ready", site
    regression_name = stack.settings.train.regression_dataset
    regression = _ok(
        http.post("/api/v1/datasets", json={"name": regression_name, "camera_ids": [CAM]}), 201
    )
    assert regression["items"] == len(chosen)
    lap("datasets")

    # 6. A tiny training run, followed on GET /training/runs/{id} until it ends.
    run = _ok(
        http.post(
            "/api/v1/training/runs",
            json={
                "dataset": "loop-site",
                "version": site["version"],
                "epochs": 1,
                "batch_size": 2,
                "input_size": 640,
                "lr": 1e-12,
            },
        ),
        202,
    )
    assert run["status"] == "queued"
    seen: list[tuple[str, int, float]] = []

    def finished() -> dict[str, Any] | None:
        now: dict[str, Any] = _ok(http.get(f"/api/v1/training/runs/{run['id']}"))
        p = now["progress"]
        seen.append((now["status"], p["step"], p["fraction"]))
        return now if now["status"] in ("succeeded", "failed") else None

    done = wait_for(finished, timeout=600, interval=0.5, what="the training run")
    assert done["status"] == "succeeded", done
    # The answers moved forward: through the run's phases, steps and fraction never going back.
    order = ["queued", "curating", "training", "evaluating", "succeeded"]
    phases = [order.index(s) for s, _, _ in seen]
    assert phases == sorted(phases) and len(set(phases)) >= 3, seen
    assert [f for _, _, f in seen] == sorted(f for _, _, f in seen), seen
    assert [n for _, n, _ in seen] == sorted(n for _, n, _ in seen), seen
    assert done["progress"]["step"] == done["progress"]["total_steps"] >= 1
    assert done["progress"]["fraction"] == 1.0 and done["progress"]["epoch"] == 1
    assert done["dataset_version"] == site["version"]
    assert done["gate_passed"] is True, done["gate"]
    version = done["challenger_version"]
    assert isinstance(version, int)
    lap("training")

    # 7. MLflow (the embedded store in the data dir) holds the run, read with mlflow's client.
    from mlflow.tracking import MlflowClient

    mlflow = MlflowClient(tracking_uri=stack.settings.mlflow_tracking_uri())
    mlrun = mlflow.get_run(done["mlflow_run_id"])
    assert mlrun.info.status == "FINISHED"
    assert mlrun.data.params["dataset"] == "loop-site" and mlrun.data.params["epochs"] == "1"
    assert "train.loss" in mlrun.data.metrics
    assert mlrun.data.tags["gate.passed"] == "true"
    registered = mlflow.get_model_version("sentinel-detector", str(version))
    assert registered.run_id == done["mlflow_run_id"]

    # 8. The version in GET /models, with its gate, as the challenger.
    models = _ok(http.get("/api/v1/models"))
    champion = models["champion"]
    listed = {v["version"]: v for v in models["versions"]}
    assert "challenger" in listed[version]["aliases"]
    assert listed[version]["run_id"] == done["mlflow_run_id"]
    assert listed[version]["tags"]["gate.passed"] == "true"
    lap("registry")

    # 9. Canary on the demo camera, promote, roll back: each answer is the new serving state.
    #    (Frames flowing through the canary while it swaps: test_models_ray.py.)
    canary = _ok(
        http.post(f"/api/v1/models/{version}/canary", json={"cameras": [CAM]}, timeout=SLOW)
    )
    assert canary["canary"]["version"] == version and canary["canary"]["cameras"] == [CAM]
    assert canary["champion"] == champion
    lap("canary")
    promoted = _ok(http.post(f"/api/v1/models/{version}/promote", timeout=SLOW))
    assert promoted["champion"] == version and promoted["canary"] is None
    assert promoted["previous"][-1] == champion
    lap("promote")
    rolled = _ok(http.post(f"/api/v1/models/{version}/rollback", timeout=SLOW))
    assert rolled["champion"] == champion and rolled["canary"] is None
    lap("rollback")
    entries = _ok(http.get("/api/v1/audit", params={"limit": 100}))["items"]
    assert {"models.canary", "models.promote", "models.rollback"} <= {e["action"] for e in entries}
    phases_seen = list(dict.fromkeys(s for s, _, _ in seen))
    print(f"learning loop walkthrough: {laps}; training run answers: {phases_seen}")
