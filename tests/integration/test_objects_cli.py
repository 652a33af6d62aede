"""`sentinel objects rotate-key` against a real S3 server (moto): rewraps headers only,
resumes, retires the old key, and fails clearly."""

from __future__ import annotations

import base64
import json
import os
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from sentinel.cli import main
from sentinel.config import load_settings
from sentinel.store.envelope import (
    HEADER_SIZE,
    EncryptedObjectStore,
    MasterKeyMissing,
    MasterKeys,
    is_encrypted,
    key_id,
    parse_header,
)
from sentinel.store.object_keys import read_key_file
from sentinel.store.s3 import S3ObjectStore, make_object_store
from tests.utils.s3 import S3_ACCESS_KEY, S3_PREFIX, S3_SECRET_KEY, empty_and_delete_bucket

OBJECTS = {
    "recordings/gate/2026-12-07/a.mp4": os.urandom(200_000),
    "recordings/gate/2026-12-07/b.mp4": os.urandom(65_536),
    "snapshots/gate/e1.jpg": b"\xff\xd8" + os.urandom(5000),
    "exports/gate/x.mp4": b"",
}


@pytest.fixture
def env(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, s3_client: Any, s3_server: str
) -> Iterator[Path]:
    """SENTINEL_* for an S3 object store (encrypted by default); yields the data dir."""
    data = tmp_path / "data"
    bucket = f"sentinel-rotate-{uuid.uuid4().hex[:12]}"
    monkeypatch.setenv("SENTINEL_DATA_DIR", str(data))
    monkeypatch.delenv("SENTINEL_DATABASE_URL", raising=False)
    for name, value in {
        "KIND": "s3",
        "BUCKET": bucket,
        "PREFIX": S3_PREFIX,
        "ENDPOINT_URL": s3_server,
        "ACCESS_KEY": S3_ACCESS_KEY,
        "SECRET_KEY": S3_SECRET_KEY,
    }.items():
        monkeypatch.setenv(f"SENTINEL_OBJECTS__{name}", value)
    s3_client.create_bucket(Bucket=bucket)
    try:
        yield data
    finally:
        empty_and_delete_bucket(s3_client, bucket)


def _store() -> EncryptedObjectStore:
    settings = load_settings(None)
    store = make_object_store(settings.objects, settings.data_dir)
    assert isinstance(store, EncryptedObjectStore) and isinstance(store.inner, S3ObjectStore)
    return store


def _cli(*args: str) -> tuple[int, str]:
    result = CliRunner().invoke(main, ["objects", "rotate-key", *args])
    return result.exit_code, result.output


def _report(out: str) -> dict[str, Any]:
    data: dict[str, Any] = json.loads(out[out.index("{") :])
    return data


def test_rotate_generate_resume_retire(env: Path) -> None:
    store = _store()  # makes <data dir>/keys/objects.key
    key_file = env / "keys" / "objects.key"
    (old_key,) = read_key_file(key_file)
    for key, data in OBJECTS.items():
        store.put(key, data)
    store.inner.put("snapshots/gate/legacy.jpg", b"\xff\xd8plain, before encryption")
    before = {key: store.inner.get(key) for key in OBJECTS}
    assert all(is_encrypted(raw) for raw in before.values())

    code, out = _cli("--generate", "--json")
    assert code == 0, out
    report = _report(out)
    new_key = read_key_file(key_file)[0]
    assert report["master_key"] == key_id(new_key).hex() != key_id(old_key).hex()
    assert (report["rewrapped"], report["already_current"], report["plain"]) == (4, 0, 1)
    assert report["failed"] == [] and report["retired"] == []
    for key, raw in before.items():
        now = store.inner.get(key)
        assert now[HEADER_SIZE:] == raw[HEADER_SIZE:]  # the body, byte for byte
        assert parse_header(now).key_id == key_id(new_key)

    code, out = _cli("--json")  # a rerun (or a resumed run) changes nothing
    assert code == 0 and (_report(out)["rewrapped"], _report(out)["already_current"]) == (0, 4)

    code, out = _cli("--retire", "--encrypt-plain")
    assert code == 0, out
    assert "0 rewrapped, 4 already under it, 1 plain encrypted" in out
    assert f"retired master key(s) {key_id(old_key).hex()}" in out
    assert read_key_file(key_file) == [new_key]

    fresh = _store()  # the new key only
    for key, data in OBJECTS.items():
        assert fresh.get(key) == data
        if data:
            assert fresh.get_range(key, 1, 100) == data[1:100]
    assert fresh.get("snapshots/gate/legacy.jpg") == b"\xff\xd8plain, before encryption"
    assert is_encrypted(fresh.inner.get("snapshots/gate/legacy.jpg"))
    old_only = EncryptedObjectStore(fresh.inner, MasterKeys([old_key]))
    for key in OBJECTS:
        with pytest.raises(MasterKeyMissing, match="not configured"):
            old_only.get(key)
    assert base64.b64encode(new_key).decode() not in out  # keys are never printed


def test_unknown_master_key_fails_and_keeps_the_old_keys(env: Path) -> None:
    store = _store()
    store.put("a/1.bin", b"one")
    EncryptedObjectStore(store.inner, MasterKeys([os.urandom(32)])).put("a/2.bin", b"lost")
    code, out = _cli("--generate", "--retire")
    assert code == 1
    assert "1 rewrapped" in out and "1 failed" in out
    assert "a/2.bin" in out and "not configured" in out
    assert "no key retired" in out
    assert len(read_key_file(env / "keys" / "objects.key")) == 2


def test_refusals(env: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SENTINEL_OBJECTS__ENCRYPTION__ENABLED", "false")
    code, out = _cli()
    assert code == 1 and "not encrypted" in out
    monkeypatch.setenv("SENTINEL_OBJECTS__ENCRYPTION__ENABLED", "true")
    secret = base64.b64encode(os.urandom(32)).decode()
    monkeypatch.setenv("SENTINEL_OBJECTS__ENCRYPTION__MASTER_KEYS", json.dumps([secret]))
    code, out = _cli("--generate")
    assert code == 1 and "come from settings" in out
    assert secret not in out
    code, out = _cli("--json")  # rotation itself works with keys from settings
    assert code == 0 and _report(out)["master_key"] == key_id(base64.b64decode(secret)).hex()
    assert not (env / "keys" / "objects.key").exists()
    monkeypatch.setenv("SENTINEL_OBJECTS__ENCRYPTION__MASTER_KEYS", '["dG9vLXNob3J0"]')
    code, out = _cli()
    assert code == 1 and "master_keys #1" in out and "dG9vLXNob3J0" not in out


def test_start_makes_the_key_and_actors_share_it(env: Path, s3_client: Any) -> None:
    """`sentinel up`'s storage step makes the key file once; every later store (an actor's,
    the CLI's) loads the same key, and what one writes the others read."""
    from sentinel import platform as runtime

    settings = load_settings(None)
    key_file = env / "keys" / "objects.key"
    assert not key_file.exists()
    runtime.prepare_storage(settings)
    assert key_file.is_file() and (key_file.stat().st_mode & 0o777) == 0o600
    (key,) = read_key_file(key_file)
    runtime.prepare_storage(settings)  # a restart keeps the key
    assert read_key_file(key_file) == [key]
    actor_store = make_object_store(runtime.runtime_of(settings)["objects"], env)
    actor_store.put("snapshots/gate/e9.jpg", b"\xff\xd8frame")
    raw = s3_client.get_object(
        Bucket=settings.objects.bucket, Key=f"{S3_PREFIX}/snapshots/gate/e9.jpg"
    )["Body"].read()
    assert is_encrypted(raw) and b"frame" not in raw
    assert parse_header(raw).key_id == key_id(key)
    assert _store().get("snapshots/gate/e9.jpg") == b"\xff\xd8frame"
