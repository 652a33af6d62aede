"""Every class of HTTP answer carries the security headers, and none carries CORS headers.

JSON API answers, HTML pages, static assets, errors (404, 401, 422, 413), /health, /metrics
and the docs page: each gets the Content-Security-Policy without inline scripts,
``nosniff``, a strict referrer policy and ``X-Frame-Options: DENY``.
"""

from __future__ import annotations

import base64
import hashlib
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy.engine import Engine

from sentinel.api.middleware import CONTENT_SECURITY_POLICY
from sentinel.gateway.roles import Role
from tests.utils.api import api_app, api_client
from tests.utils.auth import AuthedUser, add_user
from tests.utils.services import make_services


@pytest.fixture
def admin_and_client(
    store_engine: Engine, tmp_path: Path
) -> Iterator[tuple[AuthedUser, TestClient]]:
    services = make_services(store_engine, tmp_path)
    admin = add_user(services.security, "root", Role.ADMIN)
    with api_client(services) as client:
        yield admin, client


def _check(r: Any, where: str) -> None:
    h = r.headers
    assert h.get("x-content-type-options") == "nosniff", where
    assert h.get("referrer-policy") == "strict-origin-when-cross-origin", where
    assert h.get("x-frame-options") == "DENY", where
    csp = h.get("content-security-policy", "")
    assert "frame-ancestors 'none'" in csp and "object-src 'none'" in csp, where
    assert "'unsafe-inline'" not in csp and "'unsafe-eval'" not in csp, where
    assert not any(k.lower().startswith("access-control-") for k in h), where


CASES: list[tuple[str, str, dict[str, Any], bool, int]] = [
    # (name, method, request kwargs, authenticated, status)
    ("api-json", "GET", {"url": "/api/v1/events"}, True, 200),
    ("html-page", "GET", {"url": "/annotate/signin"}, False, 200),
    ("static-asset", "GET", {"url": "/annotate/static/annotate.js"}, False, 200),
    ("static-css", "GET", {"url": "/annotate/static/annotate.css"}, False, 200),
    ("not-found", "GET", {"url": "/api/v1/nothing-here"}, False, 404),
    ("unauthorized", "GET", {"url": "/api/v1/events"}, False, 401),
    ("unprocessable", "GET", {"url": "/api/v1/events?limit=-5"}, True, 422),
    ("too-large", "POST", {"url": "/api/v1/cameras", "content": b"x" * (2 << 20)}, True, 413),
    ("health", "GET", {"url": "/health"}, False, 200),
    ("metrics", "GET", {"url": "/metrics"}, True, 200),
    ("openapi", "GET", {"url": "/openapi.json"}, False, 200),
    (
        "preflight",
        "OPTIONS",
        {
            "url": "/api/v1/events",
            "headers": {"Origin": "https://evil.example", "Access-Control-Request-Method": "GET"},
        },
        False,
        405,
    ),
]


@pytest.mark.parametrize(
    ("name", "method", "req", "authed", "status"), CASES, ids=[c[0] for c in CASES]
)
def test_every_answer_carries_the_security_headers(
    admin_and_client: tuple[AuthedUser, TestClient],
    name: str,
    method: str,
    req: dict[str, Any],
    authed: bool,
    status: int,
) -> None:
    admin, client = admin_and_client
    headers = {**req.pop("headers", {}), **(admin.headers if authed else {})}
    r = client.request(method, headers=headers, **req)
    assert r.status_code == status, (name, r.status_code, r.text[:200])
    _check(r, name)
    if name not in ("openapi",):
        assert r.headers["content-security-policy"] == CONTENT_SECURITY_POLICY


def test_docs_page_allows_only_its_own_inline_script_by_hash(
    admin_and_client: tuple[AuthedUser, TestClient],
) -> None:
    _, client = admin_and_client
    r = client.get("/docs")
    assert r.status_code == 200
    _check(r, "docs")
    csp = r.headers["content-security-policy"]
    scripts = re.findall(rb"<script>(.*?)</script>", r.content, re.DOTALL)
    assert scripts, "the docs page has an inline script to allow"
    for body in scripts:
        digest = base64.b64encode(hashlib.sha256(body).digest()).decode()
        assert f"'sha256-{digest}'" in csp


def test_annotation_pages_have_no_inline_script_or_style() -> None:
    """The CSP forbids inline scripts and styles: the Jinja pages must not use them."""
    templates = Path(__file__).parents[2] / "sentinel" / "web" / "templates"
    for page in templates.glob("*.html"):
        text = page.read_text()
        assert not re.search(r"<script(?![^>]*\bsrc=)", text), page.name
        assert "<style" not in text and " style=" not in text, page.name
        assert not re.search(r"\son[a-z]+=", text), page.name


def test_an_unexpected_error_carries_them_too(store_engine: Engine, tmp_path: Path) -> None:
    app = api_app(make_services(store_engine, tmp_path))

    @app.get("/boom")
    async def boom() -> None:
        raise RuntimeError("boom")

    with TestClient(app, raise_server_exceptions=False) as client:
        r = client.get("/boom")
    assert r.status_code == 500 and r.json() == {"detail": "internal error"}
    _check(r, "500")
