"""Repository of API keys, stored by hash (re-exported by ``sentinel.store.security_repo``)."""

from __future__ import annotations

import builtins
import logging
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from sentinel.store.clock import Clock
from sentinel.store.clock import utcnow as _utcnow
from sentinel.store.security_tables import API_KEYS, decode_str_list, encode_str_list
from sentinel.store.sql import as_utc

__all__ = ["ApiKeyRecord", "ApiKeyRepository"]

_log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class ApiKeyRecord:
    """A stored API key; ``cameras`` None means all cameras. Revoked keys must be refused."""

    id: str
    name: str
    prefix: str
    key_hash: str
    role: str
    scopes: tuple[str, ...]
    cameras: tuple[str, ...] | None
    created_by: str | None
    created_at: datetime
    revoked_at: datetime | None
    last_used_at: datetime | None


def _to_api_key(row: Mapping[Any, Any]) -> ApiKeyRecord:
    return ApiKeyRecord(
        id=row["id"],
        name=row["name"],
        prefix=row["prefix"],
        key_hash=row["key_hash"],
        role=row["role"],
        scopes=decode_str_list(row["scopes"]) or (),
        cameras=decode_str_list(row["cameras"]),
        created_by=row["created_by"],
        created_at=row["created_at"],
        revoked_at=row["revoked_at"],
        last_used_at=row["last_used_at"],
    )


class ApiKeyRepository:
    """Stores API keys by hash; the key itself is never stored, only its display prefix.

    Args:
        engine: An engine from ``sentinel.store.db.make_engine`` on a migrated database.
        clock: Returns the current tz-aware time (for ``created_at``); injectable for tests.
        touch_interval: ``touch`` writes ``last_used_at`` at most this often per key, so a
            busy key does not turn every request into a write.
    """

    def __init__(
        self,
        engine: Engine,
        *,
        clock: Clock = _utcnow,
        touch_interval: timedelta = timedelta(seconds=60),
    ) -> None:
        self._engine = engine
        self._clock = clock
        self._touch_interval = touch_interval

    def create(
        self,
        name: str,
        prefix: str,
        key_hash: str,
        role: str,
        scopes: Sequence[str],
        cameras: Sequence[str] | None,
        created_by: str | None,
    ) -> ApiKeyRecord:
        """Store a new key.

        Args:
            name: A human-readable name.
            prefix: The key's first characters (at most 16), shown to tell keys apart.
            key_hash: The key's hash (unique).
            role: The role the key acts with.
            scopes: The key's scopes.
            cameras: The cameras it may access, or None for all.
            created_by: The id of the user who created it (set to NULL if that user is
                deleted), or None.

        Returns:
            The stored key.

        Raises:
            TypeError: If ``scopes`` or ``cameras`` is not a sequence of strings.
            sqlalchemy.exc.IntegrityError: If ``key_hash`` is already stored or
                ``created_by`` names no user.
        """
        values: dict[str, Any] = {
            "id": str(uuid.uuid4()),
            "name": name,
            "prefix": prefix,
            "key_hash": key_hash,
            "role": role,
            "scopes": encode_str_list(scopes, "scopes"),
            "cameras": encode_str_list(cameras, "cameras"),
            "created_by": created_by,
            "created_at": as_utc(self._clock(), "clock()"),
            "revoked_at": None,
            "last_used_at": None,
        }
        with self._engine.begin() as conn:
            conn.execute(sa.insert(API_KEYS).values(**values))
        return _to_api_key(values)

    def get(self, key_id: str) -> ApiKeyRecord | None:
        """The key with this id, revoked or not, or None."""
        return self._one(API_KEYS.c.id == key_id)

    def by_hash(self, key_hash: str) -> ApiKeyRecord | None:
        """The key with this hash, revoked or not (the caller checks ``revoked_at``), or None."""
        return self._one(API_KEYS.c.key_hash == key_hash)

    def _one(self, where: sa.ColumnElement[bool]) -> ApiKeyRecord | None:
        with self._engine.connect() as conn:
            row = conn.execute(sa.select(API_KEYS).where(where)).mappings().first()
        return None if row is None else _to_api_key(row)

    def list(self, created_by: str | None = None) -> builtins.list[ApiKeyRecord]:
        """All keys, or those ``created_by`` one user; oldest first, revoked ones included."""
        query = sa.select(API_KEYS).order_by(API_KEYS.c.created_at, API_KEYS.c.id)
        if created_by is not None:
            query = query.where(API_KEYS.c.created_by == created_by)
        with self._engine.connect() as conn:
            return [_to_api_key(row) for row in conn.execute(query).mappings()]

    def revoke(self, key_id: str, now: datetime) -> bool:
        """Revoke a key; idempotent (a second call keeps the first ``revoked_at``).

        Returns:
            Whether the key exists.
        """
        revoked_at = sa.func.coalesce(API_KEYS.c.revoked_at, as_utc(now, "now"))
        stmt = sa.update(API_KEYS).where(API_KEYS.c.id == key_id).values(revoked_at=revoked_at)
        with self._engine.begin() as conn:
            return conn.execute(stmt).rowcount > 0

    def touch(self, key_id: str, now: datetime) -> None:
        """Best effort: set ``last_used_at`` unless set less than ``touch_interval`` ago.

        Database errors are logged, not raised: a failed touch must not fail the request.
        """
        now = as_utc(now, "now")
        last = API_KEYS.c.last_used_at
        stmt = (
            sa.update(API_KEYS)
            .where(API_KEYS.c.id == key_id)
            .where(sa.or_(last.is_(None), last <= now - self._touch_interval))
            .values(last_used_at=now)
        )
        try:
            with self._engine.begin() as conn:
                conn.execute(stmt)
        except sa.exc.SQLAlchemyError as exc:
            _log.warning("could not record the use of API key %s: %s", key_id, exc)
