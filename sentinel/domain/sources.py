"""Camera source strings: what kind a source is, which ones FFmpeg may see, and how to show one
without its secrets. Pure string logic, shared by the config, the store and the video layer."""

from __future__ import annotations

import urllib.parse
from enum import StrEnum

_ACCEPTED = "a filesystem path (no scheme), rtsp:// or rtsps:// URL, or http:// or https:// URL"
_SECRET_PARAMS = {"password", "passwd", "pwd", "pass", "token", "access_token", "key", "secret"}


class SourceKind(StrEnum):
    """Where frames come from."""

    FILE = "file"
    RTSP = "rtsp"
    HTTP = "http"


_SCHEMES = {name: SourceKind(name.removesuffix("s")) for name in ("rtsp", "rtsps", "http", "https")}


def classify_source(source: str) -> SourceKind:
    """Says what kind of source a string names, refusing anything FFmpeg should not see.

    Args:
        source: A path with no ``scheme:`` prefix (``./a:b.mp4`` for a name with a colon) or
            an ``rtsp``, ``rtsps``, ``http`` or ``https`` URL with a host.

    Raises:
        ValueError: anything else (``file:``, ``concat:``, ``pipe:``, control characters,
            surrounding whitespace, a malformed URL...), naming the accepted forms.
    """

    def refuse(why: str) -> ValueError:
        shown = redact_source(source)[:80]
        return ValueError(f"video source {shown!r} {why}; expected {_ACCEPTED}")

    if not source:
        raise refuse("is empty")
    if len(source) > 4096:
        raise ValueError(f"video source is longer than 4096 characters; expected {_ACCEPTED}")
    if any(ord(c) < 32 or 127 <= ord(c) < 160 for c in source):
        raise refuse("contains control characters")
    if source != source.strip():
        raise refuse("has leading or trailing whitespace")
    head, sep, _ = source.partition(":")
    if not sep or "/" in head:
        return SourceKind.FILE  # "clips/a:b.mp4": this colon cannot start an FFmpeg protocol
    kind = _SCHEMES.get(head.lower())
    if kind is None:
        raise refuse(f"uses scheme {head[:20] + ':'!r}, which is not allowed")
    try:
        parts = urllib.parse.urlsplit(source)
        _ = parts.port  # raises on a malformed port
    except ValueError as exc:
        raise refuse(f"is not a valid URL ({exc})") from exc
    if not parts.hostname or not source[len(head) :].startswith("://"):
        raise refuse("has no host")
    if " " in source or "\\" in source:
        raise refuse("contains a space or backslash")
    return kind


def redact_source(source: str) -> str:
    """Returns ``source`` with the URL password and secret query values (``pwd``, ``token``...,
    which some cameras take) replaced by ``***``, for status and logs."""
    try:
        parts = urllib.parse.urlsplit(source)
    except ValueError:
        scheme, sep, rest = source.partition("://")
        return f"{scheme}://***@{rest.rpartition('@')[2]}" if sep and "@" in rest else source
    if not parts.scheme or not parts.netloc:
        return source
    if parts.password is not None:
        parts = parts._replace(netloc=f"{parts.username}:***@{parts.netloc.rpartition('@')[2]}")
    pairs = urllib.parse.parse_qsl(parts.query, keep_blank_values=True)
    if any(k.lower() in _SECRET_PARAMS for k, _ in pairs):
        pairs = [(k, "***" if k.lower() in _SECRET_PARAMS else v) for k, v in pairs]
        parts = parts._replace(query=urllib.parse.urlencode(pairs, safe="*"))
    return urllib.parse.urlunsplit(parts)
