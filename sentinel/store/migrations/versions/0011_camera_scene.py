"""A camera's scene (zones, lines, masks) as edited through the API, kept apart from its
config, so the config file's cameras seeded at each start do not undo an operator's edits.

Revision ID: 0011
Revises: 0010
Create Date: 2026-12-06
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0011"
down_revision: str | Sequence[str] | None = "0010"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    """Add ``cameras.scene``."""
    op.add_column("cameras", sa.Column("scene", sa.Text(), nullable=True))


def downgrade() -> None:
    """Drop ``cameras.scene`` (edited scenes are lost; the configs' own remain)."""
    with op.batch_alter_table("cameras") as batch:
        batch.drop_column("scene")
