"""Master keys of the object envelope: from settings (an env var or secret) or a key file.

The key file holds base64 AES-256 keys, one a line, newest first (``#`` lines are comments),
mode 0600. Created at first use with one random key; ``add_key`` puts a new one first (the
start of a rotation) and ``retire_keys`` drops every key but the newest (its end). Both
rewrite the file atomically (temp file, fsync, rename). Keys never reach a log or an error.
"""

from __future__ import annotations

import base64
import os
import secrets
import stat
from pathlib import Path

from sentinel.gateway.secretbox import KEY_BYTES, key_from_setting
from sentinel.store.envelope import MasterKeys, key_id

DEFAULT_KEY_FILE = Path("keys") / "objects.key"
_HEADER = (
    "# Sentinel object master keys (base64 AES-256), newest first; the first wraps new objects.\n"
    "# Losing this file loses every encrypted object: back it up apart from the objects.\n"
)


class KeyFileError(RuntimeError):
    """The key file is missing, unreadable, too open or malformed (the message names the line,
    never a key)."""


def key_file_path(key_file: Path | None, data_dir: Path) -> Path:
    """The key file in use: ``key_file`` (relative paths are under the data dir), else
    ``<data_dir>/keys/objects.key``."""
    path = key_file if key_file is not None else DEFAULT_KEY_FILE
    return path if path.is_absolute() else data_dir / path


def read_key_file(path: Path) -> list[bytes]:
    """The keys in ``path``, newest first.

    Raises:
        KeyFileError: If it is missing, readable by others, malformed or holds no key.
    """
    try:
        st = path.stat()
        text = path.read_text("ascii")
    except FileNotFoundError:
        raise KeyFileError(f"no object master key file at {path}") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise KeyFileError(f"cannot read the object master key file {path}: {exc}") from None
    if stat.S_IMODE(st.st_mode) & 0o077:
        raise KeyFileError(f"{path} must not be accessible to other users (chmod 600)")
    keys: list[bytes] = []
    for number, line in enumerate(text.splitlines(), start=1):
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        try:
            keys.append(key_from_setting(line))
        except ValueError as exc:
            raise KeyFileError(f"{path}, line {number}: {exc}") from None
    if not keys:
        raise KeyFileError(f"{path} holds no key")
    return keys


def _write_key_file(path: Path, keys: list[bytes], *, exclusive: bool = False) -> bool:
    """Write ``keys`` to ``path`` atomically (mode 0600); with ``exclusive``, only if ``path``
    does not exist yet (False then: another process made it first)."""
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{secrets.token_hex(8)}.tmp")
    body = _HEADER + "".join(base64.b64encode(key).decode("ascii") + "\n" for key in keys)
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
    try:
        os.fchmod(fd, 0o600)
        os.write(fd, body.encode("ascii"))
        os.fsync(fd)
    finally:
        os.close(fd)
    try:
        if exclusive:
            try:
                os.link(tmp, path)  # never replaces a key file another process just made
            except FileExistsError:
                return False
        else:
            os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    return True


def load_or_create_key_file(path: Path) -> list[bytes]:
    """The keys in ``path``; a missing file is created with one random key first.

    Raises:
        KeyFileError: If the file exists but cannot be used.
    """
    if not path.exists():
        _write_key_file(path, [os.urandom(KEY_BYTES)], exclusive=True)
    return read_key_file(path)


def add_key(path: Path) -> bytes:
    """Put a new random key first in the key file (created if missing); returns its id.

    Raises:
        KeyFileError: If the existing file cannot be used.
    """
    old = read_key_file(path) if path.exists() else []
    key = os.urandom(KEY_BYTES)
    _write_key_file(path, [key, *old])
    return key_id(key)


def retire_keys(path: Path) -> list[bytes]:
    """Keep only the newest key in the key file; returns the ids of the keys dropped.

    Raises:
        KeyFileError: If the file cannot be used.
    """
    keys = read_key_file(path)
    if len(keys) > 1:
        _write_key_file(path, keys[:1])
    return [key_id(key) for key in keys[1:]]


def master_keys(configured: list[str], key_file: Path | None, data_dir: Path) -> MasterKeys:
    """The master keys: ``configured`` (base64, newest first) when given, else the key file
    (created at first use).

    Raises:
        KeyFileError: If the key file cannot be used.
        ValueError: If a configured key is not base64 of 32 bytes (the message never holds it).
    """
    if configured:
        keys = []
        for i, value in enumerate(configured, start=1):
            try:
                keys.append(key_from_setting(value))
            except ValueError as exc:
                raise ValueError(f"objects.encryption.master_keys #{i}: {exc}") from None
        return MasterKeys(keys)
    return MasterKeys(load_or_create_key_file(key_file_path(key_file, data_dir)))
