"""In-memory media responses with HTTP Range support (snapshots, latest frames).

Files on disk (clips, segments, exports) use starlette's ``FileResponse``, which handles Range
itself; this does the same for bytes already in memory: one range gets 206, an unsatisfiable
one 416, several ranges the whole body (RFC 9110 lets a server ignore Range).
"""

from __future__ import annotations

import re

from fastapi import Request, Response

_RANGE = re.compile(r"^bytes=(\d*)-(\d*)$")


def ranged_response(
    data: bytes, media_type: str, request: Request, headers: dict[str, str] | None = None
) -> Response:
    """``data`` as a 200, or the byte range the request asked for."""
    base = {"Accept-Ranges": "bytes", **(headers or {})}
    header = request.headers.get("range")
    if not header:
        return Response(data, media_type=media_type, headers=base)
    match = _RANGE.match(header.strip())
    if match is None:  # several ranges or another unit: the whole body is a valid answer
        return Response(data, media_type=media_type, headers=base)
    first, last = match.groups()
    size = len(data)
    if first == "" and last == "":
        return Response(data, media_type=media_type, headers=base)
    if first == "":  # the last N bytes
        start, end = max(0, size - int(last)), size - 1
    else:
        start = int(first)
        end = min(int(last), size - 1) if last else size - 1
    if start >= size or end < start:
        return Response(status_code=416, headers={**base, "Content-Range": f"bytes */{size}"})
    return Response(
        data[start : end + 1],
        status_code=206,
        media_type=media_type,
        headers={**base, "Content-Range": f"bytes {start}-{end}/{size}"},
    )
