"""One behaviour table for every ``ObjectStore``: the local folder and S3 (a moto server)."""

from __future__ import annotations

import os
import uuid
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest
from botocore.stub import Stubber
from pydantic import SecretStr, ValidationError

from sentinel.store.envelope import EncryptedObjectStore
from sentinel.store.objects import (
    LocalObjectStore,
    ObjectNotFound,
    ObjectStore,
    RangedObjectStore,
    read_range,
    unwrapped,
)
from sentinel.store.s3 import (
    ObjectEncryptionSettings,
    ObjectStoreError,
    ObjectStoreSettings,
    S3ObjectStore,
    make_object_store,
)
from tests.utils.media import free_port
from tests.utils.s3 import S3_PREFIX, empty_and_delete_bucket, s3_test_client

KEY = "snapshots/front_door/e1.jpg"


@pytest.mark.parametrize(
    "data",
    [b"hello", bytes(range(256)) * 64, b"", b"\x00\r\n\xff" * 3, os.urandom(300_000)],
    ids=["text", "all-bytes", "empty", "crlf-nul", "300k-random"],
)
def test_put_get_round_trip(object_store: ObjectStore, data: bytes) -> None:
    assert isinstance(object_store, ObjectStore)
    object_store.put(KEY, data, content_type="image/jpeg")
    assert object_store.get(KEY) == data
    assert object_store.exists(KEY)
    assert object_store.size(KEY) == len(data)


def test_overwrite_replaces_the_object(object_store: ObjectStore) -> None:
    object_store.put(KEY, b"first version, longer")
    object_store.put(KEY, b"second")
    assert object_store.get(KEY) == b"second"
    assert object_store.size(KEY) == 6
    assert list(object_store.iter_keys()) == [(KEY, 6)]


def test_delete_is_idempotent(object_store: ObjectStore) -> None:
    object_store.put(KEY, b"x")
    object_store.put("snapshots/front_door/e2.jpg", b"y")
    object_store.delete(KEY)
    object_store.delete(KEY)
    object_store.delete("never/written.bin")
    assert not object_store.exists(KEY)
    assert object_store.get("snapshots/front_door/e2.jpg") == b"y"


def test_missing_objects_raise_object_not_found(object_store: ObjectStore) -> None:
    assert not object_store.exists(KEY)
    with pytest.raises(ObjectNotFound):
        object_store.get(KEY)
    with pytest.raises(KeyError):  # ObjectNotFound is a KeyError
        object_store.size(KEY)
    object_store.put(KEY, b"x")
    for folder in ("snapshots", "snapshots/front_door"):  # prefixes are not objects
        assert not object_store.exists(folder)
        with pytest.raises(ObjectNotFound):
            object_store.get(folder)
        with pytest.raises(ObjectNotFound):
            object_store.size(folder)


@pytest.mark.parametrize(
    "key",
    ["..", "a/../b", "./a", "/etc/passwd", "/a", "a//b", "a/", "", "a b", "a\\b", "x" * 1025],
    ids=["dotdot", "dotdot-inside", "dot", "absolute", "absolute-short", "empty-segment",
         "trailing-slash", "empty", "space", "backslash", "too-long"],
)  # fmt: skip
def test_invalid_keys_are_rejected(object_store: ObjectStore, key: str) -> None:
    with pytest.raises(ValueError):
        object_store.put(key, b"x")
    with pytest.raises(ValueError):
        object_store.get(key)
    with pytest.raises(ValueError):
        object_store.delete(key)
    with pytest.raises(ValueError):
        object_store.exists(key)
    with pytest.raises(ValueError):
        object_store.size(key)
    assert list(object_store.iter_keys()) == []


def test_iter_keys_with_prefixes(object_store: ObjectStore) -> None:
    objects = {
        "snapshots/cam1/e1.jpg": b"1",
        "snapshots/cam1/e2.jpg": b"22",
        "snapshots/cam10/e1.jpg": b"333",
        "snapshots/cam2/e1.jpg": b"4444",
        "snapshots.txt": b"55555",
        "recordings/cam1/a.mp4": b"",
        "a.txt": b"7",
        "a-b": b"8",
    }
    for key, data in objects.items():
        object_store.put(key, data)
    everything = list(object_store.iter_keys())
    assert everything == sorted((key, len(data)) for key, data in objects.items())
    assert everything == list(object_store.iter_keys(""))

    def keys(prefix: str) -> list[str]:
        return [key for key, _ in object_store.iter_keys(prefix)]

    assert keys("snapshots/") == [
        "snapshots/cam1/e1.jpg",
        "snapshots/cam1/e2.jpg",
        "snapshots/cam10/e1.jpg",
        "snapshots/cam2/e1.jpg",
    ]
    assert keys("snapshots/cam1/") == ["snapshots/cam1/e1.jpg", "snapshots/cam1/e2.jpg"]
    assert keys("snapshots/cam1") == [*keys("snapshots/cam1/"), "snapshots/cam10/e1.jpg"]
    assert keys("snapshots") == ["snapshots.txt", *keys("snapshots/")]  # "." < "/"
    assert keys("snapshots/cam1/e2.jpg") == ["snapshots/cam1/e2.jpg"]
    assert keys("a") == ["a-b", "a.txt"]
    assert keys("nothing/") == []
    assert keys("snapshots/cam3") == []
    with pytest.raises(ValueError):
        object_store.iter_keys("/snapshots")  # raised at once, not on first next()


def test_iter_keys_paginates_over_1100_s3_objects(s3_server: str) -> None:
    s3_client = s3_test_client(s3_server)  # its own: it gets an event hook
    bucket = f"sentinel-test-{uuid.uuid4().hex[:16]}"
    store = S3ObjectStore(bucket, prefix=S3_PREFIX, client=s3_client)
    store.ensure_bucket()
    expected = [(f"frames/{i:05d}.bin", i % 7) for i in range(1100)]
    with ThreadPoolExecutor(max_workers=16) as pool:
        list(pool.map(lambda item: store.put(item[0], b"x" * item[1]), expected))
    store.put("other/last.bin", b"z")
    requests: list[str] = []
    s3_client.meta.events.register(
        "before-call.s3.ListObjectsV2", lambda **_: requests.append("list")
    )
    try:
        assert list(store.iter_keys("frames/")) == expected
        assert len(requests) == 2  # 1000 + 100
        assert sum(1 for _ in store.iter_keys()) == 1101
    finally:
        empty_and_delete_bucket(s3_client, bucket)


def test_local_iter_keys_skips_temporary_files_and_symlinks(tmp_path: Path) -> None:
    store = LocalObjectStore(tmp_path / "objects")
    store.put("a/b.bin", b"abc")
    (store.root / "a" / ".b.bin.k2j3h4g5.0123abcd.tmp").write_bytes(b"partial")
    (store.root / "a" / "link.bin").symlink_to(store.root / "a" / "b.bin")
    (store.root / "a" / "bad name").write_bytes(b"not a key")
    (store.root / "empty_folder").mkdir()
    assert list(store.iter_keys()) == [("a/b.bin", 3)]


def test_s3_stores_content_type_and_prefix(s3_client: Any) -> None:
    bucket = f"sentinel-test-{uuid.uuid4().hex[:16]}"
    store = S3ObjectStore(bucket, prefix="/tenant/prod/", client=s3_client)
    store.ensure_bucket()
    store.ensure_bucket()  # idempotent
    store.put(KEY, b"\xff\xd8jpeg", content_type="image/jpeg")
    store.put("blob.bin", b"\x00")
    head = s3_client.head_object(Bucket=bucket, Key=f"tenant/prod/{KEY}")
    assert head["ContentType"] == "image/jpeg"
    assert head["ContentLength"] == 6
    blob = s3_client.head_object(Bucket=bucket, Key="tenant/prod/blob.bin")
    assert blob["ContentType"] == "application/octet-stream"
    # Keys outside the prefix, and bucket keys that are not object keys, are not listed.
    s3_client.put_object(Bucket=bucket, Key="outside.bin", Body=b"o")
    s3_client.put_object(Bucket=bucket, Key="tenant/prod/folder/", Body=b"")
    assert list(store.iter_keys()) == [("blob.bin", 1), (KEY, 6)]
    assert not store.exists("outside.bin")


def test_s3_missing_bucket_is_an_error_not_a_missing_object(s3_client: Any) -> None:
    store = S3ObjectStore("sentinel-test-no-such-bucket", client=s3_client)
    for call in (store.get, store.size, store.exists, store.delete):
        with pytest.raises(ObjectStoreError, match=r"NoSuchBucket|404") as info:
            call(KEY)
        assert not isinstance(info.value, KeyError)
    with pytest.raises(ObjectStoreError, match=r"put_object.*NoSuchBucket"):
        store.put(KEY, b"x")
    with pytest.raises(ObjectStoreError, match="list_objects_v2"):
        list(store.iter_keys())


def test_s3_errors_never_show_credentials(s3_server: str) -> None:
    secret = "sEcReT-0123456789abcdef"
    unreachable = S3ObjectStore(
        "b-unreachable",
        endpoint_url=f"http://127.0.0.1:{free_port()}",
        access_key="AKIATESTACCESS",
        secret_key=secret,
    )
    with pytest.raises(ObjectStoreError, match="get_object of s3://b-unreachable/") as info:
        unreachable.get(KEY)
    assert secret not in str(info.value)
    # A service message quoting the credentials is redacted.
    client = s3_test_client(s3_server)
    store = S3ObjectStore("b-denied", access_key="AKIATESTACCESS", secret_key=secret, client=client)
    with Stubber(client) as stubber:
        stubber.add_client_error(
            "get_object", "AccessDenied", f"key AKIATESTACCESS / {secret} refused", 403
        )
        with pytest.raises(ObjectStoreError, match="AccessDenied") as info:
            store.get(KEY)
    assert secret not in str(info.value)
    assert "AKIATESTACCESS" not in str(info.value)


def test_make_object_store(tmp_path: Path, s3_server: str) -> None:
    local = make_object_store(ObjectStoreSettings(), tmp_path)
    assert isinstance(local, LocalObjectStore)
    assert local.root == (tmp_path / "objects").resolve()
    settings = ObjectStoreSettings(
        kind="s3",
        bucket="sentinel-test-factory",
        prefix="site-a",
        endpoint_url=s3_server,
        access_key="AKIATESTACCESS",
        secret_key=SecretStr("factory-secret"),
    )
    assert "factory-secret" not in repr(settings)
    encrypted = make_object_store(settings, tmp_path)  # encrypted by default on S3
    assert isinstance(encrypted, EncryptedObjectStore)
    assert (tmp_path / "keys" / "objects.key").is_file()
    settings = settings.model_copy(update={"encryption": ObjectEncryptionSettings(enabled=False)})
    store = make_object_store(settings, tmp_path)
    assert isinstance(store, S3ObjectStore) and unwrapped(encrypted) is not store
    assert isinstance(unwrapped(encrypted), S3ObjectStore)
    store.ensure_bucket()
    store.put("a.bin", b"abc")
    assert store.get("a.bin") == b"abc"
    assert list(store.iter_keys()) == [("a.bin", 3)]
    store.delete("a.bin")
    store.client.delete_bucket(Bucket="sentinel-test-factory")
    with pytest.raises(ValidationError, match="bucket is required"):
        ObjectStoreSettings(kind="s3")
    with pytest.raises(ValidationError, match="both"):
        ObjectStoreSettings(kind="s3", bucket="abc", access_key="only-the-id")
    with pytest.raises(ValidationError):
        ObjectStoreSettings(kind="s3", bucket="abc", prefix="a/../b")


@pytest.mark.parametrize(
    ("start", "stop"),
    [(0, 1), (0, 5000), (4095, 4097), (9000, 10_000), (9999, 10_000), (10, 10), (9990, 99_999)],
)
def test_get_range(object_store: ObjectStore, start: int, stop: int) -> None:
    data = os.urandom(10_000)
    object_store.put(KEY, data)
    assert read_range(object_store, KEY, start, stop) == data[start:stop]
    assert isinstance(object_store, RangedObjectStore)
    assert object_store.get_range(KEY, start, stop) == data[start:stop]


def test_get_range_edges(object_store: ObjectStore) -> None:
    object_store.put(KEY, b"0123456789")
    object_store.put("empty.bin", b"")
    assert read_range(object_store, KEY, 10, 20) == b""  # at or past the end: empty
    assert read_range(object_store, KEY, 50, 60) == b""
    assert read_range(object_store, "empty.bin", 0, 5) == b""
    for start, stop in ((-1, 3), (5, 4)):
        with pytest.raises(ValueError, match="bad range"):
            read_range(object_store, KEY, start, stop)
    for start, stop in ((0, 4), (3, 3)):
        with pytest.raises(ObjectNotFound):
            read_range(object_store, "never/written.bin", start, stop)
