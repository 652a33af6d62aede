"""RSA signing keys for access tokens, with rotation and a JWKS view.

On disk a key ring is a directory (mode 0700) holding one PKCS#8 PEM per key, named
``<kid>.pem``, and a ``keys.json`` manifest with each key's creation and retirement time, all
files mode 0600. The private keys are not encrypted at rest: a passphrase would have to live
beside them (in the environment or another file readable by the same process), which adds
ceremony but no protection. The protection is the file mode plus disk encryption.
"""

from __future__ import annotations

import base64
import contextlib
import fcntl
import hashlib
import json
import os
import secrets
import stat
from collections.abc import Iterator
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

__all__ = ["ActiveKey", "KeyRing", "kid_for"]

_MANIFEST = "keys.json"
_LOCK = ".lock"
_KEY_BITS = 2048
_PUBLIC_EXPONENT = 65537


@dataclass(frozen=True)
class ActiveKey:
    """The key that signs new tokens."""

    kid: str
    private_key: rsa.RSAPrivateKey


@dataclass(frozen=True)
class _Entry:
    kid: str
    key: rsa.RSAPrivateKey
    created_at: datetime
    retired_at: datetime | None


def kid_for(public_key: rsa.RSAPublicKey) -> str:
    """Key id: the first 16 hex characters of SHA-256 over the public key's DER encoding."""
    der = public_key.public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    return hashlib.sha256(der).hexdigest()[:16]


def _b64url_uint(value: int) -> str:
    raw = value.to_bytes((value.bit_length() + 7) // 8 or 1, "big")
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode("ascii")


def _load_private(pem: bytes, source: str) -> rsa.RSAPrivateKey:
    try:
        key = serialization.load_pem_private_key(pem, password=None)
    except (ValueError, TypeError) as exc:
        raise ValueError(f"{source}: not an unencrypted PEM private key") from exc
    if not isinstance(key, rsa.RSAPrivateKey):
        raise ValueError(f"{source}: expected an RSA private key, got {type(key).__name__}")
    if key.key_size < _KEY_BITS:
        raise ValueError(f"{source}: RSA key must have >= {_KEY_BITS} bits, got {key.key_size}")
    return key


def _check_private_mode(path: Path) -> None:
    # Like OpenSSH, refuse secrets that others can read or write instead of silently using
    # them: loose permissions mean a copy went wrong or someone tampered with the directory.
    mode = stat.S_IMODE(path.stat().st_mode)
    if mode & 0o077:
        raise PermissionError(f"{path} has mode {mode:o}; it must not be accessible to others")


def _write_private(path: Path, data: bytes) -> None:
    """Writes ``data`` to ``path`` atomically with mode 0600 (temp file, fsync, rename)."""
    tmp = path.with_name(f".{path.name}.{secrets.token_hex(8)}.tmp")  # unique per writer
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
    try:
        os.fchmod(fd, 0o600)  # the umask can only narrow the mode; make it exact
        os.write(fd, data)
        os.fsync(fd)
    finally:
        os.close(fd)
    os.replace(tmp, path)
    dir_fd = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(dir_fd)  # make the rename itself durable
    finally:
        os.close(dir_fd)


class KeyRing:
    """The signing key ring: one active key plus retired keys still trusted for verification.

    Build it with :meth:`load_or_create` (keys in a directory) or :meth:`from_pem` (keys from
    settings). Rotation and pruning persist only for directory rings.
    """

    def __init__(self, entries: list[_Entry], directory: Path | None = None) -> None:
        if not entries:
            raise ValueError("a key ring needs at least one key")
        self._directory = directory
        self._set({e.kid: e for e in entries})

    def _set(self, entries: dict[str, _Entry]) -> None:
        self._entries = entries
        # Derived once per change: every request verifies a token against these.
        self._public = {kid: e.key.public_key() for kid, e in entries.items()}

    @classmethod
    def from_pem(cls, private_pems: list[str]) -> KeyRing:
        """A key ring from PEM strings held in settings (not persisted).

        The first PEM is the active signing key; the others only verify tokens, which lets an
        operator rotate by prepending a new key and dropping the old one a token lifetime later.
        """
        if not private_pems:
            raise ValueError("from_pem needs at least one PEM private key, got none")
        epoch = datetime.fromtimestamp(0, UTC)
        entries = []
        for i, pem in enumerate(private_pems):
            key = _load_private(pem.encode("utf-8"), f"signing key #{i}")
            entries.append(_Entry(kid_for(key.public_key()), key, epoch, None if i == 0 else epoch))
        if len({e.kid for e in entries}) != len(entries):
            raise ValueError("the same signing key appears twice in the settings")
        return cls(entries)

    def reload(self) -> bool:
        """Re-reads a directory ring, picking up keys another process rotated in.

        Returns True when the set of keys changed. Rings from settings never change.
        """
        if self._directory is None:
            return False
        with self._locked(self._directory):
            entries = self._read(self._directory)
        if not entries:
            return False
        fresh = {e.kid: e for e in entries}
        if set(fresh) == set(self._entries) and all(
            fresh[k].retired_at == self._entries[k].retired_at for k in fresh
        ):
            return False
        self._set(fresh)
        return True

    @classmethod
    def load_or_create(cls, directory: Path, *, now: datetime | None = None) -> KeyRing:
        """Loads the ring stored in ``directory``, creating the directory and a first key if needed.

        A file lock serialises replicas that start together, so they never create two keys.

        Raises:
            PermissionError: The directory or a key file is accessible to other users.
            ValueError: A key file is unreadable, too weak, or not named after its kid.
        """
        directory.mkdir(mode=0o700, parents=True, exist_ok=True)
        _check_private_mode(directory)
        with cls._locked(directory):
            entries = cls._read(directory)
            if entries:
                return cls(entries, directory)
            ring = cls([cls._new_entry(now)], directory)
            ring._persist(directory, written=set(ring._entries))
            return ring

    @property
    def active(self) -> ActiveKey:
        """The newest key that is not retired."""
        live = [e for e in self._entries.values() if e.retired_at is None]
        newest = max(live or self._entries.values(), key=lambda e: (e.created_at, e.kid))
        return ActiveKey(newest.kid, newest.key)

    def public_keys(self) -> dict[str, rsa.RSAPublicKey]:
        """Every key still trusted for verification, by kid."""
        return dict(self._public)

    def jwks(self) -> dict[str, Any]:
        """The public keys as an RFC 7517 JSON Web Key Set."""
        keys = []
        for kid, pub in sorted(self.public_keys().items()):
            numbers = pub.public_numbers()
            keys.append(
                {
                    "kty": "RSA",
                    "kid": kid,
                    "use": "sig",
                    "alg": "RS256",
                    "n": _b64url_uint(numbers.n),
                    "e": _b64url_uint(numbers.e),
                }
            )
        return {"keys": keys}

    def rotate(self, now: datetime | None = None) -> str:
        """Creates a new active key and retires the current one; returns the new kid.

        Retired keys keep verifying tokens until :meth:`prune` removes them, so tokens signed just
        before a rotation stay valid for their (short) lifetime.
        """
        directory = self._require_directory("rotate")
        entry = self._new_entry(now)
        with self._locked(directory):
            # Re-read under the lock: another replica may have rotated since we loaded.
            entries = {e.kid: e for e in self._read(directory)}
            for kid, e in entries.items():
                if e.retired_at is None:
                    entries[kid] = replace(e, retired_at=entry.created_at)
            entries[entry.kid] = entry
            self._set(entries)
            self._persist(directory, written={entry.kid})
        return entry.kid

    def prune(self, older_than: datetime) -> list[str]:
        """Deletes keys retired before ``older_than``; returns their kids.

        Prune no earlier than one access-token lifetime after a rotation, or tokens signed by the
        old key fail before they expire. The active key is never pruned.
        """
        directory = self._require_directory("prune")
        with self._locked(directory):
            entries = {e.kid: e for e in self._read(directory)}
            gone = [
                kid
                for kid, e in entries.items()
                if e.retired_at is not None and e.retired_at < older_than
            ]
            self._set({k: e for k, e in entries.items() if k not in gone})
            # Manifest first: a crash between the two steps leaves an orphan file, never a
            # manifest that points at a deleted key.
            self._persist(directory, written=set())
            for kid in gone:
                (directory / f"{kid}.pem").unlink(missing_ok=True)
        return gone

    # -- machinery -------------------------------------------------------------------------

    def _require_directory(self, what: str) -> Path:
        if self._directory is None:
            raise RuntimeError(
                f"cannot {what} keys that come from settings; change the settings instead"
            )
        return self._directory

    @staticmethod
    def _new_entry(now: datetime | None) -> _Entry:
        created = (now or datetime.now(UTC)).astimezone(UTC)
        key = rsa.generate_private_key(public_exponent=_PUBLIC_EXPONENT, key_size=_KEY_BITS)
        return _Entry(kid_for(key.public_key()), key, created, None)

    @staticmethod
    @contextlib.contextmanager
    def _locked(directory: Path) -> Iterator[None]:
        fd = os.open(directory / _LOCK, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            yield
        finally:
            os.close(fd)  # closing releases the lock

    @staticmethod
    def _read(directory: Path) -> list[_Entry]:
        manifest: dict[str, Any] = {}
        mpath = directory / _MANIFEST
        if mpath.exists():
            _check_private_mode(mpath)
            manifest = json.loads(mpath.read_text("utf-8")).get("keys", {})
        entries = []
        for path in sorted(directory.glob("*.pem")):
            _check_private_mode(path)
            key = _load_private(path.read_bytes(), str(path))
            kid = kid_for(key.public_key())
            if path.stem != kid:
                # A file named after another key could make us trust a key nobody rotated in.
                raise ValueError(f"{path}: the key's kid is {kid}, not {path.stem}")
            meta = manifest.get(kid, {})
            mtime = datetime.fromtimestamp(path.stat().st_mtime, UTC).isoformat()
            created = datetime.fromisoformat(meta.get("created_at") or mtime)
            retired = meta.get("retired_at")
            retired_at = datetime.fromisoformat(retired) if retired else None
            entries.append(_Entry(kid, key, created, retired_at))
        return entries

    def _persist(self, directory: Path, *, written: set[str]) -> None:
        for kid in written:
            pem = self._entries[kid].key.private_bytes(
                serialization.Encoding.PEM,
                serialization.PrivateFormat.PKCS8,
                serialization.NoEncryption(),
            )
            _write_private(directory / f"{kid}.pem", pem)
        manifest = {
            "version": 1,
            "keys": {
                kid: {
                    "created_at": e.created_at.isoformat(),
                    "retired_at": e.retired_at.isoformat() if e.retired_at else None,
                }
                for kid, e in sorted(self._entries.items())
            },
        }
        _write_private(directory / _MANIFEST, json.dumps(manifest, indent=2).encode())
