"""Building the gateway's services from settings (keys, repositories, rate limiter)."""

from __future__ import annotations

from pathlib import Path

from sqlalchemy.engine import Engine

from sentinel.api.gateway import RateLimits, SecurityServices
from sentinel.config import AuthSettings
from sentinel.gateway.keys import KeyRing
from sentinel.gateway.passwords import Passwords
from sentinel.gateway.ratelimit import BucketSpec, MemoryRateLimiter, RateLimiter, RedisRateLimiter
from sentinel.gateway.secretbox import open_secret_box
from sentinel.gateway.tokens import TokenIssuer
from sentinel.store.api_key_repo import ApiKeyRepository
from sentinel.store.audit_repo import AuditRepository
from sentinel.store.security_repo import RefreshTokenRepository, UserRepository

LOGIN_WINDOW_S = 300.0


def build_limiter(redis_url: str | None) -> RateLimiter:
    """Redis buckets when configured (shared by every ingress replica), else in-process."""
    if redis_url:
        import redis.asyncio as aioredis

        # Short timeouts: a request waits on the limiter, so an unreachable Redis must fail
        # fast (LimiterUnavailableError) rather than hang every request for the OS's TCP timeout.
        client = aioredis.Redis.from_url(redis_url, socket_connect_timeout=1.0, socket_timeout=1.0)
        return RedisRateLimiter(client)
    return MemoryRateLimiter()


def build_security(
    auth: AuthSettings,
    engine: Engine,
    data_dir: Path,
    *,
    redis_url: str | None = None,
    passwords: Passwords | None = None,
) -> SecurityServices:
    keyring = (
        KeyRing.from_pem(auth.jwt_private_keys)
        if auth.jwt_private_keys
        else KeyRing.load_or_create(data_dir / "keys" / "jwt")
    )
    return SecurityServices(
        keyring=keyring,
        issuer=TokenIssuer(
            keyring, issuer=auth.issuer, audience=auth.audience, access_ttl_s=auth.access_ttl_s
        ),
        passwords=passwords or Passwords(),
        users=UserRepository(engine),
        refresh=RefreshTokenRepository(engine),
        apikeys=ApiKeyRepository(engine),
        audit=AuditRepository(engine),
        limiter=build_limiter(redis_url),
        secretbox=open_secret_box(auth.secret_key, data_dir),
        trusted_proxies=list(auth.trusted_proxies),
        access_ttl_s=auth.access_ttl_s,
        refresh_ttl_s=auth.refresh_ttl_s,
        limits=RateLimits(
            per_route=BucketSpec(rate_per_s=auth.rate_per_s, burst=auth.rate_burst),
            login_account=BucketSpec(auth.login_attempts / LOGIN_WINDOW_S, auth.login_attempts),
            login_client=BucketSpec(
                auth.login_attempts_per_client / LOGIN_WINDOW_S, auth.login_attempts_per_client
            ),
        ),
        metrics_public=auth.metrics_public,
        secure_cookies=auth.secure_cookies,
        max_body_bytes=auth.max_body_bytes,
        max_query_bytes=auth.max_query_bytes,
    )
