"""Authenticated encryption for secrets stored at rest (camera passwords, TOTP secrets).

AES-256-GCM with a random 96-bit nonce per message. Random nonces are safe for about 2^32
messages per key (NIST SP 800-38D); secrets stored in a database are far fewer. Tokens carry a
"v1:" version tag so the scheme can change without guessing what old rows hold.
"""

from __future__ import annotations

import base64
import binascii
import os
import secrets
import stat
from pathlib import Path

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

__all__ = [
    "KEY_BYTES",
    "SecretBox",
    "SecretError",
    "key_from_setting",
    "load_or_create_key",
    "master_key",
    "open_secret_box",
]

KEY_BYTES = 32
_NONCE_BYTES = 12
_TAG_BYTES = 16
_VERSION = "v1:"


class SecretError(Exception):
    """Decryption failed or a key file is unusable.

    The message never says which check failed: tampering, a wrong key and a wrong ``aad`` all
    look the same from outside, which is what the AEAD guarantees anyway.
    """


class SecretBox:
    """Encrypts and decrypts short strings with one AES-256-GCM key.

    Use ``aad`` to bind a ciphertext to where it is stored, e.g. ``b"camera:front_door:rtsp"``:
    a ciphertext copied into another row then fails to decrypt instead of leaking one camera's
    password through another camera's settings page.

    Args:
        key: 32 random bytes (see :func:`load_or_create_key`, :func:`key_from_setting`).
    """

    def __init__(self, key: bytes) -> None:
        if not isinstance(key, bytes) or len(key) != KEY_BYTES:
            got = len(key) if isinstance(key, bytes) else type(key).__name__
            raise ValueError(f"SecretBox needs a {KEY_BYTES}-byte key, got {got}")
        self._aead = AESGCM(key)

    def __repr__(self) -> str:
        return "SecretBox(<key hidden>)"  # never let a key reach a log via repr()

    def encrypt(self, plaintext: str, *, aad: bytes = b"") -> str:
        """Encrypts ``plaintext``; returns ``"v1:" + urlsafe_b64(nonce + ciphertext + tag)``."""
        nonce = os.urandom(_NONCE_BYTES)
        sealed = self._aead.encrypt(nonce, plaintext.encode("utf-8"), aad)
        return _VERSION + base64.urlsafe_b64encode(nonce + sealed).decode("ascii")

    def decrypt(self, token: str, *, aad: bytes = b"") -> str:
        """Decrypts a token made by :meth:`encrypt` with the same key and ``aad``.

        Raises:
            SecretError: The token is malformed, was altered, or belongs to another key or aad.
        """
        if not isinstance(token, str) or not token.startswith(_VERSION):
            raise SecretError("not a v1 secret")
        try:
            raw = base64.b64decode(token[len(_VERSION) :], altchars=b"-_", validate=True)
        except (binascii.Error, ValueError):
            raise SecretError("not a v1 secret") from None
        if len(raw) < _NONCE_BYTES + _TAG_BYTES:
            raise SecretError("not a v1 secret")
        try:
            plain = self._aead.decrypt(raw[:_NONCE_BYTES], raw[_NONCE_BYTES:], aad)
        except InvalidTag:
            raise SecretError("secret cannot be decrypted") from None
        return plain.decode("utf-8")


def load_or_create_key(path: Path) -> bytes:
    """Reads the 32-byte key at ``path``, creating it (mode 0600) if it does not exist.

    Creation is atomic and never overwrites: the key is written to a temporary file and
    hard-linked into place, so when two processes start together one key wins and both use it.
    Silently replacing an existing key would make every stored secret undecryptable.

    Raises:
        SecretError: The file has the wrong size or is accessible to other users.
    """
    if not path.exists():
        path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.name}.{secrets.token_hex(8)}.tmp")  # unique per writer
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
        try:
            os.fchmod(fd, 0o600)
            os.write(fd, os.urandom(KEY_BYTES))
            os.fsync(fd)
        finally:
            os.close(fd)
        try:
            os.link(tmp, path)  # fails if another process created the key first; we use theirs
        except FileExistsError:
            pass
        finally:
            tmp.unlink()
    st = path.stat()
    if stat.S_IMODE(st.st_mode) & 0o077:
        raise SecretError(f"{path} must not be accessible to other users (chmod 600)")
    if st.st_size != KEY_BYTES:
        raise SecretError(f"{path} must hold exactly {KEY_BYTES} bytes, but holds {st.st_size}")
    return path.read_bytes()


def key_from_setting(value: str) -> bytes:
    """Decodes a key given in settings as base64 (standard or URL-safe) of 32 bytes.

    Generate one with ``python -c "import os,base64;print(base64.b64encode(os.urandom(32)))"``.

    Raises:
        ValueError: The value is not base64 or does not decode to 32 bytes. The message never
            repeats the value, which is a secret.
    """
    text = value.strip().replace("-", "+").replace("_", "/")
    try:
        key = base64.b64decode(text + "=" * (-len(text) % 4), validate=True)
    except (binascii.Error, ValueError):
        raise ValueError(
            f"secret key must be base64 of {KEY_BYTES} bytes; it is not base64"
        ) from None
    if len(key) != KEY_BYTES:
        raise ValueError(f"secret key must be base64 of {KEY_BYTES} bytes, got {len(key)} bytes")
    return key


def master_key(secret_key: str | None, data_dir: Path) -> bytes:
    """The key for secrets at rest: the configured key, else ``keys/secrets.key`` in the data
    dir (created 0600 at first use). Other uses derive their own keys from it (HKDF), never
    use it as is."""
    if secret_key:
        return key_from_setting(secret_key)
    return load_or_create_key(data_dir / "keys" / "secrets.key")


def open_secret_box(secret_key: str | None, data_dir: Path) -> SecretBox:
    """The box for secrets at rest, keyed by :func:`master_key`."""
    return SecretBox(master_key(secret_key, data_dir))
