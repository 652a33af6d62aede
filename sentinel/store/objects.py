"""Object storage for recordings, snapshots and datasets.

``ObjectStore`` is the interface the rest of Sentinel codes against; ``LocalObjectStore`` is the
embedded default, a folder on the local disk. Keys are relative POSIX paths such as
``snapshots/front_door/<event id>.jpg``; they are validated strictly so that no key can escape
the store's root.
"""

from __future__ import annotations

import os
import re
import tempfile
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Protocol, runtime_checkable

# One key segment: letters, digits, dot, underscore, dash. "/" separates segments.
_SEGMENT = re.compile(r"[A-Za-z0-9._-]+")
# The temporary files of ``LocalObjectStore.put``: ".<name>.<mkstemp random>.<8 hex>.tmp".
_TEMP_FILE = re.compile(r"\..+\.[0-9a-f]{8}\.tmp")
MAX_KEY_LENGTH = 1024


class ObjectNotFound(KeyError):  # noqa: N818 - mirrors KeyError, the name callers expect
    """Raised when a key names no object in the store."""


@runtime_checkable
class ObjectStore(Protocol):
    """A flat key -> bytes store (local folder, S3, ...)."""

    def put(self, key: str, data: bytes, content_type: str = "application/octet-stream") -> None:
        """Store ``data`` under ``key``, replacing any previous object atomically."""
        ...

    def get(self, key: str) -> bytes:
        """Return the object's bytes; raise ``ObjectNotFound`` when there is none."""
        ...

    def delete(self, key: str) -> None:
        """Delete the object; deleting a missing key is not an error."""
        ...

    def exists(self, key: str) -> bool:
        """Whether an object is stored under ``key``."""
        ...

    def size(self, key: str) -> int:
        """The object's size in bytes; raise ``ObjectNotFound`` when there is none."""
        ...

    def iter_keys(self, prefix: str = "") -> Iterator[tuple[str, int]]:
        """Yield ``(key, size)`` of every object whose key starts with ``prefix``, in key order."""
        ...


@runtime_checkable
class RangedObjectStore(ObjectStore, Protocol):
    """An ``ObjectStore`` that reads part of an object without reading all of it."""

    def get_range(self, key: str, start: int, stop: int) -> bytes:
        """Bytes ``[start, stop)`` of the object, cut at its end (``b""`` past it).

        Raises:
            ValueError: If ``start < 0`` or ``stop < start``.
            ObjectNotFound: If there is no object under ``key``.
        """
        ...


def read_range(store: ObjectStore, key: str, start: int, stop: int) -> bytes:
    """Bytes ``[start, stop)`` of an object (cut at its end), from any store.

    A store with ``get_range`` reads only that part; any other store reads the whole object
    and slices it, so wrappers compose with stores that do not know ranges.

    Raises:
        ValueError: If ``start < 0`` or ``stop < start``.
        ObjectNotFound: If there is no object under ``key``.
    """
    if start < 0 or stop < start:
        raise ValueError(f"bad range [{start}, {stop})")
    if isinstance(store, RangedObjectStore):
        return store.get_range(key, start, stop)
    return store.get(key)[start:stop]


def unwrapped(store: ObjectStore) -> ObjectStore:
    """The store under any wrapper (``EncryptedObjectStore``, ...): wrappers expose the store
    they wrap as ``inner``. Use it to ask what kind of storage holds the objects (a local
    folder's free space, an S3 bucket to create), never to read or write them."""
    while True:
        inner = getattr(store, "inner", None)
        if not isinstance(inner, ObjectStore):
            return store
        store = inner


def validate_key(key: str) -> str:
    """Check that ``key`` is a safe relative object key and return it unchanged.

    Args:
        key: A relative POSIX path whose segments are made of ``[A-Za-z0-9._-]``.

    Returns:
        The key itself.

    Raises:
        ValueError: If the key is empty, too long, absolute, has an empty segment (``a//b``,
            a trailing ``/``), a ``.`` or ``..`` segment, or a character outside the set.
    """
    if not isinstance(key, str) or not key:
        raise ValueError(f"object key must be a non-empty string, but got {key!r}")
    if len(key) > MAX_KEY_LENGTH:
        raise ValueError(f"object key must be at most {MAX_KEY_LENGTH} characters, got {len(key)}")
    if key.startswith("/"):
        raise ValueError(f"object key must be relative, but got absolute {key!r}")
    for segment in key.split("/"):
        if not segment:
            raise ValueError(f"object key must not have empty segments, but got {key!r}")
        if segment in (".", ".."):
            raise ValueError(f"object key must not contain '.' or '..' segments: {key!r}")
        if not _SEGMENT.fullmatch(segment):
            raise ValueError(
                f"object key segments must match [A-Za-z0-9._-]+, but got {segment!r} in {key!r}"
            )
    return key


def validate_prefix(prefix: str) -> str:
    """Check a key prefix for ``iter_keys`` and return it unchanged.

    A prefix is a plain string prefix of keys (``"snapshots/"``, ``"snapshots/front"``, or ``""``
    for every key), not necessarily whole segments, so only its outline is checked.

    Args:
        prefix: The prefix.

    Returns:
        The prefix itself.

    Raises:
        ValueError: If the prefix is not a string, is too long, or is absolute.
    """
    if not isinstance(prefix, str):
        raise ValueError(f"key prefix must be a string, but got {prefix!r}")
    if len(prefix) > MAX_KEY_LENGTH:
        raise ValueError(f"key prefix must be at most {MAX_KEY_LENGTH} characters")
    if prefix.startswith("/"):
        raise ValueError(f"key prefix must be relative, but got absolute {prefix!r}")
    return prefix


def snapshot_key(camera_id: str, event_id: str) -> str:
    """The object key of an event's best-frame snapshot.

    Args:
        camera_id: The camera's id (one key segment).
        event_id: The event's id (one key segment, a uuid string).

    Returns:
        ``"snapshots/<camera_id>/<event_id>.jpg"``.

    Raises:
        ValueError: If either id is not a valid single key segment.
    """
    for name, value in (("camera_id", camera_id), ("event_id", event_id)):
        if value in (".", "..") or not _SEGMENT.fullmatch(value):
            raise ValueError(f"{name} must match [A-Za-z0-9._-]+, but got {value!r}")
    return f"snapshots/{camera_id}/{event_id}.jpg"


class LocalObjectStore:
    """An ``ObjectStore`` over a local folder, the embedded default.

    Writes are atomic: data goes to a temporary file in the destination folder, is fsynced, then
    renamed over the target with ``os.replace``, so a reader sees either the old object or the
    new one, never a torn write, even if the process dies mid-write. The local store keeps no
    metadata, so ``content_type`` is accepted for interface compatibility and not recorded
    (callers infer it from the key's extension when serving).

    Args:
        root: The folder holding the objects; created if missing.
    """

    def __init__(self, root: Path) -> None:
        self._root = Path(root).expanduser().resolve()
        self._root.mkdir(parents=True, exist_ok=True)

    @property
    def root(self) -> Path:
        """The absolute folder holding the objects."""
        return self._root

    def path(self, key: str) -> Path:
        """The local file path of ``key`` (validated; the file may not exist)."""
        return self._root.joinpath(*validate_key(key).split("/"))

    def put(self, key: str, data: bytes, content_type: str = "application/octet-stream") -> None:
        """Store ``data`` under ``key`` atomically (temp file + fsync + ``os.replace``).

        Args:
            key: The object key.
            data: The object's bytes.
            content_type: Ignored by the local store (see the class docstring).

        Raises:
            ValueError: If the key is invalid or names an existing folder.
        """
        target = self.path(key)
        if target.is_dir():
            raise ValueError(f"object key {key!r} names a folder of other objects")
        target.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp_name = tempfile.mkstemp(
            prefix=f".{target.name}.", suffix=f".{uuid.uuid4().hex[:8]}.tmp", dir=target.parent
        )
        try:
            with os.fdopen(fd, "wb") as tmp:
                tmp.write(data)
                tmp.flush()
                os.fsync(tmp.fileno())
            os.replace(tmp_name, target)
        except BaseException:
            Path(tmp_name).unlink(missing_ok=True)
            raise
        _fsync_dir(target.parent)

    def get(self, key: str) -> bytes:
        """Return the bytes stored under ``key``.

        Raises:
            ObjectNotFound: If no object is stored under ``key``.
            ValueError: If the key is invalid.
        """
        target = self.path(key)
        try:
            return target.read_bytes()
        except (FileNotFoundError, IsADirectoryError, NotADirectoryError):
            raise ObjectNotFound(key) from None

    def get_range(self, key: str, start: int, stop: int) -> bytes:
        """Bytes ``[start, stop)`` of the object under ``key``, cut at its end.

        Raises:
            ObjectNotFound: If no object is stored under ``key``.
            ValueError: If the key is invalid, ``start < 0`` or ``stop < start``.
        """
        if start < 0 or stop < start:
            raise ValueError(f"bad range [{start}, {stop})")
        target = self.path(key)
        try:
            with target.open("rb") as f:
                f.seek(start)
                return f.read(stop - start)
        except (FileNotFoundError, IsADirectoryError, NotADirectoryError):
            raise ObjectNotFound(key) from None

    def delete(self, key: str) -> None:
        """Delete the object under ``key``; a missing key is not an error.

        Raises:
            ValueError: If the key is invalid.
        """
        target = self.path(key)
        if target.is_dir():
            return
        try:
            target.unlink()
        except (FileNotFoundError, NotADirectoryError):
            return

    def exists(self, key: str) -> bool:
        """Whether an object is stored under ``key``.

        Raises:
            ValueError: If the key is invalid.
        """
        return self.path(key).is_file()

    def size(self, key: str) -> int:
        """The size in bytes of the object under ``key``.

        Raises:
            ObjectNotFound: If no object is stored under ``key``.
            ValueError: If the key is invalid.
        """
        target = self.path(key)
        if not target.is_file():
            raise ObjectNotFound(key)
        return target.stat().st_size

    def iter_keys(self, prefix: str = "") -> Iterator[tuple[str, int]]:
        """Yield ``(key, size)`` of the objects whose keys start with ``prefix``.

        Keys come in lexicographic order (as S3 lists them). Only the folders that can hold
        matching keys are walked; temporary files of in-flight ``put`` calls, symlinks and names
        that are not valid key segments are skipped. Objects written or deleted during the walk
        may or may not be seen.

        Args:
            prefix: A plain string prefix of the keys (``""``: every object).

        Returns:
            An iterator of ``(key, size in bytes)`` pairs.

        Raises:
            ValueError: If the prefix is invalid (see ``validate_prefix``), at once.
        """
        return self._walk(self._root, "", validate_prefix(prefix))

    def _walk(self, folder: Path, rel: str, prefix: str) -> Iterator[tuple[str, int]]:
        """Yield the matching objects under ``folder``, whose keys start with ``rel``."""
        try:
            with os.scandir(folder) as it:
                entries = [(e, e.is_dir(follow_symlinks=False)) for e in it]
        except (FileNotFoundError, NotADirectoryError):
            return  # removed while walking
        # A folder "d" sorts as "d/": its keys all start with it, so the walk is in key order.
        entries.sort(key=lambda item: item[0].name + "/" if item[1] else item[0].name)
        for entry, is_dir in entries:
            name = entry.name
            if not _SEGMENT.fullmatch(name):
                continue
            key = rel + name
            if is_dir:
                sub = key + "/"
                if sub.startswith(prefix) or prefix.startswith(sub):
                    yield from self._walk(Path(entry.path), sub, prefix)
            elif key.startswith(prefix) and not _TEMP_FILE.fullmatch(name):
                try:
                    if not entry.is_file(follow_symlinks=False):
                        continue
                    size = entry.stat(follow_symlinks=False).st_size
                except FileNotFoundError:
                    continue  # deleted while walking
                yield key, size


def _fsync_dir(folder: Path) -> None:
    """Persist a rename in ``folder`` (POSIX); a no-op where folders cannot be opened."""
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)
