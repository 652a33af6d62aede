"""Media responses with HTTP Range support: bytes in memory (latest frames) and stored
objects (snapshots, exports), read by range from the object store.

Files on disk (clips, segments) use starlette's ``FileResponse``, which handles Range itself;
this does the same for the others: one range gets 206, an unsatisfiable one 416, several
ranges the whole body (RFC 9110 lets a server ignore Range).
"""

from __future__ import annotations

import re

from fastapi import Request, Response

from sentinel.store.objects import ObjectStore, read_range

_RANGE = re.compile(r"^bytes=(\d*)-(\d*)$")


def _asked_range(request: Request) -> tuple[str, str] | None:
    """The ``(first, last)`` of a single ``bytes=`` range, or None to answer with the whole
    body (no Range, several ranges, another unit, or ``bytes=-``)."""
    header = request.headers.get("range")
    if not header:
        return None
    match = _RANGE.match(header.strip())
    if match is None:  # several ranges or another unit: the whole body is a valid answer
        return None
    first, last = match.groups()
    if first == "" and last == "":
        return None
    return first, last


def _resolve(asked: tuple[str, str], size: int) -> tuple[int, int] | None:
    """The inclusive ``(start, end)`` of ``asked`` in a body of ``size`` bytes; None if it
    cannot be satisfied."""
    first, last = asked
    if first == "":  # the last N bytes
        start, end = max(0, size - int(last)), size - 1
    else:
        start = int(first)
        end = min(int(last), size - 1) if last else size - 1
    if start >= size or end < start:
        return None
    return start, end


def ranged_response(
    data: bytes, media_type: str, request: Request, headers: dict[str, str] | None = None
) -> Response:
    """``data`` as a 200, or the byte range the request asked for."""
    base = {"Accept-Ranges": "bytes", **(headers or {})}
    asked = _asked_range(request)
    if asked is None:
        return Response(data, media_type=media_type, headers=base)
    size = len(data)
    span = _resolve(asked, size)
    if span is None:
        return Response(status_code=416, headers={**base, "Content-Range": f"bytes */{size}"})
    start, end = span
    return Response(
        data[start : end + 1],
        status_code=206,
        media_type=media_type,
        headers={**base, "Content-Range": f"bytes {start}-{end}/{size}"},
    )


def object_response(
    store: ObjectStore,
    key: str,
    media_type: str,
    request: Request,
    headers: dict[str, str] | None = None,
) -> Response:
    """A stored object as a 200, or the byte range asked, reading only that range.

    Blocking (store reads): call it in a thread. With a Range, the object's size and then
    just the asked bytes are read (``read_range``: an encrypted object decrypts only the
    chunks that hold them), so seeking in a long clip never reads the whole of it.

    Raises:
        ObjectNotFound: If there is no object under ``key``.
    """
    base = {"Accept-Ranges": "bytes", **(headers or {})}
    asked = _asked_range(request)
    if asked is None:
        return Response(store.get(key), media_type=media_type, headers=base)
    size = store.size(key)
    span = _resolve(asked, size)
    if span is None:
        return Response(status_code=416, headers={**base, "Content-Range": f"bytes */{size}"})
    start, end = span
    return Response(
        read_range(store, key, start, end + 1),
        status_code=206,
        media_type=media_type,
        headers={**base, "Content-Range": f"bytes {start}-{end}/{size}"},
    )
