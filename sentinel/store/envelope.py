"""Media encrypted at rest: an AES-256-GCM envelope around any ``ObjectStore``.

Every object gets its own random 256-bit data key; the data key is stored in the object's
header wrapped (AES-256-GCM) by a master key. Rotating the master key rewraps the data keys
only: the header changes, the encrypted body stays byte for byte the same.

The body is encrypted in fixed-size chunks (64 KiB by default), each its own AES-256-GCM
message, so a byte range is read and checked without decrypting the whole object. The format,
version 1 (big-endian)::

    header (92 bytes)
      magic        7  b"\\x00SNTENC"
      version      1  1
      key id       8  which master key wrapped the data key (see ``key_id``)
      chunk size   4  plaintext bytes per chunk
      size         8  plaintext bytes of the object
      prefix       4  random per object: chunk nonces are prefix + chunk index (8 bytes)
      wrap nonce  12  nonce of the wrapped data key
      wrapped     48  the data key (32) + GCM tag (16), under the master key
    chunks: ceil(size / chunk size) of them (one empty chunk for an empty object), each the
      chunk's ciphertext + 16-byte tag

Each chunk's associated data is (version, chunk size, size, prefix, chunk index, last?), so a
chunk moved, dropped, duplicated or cut short, or a changed size, fails its tag. The wrapped
key's associated data adds the key id. Neither holds the object's key (name): a store may copy
or move objects between keys (tiering) without decrypting them; an object copied under another
name reads as that object, which someone with write access to the bucket could do anyway.

An object without the magic is read as plain bytes, so turning encryption on keeps older
objects readable; ``rotate_master_key`` can encrypt them in place.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import mimetypes
import os
import struct
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from sentinel.store.objects import ObjectNotFound, ObjectStore, read_range

log = logging.getLogger(__name__)

MAGIC = b"\x00SNTENC"
VERSION = 1
KEY_BYTES = 32
TAG_BYTES = 16
DEFAULT_CHUNK_SIZE = 64 * 1024
MAX_CHUNK_SIZE = 16 * 1024 * 1024
# magic, version, key id, chunk size, size, nonce prefix, wrap nonce, wrapped data key
_HEADER = struct.Struct(">7sB8sIQ4s12s48s")
HEADER_SIZE = _HEADER.size
_INVARIANT = struct.Struct(">BIQ4s")  # what chunk tags bind: version, chunk size, size, prefix
_CHUNK_AAD = struct.Struct(">QB")  # chunk index, last chunk?
_KEY_ID_LABEL = b"sentinel object master key id v1"


class ObjectEncryptionError(RuntimeError):
    """An encrypted object cannot be read: its master key is missing, or it was altered."""


class MasterKeyMissing(ObjectEncryptionError):  # noqa: N818 - reads as what went wrong
    """The object's data key was wrapped by a master key that is not configured."""


class ObjectIntegrityError(ObjectEncryptionError):
    """The object's header or body failed its authentication tag (altered or corrupt)."""


def key_id(master_key: bytes) -> bytes:
    """The 8-byte id of a master key: HMAC-SHA256(key, label), cut to 8 bytes.

    It names the key in object headers without revealing anything usable about it.
    """
    return hmac.new(master_key, _KEY_ID_LABEL, hashlib.sha256).digest()[:8]


class MasterKeys:
    """The master keys, newest first: the first wraps new data keys, all of them unwrap.

    Args:
        keys: 32-byte AES keys, newest first.

    Raises:
        ValueError: If there is no key, a key is not 32 bytes, or a key is given twice.
    """

    def __init__(self, keys: Sequence[bytes]) -> None:
        if not keys:
            raise ValueError("object encryption needs at least one master key")
        self._keys: dict[bytes, AESGCM] = {}
        for i, key in enumerate(keys):
            if not isinstance(key, bytes) or len(key) != KEY_BYTES:
                raise ValueError(f"master key #{i + 1} must be {KEY_BYTES} bytes")
            kid = key_id(key)
            if kid in self._keys:
                raise ValueError(f"master key #{i + 1} is given twice")
            self._keys[kid] = AESGCM(key)
        self._current = key_id(keys[0])

    def __repr__(self) -> str:
        ids = ", ".join(kid.hex() for kid in self._keys)
        return f"MasterKeys(<{len(self._keys)} keys hidden: {ids}>)"  # ids only, never keys

    @property
    def current_id(self) -> bytes:
        """The id of the key that wraps new data keys."""
        return self._current

    @property
    def ids(self) -> list[bytes]:
        """Every key's id, newest first."""
        return list(self._keys)

    def aead(self, kid: bytes, name: str) -> AESGCM:
        """The cipher of master key ``kid``; ``name`` (the object) is for the error only.

        Raises:
            MasterKeyMissing: If no configured key has that id.
        """
        try:
            return self._keys[kid]
        except KeyError:
            raise MasterKeyMissing(
                f"object {name!r} is encrypted with master key {kid.hex()}, which is not "
                f"configured (configured: {', '.join(k.hex() for k in self._keys)})"
            ) from None


@dataclass(frozen=True)
class Header:
    """The parsed header of an encrypted object (see the module docstring)."""

    key_id: bytes
    chunk_size: int
    size: int
    prefix: bytes
    wrap_nonce: bytes
    wrapped: bytes

    @property
    def chunks(self) -> int:
        """How many chunks the body holds (an empty object has one, empty)."""
        return max(1, -(-self.size // self.chunk_size))

    @property
    def stored_size(self) -> int:
        """The stored object's length: header, ciphertext and one tag per chunk."""
        return HEADER_SIZE + self.size + self.chunks * TAG_BYTES

    def invariant(self) -> bytes:
        """The fields every chunk's tag binds (not the key id or the wrapped key, which a
        rotation changes)."""
        return _INVARIANT.pack(VERSION, self.chunk_size, self.size, self.prefix)

    def pack(self) -> bytes:
        return _HEADER.pack(
            MAGIC,
            VERSION,
            self.key_id,
            self.chunk_size,
            self.size,
            self.prefix,
            self.wrap_nonce,
            self.wrapped,
        )

    def chunk_span(self, index: int) -> tuple[int, int]:
        """``[start, stop)`` of chunk ``index`` (ciphertext + tag) in the stored object."""
        start = HEADER_SIZE + index * (self.chunk_size + TAG_BYTES)
        plain = min(self.chunk_size, self.size - index * self.chunk_size)
        return start, start + plain + TAG_BYTES


def is_encrypted(head: bytes) -> bool:
    """Whether bytes that start an object start an encrypted one."""
    return head[: len(MAGIC)] == MAGIC


def parse_header(raw: bytes, name: str = "?") -> Header:
    """The header at the start of ``raw`` (an encrypted object or its first bytes).

    Raises:
        ObjectIntegrityError: If it is cut short, of an unknown version, or impossible.
    """
    if len(raw) < HEADER_SIZE or not is_encrypted(raw):
        raise ObjectIntegrityError(f"object {name!r} has a truncated encryption header")
    _magic, version, kid, chunk_size, size, prefix, wrap_nonce, wrapped = _HEADER.unpack_from(raw)
    if version != VERSION:
        raise ObjectIntegrityError(
            f"object {name!r} has encryption format version {version}; this Sentinel reads "
            f"version {VERSION}"
        )
    if not 0 < chunk_size <= MAX_CHUNK_SIZE:
        raise ObjectIntegrityError(f"object {name!r} has an impossible chunk size {chunk_size}")
    return Header(kid, chunk_size, size, prefix, wrap_nonce, wrapped)


def _chunk_nonce(header: Header, index: int) -> bytes:
    return header.prefix + index.to_bytes(8, "big")


def _chunk_aad(header: Header, index: int) -> bytes:
    return header.invariant() + _CHUNK_AAD.pack(index, index == header.chunks - 1)


def _wrap_aad(header: Header, kid: bytes) -> bytes:
    return b"wrap" + kid + header.invariant()


def _unwrap(header: Header, keys: MasterKeys, name: str) -> AESGCM:
    """The object's data-key cipher.

    Raises:
        MasterKeyMissing: If the header names a master key that is not configured.
        ObjectIntegrityError: If the wrapped key fails its tag.
    """
    master = keys.aead(header.key_id, name)
    try:
        data_key = master.decrypt(
            header.wrap_nonce, header.wrapped, _wrap_aad(header, header.key_id)
        )
    except InvalidTag:
        raise ObjectIntegrityError(
            f"object {name!r}: its data key fails its integrity check (altered header)"
        ) from None
    return AESGCM(data_key)


def _wrap(header: Header, data_key: bytes, keys: MasterKeys) -> Header:
    """``header`` with ``data_key`` wrapped under the current master key."""
    kid = keys.current_id
    nonce = os.urandom(12)
    blank = Header(kid, header.chunk_size, header.size, header.prefix, nonce, b"")
    wrapped = keys.aead(kid, "").encrypt(nonce, data_key, _wrap_aad(blank, kid))
    return Header(kid, header.chunk_size, header.size, header.prefix, nonce, wrapped)


def seal(data: bytes, keys: MasterKeys, chunk_size: int = DEFAULT_CHUNK_SIZE) -> bytes:
    """Encrypt ``data`` under a fresh data key wrapped by the current master key.

    Raises:
        ValueError: If ``chunk_size`` is out of range.
    """
    if not 0 < chunk_size <= MAX_CHUNK_SIZE:
        raise ValueError(f"chunk_size must be in 1..{MAX_CHUNK_SIZE}, got {chunk_size}")
    data_key = AESGCM.generate_key(bit_length=256)
    plain = Header(b"", chunk_size, len(data), os.urandom(4), b"", b"")
    header = _wrap(plain, data_key, keys)
    aead = AESGCM(data_key)
    view = memoryview(data)
    parts = [header.pack()]
    for index in range(header.chunks):
        chunk = view[index * chunk_size : (index + 1) * chunk_size]
        parts.append(aead.encrypt(_chunk_nonce(header, index), chunk, _chunk_aad(header, index)))
    return b"".join(parts)


def _decrypt_chunks(
    aead: AESGCM, header: Header, first: int, data: bytes | memoryview, name: str
) -> Iterator[bytes]:
    """Decrypt the consecutive chunks from ``first`` held in ``data``.

    Raises:
        ObjectIntegrityError: If a chunk is cut short or fails its tag.
    """
    body = memoryview(data)  # slices without copies
    offset = 0
    index = first
    while offset < len(body) or index == first:
        start, stop = header.chunk_span(index)
        length = stop - start
        sealed = body[offset : offset + length]
        if len(sealed) != length:
            raise ObjectIntegrityError(f"object {name!r} is truncated (chunk {index})")
        try:
            yield aead.decrypt(_chunk_nonce(header, index), sealed, _chunk_aad(header, index))
        except InvalidTag:
            raise ObjectIntegrityError(
                f"object {name!r}: chunk {index} fails its integrity check (altered, moved "
                "or wrong key)"
            ) from None
        offset += length
        index += 1


def open_sealed(raw: bytes, keys: MasterKeys, name: str = "?") -> bytes:
    """The plaintext of a whole object: ``raw`` itself when it is not encrypted.

    Raises:
        MasterKeyMissing: If its master key is not configured.
        ObjectIntegrityError: If it was altered, cut short or extended.
    """
    if not is_encrypted(raw):
        return raw
    header = parse_header(raw, name)
    if len(raw) != header.stored_size:
        raise ObjectIntegrityError(
            f"object {name!r} holds {len(raw)} bytes where its header says "
            f"{header.stored_size} (truncated or extended)"
        )
    aead = _unwrap(header, keys, name)
    return b"".join(_decrypt_chunks(aead, header, 0, memoryview(raw)[HEADER_SIZE:], name))


def rewrap(raw_header: bytes, keys: MasterKeys, name: str = "?") -> bytes:
    """A header whose data key is rewrapped under the current master key.

    Args:
        raw_header: The object's first ``HEADER_SIZE`` bytes (or more; the rest is ignored).
        keys: Holds the object's master key and the current one.
        name: The object's key, for errors.

    Raises:
        MasterKeyMissing: If the object's master key is not configured.
        ObjectIntegrityError: If the header is malformed or its wrapped key fails its tag.
    """
    header = parse_header(raw_header, name)
    master = keys.aead(header.key_id, name)
    try:
        data_key = master.decrypt(
            header.wrap_nonce, header.wrapped, _wrap_aad(header, header.key_id)
        )
    except InvalidTag:
        raise ObjectIntegrityError(
            f"object {name!r}: its data key fails its integrity check (altered header)"
        ) from None
    return _wrap(header, data_key, keys).pack()


class EncryptedObjectStore:
    """An ``ObjectStore`` that encrypts what it puts into ``inner`` and decrypts what it reads.

    ``get``, ``get_range`` and ``size`` speak plaintext; ``iter_keys`` reports the stored
    sizes (what the objects take in the store: 92 bytes more per object and 16 bytes more per
    chunk, 0.02 % for 64 KiB chunks), since reading every header to list a prefix would cost a
    request per object. Objects without the header (written before encryption was on) read as
    they are.

    Args:
        inner: The store holding the encrypted objects.
        keys: The master keys (the first wraps new data keys).
        chunk_size: Plaintext bytes per encrypted chunk of new objects.
    """

    def __init__(
        self, inner: ObjectStore, keys: MasterKeys, *, chunk_size: int = DEFAULT_CHUNK_SIZE
    ) -> None:
        if not 0 < chunk_size <= MAX_CHUNK_SIZE:
            raise ValueError(f"chunk_size must be in 1..{MAX_CHUNK_SIZE}, got {chunk_size}")
        self._inner = inner
        self._keys = keys
        self._chunk_size = chunk_size

    def __repr__(self) -> str:
        return f"EncryptedObjectStore({self._inner!r}, {self._keys!r})"

    @property
    def inner(self) -> ObjectStore:
        """The store that holds the encrypted bytes."""
        return self._inner

    @property
    def keys(self) -> MasterKeys:
        """The master keys."""
        return self._keys

    def put(self, key: str, data: bytes, content_type: str = "application/octet-stream") -> None:
        """Encrypt ``data`` and store it under ``key``."""
        self._inner.put(key, seal(bytes(data), self._keys, self._chunk_size), content_type)

    def get(self, key: str) -> bytes:
        """The plaintext of the object under ``key``.

        Raises:
            ObjectNotFound: If there is none.
            MasterKeyMissing: If its master key is not configured.
            ObjectIntegrityError: If it was altered or cut short.
        """
        return open_sealed(self._inner.get(key), self._keys, key)

    def delete(self, key: str) -> None:
        """Delete the object under ``key``; a missing key is not an error."""
        self._inner.delete(key)

    def exists(self, key: str) -> bool:
        """Whether an object is stored under ``key``."""
        return self._inner.exists(key)

    def size(self, key: str) -> int:
        """The plaintext size of the object under ``key`` (one header read).

        The size is authenticated: the wrapped data key's tag covers it, so a header edited
        to claim another size fails here rather than answering a wrong ``Content-Range``.

        Raises:
            ObjectNotFound: If there is none.
            MasterKeyMissing: If its master key is not configured.
            ObjectIntegrityError: If its header is malformed or altered.
        """
        head = read_range(self._inner, key, 0, HEADER_SIZE)
        if not is_encrypted(head):
            return self._inner.size(key)
        header = parse_header(head, key)
        _unwrap(header, self._keys, key)
        return header.size

    def iter_keys(self, prefix: str = "") -> Iterator[tuple[str, int]]:
        """Yield ``(key, stored size)`` of the objects under ``prefix`` (see the class doc)."""
        return self._inner.iter_keys(prefix)

    def get_range(self, key: str, start: int, stop: int) -> bytes:
        """Plaintext bytes ``[start, stop)`` of the object, decrypting only their chunks.

        Two reads of the inner store: the header, then the chunks that hold the range. The
        result is cut at the object's end (``b""`` past it).

        Raises:
            ValueError: If ``start < 0`` or ``stop < start``.
            ObjectNotFound: If there is no object.
            MasterKeyMissing: If its master key is not configured.
            ObjectIntegrityError: If the chunks read were altered or cut short.
        """
        if start < 0 or stop < start:
            raise ValueError(f"bad range [{start}, {stop})")
        head = read_range(self._inner, key, 0, HEADER_SIZE)
        if not is_encrypted(head):
            if stop <= len(head):
                return head[start:stop]
            return read_range(self._inner, key, start, stop)
        header = parse_header(head, key)
        stop = min(stop, header.size)
        if start >= stop:
            return b""
        first, last = start // header.chunk_size, (stop - 1) // header.chunk_size
        body_start = header.chunk_span(first)[0]
        body_stop = header.chunk_span(last)[1]
        body = read_range(self._inner, key, body_start, body_stop)
        aead = _unwrap(header, self._keys, key)
        plain = b"".join(_decrypt_chunks(aead, header, first, body, key))
        offset = first * header.chunk_size
        return plain[start - offset : stop - offset]


@dataclass(frozen=True)
class RotationReport:
    """What ``rotate_master_key`` did.

    Attributes:
        rewrapped: Objects whose data key is now wrapped by the current master key.
        current: Objects that already were (a rerun after an interruption skips them).
        encrypted: Plain objects encrypted (with ``encrypt_plain``).
        plain: Plain objects left as they are.
        failed: ``(key, reason)`` of objects that could not be rewrapped (missing master key,
            altered header); they are left untouched.
        vanished: Objects deleted while the rotation ran.
    """

    rewrapped: int
    current: int
    encrypted: int
    plain: int
    failed: list[tuple[str, str]]
    vanished: int

    @property
    def ok(self) -> bool:
        """Whether every object's data key is now wrapped by the current key (or plain)."""
        return not self.failed


def rotate_master_key(
    store: EncryptedObjectStore, prefix: str = "", *, encrypt_plain: bool = False
) -> RotationReport:
    """Rewrap every object's data key under the store's current master key.

    Only headers change: each object is read, its header rewrapped, and the same encrypted
    body written back with the new header (one ``put``, atomic per object in both stores).
    Objects already under the current key are skipped, so a rerun resumes an interrupted
    rotation and a second run changes nothing. With ``encrypt_plain``, objects written before
    encryption was on are encrypted too.

    Args:
        store: The encrypted store; its master keys must hold the old keys and, first, the new.
        prefix: Only objects under this key prefix.
        encrypt_plain: Also encrypt plain objects.

    Returns:
        The counts.
    """
    inner, keys = store.inner, store.keys
    rewrapped = current = encrypted = plain = vanished = 0
    failed: list[tuple[str, str]] = []
    for key, _size in inner.iter_keys(prefix):
        content_type = mimetypes.guess_type(key)[0] or "application/octet-stream"
        try:
            head = read_range(inner, key, 0, HEADER_SIZE)  # cheap: skips done objects
            if is_encrypted(head) and parse_header(head, key).key_id == keys.current_id:
                current += 1
                continue
            if not is_encrypted(head) and not encrypt_plain:
                plain += 1
                continue
            raw = inner.get(key)  # checked again: it may have been rewritten meanwhile
            if not is_encrypted(raw):
                if encrypt_plain:
                    store.put(key, raw, content_type)  # never seals sealed bytes twice
                    encrypted += 1
                else:
                    plain += 1
                continue
            header = parse_header(raw, key)
            if header.key_id == keys.current_id:
                current += 1
                continue
            if len(raw) != header.stored_size:
                raise ObjectIntegrityError(f"object {key!r} is truncated or extended")
            inner.put(key, rewrap(raw, keys, key) + raw[HEADER_SIZE:], content_type)
            rewrapped += 1
        except ObjectNotFound:
            vanished += 1
        except ObjectEncryptionError as exc:
            log.warning("cannot rewrap object %s: %s", key, exc)
            failed.append((key, str(exc)))
    return RotationReport(rewrapped, current, encrypted, plain, failed, vanished)
