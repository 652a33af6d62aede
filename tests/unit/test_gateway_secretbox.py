"""AES-256-GCM secrets at rest, and their key files."""

from __future__ import annotations

import base64
import os
import stat
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest

from sentinel.gateway.secretbox import SecretBox, SecretError, key_from_setting, load_or_create_key

KEY = bytes(range(32))


@pytest.fixture
def box() -> SecretBox:
    return SecretBox(KEY)


def test_round_trip(box: SecretBox) -> None:
    for text in ("", "rtsp-password", "ünïcødé 🔐", "x" * 10_000):
        token = box.encrypt(text, aad=b"camera:front_door")
        assert token.startswith("v1:")
        assert box.decrypt(token, aad=b"camera:front_door") == text
    assert box.encrypt("same") != box.encrypt("same")  # fresh nonce per message


@pytest.mark.parametrize("position", [0, 5, 11, 12, 20, -16, -1])
def test_any_flipped_byte_is_detected(box: SecretBox, position: int) -> None:
    token = box.encrypt("rtsp://admin:hunter2@cam")
    raw = bytearray(base64.urlsafe_b64decode(token[3:]))
    raw[position] ^= 0x01
    with pytest.raises(SecretError):
        box.decrypt("v1:" + base64.urlsafe_b64encode(bytes(raw)).decode())


def test_truncated_or_extended_ciphertext_is_detected(box: SecretBox) -> None:
    raw = base64.urlsafe_b64decode(box.encrypt("secret")[3:])
    for changed in (raw[:-1], raw + b"\x00", raw[:28]):
        with pytest.raises(SecretError):
            box.decrypt("v1:" + base64.urlsafe_b64encode(changed).decode())


def test_wrong_key(box: SecretBox) -> None:
    token = box.encrypt("secret")
    with pytest.raises(SecretError):
        SecretBox(os.urandom(32)).decrypt(token)


@pytest.mark.parametrize(
    ("enc_aad", "dec_aad"), [(b"cam:a", b"cam:b"), (b"cam:a", b""), (b"", b"x")]
)
def test_wrong_aad(box: SecretBox, enc_aad: bytes, dec_aad: bytes) -> None:
    token = box.encrypt("secret", aad=enc_aad)
    with pytest.raises(SecretError):
        box.decrypt(token, aad=dec_aad)


@pytest.mark.parametrize(
    "token",
    [
        "",
        "v1:",
        "v2:AAAA",
        "V1:AAAA",
        "v1:!!!!",
        "v1:AAAA",
        "v1:" + "A" * 37,
        "plaintext",
        None,
        b"v1:",
    ],
)
def test_malformed_tokens(box: SecretBox, token: Any) -> None:
    with pytest.raises(SecretError):
        box.decrypt(token)


@pytest.mark.parametrize("key", [b"", b"x" * 16, b"x" * 31, b"x" * 33, "x" * 32])
def test_key_size_is_enforced(key: Any) -> None:
    with pytest.raises(ValueError, match="32-byte key"):
        SecretBox(key)


def test_repr_hides_the_key(box: SecretBox) -> None:
    assert KEY.hex() not in repr(box) and "hidden" in repr(box)


def test_load_or_create_key(tmp_path: Path) -> None:
    path = tmp_path / "secrets" / "secretbox.key"
    key = load_or_create_key(path)
    assert len(key) == 32
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert stat.S_IMODE(path.parent.stat().st_mode) == 0o700
    assert load_or_create_key(path) == key
    assert [p.name for p in path.parent.iterdir()] == ["secretbox.key"]  # no temp files left


def test_concurrent_creators_agree_on_one_key(tmp_path: Path) -> None:
    path = tmp_path / "k"
    with ThreadPoolExecutor(8) as pool:
        keys = set(pool.map(lambda _: load_or_create_key(path), range(16)))
    assert len(keys) == 1


@pytest.mark.parametrize("size", [0, 16, 31, 33, 64])
def test_key_file_of_wrong_size_is_refused(tmp_path: Path, size: int) -> None:
    path = tmp_path / "k"
    path.write_bytes(b"x" * size)
    path.chmod(0o600)
    with pytest.raises(SecretError, match="exactly 32 bytes"):
        load_or_create_key(path)
    assert path.read_bytes() == b"x" * size  # never overwritten


def test_key_file_readable_by_others_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "k"
    load_or_create_key(path)
    path.chmod(0o644)
    with pytest.raises(SecretError, match="other users"):
        load_or_create_key(path)


def test_key_from_setting() -> None:
    key = os.urandom(32)
    for text in (
        base64.b64encode(key).decode(),
        base64.urlsafe_b64encode(key).decode().rstrip("="),
        f"  {base64.b64encode(key).decode()}\n",
    ):
        assert key_from_setting(text) == key


@pytest.mark.parametrize(
    ("value", "message"),
    [
        (base64.b64encode(b"k" * 16).decode(), "got 16 bytes"),
        (base64.b64encode(b"k" * 33).decode(), "got 33 bytes"),
        ("not base64 at all!", "not base64"),
        ("changeme-super-secret", "not base64"),
        ("", "got 0 bytes"),
    ],
)
def test_key_from_setting_errors_never_echo_the_value(value: str, message: str) -> None:
    with pytest.raises(ValueError, match=message) as info:
        key_from_setting(value)
    if value:
        assert value not in str(info.value)
