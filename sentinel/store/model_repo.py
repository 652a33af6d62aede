"""The detector's serving state (a JSON document with a revision) and the operators' verdicts
counted per detector model version."""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import sqlalchemy as sa

from sentinel.store.agent_tables import ALERTS
from sentinel.store.clock import Repository
from sentinel.store.model_tables import MODEL_SERVING
from sentinel.store.sql import require_aware
from sentinel.store.tables import EVENTS

__all__ = ["ModelServingRepository", "ServingState", "StaleStateError", "VerdictCounts"]

SERVING_KEY = "detector"


class StaleStateError(RuntimeError):
    """The state changed since it was read (another writer won)."""


@dataclass(frozen=True, slots=True)
class ServingState:
    state: dict[str, Any]
    revision: int
    updated_at: datetime


@dataclass(frozen=True, slots=True)
class VerdictCounts:
    """Operators' verdicts on the alerts of one model's events."""

    judged: int
    false_positives: int


class ModelServingRepository(Repository):
    """Reads and compare-and-sets the serving state; counts verdicts per model."""

    def get(self) -> ServingState | None:
        with self._engine.connect() as conn:
            row = (
                conn.execute(sa.select(MODEL_SERVING).where(MODEL_SERVING.c.key == SERVING_KEY))
                .mappings()
                .first()
            )
        if row is None:
            return None
        return ServingState(json.loads(row["state"]), int(row["revision"]), row["updated_at"])

    def put(self, state: dict[str, Any], expected_revision: int | None) -> int:
        """Writes ``state`` if the stored revision is still ``expected_revision`` (None: no
        state stored yet); returns the new revision.

        Raises:
            StaleStateError: another writer changed it first.
        """
        encoded = json.dumps(state, sort_keys=True)
        now = self._now()
        with self._write() as conn:
            if expected_revision is None:
                taken = conn.execute(
                    sa.select(MODEL_SERVING.c.key).where(MODEL_SERVING.c.key == SERVING_KEY)
                ).first()
                if taken is not None:
                    raise StaleStateError("the serving state was created meanwhile")
                conn.execute(
                    MODEL_SERVING.insert().values(
                        key=SERVING_KEY, state=encoded, revision=1, updated_at=now
                    )
                )
                return 1
            done = conn.execute(
                MODEL_SERVING.update()
                .where(
                    MODEL_SERVING.c.key == SERVING_KEY,
                    MODEL_SERVING.c.revision == expected_revision,
                )
                .values(state=encoded, revision=expected_revision + 1, updated_at=now)
            )
            if done.rowcount != 1:
                raise StaleStateError(
                    f"the serving state is no longer at revision {expected_revision}"
                )
        return expected_revision + 1

    def verdicts_by_model(self, since: datetime) -> dict[int, VerdictCounts]:
        """Verdicts given on alerts whose event opened on a model version, since ``since``
        (the events' start), per version."""
        require_aware(since, "since")
        judged = sa.func.count(ALERTS.c.verdict)
        false_positives = sa.func.sum(sa.case((ALERTS.c.verdict == "false_positive", 1), else_=0))
        stmt = (
            sa.select(EVENTS.c.model_version, judged, false_positives)
            .select_from(ALERTS.join(EVENTS, EVENTS.c.id == ALERTS.c.event_id))
            .where(
                EVENTS.c.model_version.is_not(None),
                EVENTS.c.started_at >= since,
                ALERTS.c.verdict.is_not(None),
            )
            .group_by(EVENTS.c.model_version)
        )
        with self._engine.connect() as conn:
            rows = conn.execute(stmt).all()
        return {int(v): VerdictCounts(int(j), int(fp or 0)) for v, j, fp in rows}
