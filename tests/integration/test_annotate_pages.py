"""The annotation pages' guards: a visitor without a session goes to sign in, a visitor without
the page's scope is refused, and the pages, their script and style sheet are served.

What the pages do in a browser is tests/e2e/test_annotate_browser.py; the data behind them is
the JSON API's (its own tests check scopes and camera limits).
"""

from __future__ import annotations

from collections.abc import Iterator
from urllib.parse import quote

import pytest
from fastapi.testclient import TestClient

from sentinel.api.annotate_pages import safe_next
from sentinel.api.deps import Services
from sentinel.gateway.roles import Role
from sentinel.store.db import make_engine, migrate, sqlite_url
from tests.utils.api import api_client
from tests.utils.auth import add_user
from tests.utils.services import make_services

PAGES = ["/annotate", "/annotate/items/abc123", "/annotate/batch", "/annotate/review"]


@pytest.fixture(scope="module")
def services(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Services]:
    """One SQLite store for the module: the pages read nothing from it but users."""
    tmp = tmp_path_factory.mktemp("annotate-pages")
    engine = make_engine(sqlite_url(tmp / "pages.sqlite"))
    migrate(engine)
    yield make_services(engine, tmp)
    engine.dispose()


@pytest.fixture
def client(services: Services) -> Iterator[TestClient]:
    with api_client(services) as c:
        yield c


def _session(client: TestClient, username: str, password: str) -> None:
    r = client.post("/api/v1/auth/session", data={"username": username, "password": password})
    assert r.status_code == 200, r.text


@pytest.mark.parametrize("path", PAGES)
def test_a_visitor_without_a_session_is_sent_to_sign_in(client: TestClient, path: str) -> None:
    r = client.get(path + "?status=queued", follow_redirects=False)
    assert r.status_code == 303
    assert r.headers["location"] == "/annotate/signin?next=" + quote(
        path + "?status=queued", safe=""
    )
    # An expired or forged session is no session either.
    client.cookies.set("sentinel_session", "not-a-token")
    assert client.get(path, follow_redirects=False).status_code == 303


def test_the_sign_in_page_posts_to_the_session_route(client: TestClient) -> None:
    r = client.get("/annotate/signin", params={"next": "/annotate/items/x"})
    assert r.status_code == 200
    assert 'data-next="/annotate/items/x"' in r.text
    assert 'id="username"' in r.text and 'id="password"' in r.text
    assert "frame-ancestors 'none'" in r.headers["content-security-policy"]


@pytest.mark.parametrize(
    ("target", "expected"),
    [
        ("/annotate/items/1", "/annotate/items/1"),
        ("/annotate?status=queued", "/annotate?status=queued"),
        ("https://evil.example/annotate", "/annotate"),
        ("//evil.example/annotate", "/annotate"),
        ("/api/v1/auth/logout", "/annotate"),
        (None, "/annotate"),
    ],
)
def test_after_sign_in_only_these_pages_are_a_destination(
    target: str | None, expected: str
) -> None:
    assert safe_next(target) == expected


@pytest.mark.parametrize(
    ("role", "allowed"),
    [
        (Role.VIEWER, set()),
        (Role.ANNOTATOR, {"/annotate", "/annotate/items/abc123", "/annotate/batch"}),
        (Role.OPERATOR, set(PAGES)),
        (Role.ADMIN, set(PAGES)),
    ],
)
def test_each_page_needs_its_scope(
    services: Services, client: TestClient, role: Role, allowed: set[str]
) -> None:
    user = add_user(services.security, f"u-{role.value}", role)
    _session(client, user.username, user.password)
    for path in PAGES:
        r = client.get(path, follow_redirects=False)
        if path in allowed:
            assert r.status_code == 200, (path, r.text[:200])
            assert '<script type="module" src="/annotate/static/annotate.js' in r.text
            assert r.headers["cache-control"] == "no-store"
        else:
            assert r.status_code == 403, (path, r.text[:200])
            assert "annotations:" in r.text


def test_the_item_page_names_its_item_and_documents_the_keys(
    services: Services, client: TestClient
) -> None:
    user = add_user(services.security, "ann", Role.ANNOTATOR)
    _session(client, user.username, user.password)
    r = client.get("/annotate/items/it-<b>1")
    assert r.status_code == 200
    assert 'data-item-id="it-&lt;b&gt;1"' in r.text  # escaped
    for key in ("Enter", "Delete", "Backspace", "Ctrl+Z", "1 … 9", "n", "p"):
        assert f"<kbd>{key}</kbd>" in r.text
    assert 'aria-label="Frame with boxes' in r.text


def test_the_script_and_style_sheet_are_served(client: TestClient) -> None:
    for name in ("annotate.js", "common.js", "editor.js"):
        js = client.get(f"/annotate/static/{name}")
        assert js.status_code == 200, name
        assert js.headers["content-type"].startswith(("text/javascript", "application/javascript"))
    assert "X-CSRF-Token" in client.get("/annotate/static/common.js").text
    css = client.get("/annotate/static/annotate.css")
    assert css.status_code == 200 and css.headers["content-type"].startswith("text/css")
    # No template is served: the path leaves the static folder, and what answers it is the
    # dashboard's fallback (sign in first, or its 404 page), never the template's source.
    r = client.get("/annotate/static/../templates/base.html", follow_redirects=False)
    assert r.status_code in (303, 404) and b"{%" not in r.content
