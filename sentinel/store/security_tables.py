"""Table models of authentication and audit: users, refresh tokens, API keys, the audit log.

Like ``sentinel.store.tables`` these are storage rows, created by the Alembic migration
``0002_security`` (keep both in step; a test compares them). JSON values (camera lists, scopes,
audit details) are stored as JSON text; a NULL ``cameras`` means "all cameras". Secrets are never
stored in the clear: passwords, refresh tokens and API keys as hashes, TOTP secrets encrypted by
the caller.

``audit_log`` is a hash chain: each row's ``hash`` covers its content and the previous row's
``hash``. ``audit_head`` holds one row (``id`` 1) with the last ``seq`` and ``hash``; appenders
lock it, which serialises appends and lets a truncation of the log's tail be noticed.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import datetime

import sqlalchemy as sa
from sqlmodel import Field, SQLModel

from sentinel.store.tables import UTCDateTime

__all__ = [
    "API_KEYS",
    "AUDIT_HEAD",
    "AUDIT_LOG",
    "REFRESH_TOKENS",
    "USERS",
    "ApiKeyRow",
    "AuditHeadRow",
    "AuditLogRow",
    "RefreshTokenRow",
    "UserRow",
    "decode_str_list",
    "encode_str_list",
]


class UserRow(SQLModel, table=True):
    """A user account; ``username`` is stored lowercased so uniqueness is case-insensitive."""

    __tablename__ = "users"
    __table_args__ = (sa.Index("ix_users_username", "username", unique=True),)

    id: str = Field(sa_column=sa.Column(sa.String(36), primary_key=True))
    username: str = Field(sa_column=sa.Column(sa.String(128), nullable=False))
    password_hash: str = Field(sa_column=sa.Column(sa.Text(), nullable=False))
    role: str = Field(sa_column=sa.Column(sa.String(32), nullable=False))
    cameras: str | None = Field(default=None, sa_column=sa.Column(sa.Text()))
    disabled: bool = Field(sa_column=sa.Column(sa.Boolean(), nullable=False))
    totp_secret: str | None = Field(default=None, sa_column=sa.Column(sa.Text()))
    totp_enabled: bool = Field(sa_column=sa.Column(sa.Boolean(), nullable=False))
    totp_last_step: int | None = Field(default=None, sa_column=sa.Column(sa.BigInteger()))
    created_at: datetime = Field(sa_column=sa.Column(UTCDateTime(), nullable=False))
    updated_at: datetime = Field(sa_column=sa.Column(UTCDateTime(), nullable=False))


class RefreshTokenRow(SQLModel, table=True):
    """A refresh token (by hash); tokens rotated from one login share a ``family_id``."""

    __tablename__ = "refresh_tokens"
    __table_args__ = (
        sa.Index("ix_refresh_tokens_token_hash", "token_hash", unique=True),
        sa.Index("ix_refresh_tokens_family_id", "family_id"),
        sa.Index("ix_refresh_tokens_user_id", "user_id"),
        sa.Index("ix_refresh_tokens_expires_at", "expires_at"),
    )

    id: str = Field(sa_column=sa.Column(sa.String(36), primary_key=True))
    token_hash: str = Field(sa_column=sa.Column(sa.String(128), nullable=False))
    user_id: str = Field(
        sa_column=sa.Column(
            sa.String(36),
            sa.ForeignKey("users.id", ondelete="CASCADE", name="fk_refresh_tokens_user_id"),
            nullable=False,
        )
    )
    family_id: str = Field(sa_column=sa.Column(sa.String(36), nullable=False))
    expires_at: datetime = Field(sa_column=sa.Column(UTCDateTime(), nullable=False))
    used_at: datetime | None = Field(default=None, sa_column=sa.Column(UTCDateTime()))
    revoked_at: datetime | None = Field(default=None, sa_column=sa.Column(UTCDateTime()))
    created_at: datetime = Field(sa_column=sa.Column(UTCDateTime(), nullable=False))
    client: str = Field(sa_column=sa.Column(sa.Text(), nullable=False))


class ApiKeyRow(SQLModel, table=True):
    """An API key (by hash); ``prefix`` is the key's first characters, shown to identify it."""

    __tablename__ = "api_keys"
    __table_args__ = (
        sa.Index("ix_api_keys_key_hash", "key_hash", unique=True),
        sa.Index("ix_api_keys_created_by", "created_by"),
    )

    id: str = Field(sa_column=sa.Column(sa.String(36), primary_key=True))
    name: str = Field(sa_column=sa.Column(sa.String(128), nullable=False))
    prefix: str = Field(sa_column=sa.Column(sa.String(16), nullable=False))
    key_hash: str = Field(sa_column=sa.Column(sa.String(128), nullable=False))
    role: str = Field(sa_column=sa.Column(sa.String(32), nullable=False))
    scopes: str = Field(sa_column=sa.Column(sa.Text(), nullable=False))
    cameras: str | None = Field(default=None, sa_column=sa.Column(sa.Text()))
    created_by: str | None = Field(
        default=None,
        sa_column=sa.Column(
            sa.String(36),
            sa.ForeignKey("users.id", ondelete="SET NULL", name="fk_api_keys_created_by"),
        ),
    )
    created_at: datetime = Field(sa_column=sa.Column(UTCDateTime(), nullable=False))
    revoked_at: datetime | None = Field(default=None, sa_column=sa.Column(UTCDateTime()))
    last_used_at: datetime | None = Field(default=None, sa_column=sa.Column(UTCDateTime()))


class AuditLogRow(SQLModel, table=True):
    """One audit entry; ``seq`` is assigned by the repository (head + 1), never autoincremented.

    ``detail`` is JSON text; ``prev_hash`` and ``hash`` are hex SHA-256 digests of the chain.
    """

    __tablename__ = "audit_log"
    __table_args__ = (
        sa.Index("ix_audit_log_hash", "hash", unique=True),
        sa.Index("ix_audit_log_at", "at"),
        sa.Index("ix_audit_log_actor", "actor"),
        sa.Index("ix_audit_log_action", "action"),
    )

    seq: int = Field(sa_column=sa.Column(sa.BigInteger(), primary_key=True, autoincrement=False))
    at: datetime = Field(sa_column=sa.Column(UTCDateTime(), nullable=False))
    actor: str = Field(sa_column=sa.Column(sa.String(255), nullable=False))
    action: str = Field(sa_column=sa.Column(sa.String(64), nullable=False))
    target: str = Field(sa_column=sa.Column(sa.Text(), nullable=False))
    client: str = Field(sa_column=sa.Column(sa.Text(), nullable=False))
    outcome: str = Field(sa_column=sa.Column(sa.String(32), nullable=False))
    detail: str = Field(sa_column=sa.Column(sa.Text(), nullable=False))
    prev_hash: str = Field(sa_column=sa.Column(sa.String(64), nullable=False))
    hash: str = Field(sa_column=sa.Column(sa.String(64), nullable=False))


class AuditHeadRow(SQLModel, table=True):
    """The single row (``id`` 1) naming the audit log's last ``seq`` and ``hash``."""

    __tablename__ = "audit_head"
    __table_args__ = (sa.CheckConstraint("id = 1", name="ck_audit_head_single_row"),)

    id: int = Field(sa_column=sa.Column(sa.Integer(), primary_key=True, autoincrement=False))
    seq: int = Field(sa_column=sa.Column(sa.BigInteger(), nullable=False))
    hash: str = Field(sa_column=sa.Column(sa.String(64), nullable=False))


# Core tables, for the repositories' statements.
USERS: sa.Table = SQLModel.metadata.tables["users"]
REFRESH_TOKENS: sa.Table = SQLModel.metadata.tables["refresh_tokens"]
API_KEYS: sa.Table = SQLModel.metadata.tables["api_keys"]
AUDIT_LOG: sa.Table = SQLModel.metadata.tables["audit_log"]
AUDIT_HEAD: sa.Table = SQLModel.metadata.tables["audit_head"]


def encode_str_list(values: Sequence[str] | None, name: str) -> str | None:
    """The JSON text of a list of strings (a column value), or None for None.

    Raises:
        TypeError: If ``values`` is a string or holds a non-string (``name`` is in the message).
    """
    if values is None:
        return None
    if isinstance(values, str) or not all(isinstance(v, str) for v in values):
        raise TypeError(f"{name} must be a sequence of strings or None, but got {values!r}")
    return json.dumps(list(values))


def decode_str_list(raw: str | None) -> tuple[str, ...] | None:
    """The strings of a column value written by ``encode_str_list`` (None stays None)."""
    return None if raw is None else tuple(str(v) for v in json.loads(raw))
