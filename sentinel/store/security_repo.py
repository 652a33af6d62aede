"""Repositories of authentication and audit: users, refresh tokens, API keys, the audit log.

Everything that must not race is one conditional statement or one locked transaction: a TOTP
step is consumed by ``UPDATE ... WHERE totp_last_step < step``, a refresh token is used by
``UPDATE ... WHERE used_at IS NULL``, and an audit entry is appended while holding the
``audit_head`` row (``SELECT ... FOR UPDATE`` on PostgreSQL, ``BEGIN IMMEDIATE`` on SQLite), so
concurrent appends from threads or processes form one gap-free hash chain.
"""

from __future__ import annotations

import builtins
import enum
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Final

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from sentinel.store.api_key_repo import ApiKeyRecord, ApiKeyRepository
from sentinel.store.audit_repo import AuditRepository
from sentinel.store.clock import Repository
from sentinel.store.security_tables import (
    REFRESH_TOKENS,
    USERS,
    decode_str_list,
    encode_str_list,
)
from sentinel.store.sql import as_utc

__all__ = [
    "ADMIN_ROLE",
    "UNSET",
    "ApiKeyRecord",
    "ApiKeyRepository",
    "AuditRepository",
    "RefreshStatus",
    "RefreshTokenRepository",
    "RefreshUse",
    "UserExists",
    "UserRecord",
    "UserRepository",
]

ADMIN_ROLE = "admin"


class _Unset(enum.Enum):
    UNSET = "UNSET"


UNSET: Final = _Unset.UNSET
"""Default of ``UserRepository.update``'s arguments: "leave unchanged" (None means "all")."""


class UserExists(ValueError):  # noqa: N818 - a ValueError subclass named for what it rejects
    """Raised when a username is taken (usernames are compared case-insensitively)."""


def _new_id() -> str:
    return str(uuid.uuid4())


@dataclass(frozen=True, slots=True)
class UserRecord:
    """A stored user; ``cameras`` None means all cameras, ``totp_secret`` is encrypted."""

    id: str
    username: str
    password_hash: str
    role: str
    cameras: tuple[str, ...] | None
    disabled: bool
    totp_secret: str | None
    totp_enabled: bool
    totp_last_step: int | None
    created_at: datetime
    updated_at: datetime


def _to_user(row: Mapping[Any, Any]) -> UserRecord:
    last_step = row["totp_last_step"]
    return UserRecord(
        id=row["id"],
        username=row["username"],
        password_hash=row["password_hash"],
        role=row["role"],
        cameras=decode_str_list(row["cameras"]),
        disabled=bool(row["disabled"]),
        totp_secret=row["totp_secret"],
        totp_enabled=bool(row["totp_enabled"]),
        totp_last_step=None if last_step is None else int(last_step),
        created_at=row["created_at"],
        updated_at=row["updated_at"],
    )


class UserRepository(Repository):
    """Stores user accounts; usernames are lowercased, so unique regardless of case.

    Args:
        engine: An engine from ``sentinel.store.db.make_engine`` on a migrated database.
        clock: Returns the current tz-aware time; injectable for tests.
    """

    def create(
        self, username: str, password_hash: str, role: str, cameras: Sequence[str] | None
    ) -> UserRecord:
        """Create a user (enabled, without TOTP); ``cameras`` None grants all cameras.

        Raises:
            UserExists: If the username, compared case-insensitively, is taken.
            ValueError: If the username is empty or longer than 128 characters.
        """
        name = username.lower()
        if not 1 <= len(name) <= 128:
            raise ValueError(f"username must have 1 to 128 characters, but got {username!r}")
        now = as_utc(self._clock(), "clock()")
        values: dict[str, Any] = {
            "id": _new_id(),
            "username": name,
            "password_hash": password_hash,
            "role": role,
            "cameras": encode_str_list(cameras, "cameras"),
            "disabled": False,
            "totp_secret": None,
            "totp_enabled": False,
            "totp_last_step": None,
            "created_at": now,
            "updated_at": now,
        }
        try:
            with self._engine.begin() as conn:
                conn.execute(sa.insert(USERS).values(**values))
        except sa.exc.IntegrityError as exc:
            raise UserExists(f"user {name!r} already exists") from exc
        return _to_user(values)

    def _one(self, conn: Connection, where: sa.ColumnElement[bool]) -> UserRecord | None:
        row = conn.execute(sa.select(USERS).where(where)).mappings().first()
        return None if row is None else _to_user(row)

    def get(self, user_id: str) -> UserRecord | None:
        """The user with this id, or None."""
        with self._engine.connect() as conn:
            return self._one(conn, USERS.c.id == user_id)

    def by_username(self, username: str) -> UserRecord | None:
        """The user with this username (any case), or None."""
        with self._engine.connect() as conn:
            return self._one(conn, USERS.c.username == username.lower())

    def list(self) -> builtins.list[UserRecord]:
        """All users, sorted by username."""
        with self._engine.connect() as conn:
            rows = conn.execute(sa.select(USERS).order_by(USERS.c.username)).mappings()
            return [_to_user(row) for row in rows]

    def update(
        self,
        user_id: str,
        *,
        role: str | _Unset = UNSET,
        cameras: Sequence[str] | _Unset | None = UNSET,
        disabled: bool | _Unset = UNSET,
        password_hash: str | _Unset = UNSET,
    ) -> UserRecord | None:
        """Change the given fields (``UNSET`` ones are kept; ``cameras=None`` means all).

        Returns:
            The updated user, or None if there is no such user.
        """
        values: dict[str, Any] = {}
        if not isinstance(role, _Unset):
            values["role"] = role
        if not isinstance(cameras, _Unset):
            values["cameras"] = encode_str_list(cameras, "cameras")
        if not isinstance(disabled, _Unset):
            values["disabled"] = bool(disabled)
        if not isinstance(password_hash, _Unset):
            values["password_hash"] = password_hash
        if not values:
            return self.get(user_id)
        values["updated_at"] = as_utc(self._clock(), "clock()")
        with self._engine.begin() as conn:
            conn.execute(sa.update(USERS).where(USERS.c.id == user_id).values(**values))
            return self._one(conn, USERS.c.id == user_id)

    def delete(self, user_id: str) -> bool:
        """Delete a user (their refresh tokens go too); returns whether there was one."""
        with self._engine.begin() as conn:
            result = conn.execute(sa.delete(USERS).where(USERS.c.id == user_id))
        return result.rowcount > 0

    def set_totp(self, user_id: str, secret_enc: str | None, enabled: bool) -> bool:
        """Store the user's encrypted TOTP secret and whether TOTP is required.

        ``totp_last_step`` is kept: steps are time-based, so it still blocks replays.

        Returns:
            Whether the user exists.

        Raises:
            ValueError: If TOTP is enabled without a secret.
        """
        if enabled and secret_enc is None:
            raise ValueError("cannot enable TOTP without a secret")
        values = {
            "totp_secret": secret_enc,
            "totp_enabled": enabled,
            "updated_at": as_utc(self._clock(), "clock()"),
        }
        with self._engine.begin() as conn:
            result = conn.execute(sa.update(USERS).where(USERS.c.id == user_id).values(**values))
        return result.rowcount > 0

    def consume_totp_step(self, user_id: str, step: int) -> bool:
        """Record that the TOTP code of ``step`` was used, if no later-or-equal step was.

        One conditional UPDATE, so of concurrent logins with the same code only one succeeds.

        Returns:
            True if ``step`` is newer than the last consumed one (now recorded), else False.
        """
        last = USERS.c.totp_last_step
        stmt = (
            sa.update(USERS)
            .where(USERS.c.id == user_id, sa.or_(last.is_(None), last < step))
            .values(totp_last_step=step)
        )
        with self._engine.begin() as conn:
            return conn.execute(stmt).rowcount == 1

    def count_admins(self) -> int:
        """How many enabled users have the ``admin`` role (disabled ones cannot administer)."""
        query = (
            sa.select(sa.func.count())
            .select_from(USERS)
            .where(USERS.c.role == ADMIN_ROLE, USERS.c.disabled.is_(False))
        )
        with self._engine.connect() as conn:
            return int(conn.execute(query).scalar_one())


class RefreshStatus(enum.Enum):
    """Outcome of using a refresh token."""

    OK = "ok"
    """Valid: now marked used; the caller issues the next token of the family."""
    REUSED = "reused"
    """Already used: probably stolen and replayed; the caller should revoke the family."""
    INVALID = "invalid"
    """Unknown, expired or revoked."""


@dataclass(frozen=True, slots=True)
class RefreshUse:
    """Result of ``RefreshTokenRepository.use``; ids are set for OK and REUSED only."""

    status: RefreshStatus
    user_id: str | None = None
    family_id: str | None = None


class RefreshTokenRepository(Repository):
    """Stores refresh tokens by hash, each usable once (rotation with reuse detection).

    Args:
        engine: An engine from ``sentinel.store.db.make_engine`` on a migrated database.
        clock: Returns the current tz-aware time (for ``created_at``); injectable for tests.
    """

    def create(
        self, user_id: str, token_hash: str, family_id: str, expires_at: datetime, client: str
    ) -> None:
        """Store a new, unused token of ``family_id`` for ``user_id``."""
        values = {
            "id": _new_id(),
            "token_hash": token_hash,
            "user_id": user_id,
            "family_id": family_id,
            "expires_at": as_utc(expires_at, "expires_at"),
            "created_at": as_utc(self._clock(), "clock()"),
            "client": client,
        }
        with self._engine.begin() as conn:
            conn.execute(sa.insert(REFRESH_TOKENS).values(**values))

    def use(self, token_hash: str, now: datetime) -> RefreshUse:
        """Mark the token used if it is valid (atomically: of concurrent uses one wins).

        Returns:
            OK if it was unused, unexpired and unrevoked; REUSED if it is unrevoked but was
            used before (even if expired since); INVALID otherwise.
        """
        now = as_utc(now, "now")
        t = REFRESH_TOKENS.c
        mark = (
            sa.update(REFRESH_TOKENS)
            .where(
                t.token_hash == token_hash,
                t.used_at.is_(None),
                t.revoked_at.is_(None),
                t.expires_at > now,
            )
            .values(used_at=now)
        )
        with self._engine.begin() as conn:
            marked = conn.execute(mark).rowcount == 1
            query = sa.select(t.user_id, t.family_id, t.used_at, t.revoked_at)
            row = conn.execute(query.where(t.token_hash == token_hash)).first()
        if row is None or (not marked and (row.revoked_at is not None or row.used_at is None)):
            return RefreshUse(RefreshStatus.INVALID)
        status = RefreshStatus.OK if marked else RefreshStatus.REUSED
        return RefreshUse(status, row.user_id, row.family_id)

    def _revoke(self, where: sa.ColumnElement[bool], now: datetime) -> int:
        stmt = (
            sa.update(REFRESH_TOKENS)
            .where(where, REFRESH_TOKENS.c.revoked_at.is_(None))
            .values(revoked_at=as_utc(now, "now"))
        )
        with self._engine.begin() as conn:
            return int(conn.execute(stmt).rowcount)

    def revoke_family(self, family_id: str, now: datetime) -> int:
        """Revoke every token of a family (logout, or a detected reuse); returns how many."""
        return self._revoke(REFRESH_TOKENS.c.family_id == family_id, now)

    def revoke_user(self, user_id: str, now: datetime) -> int:
        """Revoke every token of a user (password change, disabling); returns how many."""
        return self._revoke(REFRESH_TOKENS.c.user_id == user_id, now)

    def purge_expired(self, now: datetime) -> int:
        """Delete the tokens that expired before ``now``; returns how many."""
        stmt = sa.delete(REFRESH_TOKENS).where(REFRESH_TOKENS.c.expires_at < as_utc(now, "now"))
        with self._engine.begin() as conn:
            return int(conn.execute(stmt).rowcount)
