"""Sentinel's security core: passwords, keys, tokens, TOTP, secrets at rest, rate limits,
client addresses, the audit hash chain, and roles.

Pure Python plus cryptography and Redis: no web framework, database or Ray imports, so every
piece is unit-testable and usable from any process.
"""

from sentinel.gateway.audit import (
    GENESIS_HASH,
    AuditRecord,
    ChainReport,
    chain_hash,
    next_record,
    verify_chain,
)
from sentinel.gateway.clients import UNKNOWN_CLIENT, client_address, parse_address
from sentinel.gateway.keys import ActiveKey, KeyRing, kid_for
from sentinel.gateway.passwords import (
    MAX_PASSWORD_LENGTH,
    MIN_PASSWORD_LENGTH,
    Passwords,
    WeakPassword,
    validate_password,
)
from sentinel.gateway.ratelimit import (
    BucketSpec,
    Decision,
    MemoryRateLimiter,
    RateLimiter,
    RedisRateLimiter,
)
from sentinel.gateway.roles import (
    ADMIN,
    ALL_SCOPES,
    ANONYMOUS,
    APIKEYS_WRITE,
    AUDIT_READ,
    CAMERAS_READ,
    CAMERAS_WRITE,
    EVENTS_READ,
    METRICS_READ,
    ROLE_SCOPES,
    USERS_ADMIN,
    Principal,
    Role,
    scopes_for,
)
from sentinel.gateway.secretbox import SecretBox, SecretError, key_from_setting, load_or_create_key
from sentinel.gateway.tokens import (
    AccessClaims,
    InvalidToken,
    TokenIssuer,
    hash_opaque,
    new_opaque_token,
    opaque_matches,
)
from sentinel.gateway.totp import current_code, new_totp_secret, provisioning_uri, verify_totp

__all__ = [
    "ADMIN",
    "ALL_SCOPES",
    "ANONYMOUS",
    "APIKEYS_WRITE",
    "AUDIT_READ",
    "CAMERAS_READ",
    "CAMERAS_WRITE",
    "EVENTS_READ",
    "GENESIS_HASH",
    "MAX_PASSWORD_LENGTH",
    "METRICS_READ",
    "MIN_PASSWORD_LENGTH",
    "ROLE_SCOPES",
    "UNKNOWN_CLIENT",
    "USERS_ADMIN",
    "AccessClaims",
    "ActiveKey",
    "AuditRecord",
    "BucketSpec",
    "ChainReport",
    "Decision",
    "InvalidToken",
    "KeyRing",
    "MemoryRateLimiter",
    "Passwords",
    "Principal",
    "RateLimiter",
    "RedisRateLimiter",
    "Role",
    "SecretBox",
    "SecretError",
    "TokenIssuer",
    "WeakPassword",
    "chain_hash",
    "client_address",
    "current_code",
    "hash_opaque",
    "key_from_setting",
    "kid_for",
    "load_or_create_key",
    "new_opaque_token",
    "new_totp_secret",
    "next_record",
    "opaque_matches",
    "parse_address",
    "provisioning_uri",
    "scopes_for",
    "validate_password",
    "verify_chain",
    "verify_totp",
]
