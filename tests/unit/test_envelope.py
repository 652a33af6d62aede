"""The object envelope's format: round trips, chunked ranges, tampering, keys and rotation."""

from __future__ import annotations

import base64
import os
import stat
from pathlib import Path
from typing import Any

import pytest
from pydantic import ValidationError

from sentinel.actors.retention import free_bytes_of
from sentinel.config import Settings
from sentinel.store.envelope import (
    HEADER_SIZE,
    TAG_BYTES,
    EncryptedObjectStore,
    MasterKeyMissing,
    MasterKeys,
    ObjectIntegrityError,
    is_encrypted,
    key_id,
    open_sealed,
    parse_header,
    rotate_master_key,
    seal,
)
from sentinel.store.object_keys import (
    KeyFileError,
    add_key,
    load_or_create_key_file,
    master_keys,
    read_key_file,
    retire_keys,
)
from sentinel.store.objects import (
    LocalObjectStore,
    ObjectNotFound,
    ObjectStore,
    read_range,
    unwrapped,
)

CHUNK = 4096
KEY = "recordings/gate/2026-12-07/seg.mp4"


@pytest.fixture
def keys() -> MasterKeys:
    return MasterKeys([os.urandom(32)])


@pytest.fixture
def inner(tmp_path: Path) -> LocalObjectStore:
    return LocalObjectStore(tmp_path / "objects")


@pytest.fixture
def store(inner: LocalObjectStore, keys: MasterKeys) -> EncryptedObjectStore:
    return EncryptedObjectStore(inner, keys, chunk_size=CHUNK)


@pytest.mark.parametrize(
    "size",
    [0, 1, CHUNK - 1, CHUNK, CHUNK + 1, 2 * CHUNK, 3 * CHUNK + 17, 100_000],
)
def test_round_trip_and_stored_size(keys: MasterKeys, size: int) -> None:
    data = os.urandom(size)
    sealed = seal(data, keys, CHUNK)
    chunks = max(1, -(-size // CHUNK))
    assert len(sealed) == HEADER_SIZE + size + chunks * TAG_BYTES
    assert is_encrypted(sealed)
    assert parse_header(sealed).size == size
    assert open_sealed(sealed, keys) == data
    if size >= 16:
        assert data[:16] not in sealed  # the plaintext is not in the stored bytes


def test_same_plaintext_seals_differently(keys: MasterKeys) -> None:
    data = b"x" * 10_000
    assert seal(data, keys, CHUNK)[HEADER_SIZE:] != seal(data, keys, CHUNK)[HEADER_SIZE:]


def test_store_reads_plaintext_and_writes_ciphertext(
    store: EncryptedObjectStore, inner: LocalObjectStore
) -> None:
    assert isinstance(store, ObjectStore)
    data = b"\xff\xd8" + os.urandom(3 * CHUNK + 100)
    store.put(KEY, data, "video/mp4")
    raw = inner.get(KEY)
    assert raw != data and data[:64] not in raw
    assert store.get(KEY) == data
    assert store.size(KEY) == len(data)
    assert store.exists(KEY)
    assert list(store.iter_keys("recordings/")) == [(KEY, len(raw))]  # stored bytes
    store.delete(KEY)
    assert not store.exists(KEY)
    for call in (store.get, store.size):
        with pytest.raises(ObjectNotFound):
            call(KEY)
    with pytest.raises(ObjectNotFound):
        store.get_range(KEY, 0, 10)


@pytest.mark.parametrize(
    ("start", "stop"),
    [
        (0, 1),
        (0, CHUNK),  # exactly the first chunk
        (CHUNK - 1, CHUNK + 1),  # across a boundary
        (CHUNK, 2 * CHUNK),  # exactly the second chunk
        (10, 3 * CHUNK + 5),  # across three boundaries
        (3 * CHUNK, 3 * CHUNK + 100),  # the short last chunk
        (3 * CHUNK + 99, 3 * CHUNK + 100),  # the last byte
        (5, 10**9),  # past the end: cut
        (3 * CHUNK + 100, 3 * CHUNK + 200),  # starting at the end: empty
        (10**9, 10**9 + 5),
        (7, 7),
    ],
)
def test_ranges_across_chunks(store: EncryptedObjectStore, start: int, stop: int) -> None:
    data = os.urandom(3 * CHUNK + 100)
    store.put(KEY, data)
    assert store.get_range(KEY, start, stop) == data[start:stop]
    assert read_range(store, KEY, start, stop) == data[start:stop]


def test_range_reads_only_the_chunks_asked(
    inner: LocalObjectStore, keys: MasterKeys, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = EncryptedObjectStore(inner, keys, chunk_size=CHUNK)
    store.put(KEY, os.urandom(50 * CHUNK))
    reads: list[tuple[int, int]] = []
    real = inner.get_range

    def spy(key: str, start: int, stop: int) -> bytes:
        reads.append((start, stop))
        return real(key, start, stop)

    monkeypatch.setattr(inner, "get_range", spy)
    monkeypatch.setattr(inner, "get", lambda key: pytest.fail("read the whole object"))
    store.get_range(KEY, 20 * CHUNK + 5, 21 * CHUNK + 5)
    assert reads[0] == (0, HEADER_SIZE)
    assert sum(b - a for a, b in reads[1:]) == 2 * (CHUNK + TAG_BYTES)


def test_bad_ranges_are_refused(store: EncryptedObjectStore) -> None:
    store.put(KEY, b"abc")
    for start, stop in ((-1, 2), (3, 2)):
        with pytest.raises(ValueError, match="bad range"):
            store.get_range(KEY, start, stop)


def test_plain_objects_stay_readable(store: EncryptedObjectStore, inner: LocalObjectStore) -> None:
    old = os.urandom(10_000)
    inner.put("snapshots/gate/old.jpg", old)
    inner.put("tiny.txt", b"hi")
    assert store.get("snapshots/gate/old.jpg") == old
    assert store.size("snapshots/gate/old.jpg") == 10_000
    assert store.get_range("snapshots/gate/old.jpg", 50, 9000) == old[50:9000]
    assert store.get_range("tiny.txt", 0, 100) == b"hi"
    assert store.size("tiny.txt") == 2


def _flip(raw: bytes, at: int) -> bytes:
    return raw[:at] + bytes([raw[at] ^ 1]) + raw[at + 1 :]


@pytest.mark.parametrize(
    "where",
    ["first chunk", "last chunk", "tag", "size field", "prefix", "wrapped key", "chunk size"],
)
def test_tampering_is_an_integrity_error(
    store: EncryptedObjectStore, inner: LocalObjectStore, where: str
) -> None:
    data = os.urandom(3 * CHUNK + 100)
    store.put(KEY, data)
    raw = inner.get(KEY)
    at = {
        "first chunk": HEADER_SIZE + 10,
        "last chunk": len(raw) - TAG_BYTES - 5,
        "tag": len(raw) - 1,
        "size field": 20 + 7,  # low byte of the plaintext size
        "prefix": 28,
        "wrapped key": HEADER_SIZE - 1,
        "chunk size": 16 + 3,
    }[where]
    inner.put(KEY, _flip(raw, at))
    with pytest.raises(ObjectIntegrityError):
        store.get(KEY)
    if where != "last chunk" and where != "tag":
        with pytest.raises(ObjectIntegrityError):
            store.get_range(KEY, 0, 10)
    if at < HEADER_SIZE:
        with pytest.raises(ObjectIntegrityError):
            store.size(KEY)  # the header is authenticated, its size included


def test_reordered_dropped_or_truncated_chunks_fail(
    store: EncryptedObjectStore, inner: LocalObjectStore
) -> None:
    data = os.urandom(3 * CHUNK)
    store.put(KEY, data)
    raw = inner.get(KEY)
    step = CHUNK + TAG_BYTES
    head, c0, c1, c2 = (
        raw[:HEADER_SIZE],
        raw[HEADER_SIZE : HEADER_SIZE + step],
        raw[HEADER_SIZE + step : HEADER_SIZE + 2 * step],
        raw[HEADER_SIZE + 2 * step :],
    )
    assert c0 + c1 + c2 == raw[HEADER_SIZE:]
    for altered in (head + c1 + c0 + c2, head + c0 + c2 + c1, head + c0 + c0 + c2):
        inner.put(KEY, altered)  # same length, chunks swapped or duplicated
        with pytest.raises(ObjectIntegrityError, match="integrity"):
            store.get(KEY)
    inner.put(KEY, head + c0 + c2 + c1)
    with pytest.raises(ObjectIntegrityError):
        store.get_range(KEY, CHUNK + 5, CHUNK + 10)  # a ranged read checks its chunks too
    for short in (head + c0 + c1, raw[:-1], raw + b"\x00", raw[: HEADER_SIZE - 1]):
        inner.put(KEY, short)
        with pytest.raises(ObjectIntegrityError):
            store.get(KEY)


def test_wrong_or_missing_master_key_is_a_clear_error(
    store: EncryptedObjectStore, inner: LocalObjectStore
) -> None:
    store.put(KEY, b"secret footage" * 1000)
    other = EncryptedObjectStore(inner, MasterKeys([os.urandom(32)]), chunk_size=CHUNK)
    with pytest.raises(MasterKeyMissing, match="not configured"):
        other.get(KEY)
    with pytest.raises(MasterKeyMissing):
        other.get_range(KEY, 0, 5)


def test_key_id_collision_still_fails_closed(inner: LocalObjectStore, keys: MasterKeys) -> None:
    store = EncryptedObjectStore(inner, keys, chunk_size=CHUNK)
    store.put(KEY, b"x" * 100)
    impostor = MasterKeys([os.urandom(32)])
    impostor._keys = {keys.current_id: next(iter(impostor._keys.values()))}  # same id, other key
    with pytest.raises(ObjectIntegrityError, match="data key"):
        EncryptedObjectStore(inner, impostor).get(KEY)


def test_master_keys_validation_and_repr() -> None:
    key = os.urandom(32)
    ring = MasterKeys([key])
    assert ring.current_id == key_id(key) and len(ring.current_id) == 8
    assert base64.b64encode(key).decode() not in repr(ring) and key.hex() not in repr(ring)
    with pytest.raises(ValueError, match="at least one"):
        MasterKeys([])
    with pytest.raises(ValueError, match="32 bytes"):
        MasterKeys([b"short"])
    with pytest.raises(ValueError, match="twice"):
        MasterKeys([key, key])


def test_rotation_rewraps_headers_only_and_is_idempotent(inner: LocalObjectStore) -> None:
    old_key, new_key = os.urandom(32), os.urandom(32)
    old = EncryptedObjectStore(inner, MasterKeys([old_key]), chunk_size=CHUNK)
    blobs = {f"recordings/gate/{i}.mp4": os.urandom(i * 3000) for i in range(6)}
    for key, data in blobs.items():
        old.put(key, data)
    inner.put("snapshots/gate/legacy.jpg", b"plain jpeg")
    before = {key: inner.get(key) for key in blobs}

    both = EncryptedObjectStore(inner, MasterKeys([new_key, old_key]), chunk_size=CHUNK)
    report = rotate_master_key(both)
    assert (report.rewrapped, report.current, report.plain, report.failed) == (6, 0, 1, [])
    for key, data in blobs.items():
        raw = inner.get(key)
        assert raw[HEADER_SIZE:] == before[key][HEADER_SIZE:]  # bodies byte-identical
        assert raw[:HEADER_SIZE] != before[key][:HEADER_SIZE]
        assert parse_header(raw).key_id == key_id(new_key)
        assert both.get(key) == data
    again = rotate_master_key(both)
    assert (again.rewrapped, again.current) == (0, 6)  # a rerun changes nothing

    only_new = EncryptedObjectStore(inner, MasterKeys([new_key]))
    only_old = EncryptedObjectStore(inner, MasterKeys([old_key]))
    for key, data in blobs.items():
        assert only_new.get(key) == data
        with pytest.raises(MasterKeyMissing):
            only_old.get(key)
    assert only_new.get("snapshots/gate/legacy.jpg") == b"plain jpeg"


def test_rotation_resumes_and_reports_failures(inner: LocalObjectStore) -> None:
    k1, k2, stray = os.urandom(32), os.urandom(32), os.urandom(32)
    EncryptedObjectStore(inner, MasterKeys([k1])).put("a/1.bin", b"one")
    EncryptedObjectStore(inner, MasterKeys([k2])).put("a/2.bin", b"two")  # rotated already
    EncryptedObjectStore(inner, MasterKeys([stray])).put("a/3.bin", b"lost key")
    inner.put("a/4.bin", b"plain")
    lost = inner.get("a/3.bin")
    both = EncryptedObjectStore(inner, MasterKeys([k2, k1]))
    report = rotate_master_key(both, "a/", encrypt_plain=True)
    assert (report.rewrapped, report.current, report.encrypted, report.plain) == (1, 1, 1, 0)
    assert [key for key, _ in report.failed] == ["a/3.bin"] and not report.ok
    assert "not configured" in report.failed[0][1]
    assert is_encrypted(inner.get("a/4.bin")) and both.get("a/4.bin") == b"plain"
    assert inner.get("a/3.bin") == lost  # left untouched


def test_key_file_create_add_retire(tmp_path: Path) -> None:
    path = tmp_path / "keys" / "objects.key"
    first = load_or_create_key_file(path)
    assert len(first) == 1 and len(first[0]) == 32
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert load_or_create_key_file(path) == first  # never replaced
    new_id = add_key(path)
    keys = read_key_file(path)
    assert len(keys) == 2 and key_id(keys[0]) == new_id and keys[1] == first[0]
    assert retire_keys(path) == [key_id(first[0])]
    assert read_key_file(path) == keys[:1]
    ring = master_keys([], None, tmp_path)  # default: <data dir>/keys/objects.key
    assert ring.current_id == new_id


@pytest.mark.parametrize(
    ("content", "mode", "error"),
    [
        ("not base64!!\n", 0o600, "line 1"),
        (base64.b64encode(b"x" * 16).decode() + "\n", 0o600, "32 bytes"),
        ("# only a comment\n", 0o600, "holds no key"),
        (base64.b64encode(os.urandom(32)).decode() + "\n", 0o644, "chmod 600"),
    ],
)
def test_bad_key_files_are_refused(tmp_path: Path, content: str, mode: int, error: str) -> None:
    path = tmp_path / "objects.key"
    path.write_text(content)
    path.chmod(mode)
    with pytest.raises(KeyFileError, match=error) as info:
        read_key_file(path)
    assert content.strip() not in str(info.value) or content.startswith("#")


def test_configured_keys_win_and_bad_ones_never_echo(tmp_path: Path) -> None:
    key = os.urandom(32)
    ring = master_keys([base64.b64encode(key).decode()], None, tmp_path)
    assert ring.current_id == key_id(key)
    assert not (tmp_path / "keys").exists()  # no key file made
    with pytest.raises(ValueError, match="master_keys #1") as info:
        master_keys(["c2VjcmV0LXRoYXQtaXMtdG9vLXNob3J0"], None, tmp_path)
    assert "c2VjcmV0" not in str(info.value)


def test_an_encrypted_local_store_is_still_a_local_disk(
    store: EncryptedObjectStore, inner: LocalObjectStore
) -> None:
    assert unwrapped(store) is inner and unwrapped(inner) is inner
    assert free_bytes_of(store) == free_bytes_of(inner) is not None  # min_free_bytes still works


SECRET = "QUJDREVGR0hJSktMTU5PUFFSU1RVVldYWVo0NTY3ODk="  # base64 of 32 bytes


@pytest.mark.parametrize(
    "objects",
    [
        {"kind": "s3", "encryption": {"master_keys": [SECRET]}},
        {"kind": "s3", "bucket": "abc", "secret_key": SECRET},
        {"encryption": {"master_keys": [SECRET], "chunk_size": 1}},
    ],
    ids=["no bucket", "secret without id", "bad chunk size"],
)
def test_settings_errors_never_quote_keys(objects: dict[str, Any]) -> None:
    with pytest.raises(ValidationError) as info:
        Settings(objects=objects)
    assert "objects" in str(info.value)
    assert "QUJDREVG" not in str(info.value) and "ODk=" not in str(info.value)
