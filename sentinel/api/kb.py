"""The knowledge base's routes: site documents (post orders, SOPs) that ask cites.

Writing needs the ``admin`` scope and no camera limit (a document concerns the whole site);
reading needs ``events:read``. A document is uploaded as the request body, its type from the
Content-Type header (text/plain, text/markdown, application/pdf) or the name's extension; a
second upload of a name is its next version. A document that does not parse is rejected whole
(422, nothing stored).
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, HTTPException, Path, Request, Response, Security
from fastapi.exceptions import RequestValidationError
from pydantic import BaseModel, Field
from starlette.concurrency import run_in_threadpool

from sentinel.api.deps import Services, ServicesDep
from sentinel.api.security import authorize, authorize_every_camera
from sentinel.gateway.roles import ADMIN, EVENTS_READ, Principal
from sentinel.search.index import IndexUnavailableError
from sentinel.search.kb import MAX_DOCUMENT_BYTES, DocumentError, KnowledgeBase, valid_name
from sentinel.store.kb_repo import KbDocument

router = APIRouter(prefix="/kb", tags=["knowledge base"])

Reader = Annotated[Principal, Security(authorize, scopes=[EVENTS_READ])]
Writer = Annotated[Principal, Security(authorize_every_camera, scopes=[ADMIN])]
DocName = Annotated[
    str, Path(min_length=1, max_length=200, description="The document's name, e.g. post-orders.md")
]


class KbDocumentPublic(BaseModel):
    name: str
    version: int
    media_type: str
    size_bytes: int
    sha256: str
    sections: int = Field(description="Sections (chunks) the version was cut into.")
    current: bool
    created_by: str
    created_at: datetime


class KbSectionPublic(BaseModel):
    id: str
    section: str
    text: str


class KbDocumentDetail(KbDocumentPublic):
    versions: list[KbDocumentPublic] = Field(description="Every version, newest first.")
    section_list: list[KbSectionPublic] = Field(description="The current version's sections.")


class KbDocumentList(BaseModel):
    items: list[KbDocumentPublic]


class KbUploaded(KbDocumentPublic):
    replaced_sections: int = Field(description="Sections of the previous version removed.")


def _kb(services: Services) -> KnowledgeBase:
    kb = services.search.kb if services.search is not None else None
    if kb is None:
        raise HTTPException(404, "the knowledge base is not enabled (settings: search.enabled)")
    return kb


def _public(doc: KbDocument) -> KbDocumentPublic:
    return KbDocumentPublic(
        name=doc.name,
        version=doc.version,
        media_type=doc.media_type,
        size_bytes=doc.size_bytes,
        sha256=doc.sha256,
        sections=doc.sections,
        current=doc.current,
        created_by=doc.created_by,
        created_at=doc.created_at,
    )


def _invalid(loc: tuple[str, ...], msg: str) -> RequestValidationError:
    return RequestValidationError([{"loc": loc, "msg": msg, "type": "value_error"}])


@router.put(
    "/documents/{name}",
    response_model=KbUploaded,
    status_code=201,
    summary="Upload a document (again: its next version)",
    openapi_extra={
        "requestBody": {
            "required": True,
            "content": {
                t: {"schema": {"type": "string", "format": "binary"}}
                for t in ("text/plain", "text/markdown", "application/pdf")
            },
        }
    },
)
async def upload_document(
    name: DocName, request: Request, services: ServicesDep, principal: Writer
) -> KbUploaded:
    """The body is the document. 422 with the reason for a document that does not parse (no
    text, not UTF-8, a broken PDF, an unknown type), an invalid name, or one over the size
    limit; nothing is stored then."""
    kb = _kb(services)
    if not valid_name(name):
        raise _invalid(("path", "name"), "a name is letters, digits, spaces and ._-()+,")
    data = await request.body()
    if len(data) > MAX_DOCUMENT_BYTES:
        raise _invalid(("body",), f"the document is over {MAX_DOCUMENT_BYTES} bytes")
    try:
        doc, replaced = await run_in_threadpool(
            kb.add, name, data, request.headers.get("content-type"), principal.subject
        )
    except DocumentError as exc:
        raise _invalid(("body",), str(exc)) from exc
    except IndexUnavailableError as exc:
        raise HTTPException(503, str(exc)) from exc
    return KbUploaded(**_public(doc).model_dump(), replaced_sections=replaced)


@router.get("/documents", response_model=KbDocumentList, summary="The documents (current versions)")
async def list_documents(services: ServicesDep, _: Reader) -> KbDocumentList:
    kb = _kb(services)
    docs = await run_in_threadpool(kb.repo.current)
    return KbDocumentList(items=[_public(d) for d in docs])


@router.get(
    "/documents/{name}",
    response_model=KbDocumentDetail,
    summary="A document: its current version's sections and its versions",
)
async def get_document(name: DocName, services: ServicesDep, _: Reader) -> KbDocumentDetail:
    kb = _kb(services)
    versions = await run_in_threadpool(kb.repo.versions, name)
    current = next((v for v in versions if v.current), None)
    if current is None:
        raise HTTPException(404, "document not found")
    sections = await run_in_threadpool(kb.repo.chunks, current.id)
    return KbDocumentDetail(
        **_public(current).model_dump(),
        versions=[_public(v) for v in versions],
        section_list=[KbSectionPublic(id=i, section=c.section, text=c.text) for i, c in sections],
    )


@router.delete(
    "/documents/{name}", status_code=204, summary="Delete a document and all its versions"
)
async def delete_document(name: DocName, services: ServicesDep, _: Writer) -> Response:
    kb = _kb(services)
    try:
        found = await run_in_threadpool(kb.delete, name)
    except IndexUnavailableError as exc:
        raise HTTPException(503, str(exc)) from exc
    if not found:
        raise HTTPException(404, "document not found")
    return Response(status_code=204)
