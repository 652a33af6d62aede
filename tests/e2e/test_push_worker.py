"""The dashboard's service worker (web/public/sw.js) in a real headless Chromium: a push
shows the alert's notification (title, body, tag = alert id, a same-origin url), and the
worker caches nothing. Pushes are handed to the worker through DevTools
(``ServiceWorker.deliverPushMessage``), so no push service is contacted."""

from __future__ import annotations

import http.server
import json
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.utils.browser import chromium
from tests.utils.media import free_port

SW = Path(__file__).resolve().parents[2] / "web" / "public" / "sw.js"
PAGE = b"""<!doctype html><html><body>dashboard</body></html>"""


@pytest.fixture
def origin() -> Iterator[str]:
    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            if self.path == "/sw.js":
                body, kind = SW.read_bytes(), "text/javascript"
            else:
                body, kind = PAGE, "text/html"
            self.send_response(200)
            self.send_header("Content-Type", kind)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: object) -> None:
            pass

    port = free_port()
    server = http.server.ThreadingHTTPServer(("127.0.0.1", port), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://localhost:{port}"  # localhost: a secure context, as service workers need
    server.shutdown()
    server.server_close()


NOTIFICATIONS = """async () => (await (await navigator.serviceWorker.ready).getNotifications())
    .map(n => ({title: n.title, body: n.body, tag: n.tag, data: n.data, at: n.timestamp}))"""


def wait_until(page: Any, script: str, done: Callable[[Any], bool], timeout: float = 10.0) -> Any:
    """Evaluates ``script`` in the page until ``done`` holds of its value (no fixed sleeps)."""
    deadline = time.monotonic() + timeout
    while True:
        value = page.evaluate(script)
        if done(value):
            return value
        assert time.monotonic() < deadline, f"timed out; last: {value!r}"
        time.sleep(0.05)


def test_a_push_shows_the_alerts_notification_and_nothing_is_cached(origin: str) -> None:
    with chromium() as browser:
        context = browser.new_context()
        context.grant_permissions(["notifications"], origin=origin)
        page = context.new_page()
        page.goto(origin + "/review")
        cdp = context.new_cdp_session(page)
        registrations: list[dict[str, Any]] = []
        cdp.on(
            "ServiceWorker.workerRegistrationUpdated",
            lambda e: registrations.extend(e["registrations"]),
        )
        cdp.send("ServiceWorker.enable")
        scope = page.evaluate(
            """async () => {
                await caches.open("left-by-an-old-worker");
                const reg = await navigator.serviceWorker.register("/sw.js", {scope: "/"});
                await navigator.serviceWorker.ready;
                return reg.scope;
            }"""
        )
        assert scope == origin + "/"
        wait_until(page, "async () => (await caches.keys()).length", lambda n: n == 0)
        (reg_id,) = {r["registrationId"] for r in registrations if r["scopeURL"] == scope}
        payload = {
            "title": "High alert: person on gate",
            "body": "someone at the gate",
            "alert_id": "al-1",
            "camera_id": "gate",
            "url": "/review?alert=al-1",
        }
        for data in (payload, {**payload, "alert_id": "al-2", "url": "https://evil.example/"}):
            cdp.send(
                "ServiceWorker.deliverPushMessage",
                {"origin": origin, "registrationId": reg_id, "data": json.dumps(data)},
            )
        shown = wait_until(page, NOTIFICATIONS, lambda all: len(all) == 2)
        by_tag = {n["tag"]: n for n in shown}
        first = by_tag["al-1"].pop("at")
        assert by_tag["al-1"] == {
            "title": "High alert: person on gate",
            "body": "someone at the gate",
            "tag": "al-1",
            "data": {"url": "/review?alert=al-1", "alert_id": "al-1", "camera_id": "gate"},
        }
        assert by_tag["al-2"]["data"]["url"] == "/review"  # never off this origin
        # the same alert again replaces its notification (tag): it does not stack
        cdp.send(
            "ServiceWorker.deliverPushMessage",
            {"origin": origin, "registrationId": reg_id, "data": json.dumps(payload)},
        )
        again = wait_until(
            page,
            NOTIFICATIONS,
            lambda all: any(n["tag"] == "al-1" and n["at"] > first for n in all),
        )
        count = len(again)
        assert count == 2
        assert page.evaluate("async () => (await caches.keys()).length") == 0
        context.close()
