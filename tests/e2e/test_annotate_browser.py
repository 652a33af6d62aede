"""The annotation pages in a real headless Chromium, over the real HTTP app (uvicorn) and the
real annotation API and store.

An annotator signs in through the page and opens the best item from the queue page; corrects
pre-labels with the mouse (drag, corner resize, drawing a new box) and the keyboard (delete, a
number key for the label, nudges, undo); submits with Enter, and the stored annotation is read
back through the JSON API. A box dragged past the frame's edge is refused with the API's 422
reason shown on the page; batch mode keeps one crop and drops another with the keyboard; a
reviewer accepts one item and returns another with a note (which its annotator reads) and sees
the annotator's quality; an annotator of another camera is told the item is not theirs.
"""

from __future__ import annotations

import io
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest
from PIL import Image, ImageDraw
from playwright.sync_api import Browser, ConsoleMessage, Page, expect

from sentinel.api.deps import Services
from sentinel.domain.annotation import LabeledBox, QueueCandidate
from sentinel.gateway.roles import Role
from sentinel.store.db import make_engine, migrate, sqlite_url
from tests.utils.api import api_app
from tests.utils.auth import AuthedUser, add_user
from tests.utils.browser import chromium
from tests.utils.http_server import serve_app
from tests.utils.services import make_services

W, H = 640, 480
TOL = 2.5  # px: what the stored coordinates may differ from where the mouse went
# Pre-labels of the first item, in frame pixels.
PERSON = LabeledBox("person", 100.0, 100.0, 200.0, 300.0, score=0.55)
CAR = LabeledBox("car", 400.0, 200.0, 520.0, 280.0, score=0.48)
GHOST = LabeledBox("person", 300.0, 40.0, 350.0, 110.0, score=0.31)


def frame_jpeg() -> bytes:
    image = Image.new("RGB", (W, H), (90, 120, 90))
    draw = ImageDraw.Draw(image)
    draw.rectangle((110, 110, 190, 290), fill=(200, 60, 60))
    draw.rectangle((405, 205, 515, 275), fill=(60, 60, 200))
    out = io.BytesIO()
    image.save(out, "JPEG", quality=85)
    return out.getvalue()


@dataclass
class World:
    url: str
    annotator: AuthedUser
    reviewer: AuthedUser
    outsider: AuthedUser  # an annotator of another camera
    items: list[str]
    labels: list[str]

    def get(self, user: AuthedUser, path: str) -> dict[str, Any]:
        r = httpx.get(f"{self.url}/api/v1{path}", headers=user.headers, timeout=10)
        assert r.status_code == 200, r.text
        data: dict[str, Any] = r.json()
        return data


@pytest.fixture
def world(tmp_path: Path) -> Iterator[World]:
    engine = make_engine(sqlite_url(tmp_path / "annotate.sqlite"))
    migrate(engine)
    services = make_services(engine, tmp_path)
    assert services.annotation is not None
    items = seed(services)
    labels = list(services.annotation.labels)
    annotator = add_user(services.security, "annie", Role.ANNOTATOR)
    reviewer = add_user(services.security, "rita", Role.OPERATOR)
    outsider = add_user(services.security, "otto", Role.ANNOTATOR, cameras=["cam-b"])
    try:
        with serve_app(api_app(services)) as url:
            yield World(url, annotator, reviewer, outsider, items, labels)
    finally:
        engine.dispose()


def seed(services: Services) -> list[str]:
    """Three queued frames of one camera, best first, with the detector's pre-labels."""
    assert services.annotation is not None
    image = frame_jpeg()
    prelabels = [[PERSON, CAR, GHOST], [CAR], [PERSON, GHOST]]
    candidates = [
        QueueCandidate(
            camera_id="cam-a",
            frame_ts=datetime(2026, 12, 7, 4, 0, i, tzinfo=UTC),
            frame_index=i,
            source="video",
            width=W,
            height=H,
            phash=(0xFFFF << (20 * i)) & (2**64 - 1),  # far apart: no near-duplicates
            score=0.9 - 0.1 * i,
            reasons=("near_threshold",),
            prelabels=tuple(boxes),
            image_jpeg=image,
        )
        for i, boxes in enumerate(prelabels)
    ]
    ids = services.annotation.repo.enqueue(candidates)
    assert len(ids) == 3
    return ids


@pytest.fixture
def browser() -> Iterator[Browser]:
    with chromium() as b:
        yield b


class Canvas:
    """Maps frame pixels to page coordinates through the editor's transform."""

    def __init__(self, page: Page) -> None:
        self.page = page
        canvas = page.locator("#canvas")
        box = canvas.bounding_box()
        assert box is not None
        self.box = box
        self.scale = float(canvas.get_attribute("data-scale") or "nan")
        self.margin = float(canvas.get_attribute("data-margin") or "nan")
        width = page.evaluate("document.querySelector('#canvas').width")
        self.css = box["width"] / width  # CSS px per canvas px

    def at(self, x: float, y: float) -> tuple[float, float]:
        return (
            self.box["x"] + (self.margin + x * self.scale) * self.css,
            self.box["y"] + (self.margin + y * self.scale) * self.css,
        )

    def drag(self, start: tuple[float, float], end: tuple[float, float]) -> None:
        mouse = self.page.mouse
        mouse.move(*self.at(*start))
        mouse.down()
        mouse.move(*self.at(*end), steps=8)
        mouse.up()

    def click(self, x: float, y: float) -> None:
        self.page.mouse.click(*self.at(x, y))


def note_console_error(message: ConsoleMessage, errors: list[str]) -> None:
    if message.type == "error" and "Failed to load resource" not in message.text:
        errors.append(message.text)


def sign_in(page: Page, url: str, path: str, user: AuthedUser) -> None:
    page.goto(url + path)
    expect(page).to_have_url(f"{url}/annotate/signin?next={path.replace('/', '%2F')}")
    page.get_by_label("User name").fill(user.username)
    page.get_by_label("Password").fill(user.password)
    page.get_by_role("button", name="Sign in").click()
    expect(page).to_have_url(url + path)


def near(box: dict[str, Any], expected: tuple[float, float, float, float]) -> bool:
    got = (box["x1"], box["y1"], box["x2"], box["y2"])
    return all(abs(a - b) <= TOL for a, b in zip(got, expected, strict=True))


def test_correct_boxes_with_mouse_and_keyboard_then_review(world: World, browser: Browser) -> None:
    first, second, third = world.items
    page = browser.new_page(viewport={"width": 1400, "height": 900})
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    # Console errors too (a Content-Security-Policy violation lands there), except the line
    # Chromium logs for every non-2xx answer, such as the 422 this test provokes.
    page.on("console", lambda m: note_console_error(m, errors))
    sign_in(page, world.url, "/annotate", world.annotator)
    rows = page.locator("#queue-rows tr")
    expect(rows).to_have_count(3)
    expect(rows.first).to_contain_text("near_threshold")
    rows.first.get_by_role("link", name=f"Open {first}").click()
    expect(page).to_have_url(f"{world.url}/annotate/items/{first}")
    expect(page.get_by_role("status")).to_contain_text("3 boxes loaded")
    pending = page.get_by_role("button", name="Box 1: person, pre-label 55% to accept")
    expect(pending).to_be_visible()
    c = Canvas(page)

    # Move the person box by (+30, +20) from its middle, then pull its bottom-right corner.
    c.drag((150, 200), (180, 220))
    c.drag((230, 320), (260, 345))
    # Draw a new box on empty ground: it takes the current label (the first one).
    c.drag((540, 330), (610, 420))
    expect(page.get_by_role("button", name=f"Box 4: {world.labels[0]}")).to_be_visible()
    # Number key 2: the selected (new) box takes the second label; nudge it 5 px right.
    page.keyboard.press("2")
    for _ in range(5):
        page.keyboard.press("ArrowRight")
    # A wrong label, undone.
    page.keyboard.press("3")
    expect(page.get_by_role("button", name=f"Box 4: {world.labels[2]}")).to_be_visible()
    page.keyboard.press("Control+z")
    expect(page.get_by_role("button", name=f"Box 4: {world.labels[1]}")).to_be_visible()
    # Delete the false pre-label with the keyboard; delete the car too, then undo that.
    c.click(325, 75)
    page.keyboard.press("Delete")
    c.click(460, 240)
    page.keyboard.press("Backspace")
    expect(page.locator("#box-list li")).to_have_count(2)
    page.keyboard.press("Control+z")
    expect(page.locator("#box-list li")).to_have_count(3)
    page.keyboard.press("Enter")
    expect(page.get_by_role("status")).to_contain_text("Saved 3 boxes")

    stored = world.get(world.annotator, f"/annotation/items/{first}")
    boxes = stored["annotation"]["boxes"]
    assert len(boxes) == 3, boxes
    by_label: dict[str, list[dict[str, Any]]] = {}
    for b in boxes:
        by_label.setdefault(b["label"], []).append(b)
    persons = by_label["person"]
    assert len(persons) == 1 and near(persons[0], (130, 120, 260, 345)), persons
    cars = [b for b in by_label["car"] if near(b, (400, 200, 520, 280))]
    assert len(cars) == 1, boxes  # the car pre-label, accepted as it was
    drawn = [b for b in by_label[world.labels[1]] if near(b, (545, 330, 615, 420))]
    assert len(drawn) == 1, boxes

    # The second item: a box dragged past the right edge is the API's to refuse; the page
    # shows why and nothing is stored.
    page.keyboard.press("n")
    expect(page).to_have_url(f"{world.url}/annotate/items/{second}")
    expect(page.get_by_role("status")).to_contain_text("1 box loaded")
    c = Canvas(page)
    c.drag((460, 240), (560, 240))  # the car box now spans x 500..620+... past 640
    c.drag((560, 240), (600, 240))
    page.keyboard.press("Enter")
    alert = page.get_by_role("alert")
    expect(alert).to_contain_text("Not saved: Box 1: (")
    expect(alert).to_contain_text("is outside the 640x480 image")
    expect(page.get_by_role("button", name="Box 1: car")).to_have_attribute("aria-pressed", "true")
    assert world.get(world.annotator, f"/annotation/items/{second}")["annotation"] is None

    # Batch mode: the third item's two pre-labels as crops; keep the first, drop the second,
    # with the keyboard, and submit the page with Enter (the second item, undecided, waits).
    page.goto(f"{world.url}/annotate/batch")
    crops = page.get_by_role("listitem").filter(has_text=f"item {third}")
    expect(crops).to_have_count(2)
    crops.first.focus()
    page.keyboard.press("a")
    expect(crops.nth(1)).to_be_focused()
    page.keyboard.press("r")
    page.keyboard.press("Enter")
    expect(page.get_by_role("status")).to_contain_text("Saved 1 item")
    kept = world.get(world.annotator, f"/annotation/items/{third}")["annotation"]["boxes"]
    assert len(kept) == 1 and near(kept[0], (100, 100, 200, 300)), kept
    assert world.get(world.annotator, f"/annotation/items/{second}")["annotation"] is None

    # The reviewer accepts the first item's work.
    reviewer = browser.new_page(viewport={"width": 1200, "height": 900})
    sign_in(reviewer, world.url, "/annotate/review", world.reviewer)
    card = reviewer.get_by_role("article", name=f"Item {first}")
    expect(card).to_contain_text(f"by {world.annotator.username} · 3 boxes")
    card.get_by_role("button", name=f"Accept item {first}").click()
    expect(card.get_by_role("status")).to_have_text("Accepted.")
    assert world.get(world.reviewer, f"/annotation/items/{first}")["status"] == "accepted"
    # ... and returns the batch item with a note, which its annotator then reads on the canvas.
    card = reviewer.get_by_role("article", name=f"Item {third}")
    card.get_by_role("button", name=f"Return item {third}").click()
    expect(card.get_by_role("status")).to_contain_text("Write a note")
    card.get_by_label("Note (needed to return)").fill("the small box is a person too")
    card.get_by_role("button", name=f"Return item {third}").click()
    expect(card.get_by_role("status")).to_have_text("Returned to the annotator.")
    # One of two reviewed submissions accepted: the annotator's review agreement is 0.50.
    reviewer.reload()
    row = reviewer.get_by_role("row", name=world.annotator.username)
    expect(row).to_contain_text("0.50")
    expect(row.get_by_role("cell")).to_have_text(["2", "2", "1", "1", "0", "0.50", "n/a", "0.50"])
    page.goto(f"{world.url}/annotate/items/{third}")
    expect(page.locator("#review-note-text")).to_have_text("return: the small box is a person too")
    assert errors == [], errors

    # An annotator limited to another camera: the API's 404, said on the page.
    outsider = browser.new_page()
    sign_in(outsider, world.url, f"/annotate/items/{second}", world.outsider)
    expect(outsider.get_by_role("alert")).to_have_text(
        "This item does not exist, or its camera is not yours."
    )
