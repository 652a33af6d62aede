"""The operator's dashboard in a real headless Chromium (Debian's), over the real API, stores,
recordings, live hub and search (tests/utils/dashboard_world.py; cameras are frames of the
sample video that change with time, one camera has failed).

An operator's shift: sign in, watch the Live grid's frames change (and stop while the tab is
hidden), get a new alert over the WebSocket without a reload, play its clip, mark it a false
positive from the keyboard, see the recordings' gaps, search. A camera-limited user sees only
their camera on every page and in every live message. Every page passes axe-core with no
serious or critical violation, and fits a 360 px wide phone. Screenshots are saved under
test-artifacts/dashboard/.
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from playwright.sync_api import Browser, BrowserContext, ConsoleMessage, Page, Response, expect

from sentinel.dashboard.webapp import APP_DIR, BUILD_MANIFEST
from tests.utils.auth import AuthedUser
from tests.utils.browser import artifact, chromium, pump_until
from tests.utils.dashboard_world import FAILED_REASON, World, world

AXE = Path(__file__).parents[2] / "web" / "node_modules" / "axe-core" / "axe.min.js"
PAGES = ["/", "/camera?id=front_door", "/review", "/search", "/zones", "/system", "/settings"]


@pytest.fixture(scope="module")
def w(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    if not (APP_DIR / BUILD_MANIFEST).is_file():
        raise RuntimeError(f"the dashboard is not built in {APP_DIR}: `make web` builds it")
    with world(tmp_path_factory.mktemp("dashboard-world"), APP_DIR, search=True) as found:
        yield found


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    with chromium() as b:
        yield b


class Watch:
    """A page's errors and Content-Security-Policy violations (there must be none)."""

    def __init__(self, page: Page) -> None:
        self.problems: list[str] = []
        page.on("pageerror", lambda e: self.problems.append(f"page error: {e}"))
        page.on("console", self._console)

    def _console(self, m: ConsoleMessage) -> None:
        if "Content Security Policy" in m.text or (m.type == "error" and "CSP" in m.text):
            self.problems.append(f"CSP: {m.text}")


def signed_in(
    browser: Browser, w: World, user: AuthedUser, width: int = 1280
) -> tuple[BrowserContext, Page, Watch]:
    context = browser.new_context(viewport={"width": width, "height": 900})
    page = context.new_page()
    watch = Watch(page)
    page.goto(f"{w.url}/review")
    expect(page).to_have_url(f"{w.url}/signin?next=%2Freview")
    page.get_by_label("Username").fill(user.username)
    page.get_by_label("Password").fill(user.password)
    page.get_by_role("button", name="Sign in").click()
    expect(page).to_have_url(f"{w.url}/review")
    return context, page, watch


def shot(page: Page, name: str) -> None:
    page.screenshot(path=str(artifact(f"dashboard/{name}.png")), full_page=True)


def api_get(w: World, user: AuthedUser, path: str) -> Any:
    r = httpx.get(f"{w.url}/api/v1{path}", headers=user.headers, timeout=10)
    assert r.status_code == 200, r.text
    return r.json()


def test_an_operators_shift(browser: Browser, w: World) -> None:
    context, page, watch = signed_in(browser, w, w.operator)
    # Live: every camera, the failed one with its reason, frames that change.
    frames: dict[str, set[str]] = {}

    def on_response(r: Response) -> None:
        if "/latest.jpg" in r.url and r.ok:
            cam = r.url.split("/cameras/")[1].split("/")[0]
            frames.setdefault(cam, set()).add(hashlib.sha256(r.body()).hexdigest())

    page.on("response", on_response)
    page.get_by_role("link", name="Live", exact=True).click()
    expect(page.get_by_role("heading", name="Live", level=1)).to_be_visible()
    expect(page.get_by_text(FAILED_REASON)).to_be_visible()
    pump_until(page, lambda: len(frames.get("front_door", ())) >= 3, timeout_s=15,
               what="front_door's frame to change")  # fmt: skip
    shot(page, "live")
    # A hidden tab fetches no frames.
    page.evaluate(
        "Object.defineProperty(document, 'visibilityState', {value: 'hidden', configurable: true});"
        "document.dispatchEvent(new Event('visibilitychange'))"
    )
    page.wait_for_timeout(800)
    requested: list[str] = []
    page.on("request", lambda r: requested.append(r.url) if "/latest.jpg" in r.url else None)
    page.wait_for_timeout(2000)
    assert requested == []

    # Review: a new alert arrives over the WebSocket, without a reload.
    page.goto(f"{w.url}/review")
    expect(page.locator('[data-testid="alert-item"]').first).to_be_visible()
    page.wait_for_timeout(1000)  # the socket is open
    marker = page.evaluate("window.__marker = Math.random()")
    new_id = w.raise_alert("front_door", "person")
    t0 = time.monotonic()
    expect(page.locator(f'[data-testid="alert-item"][data-alert-id="{new_id}"]')).to_be_visible(
        timeout=5000
    )
    shown_s = time.monotonic() - t0
    assert page.evaluate("window.__marker") == marker, "the page was reloaded"
    assert shown_s < 3.0, shown_s

    # The alert recorded during the recordings: its clip plays; the timeline shows the gap.
    recorded = w.alerts[-1]
    page.goto(f"{w.url}/review?alert={recorded}")
    detail = page.locator('[data-testid="alert-detail"]')
    expect(detail).to_have_attribute("data-alert-id", recorded)
    expect(page.get_by_test_id("summary")).to_contain_text("after hours")
    expect(page.get_by_test_id("rule-explanation")).to_be_visible()
    clip = page.get_by_test_id("clip")
    expect(clip).to_be_visible()
    clip.evaluate("v => { v.muted = true; return v.play(); }")
    page.wait_for_function(
        "() => { const v = document.querySelector('[data-testid=clip]');"
        " return v && v.readyState >= 2 && v.currentTime > 0.3; }",
        timeout=15_000,
    )
    expect(page.get_by_test_id("timeline-gap").first).to_be_visible()
    assert page.get_by_test_id("timeline-segment").count() >= 2
    shot(page, "review")
    # False positive from the keyboard.
    page.locator("body").press("f")
    expect(page.get_by_test_id("verdict")).to_contain_text("false", ignore_case=True)
    assert api_get(w, w.operator, f"/alerts/{recorded}")["verdict"] == "false_positive"

    # Search: results as thumbnails.
    page.get_by_role("link", name="Search", exact=True).click()
    page.get_by_test_id("search-input").fill("person")
    page.get_by_test_id("search-submit").click()
    results = page.get_by_test_id("search-result")
    expect(results.first).to_be_visible(timeout=15_000)
    thumb = results.first.locator("img")
    expect(thumb).to_be_visible()
    # Loaded, not just laid out: waits for the image's load or error (a slow machine).
    assert thumb.evaluate(
        "i => i.complete ? i.naturalWidth > 0 : new Promise(done => {"
        " i.onload = () => done(i.naturalWidth > 0); i.onerror = () => done(false); })"
    )
    shot(page, "search")
    assert not watch.problems, watch.problems
    context.close()


def test_a_camera_limited_user_sees_only_their_camera(browser: Browser, w: World) -> None:
    context, page, watch = signed_in(browser, w, w.limited)
    messages: list[dict[str, Any]] = []
    page.on(
        "websocket",
        lambda ws: ws.on("framereceived", lambda f: messages.append({"raw": f})),
    )
    page.goto(f"{w.url}/")
    expect(page.locator('img[src*="/cameras/front_door/latest.jpg"]').first).to_be_visible()
    srcs = page.locator('img[src*="/latest.jpg"]')
    assert all("/cameras/front_door/" in (srcs.nth(i).get_attribute("src") or "")
               for i in range(srcs.count()))  # fmt: skip
    assert page.get_by_text("Yard").count() == 0 and page.get_by_text("garage").count() == 0

    page.goto(f"{w.url}/review")
    items = page.locator('[data-testid="alert-item"]')
    expect(items.first).to_be_visible()
    page.wait_for_timeout(1000)
    hidden = w.raise_alert("yard", "car")
    mine = w.raise_alert("front_door", "person")
    expect(page.locator(f'[data-alert-id="{mine}"]')).to_be_visible(timeout=5000)
    assert page.locator(f'[data-alert-id="{hidden}"]').count() == 0
    ids = [items.nth(i).get_attribute("data-alert-id") for i in range(items.count())]
    cams = {a["camera_id"] for a in api_get(w, w.admin, "/alerts?limit=200")["items"]
            if a["id"] in ids}  # fmt: skip
    assert cams == {"front_door"}
    assert all(hidden not in str(m["raw"]) for m in messages)
    assert "yard" not in " ".join(str(m["raw"]) for m in messages)

    page.goto(f"{w.url}/search")
    page.get_by_test_id("search-input").fill("car")
    page.get_by_test_id("search-submit").click()
    results = page.get_by_test_id("search-result")
    expect(results.first).to_be_visible(timeout=15_000)
    for i in range(results.count()):
        assert "yard" not in (results.nth(i).inner_text().lower())
    page.goto(f"{w.url}/settings")
    expect(page.get_by_role("heading", name="Settings", level=1)).to_be_visible()
    assert page.get_by_role("heading", name="Users").count() == 0
    assert not watch.problems, watch.problems
    context.close()


def _axe(page: Page) -> list[dict[str, Any]]:
    if not AXE.is_file():
        raise RuntimeError(f"{AXE} is missing: `make web` installs the dashboard's packages")
    page.evaluate(AXE.read_text() + "\n;undefined")
    result: dict[str, Any] = page.evaluate(
        "async () => await axe.run(document, {resultTypes: ['violations']})"
    )
    return [v for v in result["violations"] if v["impact"] in ("serious", "critical")]


@pytest.mark.parametrize("width", [1280, 360], ids=["desktop", "phone"])
def test_every_page_is_accessible_and_fits(browser: Browser, w: World, width: int) -> None:
    context, page, watch = signed_in(browser, w, w.admin, width=width)
    for path in PAGES:
        page.goto(f"{w.url}{path}")
        expect(page.locator("main h1")).to_be_visible()
        page.wait_for_timeout(1200)  # the page's data has come
        serious = _axe(page)
        assert not serious, (path, [(v["id"], v["help"], len(v["nodes"])) for v in serious])
        overflow = page.evaluate("document.documentElement.scrollWidth - window.innerWidth")
        assert overflow <= 0, (path, width, overflow)
        name = path.strip("/").split("?")[0] or "live"
        shot(page, f"{name}-{width}")
    context.close()
    # The sign-in page too (public).
    page = browser.new_page(viewport={"width": width, "height": 800})
    page.goto(f"{w.url}/signin")
    assert not _axe(page)
    assert page.evaluate("document.documentElement.scrollWidth - window.innerWidth") <= 0
    shot(page, f"signin-{width}")
    page.close()
    assert not watch.problems, watch.problems


def test_it_installs_as_an_app(browser: Browser, w: World) -> None:
    context, page, _ = signed_in(browser, w, w.operator)
    manifest = httpx.get(f"{w.url}/manifest.webmanifest", timeout=10)
    assert manifest.status_code == 200
    assert manifest.headers["content-type"].startswith("application/manifest+json")
    body = manifest.json()
    assert body["display"] == "standalone" and body["start_url"] == "/"
    for icon in body["icons"]:
        assert httpx.get(f"{w.url}{icon['src']}", timeout=10).status_code == 200, icon
    scope = page.evaluate("async () => (await navigator.serviceWorker.ready).scope")
    assert scope == f"{w.url}/"
    context.close()
