"""The knowledge base's documents and sections (``kb_documents``, ``kb_chunks``).

A document is known by its name; each upload of a name is a new version, and only the newest
(``current``) version's sections are in the vector index. Older versions are kept as history
(their rows, not their sections): what the documents said before is still on record.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

import sqlalchemy as sa

from sentinel.store.clock import Repository
from sentinel.store.kb_tables import KB_CHUNKS, KB_DOCUMENTS
from sentinel.store.sql import as_utc

__all__ = ["KbChunk", "KbDocument", "KbRepository", "StoredVersion"]


@dataclass(frozen=True, slots=True)
class KbChunk:
    """One section of a document: its heading path and text."""

    section: str
    text: str


@dataclass(frozen=True, slots=True)
class KbDocument:
    """One stored version of a document."""

    id: str
    name: str
    version: int
    media_type: str
    size_bytes: int
    sha256: str
    sections: int
    current: bool
    created_by: str
    created_at: datetime


@dataclass(frozen=True, slots=True)
class StoredVersion:
    """What ``add_version`` wrote: the new version, its chunk ids (in order), and the chunk ids
    of the version it replaced (to leave the index)."""

    document: KbDocument
    chunk_ids: list[str]
    replaced_chunk_ids: list[str]


def chunk_id(document_id: str, ordinal: int) -> str:
    """The id of a section in the index and in ``kb_chunks``."""
    return f"{document_id}:{ordinal}"


def _document(row: sa.Row[tuple[object, ...]]) -> KbDocument:
    m = row._mapping
    return KbDocument(
        id=str(m["id"]),
        name=str(m["name"]),
        version=int(m["version"]),
        media_type=str(m["media_type"]),
        size_bytes=int(m["size_bytes"]),
        sha256=str(m["sha256"]),
        sections=int(m["sections"]),
        current=bool(m["current"]),
        created_by=str(m["created_by"]),
        created_at=as_utc(m["created_at"], "created_at"),
    )


class KbRepository(Repository):
    """Versions and sections of the knowledge base's documents."""

    def _chunk_ids(self, conn: sa.Connection, document_ids: Sequence[str]) -> list[str]:
        if not document_ids:
            return []
        rows = conn.execute(
            sa.select(KB_CHUNKS.c.id)
            .where(KB_CHUNKS.c.document_id.in_(list(document_ids)))
            .order_by(KB_CHUNKS.c.document_id, KB_CHUNKS.c.ordinal)
        )
        return [str(r[0]) for r in rows]

    def add_version(
        self,
        name: str,
        chunks: Sequence[KbChunk],
        *,
        document_id: str | None = None,
        media_type: str,
        size_bytes: int,
        sha256: str,
        created_by: str,
    ) -> StoredVersion:
        """Store ``chunks`` as the newest version of ``name``; the previous current version
        stays on record but is no longer current. One transaction: all or nothing."""
        if not chunks:
            raise ValueError("a document needs at least one section")
        doc_id = document_id or uuid.uuid4().hex
        now = self._now()
        with self._write() as conn:
            previous = conn.execute(
                sa.select(KB_DOCUMENTS.c.id, KB_DOCUMENTS.c.version, KB_DOCUMENTS.c.current).where(
                    KB_DOCUMENTS.c.name == name
                )
            ).all()
            version = max((int(r[1]) for r in previous), default=0) + 1
            replaced = [str(r[0]) for r in previous if r[2]]
            replaced_chunks = self._chunk_ids(conn, replaced)
            if replaced:
                conn.execute(
                    sa.update(KB_DOCUMENTS)
                    .where(KB_DOCUMENTS.c.id.in_(replaced))
                    .values(current=False)
                )
                # History keeps the versions' rows; their sections are gone from the index.
                conn.execute(sa.delete(KB_CHUNKS).where(KB_CHUNKS.c.document_id.in_(replaced)))
            conn.execute(
                sa.insert(KB_DOCUMENTS).values(
                    id=doc_id,
                    name=name,
                    version=version,
                    media_type=media_type,
                    size_bytes=size_bytes,
                    sha256=sha256,
                    sections=len(chunks),
                    current=True,
                    created_by=created_by,
                    created_at=now,
                )
            )
            ids = [chunk_id(doc_id, i) for i in range(len(chunks))]
            conn.execute(
                sa.insert(KB_CHUNKS),
                [
                    {
                        "id": cid,
                        "document_id": doc_id,
                        "ordinal": i,
                        "section": c.section[:300],
                        "text": c.text,
                    }
                    for i, (cid, c) in enumerate(zip(ids, chunks, strict=True))
                ],
            )
        document = KbDocument(
            doc_id,
            name,
            version,
            media_type,
            size_bytes,
            sha256,
            len(chunks),
            True,
            created_by,
            now,
        )
        return StoredVersion(document, ids, replaced_chunks)

    def current(self) -> list[KbDocument]:
        """The current version of every document, by name."""
        with self._engine.connect() as conn:
            rows = conn.execute(
                sa.select(KB_DOCUMENTS)
                .where(KB_DOCUMENTS.c.current.is_(True))
                .order_by(KB_DOCUMENTS.c.name)
            ).all()
        return [_document(r) for r in rows]

    def versions(self, name: str) -> list[KbDocument]:
        """Every version of ``name``, newest first (empty: no such document)."""
        with self._engine.connect() as conn:
            rows = conn.execute(
                sa.select(KB_DOCUMENTS)
                .where(KB_DOCUMENTS.c.name == name)
                .order_by(KB_DOCUMENTS.c.version.desc())
            ).all()
        return [_document(r) for r in rows]

    def chunks(self, document_id: str) -> list[tuple[str, KbChunk]]:
        """The sections of a document version, in order, with their ids."""
        with self._engine.connect() as conn:
            rows = conn.execute(
                sa.select(KB_CHUNKS.c.id, KB_CHUNKS.c.section, KB_CHUNKS.c.text)
                .where(KB_CHUNKS.c.document_id == document_id)
                .order_by(KB_CHUNKS.c.ordinal)
            ).all()
        return [(str(r[0]), KbChunk(str(r[1]), str(r[2]))) for r in rows]

    def live(self, chunk_ids: Sequence[str]) -> dict[str, tuple[str, int, str]]:
        """The document name, version and section of each of ``chunk_ids`` that belongs to a
        current version (an index entry left behind by a failed clean-up is not cited)."""
        if not chunk_ids:
            return {}
        with self._engine.connect() as conn:
            rows = conn.execute(
                sa.select(
                    KB_CHUNKS.c.id, KB_DOCUMENTS.c.name, KB_DOCUMENTS.c.version, KB_CHUNKS.c.section
                )
                .join(KB_DOCUMENTS, KB_DOCUMENTS.c.id == KB_CHUNKS.c.document_id)
                .where(KB_CHUNKS.c.id.in_(list(chunk_ids)), KB_DOCUMENTS.c.current.is_(True))
            ).all()
        return {str(r[0]): (str(r[1]), int(r[2]), str(r[3])) for r in rows}

    def delete(self, name: str) -> list[str] | None:
        """Delete every version of ``name``; returns the chunk ids to remove from the index,
        or None if there is no such document."""
        with self._write() as conn:
            ids = [
                str(r[0])
                for r in conn.execute(
                    sa.select(KB_DOCUMENTS.c.id).where(KB_DOCUMENTS.c.name == name)
                )
            ]
            if not ids:
                return None
            chunk_ids = self._chunk_ids(conn, ids)
            conn.execute(sa.delete(KB_CHUNKS).where(KB_CHUNKS.c.document_id.in_(ids)))
            conn.execute(sa.delete(KB_DOCUMENTS).where(KB_DOCUMENTS.c.id.in_(ids)))
        return chunk_ids
