"""Face prints: 128-d face embeddings sealed with AES-256-GCM in keyed buckets (issue 16).

A face print is what the store keeps of a face: never a crop, never a plain vector, never an
unkeyed hash. Each embedding is

- **sealed**: AES-256-GCM with a random 96-bit nonce; the associated data binds the ciphertext
  to its row (print id, event, camera, key version), so a blob copied into another row does
  not open;
- **bucketed**: an 8-bit random-hyperplane code of the embedding (the hyperplanes pass
  through ``FACE_CENTRE``, where dlib's embeddings lie, and are drawn from a seed derived from
  the secret key, so nobody without the key can compute a code), then HMAC-SHA256 of the
  code under another derived key. A bucket holds many faces, so it names nobody; it only
  narrows a search.

A search computes the query's code, probes its bucket and every bucket within Hamming
distance ``probe_radius`` of it (radius 3: 93 of 256 buckets), opens the candidates and keeps
those within dlib's distance threshold (0.6). Measured on pairs of real photos of one person
(``opencv-doc``), over 3,000 draws of the hyperplanes: the two land within Hamming distance 1
in 55% of draws, 2 in 82%, 3 in 95%; so radius 3 is the default (``faces.probe_radius``), and
``benchmarks/faces.py`` measures what share of the store a search then reads.

Keys: three independent 32-byte keys (sealing, bucketing, hyperplane seed) come from the
secret-at-rest master key (``auth.secret_key`` or ``keys/secrets.key``) by HKDF-SHA256 with a
purpose label and the key version. Nothing here logs or returns a key.
"""

from __future__ import annotations

import hashlib
import hmac
import itertools
import logging
import os
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field

import numpy as np
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from numpy.typing import NDArray

from sentinel.retention.face_centre import FACE_CENTRE

__all__ = [
    "BUCKET_BITS",
    "DEFAULT_TOLERANCE",
    "EMBEDDING_DIM",
    "FaceSealError",
    "FaceVault",
    "SealedPrint",
    "face_distance",
    "open_many",
]

logger = logging.getLogger(__name__)

EMBEDDING_DIM = 128
BUCKET_BITS = 8
DEFAULT_TOLERANCE = 0.6  # dlib's threshold for "the same person"
NONCE_BYTES = 12
KEY_VERSION = 1
_CENTRE = np.asarray(FACE_CENTRE, dtype=np.float32)
_SALT = b"sentinel/faces"


class FaceSealError(Exception):
    """A sealed print does not open: another key, another row, or altered bytes."""


def _derive(master: bytes, purpose: str, version: int) -> bytes:
    if len(master) != 32:
        raise ValueError(f"the master key must be 32 bytes, but got {len(master)}")
    return HKDF(
        algorithm=hashes.SHA256(),
        length=32,
        salt=_SALT,
        info=f"{purpose}:v{version}".encode(),
    ).derive(master)


@dataclass(frozen=True, slots=True)
class SealedPrint:
    """What the store keeps of one face: the bucket, the nonce, the sealed embedding and the
    key version that sealed it."""

    bucket: str
    nonce: bytes
    sealed: bytes
    key_version: int


@dataclass(frozen=True)
class _Keys:
    seal: AESGCM = field(repr=False)
    bucket: bytes = field(repr=False)
    planes: NDArray[np.float32] = field(repr=False)


class FaceVault:
    """Seals face embeddings and computes their keyed buckets.

    Args:
        master: The 32-byte secret-at-rest master key (``gateway.secretbox.master_key``).
        version: The key version new prints are sealed with (older versions still open).
        bits: Bits of the hyperplane code (buckets: 2**bits).
    """

    def __init__(self, master: bytes, *, version: int = KEY_VERSION, bits: int = BUCKET_BITS):
        if not 1 <= bits <= 16:
            raise ValueError(f"bits must be within 1..16, but got {bits}")
        if version < 1:
            raise ValueError(f"version must be >= 1, but got {version}")
        self.version = version
        self.bits = bits
        self._master = master
        self._keys: dict[int, _Keys] = {}
        self._keys_for(version)  # fail now on a bad master key

    def __repr__(self) -> str:
        return f"FaceVault(version={self.version}, bits={self.bits}, <keys hidden>)"

    def _keys_for(self, version: int) -> _Keys:
        keys = self._keys.get(version)
        if keys is None:
            seed = _derive(self._master, "faces-lsh", version)
            rng = np.random.default_rng(int.from_bytes(seed, "big"))
            planes = rng.standard_normal((self.bits, EMBEDDING_DIM)).astype(np.float32)
            keys = _Keys(
                AESGCM(_derive(self._master, "faces-seal", version)),
                _derive(self._master, "faces-bucket", version),
                planes,
            )
            self._keys[version] = keys
        return keys

    # -- buckets -------------------------------------------------------------------------

    def code(self, embedding: NDArray[np.float32], version: int | None = None) -> int:
        """The hyperplane code of an embedding (``bits`` bits)."""
        planes = self._keys_for(version or self.version).planes
        signs = planes @ (_check(embedding) - _CENTRE) > 0
        return int(sum(1 << i for i, s in enumerate(signs) if s))

    def bucket_of_code(self, code: int, version: int | None = None) -> str:
        """The keyed bucket id of a code: HMAC-SHA256, 32 hex characters."""
        v = version or self.version
        msg = f"v{v}:{self.bits}:{code}".encode()
        return hmac.new(self._keys_for(v).bucket, msg, hashlib.sha256).hexdigest()[:32]

    def bucket(self, embedding: NDArray[np.float32]) -> str:
        """The keyed bucket id of an embedding under the current key version."""
        return self.bucket_of_code(self.code(embedding))

    def probe_buckets(self, embedding: NDArray[np.float32], radius: int) -> list[str]:
        """The query's bucket and those within Hamming distance ``radius`` of its code, under
        the current key version; the query's own bucket first."""
        if not 0 <= radius <= self.bits:
            raise ValueError(f"radius must be within 0..{self.bits}, but got {radius}")
        code = self.code(embedding)
        return [self.bucket_of_code(c) for c in _neighbours(code, self.bits, radius)]

    # -- sealing -------------------------------------------------------------------------

    def seal(
        self, embedding: NDArray[np.float32], *, print_id: str, event_id: str, camera_id: str
    ) -> SealedPrint:
        """Seals an embedding for the row ``print_id`` of ``event_id`` on ``camera_id``."""
        plain = _check(embedding).astype("<f4").tobytes()
        nonce = os.urandom(NONCE_BYTES)
        aad = _aad(print_id, event_id, camera_id, self.version)
        sealed = self._keys_for(self.version).seal.encrypt(nonce, plain, aad)
        return SealedPrint(self.bucket(embedding), nonce, sealed, self.version)

    def unseal(
        self,
        sealed: bytes,
        nonce: bytes,
        *,
        key_version: int,
        print_id: str,
        event_id: str,
        camera_id: str,
    ) -> NDArray[np.float32]:
        """The embedding of a sealed print.

        Raises:
            FaceSealError: another key or row, or altered bytes (never says which).
        """
        if key_version < 1 or len(nonce) != NONCE_BYTES:
            raise FaceSealError("face print cannot be opened")
        aad = _aad(print_id, event_id, camera_id, key_version)
        try:
            plain = self._keys_for(key_version).seal.decrypt(nonce, sealed, aad)
        except InvalidTag:
            raise FaceSealError("face print cannot be opened") from None
        if len(plain) != EMBEDDING_DIM * 4:
            raise FaceSealError("face print cannot be opened")
        return np.frombuffer(plain, dtype="<f4").astype(np.float32)


def open_many(
    vault: FaceVault, rows: Sequence[tuple[str, str, str, bytes, bytes, int]]
) -> tuple[list[int], NDArray[np.float32]]:
    """Opens many sealed prints at once: ``(print id, event id, camera id, nonce, sealed,
    key version)`` each; returns the indexes of those that opened and their embeddings as one
    ``(n, 128)`` matrix (a print that does not open is left out and logged)."""
    opened: list[int] = []
    plains: list[bytes] = []
    size = EMBEDDING_DIM * 4
    for i, (print_id, event_id, camera_id, nonce, sealed, version) in enumerate(rows):
        try:
            if len(nonce) != NONCE_BYTES:
                raise InvalidTag
            aad = _aad(print_id, event_id, camera_id, version)
            plain = vault._keys_for(version).seal.decrypt(nonce, sealed, aad)
        except (InvalidTag, ValueError):
            logger.warning("faces: print %s does not open (another key or row?)", print_id)
            continue
        if len(plain) == size:
            opened.append(i)
            plains.append(plain)
    matrix = np.frombuffer(b"".join(plains), dtype="<f4").reshape(-1, EMBEDDING_DIM)
    return opened, matrix.astype(np.float32)


def face_distance(a: NDArray[np.float32], b: NDArray[np.float32]) -> float:
    """Euclidean distance of two embeddings (dlib: < 0.6 is usually the same person)."""
    return float(np.linalg.norm(a.astype(np.float64) - b.astype(np.float64)))


def _check(embedding: NDArray[np.float32]) -> NDArray[np.float32]:
    arr = np.asarray(embedding, dtype=np.float32)
    if arr.shape != (EMBEDDING_DIM,) or not np.all(np.isfinite(arr)):
        raise ValueError(
            f"a face embedding must be {EMBEDDING_DIM} finite floats, but got shape {arr.shape}"
        )
    return arr


def _aad(print_id: str, event_id: str, camera_id: str, version: int) -> bytes:
    return f"face-print:v{version}:{print_id}:{event_id}:{camera_id}".encode()


def _neighbours(code: int, bits: int, radius: int) -> Iterator[int]:
    yield code
    for r in range(1, radius + 1):
        for flips in itertools.combinations(range(bits), r):
            yield code ^ sum(1 << i for i in flips)


def best_per_event(matches: Iterable[tuple[str, float]]) -> dict[str, float]:
    """The smallest distance per event of ``(event id, distance)`` pairs."""
    best: dict[str, float] = {}
    for event_id, distance in matches:
        if event_id not in best or distance < best[event_id]:
            best[event_id] = distance
    return best
