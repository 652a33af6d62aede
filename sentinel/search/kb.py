"""The knowledge base: site documents (post orders, SOPs) as cited, searchable sections.

A document (plain text, Markdown or PDF) is parsed whole before anything is stored: one that
does not parse is rejected with the reason (:class:`DocumentError`) and nothing is kept. Its
text is cut into sections along its headings (Markdown ``#`` headings, underlined or numbered
headings in plain text, pages in a PDF), long sections into parts on paragraph boundaries;
each section is embedded with the search embedder and indexed in its own collection. A second
upload of a name is its next version: the old version's sections leave the index.
"""

from __future__ import annotations

import hashlib
import io
import logging
import re
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import PurePath

import numpy as np
from numpy.typing import NDArray

from sentinel.search.documents import SearchDocument
from sentinel.search.index import Index, IndexReader, SearchFilter, SearchHit
from sentinel.search.service import Embed
from sentinel.store.kb_repo import KbChunk, KbDocument, KbRepository, chunk_id

logger = logging.getLogger(__name__)

__all__ = [
    "KB_COLLECTION",
    "MAX_DOCUMENT_BYTES",
    "MAX_SECTIONS",
    "MEDIA_TYPES",
    "DocumentError",
    "KbHit",
    "KnowledgeBase",
    "chunk_markdown",
    "chunk_pdf_pages",
    "chunk_text",
    "media_type_of",
    "parse_document",
    "valid_name",
]

KB_COLLECTION = "sentinel_kb"
MAX_DOCUMENT_BYTES = 1 << 20  # the API's default body limit
MAX_SECTIONS = 2000
MAX_SECTION_CHARS = 1200
MEDIA_TYPES = frozenset({"text/plain", "text/markdown", "application/pdf"})
_NAME = re.compile(r"^[\w][\w .()+,-]{0,199}$")
_ATX = re.compile(r"^(#{1,6})\s+(.+?)\s*#*\s*$")
_NUMBERED = re.compile(r"^(\d+(?:\.\d+)*)\.?\s+(\S.{0,100})$")
_SETEXT = re.compile(r"^(=+|-+)\s*$")


class DocumentError(ValueError):
    """The document cannot be taken: unknown type, not text, unparseable, empty, too big."""


def valid_name(name: str) -> bool:
    """Whether ``name`` is a document name: 1-200 letters, digits, spaces and ``._-()+,``,
    starting with a letter or digit."""
    return bool(_NAME.match(name))


def media_type_of(name: str, declared: str | None) -> str:
    """The document's type from its declared Content-Type, else its name's extension.

    Raises:
        DocumentError: For a type the knowledge base does not read.
    """
    base = (declared or "").split(";")[0].strip().lower()
    if base in MEDIA_TYPES:
        return base
    if base in {"", "application/octet-stream", "text/x-markdown"}:
        suffix = PurePath(name).suffix.lower()
        by_suffix = {
            ".md": "text/markdown",
            ".markdown": "text/markdown",
            ".txt": "text/plain",
            ".pdf": "application/pdf",
        }
        if suffix in by_suffix:
            return by_suffix[suffix]
        if base == "text/x-markdown":
            return "text/markdown"
    raise DocumentError(
        f"unsupported document type {declared or '(none)'!r}: send text/plain, text/markdown "
        "or application/pdf (or name the file .txt, .md or .pdf)"
    )


def _split_long(section: str, text: str, limit: int = MAX_SECTION_CHARS) -> list[KbChunk]:
    """``text`` as one chunk, or parts on paragraph (then line, then word) boundaries."""
    text = text.strip()
    if not text:
        return []
    if len(text) <= limit:
        return [KbChunk(section, text)]
    pieces: list[str] = []
    current = ""
    for para in re.split(r"\n\s*\n", text):
        words = para.split(" ") if len(para) > limit else [para]
        for word in words:
            sep = "\n\n" if word is para else " "
            if current and len(current) + len(sep) + len(word) > limit:
                pieces.append(current)
                current = word[:limit]
            else:
                current = f"{current}{sep}{word}" if current else word[:limit]
    if current:
        pieces.append(current)
    return [KbChunk(f"{section} (part {i})", p.strip()) for i, p in enumerate(pieces, 1)]


def _sections(lines: Sequence[tuple[int, str] | str], default: str) -> list[KbChunk]:
    """Chunks from a stream of headings (``(level, title)``) and text lines."""
    path: list[tuple[int, str]] = []
    body: list[str] = []
    out: list[KbChunk] = []

    def flush() -> None:
        name = " > ".join(t for _, t in path) or default
        out.extend(_split_long(name, "\n".join(body)))
        body.clear()

    for item in lines:
        if isinstance(item, tuple):
            flush()
            level, title = item
            while path and path[-1][0] >= level:
                path.pop()
            path.append((level, title.strip()))
        else:
            body.append(item)
    flush()
    return out


def chunk_markdown(text: str, default: str = "Introduction") -> list[KbChunk]:
    """Sections of a Markdown text along its ATX (``#``) and setext headings; the section of a
    chunk is its heading path ("Night shift > Gate checks"). Headings inside code fences are
    text."""
    items: list[tuple[int, str] | str] = []
    fenced = False
    raw = text.splitlines()
    for i, line in enumerate(raw):
        if line.lstrip().startswith(("```", "~~~")):
            fenced = not fenced
        if not fenced and (m := _ATX.match(line)):
            items.append((len(m.group(1)), m.group(2)))
            continue
        nxt = raw[i + 1] if i + 1 < len(raw) else ""
        if not fenced and line.strip() and _SETEXT.match(nxt) and len(nxt.strip()) >= 3:
            items.append((1 if nxt.strip()[0] == "=" else 2, line.strip()))
            continue
        if not fenced and _SETEXT.match(line) and items and isinstance(items[-1], tuple):
            continue  # the underline of the heading just taken
        items.append(line)
    return _sections(items, default)


def chunk_text(text: str, default: str = "Text") -> list[KbChunk]:
    """Sections of a plain text: underlined headings and numbered headings ("2.1 Visitors")
    start sections; the rest is text."""
    items: list[tuple[int, str] | str] = []
    raw = text.splitlines()
    skip = False
    for i, line in enumerate(raw):
        if skip:
            skip = False
            continue
        nxt = raw[i + 1] if i + 1 < len(raw) else ""
        stripped = line.strip()
        if stripped and _SETEXT.match(nxt) and len(nxt.strip()) >= 3:
            items.append((1 if nxt.strip()[0] == "=" else 2, stripped))
            skip = True
        elif (m := _NUMBERED.match(stripped)) and not stripped.endswith((".", ",", ";")):
            items.append((m.group(1).count(".") + 1, stripped))
        else:
            items.append(line)
    return _sections(items, default)


def chunk_pdf_pages(pages: Sequence[str]) -> list[KbChunk]:
    """Sections of a PDF's extracted text: its numbered headings where it has them, else its
    pages ("page 3")."""
    out: list[KbChunk] = []
    for n, page in enumerate(pages, 1):
        for chunk in chunk_text(page, default=f"page {n}"):
            section = chunk.section
            if not section.startswith(f"page {n}"):
                section = f"{section} (page {n})"
            out.append(KbChunk(section, chunk.text))
    return out


def _decode_text(data: bytes) -> str:
    if b"\x00" in data:
        raise DocumentError("the document is not text (it holds NUL bytes)")
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise DocumentError(f"the document is not UTF-8 text: {exc}") from exc
    return text.replace("\r\n", "\n").replace("\r", "\n")


def _pdf_pages(data: bytes) -> list[str]:
    try:
        from pypdf import PdfReader
        from pypdf.errors import PyPdfError
    except ImportError as exc:  # pragma: no cover - pypdf is a dependency
        raise DocumentError("PDF support is not installed (pypdf)") from exc
    if not data.startswith(b"%PDF-"):
        raise DocumentError("the document is not a PDF (no %PDF- header)")
    try:
        reader = PdfReader(io.BytesIO(data), strict=False)
        if reader.is_encrypted:
            raise DocumentError("the PDF is encrypted")
        return [page.extract_text() or "" for page in reader.pages]
    except DocumentError:
        raise
    except (PyPdfError, ValueError, KeyError, TypeError, OSError, RecursionError) as exc:
        raise DocumentError(f"the PDF does not parse: {type(exc).__name__}: {exc}") from exc


def parse_document(data: bytes, media_type: str) -> list[KbChunk]:
    """The sections of a document, or DocumentError with the reason (nothing is partial)."""
    if not data:
        raise DocumentError("the document is empty")
    if len(data) > MAX_DOCUMENT_BYTES:
        raise DocumentError(f"the document is over {MAX_DOCUMENT_BYTES} bytes")
    if media_type == "application/pdf":
        chunks = chunk_pdf_pages(_pdf_pages(data))
    elif media_type == "text/markdown":
        chunks = chunk_markdown(_decode_text(data))
    elif media_type == "text/plain":
        chunks = chunk_text(_decode_text(data))
    else:
        raise DocumentError(f"unsupported document type {media_type!r}")
    if not chunks:
        raise DocumentError("the document holds no text")
    if len(chunks) > MAX_SECTIONS:
        raise DocumentError(f"the document has {len(chunks)} sections, over {MAX_SECTIONS}")
    return chunks


@dataclass(frozen=True, slots=True)
class KbHit:
    """A section found for a query: its document, version, section, text and score."""

    chunk_id: str
    document: str
    version: int
    section: str
    text: str
    score: float


def _kb_doc(name: str, cid: str, chunk: KbChunk, at: datetime) -> SearchDocument:
    return SearchDocument(
        id=cid,
        kind="kb",
        text=f"{name}: {chunk.section}. {chunk.text}",
        camera_id="",
        label="",
        started_at=at,
        extra={"document": name},
    )


class KnowledgeBase:
    """Stores, indexes, searches and deletes site documents.

    Args:
        repo: The documents' rows.
        index: The knowledge base's own vector collection (:data:`KB_COLLECTION`).
        embed: The search embedder (texts to unit vectors).
    """

    def __init__(self, repo: KbRepository, index: Index, embed: Embed) -> None:
        self.repo = repo
        self.index = index
        self.embed = embed

    def add(
        self, name: str, data: bytes, media_type: str | None, created_by: str
    ) -> tuple[KbDocument, int]:
        """Parse, embed, index and store a document as the next version of ``name``; returns
        it and the number of sections the previous version had in the index.

        Raises:
            DocumentError: The name or document is not acceptable (nothing is stored).
        """
        if not valid_name(name):
            raise DocumentError(f"invalid document name {name!r}")
        kind = media_type_of(name, media_type)
        chunks = parse_document(data, kind)
        vectors = self.embed([f"{name}: {c.section}. {c.text}" for c in chunks])
        doc_id = uuid.uuid4().hex
        ids = [chunk_id(doc_id, i) for i in range(len(chunks))]
        now = datetime.now(UTC)
        # The new sections enter the index first, under ids nobody cites until the version's
        # rows are committed; a failed commit takes them out again.
        self.index.upsert(
            [_kb_doc(name, i, c, now) for i, c in zip(ids, chunks, strict=True)], vectors
        )
        try:
            stored = self.repo.add_version(
                name,
                chunks,
                document_id=doc_id,
                media_type=kind,
                size_bytes=len(data),
                sha256=hashlib.sha256(data).hexdigest(),
                created_by=created_by,
            )
        except Exception:
            self.index.delete(ids)
            raise
        if stored.replaced_chunk_ids:
            try:
                self.index.delete(stored.replaced_chunk_ids)
            except Exception:  # left behind, but never cited (``live`` checks the rows)
                logger.exception("kb: removing the old sections of %s failed", name)
        return stored.document, len(stored.replaced_chunk_ids)

    def delete(self, name: str) -> bool:
        """Delete every version of ``name`` and its sections in the index; False if unknown."""
        chunk_ids = self.repo.delete(name)
        if chunk_ids is None:
            return False
        self.index.delete(chunk_ids)
        return True

    def search(
        self, vector: NDArray[np.float32], k: int, reader: IndexReader | None = None
    ) -> list[KbHit]:
        """The ``k`` sections closest to a query vector, current versions only (``reader``:
        where to query, by default this knowledge base's own index)."""
        hits: list[SearchHit] = (reader or self.index).query(vector, SearchFilter(), k)
        live = self.repo.live([h.id for h in hits])
        return [
            KbHit(
                chunk_id=h.id,
                document=live[h.id][0],
                version=live[h.id][1],
                section=live[h.id][2],
                text=h.text,
                score=h.score,
            )
            for h in hits
            if h.id in live
        ]
