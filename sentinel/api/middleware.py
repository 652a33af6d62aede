"""ASGI middleware: bounded requests, an audit entry for every mutating request, and the
security headers of every response."""

from __future__ import annotations

import base64
import hashlib
import json
import logging
import re
from typing import Any

from starlette.concurrency import run_in_threadpool
from starlette.types import ASGIApp, Message, Receive, Scope, Send

logger = logging.getLogger(__name__)

MUTATING = {"POST", "PUT", "PATCH", "DELETE"}


async def _reject(send: Send, status: int, detail: str) -> None:
    body = json.dumps({"detail": detail}).encode()
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(body)).encode()),
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})


SEARCH_PATH = "/api/v1/search"
SEARCH_QUERY_BYTES = 3 * 4096 + 1024
VOICE_PATHS = frozenset({"/api/v1/ask/voice", "/api/v1/transcribe"})
MULTIPART_SLACK = 64 << 10  # a multipart envelope around the audio
FACES_PATH = "/api/v1/privacy/faces/search"


class LimitRequestSize:
    """413 for bodies over the limit (declared or streamed) and for oversized query strings,
    before any route parses them. Limits come from the installed services' settings."""

    def __init__(self, app: ASGIApp, *, max_body: int = 1 << 20, max_query: int = 4096) -> None:
        self.app = app
        self.default_body = max_body
        self.default_query = max_query

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        from sentinel.api.deps import current_services

        services = current_services(scope)
        max_body = services.security.max_body_bytes if services else self.default_body
        max_query = services.security.max_query_bytes if services else self.default_query
        if scope.get("path") == SEARCH_PATH:
            # A search text of up to 4 KiB may triple when percent-encoded; the route answers
            # a longer one with a 422 that names the parameter.
            max_query = max(max_query, SEARCH_QUERY_BYTES)
        if services is not None and services.voice is not None and scope["path"] in VOICE_PATHS:
            # Audio uploads have their own limit (voice.max_bytes); the route answers 413 past it.
            max_body = max(max_body, services.voice.limits.max_bytes + MULTIPART_SLACK)
        if services is not None and services.faces is not None and scope["path"] == FACES_PATH:
            # Search photos have their own limit (faces.max_upload_bytes); 413 past it.
            max_body = max(max_body, services.faces.settings.max_upload_bytes + MULTIPART_SLACK)
        if len(scope.get("query_string", b"")) > max_query:
            await _reject(send, 413, f"query string over {max_query} bytes")
            return
        for name, value in scope.get("headers", []):
            if name == b"content-length":
                try:
                    declared = int(value)
                except ValueError:
                    await _reject(send, 400, "invalid Content-Length")
                    return
                if declared > max_body:
                    await _reject(send, 413, f"request body over {max_body} bytes")
                    return
        seen = 0
        started = False
        refused = False

        async def limited_receive() -> Message:
            nonlocal seen, refused
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > max_body and not refused:
                    # Answer now and tell the app the client left, so it stops reading; what
                    # it still tries to send is dropped below.
                    refused = True
                    if not started:
                        await _reject(send, 413, f"request body over {max_body} bytes")
                    return {"type": "http.disconnect"}
            return message

        async def guarded_send(message: Message) -> None:
            nonlocal started
            if refused:
                return
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        await self.app(scope, limited_receive, guarded_send)


class AuditMutations:
    """Appends who did what, from where, with which outcome, for every mutating request.

    Logins audit themselves (with the username tried), so ``/auth/token`` and ``/auth/session``
    are skipped here to avoid logging them twice.
    """

    SKIP = ("/api/v1/auth/token", "/api/v1/auth/session", "/api/v1/auth/refresh")

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] not in MUTATING or scope["path"] in self.SKIP:
            await self.app(scope, receive, send)
            return
        status = 500

        async def capture(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = int(message["status"])
            await send(message)

        try:
            await self.app(scope, receive, capture)
        finally:
            await self._append(scope, status)

    async def _append(self, scope: Scope, status: int) -> None:
        from sentinel.api.deps import current_services
        from sentinel.api.gateway import client_address_of_scope

        services = current_services(scope)
        if services is None:
            return
        state: Any = scope.get("state") or {}
        principal = state.get("principal") if isinstance(state, dict) else None
        # What the route itself adds (``request.state.audit_detail``): the rule version it
        # wrote, the mode it set...; the status and path below always win.
        extra = state.get("audit_detail") if isinstance(state, dict) else None
        actor = getattr(principal, "subject", "anonymous")
        route = scope.get("route")
        action = f"{scope['method']} {getattr(route, 'path', scope['path'])}"
        target = json.dumps(scope.get("path_params") or {}, sort_keys=True)
        outcome = "success" if status < 400 else f"denied:{status}" if status < 500 else "error"
        try:
            await run_in_threadpool(
                services.security.audit.append,
                actor=actor,
                action=action,
                target=target,
                client=client_address_of_scope(scope, services.security),
                outcome=outcome,
                detail={**(extra or {}), "status": status, "path": scope["path"]},
            )
        except Exception:  # never turn a done request into an error; but say it loudly
            logger.exception("audit append failed for %s", action)


CONTENT_SECURITY_POLICY = (
    "default-src 'self'; script-src 'self'; object-src 'none'; base-uri 'self'; "
    "frame-ancestors 'none'; img-src 'self' data: blob:; media-src 'self' blob:; "
    "connect-src 'self'"
)
# FastAPI's /docs and /redoc pages load Swagger UI / ReDoc from a CDN and start them with an
# inline script: they get the same policy widened to that CDN, with the inline scripts
# allowed by their hashes (never 'unsafe-inline').
DOCS_PATHS = frozenset({"/docs", "/redoc", "/docs/oauth2-redirect"})
DOCS_CDN = "https://cdn.jsdelivr.net"
_INLINE_SCRIPT = re.compile(rb"<script>(.*?)</script>", re.DOTALL)

SECURITY_HEADERS: tuple[tuple[bytes, bytes], ...] = (
    (b"x-content-type-options", b"nosniff"),
    (b"referrer-policy", b"strict-origin-when-cross-origin"),
    (b"x-frame-options", b"DENY"),
)


def docs_policy(body: bytes) -> str:
    """The policy of a docs page: its inline scripts by hash, the CDN it loads from."""
    hashes = " ".join(
        "'sha256-" + base64.b64encode(hashlib.sha256(m).digest()).decode() + "'"
        for m in _INLINE_SCRIPT.findall(body)
    )
    return (
        f"default-src 'self'; script-src 'self' {DOCS_CDN} {hashes}; "
        f"style-src 'self' {DOCS_CDN}; object-src 'none'; base-uri 'self'; "
        "frame-ancestors 'none'; img-src 'self' data: blob: https://fastapi.tiangolo.com; "
        "connect-src 'self'"
    )


class SecurityHeaders:
    """Adds the Content-Security-Policy (no inline scripts or styles), ``nosniff``, a strict
    referrer policy and ``X-Frame-Options: DENY`` to every HTTP response, errors included.

    Outermost, so even the size limit's 413 carries them. No CORS headers are ever added: the
    dashboard is served from the API's own origin.
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        if scope.get("path") in DOCS_PATHS:
            await self._docs(scope, receive, send)
            return

        async def with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                message["headers"] = _secured(
                    message.get("headers", []), CONTENT_SECURITY_POLICY.encode()
                )
            await send(message)

        await self.app(scope, receive, with_headers)

    async def _docs(self, scope: Scope, receive: Receive, send: Send) -> None:
        # Small generated pages: buffered to hash their inline scripts.
        start: Message | None = None
        body = b""

        async def buffer(message: Message) -> None:
            nonlocal start, body
            if message["type"] == "http.response.start":
                start = message
                return
            if message["type"] == "http.response.body":
                body += message.get("body", b"")
                if not message.get("more_body", False) and start is not None:
                    start["headers"] = _secured(
                        start.get("headers", []), docs_policy(body).encode()
                    )
                    await send(start)
                    await send({"type": "http.response.body", "body": body})
                return
            await send(message)

        await self.app(scope, receive, buffer)


def security_headers() -> dict[str, str]:
    """The headers :class:`SecurityHeaders` adds, for answers made outside it."""
    return {
        "content-security-policy": CONTENT_SECURITY_POLICY,
        **{k.decode(): v.decode() for k, v in SECURITY_HEADERS},
    }


def _secured(headers: Any, policy: bytes) -> list[tuple[bytes, bytes]]:
    names = {b"content-security-policy", *(name for name, _ in SECURITY_HEADERS)}
    kept = [(k, v) for k, v in headers if bytes(k).lower() not in names]
    return [*kept, (b"content-security-policy", policy), *SECURITY_HEADERS]
