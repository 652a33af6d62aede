"""What the client raises: one exception type per kind of failure, each with status and detail."""

from __future__ import annotations

from typing import Any

import httpx

__all__ = [
    "AuthenticationError",
    "ConflictError",
    "InvalidRequestError",
    "NotFoundError",
    "PermissionDeniedError",
    "RateLimitedError",
    "SentinelAPIError",
    "SentinelConnectionError",
    "SentinelError",
    "error_for",
]


class SentinelError(Exception):
    """Base of everything the client raises."""


class SentinelConnectionError(SentinelError):
    """The server could not be reached (refused, timed out, DNS, TLS)."""


class SentinelAPIError(SentinelError):
    """The server answered with an error status.

    Attributes:
        status: The HTTP status code.
        detail: The body's ``detail``: a string, or FastAPI's list of validation errors (422).
        method: The request's method.
        url: The request's URL.
    """

    def __init__(self, status: int, detail: Any, method: str, url: str) -> None:
        self.status = status
        self.detail = detail
        self.method = method
        self.url = url
        super().__init__(f"{status} on {method} {url}: {describe(detail)}")


class AuthenticationError(SentinelAPIError):
    """401: no, bad or expired credentials that could not be renewed."""


class PermissionDeniedError(SentinelAPIError):
    """403: the credentials lack the scope or camera access the route needs."""


class NotFoundError(SentinelAPIError):
    """404: no such resource, or one hidden from the caller."""


class ConflictError(SentinelAPIError):
    """409: the resource exists already, or is in a state that refuses the change."""


class InvalidRequestError(SentinelAPIError):
    """400 or 422: the server refused the request's parameters or body."""


class RateLimitedError(SentinelAPIError):
    """429 (or 503 with Retry-After): too many requests; ``retry_after_s`` says when to retry."""

    def __init__(
        self, status: int, detail: Any, method: str, url: str, retry_after_s: float | None
    ) -> None:
        super().__init__(status, detail, method, url)
        self.retry_after_s = retry_after_s


_BY_STATUS: dict[int, type[SentinelAPIError]] = {
    400: InvalidRequestError,
    401: AuthenticationError,
    403: PermissionDeniedError,
    404: NotFoundError,
    409: ConflictError,
    422: InvalidRequestError,
}


def describe(detail: Any) -> str:
    """A one-line text of a ``detail``; FastAPI's validation list as ``where: message; ...``."""
    if isinstance(detail, list):
        parts = []
        for item in detail:
            if isinstance(item, dict):
                loc = ".".join(str(p) for p in item.get("loc", ()))
                parts.append(f"{loc}: {item.get('msg')}" if loc else str(item.get("msg")))
            else:
                parts.append(str(item))
        return "; ".join(parts)
    return str(detail)


def error_for(response: httpx.Response) -> SentinelAPIError:
    """The exception for an error ``response`` (its body must have been read)."""
    try:
        body = response.json()
        detail = body.get("detail", body) if isinstance(body, dict) else body
    except ValueError:
        detail = response.text or response.reason_phrase
    request = response.request
    method, url = request.method, str(request.url)
    retry = response.headers.get("Retry-After")
    if response.status_code == 429 or (response.status_code == 503 and retry is not None):
        try:
            retry_after = float(retry) if retry is not None else None
        except ValueError:
            retry_after = None
        return RateLimitedError(response.status_code, detail, method, url, retry_after)
    cls = _BY_STATUS.get(response.status_code, SentinelAPIError)
    return cls(response.status_code, detail, method, url)
