"""Alert rules, their versions, the arming mode and RuleGen suggestions in the database.

Rules are edited with optimistic concurrency: ``update`` and ``delete`` name the version they
change, and the write is one ``UPDATE ... WHERE version = :expected``, so of two operators
editing version 3 one wins and the other gets ``RuleConflict`` instead of silently undoing the
first. Every write of a rule adds its version to ``rule_versions`` and bumps the revision of
the arming row in the same transaction: a camera that polls ``revision()`` reloads its
``snapshot`` exactly when something it matches against changed.
"""

from __future__ import annotations

import builtins
import json
import uuid
from collections.abc import Collection, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from sentinel.domain.rule_model import ArmingMode, Rule, rule_from_dict, rule_to_dict
from sentinel.store.clock import Repository
from sentinel.store.rule_tables import (
    ARMING,
    ARMING_ROW_ID,
    RULE_VERSIONS,
    RULEGEN_SUGGESTIONS,
    RULES,
)
from sentinel.store.sql import check_choice, check_page_size, upsert_insert

__all__ = [
    "DEFAULT_MODE",
    "SUGGESTION_KINDS",
    "SUGGESTION_STATUSES",
    "AlreadyDecided",
    "ArmingState",
    "RuleConflict",
    "RuleExists",
    "RuleRepository",
    "RuleSnapshot",
    "RuleVersion",
    "StoredRule",
    "SuggestionExists",
    "SuggestionRecord",
    "SuggestionRepository",
]

DEFAULT_MODE = ArmingMode.AWAY
SUGGESTION_KINDS = frozenset({"mask", "rule", "tightening"})
SUGGESTION_STATUSES = frozenset({"suggested", "accepted", "rejected"})


class RuleConflict(Exception):  # noqa: N818 - named for what happened, like InvalidCursor
    """The rule is not at the version the writer expected (someone else changed it)."""

    def __init__(self, rule_id: str, expected: int, current: int) -> None:
        super().__init__(
            f"rule {rule_id} is at version {current}, but the change was made to {expected}"
        )
        self.rule_id = rule_id
        self.expected = expected
        self.current = current


class AlreadyDecided(Exception):  # noqa: N818
    """The suggestion was accepted or rejected already."""


class SuggestionExists(Exception):  # noqa: N818
    """A suggestion with this dedupe key exists already (written by a concurrent run)."""


class RuleExists(Exception):  # noqa: N818
    """A rule with this id exists already (deleted ones included)."""


@dataclass(frozen=True, slots=True)
class StoredRule:
    """A rule with its bookkeeping."""

    rule: Rule
    created_at: datetime
    updated_at: datetime
    deleted_at: datetime | None


@dataclass(frozen=True, slots=True)
class RuleVersion:
    """One version of a rule as it was written."""

    rule: Rule
    changed_by: str
    at: datetime


@dataclass(frozen=True, slots=True)
class ArmingState:
    """The arming mode, the rules' revision, and who changed the mode last (None: nobody)."""

    mode: ArmingMode
    revision: int
    changed_by: str | None
    at: datetime | None


@dataclass(frozen=True, slots=True)
class RuleSnapshot:
    """What one camera matches against: its live rules and the mode, at one revision."""

    revision: int
    mode: ArmingMode
    rules: tuple[Rule, ...]


@dataclass(frozen=True, slots=True)
class SuggestionRecord:
    """A RuleGen suggestion: ``body`` says what (a mask, a rule, a tightening), ``backtest``
    what it would have done over the history, ``reason`` why; ``dedupe_key`` is the same for
    the same proposal in every run, ``updated_at`` when a run last refreshed its figures and
    ``rule_id`` the rule its acceptance created or tightened."""

    id: str
    kind: str
    camera_id: str | None
    body: dict[str, Any]
    backtest: dict[str, Any] | None
    status: str
    decided_by: str | None
    decided_at: datetime | None
    created_at: datetime
    dedupe_key: str | None = None
    reason: str | None = None
    updated_at: datetime | None = None
    rule_id: str | None = None


def _stored(row: Mapping[Any, Any]) -> StoredRule:
    return StoredRule(
        rule=rule_from_dict(json.loads(row["body"])),
        created_at=row["created_at"],
        updated_at=row["updated_at"],
        deleted_at=row["deleted_at"],
    )


class RuleRepository(Repository):
    """Stores rules (versioned, soft-deleted) and the arming mode.

    Args:
        engine: An engine from ``sentinel.store.db.make_engine`` on a migrated database.
        clock: Returns the current tz-aware time; injectable for tests.
    """

    def _bump(self, conn: Connection, **values: Any) -> None:
        """Bumps the revision (and sets ``values``) of the arming row, creating it if gone."""
        row = {"id": ARMING_ROW_ID, "mode": DEFAULT_MODE.value, "revision": 1, **values}
        insert = upsert_insert(self._engine, ARMING).values(**row)
        conn.execute(
            insert.on_conflict_do_update(
                index_elements=[ARMING.c.id],
                set_={"revision": ARMING.c.revision + 1, **values},
            )
        )

    def _add_version(self, conn: Connection, rule: Rule, changed_by: str, at: datetime) -> None:
        conn.execute(
            sa.insert(RULE_VERSIONS).values(
                rule_id=rule.id,
                version=rule.version,
                body=json.dumps(rule_to_dict(rule)),
                changed_by=changed_by,
                at=at,
            )
        )

    def create(self, rule: Rule, changed_by: str) -> Rule:
        """Stores a new rule at version 1 (whatever ``rule.version`` says).

        Raises:
            RuleExists: If a rule (even a deleted one) has ``rule.id``.
        """
        rule = rule.model_copy(update={"version": 1})
        now = self._now()
        try:
            with self._write() as conn:
                conn.execute(
                    sa.insert(RULES).values(
                        id=rule.id,
                        name=rule.name,
                        body=json.dumps(rule_to_dict(rule)),
                        version=1,
                        enabled=rule.enabled,
                        deleted_at=None,
                        created_at=now,
                        updated_at=now,
                    )
                )
                self._add_version(conn, rule, changed_by, now)
                self._bump(conn)
        except sa.exc.IntegrityError as exc:
            raise RuleExists(f"a rule with id {rule.id} exists") from exc
        return rule

    def update(self, rule: Rule, expected_version: int, changed_by: str) -> Rule:
        """Stores ``rule`` as the version after ``expected_version``.

        Returns:
            The rule as stored (``version`` = ``expected_version + 1``).

        Raises:
            LookupError: If there is no live rule with ``rule.id``.
            RuleConflict: If the stored rule is not at ``expected_version``.
        """
        rule = rule.model_copy(update={"version": expected_version + 1})
        now = self._now()
        c = RULES.c
        with self._write() as conn:
            done = conn.execute(
                sa.update(RULES)
                .where(c.id == rule.id, c.version == expected_version, c.deleted_at.is_(None))
                .values(
                    name=rule.name,
                    body=json.dumps(rule_to_dict(rule)),
                    version=rule.version,
                    enabled=rule.enabled,
                    updated_at=now,
                )
            )
            if done.rowcount != 1:
                self._refuse(conn, rule.id, expected_version)
            self._add_version(conn, rule, changed_by, now)
            self._bump(conn)
        return rule

    def _refuse(self, conn: Connection, rule_id: str, expected: int) -> None:
        c = RULES.c
        current = conn.execute(
            sa.select(c.version).where(c.id == rule_id, c.deleted_at.is_(None))
        ).scalar_one_or_none()
        if current is None:
            raise LookupError(f"no rule {rule_id}")
        raise RuleConflict(rule_id, expected, int(current))

    def delete(self, rule_id: str, expected_version: int | None = None) -> None:
        """Soft-deletes a rule: it stops matching, its row and versions stay (who deleted it
        is the audit log's to say).

        Args:
            rule_id: The rule.
            expected_version: The version the caller saw, or None to delete whatever it is.

        Raises:
            LookupError: If there is no live rule ``rule_id``.
            RuleConflict: If ``expected_version`` is given and is not the stored one.
        """
        c = RULES.c
        now = self._now()
        where = [c.id == rule_id, c.deleted_at.is_(None)]
        if expected_version is not None:
            where.append(c.version == expected_version)
        with self._write() as conn:
            done = conn.execute(
                sa.update(RULES).where(*where).values(deleted_at=now, updated_at=now)
            )
            if done.rowcount != 1:
                self._refuse(conn, rule_id, -1 if expected_version is None else expected_version)
            self._bump(conn)

    def get(self, rule_id: str, *, include_deleted: bool = False) -> StoredRule | None:
        """The rule with this id, or None (also for a deleted one unless ``include_deleted``)."""
        query = sa.select(RULES).where(RULES.c.id == rule_id)
        if not include_deleted:
            query = query.where(RULES.c.deleted_at.is_(None))
        with self._engine.connect() as conn:
            row = conn.execute(query).mappings().first()
        return None if row is None else _stored(row)

    def list(
        self, *, camera_ids: Collection[str] | None = None, enabled_only: bool = False
    ) -> builtins.list[StoredRule]:
        """Live rules by name then id.

        Args:
            camera_ids: Only rules that apply to one of these cameras (rules for every camera
                included); None: every rule.
            enabled_only: Leave disabled rules out.
        """
        c = RULES.c
        query = sa.select(RULES).where(c.deleted_at.is_(None)).order_by(c.name, c.id)
        if enabled_only:
            query = query.where(c.enabled.is_(True))
        with self._engine.connect() as conn:
            rows = [_stored(row) for row in conn.execute(query).mappings()]
        if camera_ids is None:
            return rows
        wanted = set(camera_ids)
        return [s for s in rows if not s.rule.cameras or wanted & set(s.rule.cameras)]

    def versions(self, rule_id: str) -> builtins.list[RuleVersion]:
        """Every version of a rule (deleted ones too), oldest first; empty for an unknown id."""
        c = RULE_VERSIONS.c
        query = sa.select(RULE_VERSIONS).where(c.rule_id == rule_id).order_by(c.version)
        with self._engine.connect() as conn:
            return [
                RuleVersion(rule_from_dict(json.loads(row["body"])), row["changed_by"], row["at"])
                for row in conn.execute(query).mappings()
            ]

    def arming(self) -> ArmingState:
        """The arming mode and revision (the default mode at revision 0 before any change)."""
        query = sa.select(ARMING).where(ARMING.c.id == ARMING_ROW_ID)
        with self._engine.connect() as conn:
            row = conn.execute(query).mappings().first()
        if row is None:
            return ArmingState(DEFAULT_MODE, 0, None, None)
        return ArmingState(
            ArmingMode(row["mode"]), int(row["revision"]), row["changed_by"], row["at"]
        )

    def set_arming(self, mode: ArmingMode, changed_by: str) -> ArmingState:
        """Sets the arming mode (bumping the revision even when it is unchanged: the change was
        asked for, and cameras reloading once more costs nothing)."""
        with self._write() as conn:
            self._bump(conn, mode=ArmingMode(mode).value, changed_by=changed_by, at=self._now())
        return self.arming()

    def revision(self) -> int:
        """The revision: it grows with every change of a rule or of the arming mode."""
        return self.arming().revision

    def snapshot(self, camera_id: str) -> RuleSnapshot:
        """The enabled live rules that apply to ``camera_id``, with the mode and revision, read
        in one transaction (so the revision names exactly these rules)."""
        c = RULES.c
        query = (
            sa.select(RULES)
            .where(c.deleted_at.is_(None), c.enabled.is_(True))
            .order_by(c.name, c.id)
        )
        with self._engine.begin() as conn:
            arming = (
                conn.execute(sa.select(ARMING).where(ARMING.c.id == ARMING_ROW_ID))
                .mappings()
                .first()
            )
            rules = [_stored(row).rule for row in conn.execute(query).mappings()]
        mode = DEFAULT_MODE if arming is None else ArmingMode(arming["mode"])
        revision = 0 if arming is None else int(arming["revision"])
        return RuleSnapshot(revision, mode, tuple(r for r in rules if r.applies_to(camera_id)))


def _suggestion(row: Mapping[Any, Any]) -> SuggestionRecord:
    backtest = row["backtest"]
    return SuggestionRecord(
        id=row["id"],
        kind=row["kind"],
        camera_id=row["camera_id"],
        body=json.loads(row["body"]),
        backtest=None if backtest is None else json.loads(backtest),
        status=row["status"],
        decided_by=row["decided_by"],
        decided_at=row["decided_at"],
        created_at=row["created_at"],
        dedupe_key=row["dedupe_key"],
        reason=row["reason"],
        updated_at=row["updated_at"],
        rule_id=row["rule_id"],
    )


class SuggestionRepository(Repository):
    """Stores RuleGen's suggestions and the operators' decisions on them.

    Args:
        engine: An engine from ``sentinel.store.db.make_engine`` on a migrated database.
        clock: Returns the current tz-aware time; injectable for tests.
    """

    def add(
        self,
        kind: str,
        body: Mapping[str, Any],
        *,
        camera_id: str | None = None,
        backtest: Mapping[str, Any] | None = None,
        reason: str | None = None,
        dedupe_key: str | None = None,
    ) -> SuggestionRecord:
        """Stores a new suggestion with status "suggested".

        Raises:
            ValueError: If ``kind`` is not mask, rule or tightening.
            SuggestionExists: If a suggestion with ``dedupe_key`` exists (any status).
        """
        check_choice(kind, SUGGESTION_KINDS, "kind")
        suggestion_id = str(uuid.uuid4())
        values: dict[str, Any] = {
            "id": suggestion_id,
            "kind": kind,
            "camera_id": camera_id,
            "body": json.dumps(dict(body)),
            "backtest": None if backtest is None else json.dumps(dict(backtest)),
            "status": "suggested",
            "decided_by": None,
            "decided_at": None,
            "created_at": self._now(),
            "dedupe_key": dedupe_key,
            "reason": reason,
            "updated_at": None,
            "rule_id": None,
        }
        try:
            with self._engine.begin() as conn:
                conn.execute(sa.insert(RULEGEN_SUGGESTIONS).values(**values))
        except sa.exc.IntegrityError as exc:
            raise SuggestionExists(f"a suggestion with key {dedupe_key} exists") from exc
        found = self.get(suggestion_id)
        assert found is not None
        return found

    def get(self, suggestion_id: str) -> SuggestionRecord | None:
        """The suggestion with this id, or None."""
        query = sa.select(RULEGEN_SUGGESTIONS).where(RULEGEN_SUGGESTIONS.c.id == suggestion_id)
        with self._engine.connect() as conn:
            row = conn.execute(query).mappings().first()
        return None if row is None else _suggestion(row)

    def by_key(self, dedupe_key: str) -> SuggestionRecord | None:
        """The suggestion with this dedupe key, or None."""
        query = sa.select(RULEGEN_SUGGESTIONS).where(RULEGEN_SUGGESTIONS.c.dedupe_key == dedupe_key)
        with self._engine.connect() as conn:
            row = conn.execute(query).mappings().first()
        return None if row is None else _suggestion(row)

    def refresh(
        self,
        suggestion_id: str,
        body: Mapping[str, Any],
        backtest: Mapping[str, Any] | None,
        reason: str | None,
    ) -> bool:
        """Replaces the proposal, figures and reason of a suggestion that is still
        "suggested" (a later run over more history), stamping ``updated_at``.

        Returns:
            Whether it was refreshed (False: gone, or decided meanwhile).
        """
        c = RULEGEN_SUGGESTIONS.c
        with self._engine.begin() as conn:
            done = conn.execute(
                sa.update(RULEGEN_SUGGESTIONS)
                .where(c.id == suggestion_id, c.status == "suggested")
                .values(
                    body=json.dumps(dict(body)),
                    backtest=None if backtest is None else json.dumps(dict(backtest)),
                    reason=reason,
                    updated_at=self._now(),
                )
            )
        return bool(done.rowcount == 1)

    def list(
        self,
        *,
        status: str | None = None,
        camera_id: str | None = None,
        camera_ids: Collection[str] | None = None,
        limit: int = 100,
    ) -> builtins.list[SuggestionRecord]:
        """Suggestions, newest first.

        Args:
            status: Only those in this status.
            camera_id: Only those about this camera.
            camera_ids: Only those about one of these cameras (a camera-limited reader's):
                suggestions about no one camera (tightenings) are left out too; None: all.
            limit: At most this many.

        Raises:
            ValueError: If ``status`` or ``limit`` is invalid.
        """
        check_page_size(limit)
        c = RULEGEN_SUGGESTIONS.c
        query = sa.select(RULEGEN_SUGGESTIONS)
        if status is not None:
            check_choice(status, SUGGESTION_STATUSES, "status")
            query = query.where(c.status == status)
        if camera_id is not None:
            query = query.where(c.camera_id == camera_id)
        if camera_ids is not None:
            query = query.where(c.camera_id.in_(sorted(camera_ids)))
        query = query.order_by(c.created_at.desc(), c.id.desc()).limit(limit)
        with self._engine.connect() as conn:
            return [_suggestion(row) for row in conn.execute(query).mappings()]

    def decide(
        self, suggestion_id: str, status: str, decided_by: str, *, rule_id: str | None = None
    ) -> SuggestionRecord:
        """Accepts or rejects a suggestion that is still "suggested" (one conditional UPDATE:
        of two operators deciding at once, one wins and the other gets AlreadyDecided).

        Args:
            suggestion_id: The suggestion.
            status: "accepted" or "rejected".
            decided_by: Who decided.
            rule_id: The rule the acceptance creates or tightens, if any.

        Raises:
            ValueError: If ``status`` is not accepted or rejected.
            LookupError: If there is no such suggestion.
            AlreadyDecided: If it was accepted or rejected already.
        """
        check_choice(status, {"accepted", "rejected"}, "status")
        c = RULEGEN_SUGGESTIONS.c
        with self._engine.begin() as conn:
            done = conn.execute(
                sa.update(RULEGEN_SUGGESTIONS)
                .where(c.id == suggestion_id, c.status == "suggested")
                .values(
                    status=status,
                    decided_by=decided_by,
                    decided_at=self._now(),
                    rule_id=rule_id,
                )
            )
        if done.rowcount != 1:
            if self.get(suggestion_id) is None:
                raise LookupError(f"no suggestion {suggestion_id}")
            raise AlreadyDecided(f"suggestion {suggestion_id} was decided already")
        found = self.get(suggestion_id)
        assert found is not None
        return found

    def reopen(self, suggestion_id: str, decided_by: str) -> bool:
        """Undoes ``decided_by``'s decision (back to "suggested"), for when what the decision
        was to do (write a rule) failed after it was recorded.

        Returns:
            Whether it was reopened (False: not decided by ``decided_by``).
        """
        c = RULEGEN_SUGGESTIONS.c
        with self._engine.begin() as conn:
            done = conn.execute(
                sa.update(RULEGEN_SUGGESTIONS)
                .where(c.id == suggestion_id, c.status != "suggested", c.decided_by == decided_by)
                .values(status="suggested", decided_by=None, decided_at=None, rule_id=None)
            )
        return bool(done.rowcount == 1)
