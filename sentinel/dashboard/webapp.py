"""The operator dashboard's static build (web/, exported by Next.js into ``sentinel/web/app``):
which file answers a URL, and which URLs anyone may fetch without a session.

Public are only the sign-in page and what it loads: the chunks Next.js's build manifest lists
for ``/signin`` and ``/_app`` (the framework, the app shell, the stylesheet), the polyfills and
the build manifests, the web-app manifest, the icons and the service worker. Every other page
and chunk needs a session, like the API.
"""

from __future__ import annotations

import json
import mimetypes
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

APP_DIR = Path(__file__).resolve().parents[1] / "web" / "app"
SIGNIN_PAGE = "/signin"
BUILD_MANIFEST = "build-manifest.json"
# Files at the root of the build that the sign-in page (or the browser, for an installed app)
# loads before anyone has signed in. They carry no data.
PUBLIC_ROOT_FILES = frozenset(
    {
        "/manifest.webmanifest",
        "/sw.js",
        "/icon.svg",
        "/icon-192.png",
        "/icon-512.png",
        "/favicon.ico",
    }
)
_TYPES = {
    ".webmanifest": "application/manifest+json",
    ".js": "text/javascript; charset=utf-8",
    ".css": "text/css; charset=utf-8",
    ".html": "text/html; charset=utf-8",
    ".svg": "image/svg+xml",
    ".json": "application/json",
    ".png": "image/png",
    ".ico": "image/x-icon",
    ".txt": "text/plain; charset=utf-8",
    ".woff2": "font/woff2",
}


class AppNotBuiltError(RuntimeError):
    """The dashboard's build is missing (``make web`` builds it)."""


@dataclass(frozen=True, slots=True)
class Resolved:
    """What answers a URL: the file, whether it is a page (HTML) and whether it is public."""

    path: Path
    page: bool
    public: bool
    immutable: bool

    @property
    def media_type(self) -> str:
        known = _TYPES.get(self.path.suffix)
        if known is not None:
            return known
        guessed, _ = mimetypes.guess_type(self.path.name)
        return guessed or "application/octet-stream"


@dataclass(frozen=True, slots=True)
class BuiltApp:
    """An exported build: its root folder and the URLs that need no session."""

    root: Path
    public: frozenset[str]

    @classmethod
    def load(cls, root: Path = APP_DIR) -> BuiltApp:
        """Reads the build at ``root``; :class:`AppNotBuiltError` when missing or incomplete."""
        manifest_file = root / BUILD_MANIFEST
        if not manifest_file.is_file():
            raise AppNotBuiltError(f"the dashboard is not built in {root}: run `make web`")
        manifest = json.loads(manifest_file.read_text())
        return cls(root=root.resolve(), public=public_urls(manifest))

    def resolve(self, url_path: str) -> Resolved | None:
        """The file answering ``url_path`` (``/`` → index.html, ``/review`` → review.html,
        ``/_next/...`` → that file), or None: unknown, a folder, hidden, or outside the build."""
        parts = PurePosixPath(url_path).parts[1:] if url_path.startswith("/") else ()
        if any(p in ("", ".", "..") or p.startswith(".") or "\\" in p for p in parts):
            return None
        if url_path == "/":
            candidates = ["index.html"]
        elif not parts or parts[-1].endswith(".html"):
            return None  # pages are fetched by their clean path only
        else:
            rel = "/".join(parts)
            candidates = [rel] if PurePosixPath(rel).suffix else [f"{rel}.html"]
        for candidate in candidates:
            path = (self.root / candidate).resolve()
            if not path.is_relative_to(self.root) or not path.is_file():
                continue
            if path.name == BUILD_MANIFEST:
                return None
            page = path.suffix == ".html"
            clean = "/" if candidate == "index.html" else "/" + candidate.removesuffix(".html")
            return Resolved(
                path=path,
                page=page,
                public=clean in self.public,
                immutable=candidate.startswith("_next/static/"),
            )
        return None

    @property
    def not_found_page(self) -> Path | None:
        page = self.root / "404.html"
        return page if page.is_file() else None


def public_urls(manifest: dict[str, object]) -> frozenset[str]:
    """The sign-in page and its assets, from Next.js's build manifest."""
    files: set[str] = set()
    pages = manifest.get("pages")
    if isinstance(pages, dict):
        for page in ("/_app", SIGNIN_PAGE):
            listed = pages.get(page, [])
            if isinstance(listed, list):
                files.update(str(f) for f in listed)
    for key in ("polyfillFiles", "lowPriorityFiles", "rootMainFiles"):
        listed = manifest.get(key, [])
        if isinstance(listed, list):
            files.update(str(f) for f in listed)
    urls = {f"/_next/{f}" for f in files if f.startswith("static/")}
    return frozenset(urls | {SIGNIN_PAGE} | PUBLIC_ROOT_FILES)
