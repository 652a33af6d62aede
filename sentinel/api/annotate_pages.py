"""The annotation pages: server-rendered shells (Jinja2) over the JSON API of
``/api/v1/annotation`` (the queue, the canvas, batch mode, review).

The pages hold no data of their own: each one loads ``annotate.js``, which reads and writes
through the JSON API with the browser's session cookie and its CSRF token, so the scope and
camera checks are the API's (an item of a hidden camera answers 404 there, and the page says
so). A page still checks the scope it is for, so that a visitor without it gets a clear
refusal rather than a page whose every call fails; a visitor without a session is sent to the
sign-in page, which signs in through ``POST /api/v1/auth/session``.

The pages are not in the OpenAPI document (they are HTML, not API) and so not in the
route→scope table; tests/integration/test_annotate_pages.py checks their guards.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any
from urllib.parse import quote

from fastapi import APIRouter, HTTPException, Query, Request
from fastapi import Path as PathParam
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from fastapi.staticfiles import StaticFiles
from fastapi.templating import Jinja2Templates

from sentinel import __version__
from sentinel.api.deps import ServicesDep
from sentinel.api.security import identify
from sentinel.gateway.roles import ANNOTATIONS_REVIEW, ANNOTATIONS_WRITE, Principal

WEB_DIR = Path(__file__).resolve().parents[1] / "web"
STATIC_PATH = "/annotate/static"
SIGNIN_PATH = "/annotate/signin"

templates = Jinja2Templates(directory=WEB_DIR / "templates")
router = APIRouter(prefix="/annotate", include_in_schema=False)

# The keys of the canvas and of batch mode, shown on the pages (one source for the help text).
Keys = tuple[tuple[tuple[str, ...], str], ...]
CANVAS_KEYS: Keys = (
    (("n", "→"), "next item (→ nudges the selected box instead)"),
    (("p", "←"), "previous item (← nudges the selected box instead)"),
    (("1 … 9",), "pick a label (and relabel the selected box)"),
    (("Delete", "Backspace"), "delete the selected box"),
    (("a",), "accept the selected pre-label"),
    (("Shift+A",), "accept every pre-label"),
    (("Tab", "Shift+Tab"), "select the next / previous box"),
    (("↑ ↓ ← →",), "nudge the selected box by 1 px (with Shift: 10 px)"),
    (("Escape",), "deselect"),
    (("Ctrl+Z",), "undo"),
    (("Ctrl+Shift+Z", "Ctrl+Y"), "redo"),
    (("Enter",), "submit the boxes on the canvas"),
)
BATCH_KEYS: Keys = (
    (("← → ↑ ↓",), "move between crops"),
    (("a", "y"), "accept the focused crop"),
    (("r", "x"), "reject the focused crop"),
    (("Enter",), "submit the page"),
)


def safe_next(target: str | None) -> str:
    """Where to go after signing in: only a path of these pages (no open redirect)."""
    if target and target.startswith("/annotate") and not target.startswith("//"):
        return target
    return "/annotate"


async def _visitor(request: Request, services: ServicesDep) -> Principal | None:
    """The signed-in visitor, or None (no session, or an expired or revoked one)."""
    try:
        principal = await identify(request, services.security)
    except HTTPException:
        return None
    return None if principal.kind == "anonymous" else principal


def _signin_redirect(request: Request) -> RedirectResponse:
    here = request.url.path + (f"?{request.url.query}" if request.url.query else "")
    return RedirectResponse(f"{SIGNIN_PATH}?next={quote(here, safe='')}", status_code=303)


def _render(
    request: Request, name: str, principal: Principal | None, status: int = 200, **ctx: Any
) -> HTMLResponse:
    context = {
        "static": STATIC_PATH,
        "version": __version__,
        "principal": principal,
        "can_review": principal is not None and principal.has(ANNOTATIONS_REVIEW),
        **ctx,
    }
    response = templates.TemplateResponse(request, name, context, status_code=status)
    # The pages carry no data, but nothing here should be cached or framed elsewhere.
    response.headers["Cache-Control"] = "no-store"
    response.headers["X-Frame-Options"] = "DENY"
    response.headers["Content-Security-Policy"] = (
        "default-src 'self'; img-src 'self' blob:; style-src 'self'; script-src 'self'; "
        "frame-ancestors 'none'"
    )
    return response


async def _page(
    request: Request, services: ServicesDep, scope: str, name: str, **ctx: Any
) -> Response:
    principal = await _visitor(request, services)
    if principal is None:
        return _signin_redirect(request)
    if not principal.has(scope):
        return _render(request, "forbidden.html", principal, status=403, needed=scope)
    return _render(request, name, principal, **ctx)


@router.get("/signin", response_class=HTMLResponse)
async def signin_page(
    request: Request, next_url: Annotated[str | None, Query(alias="next", max_length=512)] = None
) -> Response:
    return _render(request, "signin.html", None, next_url=safe_next(next_url))


@router.get("", response_class=HTMLResponse)
async def queue_page(request: Request, services: ServicesDep) -> Response:
    return await _page(request, services, ANNOTATIONS_WRITE, "queue.html")


@router.get("/items/{item_id}", response_class=HTMLResponse)
async def item_page(
    request: Request,
    services: ServicesDep,
    item_id: Annotated[str, PathParam(min_length=1, max_length=64)],
) -> Response:
    return await _page(
        request, services, ANNOTATIONS_WRITE, "item.html", item_id=item_id, keys=CANVAS_KEYS
    )


@router.get("/batch", response_class=HTMLResponse)
async def batch_page(request: Request, services: ServicesDep) -> Response:
    return await _page(request, services, ANNOTATIONS_WRITE, "batch.html", keys=BATCH_KEYS)


@router.get("/review", response_class=HTMLResponse)
async def review_page(request: Request, services: ServicesDep) -> Response:
    return await _page(request, services, ANNOTATIONS_REVIEW, "review.html")


def static_files() -> StaticFiles:
    """The pages' script and style sheet (public: code, no data)."""
    return StaticFiles(directory=WEB_DIR / "static")
