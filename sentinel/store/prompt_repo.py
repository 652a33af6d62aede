"""Repositories of versioned prompts and prompt experiments (re-exported by ``alert_repo``).

Prompt versions count from 1 per name. A new version is ``max + 1``, inserted under the
``(name, version)`` primary key: if a concurrent writer took that number, the insert fails and
is retried with the next one, so versions never repeat or get lost. ``prompt_active`` names the
version in use per name; its foreign key to ``prompts`` keeps the active version from being
deleted even by a racing writer.
"""

from __future__ import annotations

import builtins
import json
import math
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import sqlalchemy as sa

from sentinel.domain.experiments import Variant
from sentinel.store.agent_tables import EXPERIMENTS, PROMPT_ACTIVE, PROMPTS
from sentinel.store.clock import Repository
from sentinel.store.sql import as_utc, upsert_insert

__all__ = [
    "ExperimentRecord",
    "ExperimentRepository",
    "PromptRecord",
    "PromptRepository",
    "Variant",
]

_CREATE_ATTEMPTS = 20


@dataclass(frozen=True, slots=True)
class PromptRecord:
    """One stored version of a named prompt."""

    name: str
    version: int
    system: str
    template: str
    created_at: datetime
    created_by: str


def _to_prompt(row: Mapping[Any, Any]) -> PromptRecord:
    return PromptRecord(
        name=row["name"],
        version=int(row["version"]),
        system=row["system"],
        template=row["template"],
        created_at=row["created_at"],
        created_by=row["created_by"],
    )


class PromptRepository(Repository):
    """Stores prompt versions and which version of each name is active.

    Args:
        engine: An engine from ``sentinel.store.db.make_engine`` on a migrated database.
        clock: Returns the current tz-aware time; injectable for tests.
    """

    def create_version(
        self, name: str, system: str, template: str, created_by: str
    ) -> PromptRecord:
        """Store a new version of ``name``: one more than its latest (1 for a new name).

        Raises:
            ValueError: If ``name`` is empty or longer than 128 characters.
            RuntimeError: If concurrent writers kept taking the next version number.
        """
        if not 1 <= len(name) <= 128:
            raise ValueError(f"name must have 1 to 128 characters, but got {name!r}")
        latest = sa.select(sa.func.max(PROMPTS.c.version)).where(PROMPTS.c.name == name)
        for _ in range(_CREATE_ATTEMPTS):
            values: dict[str, Any] = {
                "name": name,
                "system": system,
                "template": template,
                "created_at": as_utc(self._clock(), "clock()"),
                "created_by": created_by,
            }
            try:
                with self._engine.begin() as conn:
                    values["version"] = int(conn.execute(latest).scalar_one_or_none() or 0) + 1
                    conn.execute(sa.insert(PROMPTS).values(**values))
            except sa.exc.IntegrityError:
                continue  # another writer took this version: read the new latest and retry
            return PromptRecord(**values)
        raise RuntimeError(f"could not allocate a version of prompt {name!r}: too much contention")

    def get(self, name: str, version: int) -> PromptRecord | None:
        """The version ``version`` of ``name``, or None."""
        query = sa.select(PROMPTS).where(PROMPTS.c.name == name, PROMPTS.c.version == version)
        with self._engine.connect() as conn:
            row = conn.execute(query).mappings().first()
        return None if row is None else _to_prompt(row)

    def versions(self, name: str) -> builtins.list[PromptRecord]:
        """Every version of ``name``, oldest first."""
        query = sa.select(PROMPTS).where(PROMPTS.c.name == name).order_by(PROMPTS.c.version)
        with self._engine.connect() as conn:
            return [_to_prompt(row) for row in conn.execute(query).mappings()]

    def names(self) -> builtins.list[str]:
        """The names that have at least one version, sorted."""
        query = sa.select(PROMPTS.c.name).distinct().order_by(PROMPTS.c.name)
        with self._engine.connect() as conn:
            return [str(name) for name in conn.execute(query).scalars()]

    def active(self, name: str) -> PromptRecord | None:
        """The active version of ``name``, or None if none was activated."""
        query = sa.select(PROMPTS).join(
            PROMPT_ACTIVE,
            sa.and_(
                PROMPT_ACTIVE.c.name == PROMPTS.c.name,
                PROMPT_ACTIVE.c.version == PROMPTS.c.version,
            ),
        )
        with self._engine.connect() as conn:
            row = conn.execute(query.where(PROMPT_ACTIVE.c.name == name)).mappings().first()
        return None if row is None else _to_prompt(row)

    def activate(self, name: str, version: int) -> bool:
        """Make ``version`` the active version of ``name``.

        Returns:
            Whether it was activated (False if there is no such version).
        """
        stmt = upsert_insert(self._engine, PROMPT_ACTIVE).values(name=name, version=version)
        stmt = stmt.on_conflict_do_update(
            index_elements=[PROMPT_ACTIVE.c.name], set_={"version": stmt.excluded.version}
        )
        exists = sa.select(PROMPTS.c.version).where(
            PROMPTS.c.name == name, PROMPTS.c.version == version
        )
        try:
            with self._engine.begin() as conn:
                if conn.execute(exists).first() is None:
                    return False
                conn.execute(stmt)
        except sa.exc.IntegrityError:  # the version was deleted meanwhile (foreign key)
            return False
        return True

    def delete_version(self, name: str, version: int) -> bool:
        """Delete a version that is not active.

        Returns:
            Whether there was such a version.

        Raises:
            ValueError: If it is the active version of ``name``.
        """
        active = sa.select(PROMPT_ACTIVE.c.version).where(PROMPT_ACTIVE.c.name == name)
        refused = ValueError(f"version {version} of prompt {name!r} is active; activate another")
        try:
            with self._engine.begin() as conn:
                if conn.execute(active).scalar_one_or_none() == version:
                    raise refused
                result = conn.execute(
                    sa.delete(PROMPTS).where(PROMPTS.c.name == name, PROMPTS.c.version == version)
                )
        except sa.exc.IntegrityError as exc:  # activated meanwhile (foreign key)
            raise refused from exc
        return result.rowcount > 0


@dataclass(frozen=True, slots=True)
class ExperimentRecord:
    """A stored prompt experiment; ``status`` is "running" or "stopped"."""

    id: str
    name: str
    prompt_name: str
    variants: tuple[Variant, ...]
    status: str
    winner: str | None
    created_at: datetime


def _to_experiment(row: Mapping[Any, Any]) -> ExperimentRecord:
    return ExperimentRecord(
        id=row["id"],
        name=row["name"],
        prompt_name=row["prompt_name"],
        variants=tuple(
            Variant(
                name=str(v["name"]),
                prompt_version=str(v["prompt_version"]),
                weight=float(v["weight"]),
            )
            for v in json.loads(row["variants"])
        ),
        status=row["status"],
        winner=row["winner"],
        created_at=row["created_at"],
    )


def _encode_variants(variants: Sequence[Variant]) -> str:
    if not variants:
        raise ValueError("an experiment needs at least one variant")
    names = [v.name for v in variants]
    if len(set(names)) != len(names) or not all(1 <= len(n) <= 64 for n in names):
        raise ValueError(f"variant names must be unique with 1 to 64 characters, got {names}")
    for v in variants:
        if not (math.isfinite(v.weight) and v.weight > 0):
            raise ValueError(f"variant {v.name!r}: weight must be > 0, but got {v.weight}")
    return json.dumps(
        [
            {"name": v.name, "prompt_version": str(v.prompt_version), "weight": float(v.weight)}
            for v in variants
        ]
    )


class ExperimentRepository(Repository):
    """Stores prompt experiments (A/B tests of prompt versions).

    Args:
        engine: An engine from ``sentinel.store.db.make_engine`` on a migrated database.
        clock: Returns the current tz-aware time; injectable for tests.
    """

    def create(self, name: str, prompt_name: str, variants: Sequence[Variant]) -> ExperimentRecord:
        """Create a running experiment.

        Raises:
            ValueError: If an experiment of that name exists ("... exists"), the name is empty
                or too long, or the variants are invalid (none, repeated names, weight <= 0).
        """
        if not 1 <= len(name) <= 128:
            raise ValueError(f"name must have 1 to 128 characters, but got {name!r}")
        values: dict[str, Any] = {
            "id": str(uuid.uuid4()),
            "name": name,
            "prompt_name": prompt_name,
            "variants": _encode_variants(variants),
            "status": "running",
            "winner": None,
            "created_at": as_utc(self._clock(), "clock()"),
        }
        try:
            with self._engine.begin() as conn:
                conn.execute(sa.insert(EXPERIMENTS).values(**values))
        except sa.exc.IntegrityError as exc:
            raise ValueError(f"experiment {name!r} exists") from exc
        return _to_experiment(values)

    def get(self, experiment_id: str) -> ExperimentRecord | None:
        """The experiment with this id, or None."""
        return self._first(sa.select(EXPERIMENTS).where(EXPERIMENTS.c.id == experiment_id))

    def running_for(self, prompt_name: str) -> ExperimentRecord | None:
        """The newest running experiment on ``prompt_name``, or None."""
        c = EXPERIMENTS.c
        query = (
            sa.select(EXPERIMENTS)
            .where(c.prompt_name == prompt_name, c.status == "running")
            .order_by(c.created_at.desc(), c.id.desc())
        )
        return self._first(query)

    def _first(self, query: sa.Select[Any]) -> ExperimentRecord | None:
        with self._engine.connect() as conn:
            row = conn.execute(query).mappings().first()
        return None if row is None else _to_experiment(row)

    def list(self) -> builtins.list[ExperimentRecord]:
        """Every experiment, newest first."""
        query = sa.select(EXPERIMENTS).order_by(
            EXPERIMENTS.c.created_at.desc(), EXPERIMENTS.c.id.desc()
        )
        with self._engine.connect() as conn:
            return [_to_experiment(row) for row in conn.execute(query).mappings()]

    def stop(self, experiment_id: str, winner: str | None) -> ExperimentRecord | None:
        """Stop an experiment, naming the winning variant (or None); stopping again re-sets it.

        Returns:
            The stopped experiment, or None if there is no such experiment.

        Raises:
            ValueError: If ``winner`` is not one of the experiment's variants.
        """
        current = self.get(experiment_id)
        if current is None:
            return None
        if winner is not None and winner not in {v.name for v in current.variants}:
            raise ValueError(f"winner {winner!r} is not a variant of experiment {current.name!r}")
        stmt = (
            sa.update(EXPERIMENTS)
            .where(EXPERIMENTS.c.id == experiment_id)
            .values(status="stopped", winner=winner)
        )
        with self._engine.begin() as conn:
            if conn.execute(stmt).rowcount == 0:
                return None
        return self.get(experiment_id)
