"""The operator dashboard under ``/``: the static Next.js build, behind the gateway's rules.

Only the sign-in page and its assets are public (see sentinel/dashboard/webapp.py); any other
page sends a visitor without a valid session to ``/signin?next=…`` and any other asset answers
401. Paths under ``/api`` never reach here as pages (an unknown API path is a JSON 404). The
security headers (CSP without inline scripts, ``frame-ancestors 'none'``, ``nosniff``, the
referrer policy) come from the SecurityHeaders middleware, as for every answer.
"""

from __future__ import annotations

from pathlib import Path
from urllib.parse import quote

from fastapi import FastAPI, HTTPException, Request
from fastapi.responses import FileResponse, HTMLResponse, JSONResponse, RedirectResponse, Response
from starlette.types import Receive, Scope, Send

from sentinel.api.deps import current_services
from sentinel.api.security import identify
from sentinel.dashboard.webapp import (
    APP_DIR,
    BUILD_MANIFEST,
    SIGNIN_PAGE,
    AppNotBuiltError,
    BuiltApp,
)

_NOT_BUILT = (
    "<!DOCTYPE html><html lang='en'><head><meta charset='utf-8'><title>Sentinel</title></head>"
    "<body><main><h1>The dashboard is not built</h1><p>Run <code>make web</code> (or "
    "<code>make demo</code>) to build it; the API is at <a href='/docs'>/docs</a>.</p></main>"
    "</body></html>"
)
_cache: dict[Path, tuple[float, BuiltApp]] = {}


def built_app(root: Path) -> BuiltApp:
    """The build at ``root``, read again when it was rebuilt (its manifest's time changed)."""
    try:
        stamp = (root / BUILD_MANIFEST).stat().st_mtime
    except OSError as exc:
        raise AppNotBuiltError(f"the dashboard is not built in {root}") from exc
    cached = _cache.get(root)
    if cached is None or cached[0] != stamp:
        cached = (stamp, BuiltApp.load(root))
        _cache[root] = cached
    return cached[1]


def app_root(request: Request) -> Path:
    root = getattr(request.app.state, "web_root", None)
    return Path(root) if root is not None else APP_DIR


async def _signed_in(request: Request) -> bool:
    services = current_services(request.scope)
    if services is None:
        return False
    try:
        principal = await identify(request, services.security)
    except HTTPException:
        return False
    return principal.kind != "anonymous"


async def dashboard(request: Request) -> Response:
    """The answer for a GET or HEAD of ``request``'s path from the dashboard's build."""
    url_path = request.url.path
    if url_path == "/api" or url_path.startswith("/api/"):
        return _json(404, "Not Found")
    if request.method not in ("GET", "HEAD"):
        return _json(405, "Method Not Allowed", {"Allow": "GET, HEAD"})
    try:
        app = built_app(app_root(request))
    except AppNotBuiltError:
        return HTMLResponse(_NOT_BUILT, status_code=503, headers={"Cache-Control": "no-store"})
    found = app.resolve(url_path)
    if found is not None and found.public:
        return _file(found.path, found.media_type, immutable=found.immutable, private=False)
    if not await _signed_in(request):
        if found is None or found.page:
            here = url_path + (f"?{request.url.query}" if request.url.query else "")
            target = SIGNIN_PAGE if here == "/" else f"{SIGNIN_PAGE}?next={quote(here, safe='')}"
            return RedirectResponse(target, status_code=303)
        return _json(401, "sign in first", {"WWW-Authenticate": "Bearer"})
    if found is None:
        page = app.not_found_page
        if page is None:
            return _json(404, "Not Found")
        return _file(page, "text/html; charset=utf-8", immutable=False, private=True, status=404)
    return _file(found.path, found.media_type, immutable=found.immutable, private=True)


def install(app: FastAPI) -> None:
    """Makes the dashboard the answer to every HTTP path no route takes (routes added later,
    and every route of the API, come first: this is the router's default, not a route)."""
    fallback = app.router.default

    async def default(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await fallback(scope, receive, send)
            return
        response = await dashboard(Request(scope, receive))
        await response(scope, receive, send)

    app.router.default = default


def _json(status: int, detail: str, headers: dict[str, str] | None = None) -> Response:
    return JSONResponse({"detail": detail}, status_code=status, headers=headers)


def _file(
    path: Path, media_type: str, *, immutable: bool, private: bool, status: int = 200
) -> Response:
    scope = "private" if private else "public"
    cache = f"{scope}, max-age=31536000, immutable" if immutable else f"{scope}, no-cache"
    return FileResponse(
        path, status_code=status, media_type=media_type, headers={"Cache-Control": cache}
    )
