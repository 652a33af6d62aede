"""Table models of alert rules, arming and RuleGen suggestions (migration ``0008_rules``).

- ``rules``: one row per rule, its current version; ``body`` is the rule's JSON
  (``rule_to_dict``). A deleted rule keeps its row with ``deleted_at`` set (soft delete), so its
  alerts still name it.
- ``rule_versions``: every version of every rule as written, with who wrote it; only added to.
- ``arming``: one row (``id`` 1): the site's arming mode and ``revision``, bumped by every change
  of a rule or of the mode, so cameras reload their rules only when the revision moved.
- ``rulegen_suggestions``: masks, rules and tightenings RuleGen proposes, with their backtest,
  reason and dedupe key (``0010_rule_suggestions``), and the operator's decision (with the
  rule an accepted rule or tightening wrote).
"""

from __future__ import annotations

from datetime import datetime

import sqlalchemy as sa
from sqlmodel import Field, SQLModel

from sentinel.store.tables import UTCDateTime

__all__ = [
    "ARMING",
    "ARMING_ROW_ID",
    "RULEGEN_SUGGESTIONS",
    "RULES",
    "RULE_VERSIONS",
    "ArmingRow",
    "RuleRow",
    "RuleVersionRow",
    "SuggestionRow",
]

ARMING_ROW_ID = 1


class RuleRow(SQLModel, table=True):
    """A rule at its current version."""

    __tablename__ = "rules"
    __table_args__ = (sa.Index("ix_rules_deleted_at", "deleted_at"),)

    id: str = Field(sa_column=sa.Column(sa.String(64), primary_key=True))
    name: str = Field(sa_column=sa.Column(sa.String(200), nullable=False))
    body: str = Field(sa_column=sa.Column(sa.Text(), nullable=False))
    version: int = Field(sa_column=sa.Column(sa.Integer(), nullable=False))
    enabled: bool = Field(sa_column=sa.Column(sa.Boolean(), nullable=False))
    deleted_at: datetime | None = Field(default=None, sa_column=sa.Column(UTCDateTime()))
    created_at: datetime = Field(sa_column=sa.Column(UTCDateTime(), nullable=False))
    updated_at: datetime = Field(sa_column=sa.Column(UTCDateTime(), nullable=False))


class RuleVersionRow(SQLModel, table=True):
    """One version of a rule, as written."""

    __tablename__ = "rule_versions"

    rule_id: str = Field(sa_column=sa.Column(sa.String(64), primary_key=True))
    version: int = Field(sa_column=sa.Column(sa.Integer(), primary_key=True))
    body: str = Field(sa_column=sa.Column(sa.Text(), nullable=False))
    changed_by: str = Field(sa_column=sa.Column(sa.String(255), nullable=False))
    at: datetime = Field(sa_column=sa.Column(UTCDateTime(), nullable=False))


class ArmingRow(SQLModel, table=True):
    """The arming mode and the rules' revision (one row, ``id`` = ``ARMING_ROW_ID``)."""

    __tablename__ = "arming"

    id: int = Field(sa_column=sa.Column(sa.Integer(), primary_key=True, autoincrement=False))
    mode: str = Field(sa_column=sa.Column(sa.String(16), nullable=False))
    revision: int = Field(sa_column=sa.Column(sa.Integer(), nullable=False))
    changed_by: str | None = Field(default=None, sa_column=sa.Column(sa.String(255)))
    at: datetime | None = Field(default=None, sa_column=sa.Column(UTCDateTime()))


class SuggestionRow(SQLModel, table=True):
    """A RuleGen suggestion and its fate."""

    __tablename__ = "rulegen_suggestions"
    __table_args__ = (
        sa.Index("ix_rulegen_suggestions_status_created_at", "status", "created_at"),
        sa.Index("uq_rulegen_suggestions_dedupe_key", "dedupe_key", unique=True),
    )

    id: str = Field(sa_column=sa.Column(sa.String(36), primary_key=True))
    kind: str = Field(sa_column=sa.Column(sa.String(16), nullable=False))
    camera_id: str | None = Field(default=None, sa_column=sa.Column(sa.String(64)))
    body: str = Field(sa_column=sa.Column(sa.Text(), nullable=False))
    backtest: str | None = Field(default=None, sa_column=sa.Column(sa.Text()))
    status: str = Field(sa_column=sa.Column(sa.String(16), nullable=False))
    decided_by: str | None = Field(default=None, sa_column=sa.Column(sa.String(255)))
    decided_at: datetime | None = Field(default=None, sa_column=sa.Column(UTCDateTime()))
    created_at: datetime = Field(sa_column=sa.Column(UTCDateTime(), nullable=False))
    # Migration 0010: the same proposal has the same key across runs (unique: a re-run
    # refreshes an open suggestion instead of adding one); NULL on rows written before.
    dedupe_key: str | None = Field(default=None, sa_column=sa.Column(sa.String(64)))
    reason: str | None = Field(default=None, sa_column=sa.Column(sa.Text()))
    updated_at: datetime | None = Field(default=None, sa_column=sa.Column(UTCDateTime()))
    rule_id: str | None = Field(default=None, sa_column=sa.Column(sa.String(64)))


RULES: sa.Table = SQLModel.metadata.tables["rules"]
RULE_VERSIONS: sa.Table = SQLModel.metadata.tables["rule_versions"]
ARMING: sa.Table = SQLModel.metadata.tables["arming"]
RULEGEN_SUGGESTIONS: sa.Table = SQLModel.metadata.tables["rulegen_suggestions"]
