"""The learning loop: annotation queue, annotations, reviews, gold scores, datasets.

Revision ID: 0016
Revises: 0015
Create Date: 2026-12-07
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0016"
down_revision: str | Sequence[str] | None = "0015"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def _at(name: str, nullable: bool = False) -> sa.Column[object]:
    return sa.Column(name, sa.DateTime(timezone=True), nullable=nullable)


def upgrade() -> None:
    """Create the annotation and dataset tables."""
    op.create_table(
        "annotation_items",
        sa.Column("id", sa.String(36), primary_key=True),
        sa.Column("camera_id", sa.String(64), nullable=False),
        _at("frame_ts"),
        sa.Column("frame_index", sa.Integer(), nullable=True),
        sa.Column("source", sa.String(16), nullable=False),
        sa.Column("image_key", sa.String(1024), nullable=False),
        sa.Column("width", sa.Integer(), nullable=False),
        sa.Column("height", sa.Integer(), nullable=False),
        sa.Column("phash", sa.String(16), nullable=False),
        sa.Column("score", sa.Float(), nullable=False),
        sa.Column("reasons", sa.Text(), nullable=False),
        sa.Column("prelabels", sa.Text(), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("assignee", sa.String(64), nullable=True),
        sa.Column("is_gold", sa.Boolean(), nullable=False),
        sa.Column("gold_boxes", sa.Text(), nullable=True),
        _at("created_at"),
        _at("updated_at"),
    )
    op.create_index("ix_annotation_items_status_score", "annotation_items", ["status", "score"])
    op.create_index("ix_annotation_items_camera_id", "annotation_items", ["camera_id"])
    op.create_table(
        "annotations",
        sa.Column("id", sa.String(36), primary_key=True),
        sa.Column("item_id", sa.String(36), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("annotator", sa.String(64), nullable=False),
        sa.Column("boxes", sa.Text(), nullable=False),
        _at("created_at"),
        sa.UniqueConstraint("item_id", "version", name="uq_annotations_item_id_version"),
    )
    op.create_index("ix_annotations_annotator", "annotations", ["annotator"])
    op.create_table(
        "annotation_reviews",
        sa.Column("id", sa.String(36), primary_key=True),
        sa.Column("item_id", sa.String(36), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("annotator", sa.String(64), nullable=False),
        sa.Column("reviewer", sa.String(64), nullable=False),
        sa.Column("decision", sa.String(16), nullable=False),
        sa.Column("note", sa.Text(), nullable=True),
        _at("created_at"),
    )
    op.create_index("ix_annotation_reviews_annotator", "annotation_reviews", ["annotator"])
    op.create_index("ix_annotation_reviews_item_id", "annotation_reviews", ["item_id"])
    op.create_table(
        "annotation_gold_scores",
        sa.Column("id", sa.String(36), primary_key=True),
        sa.Column("item_id", sa.String(36), nullable=False),
        sa.Column("annotator", sa.String(64), nullable=False),
        sa.Column("f1", sa.Float(), nullable=False),
        sa.Column("matched", sa.Integer(), nullable=False),
        sa.Column("submitted", sa.Integer(), nullable=False),
        sa.Column("reference", sa.Integer(), nullable=False),
        _at("created_at"),
        sa.UniqueConstraint(
            "item_id", "annotator", name="uq_annotation_gold_scores_item_annotator"
        ),
    )
    op.create_table(
        "datasets",
        sa.Column("id", sa.String(36), primary_key=True),
        sa.Column("name", sa.String(64), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("manifest_key", sa.String(1024), nullable=False),
        sa.Column("manifest_sha256", sa.String(64), nullable=True),
        sa.Column("items", sa.Integer(), nullable=False),
        sa.Column("boxes", sa.Integer(), nullable=False),
        sa.Column("labels", sa.Text(), nullable=False),
        sa.Column("camera_ids", sa.Text(), nullable=True),
        sa.Column("created_by", sa.String(64), nullable=False),
        _at("created_at"),
        sa.UniqueConstraint("name", "version", name="uq_datasets_name_version"),
    )
    op.create_table(
        "dataset_locks",
        sa.Column("id", sa.String(36), primary_key=True),
        sa.Column("name", sa.String(64), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("run_id", sa.String(128), nullable=False),
        _at("locked_at"),
        sa.UniqueConstraint("name", "version", "run_id", name="uq_dataset_locks_name_version_run"),
    )


def downgrade() -> None:
    """Drop the annotation and dataset tables."""
    op.drop_table("dataset_locks")
    op.drop_table("datasets")
    op.drop_table("annotation_gold_scores")
    op.drop_index("ix_annotation_reviews_item_id", table_name="annotation_reviews")
    op.drop_index("ix_annotation_reviews_annotator", table_name="annotation_reviews")
    op.drop_table("annotation_reviews")
    op.drop_index("ix_annotations_annotator", table_name="annotations")
    op.drop_table("annotations")
    op.drop_index("ix_annotation_items_camera_id", table_name="annotation_items")
    op.drop_index("ix_annotation_items_status_score", table_name="annotation_items")
    op.drop_table("annotation_items")
