"""The dashboard's static build served under ``/`` behind the gateway (the real build of web/,
made by `make web`; the test fails when it is missing).

Public: the sign-in page and the assets it loads; every other page sends a visitor without a
session to sign in (with ``next``), every other asset answers 401; with a session cookie (or a
token) everything is served. The API keeps its JSON 404s; every answer carries the security
headers; no page of the build has an inline script or style (the CSP forbids them).
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from sqlalchemy.engine import Engine

from sentinel.api.middleware import CONTENT_SECURITY_POLICY
from sentinel.dashboard.webapp import APP_DIR, BUILD_MANIFEST, BuiltApp
from sentinel.gateway.roles import Role
from tests.utils.api import api_app
from tests.utils.auth import AuthedUser, add_user
from tests.utils.services import make_services

_SCRIPT = re.compile(rb"<script\b([^>]*)>(.*?)</script>", re.S | re.I)


@pytest.fixture(scope="module")
def build() -> BuiltApp:
    if not (APP_DIR / BUILD_MANIFEST).is_file():
        raise RuntimeError(f"the dashboard is not built in {APP_DIR}: `make web` builds it")
    return BuiltApp.load(APP_DIR)


@pytest.fixture
def world(store_engine: Engine, tmp_path: Path) -> Iterator[tuple[TestClient, AuthedUser]]:
    services = make_services(store_engine, tmp_path)
    user = add_user(services.security, "olga", Role.OPERATOR)
    with TestClient(api_app(services), base_url="http://testserver") as client:
        yield client, user


def manifest() -> dict[str, list[str]]:
    pages: dict[str, list[str]] = json.loads((APP_DIR / BUILD_MANIFEST).read_text())["pages"]
    return pages


def _signin(client: TestClient, user: AuthedUser) -> None:
    r = client.post(
        "/api/v1/auth/session", data={"username": user.username, "password": user.password}
    )
    assert r.status_code == 200, r.text


def _secured(r: object) -> None:
    headers = r.headers  # type: ignore[attr-defined]
    assert headers["content-security-policy"] == CONTENT_SECURITY_POLICY
    assert "frame-ancestors 'none'" in CONTENT_SECURITY_POLICY
    assert headers["x-content-type-options"] == "nosniff"
    assert headers["referrer-policy"] in ("no-referrer", "strict-origin-when-cross-origin")
    assert "access-control-allow-origin" not in headers


def test_every_page_of_the_build_runs_under_the_csp(build: BuiltApp) -> None:
    pages = sorted(build.root.glob("*.html"))
    assert {p.stem for p in pages} >= {"index", "signin", "review", "search", "system"}
    for page in pages:
        html = page.read_bytes()
        for attrs, body in _SCRIPT.findall(html):
            # Only external scripts, or JSON data blocks (never executed).
            assert b"src=" in attrs or b'type="application/json"' in attrs, (page.name, attrs)
            if b"src=" in attrs:
                assert not body.strip(), page.name
        assert b" style=" not in html, page.name
        assert b"<style" not in html, page.name


def test_no_page_has_css_of_its_own(build: BuiltApp) -> None:
    """A page's own stylesheet would be injected inline on a client-side route change (which
    the CSP blocks): every stylesheet is the app's, loaded once as a <link>."""
    for page, files in manifest().items():
        if page != "/_app":
            assert not [f for f in files if f.endswith(".css")], page
    assert [f for f in manifest()["/_app"] if f.endswith(".css")]


def test_only_the_signin_page_and_its_assets_are_public(
    world: tuple[TestClient, AuthedUser], build: BuiltApp
) -> None:
    client, _ = world
    r = client.get("/signin")
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/html")
    assert b"Sign in" in r.content
    _secured(r)
    for f in manifest()["/signin"] + manifest()["/_app"]:
        r = client.get(f"/_next/{f}")
        assert r.status_code == 200, f
        assert "immutable" in r.headers["cache-control"]
        _secured(r)
    for path in ("/manifest.webmanifest", "/icon.svg"):
        assert client.get(path).status_code == 200, path

    r = client.get("/", follow_redirects=False)
    assert r.status_code == 303 and r.headers["location"] == "/signin"
    r = client.get("/review?alert=a1&camera_id=x", follow_redirects=False)
    assert r.status_code == 303
    assert r.headers["location"] == "/signin?next=%2Freview%3Falert%3Da1%26camera_id%3Dx"
    _secured(r)
    private = set(manifest()["/review"]) - set(manifest()["/signin"]) - set(manifest()["/_app"])
    assert private, "the review page has chunks of its own"
    for f in private:
        r = client.get(f"/_next/{f}")
        assert r.status_code == 401, f
        _secured(r)
    # Unknown paths reveal nothing either.
    r = client.get("/no/such/page", follow_redirects=False)
    assert r.status_code == 303
    # A forged or expired cookie is no session.
    client.cookies.set("sentinel_session", "not-a-token")
    assert client.get("/review", follow_redirects=False).status_code == 303
    assert client.get(f"/_next/{sorted(private)[0]}").status_code == 401


def test_a_session_opens_every_page(world: tuple[TestClient, AuthedUser], build: BuiltApp) -> None:
    client, user = world
    _signin(client, user)
    for page in ("/", "/review", "/search", "/system", "/settings", "/camera", "/zones"):
        r = client.get(page, follow_redirects=False)
        assert r.status_code == 200, page
        assert r.headers["content-type"].startswith("text/html")
        assert "private" in r.headers["cache-control"]
        _secured(r)
    for f in manifest()["/review"]:
        r = client.get(f"/_next/{f}")
        assert r.status_code == 200 and r.headers["content-type"].startswith(
            ("text/javascript", "text/css")
        ), f
    r = client.get("/no/such/page")
    assert r.status_code == 404 and r.headers["content-type"].startswith("text/html")
    assert client.head("/review").status_code == 200
    # Pages only by their clean path; no file outside the build; no build metadata.
    for path in ("/review.html", "/build-manifest.json", "/.built", "/_next/../../pyproject.toml"):
        assert client.get(path).status_code == 404, path


def test_a_token_opens_the_pages_too(world: tuple[TestClient, AuthedUser]) -> None:
    client, user = world
    assert client.get("/review", headers=user.headers).status_code == 200


def test_the_api_keeps_its_own_answers(world: tuple[TestClient, AuthedUser]) -> None:
    client, user = world
    r = client.get("/api/v1/no-such-route", headers=user.headers)
    assert r.status_code == 404 and r.json() == {"detail": "Not Found"}
    _secured(r)
    r = client.post("/review", headers=user.headers)
    assert r.status_code == 405 and r.headers["allow"] == "GET, HEAD"
    assert client.get("/health").json()["status"] == "ok"
    assert client.get("/openapi.json").status_code == 200


def test_a_missing_build_is_said_plainly(store_engine: Engine, tmp_path: Path) -> None:
    app = api_app(make_services(store_engine, tmp_path))
    app.state.web_root = tmp_path / "nothing"
    with TestClient(app) as client:
        r = client.get("/signin")
    assert r.status_code == 503 and b"make web" in r.content
    _secured(r)
