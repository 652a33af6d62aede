"""The knowledge base's tables: site documents (every uploaded version) and their sections.

Created by the migration ``0015_knowledge_base``; keep both in step (a test compares them).
"""

from __future__ import annotations

from datetime import datetime

import sqlalchemy as sa
from sqlmodel import Field, SQLModel

from sentinel.store.tables import UTCDateTime

__all__ = ["KB_CHUNKS", "KB_DOCUMENTS", "KbChunkRow", "KbDocumentRow"]


class KbDocumentRow(SQLModel, table=True):
    """One uploaded version of a document; ``current`` marks the version in the index."""

    __tablename__ = "kb_documents"
    __table_args__ = (
        sa.UniqueConstraint("name", "version", name="uq_kb_documents_name_version"),
        sa.Index("ix_kb_documents_name_current", "name", "current"),
    )

    id: str = Field(sa_column=sa.Column(sa.String(36), primary_key=True))
    name: str = Field(sa_column=sa.Column(sa.String(200), nullable=False))
    version: int = Field(sa_column=sa.Column(sa.Integer(), nullable=False))
    media_type: str = Field(sa_column=sa.Column(sa.String(64), nullable=False))
    size_bytes: int = Field(sa_column=sa.Column(sa.Integer(), nullable=False))
    sha256: str = Field(sa_column=sa.Column(sa.String(64), nullable=False))
    sections: int = Field(sa_column=sa.Column(sa.Integer(), nullable=False))
    current: bool = Field(sa_column=sa.Column(sa.Boolean(), nullable=False))
    created_by: str = Field(sa_column=sa.Column(sa.String(64), nullable=False))
    created_at: datetime = Field(sa_column=sa.Column(UTCDateTime(), nullable=False))


class KbChunkRow(SQLModel, table=True):
    """One section (chunk) of a document version, as embedded into the index."""

    __tablename__ = "kb_chunks"
    __table_args__ = (sa.Index("ix_kb_chunks_document_id", "document_id"),)

    id: str = Field(sa_column=sa.Column(sa.String(48), primary_key=True))
    document_id: str = Field(sa_column=sa.Column(sa.String(36), nullable=False))
    ordinal: int = Field(sa_column=sa.Column(sa.Integer(), nullable=False))
    section: str = Field(sa_column=sa.Column(sa.String(300), nullable=False))
    text: str = Field(sa_column=sa.Column(sa.Text(), nullable=False))


KB_DOCUMENTS: sa.Table = SQLModel.metadata.tables["kb_documents"]
KB_CHUNKS: sa.Table = SQLModel.metadata.tables["kb_chunks"]
