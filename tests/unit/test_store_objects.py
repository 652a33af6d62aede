"""LocalObjectStore: atomic writes, not-found semantics and key validation."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from sentinel.store.objects import (
    LocalObjectStore,
    ObjectNotFound,
    ObjectStore,
    snapshot_key,
    validate_key,
)


@pytest.fixture
def store(tmp_path: Path) -> LocalObjectStore:
    return LocalObjectStore(tmp_path / "objects")


def test_put_get_exists_size_delete(store: LocalObjectStore) -> None:
    assert isinstance(store, ObjectStore)
    key = "snapshots/front_door/e1.jpg"
    assert not store.exists(key)
    store.put(key, b"\xff\xd8jpeg", content_type="image/jpeg")
    assert store.exists(key)
    assert store.get(key) == b"\xff\xd8jpeg"
    assert store.size(key) == 6
    store.put(key, b"second")
    assert store.get(key) == b"second"
    store.delete(key)
    store.delete(key)  # idempotent
    assert not store.exists(key)
    with pytest.raises(ObjectNotFound):
        store.get(key)
    with pytest.raises(KeyError):  # ObjectNotFound is a KeyError
        store.size(key)


def test_put_leaves_no_temporary_files(store: LocalObjectStore) -> None:
    for i in range(3):
        store.put("a/b.bin", bytes([i]) * 1000)
    assert sorted(p.name for p in (store.root / "a").iterdir()) == ["b.bin"]


def test_failed_put_keeps_the_old_object(
    store: LocalObjectStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    store.put("a/b.bin", b"old")

    def broken_replace(src: str, dst: str) -> None:
        raise OSError("disk full")

    monkeypatch.setattr(os, "replace", broken_replace)
    with pytest.raises(OSError, match="disk full"):
        store.put("a/b.bin", b"new")
    monkeypatch.undo()
    assert store.get("a/b.bin") == b"old"
    assert [p.name for p in (store.root / "a").iterdir()] == ["b.bin"]


def test_folders_are_not_objects(store: LocalObjectStore) -> None:
    store.put("snapshots/cam/e.jpg", b"x")
    assert not store.exists("snapshots/cam")
    with pytest.raises(ObjectNotFound):
        store.get("snapshots")
    with pytest.raises(ObjectNotFound):
        store.size("snapshots/cam")
    with pytest.raises(ObjectNotFound):
        store.get("snapshots/cam/e.jpg/deeper")
    store.delete("snapshots/cam")  # a folder: nothing to delete
    assert store.exists("snapshots/cam/e.jpg")
    with pytest.raises(ValueError, match="folder"):
        store.put("snapshots/cam", b"y")


@pytest.mark.parametrize(
    ("key", "error"),
    [
        ("", "non-empty"),
        ("/etc/passwd", "relative"),
        ("../escape", r"'\.\.'"),
        ("a/../../b", r"'\.\.'"),
        ("a/./b", r"'\.'"),
        ("a//b", "empty segments"),
        ("a/b/", "empty segments"),
        ("a\\b", "segments must match"),
        ("a b", "segments must match"),
        ("snap/é.jpg", "segments must match"),
        ("a/b\x00", "segments must match"),
        ("x" * 1025, "at most 1024"),
    ],
)
def test_rejected_keys(store: LocalObjectStore, key: str, error: str) -> None:
    with pytest.raises(ValueError, match=error):
        validate_key(key)
    for operation in (store.get, store.exists, store.size, store.delete):
        with pytest.raises(ValueError):
            operation(key)
    with pytest.raises(ValueError):
        store.put(key, b"data")


@pytest.mark.parametrize("key", ["a", "a.b", "A-Z_0-9/x.y.z", ".hidden/file", "a/b/c/d.jpg"])
def test_accepted_keys(store: LocalObjectStore, key: str) -> None:
    store.put(key, key.encode())
    assert store.get(key) == key.encode()
    assert store.path(key).is_relative_to(store.root)


def test_snapshot_key() -> None:
    assert snapshot_key("front_door", "e-1") == "snapshots/front_door/e-1.jpg"
    for camera, event in [("a/b", "e"), ("..", "e"), ("cam", ""), ("cam", "x y")]:
        with pytest.raises(ValueError):
            snapshot_key(camera, event)
