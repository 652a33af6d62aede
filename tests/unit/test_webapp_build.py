"""Which file answers a dashboard URL, and which URLs are public (a build made in a tmp dir)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from sentinel.dashboard.webapp import AppNotBuiltError, BuiltApp, public_urls

MANIFEST: dict[str, object] = {
    "polyfillFiles": ["static/chunks/polyfills-1.js"],
    "lowPriorityFiles": ["static/b1/_buildManifest.js", "static/b1/_ssgManifest.js"],
    "rootMainFiles": [],
    "pages": {
        "/_app": [
            "static/chunks/framework-1.js",
            "static/css/app-1.css",
            "static/chunks/pages/_app-1.js",
        ],
        "/signin": ["static/chunks/framework-1.js", "static/chunks/pages/signin-1.js"],
        "/review": [
            "static/chunks/framework-1.js",
            "static/chunks/8-1.js",
            "static/chunks/pages/review-1.js",
        ],
        "/": ["static/chunks/pages/index-1.js"],
    },
}


@pytest.fixture
def build(tmp_path: Path) -> BuiltApp:
    root = tmp_path / "app"
    files = [
        "index.html", "review.html", "signin.html", "404.html", "sw.js", "manifest.webmanifest",
        "icon.svg", "_next/static/chunks/framework-1.js", "_next/static/chunks/8-1.js",
        "_next/static/chunks/pages/review-1.js", "_next/static/chunks/pages/signin-1.js",
        "_next/static/chunks/pages/_app-1.js", "_next/static/css/app-1.css",
        "_next/static/chunks/polyfills-1.js", "_next/static/b1/_buildManifest.js",
    ]  # fmt: skip
    for f in files:
        (root / f).parent.mkdir(parents=True, exist_ok=True)
        (root / f).write_text(f)
    (root / "build-manifest.json").write_text(json.dumps(MANIFEST))
    (tmp_path / "secret.txt").write_text("outside")
    return BuiltApp.load(root)


def test_public_are_the_signin_page_and_what_it_loads() -> None:
    public = public_urls(MANIFEST)
    assert "/signin" in public and "/manifest.webmanifest" in public and "/sw.js" in public
    assert "/_next/static/chunks/pages/signin-1.js" in public
    assert "/_next/static/css/app-1.css" in public
    assert "/_next/static/chunks/polyfills-1.js" in public
    for private in ("/", "/review", "/_next/static/chunks/pages/review-1.js",
                    "/_next/static/chunks/8-1.js"):  # fmt: skip
        assert private not in public


def test_pages_resolve_by_clean_path(build: BuiltApp) -> None:
    index = build.resolve("/")
    assert index is not None and index.path.name == "index.html" and index.page
    assert not index.public and index.media_type.startswith("text/html")
    review = build.resolve("/review")
    assert review is not None and review.path.name == "review.html" and not review.public
    signin = build.resolve("/signin")
    assert signin is not None and signin.public and signin.page and not signin.immutable
    chunk = build.resolve("/_next/static/chunks/pages/review-1.js")
    assert chunk is not None and not chunk.page and not chunk.public and chunk.immutable
    assert chunk.media_type.startswith("text/javascript")
    manifest = build.resolve("/manifest.webmanifest")
    assert manifest is not None and manifest.public
    assert manifest.media_type == "application/manifest+json"


@pytest.mark.parametrize(
    "url",
    [
        "/review.html",  # pages only by their clean path
        "/nothing",
        "/../secret.txt",
        "/_next/../../secret.txt",
        "/_next/static/%2e%2e/x",
        "/build-manifest.json",
        "/.built",
        "/_next",  # a folder
        "//etc/passwd",
        "/_next/static\\chunks",
        "relative",
    ],
)
def test_nothing_else_resolves(build: BuiltApp, url: str) -> None:
    assert build.resolve(url) is None


def test_a_missing_build_is_reported(tmp_path: Path) -> None:
    with pytest.raises(AppNotBuiltError, match="make web"):
        BuiltApp.load(tmp_path)
    (tmp_path / "index.html").write_text("pages without the build's manifest")
    with pytest.raises(AppNotBuiltError):
        BuiltApp.load(tmp_path)
