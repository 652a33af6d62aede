"""One uploaded file per request, as a multipart file field or the raw body, with a size limit
(the voice and face-search routes)."""

from __future__ import annotations

from fastapi import HTTPException, Request
from fastapi.exceptions import RequestValidationError
from starlette.datastructures import UploadFile
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.requests import ClientDisconnect

__all__ = ["invalid_upload", "read_upload"]


def invalid_upload(field: str, msg: str, kind: str = "value_error") -> RequestValidationError:
    """A 422 about the upload ``field``."""
    return RequestValidationError([{"loc": ("body", field), "msg": msg, "type": kind}])


def _too_large(what: str, limit: int) -> HTTPException:
    return HTTPException(413, f"the {what} is over {limit} bytes")


async def read_upload(request: Request, limit: int, *, field: str, what: str, send: str) -> bytes:
    """The file of the request: the multipart file field ``field``, or the raw body.

    Args:
        request: The request.
        limit: The most bytes taken.
        field: The multipart field's name (and the 422's location).
        what: The file in words ("photo"), for the 413.
        send: What to send, for the 422 when nothing came ("a JPEG or PNG").

    Raises:
        RequestValidationError: no file, or a malformed multipart body (422).
        HTTPException: over ``limit`` bytes (413).
    """
    ctype = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if ctype == "multipart/form-data":
        try:
            form = await request.form(max_files=1, max_fields=8)
        except StarletteHTTPException as exc:  # python-multipart's parse errors
            raise invalid_upload(
                field, f"malformed multipart body: {exc.detail}", "multipart"
            ) from exc
        except ClientDisconnect as exc:  # the size middleware cut it off
            raise _too_large(what, limit) from exc
        try:
            upload = form.get(field)
            if not isinstance(upload, UploadFile):
                raise invalid_upload(
                    field, f"the multipart body needs a file field named {field!r}", "missing"
                )
            data = await upload.read(limit + 1)
        finally:
            await form.close()
    else:
        chunks: list[bytes] = []
        size = 0
        try:
            async for chunk in request.stream():
                size += len(chunk)
                if size > limit:
                    raise _too_large(what, limit)
                chunks.append(chunk)
        except ClientDisconnect as exc:
            raise _too_large(what, limit) from exc
        data = b"".join(chunks)
    if len(data) > limit:
        raise _too_large(what, limit)
    if not data:
        raise invalid_upload(field, f"no {what}: send {send} as the body or as the field {field!r}")
    return data
