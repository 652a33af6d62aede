"""The notifier's configuration store: subscriptions and templates (every version kept).

``NotifyRepository`` (``notify_repo``) extends it with the outbox and the deliveries; this
base also holds the write transaction both use (SQLite's write lock taken up front).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import sqlalchemy as sa

from sentinel.store.clock import Repository
from sentinel.store.notify_tables import (
    NOTIFY_SUBSCRIPTIONS,
    NOTIFY_TEMPLATE_VERSIONS,
    NOTIFY_TEMPLATES,
)

__all__ = ["NotifyConfigRepository", "StoredSubscription", "StoredTemplate", "VersionConflict"]


class VersionConflict(ValueError):  # noqa: N818 - named like RuleConflict
    """The template was edited by someone else (its version moved)."""


@dataclass(frozen=True, slots=True)
class StoredSubscription:
    id: str
    body: dict[str, Any]
    created_by: str
    created_at: datetime
    updated_at: datetime


@dataclass(frozen=True, slots=True)
class StoredTemplate:
    id: str
    name: str
    channel: str | None
    version: int
    subject: str
    body: str
    created_at: datetime
    updated_at: datetime


class NotifyConfigRepository(Repository):
    """Subscriptions and templates (and the write transaction of the notifier's tables)."""

    def _skip_locked(self, query: Any) -> Any:
        if self._engine.dialect.name == "postgresql":
            return query.with_for_update(skip_locked=True)
        return query

    # -- subscriptions -----------------------------------------------------------------------

    def put_subscription(
        self, sub_id: str, body: dict[str, Any], by: str, *, create: bool
    ) -> StoredSubscription | None:
        """Create (``create``) or replace a subscription; None if replacing a missing one."""
        now = self._now()
        c = NOTIFY_SUBSCRIPTIONS.c
        text = json.dumps(body, default=str)
        with self._write() as conn:
            if create:
                conn.execute(
                    NOTIFY_SUBSCRIPTIONS.insert().values(
                        id=sub_id, body=text, created_by=by, created_at=now, updated_at=now
                    )
                )
            else:
                stmt = (
                    sa.update(NOTIFY_SUBSCRIPTIONS)
                    .where(c.id == sub_id, c.deleted_at.is_(None))
                    .values(body=text, updated_at=now)
                )
                if conn.execute(stmt).rowcount == 0:
                    return None
        return self.get_subscription(sub_id)

    def get_subscription(self, sub_id: str) -> StoredSubscription | None:
        c = NOTIFY_SUBSCRIPTIONS.c
        with self._engine.connect() as conn:
            row = (
                conn.execute(
                    sa.select(NOTIFY_SUBSCRIPTIONS).where(c.id == sub_id, c.deleted_at.is_(None))
                )
                .mappings()
                .first()
            )
        return None if row is None else self._sub(row)

    @staticmethod
    def _sub(row: Mapping[Any, Any]) -> StoredSubscription:
        return StoredSubscription(
            row["id"],
            json.loads(row["body"]),
            row["created_by"],
            row["created_at"],
            row["updated_at"],
        )

    def subscriptions(self) -> list[StoredSubscription]:
        c = NOTIFY_SUBSCRIPTIONS.c
        with self._engine.connect() as conn:
            rows = conn.execute(
                sa.select(NOTIFY_SUBSCRIPTIONS).where(c.deleted_at.is_(None)).order_by(c.id)
            ).mappings()
            return [self._sub(r) for r in rows]

    def delete_subscription(self, sub_id: str) -> bool:
        c = NOTIFY_SUBSCRIPTIONS.c
        with self._write() as conn:
            stmt = (
                sa.update(NOTIFY_SUBSCRIPTIONS)
                .where(c.id == sub_id, c.deleted_at.is_(None))
                .values(deleted_at=self._now())
            )
            return conn.execute(stmt).rowcount > 0

    # -- templates ---------------------------------------------------------------------------

    def create_template(
        self, tid: str, name: str, channel: str | None, subject: str, body: str, by: str
    ) -> StoredTemplate:
        now = self._now()
        with self._write() as conn:
            conn.execute(
                NOTIFY_TEMPLATES.insert().values(
                    id=tid,
                    name=name,
                    channel=channel,
                    version=1,
                    subject=subject,
                    body=body,
                    created_at=now,
                    updated_at=now,
                )
            )
            conn.execute(
                NOTIFY_TEMPLATE_VERSIONS.insert().values(
                    template_id=tid, version=1, subject=subject, body=body, changed_by=by, at=now
                )
            )
        found = self.get_template(tid)
        assert found is not None
        return found

    def update_template(
        self,
        tid: str,
        version: int,
        name: str,
        channel: str | None,
        subject: str,
        body: str,
        by: str,
    ) -> StoredTemplate | None:
        """Store the next version; VersionConflict unless ``version`` is the current one."""
        now = self._now()
        c = NOTIFY_TEMPLATES.c
        with self._write() as conn:
            current = conn.execute(
                sa.select(c.version).where(c.id == tid, c.deleted_at.is_(None))
            ).scalar_one_or_none()
            if current is None:
                return None
            if current != version:
                raise VersionConflict(f"template {tid} is at version {current}, not {version}")
            conn.execute(
                sa.update(NOTIFY_TEMPLATES)
                .where(c.id == tid, c.version == version)
                .values(
                    name=name,
                    channel=channel,
                    subject=subject,
                    body=body,
                    version=version + 1,
                    updated_at=now,
                )
            )
            conn.execute(
                NOTIFY_TEMPLATE_VERSIONS.insert().values(
                    template_id=tid,
                    version=version + 1,
                    subject=subject,
                    body=body,
                    changed_by=by,
                    at=now,
                )
            )
        return self.get_template(tid)

    def get_template(self, tid: str) -> StoredTemplate | None:
        c = NOTIFY_TEMPLATES.c
        with self._engine.connect() as conn:
            row = (
                conn.execute(sa.select(NOTIFY_TEMPLATES).where(c.id == tid, c.deleted_at.is_(None)))
                .mappings()
                .first()
            )
        return None if row is None else self._tpl(row)

    @staticmethod
    def _tpl(row: Mapping[Any, Any]) -> StoredTemplate:
        return StoredTemplate(**{k: row[k] for k in StoredTemplate.__slots__})

    def templates(self) -> list[StoredTemplate]:
        c = NOTIFY_TEMPLATES.c
        with self._engine.connect() as conn:
            rows = conn.execute(
                sa.select(NOTIFY_TEMPLATES).where(c.deleted_at.is_(None)).order_by(c.id)
            ).mappings()
            return [self._tpl(r) for r in rows]

    def delete_template(self, tid: str) -> bool:
        c = NOTIFY_TEMPLATES.c
        with self._write() as conn:
            stmt = (
                sa.update(NOTIFY_TEMPLATES)
                .where(c.id == tid, c.deleted_at.is_(None))
                .values(deleted_at=self._now())
            )
            return conn.execute(stmt).rowcount > 0
