"""Credentials and the token state both clients keep (no I/O here)."""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass

from sentinel.api.auth import TokenResponse

API_KEY_HEADER = "X-API-Key"
DEFAULT_URL = "http://127.0.0.1:8000"
# Renew this long before the access token's expiry, so a request never leaves with a token
# that expires on its way (clock skew and slow networks included).
REFRESH_MARGIN_S = 30.0


@dataclass(frozen=True)
class Credentials:
    """How to sign in: a username and password, an API key, or an access token as it is.

    Only a username and password can be renewed without limit: the client logs in, then
    rotates the refresh token as the access token nears its expiry (or a request gets 401),
    and logs in again if the refresh token was revoked. An API key does not expire; a bare
    access token (``sentinel login``) is used until the server refuses it.
    """

    username: str | None = None
    password: str | None = None
    otp: str | None = None
    api_key: str | None = None
    token: str | None = None

    def __post_init__(self) -> None:
        if (self.username is None) != (self.password is None):
            raise ValueError("give both username and password, or neither")
        kinds = [self.password is not None, self.api_key is not None, self.token is not None]
        if sum(kinds) > 1:
            raise ValueError("give one of: username and password, api_key, token")

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> Credentials:
        """From ``SENTINEL_TOKEN`` (``sentinel login``), ``SENTINEL_API_KEY``, or
        ``SENTINEL_USERNAME`` and ``SENTINEL_PASSWORD``, in that order; none is allowed."""
        env = os.environ if environ is None else environ
        if token := env.get("SENTINEL_TOKEN"):
            return cls(token=token)
        if key := env.get("SENTINEL_API_KEY"):
            return cls(api_key=key)
        username, password = env.get("SENTINEL_USERNAME"), env.get("SENTINEL_PASSWORD")
        if username and password:
            return cls(username=username, password=password)
        return cls()


def url_from_env(environ: Mapping[str, str] | None = None) -> str:
    """``SENTINEL_URL``, else the local default (``http://127.0.0.1:8000``)."""
    env = os.environ if environ is None else environ
    return env.get("SENTINEL_URL") or DEFAULT_URL


class TokenState:
    """The current access and refresh tokens and when the access token expires.

    Args:
        credentials: How to sign in.
        clock: Seconds since the epoch (injectable for tests).
    """

    def __init__(self, credentials: Credentials, clock: Callable[[], float] = time.time) -> None:
        self.credentials = credentials
        self.clock = clock
        self.access_token: str | None = credentials.token
        self.refresh_token: str | None = None
        self.expires_at: float | None = None

    @property
    def can_login(self) -> bool:
        return self.credentials.password is not None

    @property
    def renewable(self) -> bool:
        """Whether a refused access token can be replaced (by refresh or a new login)."""
        return self.refresh_token is not None or self.can_login

    def needs_login(self) -> bool:
        return self.can_login and self.access_token is None

    def needs_refresh(self) -> bool:
        """True when the access token is within ``REFRESH_MARGIN_S`` of its expiry."""
        return (
            self.expires_at is not None
            and self.renewable
            and self.clock() >= self.expires_at - REFRESH_MARGIN_S
        )

    def accept(self, tokens: TokenResponse) -> None:
        self.access_token = tokens.access_token
        self.refresh_token = tokens.refresh_token
        self.expires_at = self.clock() + tokens.expires_in

    def forget(self) -> None:
        self.access_token = self.refresh_token = None
        self.expires_at = None

    def headers(self) -> dict[str, str]:
        if self.credentials.api_key is not None:
            return {API_KEY_HEADER: self.credentials.api_key}
        if self.access_token is not None:
            return {"Authorization": f"Bearer {self.access_token}"}
        return {}
