"""The client's pure parts: credentials, token timing, error mapping (no server)."""

from __future__ import annotations

import httpx
import pytest

from sentinel.api.auth import TokenResponse
from sentinel.client import (
    ConflictError,
    Credentials,
    InvalidRequestError,
    RateLimitedError,
    SentinelAPIError,
)
from sentinel.client._auth import REFRESH_MARGIN_S, TokenState, url_from_env
from sentinel.client.errors import error_for


@pytest.mark.parametrize(
    ("kwargs", "ok"),
    [
        ({}, True),
        ({"username": "a", "password": "b"}, True),
        ({"api_key": "k"}, True),
        ({"token": "t"}, True),
        ({"username": "a"}, False),
        ({"password": "b"}, False),
        ({"username": "a", "password": "b", "api_key": "k"}, False),
        ({"api_key": "k", "token": "t"}, False),
    ],
)
def test_credentials_take_one_kind(kwargs: dict[str, str], ok: bool) -> None:
    if ok:
        Credentials(**kwargs)
    else:
        with pytest.raises(ValueError):
            Credentials(**kwargs)


def test_credentials_and_url_from_env() -> None:
    both = {"SENTINEL_TOKEN": "t", "SENTINEL_API_KEY": "k"}
    assert Credentials.from_env(both) == Credentials(token="t")
    assert Credentials.from_env({"SENTINEL_API_KEY": "k"}) == Credentials(api_key="k")
    pw = {"SENTINEL_USERNAME": "ana", "SENTINEL_PASSWORD": "pw"}
    assert Credentials.from_env(pw) == Credentials(username="ana", password="pw")
    assert Credentials.from_env({"SENTINEL_USERNAME": "ana"}) == Credentials()
    assert url_from_env({}) == "http://127.0.0.1:8000"
    assert url_from_env({"SENTINEL_URL": "http://h:1"}) == "http://h:1"


def test_tokens_are_renewed_before_they_expire() -> None:
    now = [1000.0]
    state = TokenState(Credentials(username="a", password="b"), clock=lambda: now[0])
    assert state.needs_login() and not state.needs_refresh()
    state.accept(TokenResponse(access_token="a1", expires_in=900, refresh_token="r1", scope=""))
    assert not state.needs_login() and state.headers() == {"Authorization": "Bearer a1"}
    now[0] += 900 - REFRESH_MARGIN_S - 1
    assert not state.needs_refresh()
    now[0] += 1
    assert state.needs_refresh()
    state.forget()
    assert state.needs_login() and state.headers() == {}
    key = TokenState(Credentials(api_key="sk_x"))
    assert key.headers() == {"X-API-Key": "sk_x"} and not key.renewable
    assert not TokenState(Credentials(token="t")).renewable


def _response(status: int, body: bytes, **headers: str) -> httpx.Response:
    request = httpx.Request("GET", "http://s/api/v1/events")
    return httpx.Response(status, content=body, headers=headers, request=request)


def test_errors_keep_status_and_detail() -> None:
    err = error_for(_response(409, b'{"detail": "camera x already exists"}'))
    assert isinstance(err, ConflictError) and err.status == 409
    assert err.detail == "camera x already exists" and "GET http://s/api/v1/events" in str(err)
    body = b'{"detail": [{"loc": ["query", "limit"], "msg": "too small", "type": "x"}]}'
    err = error_for(_response(422, body))
    assert isinstance(err, InvalidRequestError) and "query.limit: too small" in str(err)
    err = error_for(_response(429, b'{"detail": "slow down"}', **{"Retry-After": "3"}))
    assert isinstance(err, RateLimitedError) and err.retry_after_s == 3.0
    err = error_for(_response(502, b"<html>bad gateway</html>"))
    assert type(err) is SentinelAPIError and err.detail == "<html>bad gateway</html>"
