"""The dashboard in headless Chromium over the session's real stack (Ray Serve ingress, a real
camera actor looping the sample video, the detector, the live hub).

An operator limited to one camera signs in through the page, sees that camera's frame change
on the Live page (and no other camera of the stack), and an alert written to the database
appears on the Review page over the WebSocket without a reload.
"""

from __future__ import annotations

import hashlib
import secrets
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest
from playwright.sync_api import Browser, Page, Response, expect

from sentinel.domain.alerts import AlertDecision, DecidedBy, Severity
from sentinel.domain.types import Box, EventState
from sentinel.store.alert_repo import AlertRepository
from sentinel.store.db import make_engine
from sentinel.store.repo import EventRepository
from tests.integration.conftest import Stack, wait_for
from tests.utils.browser import artifact, chromium, pump_until
from tests.utils.media import sample_video

CAMERA = "dash-cam"


@pytest.fixture
def camera(sentinel_stack: Stack) -> Iterator[str]:
    body = {
        "id": CAMERA,
        "name": "Dashboard camera",
        "source": str(sample_video()),
        "detect_fps": 2,
    }
    r = sentinel_stack.http.post("/api/v1/cameras", json=body)
    assert r.status_code == 201, r.text
    try:
        wait_for(
            lambda: (
                sentinel_stack.http.get(f"/api/v1/cameras/{CAMERA}/latest.jpg").status_code == 200
            ),
            timeout=120,
            what="the camera's first frame",
        )
        yield CAMERA
    finally:
        sentinel_stack.http.delete(f"/api/v1/cameras/{CAMERA}")


@pytest.fixture
def operator(sentinel_stack: Stack, camera: str) -> tuple[str, str]:
    name, password = f"op-{secrets.token_hex(3)}", secrets.token_urlsafe(16)
    body = {"username": name, "password": password, "role": "operator", "cameras": [camera]}
    r = sentinel_stack.http.post("/api/v1/users", json=body)
    assert r.status_code == 201, r.text
    return name, password


@pytest.fixture
def browser() -> Iterator[Browser]:
    with chromium() as b:
        yield b


def _sign_in(page: Page, url: str, user: tuple[str, str]) -> None:
    page.goto(f"{url}/review")
    expect(page).to_have_url(f"{url}/signin?next=%2Freview")
    page.get_by_label("Username").fill(user[0])
    page.get_by_label("Password").fill(user[1])
    page.get_by_role("button", name="Sign in").click()
    expect(page).to_have_url(f"{url}/review")


def _write_alert(stack: Stack, camera: str) -> str:
    engine = make_engine(stack.settings.db_url)
    try:
        at = datetime.now(UTC)
        event = EventState(
            id=str(uuid.uuid4()), camera_id=camera, label="person", track_id=7,
            started_at=at, last_seen_at=at, score=0.91, box=Box(10, 10, 60, 160), best_at=at,
            ended_at=at + timedelta(seconds=1),
        )  # fmt: skip
        EventRepository(engine).upsert(event, None)
        decision = AlertDecision(
            True, Severity.HIGH, "A person at the dashboard camera.", ("r",),
            "rule: person seen", DecidedBy.RULES,
        )  # fmt: skip
        return AlertRepository(engine).record_rule_decision(event.id, camera, "person", decision).id
    finally:
        engine.dispose()


def test_live_frames_and_a_live_alert_on_the_real_stack(
    sentinel_stack: Stack, browser: Browser, operator: tuple[str, str]
) -> None:
    url = sentinel_stack.url
    page = browser.new_page(viewport={"width": 1280, "height": 900})
    errors: list[str] = []
    page.on("pageerror", lambda e: errors.append(str(e)))
    _sign_in(page, url, operator)

    # Review: an alert written now arrives over the WebSocket, without a reload.
    expect(page.get_by_role("heading", name="Review", level=1)).to_be_visible()
    page.wait_for_timeout(1500)  # the socket is open
    alert_id = _write_alert(sentinel_stack, CAMERA)
    item = page.locator(f'[data-testid="alert-item"][data-alert-id="{alert_id}"]')
    expect(item).to_be_visible(timeout=10_000)
    page.screenshot(path=str(artifact("real-stack-review.png")))

    # Live: the camera's frame changes; no other camera of the stack is shown.
    frames: dict[str, int] = {}

    def on_response(r: Response) -> None:
        if r.url.split("?")[0].endswith(f"/cameras/{CAMERA}/latest.jpg") and r.ok:
            digest = hashlib.sha256(r.body()).hexdigest()
            frames[digest] = frames.get(digest, 0) + 1

    page.on("response", on_response)
    page.get_by_role("link", name="Live", exact=True).click()
    expect(page.locator(f'img[src*="/cameras/{CAMERA}/latest.jpg"]').first).to_be_visible()
    pump_until(page, lambda: len(frames) >= 3, timeout_s=20, what="the frame changing")
    images = page.locator('img[src*="/latest.jpg"]')
    srcs = [images.nth(i).get_attribute("src") or "" for i in range(images.count())]
    assert srcs and all(f"/cameras/{CAMERA}/" in s for s in srcs), srcs
    page.screenshot(path=str(artifact("real-stack-live.png")))
    assert not errors, errors
