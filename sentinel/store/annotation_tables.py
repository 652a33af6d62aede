"""The learning loop's tables: the annotation queue, annotations, reviews, gold scores, datasets.

Created by the migration ``0016_annotation``; keep both in step (a test compares them).

- ``annotation_items``: one frame to annotate (its JPEG is an object under ``image_key``), ranked
  by ``score``. ``status`` moves queued -> submitted -> accepted | returned (returned -> submitted
  again). ``version`` counts the annotations stored for it (the optimistic-lock token a client
  sends back). A gold item (``is_gold``) carries hidden reference boxes (``gold_boxes``); its
  submissions are scored (``annotation_gold_scores``) and it stays queued for other annotators.
  ``phash`` is the frame's 64-bit dHash as 16 hex digits (near-duplicates are not queued twice).
- ``annotations``: every submitted version of an item's boxes (JSON), with its author.
- ``annotation_reviews``: a reviewer's decision on one annotation version.
- ``annotation_gold_scores``: an annotator's latest agreement with a gold item's reference.
- ``datasets``: one built version of a named dataset (its manifest in the object store);
  ``dataset_locks``: the training runs that used a version (a locked version is immutable).
"""

from __future__ import annotations

from datetime import datetime

import sqlalchemy as sa
from sqlmodel import Field, SQLModel

from sentinel.store.tables import UTCDateTime

__all__ = [
    "ANNOTATIONS",
    "ANNOTATION_GOLD_SCORES",
    "ANNOTATION_ITEMS",
    "ANNOTATION_REVIEWS",
    "DATASETS",
    "DATASET_LOCKS",
    "ITEM_STATUSES",
]

ITEM_STATUSES = frozenset({"queued", "submitted", "accepted", "returned"})


class AnnotationItemRow(SQLModel, table=True):
    """One frame in the annotation queue."""

    __tablename__ = "annotation_items"
    __table_args__ = (
        sa.Index("ix_annotation_items_status_score", "status", "score"),
        sa.Index("ix_annotation_items_camera_id", "camera_id"),
    )

    id: str = Field(sa_column=sa.Column(sa.String(36), primary_key=True))
    camera_id: str = Field(sa_column=sa.Column(sa.String(64), nullable=False))
    frame_ts: datetime = Field(sa_column=sa.Column(UTCDateTime(), nullable=False))
    frame_index: int | None = Field(default=None, sa_column=sa.Column(sa.Integer(), nullable=True))
    source: str = Field(sa_column=sa.Column(sa.String(16), nullable=False))
    image_key: str = Field(sa_column=sa.Column(sa.String(1024), nullable=False))
    width: int = Field(sa_column=sa.Column(sa.Integer(), nullable=False))
    height: int = Field(sa_column=sa.Column(sa.Integer(), nullable=False))
    phash: str = Field(sa_column=sa.Column(sa.String(16), nullable=False))
    score: float = Field(sa_column=sa.Column(sa.Float(), nullable=False))
    reasons: str = Field(sa_column=sa.Column(sa.Text(), nullable=False))
    prelabels: str = Field(sa_column=sa.Column(sa.Text(), nullable=False))
    status: str = Field(sa_column=sa.Column(sa.String(16), nullable=False))
    version: int = Field(sa_column=sa.Column(sa.Integer(), nullable=False))
    assignee: str | None = Field(default=None, sa_column=sa.Column(sa.String(64), nullable=True))
    is_gold: bool = Field(sa_column=sa.Column(sa.Boolean(), nullable=False))
    gold_boxes: str | None = Field(default=None, sa_column=sa.Column(sa.Text(), nullable=True))
    created_at: datetime = Field(sa_column=sa.Column(UTCDateTime(), nullable=False))
    updated_at: datetime = Field(sa_column=sa.Column(UTCDateTime(), nullable=False))


class AnnotationRow(SQLModel, table=True):
    """One submitted version of an item's boxes."""

    __tablename__ = "annotations"
    __table_args__ = (
        sa.UniqueConstraint("item_id", "version", name="uq_annotations_item_id_version"),
        sa.Index("ix_annotations_annotator", "annotator"),
    )

    id: str = Field(sa_column=sa.Column(sa.String(36), primary_key=True))
    item_id: str = Field(sa_column=sa.Column(sa.String(36), nullable=False))
    version: int = Field(sa_column=sa.Column(sa.Integer(), nullable=False))
    annotator: str = Field(sa_column=sa.Column(sa.String(64), nullable=False))
    boxes: str = Field(sa_column=sa.Column(sa.Text(), nullable=False))
    created_at: datetime = Field(sa_column=sa.Column(UTCDateTime(), nullable=False))


class AnnotationReviewRow(SQLModel, table=True):
    """A reviewer's decision on one annotation version."""

    __tablename__ = "annotation_reviews"
    __table_args__ = (
        sa.Index("ix_annotation_reviews_annotator", "annotator"),
        sa.Index("ix_annotation_reviews_item_id", "item_id"),
    )

    id: str = Field(sa_column=sa.Column(sa.String(36), primary_key=True))
    item_id: str = Field(sa_column=sa.Column(sa.String(36), nullable=False))
    version: int = Field(sa_column=sa.Column(sa.Integer(), nullable=False))
    annotator: str = Field(sa_column=sa.Column(sa.String(64), nullable=False))
    reviewer: str = Field(sa_column=sa.Column(sa.String(64), nullable=False))
    decision: str = Field(sa_column=sa.Column(sa.String(16), nullable=False))
    note: str | None = Field(default=None, sa_column=sa.Column(sa.Text(), nullable=True))
    created_at: datetime = Field(sa_column=sa.Column(UTCDateTime(), nullable=False))


class AnnotationGoldScoreRow(SQLModel, table=True):
    """An annotator's latest agreement with one gold item's reference boxes."""

    __tablename__ = "annotation_gold_scores"
    __table_args__ = (
        sa.UniqueConstraint(
            "item_id", "annotator", name="uq_annotation_gold_scores_item_annotator"
        ),
    )

    id: str = Field(sa_column=sa.Column(sa.String(36), primary_key=True))
    item_id: str = Field(sa_column=sa.Column(sa.String(36), nullable=False))
    annotator: str = Field(sa_column=sa.Column(sa.String(64), nullable=False))
    f1: float = Field(sa_column=sa.Column(sa.Float(), nullable=False))
    matched: int = Field(sa_column=sa.Column(sa.Integer(), nullable=False))
    submitted: int = Field(sa_column=sa.Column(sa.Integer(), nullable=False))
    reference: int = Field(sa_column=sa.Column(sa.Integer(), nullable=False))
    created_at: datetime = Field(sa_column=sa.Column(UTCDateTime(), nullable=False))


class DatasetRow(SQLModel, table=True):
    """One version of a named dataset; ``status`` is building, ready or failed."""

    __tablename__ = "datasets"
    __table_args__ = (sa.UniqueConstraint("name", "version", name="uq_datasets_name_version"),)

    id: str = Field(sa_column=sa.Column(sa.String(36), primary_key=True))
    name: str = Field(sa_column=sa.Column(sa.String(64), nullable=False))
    version: int = Field(sa_column=sa.Column(sa.Integer(), nullable=False))
    status: str = Field(sa_column=sa.Column(sa.String(16), nullable=False))
    manifest_key: str = Field(sa_column=sa.Column(sa.String(1024), nullable=False))
    manifest_sha256: str | None = Field(
        default=None, sa_column=sa.Column(sa.String(64), nullable=True)
    )
    items: int = Field(sa_column=sa.Column(sa.Integer(), nullable=False))
    boxes: int = Field(sa_column=sa.Column(sa.Integer(), nullable=False))
    labels: str = Field(sa_column=sa.Column(sa.Text(), nullable=False))
    camera_ids: str | None = Field(default=None, sa_column=sa.Column(sa.Text(), nullable=True))
    created_by: str = Field(sa_column=sa.Column(sa.String(64), nullable=False))
    created_at: datetime = Field(sa_column=sa.Column(UTCDateTime(), nullable=False))


class DatasetLockRow(SQLModel, table=True):
    """A training run that used a dataset version."""

    __tablename__ = "dataset_locks"
    __table_args__ = (
        sa.UniqueConstraint("name", "version", "run_id", name="uq_dataset_locks_name_version_run"),
    )

    id: str = Field(sa_column=sa.Column(sa.String(36), primary_key=True))
    name: str = Field(sa_column=sa.Column(sa.String(64), nullable=False))
    version: int = Field(sa_column=sa.Column(sa.Integer(), nullable=False))
    run_id: str = Field(sa_column=sa.Column(sa.String(128), nullable=False))
    locked_at: datetime = Field(sa_column=sa.Column(UTCDateTime(), nullable=False))


ANNOTATION_ITEMS: sa.Table = SQLModel.metadata.tables["annotation_items"]
ANNOTATIONS: sa.Table = SQLModel.metadata.tables["annotations"]
ANNOTATION_REVIEWS: sa.Table = SQLModel.metadata.tables["annotation_reviews"]
ANNOTATION_GOLD_SCORES: sa.Table = SQLModel.metadata.tables["annotation_gold_scores"]
DATASETS: sa.Table = SQLModel.metadata.tables["datasets"]
DATASET_LOCKS: sa.Table = SQLModel.metadata.tables["dataset_locks"]
